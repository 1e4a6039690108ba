"""Running a command in a fresh interpreter, for what must hold of a whole process
(which libraries it never loaded), not only of the code under test."""

from __future__ import annotations

import subprocess
import sys

TORCH_ABSENT = "assert 'torch' not in sys.modules, 'torch was imported'"
GL_ABSENT = "maps = open('/proc/self/maps').read(); assert 'libEGL' not in maps and 'LLVM' not in maps, 'GL loaded'"


def run_cli(argv: list[str], check: str) -> subprocess.CompletedProcess:
    """``railvision ARGV`` in a new Python, then ``check`` (Python code; ``sys`` imported); exit code is ARGV's."""
    code = f"import sys; from railvision.cli import main; rc = main({argv!r}); {check}; sys.exit(rc)"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
