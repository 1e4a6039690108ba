"""Archive labelling throughput: ``railvision label`` vs Ultralytics' own ``predict`` over the same folder.

    python bench/label_throughput.py [--pt W.pt --onnx W.onnx] [--images 300] [--workers 2] [--batch 8]

Generates an archive of 1280x720 JPEGs, labels it with the labeller (all output formats
written, from a fresh state) and runs Ultralytics ``predict`` (stream, default settings)
with the ``.pt`` behind the ONNX file over the same folder; prints images per second of
each and the ratio (goal >= 2 on a 2-core CPU). Tiling is off by default for both: auto
tiling would slice every large frame in which a random model finds nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import make_images, model_pair

from railvision.labelling import LabelOptions, label_archive
from railvision.options import DetectOptions
from railvision.ultralytics_env import import_ultralytics


def label_rate(archive: Path, out: Path, options: LabelOptions) -> float:
    start = time.perf_counter()
    summary = label_archive(archive, out, options)
    return summary.labelled / (time.perf_counter() - start)


def ultralytics_rate(pt: Path, archive: Path, conf: float) -> float:
    yolo = import_ultralytics().YOLO(str(pt))
    warmup = sorted(archive.glob("*.jpg"))[:2]
    for _ in yolo.predict([str(p) for p in warmup], stream=True, conf=conf, device="cpu", verbose=False):
        pass
    start = time.perf_counter()
    count = sum(1 for _ in yolo.predict(str(archive), stream=True, conf=conf, device="cpu", verbose=False))
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pt", type=Path, help="PyTorch weights (default models/railvision-n.pt)")
    parser.add_argument("--onnx", type=Path, help="the same weights exported (default models/railvision-n.onnx)")
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2, help="labeller decoding threads")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--conf", type=float, default=0.25)
    parser.add_argument("--tile", choices=["auto", "on", "off"], default="off")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="railvision-bench-") as tmp:
        work = Path(tmp)
        pt, onnx = model_pair(args.pt, args.onnx, work / "model")
        archive = work / "archive"
        make_images(archive, args.images)
        options = LabelOptions(
            model=onnx,
            device="cpu",
            detect=DetectOptions(conf=args.conf, tile=args.tile),
            batch=args.batch,
            workers=args.workers,
        )
        ours = label_rate(archive, work / "out", options)
        theirs = ultralytics_rate(pt, archive, args.conf)
    print(f"model {onnx.name} / {pt.name}, {args.images} images 1280x720 JPEG, tile {args.tile}")
    print(f"railvision label      {ours:6.1f} images/s (workers {args.workers}, batch {args.batch}, all formats)")
    print(f"ultralytics predict   {theirs:6.1f} images/s")
    print(f"ratio                 {ours / theirs:6.2f}x (goal >= 2)")


if __name__ == "__main__":
    main()
