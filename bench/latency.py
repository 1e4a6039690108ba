"""Per-image latency: the whole engine path vs a bare ``session.run`` vs Ultralytics' PyTorch predict.

    python bench/latency.py [--pt W.pt --onnx W.onnx] [--images 20] [--json out.json]

Prints median milliseconds per image for (a) engine (decode, preprocess, run, postprocess),
(b) bare ``session.run`` on a ready tensor, (c) Ultralytics ``predict`` on the same weights,
and the ratios (a)/(b) (goal <= 1.15) and (c)/(a) (goal >= 1.5). All measured in this run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from common import make_images, model_pair

from railvision.engine import Detector
from railvision.images import load_image


def median_ms(fn, items, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        for item in items:
            start = time.perf_counter()
            fn(item)
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pt", type=Path)
    parser.add_argument("--onnx", type=Path)
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=Path("bench/latency.json"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="rv-latency-"))
    pt, onnx = model_pair(args.pt, args.onnx, work)
    paths = make_images(work / "images", args.images)
    detector = Detector(onnx, device="cpu")
    tensors = [detector.prepare(load_image(p))[0][None] for p in paths]  # what the engine feeds

    from ultralytics import YOLO  # after the engine ran nothing torch: the bench alone pays for it

    yolo = YOLO(str(pt))
    for p in paths[:3]:  # warm-up all three paths
        detector.detect(p)
        yolo.predict(str(p), imgsz=detector.imgsz[0], verbose=False, device="cpu")
    run = detector.session.run
    engine_ms = median_ms(detector.detect, paths, args.repeats)
    bare_ms = median_ms(lambda t: run(None, {detector.input_name: t}), tensors, args.repeats)
    # where (a) spends what (b) does not: reading and decoding the file, then letterbox and blob
    decode_ms = median_ms(load_image, paths, args.repeats)
    frames = [load_image(p) for p in paths]
    prepare_ms = median_ms(detector.prepare, frames, args.repeats)
    ultra_ms = median_ms(
        lambda p: yolo.predict(str(p), imgsz=detector.imgsz[0], verbose=False, device="cpu"), paths, args.repeats
    )
    ultra_rect_ms = median_ms(
        lambda p: yolo.predict(str(p), imgsz=detector.imgsz[0], rect=True, verbose=False, device="cpu"),
        paths,
        args.repeats,
    )
    import torch

    torch_threads = torch.get_num_threads()  # Ultralytics sets cpu_count - 1 when it picks the CPU
    result = {
        "model": str(onnx),
        "ultralytics_torch_threads": torch_threads,
        "images": len(paths),
        "image_size": "1280x720",
        "engine_ms": round(engine_ms, 2),
        "session_run_ms": round(bare_ms, 2),
        "decode_ms": round(decode_ms, 2),
        "prepare_ms": round(prepare_ms, 2),
        "engine_input": "rect (dynamic model)" if detector.rect_stride else "square",
        "ultralytics_ms": round(ultra_ms, 2),
        "ultralytics_rect_ms": round(ultra_rect_ms, 2),
        "engine_over_session": round(engine_ms / bare_ms, 3),
        "ultralytics_over_engine": round(ultra_ms / engine_ms, 3),
        "ultralytics_rect_over_engine": round(ultra_rect_ms / engine_ms, 3),
    }
    print(f"(a) engine path        {engine_ms:8.1f} ms/image")
    print(f"(b) bare session.run   {bare_ms:8.1f} ms/image")
    print(f"    of (a): read+decode {decode_ms:6.1f} ms, letterbox+blob {prepare_ms:.1f} ms")
    print(f"(c) ultralytics        {ultra_ms:8.1f} ms/image  (its predict defaults)")
    print(f"    ultralytics rect   {ultra_rect_ms:8.1f} ms/image  (rect=True stated: the default anyway)")
    print(f"    (Ultralytics ran torch on {torch_threads} thread(s); onnxruntime on its default, all cores)")
    print(f"(a)/(b) = {result['engine_over_session']:.3f}  (goal <= 1.15)")
    print(f"(c)/(a) = {result['ultralytics_over_engine']:.3f}  (goal >= 1.5)")
    print(f"rect/(a) = {result['ultralytics_rect_over_engine']:.3f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
