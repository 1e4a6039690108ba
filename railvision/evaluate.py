"""Evaluate a model on a YOLO dataset split: COCO mAP, precision/recall, confusion, counting error.

AP comes from faster-coco-eval (COCO's definition, 101-point interpolation); ignore
regions (a dataset class named ``ignore``, or ``ignore/`` sidecar files) become COCO crowd
boxes, so a detection that matches no target and lies mostly inside one (intersection over
the detection's area >= 0.5) counts neither way. Beside per-class AP a class-agnostic AP50
says whether the model finds the vehicles at all. Everything "at the chosen confidence"
(precision, recall, confusion matrix, counting errors) uses one class-agnostic IoU >= 0.5
matching per image, with the same rule for ignore regions. ``--negatives`` adds the false
alarms per photo on photos without rail vehicles. ONNX models run through the engine,
``.pt`` models through Ultralytics (imported only then).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from railvision.boxes import box_ioa, box_iou, nms, yolo_to_xyxy
from railvision.data import IGNORE, ignore_path, label_path, load_dataset, read_views, read_yolo
from railvision.detections import Detections
from railvision.engine import read_metadata
from railvision.images import iter_images, load_image, photo_size
from railvision.options import DEFAULTS

MATCH_IOU = 0.5
IGNORE_IOA = 0.5
SAME_BOX_IOU = 0.99  # class-agnostic AP: the same box under several classes is one box
AP_CONF = 0.001  # AP needs the whole ranking, not only what passes the chosen confidence
SWEEP_CONFS = np.round(np.arange(0.01, 0.951, 0.01), 2)  # thresholds tried for the counting-error curve
COUNT_TOLERANCE = 0.02  # counting errors closer than this to the lowest are tied when choosing a threshold
ALL = "all"


@dataclass
class Truth:
    """Ground truth of one image, in pixels."""

    image: Path
    xyxy: np.ndarray  # (N, 4)
    class_id: np.ndarray  # (N,), indices into the evaluated class names
    ignore: np.ndarray  # (M, 4) regions neither rewarded nor punished
    size: tuple[int, int]  # (w, h)
    view: str


def load_truth(data_yaml: str | Path, split: str = "val") -> tuple[list[Truth], list[str]]:
    """Ground truth of a split and the evaluated class names (the dataset's, without ``ignore``)."""
    dataset = load_dataset(data_yaml)
    if split not in dataset.splits:
        raise ValueError(f"{data_yaml} has no split {split!r} (has {', '.join(dataset.splits)})")
    names = [n for n in dataset.names if n != IGNORE]
    remap = np.array([names.index(n) if n != IGNORE else -1 for n in dataset.names], dtype=np.int64)
    views = read_views(dataset)
    truths = []
    for image in dataset.splits[split]:
        width, height = photo_size(image)
        ids, boxes = read_yolo(label_path(image))
        _, regions = read_yolo(ignore_path(image), with_class=False)
        cls = remap[ids]
        xyxy = yolo_to_xyxy(boxes, width, height).astype(np.float32)
        ignore = np.concatenate([xyxy[cls < 0], yolo_to_xyxy(regions, width, height).astype(np.float32)])
        view = views.get(image.resolve(), ALL)
        truths.append(Truth(image, xyxy[cls >= 0], cls[cls >= 0], ignore, (width, height), view))
    return truths, names


def predict(
    model: str | Path,
    images: Iterable[Path],
    *,
    conf: float,
    iou: float,
    device: str = "auto",
    imgsz: int | None = None,
) -> Iterator[Detections]:
    """Detections per image for an ONNX model (the engine, untiled) or a ``.pt`` checkpoint (Ultralytics)."""
    model = Path(model)
    if model.suffix == ".onnx":
        from railvision.engine import Detector

        detector = Detector(model, device=device, conf=conf, iou=iou, imgsz=imgsz)
        for path in images:  # the engine's own decoding (a large JPEG at reduced size): what users get
            yield detector.detect(path)
        return
    frames = (load_image(p) for p in images)
    from railvision.ultralytics_env import import_ultralytics, resolve_device, ultralytics_predict

    import_ultralytics()
    from ultralytics import YOLO

    yolo = YOLO(str(model))
    size = imgsz or int((yolo.ckpt.get("train_args") or {}).get("imgsz", 640))
    device = resolve_device("auto" if device in ("auto", "cuda") else device)
    yield from ultralytics_predict(yolo, frames, imgsz=size, conf=conf, iou=iou, head="end2end", device=device)


def _outside_ignore(det_xyxy: np.ndarray, ignore: np.ndarray) -> np.ndarray:
    """Mask of detections not lying mostly inside an ignore region (intersection over detection area)."""
    if not len(ignore):
        return np.ones(len(det_xyxy), dtype=bool)
    return box_ioa(det_xyxy, ignore).max(axis=1) < IGNORE_IOA


def confusion(truth: Truth, det: Detections, nc: int) -> np.ndarray:
    """(nc+1, nc+1) counts, rows predicted class, columns true class; index nc is background.

    Column nc: detections matching nothing (false positives) outside the ignore regions; detections
    matching nothing that lie mostly inside one are not counted at all. Row nc: missed objects.
    """
    matrix = np.zeros((nc + 1, nc + 1), dtype=np.int64)
    iou = box_iou(det.xyxy, truth.xyxy)
    pairs = np.argwhere(iou >= MATCH_IOU)
    pairs = pairs[np.argsort(-iou[pairs[:, 0], pairs[:, 1]], kind="stable")]
    used_d, used_t = set(), set()
    for d, t in pairs:
        if d not in used_d and t not in used_t:
            used_d.add(d)
            used_t.add(t)
            matrix[det.class_id[d], truth.class_id[t]] += 1
    outside = _outside_ignore(det.xyxy, truth.ignore)
    for d in set(range(len(det))) - used_d:
        matrix[det.class_id[d], nc] += int(outside[d])
    for t in set(range(len(truth.xyxy))) - used_t:
        matrix[nc, truth.class_id[t]] += 1
    return matrix


def coco_precision(truths: list[Truth], dets: list[Detections], nc: int) -> np.ndarray:
    """COCO precision table (10 IoU thresholds, 101 recall points, nc classes); -1 where a class has no truth."""
    from faster_coco_eval import COCO, COCOeval_faster

    images, annotations, results = [], [], []
    for i, (truth, det) in enumerate(zip(truths, dets, strict=True)):
        images.append({"id": i, "width": truth.size[0], "height": truth.size[1]})
        boxes = [(b, int(c), 0) for b, c in zip(truth.xyxy, truth.class_id, strict=True)]
        boxes += [(b, c, 1) for b in truth.ignore for c in range(nc)]  # crowd boxes absorb matching detections
        for b, c, crowd in boxes:
            xywh = _xywh(b)
            annotations.append(
                {"id": len(annotations) + 1, "image_id": i, "category_id": c, "bbox": xywh}
                | {"area": xywh[2] * xywh[3], "iscrowd": crowd}
            )
        results += [
            {"image_id": i, "category_id": int(c), "bbox": _xywh(b), "score": float(s)}
            for b, c, s in zip(det.xyxy, det.class_id, det.confidence, strict=True)
        ]
    has_truth = np.isin(np.arange(nc), np.concatenate([t.class_id for t in truths] or [np.zeros(0)]))
    if not results:  # faster-coco-eval cannot load an empty result list; nothing found means zero precision
        return np.where(has_truth, 0.0, -1.0)[None, None, :].repeat(10, 0).repeat(101, 1)
    gt = COCO({"images": images, "annotations": annotations, "categories": [{"id": c} for c in range(nc)]})
    ev = COCOeval_faster(gt, gt.loadRes(results), "bbox")
    ev.params.maxDets = [1, 10, 300]  # the engine's max_det
    ev.evaluate()
    ev.accumulate()
    return ev.eval["precision"][:, :, :, 0, -1]  # area "all", the largest maxDets


def _xywh(b: np.ndarray) -> list[float]:
    return [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]


def class_ap(precision: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class AP50 and AP50-95 from a COCO precision table (NaN for classes without truth)."""
    valid = precision > -1
    masked = np.where(valid, precision, np.nan)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: classes without truth
        return np.nanmean(masked[0], axis=0), np.nanmean(masked, axis=(0, 1))


@dataclass
class GroupMetrics:
    images: int
    instances: np.ndarray  # per class
    ap50: np.ndarray  # per class, NaN without truth
    ap: np.ndarray
    precision: np.ndarray  # per class at the chosen confidence (NaN when nothing predicted / no truth)
    recall: np.ndarray
    confusion: np.ndarray  # (nc+1, nc+1), rows predicted, columns true, last = background
    count_error: np.ndarray  # per class: mean |predicted - true| count per image
    total_count_error: float  # mean |predicted - true| number of vehicles per image, whatever their class
    pr_curve: np.ndarray  # (101, nc) precision at IoU 0.5 over recall 0..1
    agnostic_ap50: float  # AP50 with every class merged into one: does the model find the vehicles at all

    def summary(self) -> dict:
        def mean(values: np.ndarray) -> float | None:
            present = values[self.instances > 0]
            return _num(np.nanmean(present)) if present.size and not np.isnan(present).all() else None

        return {
            "images": self.images,
            "instances": int(self.instances.sum()),
            "mAP50": mean(self.ap50),
            "mAP50-95": mean(self.ap),
            "agnostic_AP50": _num(self.agnostic_ap50),
            "precision": mean(self.precision),
            "recall": mean(self.recall),
            "count_error": _num(self.count_error.mean()),
            "total_count_error": _num(self.total_count_error),
        }


def _num(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 5)


@dataclass
class Counts:
    """What the detections at one confidence threshold make of a group of images."""

    confusion: np.ndarray  # (nc+1, nc+1), rows predicted, columns true, last = background
    count_error: np.ndarray  # per class: mean |predicted - true| count per image
    total_count_error: float  # mean |predicted - true| vehicles per image, classes merged
    instances: np.ndarray  # per class


def at_conf(truths: list[Truth], dets: list[Detections], nc: int, conf: float) -> Counts:
    """Confusion and counting errors of the detections at or above ``conf`` (see :func:`confusion` for
    what the ignore regions do)."""
    matrix = np.zeros((nc + 1, nc + 1), dtype=np.int64)
    count_error = np.zeros(nc)
    total_error = 0.0
    instances = np.zeros(nc, dtype=np.int64)
    for truth, det in zip(truths, dets, strict=True):
        image = confusion(truth, det[det.confidence >= conf], nc)
        matrix += image
        true_counts = np.bincount(truth.class_id, minlength=nc)
        predicted = image[:nc].sum(axis=1)  # every counted detection: matched, or a false alarm
        count_error += np.abs(predicted - true_counts)
        total_error += abs(int(predicted.sum()) - len(truth.class_id))
        instances += true_counts
    n = max(len(truths), 1)
    return Counts(matrix, count_error / n, total_error / n, instances)


def f1_score(matrix: np.ndarray) -> float:
    """Class-aware F1 over all boxes (micro average) from a confusion matrix with a background row/column."""
    tp = np.trace(matrix[:-1, :-1])
    predicted, true = matrix[:-1].sum(), matrix[:, :-1].sum()
    return float(2 * tp / (predicted + true)) if predicted + true else 1.0


@dataclass
class ConfSweep:
    """Counting error and F1 over confidence thresholds: what ``--set-default-conf`` chooses from."""

    conf: np.ndarray
    count_error: np.ndarray  # mean over classes, as in GroupMetrics.summary
    f1: np.ndarray

    def best(self, tolerance: float = COUNT_TOLERANCE) -> float:
        """The threshold with the lowest counting error, where errors within ``tolerance`` of the lowest count
        as tied (a few boxes' worth on a small set) and ties go to the higher F1, then to the middle one.

        Without the tolerance a threshold that finds almost nothing can win: with few vehicles per class and
        image, an empty answer is off by little, so the curve is flat and its minimum is noise."""
        lowest = np.flatnonzero(self.count_error <= self.count_error.min() + tolerance)
        tied = lowest[np.isclose(self.f1[lowest], self.f1[lowest].max())]
        return float(self.conf[tied[len(tied) // 2]])

    def error_at(self, conf: float) -> float | None:
        """The counting error at one of the swept thresholds (None if it was not swept)."""
        hit = np.flatnonzero(np.isclose(self.conf, conf))
        return float(self.count_error[hit[0]]) if hit.size else None

    def to_dict(self) -> dict:
        return {
            "conf": self.conf.tolist(),
            "count_error": [_num(v) for v in self.count_error],
            "f1": [_num(v) for v in self.f1],
            "best_count_conf": self.best(),
        }


def conf_sweep(truths: list[Truth], dets: list[Detections], nc: int, confs: np.ndarray = SWEEP_CONFS) -> ConfSweep:
    errors, f1 = [], []
    for conf in confs:
        counts = at_conf(truths, dets, nc, float(conf))
        errors.append(counts.count_error.mean())
        f1.append(f1_score(counts.confusion))
    return ConfSweep(np.asarray(confs, dtype=np.float64), np.array(errors), np.array(f1))


def agnostic_ap50(truths: list[Truth], dets: list[Detections]) -> float:
    """AP50 with all classes merged: a box on a vehicle counts whatever class it says (NaN without truth).

    An end-to-end head may give one anchor's box several classes; merged, each such box is kept once, at
    its best score (boxes identical to IoU ``SAME_BOX_IOU``), so the figure asks only where the vehicles are."""
    one = [replace(t, class_id=np.zeros_like(t.class_id)) for t in truths]
    merged = []
    for d in dets:
        keep = nms(d.xyxy, d.confidence, SAME_BOX_IOU) if len(d) else np.zeros(0, dtype=np.int64)
        merged.append(
            Detections(d.xyxy[keep], d.confidence[keep], np.zeros(len(keep)), d.image_size, d.class_names[:1])
        )
    return float(class_ap(coco_precision(one, merged, 1))[0][0])


def coverage(truths: list[Truth], dets: list[Detections], class_name: str, min_ioa: float = 0.6) -> np.ndarray:
    """Per target box (all images, in order), the best confidence of a ``class_name`` detection holding at
    least ``min_ioa`` of it (0 where none does).

    Asks whether a detector sees a vehicle at all, even inside one box around a whole train: COCO's ``train``
    class covers most of a real photo's cars that way, so the share it covers in renders says how real the
    renders look to it (``scripts/render_realism.py``)."""
    best = []
    for truth, det in zip(truths, dets, strict=True):
        if not len(truth.xyxy):
            continue
        if class_name not in det.class_names:
            raise ValueError(f"the detector has no class {class_name!r} (has {', '.join(det.class_names)})")
        mine = np.asarray(det.class_id) == det.class_names.index(class_name)
        xyxy, conf = det.xyxy[mine], det.confidence[mine]
        if not len(xyxy):
            best.append(np.zeros(len(truth.xyxy)))
            continue
        inside = box_ioa(truth.xyxy, xyxy) >= min_ioa
        best.append(np.where(inside, conf[None, :], 0.0).max(axis=1))
    return np.concatenate(best) if best else np.zeros(0)


def group_metrics(truths: list[Truth], dets: list[Detections], nc: int, conf: float) -> GroupMetrics:
    """All metrics for one group of images; ``dets`` are the low-threshold detections used for AP."""
    precision_table = coco_precision(truths, dets, nc)
    ap50, ap = class_ap(precision_table)
    counts = at_conf(truths, dets, nc, conf)
    matrix = counts.confusion
    tp = np.diag(matrix)[:nc].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / matrix[:nc].sum(axis=1)
        recall = tp / matrix[:, :nc].sum(axis=0)
    return GroupMetrics(
        images=len(truths),
        instances=counts.instances,
        ap50=ap50,
        ap=ap,
        precision=precision,
        recall=recall,
        confusion=matrix,
        count_error=counts.count_error,
        total_count_error=counts.total_count_error,
        pr_curve=precision_table[0],
        agnostic_ap50=agnostic_ap50(truths, dets),
    )


@dataclass
class FalseAlarms:
    """Detections on photos known to show no rail vehicle: every one is a false alarm."""

    images: int
    per_image: float  # mean detections per photo at the chosen confidence
    images_hit: int  # photos with at least one
    sweep: np.ndarray  # per_image at each of SWEEP_CONFS

    def to_dict(self) -> dict:
        return {
            "images": self.images,
            "false_alarms_per_image": _num(self.per_image),
            "images_with_false_alarms": self.images_hit,
            "sweep": {"conf": SWEEP_CONFS.tolist(), "false_alarms_per_image": [_num(v) for v in self.sweep]},
        }


def false_alarms(dets: list[Detections], conf: float) -> FalseAlarms:
    per_image = np.array([int((d.confidence >= conf).sum()) for d in dets])
    sweep = np.array([np.mean([(d.confidence >= c).sum() for d in dets]) if dets else 0.0 for c in SWEEP_CONFS])
    return FalseAlarms(len(dets), float(per_image.mean()) if len(dets) else 0.0, int((per_image > 0).sum()), sweep)


@dataclass
class EvalResult:
    names: list[str]
    conf: float
    overall: GroupMetrics
    views: dict[str, GroupMetrics]
    sweep: ConfSweep
    negatives: FalseAlarms | None = None

    def to_dict(self) -> dict:
        m = self.overall
        per_class = {
            name: {
                "instances": int(m.instances[c]),
                "AP50": _num(m.ap50[c]),
                "AP50-95": _num(m.ap[c]),
                "precision": _num(m.precision[c]),
                "recall": _num(m.recall[c]),
                "count_error": _num(m.count_error[c]),
            }
            for c, name in enumerate(self.names)
        }
        return {
            "conf": self.conf,
            "match_iou": MATCH_IOU,
            "overall": m.summary(),
            "per_class": per_class,
            "views": {view: g.summary() for view, g in self.views.items()},
            "conf_sweep": self.sweep.to_dict(),
            "negatives": self.negatives.to_dict() if self.negatives else None,
            "confusion_matrix": {
                "rows_predicted_cols_true": [*self.names, "background"],
                "counts": m.confusion.tolist(),
            },
        }


def model_conf(model: str | Path) -> float:
    """The threshold the model is used at by default: its own (ONNX metadata), else the default."""
    return DEFAULTS.threshold(read_metadata(model) if Path(model).suffix == ".onnx" else {})


def evaluate(
    model: str | Path,
    data: str | Path,
    split: str = "val",
    conf: float | None = None,
    iou: float = DEFAULTS.iou,
    device: str = "auto",
    imgsz: int | None = None,
    negatives: Path | None = None,
) -> EvalResult:
    """Run ``model`` over a dataset split and compute every metric, overall and per view.

    ``conf`` (default: the model's own) is the threshold for everything but AP and the sweep.
    ``negatives``: a folder of photos with no rail vehicle, for the false alarms per photo."""
    conf = model_conf(model) if conf is None else conf
    truths, names = load_truth(data, split)
    images = [t.image for t in truths]
    background = iter_images(negatives) if negatives else []
    if negatives and not background:
        raise ValueError(f"no images under {negatives}")
    raw = list(predict(model, images + background, conf=AP_CONF, iou=iou, device=device, imgsz=imgsz))
    raw, on_background = raw[: len(images)], raw[len(images) :]
    dets = [_to_dataset_classes(d, names) for d in raw]
    nc = len(names)
    views = sorted({t.view for t in truths})
    by_view = {}
    if views != [ALL]:
        for view in views:
            idx = [i for i, t in enumerate(truths) if t.view == view]
            by_view[view] = group_metrics([truths[i] for i in idx], [dets[i] for i in idx], nc, conf)
    alarms = false_alarms(on_background, conf) if negatives else None
    overall = group_metrics(truths, dets, nc, conf)
    return EvalResult(names, conf, overall, by_view, conf_sweep(truths, dets, nc), alarms)


def _to_dataset_classes(det: Detections, names: list[str]) -> Detections:
    """Re-index the model's classes to the dataset's by name; classes the dataset lacks are dropped."""
    lookup = np.array([names.index(n) if n in names else -1 for n in det.class_names], dtype=np.int64)
    ids = lookup[det.class_id] if len(det) else det.class_id
    kept = det[ids >= 0]
    return Detections(
        xyxy=kept.xyxy,
        confidence=kept.confidence,
        class_id=ids[ids >= 0],
        image_size=det.image_size,
        class_names=tuple(names),
    )


def save_report(result: EvalResult, out: Path) -> list[Path]:
    """Write metrics.json, PR curves and the confusion matrix (PNG) into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written = [out / "metrics.json", out / "pr_curves.png", out / "confusion_matrix.png", out / "conf_sweep.png"]
    written[0].write_text(json.dumps(result.to_dict(), indent=2))
    m = result.overall

    fig, ax = plt.subplots(figsize=(7, 5))
    recall_points = np.linspace(0, 1, m.pr_curve.shape[0])
    for c, name in enumerate(result.names):
        if m.instances[c]:
            ax.plot(recall_points, np.clip(m.pr_curve[:, c], 0, 1), label=f"{name} AP50 {m.ap50[c]:.3f}")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="precision-recall at IoU 0.5")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(written[1], dpi=120)
    plt.close(fig)

    labels = [*result.names, "background"]
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.imshow(m.confusion, cmap="Blues")
    for (r, c), value in np.ndenumerate(m.confusion):
        ax.text(c, r, str(value), ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set(xlabel="true", ylabel="predicted", title=f"confusion at conf {result.conf}, IoU {MATCH_IOU}")
    fig.tight_layout()
    fig.savefig(written[2], dpi=120)
    plt.close(fig)

    sweep = result.sweep
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(sweep.conf, sweep.count_error, color="tab:red", label="counting error (mean |pred - true| per class)")
    ax.axvline(sweep.best(), color="tab:red", linestyle=":", label=f"lowest at conf {sweep.best():.2f}")
    ax.axvline(result.conf, color="grey", linestyle="--", label=f"evaluated at conf {result.conf:.2f}")
    ax.set(xlabel="confidence threshold", ylabel="counting error per image", xlim=(0, 1))
    twin = ax.twinx()
    twin.plot(sweep.conf, sweep.f1, color="tab:blue", label=f"F1 at IoU {MATCH_IOU}")
    twin.set(ylabel="F1", ylim=(0, 1.02))
    lines = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(lines, [line.get_label() for line in lines], loc="upper center", fontsize=8)
    ax.set_title("choosing the confidence threshold")
    fig.tight_layout()
    fig.savefig(written[3], dpi=120)
    plt.close(fig)
    return written


def format_table(result: EvalResult) -> str:
    """Plain-text table: one row per class, then the overall row and one per view."""
    header = (
        f"{'class':<20}{'images':>8}{'inst':>7}{'P':>8}{'R':>8}{'mAP50':>8}{'mAP50-95':>10}{'cnt err':>9}{'agnAP50':>9}"
    )

    def fmt(value: float | None) -> str:
        return "-" if value is None or np.isnan(value) else f"{value:.3f}"

    rows = [header]
    m = result.overall
    for c, name in enumerate(result.names):
        cells = (m.precision[c], m.recall[c], m.ap50[c], m.ap[c])
        rows.append(
            f"{name:<20}{'':>8}{m.instances[c]:>7}"
            + "".join(f"{fmt(v):>8}" for v in cells[:3])
            + f"{fmt(cells[3]):>10}{fmt(m.count_error[c]):>9}"
        )
    for label, group in [(ALL, m), *(("view " + v, g) for v, g in result.views.items())]:
        s = group.summary()
        rows.append(
            f"{label:<20}{s['images']:>8}{s['instances']:>7}"
            + "".join(f"{fmt(s[k]):>8}" for k in ("precision", "recall", "mAP50"))
            + f"{fmt(s['mAP50-95']):>10}{fmt(s['count_error']):>9}{fmt(s['agnostic_AP50']):>9}"
        )
    if result.negatives:
        n = result.negatives
        rows.append(
            f"false alarms on {n.images} photos without rail vehicles: {n.per_image:.3f} per photo "
            f"({n.images_hit} photos with any)"
        )
    return "\n".join(rows)
