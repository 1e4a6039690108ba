"""Reading request bodies into memory: a byte limit enforced while streaming, nothing spooled to disk.

Starlette's form parser spools uploads over 1 MB to temporary files; photos must never
touch the disk, so multipart bodies are parsed here, in memory, with python-multipart.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from fastapi import Request
from pydantic import ValidationError
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from railvision.serve.errors import ServiceError, invalid_parameters
from railvision.serve.schemas import DetectJSON

IMAGE_FIELDS = ("files", "file")


@dataclass(frozen=True)
class Upload:
    name: str
    data: bytes


def too_large(limit: int) -> ServiceError:
    return ServiceError(413, "payload_too_large", f"request body is over the limit of {limit:,} bytes")


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it passes ``limit`` (declared or actual length)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large(limit)
    return bytes(body)


def parse_multipart(body: bytes, content_type: str) -> tuple[list[Upload], dict[str, str]]:
    """Image parts (fields ``files``/``file``) and the other fields as text."""
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise ServiceError(400, "bad_request", "multipart body without a boundary")
    parts: list[tuple[dict[str, str], bytearray]] = []
    header = [b"", b""]

    def on_part_begin() -> None:
        parts.append(({}, bytearray()))

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header[0] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header[1] += data[start:end]

    def on_header_end() -> None:
        parts[-1][0][header[0].decode("latin-1").lower()] = header[1].decode("utf-8", "replace")
        header[:] = [b"", b""]

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1][1].extend(data[start:end])

    callbacks = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_part_data": on_part_data,
    }
    try:
        parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
        parser.write(body)
        parser.finalize()
    except MultipartParseError as exc:
        raise ServiceError(400, "bad_request", f"malformed multipart body: {exc}") from None
    uploads, fields = [], {}
    for headers, data in parts:
        _, disposition = parse_options_header(headers.get("content-disposition", ""))
        field = disposition.get(b"name", b"").decode("utf-8", "replace")
        if field in IMAGE_FIELDS:
            filename = disposition.get(b"filename", b"").decode("utf-8", "replace")
            uploads.append(Upload(filename or f"image{len(uploads)}", bytes(data)))
        elif field:
            fields[field] = data.decode("utf-8", "replace")
    return uploads, fields


def parse_json(body: bytes) -> tuple[list[Upload], dict[str, object]]:
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


async def read_uploads(request: Request, limit: int) -> tuple[list[Upload], dict[str, object]]:
    """Images and parameter fields from a multipart or JSON request."""
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";")[0].strip().lower()
    if media not in ("multipart/form-data", "application/json"):
        raise ServiceError(
            415, "unsupported_media_type", "send images as multipart/form-data (field 'files') or application/json"
        )
    body = await read_body(request, limit)
    return parse_multipart(body, content_type) if media == "multipart/form-data" else parse_json(body)
