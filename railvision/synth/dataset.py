"""Writing the YOLO dataset: per-image generation (seeded by ``(seed, index)``), worker processes,
labels from the instance mask, ``data.yaml``, ``views.csv``, ``stats.json`` and preview sheets.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing as mp
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from railvision.boxes import Box, parse_yolo, xyxy_to_yolo, yolo_text, yolo_to_xyxy
from railvision.detections import Detections
from railvision.draw import draw_detections
from railvision.images import encode_jpeg
from railvision.synth import SynthError
from railvision.synth.geometry import scene_mesh
from railvision.synth.params import (
    MIN_BOX_PX,
    MIN_HAZE_TRANSMISSION,
    MIN_VISIBLE_FRACTION,
    NEGATIVE_FRACTION,
    SUPERSAMPLE,
    VIEW_WEIGHTS,
)
from railvision.synth.post import (
    Backgrounds,
    camera_effects,
    composite,
    ground_colour_for,
    haze_colour_for,
    jpeg_quality,
)
from railvision.synth.render import Renderer, RenderResult, cull_to_view, gl_context
from railvision.synth.scene import Scene, bend, make_scene
from railvision.taxonomy import CLASS_NAMES

VIEWS = ("ground", "overhead")
MANIFEST = "synth.json"
BOX_BINS = (0, 8, 16, 32, 64, 128, 256, 100000)  # sqrt(box area) in pixels


@dataclass(frozen=True)
class SynthConfig:
    out: Path
    n: int
    views: tuple[str, ...]
    seed: int = 0
    imgsz: int = 640
    val_fraction: float = 0.1
    backgrounds: Path | None = None
    clean_fraction: float = 0.0  # share of scenes without clutter or occluders (``scene.make_scene``)


@dataclass
class Sample:
    """One generated image before writing: pixels, YOLO boxes and where it came from."""

    image: np.ndarray  # uint8 BGR
    jpeg: bytes
    boxes: list[Box[int]]  # class id and pixel corners (x2, y2 exclusive)
    view: str
    scene: Scene
    instances: np.ndarray = field(repr=False)  # (imgsz, imgsz) instance ids after the final rotation


def is_val(index: int, val_fraction: float) -> bool:
    """Spread validation images evenly: exactly round-down(n * fraction) of the first n."""
    return int((index + 1) * val_fraction) > int(index * val_fraction)


def image_relpath(index: int, val_fraction: float) -> str:
    return f"images/{'val' if is_val(index, val_fraction) else 'train'}/{index:06d}.jpg"


def mask_boxes(instances: np.ndarray) -> dict[int, tuple[int, int, int, int, int]]:
    """Per instance id > 0: (x0, y0, x1, y1, pixel count), with x1/y1 exclusive, from the id mask."""
    ys, xs = np.nonzero(instances)
    if len(ys) == 0:
        return {}
    ids = instances[ys, xs]
    order = np.argsort(ids, kind="stable")
    ids, ys, xs = ids[order], ys[order], xs[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    counts = np.diff(np.r_[starts, len(ids)])
    x0, x1 = np.minimum.reduceat(xs, starts), np.maximum.reduceat(xs, starts)
    y0, y1 = np.minimum.reduceat(ys, starts), np.maximum.reduceat(ys, starts)
    return {
        int(ids[s]): (int(a), int(b), int(c) + 1, int(d) + 1, int(k))
        for s, a, b, c, d, k in zip(starts, x0, y0, x1, y1, counts, strict=True)
    }


def labels_from_render(scene: Scene, result: RenderResult, k_rot: int, size: int) -> tuple[list[Box[int]], np.ndarray]:
    """Boxes of the vehicles visible enough; the instance mask rotated like the image."""
    inst = np.ascontiguousarray(np.rot90(result.instances, k_rot))
    ss = inst.shape[0] / size
    boxes = []
    eye = np.asarray(scene.camera.eye)
    for iid, (x0, y0, x1, y1, count) in sorted(mask_boxes(inst).items()):
        if count < MIN_VISIBLE_FRACTION * result.full_area.get(iid, float("inf")):
            continue
        v = scene.vehicles[iid - 1]
        centre = bend(np.array([[v.x, v.y, 2.0]]), scene.curve)[0]
        if np.exp(-scene.haze_beta * np.linalg.norm(eye - centre)) < MIN_HAZE_TRANSMISSION:
            continue  # lost in the haze: no contrast left to see it by
        bx0, by0, bx1, by1 = x0 / ss, y0 / ss, x1 / ss, y1 / ss
        if min(bx1 - bx0, by1 - by0) < MIN_BOX_PX:
            continue
        boxes.append(Box(v.cls, bx0, by0, bx1, by1))
    return boxes, inst


class Generator:
    """Makes samples by index; holds one GL context (one per process)."""

    def __init__(self, cfg: SynthConfig) -> None:
        self.cfg = cfg
        self.renderer = Renderer(cfg.imgsz * SUPERSAMPLE)
        self.backgrounds = Backgrounds(cfg.backgrounds)

    def sample(self, index: int) -> Sample:
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, index])
        weights = np.asarray([VIEW_WEIGHTS[v] for v in cfg.views])
        view = cfg.views[int(rng.choice(len(cfg.views), p=weights / weights.sum()))]
        negative = bool(rng.random() < NEGATIVE_FRACTION)
        scene = cull_to_view(make_scene(rng, view, cfg.imgsz, negative, cfg.clean_fraction))
        post_rng = np.random.default_rng(scene.post_seed)
        background = self.backgrounds.sample(post_rng, view, cfg.imgsz, scene.notes.get("gsd_m", 0.0))
        haze = haze_colour_for(scene, background)
        if view == "ground":
            scene = replace(scene, ground_colour=ground_colour_for(scene, background))
        result = self.renderer.render(scene, scene_mesh(scene), haze)
        img = composite(scene, result, background, haze, post_rng, cfg.imgsz)
        k_rot = int(post_rng.integers(4)) if view == "overhead" else 0
        img = np.ascontiguousarray(np.rot90(img, k_rot))
        boxes, inst = labels_from_render(scene, result, k_rot, cfg.imgsz)
        bgr = camera_effects(scene, img, post_rng)
        return Sample(bgr, encode_jpeg(bgr, jpeg_quality(post_rng)), boxes, view, scene, inst)


# --------------------------------------------------------------------------- workers

_GENERATOR: Generator | None = None


def _init_worker(cfg: SynthConfig, threads: int) -> None:
    global _GENERATOR
    os.environ["LP_NUM_THREADS"] = str(threads)
    cv2.setNumThreads(1)
    _GENERATOR = Generator(cfg)


def _gl_problem() -> str | None:
    try:
        gl_context().release()
    except SynthError as exc:
        return str(exc)
    return None


def _write_one(index: int) -> dict:
    """Generate and write image ``index``; return its summary for the stats."""
    assert _GENERATOR is not None
    cfg = _GENERATOR.cfg
    s = _GENERATOR.sample(index)
    rel = image_relpath(index, cfg.val_fraction)
    (cfg.out / rel).write_bytes(s.jpeg)
    label = cfg.out / rel.replace("images/", "labels/", 1).replace(".jpg", ".txt")
    corners = [b[1:] for b in s.boxes]
    label.write_text(yolo_text(xyxy_to_yolo(corners, cfg.imgsz, cfg.imgsz), [b.label for b in s.boxes]))
    return {
        "image": rel,
        "view": s.view,
        "classes": [b.label for b in s.boxes],
        "sizes": [float(np.sqrt((b[3] - b[1]) * (b[4] - b[2]))) for b in s.boxes],
    }


# --------------------------------------------------------------------------- dataset


def prepare_out(out: Path, overwrite: bool) -> None:
    """Refuse a non-empty folder that is not an earlier synth output, unless ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise SynthError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file() and not overwrite:
        raise SynthError(
            f"--out {out} is a non-empty folder that is not a railvision synth dataset; "
            "choose another folder or pass --overwrite"
        )
    for name in ("images", "labels", "previews"):
        shutil.rmtree(out / name, ignore_errors=True)
    for split in ("train", "val"):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
    (out / "previews").mkdir(exist_ok=True)


