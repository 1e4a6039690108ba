"""Service settings: command-line flags and ``RAILVISION_*`` environment variables, one model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from railvision.images import MAX_PIXELS


class Settings(BaseSettings):
    """Everything ``create_app`` needs; ``RAILVISION_MAX_BATCH=16`` sets ``max_batch`` and so on."""

    model_config = SettingsConfigDict(env_prefix="RAILVISION_")

    model: Path | None = None  # None: the engine's default (RAILVISION_MODEL or models/railvision-n.onnx)
    device: str = "auto"
    threads: int | None = Field(None, ge=1)
    max_batch: int = Field(8, ge=1, le=256)
    max_wait_ms: float = Field(5.0, ge=0, le=1000)  # how long a lone request waits for company
    max_queue: int = Field(64, ge=1)  # images waiting for inference before answering 503
    request_timeout_s: float = Field(30.0, gt=0)  # decoding, queueing and inference, once the body is in: 504
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1)  # one request body, all images together: 413 while streaming
    body_timeout_s: float = Field(60.0, gt=0)  # for the whole request body to arrive: 408, then the connection closes
    # The server's own limits (``railvision serve``, not the app): a trickled request line and headers are cut off
    # after ``header_timeout_s``; from ``max_connections`` open connections on, uvicorn answers 503
    # (its limit_concurrency), so the bodies held at once stay under max_connections x max_upload_bytes.
    header_timeout_s: float = Field(10.0, gt=0)
    max_connections: int = Field(128, ge=2)
    linger_s: float = Field(5.0, ge=0)  # after answering a body still arriving: read and drop it, then close
    max_images: int = Field(16, ge=1)  # images in one request
    max_pixels: int = Field(MAX_PIXELS, ge=1)  # per image, checked from the header before decoding
    api_key: str | None = None
    cors_origins: Annotated[list[str], NoDecode] = []

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        """``RAILVISION_CORS_ORIGINS=https://a.example,https://b.example`` as well as a list."""
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @model_validator(mode="after")
    def _queue_holds_a_request(self) -> Settings:
        if self.max_images > self.max_queue:
            raise ValueError(f"max_images ({self.max_images}) must not exceed max_queue ({self.max_queue})")
        return self
