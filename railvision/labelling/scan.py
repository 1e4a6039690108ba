"""The archive scan: which files are photos to label, and why every other file is passed over; and the
checked read of a photo, which refuses whatever is no longer the file the scan saw."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from railvision.errors import RailvisionError
from railvision.images import IMAGE_SUFFIXES
from railvision.labelling.records import ArchiveFile, Skipped


class ChangedSinceScanError(RailvisionError):
    """A photo is not the file the scan listed by the time it is read; the next run labels what is there then."""

    kind = "changed"


def scan_archive(root: Path) -> tuple[list[ArchiveFile], list[Skipped]]:
    """Photos under ``root`` (sorted, symlinks never followed) and everything passed over, with why."""
    files, skipped = [], []

    def unlisted(error: OSError) -> None:
        rel = Path(error.filename).relative_to(root).as_posix()
        skipped.append(Skipped(rel, f"unreadable folder ({error.strerror})"))

    for folder, dirs, names in os.walk(root, onerror=unlisted, followlinks=False):
        base = Path(folder)
        for name in sorted(dirs):
            if (base / name).is_symlink():
                skipped.append(Skipped((base / name).relative_to(root).as_posix(), "symlink"))
        dirs[:] = sorted(d for d in dirs if not (base / d).is_symlink())
        for name in names:
            path = base / name
            rel = path.relative_to(root).as_posix()
            try:
                info = path.lstat()
            except OSError as exc:  # gone since the folder was listed
                skipped.append(Skipped(rel, f"unreadable ({exc.strerror})"))
                continue
            if stat.S_ISLNK(info.st_mode):
                skipped.append(Skipped(rel, "symlink"))
            elif not stat.S_ISREG(info.st_mode):
                skipped.append(Skipped(rel, "not a regular file"))
            elif path.suffix.lower() not in IMAGE_SUFFIXES:
                skipped.append(Skipped(rel, "not an image type"))
            else:
                files.append(ArchiveFile(rel, info.st_size, info.st_mtime_ns))
    return sorted(files, key=lambda f: f.rel), sorted(skipped, key=lambda s: s.rel)


def read_photo(root: Path, file: ArchiveFile) -> bytes:
    """The photo's bytes, only while it is the regular file of the size and mtime the scan saw.

    Opened without following a symlink and without blocking (a FIFO swapped in since the scan would hang
    the run), and never read past the size seen, so a device or a growing file cannot be read without end.
    """
    try:
        fd = os.open(root / file.rel, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ChangedSinceScanError("a symlink since the scan (not followed)") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ChangedSinceScanError("no longer a regular file")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(file.size + 1)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if (len(data), after.st_size, after.st_mtime_ns) != (file.size, file.size, file.mtime_ns):
        raise ChangedSinceScanError("changed since the scan; the next run labels it")
    return data
