"""Bounded soak of the HTTP service: mixed good and bad requests for minutes, the server's memory sampled.

Starts ``railvision serve`` (its defaults: queue, connection limit, upload limit) on a free loopback
port, then for each ``--clients`` level runs that many concurrent clients for ``--minutes``. Each
request is drawn (seeded) from a mix: good 1280x720 JPEGs, a truncated JPEG, a text file, an upload
over the byte limit (half with an honest Content-Length, half chunked) and bad parameters. Every bad
request has the one 4xx it must get; a 503 (queue or connection limit) is counted as overload, and
the client waits its Retry-After. Anything else (another status, a 5xx, a dropped connection) is an
error. The server's RSS is sampled every ``--sample-s`` seconds and printed as a table (and drawn
to a PNG when matplotlib is installed); p50/p99 latency is of the good requests answered 200.

    python bench/serve_soak.py --minutes 10 --clients 16 64
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
from common import write_report
from local_server import local_server
from serve_load import BOUNDARY, make_images, multipart

from railvision.engine import DEFAULT_MODEL
from railvision.serve.settings import Settings

# kind -> (share of the requests, the status it must get)
MIX = {
    "good": (0.80, 200),
    "truncated_jpeg": (0.05, 422),
    "not_an_image": (0.05, 415),
    "oversized": (0.05, 413),
    "bad_params": (0.05, 422),
}
BAD_PARAMS = ("conf=2", "tile=sometimes", "classes=boxcar", "max_det=0")
HEADERS = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


@dataclass
class Level:
    """What one client level saw."""

    clients: int
    sent: Counter[str] = field(default_factory=Counter)  # by kind
    answers: Counter[str] = field(default_factory=Counter)  # "kind status" or "kind ExceptionName"
    errors: Counter[str] = field(default_factory=Counter)  # the answers that were neither expected nor 503
    overload: int = 0
    latencies: list[float] = field(default_factory=list)  # good requests answered 200, seconds
    seconds: float = 0.0

    def summary(self) -> dict:
        lat = sorted(self.latencies)
        return {
            "clients": self.clients,
            "seconds": round(self.seconds, 1),
            "requests": sum(self.sent.values()),
            "sent_by_kind": dict(self.sent),
            "answers": dict(sorted(self.answers.items())),
            "good_per_s": round(len(lat) / self.seconds, 2) if self.seconds else 0.0,
            "p50_ms": round(statistics.median(lat) * 1e3, 1) if lat else None,
            "p99_ms": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1e3, 1) if lat else None,
            "overload_503": self.overload,
            "errors": sum(self.errors.values()),
            "errors_by_kind": dict(self.errors),
        }


async def oversized_stream(total: int) -> AsyncIterator[bytes]:
    """A multipart body of ``total`` bytes, made as it is sent (chunked: no Content-Length)."""
    yield f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="huge.jpg"\r\n\r\n'.encode()
    block = b"\xff" * 65536
    for _ in range(total // len(block)):
        yield block


async def one_request(
    client: httpx.AsyncClient, kind: str, rng: random.Random, bodies: dict[str, list[bytes]], limit: int
) -> tuple[str, float]:
    """Send one request of ``kind``; its status (or exception name) and seconds."""
    url, content = "/v1/detect?tile=off", None
    if kind == "good":
        content = rng.choice(bodies["good"])
    elif kind == "bad_params":
        url, content = f"/v1/detect?{rng.choice(BAD_PARAMS)}", rng.choice(bodies["good"])
    elif kind == "oversized":
        content = bodies["oversized"][0] if rng.random() < 0.5 else oversized_stream(limit + 4 * 2**20)
    else:
        content = rng.choice(bodies[kind])
    start = time.perf_counter()
    try:
        response = await client.post(url, content=content, headers=HEADERS)
        outcome = str(response.status_code)
    except httpx.HTTPError as exc:
        outcome = type(exc).__name__
    return outcome, time.perf_counter() - start


async def run_level(url: str, clients: int, seconds: float, bodies: dict[str, list[bytes]], limit: int) -> Level:
    level = Level(clients)
    kinds, weights = list(MIX), [share for share, _ in MIX.values()]
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120, trust_env=False) as client:
        end = time.monotonic() + seconds

        async def worker(seed: int) -> None:
            rng = random.Random(seed)
            while time.monotonic() < end:
                kind = rng.choices(kinds, weights)[0]
                outcome, took = await one_request(client, kind, rng, bodies, limit)
                level.sent[kind] += 1
                level.answers[f"{kind} {outcome}"] += 1
                if outcome == str(MIX[kind][1]):
                    if kind == "good":
                        level.latencies.append(took)
                elif outcome == "503":
                    level.overload += 1
                    await asyncio.sleep(1)  # the Retry-After the service asks for
                else:
                    level.errors[f"{kind} {outcome}"] += 1

        start = time.monotonic()
        await asyncio.gather(*(worker(clients * 1000 + i) for i in range(clients)))
        level.seconds = time.monotonic() - start
    return level


class RssSampler(threading.Thread):
    """The server's resident memory every ``every`` seconds: (seconds since start, clients, MiB)."""

    def __init__(self, pid: int, every: float) -> None:
        super().__init__(daemon=True)
        self.process, self.every = psutil.Process(pid), every
        self.clients = 0
        self.samples: list[tuple[float, int, float]] = []
        self.stopped = threading.Event()
        self.start_time = time.monotonic()

    def sample(self) -> None:
        rss = self.process.memory_info().rss / 2**20
        self.samples.append((round(time.monotonic() - self.start_time, 1), self.clients, round(rss, 1)))

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            self.sample()


