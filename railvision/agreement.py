"""Box-by-box agreement of two models' detections: export parity (ONNX vs PyTorch) and INT8 vs FP32."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from railvision.boxes import box_iou
from railvision.detections import Detections

# Boxes this close to the confidence threshold may legitimately fall on either side of it.
THRESHOLD_MARGIN = 0.005


@dataclass
class Comparison:
    """Box-by-box agreement of a test result with a reference result."""

    compared: int = 0  # reference boxes clearly above threshold
    ious: list[float] = field(default_factory=list)  # of matched pairs
    conf_deltas: list[float] = field(default_factory=list)
    missing: int = 0  # reference boxes with no same-class partner in the test result
    extra: int = 0  # test boxes clearly above threshold with no partner in the reference
    class_flips: int = 0  # pairs of different class (only possible with same_class=False)

    def add(self, other: Comparison) -> None:
        self.compared += other.compared
        self.ious += other.ious
        self.conf_deltas += other.conf_deltas
        self.missing += other.missing
        self.extra += other.extra
        self.class_flips += other.class_flips

    @property
    def min_iou(self) -> float:
        return min(self.ious, default=1.0)

    @property
    def mean_iou(self) -> float:
        return float(np.mean(self.ious)) if self.ious else 1.0

    @property
    def max_conf_delta(self) -> float:
        return max(self.conf_deltas, default=0.0)

    def summary(self) -> str:
        return (
            f"{self.compared} boxes compared, {len(self.ious)} matched, {self.missing} missing, {self.extra} extra, "
            f"IoU min {self.min_iou:.4f} mean {self.mean_iou:.4f}, max conf delta {self.max_conf_delta:.4f}"
        )


def compare(
    reference: Detections,
    test: Detections,
    conf: float,
    min_iou: float = 0.5,
    margin: float = THRESHOLD_MARGIN,
    same_class: bool = True,
) -> Comparison:
    """Greedily pair each confident reference box with the best-overlapping (same-class) test box.

    Only boxes at least ``margin`` above ``conf`` count as required, so a box at 0.051 in one
    model and 0.049 in the other is not a disagreement. ``same_class=False`` pairs boxes by
    overlap alone and counts class disagreements in ``class_flips``.
    """
    result = Comparison()
    iou = box_iou(reference.xyxy, test.xyxy)
    if same_class:
        iou[reference.class_id[:, None] != test.class_id[None, :]] = 0.0
    taken = np.zeros(len(test), dtype=bool)
    for i in np.argsort(-reference.confidence, kind="stable"):
        candidates = np.where(taken, -1.0, iou[i])
        j = int(candidates.argmax()) if len(test) else -1
        paired = j >= 0 and candidates[j] >= min_iou
        if paired:
            taken[j] = True
        if reference.confidence[i] < conf + margin:
            continue
        result.compared += 1
        if paired:
            result.class_flips += int(reference.class_id[i] != test.class_id[j])
            result.ious.append(float(iou[i, j]))
            result.conf_deltas.append(abs(float(reference.confidence[i] - test.confidence[j])))
        else:
            result.missing += 1
    result.extra = int(np.sum(~taken & (test.confidence >= conf + margin)))
    return result


def compare_models(
    reference: Iterator[Detections], test: Iterator[Detections], conf: float, min_iou: float = 0.5
) -> Comparison:
    total = Comparison()
    for ref, tst in zip(reference, test, strict=True):
        total.add(compare(ref, tst, conf, min_iou))
    return total
