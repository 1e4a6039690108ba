"""YOLO datasets: reading them, importing foreign annotation formats, and checking them.

Layout (Ultralytics'): ``data.yaml`` names the class list and, per split, image folders
(or ``.txt`` lists of images); each image's labels are ``labels/...stem.txt`` beside
``images/...`` with one ``class cx cy w h`` line per box, normalised to [0, 1].

Ignore regions (a class named ``ignore`` in a foreign file, or ``iscrowd`` in COCO)
must not be trained on as a class, so the importers write them to ``ignore/...stem.txt``
(``cx cy w h`` per line) beside ``images/``. ``railvision eval`` reads them back, and
also treats boxes of a dataset class literally named ``ignore`` the same way.
Training cannot use ignore regions: Ultralytics sees them as background.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import shutil
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

from railvision.boxes import Box, clip_xyxy, parse_yolo, xyxy_to_yolo, yolo_text, yolo_to_xyxy
from railvision.errors import ImageError
from railvision.images import iter_images, load_image, photo_size
from railvision.taxonomy import CLASS_NAMES, OTHER

IGNORE = "ignore"
SPLITS = ("train", "val", "test")
EDGE_TOLERANCE = 0.01  # boxes reaching this far past the image edge are only clipped, not reported


# --- reading a YOLO dataset -------------------------------------------------------------------------


@dataclass
class Dataset:
    yaml_path: Path
    root: Path
    names: list[str]
    splits: dict[str, list[Path]]  # split -> image paths (files listed in a .txt may be missing)
    view_file: Path | None = None


def _split_sources(spec: dict, split: str) -> list[str]:
    entries = spec.get(split) or []
    return [entries] if isinstance(entries, str) else list(entries)


def _split_images(root: Path, entries: list[str]) -> list[Path]:
    images: list[Path] = []
    for entry in entries:
        path = root / entry
        if path.suffix == ".txt":  # a list of image paths, relative to the dataset root
            lines = (line.strip() for line in path.read_text().splitlines())
            images += [root / line for line in lines if line]
        elif path.is_dir():
            images += iter_images(path)
        else:
            images.append(path)
    return images


def _root(yaml_path: Path, spec: dict) -> Path:
    root = Path(spec.get("path") or ".")
    return root if root.is_absolute() else (yaml_path.parent / root).resolve()


def split_entries(data_yaml: str | Path, split: str) -> list[Path]:
    """A split's entries (folders, list files or images) as absolute paths, resolved as ``load_dataset`` does:
    for writing a data.yaml that trains on several sets at once."""
    import yaml

    yaml_path = Path(data_yaml)
    spec = yaml.safe_load(yaml_path.read_text()) or {}
    root = _root(yaml_path, spec)
    return [(root / entry).resolve() for entry in _split_sources(spec, split)]


def load_dataset(data_yaml: str | Path) -> Dataset:
    """Read ``data.yaml``; relative ``path`` and split entries resolve against the yaml's folder."""
    import yaml

    yaml_path = Path(data_yaml)
    spec = yaml.safe_load(yaml_path.read_text()) or {}
    if "names" not in spec:
        raise ValueError(f"{yaml_path}: no 'names' (class list)")
    root = _root(yaml_path, spec)
    names = spec["names"]
    names = [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)
    splits = {s: _split_images(root, _split_sources(spec, s)) for s in SPLITS if spec.get(s)}
    view_file = root / spec["view_file"] if spec.get("view_file") else None
    return Dataset(yaml_path, root, names, splits, view_file)


def sibling_path(image: Path, folder: str) -> Path:
    """Ultralytics' image -> label rule (last ``/images/`` -> ``/<folder>/``, suffix ``.txt``)."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = folder
            break
    return Path(*parts).with_suffix(".txt")


def label_path(image: Path) -> Path:
    return sibling_path(image, "labels")


def ignore_path(image: Path) -> Path:
    return sibling_path(image, IGNORE)


def read_label_lines(path: Path) -> list[list[str]]:
    if not path.is_file():
        return []
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


def read_yolo(path: Path, with_class: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A label file's (class ids, ``cx cy w h``), or with ``with_class=False`` an ignore sidecar's;
    none when the file is missing (an image without boxes)."""
    return parse_yolo(path.read_text() if path.is_file() else "", with_class)


