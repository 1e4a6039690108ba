"""Export a trained ``.pt`` to the ONNX file the engine runs, and prove the two agree.

Ultralytics writes the graph (simplified with onnxslim) and its own metadata; we add
the ``railvision_*`` keys the engine and the service report, then run the PyTorch
model (Ultralytics ``predict``, square letterbox) and the ONNX file (our ``Detector``)
on the same images and compare box by box. An optional INT8 copy is made with
onnxruntime static quantisation and kept only if it stays close to the FP32 file.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np

from railvision.boxes import box_iou
from railvision.detections import Detections
from railvision.images import iter_images, load_image
from railvision.taxonomy import TAXONOMY_VERSION
from railvision.ultralytics_env import import_ultralytics, nms_arg, resolve_device, ultralytics_predict

HEADS = ("end2end", "classic")

# Agreement demanded of the ONNX file against PyTorch (same precision: tiny float differences only).
PARITY_IOU = 0.98
PARITY_CONF = 0.01
# FP16 rounds logits and box coordinates; the bound is looser but still tight enough to catch a broken graph.
PARITY_IOU_HALF = 0.95
PARITY_CONF_HALF = 0.03
# The INT8 copy is kept only if, on the calibration images, at least this share of the FP32 file's boxes
# (conf >= INT8_CONF) are found again by the INT8 file (same class, IoU >= 0.5), with this mean IoU.
INT8_RECALL = 0.9
INT8_MEAN_IOU = 0.9
INT8_CONF = 0.25
# Boxes this close to the confidence threshold may legitimately fall on either side of it.
THRESHOLD_MARGIN = 0.005


@dataclass
class ExportConfig:
    weights: Path
    out: Path | None = None  # default: next to the weights, same stem, .onnx
    imgsz: int | None = None  # default: the training size stored in the checkpoint
    dynamic: bool = False
    half: bool = False
    int8: bool = False
    calib: Path | None = None
    opset: int | None = None
    head: str = "end2end"
    device: str = "auto"
    verify_conf: float = 0.01  # low, so that even generated sample images give boxes to compare
    verify_images: int = 8
    gate: str | None = None  # heads.GATES: first gate the class branches by a prior checkpoint's class
    prior: Path | None = None  # the checkpoint the weights were fine-tuned from, its features frozen
    prior_class: str = "train"
    gate_sharpness: float = 1.0


@dataclass
class Comparison:
    """Box-by-box agreement of a test result with a reference result."""

    compared: int = 0  # reference boxes clearly above threshold
    ious: list[float] = field(default_factory=list)  # of matched pairs
    conf_deltas: list[float] = field(default_factory=list)
    missing: int = 0  # reference boxes with no same-class partner in the test result
    extra: int = 0  # test boxes clearly above threshold with no partner in the reference
    class_flips: int = 0  # pairs of different class (only possible with same_class=False)

    def add(self, other: Comparison) -> None:
        self.compared += other.compared
        self.ious += other.ious
        self.conf_deltas += other.conf_deltas
        self.missing += other.missing
        self.extra += other.extra
        self.class_flips += other.class_flips

    @property
    def min_iou(self) -> float:
        return min(self.ious, default=1.0)

    @property
    def mean_iou(self) -> float:
        return float(np.mean(self.ious)) if self.ious else 1.0

    @property
    def max_conf_delta(self) -> float:
        return max(self.conf_deltas, default=0.0)

    def summary(self) -> str:
        return (
            f"{self.compared} boxes compared, {len(self.ious)} matched, {self.missing} missing, {self.extra} extra, "
            f"IoU min {self.min_iou:.4f} mean {self.mean_iou:.4f}, max conf delta {self.max_conf_delta:.4f}"
        )


@dataclass
class ExportResult:
    onnx: Path
    metadata: dict[str, str]
    parity: Comparison
    parity_ok: bool
    int8: Path | None = None
    int8_check: Comparison | None = None
    messages: list[str] = field(default_factory=list)


def compare(
    reference: Detections,
    test: Detections,
    conf: float,
    min_iou: float = 0.5,
    margin: float = THRESHOLD_MARGIN,
    same_class: bool = True,
) -> Comparison:
    """Greedily pair each confident reference box with the best-overlapping (same-class) test box.

    Only boxes at least ``margin`` above ``conf`` count as required, so a box at 0.051 in one
    model and 0.049 in the other is not a disagreement. ``same_class=False`` pairs boxes by
    overlap alone and counts class disagreements in ``class_flips``.
    """
    result = Comparison()
    iou = box_iou(reference.xyxy, test.xyxy)
    if same_class:
        iou[reference.class_id[:, None] != test.class_id[None, :]] = 0.0
    taken = np.zeros(len(test), dtype=bool)
    for i in np.argsort(-reference.confidence, kind="stable"):
        candidates = np.where(taken, -1.0, iou[i])
        j = int(candidates.argmax()) if len(test) else -1
        paired = j >= 0 and candidates[j] >= min_iou
        if paired:
            taken[j] = True
        if reference.confidence[i] < conf + margin:
            continue
        result.compared += 1
        if paired:
            result.class_flips += int(reference.class_id[i] != test.class_id[j])
            result.ious.append(float(iou[i, j]))
            result.conf_deltas.append(abs(float(reference.confidence[i] - test.confidence[j])))
        else:
            result.missing += 1
    result.extra = int(np.sum(~taken & (test.confidence >= conf + margin)))
    return result


def data_hash(weights: Path) -> str:
    """sha256 of the data.yaml the checkpoint was trained on, or "" when it cannot be read any more."""
    import torch

    ckpt = torch.load(weights, map_location="cpu", weights_only=False)
    data = (ckpt.get("train_args") or {}).get("data") if isinstance(ckpt, dict) else None
    path = Path(str(data)) if data else None
    return hashlib.sha256(path.read_bytes()).hexdigest() if path and path.is_file() else ""


def railvision_metadata(weights: Path, head: str) -> dict[str, str]:
    return {
        "railvision_head": head,
        "railvision_taxonomy_version": TAXONOMY_VERSION,
        "railvision_data_hash": data_hash(weights),
        "railvision_date": date.today().isoformat(),
        "railvision_source": Path(weights).name,
    }


def write_metadata(onnx_path: Path, extra: dict[str, str]) -> None:
    """Add or replace ``metadata_props`` entries of an ONNX file in place."""
    import onnx

    model = onnx.load(str(onnx_path))
    kept = [p for p in model.metadata_props if p.key not in extra]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in extra.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(onnx_path))


def sample_images(calib: Path | None, limit: int, size: int = 480, seed: int = 0) -> list[np.ndarray]:
    """Images to compare on: the calibration folder, else generated scenes of coloured blocks on noise."""
    if calib is not None:
        paths = iter_images(calib)[:limit]
        if not paths:
            raise ValueError(f"no images in {calib}")
        return [load_image(p) for p in paths]
    import cv2

    rng = np.random.default_rng(seed)
    images = []
    for _ in range(limit):
        h, w = size, int(size * rng.uniform(1.0, 1.6))
        image = rng.integers(60, 200, (h, w, 3), dtype=np.uint8)
        for _ in range(int(rng.integers(2, 6))):
            bw, bh = (int(v) for v in rng.integers(w // 8, w // 3, 2))
            x, y = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
            cv2.rectangle(image, (x, y), (x + bw, y + bh), tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
        images.append(image)
    return images


def compare_models(
    reference: Iterator[Detections], test: Iterator[Detections], conf: float, min_iou: float = 0.5
) -> Comparison:
    total = Comparison()
    for ref, tst in zip(reference, test, strict=True):
        total.add(compare(ref, tst, conf, min_iou))
    return total


def export(cfg: ExportConfig, log=print) -> ExportResult:
    """Export, tag, verify and optionally quantise; see the module docstring."""
    if cfg.head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {cfg.head!r}")
    if cfg.int8 and cfg.calib is None:
        raise ValueError("--int8 needs --calib DIR with calibration images")
    import_ultralytics()
    from ultralytics import YOLO

    from railvision.engine import Detector

    device = resolve_device(cfg.device)
    if cfg.half and device == "cpu":
        raise ValueError("--half (FP16) export needs a CUDA device; FP16 ONNX is for the CUDA provider")
    weights = Path(cfg.weights)
    out = Path(cfg.out) if cfg.out else weights.with_suffix(".onnx")
    if cfg.gate:
        if cfg.prior is None:
            raise ValueError("--gate needs --prior: the checkpoint the weights were fine-tuned from")
        from railvision.heads import write_prior_gated

        gated = out.with_suffix(".pt")
        if gated.resolve() == weights.resolve():
            raise ValueError(f"--gate would overwrite the weights {weights}; choose another --out")
        weights = write_prior_gated(weights, cfg.prior, cfg.prior_class, cfg.gate, gated, cfg.gate_sharpness)
        log(f"wrote {weights} (kinds gated by {cfg.prior}'s {cfg.prior_class!r}, {cfg.gate})")
    # Ultralytics writes next to the weights it loaded: export a staged copy, so that an --out elsewhere
    # never overwrites (or moves away) an .onnx that already sits beside the weights.
    with tempfile.TemporaryDirectory(prefix="railvision-export-") as staging:
        staged = Path(staging) / weights.name
        shutil.copy2(weights, staged)
        model = YOLO(str(staged))
        imgsz = cfg.imgsz or int((model.ckpt.get("train_args") or {}).get("imgsz", 640))
        written = model.export(
            format="onnx",
            imgsz=imgsz,
            dynamic=cfg.dynamic,
            half=cfg.half,
            simplify=True,
            opset=cfg.opset,
            nms=nms_arg(cfg.head),
            device=device,
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(written, out)
    metadata = railvision_metadata(weights, cfg.head)
    write_metadata(out, metadata)
    log(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, head {cfg.head}, imgsz {imgsz})")

    images = sample_images(cfg.calib, cfg.verify_images)
    detector = Detector(out, device="cuda" if device != "cpu" else "cpu", conf=cfg.verify_conf)
    iou_bound, conf_bound = (PARITY_IOU_HALF, PARITY_CONF_HALF) if cfg.half else (PARITY_IOU, PARITY_CONF)
    parity = compare_models(
        ultralytics_predict(
            YOLO(str(weights)),
            images,
            imgsz=imgsz,
            conf=cfg.verify_conf,
            iou=detector.options.iou,  # the engine's own NMS threshold, so both sides suppress alike
            head=cfg.head,
            device=device,
            rect=detector.rect_stride is not None,
        ),
        iter(detector.detect(list(images))),
        cfg.verify_conf,
    )
    parity_ok = parity.missing == 0 and parity.extra == 0 and parity.min_iou >= iou_bound
    parity_ok &= parity.max_conf_delta <= conf_bound
    result = ExportResult(out, metadata, parity, parity_ok)
    verdict = "OK" if parity_ok else f"FAILED (needs IoU >= {iou_bound}, conf delta <= {conf_bound}, none missing)"
    if parity.compared == 0:
        verdict += f", but vacuous: nothing above conf {cfg.verify_conf + THRESHOLD_MARGIN}; use --calib real images"
    result.messages.append(f"ONNX vs PyTorch on {len(images)} images: {parity.summary()}: {verdict}")
    if parity_ok and cfg.int8:
        result.int8, result.int8_check = quantize_int8(out, images, detector.imgsz)
        if result.int8 is None:
            result.messages.append(
                f"INT8 copy removed: {result.int8_check.summary()} "
                f"(needs recall >= {INT8_RECALL} and mean IoU >= {INT8_MEAN_IOU} of FP32 boxes at conf {INT8_CONF})"
            )
        else:
            result.messages.append(f"INT8 copy {result.int8}: {result.int8_check.summary()}: OK")
    return result


def quantize_int8(fp32: Path, images: list[np.ndarray], imgsz: tuple[int, int]) -> tuple[Path | None, Comparison]:
    """Static INT8 quantisation calibrated on ``images``; the file is deleted again if it drifts too far."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from railvision.engine import Detector, letterbox, to_blob

    class Reader(CalibrationDataReader):
        def __init__(self, input_name: str) -> None:
            self.batches = iter([{input_name: to_blob([letterbox(im, imgsz)[0]])} for im in images])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    fp32_detector = Detector(fp32, device="cpu", conf=INT8_CONF)
    int8 = fp32.with_name(f"{fp32.stem}-int8.onnx")
    quantize_static(
        str(fp32),
        str(int8),
        Reader(fp32_detector.input_name),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
    )
    write_metadata(int8, fp32_detector.metadata)
    check = compare_models(
        iter(fp32_detector.detect(list(images))),
        iter(Detector(int8, device="cpu", conf=INT8_CONF).detect(list(images))),
        INT8_CONF,
    )
    recall = len(check.ious) / check.compared if check.compared else 0.0
    if recall < INT8_RECALL or check.mean_iou < INT8_MEAN_IOU:
        int8.unlink()
        return None, check
    return int8, check
