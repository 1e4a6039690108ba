"""Labelling a whole photo archive, resumably.

The archive is scanned (read-only), every photo not yet done is decoded and
prepared (letterboxed, as tensors) in worker threads while the main thread runs the model on batches,
and each batch's results are committed to a SQLite file in the output folder.
Outputs are always rebuilt from that file, so a run killed at any point and then
resumed ends with exactly the files an uninterrupted run would have written.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from railvision.detections import Detections
from railvision.draw import draw_detections
from railvision.engine import Detector, Letterbox
from railvision.errors import ImageError
from railvision.formats import FORMATS, output_stems, prune, shared_stems, write_atomic, write_outputs
from railvision.images import IMAGE_SUFFIXES, decode, encode_jpeg

STATE_FILE = "state.sqlite"
GEOTIFF_SUFFIXES = frozenset({".tif", ".tiff"})
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class ArchiveFile:
    """One photo in the archive; ``size`` and ``mtime_ns`` tell whether it changed since it was labelled."""

    rel: str  # POSIX path relative to the archive root
    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class Skipped:
    rel: str
    reason: str


@dataclass(frozen=True, slots=True)
class LabelOptions:
    """What decides the labels (any change restarts the labelling) and how the work is spread."""

    model: Path
    device: str = "auto"
    conf: float | None = None  # None: the model's own threshold
    iou: float = 0.7
    tile: str = "auto"
    annotated: bool = False
    max_pixels: int | None = None
    batch: int = 8
    workers: int = 2


@dataclass(slots=True)
class Outcome:
    """What happened to one photo: its detections (``Detections.to_dict()``) or why it failed."""

    file: ArchiveFile
    result: dict[str, Any] | None = None
    error: tuple[str, str] | None = None  # (kind, reason)
    geo: dict[str, Any] | None = None  # {"crs": ..., "transform": [a, b, c, d, e, f]} of a GeoTIFF
    annotated: bytes | None = None  # JPEG with boxes drawn, when asked for


@dataclass(frozen=True, slots=True)
class LabelledImage:
    path: str
    detections: Detections
    geo: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class FailedImage:
    path: str
    kind: str
    reason: str


@dataclass(slots=True)
class Prepared:
    """A photo decoded and letterboxed in a worker, ready for the model (or the reason it is not)."""

    file: ArchiveFile
    frame: np.ndarray | None = None
    boxed: tuple[np.ndarray, Letterbox] | None = None
    geo: dict[str, Any] | None = None
    error: tuple[str, str] | None = None


@dataclass(slots=True)
class Results:
    """Everything the outputs are built from, in archive order."""

    labelled: list[LabelledImage] = field(default_factory=list)
    failed: list[FailedImage] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    class_names: tuple[str, ...] = ()
    model_name: str = ""

    def paths(self) -> list[str]:
        """Every photo labelled or failed: what the per-photo output names are chosen among."""
        return [image.path for image in self.labelled] + [image.path for image in self.failed]


# ---------------------------------------------------------------- scanning


def scan_archive(root: Path) -> tuple[list[ArchiveFile], list[Skipped]]:
    """Photos under ``root`` (sorted, symlinks never followed) and everything passed over, with why."""
    files, skipped = [], []
    for folder, dirs, names in os.walk(root, followlinks=False):
        base = Path(folder)
        for name in sorted(dirs):
            if (base / name).is_symlink():
                skipped.append(Skipped((base / name).relative_to(root).as_posix(), "symlink"))
        dirs[:] = sorted(d for d in dirs if not (base / d).is_symlink())
        for name in names:
            path = base / name
            rel = path.relative_to(root).as_posix()
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                skipped.append(Skipped(rel, "symlink"))
            elif not stat.S_ISREG(info.st_mode):
                skipped.append(Skipped(rel, "not a regular file"))
            elif path.suffix.lower() not in IMAGE_SUFFIXES:
                skipped.append(Skipped(rel, "not an image type"))
            else:
                files.append(ArchiveFile(rel, info.st_size, info.st_mtime_ns))
    return sorted(files, key=lambda f: f.rel), sorted(skipped, key=lambda s: s.rel)


def read_georef(path: Path) -> dict[str, Any] | None:
    """CRS and affine transform of a georeferenced GeoTIFF; ``None`` for anything else or without rasterio."""
    if path.suffix.lower() not in GEOTIFF_SUFFIXES:
        return None
    try:
        import rasterio
    except ImportError:
        return None
    try:
        with rasterio.open(path) as dataset:
            if dataset.crs is None or dataset.transform.is_identity:
                return None
            return {"crs": dataset.crs.to_string(), "transform": [float(v) for v in tuple(dataset.transform)[:6]]}
    except rasterio.errors.RasterioError:
        return None


# ---------------------------------------------------------------- state


class State:
    """The run's SQLite file: one row per photo, keyed by relative path, valid for its size and mtime."""

    def __init__(self, path: Path, settings: dict[str, Any]) -> None:
        self.db = sqlite3.connect(path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS images (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER,"
            " result TEXT, error_kind TEXT, error TEXT, geo TEXT)"
        )
        wanted = json.dumps(settings, sort_keys=True)
        row = self.db.execute("SELECT value FROM settings WHERE key = 'run'").fetchone()
        self.restarted = row is not None and row[0] != wanted
        with self.db:
            if self.restarted:
                self.db.execute("DELETE FROM images")
            self.db.execute("INSERT OR REPLACE INTO settings VALUES ('run', ?)", (wanted,))

    def pending(self, files: list[ArchiveFile]) -> list[ArchiveFile]:
        """Photos with no saved outcome, or changed (size or mtime) since it was saved."""
        done = {p: (s, m) for p, s, m in self.db.execute("SELECT path, size, mtime_ns FROM images")}
        return [f for f in files if done.get(f.rel) != (f.size, f.mtime_ns)]

    def record(self, outcomes: list[Outcome]) -> None:
        """Save one batch in one transaction: after a crash a batch is either all there or not at all."""
        rows = [
            (
                o.file.rel,
                o.file.size,
                o.file.mtime_ns,
                None if o.result is None else json.dumps(o.result),
                o.error and o.error[0],
                o.error and o.error[1],
                None if o.geo is None else json.dumps(o.geo),
            )
            for o in outcomes
        ]
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO images VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def results(
        self, files: list[ArchiveFile], class_names: tuple[str, ...]
    ) -> tuple[list[LabelledImage], list[FailedImage]]:
        """Saved outcomes of the photos now in the archive, in archive order."""
        rows = {r[0]: r for r in self.db.execute("SELECT path, result, error_kind, error, geo FROM images")}
        labelled, failed = [], []
        for file in files:
            path, result, kind, reason, geo = rows[file.rel]
            if result is None:
                failed.append(FailedImage(path, kind, reason))
            else:
                detections = Detections.from_dict(json.loads(result), class_names)
                labelled.append(LabelledImage(path, detections, None if geo is None else json.loads(geo)))
        return labelled, failed

    def close(self) -> None:
        self.db.close()


# ---------------------------------------------------------------- labelling


def open_detector(options: LabelOptions, threads: int | None = None) -> Detector:
    """The labeller's detector: ORT threads do not spin while idle, so decoding threads get the cores."""
    return Detector(
        options.model, device=options.device, conf=options.conf, iou=options.iou, threads=threads,
        batch=options.batch, max_pixels=options.max_pixels, spinning=False,
    )  # fmt: skip


def prepare(root: Path, file: ArchiveFile, detector: Detector, max_pixels: int | None) -> Prepared:
    """Read, decode and letterbox one photo (runs in a worker thread: OpenCV releases the GIL)."""
    path = root / file.rel
    try:
        frame = decode(path.read_bytes(), max_pixels)
    except ImageError as exc:
        return Prepared(file, error=(exc.kind, str(exc)))
    except OSError as exc:
        return Prepared(file, error=("unreadable", exc.strerror or str(exc)))
    return Prepared(file, frame, detector.prepare(frame), read_georef(path))


def infer(detector: Detector, batch: list[Prepared], options: LabelOptions) -> list[Outcome]:
    """Run the model on one batch of prepared photos; failures pass through as outcomes."""
    good = [p for p in batch if p.error is None]
    found = iter(
        detector.detect_frames(
            [p.frame for p in good],
            tile=options.tile,
            letterboxed=[p.boxed for p in good],  # type: ignore[misc]
        )
        if good
        else []
    )
    outcomes = []
    for item in batch:
        if item.error is not None:
            outcomes.append(Outcome(item.file, error=item.error))
            continue
        detections = next(found)
        drawn = encode_jpeg(draw_detections(item.frame, detections)) if options.annotated else None
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


def label_local(
    root: Path, files: list[ArchiveFile], options: LabelOptions, detector: Detector
) -> Iterator[list[Outcome]]:
    """Outcomes batch by batch: decoding in ``options.workers`` threads overlaps inference here."""
    prepared = prefetch(
        lambda f: prepare(root, f, detector, options.max_pixels),
        files,
        options.workers,
        depth=2 * options.batch + options.workers,
    )
    for batch in chunks(prepared, options.batch):
        yield infer(detector, batch, options)


# ---------------------------------------------------------------- driver


def settings_key(options: LabelOptions, detector: Detector) -> dict[str, Any]:
    """The settings that decide the saved labels; ``batch``, ``workers`` and the device do not."""
    return {
        "model_sha256": detector.model_hash,
        "conf": detector.conf,
        "iou": options.iou,
        "tile": options.tile,
        "annotated": options.annotated,
        "max_pixels": options.max_pixels,
        "imgsz": list(detector.imgsz),
    }


def annotated_path(out: Path, stem: str) -> Path:
    return out / "annotated" / f"{stem}.jpg"


@dataclass(slots=True)
class Summary:
    total: int
    processed: int  # this run
    labelled: int
    failed: int
    skipped: int
    per_class: dict[str, int]
    wall_s: float
    restarted: bool
    shared_names: list[str] = field(default_factory=list)  # photos whose outputs keep their extension

    def lines(self) -> list[str]:
        per_class = ", ".join(f"{name} {n}" for name, n in self.per_class.items())
        lines = [
            f"{self.total} images in the archive: {self.labelled} labelled, {self.failed} failed, "
            f"{self.skipped} files skipped; {self.processed} processed in this run",
            f"detections: {sum(self.per_class.values())} ({per_class})",
            f"wall time {self.wall_s:.1f} s ({self.processed / max(self.wall_s, 1e-9):.1f} images/s)",
        ]
        if self.shared_names:
            lines.append(
                f"note: {len(self.shared_names)} photos share a name but for the extension (e.g. "
                f"{self.shared_names[0]}): their YOLO labels and annotated copies keep it (name.jpg.txt)"
            )
        return lines


def label_archive(
    root: Path,
    out: Path,
    options: LabelOptions,
    *,
    formats: Iterable[str] = FORMATS,
    report: bool = False,
    engine: str = "local",
    ray_address: str | None = None,
    labelstudio_prefix: str = "",
    on_start: Callable[[int], None] = lambda pending: None,
    on_batch: Callable[[int], None] = lambda done: None,
) -> Summary:
    """Label every photo under ``root`` not yet done in ``out``'s state file, then (re)write all outputs.

    ``on_start(n_pending)`` and ``on_batch(n_done)`` report progress (the CLI's progress bar).
    """
    start = time.perf_counter()
    root, out = root.resolve(), out.resolve()
    if out == root or root in out.parents:
        raise ValueError(f"the output folder {out} must not be inside the archive {root}")
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown format(s) {', '.join(sorted(unknown))}; choose from {', '.join(FORMATS)}")
    out.mkdir(parents=True, exist_ok=True)
    files, skipped = scan_archive(root)
    stems = output_stems(f.rel for f in files)
    detector = open_detector(options)
    state = State(out / STATE_FILE, settings_key(options, detector))
    try:
        pending = state.pending(files)
        on_start(len(pending))
        if engine == "ray":
            from railvision.ray_engine import label_ray

            batches = label_ray(root, pending, options, ray_address)
        else:
            batches = label_local(root, pending, options, detector)
        for outcomes in batches:
            for outcome in outcomes:
                if outcome.annotated is not None:
                    write_atomic(annotated_path(out, stems[outcome.file.rel]), outcome.annotated)
            state.record(outcomes)
            on_batch(len(outcomes))
        labelled, failed = state.results(files, detector.class_names)
    finally:
        state.close()
    results = Results(labelled, failed, skipped, detector.class_names, detector.model_path.name)
    write_outputs(out, results, formats, labelstudio_prefix=labelstudio_prefix)
    if options.annotated:
        prune(out / "annotated", {annotated_path(out, stems[image.path]) for image in labelled})
    if report:
        from railvision.report import write_report

        write_report(out / "report.html", root, results)
    per_class = {name: 0 for name in detector.class_names}
    for image in labelled:
        for name, n in image.detections.counts().items():
            per_class[name] += n
    return Summary(
        len(files), len(pending), len(labelled), len(failed), len(skipped), per_class,
        time.perf_counter() - start, state.restarted, shared_stems(stems),
    )  # fmt: skip
