"""A big archive: how the labeller's scan, bookkeeping, rerun and memory grow with the number of photos.

    python bench/big_archive.py [--sizes 10000 30000 100000] [--per-folder 500]

For each size, an archive of that many small photos in nested folders (hard links to a few 96x64
JPEGs, so disk use stays small; the scan sees regular files) is labelled from scratch with every
output format, then labelled again when nothing is left to do. The model is the tests' tiny exact
"oracle" ONNX at 64 px, so the figures are the labeller's own costs (scan, decode, state, outputs),
not the network's. Each run is a fresh process; printed: wall time, time per photo, the scan alone,
the rerun, peak memory (ru_maxrss), and the growth per 10,000 photos between sizes.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from common import write_report

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

CHILD = """
import json, resource, sys, time
from pathlib import Path
from railvision.labelling import LabelOptions, label_archive
from railvision.labelling.scan import scan_archive
from railvision.options import DetectOptions
root, out, model = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
start = time.perf_counter()
files, _ = scan_archive(root)
scan_s = time.perf_counter() - start
options = LabelOptions(model=model, device="cpu", detect=DetectOptions(tile="off"), batch=64, workers=2)
start = time.perf_counter()
summary = label_archive(root, out, options)
wall = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"photos": len(files), "scan_s": scan_s, "wall_s": wall, "processed": summary.processed,
                  "labelled": summary.labelled, "max_rss_mb": peak}))
"""


def make_archive(root: Path, count: int, per_folder: int) -> None:
    """``count`` photos, ``per_folder`` to a leaf folder, two levels deep: hard links to four distinct JPEGs."""
    sources = root.parent / f"{root.name}-sources"
    sources.mkdir(parents=True)
    rng = np.random.default_rng(0)
    originals = []
    for i in range(4):
        image = rng.integers(60, 140, (64, 96, 3), dtype=np.uint8)
        cv2.rectangle(image, (10 + 10 * i, 10), (40 + 10 * i, 40), (0, 0, 255), -1)  # one tank car each
        path = sources / f"src{i}.jpg"
        cv2.imwrite(str(path), image)
        originals.append(path)
    for i in range(count):
        folder = root / f"site-{i // (per_folder * 20):03d}" / f"day-{i // per_folder:05d}"
        if i % per_folder == 0:
            folder.mkdir(parents=True)
        os.link(originals[i % 4], folder / f"photo-{i:06d}.jpg")


def run(root: Path, out: Path, model: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), str(out), str(model)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    parser.add_argument("--per-folder", type=int, default=500)
    parser.add_argument("--json", type=Path, default=Path("bench/big_archive.json"))
    args = parser.parse_args()
    from toy_models import build_oracle

    rows = []
    with tempfile.TemporaryDirectory(prefix="rv-big-") as tmp:
        work = Path(tmp)
        model = build_oracle(work / "oracle64.onnx", "end2end", imgsz=64)
        for size in args.sizes:
            root, out = work / f"archive-{size}", work / f"out-{size}"
            make_archive(root, size, args.per_folder)
            first, again = run(root, out, model), run(root, out, model)
            assert first["labelled"] == size and again["processed"] == 0, (first, again)
            outputs_mb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
            rows.append({"photos": size, "first": first, "rerun": again, "outputs_mb": outputs_mb})
            print(
                f"{size:7d} photos: scan {first['scan_s']:.1f} s, first run {first['wall_s']:.1f} s "
                f"({first['wall_s'] / size * 1e3:.2f} ms/photo, peak {first['max_rss_mb']:.0f} MB), rerun with "
                f"nothing left {again['wall_s']:.1f} s (peak {again['max_rss_mb']:.0f} MB), "
                f"outputs {outputs_mb:.0f} MB",
                flush=True,
            )
            for path in (root, out, root.parent / f"{root.name}-sources"):
                subprocess.run(["rm", "-rf", str(path)], check=True)
    print("\ngrowth per 10,000 photos between sizes:")
    for a, b in itertools.pairwise(rows):
        per = 10_000 / (b["photos"] - a["photos"])
        print(
            f"  {a['photos']} -> {b['photos']}: "
            f"first run +{(b['first']['wall_s'] - a['first']['wall_s']) * per:.1f} s, "
            f"rerun +{(b['rerun']['wall_s'] - a['rerun']['wall_s']) * per:.2f} s, peak memory "
            f"+{(b['first']['max_rss_mb'] - a['first']['max_rss_mb']) * per:.0f} MB (first), "
            f"+{(b['rerun']['max_rss_mb'] - a['rerun']['max_rss_mb']) * per:.0f} MB (rerun)"
        )
    write_report(args.json, rows)


if __name__ == "__main__":
    main()
