"""railvision: find and classify freight rolling stock in ground photos and satellite crops."""

from railvision.detections import Detections
from railvision.engine import Detector
from railvision.errors import (
    CorruptImageError,
    DeviceUnavailableError,
    EmptyImageError,
    ImageError,
    ImageTooLargeError,
    ModelError,
    NotAnImageError,
    RailvisionError,
    UnsupportedFormatError,
)
from railvision.images import load_image
from railvision.options import DetectOptions
from railvision.taxonomy import CLASS_NAMES, CLASSES, TAXONOMY_VERSION

__version__ = "0.1.0"

__all__ = [
    "CLASSES",
    "CLASS_NAMES",
    "TAXONOMY_VERSION",
    "CorruptImageError",
    "DetectOptions",
    "Detections",
    "Detector",
    "DeviceUnavailableError",
    "EmptyImageError",
    "ImageError",
    "ImageTooLargeError",
    "ModelError",
    "NotAnImageError",
    "RailvisionError",
    "UnsupportedFormatError",
    "__version__",
    "load_image",
]
