"""Importers round-trip boxes from each foreign format; ``data check`` finds each defect kind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from toy_data import draw, make_dataset, random_boxes

from railvision.cli import main
from railvision.data import check_dataset, ignore_path, import_dataset, label_path, load_dataset, parse_mapping
from railvision.taxonomy import CLASS_NAMES

# Foreign label names of the test exports and how --map sends them onto the taxonomy.
FOREIGN = {0: "loco", 1: "tank", 2: "flat_covered", 3: "boxcar", 4: "hopper"}
MAPPING = "loco=diesel_locomotive,tank=tank_car,flat_covered=covered_flatbed,boxcar=closed_wagon,hopper=other_railcar"
W, H = 200, 120


@pytest.fixture
def foreign_images(tmp_path: Path) -> dict[str, list[tuple[int, ...]]]:
    """Four images in tmp_path/src_images with known pixel boxes (class, x1, y1, x2, y2)."""
    rng = np.random.default_rng(1)
    (tmp_path / "src_images").mkdir()
    truth = {}
    for i in range(4):
        boxes = random_boxes(rng, W, H, [0, 1, 2, 3, 4][i : i + 3])
        cv2.imwrite(str(tmp_path / "src_images" / f"photo_{i}.jpg"), draw(boxes, W, H, i))
        truth[f"photo_{i}.jpg"] = boxes
    return truth


def write_coco(truth: dict, path: Path) -> None:
    images = [{"id": i, "file_name": name, "width": W, "height": H} for i, name in enumerate(truth)]
    boxes = [(i, *b) for i, image_boxes in enumerate(truth.values()) for b in image_boxes]
    anns = [
        {"id": k, "image_id": i, "category_id": c + 10, "bbox": [x1, y1, x2 - x1, y2 - y1], "iscrowd": 0}
        for k, (i, c, x1, y1, x2, y2) in enumerate(boxes)
    ]
    cats = [{"id": c + 10, "name": n} for c, n in FOREIGN.items()]
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))


def write_voc(truth: dict, folder: Path) -> None:
    folder.mkdir()
    for name, boxes in truth.items():
        objects = "".join(
            f"<object><name>{FOREIGN[c]}</name><difficult>0</difficult><bndbox><xmin>{x1 + 1}</xmin>"
            f"<ymin>{y1 + 1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
            for c, x1, y1, x2, y2 in boxes
        )
        xml = f"<annotation><filename>{name}</filename><size><width>{W}</width><height>{H}</height>"
        (folder / f"{Path(name).stem}.xml").write_text(f"{xml}<depth>3</depth></size>{objects}</annotation>")


def write_cvat(truth: dict, path: Path) -> None:
    images = "".join(
        f'<image id="{i}" name="{name}" width="{W}" height="{H}">'
        + "".join(
            f'<box label="{FOREIGN[c]}" occluded="0" source="manual" xtl="{x1:.2f}" ytl="{y1:.2f}" '
            f'xbr="{x2:.2f}" ybr="{y2:.2f}" z_order="0"></box>'
            for c, x1, y1, x2, y2 in boxes
        )
        + "</image>"
        for i, (name, boxes) in enumerate(truth.items())
    )
    path.write_text(f'<?xml version="1.0" encoding="utf-8"?><annotations><version>1.1</version>{images}</annotations>')


def write_labelstudio(truth: dict, path: Path) -> None:
    """Predictions-style tasks (what the labeller writes); Label Studio prefixes uploads with 8 hex chars."""

    def region(c, x1, y1, x2, y2):
        value = {"x": x1 / W * 100, "y": y1 / H * 100, "width": (x2 - x1) / W * 100, "height": (y2 - y1) / H * 100}
        return {
            "from_name": "label",
            "to_name": "image",
            "type": "rectanglelabels",
            "original_width": W,
            "original_height": H,
            "value": value | {"rotation": 0, "rectanglelabels": [FOREIGN[c]]},
        }

    tasks = [
        {
            "data": {"image": f"/data/upload/1/{i:08x}-{name}"},
            "predictions": [{"model_version": "railvision", "result": [region(*b) for b in boxes]}],
        }
        for i, (name, boxes) in enumerate(truth.items())
    ]
    path.write_text(json.dumps(tasks))


WRITERS = {"coco": (write_coco, "a.json"), "voc": (write_voc, "voc"), "cvat": (write_cvat, "a.xml")}
WRITERS["labelstudio"] = (write_labelstudio, "ls.json")


def imported_boxes(data_yaml: Path) -> dict[str, list[tuple[int, ...]]]:
    """Pixel boxes per image file name, read back from a YOLO dataset."""
    out = {}
    for images in load_dataset(data_yaml).splits.values():
        for image in images:
            rows = np.loadtxt(label_path(image), ndmin=2)
            boxes = [
                (int(c), (x - w / 2) * W, (y - h / 2) * H, (x + w / 2) * W, (y + h / 2) * H) for c, x, y, w, h in rows
            ]
            out[image.name] = boxes
    return out


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_import_round_trips_boxes(fmt: str, foreign_images: dict, tmp_path: Path) -> None:
    writer, name = WRITERS[fmt]
    writer(foreign_images, tmp_path / name)
    out = tmp_path / "out"
    src = ["--format", fmt, str(tmp_path / name), "--images", str(tmp_path / "src_images")]
    assert main(["data", "import", *src, "--out", str(out), "--map", MAPPING]) == 0
    got = imported_boxes(out / "data.yaml")
    assert sorted(got) == sorted(foreign_images)
    for image, boxes in foreign_images.items():
        assert len(got[image]) == len(boxes)
        for expected, actual in zip(sorted(boxes), sorted(got[image]), strict=True):
            assert actual[0] == expected[0]
            np.testing.assert_allclose(actual[1:], expected[1:], atol=1e-3)
    assert main(["data", "check", str(out / "data.yaml")]) == 0


def test_unmapped_labels_are_listed_or_sent_to_other(foreign_images: dict, tmp_path: Path, capsys) -> None:
    write_coco(foreign_images, tmp_path / "a.json")
    args = ["data", "import", "--format", "coco", str(tmp_path / "a.json"), "--images", str(tmp_path / "src_images")]
    assert main([*args, "--out", str(tmp_path / "o1"), "--map", "tank=tank_car"]) == 2
    err = capsys.readouterr().err
    assert "boxcar" in err and "hopper" in err and "loco" in err
    assert main([*args, "--out", str(tmp_path / "o2"), "--map", "tank=tank_car", "--unmapped-to-other"]) == 0
    classes = {int(c) for b in imported_boxes(tmp_path / "o2" / "data.yaml").values() for c, *_ in b}
    assert classes == {CLASS_NAMES.index("tank_car"), CLASS_NAMES.index("other_railcar")}


def test_ignore_label_goes_to_sidecar(foreign_images: dict, tmp_path: Path) -> None:
    write_cvat(foreign_images, tmp_path / "a.xml")
    mapping = parse_mapping(MAPPING.replace("hopper=other_railcar", "hopper=ignore"))
    report = import_dataset("cvat", tmp_path / "a.xml", tmp_path / "src_images", tmp_path / "out", mapping)
    hoppers = sum(c == 4 for boxes in foreign_images.values() for c, *_ in boxes)
    assert report.ignore_regions == hoppers > 0
    assert "other_railcar" not in report.instances
    images = [i for imgs in load_dataset(tmp_path / "out" / "data.yaml").splits.values() for i in imgs]
    assert sum(len(ignore_path(i).read_text().splitlines()) for i in images if ignore_path(i).is_file()) == hoppers


def test_bad_mapping_target_is_rejected() -> None:
    with pytest.raises(ValueError, match="TARGET"):
        parse_mapping("boxcar=wagon")


@pytest.fixture
def broken_dataset(tmp_path: Path) -> Path:
    """A generated dataset with one instance of every defect ``data check`` knows."""
    data_yaml, _ = make_dataset(tmp_path / "ds", {"train": 6, "val": 2})
    train = tmp_path / "ds" / "images" / "train"
    labels = tmp_path / "ds" / "labels" / "train"
    (train / "train_0.png").write_bytes(b"not an image at all")  # unreadable_image
    shutil.copy(train / "train_1.png", train / "train_1_copy.png")  # duplicate_image
    (labels / "orphan.txt").write_text("1 0.5 0.5 0.1 0.1\n")  # label_without_image
    (labels / "train_2.txt").write_text("1 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.2 0.2\n")  # unknown_class
    (labels / "train_3.txt").write_text("1 1.2 0.5 0.2 0.2\n")  # out_of_range_box
    (labels / "train_4.txt").write_text("1 0.5 0.5 0.0 0.2\n3 0.95 0.5 0.2 0.2\n")  # degenerate_box, box_past_edge
    (labels / "train_5.txt").write_text("1 0.5 0.5\n")  # bad_label
    (tmp_path / "ds" / "val.txt").write_text("./images/val/val_0.png\n./images/val/missing.png\n")  # missing_image
    data_yaml.write_text(data_yaml.read_text().replace("val: images/val", "val: val.txt"))
    return data_yaml


def test_check_finds_every_defect_kind(broken_dataset: Path, tmp_path: Path, capsys) -> None:
    report = check_dataset(broken_dataset)
    kinds = {i.kind for i in report.issues}
    assert kinds == {
        "unreadable_image",
        "duplicate_image",
        "label_without_image",
        "unknown_class",
        "out_of_range_box",
        "degenerate_box",
        "box_past_edge",
        "bad_label",
        "missing_image",
    }
    assert main(["data", "check", str(broken_dataset)]) == 1
    out = capsys.readouterr().out
    assert "train_3.txt" in out and "tank_car" in out  # per-file lines and the instance table

    fixed = tmp_path / "fixed"
    before = sorted(p.name for p in (broken_dataset.parent).rglob("*"))
    assert main(["data", "check", str(broken_dataset), "--fix", str(fixed)]) == 1  # reports the original
    assert sorted(p.name for p in (broken_dataset.parent).rglob("*")) == before  # nothing touched in place
    repaired = check_dataset(fixed / "data.yaml")
    assert repaired.ok, [(i.kind, i.file) for i in repaired.issues]
    assert repaired.images["train"] == 5 and repaired.images["val"] == 1  # unreadable and duplicate dropped


def test_check_exits_zero_on_a_clean_dataset(tmp_path: Path) -> None:
    data_yaml, _ = make_dataset(tmp_path, {"train": 2, "val": 1})
    assert main(["data", "check", str(data_yaml)]) == 0


def test_split_moves_ignore_to_sidecars_and_is_seeded(tmp_path: Path, capsys) -> None:
    """A realdev-like set (classes 0-4 plus 'ignore' as class 5) split into 3 train and 2 val photos."""
    data_yaml, truth = make_dataset(tmp_path / "src", {"val": 5}, classes=(1, 3))
    data_yaml.write_text(data_yaml.read_text().replace("  4: other_railcar\n", "  4: other_railcar\n  5: ignore\n"))
    for image in truth:  # the closed_wagon (class 3) box of each photo becomes class 5, ignore
        path = label_path(image)
        path.write_text(path.read_text().replace("\n3 ", "\n5 "))
    out = tmp_path / "split"
    assert main(["data", "split", str(data_yaml), "--train", "3", "--out", str(out), "--seed", "7"]) == 0
    assert "3 train and 2 val images (seed 7)" in capsys.readouterr().out
    split = load_dataset(out / "data.yaml")
    assert split.names == list(CLASS_NAMES) and len(split.splits["train"]) == 3 and len(split.splits["val"]) == 2
    for image in split.splits["train"] + split.splits["val"]:
        assert [row[0] for row in (line.split() for line in label_path(image).read_text().splitlines())] == ["1"]
        assert len(ignore_path(image).read_text().split()) == 4  # the former class-5 box, now a region
    again = tmp_path / "again"
    assert main(["data", "split", str(data_yaml), "--train", "3", "--out", str(again), "--seed", "7"]) == 0
    assert sorted(p.name for p in (again / "images" / "train").iterdir()) == sorted(
        p.name for p in split.splits["train"]
    )
    assert main(["data", "split", str(data_yaml), "--train", "5", "--out", str(tmp_path / "x")]) == 2
    assert "between 1 and 4" in capsys.readouterr().err


def test_repeat_factors_by_hand() -> None:
    """Class 0 in all 10 images, class 1 in one: at threshold 0.4 class 1's share 0.1 gives sqrt(0.4 / 0.1) = 2;
    class 0 (share 1) and an image without boxes stay at 1; an image's factor is its rarest class's."""
    from railvision.data import repeat_factors

    factors = repeat_factors([{0}] * 8 + [{0, 1}, {0}], 0.4)
    assert factors.tolist() == [1.0] * 8 + [2.0, 1.0]
    assert repeat_factors([{0}, set()], 0.4).tolist() == [1.0, 1.0]
    assert repeat_factors([{0}, {1}, {1}, {1}], 0.5).tolist() == pytest.approx([np.sqrt(2), 1, 1, 1])


def test_write_repeated_lists_rare_photos_more_often(tmp_path: Path) -> None:
    from railvision.data import write_repeated

    data, _ = make_dataset(tmp_path / "ds", {"train": 6, "val": 2}, classes=(0,))
    rare = sorted(load_dataset(data).splits["train"])[0]  # one photo of six also shows class 3
    label_path(rare).write_text(label_path(rare).read_text() + "3 0.5 0.5 0.1 0.1\n")

    out, entries = write_repeated(data, 0.6, tmp_path / "rep")  # class 3: sqrt(0.6 / (1/6)) = 1.90
    train = load_dataset(out).splits["train"]
    assert entries == len(train) in (6, 7)  # the rare photo once or twice (1.90 rounded at random), the rest once
    assert train.count(rare.resolve()) == entries - 5
    assert load_dataset(out).splits["val"] == load_dataset(data).splits["val"]
    assert write_repeated(data, 0.6, tmp_path / "again")[1] == entries  # seeded
