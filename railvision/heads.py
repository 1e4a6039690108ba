"""Surgery on the classification branches of an Ultralytics detection head (YOLO26 / YOLOv8 ``Detect``).

Two things the default model needs and Ultralytics does not offer:

* :func:`init_class_rows` starts every new class from one class of the start checkpoint (COCO ``train``),
  so that a fine-tuned model begins by detecting what that class detected instead of nothing;
* :class:`PriorGatedBranch` keeps "is this a rail vehicle" on a frozen copy of the start checkpoint's own
  branch (learned from real photos) and uses the trained rows only to say "which kind": synthetic scenes
  teach the kinds but, trained on end to end, wipe out what COCO knows about real photos.

Both act on each scale's classification branch (``cv3[i]`` and, for end-to-end heads, ``one2one_cv3[i]``),
so box regression, features and the export path stay Ultralytics' own. This module imports torch; the
inference path never imports it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

GATES = ("prior", "max")  # railvision export --gate
LOG_ONE = -1e-6  # log of the highest score a gated branch gives, so its logit stays finite


def detect_head(model: nn.Module) -> nn.Module:
    """The ``Detect`` module of an Ultralytics ``DetectionModel`` (its last layer)."""
    head = model.model[-1]
    if not hasattr(head, "cv3"):
        raise ValueError(f"{type(head).__name__} is not a detection head with class branches (cv3)")
    return head


def class_branches(head: nn.Module) -> Iterator[tuple[nn.ModuleList, int]]:
    """(branch list, scale) for every classification branch: one-to-many and, where present, one-to-one;
    ``branches[i][-1]`` is that branch's final class conv."""
    for name in ("cv3", "one2one_cv3"):
        branches = getattr(head, name, None)
        if branches is not None:
            for i in range(len(branches)):
                yield branches, i


def frozen_except(model: nn.Module, trainable: str) -> list[int | str]:
    """Ultralytics ``freeze=`` list keeping all but ``trainable`` fixed (BN statistics included):

    ``class-rows``: only the final class convs; ``class-branch``: the whole classification branches;
    ``head``: the detection head (boxes and classes), none of the features. A gated model's prior branches
    stay fixed in every case: they were made for the features that are kept."""
    if trainable not in ("class-rows", "class-branch", "head"):
        raise ValueError(f"trainable must be class-rows, class-branch or head, got {trainable!r}")
    last = len(model.model) - 1
    head = detect_head(model)
    frozen: list[int | str] = list(range(last))
    for name in ("cv3", "one2one_cv3"):
        branches = getattr(head, name, None) or []
        frozen += [f"{last}.{name}.{i}.prior" for i, b in enumerate(branches) if isinstance(b, PriorGatedBranch)]
    if trainable == "head":
        return frozen
    frozen += [f"{last}.{name}" for name in ("cv2", "one2one_cv2") if getattr(head, name, None) is not None]
    if trainable == "class-rows":
        for name in ("cv3", "one2one_cv3"):
            branches = getattr(head, name, None) or []
            frozen += [f"{last}.{name}.{i}.{j}" for i in range(len(branches)) for j in range(len(branches[i]) - 1)]
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
    for branches, i in class_branches(head):
        branches[i][-1] = _rows(branches[i][-1], [source] * len(names))
    head.nc = len(names)
    head.no = head.nc + head.reg_max * 4
    model.nc = len(names)
    model.names = dict(enumerate(names))
    model.yaml["nc"] = len(names)