def read_views(dataset: Dataset) -> dict[Path, str]:
    """Image path -> view from the dataset's ``view_file`` CSV (``image,view``), empty when there is none."""
    import csv

    if dataset.view_file is None or not dataset.view_file.is_file():
        return {}
    with dataset.view_file.open(newline="") as f:
        return {(dataset.root / row["image"]).resolve(): row["view"] for row in csv.DictReader(f)}


# --- importing foreign formats ------------------------------------------------------------------------


@dataclass
class ImageLabels:
    """One image of a foreign annotation file, boxes in pixels."""

    name: str  # as the file records it: a path or file name
    width: int | None
    height: int | None
    boxes: list[Box[str]] = field(default_factory=list)


def parse_coco(src: Path) -> list[ImageLabels]:
    coco = json.loads(src.read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    images = {im["id"]: ImageLabels(im["file_name"], im.get("width"), im.get("height")) for im in coco["images"]}
    for ann in coco.get("annotations", []):
        x, y, w, h = ann["bbox"]
        label = IGNORE if ann.get("iscrowd") else names[ann["category_id"]]
        images[ann["image_id"]].boxes.append(Box(label, x, y, x + w, y + h))
    return list(images.values())


def parse_voc(src: Path) -> list[ImageLabels]:
    """Pascal VOC XML (a file or a folder of them); VOC pixel indices are 1-based and inclusive."""
    files = sorted(src.glob("*.xml")) if src.is_dir() else [src]
    result = []
    for file in files:
        root = ET.parse(file).getroot()
        size = root.find("size")
        item = ImageLabels(
            root.findtext("filename", ""),
            int(float(size.findtext("width"))) if size is not None else None,
            int(float(size.findtext("height"))) if size is not None else None,
        )
        for obj in root.iter("object"):
            bb = obj.find("bndbox")
            xmin, ymin, xmax, ymax = (float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
            item.boxes.append(Box(obj.findtext("name", "").strip(), xmin - 1, ymin - 1, xmax, ymax))
        result.append(item)
    return result


def parse_cvat(src: Path) -> list[ImageLabels]:
    """CVAT for images 1.1 XML: ``<image name width height><box label xtl ytl xbr ybr/>``."""
    result = []
    for image in ET.parse(src).getroot().iter("image"):
        item = ImageLabels(
            image.get("name", ""), int(image.get("width", 0)) or None, int(image.get("height", 0)) or None
        )
        for box in image.iter("box"):
            coords = (float(box.get(k)) for k in ("xtl", "ytl", "xbr", "ybr"))
            item.boxes.append(Box(box.get("label", ""), *coords))
        result.append(item)
    return result


def parse_labelstudio(src: Path) -> list[ImageLabels]:
    """Label Studio JSON export (or predictions import file): ``rectanglelabels`` in percent of the image.

    A task's human ``annotations`` are used when it has any, else its ``predictions``.
    """
    tasks = json.loads(src.read_text())
    result = []
    for task in tasks if isinstance(tasks, list) else [tasks]:
        data = task.get("data", {})
        name = data.get("image") or next(v for v in data.values() if isinstance(v, str))
        item = ImageLabels(name, None, None)
        sets = task.get("annotations") or task.get("predictions") or []
        for region in sets[0]["result"] if sets else []:
            if region.get("type") != "rectanglelabels":
                continue
            value = region["value"]
            if value.get("rotation"):
                raise ValueError(f"{src}: rotated rectangle in task {task.get('id')} is not supported")
            w, h = region["original_width"], region["original_height"]
            item.width, item.height = w, h
            x1, y1 = value["x"] / 100 * w, value["y"] / 100 * h
            x2, y2 = x1 + value["width"] / 100 * w, y1 + value["height"] / 100 * h
            item.boxes += [Box(label, x1, y1, x2, y2) for label in value["rectanglelabels"]]
        result.append(item)
    return result


PARSERS: dict[str, Callable[[Path], list[ImageLabels]]] = {
    "coco": parse_coco,
    "voc": parse_voc,
    "cvat": parse_cvat,
    "labelstudio": parse_labelstudio,
}


def parse_mapping(spec: str | None) -> dict[str, str]:
    """``"boxcar=closed_wagon,tank=tank_car"`` -> dict; targets must be taxonomy classes or ``ignore``."""
    mapping = {}
    for item in (spec or "").split(","):
        if not item.strip():
            continue
        source, sep, target = item.partition("=")
        target = target.strip()
        if not sep or target not in (*CLASS_NAMES, IGNORE):
            raise ValueError(f"bad mapping {item!r}: use SOURCE=TARGET with TARGET in {', '.join(CLASS_NAMES)}, ignore")
        mapping[source.strip()] = target
    return mapping


def resolve_labels(labels: Iterable[str], mapping: dict[str, str], unmapped_to_other: bool = False) -> dict[str, str]:
    """Foreign label -> taxonomy name (or ``ignore``); unknown labels are an error listing them all."""
    resolved, unknown = {}, []
    for label in sorted(set(labels)):
        if label in mapping:
            resolved[label] = mapping[label]
        elif label in CLASS_NAMES or label == IGNORE:
            resolved[label] = label
        elif unmapped_to_other:
            resolved[label] = OTHER
        else:
            unknown.append(label)
    if unknown:
        raise ValueError(
            f"labels not in the taxonomy and not mapped: {', '.join(unknown)}; "
            f'add them to --map (e.g. --map "{unknown[0]}=closed_wagon") or pass --unmapped-to-other'
        )
    return resolved


def _find_images(images_dir: Path) -> dict[str, Path]:
    """Image lookup by relative path and by bare file name."""
    found: dict[str, Path] = {}
    for path in iter_images(images_dir):
        found.setdefault(path.relative_to(images_dir).as_posix(), path)
        found.setdefault(path.name, path)
    return found


def _locate(name: str, index: dict[str, Path]) -> Path | None:
    """The image a tool's reference names: a relative path, a bare name, a URL path, or a Label Studio
    local-files URL (``/data/local-files/?d=folder/a%201.jpg``)."""
    raw = name.replace("\\", "/")
    url = urlsplit(raw)
    base = parse_qs(url.query).get("d", [unquote(url.path)])[0]
    for candidate in (raw, base):  # raw first: a file name may hold "#" or "?"
        parts = candidate.strip("/").split("/")
        for key in ("/".join(parts[i:]) for i in range(len(parts))):  # longest matching tail first
            if key in index:
                return index[key]
    # Label Studio uploads are stored as "<8 hex>-<original name>"
    stem = base.rsplit("/", 1)[-1]
    prefix, _, rest = stem.partition("-")
    return index.get(rest) if len(prefix) == 8 and rest else None


def _unique_name(rel: Path, taken: set[str]) -> Path:
    """Where an imported photo goes under its split: its own folders and name, renamed (``a.png`` ->
    ``a_png.png``) only where another photo would share its label file (same name but for the extension)."""
    tag = f"{rel.stem}_{rel.suffix[1:]}"
    numbered = (rel.with_stem(f"{tag}_{k}") for k in itertools.count(2))
    for candidate in itertools.chain([rel, rel.with_stem(tag)], numbered):
        key = candidate.with_suffix("").as_posix().casefold()
        if key not in taken:
            taken.add(key)
            return candidate
    raise AssertionError("unreachable: the numbered names never run out")


def _inside(boxes: list[Box[str]], width: int, height: int) -> tuple[list[str], np.ndarray]:
    """(labels, pixel corners) of the boxes cut to the image, corners put in order (tools differ on which
    comes first); boxes with no area left inside are dropped."""
    xyxy = np.array([b[1:] for b in boxes], dtype=np.float64).reshape(-1, 4)
    ordered = np.concatenate([np.minimum(xyxy[:, :2], xyxy[:, 2:]), np.maximum(xyxy[:, :2], xyxy[:, 2:])], axis=1)
    xyxy = clip_xyxy(ordered, width, height)
    keep = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
    return [b.label for b, k in zip(boxes, keep, strict=True) if k], xyxy[keep]


def write_data_yaml(out: Path, names: Iterable[str], splits: Iterable[str], extra: dict | None = None) -> Path:
    """``out/data.yaml`` with each of ``splits`` in ``images/SPLIT``; ``extra`` keys (other split entries too)
    go in as given."""
    import yaml

    spec = {s: f"images/{s}" for s in splits} | {"names": dict(enumerate(names))} | (extra or {})
    path = out / "data.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def repeat_factors(image_classes: list[set[int]], threshold: float) -> np.ndarray:
    """LVIS repeat-factor sampling (Gupta et al., 2019): each image's weight is the largest, over its classes,
    of ``max(1, sqrt(threshold / f_c))``, where ``f_c`` is the share of images showing class ``c``.

    Among a few dozen of one's own photos a kind may appear in two or three; fine-tuning then learns to call it
    something else (the model card's few-shot table). Images without boxes keep weight 1."""
    counts = Counter(c for classes in image_classes for c in classes)
    n = max(len(image_classes), 1)
    rate = {c: max(1.0, float(np.sqrt(threshold * n / k))) for c, k in counts.items()}
    return np.array([max((rate[c] for c in classes), default=1.0) for classes in image_classes])


def write_repeated(data_yaml: str | Path, threshold: float, out: Path, seed: int = 0) -> tuple[Path, int]:
    """A data.yaml whose train split lists each image ``repeat_factors`` times (rounded at random, seeded);
    the other splits as they were. Returns it and the number of training entries."""
    dataset = load_dataset(data_yaml)
    images = dataset.splits.get("train", [])
    classes = [set(read_yolo(label_path(image))[0].astype(int).tolist()) for image in images]
    factors = repeat_factors(classes, threshold)
    rng = np.random.default_rng(seed)
    repeats = np.floor(factors).astype(int) + (rng.random(len(factors)) < factors % 1)
    out.mkdir(parents=True, exist_ok=True)
    listing = [str(image.resolve()) for image, r in zip(images, repeats, strict=True) for _ in range(r)]
    (out / "train.txt").write_text("\n".join(listing) + "\n")
    layout: dict[str, object] = {"train": str((out / "train.txt").resolve())}
    layout |= {
        s: [str(p) for p in split_entries(data_yaml, s)] for s in SPLITS if s != "train" and dataset.splits.get(s)
    }
    return write_data_yaml(out, dataset.names, (), layout), len(listing)


def split_dataset(data_yaml: str | Path, n_train: int, out: Path, seed: int = 0, split: str = "val") -> Path:
    """Copy ``n_train`` randomly chosen images of ``split`` into ``out``'s train split and the rest into val.

    For fine-tuning on a few of one's own photos and scoring on the others. A dataset class named
    ``ignore`` moves to ``ignore/`` sidecar files, so training never learns it as a class while
    evaluation still leaves those regions out; class ids follow the taxonomy by name."""
    dataset = load_dataset(data_yaml)
    images = sorted(dataset.splits.get(split, []))
    if not 0 < n_train < len(images):
        raise ValueError(f"--train must be between 1 and {len(images) - 1} ({len(images)} {split} images)")
    unknown = [n for n in dataset.names if n not in (*CLASS_NAMES, IGNORE)]
    if unknown:
        raise ValueError(f"classes {unknown} are not in the taxonomy ({', '.join(CLASS_NAMES)}) nor {IGNORE!r}")
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} exists and is not empty")
    chosen = set(np.random.default_rng(seed).choice(len(images), n_train, replace=False).tolist())
    for i, image in enumerate(images):
        part = "train" if i in chosen else "val"
        target = out / "images" / part / image.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(image, target)
        labels, ignores = [], [" ".join(row) for row in read_label_lines(ignore_path(image))]
        for row in read_label_lines(label_path(image)):
            name = dataset.names[int(row[0])]
            if name == IGNORE:
                ignores.append(" ".join(row[1:]))
            else:
                labels.append(" ".join([str(CLASS_NAMES.index(name)), *row[1:]]))
        for folder, lines in (("labels", labels), (IGNORE, ignores)):
            path = sibling_path(target, folder)
            if lines or folder == "labels":
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("".join(f"{line}\n" for line in lines))
    return write_data_yaml(out, CLASS_NAMES, ("train", "val"), {"seed": seed, "source": str(data_yaml)})


@dataclass
class ImportReport:
    data_yaml: Path
    images: Counter  # per split
    instances: Counter  # per class name
    ignore_regions: int
    missing_images: list[str]


def import_dataset(
    fmt: str,
    src: Path,
    images_dir: Path,
    out: Path,
    mapping: dict[str, str] | None = None,
    unmapped_to_other: bool = False,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> ImportReport:
    """Convert a COCO / VOC / CVAT / Label Studio export into a YOLO dataset with the package classes."""
    if fmt not in PARSERS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(PARSERS)}")
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} exists and is not empty; choose a new folder")
    items = PARSERS[fmt](src)
    resolved = resolve_labels((b.label for item in items for b in item.boxes), mapping or {}, unmapped_to_other)
    index = _find_images(images_dir)
    rng = random.Random(seed)
    report = ImportReport(out / "data.yaml", Counter(), Counter(), 0, [])
    taken: set[str] = set()
    for item in items:
        image = _locate(item.name, index)
        if image is None:
            report.missing_images.append(item.name)
            continue
        width, height = item.width, item.height
        if not width or not height:
            width, height = photo_size(image)
        split = "val" if rng.random() < val_fraction else "train"
        target = out / "images" / split / _unique_name(image.relative_to(images_dir), taken)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(image, target)
        report.images[split] += 1
        boxes = [b._replace(label=resolved[b.label]) for b in item.boxes]
        names, xyxy = _inside(boxes, width, height)
        ignored = np.array([n == IGNORE for n in names], dtype=bool)
        classes = [CLASS_NAMES.index(n) for n in names if n != IGNORE]
        labels = yolo_text(xyxy_to_yolo(xyxy[~ignored], width, height), classes)
        ignores = yolo_text(xyxy_to_yolo(xyxy[ignored], width, height))
        report.instances.update(b.label for b in boxes if b.label != IGNORE)
        report.ignore_regions += int(ignored.sum())
        for path, text in ((label_path(target), labels), (ignore_path(target), ignores)):
            if text or path == label_path(target):
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    write_data_yaml(out, CLASS_NAMES, sorted(report.images))
    return report


