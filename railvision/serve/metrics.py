"""Prometheus metrics with prometheus-client, and the middleware that measures every HTTP request.

Each app gets its own registry, so several apps in one process (the tests) never share counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The classic text format (0.0.4) that every Prometheus version scrapes; generate_latest writes it.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """One set per app: what an operator needs to see load, batching and failures."""

    def __init__(self, queue_depth: Callable[[], int] = lambda: 0) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "railvision_requests_total", "HTTP requests by route and status code", ["route", "status"], registry=r
        )
        self.latency = Histogram(
            "railvision_request_duration_seconds",
            "HTTP request latency by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter("railvision_errors_total", "error answers by kind", ["kind"], registry=r)
        self.images = Counter("railvision_images_total", "images detected", registry=r)
        self.batch_size = Histogram(
            "railvision_batch_size", "images per inference batch", buckets=BATCH_BUCKETS, registry=r
        )
        self.inference = Histogram(
            "railvision_inference_duration_seconds",
            "engine time per inference batch",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        Gauge("railvision_queue_depth", "images waiting for inference", registry=r).set_function(queue_depth)

    def render(self) -> bytes:
        """The exposition of every metric, in the format ``CONTENT_TYPE`` names."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts every HTTP request by route template and status, and times it."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), [500]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(route=route, status=str(status[0])).inc()
            self.metrics.latency.labels(route=route).observe(time.perf_counter() - start)
