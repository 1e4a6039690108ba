"""Load test of the HTTP service beside the engine's own batch throughput, on the same images.

Starts ``railvision serve`` on a free loopback port (a subprocess), sends one image per
request from N concurrent httpx clients, and prints throughput, p50/p99 latency, errors and
the server's RSS before/after, next to ``Detector.detect`` on batches of ``--max-batch``
of the same encoded images in this process (measured before and after the load, averaged).

    python bench/serve_load.py --model models/railvision-n.onnx --concurrency 16 64 --requests 2000
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import psutil
from common import write_report
from local_server import local_server

from railvision.engine import DEFAULT_MODEL, Detector

BOUNDARY = "railvisionbench"


def make_images(count: int, width: int, height: int) -> list[bytes]:
    """Photo-sized JPEGs: grey noise with a few coloured wagons (the engine sees realistic decode work)."""
    rng = np.random.default_rng(0)
    images = []
    for _ in range(count):
        image = rng.integers(40, 200, size=(height, width, 3), dtype=np.uint8)
        for _ in range(4):
            x, y = int(rng.integers(0, width - 300)), int(rng.integers(0, height - 120))
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            cv2.rectangle(image, (x, y), (x + 280, y + 100), colour, -1)
        images.append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    return images


def multipart(name: str, data: bytes) -> bytes:
    """A prebuilt one-file body, so the client spends no CPU encoding forms (it shares cores with the server)."""
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
    return head.encode() + b"Content-Type: image/jpeg\r\n\r\n" + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def engine_throughput(model: Path, images: list[bytes], batch: int, seconds: float, tile: str) -> float:
    """Images per second of ``Detector.detect`` on batches of ``batch`` encoded images (decoding included)."""
    detector = Detector(model, batch=batch)
    batches = itertools.cycle([images[i : i + batch] for i in range(0, len(images) - batch + 1, batch)])
    detector.detect(next(batches), tile=tile)  # warm-up
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        done += len(detector.detect(next(batches), tile=tile))
    return done / (time.perf_counter() - start)


async def load(url: str, bodies: list[bytes], concurrency: int, requests: int, tile: str) -> dict:
    """``requests`` POSTs from ``concurrency`` clients; latency of each, errors counted."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    counter = itertools.count()
    headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120, trust_env=False) as client:

        async def worker() -> None:
            while (i := next(counter)) < requests:
                start = time.perf_counter()
                try:
                    response = await client.post(
                        f"/v1/detect?tile={tile}", content=bodies[i % len(bodies)], headers=headers
                    )
                    ok = response.status_code == 200
                    key = str(response.status_code)
                except httpx.HTTPError as exc:
                    ok, key = False, type(exc).__name__
                if ok:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors[key] = errors.get(key, 0) + 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "concurrency": concurrency,
        "requests": requests,
        "seconds": round(elapsed, 2),
        "throughput": round(len(latencies) / elapsed, 2),
        "p50_ms": round(statistics.median(latencies) * 1e3, 1) if latencies else None,
        "p99_ms": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1e3, 1) if latencies else None,
        "errors": sum(errors.values()),
        "errors_by_kind": errors,
    }


def rss_mib(process: psutil.Process) -> float:
    return round(sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 2**20, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL if DEFAULT_MODEL.is_file() else None)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--requests", type=int, default=2000, help="requests per concurrency level (default 2000)")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--max-queue", type=int, default=128, help="server queue; must hold the largest concurrency")
    parser.add_argument("--size", default="1280x720", help="generated image size (default 1280x720)")
    parser.add_argument("--images", type=int, default=32, help="distinct generated images (default 32)")
    parser.add_argument("--engine-seconds", type=float, default=10.0, help="engine timing, before and after")
    parser.add_argument("--tile", choices=["auto", "on", "off"], default="off", help="tiling, both sides (default off)")
    parser.add_argument("--json", type=Path, default=Path("bench/serve_load.json"))
    args = parser.parse_args(argv)
    if args.model is None:
        parser.error("no shipped model at models/railvision-n.onnx: pass --model")
    width, height = (int(v) for v in args.size.split("x"))
    images = make_images(max(args.images, args.max_batch), width, height)
    bodies = [multipart(f"{i:03d}.jpg", data) for i, data in enumerate(images)]

    print(f"model {args.model}, {len(images)} images {width}x{height} JPEG, max batch {args.max_batch}")
    engine_before = engine_throughput(args.model, images, args.max_batch, args.engine_seconds, args.tile)
    print(f"engine: {engine_before:.2f} images/s (batches of {args.max_batch})")
    levels = []
    flags = ("--max-batch", str(args.max_batch), "--max-queue", str(args.max_queue))
    with local_server(args.model, *flags) as (url, process):
        server = psutil.Process(process.pid)
        asyncio.run(load(url, bodies, max(args.concurrency), 4 * args.max_batch, args.tile))  # warm-up
        for concurrency in args.concurrency:
            before = rss_mib(server)
            result = asyncio.run(load(url, bodies, concurrency, args.requests, args.tile))
            result |= {"rss_before_mib": before, "rss_after_mib": rss_mib(server)}
            levels.append(result)
    engine_after = engine_throughput(args.model, images, args.max_batch, args.engine_seconds, args.tile)
    engine = (engine_before + engine_after) / 2
    print(f"engine: {engine_after:.2f} images/s after the load; mean {engine:.2f}")
    columns = ("clients", 7), ("requests", 8), ("img/s", 7), ("vs engine", 9), ("p50 ms", 8), ("p99 ms", 8)
    print(" ".join(f"{name:>{width}}" for name, width in columns), f"{'errors':>6} {'RSS MiB':>15}")
    for r in levels:
        r["ratio_to_engine"] = round(r["throughput"] / engine, 3)
        rss = f"{r['rss_before_mib']:.0f} -> {r['rss_after_mib']:.0f}"
        print(
            f"{r['concurrency']:>7} {r['requests']:>8} {r['throughput']:>7.2f} {r['ratio_to_engine']:>8.1%} "
            f"{r['p50_ms']:>8} {r['p99_ms']:>8} {r['errors']:>6} {rss:>15}"
        )
    report = {
        "model": str(args.model),
        "image_size": [width, height],
        "max_batch": args.max_batch,
        "tile": args.tile,
        "engine_images_per_s": {
            "before": round(engine_before, 2),
            "after": round(engine_after, 2),
            "mean": round(engine, 2),
        },
        "levels": levels,
        "cpu_count": psutil.cpu_count(),
        "load_average": list(psutil.getloadavg()),
    }
    write_report(args.json, report)
    failed = any(r["errors"] for r in levels)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
