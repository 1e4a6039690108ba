"""Run the service as a subprocess on a free loopback port: for the benchmarks and the tests.

It lives beside the benchmarks, not in the service, because it needs httpx (a dev dependency,
not in the 'serve' extra). Benchmarks run from this folder import it directly; pytest puts this
folder on ``sys.path`` (``pythonpath`` in pyproject.toml).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    model: str | os.PathLike, *flags: str, port: int, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """``railvision serve`` on 127.0.0.1:``port`` (never another address), started but not yet ready."""
    command = [sys.executable, "-m", "railvision", "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--model", str(Path(model)), "--log-level", "warning", *flags]
    return subprocess.Popen(command, env={**os.environ, **(env or {})})


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 60) -> float:
    """Seconds until ``/readyz`` answers 200; raises if the process exits or ``timeout`` passes first."""
    start = time.monotonic()
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited with code {process.returncode} before it was ready")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/readyz", timeout=2, trust_env=False).status_code == 200:
                return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"the service was not ready within {timeout:g} s")
        time.sleep(0.05)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def local_server(
    model: str | os.PathLike, *flags: str, env: dict[str, str] | None = None, ready_timeout: float = 60
) -> Iterator[tuple[str, subprocess.Popen]]:
    """``railvision serve`` on a free loopback port; yields its base URL and process once ready."""
    port = free_port()
    process = start_server(model, *flags, port=port, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, ready_timeout)
        yield url, process
    finally:
        stop(process)
