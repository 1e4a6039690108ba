"""Per-photo latency: the engine path vs a bare ``session.run`` vs Ultralytics' PyTorch predict.

    python bench/latency.py [--pt W.pt --onnx W.onnx] [--int8 W-int8.onnx] [--runs 3] [--json out.json]

For photos of 640x360, 1280x720 and 4000x3000 (photo-like JPEGs made here), every path runs the same
input tensor shape (the dynamic model's stride-aligned rectangle, which is also what Ultralytics'
``predict`` letterboxes a .pt to), and prints median milliseconds per photo for
  (a) the engine, file to ``Detections`` (read, decode, letterbox, run, decode the boxes);
  (b) a bare ``session.run`` on the tensors (a) would feed, ready in memory;
  (c) Ultralytics ``predict`` on the same weights, with torch on its own default number of threads
      on this machine and with torch given every core (the equal-cores comparison, the headline);
  (d) with ``--int8`` (default: ``models/railvision-n-int8.onnx`` when shipped), the INT8 file's
      bare ``session.run`` on the same tensors, against (b);
and where (a) spends what (b) does not (read + decode, letterbox + blob, the rest). Each run
measures every path; ``--runs`` repeats the whole and the summary gives the median over runs with
the spread (min-max). Goals (issue 13): (a)/(b) <= 1.10, (c, equal cores)/(a) >= 2.0, (b)/(d) >= 1.6.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from common import REPO, make_images, model_pair, write_report

from railvision.engine import Detector
from railvision.images import load_frame

SIZES = ((640, 360), (1280, 720), (4000, 3000))
IMAGES = {(640, 360): 20, (1280, 720): 20, (4000, 3000): 6}  # fewer of the 12 MP photos: each costs seconds
SHIPPED_INT8 = REPO / "models" / "railvision-n-int8.onnx"


def median_ms(fn: Callable[[Any], object], items: Iterable[Any], repeats: int) -> float:
    items = list(items)
    times = []
    for _ in range(repeats):
        for item in items:
            start = time.perf_counter()
            fn(item)
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def measure(detector: Detector, int8: Detector | None, yolo: Any, paths: list[Path], repeats: int) -> dict:
    """Every path once over ``paths`` (after a warm-up of each)."""
    import torch

    frames = [load_frame(p, detector.imgsz) for p in paths]
    tensors = [detector.prepare(f)[0][None] for f in frames]  # exactly what the engine feeds
    shape = tuple(tensors[0].shape[2:])
    imgsz = detector.imgsz[0]

    def ultra(path: Path) -> None:
        yolo.predict(str(path), imgsz=imgsz, verbose=False, device="cpu")

    for p in paths[:2]:  # warm-up
        detector.detect(p)
        ultra(p)
    default_threads = torch.get_num_threads()  # what Ultralytics left torch with on this machine
    out: dict[str, Any] = {"tensor_hw": list(shape), "ultralytics_default_threads": default_threads}
    run = detector.session.run
    out["engine_ms"] = median_ms(detector.detect, paths, repeats)
    out["session_run_ms"] = median_ms(lambda t: run(None, {detector.input_name: t}), tensors, repeats)
    out["decode_ms"] = median_ms(lambda p: load_frame(p, detector.imgsz), paths, repeats)
    out["prepare_ms"] = median_ms(detector.prepare, frames, repeats)
    out["ultralytics_default_ms"] = median_ms(ultra, paths, repeats)
    torch.set_num_threads(os.cpu_count() or 1)
    ultra(paths[0])
    out["ultralytics_all_cores_ms"] = median_ms(ultra, paths, repeats)
    torch.set_num_threads(default_threads)
    if int8 is not None:
        run8 = int8.session.run
        run8(None, {int8.input_name: tensors[0]})
        out["int8_session_run_ms"] = median_ms(lambda t: run8(None, {int8.input_name: t}), tensors, repeats)
        out["int8_engine_ms"] = median_ms(int8.detect, paths, repeats)
    return out


def summarise(runs: list[dict]) -> dict:
    """Median over runs, with min and max, of every figure and ratio."""
    ratios = {
        "engine_over_session": ("engine_ms", "session_run_ms"),
        "ultralytics_all_cores_over_engine": ("ultralytics_all_cores_ms", "engine_ms"),
        "ultralytics_default_over_engine": ("ultralytics_default_ms", "engine_ms"),
        "fp32_over_int8_session": ("session_run_ms", "int8_session_run_ms"),
        "fp32_over_int8_engine": ("engine_ms", "int8_engine_ms"),
    }
    for r in runs:
        for name, (num, den) in ratios.items():
            if num in r and den in r:
                r[name] = r[num] / r[den]
        r["rest_ms"] = r["engine_ms"] - r["session_run_ms"] - r["decode_ms"] - r["prepare_ms"]
    summary = {}
    for key, value in runs[0].items():
        if isinstance(value, float):
            values = [r[key] for r in runs]
            summary[key] = {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
                            "max": round(max(values), 3)}  # fmt: skip
        else:
            summary[key] = value
    return summary


def show(size: str, s: dict) -> None:
    def f(key: str) -> str:
        v = s[key]
        return f"{v['median']:7.1f}  ({v['min']:.1f}-{v['max']:.1f})"

    def ratio(key: str) -> str:
        v = s[key]
        return f"{v['median']:.2f} ({v['min']:.2f}-{v['max']:.2f})"

    print(f"\n{size} photos, model input {s['tensor_hw'][1]}x{s['tensor_hw'][0]}: median ms per photo (spread)")
    print(f"  (a) engine, file to detections  {f('engine_ms')}")
    print(f"  (b) bare session.run            {f('session_run_ms')}")
    print(f"      of (a)-(b): read+decode {s['decode_ms']['median']:.1f}, letterbox+blob "
          f"{s['prepare_ms']['median']:.1f}, the rest {s['rest_ms']['median']:.1f}")  # fmt: skip
    print(f"  (c) ultralytics, all cores      {f('ultralytics_all_cores_ms')}")
    print(f"      ultralytics, its default    {f('ultralytics_default_ms')}  "
          f"(torch on {s['ultralytics_default_threads']} thread(s))")  # fmt: skip
    if "int8_session_run_ms" in s:
        print(f"  (d) INT8 bare session.run       {f('int8_session_run_ms')}")
        print(f"      INT8 engine                 {f('int8_engine_ms')}")
    print(f"  (a)/(b) = {ratio('engine_over_session')}  (goal <= 1.10)")
    print(f"  (c, all cores)/(a) = {ratio('ultralytics_all_cores_over_engine')}  (goal >= 2.0)"
          f";  at its default: {ratio('ultralytics_default_over_engine')}")  # fmt: skip
    if "fp32_over_int8_session" in s:
        print(f"  (b)/(d) = {ratio('fp32_over_int8_session')}  (goal >= 1.6); "
              f"engine FP32/INT8 = {ratio('fp32_over_int8_engine')}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pt", type=Path)
    parser.add_argument("--onnx", type=Path)
    parser.add_argument("--int8", type=Path, help="an INT8 copy of --onnx (default: the shipped one, if any)")
    parser.add_argument("--runs", type=int, default=3, help="whole measurements; the summary is their median")
    parser.add_argument("--repeats", type=int, default=2, help="passes over the photos within one run")
    parser.add_argument("--sizes", default=",".join(f"{w}x{h}" for w, h in SIZES))
    parser.add_argument("--json", type=Path, default=Path("bench/latency.json"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="rv-latency-"))
    pt, onnx = model_pair(args.pt, args.onnx, work)
    int8_path = args.int8 or (SHIPPED_INT8 if args.onnx is None and SHIPPED_INT8.is_file() else None)
    detector = Detector(onnx, device="cpu")
    int8 = Detector(int8_path, device="cpu") if int8_path else None

    from ultralytics import YOLO  # after the engine ran nothing torch: the bench alone pays for it

    yolo = YOLO(str(pt))
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    photos = {size: make_images(work / f"{size[0]}x{size[1]}", IMAGES.get(size, 10), size) for size in sizes}
    runs: dict[str, list[dict]] = {f"{w}x{h}": [] for w, h in sizes}
    for i in range(args.runs):
        for size, paths in photos.items():
            runs[f"{size[0]}x{size[1]}"].append(measure(detector, int8, yolo, paths, args.repeats))
        print(f"run {i + 1}/{args.runs} done", flush=True)
    result = {
        "model": str(onnx),
        "int8_model": str(int8_path) if int8_path else None,
        "cpu_count": os.cpu_count(),
        "onnxruntime_threads": "default (all cores)",
        "runs": args.runs,
        "sizes": {size: summarise(r) for size, r in runs.items()},
        "raw": runs,
    }
    for size, summary in result["sizes"].items():
        show(size, summary)
    write_report(args.json, result)


if __name__ == "__main__":
    main()
