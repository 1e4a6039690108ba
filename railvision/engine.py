"""The inference engine: an exported railvision ONNX model on onnxruntime, no PyTorch.

``Detector`` reads everything it needs (class names, input size, stride, head type)
from the model's own metadata, preprocesses exactly like Ultralytics (so the same
weights give the same boxes), runs real batches where the model allows it and, for
large scenes, slices the image into overlapping tiles.
"""

from __future__ import annotations

import ast
import hashlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import cv2
import numpy as np
import onnxruntime as ort

from railvision import tiling
from railvision.boxes import clip_xyxy, nms
from railvision.detections import Detections
from railvision.errors import DeviceUnavailableError, ModelError
from railvision.images import Frame, ImageSource, load_frame
from railvision.options import LIBRARY_DEFAULTS, DetectOptions
from railvision.taxonomy import CLASS_NAMES

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
PAD_VALUE = 114  # Ultralytics' letterbox grey
MAX_NMS = 30000  # candidates kept before NMS, as Ultralytics
CLASS_OFFSET = 7680  # per-class box offset that makes one NMS class-aware, as Ultralytics


def read_metadata(model_path: str | os.PathLike) -> dict[str, str]:
    """An ONNX model's ``metadata_props`` (loads the model once on the CPU)."""
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    return dict(session.get_modelmeta().custom_metadata_map)


def write_metadata(onnx_path: Path, extra: dict[str, str]) -> None:
    """Add or replace ``metadata_props`` entries of an ONNX file in place."""
    import onnx

    model = onnx.load(str(onnx_path))
    kept = [p for p in model.metadata_props if p.key not in extra]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in extra.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(onnx_path))


# The models in models/, by the short names ``--model`` takes.
SHIPPED_MODELS = {
    "default": "railvision-n.onnx",
    # not shipped (on a 2-core AVX-512 VNNI CPU it was no faster: models/railvision-n.md); made beside the
    # default by ``railvision quantize default --calib DIR``
    "int8": "railvision-n-int8.onnx",
    "synth": "railvision-n-synth.onnx",  # the earlier synthetic-only model, for overhead crops
}
DEFAULT_MODEL = MODELS_DIR / SHIPPED_MODELS["default"]


