"""Tests of ``railvision synth``: determinism, coverage of classes and views, tight labels, errors.

They render real scenes with the software GL driver; an EGL failure fails them (never skips).
"""

from __future__ import annotations

import json
import multiprocessing as mp
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml
from fresh_python import GL_ABSENT, run_cli

from railvision.cli import main
from railvision.synth.dataset import Generator, SynthConfig, generate, labels_from_render, mask_boxes
from railvision.synth.render import RenderResult
from railvision.synth.scene import CLUTTER, Vehicle, make_scene
from railvision.taxonomy import CLASS_NAMES

SEED = 7
EMPTY_BG = "RAILVISION_BACKGROUNDS"


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    """40 images, both views, with real backgrounds when ../shared has them (the default)."""
    out = tmp_path_factory.mktemp("synth") / "ds"
    assert main(["synth", "--out", str(out), "--n", "40", "--seed", str(SEED), "--workers", "2", "--imgsz", "320"]) == 0
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.parts[len(root.parts)] in ("images", "labels")
    }


def test_layout_and_coverage(small_run: Path) -> None:
    data = yaml.safe_load((small_run / "data.yaml").read_text())
    assert data["train"] == "images/train" and data["val"] == "images/val"
    assert data["names"] == dict(enumerate(CLASS_NAMES))
    assert data["view_file"] == "views.csv"
    rows = (small_run / "views.csv").read_text().splitlines()
    assert rows[0] == "image,view" and len(rows) == 41
    images = sorted(p.relative_to(small_run).as_posix() for p in small_run.glob("images/*/*.jpg"))
    assert sorted(r.split(",")[0] for r in rows[1:]) == images
    assert len(list(small_run.glob("images/val/*.jpg"))) == 4
    stats = json.loads((small_run / "stats.json").read_text())
    assert set(stats["images_per_view"]) == {"ground", "overhead"}
    assert all(stats["instances_per_class"][name] > 0 for name in CLASS_NAMES), stats["instances_per_class"]
    assert sum(stats["box_size_histogram"]["counts"]) == stats["instances"]
    lines = [line for label in small_run.glob("labels/*/*.txt") for line in label.read_text().splitlines()]
    assert len(lines) == stats["instances"]
    views = [row.split(",")[1] for row in rows[1:]]
    assert stats["images_per_view"] == {v: views.count(v) for v in ("ground", "overhead")}
    assert list((small_run / "previews").glob("*.jpg"))
    for label in small_run.glob("labels/*/*.txt"):
        for line in label.read_text().splitlines():
            c, *box = line.split()
            assert 0 <= int(c) < len(CLASS_NAMES)
            cx, cy, w, h = map(float, box)
            eps = 1e-5  # six decimals in the label files
            assert -eps <= cx - w / 2 and cx + w / 2 <= 1 + eps and -eps <= cy - h / 2 and cy + h / 2 <= 1 + eps
            assert w > 0 and h > 0


