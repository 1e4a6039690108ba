"""``create_app(settings)``: the FastAPI application; ``app`` is the one ``uvicorn railvision.serve.app:app`` runs.

The model is loaded in the lifespan, never at import: without a model the app still
starts, ``/readyz`` says why it is not ready and ``/v1`` answers 503.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from railvision import __version__
from railvision.serve.errors import install_handlers
from railvision.serve.metrics import MetricsMiddleware
from railvision.serve.routers import public, v1
from railvision.serve.schemas import openapi_components
from railvision.serve.service import Service
from railvision.serve.settings import Settings
from railvision.serve.uploads import CloseUnreadBodies


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
    app.include_router(public.router)
    app.include_router(v1.router)
    install_handlers(app, on_error=lambda kind: service.metrics.errors.labels(kind=kind).inc())
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(CloseUnreadBodies)
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
