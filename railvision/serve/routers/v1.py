"""``/v1``: detection and the loaded model, behind the optional API key."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from railvision.detections import Detections
from railvision.draw import draw_detections
from railvision.engine import Detector, Letterbox
from railvision.errors import ImageError
from railvision.images import Frame, decode_frame, encode_jpeg
from railvision.serve.batcher import Result
from railvision.serve.dependencies import ReadyService, require_api_key
from railvision.serve.errors import ServiceError, invalid_parameters
from railvision.serve.schemas import DetectParams, DetectResponse, ErrorResponse, ModelInfo
from railvision.serve.uploads import IMAGE_FIELDS, Upload, read_uploads

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 408, 413, 415, 422, 503, 504)
}
DETECT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        IMAGE_FIELDS[0]: {"type": "array", "items": {"type": "string", "format": "binary"}},
                        IMAGE_FIELDS[1]: {"type": "string", "format": "binary"},
                    },
                    "description": "image files; detection parameters may also be sent as form fields",
                }
            },
            "application/json": {"schema": {"$ref": "#/components/schemas/DetectJSON"}},
        },
    }
}

router = APIRouter(prefix="/v1", tags=["detection"], dependencies=[Depends(require_api_key)], responses=ERRORS)


Decoded = tuple[Frame, tuple[np.ndarray, Letterbox], float]  # the photo, its model input, decode ms


def _decode_and_prepare(upload: Upload, detector: Detector, max_pixels: int, annotated: bool) -> Decoded:
    start = time.perf_counter()
    frame = decode_frame(upload.data, None if annotated else detector.imgsz, max_pixels)  # drawn on: whole
    boxed = detector.prepare(frame)
    return frame, boxed, (time.perf_counter() - start) * 1e3


async def _decode(upload: Upload, detector: Detector, max_pixels: int, annotated: bool) -> Decoded:
    """Decode and letterbox off the event loop (header checks first, so a bomb is refused before allocating),
    in parallel with the inference thread."""
    try:
        return await asyncio.to_thread(_decode_and_prepare, upload, detector, max_pixels, annotated)
    except ImageError as exc:
        raise ServiceError.from_image_error(exc, upload.name) from None


def _annotate(image: np.ndarray, detections: Detections) -> str:
    return base64.b64encode(encode_jpeg(draw_detections(image, detections))).decode("ascii")


async def _answer(upload: Upload, image: Frame, decode_ms: float, result: Result, annotated: bool) -> dict:
    found = result.detections
    answer = {
        "name": upload.name,
        **found.to_dict(),
        "tiles": found.meta["tiles"],
        "timing": {
            "decode_ms": round(decode_ms, 2),
            "queue_ms": round(result.queue_ms, 2),
            "infer_ms": round(found.meta["timing"]["infer_ms"], 2),
            "batch_size": result.batch_size,
        },
    }
    if annotated:
        answer["annotated"] = await asyncio.to_thread(_annotate, image.pixels, found)
    return answer


@router.post("/detect", response_model=DetectResponse, openapi_extra=DETECT_BODY, summary="Detect rolling stock")
async def detect(request: Request, query: Annotated[DetectParams, Query()], service: ReadyService) -> JSONResponse:
    """Images as multipart ``files`` (or ``file``) or JSON base64; parameters in the query string or the body.

    One answer per image, in the order sent. Any bad image fails the whole request with a 4xx naming it.
    """
    started = time.perf_counter()
    settings = service.settings
    uploads, fields = await read_uploads(request, settings.max_upload_bytes, settings.body_timeout_s)
    try:
        params = DetectParams.model_validate(query.model_dump(exclude_unset=True) | fields)
    except ValidationError as exc:
        raise invalid_parameters(exc.errors()) from None
    if not uploads:
        raise ServiceError(400, "no_images", "no images: send multipart field 'files' or JSON 'images'")
    if len(uploads) > settings.max_images:
        raise ServiceError(
            413, "too_many_images", f"{len(uploads)} images in one request, the limit is {settings.max_images}"
        )
    try:  # the body is in: from here on a slow answer is the service's fault (504), not the client's (408)
        async with asyncio.timeout(settings.request_timeout_s):
            decoded = await asyncio.gather(
                *(_decode(u, service.detector, settings.max_pixels, params.annotated) for u in uploads)
            )
            results = await service.batcher.submit([(frame, boxed) for frame, boxed, _ in decoded], params.options())
            images = await asyncio.gather(
                *(
                    _answer(upload, frame, ms, result, params.annotated)
                    for upload, (frame, _, ms), result in zip(uploads, decoded, results, strict=True)
                )
            )
    except TimeoutError:
        raise ServiceError(504, "timeout", f"the request took over {settings.request_timeout_s:g} s") from None
    service.metrics.images.inc(len(images))
    total_ms = round((time.perf_counter() - started) * 1e3, 2)
    return JSONResponse({"model": service.detector.model_hash, "images": images, "timing": {"total_ms": total_ms}})


@router.get("/model", response_model=ModelInfo, summary="The loaded model")
async def model(service: ReadyService) -> dict:
    detector = service.detector
    return {
        "name": detector.model_path.name,
        "class_names": list(detector.class_names),
        "input_size": {"width": detector.input_wh[0], "height": detector.input_wh[1]},
        "head": detector.head,
        "default_conf": detector.conf,
        "provider": detector.provider,
        "hash": detector.model_hash,
        "max_batch": service.settings.max_batch,
        "card": {k: v for k, v in detector.metadata.items() if k != "names"},
    }
