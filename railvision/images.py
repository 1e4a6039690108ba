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
from typing import Literal

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


# Camera RAW is refused by name, DNG included: the first image of a TIFF-based RAW is a small preview, or sensor
# data (a colour filter array) that OpenCV cannot demosaic, never the photo itself. RAWs not shaped as TIFF:
_RAW_SIGNATURES = {
    b"IIRO": "Olympus ORF", b"IIRS": "Olympus ORF", b"MMOR": "Olympus ORF", b"IIU\x00": "Panasonic RW2",
    b"FUJIFILMCCD-RAW": "Fujifilm RAF", b"FOVb": "Sigma X3F",
}  # fmt: skip
_RAW_PHOTOMETRIC = frozenset({32803, 34892})  # colour filter array, linear raw: sensor data
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"})


def _tiff_tags(data: bytes, offset: int, order: Literal["little", "big"]) -> dict[int, tuple[int, int]]:
    """Tag -> (count, value) of the classic-TIFF IFD at ``offset``: the number itself where it fits the entry
    (one LONG; one or two SHORTs, the first), else where the values are. Entries past the file are left out."""
    if not 8 <= offset <= len(data) - 2:
        return {}
    tags = {}
    for at in range(offset + 2, offset + 2 + 12 * int.from_bytes(data[offset : offset + 2], order), 12):
        if at + 12 > len(data):
            break
        tag, kind, count = (int.from_bytes(data[at + a : at + b], order) for a, b in ((0, 2), (2, 4), (4, 8)))
        size = 2 if kind == 3 and count <= 2 else 4
        tags[tag] = (count, int.from_bytes(data[at + 8 : at + 8 + size], order))
    return tags


def _camera_raw(data: bytes) -> str | None:
    """Which camera RAW a TIFF-shaped file is: Canon CR2, DNG, or another whose first IFD or one of its SubIFDs
    holds sensor data (Nikon NEF, Sony ARW, Pentax PEF, ...); ``None`` for an ordinary TIFF."""
    if data[8:11] == b"CR\x02":
        return "Canon CR2"
    if data[2:4] not in (b"*\x00", b"\x00*"):  # BigTIFF: no camera writes it
        return None
    order: Literal["little", "big"] = "little" if data[:2] == b"II" else "big"
    first = _tiff_tags(data, int.from_bytes(data[4:8], order), order)
    if 50706 in first:  # DNGVersion
        return "DNG"
    count, value = first.get(330, (0, 0))  # SubIFDs: the one offset, or where the offsets are (four looked at)
    where = range(value, value + 4 * min(count, 4), 4)
    subs = [value] if count == 1 else [int.from_bytes(data[at : at + 4], order) for at in where]
    if any(ifd.get(262, (0, 0))[1] in _RAW_PHOTOMETRIC for ifd in [first, *(_tiff_tags(data, o, order) for o in subs)]):
        return "TIFF-based, such as Nikon NEF or Sony ARW"
    return None


def _iso_media(data: bytes) -> str:
    """What an ISO media file (an ``ftyp`` box first) holds, by its major and compatible brands."""
    brands = {data[8:12]} | {data[i : i + 4] for i in range(16, min(int.from_bytes(data[:4], "big"), 64) - 3, 4)}
    if brands & {b"avif", b"avis"}:
        return "AVIF"
    if b"crx " in brands:
        return "camera RAW (Canon CR3)"
    if brands & _HEIF_BRANDS:
        return "HEIC/HEIF"
    return f"ISO media of brand {data[8:12].decode('latin-1')!r} (a video, not a photo)"


def sniff_format(data: bytes) -> str:
    """Format name from the magic bytes: jpeg, png, webp, bmp or tiff; a named error for anything else,
    camera RAW (TIFF-shaped or not) included."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:2] == b"BM":
        return "bmp"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        if (raw := _camera_raw(data)) is not None:
            raise _unsupported(f"camera RAW ({raw})")
        return "tiff"
    for signature, name in _RAW_SIGNATURES.items():
        if data.startswith(signature):
            raise _unsupported(f"camera RAW ({name})")
    if data[6:14] == b"HEAPCCDR":
        raise _unsupported("camera RAW (Canon CRW)")
    if data[4:8] == b"ftyp":  # ISO media: HEIC/HEIF from phones, AVIF, Canon CR3, videos
        raise _unsupported(_iso_media(data))
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


# Frame headers of Huffman-coded JPEGs (ITU T.81, B.1.1.3): every 8x8 block costs at least one bit of scan data.
# Arithmetic coding can spend less, so it is not bounded.
_HUFFMAN_FRAMES = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7})


def _jpeg_frame(data: bytes, end: int) -> int | None:
    """The marker of a JPEG's frame header (SOFn), walking the segments before ``end``; None if not plain to see."""
    at = 2
    while at + 4 <= end and data[at] == 0xFF:
        marker = data[at + 1]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return marker
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
    return None


