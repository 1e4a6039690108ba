"""``railvision label``: outputs checked against the engine, resumability, kills, the archive left alone, Ray."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import scene
from fresh_python import TORCH_ABSENT, run_cli

from railvision.cli import main
from railvision.engine import Detector
from railvision.taxonomy import CLASS_NAMES

STATE = {"state.sqlite", "state.sqlite-wal", "state.sqlite-shm"}
UTM_33N = "EPSG:32633"
GEO_ORIGIN = (500000.0, 4649776.0)  # UTM 33N easting/northing of the GeoTIFF's top-left corner (~15 E, 42 N)
GEO_PIXEL = 0.5  # metres


def write_geotiff(path: Path, image: np.ndarray) -> None:
    """A north-up 3-band RGB GeoTIFF in UTM zone 33N."""
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import from_origin

    transform = from_origin(*GEO_ORIGIN, GEO_PIXEL, GEO_PIXEL)
    height, width = image.shape[:2]
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 3, "dtype": "uint8"}
    with rasterio.open(path, "w", crs=UTM_33N, transform=transform, photometric="RGB", **profile) as dst:
        dst.write(image[..., ::-1].transpose(2, 0, 1))


def build_archive(root: Path, extra_photos: int = 0) -> Path:
    """Nested folders of scenes (boxes exact: no resize at 640 px), corrupt files, a text file and symlinks."""
    (root / "2021" / "border-a").mkdir(parents=True)
    (root / "2022" / "sat").mkdir(parents=True)
    cv2.imwrite(str(root / "2021" / "border-a" / "red.png"), scene(640, 480, red=(100, 120, 299, 219)))
    cv2.imwrite(
        str(root / "2021" / "border-a" / "both.png"), scene(640, 360, red=(5, 5, 60, 40), blue=(300, 200, 500, 330))
    )
    cv2.imwrite(str(root / "2021" / "empty-scene.png"), scene(480, 640))
    cv2.imwrite(str(root / "2022" / "blue.jpg"), scene(640, 480, blue=(200, 100, 400, 300)))
    write_geotiff(root / "2022" / "sat" / "crop.tif", scene(640, 640, red=(320, 320, 419, 359)))
    for i in range(extra_photos):
        x = 10 * i % 500
        cv2.imwrite(str(root / "2022" / f"extra-{i:03d}.png"), scene(640, 480, red=(x, 50, x + 90, 150)))
    jpeg = (root / "2022" / "blue.jpg").read_bytes()
    (root / "2022" / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (root / "2022" / "random.jpg").write_bytes(np.random.default_rng(0).bytes(4096))
    (root / "2021" / "empty.jpg").write_bytes(b"")
    (root / "2021" / "notes.txt").write_text("not a photo")
    (root / "link.png").symlink_to(root / "2021" / "border-a" / "red.png")
    (root / "linked-dir").symlink_to(root / "2021", target_is_directory=True)
    return root


GOOD = ["2021/border-a/both.png", "2021/border-a/red.png", "2021/empty-scene.png", "2022/blue.jpg", "2022/sat/crop.tif"]
BAD = {"2021/empty.jpg": "empty_image", "2022/random.jpg": "not_an_image", "2022/truncated.jpg": "corrupt_image"}


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return build_archive(tmp_path / "archive")


def label(archive: Path, out: Path, model: Path, *extra: str) -> int:
    return main(["label", str(archive), "--out", str(out), "--model", str(model), "--no-progress", *extra])


def tree_digest(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (links not followed) -> hash of its content, link target or mtime."""
    digest = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        if path.is_symlink():
            value = "link:" + os.readlink(path)
        elif path.is_file():
            value = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            value = "dir"
        digest[path.relative_to(root).as_posix()] = f"{value}:{info.st_mtime_ns}"
    return digest


def output_files(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name not in STATE
    }


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def engine_boxes(model: Path, archive: Path) -> dict[str, list[tuple[str, list[float], float]]]:
    """What the engine itself finds in each good photo: the reference every format is checked against."""
    detector = Detector(model)
    found = {}
    for rel in GOOD:
        d = detector.detect(archive / rel, tile="auto")
        found[rel] = sorted(
            (n, [round(v, 2) for v in box], round(c, 4))
            for n, box, c in zip(d.names, d.xyxy.tolist(), d.confidence.tolist(), strict=True)
        )
    return found


