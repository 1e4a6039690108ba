"""The labeller's record types, in their own module so every stage (scan, state, pipeline,
outputs, report, Ray backend, driver) can share them without importing one another."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from railvision.detections import Detections
from railvision.options import DEFAULTS, DetectOptions


@dataclass(frozen=True, slots=True)
class ArchiveFile:
    """One photo in the archive; ``size`` and ``mtime_ns`` tell whether it changed since it was labelled."""

    rel: str  # POSIX path relative to the archive root
    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class Skipped:
    """A file the scan passed over, kept with why so skipped.csv can account for every file."""

    rel: str
    reason: str


@dataclass(frozen=True, slots=True)
class LabelOptions:
    """What decides the labels (any change restarts the labelling) and how the work is spread."""

    model: Path
    device: str = "auto"
    detect: DetectOptions = DEFAULTS
    annotated: bool = False
    max_pixels: int | None = None
    batch: int = 8
    workers: int = 2


@dataclass(slots=True)
class Outcome:
    """What happened to one photo: its detections (``Detections.to_dict()``) or why it failed."""

    file: ArchiveFile
    result: dict[str, Any] | None = None
    error: tuple[str, str] | None = None  # (kind, reason)
    geo: dict[str, Any] | None = None  # {"crs": ..., "transform": [a, b, c, d, e, f]} of a GeoTIFF
    annotated: bytes | None = None  # JPEG with boxes drawn, when asked for


@dataclass(frozen=True, slots=True)
class LabelledImage:
    """A saved outcome with detections, read back from the state for the outputs."""

    path: str
    detections: Detections
    geo: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class FailedImage:
    """A saved outcome without detections, read back from the state for errors.csv."""

    path: str
    kind: str
    reason: str


@dataclass(slots=True)
class Results:
    """Everything the outputs are built from, in archive order."""

    labelled: list[LabelledImage] = field(default_factory=list)
    failed: list[FailedImage] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    class_names: tuple[str, ...] = ()
    model_name: str = ""

    def paths(self) -> list[str]:
        """Every photo labelled or failed: what the per-photo output names are chosen among."""
        return [image.path for image in self.labelled] + [image.path for image in self.failed]
