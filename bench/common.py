"""Helpers shared by the benchmarks: test images and a model pair (.pt + .onnx) to time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("YOLO_OFFLINE", "1")


def write_report(path: Path, report: object) -> None:
    """A bench's figures as JSON, beside its printed table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {path}")


def make_images(folder: Path, count: int, size: tuple[int, int] = (1280, 720), seed: int = 0) -> list[Path]:
    """Photo-like JPEGs (smooth gradients, noise, a few blocks) so decoding costs what a real photo costs."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    paths = []
    for i in range(count):
        base = np.linspace(rng.uniform(60, 200), rng.uniform(60, 200), w, dtype=np.float32)[None, :, None]
        image = np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
        for _ in range(6):
            x, y = int(rng.integers(0, w - 200)), int(rng.integers(h // 3, h - 60))
            colour = tuple(int(c) for c in rng.integers(0, 255, 3))
            cv2.rectangle(image, (x, y), (x + int(rng.integers(60, 200)), y + int(rng.integers(20, 60))), colour, -1)
        path = folder / f"img_{i:04d}.jpg"
        cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(path)
    return paths


def model_pair(pt: Path | None, onnx: Path | None, workdir: Path) -> tuple[Path, Path]:
    """The shipped .pt/.onnx pair, or given paths; else a randomly initialised YOLO26n exported here."""
    shipped = REPO / "models" / "railvision-n.pt", REPO / "models" / "railvision-n.onnx"
    if pt is None and onnx is None and shipped[0].is_file() and shipped[1].is_file():
        return shipped
    if pt is not None and onnx is not None:
        return pt, onnx
    print("no model given and none shipped: exporting a randomly initialised YOLO26n (timings only)")
    workdir.mkdir(parents=True, exist_ok=True)
    script = (
        "from ultralytics import YOLO; import shutil;"
        "m = YOLO('yolo26n.yaml'); m.save(r'{pt}');"
        "shutil.move(YOLO(r'{pt}').export(format='onnx', imgsz=640), r'{onnx}')"
    ).format(pt=workdir / "scratch.pt", onnx=workdir / "scratch.onnx")
    subprocess.run([sys.executable, "-c", script], check=True, cwd=workdir, capture_output=True)
    return workdir / "scratch.pt", workdir / "scratch.onnx"