def plot(samples: list[tuple[float, int, float]], path: Path) -> bool:
    """The RSS curve as a PNG, if matplotlib is importable."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot([t for t, _, _ in samples], [rss for _, _, rss in samples], color="0.7", zorder=1)
    for clients in sorted({c for _, c, _ in samples}):
        points = [(t, rss) for t, c, rss in samples if c == clients]
        label = f"{clients} clients" if clients else "idle"
        ax.scatter([t for t, _ in points], [r for _, r in points], s=12, label=label, zorder=2)
    ax.set_xlabel("seconds")
    ax.set_ylabel("server RSS (MiB)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL if DEFAULT_MODEL.is_file() else None)
    parser.add_argument("--minutes", type=float, default=10.0, help="per client level (default 10)")
    parser.add_argument("--clients", type=int, nargs="+", default=[16, 64], help="client levels (default 16 64)")
    parser.add_argument("--sample-s", type=float, default=10.0, help="RSS sampling period (default 10 s)")
    parser.add_argument("--images", type=int, default=16, help="distinct generated 1280x720 JPEGs (default 16)")
    parser.add_argument("--json", type=Path, default=Path("bench/serve_soak.json"))
    parser.add_argument("--png", type=Path, default=Path("bench/serve_soak.png"), help="the RSS curve")
    args = parser.parse_args(argv)
    if args.model is None:
        parser.error("no shipped model at models/railvision-n.onnx: pass --model")
    limit = Settings().max_upload_bytes  # the server runs its defaults
    good = make_images(args.images, 1280, 720)
    bodies = {
        "good": [multipart(f"{i:03d}.jpg", data) for i, data in enumerate(good)],
        "truncated_jpeg": [multipart("cut.jpg", data[: len(data) // 2]) for data in good[:4]],
        "not_an_image": [multipart("notes.txt", b"railvision soak: this is not an image\n" * 50)],
        "oversized": [multipart("huge.jpg", bytes(limit + 2**20))],
    }
    print(f"model {args.model}; {args.minutes:g} min per level, clients {args.clients}; upload limit {limit:,} B")
    levels = []
    with local_server(args.model) as (url, process):
        sampler = RssSampler(process.pid, args.sample_s)
        asyncio.run(run_level(url, 4, 5, bodies, limit))  # warm-up, not counted
        sampler.sample()
        sampler.start()
        for clients in args.clients:
            sampler.clients = clients
            level = asyncio.run(run_level(url, clients, args.minutes * 60, bodies, limit))
            levels.append(level.summary())
            print(f"{clients} clients: {json.dumps(levels[-1])}")
        sampler.stopped.set()
        sampler.join()
        sampler.clients = 0
        sampler.sample()
        server_errors = [
            line
            for line in httpx.get(f"{url}/metrics", trust_env=False).text.splitlines()
            if line.startswith("railvision_errors_total{")
        ]
        alive = httpx.get(f"{url}/readyz", trust_env=False).status_code == 200

    print(f"\n{'clients':>7} {'requests':>8} {'good/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'503':>5} {'errors':>6}")
    for r in levels:
        print(
            f"{r['clients']:>7} {r['requests']:>8} {r['good_per_s']:>7} {r['p50_ms']!s:>8} {r['p99_ms']!s:>8} "
            f"{r['overload_503']:>5} {r['errors']:>6}"
        )
        for name, count in r["errors_by_kind"].items():
            print(f"{'':>7} error: {name} x{count}")
    print(f"\n{'t (s)':>7} {'clients':>7} {'RSS MiB':>8}")
    for t, clients, rss in sampler.samples:
        print(f"{t:>7} {clients:>7} {rss:>8}")
    rss = [r for _, _, r in sampler.samples]
    print(f"RSS min {min(rss)} max {max(rss)} last {rss[-1]} MiB; server still ready: {alive}")
    drawn = plot(sampler.samples, args.png)
    if drawn:
        print(f"RSS curve drawn to {args.png}")
    report = {
        "model": str(args.model),
        "minutes_per_level": args.minutes,
        "mix": {kind: {"share": share, "expected_status": status} for kind, (share, status) in MIX.items()},
        "upload_limit_bytes": limit,
        "levels": levels,
        "rss_samples": [{"t_s": t, "clients": c, "rss_mib": r} for t, c, r in sampler.samples],
        "server_error_counters": server_errors,
        "ready_after": alive,
        "cpu_count": psutil.cpu_count(),
        "load_average": list(psutil.getloadavg()),
    }
    write_report(args.json, report)
    return 1 if any(r["errors"] for r in levels) or not alive else 0


if __name__ == "__main__":
    sys.exit(main())
