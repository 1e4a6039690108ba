"""Everything after rasterising: backgrounds, compositing, atmosphere, lens and sensor effects, JPEG quality.

Most of the realism is here: the rendered layer is colour-matched to a real (or procedural)
background, hazed like it, then blurred, shimmered, resampled and noised like a real camera
or satellite product would. All functions take images as float32 RGB in [0, 1].
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from railvision.synth.params import HELD_OUT_BACKGROUND_EVERY, POST
from railvision.synth.render import RenderResult
from railvision.synth.scene import Scene

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def default_backgrounds() -> Path | None:
    """``$RAILVISION_BACKGROUNDS``, else ``../shared/backgrounds`` next to the repo or the cwd, if present."""
    env = os.environ.get("RAILVISION_BACKGROUNDS")
    if env is not None:
        return Path(env) if env else None
    for base in (Path(__file__).resolve().parents[2], Path.cwd()):
        candidate = base.parent / "shared" / "backgrounds"
        if candidate.is_dir():
            return candidate
    return None


def backdrop_photos(root: Path | None, view: str) -> tuple[list[Path], list[Path]]:
    """(backdrops, held out) among the photos under ``root/view``: every ``HELD_OUT_BACKGROUND_EVERY``-th
    one is never drawn behind a scene, so false alarms can be measured on real photos the model never saw."""
    folder = root / view if root else None
    if not folder or not folder.is_dir():
        return [], []
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    held = set(photos[::HELD_OUT_BACKGROUND_EVERY])
    return [p for p in photos if p not in held], sorted(held)


class Backgrounds:
    """Real background photos under ``root/ground`` and ``root/overhead``; procedural when absent."""

    def __init__(self, root: Path | None) -> None:
        self.files = {view: backdrop_photos(root, view)[0] for view in ("ground", "overhead")}

    def sample(self, rng: np.random.Generator, view: str, size: int, gsd: float = 0.0) -> np.ndarray:
        """A ``size`` square background; overhead photos are rescaled from their (assumed) resolution to ``gsd``."""
        files = self.files[view]
        use_photo = bool(files) and rng.random() < POST["photo_background_prob"]
        index = int(rng.integers(len(files))) if files else 0
        if use_photo:
            img = cv2.imread(str(files[index]), cv2.IMREAD_COLOR)
            if img is not None:
                if view == "overhead":  # to the scene's ground resolution (or coarser only in scale when too small)
                    factor = rng.uniform(*POST["overhead_photo_gsd_m"]) / gsd
                    if rng.random() < 0.5:
                        factor = max(factor, size / min(img.shape[:2]))
                    img = cv2.resize(img, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
                if min(img.shape[:2]) >= (size if view == "overhead" else 128):
                    return _random_crop(rng, img[..., ::-1], size, view)
        return procedural_ground(rng, size) if view == "ground" else procedural_overhead(rng, size, gsd)


def _random_crop(rng: np.random.Generator, img: np.ndarray, size: int, view: str) -> np.ndarray:
    h, w = img.shape[:2]
    side = size if view == "overhead" else int(min(h, w) * rng.uniform(0.55, 1.0))
    y = int(rng.integers(0, h - side + 1))
    x = int(rng.integers(0, w - side + 1))
    crop = img[y : y + side, x : x + side]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if view == "overhead":
        crop = np.rot90(crop, int(rng.integers(4)))
    out = cv2.resize(
        np.ascontiguousarray(crop), (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    )
    return out.astype(np.float32) / 255.0


def _smooth_noise(rng: np.random.Generator, size: int, cells: int, channels: int = 1) -> np.ndarray:
    small = rng.random((cells, cells, channels)).astype(np.float32)
    big = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    return big.reshape(size, size, channels)


def _fractal(rng: np.random.Generator, size: int, octaves: tuple[int, ...] = (3, 8, 24, 80)) -> np.ndarray:
    out = np.zeros((size, size, 1), np.float32)
    weight = 1.0
    for cells in octaves:
        out += weight * _smooth_noise(rng, size, cells)
        weight *= 0.5
    return out / (2.0 - weight * 2)


def procedural_ground(rng: np.random.Generator, size: int) -> np.ndarray:
    """Sky gradient, a far ridge or tree line, and a field / water foreground."""
    y = np.linspace(0, 1, size, dtype=np.float32)[:, None, None]
    sky_top = (
        np.array([0.45, 0.58, 0.75]) * rng.uniform(0.8, 1.15)
        if rng.random() < 0.6
        else np.full(3, rng.uniform(0.6, 0.85))
    )
    sky_bot = np.clip(sky_top + rng.uniform(0.1, 0.25), 0, 1)
    img = sky_top + (sky_bot - sky_top) * y
    horizon = rng.uniform(0.25, 0.6)
    ridge = horizon - 0.12 * _smooth_noise(rng, size, 6)[:, :, 0].mean(axis=0) * rng.uniform(0.3, 1.5)
    rows = np.arange(size)[:, None] / size
    land = (rows > ridge[None, :])[..., None]
    tone = np.array([(0.30, 0.36, 0.25), (0.40, 0.38, 0.30), (0.35, 0.37, 0.38), (0.25, 0.30, 0.20)][rng.integers(4)])
    tex = _fractal(rng, size)
    ground = tone * (0.7 + 0.6 * tex)
    img = np.where(land, ground, img)
    return np.clip(img, 0, 1).astype(np.float32)


OVERHEAD_TONES = np.array(
    [(0.33, 0.38, 0.24), (0.48, 0.46, 0.36), (0.44, 0.38, 0.30), (0.55, 0.54, 0.50), (0.38, 0.40, 0.30)], np.float32
)


def procedural_overhead(rng: np.random.Generator, size: int, gsd: float = 0.5) -> np.ndarray:
    """Fields (some ploughed), bare and paved lots, roads and tree clumps seen from above at ``gsd`` m/px."""
    img = np.empty((size, size, 3), np.float32)
    img[:] = OVERHEAD_TONES[rng.integers(len(OVERHEAD_TONES))]
    for _ in range(int(rng.integers(2, 9))):  # fields and lots: rotated rectangles
        centre = rng.uniform(0, size, 2)
        half = rng.uniform(20, 160, 2) / max(gsd, 0.15) * 0.3
        angle = rng.uniform(0, 180)
        corners = cv2.boxPoints(((float(centre[0]), float(centre[1])), (float(half[0] * 2), float(half[1] * 2)), angle))
        tone = OVERHEAD_TONES[rng.integers(len(OVERHEAD_TONES))] * rng.uniform(0.85, 1.15)
        cv2.fillPoly(img, [corners.astype(np.int32)], tuple(float(c) for c in tone))
    stripes = np.sin(np.arange(size, dtype=np.float32) * rng.uniform(0.3, 1.2))[None, :, None]
    img *= 1.0 + 0.04 * stripes * (rng.random() < 0.5)
    img *= 0.88 + 0.24 * _fractal(rng, size, (12, 40, 120, 320))
    for _ in range(int(rng.integers(0, 4))):  # roads: asphalt or dirt, with a real width
        p0 = rng.uniform(-0.2, 1.2, 2) * size
        p1 = rng.uniform(-0.2, 1.2, 2) * size
        colour = (0.33, 0.33, 0.34) if rng.random() < 0.6 else (0.55, 0.5, 0.42)
        width = max(2, int(rng.uniform(4, 12) / gsd))
        cv2.line(img, tuple(int(v) for v in p0), tuple(int(v) for v in p1), colour, width, cv2.LINE_AA)
    for _ in range(int(rng.integers(0, 5))):  # tree clumps: dark blobs with a shadow side
        centre = rng.uniform(0, size, 2)
        for _ in range(int(rng.integers(3, 30))):
            c = centre + rng.normal(0, 25 / max(gsd, 0.15) * 0.3, 2)
            r = max(1, int(rng.uniform(2, 6) / gsd))
            cv2.circle(img, (int(c[0] + r * 0.4), int(c[1] + r * 0.4)), r, (0.12, 0.13, 0.1), -1, cv2.LINE_AA)
            cv2.circle(img, (int(c[0]), int(c[1])), r, (0.18, 0.27, 0.13), -1, cv2.LINE_AA)
    return np.clip(img, 0, 1).astype(np.float32)


def haze_colour_for(scene: Scene, background: np.ndarray) -> np.ndarray:
    """The haze takes the colour of the background's sky (top rows), pulled toward blue-grey."""
    sky = background[: max(1, background.shape[0] // 6)].reshape(-1, 3).mean(axis=0)
    base = np.asarray(scene.haze_colour, np.float32)
    return np.clip(0.5 * base + 0.5 * np.maximum(sky, base * 0.7), 0.3, 0.95).astype(np.float32)


def ground_colour_for(scene: Scene, background: np.ndarray) -> tuple[float, float, float]:
    """The rendered ground strip takes the colour of the background's lower part, so the seam is soft."""
    below = background[background.shape[0] * 2 // 3 :].reshape(-1, 3).mean(axis=0)
    colour = 0.35 * np.asarray(scene.ground_colour) + 0.65 * below
    return tuple(float(c) for c in np.clip(colour, 0.05, 0.8))


def composite(
    scene: Scene, result: RenderResult, background: np.ndarray, haze: np.ndarray, rng: np.random.Generator, size: int
) -> np.ndarray:
    """Rendered layer over the hazed background, with the layer's colours pulled toward the background's."""
    rgba = result.rgba
    if rgba.shape[0] != size:
        rgba = cv2.resize(rgba, (size, size), interpolation=cv2.INTER_AREA)
    rgba = cv2.GaussianBlur(rgba, (0, 0), rng.uniform(*POST["antialias_sigma_px"]))  # soften raster jaggies
    fg, alpha = rgba[..., :3], rgba[..., 3:4]
    bg = background
    if scene.view == "ground":  # the backdrop is farther than the train: hazier, and out of focus
        h = 0.7 * (1.0 - np.exp(-scene.haze_beta * scene.background_distance))
        bg = bg * (1 - h) + haze * h
        sigma = rng.uniform(*POST["background_blur_px"])
        if sigma > 0.3:
            bg = cv2.GaussianBlur(bg, (0, 0), sigma)
    solid = alpha[..., 0] > 0.5
    if solid.sum() > 50:
        fg_mean = (fg[solid] / alpha[solid]).mean(axis=0) + 1e-3
        gains = np.clip(bg.reshape(-1, 3).mean(axis=0) / fg_mean, 0.6, 1.6)
        gains = gains / gains.mean() * np.clip(gains.mean(), 0.8, 1.25)
        s = rng.uniform(*POST["colour_transfer"])
        fg = fg * ((1 - s) + s * gains)
    out = fg + bg * (1 - alpha)
    if scene.haze_veil > 0:
        out = out * (1 - scene.haze_veil) + haze * scene.haze_veil
    return np.clip(out, 0, 1).astype(np.float32)


def _shimmer(rng: np.random.Generator, img: np.ndarray, amplitude: float) -> np.ndarray:
    size = img.shape[0]
    dx = (_smooth_noise(rng, size, int(rng.integers(20, 60)))[..., 0] - 0.5) * 2 * amplitude
    dy = (_smooth_noise(rng, size, int(rng.integers(20, 60)))[..., 0] - 0.5) * 2 * amplitude * 0.6
    gx, gy = np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32))
    return cv2.remap(img, gx + dx, gy + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _motion_blur(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    length = int(rng.integers(*POST["motion_blur_px"]))
    kernel = np.zeros((length * 2 + 1, length * 2 + 1), np.float32)
    angle = rng.normal(0, 20) if rng.random() < 0.7 else rng.uniform(0, 180)
    c = length
    dx, dy = np.cos(np.deg2rad(angle)) * length, np.sin(np.deg2rad(angle)) * length
    cv2.line(kernel, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1)
    return cv2.filter2D(img, -1, kernel / kernel.sum())


def _pan_fringes(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Pan-sharpened look: chroma at a quarter of the resolution and slightly misregistered."""
    ycc = cv2.cvtColor(img, cv2.COLOR_RGB2YCrCb)
    size = img.shape[0]
    factor = int(rng.integers(2, 5))
    for ch in (1, 2):
        small = cv2.resize(ycc[..., ch], (size // factor, size // factor), interpolation=cv2.INTER_AREA)
        up = cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)
        shift = np.float32([[1, 0, rng.uniform(-1.5, 1.5)], [0, 1, rng.uniform(-1.5, 1.5)]])
        ycc[..., ch] = cv2.warpAffine(up, shift, (size, size), borderMode=cv2.BORDER_REFLECT)
    return cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)


def _unsharp(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Processing halos of phone cameras and satellite products."""
    blur = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.8, 1.6))
    return img + (img - blur) * rng.uniform(*POST["sharpen_amount"])


def _chromatic_aberration(img: np.ndarray, k: float) -> np.ndarray:
    """Lateral colour: red magnified by ``k`` and blue shrunk by ``k`` about the centre."""
    if k < 2e-4:
        return img
    size = img.shape[0]
    c = (size - 1) / 2
    out = img.copy()
    for ch, scale in ((0, 1 + k), (2, 1 - k)):
        m = np.float32([[scale, 0, c * (1 - scale)], [0, scale, c * (1 - scale)]])
        out[..., ch] = cv2.warpAffine(
            img[..., ch], m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
    return out


def camera_effects(scene: Scene, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Lens, atmosphere turbulence, processing and sensor effects; returns uint8 BGR."""
    size = img.shape[0]
    contrast = rng.uniform(0.85, 1.15)
    img = img * rng.normal(1.0, POST["white_balance_sd"], 3).astype(np.float32)
    img = (img - 0.5) * contrast + 0.5 + rng.normal(0, 0.03)
    img = np.clip(img, 0, 1) ** rng.uniform(0.85, 1.15)
    if scene.view == "ground":
        shimmer = scene.notes.get("shimmer", 0.0)
        if shimmer > 0.2:
            img = _shimmer(rng, img, shimmer)
        if rng.random() < POST["motion_blur_prob"]:
            img = _motion_blur(rng, img)
        sigma = rng.uniform(*POST["defocus_sigma_px"]) * (1.0 + scene.notes.get("range_m", 0) / 2000)
        if sigma > 0.3:
            img = cv2.GaussianBlur(img, (0, 0), sigma)
        img = _chromatic_aberration(img, rng.uniform(*POST["chromatic_aberration"]))
        if rng.random() < POST["sharpen_prob"]:
            img = _unsharp(rng, img)
        if rng.random() < POST["glass_prob"]:  # shot through a window: veiling reflection
            reflection = cv2.GaussianBlur(_smooth_noise(rng, size, 4), (0, 0), 8)[..., None]
            img = img * 0.85 + reflection * rng.uniform(0.8, 1.0, 3).astype(np.float32) * 0.2
    else:
        factor = rng.uniform(*POST["overhead_resample"])
        if factor > 1.05:
            small = int(size / factor)
            img = cv2.resize(
                cv2.resize(img, (small, small), interpolation=cv2.INTER_AREA),
                (size, size),
                interpolation=cv2.INTER_CUBIC,
            )
        if rng.random() < POST["pan_fringe_prob"]:
            img = _pan_fringes(rng, img)
        if rng.random() < POST["sharpen_prob"]:
            img = _unsharp(rng, img)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    img = img * (1 - rng.uniform(0, 0.35) * (xx**2 + yy**2))[..., None]
    sigma = rng.uniform(*POST["noise_sigma"]) / 255.0
    noise = rng.standard_normal((size, size, 1), dtype=np.float32) * sigma
    noise = noise + rng.standard_normal((size, size, 3), dtype=np.float32) * (sigma * 0.4)
    img = img + noise * np.sqrt(np.clip(img, 0.02, 1))
    return np.clip(img[..., ::-1] * 255 + 0.5, 0, 255).astype(np.uint8)


def jpeg_quality(rng: np.random.Generator) -> int:
    """The JPEG quality a camera or an archive saved this image at."""
    return int(rng.integers(POST["jpeg_quality"][0], POST["jpeg_quality"][1] + 1))
