"""INT8 copies of exported models: onnxruntime static quantisation (QDQ), calibrated on photos.

Every operator onnxruntime can quantise runs in INT8 (VNNI on x86): convolutions, and the SiLU,
additions, concatenations and pooling between them, so tensors stay INT8 from one convolution to
the next (quantising the convolutions alone leaves a dequantise-quantise pair around every
activation and ran slower than FP32 here). The head's tail stays FP32: its output convolutions
(box, kind and gate logits) and the arithmetic after them, whose outputs are read as coordinates
and scores directly, where a quantisation step is a visible error. A copy is kept only
if it finds the FP32 file's boxes again on the calibration photos (``check``); its accuracy on
labelled sets is measured with ``railvision eval`` like any model. Whether it pays depends on the
CPU: for the default model on a 2-core AVX-512 VNNI machine it did not (models/railvision-n.md).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from railvision.agreement import Comparison, compare_models
from railvision.engine import Detector, write_metadata
from railvision.images import iter_images, load_frame

# The INT8 copy is kept only if, on the calibration images, at least this share of the FP32 file's boxes
# (conf >= CHECK_CONF) are found again by the INT8 file (same class, IoU >= 0.5), with this mean IoU.
MIN_RECALL = 0.9
MIN_MEAN_IOU = 0.9
CHECK_CONF = 0.25
CALIB_IMAGES = 96  # onnxruntime's MinMax ranges settle within a few dozen varied photos


@dataclass
class Quantized:
    path: Path | None  # None: removed again, the check failed
    check: Comparison
    calibrated_on: int

    @property
    def recall(self) -> float:
        return len(self.check.ious) / self.check.compared if self.check.compared else 0.0

    def summary(self) -> str:
        return f"{self.check.summary()}, recall {self.recall:.3f} (calibrated on {self.calibrated_on} images)"


def int8_path(fp32: Path) -> Path:
    """``NAME.onnx`` -> ``NAME-int8.onnx``, beside it."""
    return fp32.with_name(f"{fp32.stem}-int8.onnx")


def calibration_images(folders: Sequence[Path], count: int = CALIB_IMAGES, seed: int = 0) -> list[Path]:
    """``count`` photos drawn evenly from each folder (synthetic scenes and real photos alike), seeded."""
    pools = [iter_images(folder) for folder in folders]
    if empty := [str(f) for f, pool in zip(folders, pools, strict=True) if not pool]:
        raise ValueError(f"no images in {', '.join(empty)}")
    rng = random.Random(seed)
    share = -(-count // len(pools))
    return [p for pool in pools for p in rng.sample(pool, min(share, len(pool)))][:count]


def head_float_nodes(model) -> list[str]:
    """Names of the nodes of the head (the last layer) kept in FP32: all but its convolution + SiLU units
    (a Conv read by a Sigmoid and a Mul), so the box, kind and gate logits and the arithmetic after them."""
    readers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    layers = [n.name.split("/")[1] for n in model.graph.node if n.name.startswith("/model.")]
    head = f"/{max(layers, key=lambda layer: int(layer.split('.')[1]))}/"
    units = set()
    for node in model.graph.node:
        after = readers.get(node.output[0], []) if node.op_type == "Conv" else []
        if {"Sigmoid", "Mul"} <= {r.op_type for r in after}:
            units.update([node.name, *(r.name for r in after)])
    return [n.name for n in model.graph.node if n.name.startswith(head) and n.name not in units]


def quantize(fp32: Path, calib: Sequence[Path], out: Path | None = None, check: bool = True) -> Quantized:
    """Write the INT8 copy of ``fp32`` (default ``int8_path``), calibrated on ``calib`` photos
    letterboxed exactly as the engine feeds them; removed again if ``check`` finds it drifted."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    out = out or int8_path(fp32)
    detector = Detector(fp32, device="cpu", conf=CHECK_CONF)
    name = detector.input_name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.paths = iter(calib)

        def get_next(self) -> dict[str, np.ndarray] | None:
            path = next(self.paths, None)
            return None if path is None else {name: detector.prepare(load_frame(path, detector.imgsz))[0][None]}

    quantize_static(
        str(fp32),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        nodes_to_exclude=head_float_nodes(onnx.load(str(fp32))),
        calibration_providers=["CPUExecutionProvider"],
    )
    write_metadata(out, {**detector.metadata, "railvision_precision": "int8"})
    result = Quantized(out, agreement(detector, Detector(out, device="cpu", conf=CHECK_CONF), calib), len(calib))
    if check and (result.recall < MIN_RECALL or result.check.mean_iou < MIN_MEAN_IOU):
        out.unlink()
        result.path = None
    return result


def agreement(fp32: Detector, int8: Detector, paths: Sequence[Path]) -> Comparison:
    """How many of the FP32 detector's confident boxes the INT8 one finds again, photo by photo."""
    return compare_models((fp32.detect(p) for p in paths), (int8.detect(p) for p in paths), CHECK_CONF)
