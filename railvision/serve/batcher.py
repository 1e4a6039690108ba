"""Dynamic batching: concurrent requests share ONNX batches, run off the event loop.

Requests put decoded images on a bounded queue and await a future each. One worker
takes the oldest image plus every queued image with the *same* ``DetectOptions`` (the engine
applies them per call, so a batch can only share them), up to
``max_batch``, waiting at most ``max_wait`` for company when the engine is idle. While a
batch runs, new requests queue up, so under load batches fill without any waiting.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field

import numpy as np

from railvision.detections import Detections
from railvision.engine import Detector, Letterbox
from railvision.images import Frame
from railvision.options import DetectOptions
from railvision.serve.errors import ServiceError
from railvision.serve.metrics import Metrics


@dataclass(eq=False)
class Job:
    image: Frame  # decoded (and timed) by the request
    boxed: tuple[np.ndarray, Letterbox]  # its model input, letterboxed by the request's thread too
    options: DetectOptions  # the batch-sharing key
    future: asyncio.Future
    queued_at: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class Result:
    detections: Detections
    queue_ms: float
    batch_size: int


class Batcher:
    """Owns the detector's inference thread; ``submit`` is the only way requests reach the engine."""

    def __init__(self, detector: Detector, metrics: Metrics, max_batch: int, max_wait_s: float, max_queue: int) -> None:
        self.detector, self.metrics = detector, metrics
        self.max_batch, self.max_wait_s, self.max_queue = max_batch, max_wait_s, max_queue
        self._pending: deque[Job] = deque()
        self._arrived = asyncio.Event()
        # One thread: the ONNX session already uses every core; decoding runs in the default pool.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="railvision-infer")
        self._worker: asyncio.Task | None = None

    @property
    def depth(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with suppress(asyncio.CancelledError):
                await self._worker
        for job in self._pending:
            job.future.cancel()
        self._executor.shutdown(wait=True)

    async def submit(
        self, images: list[tuple[Frame, tuple[np.ndarray, Letterbox]]], options: DetectOptions
    ) -> list[Result]:
        """Detections for decoded and ``prepare``d ``images``, all with the same options; 503 when the queue
        is full. Decoding and letterboxing stay in the requests' threads, so this thread only runs the model."""
        if self.depth + len(images) > self.max_queue:
            raise ServiceError(
                503,
                "queue_full",
                f"the service is busy ({self.depth} images queued, limit {self.max_queue}); retry shortly",
                headers={"Retry-After": "1"},
            )
        loop = asyncio.get_running_loop()
        jobs = [Job(image, boxed, options, loop.create_future()) for image, boxed in images]
        self._pending.extend(jobs)
        self._arrived.set()
        try:
            return await asyncio.gather(*(job.future for job in jobs))
        finally:  # on timeout or disconnect, leave nothing behind for the worker
            for job in jobs:
                job.future.cancel()

    def _same(self, options: DetectOptions) -> list[Job]:
        return [job for job in self._pending if job.options == options and not job.future.done()][: self.max_batch]

    async def _gather(self) -> list[Job]:
        """The next batch: the oldest job and its parameter-mates, after at most ``max_wait`` of waiting."""
        while True:
            while not self._pending:
                self._arrived.clear()
                await self._arrived.wait()
            first = self._pending[0]
            if first.future.done():  # cancelled while queued
                self._pending.popleft()
                continue
            deadline = first.queued_at + self.max_wait_s
            while (
                len(batch := self._same(first.options)) < self.max_batch
                and (left := deadline - time.perf_counter()) > 0
            ):
                self._arrived.clear()
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), left)
            taken = set(map(id, batch))
            self._pending = deque(job for job in self._pending if id(job) not in taken and not job.future.done())
            if batch:
                return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            started = time.perf_counter()
            run = functools.partial(
                self.detector.detect_frames,
                [job.image for job in batch],
                batch[0].options,
                letterboxed=[job.boxed for job in batch],
            )
            try:
                found = await loop.run_in_executor(self._executor, run)
            except Exception as exc:  # the engine failed for this batch: fail its requests, keep serving
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            self.metrics.batch_size.observe(len(batch))
            self.metrics.inference.observe(time.perf_counter() - started)
            for job, detections in zip(batch, found, strict=True):
                if not job.future.done():
                    job.future.set_result(Result(detections, (started - job.queued_at) * 1e3, len(batch)))
