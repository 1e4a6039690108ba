"""Engine behaviour on exact oracle models: heads, letterbox, batching, tiling, devices."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from fresh_python import TORCH_ABSENT, run_cli
from toy_models import BLUE_CLASS, RED_CLASS

from railvision import Detections, Detector, DeviceUnavailableError, ModelError
from railvision.engine import letterbox, unletterbox
from railvision.tiling import merge_tiles, plan_tiles

SIZES = [(1000, 480), (480, 1000), (640, 640), (300, 200), (2500, 1400)]


def expected_box(box: tuple[int, int, int, int]) -> np.ndarray:
    """The pixel extent of a cv2 rectangle drawn with inclusive corners."""
    return np.array([box[0], box[1], box[2] + 1, box[3] + 1], dtype=np.float32)


@pytest.mark.parametrize("head", ["end2end", "classic"])
@pytest.mark.parametrize("size", SIZES)
def test_boxes_come_back_in_original_pixels(head, size, oracle_model, oracle_classic, make_scene):
    detector = Detector(oracle_model if head == "end2end" else oracle_classic)
    w, h = size
    red = (w // 10, h // 5, w // 10 + w // 4, h // 5 + h // 3)
    blue = (w // 2, h // 2, w // 2 + w // 5, h // 2 + h // 4)
    result = detector.detect(make_scene(w, h, red=red, blue=blue))
    assert isinstance(result, Detections)
    assert detector.head == head
    assert sorted(result.class_id.tolist()) == [RED_CLASS, BLUE_CLASS]
    scale = max(w, h) / 640  # one model-input pixel in original pixels
    for cls, box in ((RED_CLASS, red), (BLUE_CLASS, blue)):
        found = result.xyxy[result.class_id == cls][0]
        np.testing.assert_allclose(found, expected_box(box), atol=1.5 * max(scale, 1))
    assert result.image_size == (w, h)
    assert result.counts()["tank_car"] == 1 and result.counts()["closed_wagon"] == 1


def test_classic_head_nms_removes_near_duplicates(oracle_classic, make_scene):
    # The classic oracle emits each object twice (shifted 2 px, lower score): NMS must keep one.
    result = Detector(oracle_classic).detect(make_scene(red=(10, 10, 200, 100)))
    assert len(result) == 1 and result.confidence[0] == pytest.approx(1.0)


@pytest.mark.parametrize("fixture", ["oracle_model", "oracle_classic"])
def test_batch_equals_one_by_one(fixture, request, make_scene):
    detector = Detector(request.getfixturevalue(fixture))
    images = [
        make_scene(900, 500, red=(10, 20, 200, 120)),
        make_scene(400, 700, blue=(50, 300, 300, 600)),
        make_scene(640, 640),
        make_scene(1200, 300, red=(100, 10, 300, 200), blue=(700, 50, 1100, 250)),
    ]
    batched = detector.detect(images)
    for image, together in zip(images, batched, strict=True):
        alone = detector.detect(image)
        np.testing.assert_array_equal(alone.xyxy, together.xyxy)
        np.testing.assert_array_equal(alone.class_id, together.class_id)
        np.testing.assert_array_equal(alone.confidence, together.confidence)


def test_batches_are_real_onnx_batches(oracle_model, make_scene, monkeypatch):
    detector = Detector(oracle_model, batch=3)
    shapes = []
    run = detector.session.run
    monkeypatch.setattr(
        detector.session, "run", lambda out, feed: shapes.append(feed["images"].shape) or run(out, feed)
    )
    detector.detect([make_scene(300, 200)] * 5)
    assert [s[0] for s in shapes] == [3, 2]


def test_letterbox_roundtrip_matches_ultralytics_geometry():
    image = np.zeros((480, 1000, 3), np.uint8)
    boxed, box = letterbox(image, (640, 640))
    assert boxed.shape == (640, 640, 3)
    assert (box.pad_x, box.pad_y) == (0, 166)  # 480 * 0.64 = 307.2 -> 307 rows, 333 padding split 166 / 167
    back = unletterbox(np.array([[0, 166, 640, 473]], np.float32), box, (1000, 480))
    np.testing.assert_allclose(back, [[0, 0, 1000, 480]], atol=0.01)


def test_filters_and_thresholds(oracle_model, make_scene):
    detector = Detector(oracle_model)
    image = make_scene(red=(10, 10, 100, 100), blue=(300, 10, 400, 100))
    assert detector.detect(image, classes="tank_car").names == ["tank_car"]
    assert detector.detect(image, classes=[3]).names == ["closed_wagon"]
    assert len(detector.detect(image, max_det=1)) == 1
    assert len(detector.detect(image, conf=1.0)) == 0  # scores are exactly 1.0; the test is "greater than"
    with pytest.raises(ValueError, match="conf"):
        detector.detect(image, conf=1.5)
    with pytest.raises(KeyError, match="unknown class"):
        detector.detect(image, classes="boxcar")


def test_plan_tiles_cover_the_image_with_overlap():
    tiles = plan_tiles(2000, 900, 640, 0.2)
    covered = np.zeros((900, 2000), bool)
    for x1, y1, x2, y2 in tiles:
        assert x2 - x1 == 640 and y2 - y1 == 640
        covered[y1:y2, x1:x2] = True
    assert covered.all()
    assert plan_tiles(300, 200, 640) == [(0, 0, 300, 200)]


def test_seam_object_is_counted_once_with_full_extent(oracle_model, make_scene):
    detector = Detector(oracle_model)
    tiles = plan_tiles(2400, 1200, 640)
    seam = tiles[0][2]  # right edge of the first tile: an object across it is cut in that tile
    red = (seam - 60, 300, seam + 50, 340)  # 111 x 41 px: tiny after a 3.75x full-frame shrink
    result = detector.detect(make_scene(2400, 1200, red=red), tile="on")
    assert result.meta["tiles"] == len(tiles)
    assert result.names == ["tank_car"]
    np.testing.assert_allclose(result.xyxy[0], expected_box(red), atol=1.0)


def test_merge_joins_cut_pieces_but_not_neighbours_in_one_tile():
    xyxy = np.array([[0, 0, 100, 50], [90, 0, 150, 50], [0, 0, 120, 50]], np.float32)
    # box 0 and 1 come from tile 0 (two cars in a line), box 2 from tile 1 and is cut by its seam
    kept, _, _ = merge_tiles(
        xyxy, np.array([0.9, 0.8, 0.7]), np.zeros(3, np.int64), np.array([0, 0, 1]), np.array([False, False, True])
    )
    assert len(kept) == 2  # the neighbours stay apart; the cut piece joins the first car
    np.testing.assert_allclose(kept[0], [0, 0, 120, 50])


def test_auto_tiles_only_when_objects_are_small(oracle_model, make_scene):
    detector = Detector(oracle_model)
    small = detector.detect(make_scene(3000, 1600, red=(1000, 800, 1080, 830)), tile="auto")
    assert small.meta["tiles"] > 0 and len(small) == 1
    large = detector.detect(make_scene(3000, 1600, red=(200, 200, 2000, 1200)), tile="auto")
    assert large.meta["tiles"] == 0 and len(large) == 1
    photo = detector.detect(make_scene(800, 600, red=(10, 10, 30, 20)), tile="auto")
    assert photo.meta["tiles"] == 0  # not shrunk enough to need tiles


def test_cuda_request_without_cuda_is_an_error(oracle_model):
    with pytest.raises(DeviceUnavailableError, match="CUDA"):
        Detector(oracle_model, device="cuda")
    assert Detector(oracle_model, device="auto").provider == "CPUExecutionProvider"
    with pytest.raises(ValueError, match="device"):
        Detector(oracle_model, device="tpu")


def test_bad_model_files(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        Detector(tmp_path / "missing.onnx")
    with pytest.raises(ModelError, match="by name: default, int8, synth"):
        Detector("fp64")  # neither a file nor a shipped model's name
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load"):
        Detector(garbage)


def test_metadata_read_from_model(oracle_model):
    detector = Detector(oracle_model)
    assert detector.class_names[1] == "tank_car" and len(detector.class_names) == 5
    assert detector.imgsz == (640, 640) and detector.stride == 32
    assert len(detector.model_hash) == 64


def test_inference_path_never_imports_torch(oracle_model, tmp_path, make_scene):
    import cv2

    cv2.imwrite(str(tmp_path / "a.jpg"), make_scene(red=(10, 10, 100, 100)))
    argv = ["detect", str(tmp_path / "a.jpg"), "--model", str(oracle_model), "--tile", "on"]
    done = run_cli(argv, TORCH_ABSENT)
    assert done.returncode == 0, done.stderr
    assert "tank_car" in done.stdout


def test_detect_cli_reports_bad_files_and_goes_on(oracle_model, tmp_path, make_scene):
    import json

    import cv2

    good = tmp_path / "photos" / "good.png"
    good.parent.mkdir()
    cv2.imwrite(str(good), make_scene(red=(10, 10, 100, 100)))
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    out = tmp_path / "out.json"
    cmd = [sys.executable, "-m", "railvision", "detect", str(tmp_path / "photos"), "--model", str(oracle_model)]
    done = subprocess.run(
        [*cmd, "--json", str(out), "--save-annotated", str(tmp_path / "ann")], capture_output=True, text=True
    )
    assert done.returncode == 1  # one file failed
    assert "broken.jpg  error:" in done.stdout and "1 image(s) processed, 1 failed" in done.stdout
    assert "conf 0.25 (default)" in done.stdout  # the oracle carries no threshold of its own
    report = json.loads(out.read_text())["images"]
    assert [r.get("counts", {}).get("tank_car") for r in report] == [None, 1]
    assert report[0]["error_kind"] == "corrupt_image"
    assert (tmp_path / "ann" / "good.jpg").is_file()
    missing = subprocess.run(
        [*cmd[:4], str(tmp_path / "x.jpg"), "--model", str(tmp_path / "nope.onnx")], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "model not found" in missing.stderr


def test_fixed_batch_model_takes_partial_batches(tmp_path, make_scene):
    from toy_models import build_oracle

    detector = Detector(build_oracle(tmp_path / "b4.onnx", "end2end", batch=4))
    assert detector.fixed_batch and detector.max_batch == 4
    images = [make_scene(300, 200, red=(10, 10, 50, 50))] * 6  # one full batch of 4, then 2 padded to 4
    assert [len(r) for r in detector.detect(images)] == [1] * 6
