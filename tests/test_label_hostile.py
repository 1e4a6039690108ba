"""``railvision label`` on hostile archives: names that break paths, CSV, XML, JSON or HTML, and files
that are not what the scan saw (unreadable, gone, changed, FIFOs, devices, symlinks) by the time they are read."""

from __future__ import annotations

import csv
import errno
import html
import json
import os
import re
import stat
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import unquote_to_bytes

import cv2
import pytest
from conftest import scene

from railvision.labelling import LabelOptions, label_archive
from railvision.labelling.driver import Summary
from railvision.labelling.outputs import output_stems, text_name

pytestmark = pytest.mark.timeout(60)  # a FIFO or a device read by mistake would hang, not fail

PREFIX = "/data/local-files/?d=archive/"
BOX = (8, 8, 39, 39)  # the red box in every photo; photos differ in width, which maps a record back to its photo
FORMULA = ("=", "+", "-", "@", "\t", "\r")
LONG = "x" * 251  # + ".jpg": 255 bytes, the longest name most filesystems take

HOSTILE = [
    "..jpg", "...jpg", "a..b.jpg", ".../p.jpg",
    "new\nline.jpg", "tab\tin.jpg", "\tlead-tab.jpg", "\rlead-cr.jpg",
    "it's.jpg", 'say "cheese".jpg', "a<&>b.jpg", "<script>alert(1)</script>.jpg",
    '=HYPERLINK("x";"y").jpg', "+cmd.jpg", "-rf.jpg", "@SUM(A1).jpg", "'=quoted.jpg", "=folder/-sub/@.jpg",
    "bell\x07.jpg", "\ufffe.jpg", "dir\nnl/\"q\".jpg",
    os.fsdecode(b"caf\xe9.jpg"), os.fsdecode(b"caf\xe8.jpg"), "caf\\xe9.jpg", os.fsdecode(b"d\xff/inner.jpg"),
    LONG + ".jpg", LONG + ".png", "é" * 125 + ".jpg", "f" * 255 + "/p.jpg",
    "b.jpg", "b.png", "b.jpg.jpg", "CaSe.jpg", "case.jpg",
    "x.jpg/inner.png", "x.png",  # a folder named like x.png's annotated copy
    "plain.jpg",
]  # fmt: skip


def photo(width: int, height: int = 64) -> bytes:
    """A small JPEG of grey noise with a red box the oracle finds (at BOX, whatever the width)."""
    return cv2.imencode(".jpg", scene(width, height, red=BOX))[1].tobytes()


def from_text(name: str) -> str:
    """The archive path a text output's name stands for: the rule ``outputs.text_name`` documents."""
    if not re.search(r"\\x[0-9a-f]{2}", name):
        return name
    raw = re.sub(rb"\\\\|\\x([0-9a-f]{2})", lambda m: bytes([int(m[1], 16)]) if m[1] else b"\\", name.encode())
    return os.fsdecode(raw)


def from_cell(cell: str) -> str:
    """A CSV name cell back to the name: one leading quote was added before ``= + - @ TAB CR '``."""
    assert not cell.startswith(FORMULA), f"formula injection: {cell!r}"
    return from_text(cell[1:] if cell.startswith("'") else cell)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def run(archive: Path, out: Path, model: Path, on_start=lambda n: None) -> Summary:
    options = LabelOptions(model=model, annotated=True, batch=4, workers=2)
    return label_archive(archive, out, options, report=True, labelstudio_prefix=PREFIX, on_start=on_start)


def outputs(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file() and "state" not in p.name
    }


