"""The labeller's output files, built from saved results by pure functions and written atomically.

Every builder returns the whole file as text in a fixed order with fixed number
formatting and no timestamps, so the same results always give the same bytes:
a resumed run's outputs are identical to an uninterrupted run's.
"""

from __future__ import annotations

import csv
import io
import json
import os
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


def _csv(header: list[str], rows: Iterable[list[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _json(data: Any) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def output_stems(rels: Iterable[str]) -> dict[str, str]:
    """Each photo's per-photo output name (YOLO txt, annotated copy) without suffix, mirroring the folders.

    ``a/b.jpg`` gives ``a/b``. Photos that differ only in extension (``b.jpg``, ``b.png``; compared
    case-blind, for case-insensitive disks) keep it instead (``a/b.jpg``, ``a/b.png``), so that no
    photo's labels overwrite another's.
    """
    stems = {rel: PurePosixPath(rel).with_suffix("").as_posix() for rel in rels}
    seen = Counter(stem.casefold() for stem in stems.values())
    return {rel: rel if seen[stem.casefold()] > 1 else stem for rel, stem in stems.items()}


def shared_stems(stems: dict[str, str]) -> list[str]:
    """The photos whose outputs keep their extension because another photo has the same name."""
    return [rel for rel, stem in stems.items() if stem == rel and PurePosixPath(rel).suffix]


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
        images.append({"id": index, "file_name": image.path, "width": width, "height": height})
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
        [image.path, cls, name, f"{conf:.4f}", *(f"{v:.2f}" for v in box)]
        for image in results.labelled
        for box, conf, cls, name in _boxes(image)
    )
    return _csv(["image", "class_id", "class_name", "confidence", "x1", "y1", "x2", "y2"], rows)


def counts_csv(results: Results) -> str:
    names = list(results.class_names)
    rows = (
        [image.path, *image.detections.image_size, *image.detections.counts().values(), len(image.detections)]
        for image in results.labelled
    )
    return _csv(["image", "width", "height", *names, "total"], rows)


def errors_csv(results: Results) -> str:
    return _csv(["image", "kind", "reason"], ([f.path, f.kind, f.reason] for f in results.failed))


def skipped_csv(results: Results) -> str:
    return _csv(["path", "reason"], ([s.rel, s.reason] for s in results.skipped))


def labelstudio_json(results: Results, url_prefix: str = "") -> str:
    """Label Studio tasks with pre-annotations (``predictions``) of ``rectanglelabels`` in percent.

    ``data.image`` is the photo's archive path, or ``url_prefix`` + the URL-quoted path, e.g.
    ``/data/local-files/?d=archive/`` for Label Studio's local file storage.
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
        source = url_prefix + quote(image.path) if url_prefix else image.path
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
            root, "image", {"id": str(index), "name": image.path, "width": str(width), "height": str(height)}
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
                "image": image.path,
                "class_id": cls,
                "class_name": name,
                "confidence": conf,
                "coordinates": "pixel" if image.geo is None else "lonlat",
            }
            geometry = {"type": "Polygon", "coordinates": [ring]}
            features.append({"type": "Feature", "geometry": geometry, "properties": properties})
    return _json({"type": "FeatureCollection", "features": features})


def write_outputs(
    out: Path, results: Results, formats: Iterable[str] = FORMATS, *, labelstudio_prefix: str = ""
) -> None:
    """(Re)write every chosen output from the saved results; errors.csv and skipped.csv always."""
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
    for name, build in files.items():
        write_atomic(out / name, build(results))
    for temp in out.glob(f"{TEMP_PREFIX}*"):  # left by a run killed mid-write
        temp.unlink()
    if "yolo" in chosen:
        stems = output_stems(results.paths())
        labels = {out / "yolo" / f"{stems[image.path]}.txt": yolo_txt(image.detections) for image in results.labelled}
        for path, text in labels.items():
            write_atomic(path, text)
        prune(out / "yolo", set(labels))
