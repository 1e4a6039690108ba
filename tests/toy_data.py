"""Tiny generated YOLO datasets: coloured rectangles on noise, with exact known boxes."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from toy_models import BLUE, BLUE_CLASS, RED, RED_CLASS

from railvision.data import write_data_yaml
from railvision.taxonomy import CLASS_NAMES

# class id -> BGR colour (the oracle model sees RED and BLUE)
COLOURS = {RED_CLASS: RED, BLUE_CLASS: BLUE, 0: (0, 255, 255), 2: (0, 255, 0), 4: (255, 0, 255)}


def random_boxes(rng: np.random.Generator, width: int, height: int, classes: list[int]) -> list[tuple[int, ...]]:
    """Non-overlapping (class, x1, y1, x2, y2) pixel boxes, one per class, laid out left to right."""
    slot = width // len(classes)
    boxes = []
    for i, c in enumerate(classes):
        w, h = int(rng.integers(slot // 3, slot - 4)), int(rng.integers(height // 4, height - 8))
        x1, y1 = i * slot + int(rng.integers(0, slot - w)), int(rng.integers(0, height - h))
        boxes.append((c, x1, y1, x1 + w, y1 + h))
    return boxes


def draw(boxes: list[tuple[int, ...]], width: int, height: int, seed: int) -> np.ndarray:
    image = np.random.default_rng(seed).integers(60, 140, (height, width, 3), dtype=np.uint8)
    for c, x1, y1, x2, y2 in boxes:
        cv2.rectangle(image, (x1, y1), (x2 - 1, y2 - 1), COLOURS[c], -1)  # fills pixels x1..x2-1: box [x1, x2)
    return image


def yolo_line(c: int, x1: float, y1: float, x2: float, y2: float, width: int, height: int) -> str:
    return (
        f"{c} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} {(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}"
    )


def make_dataset(
    root: Path,
    splits: dict[str, int],
    size: tuple[int, int] = (160, 128),
    classes: tuple[int, ...] = (RED_CLASS, BLUE_CLASS),
    seed: int = 0,
) -> tuple[Path, dict[Path, list[tuple[int, ...]]]]:
    """Write a YOLO dataset; returns data.yaml and each image's true pixel boxes."""
    rng = np.random.default_rng(seed)
    width, height = size
    truth = {}
    for split, n in splits.items():
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            boxes = random_boxes(rng, width, height, list(classes))
            image = root / "images" / split / f"{split}_{i}.png"
            cv2.imwrite(str(image), draw(boxes, width, height, seed * 1000 + i + len(truth)))
            lines = [yolo_line(*b, width, height) for b in boxes]
            (root / "labels" / split / f"{split}_{i}.txt").write_text("\n".join(lines) + "\n")
            truth[image] = boxes
    return write_data_yaml(root, CLASS_NAMES, splits), truth


def png_claiming(width: int, height: int) -> bytes:
    """A complete, tiny PNG file whose header claims ``width x height`` pixels: a decompression bomb."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk_bytes(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    # a complete file, as a real bomb is: header, a little compressed data, end
    body = chunk_bytes(b"IHDR", ihdr) + chunk_bytes(b"IDAT", zlib.compress(bytes(1000))) + chunk_bytes(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body
