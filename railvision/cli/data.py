"""``railvision data``: import foreign annotation exports to YOLO, and check YOLO datasets."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from railvision.data import PARSERS, SEVERITY, check_dataset, import_dataset, parse_mapping, split_dataset


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    imp = sub.add_parser("import", help="convert a COCO / VOC / CVAT / Label Studio export to a YOLO dataset")
    imp.add_argument("--format", choices=list(PARSERS), required=True)
    imp.add_argument("src", type=Path, help="the export: JSON / XML file (VOC: a folder of XML files or one file)")
    imp.add_argument("--images", type=Path, required=True, help="folder holding the images the export refers to")
    imp.add_argument("--out", type=Path, required=True, help="new folder for the YOLO dataset")
    imp.add_argument(
        "--map",
        help='label mapping onto the taxonomy, e.g. "boxcar=closed_wagon,tank=tank_car" ("X=ignore": ignore region)',
    )
    imp.add_argument("--unmapped-to-other", action="store_true", help="unmapped labels become other_railcar")
    imp.add_argument("--val-fraction", type=float, default=0.2, help="share of images put in the val split")
    imp.add_argument("--seed", type=int, default=0, help="seed of the train/val split")

    spl = sub.add_parser("split", help="split a dataset into K photos to fine-tune on and the rest to score on")
    spl.add_argument("data", type=Path, help="data.yaml")
    spl.add_argument("--train", type=int, required=True, metavar="K", help="number of photos to train on")
    spl.add_argument("--out", type=Path, required=True, help="new folder for the split dataset (copies)")
    spl.add_argument("--seed", type=int, default=0, help="seed of the random choice")
    spl.add_argument("--split", default="val", help="the split of DATA to draw from (default val)")

    chk = sub.add_parser("check", help="report what would make training go wrong; exit 1 if anything would")
    chk.add_argument("data", type=Path, help="data.yaml")
    chk.add_argument("--fix", type=Path, metavar="OUTDIR", help="write a repaired copy into this new folder")


def run(args: argparse.Namespace) -> int:
    return {"import": run_import, "check": run_check, "split": run_split}[args.action](args)


def run_split(args: argparse.Namespace) -> int:
    data_yaml = split_dataset(args.data, args.train, args.out, args.seed, args.split)
    counts = {part: len(list((args.out / "images" / part).iterdir())) for part in ("train", "val")}
    print(f"wrote {data_yaml}: {counts['train']} train and {counts['val']} val images (seed {args.seed})")
    return 0


def run_import(args: argparse.Namespace) -> int:
    report = import_dataset(
        args.format,
        args.src,
        args.images,
        args.out,
        parse_mapping(args.map),
        args.unmapped_to_other,
        args.val_fraction,
        args.seed,
    )
    for name in report.missing_images:
        print(f"warning: image not found under {args.images}: {name}", file=sys.stderr)
    print(f"wrote {report.data_yaml}: " + ", ".join(f"{n} {s} images" for s, n in sorted(report.images.items())))
    for name, n in sorted(report.instances.items()):
        print(f"  {name:<20}{n:>7}")
    if report.ignore_regions:
        print(f"  {'ignore regions':<20}{report.ignore_regions:>7}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    report = check_dataset(args.data, args.fix)
    for issue in report.issues:
        print(f"{issue.severity:<8}{issue.kind:<20}{issue.file}  {issue.detail}")
    names = report.dataset.names
    splits = sorted(report.images)
    print(f"\n{'class':<20}" + "".join(f"{s:>8}" for s in splits))
    for name in names:
        print(f"{name:<20}" + "".join(f"{report.instances.get(s, Counter())[name]:>8}" for s in splits))
    print(f"{'images':<20}" + "".join(f"{report.images[s]:>8}" for s in splits))
    kinds = Counter(i.kind for i in report.issues)
    errors = sum(n for k, n in kinds.items() if SEVERITY[k] == "error")
    print("\n" + (", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "no problems found"))
    if args.fix:
        print(f"repaired copy: {args.fix / 'data.yaml'}")
    if errors:
        print(f"{errors} error(s): training on this dataset would go wrong", file=sys.stderr)
    return 0 if report.ok else 1
