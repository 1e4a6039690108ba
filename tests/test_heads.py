"""Class-head surgery: rows copied from a start class, the prior gate, and what --train-only leaves fixed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from conftest import tiny_train_config

torch = pytest.importorskip("torch", reason="head surgery needs the 'train' extra (torch)")
pytest.importorskip("ultralytics", reason="head surgery needs the 'train' extra (ultralytics)")

from railvision.heads import (  # noqa: E402
    PriorGatedBranch,
    class_branches,
    detect_head,
    frozen_except,
    gate_with_prior,
    init_class_rows,
    is_gated,
)

COCO_FIRST = ["person", "bicycle", "car", "motorcycle", "airplane", "bus", "train"]  # class 6 is train
NAMES = ["diesel_locomotive", "tank_car", "covered_flatbed", "closed_wagon", "other_railcar"]


def small_start(nc: int = 7) -> torch.nn.Module:
    """A YOLO26n with ``nc`` classes and random weights (built from its yaml: no download)."""
    from railvision.ultralytics_env import import_ultralytics

    import_ultralytics()
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    model = DetectionModel("yolo26n.yaml", nc=nc, verbose=False)
    model.names = dict(enumerate(COCO_FIRST[:nc]))
    for branches, i in class_branches(detect_head(model)):
        torch.nn.init.normal_(branches[i][-1].weight, std=0.5)  # rows that differ, so a wrong copy shows
        torch.nn.init.normal_(branches[i][-1].bias, std=0.5)
    return model.eval()


def raw_scores(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(one-to-many, one-to-one) class logits, (batch, nc, anchors), before any top-k selection."""
    head = detect_head(model)
    feats = model.model[: len(model.model) - 1]
    saved, y = [], x
    for m in feats:  # run the trunk as DetectionModel does, keeping what the head reads
        if m.f != -1:
            y = saved[m.f] if isinstance(m.f, int) else [y if j == -1 else saved[j] for j in m.f]
        y = m(y)
        saved.append(y if m.i in model.save else None)
    inputs = [y if j == -1 else saved[j] for j in head.f]
    many = head.forward_head(inputs, **head.one2many)["scores"]
    one = head.forward_head(inputs, **head.one2one)["scores"]
    return many, one


def save_small_start(path: Path) -> Path:
    """:func:`small_start` as an Ultralytics checkpoint file, the start of a training run."""
    from ultralytics import YOLO

    yolo = YOLO("yolo26n.yaml")
    yolo.model = small_start()
    yolo.model.args = {}
    yolo.save(path)
    return path


def test_every_new_class_starts_as_the_source_row() -> None:
    model = small_start()
    x = torch.rand(1, 3, 128, 160)
    with torch.no_grad():
        before = raw_scores(model, x)
        init_class_rows(model, 6, NAMES)
        after = raw_scores(model, x)
    head = detect_head(model)
    assert head.nc == model.nc == model.yaml["nc"] == 5 and head.no == 5 + 4 * head.reg_max
    assert model.names == dict(enumerate(NAMES))
    branches = list(class_branches(head))
    assert len(branches) == 6  # 3 scales x (one-to-many, one-to-one)
    for old, new in zip(before, after, strict=True):
        assert new.shape[1] == 5
        for k in range(5):
            torch.testing.assert_close(new[:, k], old[:, 6])  # detects exactly what class 6 detected
    with pytest.raises(ValueError, match="not in the model"):
        init_class_rows(model, 9, NAMES)


def test_prior_gate_keeps_the_prior_score_and_ranks_the_kinds() -> None:
    torch.manual_seed(1)
    kinds = torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.Conv2d(8, 5, 1))
    prior = torch.nn.Sequential(torch.nn.Conv2d(8, 4, 1), torch.nn.Conv2d(4, 1, 1))
    x = torch.randn(2, 8, 4, 4)
    with torch.no_grad():
        k, p = kinds(x), torch.sigmoid(prior(x))
        gated = torch.sigmoid(PriorGatedBranch(kinds, prior, "prior")(x))
        best = torch.sigmoid(PriorGatedBranch(kinds, prior, "max")(x))
        sharp = torch.sigmoid(PriorGatedBranch(kinds, prior, "prior", sharpness=3.0)(x))
    top = k.argmax(1, keepdim=True)
    torch.testing.assert_close(gated.gather(1, top), p, atol=1e-5, rtol=0)  # the top kind inherits the prior
    assert torch.equal(gated.argmax(1), k.argmax(1))  # ... and the kinds keep their order
    torch.testing.assert_close(best, torch.maximum(gated, torch.sigmoid(k)), atol=1e-5, rtol=0)
    torch.testing.assert_close(sharp, (p * (gated / p) ** 3).clamp(1e-6, 1 - 1e-6), atol=1e-5, rtol=0)
    branch = PriorGatedBranch(kinds, prior, "prior")
    assert branch[-1] is kinds[1] and len(branch) == 2 and not any(q.requires_grad for q in branch.prior.parameters())
    assert set(branch.state_dict()) >= {"0.weight", "1.weight", "1.bias"}  # a plain branch's names
    with pytest.raises(ValueError, match="gate"):
        PriorGatedBranch(kinds, prior, "nope")


