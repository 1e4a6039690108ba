"""``railvision train``: train or fine-tune a detector on a YOLO dataset (needs the ``train`` extra)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from railvision.cli import CommandError
from railvision.cli.common import config_from_args
from railvision.train import (
    AUGMENTATIONS,
    DEFAULT_EPOCHS,
    MIN_STEPS,
    PRETRAINED_WEIGHTS,
    SHIPPED_WEIGHTS,
    SOLVERS,
    TRAINABLE,
    TrainConfig,
    train,
)
from railvision.ultralytics_env import missing_training_extra


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="dataset data.yaml (YOLO layout)")
    parser.add_argument(
        "--weights",
        help=f"start checkpoint (.pt), Ultralytics model name or .yaml; default {SHIPPED_WEIGHTS} if present, "
        f"else {PRETRAINED_WEIGHTS} if present, else yolo26n.yaml from scratch",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        help=f"epochs (default {DEFAULT_EPOCHS}, more for a handful of photos so that training takes at least "
        f"{MIN_STEPS} optimiser steps; with --hours: the first estimate)",
    )
    parser.add_argument(
        "--hours",
        type=float,
        help="stop after this many hours, with the epoch count and LR schedule refitted to fit (CPU runs)",
    )
    parser.add_argument(
        "--stop-after",
        type=int,
        metavar="N",
        help="end after N epochs of the --epochs schedule (reproduces a checkpoint taken mid-run)",
    )
    parser.add_argument("--imgsz", type=int, default=640, help="square training size in pixels")
    parser.add_argument(
        "--batch", type=int, default=TrainConfig.batch, help="batch size (-1: Ultralytics auto on CUDA)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, 0, 0,1 ...")
    parser.add_argument(
        "--resume", action="store_true", help="continue an interrupted run (--weights LAST.pt or PROJECT/NAME)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--augment", choices=list(AUGMENTATIONS), default="mixed", help="domain augmentation set (default mixed)"
    )
    parser.add_argument(
        "--synthetic", type=int, default=0, metavar="N", help="mix N freshly generated synthetic images into training"
    )
    parser.add_argument(
        "--repeat-rare",
        type=float,
        default=TrainConfig.repeat_rare,
        metavar="T",
        help="repeat the photos of classes seen in under a share T of them, by sqrt(T / share) "
        "(LVIS repeat-factor sampling; e.g. 0.3; default 0: off)",
    )
    parser.add_argument("--project", type=Path, default=Path("runs/train"), help="parent folder of runs")
    parser.add_argument("--name", default="exp", help="run name (Ultralytics appends a number if it exists)")
    parser.add_argument("--workers", type=int, default=4, help="dataloader worker processes")
    parser.add_argument(
        "--freeze",
        type=int,
        default=TrainConfig.freeze,
        metavar="N",
        help=f"keep the first N layers fixed (default {TrainConfig.freeze}: the backbone; 0: train everything)",
    )
    parser.add_argument(
        "--optimizer",
        default=TrainConfig.optimizer,
        help=f"Ultralytics optimizer (default {TrainConfig.optimizer}; auto: Ultralytics picks it and its LR)",
    )
    parser.add_argument(
        "--lr0",
        type=float,
        default=TrainConfig.lr0,
        help=f"initial learning rate (default {TrainConfig.lr0}, measured for a few dozen photos from the shipped "
        "model; ignored with --optimizer auto)",
    )
    parser.add_argument(
        "--init-from-class",
        metavar="NAME",
        help="start every class's final classification conv (all scales, both heads) as a copy of the start "
        "checkpoint's row for class NAME (e.g. COCO 'train'), so training only has to split it into the kinds",
    )
    parser.add_argument(
        "--train-only",
        choices=TRAINABLE,
        help="train only the final class convs, the classification branches or the detection head; the rest "
        "(batch-norm statistics included) keeps what the start checkpoint learned from real photos, and a "
        "gated start (the shipped model) keeps its gate",
    )
    parser.add_argument(
        "--solver",
        choices=SOLVERS,
        default=TrainConfig.solver,
        help="sgd: Ultralytics training; linear: fit the class rows in closed form (multinomial logistic "
        "regression on the frozen features at the labelled boxes: a minute or two on a CPU, no epochs; "
        "--set l2=0.03, balanced=false, cells_per_box=12 are its defaults)",
    )
    parser.add_argument(
        "--set",
        dest="extra",
        action="append",
        type=ultralytics_override,
        default=[],
        metavar="KEY=VALUE",
        help="any other Ultralytics training argument, e.g. --set mosaic=0.5 --set lr0=0.002 (repeatable)",
    )
    parser.add_argument(
        "--no-val", dest="val", action="store_false", help="validate only after the last epoch (saves time on CPU)"
    )


def ultralytics_override(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` with the value read as YAML (numbers, booleans, lists), as Ultralytics' own CLI does."""
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), yaml.safe_load(value)


def run(args: argparse.Namespace) -> int:
    if message := missing_training_extra("train"):
        raise CommandError(message)
    args.extra = dict(args.extra)
    cfg = config_from_args(TrainConfig, args)
    if not 0.0 <= cfg.repeat_rare <= 1.0:
        raise CommandError(f"--repeat-rare is a share of the photos, in [0, 1]; got {cfg.repeat_rare}")
    if not cfg.resume and not cfg.data.is_file():
        raise CommandError(f"data file not found: {cfg.data}")
    try:
        result = train(cfg)
    except RuntimeError as exc:  # what training could not do (e.g. no synthetic data): the run failed
        raise CommandError(str(exc), code=1) from exc
    print(f"trained in {result.seconds:.0f} s from {result.weights} on {result.data}")
    print(f"weights: {result.best} (best), {result.last} (last)")
    if cfg.solver == "sgd":
        print(f"metrics: {result.save_dir / 'results.csv'}")
        print(f"plots:   {result.save_dir}/*.png")
    print(json.dumps({k: round(v, 4) for k, v in result.metrics.items()}, indent=1))
    return 0
