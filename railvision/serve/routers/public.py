"""Routes outside ``/v1``: liveness, readiness, Prometheus metrics and the drop-a-photo page."""

from __future__ import annotations

import json
from importlib.resources import files

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse

from railvision.draw import PALETTE
from railvision.serve.dependencies import ServiceDep, require_api_key
from railvision.serve.metrics import CONTENT_TYPE

INDEX_HTML = files("railvision.serve") / "static" / "index.html"  # package data, wherever it is installed
PAGE_PALETTE = "/*PALETTE*/[]"  # where the page takes the drawer's class colours, as CSS hex
PAGE_COLOURS = json.dumps([f"#{r:02x}{g:02x}{b:02x}" for b, g, r in PALETTE])

router = APIRouter(tags=["service"])


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: 200 once the model is loaded", responses={503: {"model": dict}})
async def readyz(service: ServiceDep) -> JSONResponse:
    if service.batcher is None:
        return JSONResponse({"ready": False, "reason": service.not_ready}, status_code=503)
    return JSONResponse({"ready": True, "model": service.detector.model_path.name})


@router.get("/metrics", dependencies=[Depends(require_api_key)], response_class=PlainTextResponse)
async def metrics(service: ServiceDep) -> PlainTextResponse:
    """Prometheus text format."""
    return PlainTextResponse(service.metrics.render(), media_type=CONTENT_TYPE)


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def index() -> HTMLResponse:
    """The drop-a-photo page: public itself; its API calls carry the key typed into it."""
    return HTMLResponse(INDEX_HTML.read_text(encoding="utf-8").replace(PAGE_PALETTE, PAGE_COLOURS))