def find_model(model: str | os.PathLike | None) -> Path:
    """A model file, or one in models/ by its short name (``SHIPPED_MODELS``); ``None``: ``$RAILVISION_MODEL``
    (a path or a short name), else the shipped ``models/railvision-n.onnx``."""
    if model is None:
        model = os.environ.get("RAILVISION_MODEL", "default")
    path = Path(model)
    if not path.is_file() and str(model) in SHIPPED_MODELS:
        path = MODELS_DIR / SHIPPED_MODELS[str(model)]
    if not path.is_file():
        names = ", ".join(SHIPPED_MODELS)
        hint = "; make it with: railvision quantize default --calib DIR" if str(model) == "int8" else ""
        raise ModelError(
            f"model not found: {model} (a .onnx file, or one in models/ by name: {names}; "
            f"or set RAILVISION_MODEL){hint}"
        )
    return path


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How an image was fitted into the model input, to map boxes back."""

    gain_x: float
    gain_y: float
    pad_x: int
    pad_y: int


def fit_shape(height: int, width: int, size_hw: tuple[int, int], stride: int | None = None) -> tuple[int, int]:
    """Model-input (h, w) for an image: ``size_hw``, or with ``stride`` the smallest stride-aligned
    rectangle that holds the resized image (Ultralytics' ``auto`` letterbox, for dynamic-shape models)."""
    if stride is None:
        return size_hw
    r = min(size_hw[0] / height, size_hw[1] / width)
    new_w, new_h = max(round(width * r), 1), max(round(height * r), 1)
    return new_h + (size_hw[0] - new_h) % stride, new_w + (size_hw[1] - new_w) % stride


def letterbox(
    image: np.ndarray, size_hw: tuple[int, int], stride: int | None = None, source_wh: tuple[int, int] | None = None
) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping aspect ratio and pad with grey: Ultralytics' centred ``LetterBox``.

    Pads to ``size_hw``, or only up to a multiple of ``stride`` when one is given (``auto``).
    ``source_wh`` is the photo's own size when ``image`` is a reduced decode of it: the geometry
    (and so every box) is the photo's, whatever size it was decoded at.
    """
    w0, h0 = source_wh or (image.shape[1], image.shape[0])
    r = min(size_hw[0] / h0, size_hw[1] / w0)
    new_w, new_h = max(round(w0 * r), 1), max(round(h0 * r), 1)
    h1, w1 = fit_shape(h0, w0, size_hw, stride)
    if image.shape[:2] != (new_h, new_w):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    dw, dh = (w1 - new_w) / 2, (h1 - new_h) / 2
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    if top or bottom or left or right:
        image = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    return image, Letterbox(new_w / w0, new_h / h0, left, top)


def unletterbox(xyxy: np.ndarray, box: Letterbox, image_wh: tuple[int, int]) -> np.ndarray:
    """Model-input boxes back to original-image pixels, clipped to the image."""
    out = xyxy.astype(np.float32, copy=True)
    out[:, [0, 2]] = (out[:, [0, 2]] - box.pad_x) / box.gain_x
    out[:, [1, 3]] = (out[:, [1, 3]] - box.pad_y) / box.gain_y
    return clip_xyxy(out, *image_wh)


def to_blob(images: Sequence[np.ndarray], dtype: np.dtype = np.float32) -> np.ndarray:
    """Letterboxed BGR uint8 images to an NCHW RGB tensor scaled to [0, 1] (OpenCV's one C++ pass:
    channel swap, scaling and HWC to CHW together, three times faster than the same in numpy)."""
    blob = cv2.dnn.blobFromImages(list(images), 1 / 255, swapRB=True)
    return blob if dtype == np.float32 else blob.astype(dtype)


def decode_end2end(pred: np.ndarray, conf: float, classes: tuple[int, ...] | None, max_det: int) -> np.ndarray:
    """YOLO26-style (300, 6) rows of x1 y1 x2 y2 score class: filter only, the model already de-duplicated."""
    keep = pred[:, 4] > conf
    if classes is not None:
        keep &= np.isin(pred[:, 5].astype(np.int64), classes)
    return pred[keep][:max_det]


def decode_classic(
    pred: np.ndarray, conf: float, iou: float, classes: tuple[int, ...] | None, max_det: int
) -> np.ndarray:
    """Classic (4 + nc, anchors) head: best class per anchor, then class-aware NMS. Rows as ``decode_end2end``."""
    pred = pred.T
    scores = pred[:, 4:]
    cls = scores.argmax(1)
    best = scores[np.arange(len(cls)), cls]
    keep = best > conf
    if classes is not None:
        keep &= np.isin(cls, classes)
    xywh, best, cls = pred[keep, :4], best[keep], cls[keep]
    if len(best) > MAX_NMS:
        top = np.argsort(-best, kind="stable")[:MAX_NMS]
        xywh, best, cls = xywh[top], best[top], cls[top]
    xyxy = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], axis=1)
    kept = nms(xyxy + cls[:, None] * CLASS_OFFSET, best, iou)[:max_det]
    return np.concatenate([xyxy[kept], best[kept, None], cls[kept, None].astype(np.float32)], axis=1)


def _literal(value: str | None, default: object) -> object:
    if value is None:
        return default
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


class Detector:
    """Rolling-stock detector on onnxruntime.

    >>> detector = Detector()                    # the shipped model, CUDA if it really runs, else CPU
    >>> result = detector.detect("photo.jpg")    # -> Detections
    >>> result.counts()["tank_car"]

    Its detection options are ``options`` (default ``LIBRARY_DEFAULTS``: untiled) with ``conf``,
    ``iou`` and ``max_det`` where given, resolved against the model's metadata (``railvision.options``).
    """

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        device: str = "auto",
        conf: float | None = None,
        iou: float | None = None,
        imgsz: int | None = None,
        threads: int | None = None,
        max_det: int | None = None,
        batch: int = 8,
        max_pixels: int | None = None,
        rect: bool = True,
        spinning: bool = True,
        options: DetectOptions | None = None,
    ) -> None:
        self.model_path = find_model(model_path)
        self.session = self._open_session(device, threads, spinning)
        self.provider = self.session.get_providers()[0]
        meta = self.session.get_modelmeta().custom_metadata_map
        self.metadata: dict[str, str] = dict(meta)
        asked = (options or LIBRARY_DEFAULTS).override(conf=conf, iou=iou, max_det=max_det)
        self.conf_source = asked.conf_source(self.metadata)  # given, the model's own or default
        self.options = asked.resolve(self.metadata)
        self.max_pixels = max_pixels
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.input_dtype = np.float16 if model_input.type == "tensor(float16)" else np.float32
        n, _, h, w = model_input.shape
        self.fixed_batch = isinstance(n, int)
        self.max_batch = n if self.fixed_batch else batch
        dynamic = not (isinstance(h, int) and isinstance(w, int))
        size = _literal(meta.get("imgsz"), None)
        size = [size, size] if isinstance(size, int) else size
        if imgsz is not None:
            if not dynamic and (h, w) != (imgsz, imgsz):
                raise ModelError(f"this model has a fixed input of {w}x{h}; imgsz={imgsz} needs a --dynamic export")
            size = [imgsz, imgsz]
        self.imgsz: tuple[int, int] = tuple(size) if size else (h, w)  # type: ignore[assignment]
        self.stride = int(_literal(meta.get("stride"), 32))  # type: ignore[arg-type]
        # Dynamic-shape models take stride-aligned rectangles: a 16:9 photo runs at 640x384, not 640x640.
        self.rect_stride = self.stride if dynamic and rect else None
        names = _literal(meta.get("names"), None)
        self.class_names: tuple[str, ...] = (
            tuple(names[i] for i in sorted(names)) if isinstance(names, dict) else CLASS_NAMES
        )
        self.head = self._head_kind(meta)
        self.model_hash = hashlib.sha256(self.model_path.read_bytes()).hexdigest()

    @property
    def conf(self) -> float:
        """The confidence threshold of calls that give none."""
        return self.options.threshold(self.metadata)

    def _open_session(self, device: str, threads: int | None, spinning: bool) -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        if not spinning:  # idle ORT threads sleep instead of busy-waiting: they leave the cores to other work
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        kind, _, index = device.partition(":")
        if kind not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda[:N], got {device!r}")
        want_cuda = kind in ("auto", "cuda") and "CUDAExecutionProvider" in ort.get_available_providers()
        if kind == "cuda" and not want_cuda:
            raise DeviceUnavailableError(
                "device='cuda' but this onnxruntime has no CUDA provider "
                f"(available: {', '.join(ort.get_available_providers())}); install the 'gpu' extra"
            )
        providers: list = ["CPUExecutionProvider"]
        if want_cuda:
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": int(index or 0)}))
        try:
            session = ort.InferenceSession(str(self.model_path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises several private exception types
            if want_cuda and kind == "cuda":
                raise DeviceUnavailableError(f"CUDA could not run this model: {exc}") from None
            raise ModelError(f"cannot load {self.model_path}: {exc}") from None
        if kind == "cuda" and session.get_providers()[0] != "CUDAExecutionProvider":
            raise DeviceUnavailableError("device='cuda' but the CUDA provider failed to start (see onnxruntime's log)")
        return session

    def _head_kind(self, meta: dict[str, str]) -> str:
        declared = meta.get("railvision_head")
        if declared in ("end2end", "classic"):
            return declared
        shape = self.session.get_outputs()[0].shape
        return "end2end" if shape[-1] == 6 else "classic"

    @property
    def input_wh(self) -> tuple[int, int]:
        return self.imgsz[1], self.imgsz[0]

    def run(self, blob: np.ndarray) -> np.ndarray:
        """``session.run`` on a preprocessed NCHW batch, chunked to the model's batch size.

        A fixed-batch model gets its last, partial chunk padded with zeros (its answers dropped).
        """
        outputs = []
        for i in range(0, len(blob), self.max_batch):
            chunk = blob[i : i + self.max_batch]
            short = self.max_batch - len(chunk) if self.fixed_batch else 0
            if short:
                chunk = np.concatenate([chunk, np.zeros((short, *chunk.shape[1:]), chunk.dtype)])
            outputs.append(self.session.run(None, {self.input_name: chunk})[0][: len(chunk) - short])
        return np.concatenate(outputs) if len(outputs) > 1 else outputs[0]

    def prepare(self, frame: np.ndarray | Frame) -> tuple[np.ndarray, Letterbox]:
        """One BGR frame (or a reduced ``Frame``) to its CHW input tensor and the photo's letterbox geometry.

        Thread-safe and GIL-light (OpenCV), so callers may run it in worker threads.
        """
        frame = Frame.of(frame)
        image, box = letterbox(frame.pixels, self.imgsz, self.rect_stride, frame.size)
        return to_blob([image], self.input_dtype)[0], box

    def _predict(
        self,
        frames: list[Frame],
        options: DetectOptions,
        letterboxed: list[tuple[np.ndarray, Letterbox]] | None = None,
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Boxes (in each photo's own pixels), scores and class ids for frames, with resolved ``options``.

        Frames that letterbox to the same input shape run together as real ONNX batches.
        """
        conf, classes, max_det = options.threshold(self.metadata), options.classes, options.max_det
        boxed = letterboxed if letterboxed is not None else [self.prepare(frame) for frame in frames]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, (tensor, _) in enumerate(boxed):
            groups.setdefault(tensor.shape, []).append(i)
        results: list = [None] * len(frames)
        for members in groups.values():
            blob = boxed[members[0]][0][None] if len(members) == 1 else np.stack([boxed[i][0] for i in members])
            raw = self.run(blob).astype(np.float32, copy=False)
            for i, pred in zip(members, raw, strict=True):
                if self.head == "end2end":
                    rows = decode_end2end(pred, conf, classes, max_det)
                else:
                    rows = decode_classic(pred, conf, options.iou, classes, max_det)
                xyxy = unletterbox(rows[:, :4], boxed[i][1], frames[i].size)
                results[i] = (xyxy, rows[:, 4].copy(), rows[:, 5].astype(np.int64))
        return results

    def _tiled(
        self,
        frame: Frame,
        full: tuple[np.ndarray, np.ndarray, np.ndarray],
        options: DetectOptions,
    ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], int]:
        """Detect on overlapping native-resolution slices and merge them with the full-frame pass."""
        pixels = frame.full()  # every pixel: a reduced decode is decoded again, whole
        height, width = pixels.shape[:2]
        windows = tiling.plan_tiles(width, height, min(self.imgsz))
        parts, sources, cuts = [full], [np.full(len(full[1]), -1)], [np.zeros(len(full[1]), dtype=bool)]
        for start in range(0, len(windows), self.max_batch):
            chunk = windows[start : start + self.max_batch]
            crops = [Frame.of(pixels[y1:y2, x1:x2]) for x1, y1, x2, y2 in chunk]
            for k, ((xyxy, score, cls), window) in enumerate(zip(self._predict(crops, options), chunk, strict=True)):
                xyxy = xyxy + np.array(window[:2] * 2, dtype=np.float32)
                parts.append((xyxy, score, cls))
                sources.append(np.full(len(score), start + k))
                cuts.append(tiling.cut_by_seam(xyxy, window, (width, height)))
        xyxy, score, cls = tiling.merge_tiles(
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]),
            np.concatenate(sources),
            np.concatenate(cuts),
        )
        top = options.max_det
        return (xyxy[:top], score[:top], cls[:top]), len(windows)

    def _options_for(self, options: DetectOptions | None = None, **overrides: Any) -> DetectOptions:
        """A call's options: ``options`` (else the detector's own) with ``overrides`` (any ``DetectOptions``
        field; ``None`` is not given) on top, the model's threshold filled in where none was chosen."""
        return (options or self.options).override(**overrides).resolve(self.metadata)

    @overload
    def detect(self, images: ImageSource, options: DetectOptions | None = None, **overrides: Any) -> Detections: ...
    @overload
    def detect(
        self, images: list[ImageSource], options: DetectOptions | None = None, **overrides: Any
    ) -> list[Detections]: ...

    def detect(
        self, images: ImageSource | list[ImageSource], options: DetectOptions | None = None, **overrides: Any
    ) -> Detections | list[Detections]:
        """Detect rolling stock in one image (-> ``Detections``) or a list (-> list, run as batches).

        Images are paths, encoded bytes or BGR arrays, decoded here (and timed: ``meta["timing"]``); a JPEG
        much larger than the model input is decoded at reduced size in the DCT domain (``images.load_frame``).
        ``options`` replaces the detector's own for this call; ``overrides`` (``conf=``, ``iou=``,
        ``classes=``, ``max_det=``, ``tile=``, see ``DetectOptions``; ``None``: not given) go on top.
        """
        single = not isinstance(images, list)
        batch = [images] if single else images
        start = time.perf_counter()
        frames = [load_frame(image, self.imgsz, self.max_pixels) for image in batch]
        decode_ms = (time.perf_counter() - start) * 1e3 / len(batch)
        results = self.detect_frames(frames, options, **overrides)
        for result in results:
            result.meta["timing"] = {"decode_ms": decode_ms, **result.meta["timing"]}
        return results[0] if single else results

    def detect_frames(
        self,
        frames: Sequence[np.ndarray | Frame],
        options: DetectOptions | None = None,
        *,
        letterboxed: list[tuple[np.ndarray, Letterbox]] | None = None,
        **overrides: Any,
    ) -> list[Detections]:
        """``detect`` for frames the caller decoded (BGR uint8 arrays or ``Frame``s; optionally ``prepare``d), timed.

        Lets a caller decode and letterbox in worker threads while this thread runs the model.
        """
        chosen = self._options_for(options, **overrides)
        start = time.perf_counter()
        photos = [Frame.of(frame) for frame in frames]
        found = self._predict(photos, chosen, letterboxed)
        results = []
        for frame, full in zip(photos, found, strict=True):
            size = frame.size
            tiles = 0
            if chosen.tile == "on" or (chosen.tile == "auto" and tiling.needs_tiling(size, self.imgsz, full[0])):
                full, tiles = self._tiled(frame, full, chosen)
            results.append(Detections(*full, image_size=size, class_names=self.class_names, meta={"tiles": tiles}))
        timing = {"infer_ms": (time.perf_counter() - start) * 1e3 / max(len(frames), 1)}
        for result in results:
            result.meta["timing"] = timing
        return results
