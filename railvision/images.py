"""Reading images safely: one decoder for paths, bytes and arrays.

Everything that takes a photo (the CLI, the service, the labeller) comes through
``load_image``, so a bad file always raises one of the ``ImageError`` kinds
instead of crashing inside OpenCV. The pixel limit is checked from the file header
*before* decoding, so a decompression bomb never allocates its pixels.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

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

_UNSUPPORTED_MAGIC = {
    b"GIF8": "GIF",
    b"\x00\x00\x00\x0cjP": "JPEG 2000",
    b"%PDF": "PDF",
    b"8BPS": "PSD",
}


def sniff_format(data: bytes) -> str:
    """Format name from the magic bytes: jpeg, png, webp, bmp or tiff."""
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
    for magic, name in _UNSUPPORTED_MAGIC.items():
        if data.startswith(magic):
            raise UnsupportedFormatError(f"{name} images are not supported (use JPEG, PNG, WebP, BMP or TIFF)")
    if data[4:8] == b"ftyp":
        raise UnsupportedFormatError("HEIC/AVIF images are not supported (use JPEG, PNG, WebP, BMP or TIFF)")
    raise NotAnImageError("not an image: unrecognised file signature (expected JPEG, PNG, WebP, BMP or TIFF)")


def _jpeg_header(data: bytes) -> tuple[int, int, int]:
    """(width, height, offset of the first scan) from the JPEG markers."""
    pos, size = 2, None
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise CorruptImageError("corrupt JPEG: bad marker")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA:  # start of scan
            if size is None:
                break
            return size[0], size[1], pos
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and pos + 9 <= len(data):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            size = (width, height)
        pos += 2 + length
    raise CorruptImageError("corrupt or truncated JPEG: no image data found")


def _tiff_size(data: bytes) -> tuple[int, int]:
    endian = "<" if data[:2] == b"II" else ">"
    if data[2:4] in (b"+\x00", b"\x00+"):  # BigTIFF
        (ifd,) = struct.unpack(endian + "Q", data[8:16])
        (count,) = struct.unpack(endian + "Q", data[ifd : ifd + 8])
        entries, step, start = count, 20, ifd + 8
    else:
        (ifd,) = struct.unpack(endian + "I", data[4:8])
        (count,) = struct.unpack(endian + "H", data[ifd : ifd + 2])
        entries, step, start = count, 12, ifd + 2
    found: dict[int, int] = {}
    for i in range(entries):
        entry = data[start + i * step : start + (i + 1) * step]
        tag, kind = struct.unpack(endian + "HH", entry[:4])
        if tag in (256, 257):
            value = entry[8 if step == 12 else 12 :]
            found[tag] = struct.unpack(endian + ("H" if kind == 3 else "I"), value[: 2 if kind == 3 else 4])[0]
    if 256 not in found or 257 not in found:
        raise CorruptImageError("corrupt TIFF: no image size in the first directory")
    return found[256], found[257]


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) read from the header alone, without decoding pixels."""
    fmt = sniff_format(data)
    try:
        if fmt == "jpeg":
            width, height, _ = _jpeg_header(data)
        elif fmt == "png":
            width, height = struct.unpack(">II", data[16:24])
        elif fmt == "bmp":
            width, height = struct.unpack("<ii", data[18:26])
        elif fmt == "webp":
            chunk = data[12:16]
            if chunk == b"VP8X":
                width = 1 + int.from_bytes(data[24:27], "little")
                height = 1 + int.from_bytes(data[27:30], "little")
            elif chunk == b"VP8L":
                bits = int.from_bytes(data[21:25], "little")
                width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
            else:
                width, height = (v & 0x3FFF for v in struct.unpack("<HH", data[26:30]))
        else:
            width, height = _tiff_size(data)
    except struct.error:
        raise CorruptImageError(f"corrupt or truncated {fmt.upper()}: header is incomplete") from None
    return abs(width), abs(height)


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
    width, height = image_size(data)
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    if width * height > limit:
        raise ImageTooLargeError(f"image is {width}x{height} = {width * height:,} pixels, over the limit of {limit:,}")
    if width == 0 or height == 0:
        raise CorruptImageError(f"image header says {width}x{height} pixels")
    fmt = sniff_format(data)
    if fmt == "jpeg":
        _, _, scan = _jpeg_header(data)
        if data.rfind(b"\xff\xd9") < scan:  # libjpeg would silently grey-fill the missing part
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
