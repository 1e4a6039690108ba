"""``report.html``: one self-contained page (inline CSS, thumbnails as data URIs) that opens offline."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import cv2

from railvision.draw import draw_detections
from railvision.errors import ImageError
from railvision.images import encode_jpeg, load_image
from railvision.labelling.outputs import text_name, write_atomic
from railvision.labelling.records import LabelledImage, Results

TOP_PHOTOS = 50  # rows in the table of photos with the most detections
THUMBNAILS = 24  # of those, how many are shown with their boxes
THUMB_WIDTH = 360

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; width: 360px; }
figure img { width: 100%; }
figcaption { font-size: 0.85em; word-break: break-all; }
"""


def top_photos(results: Results, limit: int = TOP_PHOTOS) -> list[LabelledImage]:
    """Photos with the most detections first (ties by path), photos with none left out."""
    ranked = sorted((i for i in results.labelled if len(i.detections)), key=lambda i: (-len(i.detections), i.path))
    return ranked[:limit]


def thumbnail(root: Path, image: LabelledImage) -> str | None:
    """JPEG data URI of the photo with its boxes drawn, or ``None`` when it cannot be read any more."""
    try:
        frame = draw_detections(load_image(root / image.path), image.detections)
    except (ImageError, OSError):
        return None
    scale = THUMB_WIDTH / frame.shape[1]
    frame = cv2.resize(frame, (THUMB_WIDTH, max(1, round(frame.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    return "data:image/jpeg;base64," + base64.b64encode(encode_jpeg(frame, 80)).decode()


def _table(header: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render(root: Path, results: Results) -> str:
    names = list(results.class_names)
    totals = dict.fromkeys(names, 0)
    for image in results.labelled:
        for name, n in image.detections.counts().items():
            totals[name] += n
    top = top_photos(results)
    figures = []
    for image in top[:THUMBNAILS]:
        uri = thumbnail(root, image)
        if uri is not None:
            caption = f"{text_name(image.path)}: {len(image.detections)} detections"
            figures.append(f'<figure><img src="{uri}" alt=""><figcaption>{html.escape(caption)}</figcaption></figure>')
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8"><title>railvision label report</title>',
            f"<style>{STYLE}</style></head><body>",
            "<h1>railvision label report</h1>",
            f"<p>model {html.escape(results.model_name)}: {len(results.labelled)} photos labelled, "
            f"{len(results.failed)} failed, {len(results.skipped)} files skipped.</p>",
            "<h2>Detections per class</h2>",
            _table(["class", "detections"], [*([n, totals[n]] for n in names), ["total", sum(totals.values())]]),
            "<h2>Photos with the most detections</h2>",
            _table(
                ["photo", *names, "total"],
                [[text_name(i.path), *i.detections.counts().values(), len(i.detections)] for i in top],
            ),
            "<h2>Thumbnails</h2>",
            f'<div class="grid">{"".join(figures)}</div>',
            "</body></html>",
            "",
        ]
    )


def write_report(path: Path, root: Path, results: Results) -> None:
    write_atomic(path, render(root, results))
