"""``railvision label``: label a whole photo archive, resumably, into annotation and GIS formats."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import cv2

from railvision.cli import CommandError
from railvision.cli.detect import add_model_arguments, detect_options
from railvision.engine import find_model
from railvision.errors import OutOfSpaceError
from railvision.labelling import FORMATS, LabelOptions, label_archive


def _formats(value: str) -> list[str]:
    chosen = [f.strip() for f in value.split(",") if f.strip()]
    unknown = sorted(set(chosen) - set(FORMATS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown format(s) {', '.join(unknown)}; choose from {','.join(FORMATS)}")
    return chosen


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("archive", type=Path, metavar="ARCHIVE", help="folder of photos (searched recursively)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (also holds the resumable state)")
    add_model_arguments(parser)
    parser.add_argument(
        "--format", type=_formats, default=list(FORMATS), help=f"outputs, comma-separated (default {','.join(FORMATS)})"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="lanes on the CPU (one model thread each), decoding threads on a GPU, or Ray actors (default: CPUs)",
    )
    parser.add_argument(
        "--batch", type=int, default=8, help="images saved per step, and per model call on a GPU (default 8)"
    )
    parser.add_argument("--annotated", action="store_true", help="also write copies with boxes drawn (OUT/annotated)")
    parser.add_argument("--report", action="store_true", help="write a self-contained OUT/report.html")
    parser.add_argument(
        "--labelstudio-prefix",
        default="",
        metavar="URL",
        help="put before each photo's path in labelstudio.json, e.g. /data/local-files/?d=archive/ "
        "(default: the bare path relative to the archive)",
    )
    parser.add_argument("--engine", choices=["local", "ray"], default="local", help="where to run (default local)")
    parser.add_argument("--ray-address", default=None, help="Ray cluster to join (default: a local instance)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


class Progress:
    """tqdm bar on stderr (images/s, time left), created once the number of photos to do is known."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.bar = enabled, None

    def start(self, total: int) -> None:
        if not self.enabled:
            return
        try:
            from tqdm import tqdm
        except ImportError:
            print(f"labelling {total} images (install railvision[label] for a progress bar)", file=sys.stderr)
            return
        self.bar = tqdm(total=total, unit="img", file=sys.stderr, desc="labelling", smoothing=0.1)

    def update(self, done: int) -> None:
        if self.bar is not None:
            self.bar.update(done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run(args: argparse.Namespace) -> int:
    if not args.archive.is_dir():
        raise CommandError(f"{args.archive} is not a folder")
    if args.workers < 1 or args.batch < 1:
        raise CommandError("--workers and --batch must be at least 1")
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # not one libtiff warning per GeoTIFF tag
    options = LabelOptions(
        model=find_model(args.model), device=args.device, detect=detect_options(args),
        annotated=args.annotated, batch=args.batch, workers=args.workers,
    )  # fmt: skip
    progress = Progress(not args.no_progress)
    try:
        summary = label_archive(
            args.archive, args.out, options, formats=args.format, report=args.report, engine=args.engine,
            ray_address=args.ray_address, labelstudio_prefix=args.labelstudio_prefix,
            on_start=progress.start, on_batch=progress.update,
        )  # fmt: skip
    except KeyboardInterrupt:
        raise KeyboardInterrupt("finished batches are saved; run the same command again to resume") from None
    except OutOfSpaceError as exc:  # the run failed, not its arguments: exit code 1
        raise CommandError(str(exc), code=1) from None
    finally:  # before main prints what went wrong
        progress.close()
    if summary.restarted:
        print("the model or settings changed since the last run: everything was labelled again")
    print("\n".join(summary.lines()))
    print(f"outputs in {args.out}")
    return 0
