"""Exceptions every railvision tool raises and catches by kind.

Callers (the CLI, the service, the labeller) map these to a line in a report, an
HTTP 4xx answer or a row in ``errors.csv``; none of them should ever see a raw
OpenCV or onnxruntime error for bad input.
"""

from __future__ import annotations


class RailvisionError(Exception):
    """Base class of every error this package raises on purpose."""


class ImageError(RailvisionError, ValueError):
    """An input image could not be used."""

    kind = "bad_image"


class NotAnImageError(ImageError):
    kind = "not_an_image"


class UnsupportedFormatError(ImageError):
    kind = "unsupported_format"


class CorruptImageError(ImageError):
    """Truncated or damaged file of a known format."""

    kind = "corrupt_image"


class EmptyImageError(ImageError):
    kind = "empty_image"


class ImageTooLargeError(ImageError):
    """Over the pixel limit: refused before decoding (decompression-bomb guard)."""

    kind = "image_too_large"


class ModelError(RailvisionError):
    """The model file is missing, unreadable or not one this engine understands."""

    kind = "bad_model"


class DeviceUnavailableError(RailvisionError):
    """The requested execution device (e.g. CUDA) cannot run here."""

    kind = "device_unavailable"


class OutOfSpaceError(RailvisionError):
    """The disk (or a quota, or a file-size limit) is full while writing outputs; what was saved stays saved."""

    kind = "out_of_space"
