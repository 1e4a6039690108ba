"""The service's state: settings, metrics and, once loaded, the detector and its batcher."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from railvision.engine import Detector
from railvision.errors import RailvisionError
from railvision.serve.batcher import Batcher
from railvision.serve.metrics import Metrics
from railvision.serve.settings import Settings

log = logging.getLogger("railvision.serve")


@dataclass
class Service:
    """One per app, made before the model loads, so health checks answer while it loads (or failed to)."""

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
