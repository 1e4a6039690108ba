"""``railvision detect``: counts per class for each image, optional JSON and annotated copies."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2

from railvision.cli import CommandError
from railvision.draw import draw_detections
from railvision.engine import Detector
from railvision.errors import RailvisionError
from railvision.images import iter_images, load_frame
from railvision.options import DEFAULT_CONF, DEFAULTS, TILES, DetectOptions


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Model and detection flags shared by every command that runs the engine (unset: ``DEFAULTS``)."""
    parser.add_argument(
        "--model", default=None, help="ONNX file, or a model by name: default, synth, int8 (railvision quantize)"
    )
    parser.add_argument(
        "--conf", type=float, help=f"confidence threshold (default: the model's own, else {DEFAULT_CONF:g})"
    )
    parser.add_argument("--iou", type=float, help=f"NMS IoU threshold for classic heads (default {DEFAULTS.iou:g})")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default auto)")
    parser.add_argument("--tile", choices=TILES, help=f"tiled inference (default {DEFAULTS.tile})")


def detect_options(args: argparse.Namespace) -> DetectOptions:
    """The flags given, over the defaults (the model's own threshold is filled in by the detector)."""
    return DEFAULTS.override(conf=args.conf, iou=args.iou, tile=args.tile)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="images or folders (searched recursively)")
    add_model_arguments(parser)
    parser.add_argument("--save-annotated", type=Path, metavar="DIR", help="write copies with boxes drawn here")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write all detections as JSON")


def _table_row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))


def run(args: argparse.Namespace) -> int:
    detector = Detector(args.model, device=args.device, options=detect_options(args))
    files = [f for p in args.paths for f in (iter_images(p) if p.is_dir() else [p])]
    if not files:
        raise CommandError("no images found in the given paths")
    print(
        f"model {detector.model_path.name} on {detector.provider}, input {detector.imgsz[1]}x{detector.imgsz[0]}, "
        f"conf {detector.conf:g} ({detector.conf_source})"
    )
    names = list(detector.class_names)
    width = max(len(str(f)) for f in files)
    widths = [max(width, 5), *(max(len(n), 3) for n in names), 5, 7]
    print(_table_row(["image", *names, "total", "ms"], widths))
    report, failed = [], 0
    if args.save_annotated:
        args.save_annotated.mkdir(parents=True, exist_ok=True)
    for path in files:
        start = time.perf_counter()
        try:
            # decoded once; whole when drawn on below, else at the reduced size the model sees
            image = load_frame(path, None if args.save_annotated else detector.imgsz)
            [result] = detector.detect_frames([image])
        except RailvisionError as exc:
            failed += 1
            print(f"{str(path).ljust(widths[0])}  error: {exc}")
            report.append({"path": str(path), "error": str(exc), "error_kind": getattr(exc, "kind", "error")})
            continue
        ms = (time.perf_counter() - start) * 1e3
        counts = result.counts()
        print(_table_row([str(path), *(str(counts[n]) for n in names), str(len(result)), f"{ms:.0f}"], widths))
        report.append({"path": str(path), **result.to_dict(), "tiles": result.meta["tiles"]})
        if args.save_annotated:
            target = args.save_annotated / f"{path.stem}.jpg"
            cv2.imwrite(str(target), draw_detections(image.pixels, result))
    done = len(files) - failed
    totals = {n: sum(r.get("counts", {}).get(n, 0) for r in report) for n in names}
    print(_table_row(["total", *(str(totals[n]) for n in names), str(sum(totals.values())), ""], widths))
    print(f"{done} image(s) processed, {failed} failed")
    if args.json:
        args.json.write_text(json.dumps({"model": detector.model_path.name, "images": report}, indent=2))
        print(f"detections written to {args.json}")
    if args.save_annotated:
        print(f"annotated copies written to {args.save_annotated}")
    return 1 if failed else 0
