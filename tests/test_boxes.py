"""Box maths by hand: overlaps, NMS, clipping, YOLO's normalised boxes and its label lines."""

from __future__ import annotations

import numpy as np
import pytest

from railvision.boxes import (
    Box,
    box_ioa,
    box_ios,
    box_iou,
    clip_xyxy,
    nms,
    parse_yolo,
    xyxy_to_yolo,
    yolo_text,
    yolo_to_xyxy,
)

SQUARE = [0, 0, 10, 10]  # area 100
SHIFTED = [5, 5, 15, 15]  # a quarter of SQUARE: intersection 25, union 175
FAR = [20, 20, 30, 30]
BIG = [0, 0, 20, 20]  # holds SQUARE, four times its area
FLAT = [5, 5, 5, 10]  # no area


def boxes(*rows: list[float]) -> np.ndarray:
    return np.array(rows, dtype=np.float32).reshape(-1, 4)


def test_iou_by_hand() -> None:
    iou = box_iou(boxes(SQUARE, SHIFTED), boxes(SQUARE, SHIFTED, FAR))
    assert iou.shape == (2, 3)
    assert iou == pytest.approx(np.array([[1, 25 / 175, 0], [25 / 175, 1, 0]]), abs=1e-6)


def test_ioa_is_over_the_first_boxes_area_and_ios_over_the_smaller() -> None:
    assert box_ioa(boxes(SQUARE), boxes(BIG))[0, 0] == pytest.approx(1.0)
    assert box_ioa(boxes(BIG), boxes(SQUARE))[0, 0] == pytest.approx(0.25)
    assert box_ios(boxes(SQUARE), boxes(BIG))[0, 0] == pytest.approx(1.0)
    assert box_ios(boxes(BIG), boxes(SQUARE))[0, 0] == pytest.approx(1.0)
    assert box_ioa(boxes(SHIFTED), boxes(SQUARE))[0, 0] == pytest.approx(0.25)
    # a 40 x 10 detection with 24 px of its width inside an ignore region: 60% of it
    assert box_ioa(boxes([36, 0, 76, 10]), boxes([0, 0, 60, 100]))[0, 0] == pytest.approx(0.6)
    assert box_iou(boxes(SQUARE), boxes(BIG))[0, 0] == pytest.approx(0.25)


def test_boxes_without_area_overlap_nothing() -> None:
    for overlap in (box_iou, box_ioa, box_ios):
        result = overlap(boxes(FLAT, FLAT), boxes(FLAT, SQUARE))
        assert np.isfinite(result).all() and (result == 0).all(), overlap.__name__


@pytest.mark.parametrize("overlap", [box_iou, box_ioa, box_ios])
def test_empty_arrays_give_empty_matrices(overlap) -> None:
    assert overlap(boxes(), boxes(SQUARE, FAR, BIG)).shape == (0, 3)
    assert overlap(boxes(SQUARE, FAR), boxes()).shape == (2, 0)
    assert overlap(boxes(), boxes()).shape == (0, 0)


def test_nms_keeps_best_of_overlapping_boxes() -> None:
    found = boxes(SQUARE, [1, 1, 10, 10], FAR)  # the second: IoU 81 / 100 with the first
    assert nms(found, np.array([0.9, 0.8, 0.7]), 0.5).tolist() == [0, 2]
    assert nms(found, np.array([0.9, 0.8, 0.7]), 0.81).tolist() == [0, 1, 2]  # only above the bound goes


def test_nms_orders_by_score_and_keeps_ties_in_input_order() -> None:
    found = boxes(SQUARE, FAR, [40, 40, 50, 50])
    assert nms(found, np.array([0.2, 0.9, 0.2]), 0.5).tolist() == [1, 0, 2]
    assert nms(boxes(SQUARE, SQUARE), np.array([0.5, 0.5]), 0.5).tolist() == [0]


def test_nms_of_nothing_and_of_flat_boxes() -> None:
    kept = nms(boxes(), np.zeros(0), 0.5)
    assert kept.dtype == np.int64 and kept.tolist() == []
    assert nms(boxes(FLAT, FLAT), np.array([0.9, 0.8]), 0.5).tolist() == [0, 1]  # no area, no overlap


def test_clip_keeps_the_dtype() -> None:
    clipped = clip_xyxy(boxes([-5, -1, 130, 40], [10, 90, 20, 120]), 100, 80)
    assert clipped.dtype == np.float32
    assert clipped.tolist() == [[0, 0, 100, 40], [10, 80, 20, 80]]


def test_yolo_encode_and_decode_by_hand() -> None:
    cxcywh = xyxy_to_yolo([[10, 20, 30, 60]], 100, 200)
    assert cxcywh.dtype == np.float64
    assert cxcywh == pytest.approx(np.array([[0.2, 0.2, 0.2, 0.2]]))
    assert yolo_to_xyxy(cxcywh, 100, 200) == pytest.approx(np.array([[10, 20, 30, 60]]))
    assert xyxy_to_yolo([], 100, 200).shape == (0, 4)
    assert yolo_to_xyxy(np.zeros((0, 4)), 100, 200).shape == (0, 4)


def test_yolo_lines_by_hand() -> None:
    cxcywh = xyxy_to_yolo([[10, 20, 30, 60], [0, 0, 100, 200]], 100, 200)
    assert yolo_text(cxcywh, [3, 0]) == "3 0.200000 0.200000 0.200000 0.200000\n0 0.500000 0.500000 1.000000 1.000000\n"
    assert yolo_text(cxcywh[:1]) == "0.200000 0.200000 0.200000 0.200000\n"  # an ignore sidecar's line
    assert yolo_text(np.zeros((0, 4)), []) == "" and yolo_text(np.zeros((0, 4))) == ""
    with pytest.raises(ValueError):
        yolo_text(cxcywh, [3])  # a class for every box


def test_yolo_line_round_trip() -> None:
    rng = np.random.default_rng(0)
    width, height = 1920, 1080
    corners = np.sort(rng.uniform(0, 1, (20, 2, 2)), axis=1) * [width, height]  # (top left, bottom right)
    xyxy = corners.reshape(20, 4)
    classes = rng.integers(0, 5, 20)
    ids, cxcywh = parse_yolo(yolo_text(xyxy_to_yolo(xyxy, width, height), classes))
    assert ids.dtype == np.int64 and ids.tolist() == classes.tolist()
    assert yolo_to_xyxy(cxcywh, width, height) == pytest.approx(xyxy, abs=1e-6 * width)
    no_class, regions = parse_yolo(yolo_text(xyxy_to_yolo(xyxy, width, height)), with_class=False)
    assert no_class.tolist() == [-1] * 20 and regions == pytest.approx(cxcywh)


def test_parse_skips_blank_lines_and_refuses_short_ones() -> None:
    ids, cxcywh = parse_yolo("\n1 0.5 0.5 0.25 0.25\n  \n")
    assert ids.tolist() == [1] and cxcywh.tolist() == [[0.5, 0.5, 0.25, 0.25]]
    ids, cxcywh = parse_yolo("")
    assert ids.shape == (0,) and cxcywh.shape == (0, 4)
    with pytest.raises(ValueError):
        parse_yolo("1 0.5 0.5 0.25\n")


def test_a_box_is_its_tuple() -> None:
    box = Box(3, 5.0, 10.0, 25.0, 20.0)
    assert box == (3, 5.0, 10.0, 25.0, 20.0) and box.label == 3 and box[1:] == (5.0, 10.0, 25.0, 20.0)
    assert Box("tank_car", 0, 0, 1, 1)._replace(label="ignore").label == "ignore"
