"""The service's state: settings, metrics and, once loaded, the detector and its batcher."""

from __future__ import annotations

import asyncio
import hmac
import logging
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from railvision.engine import Detector
from railvision.errors import RailvisionError
from serve.batcher import Batcher
from serve.errors import ServiceError
from serve.metrics import Metrics
from serve.settings import Settings

log = logging.getLogger("railvision.serve")


@dataclass
class Service:
    settings: Settings
    metrics: Metrics = field(init=False)
    detector: Detector | None = None
    batcher: Batcher | None = None
    not_ready: str = "the model is loading"

    def __post_init__(self) -> None:
        self.metrics = Metrics(lambda: self.batcher.depth if self.batcher else 0)

    async def load(self) -> None:
        """Open the model once; on failure the service stays up and says why it is not ready."""
        s = self.settings
        try:
            self.detector = await asyncio.to_thread(
                Detector, s.model, device=s.device, threads=s.threads, batch=s.max_batch, max_pixels=s.max_pixels
            )
        except (RailvisionError, ValueError) as exc:
            self.not_ready = f"no model loaded: {exc}"
            log.error("%s", self.not_ready)
            return
        self.batcher = Batcher(self.detector, self.metrics, s.max_batch, s.max_wait_ms / 1e3, s.max_queue)
        self.batcher.start()
        log.info("model %s loaded on %s", self.detector.model_path, self.detector.provider)

    async def close(self) -> None:
        if self.batcher is not None:
            await self.batcher.stop()


def get_service(request: Request) -> Service:
    return request.app.state.service


def require_api_key(request: Request, service: Annotated[Service, Depends(get_service)]) -> None:
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


def ready_service(service: Annotated[Service, Depends(get_service)]) -> Service:
    """The service, or 503 while (or because) no model is loaded."""
    if service.batcher is None:
        raise ServiceError(503, "model_not_ready", service.not_ready)
    return service


ServiceDep = Annotated[Service, Depends(get_service)]
ReadyService = Annotated[Service, Depends(ready_service)]
