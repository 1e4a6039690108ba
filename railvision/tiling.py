"""Tiled inference for scenes larger than the model's input: slicing and seam merging.

Pure functions over numpy arrays; the engine decides when to tile and runs the model.
"""

from __future__ import annotations

import math

import numpy as np

from railvision.boxes import box_ios, box_iou

TILE_OVERLAP = 0.2  # fraction of the tile side shared by neighbours: a car cut by one seam is whole in the next tile
MERGE_IOS = 0.5  # intersection over the smaller box above which a seam-cut box belongs to another
MERGE_IOU = 0.5  # IoU above which two whole boxes from different slices are one object
AUTO_MIN_SCALE = 1.5  # auto tiling only where the frame is shrunk at least this much to fit the model
AUTO_MIN_BOX = 24  # ...and the smallest box found at full-frame scale is under this many model-input pixels


def _starts(length: int, tile: int, step: int) -> list[int]:
    if length <= tile:
        return [0]
    count = math.ceil((length - tile) / step) + 1
    return [min(i * step, length - tile) for i in range(count)]


def plan_tiles(width: int, height: int, tile: int, overlap: float = TILE_OVERLAP) -> list[tuple[int, int, int, int]]:
    """Square windows (x1, y1, x2, y2) of side ``tile`` covering the image with the given overlap."""
    if not 0 <= overlap < 1:
        raise ValueError("overlap must be in [0, 1)")
    step = max(1, int(tile * (1 - overlap)))
    return [
        (x, y, min(x + tile, width), min(y + tile, height))
        for y in _starts(height, tile, step)
        for x in _starts(width, tile, step)
    ]


def needs_tiling(image_wh: tuple[int, int], input_hw: tuple[int, int], full_frame_boxes: np.ndarray) -> bool:
    """Auto rule: tile when the frame is shrunk a lot *and* what it shows is small (or nothing was seen)."""
    scale = max(image_wh[0] / input_hw[1], image_wh[1] / input_hw[0])
    if scale < AUTO_MIN_SCALE:
        return False
    if len(full_frame_boxes) == 0:
        return True
    sides = np.minimum(full_frame_boxes[:, 2] - full_frame_boxes[:, 0], full_frame_boxes[:, 3] - full_frame_boxes[:, 1])
    return bool(sides.min() / scale < AUTO_MIN_BOX)


def cut_by_seam(xyxy: np.ndarray, window: tuple[int, int, int, int], image_wh: tuple[int, int], margin: float = 2.0):
    """Which boxes touch an inner edge of their slice (a seam, not the image border): partial views."""
    x1, y1, x2, y2 = window
    width, height = image_wh
    return (
        ((xyxy[:, 0] <= x1 + margin) & (x1 > 0))
        | ((xyxy[:, 1] <= y1 + margin) & (y1 > 0))
        | ((xyxy[:, 2] >= x2 - margin) & (x2 < width))
        | ((xyxy[:, 3] >= y2 - margin) & (y2 < height))
    )


def merge_tiles(
    xyxy: np.ndarray,
    confidence: np.ndarray,
    class_id: np.ndarray,
    source: np.ndarray,
    cut: np.ndarray,
    ios: float = MERGE_IOS,
    iou: float = MERGE_IOU,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy merge of detections from different slices (SAHI's greedy NMM, class-aware).

    Boxes are visited by falling confidence. A lower box of the same class from *another*
    slice is the same object when the two overlap by ``iou``, or, where either box is cut by
    a seam (a partial view), when it lies mostly inside the other (``ios`` over the smaller
    box); it is folded in and the kept box grows to their union, so a car cut by a seam is
    counted once with its full extent. Boxes of one slice were already separated by the
    model and are never merged with each other: cars in a line overlap heavily.
    """
    order = np.argsort(-confidence, kind="stable")
    xyxy, confidence, class_id = xyxy[order].copy(), confidence[order], class_id[order]
    source, cut = source[order], cut[order].copy()
    alive = np.ones(len(order), dtype=bool)
    for i in range(len(order)):
        if not alive[i]:
            continue
        rest = np.flatnonzero(alive & (class_id == class_id[i]) & (source != source[i]))
        rest = rest[rest > i]
        if len(rest) == 0:
            continue
        box, others = xyxy[i : i + 1], xyxy[rest]
        merged = rest[(box_iou(box, others)[0] >= iou) | ((box_ios(box, others)[0] >= ios) & (cut[i] | cut[rest]))]
        if len(merged):
            group = np.vstack([xyxy[i : i + 1], xyxy[merged]])
            xyxy[i] = [group[:, 0].min(), group[:, 1].min(), group[:, 2].max(), group[:, 3].max()]
            cut[i] = cut[i] and cut[merged].all()
            alive[merged] = False
    return xyxy[alive], confidence[alive], class_id[alive]
