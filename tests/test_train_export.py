"""Training makes weights; export makes ONNX files the engine loads and that match PyTorch (slow: trains)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from railvision.cli import main
from railvision.taxonomy import CLASS_NAMES, TAXONOMY_VERSION

pytestmark = pytest.mark.slow
pytest.importorskip("ultralytics", reason="training and export need the 'train' extra")

# An untrained model scores boxes almost alike (~0.003) and its classes within float noise of each other.
# So: compare its 50 best boxes, with NMS off (IoU 1.0) for the classic head (equal scores would make torch
# and numpy NMS keep different boxes), pair boxes by overlap and allow a few near-tie class flips.
TOP_K = 50


def test_training_writes_weights(tiny_weights: Path) -> None:
    assert tiny_weights.is_file() and tiny_weights.stat().st_size > 1_000_000
    assert (tiny_weights.parent.parent / "results.csv").is_file()


def test_training_uses_the_measured_optimizer_and_learning_rate(tiny_weights: Path) -> None:
    """Ultralytics' "auto" would ignore lr0 and pick its own; the few-shot defaults must reach the trainer."""
    import yaml

    from railvision.train import TrainConfig

    args = yaml.safe_load((tiny_weights.parent.parent / "args.yaml").read_text())
    assert (args["optimizer"], args["lr0"]) == (TrainConfig.optimizer, TrainConfig.lr0) == ("AdamW", 0.0005)


def test_hours_budget_cuts_the_run_short(tiny_dataset: Path, tmp_path: Path) -> None:
    from conftest import tiny_train_config

    from railvision.train import train

    cfg = tiny_train_config(tiny_dataset, tmp_path, "budget", epochs=50, hours=2 / 3600)
    result = train(cfg)
    epochs_run = len((result.save_dir / "results.csv").read_text().splitlines()) - 1
    assert result.last.is_file() and 1 <= epochs_run < 50
    assert result.seconds < 120


def test_repeat_rare_trains_on_the_repeated_list(tiny_dataset: Path, tmp_path: Path, capsys) -> None:
    """--repeat-rare reaches Ultralytics as a list of the photos with the rare ones repeated; a share outside
    [0, 1] is refused before anything runs."""
    import yaml
    from conftest import tiny_train_config

    from railvision.data import load_dataset
    from railvision.train import train

    cfg = tiny_train_config(tiny_dataset, tmp_path, "rep", epochs=1, repeat_rare=1.0, val=False)
    result = train(cfg)
    trained_on = yaml.safe_load((result.save_dir / "args.yaml").read_text())["data"]
    assert Path(trained_on) == result.data == (tmp_path / "rep-repeated" / "data.yaml").resolve()
    assert len(load_dataset(result.data).splits["train"]) >= len(load_dataset(tiny_dataset).splits["train"])
    args = ["train", "--data", str(tiny_dataset), "--repeat-rare", "1.5", "--project", str(tmp_path)]
    assert main(args) == 2
    assert "--repeat-rare is a share" in capsys.readouterr().err


def test_cpu_training_uses_every_core(monkeypatch) -> None:
    import os
    from types import SimpleNamespace

    import torch

    from railvision.train import use_all_cores

    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # what Ultralytics leaves on a 2-core machine (cpu_count - 1)
    try:
        use_all_cores(SimpleNamespace(device=torch.device("cpu")))
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_cpu_training_gets_its_loader_workers_back() -> None:
    """Ultralytics sets workers=0 on CPU after reading the arguments; the callback runs before the loaders."""
    from types import SimpleNamespace

    from railvision.train import loader_workers

    trainer = SimpleNamespace(args=SimpleNamespace(workers=0))
    loader_workers(2)(trainer)
    assert trainer.args.workers == 2


def test_stop_after_ends_the_run_inside_its_schedule() -> None:
    from types import SimpleNamespace

    from railvision.train import stop_after

    trainer = SimpleNamespace(epoch=0, stop=False)
    stop_after(2)(trainer)
    assert not trainer.stop  # after epoch 1 of the schedule
    trainer.epoch = 1
    stop_after(2)(trainer)
    assert trainer.stop  # after epoch 2: Ultralytics breaks out of its loop, last.pt is this epoch's


