"""``railvision export``: ``.pt`` to ONNX with railvision metadata, verified against PyTorch."""

from __future__ import annotations

import argparse
from pathlib import Path

from railvision.cli import CommandError
from railvision.cli.common import config_from_args
from railvision.export import HEADS, PARITY_CONF, PARITY_IOU, ExportConfig, export
from railvision.quantize import CHECK_CONF, MIN_MEAN_IOU, MIN_RECALL
from railvision.ultralytics_env import missing_training_extra


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Export a trained .pt to ONNX, add railvision metadata, and check the ONNX file through the engine "
        f"against PyTorch on sample images (each box IoU >= {PARITY_IOU}, confidence within {PARITY_CONF}); "
        "exits non-zero if they disagree."
    )
    parser.add_argument("--weights", type=Path, required=True, help="trained checkpoint (.pt)")
    parser.add_argument("--out", type=Path, help="output .onnx (default: next to the weights)")
    parser.add_argument("--imgsz", type=int, help="square input size (default: the training size)")
    parser.add_argument("--dynamic", action="store_true", help="dynamic batch and image size")
    parser.add_argument(
        "--gate",
        choices=("prior", "max"),
        help="first write OUT.pt: the weights' kinds gated by --prior's --prior-class branch (prior: the "
        "prior says where and how sure, the trained rows which kind; max: the better of the two). For weights "
        "trained with --init-from-class and --train-only from --prior",
    )
    parser.add_argument("--prior", type=Path, help="the checkpoint the weights were fine-tuned from")
    parser.add_argument("--prior-class", default="train", help="the prior's class that finds rail vehicles")
    parser.add_argument(
        "--gate-sharpness", type=float, default=1.0, help="> 1 pushes down the runner-up kinds of each box"
    )
    parser.add_argument("--half", action="store_true", help="FP16 weights, for the CUDA provider (needs a GPU)")
    parser.add_argument(
        "--int8",
        action="store_true",
        help=f"also write NAME-int8.onnx (onnxruntime static quantisation, calibrated on --calib); kept only if "
        f"it finds >= {MIN_RECALL * 100:.0f}%% of the FP32 boxes at conf {CHECK_CONF} (same class, IoU >= 0.5) "
        f"with mean IoU >= {MIN_MEAN_IOU}, else removed and the exit code is 1 (or: railvision quantize)",
    )
    parser.add_argument("--calib", type=Path, help="folder of calibration / verification images")
    parser.add_argument("--opset", type=int, help="ONNX opset (default: Ultralytics' choice)")
    parser.add_argument(
        "--head", choices=HEADS, default="end2end", help="end2end: NMS-free (N,300,6); classic: (N,4+nc,A) + NMS"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or a CUDA index for export and the check")


def run(args: argparse.Namespace) -> int:
    if message := missing_training_extra("export"):
        raise CommandError(message)
    if not args.weights.is_file():
        raise CommandError(f"weights not found: {args.weights}")
    cfg = config_from_args(ExportConfig, args)
    result = export(cfg)
    for message in result.messages:
        print(message)
    for key, value in result.metadata.items():
        print(f"  {key}: {value}")
    if not result.parity_ok:
        raise CommandError(f"{result.onnx} does not reproduce the PyTorch model; do not ship it", code=1)
    if cfg.int8 and result.int8 is not None and result.int8.path is None:
        return 1
    return 0
