"""Surgery on the classification rows of an Ultralytics detection head (YOLO26 / YOLOv8 ``Detect``).

Two things the default model needs and Ultralytics does not offer:

* :func:`init_class_rows` starts every new class from one class of the start checkpoint (COCO ``train``),
  so that a fine-tuned model begins by detecting what that class detected instead of nothing;
* :class:`PriorGatedConv` keeps "is this a rail vehicle" on the start checkpoint's own row (learned from
  real photos) and uses the trained rows only to say "which kind": synthetic scenes teach the kinds but,
  trained on end to end, wipe out what COCO knows about real photos.

Both act on the last 1x1 conv of each scale's classification branch (``cv3[i][-1]`` and, for end-to-end
heads, ``one2one_cv3[i][-1]``), so box regression, features and the export path stay Ultralytics' own.
This module imports torch; the inference path never imports it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

GATES = ("prior", "max")  # railvision export --gate
EPS = 1e-6


def detect_head(model: nn.Module) -> nn.Module:
    """The ``Detect`` module of an Ultralytics ``DetectionModel`` (its last layer)."""
    head = model.model[-1]
    if not hasattr(head, "cv3"):
        raise ValueError(f"{type(head).__name__} is not a detection head with class branches (cv3)")
    return head


def class_convs(head: nn.Module) -> Iterator[tuple[nn.ModuleList, int]]:
    """(branch list, scale) for every final class conv: one-to-many and, where present, one-to-one."""
    for name in ("cv3", "one2one_cv3"):
        branches = getattr(head, name, None)
        if branches is not None:
            for i in range(len(branches)):
                yield branches[i], i


def frozen_except(model: nn.Module, trainable: str) -> list[int | str]:
    """Ultralytics ``freeze=`` list keeping all but ``trainable`` fixed (BN statistics included):

    ``class-rows``: only the final class convs; ``class-branch``: the whole classification branches;
    ``head``: the detection head (boxes and classes), none of the features."""
    if trainable not in ("class-rows", "class-branch", "head"):
        raise ValueError(f"trainable must be class-rows, class-branch or head, got {trainable!r}")
    last = len(model.model) - 1
    head = detect_head(model)
    frozen: list[int | str] = list(range(last))
    if trainable == "head":
        return frozen
    frozen += [f"{last}.{name}" for name in ("cv2", "one2one_cv2") if getattr(head, name, None) is not None]
    if trainable == "class-rows":
        names = [name for name in ("cv3", "one2one_cv3") if getattr(head, name, None) is not None]
        frozen += [
            f"{last}.{name}.{i}.{j}"
            for name in names
            for i in range(len(getattr(head, name)))
            for j in range(len(getattr(head, name)[i]) - 1)
        ]
    return frozen


def _rows(conv: nn.Conv2d, index: list[int]) -> nn.Conv2d:
    new = nn.Conv2d(conv.in_channels, len(index), 1, bias=conv.bias is not None)
    with torch.no_grad():
        new.weight.copy_(conv.weight[index])
        if conv.bias is not None:
            new.bias.copy_(conv.bias[index])
    return new.to(conv.weight.device, conv.weight.dtype)


def init_class_rows(model: nn.Module, source: int, names: list[str]) -> None:
    """Give ``model`` one class per name, each a copy of class ``source``'s row (in place)."""
    head = detect_head(model)
    if not 0 <= source < head.nc:
        raise ValueError(f"class {source} is not in the model's {head.nc} classes")
    for branch, _ in class_convs(head):
        branch[-1] = _rows(branch[-1], [source] * len(names))
    head.nc = len(names)
    head.no = head.nc + head.reg_max * 4
    model.nc = len(names)
    model.names = dict(enumerate(names))
    model.yaml["nc"] = len(names)


