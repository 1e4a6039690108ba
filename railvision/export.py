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
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np

from railvision.agreement import THRESHOLD_MARGIN, Comparison, compare_models
from railvision.images import iter_images, load_image
from railvision.quantize import CHECK_CONF, MIN_MEAN_IOU, MIN_RECALL, Quantized, calibration_images, quantize
from railvision.taxonomy import TAXONOMY_VERSION
from railvision.ultralytics_env import import_ultralytics, nms_arg, resolve_device, ultralytics_predict

HEADS = ("end2end", "classic")

# Agreement demanded of the ONNX file against PyTorch (same precision: tiny float differences only).
PARITY_IOU = 0.98
PARITY_CONF = 0.01
# FP16 rounds logits and box coordinates; the bound is looser but still tight enough to catch a broken graph.
PARITY_IOU_HALF = 0.95
PARITY_CONF_HALF = 0.03


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
class ExportResult:
    onnx: Path
    metadata: dict[str, str]
    parity: Comparison
    parity_ok: bool
    int8: Quantized | None = None
    messages: list[str] = field(default_factory=list)


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


def export(cfg: ExportConfig, log=print) -> ExportResult:
    """Export, tag, verify and optionally quantise; see the module docstring."""
    if cfg.head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {cfg.head!r}")
    if cfg.int8 and cfg.calib is None:
        raise ValueError("--int8 needs --calib DIR with calibration images")
    import_ultralytics()
    from ultralytics import YOLO

    from railvision.engine import Detector, write_metadata

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
        result.int8 = quantize(out, calibration_images([cfg.calib]))  # type: ignore[list-item]
        result.messages.append(int8_verdict(result.int8))
    return result


def int8_verdict(q: Quantized) -> str:
    """One line on an INT8 copy: kept, or removed and why."""
    if q.path is None:
        return (
            f"INT8 copy removed: {q.summary()} (needs recall >= {MIN_RECALL} and mean IoU >= {MIN_MEAN_IOU} "
            f"of the FP32 boxes at conf {CHECK_CONF})"
        )
    return f"INT8 copy {q.path}: {q.summary()}: OK"
