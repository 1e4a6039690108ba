"""Parametric triangle meshes: rail vehicles of every kind, distractors and track.

Everything is built from a few primitives (boxes, cylinders, height fields, spheres) into
one float32 vertex array with the layout of ``VERTEX_FORMAT``. Vehicles are built in a local
frame (x along the track, y to the left, z up, rail top at z = 0, centred on x = 0).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from enum import IntEnum
from functools import cache

import numpy as np
from numpy.typing import ArrayLike

from railvision.synth.params import DIMENSIONS, LIVERIES
from railvision.synth.scene import Prop, Scene, bend

VERTEX_FORMAT = "3f 3f 3f 1f 1f"  # position, normal, colour, material, instance id
VERTEX_ATTRS = ("in_pos", "in_nrm", "in_col", "in_mat", "in_inst")
FLOATS = 11
Vec = tuple[float, float, float]
Colour = ArrayLike  # RGB in [0, 1]: a tuple, an array, or one row per primitive


class Mat(IntEnum):
    """Material codes the fragment shader turns into procedural patterns."""

    PLAIN = 0
    BALLAST = 1
    GROUND = 2
    RIBBED = 3
    TARP = 4
    GLASS = 5
    CATCHER = 6  # invisible ground that only receives shadows (over a background photo)
    METAL = 7  # dirty / rusty steel


@cache
def _unit_cube() -> tuple[np.ndarray, np.ndarray]:
    faces = []
    normals = []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            n = np.zeros(3)
            n[axis] = sign
            u, v = [a for a in range(3) if a != axis]
            quad = []
            for du, dv in ((-1, -1), (1, -1), (1, 1), (-1, -1), (1, 1), (-1, 1)):
                p = np.zeros(3)
                p[axis] = sign * 0.5
                p[u] = du * 0.5
                p[v] = dv * 0.5
                quad.append(p)
            faces.extend(quad)
            normals.extend([n] * 6)
    return np.asarray(faces, np.float32), np.asarray(normals, np.float32)


@cache
def _unit_cylinder(segments: int, a0: float, a1: float, caps: bool) -> tuple[np.ndarray, np.ndarray]:
    """Cylinder along x, radius 1, x in [-0.5, 0.5], angles measured from +y towards +z."""
    ang = np.linspace(a0, a1, segments + 1)
    cy, sz = np.cos(ang), np.sin(ang)
    pos, nrm = [], []
    for i in range(segments):
        p00 = (-0.5, cy[i], sz[i])
        p01 = (0.5, cy[i], sz[i])
        p10 = (-0.5, cy[i + 1], sz[i + 1])
        p11 = (0.5, cy[i + 1], sz[i + 1])
        n0 = (0.0, cy[i], sz[i])
        n1 = (0.0, cy[i + 1], sz[i + 1])
        pos += [p00, p01, p11, p00, p11, p10]
        nrm += [n0, n0, n1, n0, n1, n1]
        if caps:
            for x, nx in ((-0.5, -1.0), (0.5, 1.0)):
                pos += [(x, 0.0, 0.0), (x, cy[i], sz[i]), (x, cy[i + 1], sz[i + 1])]
                nrm += [(nx, 0.0, 0.0)] * 3
    return np.asarray(pos, np.float32), np.asarray(nrm, np.float32)


@cache
def _unit_sphere(nu: int = 10, nv: int = 6) -> tuple[np.ndarray, np.ndarray]:
    th = np.linspace(0, np.pi, nv + 1)
    ph = np.linspace(0, 2 * np.pi, nu + 1)
    pos = []
    for i in range(nv):
        for j in range(nu):
            quad = [(th[i], ph[j]), (th[i + 1], ph[j]), (th[i + 1], ph[j + 1]), (th[i], ph[j + 1])]
            pts = [(np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)) for t, p in quad]
            pos += [pts[0], pts[1], pts[2], pts[0], pts[2], pts[3]]
    p = np.asarray(pos, np.float32)
    return p, p.copy()


_AXES = {"x": (0, 1, 2), "y": (1, 0, 2), "z": (2, 1, 0)}


def _pack(pos: np.ndarray, nrm: np.ndarray, col: Colour, mat: int) -> np.ndarray:
    out = np.empty((len(pos), FLOATS), np.float32)
    out[:, 0:3] = pos
    out[:, 3:6] = nrm
    out[:, 6:9] = col
    out[:, 9] = float(mat)
    out[:, 10] = 0.0
    return out


class MeshBuilder:
    """Collects primitives into one vertex array (see ``VERTEX_FORMAT``)."""

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []

    def boxes(self, centers: ArrayLike, sizes: ArrayLike, colors: ArrayLike, mat: int = Mat.PLAIN) -> None:
        """Many axis-aligned boxes at once (vectorised: sleepers, windows, stakes)."""
        centers = np.atleast_2d(np.asarray(centers, np.float32))
        sizes = np.broadcast_to(np.asarray(sizes, np.float32), centers.shape)
        colors = np.broadcast_to(np.asarray(colors, np.float32), centers.shape)
        cube, normals = _unit_cube()
        pos = cube[None, :, :] * sizes[:, None, :] + centers[:, None, :]
        n = len(centers)
        self.parts.append(
            _pack(pos.reshape(-1, 3), np.tile(normals, (n, 1)), np.repeat(colors, len(cube), axis=0), mat)
        )

    def box(self, center: Vec, size: Vec, color: Colour, mat: int = Mat.PLAIN, rot: np.ndarray | None = None) -> None:
        cube, normals = _unit_cube()
        pos = cube * np.asarray(size, np.float32)
        nrm = normals
        if rot is not None:
            pos = pos @ rot.T
            nrm = normals @ rot.T
        self.parts.append(_pack(pos + np.asarray(center, np.float32), nrm, color, mat))

    def cylinder(
        self,
        center: Vec,
        radius: float | tuple[float, float],
        length: float,
        color: Colour,
        mat: int = Mat.PLAIN,
        axis: str = "x",
        segments: int = 14,
        arc: tuple[float, float] = (0.0, 2 * np.pi),
        caps: bool = True,
    ) -> None:
        """Cylinder (elliptic when ``radius`` is a pair) along ``axis``; ``arc`` keeps part of it.

        ``center`` may be an (N, 3) array: N equal cylinders in one go (wheels).
        """
        ry, rz = (radius, radius) if np.isscalar(radius) else radius
        unit_p, unit_n = _unit_cylinder(segments, arc[0], arc[1], caps)
        pos = unit_p * np.asarray((length, ry, rz), np.float32)
        nrm = unit_n / np.asarray((1.0, ry, rz), np.float32)
        nrm /= np.linalg.norm(nrm, axis=1, keepdims=True) + 1e-9
        order = _AXES[axis]
        centers = np.atleast_2d(np.asarray(center, np.float32))
        pos = (pos[:, order][None] + centers[:, None]).reshape(-1, 3)
        self.parts.append(_pack(pos, np.tile(nrm[:, order], (len(centers), 1)), color, mat))

    def spheres(self, centers: ArrayLike, radii: ArrayLike, colors: ArrayLike, mat: int = Mat.PLAIN) -> None:
        """Lumpy ellipsoids (vegetation): the radius wobbles with direction, differently per blob."""
        centers = np.atleast_2d(np.asarray(centers, np.float32))
        radii = np.broadcast_to(np.asarray(radii, np.float32), centers.shape)
        colors = np.broadcast_to(np.asarray(colors, np.float32), centers.shape)
        unit, _ = _unit_sphere()
        phase = (centers[:, :1] * 12.9898 + centers[:, 1:2] * 78.233) % (2 * np.pi)  # (N, 1), from the position
        wobble = 1.0 + 0.16 * np.sin(unit[None, :, 0] * 7.0 + unit[None, :, 1] * 5.0 + unit[None, :, 2] * 3.0 + phase)
        pos = unit[None] * radii[:, None] * wobble[..., None] + centers[:, None]
        nrm = unit[None] / radii[:, None]
        nrm = nrm / (np.linalg.norm(nrm, axis=2, keepdims=True) + 1e-9)
        self.parts.append(_pack(pos.reshape(-1, 3), nrm.reshape(-1, 3), np.repeat(colors, len(unit), axis=0), mat))

    def heightfield(self, x: np.ndarray, y: np.ndarray, z: np.ndarray, color: Colour, mat: int) -> None:
        """A draped sheet: grid ``z[i, j]`` over ``x[i]``, ``y[j]`` (tarpaulins, coal heaps)."""
        gx, gy = np.meshgrid(x, y, indexing="ij")
        dzdx = np.gradient(z, x, axis=0)
        dzdy = np.gradient(z, y, axis=1)
        n = np.stack([-dzdx, -dzdy, np.ones_like(z)], axis=-1)
        n /= np.linalg.norm(n, axis=-1, keepdims=True)
        p = np.stack([gx, gy, z], axis=-1)
        a, b, c, d = p[:-1, :-1], p[1:, :-1], p[1:, 1:], p[:-1, 1:]
        na, nb, nc, nd = n[:-1, :-1], n[1:, :-1], n[1:, 1:], n[:-1, 1:]
        pos = np.stack([a, b, c, a, c, d], axis=2).reshape(-1, 3)
        nrm = np.stack([na, nb, nc, na, nc, nd], axis=2).reshape(-1, 3)
        self.parts.append(_pack(pos, nrm, color, mat))

    def prism(self, profile_yz: np.ndarray, x0: float, x1: float, color: Colour, mat: int = Mat.PLAIN) -> None:
        """Extrude a convex (y, z) polygon along x (gable roofs, embankments, hopper ends)."""
        prof = np.asarray(profile_yz, np.float32)
        m = len(prof)
        pos, nrm = [], []
        centre = prof.mean(axis=0)
        for i in range(m):
            (y0, z0), (y1, z1) = prof[i], prof[(i + 1) % m]
            out = np.array([0.0, z1 - z0, -(y1 - y0)])
            mid = np.array([0.0, (y0 + y1) / 2 - centre[0], (z0 + z1) / 2 - centre[1]])
            if out @ mid < 0:
                out = -out
            out /= np.linalg.norm(out) + 1e-9
            q = [(x0, y0, z0), (x1, y0, z0), (x1, y1, z1), (x0, y0, z0), (x1, y1, z1), (x0, y1, z1)]
            pos += q
            nrm += [out] * 6
        for x, nx in ((x0, -1.0), (x1, 1.0)):
            for i in range(1, m - 1):
                pos += [(x, *prof[0]), (x, *prof[i]), (x, *prof[i + 1])]
                nrm += [(nx, 0.0, 0.0)] * 3
        self.parts.append(_pack(np.asarray(pos, np.float32), np.asarray(nrm, np.float32), color, mat))

    def prism_across(self, profile_xz: np.ndarray, width: float, color: Colour, mat: int = Mat.PLAIN) -> None:
        """Extrude a convex (x, z) side profile across the track, ``width`` wide (hopper bodies)."""
        sub = MeshBuilder()
        sub.prism(np.column_stack([-profile_xz[:, 0], profile_xz[:, 1]]), -width / 2, width / 2, color, mat)
        self.parts.append(transform(sub.array(), 90.0))

    def array(self) -> np.ndarray:
        """All parts, with every triangle wound counter-clockwise as seen from the side its normals face."""
        if not self.parts:
            return np.zeros((0, FLOATS), np.float32)
        out = np.concatenate(self.parts)
        tri = out.reshape(-1, 3, FLOATS)
        geometric = np.cross(tri[:, 1, 0:3] - tri[:, 0, 0:3], tri[:, 2, 0:3] - tri[:, 0, 0:3])
        flip = np.einsum("ij,ij->i", geometric, tri[:, :, 3:6].sum(axis=1)) < 0
        tri[flip, 1], tri[flip, 2] = tri[flip, 2].copy(), tri[flip, 1].copy()
        return out


def transform(mesh: np.ndarray, yaw_deg: float = 0.0, offset: Vec = (0.0, 0.0, 0.0), inst: int = 0) -> np.ndarray:
    """Rotate a local mesh about z, move it, and stamp its instance id."""
    out = mesh.copy()
    if yaw_deg:
        a = np.deg2rad(yaw_deg)
        r = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]], np.float32)
        out[:, 0:3] = out[:, 0:3] @ r.T
        out[:, 3:6] = out[:, 3:6] @ r.T
    out[:, 0:3] += np.asarray(offset, np.float32)
    out[:, 10] = float(inst)
    return out


# --------------------------------------------------------------------------- colour helpers


def weathered(rng: np.random.Generator, base: Colour, fade: float = 0.25) -> np.ndarray:
    """A livery colour after sun, dust and dirt: faded toward grey-brown, jittered."""
    c = np.asarray(base, np.float32)
    dust = np.array([0.42, 0.38, 0.33], np.float32)
    c = c * (1 - fade * rng.random()) + dust * fade * rng.random()
    return np.clip(c * rng.uniform(0.85, 1.15) + rng.normal(0, 0.015, 3), 0.01, 1.0).astype(np.float32)


def pick(rng: np.random.Generator, key: str) -> np.ndarray:
    options = LIVERIES[key]
    return np.asarray(options[rng.integers(len(options))], np.float32)


def roof_colour(rng: np.random.Generator, body: np.ndarray) -> np.ndarray:
    """Roofs seen from above: the body colour bleached by sun and dust, or bare galvanised grey."""
    grey = rng.uniform(0.45, 0.7)
    mix = rng.uniform(0.2, 0.8)
    return (body * (1 - mix) + grey * mix).astype(np.float32)


DARK = np.array([0.07, 0.07, 0.07], np.float32)
RUST = np.array([0.22, 0.13, 0.09], np.float32)


# --------------------------------------------------------------------------- running gear


def running_gear(b: MeshBuilder, length: float, frame_z: float, axles: int = 2, width: float = 2.7) -> None:
    """Two bogies with wheels, the underframe and couplers of a vehicle of ``length`` over couplers."""
    r = DIMENSIONS["wheel_diameter"] / 2
    base = DIMENSIONS["bogie_wheelbase"]
    bogie_x = length / 2 - max(2.4, length * 0.14) - (0.6 if axles == 3 else 0.0)
    wheel_x = np.linspace(-base * (axles - 1) / 2, base * (axles - 1) / 2, axles) if axles > 1 else np.zeros(1)
    for bx in (-bogie_x, bogie_x):
        span = base * (axles - 1) + 1.0
        b.boxes([(bx, -0.9, 0.55), (bx, 0.9, 0.55)], (span, 0.18, 0.45), RUST * 0.8, Mat.METAL)
        b.box((bx, 0.0, 0.75), (0.5, 2.0, 0.3), RUST * 0.7, Mat.METAL)
        wheels = [(bx + wx, y, r) for wx in wheel_x for y in (-0.76, 0.76)]
        b.cylinder(wheels, r, 0.13, DARK, Mat.METAL, axis="y", segments=10)
    b.box((0.0, 0.0, frame_z - 0.2), (length - 1.2, width, 0.35), DARK * 1.3, Mat.METAL)
    for sx in (-1, 1):
        b.box((sx * (length / 2 - 0.35), 0.0, 1.04), (0.7, 0.28, 0.25), DARK, Mat.METAL)
        b.box((sx * (length / 2 - 0.75), 0.0, frame_z - 0.1), (0.2, width + 0.1, 0.45), DARK * 1.5, Mat.METAL)


def number_marks(b: MeshBuilder, rng: np.random.Generator, x: float, z: float, half_w: float, colour: Colour) -> None:
    """A row of Cyrillic-ish digits (small rectangles) on both sides."""
    n = int(rng.integers(5, 9))
    xs = x + np.arange(n) * 0.23
    heights = rng.choice([0.18, 0.25, 0.3], n)
    for side in (-1, 1):
        centers = np.stack([xs, np.full(n, side * (half_w + 0.01)), z + heights / 2], axis=1)
        sizes = np.stack([np.full(n, 0.15), np.full(n, 0.02), heights], axis=1)
        b.boxes(centers, sizes, colour)


def handrails(b: MeshBuilder, x0: float, x1: float, y: float, z: float, colour: Colour) -> None:
    b.box(((x0 + x1) / 2, y, z), (x1 - x0, 0.05, 0.05), colour)
    posts = np.arange(x0, x1 + 1e-3, 1.5)
    b.boxes(np.stack([posts, np.full_like(posts, y), np.full_like(posts, z - 0.45)], 1), (0.05, 0.05, 0.9), colour)


# --------------------------------------------------------------------------- vehicles


def tank_car(rng: np.random.Generator, length: float) -> np.ndarray:
    b = MeshBuilder()
    running_gear(b, length, 1.15)
    d = rng.uniform(*DIMENSIONS["tank_diameter"]) * (0.9 if length > 14 else 1.0)
    r = d / 2
    cz = 1.2 + r
    body = weathered(rng, pick(rng, "tank"), 0.3)
    tank_len = length - 2.2
    b.cylinder((0, 0, cz), r, tank_len, body, Mat.METAL, segments=18)
    for sx in (-1, 1):  # dished ends
        b.cylinder((sx * (tank_len / 2 + 0.12), 0, cz), r * 0.8, 0.25, body * 0.95, Mat.METAL, segments=14)
        b.box((sx * (length / 2 - 0.9), 0, 1.15), (1.0, 2.9, 0.08), DARK * 1.6, Mat.METAL)  # end platform
        handrails(b, sx * (length / 2 - 1.3) - 0.4, sx * (length / 2 - 1.3) + 0.4, 1.35, 2.1, DARK * 2)
        b.box((sx * 2.5, 0, 1.2 + 0.2), (0.5, 2.4, 0.4), DARK * 1.4, Mat.METAL)  # saddles
    if rng.random() < 0.35:
        b.cylinder((0, 0, cz), r + 0.01, rng.uniform(0.4, 1.6), pick(rng, "tank_band"), Mat.METAL, segments=18)
    dome_r = rng.uniform(0.4, 0.6)
    b.cylinder((0, 0, cz + r), dome_r, 0.6, body * 0.9, Mat.METAL, axis="z", segments=12)
    b.box((0, 0, cz + r + 0.05), (1.8, 2.2, 0.06), DARK * 2, Mat.METAL)  # dome platform
    for y in (-1.1, 1.1):
        handrails(b, -0.9, 0.9, y, cz + r + 0.9, DARK * 2.2)
    for side in (-1, 1):  # ladders to the dome platform
        b.box((0.6, side * (r * 0.85), cz + r * 0.2), (0.45, 0.06, r * 1.8), DARK * 1.8, Mat.METAL)
    b.box((0, 0, 1.15), (length - 1.4, 0.5, 0.15), DARK, Mat.METAL)
    if rng.random() < 0.6:
        number_marks(b, rng, -tank_len * 0.35, cz - 0.2, r * 0.98, (0.85, 0.85, 0.8))
    return b.array()


def boxcar(rng: np.random.Generator, length: float) -> np.ndarray:
    b = MeshBuilder()
    running_gear(b, length, 1.2)
    height = rng.uniform(*DIMENSIONS["boxcar_height"])
    key = "boxcar" if rng.random() < 0.85 else "boxcar_rare"
    body = weathered(rng, pick(rng, key), 0.35)
    w = rng.uniform(3.1, 3.25)
    body_len = length - 1.4
    roof_rise = rng.uniform(0.05, 0.5)
    eave = height - roof_rise
    b.box((0, 0, (1.25 + eave) / 2), (body_len, w, eave - 1.25), body, Mat.RIBBED)
    if roof_rise > 0.12:
        roof = roof_colour(rng, body)
        b.cylinder((0, 0, eave), (w / 2 + 0.03, roof_rise), body_len + 0.05, roof, Mat.METAL, arc=(0, np.pi))
    else:
        b.box((0, 0, eave + 0.05), (body_len + 0.05, w + 0.06, 0.1), roof_colour(rng, body), Mat.METAL)
    doors = 1 if rng.random() < 0.8 else 2
    door_w = rng.uniform(2.0, 3.8) if doors == 1 else 2.0
    door_xs = [rng.uniform(-0.5, 0.5)] if doors == 1 else [-body_len * 0.2, body_len * 0.2]
    door_col = body * rng.uniform(0.6, 0.9)
    for dx in door_xs:
        for side in (-1, 1):
            y = side * (w / 2 + 0.05)
            b.box((dx, y, (1.3 + eave - 0.1) / 2), (door_w, 0.08, eave - 1.4), door_col, Mat.METAL)
            b.boxes(
                [(dx - door_w / 2, y * 1.01, (1.3 + eave) / 2), (dx + door_w / 2, y * 1.01, (1.3 + eave) / 2)],
                (0.12, 0.06, eave - 1.3),
                DARK * 2,
                Mat.METAL,
            )  # door edges
            b.box((dx, y * 1.02, eave - 0.05), (door_w * 2.1, 0.06, 0.12), DARK, Mat.METAL)  # door rail
    for side in (-1, 1):  # corner posts and side sill
        b.box((0, side * (w / 2 + 0.02), 1.3), (body_len, 0.06, 0.15), body * 0.7, Mat.METAL)
    if rng.random() < 0.8:
        number_marks(b, rng, -body_len * 0.42, eave - 1.0, w / 2 + 0.05, (0.9, 0.9, 0.85))
    return b.array()


def _tarp_load(rng: np.random.Generator, x0: float, x1: float, half_w: float, base_z: float) -> np.ndarray:
    """Height field of a sheet draped over 1-3 lumpy items (vehicles, crates, guns)."""
    nx, ny = 30, 9
    x = np.linspace(x0, x1, nx)
    y = np.linspace(-half_w, half_w, ny)
    h = np.zeros((nx, ny))
    items = int(rng.integers(1, 4))
    edges = np.sort(rng.uniform(x0, x1, items * 2 - 1)) if items > 1 else np.array([])
    bounds = np.concatenate([[x0], edges[1::2] if items > 1 else [], [x1]])
    gx, gy = np.meshgrid(x, y, indexing="ij")
    for i in range(items):
        a, c = bounds[i] + 0.3, bounds[i + 1] - 0.3
        if c - a < 1.0:
            continue
        top = rng.uniform(*DIMENSIONS["tarp_load_height"])
        shape_x = np.clip(np.minimum(gx - a, c - gx) / rng.uniform(0.4, 1.5), 0, 1)
        shape_y = np.clip((half_w - np.abs(gy)) / rng.uniform(0.3, 0.9), 0, 1)
        bump = top * shape_x * shape_y
        if rng.random() < 0.5:  # a cab or turret hump on the item
            cx = rng.uniform(a, c)
            bump += rng.uniform(0.3, 0.9) * np.exp(-((gx - cx) ** 2) / rng.uniform(0.5, 2.0)) * shape_y
        h = np.maximum(h, bump)
    h += rng.normal(0, 0.05, h.shape) * (h > 0.2)
    h[0, :] = h[-1, :] = 0.0
    h[:, 0] = h[:, -1] = 0.0
    return x, y, base_z + np.maximum(h, 0.02)


def _flat_deck(b: MeshBuilder, rng: np.random.Generator, length: float, stakes: bool) -> float:
    """Running gear, deck and (optionally) side stakes of a flat car; returns the deck length."""
    running_gear(b, length, 1.2)
    deck_len = length - 1.2
    deck_col = weathered(rng, pick(rng, "freight_misc"), 0.4)
    b.box((0, 0, 1.18), (deck_len, 2.9, 0.24), deck_col, Mat.METAL)
    if stakes:
        xs = np.arange(-deck_len / 2 + 0.8, deck_len / 2, 1.8)
        for side in (-1, 1):
            centres = np.stack([xs, np.full_like(xs, side * 1.42), np.full_like(xs, 1.55)], 1)
            b.boxes(centres, (0.12, 0.1, 0.5), deck_col * 0.8, Mat.METAL)
    return deck_len


def tarp_flat(rng: np.random.Generator, length: float) -> np.ndarray:
    b = MeshBuilder()
    deck_len = _flat_deck(b, rng, length, stakes=True)
    key = "tarp" if rng.random() < 0.75 else "tarp_rare"
    tarp = weathered(rng, pick(rng, key), 0.3)
    x, y, z = _tarp_load(rng, -deck_len / 2 + 0.2, deck_len / 2 - 0.2, 1.45, 1.3)
    b.heightfield(x, y, z, tarp, Mat.TARP)
    strap_col = DARK * rng.uniform(1, 3)
    for sx in np.linspace(x[2], x[-3], int(rng.integers(3, 8))):
        i = int(np.argmin(np.abs(x - sx)))
        top = float(z[i].max())
        if top > 1.6:
            b.box((sx, 0, (1.3 + top) / 2 + 0.02), (0.07, 2.95, top - 1.3 + 0.06), strap_col)
    return b.array()


def flat_car(rng: np.random.Generator, length: float, load: str) -> np.ndarray:
    """Open flat car: empty (with stakes), with uncovered vehicles, or with containers."""
    b = MeshBuilder()
    deck_len = _flat_deck(b, rng, length, stakes=load == "empty")
    if load == "vehicles":
        x = -deck_len / 2 + 0.3
        while x < deck_len / 2 - 4:
            vlen = rng.uniform(4.0, 7.5)
            col = weathered(rng, pick(rng, "military"), 0.2)
            if rng.random() < 0.5:  # lorry
                b.box((x + 1.0, 0, 2.4), (1.9, 2.3, 1.9), col)
                b.box(
                    (x + 1.95 + (vlen - 2) / 2, 0, 2.3),
                    (vlen - 2.0, 2.4, 1.9 if rng.random() < 0.5 else 0.8),
                    col * 0.9,
                )
            else:  # tracked vehicle with turret and barrel
                b.box((x + vlen / 2, 0, 1.95), (vlen, 2.9, 1.1), col)
                b.cylinder((x + vlen * 0.45, 0, 2.75), 1.0, 0.7, col * 0.95, axis="z", segments=10)
                b.cylinder((x + vlen * 0.45 + 2.2, 0, 2.8), 0.08, 3.5, col * 0.6, segments=6)
            x += vlen + rng.uniform(0.3, 1.5)
    elif load == "containers":
        spots = [(-deck_len / 4, 6.06), (deck_len / 4, 6.06)] if rng.random() < 0.6 else [(0.0, min(12.19, deck_len))]
        for cx, clen in spots:
            if rng.random() < 0.85:
                col = weathered(rng, pick(rng, "container"), 0.3)
                b.box((cx, 0, 1.3 + 1.3), (clen, 2.44, 2.59), col, Mat.RIBBED)
    return b.array()


def gondola(rng: np.random.Generator, length: float, hopper: bool) -> np.ndarray:
    """Open gondola, or a hopper (open coal/ore or covered grain) with chutes under the body."""
    b = MeshBuilder()
    running_gear(b, length, 1.2)
    body = weathered(rng, pick(rng, "hopper" if hopper else "gondola"), 0.45)
    body_len = length - 1.4
    top = rng.uniform(3.3, 3.7) if not hopper else rng.uniform(4.0, 4.6)
    bottom = 1.25 if not hopper else 1.6
    w = 3.15
    covered = hopper and rng.random() < 0.5
    if hopper:  # sloped end walls down to the discharge chutes: a trapezoid seen from the side
        slope = rng.uniform(1.6, 2.6)
        profile = np.array(
            [
                (-body_len / 2, top),
                (-body_len / 2, 2.6),
                (-body_len / 2 + slope, bottom - 0.3),
                (body_len / 2 - slope, bottom - 0.3),
                (body_len / 2, 2.6),
                (body_len / 2, top),
            ]
        )
        b.prism_across(profile, w, body, Mat.RIBBED)
        chutes = np.linspace(-body_len / 2 + slope + 1.0, body_len / 2 - slope - 1.0, 3)
        b.boxes(np.stack([chutes, np.zeros(3), np.full(3, bottom - 0.55)], 1), (1.4, 2.2, 0.5), body * 0.6)
        ribs = np.linspace(-body_len / 2 + slope, body_len / 2 - slope, int(rng.integers(5, 9)))
        for side in (-1, 1):  # vertical side ribs over the straight part of the body
            b.boxes(
                np.stack([ribs, np.full(len(ribs), side * (w / 2 + 0.04)), np.full(len(ribs), (2.6 + top) / 2)], 1),
                (0.12, 0.08, top - 2.6),
                body * 0.8,
                Mat.METAL,
            )
    else:
        for side in (-1, 1):
            b.box((0, side * (w / 2 - 0.05), (bottom + top) / 2), (body_len, 0.1, top - bottom), body, Mat.PLAIN)
            b.box((side * (body_len / 2 - 0.05), 0, (bottom + top) / 2), (0.1, w, top - bottom), body * 0.9)
        b.box((0, 0, bottom + 0.05), (body_len, w, 0.1), body * 0.45)  # floor, seen through the open top
        for side in (-1, 1):  # inner wall faces: darker, so the open top reads from a raised camera
            b.box((0, side * (w / 2 - 0.12), (bottom + top) / 2), (body_len - 0.2, 0.02, top - bottom), body * 0.5)
        stakes = np.linspace(-body_len / 2 + 0.35, body_len / 2 - 0.35, int(rng.integers(8, 13)))
        for side in (-1, 1):  # the evenly spaced outside stakes and the heavy top rim of a Russian gondola
            b.boxes(
                np.stack(
                    [stakes, np.full(len(stakes), side * (w / 2 + 0.05)), np.full(len(stakes), (bottom + top) / 2)], 1
                ),
                (0.16, 0.1, top - bottom),
                body * 0.75,
                Mat.METAL,
            )
            b.box((0, side * (w / 2 + 0.02), top - 0.08), (body_len + 0.1, 0.2, 0.18), body * 0.7, Mat.METAL)
            b.box((0, side * (w / 2 + 0.02), bottom + 0.15), (body_len, 0.18, 0.3), body * 0.6, Mat.METAL)  # hinges
        if rng.random() < 0.7:
            number_marks(b, rng, -body_len * 0.3, (bottom + top) / 2, w / 2 + 0.11, (0.92, 0.92, 0.88))
    if covered:
        b.cylinder((0, 0, top), (w / 2, 0.35), body_len, body * 1.05, Mat.METAL, arc=(0, np.pi))
        hatches = np.linspace(-body_len / 2 + 1.5, body_len / 2 - 1.5, 4)
        b.boxes(np.stack([hatches, np.zeros(4), np.full(4, top + 0.36)], 1), (0.8, 0.6, 0.1), body * 0.7)
    elif rng.random() < 0.7:
        load_col = np.asarray([(0.05, 0.05, 0.05), (0.35, 0.2, 0.12), (0.4, 0.38, 0.35)][rng.integers(3)], np.float32)
        x = np.linspace(-body_len / 2 + 0.1, body_len / 2 - 0.1, 14)
        y = np.linspace(-w / 2 + 0.12, w / 2 - 0.12, 5)
        z = (
            top
            - 0.3
            + rng.uniform(0.0, 0.5)
            * np.outer(np.abs(np.sin(np.linspace(0.2, 2.9, 14) * rng.integers(1, 4))), np.sin(np.linspace(0.3, 2.8, 5)))
        )
        b.heightfield(x, y, z, load_col, Mat.TARP)
    return b.array()


def coach(rng: np.random.Generator, length: float) -> np.ndarray:
    b = MeshBuilder()
    running_gear(b, length, 1.2)
    body = weathered(rng, pick(rng, "coach"), 0.25)
    body_len = length - 1.0
    w = 3.14
    eave = 3.9
    b.box((0, 0, (1.1 + eave) / 2), (body_len, w, eave - 1.1), body)
    b.cylinder((0, 0, eave), (w / 2, 0.45), body_len, roof_colour(rng, body), Mat.METAL, arc=(0, np.pi))
    n = int(body_len / 1.9) - 2
    xs = np.linspace(-body_len / 2 + 3.0, body_len / 2 - 3.0, n)
    for side in (-1, 1):
        b.boxes(
            np.stack([xs, np.full(n, side * (w / 2 + 0.01)), np.full(n, 2.9)], 1), (1.1, 0.02, 0.9), DARK, Mat.GLASS
        )
        b.box((0, side * (w / 2 + 0.01), 2.25), (body_len, 0.02, 0.12), pick(rng, "loco_stripe"))
    return b.array()


def _loco_body(
    b: MeshBuilder,
    rng: np.random.Generator,
    length: float,
    cab_ends: tuple[int, ...],
    pantograph: bool,
    body: Colour,
    stripe: Colour,
) -> None:
    """Full-width cab unit (2TE10/2TE116 section, electric): skirted frame, louvred body, cab with a nose and
    a two-pane windscreen at each of ``cab_ends``, roof fans or pantographs, livery band."""
    w = 3.1
    body_len = length - 1.0
    eave = 4.55
    cab = 2.6
    b.box((0, 0, 1.65), (body_len, w + 0.04, 0.5), body * 0.45, Mat.METAL)  # frame and skirt
    b.box((0, 0, (1.9 + eave) / 2), (body_len, w, eave - 1.9), body)
    b.cylinder((0, 0, eave), (w / 2, 0.5), body_len, roof_colour(rng, body), Mat.METAL, arc=(0, np.pi))
    band_z, band_h = rng.uniform(2.3, 2.9), rng.uniform(0.25, 0.6)
    cab_xs = [e * (body_len / 2 - cab / 2) for e in cab_ends]
    lo = -body_len / 2 + (cab if -1 in cab_ends else 0.6)
    hi = body_len / 2 - (cab if 1 in cab_ends else 0.6)
    for side in (-1, 1):
        y = side * (w / 2 + 0.015)
        b.box((0, y, band_z), (body_len, 0.02, band_h), stripe)
        if pantograph:  # electrics: a row of machine-room windows
            xs = np.linspace(lo + 1.0, hi - 1.0, int(rng.integers(4, 8)))
            b.boxes(np.stack([xs, np.full_like(xs, y), np.full_like(xs, 3.7)], 1), (0.8, 0.02, 0.6), DARK, Mat.GLASS)
        else:  # diesels: louvre grilles along the upper body
            xs = np.linspace(lo + 1.2, hi - 1.2, int(rng.integers(3, 6)))
            centres = np.stack([xs, np.full_like(xs, y), np.full_like(xs, 3.75)], 1)
            b.boxes(centres, (1.6, 0.02, 0.9), body * 0.75, Mat.RIBBED)
        for cx in cab_xs:
            b.box((cx, y, 3.8), (1.1, 0.02, 0.75), DARK, Mat.GLASS)  # cab side window
            b.box((cx - np.sign(cx) * 1.1, y, 2.9), (0.7, 0.02, 1.9), body * 0.7)  # cab door
    for end in cab_ends:
        x = end * body_len / 2
        b.box((x + end * 0.5, 0, 2.35), (1.0, w * 0.9, 0.9), body)  # nose
        b.box((x + end * 1.0, 0, 2.35), (0.05, w * 0.7, band_h), stripe)
        b.box((x + end * 0.5, 0, 2.85), (1.0, w * 0.9, 0.1), body * 0.8)
        for y in (-0.72, 0.72):
            b.box((x + end * 0.03, y, 3.75), (0.06, 1.2, 0.95), DARK, Mat.GLASS)
        b.cylinder((x + end * 0.05, 0, 4.55), 0.18, 0.12, (0.9, 0.9, 0.8), segments=8)  # headlight
    if pantograph:
        for px in (-body_len * 0.3, body_len * 0.3):
            b.box((px, 0, eave + 0.95), (0.15, 1.9, 0.06), DARK * 3)
            b.box((px, 0, eave + 0.7), (1.5, 0.08, 0.06), DARK * 3, rot=_rot_y(25))
    else:
        fans = np.linspace(lo + 1.5, lo + (hi - lo) * 0.55, int(rng.integers(2, 4)))
        b.cylinder([(fx, 0, eave + 0.45) for fx in fans], 0.65, 0.16, DARK * 2, axis="z", segments=10)
        b.box((hi - 2.0, 0, eave + 0.5), (1.2, 0.8, 0.3), body * 0.5)  # exhaust hood
    running_gear(b, length, 1.5, axles=3 if not pantograph else 2, width=3.0)
    number_marks(b, rng, cab_xs[0] - np.sign(cab_xs[0]) * 2.5, band_z + band_h, w / 2 + 0.02, stripe)


def _rot_y(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]], np.float32)


def _shunter(
    b: MeshBuilder, rng: np.random.Generator, length: float, cab_at: float, body: Colour, stripe: Colour
) -> None:
    """Hood locomotive (TEM2: cab near one end; ChME3: cab in the centre) on a full-width platform."""
    frame_len = length - 1.2
    b.box((0, 0, 1.55), (frame_len, 3.1, 0.3), body * 0.6, Mat.METAL)
    b.box((0, 0, 1.45), (frame_len, 3.12, 0.12), stripe)
    cab_len = 2.6
    cab_x = cab_at * frame_len / 2
    hood_h = rng.uniform(3.6, 4.0)
    hood_w = rng.uniform(2.2, 2.45)
    for a, c in ((-frame_len / 2 + 0.3, cab_x - cab_len / 2), (cab_x + cab_len / 2, frame_len / 2 - 0.3)):
        if c - a > 0.5:
            b.box(((a + c) / 2, 0, (1.7 + hood_h) / 2), (c - a, hood_w, hood_h - 1.7), body)
            b.cylinder(((a + c) / 2, 0, hood_h), (hood_w / 2, 0.18), c - a, body * 0.85, Mat.METAL, arc=(0, np.pi))
    b.box((cab_x, 0, 3.1), (cab_len, 3.0, 2.9), body)
    b.box((cab_x, 0, 4.6), (cab_len + 0.2, 3.1, 0.12), body * 0.7)
    for side in (-1, 1):
        b.box((cab_x, side * 1.51, 3.8), (cab_len * 0.7, 0.02, 0.8), DARK, Mat.GLASS)
        handrails(b, -frame_len / 2 + 0.3, frame_len / 2 - 0.3, side * 1.5, 2.6, stripe * 0.9)
    for ex in (-1, 1):
        b.box((cab_x + ex * (cab_len / 2 + 0.01), 0, 3.85), (0.02, 2.2, 0.7), DARK, Mat.GLASS)
    running_gear(b, length, 1.4, axles=3, width=3.0)
    number_marks(b, rng, cab_x - 1.0, 2.2, 1.56, stripe)


def diesel(rng: np.random.Generator, kind: str, length: float, facing: int) -> np.ndarray:
    b = MeshBuilder()
    body = weathered(rng, pick(rng, "loco_body"), 0.25)
    stripe = weathered(rng, pick(rng, "loco_stripe"), 0.2)
    if kind == "2te10":
        _loco_body(b, rng, length, (facing,), False, body, stripe)
    elif kind == "tem2":
        _shunter(b, rng, length, facing * 0.62, body, stripe)
    else:
        _shunter(b, rng, length, 0.0, body, stripe)
    return b.array()


def electric(rng: np.random.Generator, length: float) -> np.ndarray:
    b = MeshBuilder()
    body = weathered(rng, pick(rng, "loco_body"), 0.25)
    _loco_body(b, rng, length, (-1, 1), True, body, weathered(rng, pick(rng, "loco_stripe"), 0.2))
    return b.array()


def steam(rng: np.random.Generator, length: float) -> np.ndarray:
    """Steam locomotive with its tender: boiler, smokebox and chimney, cab, big driving wheels."""
    b = MeshBuilder()
    black = weathered(rng, np.array([0.07, 0.07, 0.07], np.float32), 0.3)
    red = np.array([0.45, 0.1, 0.08], np.float32)
    engine = length * 0.62
    x0 = -length / 2
    b.box((x0 + engine / 2, 0, 1.3), (engine, 2.6, 0.4), black * 1.3, Mat.METAL)  # frame
    b.cylinder((x0 + engine * 0.42, 0, 2.9), 0.85, engine * 0.7, black, Mat.METAL, segments=16)  # boiler
    b.cylinder((x0 + 0.8, 0, 3.85), 0.3, 0.9, black, Mat.METAL, axis="z", segments=10)  # chimney
    b.cylinder((x0 + engine * 0.45, 0, 3.85), 0.45, 0.6, black, Mat.METAL, axis="z", segments=10)  # dome
    b.box((x0 + engine * 0.88, 0, 3.2), (engine * 0.22, 3.0, 2.4), black)  # cab
    for side in (-1, 1):
        b.box((x0 + engine * 0.88, side * 1.51, 3.6), (0.8, 0.02, 0.7), DARK, Mat.GLASS)
    drivers = [(x0 + engine * f, y, 0.75) for f in (0.3, 0.48, 0.66) for y in (-0.8, 0.8)]
    b.cylinder(drivers, 0.75, 0.12, red, Mat.METAL, axis="y", segments=14)
    tender = length - engine - 0.5
    b.box((length / 2 - tender / 2, 0, 2.4), (tender, 3.0, 2.6), black)
    b.box((length / 2 - tender / 2, 0, 3.75), (tender * 0.9, 2.6, 0.15), DARK * 0.5, Mat.TARP)  # coal
    wheels = [(length / 2 - tender * f, y, 0.5) for f in (0.2, 0.4, 0.6, 0.8) for y in (-0.8, 0.8)]
    b.cylinder(wheels, 0.5, 0.12, DARK, Mat.METAL, axis="y", segments=10)
    return b.array()


def track_machine(rng: np.random.Generator, length: float) -> np.ndarray:
    """Yellow or orange track-maintenance machine: cabs at both ends, machinery and a boom between."""
    b = MeshBuilder()
    running_gear(b, length, 1.2)
    colour = weathered(rng, np.array([(0.8, 0.65, 0.1), (0.85, 0.4, 0.1)][rng.integers(2)], np.float32), 0.3)
    body_len = length - 1.0
    for end in (-1, 1):
        cx = end * (body_len / 2 - 1.5)
        b.box((cx, 0, 2.7), (3.0, 3.0, 2.6), colour)
        b.box((cx + end * 1.51, 0, 3.3), (0.02, 2.4, 0.9), DARK, Mat.GLASS)
    b.box((0, 0, 2.0), (body_len - 6.0, 2.6, 1.4), colour * 0.8, Mat.METAL)
    b.box((0, 0, 3.2), (body_len * 0.45, 0.5, 0.4), colour * 0.9, rot=_rot_y(rng.uniform(-15, 15)))  # boom
    return b.array()


def vehicle_mesh(kind: str, length: float, seed: int, facing: int = 1) -> np.ndarray:
    """Local mesh of one rail vehicle of ``kind`` (see ``params.VEHICLE_KINDS``)."""
    rng = np.random.default_rng(seed)
    builders = {
        "tank": lambda: tank_car(rng, length),
        "boxcar": lambda: boxcar(rng, length),
        "tarp_flat": lambda: tarp_flat(rng, length),
        "flat_empty": lambda: flat_car(rng, length, "empty"),
        "flat_vehicles": lambda: flat_car(rng, length, "vehicles"),
        "flat_container": lambda: flat_car(rng, length, "containers"),
        "gondola": lambda: gondola(rng, length, hopper=False),
        "hopper": lambda: gondola(rng, length, hopper=True),
        "coach": lambda: coach(rng, length),
        "electric": lambda: electric(rng, length),
        "steam": lambda: steam(rng, length),
        "track_machine": lambda: track_machine(rng, length),
    }
    if kind in ("2te10", "tem2", "chme3"):
        return diesel(rng, kind, length, facing)
    return builders[kind]()


# --------------------------------------------------------------------------- track and scenery


def track(
    b: MeshBuilder,
    y: float,
    x0: float,
    x1: float,
    dual_gauge: bool,
    sleepers: tuple[float, float] | None,
    segments: int = 1,
) -> None:
    """Ballast bed, concrete sleepers (over the x range where they can be seen) and 2 or 4 rails at lateral
    ``y``, in ``segments`` pieces so that a curve can bend them."""
    ballast = np.array([0.42, 0.40, 0.37], np.float32)
    profile = np.array([(y - 2.3, -0.55), (y + 2.3, -0.55), (y + 1.6, -0.18), (y - 1.6, -0.18)])
    edges = np.linspace(x0, x1, segments + 1)
    for a, c in itertools.pairwise(edges):
        b.prism(profile, a, c, ballast, Mat.BALLAST)
    if sleepers:
        spacing = DIMENSIONS["sleeper_spacing"]
        xs = np.arange(max(x0, sleepers[0]) // spacing * spacing, min(x1, sleepers[1]), spacing)
        b.boxes(
            np.stack([xs, np.full_like(xs, y), np.full_like(xs, -0.14)], 1),
            (0.28, 2.7, 0.1),
            (0.5, 0.49, 0.47),
            Mat.PLAIN,
        )
    half = DIMENSIONS["gauge_1520"] / 2 + 0.035
    rails = [y - half, y + half]
    if dual_gauge:
        rails.append(y - half + DIMENSIONS["gauge_1435"] + 0.035 * 2 - 0.07)
    mids = (edges[:-1] + edges[1:]) / 2
    centres = np.array([(m, r, -0.07) for m in mids for r in rails])
    b.boxes(centres, ((x1 - x0) / segments, 0.075, 0.15), (0.33, 0.28, 0.25), Mat.METAL)


def ground_plane(b: MeshBuilder, cx: float, cy: float, half: float, colour: Colour, mat: int) -> None:
    b.boxes([(cx, cy, -0.6)], (2 * half, 2 * half, 0.01), colour, mat)


def road_truck(rng: np.random.Generator, tanker: bool) -> np.ndarray:
    """Road lorry (tarp or box body) or fuel-tanker lorry: a look-alike of rail vehicles."""
    b = MeshBuilder()
    cab_col = weathered(rng, pick(rng, "container"), 0.3)
    length = rng.uniform(7.0, 13.0)
    b.box((length / 2 - 1.2, 0, 1.8), (2.2, 2.45, 2.2), cab_col)
    b.box((length / 2 - 0.1, 0, 2.3), (0.05, 2.0, 0.8), DARK, Mat.GLASS)
    b.box((0, 0, 0.9), (length, 1.2, 0.3), DARK, Mat.METAL)
    for wx in np.linspace(-length / 2 + 1.0, length / 2 - 1.5, 3):
        for y in (-1.0, 1.0):
            b.cylinder((wx, y, 0.5), 0.5, 0.35, DARK, axis="y", segments=10)
    rear = length - 2.6
    if tanker:
        col = np.asarray([(0.8, 0.8, 0.78), (0.6, 0.6, 0.6), (0.7, 0.4, 0.1), (0.15, 0.15, 0.15)][rng.integers(4)])
        b.cylinder((-1.3, 0, 2.2), (1.2, 1.0), rear, weathered(rng, col, 0.3), Mat.METAL, segments=16)
    else:
        col = weathered(rng, pick(rng, "tarp" if rng.random() < 0.5 else "container"), 0.3)
        b.box((-1.3, 0, 2.3), (rear, 2.5, 2.6), col, Mat.TARP if rng.random() < 0.5 else Mat.RIBBED)
    return b.array()


def ground_containers(rng: np.random.Generator) -> np.ndarray:
    b = MeshBuilder()
    rows, cols, tiers = int(rng.integers(1, 4)), int(rng.integers(1, 5)), int(rng.integers(1, 3))
    clen = 12.19 if rng.random() < 0.5 else 6.06
    for r in range(rows):
        for c in range(cols):
            for t in range(tiers):
                if rng.random() < 0.8:
                    b.box(
                        (r * (clen + 0.5), c * 2.6, 1.3 + t * 2.59 - 0.6),
                        (clen, 2.44, 2.59),
                        weathered(rng, pick(rng, "container"), 0.3),
                        Mat.RIBBED,
                    )
    return b.array()


def shed(rng: np.random.Generator) -> np.ndarray:
    b = MeshBuilder()
    lx, ly, h = rng.uniform(6, 30), rng.uniform(5, 15), rng.uniform(3, 7)
    col = weathered(rng, pick(rng, "building"), 0.3)
    b.box((0, 0, h / 2 - 0.6), (lx, ly, h), col, Mat.RIBBED if rng.random() < 0.5 else Mat.PLAIN)
    rise = rng.uniform(0.5, 2.5)
    roof = weathered(rng, pick(rng, "freight_misc"), 0.3)
    b.prism(
        np.array([(-ly / 2 - 0.3, h - 0.6), (ly / 2 + 0.3, h - 0.6), (0.0, h - 0.6 + rise)]),
        -lx / 2 - 0.3,
        lx / 2 + 0.3,
        roof,
        Mat.METAL,
    )
    return b.array()


def building(rng: np.random.Generator) -> np.ndarray:
    b = MeshBuilder()
    lx, ly = rng.uniform(10, 50), rng.uniform(8, 20)
    floors = int(rng.integers(1, 6))
    h = floors * 3.2 + 0.5
    col = weathered(rng, pick(rng, "building"), 0.2)
    b.box((0, 0, h / 2 - 0.6), (lx, ly, h), col)
    nx = max(1, int(lx / 3.5))
    xs = np.linspace(-lx / 2 + 1.5, lx / 2 - 1.5, nx)
    zs = np.arange(floors) * 3.2 + 1.2
    gx, gz = np.meshgrid(xs, zs)
    for side in (-1, 1):
        c = np.stack([gx.ravel(), np.full(gx.size, side * (ly / 2 + 0.01)), gz.ravel()], 1)
        b.boxes(c, (1.4, 0.02, 1.4), (0.1, 0.12, 0.14), Mat.GLASS)
    if rng.random() < 0.3:  # slogan board on the roof
        b.box((0, 0, h + 0.6), (lx * 0.7, 0.2, 1.6), pick(rng, "loco_stripe"))
    return b.array()


def storage_tank(rng: np.random.Generator) -> np.ndarray:
    b = MeshBuilder()
    col = weathered(rng, np.asarray([(0.78, 0.78, 0.75), (0.6, 0.6, 0.6), (0.3, 0.3, 0.3)][rng.integers(3)]), 0.25)
    if rng.random() < 0.5:
        r, h = rng.uniform(4, 18), rng.uniform(6, 16)
        b.cylinder((0, 0, h / 2 - 0.6), r, h, col, Mat.METAL, axis="z", segments=24)
    else:  # horizontal tank on saddles: looks very like a tank car
        r, length = rng.uniform(1.2, 1.8), rng.uniform(6, 16)
        b.cylinder((0, 0, r + 0.4), r, length, col, Mat.METAL, segments=18)
        b.boxes([(-length / 3, 0, 0.2), (length / 3, 0, 0.2)], (0.6, r * 1.6, 1.2), DARK * 3)
    return b.array()


def vegetation(rng: np.random.Generator, length: float) -> np.ndarray:
    """A strip of bushes and trees (blobs), ``length`` metres long along x."""
    b = MeshBuilder()
    n = int(np.clip(length / rng.uniform(2, 6), 1, 120))
    xs = rng.uniform(-length / 2, length / 2, n)
    tall = rng.random(n) < 0.35
    hs = np.where(tall, rng.uniform(4, 12, n), rng.uniform(0.8, 3.5, n))
    greens = np.stack([rng.uniform(0.08, 0.25, n), rng.uniform(0.18, 0.38, n), rng.uniform(0.05, 0.15, n)], 1)
    ys = rng.normal(0, 2.0, n)
    radii = np.stack([hs * rng.uniform(0.3, 0.6, n), hs * rng.uniform(0.3, 0.6, n), hs * 0.5], 1)
    b.spheres(np.stack([xs, ys, hs * 0.5 + np.where(tall, hs * 0.25, 0) - 0.5], 1), radii, greens, Mat.TARP)
    trunks = np.flatnonzero(tall)
    if len(trunks):
        b.boxes(
            np.stack([xs[trunks], ys[trunks], hs[trunks] * 0.3 - 0.5], 1),
            np.stack([np.full(len(trunks), 0.3), np.full(len(trunks), 0.3), hs[trunks] * 0.6], 1),
            (0.2, 0.15, 0.1),
        )
    return b.array()


def fence(rng: np.random.Generator, length: float) -> np.ndarray:
    b = MeshBuilder()
    spacing = rng.uniform(2.5, 4.0)
    h = rng.uniform(1.8, 3.0)
    xs = np.arange(-length / 2, length / 2, spacing)
    col = np.asarray((0.3, 0.3, 0.3), np.float32) * rng.uniform(0.6, 1.6)
    b.boxes(np.stack([xs, np.zeros_like(xs), np.full_like(xs, h / 2 - 0.6)], 1), (0.1, 0.1, h), col)
    for z in np.linspace(0.2, h - 0.7, int(rng.integers(2, 5))):
        b.box((0, 0, z), (length, 0.03, 0.03), col)
    if rng.random() < 0.4:  # solid concrete fence panels
        b.box((0, 0, h * 0.35 - 0.6), (length, 0.15, h * 0.7), (0.55, 0.54, 0.5))
    return b.array()


def catenary_masts(rng: np.random.Generator, length: float, reach: float) -> np.ndarray:
    b = MeshBuilder()
    xs = np.arange(-length / 2, length / 2, rng.uniform(45, 65))
    col = (0.35, 0.35, 0.33)
    b.boxes(np.stack([xs, np.zeros_like(xs), np.full_like(xs, 4.0)], 1), (0.35, 0.35, 9.5), col)
    b.boxes(np.stack([xs, np.full_like(xs, reach / 2), np.full_like(xs, 7.5)], 1), (0.12, reach, 0.12), col)
    b.box((0, reach * 0.85, 6.6), (length, 0.03, 0.03), (0.2, 0.2, 0.2))
    return b.array()


def bridge_truss(rng: np.random.Generator, length: float, half_width: float) -> np.ndarray:
    """Steel truss girders on both sides of a bridge track (heavy occluders of the trains)."""
    b = MeshBuilder()
    h = rng.uniform(7.0, 11.0)
    panel = rng.uniform(5.0, 8.0)
    col = weathered(rng, np.asarray([(0.25, 0.3, 0.25), (0.35, 0.35, 0.35), (0.45, 0.3, 0.25)][rng.integers(3)]), 0.2)
    xs = np.arange(-length / 2, length / 2 + 1e-3, panel)
    ang = np.rad2deg(np.arctan2(h, panel))
    for side in (-1, 1):
        y = side * half_width
        b.box((0, y, 0.2), (length, 0.4, 0.8), col)
        b.box((0, y, h), (length, 0.4, 0.5), col)
        b.boxes(np.stack([xs, np.full_like(xs, y), np.full_like(xs, h / 2)], 1), (0.3, 0.3, h), col)
        diag = np.hypot(h, panel)
        for i, x in enumerate(xs[:-1]):
            sign = 1 if i % 2 == 0 else -1
            b.box((x + panel / 2, y, h / 2), (diag, 0.25, 0.25), col, rot=_rot_y(-sign * ang))
    braces = xs[::2]
    b.boxes(np.stack([braces, np.zeros_like(braces), np.full_like(braces, h)], 1), (0.25, 2 * half_width, 0.25), col)
    return b.array()


def platform(rng: np.random.Generator, length: float, width: float) -> np.ndarray:
    """Station platform (concrete, 0.5-1.1 m above the rail) with a canopy on posts at times."""
    b = MeshBuilder()
    height = rng.uniform(0.5, 1.1)
    concrete = np.full(3, rng.uniform(0.45, 0.65), np.float32)
    b.box((0, 0, (height - 0.6) / 2), (length, width, height + 0.6), concrete)
    b.box((0, -width / 2 + 0.3, height + 0.01), (length, 0.4, 0.02), (0.75, 0.7, 0.3))  # edge line
    if rng.random() < 0.4:
        roof_len = length * rng.uniform(0.2, 0.6)
        posts = np.arange(-roof_len / 2, roof_len / 2 + 1e-3, 6.0)
        b.boxes(
            np.stack([posts, np.zeros_like(posts), np.full_like(posts, height + 1.6)], 1), (0.25, 0.25, 3.2), DARK * 3
        )
        b.box((0, 0, height + 3.25), (roof_len, width * 0.8, 0.2), weathered(rng, pick(rng, "building"), 0.3))
    return b.array()


def embankment(length: float, height: float, colour: Colour) -> np.ndarray:
    b = MeshBuilder()
    b.prism(
        np.array([(-height * 2.5, -0.6), (height * 2.5, -0.6), (0.0, height)]),
        -length / 2,
        length / 2,
        colour,
        Mat.GROUND,
    )
    return b.array()


# --------------------------------------------------------------------------- whole scene


def _prop_mesh(prop: Prop, rng: np.random.Generator) -> np.ndarray:
    makers = {
        "truck": lambda: road_truck(rng, tanker=False),
        "tanker": lambda: road_truck(rng, tanker=True),
        "containers": lambda: ground_containers(rng),
        "shed": lambda: shed(rng),
        "building": lambda: building(rng),
        "storage_tank": lambda: storage_tank(rng),
        "vegetation": lambda: vegetation(rng, prop.length),
        "fence": lambda: fence(rng, prop.length),
        "masts": lambda: catenary_masts(rng, prop.length, prop.height),
        "truss": lambda: bridge_truss(rng, prop.length, prop.height),
        "embankment": lambda: embankment(prop.length, prop.height, (0.33, 0.33, 0.22)),
        "platform": lambda: platform(rng, prop.length, prop.height),
    }
    return makers[prop.kind]()


@dataclass(frozen=True)
class SceneMesh:
    """The triangles of a scene: vehicles first (``ranges``: instance, first vertex, count), then the other
    shadow casters, then track and ground (``casters`` = number of vertices that cast shadows)."""

    vertices: np.ndarray
    ranges: list[tuple[int, int, int]]
    casters: int


def scene_mesh(scene: Scene) -> SceneMesh:
    """All triangles of a ``Scene``. Instance ids are 1 + the vehicle's index in ``scene.vehicles``, others 0."""
    parts: list[np.ndarray] = []
    ranges: list[tuple[int, int, int]] = []
    first = 0
    for i, v in enumerate(scene.vehicles):
        mesh = transform(vehicle_mesh(v.kind, v.length, v.seed, v.facing), 0.0, (v.x, v.y, 0.0), inst=i + 1)
        parts.append(mesh)
        ranges.append((i + 1, first, len(mesh)))
        first += len(mesh)
    for prop in scene.props:
        parts.append(transform(_prop_mesh(prop, np.random.default_rng(prop.seed)), prop.yaw, (prop.x, prop.y, 0.0)))
    casters = sum(len(p) for p in parts)
    b = MeshBuilder()
    x0, x1 = scene.track_x
    segments = 1 if scene.curve[1] == 0.0 else max(1, int((x1 - x0) / max(20.0, (x1 - x0) / 120)))
    for y, dual in scene.tracks:
        track(b, y, x0, x1, dual, scene.sleeper_x, segments)
    parts.append(b.array())
    world = np.concatenate(parts)
    world[:, 0:3] = bend(world[:, 0:3], scene.curve, world[:, 3:6])
    b = MeshBuilder()
    if scene.ground_band[1] > 0:  # a flat plane under everything, from under the camera to beyond the tracks
        cy, half, _ = scene.ground_band
        ex, ey = scene.camera.eye[0], scene.camera.eye[1]
        margin = np.array([50.0, 50.0 + half * 1.6])
        lo = np.minimum(world[:, 0:2].min(axis=0), (ex, ey)) - margin
        hi = np.maximum(world[:, 0:2].max(axis=0), (ex, ey)) + margin
        (cx, cy), (sx, sy) = (lo + hi) / 2, hi - lo
        b.boxes([(cx, cy, -0.6)], (sx, sy, 0.01), scene.ground_colour, Mat.GROUND)
    else:
        cx, cy = scene.camera.target[0], scene.camera.target[1]
        ground_plane(b, cx, cy, scene.camera.half_extent * 2.5 + 50, (0, 0, 0), Mat.CATCHER)
    return SceneMesh(np.concatenate([world, b.array()]), ranges, casters)