class PriorGatedConv(nn.Conv2d):
    """The trained kind rows (this conv's own ``weight``/``bias``) gated by a frozen prior row.

    Output logits ``logit(s_k)`` with ``r_k = (softmax(kinds)_k / max_j softmax(kinds)_j) ** sharpness`` and

    * ``prior``: ``s_k = sigmoid(prior) * r_k``: the prior decides where a vehicle is and how sure, the
      kinds only which one (the top kind inherits the prior's score unchanged);
    * ``max``: ``s_k = max(sigmoid(kind_k), sigmoid(prior) * r_k)``: the learned detector, plus whatever the
      prior finds and it misses (e.g. synthetic-only overhead views gain, real photos keep the prior);

    The parameters are named as in a plain ``nn.Conv2d``, so fine-tuning a checkpoint holding this module
    transfers the kind rows into a plain head; the prior lives in buffers.
    """

    def __init__(self, kinds: nn.Conv2d, prior: nn.Conv2d, gate: str, sharpness: float = 1.0) -> None:
        if gate not in GATES:
            raise ValueError(f"gate must be one of {GATES}, got {gate!r}")
        if prior.out_channels != 1 or prior.in_channels != kinds.in_channels:
            raise ValueError("the prior must be a single row over the same features as the kinds")
        super().__init__(kinds.in_channels, kinds.out_channels, 1, bias=True)
        with torch.no_grad():
            self.weight.copy_(kinds.weight)
            self.bias.copy_(kinds.bias if kinds.bias is not None else torch.zeros(kinds.out_channels))
        self.register_buffer("prior_weight", prior.weight.detach().clone())
        self.register_buffer("prior_bias", prior.bias.detach().clone())
        self.gate = gate
        self.sharpness = sharpness  # r_k ** sharpness: > 1 pushes the runner-up kinds (duplicate boxes) down
        self.to(kinds.weight.device, kinds.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kinds = super().forward(x)
        prior = torch.sigmoid(nn.functional.conv2d(x, self.prior_weight, self.prior_bias))
        share = torch.softmax(kinds, dim=1)
        share = (share / share.amax(dim=1, keepdim=True)) ** self.sharpness
        score = prior * share
        if self.gate == "max":
            score = torch.maximum(score, torch.sigmoid(kinds))
        return torch.logit(score.clamp(EPS, 1 - EPS))


def gate_with_prior(model: nn.Module, prior_model: nn.Module, source: int, gate: str, sharpness: float = 1.0) -> None:
    """Replace ``model``'s class convs by :class:`PriorGatedConv` with ``prior_model``'s row ``source``.

    The two models must share everything up to those convs (``model`` was fine-tuned from ``prior_model``
    with the rest frozen), or the prior row would read features it was never trained on."""
    pairs = zip(class_convs(detect_head(model)), class_convs(detect_head(prior_model)), strict=True)
    for (branch, _), (prior_branch, _) in pairs:
        kinds = branch[-1]
        if isinstance(kinds, PriorGatedConv):  # re-gating: keep the kind rows, take the new prior
            kinds = _rows(kinds, list(range(kinds.out_channels)))
        branch[-1] = PriorGatedConv(kinds, _rows(prior_branch[-1], [source]), gate, sharpness)


def is_gated(model: nn.Module) -> bool:
    return all(isinstance(branch[-1], PriorGatedConv) for branch, _ in class_convs(detect_head(model)))


def carry_gate(trained: nn.Module, gated_start: nn.Module) -> bool:
    """Gate ``trained``'s class convs as ``gated_start``'s are (same prior rows, gate and sharpness).

    For fine-tuning a shipped, gated model with only its kind rows trained: Ultralytics rebuilds a plain
    head for training, so the gate is put back afterwards. False (and nothing changed) if the start is
    not gated."""
    if not is_gated(gated_start):
        return False
    starts = [branch[-1] for branch, _ in class_convs(detect_head(gated_start))]
    for (branch, _), start in zip(class_convs(detect_head(trained)), starts, strict=True):
        prior = nn.Conv2d(start.in_channels, 1, 1)
        with torch.no_grad():
            prior.weight.copy_(start.prior_weight)
            prior.bias.copy_(start.prior_bias)
        branch[-1] = PriorGatedConv(branch[-1], prior.to(start.weight.dtype), start.gate, start.sharpness)
    return True


def class_index(names: dict[int, str] | list[str], name: str) -> int:
    """Index of class ``name`` in a model's names, or a ``ValueError`` listing a few of them."""
    table = dict(enumerate(names)) if isinstance(names, list) else dict(names)
    for index, candidate in table.items():
        if candidate == name:
            return int(index)
    shown = ", ".join(list(table.values())[:12])
    raise ValueError(f"the start checkpoint has no class {name!r} (it has {len(table)}: {shown}, ...)")


def load_yolo(weights: str | Path) -> Any:
    """An Ultralytics ``YOLO`` for ``weights``, imported offline."""
    from railvision.ultralytics_env import import_ultralytics

    import_ultralytics()
    from ultralytics import YOLO

    return YOLO(str(weights))


def write_class_init(weights: str | Path, class_name: str, names: list[str], out: Path) -> Path:
    """Save a copy of ``weights`` whose classes are ``names``, each started from ``class_name``'s row."""
    yolo = load_yolo(weights)
    init_class_rows(yolo.model, class_index(yolo.model.names, class_name), names)
    out.parent.mkdir(parents=True, exist_ok=True)
    yolo.save(out)
    return out


def carry_gate_to(weights: list[Path], gated_start: str | Path) -> bool:
    """:func:`carry_gate` on checkpoint files, rewritten in place; False if the start is not gated."""
    start = load_yolo(gated_start).model
    for path in weights:
        yolo = load_yolo(path)
        if not carry_gate(yolo.model, start):
            return False
        yolo.save(path)
    return True


def write_prior_gated(
    weights: str | Path, prior: str | Path, class_name: str, gate: str, out: Path, sharpness: float = 1.0
) -> Path:
    """Save a copy of fine-tuned ``weights`` whose class convs are gated by ``prior``'s ``class_name`` row."""
    yolo, start = load_yolo(weights), load_yolo(prior)
    gate_with_prior(yolo.model, start.model, class_index(start.model.names, class_name), gate, sharpness)
    out.parent.mkdir(parents=True, exist_ok=True)
    yolo.save(out)
    return out
