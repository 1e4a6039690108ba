"""The run's SQLite state in the output folder: what makes labelling resumable after a kill."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from railvision.detections import Detections
from railvision.errors import RailvisionError
from railvision.labelling.records import ArchiveFile, FailedImage, LabelledImage, Outcome

STATE_FILE = "state.sqlite"


class OutputInUseError(RailvisionError):
    """Another labelling run holds the output folder."""

    kind = "output_in_use"


@contextlib.contextmanager
def exclusive(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``out``'s state file for a whole run, so that a second run on the same
    output refuses at once instead of interleaving writes. ``flock`` locks die with their process, so a run
    killed any way (``kill -9``, power loss) never leaves a stale lock behind."""
    fd = os.open(out / STATE_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputInUseError(
                f"{out} is in use by another 'railvision label' run; wait for it to finish or choose another --out"
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock


def _key(rel: str) -> str | bytes:
    """A photo's row key: its path as text, or its exact bytes for a name that is not UTF-8 (SQLite text must be).

    Text and blob keys never compare equal, and states saved before keep their (text) keys."""
    try:
        rel.encode()
    except UnicodeEncodeError:
        return os.fsencode(rel)
    return rel


def _rel(key: str | bytes) -> str:
    return key if isinstance(key, str) else os.fsdecode(key)


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

    @property
    def outputs_key(self) -> str | None:
        """The key of the inputs the outputs were last written from in full (``driver.outputs_key``)."""
        row = self.db.execute("SELECT value FROM settings WHERE key = 'outputs'").fetchone()
        return row[0] if row else None

    @outputs_key.setter
    def outputs_key(self, key: str) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO settings VALUES ('outputs', ?)", (key,))

    def pending(self, files: list[ArchiveFile]) -> list[ArchiveFile]:
        """Photos with no saved outcome, or changed (size or mtime) since it was saved."""
        done = {_rel(p): (s, m) for p, s, m in self.db.execute("SELECT path, size, mtime_ns FROM images")}
        return [f for f in files if done.get(f.rel) != (f.size, f.mtime_ns)]

    def record(self, outcomes: list[Outcome]) -> None:
        """Save one batch in one transaction: after a crash a batch is either all there or not at all."""
        rows = [
            (
                _key(o.file.rel),
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
        rows = {_rel(r[0]): r[1:] for r in self.db.execute("SELECT path, result, error_kind, error, geo FROM images")}
        labelled, failed = [], []
        for file in files:
            result, kind, reason, geo = rows[file.rel]
            if result is None:
                failed.append(FailedImage(file.rel, kind, reason))
            else:
                detections = Detections.from_dict(json.loads(result), class_names)
                labelled.append(LabelledImage(file.rel, detections, None if geo is None else json.loads(geo)))
        return labelled, failed

    def close(self) -> None:
        self.db.close()