def test_hostile_names_stay_inside_out_and_round_trip(tmp_path: Path, oracle_model: Path) -> None:
    archive, out = tmp_path / "archive", tmp_path / "out"
    width = {rel: 64 + 4 * i for i, rel in enumerate(HOSTILE)}
    for rel, w in width.items():
        (archive / rel).parent.mkdir(parents=True, exist_ok=True)
        (archive / rel).write_bytes(photo(w))
    before = {p: p.read_bytes() for p in archive.rglob("*") if p.is_file()}

    summary = run(archive, out, oracle_model)
    assert (summary.total, summary.labelled, summary.failed, summary.skipped) == (len(HOSTILE), len(HOSTILE), 0, 0)
    "\n".join(summary.lines()).encode()  # printable, whatever the names
    assert sorted(os.listdir(tmp_path)) == ["archive", "out"]  # nothing escaped OUT, the archive left alone
    assert {p: p.read_bytes() for p in archive.rglob("*") if p.is_file()} == before
    assert not [p for p in out.rglob("*") if p.is_symlink()]

    # per-photo files: one each, named after it, its own box in it
    stems = output_stems(HOSTILE)
    for rel in HOSTILE:
        name = stems[rel]
        assert name in (rel[: rel.rindex(".")], rel) or re.fullmatch(r".+~[0-9a-f]{10}", name), (rel, name)
        assert len(os.fsencode(name.rpartition("/")[2] + ".txt")) <= 255
        _, cx, _, bw, _ = map(float, (out / "yolo" / f"{name}.txt").read_text().split())
        assert abs(cx * width[rel] - 24) < 2 and abs(bw * width[rel] - 32) < 2, rel
        assert (out / "annotated" / f"{name}.jpg").is_file()
    per_photo = [p for p in out.rglob("*") if p.is_file() and p.parts[len(out.parts)] in ("yolo", "annotated")]
    assert len(per_photo) == 2 * len(HOSTILE)
    assert (out / "yolo" / os.fsdecode(b"caf\xe9.txt")).is_file() and (out / "yolo" / "x.png.txt").is_file()
    assert (out / "yolo" / "..txt").is_file() and (out / "yolo" / "a..b.txt").is_file()

    # text outputs parse and every name maps back to its photo
    coco = json.loads((out / "coco.json").read_text(encoding="utf-8"))
    assert {from_text(i["file_name"]): i["width"] for i in coco["images"]} == width
    assert all(abs(a["bbox"][0] - BOX[0]) < 2 for a in coco["annotations"])
    cvat = ET.parse(out / "cvat.xml").getroot()
    assert {from_text(i.get("name")): int(i.get("width")) for i in cvat.iter("image")} == width
    tasks = json.loads((out / "labelstudio.json").read_text(encoding="utf-8"))
    urls = {os.fsdecode(unquote_to_bytes(t["data"]["image"].removeprefix(PREFIX))): t for t in tasks}
    assert {rel: t["predictions"][0]["result"][0]["original_width"] for rel, t in urls.items()} == width
    geo = json.loads((out / "detections.geojson").read_text(encoding="utf-8"))
    assert sorted(from_text(f["properties"]["image"]) for f in geo["features"]) == sorted(HOSTILE)
    assert {from_cell(r["image"]): int(r["width"]) for r in read_csv(out / "counts.csv")} == width
    assert sorted(from_cell(r["image"]) for r in read_csv(out / "detections.csv")) == sorted(HOSTILE)
    for rows in (read_csv(out / name) for name in ("counts.csv", "detections.csv", "errors.csv", "skipped.csv")):
        assert not [c for row in rows for c in row.values() if c.startswith(FORMULA)]
    assert len({text_name(rel) for rel in HOSTILE}) == len(HOSTILE)  # no two photos read the same

    page = (out / "report.html").read_bytes().decode()  # CRs in names kept
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.jpg" in page
    assert all(html.escape(text_name(rel)) in page for rel in HOSTILE)

    first = outputs(out)
    again = run(archive, out, oracle_model)  # the state keeps every name exactly: nothing to redo
    assert (again.processed, again.labelled) == (0, len(HOSTILE))
    assert outputs(out) == first


def test_text_name_escapes_only_what_text_cannot_carry() -> None:
    assert text_name("cam 1/a'<&>\"\n\t.jpg") == "cam 1/a'<&>\"\n\t.jpg"
    assert text_name(os.fsdecode(b"d\xff/caf\xe9 \\.jpg")) == "d\\xff/caf\\xe9 \\\\.jpg"
    assert text_name("caf\\xe9.jpg") == "caf\\\\xe9.jpg"  # looks escaped: escaped, so it reads back as itself
    assert text_name("bell\x07\ufffe.jpg") == "bell\\x07\\xef\\xbf\\xbe.jpg"
    for rel in HOSTILE:
        assert from_text(text_name(rel)) == rel


def test_output_names_never_clash() -> None:
    stems = output_stems(["a.jpg", "a.png", "a.jpg.jpg", "x.jpg/in.png", "x.png", "y.txt/in.png", "y.jpg", "z.jpg"])
    assert stems["z.jpg"] == "z" and stems["a.png"] == "a.png"
    assert stems["x.png"] == "x.png" and stems["y.jpg"] == "y.jpg"  # x.jpg, y.txt are folders
    assert re.fullmatch(r"a\.jpg~[0-9a-f]{10}", stems["a.jpg"])  # a.jpg.jpg's stem is a.jpg too
    assert re.fullmatch(r"a\.jpg\.jpg~[0-9a-f]{10}", stems["a.jpg.jpg"])
    assert len(set(stems.values())) == len(stems)
    long = output_stems(["d/" + LONG + ".jpg", "d/" + LONG + ".png"])
    assert all(len(os.fsencode(name.split("/")[1] + ".txt")) <= 255 for name in long.values())
    assert len(set(long.values())) == 2