def test_domain_augmentations_build_and_serialise() -> None:
    import albumentations as A

    from railvision.train import AUGMENTATIONS, domain_augmentations

    for kind in AUGMENTATIONS:
        for transform in domain_augmentations(kind):
            A.from_dict(A.to_dict(transform))  # what Ultralytics does to store them in the checkpoint
    names = {type(t).__name__ for t in domain_augmentations("overhead")}
    assert {"RandomRotate90", "Downscale"} <= names
    assert "RandomRotate90" not in {type(t).__name__ for t in domain_augmentations("mixed")}


@pytest.mark.parametrize("head", ["end2end", "classic"])
def test_export_loads_in_the_engine_and_matches_pytorch(tiny_weights: Path, tmp_path: Path, head: str) -> None:
    from ultralytics import YOLO

    from railvision.agreement import compare
    from railvision.engine import Detector
    from railvision.export import sample_images
    from railvision.ultralytics_env import ultralytics_predict

    weights = tmp_path / "w" / tiny_weights.name
    weights.parent.mkdir()
    shutil.copy(tiny_weights, weights)
    beside = weights.with_suffix(".onnx")
    beside.write_bytes(b"an earlier export the user keeps")
    out = tmp_path / f"tiny-{head}.onnx"
    assert main(["export", "--weights", str(weights), "--out", str(out), "--head", head, "--device", "cpu"]) == 0
    assert beside.read_bytes() == b"an earlier export the user keeps"  # --out elsewhere leaves it alone
    detector = Detector(out, device="cpu", iou=1.0)
    assert detector.head == head
    assert detector.class_names == CLASS_NAMES
    assert detector.imgsz == (64, 64)
    assert detector.metadata["railvision_taxonomy_version"] == TAXONOMY_VERSION
    assert detector.metadata["railvision_source"] == tiny_weights.name
    assert len(detector.metadata["railvision_data_hash"]) == 64
    assert detector.metadata["railvision_date"][:2] == "20"

    images = sample_images(None, 4, size=96)
    reference = ultralytics_predict(
        YOLO(str(tiny_weights)), images, imgsz=64, conf=0.0, iou=1.0, head=head, device="cpu"
    )
    compared = flips = 0
    for ref, test in zip(reference, detector.detect(images, conf=0.0), strict=True):
        top = ref[np.argsort(-ref.confidence, kind="stable")[:TOP_K]]
        result = compare(top, test, conf=0.0, min_iou=0.99, margin=0.0, same_class=False)
        assert result.missing == 0, result.summary()
        assert result.min_iou >= 0.99 and result.max_conf_delta <= 1e-3, result.summary()
        compared += result.compared
        flips += result.class_flips
    assert compared >= TOP_K * len(images) // 2
    assert flips <= 0.2 * compared


def test_int8_is_removed_when_it_cannot_be_shown_accurate(
    tiny_weights: Path, tmp_path: Path, tiny_dataset: Path
) -> None:
    """The barely trained model finds nothing at the INT8 check's confidence, so nothing can vouch for the copy."""
    out = tmp_path / "tiny.onnx"
    calib = tiny_dataset.parent / "images" / "val"
    args = ["export", "--weights", str(tiny_weights), "--out", str(out), "--int8", "--calib", str(calib)]
    assert main([*args, "--device", "cpu"]) == 1
    assert out.is_file() and not (tmp_path / "tiny-int8.onnx").exists()


