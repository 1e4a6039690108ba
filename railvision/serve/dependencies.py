"""FastAPI dependencies: the app's service, the API-key check and the "model loaded" guard."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from railvision.serve.errors import ServiceError
from railvision.serve.service import Service


def get_service(request: Request) -> Service:
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]


def require_api_key(request: Request, service: ServiceDep) -> None:
    """With ``RAILVISION_API_KEY`` set, ``Authorization: Bearer <key>``, compared in constant time."""
    key = service.settings.api_key
    if not key:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), key.encode()):
        raise ServiceError(
            401,
            "unauthorized",
            "missing or wrong API key (Authorization: Bearer <key>)",
            headers={"WWW-Authenticate": "Bearer"},
        )


def ready_service(service: ServiceDep) -> Service:
    """The service, or 503 while (or because) no model is loaded."""
    if service.batcher is None:
        raise ServiceError(503, "model_not_ready", service.not_ready)
    return service


ReadyService = Annotated[Service, Depends(ready_service)]
