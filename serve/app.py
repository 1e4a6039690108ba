"""``create_app(settings)``: the FastAPI application; ``app`` is the one ``uvicorn serve.app:app`` runs.

The model is loaded in the lifespan, never at import: without a model the app still
starts, ``/readyz`` says why it is not ready and ``/v1`` answers 503.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from railvision import __version__
from serve.errors import install_handlers
from serve.metrics import Metrics
from serve.routes import public, v1
from serve.schemas import openapi_components
from serve.service import Service
from serve.settings import Settings


class MetricsMiddleware:
    """Counts every HTTP request by route template and status, and times it."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), [500]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.inc(route=route, status=str(status[0]))
            self.metrics.latency.observe(time.perf_counter() - start, route=route)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    service = Service(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.load()
        yield
        await service.close()

    app = FastAPI(
        title="railvision",
        version=__version__,
        description="Detect freight rolling stock in photos with railvision's ONNX engine.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.include_router(public)
    app.include_router(v1)
    install_handlers(app, on_error=lambda kind: service.metrics.errors.inc(kind=kind))
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(MetricsMiddleware, metrics=service.metrics)

    generate = app.openapi

    def openapi() -> dict:
        """FastAPI's schema plus the JSON body of /v1/detect, which the route reads by hand."""
        if app.openapi_schema is None:
            generate()["components"]["schemas"].update(openapi_components())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


app = create_app()