def test_quantize_keeps_the_head_outputs_in_float_and_the_metadata(
    tiny_weights: Path, tmp_path: Path, tiny_dataset: Path, monkeypatch, capsys
) -> None:
    import onnx

    import railvision.engine as engine
    from railvision.quantize import calibration_images, head_float_nodes, quantize

    fp32 = tmp_path / "railvision-n.onnx"
    assert main(["export", "--weights", str(tiny_weights), "--out", str(fp32), "--device", "cpu", "--dynamic"]) == 0
    calib = calibration_images([tiny_dataset.parent / "images" / "val", tiny_dataset.parent / "images" / "train"], 6)
    assert len(calib) == 6 and len({p.parent for p in calib}) == 2  # drawn from both folders
    result = quantize(fp32, calib, check=False)
    assert result.path == tmp_path / "railvision-n-int8.onnx" and result.calibrated_on == 6
    graph = onnx.load(str(result.path)).graph
    assert sum(n.op_type == "QuantizeLinear" for n in graph.node) > 50  # the trunk runs in INT8
    kept = head_float_nodes(onnx.load(str(fp32)))
    assert sum("Conv" in name for name in kept) == 6  # box and class logits of three scales stay FP32
    made = {o: n for n in graph.node for o in n.output}
    for conv in (n for n in graph.node if n.name in kept and n.op_type == "Conv"):  # plain FP32 weights
        assert conv.input[1] not in made or made[conv.input[1]].op_type != "DequantizeLinear"
    monkeypatch.setattr(engine, "MODELS_DIR", tmp_path)
    detector = engine.Detector("int8")  # the short name finds the shipped copy
    assert detector.model_path == result.path and detector.metadata["railvision_precision"] == "int8"
    assert detector.metadata["railvision_head"] == "end2end"
    assert main(["quantize", str(fp32), "--calib", str(tiny_dataset.parent / "images" / "val"), "--images", "4"]) == 1
    assert "INT8 copy removed" in capsys.readouterr().out  # the barely trained model vouches for nothing


def test_eval_runs_on_onnx_and_pt(tiny_weights: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    onnx = tmp_path / "tiny.onnx"
    assert main(["export", "--weights", str(tiny_weights), "--out", str(onnx), "--device", "cpu"]) == 0
    for model in (onnx, tiny_weights):
        out = tmp_path / model.suffix[1:]
        assert main(["eval", "--model", str(model), "--data", str(tiny_dataset), "--out", str(out)]) == 0
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["overall"]["images"] == 4 and metrics["overall"]["mAP50"] is not None


def test_synthetic_flag_says_when_unavailable(tiny_dataset: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    import railvision.train as train_module

    monkeypatch.setattr(train_module, "synthetic_available", lambda: False)
    args = ["train", "--data", str(tiny_dataset), "--synthetic", "4", "--project", str(tmp_path), "--epochs", "1"]
    assert main(args) == 1
    assert "not available" in capsys.readouterr().err


def test_merged_dataset_finds_both_sets_from_relative_yamls(tmp_path: Path, monkeypatch) -> None:
    """--synthetic merges the user's set with the rendered one; relative data.yaml paths (with and without a
    ``path`` key) resolve as they do for each set alone, and validation stays on the user's photos."""
    from toy_data import make_dataset

    from railvision.data import load_dataset
    from railvision.train import merge_datasets

    make_dataset(tmp_path / "real", {"train": 2, "val": 1})
    synth_yaml, _ = make_dataset(tmp_path / "synth", {"train": 3})
    synth_yaml.write_text("path: .\n" + synth_yaml.read_text())
    monkeypatch.chdir(tmp_path)
    merged = load_dataset(merge_datasets(Path("real/data.yaml"), Path("synth/data.yaml"), Path("merged")))
    alone = [load_dataset(f"{name}/data.yaml").splits for name in ("real", "synth")]
    assert sorted(merged.splits["train"]) == sorted(alone[0]["train"] + alone[1]["train"])
    assert merged.splits["val"] == alone[0]["val"]
    assert all(p.is_file() for images in merged.splits.values() for p in images)


def test_a_handful_of_photos_trains_for_more_epochs() -> None:
    """At least MIN_STEPS optimiser steps: 30 photos at batch 8 keep the 30 epochs the defaults were measured
    at, 10 photos get 60 (2 steps each), a large set never fewer than 30, one photo 120."""
    from railvision.train import DEFAULT_EPOCHS, MIN_STEPS, auto_epochs

    assert (DEFAULT_EPOCHS, MIN_STEPS) == (30, 120)
    assert [auto_epochs(n, 8) for n in (30, 10, 1, 5000, 0)] == [30, 60, 120, 30, 120]
    assert auto_epochs(10, -1) == 30  # Ultralytics' auto batch on CUDA: counted as one photo per step
