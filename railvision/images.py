"""Reading images safely: one decoder for paths, bytes and arrays.

Everything that takes a photo (the CLI, the service, the labeller) comes through
``load_image``, so a bad file always raises one of the ``ImageError`` kinds
instead of crashing inside OpenCV. The pixel limit is checked from the file header
*before* decoding, so a decompression bomb never allocates its pixels.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import BmpImagePlugin, Image, JpegImagePlugin, PngImagePlugin, TiffImagePlugin, WebPImagePlugin

os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(2**31 - 1))  # our own guard below is the real limit
import cv2

from railvision.errors import (
    CorruptImageError,
    EmptyImageError,
    ImageTooLargeError,
    NotAnImageError,
    UnsupportedFormatError,
)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
MAX_PIXELS = int(os.environ.get("RAILVISION_MAX_PIXELS", 200_000_000))  # ~14k x 14k; satellite scenes fit

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | np.ndarray

SUPPORTED = "JPEG, PNG, WebP, BMP or TIFF"
# Formats Pillow can name but this package does not read; asked only after our own formats failed to match.
_NAMED_FORMATS = ["GIF", "JPEG2000", "PSD", "ICO", "ICNS", "DDS", "PCX", "PPM", "SGI", "EPS", "QOI", "FITS"]
_PILLOW = {
    "jpeg": JpegImagePlugin.JpegImageFile,
    "png": PngImagePlugin.PngImageFile,
    "webp": WebPImagePlugin.WebPImageFile,
    "bmp": BmpImagePlugin.BmpImageFile,
    "tiff": TiffImagePlugin.TiffImageFile,
}


def _unsupported(name: str) -> UnsupportedFormatError:
    return UnsupportedFormatError(f"unsupported format: {name} (use {SUPPORTED})")


def sniff_format(data: bytes) -> str:
    """Format name from the magic bytes: jpeg, png, webp, bmp or tiff; a named error for anything else."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:2] == b"BM":
        return "bmp"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if data[4:8] == b"ftyp":  # ISO media: HEIC/HEIF from phones, AVIF
        raise _unsupported("AVIF" if data[8:12] in (b"avif", b"avis") else "HEIC/HEIF")
    if data.startswith(b"%PDF"):
        raise _unsupported("PDF")
    Image.init()
    for name in _NAMED_FORMATS:  # each Pillow plugin's own signature test, on the first bytes only
        accept = Image.OPEN.get(name, (None, None))[1]
        if accept is not None and accept(data[:64]):
            raise _unsupported(name)
    raise NotAnImageError(f"not an image: unrecognised file signature (expected {SUPPORTED})")


@dataclass(frozen=True)
class Header:
    """What a file's header says, read by Pillow without decoding any pixel."""

    format: str  # jpeg, png, webp, bmp or tiff
    width: int
    height: int
    data_offset: int  # where the header ends (for JPEG: the first scan)


def read_header(data: bytes) -> Header:
    fmt = sniff_format(data)
    stream = io.BytesIO(data)
    try:  # the plugin class directly: Pillow's own pixel-count check in Image.open is not ours to apply
        width, height = _PILLOW[fmt](stream).size
    except Exception:  # Pillow raises SyntaxError, OSError, struct.error, ... for a damaged header
        raise CorruptImageError(f"corrupt or truncated {fmt.upper()}: header is incomplete or unreadable") from None
    return Header(fmt, int(width), int(height), stream.tell())


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) read from the header alone, without decoding pixels."""
    header = read_header(data)
    return header.width, header.height


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """Any decoded array to 3-channel uint8 BGR: grey, alpha, 16-bit and float handled."""
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4) or image.size == 0:
        raise NotAnImageError(f"expected an HxW, HxWx3 or HxWx4 image array, got shape {image.shape}")
    if image.dtype != np.uint8:
        # 16-bit and float data (satellite products often use 11-12 bits of 16): stretch to the 99.9th percentile.
        values = image.astype(np.float32)
        top = float(np.percentile(values[..., :3], 99.9)) if values.size else 1.0
        top = top if top > 0 else 1.0
        scaled = np.clip(values * (255.0 / top), 0, 255)
        if image.shape[2] == 4:
            scaled[..., 3] = np.clip(values[..., 3] * (255.0 / max(float(values[..., 3].max()), 1.0)), 0, 255)
        image = scaled.astype(np.uint8)
    if image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:  # composite over the letterbox grey so transparency reads as background
        alpha = image[..., 3:4].astype(np.float32) / 255.0
        return (image[..., :3] * alpha + 114.0 * (1.0 - alpha)).astype(np.uint8)
    return np.ascontiguousarray(image)


def decode(data: bytes, max_pixels: int | None = None) -> np.ndarray:
    """Bytes of a JPEG/PNG/WebP/BMP/TIFF file to a BGR uint8 array, EXIF orientation applied."""
    if len(data) == 0:
        raise EmptyImageError("empty file")
    header = read_header(data)
    width, height, fmt = header.width, header.height, header.format
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    if width * height > limit:
        raise ImageTooLargeError(f"image is {width}x{height} = {width * height:,} pixels, over the limit of {limit:,}")
    if width == 0 or height == 0:
        raise CorruptImageError(f"image header says {width}x{height} pixels")
    # libjpeg would silently grey-fill a missing part (an EXIF thumbnail's end marker lies before the scan)
    if fmt == "jpeg" and data.rfind(b"\xff\xd9") < header.data_offset:
        raise CorruptImageError("truncated JPEG: the image data ends before its end marker")
    buffer = np.frombuffer(data, dtype=np.uint8)
    # JPEG has no alpha: decode it the way that applies EXIF orientation; keep alpha and depth for the rest.
    flags = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR if fmt == "jpeg" else cv2.IMREAD_UNCHANGED
    try:
        image = cv2.imdecode(buffer, flags)
    except cv2.error as exc:
        raise CorruptImageError(f"corrupt {fmt.upper()}: {str(exc).strip().splitlines()[-1]}") from None
    if image is None:
        raise CorruptImageError(f"corrupt or truncated {fmt.upper()}: the decoder could not read it")
    return to_bgr8(image)


def load_image(source: ImageSource, max_pixels: int | None = None) -> np.ndarray:
    """A path, encoded bytes or an array (BGR, as OpenCV) to a BGR uint8 ``HxWx3`` array."""
    if isinstance(source, np.ndarray):
        return to_bgr8(source)
    if isinstance(source, bytes | bytearray | memoryview):
        return decode(bytes(source), max_pixels)
    path = Path(source)
    if not path.is_file():
        raise NotAnImageError(f"no such file: {path}")
    return decode(path.read_bytes(), max_pixels)


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buffer.tobytes()


def iter_images(root: str | os.PathLike) -> list[Path]:
    """Image files under a folder (recursively, sorted), or the file itself."""
    root = Path(root)
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
