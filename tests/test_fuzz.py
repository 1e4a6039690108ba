"""Images nobody made by hand (bench/fuzz_images.py): mutants of every format decode or raise one of our own
errors, in worker processes under time and memory limits, in the service and in the labeller; and every bug
the fuzzer found stays fixed."""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import signal
import struct
import threading
from pathlib import Path

import cv2
import fuzz_images
import httpx
import numpy as np
import pytest
from conftest import scene

from railvision import CorruptImageError, ImageError, load_image
from railvision.labelling import LabelOptions, label_archive

SEED, COUNT = 0, 1000  # about 8 s on two cores
SAMPLE = [fuzz_images.mutant(SEED, i) for i in range(52)]  # four of each seed file, all fuzzed in the run below
SUFFIX = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "tiff": ".tif", "bmp": ".bmp"}


def refusal(data: bytes) -> str | None:
    """The error kind ``load_image`` refuses a file with, or None when it decodes."""
    try:
        load_image(data)
    except ImageError as exc:
        return exc.kind
    return None


def test_every_seed_file_decodes() -> None:
    for name, data in fuzz_images.make_seeds().items():
        assert load_image(data).shape[:2] in ((120, 160), (160, 120)), name  # progressive-exif: turned upright


@pytest.mark.timeout(300)
def test_mutants_decode_or_are_refused_with_our_own_errors(oracle_model: Path) -> None:
    """No crash, hang, unbounded allocation, foreign exception, or load_image and detect disagreeing."""
    outcomes = fuzz_images.run(fuzz_images.mutants(SEED, COUNT), oracle_model, timeout=60, workers=2)
    assert [o.index for o in outcomes] == list(range(COUNT))
    assert not fuzz_images.findings(outcomes), "\n".join(fuzz_images.report(outcomes, SEED))
    for name in fuzz_images.make_seeds():  # the mutations reach past the header checks of every seed file
        statuses = {o.status for o in outcomes if o.seed == name}
        assert statuses == {"decoded", "refused"}, name


def test_the_harness_reports_hangs_and_crashes_and_carries_on(oracle_model: Path) -> None:
    """A mutant that outlives the time limit is a hang, one whose worker dies of a signal a crash; a worker that
    dies while idle is not blamed for the mutant it was about to get. Each is replaced and the run goes on."""
    first, second, slow = (fuzz_images.mutant(SEED, i) for i in (0, 1, 60))  # 60: a 4000 x 4000 tiled TIFF
    [hang] = fuzz_images.run([slow], oracle_model, timeout=0.05, workers=1)
    assert (hang.index, hang.status, hang.kind) == (60, "finding", "hang")

    workers = multiprocessing.active_children  # the fuzzer's worker processes: this test starts no other

    def crash_during_slow(outcome: fuzz_images.Outcome) -> None:
        if outcome.index == 0:  # the worker gets the slow mutant next: seconds of work
            pid = workers()[0].pid
            threading.Timer(0.5, os.kill, [pid, signal.SIGSEGV]).start()  # the harness alone reaps it

    def kill_while_idle(outcome: fuzz_images.Outcome) -> None:
        if outcome.index == 0:
            for process in workers():
                process.kill()
                process.join()

    crashed = fuzz_images.run([first, slow, second], oracle_model, workers=1, on_outcome=crash_during_slow)
    assert [(o.index, o.kind, o.detail) for o in fuzz_images.findings(crashed)] == [
        (60, "crash", "the worker died: SIGSEGV")
    ]
    assert [o.index for o in crashed] == [0, 1, 60]
    retried = fuzz_images.run([first, second], oracle_model, workers=1, on_outcome=kill_while_idle)
    assert [(o.index, o.status) for o in retried] == [(0, "refused"), (1, "decoded")]


# --- the service and the labeller ---------------------------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_the_service_answers_each_mutant_with_200_or_a_json_4xx(oracle_model: Path) -> None:
    from railvision.serve.app import create_app
    from railvision.serve.settings import Settings

    app = create_app(Settings(model=oracle_model))
    wrong = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            for m in SAMPLE:
                name = f"{m.index}-{m.seed}.bin"
                response = await client.post("/v1/detect", files=[("files", (name, m.data, "image/jpeg"))])
                kind = refusal(m.data)
                if kind is None:
                    if response.status_code != 200:
                        wrong.append(f"{name}: HTTP {response.status_code} {response.text[:200]}")
                    continue
                error = response.json().get("error", {}) if response.status_code < 500 else {}
                if not 400 <= response.status_code < 500 or (error.get("kind"), error.get("file")) != (kind, name):
                    wrong.append(f"{name}: expected {kind}, got HTTP {response.status_code} {response.text[:200]}")
                elif not error.get("message"):
                    wrong.append(f"{name}: no message")
            health = await client.get("/healthz")
    assert not wrong, "\n".join(wrong)
    assert health.status_code == 200


