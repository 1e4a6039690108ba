"""Kind rows fitted in closed form on frozen features: ``railvision train --solver linear``.

With the features frozen (``--train-only class-rows``), each scale's final class conv is a linear classifier
over the features its branch computes, and the prior gate reads only the softmax over the kinds. So fitting
the rows is a multinomial logistic regression on the feature vectors at the cells inside labelled boxes.
Solved directly it takes a minute or two on the CPU where one epoch of the detection loss takes fifteen, it
has no learning-rate schedule to tune, and it typed real wagons better on ``realdev`` (the model card).
This module imports torch; the inference path never imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from railvision.boxes import yolo_to_xyxy
from railvision.data import label_path, load_dataset, read_yolo
from railvision.engine import letterbox, to_blob
from railvision.heads import class_branches, detect_head
from railvision.images import load_image

STRIDES = (8, 16, 32)


@dataclass(frozen=True)
class LinearFit:
    """How the rows are fitted: which boxes each scale learns from, how many cells per box, how hard the
    weights are pulled to zero, and whether rare classes are weighted up."""

    l2: float = 0.03  # on the mean loss over cells, so the same value suits any amount of data
    cells_per_box: int = 12  # at most, drawn from the box's central half: big boxes do not outvote small ones
    # box size (square root of its area, model-input pixels) each stride learns from; a stride whose range
    # lacks a class learns from every box instead
    size_px: dict[int, tuple[float, float]] = field(
        default_factory=lambda: {8: (0.0, 128.0), 16: (32.0, 320.0), 32: (64.0, float("inf"))}
    )
    balanced: bool = False  # False keeps the training set's class frequencies as the prior
    seed: int = 0


def box_cells(
    xyxy: np.ndarray, stride: int, grid_hw: tuple[int, int], limit: int, rng: np.random.Generator
) -> np.ndarray:
    """(row, col) of up to ``limit`` cells of a stride-``stride`` grid whose centres lie in the central half
    of the box (at least the cell under the box centre)."""
    x0, y0, x1, y1 = xyxy / stride
    cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 4, (y1 - y0) / 4
    rows = np.arange(max(0, int(np.floor(cy - hh))), min(grid_hw[0], int(np.ceil(cy + hh)) + 1))
    cols = np.arange(max(0, int(np.floor(cx - hw))), min(grid_hw[1], int(np.ceil(cx + hw)) + 1))
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    inside = (np.abs(rr + 0.5 - cy) <= hh) & (np.abs(cc + 0.5 - cx) <= hw)
    cells = np.stack([rr[inside], cc[inside]], 1)
    if len(cells) == 0:
        centre = (min(max(int(cy), 0), grid_hw[0] - 1), min(max(int(cx), 0), grid_hw[1] - 1))
        return np.array([centre])
    return cells[rng.permutation(len(cells))[:limit]]


def fit_softmax(
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    l2: float,
    balanced: bool = False,
    start: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression (L-BFGS on standardised features); weights and bias for the raw ones.

    The weights are pulled toward ``start`` (raw weights and bias, e.g. the rows being refitted) rather than
    toward zero when it is given: a class with no examples then keeps its row, pushed down only as far as the
    classes present need."""
    mu, sd = x.mean(0), x.std(0) + 1e-6
    z = (x - mu) / sd
    counts = torch.bincount(y, minlength=n_classes).double()
    weight = (counts.sum() / (n_classes * counts.clamp(min=1))).to(x.dtype) if balanced else None
    w0 = torch.zeros(n_classes, x.shape[1], dtype=x.dtype) if start is None else start[0].to(x.dtype) * sd
    b0 = torch.zeros(n_classes, dtype=x.dtype) if start is None else start[1].to(x.dtype) + start[0].to(x) @ mu
    w, b = w0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=500, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(z @ w.T + b, y, weight=weight) + 0.5 * l2 * ((w - w0) ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return w / sd, b - (w * (mu / sd)).sum(1)


Sample = tuple[np.ndarray, np.ndarray, np.ndarray]  # BGR image, class ids, normalised cx cy w h


def dataset_samples(data_yaml: str | Path, split: str = "train") -> Iterable[Sample]:
    """A YOLO dataset's images with their boxes (images without boxes skipped)."""
    for image in load_dataset(data_yaml).splits.get(split, []):
        classes, xywhn = read_yolo(label_path(image))
        if len(classes):
            yield load_image(image), classes.astype(int), xywhn


def _final_convs(head: nn.Module) -> dict[tuple[str, int], nn.Conv2d]:
    """(branch name, scale) -> that classification branch's final class conv, for every branch the head has."""
    return {(_branch_name(head, branches), i): branches[i][-1] for branches, i in class_branches(head)}


def _branch_name(head: nn.Module, branches: nn.ModuleList) -> str:
    return "one2one_cv3" if branches is getattr(head, "one2one_cv3", None) else "cv3"


@torch.no_grad()
def collect_cells(
    model: nn.Module, samples: Iterable[Sample], n_classes: int, imgsz: int, fit: LinearFit, log: Callable = print
) -> dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per (branch, scale): the features each final class conv reads at the cells of labelled boxes, the
    boxes' classes, and whether each box is in the scale's size range; classes outside ``range(n_classes)``
    (ignore) are left out."""
    branches = _final_convs(detect_head(model))
    seen: dict[tuple[str, int], torch.Tensor] = {}
    hooks = [
        conv.register_forward_hook(lambda _m, inputs, _o, key=key: seen.__setitem__(key, inputs[0][0]))
        for key, conv in branches.items()
    ]
    xs: dict[tuple[str, int], list[torch.Tensor]] = {key: [] for key in branches}
    ys: dict[int, list[np.ndarray]] = {i: [] for i in range(len(STRIDES))}
    in_range: dict[int, list[np.ndarray]] = {i: [] for i in range(len(STRIDES))}
    rng = np.random.default_rng(fit.seed)
    device = next(model.parameters()).device
    try:
        for n, (image, classes, xywhn) in enumerate(samples, 1):
            boxed, lb = letterbox(image, (imgsz, imgsz))
            seen.clear()
            model(torch.from_numpy(to_blob([boxed])).to(device))
            boxes = yolo_to_xyxy(xywhn, image.shape[1], image.shape[0])  # to model-input pixels:
            boxes = boxes * [lb.gain_x, lb.gain_y, lb.gain_x, lb.gain_y] + [lb.pad_x, lb.pad_y] * 2
            for c, xyxy in zip(classes, boxes, strict=True):
                if not 0 <= c < n_classes:
                    continue
                size = float(np.sqrt((xyxy[2] - xyxy[0]) * (xyxy[3] - xyxy[1])))
                for i, stride in enumerate(STRIDES):
                    lo, hi = fit.size_px[stride]
                    grid = (boxed.shape[0] // stride, boxed.shape[1] // stride)
                    cells = torch.from_numpy(box_cells(xyxy, stride, grid, fit.cells_per_box, rng))
                    for key in xs:
                        if key[1] == i:
                            xs[key].append(seen[key][:, cells[:, 0], cells[:, 1]].T.float().cpu())
                    ys[i].append(np.full(len(cells), c))
                    in_range[i].append(np.full(len(cells), lo <= size < hi))
            if n % 500 == 0:
                log(f"  features of {n} images")
    finally:
        for hook in hooks:
            hook.remove()
    out = {}
    for key, chunks in xs.items():
        if chunks:
            i = key[1]
            y, keep = (torch.from_numpy(np.concatenate(v[i])) for v in (ys, in_range))
            out[key] = (torch.cat(chunks), y.long(), keep.bool())  # float32 until fitted: half the memory
    return out


def fit_kind_rows(
    model: nn.Module, samples: Iterable[Sample], imgsz: int, fit: LinearFit | None = None, log: Callable = print
) -> dict[str, float]:
    """Refit every final class conv of ``model`` (in place) on ``samples``, pulled toward its current rows;
    returns each one's accuracy on the cells it was fitted on. Rows start as copies of one class
    (``--init-from-class``) or as a fitted model's (fine-tuning on one's own photos: a class without boxes
    there keeps its row, only pushed down)."""
    fit = fit or LinearFit()
    head = detect_head(model)
    model.eval()
    cells = collect_cells(model, samples, head.nc, imgsz, fit, log)
    if not cells:
        raise ValueError("no labelled boxes to fit the class rows on")
    absent = sorted(set(range(head.nc)) - set(next(iter(cells.values()))[1].tolist()))
    if absent:
        log(f"  no boxes of class(es) {absent}: their rows stay as they were, pushed down where others fit")
    accuracy = {}
    for (name, i), conv in _final_convs(head).items():
        x, y, keep = cells.pop((name, i))
        x = x.double()
        present = set(y.tolist())
        if present - set(y[keep].tolist()):
            if name == "cv3":
                log(f"  stride {STRIDES[i]}: a class has no boxes of {fit.size_px[STRIDES[i]]} px; all boxes used")
        else:
            x, y = x[keep], y[keep]
        start = (conv.weight.detach()[:, :, 0, 0].double().cpu(), conv.bias.detach().double().cpu())
        w, b = fit_softmax(x, y, head.nc, fit.l2, fit.balanced, start)
        with torch.no_grad():
            conv.weight.copy_(w.to(conv.weight)[:, :, None, None])
            conv.bias.copy_(b.to(conv.bias))
        accuracy[f"{name}.{i}"] = float(((x @ w.T + b).argmax(1) == y).double().mean())
        log(
            f"  {name}[{i}] stride {STRIDES[i]}: {len(y)} cells, per class {torch.bincount(y).tolist()}, "
            f"accuracy {accuracy[f'{name}.{i}']:.3f}"
        )
    return accuracy
