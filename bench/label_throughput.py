"""Archive labelling throughput: ``railvision label`` vs the engine's own batches vs Ultralytics ``predict``.

    python bench/label_throughput.py [--pt W.pt --onnx W.onnx] [--images 200] [--runs 3] [--workers 2]

Generates an archive of 1280x720 JPEGs and, per run, measures images per second of
  - the labeller (all output formats written, from a fresh state; ``--workers`` lanes, each
    decoding and running its own one-thread session, so one lane's decoding overlaps the others' model),
  - the engine's own batch throughput: ``Detector.detect`` on lists of ``--batch`` paths, one
    thread (decode, then run, in turn),
  - Ultralytics ``predict`` (stream, its defaults) with the ``.pt`` behind the ONNX file over the
    same folder, with torch on its default threads and with torch given every core (equal cores);
then the median over runs with the spread. Goal (issue 13): labeller >= 2x Ultralytics at equal
cores. Tiling is off for all: auto tiling would slice every large frame in which a random model
finds nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from common import make_images, model_pair, write_report

from railvision.engine import Detector
from railvision.labelling import LabelOptions, label_archive
from railvision.options import DetectOptions
from railvision.ultralytics_env import import_ultralytics


def label_rate(archive: Path, out: Path, options: LabelOptions) -> float:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    summary = label_archive(archive, out, options)
    return summary.labelled / (time.perf_counter() - start)


def engine_rate(onnx: Path, paths: list[Path], batch: int, conf: float) -> float:
    detector = Detector(onnx, device="cpu", conf=conf, batch=batch)
    detector.detect(paths[:batch])
    start = time.perf_counter()
    for i in range(0, len(paths), batch):
        detector.detect(paths[i : i + batch])
    return len(paths) / (time.perf_counter() - start)


def ultralytics_rate(yolo, archive: Path, conf: float, threads: int | None) -> float:
    import torch

    default = torch.get_num_threads()
    torch.set_num_threads(threads or default)
    try:
        warmup = sorted(archive.glob("*.jpg"))[:2]
        for _ in yolo.predict([str(p) for p in warmup], stream=True, conf=conf, device="cpu", verbose=False):
            pass
        start = time.perf_counter()
        count = sum(1 for _ in yolo.predict(str(archive), stream=True, conf=conf, device="cpu", verbose=False))
        return count / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(default)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):6.1f}  ({min(values):.1f}-{max(values):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pt", type=Path, help="PyTorch weights (default models/railvision-n.pt)")
    parser.add_argument("--onnx", type=Path, help="the same weights exported (default models/railvision-n.onnx)")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="labeller lanes (CPU) or decoding threads (GPU)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--conf", type=float, default=0.25)
    parser.add_argument("--json", type=Path, default=Path("bench/label_throughput.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="railvision-bench-") as tmp:
        work = Path(tmp)
        pt, onnx = model_pair(args.pt, args.onnx, work / "model")
        archive = work / "archive"
        paths = make_images(archive, args.images)
        options = LabelOptions(
            model=onnx, device="cpu", detect=DetectOptions(conf=args.conf, tile="off"),
            batch=args.batch, workers=args.workers,
        )  # fmt: skip
        yolo = import_ultralytics().YOLO(str(pt))
        rates: dict[str, list[float]] = {"label": [], "engine": [], "ultralytics_default": [], "ultralytics_all": []}
        for i in range(args.runs):
            rates["label"].append(label_rate(archive, work / "out", options))
            rates["engine"].append(engine_rate(onnx, paths, args.batch, args.conf))
            rates["ultralytics_default"].append(ultralytics_rate(yolo, archive, args.conf, None))
            rates["ultralytics_all"].append(ultralytics_rate(yolo, archive, args.conf, os.cpu_count()))
            print(f"run {i + 1}/{args.runs} done", flush=True)
    ratios = {
        "label_over_ultralytics_all": [a / b for a, b in zip(rates["label"], rates["ultralytics_all"], strict=True)],
        "label_over_engine": [a / b for a, b in zip(rates["label"], rates["engine"], strict=True)],
    }
    print(f"model {onnx.name} / {pt.name}, {args.images} photos 1280x720 JPEG, tile off, {os.cpu_count()} cores")
    print("images/s, median (spread) over", args.runs, "runs")
    print(f"railvision label         {spread(rates['label'])}  (workers {args.workers}, batch {args.batch})")
    print(f"engine batches           {spread(rates['engine'])}  (Detector.detect, batch {args.batch}, one thread)")
    print(f"ultralytics, all cores   {spread(rates['ultralytics_all'])}")
    print(f"ultralytics, default     {spread(rates['ultralytics_default'])}")
    for name, values in ratios.items():
        print(f"{name:28s} {statistics.median(values):.2f}  ({min(values):.2f}-{max(values):.2f})")
    write_report(args.json, {"rates": rates, "ratios": ratios, "images": args.images})


if __name__ == "__main__":
    main()