class PriorGatedBranch(nn.Module):
    """A classification branch whose trained kind rows are gated by a copy of a prior's branch.

    Output logits ``logit(s_k)`` with ``r_k = (softmax(kinds)_k / max_j softmax(kinds)_j) ** sharpness`` and

    * ``prior``: ``s_k = sigmoid(prior) * r_k``: the prior decides where a vehicle is and how sure, the
      kinds only which one (the top kind inherits the prior's score unchanged);
    * ``max``: ``s_k = max(sigmoid(kind_k), sigmoid(prior) * r_k)``: the learned detector, plus whatever the
      prior finds and it misses.

    The kind layers are children ``0, 1, ...`` as in a plain branch (so ``[-1]`` is the rows' conv); the prior
    is ``prior.*``, frozen when made. Fine-tuning on real photos with the features trained trains it too
    (``railvision.train.gated_trainer``); ``--train-only`` keeps it fixed (:func:`frozen_except`).
    """

    def __init__(self, kinds: nn.Sequential, prior: nn.Sequential, gate: str, sharpness: float = 1.0) -> None:
        if gate not in GATES:
            raise ValueError(f"gate must be one of {GATES}, got {gate!r}")
        super().__init__()
        for i, layer in enumerate(kinds):
            self.add_module(str(i), layer)
        self.depth = len(kinds)
        self.prior = prior.requires_grad_(False)
        self.gate = gate
        self.sharpness = sharpness  # r_k ** sharpness: > 1 pushes the runner-up kinds (duplicate boxes) down

    def __getitem__(self, index: int) -> nn.Module:
        return getattr(self, str(range(self.depth)[index]))

    def __len__(self) -> int:
        return self.depth

    def kinds(self) -> nn.Sequential:
        return nn.Sequential(*(self[i] for i in range(self.depth)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kinds = x
        for i in range(self.depth):
            kinds = self[i](kinds)
        # in log space, so that a wrong kind far below the top one still gets a gradient when the gate is
        # trained through (a clamped score has none)
        share = torch.log_softmax(kinds, dim=1)
        log_score = F.logsigmoid(self.prior(x)) + self.sharpness * (share - share.amax(dim=1, keepdim=True))
        if self.gate == "max":
            log_score = torch.maximum(log_score, F.logsigmoid(kinds))
        log_score = log_score.clamp(max=LOG_ONE)
        return log_score - torch.log1p(-torch.exp(log_score))  # logit(s) from log(s)


def _prior_branch(branch: nn.Module, source: int) -> nn.Sequential:
    """A frozen copy of a branch that outputs only class ``source``."""
    layers = list(copy.deepcopy(branch.kinds() if isinstance(branch, PriorGatedBranch) else branch))
    layers[-1] = _rows(layers[-1], [source])
    return nn.Sequential(*layers).eval()


def gate_with_prior(model: nn.Module, prior_model: nn.Module, source: int, gate: str, sharpness: float = 1.0) -> None:
    """Gate each of ``model``'s class branches by a frozen copy of ``prior_model``'s, reduced to class ``source``.

    The two models must share the features the branches read (``model`` was fine-tuned from ``prior_model``
    with the features frozen), or the prior branch would read features it was never trained on."""
    pairs = zip(class_branches(detect_head(model)), class_branches(detect_head(prior_model)), strict=True)
    for (branches, i), (prior_branches, _) in pairs:
        kinds = branches[i].kinds() if isinstance(branches[i], PriorGatedBranch) else branches[i]
        branches[i] = PriorGatedBranch(kinds, _prior_branch(prior_branches[i], source), gate, sharpness)


def is_gated(model: nn.Module) -> bool:
    return all(isinstance(branches[i], PriorGatedBranch) for branches, i in class_branches(detect_head(model)))


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


def write_prior_gated(
    weights: str | Path, prior: str | Path, class_name: str, gate: str, out: Path, sharpness: float = 1.0
) -> Path:
    """Save a copy of fine-tuned ``weights`` whose class branches are gated by ``prior``'s ``class_name``."""
    yolo, start = load_yolo(weights), load_yolo(prior)
    gate_with_prior(yolo.model, start.model, class_index(start.model.names, class_name), gate, sharpness)
    out.parent.mkdir(parents=True, exist_ok=True)
    yolo.save(out)
    return out
