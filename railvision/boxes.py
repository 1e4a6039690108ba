"""Box maths in one place: overlaps, greedy NMS, YOLO's normalised ``cx cy w h`` and its label lines.

Plain numpy over ``(N, 4)`` arrays of pixel corners ``x1 y1 x2 y2`` (as supervision's
``iou_and_nms``), so that the engine, tiling, evaluation, the export checks, the importers
and every label writer mean the same thing by an overlap or a label line. Each overlap
divides by its area plus ``EPS``: boxes with no area give 0, never a division by zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, NamedTuple, TypeVar

import numpy as np

EPS = 1e-9
YOLO_DECIMALS = 6  # label files hold six decimals: sub-pixel for images up to 1e6 px wide

Label = TypeVar("Label", int, str)


class Box(NamedTuple, Generic[Label]):
    """One box in pixels and what it shows: a class name (foreign annotations) or a class id (synth)."""

    label: Label
    x1: float
    y1: float
    x2: float
    y2: float


def box_area(xyxy: np.ndarray) -> np.ndarray:
    """Area of each box (negative for boxes with swapped corners)."""
    return np.prod(xyxy[:, 2:] - xyxy[:, :2], axis=1)


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    return np.prod(np.clip(rb - lt, 0, None), axis=2)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection over union, ``(N, M)`` for ``(N, 4)`` and ``(M, 4)`` boxes."""
    inter = _intersection(a, b)
    return inter / (box_area(a)[:, None] + box_area(b)[None, :] - inter + EPS)


def box_ioa(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection over the area of the box of ``a``: how much of ``a[i]`` lies inside ``b[j]``
    (a detection inside an ignore region)."""
    return _intersection(a, b) / (box_area(a)[:, None] + EPS)


def box_ios(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection over the smaller of the two boxes: one lies mostly inside the other
    (a partial view cut by a tile seam inside the whole one)."""
    smaller = np.minimum(box_area(a)[:, None], box_area(b)[None, :])
    return _intersection(a, b) / (smaller + EPS)


def nms(xyxy: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy non-maximum suppression: indices kept, highest score first; a box goes when its IoU
    with a kept one is above ``iou``."""
    areas = box_area(xyxy)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        inter = _intersection(xyxy[i : i + 1], xyxy[rest])[0]
        order = rest[inter / (areas[i] + areas[rest] - inter + EPS) <= iou]
    return np.asarray(keep, dtype=np.int64)


def clip_xyxy(xyxy: np.ndarray, width: float, height: float) -> np.ndarray:
    """Boxes cut to the image ``[0, width] x [0, height]``, in their own dtype."""
    return np.clip(xyxy, 0, np.array([width, height, width, height], dtype=xyxy.dtype))


def xyxy_to_yolo(xyxy: np.ndarray | Sequence[Sequence[float]], width: float, height: float) -> np.ndarray:
    """Pixel corners to YOLO's ``cx cy w h`` normalised by the image size, ``(N, 4)`` float64
    (computed in double precision, as label files are written)."""
    x1, y1, x2, y2 = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4).T
    return np.stack([(x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height], axis=1)


def yolo_to_xyxy(cxcywh: np.ndarray, width: float, height: float) -> np.ndarray:
    """YOLO's normalised ``cx cy w h`` back to pixel corners, ``(N, 4)`` float64."""
    r = np.asarray(cxcywh, dtype=np.float64).reshape(-1, 4)
    cx, cy, w, h = r[:, 0] * width, r[:, 1] * height, r[:, 2] * width, r[:, 3] * height
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def yolo_text(cxcywh: np.ndarray, class_id: Sequence[int] | np.ndarray | None = None) -> str:
    """YOLO label text: a ``class cx cy w h`` line per box, each ending in a newline; without ``class_id``
    the lines hold the box alone (``ignore/`` sidecars)."""
    rows = np.asarray(cxcywh, dtype=np.float64).reshape(-1, 4).tolist()
    prefixes = [""] * len(rows) if class_id is None else [f"{int(c)} " for c in class_id]
    d = YOLO_DECIMALS
    return "".join(
        f"{p}{cx:.{d}f} {cy:.{d}f} {w:.{d}f} {h:.{d}f}\n" for p, (cx, cy, w, h) in zip(prefixes, rows, strict=True)
    )


def parse_yolo(text: str, with_class: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of :func:`yolo_text`: (class ids ``(N,)`` int64, ``cx cy w h`` ``(N, 4)`` float64); blank
    lines are skipped. ``with_class=False`` reads class-less lines, their ids then all -1."""
    lines = [[float(v) for v in line.split()] for line in text.splitlines() if line.strip()]
    rows = np.array(lines, dtype=np.float64).reshape(-1, 5 if with_class else 4)
    if not with_class:
        return np.full(len(rows), -1, dtype=np.int64), rows
    return rows[:, 0].astype(np.int64), rows[:, 1:]
