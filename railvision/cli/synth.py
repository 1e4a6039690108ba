"""``railvision synth``: write a labelled synthetic YOLO dataset (see ``railvision.synth``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from railvision.cli import CommandError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output dataset folder")
    parser.add_argument("--n", type=int, required=True, help="number of images")
    parser.add_argument("--views", default="ground,overhead", help="comma list of ground, overhead")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same dataset byte for byte")
    parser.add_argument("--imgsz", type=int, default=640, help="square image size in pixels (64-2048)")
    parser.add_argument("--workers", type=int, default=max(1, os.cpu_count() or 1), help="worker processes")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="share of images in the val split")
    parser.add_argument(
        "--clean-fraction",
        type=float,
        default=0.0,
        help="share of scenes without clutter or occluders "
        "(lorries, buildings, trees, masts, fences, platforms, bridge trusses)",
    )
    parser.add_argument(
        "--backgrounds",
        type=Path,
        default=None,
        help="folder with ground/ and overhead/ photos (default: $RAILVISION_BACKGROUNDS or "
        "../shared/backgrounds when present; procedural backgrounds otherwise)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="write into a non-empty folder that is not a synth output"
    )


def run(args: argparse.Namespace) -> int:
    from railvision.synth.post import default_backgrounds

    views = tuple(v.strip() for v in args.views.split(",") if v.strip())
    from railvision.synth.dataset import VIEWS, SynthConfig, generate, print_progress

    bad = [v for v in views if v not in VIEWS]
    if not views or bad:
        raise CommandError(f"unknown view(s) {', '.join(bad) or '(none)'}; choose from {', '.join(VIEWS)}")
    if args.n <= 0:
        raise CommandError(f"--n must be a positive number of images, got {args.n}")
    if not 64 <= args.imgsz <= 2048 or args.imgsz % 32:
        raise CommandError(f"--imgsz must be a multiple of 32 between 64 and 2048, got {args.imgsz}")
    if args.workers < 1:
        raise CommandError(f"--workers must be at least 1, got {args.workers}")
    if not 0.0 <= args.val_fraction <= 1.0:
        raise CommandError(f"--val-fraction must be in [0, 1] (1: a test set, all val), got {args.val_fraction}")
    if not 0.0 <= args.clean_fraction <= 1.0:
        raise CommandError(f"--clean-fraction must be in [0, 1], got {args.clean_fraction}")
    backgrounds = args.backgrounds if args.backgrounds is not None else default_backgrounds()
    if backgrounds is not None and not backgrounds.is_dir():
        raise CommandError(f"--backgrounds {backgrounds} is not a folder")
    cfg = SynthConfig(
        args.out,
        args.n,
        tuple(dict.fromkeys(views)),
        args.seed,
        args.imgsz,
        args.val_fraction,
        backgrounds,
        args.clean_fraction,
    )
    stats = generate(cfg, workers=args.workers, overwrite=args.overwrite, progress=print_progress)
    print(f"wrote {stats['images']} images ({stats['instances']} boxes, {stats['negatives']} negatives) to {args.out}")
    for name, count in stats["instances_per_class"].items():
        print(f"  {name}: {count}")
    return 0
