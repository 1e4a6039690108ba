"""``railvision quantize``: an INT8 copy of an exported ONNX model, calibrated on photos, checked against it."""

from __future__ import annotations

import argparse
from pathlib import Path

from railvision.cli import CommandError
from railvision.engine import find_model
from railvision.export import int8_verdict
from railvision.quantize import CALIB_IMAGES, CHECK_CONF, MIN_MEAN_IOU, MIN_RECALL, calibration_images, quantize


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Write NAME-int8.onnx beside an exported model: onnxruntime static quantisation (QDQ; convolutions in "
        "INT8, the head's output convolutions in FP32), calibrated on photos letterboxed as the engine feeds them. "
        f"Kept only if it finds >= {MIN_RECALL * 100:.0f}%% of the FP32 boxes at conf {CHECK_CONF} on those photos "
        f"(same class, IoU >= 0.5) with mean IoU >= {MIN_MEAN_IOU}; measure it with railvision eval."
    )
    parser.add_argument("model", help="the FP32 .onnx (or a shipped model's short name)")
    parser.add_argument(
        "--calib", type=Path, action="append", required=True, metavar="DIR",
        help="folder of calibration photos (repeat: synthetic scenes and real photos, drawn from evenly)",
    )  # fmt: skip
    parser.add_argument("--images", type=int, default=CALIB_IMAGES, help="calibration photos in all")
    parser.add_argument("--out", type=Path, help="default: NAME-int8.onnx beside the model")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    result = quantize(find_model(args.model), calibration_images(args.calib, args.images, args.seed), args.out)
    print(int8_verdict(result))
    if result.path is None:
        raise CommandError("the INT8 copy drifted from the FP32 model; nothing written", code=1)
    return 0
