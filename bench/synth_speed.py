"""Generation speed of ``railvision synth``: images/s with 1 worker (baseline) and with N workers.

Usage: python bench/synth_speed.py [--n 48] [--workers 2] [--imgsz 640]
Prints the rate of each run and the speed-up of the multi-worker run over the baseline measured
in the same invocation (so a busy machine shows as a low rate, not as a wrong ratio).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from railvision.synth.dataset import SynthConfig, generate


def rate(n: int, workers: int, imgsz: int, seed: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = SynthConfig(Path(tmp) / "ds", n, ("ground", "overhead"), seed, imgsz)
        start = time.perf_counter()
        generate(cfg, workers=workers)
        return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=48)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args()
    base = rate(args.n // 2, 1, args.imgsz, args.seed)
    print(f"1 worker: {base:.2f} images/s ({args.imgsz}x{args.imgsz}, {args.n // 2} images, incl. start-up)")
    multi = rate(args.n, args.workers, args.imgsz, args.seed)
    print(f"{args.workers} workers: {multi:.2f} images/s ({args.n} images, incl. start-up)")
    print(f"speed-up over 1 worker: x{multi / base:.2f}")


if __name__ == "__main__":
    main()