# --- checking a dataset --------------------------------------------------------------------------------

# What each defect means for training: errors make Ultralytics drop or mis-train data, warnings do not.
SEVERITY = {
    "missing_image": "error",  # listed in a .txt split but not on disk
    "unreadable_image": "error",
    "bad_label": "error",  # a line that is not "class cx cy w h" numbers
    "unknown_class": "error",  # class id outside data.yaml names
    "out_of_range_box": "error",  # a coordinate outside [0, 1]: Ultralytics discards the whole image
    "empty_split": "error",
    "degenerate_box": "warning",  # zero width or height: teaches nothing
    "box_past_edge": "warning",  # reaches past the image edge; clipped
    "label_without_image": "warning",
    "duplicate_image": "warning",  # same bytes twice; across train/val it inflates validation scores
}


@dataclass
class Issue:
    kind: str
    file: Path
    detail: str = ""

    @property
    def severity(self) -> str:
        return SEVERITY[self.kind]


@dataclass
class CheckReport:
    dataset: Dataset
    issues: list[Issue]
    instances: dict[str, Counter]  # split -> class name -> boxes
    images: Counter  # split -> images

    @property
    def ok(self) -> bool:
        return not any(i.severity == "error" for i in self.issues)


@dataclass
class _LabelFile:
    rows: list[tuple[int, np.ndarray]]  # usable (class, cx cy w h), clipped to the image
    issues: list[Issue]


