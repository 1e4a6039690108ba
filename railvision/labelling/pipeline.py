"""The thread pipelines (OpenCV and ONNX Runtime release the GIL).

On the CPU, ``options.workers`` lanes each decode a photo and run it on their own one-thread ONNX
session, so one lane's decoding overlaps the others' model: on 2 cores, two such lanes label about
1.2-1.3x as many photos per second as one two-thread session fed batches by decoding threads
(``bench/label_throughput.py``), because ONNX Runtime splits one small model poorly over cores.
On a GPU, worker threads decode and letterbox while the caller's thread runs the model on batches.
"""

from __future__ import annotations

import queue
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from railvision.draw import draw_detections
from railvision.engine import Detector, Letterbox
from railvision.errors import ImageError
from railvision.images import Frame, decode_frame, encode_jpeg
from railvision.labelling.geo import read_georef
from railvision.labelling.records import ArchiveFile, LabelOptions, Outcome
from railvision.labelling.scan import ChangedSinceScanError, read_photo

T = TypeVar("T")
R = TypeVar("R")


@dataclass(slots=True)
class Prepared:
    """A photo decoded and letterboxed in a worker, ready for the model (or the reason it is not)."""

    file: ArchiveFile
    frame: Frame | None = None
    boxed: tuple[np.ndarray, Letterbox] | None = None
    geo: dict[str, Any] | None = None
    error: tuple[str, str] | None = None


def open_detector(options: LabelOptions, threads: int | None = None) -> Detector:
    """The labeller's detector: ORT threads do not spin while idle, so decoding gets the cores."""
    return Detector(
        options.model, device=options.device, threads=threads, batch=options.batch,
        max_pixels=options.max_pixels, spinning=False, options=options.detect,
    )  # fmt: skip


def prepare(root: Path, file: ArchiveFile, detector: Detector, options: LabelOptions) -> Prepared:
    """Read, decode and letterbox one photo (runs in a worker thread: OpenCV releases the GIL).

    A large JPEG is decoded at the reduced size the model sees, unless annotated copies need every pixel.
    """
    path = root / file.rel
    fit = None if options.annotated else detector.imgsz
    try:
        frame = decode_frame(read_photo(root, file), fit, options.max_pixels)
    except (ImageError, ChangedSinceScanError) as exc:
        return Prepared(file, error=(exc.kind, str(exc)))
    except OSError as exc:
        return Prepared(file, error=("unreadable", exc.strerror or str(exc)))
    return Prepared(file, frame, detector.prepare(frame), read_georef(path))


def infer(detector: Detector, batch: list[Prepared], options: LabelOptions) -> list[Outcome]:
    """Run the model (with the detector's options: ``options.detect``) on one batch of prepared photos;
    failures pass through as outcomes."""
    good = [p for p in batch if p.error is None]
    found = iter(
        detector.detect_frames([p.frame for p in good], letterboxed=[p.boxed for p in good])  # type: ignore[misc]
        if good
        else []
    )
    outcomes = []
    for item in batch:
        if item.error is not None:
            outcomes.append(Outcome(item.file, error=item.error))
            continue
        detections = next(found)
        drawn = encode_jpeg(draw_detections(item.frame.pixels, detections)) if options.annotated else None
        outcomes.append(Outcome(item.file, detections.to_dict(), geo=item.geo, annotated=drawn))
    return outcomes


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last may be shorter)."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def prefetch(fn: Callable[[T], R], items: Iterable[T], workers: int, depth: int) -> Iterator[R]:
    """``map(fn, items)`` on a thread pool, in order, with at most ``depth`` items in flight.

    Bounded so memory stays flat on huge archives, and so an interrupt leaves no queue to drain.
    """
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="railvision-prepare")
    queue: deque[Future[R]] = deque()
    try:
        for item in items:
            queue.append(pool.submit(fn, item))
            if len(queue) >= depth:
                yield queue.popleft().result()
        while queue:
            yield queue.popleft().result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


class Labeller:
    """One one-thread detector labelling files photo by photo: a local lane, or a Ray actor.

    At one thread a batch runs no faster per photo than single photos, and photo by photo the
    lane's decoding interleaves with the other lanes' model runs.
    """

    def __init__(self, options: LabelOptions) -> None:
        self.options = options
        self.detector = open_detector(options, threads=1)

    def label(self, root: str | Path, files: list[ArchiveFile]) -> list[Outcome]:
        return [
            outcome
            for file in files
            for outcome in infer(self.detector, [prepare(Path(root), file, self.detector, self.options)], self.options)
        ]


def label_lanes(root: Path, files: list[ArchiveFile], options: LabelOptions) -> Iterator[list[Outcome]]:
    """Outcomes ``options.batch`` photos at a time, in order, from ``options.workers`` CPU lanes."""
    lanes: queue.SimpleQueue[Labeller] = queue.SimpleQueue()
    for _ in range(max(1, options.workers)):
        lanes.put(Labeller(options))

    def run(batch: list[ArchiveFile]) -> list[Outcome]:
        lane = lanes.get()
        try:
            return lane.label(root, batch)
        finally:
            lanes.put(lane)

    yield from prefetch(run, chunks(files, options.batch), options.workers, depth=2 * max(1, options.workers))


def label_local(
    root: Path, files: list[ArchiveFile], options: LabelOptions, detector: Detector
) -> Iterator[list[Outcome]]:
    """Outcomes batch by batch: lanes on the CPU; on a GPU, decoding in ``options.workers`` threads
    overlaps ``detector``'s batches."""
    if detector.provider == "CPUExecutionProvider":
        yield from label_lanes(root, files, options)
        return
    prepared = prefetch(
        lambda f: prepare(root, f, detector, options),
        files,
        options.workers,
        depth=2 * options.batch + options.workers,
    )
    for batch in chunks(prepared, options.batch):
        yield infer(detector, batch, options)
