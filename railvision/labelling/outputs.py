"""The labeller's output files, built from saved results by pure functions and written atomically.

Every builder returns the whole file as text in a fixed order with fixed number
formatting and no timestamps, so the same results always give the same bytes:
a resumed run's outputs are identical to an uninterrupted run's.

Archive names may hold anything a filesystem allows. Per-photo files (YOLO labels,
annotated copies) keep the exact bytes; text outputs carry ``text_name``, which is
the path itself unless text cannot hold it, and CSV cells that a spreadsheet would
run as a formula get a leading quote (``csv_cell``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import os
import re
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from railvision.boxes import xyxy_to_yolo, yolo_text
from railvision.detections import Detections
from railvision.labelling.geo import to_lonlat
from railvision.labelling.records import LabelledImage, Results

FORMATS = ("yolo", "coco", "csv", "labelstudio", "cvat", "geojson")
TEMP_PREFIX = ".railvision-tmp-"
PER_PHOTO_SUFFIXES = (".txt", ".jpg")  # YOLO labels and annotated copies, put after each output stem
NAME_MAX = 255  # bytes in one file name on every common filesystem
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet may run as a formula (OWASP)
_UNWRITABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")  # not in XML 1.0 text
_LOOKS_ESCAPED = re.compile(r"\\x[0-9a-f]{2}")


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write via a temp file in the same folder and ``os.replace``: readers see the old or the new file, never half.

    An unchanged file is left alone (cheap on resume, and no needless writes over thousands of YOLO files).
    """
    payload = data.encode() if isinstance(data, str) else data
    if path.is_file() and path.stat().st_size == len(payload) and path.read_bytes() == payload:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(payload)
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def prune(folder: Path, keep: set[Path]) -> None:
    """Delete files under ``folder`` not in ``keep``: outputs of photos since removed, changed or failed,
    and temp files a killed run left behind."""
    if folder.is_dir():
        for path in folder.rglob("*"):
            if path.is_file() and path not in keep:
                path.unlink()


def _num(value: float, digits: int = 2) -> float:
    return round(float(value), digits)


def text_name(rel: str) -> str:
    """``rel`` as text outputs (JSON, XML, CSV, HTML) write it: as is unless text cannot hold it.

    A name that is not UTF-8 (undecodable bytes, kept by Python as surrogate escapes) or holds a character
    XML 1.0 forbids (controls other than tab, LF and CR; U+FFFE, U+FFFF) is written with each such byte as
    ``\\xNN`` and each backslash doubled; so is a name that already contains a backslash, ``x`` and two
    lowercase hex digits, so that no two names read the same. Reading back: a name with no ``\\xNN`` in it
    is the path; otherwise turn ``\\\\`` into ``\\`` and ``\\xNN`` into that byte, and decode the bytes
    as the filesystem does (``os.fsdecode``). Per-photo file names and the state keep the exact bytes.
    """
    if not _UNWRITABLE.search(rel) and not _LOOKS_ESCAPED.search(rel):
        return rel
    text = os.fsencode(rel).replace(b"\\", b"\\\\").decode("utf-8", "backslashreplace")
    return _UNWRITABLE.sub(lambda m: "".join(f"\\x{byte:02x}" for byte in m[0].encode()), text)


def csv_cell(text: str) -> str:
    """A text cell as CSV outputs write it: a leading quote before what a spreadsheet would run as a formula.

    A cell starting with a quote gets one more, so dropping one leading quote always gives the text back."""
    return "'" + text if text.startswith((*FORMULA_START, "'")) else text