def _check_label_file(path: Path, num_classes: int) -> _LabelFile:
    rows, issues = [], []
    for n, parts in enumerate(read_label_lines(path), 1):
        try:
            values = np.array([float(v) for v in parts[1:]], dtype=np.float64)
            cls = int(float(parts[0]))
        except ValueError:
            values, cls = np.zeros(0), -1
        if len(parts) != 5 or values.size != 4 or not np.isfinite(values).all():
            issues.append(Issue("bad_label", path, f"line {n}: {' '.join(parts)!r}"))
            continue
        if not 0 <= cls < num_classes:
            issues.append(Issue("unknown_class", path, f"line {n}: class {cls} (names has {num_classes})"))
            continue
        edges = yolo_to_xyxy(values, 1, 1)[0]  # corners, normalised
        x1, y1, x2, y2 = edges.clip(0, 1)
        degenerate = x2 - x1 <= 1e-6 or y2 - y1 <= 1e-6
        if (values < 0).any() or (values > 1).any():
            kind = "out_of_range_box"
        elif degenerate:
            kind = "degenerate_box"
        elif (edges < -EDGE_TOLERANCE).any() or (edges > 1 + EDGE_TOLERANCE).any():
            kind = "box_past_edge"
        else:
            kind = None
        if kind:
            issues.append(Issue(kind, path, f"line {n}: {' '.join(parts[1:])}"))
        if degenerate:  # nothing left inside the image: --fix drops it
            continue
        rows.append((cls, xyxy_to_yolo([[x1, y1, x2, y2]], 1, 1)[0]))
    return _LabelFile(rows, issues)


