"""Tiny hand-built ONNX "oracle" detectors for fast, exact engine tests (no training, no torch).

The model boxes the pure-red pixels as ``tank_car`` and the pure-blue ones as
``closed_wagon`` (one box each, the extent of those pixels in the model input), in
either head format the engine supports, with the metadata our exporter writes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from railvision.taxonomy import CLASS_NAMES, TAXONOMY_VERSION

RED, BLUE = (0, 0, 255), (255, 0, 0)  # BGR colours the oracle sees
RED_CLASS, BLUE_CLASS = 1, 3


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def const(self, value: np.ndarray) -> str:
        name = f"c{self.count}"
        self.count += 1
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, kind: str, *inputs: str, **attrs: object) -> str:
        name = f"t{self.count}"
        self.count += 1
        self.nodes.append(helper.make_node(kind, list(inputs), [name], **attrs))
        return name


def _mask(g: _Graph, x: str, hot: int) -> str:
    """Float mask (N,1,H,W) of pixels whose channel ``hot`` is > 0.8 and the other two < 0.2."""
    parts = []
    for ch in range(3):
        plane = g.op("Slice", x, g.const(np.array([ch])), g.const(np.array([ch + 1])), g.const(np.array([1])))
        cmp = "Greater" if ch == hot else "Less"
        parts.append(g.op(cmp, plane, g.const(np.array(0.8 if ch == hot else 0.2, dtype=np.float32))))
    both = g.op("And", g.op("And", parts[0], parts[1]), parts[2])
    return g.op("Cast", both, to=TensorProto.FLOAT)


def _extent(g: _Graph, mask: str) -> tuple[str, str, str, str, str]:
    """x1, y1, x2, y2, score as (N,1) float tensors."""
    cols = g.op("ReduceMax", mask, g.const(np.array([1, 2])), keepdims=0)
    rows = g.op("ReduceMax", mask, g.const(np.array([1, 3])), keepdims=0)
    one = g.const(np.array(1.0, dtype=np.float32))

    def arg(t: str, last: int) -> str:
        return g.op("Cast", g.op("ArgMax", t, axis=1, keepdims=1, select_last_index=last), to=TensorProto.FLOAT)

    x1, x2 = arg(cols, 0), g.op("Add", arg(cols, 1), one)
    y1, y2 = arg(rows, 0), g.op("Add", arg(rows, 1), one)
    score = g.op("ReduceMax", mask, g.const(np.array([1, 2, 3])), keepdims=0)
    return x1, y1, x2, y2, g.op("Unsqueeze", score, g.const(np.array([1])))


def build_oracle(path: Path, head: str = "end2end", imgsz: int = 640, batch: int | str = "batch") -> Path:
    """Write the oracle ONNX with railvision metadata; ``batch`` is a fixed size or a symbolic name."""
    g = _Graph()
    objects = []
    for hot, cls in ((2, RED_CLASS), (0, BLUE_CLASS)):  # input is RGB: red is channel 0, blue channel 2
        x1, y1, x2, y2, score = _extent(g, _mask(g, "images", 0 if hot == 2 else 2))
        objects.append((x1, y1, x2, y2, score, cls))
    if head == "end2end":
        rows = []
        for x1, y1, x2, y2, score, cls in objects:
            cls_col = g.op("Mul", g.op("Add", score, g.const(np.array(1.0, dtype=np.float32))), g.const(np.float32(0)))
            cls_col = g.op("Add", cls_col, g.const(np.array(float(cls), dtype=np.float32)))
            rows.append(
                g.op("Unsqueeze", g.op("Concat", x1, y1, x2, y2, score, cls_col, axis=1), g.const(np.array([1])))
            )
        both = g.op("Concat", *rows, axis=1)
        pads = g.const(np.array([0, 0, 0, 0, 298, 0]))
        out = g.op("Pad", both, pads)
        out_shape = [batch, 300, 6]
    else:
        anchors = []
        for x1, y1, x2, y2, score, cls in objects:
            onehot = np.zeros((1, len(CLASS_NAMES)), dtype=np.float32)
            onehot[0, cls] = 1
            for shift, weight in ((0.0, 1.0), (2.0, 0.9)):  # a near-duplicate anchor NMS must remove
                s = g.const(np.array(shift, dtype=np.float32))
                half = g.const(np.array(0.5, dtype=np.float32))
                cx = g.op("Add", g.op("Mul", g.op("Add", x1, x2), half), s)
                cy = g.op("Mul", g.op("Add", y1, y2), half)
                w, h = g.op("Sub", x2, x1), g.op("Sub", y2, y1)
                scores = g.op("Mul", g.op("Mul", score, g.const(np.array(weight, dtype=np.float32))), g.const(onehot))
                row = g.op("Concat", cx, cy, w, h, scores, axis=1)
                anchors.append(g.op("Unsqueeze", row, g.const(np.array([2]))))
        out = g.op("Concat", *anchors, axis=2)
        out_shape = [batch, 4 + len(CLASS_NAMES), len(anchors)]
    g.nodes.append(helper.make_node("Identity", [out], ["output0"]))
    graph = helper.make_graph(
        g.nodes,
        "oracle",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, imgsz, imgsz])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, out_shape)],
        g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    meta = {
        "names": str(dict(enumerate(CLASS_NAMES))),
        "imgsz": str([imgsz, imgsz]),
        "stride": "32",
        "railvision_head": head,
        "railvision_taxonomy_version": TAXONOMY_VERSION,
    }
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path