def _csv(header: list[str], rows: Iterable[list[Any]]) -> str:
    """CSV text with LF line ends, and every cell holding a CR or LF quoted.

    The csv module quotes only for the line terminator's own characters: with LF alone a name holding a CR
    would stay bare and split its row, so each row is written with CR LF and its own end swapped."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    lines = []
    for row in itertools.chain([header], rows):
        writer.writerow(row)
        lines.append(buffer.getvalue().removesuffix("\r\n"))
        buffer.seek(0)
        buffer.truncate()
    return "".join(line + "\n" for line in lines)


def _json(data: Any) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def _stem(rel: str) -> str:
    return PurePosixPath(rel).with_suffix("").as_posix()


def _digest(rel: str) -> str:
    return hashlib.sha256(os.fsencode(rel)).hexdigest()[:10]


def _fit(name: str, rel: str) -> str:
    """``name``, its last part cut and marked with ``rel``'s digest where a suffix would take it past NAME_MAX."""
    last = name.rpartition("/")[2]
    room = NAME_MAX - max(len(suffix) for suffix in PER_PHOTO_SUFFIXES)
    if len(os.fsencode(last)) <= room:
        return name
    cut, mark = last, f"~{_digest(rel)}"
    while len(os.fsencode(cut + mark)) > room:
        cut = cut[:-1]
    return name[: len(name) - len(last)] + cut + mark


def _folders(rels: list[str]) -> set[str]:
    """Every folder that holds photos, at any depth, case-folded."""
    folders: set[str] = set()
    for rel in rels:
        folder = rel.casefold().rpartition("/")[0]
        while folder and folder not in folders:
            folders.add(folder)
            folder = folder.rpartition("/")[0]
    return folders


def _clashes(names: dict[str, str], folders: set[str]) -> set[str]:
    """Photos whose output name another photo's also is, or whose output file an output folder would be."""
    seen = Counter(name.casefold() for name in names.values())
    return {
        rel
        for rel, name in names.items()
        if seen[name.casefold()] > 1 or any((name + suffix).casefold() in folders for suffix in PER_PHOTO_SUFFIXES)
    }


def output_stems(rels: Iterable[str]) -> dict[str, str]:
    """Each photo's per-photo output name (YOLO txt, annotated copy) without suffix, mirroring the folders.

    ``a/b.jpg`` gives ``a/b``. Photos whose stems clash (``b.jpg``, ``b.png``; compared case-blind, for
    case-insensitive disks), or whose output file would be a folder's name (``b.png`` next to a folder
    ``b.jpg``), keep their extension instead (``a/b.jpg``, ``a/b.png``); any still clashing then (``b.jpg``
    next to ``b.jpg.jpg``) add a digest of their path (``b.jpg~1a2b3c4d5e``), and a last part too long for the
    filesystem once suffixed is cut and gets the digest, so that no photo's outputs overwrite another's.
    """
    rels = list(rels)
    folders = _folders(rels)
    names = {rel: _fit(_stem(rel), rel) for rel in rels}
    for keep in (lambda rel: rel, lambda rel: f"{rel}~{_digest(rel)}"):
        names |= {rel: _fit(keep(rel), rel) for rel in _clashes(names, folders)}
    return names


def shared_stems(stems: dict[str, str]) -> list[str]:
    """The photos whose outputs are not named by their stem because another photo or a folder has it."""
    return [rel for rel, name in stems.items() if name != _fit(_stem(rel), rel)]


def yolo_txt(detections: Detections) -> str:
    """``class cx cy w h`` per box, normalised to the image size."""
    return yolo_text(xyxy_to_yolo(detections.xyxy, *detections.image_size), detections.class_id)


def _boxes(image: LabelledImage) -> Iterable[tuple[list[float], float, int, str]]:
    """(xyxy rounded to 0.01 px, confidence rounded to 1e-4, class id, class name) of each box."""
    d = image.detections
    for box, conf, cls in zip(d.xyxy.tolist(), d.confidence.tolist(), d.class_id.tolist(), strict=True):
        yield [_num(v) for v in box], _num(conf, 4), cls, d.class_names[cls]


