"""``railvision eval``: metrics of a model (ONNX or .pt) on a YOLO dataset split."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from railvision.errors import RailvisionError
from railvision.evaluate import MATCH_IOU, evaluate, format_table, save_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help=".onnx (run by the engine) or .pt (Ultralytics)")
    parser.add_argument("--data", type=Path, required=True, help="dataset data.yaml")
    parser.add_argument("--split", default="val", help="train, val or test (default val)")
    parser.add_argument(
        "--conf",
        type=float,
        default=0.25,
        help=f"confidence for precision, recall, confusion and counts (IoU >= {MATCH_IOU}); AP uses all boxes",
    )
    parser.add_argument("--iou", type=float, default=0.7, help="NMS IoU for classic-head models")
    parser.add_argument("--imgsz", type=int, help="inference size (default: the model's)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--out", type=Path, default=Path("runs/eval"), help="folder for metrics.json and plots")


def run(args: argparse.Namespace) -> int:
    if not args.model.is_file() or not args.data.is_file():
        print(f"not found: {args.model if not args.model.is_file() else args.data}", file=sys.stderr)
        return 2
    try:
        result = evaluate(args.model, args.data, args.split, args.conf, args.iou, args.device, args.imgsz)
    except (ValueError, RailvisionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(result))
    for path in save_report(result, args.out):
        print(f"wrote {path}")
    return 0
