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


# libjpeg's DCT-domain scales (1/k of each side) that OpenCV exposes: the entropy decoding is unchanged, but the
# inverse DCT, colour conversion and upsampling run on 1/k^2 of the pixels and no resize is needed afterwards.
_JPEG_REDUCED = {8: cv2.IMREAD_REDUCED_COLOR_8, 4: cv2.IMREAD_REDUCED_COLOR_4, 2: cv2.IMREAD_REDUCED_COLOR_2}


def jpeg_reduction(width: int, height: int, fit_hw: tuple[int, int]) -> int:
    """The largest DCT scale k (8, 4, 2, else 1) at which a photo letterboxed into ``fit_hw`` (the model
    input) is still only shrunk, never enlarged: a reduced decode then loses nothing the model would see.
    Either EXIF orientation is allowed for, since the header gives the size before turning."""
    fit_h, fit_w = fit_hw
    r = max(min(fit_h / height, fit_w / width), min(fit_h / width, fit_w / height))
    for k in _JPEG_REDUCED:
        if -(-width // k) >= round(width * r) and -(-height // k) >= round(height * r):
            return k
    return 1


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded photo, possibly at 1/k of its size (``decode_frame``), and its own size.

    Keeps the encoded bytes of a reduced decode, so tiling (which needs every pixel) can decode it whole.
    """

    pixels: np.ndarray  # BGR uint8
    size: tuple[int, int]  # (width, height) of the photo itself, EXIF orientation applied
    data: bytes | None = None  # set only when ``pixels`` is reduced

    @classmethod
    def of(cls, image: np.ndarray | Frame) -> Frame:
        return image if isinstance(image, Frame) else cls(image, (image.shape[1], image.shape[0]))

    def full(self) -> np.ndarray:
        """Every pixel of the photo (decoded again if this frame is reduced)."""
        return self.pixels if self.data is None else decode(self.data, self.size[0] * self.size[1])


def _decode(data: bytes, max_pixels: int | None, fit_hw: tuple[int, int] | None) -> Frame:
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
    k = jpeg_reduction(width, height, fit_hw) if fmt == "jpeg" and fit_hw else 1
    buffer = np.frombuffer(data, dtype=np.uint8)
    # JPEG has no alpha: decode it the way that applies EXIF orientation; keep alpha and depth for the rest.
    if k > 1:
        flags = _JPEG_REDUCED[k]
    else:
        flags = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR if fmt == "jpeg" else cv2.IMREAD_UNCHANGED
    try:
        image = cv2.imdecode(buffer, flags)
    except cv2.error as exc:
        raise CorruptImageError(f"corrupt {fmt.upper()}: {str(exc).strip().splitlines()[-1]}") from None
    if image is None:
        raise CorruptImageError(f"corrupt or truncated {fmt.upper()}: the decoder could not read it")
    image = to_bgr8(image)
    if k == 1:
        return Frame(image, (image.shape[1], image.shape[0]))
    turned = image.shape[0] != image.shape[1] and (image.shape[1] < image.shape[0]) != (width < height)
    return Frame(image, (height, width) if turned else (width, height), data)


def decode(data: bytes, max_pixels: int | None = None) -> np.ndarray:
    """Bytes of a JPEG/PNG/WebP/BMP/TIFF file to a BGR uint8 array, EXIF orientation applied."""
    return _decode(data, max_pixels, None).pixels


def decode_frame(data: bytes, fit_hw: tuple[int, int] | None, max_pixels: int | None = None) -> Frame:
    """``decode``, but a JPEG much larger than ``fit_hw`` (the model input it will be letterboxed into) is
    decoded at 1/2, 1/4 or 1/8 scale in the DCT domain: a 1280x720 photo for a 640 model decodes at 640x360.
    ``None``: every pixel."""
    return _decode(data, max_pixels, fit_hw)


def _read(source: ImageSource) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    path = Path(source)
    if not path.is_file():
        raise NotAnImageError(f"no such file: {path}")
    return path.read_bytes()


def load_image(source: ImageSource, max_pixels: int | None = None) -> np.ndarray:
    """A path, encoded bytes or an array (BGR, as OpenCV) to a BGR uint8 ``HxWx3`` array."""
    if isinstance(source, np.ndarray):
        return to_bgr8(source)
    return decode(_read(source), max_pixels)


def load_frame(source: ImageSource, fit_hw: tuple[int, int] | None, max_pixels: int | None = None) -> Frame:
    """``load_image`` for a model input of ``fit_hw``: a large JPEG comes back DCT-reduced (``decode_frame``)."""
    if isinstance(source, np.ndarray):
        return Frame.of(to_bgr8(source))
    return decode_frame(_read(source), fit_hw, max_pixels)


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
