#!/usr/bin/env python
"""How real do renders look to COCO? The share of labelled cars that COCO's ``train`` class covers.

COCO's YOLO26n boxes most cars of a real photo inside a ``train`` box (93% of ../shared/realdev's cars at
conf 0.25) but far fewer in renders, so this share is a quick measure of renderer realism: it needs no
training run, and it never trains on the real set it compares with.

    scripts/render_realism.py runs/synth/data.yaml ../shared/realdev/data.yaml --split train
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

from railvision.evaluate import coverage, load_truth, predict
from railvision.train import PRETRAINED_WEIGHTS

HEIGHT_BINS = (40, 80, 160, np.inf)  # car height in pixels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="+", type=Path, help="YOLO data.yaml files to compare")
    parser.add_argument("--split", default="val", help="split of each set to score")
    parser.add_argument("--weights", default=str(PRETRAINED_WEIGHTS), help="a COCO checkpoint")
    parser.add_argument("--conf", type=float, default=0.25, help="a car counts as seen above this confidence")
    parser.add_argument("--min-ioa", type=float, default=0.6, help="share of a car inside the train box")
    args = parser.parse_args()
    print(f"{'set':40s} {'cars':>6s} {'seen':>6s} {'mean conf':>9s}  seen by car height (px)")
    for data in args.data:
        truths, _ = load_truth(data, args.split)
        dets = list(predict(args.weights, [t.image for t in truths], conf=0.05, iou=0.7))
        best = coverage(truths, dets, "train", args.min_ioa)
        heights = np.concatenate([t.xyxy[:, 3] - t.xyxy[:, 1] for t in truths if len(t.xyxy)] or [np.zeros(0)])
        keep = heights >= HEIGHT_BINS[0]
        best, heights = best[keep], heights[keep]
        seen = best >= args.conf
        bins = []
        for lo, hi in itertools.pairwise(HEIGHT_BINS):
            inside = (heights >= lo) & (heights < hi)
            share = f"{seen[inside].mean():.2f}" if inside.any() else "-"
            bins.append(f"{lo:.0f}-{hi:.0f}: {share} ({inside.sum()})")
        mean_conf = best.mean() if len(best) else float("nan")
        print(f"{data!s:40s} {len(best):6d} {seen.mean():6.3f} {mean_conf:9.3f}  {', '.join(bins)}")


if __name__ == "__main__":
    main()
