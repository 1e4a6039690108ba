"""Evaluation returns known values: perfect predictions, a hand-computed AP, ignore regions, views."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from toy_data import make_dataset
from toy_models import BLUE_CLASS, RED_CLASS

from railvision import evaluate as ev
from railvision.cli import main
from railvision.detections import Detections
from railvision.taxonomy import CLASS_NAMES


def fake_model(monkeypatch: pytest.MonkeyPatch, boxes_per_image: list[list[tuple]]) -> None:
    """Make ``evaluate`` see these detections, (class, conf, x1, y1, x2, y2) per image in split order."""

    def predict(model, images, **kwargs):
        for _, boxes in zip(images, boxes_per_image, strict=True):
            rows = np.array(boxes, dtype=np.float32).reshape(-1, 6)
            yield Detections(rows[:, 2:], rows[:, 1], rows[:, 0].astype(np.int64), (160, 128))

    monkeypatch.setattr(ev, "predict", predict)
    monkeypatch.setattr(ev, "model_conf", lambda model: 0.25)


def truth_as_detections(data_yaml: Path) -> list[list[tuple]]:
    truths, _ = ev.load_truth(data_yaml, "val")
    return [[(c, 0.9, *b) for b, c in zip(t.xyxy, t.class_id, strict=True)] for t in truths]


def test_oracle_model_through_the_engine_scores_perfectly(oracle_model: Path, tmp_path: Path) -> None:
    data_yaml, _ = make_dataset(tmp_path / "ds", {"val": 4}, size=(320, 256))
    out = tmp_path / "eval"
    assert main(["eval", "--model", str(oracle_model), "--data", str(data_yaml), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["overall"]["mAP50"] == 1.0
    assert metrics["overall"]["precision"] == metrics["overall"]["recall"] == 1.0
    assert metrics["overall"]["count_error"] == 0.0
    assert metrics["per_class"]["tank_car"]["instances"] == 4
    assert metrics["per_class"]["diesel_locomotive"]["AP50"] is None  # no truth: not averaged in
    assert (out / "pr_curves.png").stat().st_size > 0 and (out / "confusion_matrix.png").stat().st_size > 0


def test_perfect_predictions_give_map_one(monkeypatch, tmp_path: Path) -> None:
    data_yaml, _ = make_dataset(tmp_path, {"val": 3})
    fake_model(monkeypatch, truth_as_detections(data_yaml))
    result = ev.evaluate("model.onnx", data_yaml)
    summary = result.overall.summary()
    assert summary["mAP50"] == summary["mAP50-95"] == 1.0
    assert summary["precision"] == summary["recall"] == 1.0


def test_known_ap_with_a_miss_and_a_false_positive(monkeypatch, tmp_path: Path) -> None:
    """Two tank cars; the top-ranked detection is right, the second is wrong, one car is missed.

    Precision is 1 up to recall 0.5 and nothing reaches beyond it, so COCO's 101-point AP50 is 51/101.
    """
    data_yaml, truth = make_dataset(tmp_path, {"val": 2}, classes=(RED_CLASS,))
    (first, *_), _ = truth.values()
    fake_model(monkeypatch, [[(RED_CLASS, 0.9, *first[1:])], [(RED_CLASS, 0.8, 0, 0, 3, 3)]])
    result = ev.evaluate("model.onnx", data_yaml, conf=0.5)
    assert result.overall.ap50[RED_CLASS] == pytest.approx(51 / 101)
    assert result.overall.precision[RED_CLASS] == 0.5 and result.overall.recall[RED_CLASS] == 0.5
    background = len(CLASS_NAMES)
    assert result.overall.confusion[RED_CLASS, RED_CLASS] == 1
    assert result.overall.confusion[RED_CLASS, background] == 1  # false positive
    assert result.overall.confusion[background, RED_CLASS] == 1  # missed
    assert result.overall.count_error[RED_CLASS] == 0.0  # one found per image, one true per image
    # at a confidence above the false positive it disappears from P/R and counts
    strict = ev.evaluate("model.onnx", data_yaml, conf=0.85)
    assert strict.overall.precision[RED_CLASS] == 1.0 and strict.overall.count_error[RED_CLASS] == 0.5


def test_conf_sweep_finds_the_threshold_that_counts_best(monkeypatch, tmp_path: Path) -> None:
    """The same two images: below 0.8 each has one box for one car (F1 0.5: one is misplaced); between
    0.8 and 0.9 the second image has none; above 0.9 neither has."""
    data_yaml, truth = make_dataset(tmp_path, {"val": 2}, classes=(RED_CLASS,))
    (first, *_), _ = truth.values()
    fake_model(monkeypatch, [[(RED_CLASS, 0.9, *first[1:])], [(RED_CLASS, 0.8, 0, 0, 3, 3)]])
    sweep = ev.evaluate("model.onnx", data_yaml).sweep
    at = {round(float(c), 2): (e, f) for c, e, f in zip(sweep.conf, sweep.count_error, sweep.f1, strict=True)}
    nc = len(CLASS_NAMES)
    assert at[0.5] == (0.0, 0.5)
    assert at[0.85] == (pytest.approx(0.5 / nc), pytest.approx(2 / 3))
    assert at[0.95] == (pytest.approx(1 / nc), 0.0)
    assert sweep.best() == 0.41  # the middle of the zero-error plateau 0.01 ... 0.80


def test_a_flat_counting_curve_does_not_pick_a_threshold_that_finds_nothing() -> None:
    """With few vehicles per class and image, an almost empty answer counts nearly as well as a good one;
    errors within the tolerance of the lowest are tied and the better F1 wins."""
    sweep = ev.ConfSweep(np.array([0.2, 0.5, 0.9]), np.array([0.33, 0.29, 0.28]), np.array([0.30, 0.31, 0.02]))
    assert sweep.best() == 0.5
    assert sweep.best(tolerance=0.0) == 0.9


def test_set_default_conf_is_what_the_engine_then_uses(oracle_model: Path, tmp_path: Path, capsys) -> None:
    import shutil

    from railvision.engine import Detector
    from railvision.options import DEFAULT_CONF

    model = tmp_path / "model.onnx"
    shutil.copy(oracle_model, model)
    assert Detector(model).conf == DEFAULT_CONF
    data_yaml, _ = make_dataset(tmp_path / "ds", {"val": 2}, size=(320, 256))
    args = ["eval", "--model", str(model), "--data", str(data_yaml), "--out", str(tmp_path / "eval")]
    assert main([*args, "--set-default-conf"]) == 0
    assert "default conf set to 0.48" in capsys.readouterr().out  # the oracle counts right at every threshold
    assert Detector(model).conf == 0.48 and Detector(model, conf=0.1).conf == 0.1
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["conf_sweep"]["best_count_conf"] == 0.48 and (tmp_path / "eval" / "conf_sweep.png").is_file()
    assert main([*args, "--out", str(tmp_path / "eval2")]) == 0  # evaluated at the model's own threshold now
    assert json.loads((tmp_path / "eval2" / "metrics.json").read_text())["conf"] == 0.48


def test_wrong_class_lands_off_the_diagonal(monkeypatch, tmp_path: Path) -> None:
    data_yaml, truth = make_dataset(tmp_path, {"val": 1}, classes=(RED_CLASS,))
    (box,) = next(iter(truth.values()))
    fake_model(monkeypatch, [[(BLUE_CLASS, 0.9, *box[1:])]])
    result = ev.evaluate("model.onnx", data_yaml)
    assert result.overall.confusion[BLUE_CLASS, RED_CLASS] == 1
    assert result.overall.recall[RED_CLASS] == 0.0 and result.overall.ap50[RED_CLASS] == 0.0


@pytest.mark.parametrize("how", ["sidecar", "class"])
def test_ignore_regions_neither_reward_nor_punish(monkeypatch, tmp_path: Path, how: str) -> None:
    data_yaml, truth = make_dataset(tmp_path, {"val": 1}, classes=(RED_CLASS, BLUE_CLASS))
    image = next(iter(truth))
    label = tmp_path / "labels" / "val" / f"{image.stem}.txt"
    red_line, blue_line = label.read_text().splitlines()
    if how == "sidecar":  # the blue box becomes an ignore region written by the importers
        (tmp_path / "ignore" / "val").mkdir(parents=True)
        (tmp_path / "ignore" / "val" / f"{image.stem}.txt").write_text(blue_line.split(" ", 1)[1] + "\n")
        label.write_text(red_line + "\n")
    else:  # a dataset class literally named "ignore"
        data_yaml.write_text(data_yaml.read_text().replace("closed_wagon", "ignore"))
    red, blue = truth[image]
    # a confident detection on the ignore region outranks the true one
    fake_model(monkeypatch, [[(BLUE_CLASS, 0.95, *blue[1:]), (RED_CLASS, 0.9, *red[1:]), (RED_CLASS, 0.95, *blue[1:])]])
    result = ev.evaluate("model.onnx", data_yaml)
    red_id = result.names.index("tank_car")
    assert result.overall.ap50[red_id] == 1.0
    assert result.overall.precision[red_id] == 1.0
    assert result.overall.confusion[:, -1].sum() == 0  # no false positives at all


def test_metrics_per_view(monkeypatch, tmp_path: Path) -> None:
    data_yaml, truth = make_dataset(tmp_path, {"val": 4}, classes=(RED_CLASS,))
    views = "image,view\n" + "".join(f"images/val/val_{i}.png,{'ground' if i < 2 else 'overhead'}\n" for i in range(4))
    (tmp_path / "views.csv").write_text(views)
    data_yaml.write_text(data_yaml.read_text() + "view_file: views.csv\n")
    boxes = [b for bs in truth.values() for b in bs]
    fake_model(monkeypatch, [[(RED_CLASS, 0.9, *b[1:])] if i < 2 else [] for i, b in enumerate(boxes)])
    result = ev.evaluate("model.onnx", data_yaml)
    assert result.views["ground"].summary()["mAP50"] == 1.0
    assert result.views["overhead"].summary()["mAP50"] == 0.0
    assert result.views["overhead"].summary()["images"] == 2
    assert "view ground" in ev.format_table(result)


def test_class_agnostic_ap_asks_only_where_the_vehicles_are(monkeypatch, tmp_path: Path) -> None:
    """Both cars boxed with the wrong class: per-class AP50 0, agnostic AP50 1. A second, lower-scored
    class on the very same box (an end-to-end head's runner-up) is the same box, not a false positive."""
    data_yaml, truth = make_dataset(tmp_path, {"val": 2}, classes=(RED_CLASS,))
    boxes = [b for bs in truth.values() for b in bs]
    fake_model(monkeypatch, [[(BLUE_CLASS, 0.9, *b[1:]), (0, 0.5, *b[1:])] for b in boxes])
    summary = ev.evaluate("model.onnx", data_yaml).overall.summary()
    assert summary["mAP50"] == 0.0 and summary["agnostic_AP50"] == 1.0
    assert summary["total_count_error"] == 1.0  # two boxes per image for one car, whatever their class


def test_agnostic_ap_by_hand(monkeypatch, tmp_path: Path) -> None:
    """As test_known_ap_with_a_miss_and_a_false_positive, but the hit says the wrong class: agnostic AP50 is
    still 51/101, the class-aware one 0; total counts are right at 0.5 and one short in one image at 0.85."""
    data_yaml, truth = make_dataset(tmp_path, {"val": 2}, classes=(RED_CLASS,))
    (first, *_), _ = truth.values()
    fake_model(monkeypatch, [[(BLUE_CLASS, 0.9, *first[1:])], [(RED_CLASS, 0.8, 0, 0, 3, 3)]])
    loose = ev.evaluate("model.onnx", data_yaml, conf=0.5).overall
    assert loose.agnostic_ap50 == pytest.approx(51 / 101) and loose.ap50[RED_CLASS] == 0.0
    assert loose.total_count_error == 0.0 and loose.count_error[RED_CLASS] == 0.5
    assert ev.evaluate("model.onnx", data_yaml, conf=0.85).overall.total_count_error == 0.5


def test_ignore_uses_intersection_over_the_detection() -> None:
    """A detection 60% inside an ignore box that matches no target is dropped; one 40% inside is a false
    positive; a detection matching a target is a true positive even inside an ignore box."""
    nc = len(CLASS_NAMES)
    truth = ev.Truth(
        Path("x.png"),
        np.array([[100, 0, 140, 40]], np.float32),
        np.array([RED_CLASS]),
        np.array([[0, 0, 60, 100], [90, 0, 150, 50]], np.float32),
        (200, 100),
        ev.ALL,
    )

    def det(*boxes: tuple[float, ...]) -> Detections:
        xyxy = np.array(boxes, np.float32)
        return Detections(xyxy, np.full(len(xyxy), 0.9), np.full(len(xyxy), RED_CLASS), (200, 100))

    inside = det((36, 0, 76, 10))  # 24 of 40 px wide inside the first ignore box: IoA 0.6
    outside = det((44, 0, 84, 10))  # 16 of 40: IoA 0.4
    target = det((100, 0, 140, 40))
    assert ev.at_conf([truth], [inside], nc, 0.5).confusion[:, nc].sum() == 0
    assert ev.at_conf([truth], [outside], nc, 0.5).confusion[RED_CLASS, nc] == 1
    assert ev.at_conf([truth], [target], nc, 0.5).confusion[RED_CLASS, RED_CLASS] == 1


def test_false_alarms_on_photos_without_vehicles(monkeypatch, tmp_path: Path) -> None:
    data_yaml, truth = make_dataset(tmp_path / "ds", {"val": 1}, classes=(RED_CLASS,))
    negatives = tmp_path / "negatives"
    negatives.mkdir()
    for name in ("a.png", "b.png", "c.png", "d.png"):
        (negatives / name).write_bytes((tmp_path / "ds" / "images" / "val" / "val_0.png").read_bytes())
    (box,) = next(iter(truth.values()))
    fake_model(
        monkeypatch,
        [[(RED_CLASS, 0.9, *box[1:])], [(RED_CLASS, 0.6, 0, 0, 9, 9), (0, 0.3, 5, 5, 20, 20)], [], [], []],
    )
    result = ev.evaluate("model.onnx", data_yaml, negatives=negatives)
    alarms = result.negatives
    assert (alarms.images, alarms.per_image, alarms.images_hit) == (4, 0.5, 1)  # conf 0.25: 2 boxes / 4 photos
    assert alarms.sweep[list(ev.SWEEP_CONFS).index(0.5)] == 0.25
    assert result.overall.summary()["mAP50"] == 1.0  # the negatives never reach the dataset's metrics
    assert "false alarms on 4 photos" in ev.format_table(result)
    with pytest.raises(ValueError, match="no images"):
        ev.evaluate("model.onnx", data_yaml, negatives=tmp_path / "ds" / "labels")


def test_coverage_is_the_best_confidence_of_a_box_holding_the_target() -> None:
    """A whole-train box covers each car it holds; a box holding too little of a car, or of another class,
    does not; an image without detections gives zeros, one without targets nothing."""
    truth = ev.Truth(
        Path("a.jpg"),
        np.array([[0, 0, 10, 10], [10, 0, 20, 10], [50, 50, 60, 60]], dtype=np.float32),
        np.zeros(3, dtype=np.int64),
        np.zeros((0, 4), dtype=np.float32),
        (100, 100),
        ev.ALL,
    )
    names = ("car", "train")
    det = Detections(
        np.array([[0, 0, 20, 10], [12, 0, 30, 10], [50, 50, 60, 60]], dtype=np.float32),
        np.array([0.7, 0.9, 0.95]),
        np.array([1, 1, 0]),
        (100, 100),
        names,
    )
    none = Detections(np.zeros((0, 4)), np.zeros(0), np.zeros(0), (100, 100), names)
    empty = ev.Truth(Path("b.jpg"), np.zeros((0, 4)), np.zeros(0, dtype=np.int64), np.zeros((0, 4)), (100, 100), ev.ALL)
    # car 2: the train box holds all of it (0.7); the 0.9 box holds 80% of it, over min_ioa 0.6
    got = ev.coverage([truth, truth, empty], [det, none, det], "train", min_ioa=0.6)
    np.testing.assert_allclose(got, [0.7, 0.9, 0.0, 0.0, 0.0, 0.0])
    # stricter: the 0.9 box no longer counts
    np.testing.assert_allclose(ev.coverage([truth], [det], "train", min_ioa=0.9), [0.7, 0.7, 0.0])
