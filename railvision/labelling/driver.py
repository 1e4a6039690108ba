"""The labelling run: scan, label what is not yet saved, then rebuild every output from the state,
and the summary printed at the end."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from railvision.engine import Detector
from railvision.errors import OutOfSpaceError
from railvision.labelling.outputs import (
    FORMATS,
    output_names,
    output_stems,
    prune,
    shared_stems,
    text_name,
    write_atomic,
    write_outputs,
)
from railvision.labelling.pipeline import label_local, open_detector
from railvision.labelling.records import ArchiveFile, LabelOptions, Results, Skipped
from railvision.labelling.scan import scan_archive
from railvision.labelling.state import STATE_FILE, State, exclusive
from railvision.options import DEFAULTS


def settings_key(options: LabelOptions, detector: Detector) -> dict[str, Any]:
    """The settings that decide the saved labels; ``batch``, ``workers`` and the device do not.

    ``classes`` and ``max_det`` appear only when not the defaults, so states saved before they could
    be chosen stay valid."""
    chosen = detector.options
    key = {
        "model_sha256": detector.model_hash,
        "conf": detector.conf,
        "iou": chosen.iou,
        "tile": chosen.tile,
        "annotated": options.annotated,
        "max_pixels": options.max_pixels,
        "imgsz": list(detector.imgsz),
    }
    if chosen.classes is not None:
        key["classes"] = list(chosen.classes)
    if chosen.max_det != DEFAULTS.max_det:
        key["max_det"] = chosen.max_det
    return key


NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})  # disk full, quota, file-size limit


@contextmanager
def full_disk_reported(out: Path) -> Iterator[None]:
    """A full disk while writing ``out`` becomes one clear error. Every batch saved before it stays in the
    state (each is one transaction) and outputs are replaced atomically, so a rerun after freeing space
    finishes exactly as an uninterrupted run would have."""
    try:
        yield
    except (OSError, sqlite3.OperationalError) as exc:
        # SQLite says SQLITE_FULL for a full disk, and only "disk I/O error" when a write is refused otherwise
        code = getattr(exc, "sqlite_errorname", "")
        if not (exc.errno in NO_SPACE if isinstance(exc, OSError) else code == "SQLITE_FULL" or "IOERR" in code):
            raise
        raise OutOfSpaceError(
            f"cannot write to {out} ({exc}; is the disk full?); everything labelled so far is saved: "
            "free some space and run the same command again"
        ) from None


def outputs_key(files: list[ArchiveFile], skipped: list[Skipped], choices: list[Any]) -> str:
    """A digest of what the outputs are made of besides the saved settings: the archive as scanned and the
    output ``choices``. Equal to the last complete run's, with nothing pending, the outputs are already right."""
    digest = hashlib.sha256(json.dumps(choices).encode())
    for f in files:
        digest.update(os.fsencode(f"{f.rel}\0{f.size}\0{f.mtime_ns}\n"))
    for item in skipped:
        digest.update(os.fsencode(f"{item.rel}\0{item.reason}\n"))
    return digest.hexdigest()


def annotated_path(out: Path, stem: str) -> Path:
    return out / "annotated" / f"{stem}.jpg"


@dataclass(slots=True)
class Summary:
    """What a run did, counted over the whole archive, and its console text (``lines``)."""

    total: int
    processed: int  # this run
    labelled: int
    failed: int
    skipped: int
    per_class: dict[str, int]
    wall_s: float
    restarted: bool
    shared_names: list[str] = field(default_factory=list)  # photos whose outputs are not named by their stem

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
                f"{text_name(self.shared_names[0])}): their YOLO labels and annotated copies keep it (name.jpg.txt), "
                "with a digest of the path where that still clashes or is too long (name.jpg~1a2b3c4d5e.txt)"
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
    with full_disk_reported(out), exclusive(out):
        files, skipped = scan_archive(root)
        stems = output_stems(f.rel for f in files)
        detector = open_detector(options)
        state = State(out / STATE_FILE, settings_key(options, detector))
        try:
            pending = state.pending(files)
            on_start(len(pending))
            if engine == "ray":
                from railvision.labelling.ray_backend import label_ray

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
            results = Results(labelled, failed, skipped, detector.class_names, detector.model_path.name)
            key = outputs_key(files, skipped, [sorted(formats), labelstudio_prefix, report, results.model_name])
            names = [*output_names(formats), *(["report.html"] if report else [])]
            done = not pending and state.outputs_key == key and all((out / n).exists() for n in names)
            if not done:  # a rerun with nothing new leaves the outputs alone (100k photos: seconds, not minutes)
                write_outputs(out, results, formats, labelstudio_prefix=labelstudio_prefix)
                if options.annotated:
                    prune(out / "annotated", {annotated_path(out, stems[image.path]) for image in labelled})
                if report:
                    from railvision.labelling.report import write_report

                    write_report(out / "report.html", root, results)
                state.outputs_key = key
        finally:
            state.close()
        per_class = {name: 0 for name in detector.class_names}
        for image in labelled:
            for name, n in image.detections.counts().items():
                per_class[name] += n
        return Summary(
            len(files), len(pending), len(labelled), len(failed), len(skipped), per_class,
            time.perf_counter() - start, state.restarted, shared_stems(stems),
        )  # fmt: skip
