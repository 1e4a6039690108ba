"""Request parameters and the documented answer shapes (answers are built by ``Detections.to_dict``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator

from railvision.options import DEFAULTS, DetectOptions, Tile
from railvision.taxonomy import parse_class_filter


class DetectParams(BaseModel):
    """Detection parameters, from the query string, multipart form fields or the JSON body.

    Defaults come from ``DEFAULTS``; the bounds are the HTTP contract (OpenAPI, a 422 naming the field).
    """

    conf: float | None = Field(None, ge=0, le=1, description="confidence threshold (default: the model's own)")
    iou: float = Field(DEFAULTS.iou, ge=0, le=1, description="NMS IoU threshold (classic heads)")
    classes: str | None = Field(None, description="keep only these classes: names or ids, comma-separated")
    max_det: int = Field(DEFAULTS.max_det, ge=1, le=1000, description="most boxes per image")
    tile: Tile = Field(DEFAULTS.tile, description="tiled inference for large scenes")
    annotated: bool = Field(False, description="also return a JPEG with the boxes drawn (base64)")

    @field_validator("classes")
    @classmethod
    def _known_classes(cls, value: str | None) -> str | None:
        try:
            parse_class_filter(value)
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None
        return value

    def options(self) -> DetectOptions:
        """The request's detection options (hashable: equal requests share a batch); no conf: the model's own."""
        return DEFAULTS.override(
            conf=self.conf, iou=self.iou, classes=self.classes, max_det=self.max_det, tile=self.tile
        )


class ImageIn(BaseModel):
    name: str | None = Field(None, description="echoed back; defaults to image<N>")
    data: str = Field(description="the encoded image file (JPEG, PNG, WebP, BMP, TIFF), base64")


class DetectJSON(DetectParams):
    images: list[ImageIn]


class Detection(BaseModel):
    box: list[float] = Field(description="x1, y1, x2, y2 in the image's pixels")
    class_id: int
    class_name: str
    confidence: float


class ImageResult(BaseModel):
    name: str
    image_size: dict[str, int]
    detections: list[Detection]
    counts: dict[str, int]
    tiles: int
    timing: dict[str, float]
    annotated: str | None = Field(None, description="JPEG with boxes drawn, base64 (when asked for)")


class DetectResponse(BaseModel):
    model: str = Field(description="sha256 of the model file")
    images: list[ImageResult]
    timing: dict[str, float]


class ModelInfo(BaseModel):
    name: str
    class_names: list[str]
    input_size: dict[str, int]
    head: str
    default_conf: float
    provider: str
    hash: str
    max_batch: int
    card: dict[str, Any]


class ErrorBody(BaseModel):
    kind: str
    message: str
    file: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


def openapi_components() -> dict[str, Any]:
    """OpenAPI schemas of the JSON request body (``DetectJSON`` and what it references)."""
    schema = DetectJSON.model_json_schema(ref_template="#/components/schemas/{model}")
    return {**schema.pop("$defs", {}), "DetectJSON": schema}
