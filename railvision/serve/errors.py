"""Every failure answers one JSON shape, ``{"error": {"kind", "message", "file"}}``, with a fitting status."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from railvision.errors import ImageError

log = logging.getLogger("railvision.serve")

# Status for each bad-image kind the decoder raises (see railvision.errors).
IMAGE_STATUS = {
    "empty_image": 400,
    "not_an_image": 415,
    "unsupported_format": 415,
    "corrupt_image": 422,
    "image_too_large": 413,
}


class ServiceError(Exception):
    """A refusal with its HTTP status, machine-readable kind and (for one bad image) the file it concerns."""

    def __init__(
        self, status: int, kind: str, message: str, file: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.file, self.headers = status, kind, message, file, headers

    @classmethod
    def from_image_error(cls, exc: ImageError, file: str | None) -> ServiceError:
        return cls(IMAGE_STATUS.get(exc.kind, 400), exc.kind, str(exc), file)

    def response(self) -> JSONResponse:
        body = {"error": {"kind": self.kind, "message": self.message, "file": self.file}}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def _http_kind(status: int) -> str:
    return {401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}.get(status, "http_error")


def install_handlers(app: FastAPI, on_error: Callable[[str], None]) -> None:
    """Map service, validation and routing errors (and anything unexpected) to the one error shape.

    ``on_error(kind)`` is called for each error answer (the metrics count them by kind).
    """

    def answer(error: ServiceError) -> JSONResponse:
        on_error(error.kind)
        return error.response()

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return answer(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_parameter(request: Request, exc: RequestValidationError) -> JSONResponse:
        return answer(invalid_parameters(exc.errors()))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return answer(ServiceError(exc.status_code, _http_kind(exc.status_code), str(exc.detail), headers=exc.headers))

    @app.exception_handler(ClientDisconnect)
    async def client_disconnected(request: Request, exc: ClientDisconnect) -> JSONResponse:
        """A client gone mid-upload is routine under load, not an internal error worth a traceback (nobody
        reads this answer; the metrics count it under nginx's 499)."""
        return answer(ServiceError(499, "client_disconnected", "the client closed the connection mid-request"))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return answer(ServiceError(500, "internal_error", f"internal error: {type(exc).__name__}"))


def invalid_parameters(errors: list[dict] | tuple) -> ServiceError:
    """422 naming each bad parameter, from pydantic's error list."""
    parts = []
    for error in errors:
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("query", "body"))
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg", "invalid")))
    return ServiceError(422, "invalid_parameter", "; ".join(parts) or "invalid parameters")