def close(a: list[float], b: list[float], tol: float = 0.011) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


def test_every_format_matches_the_engine(archive: Path, tmp_path: Path, oracle_model: Path) -> None:
    out = tmp_path / "out"
    before = tree_digest(archive)
    assert label(archive, out, oracle_model, "--annotated", "--report") == 0
    assert tree_digest(archive) == before, "the archive was written to"
    expected = engine_boxes(oracle_model, archive)
    assert expected["2021/border-a/red.png"] == [("tank_car", [100.0, 120.0, 300.0, 220.0], 1.0)]
    assert len(expected["2021/border-a/both.png"]) == 2 and expected["2021/empty-scene.png"] == []

    def check(found: dict[str, list[tuple[str, list[float], float]]]) -> None:
        assert sorted(found) == GOOD
        for rel, boxes in found.items():
            boxes = sorted(boxes)
            assert [n for n, _, _ in boxes] == [n for n, _, _ in expected[rel]], rel
            assert all(close(b, e) for (_, b, _), (_, e, _) in zip(boxes, expected[rel], strict=True)), rel

    # detections.csv / counts.csv
    rows = read_csv(out / "detections.csv")
    found = {rel: [] for rel in GOOD}
    for r in rows:
        found[r["image"]].append(
            (r["class_name"], [float(r[k]) for k in ("x1", "y1", "x2", "y2")], float(r["confidence"]))
        )
    check(found)
    counts = {r["image"]: r for r in read_csv(out / "counts.csv")}
    assert sorted(counts) == GOOD
    for rel in GOOD:
        assert int(counts[rel]["total"]) == len(expected[rel])
        assert all(int(counts[rel][n]) == sum(e[0] == n for e in expected[rel]) for n in CLASS_NAMES)

    # YOLO: one file per good photo, mirroring the folders
    yolo = sorted(p.relative_to(out / "yolo").as_posix() for p in (out / "yolo").rglob("*.txt"))
    assert yolo == sorted(str(Path(rel).with_suffix(".txt")) for rel in GOOD)
    found = {}
    for rel in GOOD:
        width, height = expected_size = cv2.imread(str(archive / rel)).shape[1::-1]
        assert expected_size == (width, height)
        boxes = []
        for line in (out / "yolo" / Path(rel).with_suffix(".txt")).read_text().splitlines():
            cls, cx, cy, w, h = line.split()
            cx, cy, w, h = float(cx) * width, float(cy) * height, float(w) * width, float(h) * height
            boxes.append((CLASS_NAMES[int(cls)], [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 0.0))
        found[rel] = boxes
    check(found)

    # COCO
    coco = json.loads((out / "coco.json").read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    assert list(names.values()) == list(CLASS_NAMES)
    files = {i["id"]: i["file_name"] for i in coco["images"]}
    found = {rel: [] for rel in files.values()}
    for a in coco["annotations"]:
        x, y, w, h = a["bbox"]
        found[files[a["image_id"]]].append((names[a["category_id"]], [x, y, x + w, y + h], a["score"]))
    check(found)

    # Label Studio: percent coordinates of the original size
    found = {}
    for task in json.loads((out / "labelstudio.json").read_text()):
        boxes = []
        for r in task["predictions"][0]["result"]:
            assert r["type"] == "rectanglelabels" and r["from_name"] == "label" and r["to_name"] == "image"
            v, w, h = r["value"], r["original_width"], r["original_height"]
            x1, y1 = v["x"] * w / 100, v["y"] * h / 100
            boxes.append(
                (v["rectanglelabels"][0], [x1, y1, x1 + v["width"] * w / 100, y1 + v["height"] * h / 100], r["score"])
            )
        found[task["data"]["image"]] = boxes
    check(found)

    # CVAT for images 1.1, the confidence as each label's declared "score" attribute
    root = ET.parse(out / "cvat.xml").getroot()
    assert root.tag == "annotations" and root.findtext("version") == "1.1"
    declared = {label.findtext("name"): label.findtext("attributes/attribute/name") for label in root.iter("label")}
    assert declared == dict.fromkeys(CLASS_NAMES, "score")
    found = {
        image.get("name"): [
            (
                b.get("label"),
                [float(b.get(k)) for k in ("xtl", "ytl", "xbr", "ybr")],
                float(b.find("attribute[@name='score']").text),
            )
            for b in image.iter("box")
        ]
        for image in root.iter("image")
    }
    check(found)
    assert [c for _, _, c in found["2021/border-a/red.png"]] == [1.0]

    # GeoJSON: pixel coordinates (flagged) for plain photos, lon/lat for the GeoTIFF
    features = json.loads((out / "detections.geojson").read_text())["features"]
    assert sum(len(v) for v in expected.values()) == len(features)
    for feature in features:
        ring = feature["geometry"]["coordinates"][0]
        props = feature["properties"]
        xs, ys = [p[0] for p in ring], [p[1] for p in ring]
        if props["image"] == "2022/sat/crop.tif":
            from rasterio.warp import transform

            assert props["coordinates"] == "lonlat"
            x1, y1, x2, y2 = expected["2022/sat/crop.tif"][0][1]
            east = [GEO_ORIGIN[0] + x * GEO_PIXEL for x in (x1, x2)]
            north = [GEO_ORIGIN[1] - y * GEO_PIXEL for y in (y1, y2)]
            lon, lat = transform(UTM_33N, "EPSG:4326", east, north)
            assert 14 < min(xs) < 16 and 41 < min(ys) < 43
            assert close([min(xs), max(ys), max(xs), min(ys)], [lon[0], lat[0], lon[1], lat[1]], 1e-6)
        else:
            assert props["coordinates"] == "pixel"
            box = [min(xs), min(ys), max(xs), max(ys)]
            assert any(close(box, e[1]) for e in expected[props["image"]])

    # failures and skipped files
    assert {r["image"]: r["kind"] for r in read_csv(out / "errors.csv")} == BAD
    assert {r["path"]: r["reason"] for r in read_csv(out / "skipped.csv")} == {
        "2021/notes.txt": "not an image type",
        "link.png": "symlink",
        "linked-dir": "symlink",
    }

    # annotated copies and the self-contained report
    annotated = sorted(p.relative_to(out / "annotated").as_posix() for p in (out / "annotated").rglob("*"))
    assert [a for a in annotated if a.endswith(".jpg")] == sorted(str(Path(r).with_suffix(".jpg")) for r in GOOD)
    page = (out / "report.html").read_text()
    assert page.count('src="data:image/jpeg;base64,') == 4  # photos with at least one box
    assert "http://" not in page and "https://" not in page and "<link" not in page
    assert "<td>tank_car</td><td>3</td>" in page


def test_resume_redoes_only_changed_files(archive: Path, tmp_path: Path, oracle_model: Path, capsys) -> None:
    out = tmp_path / "out"
    assert label(archive, out, oracle_model) == 0
    first = output_files(out)
    capsys.readouterr()
    assert label(archive, out, oracle_model) == 0
    assert "0 processed in this run" in capsys.readouterr().out
    assert output_files(out) == first

    changed = archive / "2021" / "border-a" / "red.png"
    cv2.imwrite(str(changed), scene(640, 480, blue=(10, 10, 99, 99)))
    os.utime(changed, ns=(time.time_ns(), changed.stat().st_mtime_ns + 10**9))
    assert label(archive, out, oracle_model) == 0
    assert "1 processed in this run" in capsys.readouterr().out
    rows = [r for r in read_csv(out / "detections.csv") if r["image"] == "2021/border-a/red.png"]
    assert [(r["class_name"], r["x1"], r["y1"], r["x2"], r["y2"]) for r in rows] == [
        ("closed_wagon", "10.00", "10.00", "100.00", "100.00")
    ]
    assert (out / "yolo" / "2021" / "border-a" / "red.txt").read_text().startswith("3 ")

    (archive / "2021" / "border-a" / "red.png").unlink()  # a photo gone from the archive leaves the outputs
    assert label(archive, out, oracle_model) == 0
    assert not (out / "yolo" / "2021" / "border-a" / "red.txt").exists()
    assert "2021/border-a/red.png" not in (out / "counts.csv").read_text()

    assert label(archive, out, oracle_model, "--conf", "0.5") == 0  # other settings: labelled again
    assert "everything was labelled again" in capsys.readouterr().out


def test_format_selection_and_bad_arguments(archive: Path, tmp_path: Path, oracle_model: Path) -> None:
    out = tmp_path / "out"
    assert label(archive, out, oracle_model, "--format", "csv,cvat") == 0
    assert sorted(p.name for p in out.iterdir() if p.name not in STATE) == [
        "counts.csv", "cvat.xml", "detections.csv", "errors.csv", "skipped.csv"
    ]  # fmt: skip
    with pytest.raises(SystemExit):
        label(archive, out, oracle_model, "--format", "yolo,pascal")
    assert label(archive, archive / "out", oracle_model) == 2  # never writes into the archive
    assert not (archive / "out").exists()


def test_photos_differing_only_in_extension_keep_separate_outputs(tmp_path: Path, oracle_model: Path, capsys) -> None:
    archive = tmp_path / "archive"
    (archive / "cam 1").mkdir(parents=True)
    cv2.imwrite(str(archive / "cam 1" / "a.png"), scene(640, 480, red=(100, 120, 299, 219)))
    cv2.imwrite(str(archive / "cam 1" / "a.jpg"), scene(640, 480, blue=(200, 100, 400, 300)))
    cv2.imwrite(str(archive / "cam 1" / "b.png"), scene(640, 480))
    out = tmp_path / "out"
    assert label(archive, out, oracle_model, "--annotated", "--labelstudio-prefix", "/data/local-files/?d=arc/") == 0
    assert "2 photos share a name but for the extension" in capsys.readouterr().out
    yolo = {p.relative_to(out / "yolo").as_posix(): p.read_text() for p in (out / "yolo").rglob("*.txt")}
    assert sorted(yolo) == ["cam 1/a.jpg.txt", "cam 1/a.png.txt", "cam 1/b.txt"]
    assert yolo["cam 1/a.png.txt"].startswith(f"{CLASS_NAMES.index('tank_car')} ")
    assert yolo["cam 1/a.jpg.txt"].startswith(f"{CLASS_NAMES.index('closed_wagon')} ")
    annotated = sorted(p.relative_to(out / "annotated").as_posix() for p in (out / "annotated").rglob("*.jpg"))
    assert annotated == ["cam 1/a.jpg.jpg", "cam 1/a.png.jpg", "cam 1/b.jpg"]
    tasks = json.loads((out / "labelstudio.json").read_text())
    assert sorted(t["data"]["image"] for t in tasks) == [
        "/data/local-files/?d=arc/cam%201/a.jpg", "/data/local-files/?d=arc/cam%201/a.png",
        "/data/local-files/?d=arc/cam%201/b.png",
    ]  # fmt: skip
    # and back: the prefixed tasks import against the archive, each box to its own photo
    back = tmp_path / "back"
    assert main(["data", "import", "--format", "labelstudio", str(out / "labelstudio.json"),
                 "--images", str(archive), "--out", str(back), "--val-fraction", "0"]) == 0  # fmt: skip
    copied = sorted(p.relative_to(back / "images" / "train").as_posix() for p in (back / "images").rglob("*.*"))
    assert copied == ["cam 1/a.jpg", "cam 1/a_png.png", "cam 1/b.png"]  # folders kept, one label file each
    imported = sorted(p.read_text().split()[0] for p in (back / "labels").rglob("*.txt") if p.read_text())
    assert imported == sorted(str(CLASS_NAMES.index(n)) for n in ("tank_car", "closed_wagon"))


def cli(archive: Path, out: Path, model: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "railvision", "label", str(archive), "--out", str(out), "--model", str(model), *extra]


def test_labelling_path_never_imports_torch(archive: Path, tmp_path: Path, oracle_model: Path) -> None:
    argv = ["label", str(archive), "--out", str(tmp_path / "out"), "--model", str(oracle_model), "--report"]
    done = run_cli(argv, TORCH_ABSENT)
    assert done.returncode == 0, done.stderr


def saved_images(state: Path) -> int:
    """Images the labeller has recorded as done (0 before its state exists or while it is locked)."""
    if not state.is_file():
        return 0
    try:
        with sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=0.1) as db:
            return int(db.execute("SELECT COUNT(*) FROM images").fetchone()[0])
    except sqlite3.Error:
        return 0


def wait_for_progress(proc: subprocess.Popen, state: Path, before: int, deadline: float) -> None:
    """Until ``proc`` has saved more than ``before`` images, has exited, or ``deadline`` has passed."""
    while proc.poll() is None and time.perf_counter() < deadline and saved_images(state) <= before:
        time.sleep(0.05)


def test_killed_runs_finish_identical_to_an_uninterrupted_run(tmp_path: Path, oracle_model: Path) -> None:
    archive = build_archive(tmp_path / "archive", extra_photos=60)
    flags = ("--annotated", "--report", "--batch", "2", "--workers", "1", "--no-progress")
    reference = tmp_path / "reference"
    start = time.perf_counter()
    subprocess.run(cli(archive, reference, oracle_model, *flags), check=True, capture_output=True)
    full = time.perf_counter() - start
    expected = output_files(reference)
    before = tree_digest(archive)
    rng = random.Random(7)
    out = tmp_path / "out"
    kills, saved = 0, [0]
    for sig in (signal.SIGKILL, signal.SIGKILL, signal.SIGINT, signal.SIGKILL, signal.SIGKILL):
        proc = subprocess.Popen(
            cli(archive, out, oracle_model, *flags), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        # each run resumes with less left to do, so a fixed delay would let the later ones finish: kill a
        # moment after this run has saved something of its own
        wait_for_progress(proc, out / "state.sqlite", saved[-1], deadline=time.perf_counter() + full + 30)
        time.sleep(rng.uniform(0.0, 0.1))
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
        kills += proc.returncode != 0
        saved.append(saved_images(out / "state.sqlite"))
        if sig == signal.SIGINT and proc.returncode == 130:
            assert b"run the same command again to resume" in stderr
    assert kills >= 3, "the runs finished before they could be killed"
    assert any(0 < n < 68 for n in saved[1:]), f"no kill landed mid-labelling: {saved}"
    subprocess.run(cli(archive, out, oracle_model, *flags), check=True, capture_output=True)
    assert output_files(out) == expected
    assert tree_digest(archive) == before


def test_lanes_and_the_gpu_batch_path_give_the_same_outputs(
    archive: Path, tmp_path: Path, oracle_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One lane, three lanes, and decoding threads feeding batches (the GPU path, taken here by a detector
    that says it runs on CUDA) must write the same files."""
    assert label(archive, tmp_path / "one", oracle_model, "--annotated", "--workers", "1", "--batch", "3") == 0
    assert label(archive, tmp_path / "three", oracle_model, "--annotated", "--workers", "3", "--batch", "2") == 0
    from railvision.labelling import driver

    opened = driver.open_detector
    lanes_used = []

    def on_cuda(options, threads=None):
        detector = opened(options, threads)
        detector.provider = "CUDAExecutionProvider"
        return detector

    monkeypatch.setattr(driver, "open_detector", on_cuda)
    monkeypatch.setattr("railvision.labelling.pipeline.label_lanes", lambda *a: lanes_used.append(a) or iter(()))
    assert label(archive, tmp_path / "batched", oracle_model, "--annotated", "--batch", "3") == 0
    assert not lanes_used, "the GPU path ran the CPU lanes"
    assert output_files(tmp_path / "one") == output_files(tmp_path / "three") == output_files(tmp_path / "batched")


def test_ray_engine_gives_the_same_outputs(archive: Path, tmp_path: Path, oracle_model: Path) -> None:
    pytest.importorskip("ray")
    assert label(archive, tmp_path / "local", oracle_model, "--annotated") == 0
    assert (
        label(
            archive, tmp_path / "ray", oracle_model, "--annotated", "--engine", "ray", "--workers", "2", "--batch", "2"
        )
        == 0
    )
    assert output_files(tmp_path / "ray") == output_files(tmp_path / "local")


def test_a_second_run_on_the_same_output_refuses_at_once(
    archive: Path, tmp_path: Path, oracle_model: Path, capsys
) -> None:
    """While one run holds OUT, another refuses with a clear message and leaves the state alone; a holder
    killed with SIGKILL leaves no stale lock (flock dies with its process)."""
    from railvision.labelling.state import exclusive

    out = tmp_path / "out"
    assert label(archive, out, oracle_model) == 0
    before = output_files(out)
    capsys.readouterr()
    with exclusive(out.resolve()):
        assert label(archive, out, oracle_model, "--conf", "0.5") == 2
    assert "in use by another 'railvision label' run" in capsys.readouterr().err
    assert output_files(out) == before  # nothing was touched
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from railvision.labelling.state import "
         "exclusive; cm = exclusive(Path(sys.argv[1])); cm.__enter__(); print('held', flush=True); time.sleep(60)",
         str(out.resolve())],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        assert label(archive, out, oracle_model) == 2
    finally:
        holder.kill()
        holder.wait()
    assert label(archive, out, oracle_model) == 0  # the killed holder's lock is gone


FILE_SIZE_LIMIT = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))
from railvision.cli import main
sys.exit(main(sys.argv[2:]))
"""


# where the disk fills: creating the state, its journal half-way through, the first annotated copy
@pytest.mark.parametrize(("limit", "annotated"), [(6_000, False), (150_000, False), (60_000, True)])
def test_a_full_disk_is_a_clear_error_and_the_rerun_finishes_identical(
    tmp_path: Path, oracle_model: Path, limit: int, annotated: bool
) -> None:
    archive = build_archive(tmp_path / "archive", extra_photos=40)
    flags = ("--batch", "2", "--workers", "1", "--no-progress", *(["--annotated"] if annotated else []))
    reference = tmp_path / "reference"
    subprocess.run(cli(archive, reference, oracle_model, *flags), check=True, capture_output=True)
    out = tmp_path / "out"
    limited = [sys.executable, "-c", FILE_SIZE_LIMIT, str(limit), *cli(archive, out, oracle_model, *flags)[3:]]
    done = subprocess.run(limited, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "cannot write to" in done.stderr and "run the same command again" in done.stderr
    assert "Traceback" not in done.stderr
    with sqlite3.connect(out / "state.sqlite") as db:  # consistent: whole batches only
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        saved = db.execute("SELECT COUNT(*) FROM images").fetchone()[0] if "images" in tables else 0
    assert saved < 48 and (saved > 0) == (limit == 150_000)  # that one fills up half-way through
    assert not [p for p in out.rglob("*") if p.name.startswith(".railvision-tmp")]  # no half-written file left
    subprocess.run(cli(archive, out, oracle_model, *flags), check=True, capture_output=True)  # space freed
    assert output_files(out) == output_files(reference)


def test_a_rerun_with_nothing_new_leaves_the_outputs_alone(archive: Path, tmp_path: Path, oracle_model: Path) -> None:
    out = tmp_path / "out"
    assert label(archive, out, oracle_model, "--report") == 0
    written = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name not in STATE}
    expected = output_files(out)
    assert label(archive, out, oracle_model, "--report") == 0  # nothing new: not one output rewritten
    assert {p: p.stat().st_mtime_ns for p in written} == written
    (out / "coco.json").unlink()  # an output gone: everything is written again, the same
    assert label(archive, out, oracle_model, "--report") == 0
    assert output_files(out) == expected
    assert label(archive, out, oracle_model, "--report", "--labelstudio-prefix", "/data/") == 0  # another choice
    assert b"/data/" in (out / "labelstudio.json").read_bytes()