def test_a_kind_far_below_the_top_still_learns_through_the_gate() -> None:
    """Trained through the gate (few-shot fine-tuning), a wagon typed wrong by a wide margin must still pull
    its true kind up: a score clamped at a floor would give that kind no gradient at all."""
    kinds = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1))
    prior = torch.nn.Sequential(torch.nn.Conv2d(2, 1, 1))
    with torch.no_grad():
        kinds[0].weight.zero_()
        kinds[0].bias.copy_(torch.tensor([0.0, -9.0, -30.0]))  # kind 2: e^-30 of the top one
    logits = PriorGatedBranch(kinds, prior, "prior", sharpness=8.0)(torch.rand(1, 2, 2, 2))
    assert torch.isfinite(logits).all() and logits[:, 2].max() < -200  # far below any threshold
    torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 2], torch.ones_like(logits[:, 2])).backward()
    assert kinds[0].bias.grad[2] < -1.0  # the true kind is pushed up, hard


def test_gated_model_finds_what_the_start_class_finds() -> None:
    start = small_start()
    model = small_start()
    init_class_rows(model, 6, NAMES)
    for branches, i in class_branches(detect_head(model)):  # "trained" kind rows: anything
        torch.nn.init.normal_(branches[i][-1].weight, std=1.0)
    gate_with_prior(model, start, 6, "prior")
    x = torch.rand(1, 3, 128, 160)
    with torch.no_grad():
        start_scores = [torch.sigmoid(s[:, 6]) for s in raw_scores(start, x)]
        gated = [torch.sigmoid(s).amax(1) for s in raw_scores(model, x)]
    for a, b in zip(start_scores, gated, strict=True):
        torch.testing.assert_close(b, a.clamp(1e-6, 1 - 1e-6), atol=1e-5, rtol=0)
    names = {n for n, _ in model.named_parameters()}
    assert all(n.endswith(("weight", "bias")) for n in names)  # the prior is buffers, never trained
    assert is_gated(model)


def test_frozen_except_names_the_right_modules() -> None:
    model = small_start()
    head_index = len(model.model) - 1
    rows = frozen_except(model, "class-rows")
    assert list(range(head_index)) == rows[:head_index]
    assert f"{head_index}.cv2" in rows and f"{head_index}.one2one_cv2" in rows
    assert f"{head_index}.cv3.0.0" in rows and f"{head_index}.cv3.0.2" not in rows
    branch = frozen_except(model, "class-branch")
    assert not any(str(f).startswith(f"{head_index}.cv3") for f in branch)
    assert frozen_except(model, "head") == list(range(head_index))
    init_class_rows(model, 6, NAMES)
    gate_with_prior(model, small_start(), 6, "prior")
    for mode in ("class-rows", "class-branch", "head"):  # a gated model's prior never trains with --train-only
        assert {f"{head_index}.cv3.0.prior", f"{head_index}.one2one_cv3.2.prior"} <= set(frozen_except(model, mode))
    with pytest.raises(ValueError):
        frozen_except(model, "everything")


@pytest.mark.slow
def test_train_only_class_rows_changes_nothing_else(tiny_dataset: Path, tmp_path: Path) -> None:
    """Two epochs with --init-from-class and --train-only class-rows: every other tensor, BN statistics
    included, is bit-identical to the start checkpoint."""
    from railvision.heads import load_yolo
    from railvision.train import train

    start = save_small_start(tmp_path / "start.pt")
    cfg = tiny_train_config(
        tiny_dataset,
        tmp_path,
        "rows",
        weights=str(start),
        augment="none",
        val=False,
        init_from_class="train",
        train_only="class-rows",
    )
    result = train(cfg)
    init = load_yolo(tmp_path / "rows-init-train.pt").model.half().float().state_dict()
    trained = load_yolo(result.last).model.float().state_dict()  # saved as FP16 (the EMA)
    rows = {n for n in trained if any(f".{b}.{i}.2." in n for b in ("cv3", "one2one_cv3") for i in range(3))}
    assert len(rows) == 12  # weight and bias of 6 convs
    floats = [n for n in trained if trained[n].is_floating_point()]
    changed = {n for n in floats if not torch.allclose(trained[n], init[n], rtol=2e-3, atol=1e-4)}
    assert changed and changed <= rows, sorted(changed - rows)[:5]

    # fine-tuning the gated result again (as users do with the shipped model) keeps its gate; with
    # --train-only its prior stays as it was, with the features trained (the few-shot default) it learns too
    from railvision.heads import write_prior_gated

    gated = write_prior_gated(result.last, start, "train", "prior", tmp_path / "gated.pt")
    before = load_yolo(gated).model.float().state_dict()
    prior = [n for n in before if ".prior." in n and before[n].is_floating_point() and "running" not in n]
    assert prior
    for name, overrides in (("again", {"train_only": "class-rows"}), ("wide", {"freeze": 10})):
        cfg = tiny_train_config(tiny_dataset, tmp_path, name, weights=str(gated), epochs=1, augment="none", val=False)
        trained = load_yolo(train(replace(cfg, **overrides)).last).model
        assert is_gated(trained)
        after = trained.float().state_dict()
        moved = [n for n in prior if not torch.allclose(after[n], before[n], rtol=2e-3, atol=1e-4)]
        assert bool(moved) == (name == "wide"), (name, moved[:3])
