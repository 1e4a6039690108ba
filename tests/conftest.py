"""Shared fixtures: tiny exact ONNX models and generated images (no network, no shipped files needed)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from toy_models import BLUE, RED, build_oracle


@pytest.fixture(scope="session")
def oracle_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """End-to-end-head oracle: boxes pure red (tank_car) and pure blue (closed_wagon) pixels."""
    return build_oracle(tmp_path_factory.mktemp("models") / "oracle_e2e.onnx", "end2end")


@pytest.fixture(scope="session")
def oracle_classic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same oracle with a classic (4 + nc, anchors) head that needs NMS, fixed batch 1."""
    return build_oracle(tmp_path_factory.mktemp("models") / "oracle_classic.onnx", "classic", batch=1)


def scene(width: int = 1000, height: int = 480, red: tuple | None = None, blue: tuple | None = None) -> np.ndarray:
    """Grey-noise BGR image with an optional red and blue rectangle (x1, y1, x2, y2, inclusive)."""
    rng = np.random.default_rng(width * height)
    image = rng.integers(60, 140, size=(height, width, 3), dtype=np.uint8)
    for box, colour in ((red, RED), (blue, BLUE)):
        if box is not None:
            cv2.rectangle(image, box[:2], box[2:], colour, -1)
    return image


@pytest.fixture
def make_scene():
    return scene


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 train + 4 val images of coloured rectangles (all five classes) at 160x128; returns data.yaml."""
    from toy_data import make_dataset

    return make_dataset(tmp_path_factory.mktemp("tiny"), {"train": 8, "val": 4}, classes=(0, 1, 2, 3, 4))[0]


@pytest.fixture(scope="session")
def tiny_weights(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A YOLO26n trained from scratch (yolo26n.yaml, no download) for 2 epochs at 64 px: export/eval fodder."""
    pytest.importorskip("ultralytics", reason="training needs the 'train' extra")
    from railvision.train import train

    return train(tiny_train_config(tiny_dataset, tmp_path_factory.mktemp("runs"), "tiny")).last


def tiny_train_config(data: Path, project: Path, name: str, **overrides: object):
    """Two CPU epochs at 64 px from yolo26n.yaml (no download): seconds, enough to exercise training."""
    from railvision.train import TrainConfig

    settings = {"weights": "yolo26n.yaml", "epochs": 2, "imgsz": 64, "batch": 8, "device": "cpu", "workers": 0}
    return TrainConfig(data=data, project=project, name=name, **(settings | {"augment": "mixed"} | overrides))
