"""Boxes drawn on a copy of an image: one look for the CLI, the service, the labeller and previews."""

from __future__ import annotations

import cv2
import numpy as np

from railvision.detections import Detections

# BGR, one per taxonomy class; distinct under haze-grey photos.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 0, 230),  # diesel_locomotive: red
    (0, 200, 255),  # tank_car: amber
    (60, 200, 0),  # covered_flatbed: green
    (230, 120, 0),  # closed_wagon: blue
    (200, 0, 200),  # other_railcar: magenta
)


def colour(class_id: int) -> tuple[int, int, int]:
    return PALETTE[class_id % len(PALETTE)]


def draw_detections(
    image: np.ndarray, detections: Detections, labels: bool = True, confidence: bool = True
) -> np.ndarray:
    """Copy of ``image`` (BGR) with each box and, optionally, ``name conf`` above it (``name`` alone
    without ``confidence``: ground truth has none, e.g. the synth previews)."""
    out = image.copy()
    scale = max(out.shape[:2]) / 1000
    thickness = max(1, round(2 * scale))
    font_scale = max(0.35, 0.5 * scale)
    for (x1, y1, x2, y2), conf, cls in zip(
        detections.xyxy.round().astype(int), detections.confidence, detections.class_id, strict=True
    ):
        c = colour(int(cls))
        cv2.rectangle(out, (x1, y1), (x2, y2), c, thickness, cv2.LINE_AA)
        if labels:
            name = detections.class_names[int(cls)]
            text = f"{name} {conf:.2f}" if confidence else name
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, max(1, thickness - 1))
            top = y1 - th - base - 2 if y1 - th - base - 2 >= 0 else y1
            cv2.rectangle(out, (x1, top), (x1 + tw + 2, top + th + base + 2), c, -1)
            cv2.putText(
                out,
                text,
                (x1 + 1, top + th + 1),
                cv2.FONT_HERSHEY_SIMPLEX,
                font_scale,
                (255, 255, 255),
                max(1, thickness - 1),
                cv2.LINE_AA,
            )
    return out
