"""Reading request bodies into memory: a byte limit and a deadline enforced while streaming, nothing on disk.

Starlette's form parser spools uploads over 1 MB to temporary files; photos must never
touch the disk, so multipart bodies are parsed here, in memory, with python-multipart, fed
chunk by chunk as they arrive (the body is never held twice). ``CloseUnreadBodies`` makes
every answer given before a body was read to its end close the connection.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import Request
from pydantic import ValidationError
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from railvision.serve.errors import ServiceError, invalid_parameters
from railvision.serve.schemas import DetectJSON

IMAGE_FIELDS = ("files", "file")


@dataclass(frozen=True)
class Upload:
    name: str
    data: bytes


def too_large(limit: int) -> ServiceError:
    return ServiceError(413, "payload_too_large", f"request body is over the limit of {limit:,} bytes")


async def body_chunks(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The body as it arrives, refused with 413 as soon as it passes ``limit`` (declared or actual length).

    A Content-Length that understates the body cannot get more than it declared past the HTTP parser
    (h11 reads the rest as a malformed next request), and chunked bodies are counted as they come.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise too_large(limit)
        yield chunk


class MultipartReader:
    """Image parts (fields ``files``/``file``) and the other fields as text, from a body written in chunks."""

    def __init__(self, content_type: str) -> None:
        _, options = parse_options_header(content_type)
        boundary = options.get(b"boundary")
        if not boundary:
            raise ServiceError(400, "bad_request", "multipart body without a boundary")
        self.uploads: list[Upload] = []
        self.fields: dict[str, str] = {}
        self._headers: dict[str, str] = {}
        self._header = [b"", b""]
        self._data = bytearray()
        callbacks = {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda data, start, end: self._add_header(0, data[start:end]),
            "on_header_value": lambda data, start, end: self._add_header(1, data[start:end]),
            "on_header_end": self._header_end,
            "on_part_data": lambda data, start, end: self._data.extend(data[start:end]),
            "on_part_end": self._part_end,
        }
        self._parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]

    def write(self, chunk: bytes) -> None:
        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            raise ServiceError(400, "bad_request", f"malformed multipart body: {exc}") from None

    def finish(self) -> tuple[list[Upload], dict[str, str]]:
        """What was read; a body cut before its closing boundary is refused (its last part is incomplete)."""
        if self._parser.state != MultipartState.END:
            raise ServiceError(400, "bad_request", "malformed multipart body: it ends before the closing boundary")
        return self.uploads, self.fields

    def _part_begin(self) -> None:
        self._headers, self._data = {}, bytearray()

    def _add_header(self, which: int, data: bytes) -> None:
        self._header[which] += data

    def _header_end(self) -> None:
        name, value = self._header
        self._headers[name.decode("latin-1").lower()] = value.decode("utf-8", "replace")
        self._header = [b"", b""]

    def _part_end(self) -> None:
        """Each part is copied out once, when it ends, and its buffer dropped."""
        _, disposition = parse_options_header(self._headers.get("content-disposition", ""))
        field = disposition.get(b"name", b"").decode("utf-8", "replace")
        if field in IMAGE_FIELDS:
            filename = disposition.get(b"filename", b"").decode("utf-8", "replace")
            self.uploads.append(Upload(filename or f"image{len(self.uploads)}", bytes(self._data)))
        elif field:
            self.fields[field] = self._data.decode("utf-8", "replace")
        self._data = bytearray()


def parse_json(body: bytes | bytearray) -> tuple[list[Upload], dict[str, object]]:
    """``{"images": [{"name", "data": base64}], ...params}``: images decoded from base64, params as given."""
    try:
        request = DetectJSON.model_validate_json(body)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise ServiceError(400, "bad_request", "the body is not valid JSON") from None
        raise invalid_parameters(exc.errors()) from None
    uploads = []
    for i, image in enumerate(request.images):
        name = image.name or f"image{i}"
        try:
            uploads.append(Upload(name, base64.b64decode(image.data, validate=True)))
        except (binascii.Error, ValueError):
            raise ServiceError(400, "invalid_base64", "image data is not valid base64", name) from None
    return uploads, request.model_dump(exclude_unset=True, exclude={"images"})


async def read_uploads(request: Request, limit: int, timeout_s: float) -> tuple[list[Upload], dict[str, object]]:
    """Images and parameter fields from a multipart or JSON request whose body arrives within ``timeout_s``.

    The deadline is for the whole body, so a client trickling bytes holds its connection at most that long
    (408; the request timeout only starts once the body is in).
    """
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";")[0].strip().lower()
    if media not in ("multipart/form-data", "application/json"):
        raise ServiceError(
            415, "unsupported_media_type", "send images as multipart/form-data (field 'files') or application/json"
        )
    try:
        async with asyncio.timeout(timeout_s):
            if media == "multipart/form-data":
                reader = MultipartReader(content_type)
                async for chunk in body_chunks(request, limit):
                    reader.write(chunk)
                return reader.finish()
            body = bytearray()
            async for chunk in body_chunks(request, limit):
                body += chunk
    except TimeoutError:
        raise ServiceError(408, "body_timeout", f"the request body did not arrive within {timeout_s:g} s") from None
    return parse_json(body)


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


class CloseUnreadBodies:
    """An answer sent before the request body was read to its end carries ``Connection: close``.

    Without it uvicorn keeps the connection and reads the rest of the body only to throw it away: a
    client refused with 413 (or 401, 408, 415) would still push all of its 50 MB, and an endless
    chunked body would hold the connection forever. Closing stops reading at once.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _has_body(scope):
            await self.app(scope, receive, send)
            return
        read_all = False

        async def receive_tracked() -> Message:
            nonlocal read_all
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                read_all = True
            return message

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start" and not read_all:
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive_tracked, send_closing)
