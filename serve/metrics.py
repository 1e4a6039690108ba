"""Prometheus metrics in the text exposition format, by hand: a few counters and histograms, no dependency."""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable

Labels = tuple[tuple[str, str], ...]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def _labels(labels: Labels, extra: str = "") -> str:
    parts = [f'{k}="{v}"' for k, v in labels]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class Counter:
    def __init__(self, name: str, help_: str) -> None:
        self.name, self.help = name, help_
        self.values: dict[Labels, float] = defaultdict(float)

    def inc(self, amount: float = 1, **labels: str) -> None:
        self.values[tuple(sorted(labels.items()))] += amount

    def value(self, **labels: str) -> float:
        return self.values.get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        lines += [f"{self.name}{_labels(k)} {v:g}" for k, v in sorted(self.values.items())]
        return lines


class Histogram:
    def __init__(self, name: str, help_: str, buckets: tuple[float, ...]) -> None:
        self.name, self.help, self.buckets = name, help_, buckets
        self.counts: dict[Labels, list[int]] = {}
        self.sums: dict[Labels, float] = defaultdict(float)

    def observe(self, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        counts = self.counts.setdefault(key, [0] * (len(self.buckets) + 1))
        counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sums[key] += value

    def count(self, **labels: str) -> int:
        return sum(self.counts.get(tuple(sorted(labels.items())), []))

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for key, counts in sorted(self.counts.items()):
            total = 0
            for bound, n in zip([*self.buckets, "+Inf"], counts, strict=True):
                total += n
                le = f'le="{bound}"'
                lines.append(f"{self.name}_bucket{_labels(key, le)} {total}")
            lines.append(f"{self.name}_sum{_labels(key)} {self.sums[key]:g}")
            lines.append(f"{self.name}_count{_labels(key)} {total}")
        return lines


class Metrics:
    """One set per app: what an operator needs to see load, batching and failures."""

    def __init__(self, queue_depth: Callable[[], int] = lambda: 0) -> None:
        self.requests = Counter("railvision_requests_total", "HTTP requests by route and status code")
        self.latency = Histogram(
            "railvision_request_duration_seconds", "HTTP request latency by route", LATENCY_BUCKETS
        )
        self.errors = Counter("railvision_errors_total", "error answers by kind")
        self.images = Counter("railvision_images_total", "images detected")
        self.batch_size = Histogram("railvision_batch_size", "images per inference batch", BATCH_BUCKETS)
        self.inference = Histogram(
            "railvision_inference_duration_seconds", "engine time per inference batch", LATENCY_BUCKETS
        )
        self.queue_depth = queue_depth

    def render(self) -> str:
        lines: list[str] = []
        for metric in (self.requests, self.latency, self.errors, self.images, self.batch_size, self.inference):
            lines += metric.render()
        lines += [
            "# HELP railvision_queue_depth images waiting for inference",
            "# TYPE railvision_queue_depth gauge",
            f"railvision_queue_depth {self.queue_depth()}",
        ]
        return "\n".join(lines) + "\n"
