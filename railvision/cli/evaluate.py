"""``railvision eval``: metrics of a model (ONNX or .pt) on a YOLO dataset split."""

from __future__ import annotations

import argparse
from pathlib import Path

from railvision.cli import CommandError
from railvision.evaluate import MATCH_IOU, evaluate, format_table, save_report
from railvision.options import CONF_KEY, DEFAULT_CONF, DEFAULTS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help=".onnx (run by the engine) or .pt (Ultralytics)")
    parser.add_argument("--data", type=Path, required=True, help="dataset data.yaml")
    parser.add_argument("--split", default="val", help="train, val or test (default val)")
    parser.add_argument(
        "--conf",
        type=float,
        default=None,
        help=f"confidence for precision, recall, confusion and counts (IoU >= {MATCH_IOU}); AP uses all boxes "
        f"(default: the model's own, else {DEFAULT_CONF:g})",
    )
    parser.add_argument("--iou", type=float, default=DEFAULTS.iou, help="NMS IoU for classic-head models")
    parser.add_argument("--imgsz", type=int, help="inference size (default: the model's)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument(
        "--negatives", type=Path, help="folder of photos with no rail vehicle: reports the false alarms per photo"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/eval"), help="folder for metrics.json and plots")
    parser.add_argument(
        "--set-default-conf",
        action="store_true",
        help="store the threshold with the lowest counting error in the ONNX model, as its default conf "
        "(use a held-out set the model was not trained on)",
    )


def run(args: argparse.Namespace) -> int:
    if not args.model.is_file() or not args.data.is_file():
        raise CommandError(f"not found: {args.model if not args.model.is_file() else args.data}")
    if args.set_default_conf and args.model.suffix != ".onnx":
        raise CommandError("--set-default-conf needs an .onnx model")
    result = evaluate(args.model, args.data, args.split, args.conf, args.iou, args.device, args.imgsz, args.negatives)
    print(format_table(result))
    best, at_chosen = result.sweep.best(), result.sweep.error_at(result.conf)
    print(
        f"counting error is lowest at conf {best:.2f} ({result.sweep.error_at(best):.3f} per class per image)"
        + (f"; at conf {result.conf:.2f}: {at_chosen:.3f}" if at_chosen is not None else "")
    )
    for path in save_report(result, args.out):
        print(f"wrote {path}")
    if args.set_default_conf:
        from railvision.engine import write_metadata

        write_metadata(args.model, {CONF_KEY: f"{best:.2f}"})
        print(f"{args.model}: default conf set to {best:.2f}")
    return 0