def coco_json(results: Results) -> str:
    """COCO detection results with the images and categories (ids from 1, in taxonomy order)."""
    images, annotations = [], []
    for index, image in enumerate(results.labelled, start=1):
        width, height = image.detections.image_size
        images.append({"id": index, "file_name": text_name(image.path), "width": width, "height": height})
        for (x1, y1, x2, y2), conf, cls, _ in _boxes(image):
            w, h = _num(x2 - x1), _num(y2 - y1)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": index,
                    "category_id": cls + 1,
                    "bbox": [x1, y1, w, h],
                    "area": _num(w * h),
                    "iscrowd": 0,
                    "score": conf,
                }
            )
    categories = [{"id": i + 1, "name": name, "supercategory": "railcar"} for i, name in enumerate(results.class_names)]
    info = {"description": "railvision label", "model": results.model_name}
    return _json({"info": info, "categories": categories, "images": images, "annotations": annotations})


def detections_csv(results: Results) -> str:
    rows = (
        [csv_cell(text_name(image.path)), cls, name, f"{conf:.4f}", *(f"{v:.2f}" for v in box)]
        for image in results.labelled
        for box, conf, cls, name in _boxes(image)
    )
    return _csv(["image", "class_id", "class_name", "confidence", "x1", "y1", "x2", "y2"], rows)


def counts_csv(results: Results) -> str:
    names = list(results.class_names)
    rows = (
        [
            csv_cell(text_name(image.path)),
            *image.detections.image_size,
            *image.detections.counts().values(),
            len(image.detections),
        ]
        for image in results.labelled
    )
    return _csv(["image", "width", "height", *names, "total"], rows)


def errors_csv(results: Results) -> str:
    rows = ([csv_cell(text_name(f.path)), f.kind, csv_cell(f.reason)] for f in results.failed)
    return _csv(["image", "kind", "reason"], rows)


def skipped_csv(results: Results) -> str:
    return _csv(["path", "reason"], ([csv_cell(text_name(s.rel)), csv_cell(s.reason)] for s in results.skipped))


def labelstudio_json(results: Results, url_prefix: str = "") -> str:
    """Label Studio tasks with pre-annotations (``predictions``) of ``rectanglelabels`` in percent.

    ``data.image`` is the photo's archive path (``text_name``), or ``url_prefix`` + the path's exact bytes
    URL-quoted, e.g. ``/data/local-files/?d=archive/`` for Label Studio's local file storage.
    """
    tasks = []
    for image in results.labelled:
        width, height = image.detections.image_size
        regions = [
            {
                "id": f"r{k}",
                "type": "rectanglelabels",
                "from_name": "label",
                "to_name": "image",
                "original_width": width,
                "original_height": height,
                "image_rotation": 0,
                "value": {
                    "x": _num(100 * x1 / width, 4),
                    "y": _num(100 * y1 / height, 4),
                    "width": _num(100 * (x2 - x1) / width, 4),
                    "height": _num(100 * (y2 - y1) / height, 4),
                    "rotation": 0,
                    "rectanglelabels": [name],
                },
                "score": conf,
            }
            for k, ((x1, y1, x2, y2), conf, _, name) in enumerate(_boxes(image))
        ]
        score = max((r["score"] for r in regions), default=0.0)
        prediction = {"model_version": results.model_name, "score": score, "result": regions}
        source = url_prefix + quote(os.fsencode(image.path)) if url_prefix else text_name(image.path)
        tasks.append({"data": {"image": source}, "predictions": [prediction]})
    return _json(tasks)