def test_same_seed_same_bytes_any_workers(small_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "again"
    assert main(["synth", "--out", str(out), "--n", "40", "--seed", str(SEED), "--workers", "1", "--imgsz", "320"]) == 0
    assert _files(out) == _files(small_run)


def _tight_boxes_checked(out: Path) -> int:
    """Render a few scenes (in a child process, as the package does) and match every label to its mask."""
    cfg = SynthConfig(out, 6, ("ground", "overhead"), SEED, 320)
    gen = Generator(cfg)
    checked = 0
    for index in range(6):
        sample = gen.sample(index)
        extents = mask_boxes(sample.instances)
        for cls, x0, y0, x1, y1 in sample.boxes:
            match = [e for e in extents.values() if (e[0], e[1], e[2], e[3]) == (x0, y0, x1, y1)]
            assert match, (cls, x0, y0, x1, y1)
            assert 0 <= x0 < x1 <= 320 and 0 <= y0 < y1 <= 320
            checked += 1
    gen.renderer.release()
    return checked


def test_labels_tight_against_instance_mask(tmp_path: Path) -> None:
    with mp.get_context("spawn").Pool(1) as pool:
        assert pool.apply(_tight_boxes_checked, (tmp_path,)) > 0


def test_rendering_never_loads_gl_into_the_caller(tmp_path: Path) -> None:
    # Mesa's LLVM in this process would crash a later torch import (train --synthetic does both).
    done = run_cli(["synth", "--out", str(tmp_path / "d"), "--n", "2", "--imgsz", "128"], GL_ABSENT)
    assert done.returncode == 0, done.stderr


def test_mask_boxes_are_tight() -> None:
    mask = np.zeros((20, 30), np.uint16)
    mask[2:5, 3:9] = 1
    mask[10, 20] = 2
    assert mask_boxes(mask) == {1: (3, 2, 9, 5, 18), 2: (20, 10, 21, 11, 1)}


def test_hidden_tiny_and_hazy_vehicles_are_not_labelled() -> None:
    base = make_scene(np.random.default_rng(0), "overhead", 64, negative=True)
    cars = tuple(Vehicle("boxcar", 3, 15.0, 0.0, 0.0, seed) for seed in range(4))
    scene = replace(base, vehicles=cars)
    inst = np.zeros((64, 64), np.uint16)
    inst[10:20, 5:25] = 1  # 200 px of 400: kept
    inst[30:40, 5:25] = 2  # 200 px of 1001: under 20% visible, dropped
    inst[50:52, 5:25] = 3  # 2 px tall: dropped
    inst[40:48, 40:60] = 4  # kept, unless hazy
    result = RenderResult(np.zeros((64, 64, 4), np.float32), inst, {1: 400.0, 2: 1001.0, 3: 40.0, 4: 160.0})
    boxes, _ = labels_from_render(scene, result, 0, 64)
    assert boxes == [(3, 5.0, 10.0, 25.0, 20.0), (3, 40.0, 40.0, 60.0, 48.0)]
    hazy = replace(scene, haze_beta=0.01)  # the camera is 1.5 km away: exp(-15) of the contrast left
    assert labels_from_render(hazy, result, 0, 64)[0] == []


@pytest.mark.parametrize("view", ["ground", "overhead"])
def test_clean_scenes_keep_trains_and_drop_only_clutter(view: str) -> None:
    scenes = {f: [make_scene(np.random.default_rng([3, i]), view, 640, False, f) for i in range(30)] for f in (0, 1)}
    assert all(p.kind not in CLUTTER for s in scenes[1] for p in s.props)
    assert sum(p.kind in CLUTTER for s in scenes[0] for p in s.props) > 30  # the default scenes do have clutter
    # the fraction 0 draws nothing extra: the stream, and with it every older dataset, is unchanged
    again = [make_scene(np.random.default_rng([3, i]), view, 640, False) for i in range(30)]
    assert again == scenes[0]
    mixed = [make_scene(np.random.default_rng([5, i]), view, 640, False, 0.5) for i in range(60)]
    n_clean = sum(not any(p.kind in CLUTTER for p in s.props) for s in mixed)
    assert 15 <= n_clean <= 50


def test_works_without_shared_backgrounds(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(EMPTY_BG, str(tmp_path / "nothing"))
    (tmp_path / "nothing").mkdir()
    out = tmp_path / "ds"
    assert main(["synth", "--out", str(out), "--n", "3", "--seed", "1", "--workers", "1", "--imgsz", "256"]) == 0
    assert len(list(out.glob("images/*/*.jpg"))) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--n", "0"], "--n must be a positive"),
        (["--n", "2", "--views", "ground,space"], "unknown view"),
        (["--n", "2", "--imgsz", "100"], "--imgsz must be"),
        (["--n", "2", "--workers", "0"], "--workers must be"),
        (["--n", "2", "--clean-fraction", "1.5"], "--clean-fraction must be"),
    ],
)
def test_bad_arguments(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    assert main(["synth", "--out", str(tmp_path / "x"), *args]) == 2
    assert message in capsys.readouterr().err


def test_refuses_foreign_non_empty_folder(tmp_path: Path, capsys) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["synth", "--out", str(tmp_path), "--n", "1", "--workers", "1", "--imgsz", "128"]) == 2
    assert "not a railvision synth dataset" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_generate_rejects_zero_images(tmp_path: Path) -> None:
    from railvision.synth import SynthError

    with pytest.raises(SynthError):
        generate(SynthConfig(tmp_path / "d", 0, ("ground",)))


def test_missing_egl_names_the_packages(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("GLCONTEXT_LINUX_LIBEGL", str(tmp_path / "libEGL-missing.so"))  # the workers inherit it
    assert main(["synth", "--out", str(tmp_path / "d"), "--n", "1", "--workers", "2", "--imgsz", "128"]) == 2
    err = capsys.readouterr().err
    assert "libegl1" in err and "libgl1-mesa-dri" in err
