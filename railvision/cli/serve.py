"""``railvision serve``: the HTTP inference service (``railvision.serve.app``) under uvicorn.

Flags override the ``RAILVISION_*`` environment variables; the API key is read from
``RAILVISION_API_KEY`` only, so it never shows in the process list.
"""

from __future__ import annotations

import argparse

from railvision.cli import CommandError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument(
        "--model", default=None, help="ONNX file, or a model by name: default, synth, int8 (railvision quantize)"
    )
    parser.add_argument("--device", default=None, help="auto, cpu or cuda[:N] (default auto)")
    parser.add_argument("--max-batch", type=int, default=None, help="most images per inference batch (default 8)")
    parser.add_argument("--max-wait-ms", type=float, default=None, help="wait for a batch to fill (default 5 ms)")
    parser.add_argument("--max-queue", type=int, default=None, help="queued images before answering 503 (default 64)")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: all cores)")
    parser.add_argument(
        "--max-connections", type=int, default=None, help="open connections before answering 503 (default 128)"
    )
    parser.add_argument(
        "--max-upload-bytes", type=int, default=None, help="one request body, cut off with 413 (default 20 MiB)"
    )
    parser.add_argument(
        "--header-timeout-s", type=float, default=None, help="for a request's line and headers (default 10 s)"
    )
    parser.add_argument("--body-timeout-s", type=float, default=None, help="for a request's body: 408 (default 60 s)")
    parser.add_argument(
        "--request-timeout-s", type=float, default=None, help="to answer once the body is in: 504 (default 30 s)"
    )
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])


def run(args: argparse.Namespace) -> int:
    try:
        from railvision.serve.app import create_app
        from railvision.serve.server import serve
        from railvision.serve.settings import Settings
    except ImportError as exc:
        raise CommandError(
            f"{exc.name} is missing; install the 'serve' extra: pip install 'railvision[serve]'"
        ) from None
    flags = (
        "model",
        "device",
        "max_batch",
        "max_wait_ms",
        "max_queue",
        "threads",
        "max_connections",
        "max_upload_bytes",
        "header_timeout_s",
        "body_timeout_s",
        "request_timeout_s",
    )
    # a bad value raises pydantic's ValidationError, a ValueError: main reports it
    settings = Settings(**{k: getattr(args, k) for k in flags if getattr(args, k) is not None})
    serve(create_app(settings), settings, args.host, args.port, args.log_level)
    return 0
