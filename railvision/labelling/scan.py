"""The archive scan: which files are photos to label, and why every other file is passed over."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from railvision.images import IMAGE_SUFFIXES
from railvision.labelling.records import ArchiveFile, Skipped


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
