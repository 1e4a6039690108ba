"""Procedural synthetic training data: 3D rail scenes rendered headless with moderngl (EGL/llvmpipe).

Modules: ``params`` (every randomised range, in one place), ``geometry`` (parametric meshes),
``scene`` (random scene specs), ``render`` (the GL rasteriser), ``post`` (backgrounds,
atmosphere, camera and sensor effects) and ``dataset`` (YOLO dataset writing and workers).
"""

from __future__ import annotations

from railvision.errors import RailvisionError


class SynthError(RailvisionError):
    """The generator cannot run (no EGL context, bad output folder, bad parameters)."""

    kind = "synth_error"