def make_fifo_or_link(path: Path, kind: str) -> None:
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "zero":
        path.symlink_to("/dev/zero")
    else:
        path.mkdir()


def test_hostile_files_are_reported_and_the_run_goes_on(
    tmp_path: Path, oracle_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive, out = tmp_path / "archive", tmp_path / "out"
    (archive / "sealed").mkdir(parents=True)
    for i, name in enumerate(["good.jpg", "locked.jpg", "vanish.jpg", "changing.jpg", "sealed/in.jpg",
                              "swap-fifo.jpg", "swap-zero.jpg", "swap-dir.jpg"]):  # fmt: skip
        (archive / name).write_bytes(photo(64 + 8 * i))
    os.mkfifo(archive / "pipe.jpg")
    (archive / "zero.jpg").symlink_to("/dev/zero")
    (archive / "null.png").symlink_to(os.devnull)
    try:
        os.mknod(archive / "device.jpg", stat.S_IFCHR | 0o644, os.makedev(1, 5))  # /dev/zero's numbers
        device = {"device.jpg": "not a regular file"}
    except OSError:
        device = {}
        print("no device node: mknod needs CAP_MKNOD")

    (archive / "locked.jpg").chmod(0)
    (archive / "sealed").chmod(0)
    if os.geteuid() == 0:  # root reads through chmod 000: refuse those two the way the kernel would
        real_open, real_scandir = os.open, os.scandir

        def refuse(path: object, real, *args, **kwargs):
            if Path(os.fsdecode(path)).name in ("locked.jpg", "sealed"):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
            return real(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", lambda path, *a, **k: refuse(path, real_open, *a, **k))
        monkeypatch.setattr(os, "scandir", lambda path=".", *a, **k: refuse(path, real_scandir, *a, **k))

    real_walk = os.walk

    def walk_with_ghost(top: Path, *args, **kwargs):  # a file gone between the listing and its lstat
        for folder, dirs, names in real_walk(top, *args, **kwargs):
            yield folder, dirs, [*names, "ghost.jpg"] if Path(folder) == archive.resolve() else names

    monkeypatch.setattr(os, "walk", walk_with_ghost)

    def between_scan_and_read(pending: int) -> None:
        assert pending == 7
        (archive / "vanish.jpg").unlink()
        (archive / "changing.jpg").write_bytes(photo(200))
        for kind in ("fifo", "zero", "dir"):
            (archive / f"swap-{kind}.jpg").unlink()
            make_fifo_or_link(archive / f"swap-{kind}.jpg", kind)

    try:
        summary = run(archive, out, oracle_model, between_scan_and_read)
        errors = {r["image"]: (r["kind"], r["reason"]) for r in read_csv(out / "errors.csv")}
        skipped = {r["path"]: r["reason"] for r in read_csv(out / "skipped.csv")}
        assert (summary.total, summary.labelled, summary.failed) == (7, 1, 6)
        assert errors["locked.jpg"] == ("unreadable", "Permission denied")
        assert errors["vanish.jpg"] == ("unreadable", "No such file or directory")
        assert errors["changing.jpg"][0] == "changed" and "changed since the scan" in errors["changing.jpg"][1]
        assert errors["swap-zero.jpg"] == ("changed", "a symlink since the scan (not followed)")
        assert errors["swap-fifo.jpg"] == errors["swap-dir.jpg"] == ("changed", "no longer a regular file")
        assert skipped == {
            "ghost.jpg": "unreadable (No such file or directory)", "null.png": "symlink",
            "pipe.jpg": "not a regular file", "sealed": "unreadable folder (Permission denied)", "zero.jpg": "symlink",
            **device,
        }  # fmt: skip
        assert [p.name for p in (out / "yolo").rglob("*.txt")] == ["good.txt"]

        summary = run(archive, out, oracle_model)  # the next run labels what changed and drops what went
        errors = {r["image"]: r["kind"] for r in read_csv(out / "errors.csv")}
        skipped = {r["path"]: r["reason"] for r in read_csv(out / "skipped.csv")}
        assert (summary.processed, summary.labelled, errors) == (1, 2, {"locked.jpg": "unreadable"})
        assert skipped["swap-fifo.jpg"] == "not a regular file" and skipped["swap-zero.jpg"] == "symlink"
        assert sorted(p.name for p in (out / "yolo").rglob("*.txt")) == ["changing.txt", "good.txt"]
    finally:
        (archive / "sealed").chmod(0o755)  # so that pytest can clean up
