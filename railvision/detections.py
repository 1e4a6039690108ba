"""``Detections``: the one result type every railvision tool speaks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from railvision.taxonomy import CLASS_NAMES


@dataclass(frozen=True)
class Detections:
    """Boxes found in one image, in that image's original pixel coordinates.

    ``xyxy`` is ``(N, 4)`` float32 (x1, y1, x2, y2), ``confidence`` ``(N,)`` float32,
    ``class_id`` ``(N,)`` int64. ``image_size`` is ``(width, height)``.
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    image_size: tuple[int, int]
    class_names: tuple[str, ...] = CLASS_NAMES
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "xyxy", np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4))
        object.__setattr__(self, "confidence", np.asarray(self.confidence, dtype=np.float32).reshape(-1))
        object.__setattr__(self, "class_id", np.asarray(self.class_id, dtype=np.int64).reshape(-1))
        if not len(self.xyxy) == len(self.confidence) == len(self.class_id):
            raise ValueError("xyxy, confidence and class_id must have the same length")

    @classmethod
    def empty(cls, image_size: tuple[int, int], class_names: tuple[str, ...] = CLASS_NAMES) -> Detections:
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0), image_size, class_names)

    @classmethod
    def from_ultralytics(cls, result: Any, class_names: tuple[str, ...]) -> Detections:
        """One Ultralytics ``Results`` (an item of ``YOLO.predict``'s list) as ``Detections``.

        Read by attribute alone, so this module imports neither torch nor Ultralytics (the inference
        path never loads them); the boxes are already in the original image's pixels.
        """
        boxes = result.boxes
        height, width = result.orig_shape[:2]
        return cls(
            boxes.xyxy.cpu().numpy(),
            boxes.conf.cpu().numpy(),
            boxes.cls.cpu().numpy(),
            (int(width), int(height)),
            class_names,
        )

    def __len__(self) -> int:
        return len(self.confidence)

    def __getitem__(self, index: np.ndarray | slice | list[int]) -> Detections:
        """Subset by boolean mask, index array or slice; keeps image size and names."""
        return Detections(
            self.xyxy[index], self.confidence[index], self.class_id[index], self.image_size, self.class_names, self.meta
        )

    @property
    def names(self) -> list[str]:
        """Class name of each box."""
        return [self.class_names[i] for i in self.class_id]

    def counts(self) -> dict[str, int]:
        """Boxes per class, every class present (zeros included), in taxonomy order."""
        per_class = np.bincount(self.class_id, minlength=len(self.class_names))
        return {name: int(n) for name, n in zip(self.class_names, per_class, strict=False)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form shared by ``detect --json``, the service and the labeller."""
        width, height = self.image_size
        return {
            "image_size": {"width": int(width), "height": int(height)},
            "detections": [
                {
                    "box": [round(float(v), 2) for v in box],
                    "class_id": int(c),
                    "class_name": self.class_names[int(c)],
                    "confidence": round(float(s), 4),
                }
                for box, s, c in zip(self.xyxy, self.confidence, self.class_id, strict=True)
            ],
            "counts": self.counts(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], class_names: tuple[str, ...] = CLASS_NAMES) -> Detections:
        """Inverse of ``to_dict`` (used to resume work from saved results)."""
        items = data["detections"]
        size = data["image_size"]
        return cls(
            np.array([d["box"] for d in items], dtype=np.float32).reshape(-1, 4),
            np.array([d["confidence"] for d in items], dtype=np.float32),
            np.array([d["class_id"] for d in items], dtype=np.int64),
            (int(size["width"]), int(size["height"])),
            class_names,
        )
