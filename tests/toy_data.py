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


def tiff_with_subifd(
    photometric: int = 32803, order: str = "<", dng: bool = False, cr2: bool = False, sensor_first: bool = False
) -> bytes:
    """A TIFF shaped like a camera RAW: IFD0 a 16 x 8 RGB preview, its SubIFD 16 x 8 of 16-bit data with
    ``photometric`` (32803: a colour filter array, as in a Nikon NEF or Sony ARW; 1: an ordinary grey image).
    ``sensor_first`` puts the sensor data in IFD0 itself (as some DNGs); ``dng`` adds DNGVersion, ``cr2``
    Canon's CR2 signature after the header."""
    head = 16 if cr2 else 8
    preview, sensor = bytes(i % 251 for i in range(16 * 8 * 3)), bytes(range(256))  # 8- and 16-bit pixels
    preview_at, sensor_at = head, head + 384
    first_at = sensor_at + 256

    def ifd(entries: dict[int, int | tuple[int, ...]], at: int) -> bytes:
        """One IFD at ``at``: values of more than one LONG go right after it."""
        body, extra = b"", b""
        extra_at = at + 2 + 12 * len(entries) + 4
        for tag, value in sorted(entries.items()):
            values = value if isinstance(value, tuple) else (value,)
            if len(values) == 1:
                body += struct.pack(order + "HHII", tag, 4, 1, values[0])
            else:
                body += struct.pack(order + "HHII", tag, 4, len(values), extra_at + len(extra))
                extra += struct.pack(f"{order}{len(values)}I", *values)
        return struct.pack(order + "H", len(entries)) + body + struct.pack(order + "I", 0) + extra

    rgb = {256: 16, 257: 8, 258: (8, 8, 8), 259: 1, 262: 2, 273: preview_at, 277: 3, 278: 8, 279: 384}
    raw = {256: 16, 257: 8, 258: 16, 259: 1, 262: photometric, 273: sensor_at, 277: 1, 278: 8, 279: 256}
    first = (raw if sensor_first else rgb | {254: 1}) | ({50706: 0x01040000} if dng else {})
    size = len(ifd(first | {330: 0}, first_at))
    sub = b"" if sensor_first else ifd(raw, first_at + size)
    if not sensor_first:
        first[330] = first_at + size  # SubIFDs
    magic = (b"II*\x00" if order == "<" else b"MM\x00*") + struct.pack(order + "I", first_at)
    signature = b"CR\x02\x00" + bytes(4) if cr2 else b""
    return magic + signature + preview + sensor + ifd(first, first_at) + sub
