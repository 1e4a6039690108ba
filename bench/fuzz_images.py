"""Seeded mutation fuzzer of the one image decoder, the engine behind it, the service and the labeller (issue 14).

Valid files of every format railvision reads are made in memory (OpenCV and Pillow encoders), then mutated:
bit and byte flips, truncation, garbage appended, JPEG segments and PNG/WebP chunks dropped, repeated or
swapped, and header fields set to extremes (a 65,535 x 65,535 JPEG SOF, a PNG IHDR of 100,000 x 100,000 with
its CRC fixed, a TIFF of thousands of pages or of 62,500 tiles). Each mutant goes through ``load_image``
and then ``Detector.detect`` (as the tools run it, ``tile="auto"``) in a worker process under a time and an
address-space limit; a GeoTIFF that decodes also goes through the labeller's georeferencing. Each must decode
or raise one of railvision's own ``ImageError`` kinds. A finding is anything else: a crash (a signal), a hang
(the time limit), running out of memory (also when that was reported as a bad image, or when memory grew by more
than the pixels the header claims explain), another exception type, or ``load_image`` and ``detect``
disagreeing about a file.

    python bench/fuzz_images.py --seed 0 --count 2000 --out runs/fuzz      # failing mutants saved there
    python bench/fuzz_images.py --seed 0 --index 1234                      # rerun one mutant
    python bench/fuzz_images.py --seed 0 --count 600 --service             # POSTed to a loopback server

Mutant ``i`` of seed ``s`` is always the same bytes (given the same OpenCV and Pillow encoders), so a finding
is named by both. Without ``--model`` the tiny exact oracle model of the tests is built (no shipped model).
"""

from __future__ import annotations

import argparse
import io
import math
import multiprocessing
import os
import random
import resource
import signal
import struct
import sys
import tempfile
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PIL import Image, TiffImagePlugin, TiffTags

from railvision.errors import ImageError
from railvision.images import MAX_PIXELS, load_image, read_header

if TYPE_CHECKING:
    from railvision.engine import Detector

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MEMORY_MB = 3072  # a worker idles at ~0.75 GB of address space (onnxruntime); a 200 MP decode fits
# What checking one file may add to a worker's resident memory: a little, plus a generous amount per pixel its
# header claims (16-bit RGBA as float copies, the letterbox, tiles). More is an allocation the image does not
# bound (a length field believed), a finding even where the address-space limit was not reached.
MEMORY_SLACK_MB, BYTES_PER_PIXEL = 128, 64
OUT_OF_MEMORY = ("insufficient memory", "failed to allocate", "bad_alloc", "out of memory", "cannot allocate")

# --- seeds ----------------------------------------------------------------------------------------------------