def test_the_labeller_completes_and_names_each_bad_mutant(oracle_model: Path, tmp_path: Path) -> None:
    root, out = tmp_path / "archive", tmp_path / "out"
    root.mkdir()
    expected = {}
    for m in SAMPLE:
        name = f"{m.index:03d}-{m.seed}{SUFFIX[fuzz_images.seed_format(m.seed)]}"
        (root / name).write_bytes(m.data)
        expected[name] = refusal(m.data)
    summary = label_archive(root, out, LabelOptions(model=oracle_model))
    with (out / "errors.csv").open(newline="") as file:
        errors = {row["image"]: row["kind"] for row in csv.DictReader(file)}
    with (out / "counts.csv").open(newline="") as file:
        labelled = {row["image"] for row in csv.DictReader(file)}
    assert errors == {name: kind for name, kind in expected.items() if kind is not None}
    assert labelled == {name for name, kind in expected.items() if kind is None}
    assert (summary.labelled, summary.failed) == (len(labelled), len(errors))


def test_service_mode_posts_to_a_loopback_server_and_samples_its_memory(oracle_model: Path) -> None:
    outcomes, curve = fuzz_images.run_service(SAMPLE[:26], oracle_model, timeout=60, memory_mb=4096, every=13)
    assert len(outcomes) == 26 and not fuzz_images.findings(outcomes)
    assert [n for n, _ in curve] == [0, 13, 26] and all(mb > 0 for _, mb in curve)


# --- regressions: each bug the fuzzer found ------------------------------------------------------------------


def _no_decoding(*args: object) -> None:
    raise AssertionError("OpenCV was asked to decode a file the header checks should have refused")


def _jpeg_claiming(width: int, height: int, progressive: bool) -> bytes:
    """A small valid JPEG whose frame header (SOF0 or SOF2) is then changed to claim ``width x height``."""
    data = cv2.imencode(".jpg", scene(160, 120), [cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)])[1].tobytes()
    at = data.index(b"\xff\xc2" if progressive else b"\xff\xc0")
    return data[: at + 5] + struct.pack(">HH", height, width) + data[at + 9 :]


@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
def test_a_jpeg_whose_scan_data_cannot_hold_its_frame_is_refused_before_decoding(progressive, monkeypatch) -> None:
    """Seed 0, mutants 312 and 508: a 5 KB JPEG claiming 14,000 x 14,000 pixels decoded (libjpeg grey-fills
    what is missing) to 588 MB of grey in seconds, which auto tiling then ran 729 times through the model."""
    monkeypatch.setattr(cv2, "imdecode", _no_decoding)
    with pytest.raises(CorruptImageError, match=r"truncated JPEG: [\d,]+ bytes of image data cannot hold 14000x14000"):
        load_image(_jpeg_claiming(14000, 14000, progressive))


def test_a_flat_jpeg_far_smaller_than_its_pixels_still_decodes() -> None:
    flat = cv2.imencode(".jpg", np.full((3000, 4000, 3), 90, np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 50])[1]
    assert load_image(flat.tobytes()).shape == (3000, 4000, 3)


def test_a_png_chunk_longer_than_the_file_is_refused_before_opencv_allocates_it(monkeypatch) -> None:
    """Seed 0, mutants 70 and 330: OpenCV allocated and zeroed the 2 GB a 50 KB file's IDAT length claimed."""
    data = cv2.imencode(".png", scene(160, 120))[1].tobytes()
    at = data.index(b"IDAT") - 4
    monkeypatch.setattr(cv2, "imdecode", _no_decoding)
    with pytest.raises(CorruptImageError, match="chunk 'IDAT' claims 2,147,483,648 bytes, past the end"):
        load_image(data[:at] + struct.pack(">I", 2**31) + data[at + 4 :])


def test_a_geotiff_whose_pixels_leave_the_earth_is_labelled_in_pixel_coordinates(oracle_model, tmp_path) -> None:
    """Seed 0, mutant 908: a GeoTIFF with pixels 6e247 m wide counted as georeferenced, and turning its boxes
    into lon/lat for detections.geojson failed the whole run at its end (a GDAL error, not a RasterioError)."""
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import from_origin

    root = tmp_path / "archive"
    root.mkdir()
    image = scene(160, 120, red=(20, 20, 79, 59))
    profile = {"driver": "GTiff", "width": 160, "height": 120, "count": 3, "dtype": "uint8", "crs": "EPSG:32633"}
    transform = from_origin(500000.0, 4649776.0, 6.4e247, 1.3e137)
    with rasterio.open(root / "far.tif", "w", transform=transform, photometric="RGB", **profile) as dst:
        dst.write(image[..., ::-1].transpose(2, 0, 1))
    summary = label_archive(root, tmp_path / "out", LabelOptions(model=oracle_model))
    assert (summary.labelled, summary.failed) == (1, 0)
    [feature] = json.loads((tmp_path / "out" / "detections.geojson").read_text())["features"]
    assert feature["properties"]["coordinates"] == "pixel"
    assert feature["geometry"]["coordinates"][0][0] == pytest.approx([20, 20], abs=0.5)
