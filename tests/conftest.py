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