def cvat_xml(results: Results) -> str:
    """CVAT for images 1.1 annotations: one ``<image>`` per photo, one ``<box>`` per detection, its
    confidence kept as the read-only number attribute ``score`` (0 to 1) that each label declares."""
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    labels = ET.SubElement(ET.SubElement(ET.SubElement(root, "meta"), "task"), "labels")
    for name in results.class_names:
        label = ET.SubElement(labels, "label")
        ET.SubElement(label, "name").text = name
        ET.SubElement(label, "type").text = "rectangle"
        score = ET.SubElement(ET.SubElement(label, "attributes"), "attribute")
        for key, value in (("name", "score"), ("mutable", "False"), ("input_type", "number")):
            ET.SubElement(score, key).text = value
        ET.SubElement(score, "default_value").text = "0"
        ET.SubElement(score, "values").text = "0\n1\n0.0001"  # CVAT's number range: min, max, step
    for index, image in enumerate(results.labelled):
        width, height = image.detections.image_size
        node = ET.SubElement(
            root, "image", {"id": str(index), "name": text_name(image.path), "width": str(width), "height": str(height)}
        )
        for (x1, y1, x2, y2), conf, _, name in _boxes(image):
            corners = {"xtl": x1, "ytl": y1, "xbr": x2, "ybr": y2}
            attributes = {"label": name, "source": "auto", "occluded": "0", "z_order": "0"}
            box = ET.SubElement(node, "box", attributes | {k: f"{v:.2f}" for k, v in corners.items()})
            ET.SubElement(box, "attribute", {"name": "score"}).text = f"{conf:.4f}"
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def geojson(results: Results) -> str:
    """Boxes as polygons: lon/lat (EPSG:4326) for georeferenced GeoTIFFs, else pixel coordinates, flagged
    by the ``coordinates`` property (``"lonlat"`` or ``"pixel"``)."""
    features = []
    for image in results.labelled:
        for (x1, y1, x2, y2), conf, cls, name in _boxes(image):
            xs, ys = [x1, x1, x2, x2, x1], [y1, y2, y2, y1, y1]  # counter-clockwise once north is up
            if image.geo is not None:
                xs, ys = to_lonlat(image.geo, xs, ys)
                ring = [[_num(x, 8), _num(y, 8)] for x, y in zip(xs, ys, strict=True)]
            else:
                ring = [[x, y] for x, y in zip(xs, ys, strict=True)]
            properties = {
                "image": text_name(image.path),
                "class_id": cls,
                "class_name": name,
                "confidence": conf,
                "coordinates": "pixel" if image.geo is None else "lonlat",
            }
            geometry = {"type": "Polygon", "coordinates": [ring]}
            features.append({"type": "Feature", "geometry": geometry, "properties": properties})
    return _json({"type": "FeatureCollection", "features": features})


def _builders(formats: Iterable[str], labelstudio_prefix: str) -> dict[str, Any]:
    """Top-level output file -> the function that builds it from the results, for the chosen formats."""
    chosen = set(formats)
    files: dict[str, Any] = {"errors.csv": errors_csv, "skipped.csv": skipped_csv}
    if "coco" in chosen:
        files["coco.json"] = coco_json
    if "csv" in chosen:
        files |= {"detections.csv": detections_csv, "counts.csv": counts_csv}
    if "labelstudio" in chosen:
        files["labelstudio.json"] = partial(labelstudio_json, url_prefix=labelstudio_prefix)
    if "cvat" in chosen:
        files["cvat.xml"] = cvat_xml
    if "geojson" in chosen:
        files["detections.geojson"] = geojson
    return files


def output_names(formats: Iterable[str]) -> list[str]:
    """The top-level files (and the ``yolo`` folder) ``write_outputs`` writes for these formats."""
    return [*_builders(formats, ""), *(["yolo"] if "yolo" in set(formats) else [])]


def write_outputs(
    out: Path, results: Results, formats: Iterable[str] = FORMATS, *, labelstudio_prefix: str = ""
) -> None:
    """(Re)write every chosen output from the saved results; errors.csv and skipped.csv always."""
    for name, build in _builders(formats, labelstudio_prefix).items():
        write_atomic(out / name, build(results))
    for temp in out.glob(f"{TEMP_PREFIX}*"):  # left by a run killed mid-write
        temp.unlink()
    if "yolo" in set(formats):
        stems = output_stems(results.paths())
        labels = {out / "yolo" / f"{stems[image.path]}.txt": yolo_txt(image.detections) for image in results.labelled}
        for path, text in labels.items():
            write_atomic(path, text)
        prune(out / "yolo", set(labels))
