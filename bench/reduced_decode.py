"""What decoding large JPEGs at reduced size (DCT scaling, the engine's default) costs in accuracy.

    python bench/reduced_decode.py [--data ../shared/realdev/data.yaml] [--scales 2 4] [--model M.onnx]

Each photo of a labelled set is enlarged 2x and 4x (bicubic, saved as JPEG quality 92), standing in for
the high-resolution photos users have, then detected twice by the same engine: decoded whole (and resized
by the letterbox, as before) and decoded at 1/2 or 1/4 scale in the DCT domain. Prints box agreement
(the whole decode's boxes at the model's threshold found again, same class, IoU >= 0.5), mean IoU, and
mAP50 / class-agnostic AP50 of both on the set's own labels (normalised, so they fit the enlarged photos).
Speed is bench/latency.py's business.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import cv2

import railvision.engine as engine
from railvision.agreement import Comparison, compare
from railvision.engine import Detector
from railvision.evaluate import _to_dataset_classes, agnostic_ap50, group_metrics, load_truth
from railvision.images import load_frame, load_image

REALDEV = Path("../shared/realdev/data.yaml")


def enlarged_set(data: Path, scale: int, out: Path) -> Path:
    """A copy of the set's val split with every photo enlarged ``scale`` times; its data.yaml."""
    truths, _ = load_truth(data)
    (out / "images").mkdir(parents=True)
    shutil.copytree(truths[0].image.parent.parent / "labels", out / "labels")
    for truth in truths:
        image = load_image(truth.image)
        big = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(out / "images" / f"{truth.image.stem}.jpg"), big, [cv2.IMWRITE_JPEG_QUALITY, 92])
    text = data.read_text()
    (out / "data.yaml").write_text(text)
    return out / "data.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REALDEV)
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    if not args.data.is_file():
        raise SystemExit(f"no labelled set at {args.data} (pass --data)")
    detector = Detector(args.model, device="cpu", conf=0.001)
    conf = float(detector.metadata.get("conf", 0.25))
    whole_decode = lambda source, fit, max_pixels=None: load_frame(source, None, max_pixels)  # noqa: E731
    for scale in args.scales:
        with tempfile.TemporaryDirectory(prefix="rv-reduced-") as tmp:
            data = enlarged_set(args.data, scale, Path(tmp))
            truths, names = load_truth(data)
            runs = {}
            for mode, loader in (("whole", whole_decode), ("reduced", load_frame)):
                engine.load_frame = loader  # the same engine path; only the decoding differs
                runs[mode] = [detector.detect(t.image) for t in truths]
                engine.load_frame = load_frame
            agreement = Comparison()
            for whole, reduced in zip(runs["whole"], runs["reduced"], strict=True):
                agreement.add(compare(whole, reduced, conf))
            size = truths[0].size
            print(f"\n{args.data.parent.name} enlarged {scale}x (e.g. {size[0]}x{size[1]}), {len(truths)} photos:")
            print(f"  reduced vs whole decode at conf {conf:g}: {agreement.summary()}")
            for mode, dets in runs.items():
                dets = [_to_dataset_classes(d, names) for d in dets]
                metrics = group_metrics(truths, dets, len(names), conf).summary()
                print(f"  {mode:8s} mAP50 {metrics['mAP50']:.3f}  agnostic AP50 {agnostic_ap50(truths, dets):.3f}")


if __name__ == "__main__":
    main()