def _check_jpeg(data: bytes, header: Header) -> None:
    """Refuse a JPEG whose scan data cannot hold its frame: libjpeg would silently grey-fill what is missing
    (a 5 KB file claiming 14,000 x 14,000 pixels would decode, slowly, to 588 MB of grey)."""
    if data.rfind(b"\xff\xd9") < header.data_offset:  # an EXIF thumbnail's end marker lies before the scan
        raise CorruptImageError("truncated JPEG: the image data ends before its end marker")
    scan = len(data) - header.data_offset
    blocks = (header.width // 8) * (header.height // 8)
    if 8 * scan < blocks and _jpeg_frame(data, header.data_offset) in _HUFFMAN_FRAMES:
        raise CorruptImageError(
            f"truncated JPEG: {scan:,} bytes of image data cannot hold {header.width}x{header.height} pixels"
        )


def _check_png_chunks(data: bytes) -> None:
    """Refuse a PNG with a chunk running past the end of the file: OpenCV would first allocate (and zero) as
    many bytes as the chunk's length field says, up to 2 GB for a file of a few kilobytes."""
    at = 8
    while at + 8 <= len(data):
        length, kind = int.from_bytes(data[at : at + 4], "big"), data[at + 4 : at + 8]
        if at + 12 + length > len(data):
            raise CorruptImageError(
                f"truncated PNG: chunk {kind.decode('latin-1')!r} claims {length:,} bytes, past the end of the file"
            )
        if kind == b"IEND":
            return
        at += 12 + length


def decode_frame(data: bytes, fit_hw: tuple[int, int] | None, max_pixels: int | None = None) -> Frame:
    """Bytes of a JPEG/PNG/WebP/BMP/TIFF file to a BGR uint8 ``Frame``, EXIF orientation applied. A JPEG much
    larger than ``fit_hw`` (the model input it will be letterboxed into) is decoded at 1/2, 1/4 or 1/8 scale in
    the DCT domain: a 1280x720 photo for a 640 model decodes at 640x360. ``None``: every pixel."""
    if len(data) == 0:
        raise EmptyImageError("empty file")
    header = read_header(data)
    width, height, fmt = header.width, header.height, header.format
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    if width * height > limit:
        raise ImageTooLargeError(f"image is {width}x{height} = {width * height:,} pixels, over the limit of {limit:,}")
    if width == 0 or height == 0:
        raise CorruptImageError(f"image header says {width}x{height} pixels")
    if fmt == "jpeg":
        _check_jpeg(data, header)
    if fmt == "png":
        _check_png_chunks(data)
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
    """``decode_frame`` at full size: every pixel, as an array."""
    return decode_frame(data, None, max_pixels).pixels


def _read(source: ImageSource) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    path = Path(source)
    if not path.is_file():
        raise NotAnImageError(f"no such file: {path}")
    return path.read_bytes()


def load_frame(source: ImageSource, fit_hw: tuple[int, int] | None, max_pixels: int | None = None) -> Frame:
    """A path, encoded bytes or an array (BGR, as OpenCV) to a ``Frame``; for a model input of ``fit_hw``
    a large JPEG comes back DCT-reduced (``decode_frame``)."""
    if isinstance(source, np.ndarray):
        return Frame.of(to_bgr8(source))
    return decode_frame(_read(source), fit_hw, max_pixels)


def load_image(source: ImageSource, max_pixels: int | None = None) -> np.ndarray:
    """A path, encoded bytes or an array (BGR, as OpenCV) to a BGR uint8 ``HxWx3`` array."""
    return load_frame(source, None, max_pixels).pixels


def photo_size(source: ImageSource) -> tuple[int, int]:
    """(width, height) of a photo as the tools see it (EXIF orientation applied); a JPEG is decoded at 1/8."""
    return load_frame(source, (1, 1)).size


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
