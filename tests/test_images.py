"""Image reading: every format, every odd pixel layout, every kind of bad file."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest
from toy_data import png_claiming, tiff_with_subifd

from railvision import (
    CorruptImageError,
    EmptyImageError,
    ImageTooLargeError,
    NotAnImageError,
    UnsupportedFormatError,
    load_image,
)
from railvision.images import image_size

RNG = np.random.default_rng(0)
PHOTO = RNG.integers(0, 255, size=(120, 200, 3), dtype=np.uint8)


def encode(ext: str, image: np.ndarray = PHOTO, params: list[int] | None = None) -> bytes:
    ok, buf = cv2.imencode(ext, image, params or [])
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp", ".bmp", ".tiff"])
def test_formats_decode_to_bgr8(ext, tmp_path):
    data = encode(ext)
    assert image_size(data) == (200, 120)
    for source in (data, tmp_path / f"a{ext}"):
        if not isinstance(source, bytes):
            source.write_bytes(data)
        image = load_image(source)
        assert image.shape == (120, 200, 3) and image.dtype == np.uint8
    if ext in (".png", ".bmp", ".tiff"):  # lossless
        np.testing.assert_array_equal(load_image(data), PHOTO)


def test_grey_rgba_and_16_bit_become_bgr8():
    grey = load_image(encode(".png", PHOTO[:, :, 0]))
    assert grey.shape == (120, 200, 3)
    rgba = np.dstack([PHOTO, np.full((120, 200), 255, np.uint8)])
    rgba[:10, :10, 3] = 0  # transparent corner reads as letterbox grey
    out = load_image(encode(".png", rgba))
    assert out.shape == (120, 200, 3) and (out[:10, :10] == 114).all()
    np.testing.assert_array_equal(out[20:, 20:], PHOTO[20:, 20:])
    deep = PHOTO.astype(np.uint16) * 16  # 12-bit data in a 16-bit file, as satellite products
    out = load_image(encode(".png", deep))
    assert out.dtype == np.uint8 and out.max() == 255 and out.mean() > 100
    assert load_image(PHOTO[:, :, 0]).shape == (120, 200, 3)  # arrays too


def _with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    tiff = b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", 1)
    tiff += struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0)
    app1 = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]


def test_exif_orientation_is_applied():
    rotated = load_image(_with_exif_orientation(encode(".jpg"), 6))  # "rotate 90 CW to display"
    assert rotated.shape == (200, 120, 3)


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (b"", EmptyImageError, "empty"),
        (b"just some text, not a picture", NotAnImageError, "not an image"),
        (b"GIF89a" + bytes(100), UnsupportedFormatError, "GIF"),
        (b"\x00\x00\x00\x18ftypheic" + bytes(100), UnsupportedFormatError, "HEIC"),
        (encode(".jpg")[:-400], CorruptImageError, "truncated JPEG"),
        (encode(".png")[:300], CorruptImageError, "PNG"),
        (encode(".png")[:20], CorruptImageError, "header"),
        (png_claiming(60000, 60000), ImageTooLargeError, "over the limit"),
    ],
    ids=["empty", "text", "gif", "heic", "truncated-jpeg", "truncated-png", "cut-header", "bomb"],
)
def test_bad_input_raises_its_own_error(data, error, message):
    with pytest.raises(error, match=message):
        load_image(data)


def test_pixel_limit_is_configurable_and_checked_before_decoding():
    data = encode(".png")
    with pytest.raises(ImageTooLargeError, match="200x120"):
        load_image(data, max_pixels=100 * 100)
    assert load_image(data, max_pixels=200 * 120).shape == (120, 200, 3)


def test_missing_path_is_reported(tmp_path):
    with pytest.raises(NotAnImageError, match="no such file"):
        load_image(tmp_path / "nope.jpg")


def _pillow_encoded(fmt: str) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(PHOTO[:, :, ::-1]).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (_pillow_encoded("GIF"), "GIF"),
        (_pillow_encoded("PPM"), "PPM"),
        (encode(".jp2"), "JPEG2000"),
        (b"\x00\x00\x00\x1cftypavif" + bytes(100), "AVIF"),
        (b"\x00\x00\x00\x18ftypheic" + bytes(100), "HEIC"),
        (b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1avifmiaf" + bytes(100), "AVIF"),  # AVIF by a compatible brand
        (b"%PDF-1.7\n" + bytes(100), "PDF"),
        (b"8BPS\x00\x01" + bytes(100), "PSD"),
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + bytes(100), "ISO media of brand 'isom'"),
        # camera RAW: TIFF-shaped (the preview OpenCV would decode is not the photo), then by signature
        (tiff_with_subifd(), r"camera RAW \(TIFF-based, such as Nikon NEF"),
        (tiff_with_subifd(order=">"), r"camera RAW \(TIFF-based"),
        (tiff_with_subifd(sensor_first=True), r"camera RAW \(TIFF-based"),
        (tiff_with_subifd(sensor_first=True, photometric=34892), r"camera RAW \(TIFF-based"),  # linear raw
        (tiff_with_subifd(photometric=1, dng=True), r"camera RAW \(DNG\)"),
        (tiff_with_subifd(photometric=1, cr2=True), r"camera RAW \(Canon CR2\)"),
        (b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01crx isom" + bytes(100), r"camera RAW \(Canon CR3\)"),
        (b"II\x1a\x00\x00\x00HEAPCCDR" + bytes(100), r"camera RAW \(Canon CRW\)"),
        (b"IIRO\x08\x00\x00\x00" + bytes(100), r"camera RAW \(Olympus ORF\)"),
        (b"IIU\x00\x08\x00\x00\x00" + bytes(100), r"camera RAW \(Panasonic RW2\)"),
        (b"FUJIFILMCCD-RAW 0201FF129502" + bytes(100), r"camera RAW \(Fujifilm RAF\)"),
    ],
    ids=[
        "gif", "ppm", "jpeg2000", "avif", "heic", "avif-mif1", "pdf", "psd", "mp4",
        "nef", "nef-big-endian", "raw-in-ifd0", "linear-raw", "dng", "cr2", "cr3", "crw", "orf", "rw2", "raf",
    ],
)  # fmt: skip
def test_formats_we_do_not_read_are_named(data: bytes, name: str) -> None:
    with pytest.raises(UnsupportedFormatError, match=f"unsupported format: {name}"):
        load_image(data)


def test_a_tiff_with_ordinary_subifds_is_still_read() -> None:
    """Only sensor data in a SubIFD (or the first IFD) makes a TIFF a camera RAW: a grey SubIFD does not."""
    for order in "<>":
        assert load_image(tiff_with_subifd(photometric=1, order=order)).shape == (8, 16, 3)