def _picture(width: int, height: int) -> np.ndarray:
    """BGR noise over a gradient with a pure red and a pure blue block: what the oracle model boxes."""
    rng = np.random.default_rng(width * height)
    ramp = np.linspace(60, 180, width, dtype=np.float32)[None, :, None]
    image = np.clip(ramp + rng.normal(0, 10, (height, width, 3)), 0, 255).astype(np.uint8)
    image[height // 5 : height // 2, width // 8 : width // 3] = (0, 0, 255)
    image[height // 2 : 4 * height // 5, width // 2 : 3 * width // 4] = (255, 0, 0)
    return image


def _cv(ext: str, image: np.ndarray, params: tuple[int, ...] = ()) -> bytes:
    ok, buffer = cv2.imencode(ext, image, list(params))
    assert ok, ext
    return buffer.tobytes()


def _pil(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _geotiff_tags() -> TiffImagePlugin.ImageFileDirectory_v2:
    """GeoTIFF tags (UTM 33N, 0.5 m pixels) written by Pillow, so the seed does not need rasterio."""
    tags = TiffImagePlugin.ImageFileDirectory_v2()
    for tag, kind, value in (
        (33550, TiffTags.DOUBLE, (0.5, 0.5, 0.0)),  # ModelPixelScale
        (33922, TiffTags.DOUBLE, (0.0, 0.0, 0.0, 500000.0, 4649776.0, 0.0)),  # ModelTiepoint
        (34735, TiffTags.SHORT, (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32633)),  # GeoKeyDirectory
    ):
        tags[tag] = value
        tags.tagtype[tag] = kind
    return tags


@cache
def make_seeds() -> dict[str, bytes]:
    """Valid files of every format and pixel layout railvision reads, by name (its format first)."""
    photo = _picture(160, 120)
    deep = photo.astype(np.uint16) * 257
    rgba = np.dstack([photo, np.tile(np.linspace(0, 255, 160, dtype=np.uint8), (120, 1))])
    rgb = Image.fromarray(photo[:, :, ::-1])
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: turn 90 degrees clockwise to display
    pages = [Image.fromarray(_picture(w, h)[:, :, ::-1]) for w, h in ((96, 64), (64, 64))]
    return {
        "jpeg-baseline": _cv(".jpg", photo, (cv2.IMWRITE_JPEG_QUALITY, 85)),
        "jpeg-progressive-exif": _pil(rgb, "JPEG", quality=85, progressive=True, exif=exif.tobytes()),
        "png-rgb8": _cv(".png", photo),
        "png-rgb16": _cv(".png", deep),
        "png-grey": _cv(".png", photo[:, :, 1]),
        "png-rgba": _cv(".png", rgba),
        "webp-lossy": _cv(".webp", photo, (cv2.IMWRITE_WEBP_QUALITY, 80)),
        "webp-lossless-exif": _pil(Image.fromarray(rgba[:, :, [2, 1, 0, 3]]), "WEBP", lossless=True, exif=exif),
        "tiff-rgb8": _cv(".tiff", photo),
        "tiff-rgb16": _cv(".tiff", deep),
        "tiff-multipage": _pil(rgb, "TIFF", save_all=True, append_images=pages),
        "tiff-geo": _pil(rgb, "TIFF", tiffinfo=_geotiff_tags()),
        "bmp": _cv(".bmp", photo),
    }


def seed_format(name: str) -> str:
    """The format of a seed (and of its mutants): jpeg, png, webp, tiff or bmp."""
    return name.split("-")[0]


# --- mutations ------------------------------------------------------------------------------------------------
# Each takes the mutant's RNG and the bytes so far and returns the new bytes and a label for the report, or
# None where the structure it needs is not there (an earlier mutation broke it): a bit flip is done instead.

Mutation = Callable[[random.Random, bytes], "tuple[bytes, str] | None"]
INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF)
BIG = (0, 1, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


def _at(rng: random.Random, size: int) -> int:
    """A position, half the time within the first 512 bytes, where the headers are."""
    return rng.randrange(min(size, 512) if rng.random() < 0.5 else size) if size else 0


def bit_flip(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    out, n = bytearray(data), rng.choice((1, 1, 2, 4, 8, 32))
    for _ in range(n if out else 0):
        out[_at(rng, len(out))] ^= 1 << rng.randrange(8)
    return bytes(out), f"bitflip({n})"


def byte_set(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    out, n = bytearray(data), rng.choice((1, 2, 4, 16))
    for _ in range(n if out else 0):
        out[_at(rng, len(out))] = rng.choice(INTERESTING) if rng.random() < 0.7 else rng.randrange(256)
    return bytes(out), f"byteset({n})"


def truncate(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    cut = _at(rng, len(data))
    return data[:cut], f"truncate(@{cut})"


def append(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    kind = rng.choice(("random", "zeros", "itself", "markers"))
    size = rng.choice((1, 16, 512, 4096, 65536))
    tail = {
        "random": rng.randbytes(size),
        "zeros": bytes(size),
        "itself": data,
        "markers": b"\xff\xd9\x00\x00\x00\x00IEND\xaeB`\x82" * (size // 16 + 1),
    }[kind]
    return data + tail, f"append({kind})"


def insert(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    at, size = _at(rng, len(data)), rng.choice((1, 4, 64, 1024))
    return data[:at] + rng.randbytes(size) + data[at:], f"insert({size}@{at})"


def delete(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    at, size = _at(rng, len(data)), rng.choice((1, 4, 64, 1024))
    return data[:at] + data[at + size :], f"delete({size}@{at})"


def copy_span(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """Overwrite one part of the file with another part of itself (headers where pixels were, and so on)."""
    size = rng.choice((4, 64, 1024))
    src, dst = _at(rng, len(data)), _at(rng, len(data))
    span = data[src : src + size]
    return data[:dst] + span + data[dst + len(span) :], f"copy({size}@{src}->{dst})"


GENERIC: tuple[Mutation, ...] = (bit_flip, byte_set, truncate, append, insert, delete, copy_span)


def _blocks(rng: random.Random, data: bytes, blocks: list[tuple[int, int]], what: str) -> tuple[bytes, str] | None:
    """Drop, repeat or swap whole blocks (JPEG segments, PNG or RIFF chunks), given as (start, end)."""
    if not blocks:
        return None
    op = rng.choice(("drop", "repeat", "swap"))
    i = rng.randrange(len(blocks))
    start, end = blocks[i]
    if op == "drop":
        return data[:start] + data[end:], f"{what}:drop({data[start:end][:8].hex()})"
    if op == "repeat":
        times = rng.choice((1, 1, 100))
        return data[:end] + data[start:end] * times + data[end:], f"{what}:repeat({data[start:end][:8].hex()}x{times})"
    j = (i + rng.randrange(1, len(blocks))) % len(blocks) if len(blocks) > 1 else i
    if j == i:
        return data[:start] + data[end:], f"{what}:drop({data[start:end][:8].hex()})"
    (a, b), (c, d) = sorted([blocks[i], blocks[j]])
    return data[:a] + data[c:d] + data[b:c] + data[a:b] + data[d:], f"{what}:swap"


# JPEG ---------------------------------------------------------------------------------------------------------


def jpeg_segments(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each marker segment after SOI; a scan's entropy-coded data counts as part of its SOS."""
    segments, i = [], 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xD9:
            segments.append((i, i + 2))
            break
        end = i + 2 + int.from_bytes(data[i + 2 : i + 4], "big")
        if marker == 0xDA:  # to the next marker that is neither a stuffed 0xFF nor a restart
            end = data.find(b"\xff", end)
            while end != -1 and end + 1 < len(data) and (data[end + 1] == 0 or 0xD0 <= data[end + 1] <= 0xD7):
                end = data.find(b"\xff", end + 2)
            end = len(data) if end == -1 else end
        segments.append((i, min(end, len(data))))
        i = end
    return segments


def _sof(data: bytes) -> int | None:
    for start, _ in jpeg_segments(data):
        if 0xC0 <= data[start + 1] <= 0xCF and data[start + 1] not in (0xC4, 0xC8, 0xCC):
            return start
    return None


def jpeg_blocks(rng: random.Random, data: bytes) -> tuple[bytes, str] | None:
    return _blocks(rng, data, jpeg_segments(data), "jpeg")


def jpeg_sof_size(rng: random.Random, data: bytes) -> tuple[bytes, str] | None:
    """The frame header's height and width set to extremes: 65,535 x 65,535, zero, one, just under the limit."""
    if (at := _sof(data)) is None or at + 9 > len(data):
        return None
    height, width = rng.choice(((65535, 65535), (65535, 1), (1, 65535), (0, 160), (120, 0), (1, 1), (14000, 14000)))
    return data[: at + 5] + struct.pack(">HH", height, width) + data[at + 9 :], f"jpeg:sof({width}x{height})"


def jpeg_sof_fields(rng: random.Random, data: bytes) -> tuple[bytes, str] | None:
    """Precision, component count, sampling factors or quantisation-table numbers set to odd values."""
    if (at := _sof(data)) is None or at + 13 > len(data):
        return None
    field, offset, values = rng.choice(
        (
            ("precision", 4, (0, 1, 12, 16, 255)),
            ("components", 9, (0, 2, 4, 255)),
            ("sampling", 11 + 3 * rng.randrange(3), (0x00, 0x0F, 0xF0, 0x44, 0xFF)),
            ("table", 12 + 3 * rng.randrange(3), (3, 4, 255)),
            ("marker", 1, (0xC1, 0xC2, 0xC3, 0xC5, 0xC9, 0xCB, 0xCF)),  # another coding process
        )
    )
    value = rng.choice(values)
    out = bytearray(data)
    if at + offset < len(out):
        out[at + offset] = value
    return bytes(out), f"jpeg:sof-{field}({value:#x})"


def jpeg_length(rng: random.Random, data: bytes) -> tuple[bytes, str] | None:
    """A segment's length field set to 0, 1, 2 or 65,535."""
    segments = [s for s in jpeg_segments(data) if s[1] - s[0] >= 4]
    if not segments:
        return None
    start, _ = rng.choice(segments)
    value = rng.choice((0, 1, 2, 0xFFFF))
    return data[: start + 2] + struct.pack(">H", value) + data[start + 4 :], f"jpeg:length({value})"


def jpeg_orientation(rng: random.Random, data: bytes) -> tuple[bytes, str] | None:
    """The EXIF orientation value set outside 1-8."""
    at = data.find(b"\x12\x01\x03\x00", 0, 4096)  # little-endian tag 0x0112, type SHORT
    if at < 0:
        return None
    value = rng.choice((0, 9, 255, 65535))
    return data[: at + 8] + struct.pack("<H", value) + data[at + 10 :], f"jpeg:orientation({value})"


# PNG ----------------------------------------------------------------------------------------------------------


def png_chunks(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each complete chunk after the signature."""
    chunks, i = [], 8
    while i + 12 <= len(data):
        end = i + 12 + int.from_bytes(data[i : i + 4], "big")
        if end > len(data):
            break
        chunks.append((i, end))
        i = end
    return chunks


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _ihdr(data: bytes) -> tuple[int, bytes] | None:
    for start, end in png_chunks(data):
        if data[start + 4 : start + 8] == b"IHDR" and end - start == 25:
            return start, data[start + 8 : start + 21]
    return None


def png_blocks(rng: random.Random, data: bytes) -> tuple[bytes, str] | None:
    return _blocks(rng, data, png_chunks(data), "png")


def png_ihdr_size(rng: random.Random, data: bytes) -> tuple[bytes, str] | None:
    """IHDR claims 100,000 x 100,000 (or 0, or 2^31 - 1, or just under the limit), its CRC fixed."""
    if (found := _ihdr(data)) is None:
        return None
    at, body = found
    width, height = rng.choice(((100000, 100000), (0, 120), (160, 0), (2**31 - 1, 1), (1, 2**31 - 1), (14000, 14000)))
    chunk = png_chunk(b"IHDR", struct.pack(">II", width, height) + body[8:])
    return data[:at] + chunk + data[at + 25 :], f"png:ihdr({width}x{height})"


def png_ihdr_fields(rng: random.Random, data: bytes) -> tuple[bytes, str] | None:
    """Bit depth, colour type, compression, filter or interlace method set to odd values, CRC fixed."""
    if (found := _ihdr(data)) is None:
        return None
    at, body = found
    field, offset, values = rng.choice(
        (
            ("depth", 8, (0, 1, 3, 16, 255)),
            ("colour", 9, (1, 3, 5, 7, 255)),
            ("method", 10 + rng.randrange(3), (1, 255)),
        )
    )
    value = rng.choice(values)
    chunk = png_chunk(b"IHDR", body[:offset] + bytes([value]) + body[offset + 1 :])
    return data[:at] + chunk + data[at + 25 :], f"png:ihdr-{field}({value})"


def png_body(rng: random.Random, data: bytes) -> tuple[bytes, str] | None:
    """Bits flipped inside one chunk, its CRC then fixed: what libpng and zlib see past the checksum."""
    if not (chunks := [(a, b) for a, b in png_chunks(data) if b - a > 12]):
        return None
    start, end = rng.choice(chunks)
    body, n = bytearray(data[start + 8 : end - 4]), rng.choice((1, 4, 16))
    for _ in range(n):
        body[rng.randrange(len(body))] ^= 1 << rng.randrange(8)
    kind = data[start + 4 : start + 8]
    return data[:start] + png_chunk(kind, bytes(body)) + data[end:], f"png:body({kind.decode('latin-1')}, {n} bits)"


def png_length(rng: random.Random, data: bytes) -> tuple[bytes, str] | None:
    """A chunk's length field set to an extreme (2^31 - 1, 2^32 - 1, 0, ...)."""
    if not (chunks := png_chunks(data)):
        return None
    start, _ = rng.choice(chunks)
    value = rng.choice(BIG)
    return data[:start] + struct.pack(">I", value) + data[start + 4 :], f"png:length({value:#x})"


@cache
def _zlib_bomb() -> bytes:
    return zlib.compress(bytes(64 * 2**20), 9)  # 64 MB of zeros in ~64 KB


def png_metadata_bomb(rng: random.Random, data: bytes) -> tuple[bytes, str] | None:
    """A compressed text or ICC chunk that inflates to 64 MB, before the image data."""
    if (found := _ihdr(data)) is None:
        return None
    kind = rng.choice((b"zTXt", b"iCCP", b"iTXt"))
    body = {b"zTXt": b"Comment\x00\x00", b"iCCP": b"icc\x00\x00", b"iTXt": b"Comment\x00\x01\x00\x00\x00"}[kind]
    at = found[0] + 25
    return data[:at] + png_chunk(kind, body + _zlib_bomb()) + data[at:], f"png:bomb({kind.decode()})"


# WebP (RIFF) --------------------------------------------------------------------------------------------------


def riff_chunks(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each chunk after the RIFF/WEBP header, padding included."""
    chunks, i = [], 12
    while i + 8 <= len(data):
        size = int.from_bytes(data[i + 4 : i + 8], "little")
        end = i + 8 + size + (size & 1)
        if end > len(data):
            break
        chunks.append((i, end))
        i = end
    return chunks


def webp_blocks(rng: random.Random, data: bytes) -> tuple[bytes, str] | None:
    return _blocks(rng, data, riff_chunks(data), "webp")


def webp_size_field(rng: random.Random, data: bytes) -> tuple[bytes, str] | None:
    """The RIFF size or a chunk's size set to an extreme."""
    offsets = [4] + [start + 4 for start, _ in riff_chunks(data)]
    at, value = rng.choice(offsets), rng.choice(BIG)
    return data[:at] + struct.pack("<I", value) + data[at + 4 :], f"webp:size@{at}({value:#x})"


def webp_dimensions(rng: random.Random, data: bytes) -> tuple[bytes, str] | None:
    """The canvas (VP8X), frame (VP8) or bitstream (VP8L) size set to its largest, or just under the limit."""
    for start, _ in riff_chunks(data):
        kind, at = data[start : start + 4], start + 8
        side = rng.choice((16384, 14000, 1))
        if kind == b"VP8X":
            side = rng.choice((2**24, 16384, 14000, 1))
            packed = (side - 1).to_bytes(3, "little") * 2
            return data[: at + 4] + packed + data[at + 10 :], f"webp:vp8x({side}x{side})"
        if kind == b"VP8 ":
            packed = struct.pack("<HH", (side & 0x3FFF) | 0xC000, (side & 0x3FFF) | 0xC000)  # scale bits set too
            return data[: at + 6] + packed + data[at + 10 :], f"webp:vp8({side & 0x3FFF}x{side & 0x3FFF})"
        if kind == b"VP8L":
            bits = int.from_bytes(data[at + 1 : at + 5], "little") & ~0xFFFFFFF | (side - 1) | (side - 1) << 14
            return data[: at + 1] + struct.pack("<I", bits) + data[at + 5 :], f"webp:vp8l({side}x{side})"
    return None


# TIFF ---------------------------------------------------------------------------------------------------------
# Changed fields go into a new first IFD appended to the file (the original data stays where its offsets say).

TIFF_TAGS = {
    "ImageWidth": 256, "ImageLength": 257, "BitsPerSample": 258, "Compression": 259, "Photometric": 262,
    "StripOffsets": 273, "Orientation": 274, "SamplesPerPixel": 277, "RowsPerStrip": 278, "StripByteCounts": 279,
    "PlanarConfig": 284, "Predictor": 317, "TileWidth": 322, "TileLength": 323, "TileOffsets": 324,
    "TileByteCounts": 325, "ExtraSamples": 338, "SampleFormat": 339,
}  # fmt: skip
TIFF_EXTREMES = {
    "ImageWidth": (0, 1, 65535, 100000, 14000, 2**31 - 1, 2**32 - 1),
    "ImageLength": (0, 1, 65535, 100000, 14000, 2**31 - 1, 2**32 - 1),
    "BitsPerSample": (0, 1, 7, 12, 32, 64, 65535),
    "Compression": (0, 2, 6, 7, 8, 32773, 34712, 65535),
    "Photometric": (0, 3, 4, 5, 6, 8, 32803, 34892, 65535),
    "Orientation": (0, 5, 8, 9, 65535),
    "SamplesPerPixel": (0, 2, 4, 5, 255, 65535),
    "RowsPerStrip": (0, 1, 2**32 - 1),
    "StripByteCounts": (0, 1, 2**32 - 1),
    "StripOffsets": (0, 2**32 - 1),
    "PlanarConfig": (0, 2, 3),
    "Predictor": (2, 3, 65535),
    "ExtraSamples": (0, 1, 2, 65535),
    "SampleFormat": (2, 3, 4, 6, 65535),
}


@dataclass(frozen=True)
class Ifd:
    """A TIFF's first IFD: byte order, where it is, its entries (tag -> type, count, raw value) and the next."""

    order: str
    offset: int
    entries: dict[int, tuple[int, int, bytes]]
    next: int


def tiff_ifd(data: bytes) -> Ifd | None:
    if data[:4] not in (b"II*\x00", b"MM\x00*") or len(data) < 8:
        return None
    order = "<" if data[:2] == b"II" else ">"
    (offset,) = struct.unpack(order + "I", data[4:8])
    if offset + 2 > len(data):
        return None
    (count,) = struct.unpack(order + "H", data[offset : offset + 2])
    end = offset + 2 + 12 * count
    if end + 4 > len(data):
        return None
    entries = {}
    for i in range(offset + 2, end, 12):
        tag, kind, n = struct.unpack(order + "HHI", data[i : i + 8])
        entries[tag] = (kind, n, data[i + 8 : i + 12])
    return Ifd(order, offset, entries, struct.unpack(order + "I", data[end : end + 4])[0])


def tiff_with(data: bytes, ifd: Ifd, changes: dict[int, list[int] | None], pages: int = 1, loop: bool = False) -> bytes:
    """The file with a new first IFD: ``changes`` (tag -> LONG values, or None to drop it) applied, repeated
    as ``pages`` chained copies (or pointing at itself: ``loop``), the old IFD chain after them."""
    out = bytearray(data)
    entries = dict(ifd.entries)
    for tag, values in changes.items():
        if values is None:
            entries.pop(tag, None)
            continue
        packed = struct.pack(f"{ifd.order}{len(values)}I", *values)
        if len(packed) > 4:
            out += bytes(len(out) & 1)
            packed, out = struct.pack(ifd.order + "I", len(out)), out + packed
        entries[tag] = (4, len(values), packed.ljust(4, b"\x00"))
    out += bytes(len(out) & 1)
    body = struct.pack(ifd.order + "H", len(entries)) + b"".join(
        struct.pack(ifd.order + "HHI", tag, kind, n) + raw for tag, (kind, n, raw) in sorted(entries.items())
    )
    first = len(out)
    for page in range(pages):
        here = first + page * (len(body) + 4)
        after = here if loop else (here + len(body) + 4 if page + 1 < pages else ifd.next)
        out += body + struct.pack(ifd.order + "I", after)
    out[4:8] = struct.pack(ifd.order + "I", first)
    return bytes(out)


def tiff_field(rng: random.Random, data: bytes) -> tuple[bytes, str] | None:
    """One header field set to an extreme: ImageWidth of 2^32 - 1, 65,535 bits per sample, an unknown codec..."""
    if (ifd := tiff_ifd(data)) is None:
        return None
    name = rng.choice(list(TIFF_EXTREMES))
    value = rng.choice(TIFF_EXTREMES[name])
    return tiff_with(data, ifd, {TIFF_TAGS[name]: [value]}), f"tiff:{name}({value})"


def tiff_size(rng: random.Random, data: bytes) -> tuple[bytes, str] | None:
    """ImageWidth and ImageLength together: 100,000 squared, 2^32 - 1 by 1, or just under the limit."""
    if (ifd := tiff_ifd(data)) is None:
        return None
    width, height = rng.choice(((100000, 100000), (2**32 - 1, 1), (1, 2**32 - 1), (65535, 65535), (14000, 14000)))
    return tiff_with(data, ifd, {256: [width], 257: [height]}), f"tiff:size({width}x{height})"


def tiff_pages(rng: random.Random, data: bytes) -> tuple[bytes, str] | None:
    """Thousands of pages, or an IFD chain that loops back on itself."""
    if (ifd := tiff_ifd(data)) is None:
        return None
    if rng.random() < 0.3:
        return tiff_with(data, ifd, {}, loop=True), "tiff:ifd-loop"
    pages = rng.choice((1000, 5000))
    return tiff_with(data, ifd, {}, pages=pages), f"tiff:pages({pages})"


def tiff_tiles(rng: random.Random, data: bytes) -> tuple[bytes, str] | None:
    """The strips turned into tiles: 62,500 tiles of 16 x 16, tiles of 2^31 pixels a side, or too few offsets."""
    if (ifd := tiff_ifd(data)) is None or 273 not in ifd.entries:
        return None
    offset = struct.unpack(ifd.order + "I", ifd.entries[273][2])[0] if ifd.entries[273][1] == 1 else 8
    side, size, count = rng.choice(((16, 4000, None), (16, 160, 3), (2**31, 160, 1), (0, 160, 1), (17, 160, None)))
    tiles = count if count is not None else math.ceil(size / max(side, 1)) ** 2
    tile_bytes = min(3 * side * side, 2**32 - 1)
    changes: dict[int, list[int] | None] = {
        256: [size], 257: [size], 322: [side], 323: [side], 324: [offset] * tiles, 325: [tile_bytes] * tiles,
        273: None, 278: None, 279: None,
    }  # fmt: skip
    return tiff_with(data, ifd, changes), f"tiff:tiles({side} px, {tiles} of them, {size} square)"


def tiff_count(rng: random.Random, data: bytes) -> tuple[bytes, str] | None:
    """The IFD's entry count, or one entry's value count, set to an extreme in place."""
    if (ifd := tiff_ifd(data)) is None:
        return None
    if rng.random() < 0.3:
        value = rng.choice((0, 1, 0xFFFF))
        at = ifd.offset
        return data[:at] + struct.pack(ifd.order + "H", value) + data[at + 2 :], f"tiff:entries({value})"
    i = rng.randrange(len(ifd.entries)) if ifd.entries else 0
    at, value = ifd.offset + 2 + 12 * i + 4, rng.choice(BIG)
    return data[:at] + struct.pack(ifd.order + "I", value) + data[at + 4 :], f"tiff:count#{i}({value:#x})"


# BMP ----------------------------------------------------------------------------------------------------------

BMP_FIELDS = {  # name: (offset, struct code, extremes)
    "file_size": (2, "<I", (0, 0xFFFFFFFF)),
    "data_offset": (10, "<I", (0, 14, 0x7FFFFFFF, 0xFFFFFFFF)),
    "header_size": (14, "<I", (0, 12, 64, 108, 124, 0xFFFFFFFF)),
    "width": (18, "<i", (0, 1, -160, 100000, 14000, 2**31 - 1, -(2**31))),
    "height": (22, "<i", (0, 1, -120, -100000, 14000, 2**31 - 1, -(2**31))),
    "planes": (26, "<H", (0, 2, 65535)),
    "bits": (28, "<H", (0, 1, 2, 4, 8, 15, 16, 32, 33, 64, 65535)),
    "compression": (30, "<I", (1, 2, 3, 4, 5, 6, 0xFFFFFFFF)),  # 4 and 5: a JPEG or PNG inside the BMP
    "image_size": (34, "<I", (0, 1, 0xFFFFFFFF)),
    "colours": (46, "<I", (1, 256, 257, 0xFFFFFFFF)),
}


def bmp_field(rng: random.Random, data: bytes) -> tuple[bytes, str] | None:
    """One header field set to an extreme: 100,000 wide, negative height (top-down), 33 bits, RLE on 24 bits..."""
    name = rng.choice(list(BMP_FIELDS))
    offset, code, values = BMP_FIELDS[name]
    if len(data) < offset + struct.calcsize(code):
        return None
    value = rng.choice(values)
    return data[:offset] + struct.pack(code, value) + data[offset + struct.calcsize(code) :], f"bmp:{name}({value})"


STRUCTURAL: dict[str, tuple[Mutation, ...]] = {
    "jpeg": (jpeg_blocks, jpeg_blocks, jpeg_sof_size, jpeg_sof_fields, jpeg_length, jpeg_orientation),
    "png": (png_blocks, png_body, png_body, png_ihdr_size, png_ihdr_fields, png_length, png_metadata_bomb),
    "webp": (webp_blocks, webp_size_field, webp_dimensions),
    "tiff": (tiff_field, tiff_field, tiff_size, tiff_pages, tiff_tiles, tiff_count),
    "bmp": (bmp_field,),
}


@dataclass(frozen=True, slots=True)
class Mutant:
    index: int
    seed: str  # the seed file's name, e.g. png-rgb16
    mutation: str  # what was done to it, in order
    data: bytes


def mutant(seed: int, index: int) -> Mutant:
    """Mutant ``index`` of run ``seed``: seed files in turn, one to three mutations, half of them structural."""
    seeds = make_seeds()
    rng = random.Random(f"{seed}:{index}")
    name = list(seeds)[index % len(seeds)]
    data, steps = seeds[name], []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        pool = STRUCTURAL[seed_format(name)] if rng.random() < 0.5 else GENERIC
        done = rng.choice(pool)(rng, data) or bit_flip(rng, data)
        data = done[0]
        steps.append(done[1])
    return Mutant(index, name, " + ".join(steps), data)


def mutants(seed: int, count: int, start: int = 0) -> Iterator[Mutant]:
    return (mutant(seed, i) for i in range(start, start + count))


# --- the check, in a worker process ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """What railvision made of one mutant: ``decoded``, ``refused`` (``kind``: the error kind) or a ``finding``
    (``kind``: crash, hang, memory, exception or disagree)."""

    index: int
    seed: str
    mutation: str
    status: str
    kind: str = ""
    detail: str = ""
    peak_mb: float = 0.0  # the worker's peak resident memory while checking it


def _out_of_memory(exc: BaseException) -> bool:
    """Whether an error, or one it was raised from (even ``from None``), was running out of memory."""
    while exc is not None:
        if isinstance(exc, MemoryError) or any(word in str(exc).lower() for word in OUT_OF_MEMORY):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def _georef(data: bytes, size: tuple[int, int]) -> None:
    """The labeller's georeferencing of a decoded TIFF (rasterio/GDAL reads it a second time), corners to lon/lat."""
    from railvision.labelling.geo import read_georef, to_lonlat  # the package itself loads the engine

    with tempfile.NamedTemporaryFile(suffix=".tif") as file:
        file.write(data)
        file.flush()
        geo = read_georef(Path(file.name))
    if geo is not None:
        to_lonlat(geo, [0.0, float(size[0])], [0.0, float(size[1])])


def check(detector: Detector, data: bytes, fmt: str) -> tuple[str, str, str]:
    """(status, kind, detail) of one file through ``load_image`` and then ``detector.detect``."""

    def finding(stage: str, exc: BaseException) -> tuple[str, str, str]:
        kind = "memory" if _out_of_memory(exc) else "exception"
        return "finding", kind, f"{stage}: {type(exc).__name__}: {str(exc)[:300]}"

    try:
        image = load_image(data)
        first = ("decoded", "", f"{image.shape[1]}x{image.shape[0]}")
    except ImageError as exc:
        if _out_of_memory(exc):
            return finding("load_image", exc)
        first = ("refused", exc.kind, str(exc)[:300])
    except Exception as exc:
        return finding("load_image", exc)
    try:
        found = detector.detect(data, tile="auto")
        second = "decoded"
    except ImageError as exc:
        if _out_of_memory(exc):
            return finding("detect", exc)
        second = f"refused ({exc.kind}: {str(exc)[:200]})"
    except Exception as exc:
        return finding("detect", exc)
    if not second.startswith(first[0]):
        return "finding", "disagree", f"load_image {first[0]} {first[1] or first[2]}, detect {second}"
    if first[0] == "decoded" and fmt == "tiff":
        try:
            _georef(data, found.image_size)
        except Exception as exc:
            return finding("labeller georeferencing", exc)
    return first


def _memory_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field)) / 1024


def _peak_mb() -> float:
    """Peak resident memory since the last call (the kernel's high-water mark, then reset)."""
    peak = _memory_mb("VmHWM")
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    return peak


def memory_budget_mb(data: bytes) -> float:
    """How much checking ``data`` may add to a worker's resident memory, from the pixels its header claims."""
    try:
        header = read_header(data)
    except ImageError:
        return MEMORY_SLACK_MB
    return MEMORY_SLACK_MB + BYTES_PER_PIXEL * min(header.width * header.height, MAX_PIXELS) / 2**20


def _worker(conn: Connection, model: str, memory_mb: int) -> None:
    """Answer (index, bytes, format) with (status, kind, detail, peak MB) until the pipe closes."""
    limit = memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)  # libjpeg, libpng, libtiff and GDAL warn on stderr about every damaged file
    os.close(null)
    from railvision.engine import Detector

    detector = Detector(model, device="cpu", threads=1, batch=1)
    detector.detect(make_seeds()["png-rgb8"], tile="auto")  # onnxruntime's arenas grow on the first run
    _peak_mb()
    conn.send("ready")
    while True:
        try:
            _, data, fmt = conn.recv()
        except EOFError:
            return
        before = _memory_mb("VmRSS")
        status, kind, detail = check(detector, data, fmt)
        peak = _peak_mb()
        if status != "finding" and peak - before > (budget := memory_budget_mb(data)):
            detail = f"resident memory grew by {peak - before:.0f} MB, over its {budget:.0f} MB ({status} {kind})"
            status, kind = "finding", "memory"
        conn.send((status, kind, detail, peak))


class _Process:
    """One worker process and the mutant it is checking."""

    START_TIMEOUT = 120.0

    def __init__(self, context: multiprocessing.context.BaseContext, model: Path, memory_mb: int) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker, args=(child, str(model), memory_mb), daemon=True)
        self.process.start()
        child.close()
        self.ready = False
        self.job: Mutant | None = None
        self.deadline = time.monotonic() + self.START_TIMEOUT

    def send(self, job: Mutant, timeout: float) -> None:
        self.job, self.deadline = job, time.monotonic() + timeout
        self.conn.send((job.index, job.data, seed_format(job.seed)))

    def stop(self, wait: float = 0.0) -> str:
        """Kill it if still alive after ``wait`` seconds; how it ended, e.g. ``SIGSEGV`` or ``exit 1``."""
        self.conn.close()
        self.process.join(wait)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        code = self.process.exitcode or 0
        return signal.Signals(-code).name if code < 0 else f"exit {code}"


def run(
    items: Iterable[Mutant],
    model: Path,
    timeout: float = 20.0,
    memory_mb: int = DEFAULT_MEMORY_MB,
    workers: int = 2,
    on_outcome: Callable[[Outcome], None] = lambda outcome: None,
) -> list[Outcome]:
    """Check every mutant in ``workers`` processes, each restarted after a crash or a hang; outcomes by index."""
    context = multiprocessing.get_context("spawn")  # a fork would copy the parent's onnxruntime threads' locks
    queue = iter(items)
    pool = [_Process(context, model, memory_mb) for _ in range(max(1, workers))]
    outcomes: list[Outcome] = []
    retry: list[Mutant] = []  # mutants a worker died before receiving (killed while idle): not theirs to blame

    def record(job: Mutant, status: str, kind: str = "", detail: str = "", peak: float = 0.0) -> None:
        outcomes.append(Outcome(job.index, job.seed, job.mutation, status, kind, detail, peak))
        on_outcome(outcomes[-1])

    try:
        exhausted = False
        while True:
            for i, worker in enumerate(pool):
                if worker.ready and worker.job is None and not (exhausted and not retry):
                    job = retry.pop() if retry else next(queue, None)
                    if job is None:
                        exhausted = True
                        continue
                    try:
                        worker.send(job, timeout)
                    except OSError:
                        worker.stop()
                        retry.append(job)
                        pool[i] = _Process(context, model, memory_mb)
            busy = [w for w in pool if w.job is not None or not w.ready]
            if exhausted and not retry and not any(w.job is not None for w in pool):
                break
            left = min(w.deadline for w in busy) - time.monotonic()
            answered = wait([w.conn for w in busy], timeout=max(left, 0.0))
            for i, worker in enumerate(pool):
                if worker not in busy:
                    continue
                if worker.conn in answered:
                    try:
                        message = worker.conn.recv()
                    except (EOFError, OSError):
                        ended = worker.stop(wait=5)
                        if worker.job is None:
                            raise RuntimeError(f"a fuzz worker died while starting ({ended})") from None
                        record(worker.job, "finding", "crash", f"the worker died: {ended}")
                        pool[i] = _Process(context, model, memory_mb)
                        continue
                    if message == "ready":
                        worker.ready = True
                    elif worker.job is not None:
                        record(worker.job, *message)
                        worker.job = None
                elif time.monotonic() > worker.deadline:
                    worker.stop()
                    if worker.job is None:
                        raise RuntimeError(f"a fuzz worker did not start within {_Process.START_TIMEOUT:g} s")
                    record(worker.job, "finding", "hang", f"no answer within {timeout:g} s")
                    pool[i] = _Process(context, model, memory_mb)
    finally:
        for worker in pool:
            worker.stop()
    return sorted(outcomes, key=lambda o: o.index)


# --- the service ----------------------------------------------------------------------------------------------

BOUNDARY = "railvisionfuzz"


def multipart(name: str, data: bytes) -> bytes:
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
    return head.encode() + b"Content-Type: application/octet-stream\r\n\r\n" + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def judge_answer(status: int, body: bytes) -> tuple[str, str, str]:
    """(status, kind, detail) of one service answer: 200, or a 4xx with the JSON error shape, else a finding."""
    import json

    if status == 200:
        return "decoded", "", ""
    try:
        error = json.loads(body)["error"]
        kind, message = str(error["kind"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        return "finding", "exception", f"HTTP {status} without the JSON error body: {body[:200]!r}"
    if 400 <= status < 500:
        return "refused", kind, message
    return "finding", "exception", f"HTTP {status} {kind}: {message}"


def _rss_mb(pid: int) -> float:
    """Resident memory of a process and its children."""
    import psutil

    process = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 2**20


def run_service(
    items: Iterable[Mutant], model: Path, timeout: float, memory_mb: int, every: int
) -> tuple[list[Outcome], list[tuple[int, float]]]:
    """POST each mutant to ``railvision serve`` on a loopback port, under the same address-space limit;
    outcomes, and the server's resident memory every ``every`` requests."""
    import httpx
    import psutil
    from local_server import local_server

    outcomes, curve = [], []
    headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
    with (
        local_server(model, "--threads", "1") as (url, process),
        httpx.Client(base_url=url, timeout=timeout, trust_env=False) as client,
    ):
        limit = memory_mb * 2**20
        psutil.Process(process.pid).rlimit(psutil.RLIMIT_AS, (limit, limit))
        curve.append((0, _rss_mb(process.pid)))
        for n, job in enumerate(items, 1):
            try:
                response = client.post("/v1/detect", content=multipart(f"{job.index}.bin", job.data), headers=headers)
                answer = judge_answer(response.status_code, response.content)
            except httpx.TimeoutException:
                answer = ("finding", "hang", f"no answer within {timeout:g} s")
            except httpx.TransportError as exc:
                ended = process.poll()
                answer = ("finding", "crash", f"{type(exc).__name__}; the server exit code: {ended}")
            outcomes.append(Outcome(job.index, job.seed, job.mutation, *answer))
            if process.poll() is not None:
                break  # the server is gone: the finding above says so
            if n % every == 0:
                curve.append((n, _rss_mb(process.pid)))
        if process.poll() is None and client.get("/healthz").status_code != 200:
            outcomes.append(Outcome(-1, "-", "GET /healthz after the run", "finding", "exception", "not healthy"))
    return outcomes, curve


# --- the report -----------------------------------------------------------------------------------------------


def findings(outcomes: Iterable[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if o.status == "finding"]


def report(outcomes: list[Outcome], seed: int) -> list[str]:
    """Mutants per seed file: how many decoded, refused by each error kind, or were findings; then each finding."""
    kinds = sorted({o.kind for o in outcomes if o.status == "refused"})
    table: dict[str, Counter[str]] = defaultdict(Counter)
    for o in outcomes:
        table[o.seed][o.status if o.status != "refused" else o.kind] += 1
    columns = ["decoded", *kinds, "finding"]
    width = max([len(name) for name in table] + [5])
    lines = [f"{'seed file':<{width}} {'run':>5} " + " ".join(f"{c:>{max(len(c), 5)}}" for c in columns)]
    for name in [*sorted(table), "total"]:
        counts = sum(table.values(), Counter()) if name == "total" else table[name]
        cells = " ".join(f"{counts[c]:>{max(len(c), 5)}}" for c in columns)
        lines.append(f"{name:<{width}} {sum(counts.values()):>5} {cells}")
    found = findings(outcomes)
    lines.append(f"findings: {len(found)}")
    lines += [f"  seed {seed} mutant {o.index} ({o.seed}: {o.mutation}): {o.kind}: {o.detail}" for o in found]
    heaviest = sorted((o for o in outcomes if o.peak_mb), key=lambda o: -o.peak_mb)[:3]
    if heaviest:
        lines.append("largest peak memory: " + ", ".join(f"mutant {o.index} {o.peak_mb:.0f} MB" for o in heaviest))
    return lines


def save(outcomes: list[Outcome], seed: int, out: Path) -> None:
    """Each finding's mutant as a file, named by seed and index, to attach to a bug report."""
    out.mkdir(parents=True, exist_ok=True)
    for o in findings(outcomes):
        if o.index >= 0:
            (out / f"seed{seed}-{o.index:06d}-{o.seed}-{o.kind}.bin").write_bytes(mutant(seed, o.index).data)


def oracle_model(folder: Path) -> Path:
    """The tests' tiny exact ONNX model (tests/toy_models.py), so no shipped model is needed."""
    sys.path.insert(0, str(REPO / "tests"))
    from toy_models import build_oracle

    return build_oracle(folder / "oracle.onnx")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="run seed: the same seed makes the same mutants")
    parser.add_argument("--count", type=int, default=1000, help="mutants to run (default 1000)")
    parser.add_argument("--start", type=int, default=0, help="index of the first mutant (default 0)")
    parser.add_argument("--index", type=int, action="append", help="run only this mutant (repeatable)")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds one mutant may take (default 20)")
    parser.add_argument("--memory-mb", type=int, default=DEFAULT_MEMORY_MB, help="address-space limit per worker")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="worker processes")
    parser.add_argument("--out", type=Path, help="write each finding's mutant to this folder")
    parser.add_argument("--model", type=Path, help="ONNX model (default: the tests' oracle, built here)")
    parser.add_argument("--service", action="store_true", help="POST the mutants to a loopback server instead")
    parser.add_argument("--sample-every", type=int, default=50, help="--service: sample the server's RSS this often")
    args = parser.parse_args(argv)
    chosen = [mutant(args.seed, i) for i in args.index] if args.index else mutants(args.seed, args.count, args.start)
    with tempfile.TemporaryDirectory() as scratch:
        model = args.model or oracle_model(Path(scratch))
        start = time.perf_counter()
        if args.service:
            outcomes, curve = run_service(chosen, model, args.timeout, args.memory_mb, args.sample_every)
        else:
            outcomes = run(chosen, model, args.timeout, args.memory_mb, args.workers)
        wall = time.perf_counter() - start
    where = "a loopback server" if args.service else f"{args.workers} workers"
    print(f"{len(outcomes)} mutants (seed {args.seed}) through {where} in {wall:.1f} s")
    print("\n".join(report(outcomes, args.seed)))
    if args.service:
        print("server RSS (MB) after N requests: " + ", ".join(f"{n}: {mb:.0f}" for n, mb in curve))
    if args.out:
        save(outcomes, args.seed, args.out)
    return 1 if findings(outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