def check_dataset(data_yaml: str | Path, fix: Path | None = None) -> CheckReport:
    """Find what would make training go wrong; with ``fix``, write a repaired copy there (never in place)."""
    dataset = load_dataset(data_yaml)
    if fix is not None and fix.exists() and any(fix.iterdir()):
        raise ValueError(f"{fix} exists and is not empty; --fix writes into a new folder")
    issues: list[Issue] = []
    instances: dict[str, Counter] = defaultdict(Counter)
    images: Counter = Counter()
    seen: dict[str, Path] = {}
    kept: dict[str, list[Path]] = defaultdict(list)  # split -> images written by --fix
    for split in SPLITS:
        if split not in dataset.splits:
            continue
        if not dataset.splits[split]:
            issues.append(Issue("empty_split", dataset.yaml_path, f"split {split!r} has no images"))
        listed = set()
        for image in dataset.splits[split]:
            listed.add(label_path(image).resolve())
            if not image.is_file():
                issues.append(Issue("missing_image", image))
                continue
            data = image.read_bytes()
            try:
                load_image(data)
            except ImageError as exc:
                issues.append(Issue("unreadable_image", image, str(exc)))
                continue
            digest = hashlib.sha256(data).hexdigest()
            if digest in seen:
                issues.append(Issue("duplicate_image", image, f"same content as {seen[digest]}"))
                continue
            seen[digest] = image
            labels = _check_label_file(label_path(image), len(dataset.names))
            issues += labels.issues
            images[split] += 1
            instances[split].update(dataset.names[c] for c, _ in labels.rows)
            if fix is not None:
                kept[split].append(_write_fixed(dataset, image, labels.rows, fix))
        issues += [
            Issue("label_without_image", path)
            for folder in {label_path(i).parent for i in dataset.splits[split]}
            if folder.is_dir()
            for path in sorted(folder.glob("*.txt"))
            if path.resolve() not in listed
        ]
    if fix is not None:
        _write_fixed_yaml(dataset, kept, fix)
    return CheckReport(dataset, issues, dict(instances), images)


def _write_fixed(dataset: Dataset, image: Path, rows: list[tuple[int, np.ndarray]], out: Path) -> Path:
    """Copy one image (keeping its path below the dataset root) with its usable, clipped boxes."""
    target = out / image.resolve().relative_to(dataset.root)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(image, target)
    label = label_path(target)
    label.parent.mkdir(parents=True, exist_ok=True)
    label.write_text(yolo_text(np.array([box for _, box in rows]), [c for c, _ in rows]))
    if ignore_path(image).is_file():
        ignore_path(target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ignore_path(image), ignore_path(target))
    return target


def _write_fixed_yaml(dataset: Dataset, kept: dict[str, list[Path]], out: Path) -> None:
    """Splits of the repaired copy as ``<split>.txt`` lists of the images kept (any source layout works)."""
    import yaml

    spec = yaml.safe_load(dataset.yaml_path.read_text())
    spec.pop("path", None)
    for split, images in kept.items():
        (out / f"{split}.txt").write_text("".join(f"./{p.relative_to(out).as_posix()}\n" for p in images))
        spec[split] = f"{split}.txt"
    if dataset.view_file and dataset.view_file.is_file():
        shutil.copy2(dataset.view_file, out / spec["view_file"])
    (out / "data.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
