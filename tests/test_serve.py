"""The HTTP service end to end: the real app (lifespan included) on the exact oracle models."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import cv2
import httpx
import numpy as np
import pytest
from fresh_python import TORCH_ABSENT
from local_server import local_server
from toy_data import png_claiming

from railvision.serve.app import create_app
from railvision.serve.settings import Settings

pytestmark = pytest.mark.anyio

RED_BOX, BLUE_BOX = (100, 100, 299, 199), (500, 50, 599, 149)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def png() -> bytes:
    """1000x480 scene with one tank_car (red) and one closed_wagon (blue)."""
    from conftest import scene

    return cv2.imencode(".png", scene(1000, 480, red=RED_BOX, blue=BLUE_BOX))[1].tobytes()


@asynccontextmanager
async def serving(**settings: object) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, and a client on it."""
    app = create_app(Settings(**settings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


def files(*items: tuple[str, bytes], field: str = "files") -> list:
    return [(field, (name, data, "application/octet-stream")) for name, data in items]


def assert_scene(answer: dict, name: str = "scene.png") -> None:
    """The oracle's exact answer for ``png``: one tank_car and one closed_wagon where they were drawn."""
    assert answer["name"] == name
    assert answer["image_size"] == {"width": 1000, "height": 480}
    assert answer["counts"] == {
        "diesel_locomotive": 0,
        "tank_car": 1,
        "covered_flatbed": 0,
        "closed_wagon": 1,
        "other_railcar": 0,
    }
    boxes = {d["class_name"]: d["box"] for d in answer["detections"]}
    # Boxes are exclusive of the far edge (x2 = last pixel + 1), within a letterbox rounding.
    assert boxes["tank_car"] == pytest.approx([100, 100, 300, 200], abs=0.5)
    assert boxes["closed_wagon"] == pytest.approx([500, 50, 600, 150], abs=0.5)
    assert set(answer["timing"]) == {"decode_ms", "queue_ms", "infer_ms", "batch_size"}


def batch_sizes(metrics_text: str) -> dict[str, int]:
    """Cumulative ``railvision_batch_size`` buckets from the Prometheus text, keyed ``"1"`` whether written 1 or 1.0."""
    found = re.findall(r'railvision_batch_size_bucket\{le="([^"]+)"\} (\S+)', metrics_text)
    return {le if le == "+Inf" else f"{float(le):g}": int(float(n)) for le, n in found}


# --- routes -----------------------------------------------------------------------------------------


async def test_detect_multipart_several_images(oracle_model, png):
    async with serving(model=oracle_model) as client:
        response = await client.post("/v1/detect", files=files(("scene.png", png), ("again.png", png)))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == hashlib.sha256(oracle_model.read_bytes()).hexdigest()
    assert [a["name"] for a in body["images"]] == ["scene.png", "again.png"]
    for answer in body["images"]:
        assert_scene(answer, answer["name"])
        assert answer["timing"]["batch_size"] == 2  # one request's images share one batch
    assert body["timing"]["total_ms"] > 0


async def test_detect_json_base64_with_params_and_annotated(oracle_model, png):
    payload = {
        "images": [{"name": "scene.png", "data": base64.b64encode(png).decode()}],
        "classes": "tank_car",
        "annotated": True,
    }
    async with serving(model=oracle_model) as client:
        response = await client.post("/v1/detect", json=payload)
    assert response.status_code == 200, response.text
    answer = response.json()["images"][0]
    assert answer["counts"]["tank_car"] == 1
    assert answer["counts"]["closed_wagon"] == 0
    drawn = cv2.imdecode(np.frombuffer(base64.b64decode(answer["annotated"]), np.uint8), cv2.IMREAD_COLOR)
    assert drawn.shape == (480, 1000, 3)


async def test_detect_file_field_query_and_form_params(oracle_model, png):
    async with serving(model=oracle_model) as client:
        one = await client.post("/v1/detect?max_det=1", files=files(("scene.png", png), field="file"))
        only_blue = await client.post("/v1/detect", files=files(("scene.png", png)), data={"classes": "3"})
        none = await client.post("/v1/detect?conf=1", files=files(("scene.png", png)))
    assert len(one.json()["images"][0]["detections"]) == 1
    assert [d["class_name"] for d in only_blue.json()["images"][0]["detections"]] == ["closed_wagon"]
    assert none.json()["images"][0]["detections"] == []  # scores must exceed conf, as in the engine


async def test_model_route(oracle_model):
    async with serving(model=oracle_model, max_batch=4) as client:
        info = (await client.get("/v1/model")).json()
    assert info["class_names"] == ["diesel_locomotive", "tank_car", "covered_flatbed", "closed_wagon", "other_railcar"]
    assert info["input_size"] == {"width": 640, "height": 640}
    assert info["head"] == "end2end"
    assert info["provider"] == "CPUExecutionProvider"
    assert info["hash"] == hashlib.sha256(oracle_model.read_bytes()).hexdigest()
    assert info["max_batch"] == 4
    assert info["card"]["railvision_head"] == "end2end"
    assert info["default_conf"] == 0.25  # the oracle carries no threshold of its own


async def test_requests_without_conf_use_the_models_own(oracle_model, png, tmp_path):
    from railvision.engine import write_metadata

    strict = tmp_path / "strict.onnx"
    shutil.copy(oracle_model, strict)
    write_metadata(strict, {"conf": "1.0"})  # the oracle scores 1.0, which must exceed conf: nothing passes
    async with serving(model=strict) as client:
        assert (await client.get("/v1/model")).json()["default_conf"] == 1.0
        default = await client.post("/v1/detect", files=files(("scene.png", png)))
        chosen = await client.post("/v1/detect?conf=0.5", files=files(("scene.png", png)))
    assert default.json()["images"][0]["detections"] == []
    assert len(chosen.json()["images"][0]["detections"]) == 2


async def test_health_ready_metrics_page_and_docs(oracle_model, png):
    async with serving(model=oracle_model) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert (await client.get("/readyz")).json() == {"ready": True, "model": oracle_model.name}
        await client.post("/v1/detect", files=files(("scene.png", png)))
        await client.post("/v1/detect", files=files(("x.bin", b"nope")))
        metrics = await client.get("/metrics")
        page = await client.get("/")
        schema = (await client.get("/openapi.json")).json()
        docs = await client.get("/docs")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'railvision_requests_total{route="/v1/detect",status="200"} 1' in text
    assert 'railvision_errors_total{kind="not_an_image"} 1' in text
    assert "railvision_request_duration_seconds_bucket" in text
    assert "railvision_queue_depth 0" in text
    assert batch_sizes(text)["+Inf"] == 1
    assert page.status_code == 200 and "<canvas" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN: nothing outside can be reached
    body = schema["paths"]["/v1/detect"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(body)
    assert "DetectJSON" in schema["components"]["schemas"]
    assert {p["name"] for p in schema["paths"]["/v1/detect"]["post"]["parameters"]} >= {"conf", "iou", "tile"}
    assert docs.status_code == 200


async def test_page_draws_in_the_drawers_class_colours(oracle_model):
    """The page's palette is railvision.draw.PALETTE (BGR there), written into it as CSS hex when served."""
    async with serving(model=oracle_model) as client:
        page = (await client.get("/")).text
    assert 'const PALETTE = ["#e60000", "#ffc800", "#00c83c", "#0078e6", "#c800c8"];' in page


async def test_classic_head_fixed_batch_under_concurrency(oracle_classic, png):
    async with serving(model=oracle_classic, max_wait_ms=50) as client:
        answers = await asyncio.gather(*(client.post("/v1/detect", files=files(("scene.png", png))) for _ in range(4)))
    for response in answers:
        assert_scene(response.json()["images"][0])


# --- not ready --------------------------------------------------------------------------------------


async def test_without_a_model_the_service_runs_but_is_not_ready(tmp_path, png):
    async with serving(model=tmp_path / "missing.onnx") as client:
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        detect = await client.post("/v1/detect", files=files(("scene.png", png)))
    assert ready.status_code == 503
    assert "missing.onnx" in ready.json()["reason"]
    assert detect.status_code == 503
    assert detect.json()["error"]["kind"] == "model_not_ready"
    assert "missing.onnx" in detect.json()["error"]["message"]


def test_module_app_imports_without_a_model(tmp_path):
    """``uvicorn railvision.serve.app:app`` must not crash at import when no model exists, nor load torch."""
    env = {"RAILVISION_MODEL": str(tmp_path / "missing.onnx"), "PATH": ""}
    code = f"import sys; import railvision.serve.app as m; print(type(m.app).__name__); {TORCH_ABSENT}"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "FastAPI"


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("RAILVISION_MAX_BATCH", "3")
    monkeypatch.setenv("RAILVISION_CORS_ORIGINS", "http://a.example, http://b.example")
    monkeypatch.setenv("RAILVISION_API_KEY", "k")
    settings = Settings()
    assert settings.max_batch == 3
    assert settings.cors_origins == ["http://a.example", "http://b.example"]
    assert settings.api_key == "k"
    with pytest.raises(ValueError, match="max_images"):
        Settings(max_images=10, max_queue=5)  # one request must fit in the queue


# --- bad input --------------------------------------------------------------------------------------


def jpeg(image: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", image)[1].tobytes()


BAD_INPUTS = {
    "non-image": ({"files": files(("notes.txt", b"just some text"))}, 415, "not_an_image"),
    "empty file": ({"files": files(("empty.jpg", b""))}, 400, "empty_image"),
    "truncated jpeg": (
        {"files": files(("cut.jpg", jpeg(np.full((200, 300, 3), 90, np.uint8))[:400]))},
        422,
        "corrupt_image",
    ),
    "pixel bomb": ({"files": files(("bomb.png", png_claiming(100_000, 100_000)))}, 413, "image_too_large"),
    "gif": ({"files": files(("anim.gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"))}, 415, "unsupported_format"),
    "invalid base64": ({"json": {"images": [{"name": "b64", "data": "not base64!"}]}}, 400, "invalid_base64"),
    "conf out of range": ({"params": {"conf": "1.5"}}, 422, "invalid_parameter"),
    "max_det zero": ({"params": {"max_det": "0"}}, 422, "invalid_parameter"),
    "bad tile": ({"params": {"tile": "sometimes"}}, 422, "invalid_parameter"),
    "unknown class": ({"params": {"classes": "boxcar"}}, 422, "invalid_parameter"),
    "conf in body": ({"json": {"images": [], "conf": -1}}, 422, "invalid_parameter"),
    "too many images": ({"files": files(*[("scene.png", b"")] * 3)}, 413, "too_many_images"),
    "over byte limit": ({"files": files(("big.png", bytes(2_100_000)))}, 413, "payload_too_large"),
    "no images": ({"data": {"conf": "0.5"}, "files": files(("x", b""), field="other")}, 400, "no_images"),
    "not json": ({"content": b"{oops", "headers": {"content-type": "application/json"}}, 400, "bad_request"),
    "wrong content type": (
        {"content": b"raw", "headers": {"content-type": "image/png"}},
        415,
        "unsupported_media_type",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
async def test_bad_input_gets_a_4xx_json_error_and_the_service_keeps_serving(case, oracle_model, png):
    request, status, kind = BAD_INPUTS[case]
    request = dict(request)
    if "params" in request:  # a good image with a bad parameter
        request["files"] = files(("scene.png", png))
    async with serving(model=oracle_model, max_images=2, max_upload_bytes=2_000_000) as client:
        response = await client.post("/v1/detect", **request)
        after = await client.post("/v1/detect", files=files(("scene.png", png)))
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["kind"] == kind
    assert error["message"]
    if kind in ("not_an_image", "empty_image", "corrupt_image", "image_too_large", "unsupported_format"):
        assert error["file"] == request["files"][0][1][0]
    assert after.status_code == 200
    assert_scene(after.json()["images"][0])


async def test_uploads_are_never_spooled_to_disk(oracle_model, monkeypatch):
    """A multi-megabyte upload would go to a temporary file in Starlette's form parser; ours stays in memory."""
    import starlette.formparsers

    def no_disk(*args, **kwargs):
        raise AssertionError("an upload was spooled to a temporary file")

    monkeypatch.setattr(starlette.formparsers, "SpooledTemporaryFile", no_disk)
    from conftest import scene

    big = cv2.imencode(".png", scene(2000, 1500, red=RED_BOX))[1].tobytes()
    assert len(big) > 2_000_000
    async with serving(model=oracle_model) as client:
        response = await client.post("/v1/detect", files=files(("big.png", big)))
    assert response.status_code == 200
    assert response.json()["images"][0]["counts"]["tank_car"] == 1


# --- auth and CORS ----------------------------------------------------------------------------------


async def test_api_key(oracle_model, png):
    async with serving(model=oracle_model, api_key="s3cret") as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
        assert (await client.get("/")).status_code == 200  # the page is public; its calls carry the key
        missing = await client.get("/v1/model")
        wrong = await client.post("/v1/detect", files=files(("scene.png", png)), headers={"Authorization": "Bearer x"})
        metrics = await client.get("/metrics")
        good = {"Authorization": "Bearer s3cret"}
        ok = await client.post("/v1/detect", files=files(("scene.png", png)), headers=good)
        assert (await client.get("/metrics", headers=good)).status_code == 200
    assert missing.status_code == wrong.status_code == metrics.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"]["kind"] == "unauthorized"
    assert ok.status_code == 200
    assert_scene(ok.json()["images"][0])


async def test_no_api_key_means_open(oracle_model):
    async with serving(model=oracle_model) as client:
        assert (await client.get("/v1/model")).status_code == 200


async def test_cors_off_unless_configured(oracle_model):
    preflight = {"Origin": "http://gis.example", "Access-Control-Request-Method": "POST"}
    async with serving(model=oracle_model) as client:
        closed = await client.options("/v1/detect", headers=preflight)
    async with serving(model=oracle_model, cors_origins=["http://gis.example"]) as client:
        opened = await client.options("/v1/detect", headers=preflight)
    assert "access-control-allow-origin" not in closed.headers
    assert opened.headers["access-control-allow-origin"] == "http://gis.example"


# --- under load -------------------------------------------------------------------------------------


class Gate:
    """Wraps a detector so that inference waits until the test opens the gate."""

    def __init__(self, detector) -> None:
        self.detector, self.entered, self.open = detector, threading.Event(), threading.Event()

    def detect_frames(self, frames, options, **kwargs):
        self.entered.set()
        assert self.open.wait(30)
        return self.detector.detect_frames(frames, options, **kwargs)


def post_scene(client: httpx.AsyncClient, png: bytes, query: str = "") -> asyncio.Future:
    return asyncio.ensure_future(client.post(f"/v1/detect{query}", files=files(("scene.png", png))))


async def hold_engine(client: httpx.AsyncClient, png: bytes) -> tuple[Gate, asyncio.Future]:
    """Send one request and return once the engine is busy with it (held until ``gate.open``)."""
    batcher = client.app.state.service.batcher
    gate = Gate(batcher.detector)
    batcher.detector = gate
    first = post_scene(client, png)
    await asyncio.to_thread(gate.entered.wait, 10)
    return gate, first


async def queue_up(client: httpx.AsyncClient, png: bytes, queries: list[str]) -> list[asyncio.Future]:
    """Send requests and return once all are waiting in the batcher's queue."""
    pending = [post_scene(client, png, query) for query in queries]
    while client.app.state.service.batcher.depth < len(queries):
        await asyncio.sleep(0.01)
    return pending


async def test_concurrent_requests_are_batched(oracle_model, png):
    async with serving(model=oracle_model, max_batch=8, max_wait_ms=100) as client:
        gate, first = await hold_engine(client, png)
        rest = await queue_up(client, png, ["", "", "", "", "?classes=tank_car", "?classes=tank_car"])
        gate.open.set()
        answers = [(await r).json()["images"][0] for r in [first, *rest]]
        text = (await client.get("/metrics")).text
    for answer in answers[:5]:
        assert_scene(answer)
    for answer in answers[5:]:  # different parameters never share a batch
        assert answer["counts"]["tank_car"] == 1 and answer["counts"]["closed_wagon"] == 0
    assert [a["timing"]["batch_size"] for a in answers] == [1, 4, 4, 4, 4, 2, 2]
    buckets = batch_sizes(text)
    assert buckets["+Inf"] == 3 and buckets["1"] == 1  # three batches, two of them bigger than one


async def test_queue_full_answers_503_with_retry_after(oracle_model, png):
    async with serving(model=oracle_model, max_batch=1, max_queue=1, max_images=1) as client:
        gate, running = await hold_engine(client, png)
        [queued] = await queue_up(client, png, [""])
        refused = await client.post("/v1/detect", files=files(("scene.png", png)))
        gate.open.set()
        done = [await running, await queued]
        after = await client.post("/v1/detect", files=files(("scene.png", png)))
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["kind"] == "queue_full"
    assert [r.status_code for r in done] == [200, 200]
    assert after.status_code == 200


async def test_request_timeout_answers_504_and_the_service_recovers(oracle_model, png):
    async with serving(model=oracle_model, request_timeout_s=0.3) as client:
        batcher = client.app.state.service.batcher
        gate = Gate(batcher.detector)
        batcher.detector = gate
        slow = await client.post("/v1/detect", files=files(("scene.png", png)))
        gate.open.set()
        after = await client.post("/v1/detect", files=files(("scene.png", png)))
    assert slow.status_code == 504
    assert slow.json()["error"]["kind"] == "timeout"
    assert after.status_code == 200
    assert_scene(after.json()["images"][0])


# --- a real server ----------------------------------------------------------------------------------


def test_uvicorn_on_loopback(oracle_model, png):
    """``railvision serve`` under uvicorn on 127.0.0.1: ready, detects, and its page is served."""
    with local_server(oracle_model, "--max-batch", "4") as (url, _), httpx.Client(base_url=url, trust_env=False) as c:
        assert c.get("/healthz").status_code == 200
        response = c.post("/v1/detect", files=files(("scene.png", png)))
        assert response.status_code == 200
        assert_scene(response.json()["images"][0])
        assert c.get("/v1/model").json()["max_batch"] == 4
        assert "<canvas" in c.get("/").text
