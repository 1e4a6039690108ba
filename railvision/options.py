"""The five detection knobs (``conf``, ``iou``, ``classes``, ``max_det``, ``tile``): declared once.

``DetectOptions`` holds them, validates them when made and resolves the threshold against a
model. Precedence, highest first: command-line flags, then a request's or caller's options,
then the model's own threshold (ONNX metadata ``CONF_KEY``), then the defaults declared here.
Each layer sets only what it was given (``override``: ``None`` is "not given"), and ``resolve``
fills in the model's threshold last, so the CLI, the service, the labeller and the library
all arrive at the same numbers the same way.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

from railvision.taxonomy import parse_class_filter

Tile = Literal["auto", "on", "off"]
TILES: tuple[Tile, ...] = get_args(Tile)
DEFAULT_CONF = 0.25  # for models that carry no threshold of their own
CONF_KEY = "conf"  # the ONNX metadata entry of a model's own threshold (``railvision eval --set-default-conf``)


class ModelConf(enum.Enum):
    """The type of ``MODEL_CONF``: an enum, so the sentinel survives pickling (Ray actors) and hashes."""

    MODEL = "model"


MODEL_CONF = ModelConf.MODEL  # "the model's own threshold": metadata ``CONF_KEY``, else ``DEFAULT_CONF``


@dataclass(frozen=True, slots=True)
class DetectOptions:
    """How to detect: frozen and hashable, so equal requests can share a batch (the service's key).

    ``classes`` takes names or ids (a list, or a comma-separated string) and keeps sorted ids;
    ``None`` keeps every class. ``tile``: ``off``; ``on`` slices every image into overlapping
    model-sized tiles; ``auto`` does so only where the frame is much larger than the model
    input and what the full-frame pass found is small (or nothing).
    """

    conf: float | ModelConf = MODEL_CONF
    iou: float = 0.7  # NMS IoU, for classic heads
    classes: tuple[int, ...] | None = None
    max_det: int = 300
    tile: Tile = "auto"

    def __post_init__(self) -> None:
        """The one validation of the knobs: every ``DetectOptions`` is one the engine can run."""
        conf_ok = isinstance(self.conf, ModelConf) or 0 <= self.conf <= 1
        if not conf_ok or not 0 <= self.iou <= 1:
            raise ValueError(f"conf and iou must be within [0, 1], got conf={self.conf}, iou={self.iou}")
        if self.max_det < 1:
            raise ValueError(f"max_det must be at least 1, got {self.max_det}")
        if self.tile not in TILES:
            raise ValueError(f"tile must be auto, on or off, got {self.tile!r}")
        ids = parse_class_filter(self.classes)  # type: ignore[arg-type]
        object.__setattr__(self, "classes", tuple(ids) if ids is not None else None)

    def override(self, **given: Any) -> DetectOptions:
        """These options with every knob that was given (not ``None``) replaced: the next layer up."""
        chosen = {name: value for name, value in given.items() if value is not None}
        return replace(self, **chosen) if chosen else self

    def threshold(self, metadata: Mapping[str, str]) -> float:
        """The confidence threshold these options run at on a model with this metadata."""
        if isinstance(self.conf, ModelConf):
            return float(metadata.get(CONF_KEY, DEFAULT_CONF))
        return float(self.conf)

    def resolve(self, metadata: Mapping[str, str]) -> DetectOptions:
        """The options the engine runs: the model's own threshold filled in (and validated)."""
        return self.override(conf=self.threshold(metadata))

    def conf_source(self, metadata: Mapping[str, str]) -> str:
        """Where ``resolve`` takes the threshold from: ``given``, ``the model's own`` or ``default``."""
        if not isinstance(self.conf, ModelConf):
            return "given"
        return "the model's own" if CONF_KEY in metadata else "default"


DEFAULTS = DetectOptions()  # what the tools run with: railvision detect, label and serve
# ``Detector.detect`` stays untiled unless asked, so it gives what Ultralytics' predict gives on the same weights
# (the README's promise; export's parity check and tests/test_train_export.py rely on it).
LIBRARY_DEFAULTS = DetectOptions(tile="off")
