"""Kind rows fitted in closed form (``railvision train --solver linear``): the cells each box gives, the
regression itself, and that only the final class convs change."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_train_config

torch = pytest.importorskip("torch", reason="fitting kind rows needs the 'train' extra (torch)")
pytest.importorskip("ultralytics", reason="fitting kind rows needs the 'train' extra (ultralytics)")

from railvision.kinds import LinearFit, box_cells, fit_kind_rows, fit_softmax  # noqa: E402

RNG = np.random.default_rng(0)


def test_box_cells_are_the_central_half_of_the_box() -> None:
    # box 16..48 at stride 16: central half 24..40 px, i.e. 1.5..2.5 cells; cells 1 and 2 have their
    # centres (1.5, 2.5) on its edges, in both directions
    cells = box_cells(np.array([16.0, 16.0, 48.0, 48.0]), 16, (4, 4), 100, RNG)
    assert sorted(map(tuple, cells)) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    # a box smaller than a cell still gives the cell under its centre
    assert box_cells(np.array([33.0, 1.0, 35.0, 3.0]), 32, (2, 2), 100, RNG).tolist() == [[0, 1]]
    # at most ``limit`` cells from a big box, all inside the grid
    many = box_cells(np.array([0.0, 0.0, 640.0, 640.0]), 8, (80, 80), 12, RNG)
    assert len(many) == 12 and many.min() >= 20 and many.max() < 60


def test_fit_softmax_separates_classes_in_raw_feature_units() -> None:
    centres = RNG.normal(0, 1, (3, 6)) * 4
    y = RNG.integers(0, 3, 600)
    x = centres[y] + RNG.normal(0, 1, (600, 6))
    x = x * [1, 10, 100, 0.1, 1, 1] + 50  # scales and offsets the standardisation must undo
    w, b = fit_softmax(torch.from_numpy(x), torch.from_numpy(y), 3, l2=1e-3)
    assert w.shape == (3, 6) and b.shape == (3,)
    accuracy = float(((torch.from_numpy(x) @ w.T + b).argmax(1) == torch.from_numpy(y)).double().mean())
    assert accuracy > 0.95
    # a strong pull toward zero flattens the posteriors
    w0, _ = fit_softmax(torch.from_numpy(x), torch.from_numpy(y), 3, l2=1e3)
    assert float(w0.abs().max()) < 0.1 * float(w.abs().max())


def _samples(n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Grey images each with one solid rectangle per class, in a class colour, at random places."""
    rng = np.random.default_rng(seed)
    colours = [(40, 40, 200), (200, 40, 40), (40, 200, 40), (200, 200, 40), (200, 40, 200)]
    out = []
    for _ in range(n):
        image = np.full((128, 128, 3), 114, np.uint8)
        boxes = []
        for colour in colours:
            w, h = rng.integers(24, 60, 2)
            x, y = rng.integers(0, 128 - w), rng.integers(0, 128 - h)
            image[y : y + h, x : x + w] = colour
            boxes.append(((x + w / 2) / 128, (y + h / 2) / 128, w / 128, h / 128))
        out.append((image, np.arange(5), np.array(boxes)))
    return out


def test_fit_kind_rows_changes_only_the_final_class_convs() -> None:
    from test_heads import NAMES, small_start

    from railvision.heads import detect_head, init_class_rows

    model = small_start()
    init_class_rows(model, 6, NAMES)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit = LinearFit(l2=1e-3, size_px={8: (0, 1e9), 16: (0, 1e9), 32: (0, 1e9)})
    accuracy = fit_kind_rows(model, _samples(6), 128, fit, log=lambda *_: None)
    assert len(accuracy) == 6  # three scales, both heads
    # five colours, chance 0.2: the finest scale of this random-weight model still sees them
    assert accuracy["cv3.0"] > 0.5 and accuracy["one2one_cv3.0"] > 0.5
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    rows = {k for k in after if any(f".{b}.{i}.2." in k for b in ("cv3", "one2one_cv3") for i in range(3))}
    assert changed <= rows  # nothing but the final class convs...
    assert {k for k in rows if ".0.2." in k} <= changed  # ...and the finest scale's, which sees the colours, moved
    assert detect_head(model).nc == 5


def test_a_class_without_boxes_keeps_its_row_and_is_pushed_down() -> None:
    """Users' photos often lack a class: its row is pulled toward where it was, not refitted from nothing."""
    from test_heads import NAMES, small_start

    from railvision.heads import detect_head, init_class_rows

    model = small_start()
    init_class_rows(model, 6, NAMES)
    conv = detect_head(model).cv3[0][-1]
    start = conv.weight.detach().clone()
    samples = [(image, classes[:4], boxes[:4]) for image, classes, boxes in _samples(4)]
    lines: list[str] = []
    fit_kind_rows(model, samples, 128, LinearFit(l2=0.1), log=lines.append)
    assert any("class(es) [4]" in line for line in lines)
    moved = (conv.weight.detach() - start)[:, :, 0, 0].norm(dim=1)
    assert moved[4] < moved[:4].min()  # the absent class's row moved least


def test_no_boxes_at_all_is_an_error() -> None:
    from test_heads import NAMES, small_start

    from railvision.heads import init_class_rows

    model = small_start()
    init_class_rows(model, 6, NAMES)
    with pytest.raises(ValueError, match="no labelled boxes"):
        fit_kind_rows(model, [], 128)


@pytest.mark.slow
def test_train_solver_linear_writes_a_checkpoint_and_keeps_a_gate(tiny_dataset: Path, tmp_path: Path) -> None:
    """``train --solver linear`` from a gated start: the rows are refitted, the gate is put back, and
    options that do not apply are refused."""
    from test_heads import save_small_start

    from railvision.heads import is_gated, load_yolo, write_prior_gated
    from railvision.train import train

    start = save_small_start(tmp_path / "start.pt")
    rows = tiny_train_config(
        tiny_dataset,
        tmp_path,
        "init",
        weights=str(start),
        init_from_class="train",
        solver="linear",
        imgsz=128,
        extra={"l2": 0.01},
    )
    result = train(rows)
    assert result.last.is_file() and result.best.is_file()
    assert len([k for k in result.metrics if k.startswith("accuracy/")]) == 6
    gated = write_prior_gated(result.last, start, "train", "prior", tmp_path / "gated.pt")
    again = train(tiny_train_config(tiny_dataset, tmp_path, "again", weights=str(gated), solver="linear", imgsz=128))
    assert is_gated(load_yolo(again.last).model)
    with pytest.raises(RuntimeError, match="--set"):
        train(tiny_train_config(tiny_dataset, tmp_path, "bad", weights=str(gated), solver="linear", extra={"lr0": 0.1}))
    with pytest.raises(RuntimeError, match="class rows only"):
        train(tiny_train_config(tiny_dataset, tmp_path, "bad2", weights=str(gated), solver="linear", train_only="head"))