def _stats(records: list[dict], n: int) -> dict:
    per_class = dict.fromkeys(CLASS_NAMES, 0)
    per_view: dict[str, dict] = {}
    sizes: list[float] = []
    for r in records:
        v = per_view.setdefault(r["view"], {"images": 0, "negatives": 0, "instances": dict.fromkeys(CLASS_NAMES, 0)})
        v["images"] += 1
        v["negatives"] += int(not r["classes"])
        for c in r["classes"]:
            per_class[CLASS_NAMES[c]] += 1
            v["instances"][CLASS_NAMES[c]] += 1
        sizes += r["sizes"]
    hist, _ = np.histogram(sizes, bins=BOX_BINS)
    return {
        "images": n,
        "instances": int(sum(per_class.values())),
        "instances_per_class": per_class,
        "images_per_view": {k: v["images"] for k, v in sorted(per_view.items())},
        "per_view": dict(sorted(per_view.items())),
        "negatives": sum(int(not r["classes"]) for r in records),
        "box_size_histogram": {
            "bins_sqrt_area_px": [f"{a}-{b}" if b < 100000 else f"{a}+" for a, b in itertools.pairwise(BOX_BINS)],
            "counts": [int(c) for c in hist],
        },
    }


def _write_meta(cfg: SynthConfig, records: list[dict]) -> dict:
    import yaml

    out = cfg.out
    data = {  # no "path": Ultralytics and our readers then resolve against this file, so the folder can move
        "train": "images/train",
        "val": "images/val",
        "names": dict(enumerate(CLASS_NAMES)),
        "view_file": "views.csv",
    }
    (out / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    (out / "views.csv").write_text("image,view\n" + "".join(f"{r['image']},{r['view']}\n" for r in records))
    stats = _stats(records, cfg.n)
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    manifest = {
        "generator": "railvision synth",
        "n": cfg.n,
        "views": list(cfg.views),
        "seed": cfg.seed,
        "imgsz": cfg.imgsz,
        "val_fraction": cfg.val_fraction,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return stats


def write_previews(cfg: SynthConfig, records: list[dict], sheets: int = 3, grid: int = 4, tile: int = 400) -> None:
    """Contact sheets of the first images of each view with their labels drawn."""
    by_view = {v: [r for r in records if r["view"] == v] for v in cfg.views}
    picks: list[list[dict]] = []
    for view, recs in by_view.items():
        for s in range(sheets if len(cfg.views) == 1 else max(1, sheets - 1) if view == "ground" else 1):
            chunk = recs[s * grid * grid : (s + 1) * grid * grid]
            if chunk:
                picks.append(chunk)
    for k, chunk in enumerate(picks):
        canvas = np.zeros((grid * tile, grid * tile, 3), np.uint8)
        for j, r in enumerate(chunk):
            img = cv2.resize(cv2.imread(str(cfg.out / r["image"])), (tile, tile), interpolation=cv2.INTER_AREA)
            label = cfg.out / r["image"].replace("images/", "labels/", 1).replace(".jpg", ".txt")
            cls, cxcywh = parse_yolo(label.read_text())
            truth = Detections(yolo_to_xyxy(cxcywh, tile, tile), np.ones(len(cls)), cls, (tile, tile))
            tile_img = draw_detections(img, truth, confidence=False)
            y, x = divmod(j, grid)
            canvas[y * tile : (y + 1) * tile, x * tile : (x + 1) * tile] = tile_img
        cv2.imwrite(
            str(cfg.out / "previews" / f"sheet_{k:02d}_{chunk[0]['view']}.jpg"), canvas, [cv2.IMWRITE_JPEG_QUALITY, 85]
        )


def generate(
    cfg: SynthConfig,
    workers: int = 1,
    overwrite: bool = False,
    progress: Callable[[int, int, float], None] | None = None,
) -> dict:
    """Write the whole dataset; returns the stats. Identical bytes for any ``workers``."""
    if cfg.n <= 0:
        raise SynthError("--n must be a positive number of images")
    # Rendering happens only in spawned workers, never in the caller: Mesa's software GL driver loads its
    # own LLVM, which crashes a later torch/Triton import in the same process (e.g. `train --synthetic`).
    spawn = mp.get_context("spawn")
    with spawn.Pool(1) as probe:  # fail here, clearly, rather than in every worker
        if problem := probe.apply(_gl_problem):
            raise SynthError(problem)
    prepare_out(cfg.out, overwrite)
    records: list[dict] = []
    start = time.monotonic()
    last = start
    threads = max(1, (os.cpu_count() or 1) // workers)
    with spawn.Pool(workers, initializer=_init_worker, initargs=(cfg, threads)) as pool:
        results = pool.imap(_write_one, range(cfg.n), chunksize=1)
        for rec in results:
            records.append(rec)
            now = time.monotonic()
            if progress and (now - last > 5.0 or len(records) == cfg.n):
                progress(len(records), cfg.n, now - start)
                last = now
    stats = _write_meta(cfg, records)
    write_previews(cfg, records)
    return stats


def print_progress(done: int, total: int, elapsed: float) -> None:
    rate = done / max(elapsed, 1e-9)
    eta = (total - done) / max(rate, 1e-9)
    print(f"synth: {done}/{total} images, {rate:.2f} images/s, ETA {eta:.0f} s", file=sys.stderr, flush=True)
