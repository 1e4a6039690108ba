"""Import Ultralytics so that it never reaches for the network, and run its ``predict`` as ``Detections``.

Training, export and ``.pt`` evaluation all go through :func:`import_ultralytics`.
Ultralytics would otherwise try to download fonts for its plots (``Arial.ttf``,
requested by every dataset check), pip-install missing requirements, send usage
events, and fetch ``yolo26n.pt`` for its CUDA AMP self-test; offline or in tests
each of those hangs or fails. Importing this module does not import torch.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from railvision.detections import Detections

# Fonts Ultralytics asks for by name; matplotlib's bundled DejaVu Sans stands in for both.
PLOT_FONTS = ("Arial.ttf", "Arial.Unicode.ttf")


def import_ultralytics() -> ModuleType:
    """Return the ``ultralytics`` module, configured offline (env set before its first import)."""
    os.environ.setdefault("YOLO_OFFLINE", "1")  # read once, at import: no online checks, no events
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")  # never pip-install a "missing" requirement
    import ultralytics
    from ultralytics.utils import USER_CONFIG_DIR

    _place_fonts(USER_CONFIG_DIR)
    return ultralytics


def _place_fonts(config_dir: Path) -> None:
    import matplotlib

    dejavu = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in PLOT_FONTS:
        target = config_dir / name
        if not target.exists() and dejavu.exists():
            with contextlib.suppress(OSError):  # read-only config dir: Ultralytics then tries its download
                shutil.copyfile(dejavu, target)


def missing_training_extra(command: str) -> str | None:
    """The message to print when the ``train`` extra (Ultralytics, torch) is not installed, else None."""
    if importlib.util.find_spec("ultralytics") is None:
        return f"railvision {command} needs the training extra: pip install 'railvision[train]'"
    return None


def amp_setting(device: str) -> bool | str:
    """AMP choice that does not trigger Ultralytics' download of ``yolo26n.pt`` for its AMP self-test.

    The self-test only runs for ``amp=True``; it is kept when its weights are already cached,
    otherwise bfloat16 (no self-test) is used where the GPU supports it, else FP32.
    """
    if device == "cpu":
        return False
    import torch
    from ultralytics.utils import WEIGHTS_DIR

    if (WEIGHTS_DIR / "yolo26n.pt").is_file():
        return True
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else False


def resolve_device(device: str) -> str:
    """``auto`` -> ``"0"`` (first CUDA GPU) when one is usable, else ``"cpu"``; other values pass through."""
    if device != "auto":
        return device
    import torch

    return "0" if torch.cuda.is_available() else "cpu"


def nms_arg(head: str) -> bool | None:
    """Ultralytics' switch between heads: ``nms=False`` selects YOLO26's NMS-free one-to-one head."""
    return False if head == "end2end" else None


def ultralytics_predict(
    model: Any,
    images: Iterable[np.ndarray],
    *,
    imgsz: int,
    conf: float,
    iou: float,
    head: str,
    device: str,
    rect: bool = False,
) -> Iterator[Detections]:
    """Ultralytics ``predict`` on BGR images as ``Detections``, with the letterbox the engine uses:
    square for fixed-shape models, stride-aligned rectangles (``rect``) for dynamic ones. The reference
    the export parity check and ``.pt`` evaluation hold the engine to."""
    names = tuple(model.names[i] for i in sorted(model.names))
    for image in images:
        result = model.predict(
            image, imgsz=imgsz, conf=conf, iou=iou, rect=rect, nms=nms_arg(head), device=device, verbose=False
        )[0]
        yield Detections.from_ultralytics(result, names)
