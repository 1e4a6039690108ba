"""DCT-domain reduced JPEG decoding: chosen only where it loses nothing, mapped back to the photo's pixels."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image
from test_engine import BLUE_CLASS, RED_CLASS, expected_box

from railvision.engine import Detector, letterbox
from railvision.images import Frame, decode, decode_frame, jpeg_reduction, load_frame


@pytest.mark.parametrize(
    ("size", "k"),
    [((640, 360), 1), ((1000, 500), 1), ((1280, 720), 2), ((1281, 721), 2), ((4000, 3000), 4), ((5120, 2880), 8),
     ((720, 1280), 2), ((2560, 640), 4)],
)  # fmt: skip
def test_reduction_never_drops_below_the_model_input(size, k):
    w, h = size
    assert jpeg_reduction(w, h, (640, 640)) == k
    r = min(640 / w, 640 / h)
    assert -(-w // k) >= round(w * r) and -(-h // k) >= round(h * r)


def jpeg(image: np.ndarray, orientation: int | None = None) -> bytes:
    """A JPEG of a BGR array, optionally with an EXIF orientation tag."""
    out = io.BytesIO()
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    Image.fromarray(image[..., ::-1]).save(out, "JPEG", quality=95, exif=exif.tobytes())
    return out.getvalue()


def test_large_jpeg_decodes_reduced_and_whole_on_demand(make_scene):
    data = jpeg(make_scene(1280, 720))
    frame = decode_frame(data, (640, 640))
    assert frame.pixels.shape == (360, 640, 3) and frame.size == (1280, 720)
    assert frame.full().shape == (720, 1280, 3)
    assert decode_frame(data, None).pixels.shape == (720, 1280, 3)  # None: every pixel
    assert load_frame(make_scene(1280, 720), (640, 640)).pixels.shape == (720, 1280, 3)  # arrays pass as they are


def test_png_is_never_reduced(make_scene):
    _, png = cv2.imencode(".png", make_scene(1280, 720))
    frame = decode_frame(png.tobytes(), (640, 640))
    assert frame.pixels.shape == (720, 1280, 3) and frame.data is None


@pytest.mark.parametrize("orientation", [1, 6, 8, 3])
def test_exif_orientation_gives_the_turned_size(orientation, make_scene):
    data = jpeg(make_scene(1280, 720), orientation)
    whole = decode(data)
    frame = decode_frame(data, (640, 640))
    assert frame.size == (whole.shape[1], whole.shape[0])
    assert frame.pixels.shape[:2] == (whole.shape[0] // 2, whole.shape[1] // 2)
    assert letterbox(frame.pixels, (640, 640), 32, frame.size)[1] == letterbox(whole, (640, 640), 32)[1]


@pytest.mark.parametrize("size", [(1280, 720), (2560, 1440)])
def test_reduced_decode_finds_the_same_boxes_as_the_full_decode(size, oracle_model, make_scene):
    w, h = size
    red = (w // 10, h // 5, w // 10 + w // 4, h // 5 + h // 3)
    blue = (w // 2, h // 2, w // 2 + w // 5, h // 2 + h // 4)
    data = jpeg(make_scene(w, h, red=red, blue=blue))
    detector = Detector(oracle_model)
    reduced = detector.detect(data)
    whole = detector.detect_frames([decode(data)])[0]
    assert reduced.image_size == whole.image_size == (w, h)
    assert sorted(reduced.class_id.tolist()) == sorted(whole.class_id.tolist()) == [RED_CLASS, BLUE_CLASS]
    scale = max(w, h) / 640
    for cls, box in ((RED_CLASS, red), (BLUE_CLASS, blue)):
        found = reduced.xyxy[reduced.class_id == cls][0]
        np.testing.assert_allclose(found, expected_box(box), atol=2 * scale)
        np.testing.assert_allclose(found, whole.xyxy[whole.class_id == cls][0], atol=2 * scale)


def test_tiling_a_reduced_frame_uses_every_pixel(oracle_model, make_scene):
    red = (1000, 800, 1080, 830)  # 81 x 31 px: too small for the full-frame pass at 1/5
    data = jpeg(make_scene(3200, 1600, red=red))
    frame = decode_frame(data, (640, 640))
    assert frame.data is not None
    result = Detector(oracle_model).detect_frames([frame], tile="on")[0]
    assert isinstance(frame, Frame) and result.meta["tiles"] > 0
    assert result.names == ["tank_car"]
    np.testing.assert_allclose(result.xyxy[0], expected_box(red), atol=2.0)
