"""Random scene specifications: small frozen dataclasses, pure functions of a numpy ``Generator``.

A ``Scene`` says where the tracks, vehicles, distractors, camera and sun are; ``geometry``
turns it into triangles and ``render`` draws them. World frame: tracks run along x, z up.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from railvision.synth.params import (
    BLOCK_PROB,
    CARS_PER_CONSIST,
    CURVE,
    DIMENSIONS,
    LIGHT,
    LIGHT_ENGINE_PROB,
    LOCO_COUNT_WEIGHTS,
    LOCO_KINDS,
    PLATFORM_PROB,
    SCENERY,
    VEHICLE_KINDS,
    VIEW_RANGES,
)
from railvision.taxonomy import class_id

Vec3 = tuple[float, float, float]


@dataclass(frozen=True, slots=True)
class Vehicle:
    kind: str
    cls: int
    length: float  # over couplers
    x: float  # centre along the track
    y: float  # track centre line
    seed: int
    facing: int = 1


@dataclass(frozen=True, slots=True)
class Prop:
    """A non-target object: distractor (lorry, tank, shed...) or occluder (fence, trees, truss)."""

    kind: str
    x: float
    y: float
    yaw: float
    seed: int
    length: float = 0.0  # strips (vegetation, fences, masts, trusses, embankments)
    height: float = 0.0


@dataclass(frozen=True, slots=True)
class Camera:
    ortho: bool
    eye: Vec3
    target: Vec3
    up: Vec3
    fov_deg: float  # perspective: full vertical (= horizontal) field of view
    half_extent: float  # orthographic: half the frame size in metres
    near: float
    far: float


@dataclass(frozen=True, slots=True)
class Light:
    sun_dir: Vec3  # unit vector towards the sun
    sun_colour: Vec3
    ambient: Vec3
    overcast: bool
    shadow_extent: float  # half size of the shadow map's footprint, metres


@dataclass(frozen=True, slots=True)
class Scene:
    view: str
    camera: Camera
    light: Light
    haze_colour: Vec3
    haze_beta: float  # extinction per metre (ground); overhead haze is a flat veil in post
    haze_veil: float
    tracks: tuple[tuple[float, bool], ...]  # (lateral y, dual gauge)
    track_x: tuple[float, float]
    sleeper_x: tuple[float, float] | None  # x range with sleeper geometry (where they can be resolved)
    vehicles: tuple[Vehicle, ...]
    props: tuple[Prop, ...]
    ground_colour: Vec3
    # rendered ground: (centre y, half width beyond which it fades, opacity on the camera side); 0 width: catcher
    ground_band: tuple[float, float, float]
    water_from: float  # ground view: water on the camera side this far from the tracks (0: none)
    curve: tuple[float, float]  # (x where the track is straight, signed radius in m; 0: straight), see ``bend``
    snow: float  # winter: snow cover on up-facing surfaces (0: none)
    background_distance: float
    post_seed: int
    notes: dict[str, float] = field(default_factory=dict)


def _curve(rng: np.random.Generator, x0: float) -> tuple[float, float]:
    """Straight track, or a curve of ``CURVE["radius_m_log"]`` that is straight (tangent to x) at ``x0``."""
    if rng.random() >= CURVE["prob"]:
        return (float(x0), 0.0)
    radius = _log_uniform(rng, *CURVE["radius_m_log"])
    return (float(x0), float(radius if rng.random() < 0.5 else -radius))


def bend(points: np.ndarray, curve: tuple[float, float], normals: np.ndarray | None = None) -> np.ndarray:
    """Map straight-track coordinates (x along, y across) onto the curve; rotates ``normals`` in place.

    A point at arc length x - x0 and lateral offset y goes to distance R - y from the curve centre
    (x0, R), turned by (x - x0) / R; z is unchanged. The identity for a straight track.
    """
    x0, radius = curve
    if radius == 0.0:
        return points
    phi = (points[:, 0] - x0) / radius
    c, s = np.cos(phi), np.sin(phi)
    r = radius - points[:, 1]
    out = points.copy()
    out[:, 0] = x0 + r * s
    out[:, 1] = radius - r * c
    if normals is not None:
        nx, ny = normals[:, 0].copy(), normals[:, 1].copy()
        normals[:, 0] = nx * c - ny * s
        normals[:, 1] = nx * s + ny * c
    return out


def _rolled_up(eye: Vec3, target: Vec3, roll_deg: float) -> Vec3:
    """The camera's up vector for a hand-held photo tilted by ``roll_deg`` about the line of sight."""
    f = np.asarray(target, float) - np.asarray(eye, float)
    f /= np.linalg.norm(f)
    side = np.cross(f, (0.0, 0.0, 1.0))
    side /= np.linalg.norm(side)
    up = np.cross(side, f)
    a = np.deg2rad(roll_deg)
    return tuple(float(v) for v in np.cos(a) * up + np.sin(a) * side)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _choice(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = list(weights)
    w = np.asarray([weights[n] for n in names], float)
    return names[int(rng.choice(len(names), p=w / w.sum()))]


def _length(rng: np.random.Generator, kind: str) -> float:
    d = DIMENSIONS
    if kind == "tank":
        return rng.uniform(*(d["tank_length_long"] if rng.random() < SCENERY["long_tank_prob"] else d["tank_length"]))
    table = {
        "boxcar": d["boxcar_length"],
        "tarp_flat": (d["flat_deck_length"][0] + 1.2, d["flat_deck_length"][1] + 1.2),
        "flat_empty": (d["flat_deck_length"][0] + 1.2, d["flat_deck_length"][1] + 1.2),
        "flat_vehicles": (d["flat_deck_length"][0] + 1.2, d["flat_deck_length"][1] + 1.2),
        "flat_container": (14.6, 20.0),
        "gondola": d["gondola_length"],
        "hopper": d["hopper_length"],
        "coach": d["coach_length"],
        "electric": (16.5, 20.0),
        "steam": (22.0, 27.0),
        "track_machine": (12.0, 20.0),
        "2te10": d["loco_section_length"],
        "tem2": d["shunter_length"],
        "chme3": d["shunter_length"],
    }
    return float(rng.uniform(*table[kind]))


def consist(
    rng: np.random.Generator, y: float, x_start: float, direction: int, n_cars: int, n_locos: int
) -> list[Vehicle]:
    """A train: ``n_locos`` locomotives (a 2TE10 counts its two sections) then cars, coupled in a line."""
    kinds: list[str] = []
    for _ in range(n_locos):
        loco = _choice(rng, LOCO_KINDS)
        kinds += [loco, loco] if loco == "2te10" else [loco]
    weights = {k: w for k, (_, w) in VEHICLE_KINDS.items() if w > 0}
    block_kind = _choice(rng, weights) if rng.random() < BLOCK_PROB else None
    for _ in range(n_cars):
        kinds.append(block_kind if block_kind and rng.random() < SCENERY["block_purity"] else _choice(rng, weights))
    out: list[Vehicle] = []
    x = x_start
    section = 0
    for kind in kinds:
        length = _length(rng, kind)
        centre = x + direction * length / 2
        facing = direction
        if kind == "2te10":  # the two sections stand back to back, cabs outward
            facing = direction if section % 2 == 0 else -direction
            section += 1
        out.append(Vehicle(kind, class_id(VEHICLE_KINDS[kind][0]), length, centre, y, int(rng.integers(2**31)), facing))
        x += direction * (length + rng.uniform(0.0, 0.15))
    return out


def _light(rng: np.random.Generator, extent: float) -> Light:
    overcast = bool(rng.random() < LIGHT["overcast_prob"])
    elev = np.deg2rad(rng.uniform(*LIGHT["sun_elevation_deg"]))
    az = rng.uniform(0, 2 * np.pi)
    sun = (float(np.cos(elev) * np.cos(az)), float(np.cos(elev) * np.sin(az)), float(np.sin(elev)))
    warm = np.clip(1.0 - np.sin(elev), 0, 1) * 0.25
    inten = rng.uniform(*LIGHT["sun_intensity"])
    if overcast:
        amb = rng.uniform(*LIGHT["ambient_overcast"])
        sun_col = (0.25 * inten,) * 3
        ambient = (amb * 0.97, amb * 0.99, amb * 1.02)
    else:
        amb = rng.uniform(*LIGHT["ambient_sunny"])
        sun_col = (inten * (0.95 + warm), inten * (0.92 + warm * 0.4), inten * (0.88 - warm * 0.3))
        ambient = (amb * 0.85, amb * 0.92, amb * 1.1)
    return Light(sun, tuple(map(float, sun_col)), tuple(map(float, ambient)), overcast, float(extent))


def _tracks(rng: np.random.Generator, n: int) -> tuple[tuple[float, bool], ...]:
    ys = [0.0]
    for _ in range(n - 1):
        ys.append(
            ys[-1]
            + rng.uniform(*DIMENSIONS["track_spacing"])
            + (rng.uniform(3, 12) if rng.random() < SCENERY["wide_gap_prob"] else 0)
        )
    centre = ys[len(ys) // 2]
    return tuple((float(y - centre), bool(rng.random() < SCENERY["dual_gauge_prob"])) for y in ys)


def _trains(
    rng: np.random.Generator,
    tracks: tuple[tuple[float, bool], ...],
    centre_x: float,
    spread: float,
    main: int,
    fill: float,
) -> list[Vehicle]:
    """A consist on the main track (usually across ``centre_x``) and standing rakes on some other tracks."""
    out: list[Vehicle] = []
    for i, (y, _) in enumerate(tracks):
        if i != main and rng.random() > fill:
            continue
        n = int(rng.integers(CARS_PER_CONSIST[0], CARS_PER_CONSIST[1] + 1))
        direction = 1 if rng.random() < 0.5 else -1
        if i != main and rng.random() < LIGHT_ENGINE_PROB:  # locomotives parked on their own
            n, n_locos = 0, int(rng.integers(1, 4))
        else:
            n_locos = (
                int(rng.choice(3, p=LOCO_COUNT_WEIGHTS))
                if i == main or rng.random() < SCENERY["side_track_locos_prob"]
                else 0
            )
        cars = consist(rng, y, 0.0, direction, n, n_locos)
        length = sum(v.length for v in cars)
        if rng.random() < SCENERY["covers_centre_prob"][i != main]:  # covers the centre of the view
            start = centre_x - direction * rng.uniform(0.05, 0.95) * length
        else:  # starts or ends somewhere in (or near) the view
            start = centre_x + rng.uniform(-spread, spread) - (direction * length if rng.random() < 0.5 else 0.0)
        out += [replace(v, x=float(v.x + start)) for v in cars]
    return out


def _props_common(
    rng: np.random.Generator, y_far: float, y_near: float, x_lo: float, x_hi: float, overhead: bool
) -> list[Prop]:
    """Look-alikes behind (or beside) the tracks: lorries, tankers, containers, sheds, tanks, buildings."""
    props: list[Prop] = []
    kinds = {"truck": 1.0, "tanker": 1.0, "containers": 1.0, "shed": 1.0, "building": 1.2, "storage_tank": 1.0}
    for _ in range(int(rng.integers(SCENERY["distractors"][0], SCENERY["distractors"][1] + 1))):
        kind = _choice(rng, kinds)
        side = y_far if rng.random() < SCENERY["distractor_far_side_prob"] else y_near
        y = side + np.sign(side) * rng.uniform(8, 60) * (1.0 if kind not in ("building", "storage_tank") else 1.6)
        yaw = 0.0 if rng.random() < 0.6 else rng.uniform(0, 180)
        props.append(Prop(kind, float(rng.uniform(x_lo, x_hi)), float(y), float(yaw), int(rng.integers(2**31))))
    if rng.random() < SCENERY["road_prob"]:  # a road with lorries along the line
        y_road = y_far + np.sign(y_far) * rng.uniform(6, 25)
        for _ in range(int(rng.integers(1, 5))):
            kind = "tanker" if rng.random() < 0.5 else "truck"
            yaw = 0.0 if rng.random() < 0.5 else 180.0
            props.append(Prop(kind, float(rng.uniform(x_lo, x_hi)), float(y_road), yaw, int(rng.integers(2**31))))
    if rng.random() < PLATFORM_PROB:  # station platform along the outer track, on either side
        edge = y_far if rng.random() < 0.5 else y_near
        width = float(rng.uniform(4.0, 9.0))
        props.append(
            Prop(
                "platform",
                float(rng.uniform(x_lo, x_hi) * 0.3),
                float(edge + np.sign(edge) * (width / 2 - 1.25)),
                0.0,
                int(rng.integers(2**31)),
                length=float(rng.uniform(80, 350)),
                height=width,
            )
        )
    if rng.random() < SCENERY["masts_prob"]:
        props.append(
            Prop(
                "masts",
                0.0,
                float(y_near + np.sign(y_near) * 2.8),
                0.0,
                int(rng.integers(2**31)),
                length=x_hi - x_lo,
                height=float(abs(y_far - y_near) + 5.6),
            )
        )
    if rng.random() < SCENERY["vegetation_prob"][overhead]:
        n = int(rng.integers(1, 4))
        for _ in range(n):
            y = y_near + np.sign(y_near) * rng.uniform(4, 40 if not overhead else 25)
            props.append(
                Prop(
                    "vegetation",
                    float(rng.uniform(x_lo, x_hi)),
                    float(y),
                    0.0,
                    int(rng.integers(2**31)),
                    length=float(rng.uniform(10, 150)),
                )
            )
    return props


def _sleeper_range(eye_x: float, target_x: float, field_w: float) -> tuple[float, float]:
    """Sleepers are resolved from the camera to about twice the target distance, not beyond."""
    lo, hi = min(eye_x, target_x), max(eye_x, target_x)
    far = target_x + (target_x - eye_x)
    return (float(min(lo, far) - field_w - 20), float(max(hi, far) + field_w + 20))


def ground_scene(rng: np.random.Generator, imgsz: int, negative: bool) -> Scene:
    r = VIEW_RANGES["ground"]
    tele = rng.random() < r["telephoto_prob"]
    counts, weights = zip(*SCENERY["ground_tracks"].items(), strict=True)
    n_tracks = int(rng.choice(counts, p=np.asarray(weights) / sum(weights)))
    bridge = n_tracks <= 2 and rng.random() < SCENERY["bridge_prob"]
    tracks = _tracks(rng, n_tracks)
    main = int(rng.integers(n_tracks))
    car_px = _log_uniform(rng, *r["car_height_px_log"])
    if tele:
        dist = _log_uniform(rng, *r["range_m_tele_log"])
        focal = float(np.clip(car_px * dist * 36.0 / (imgsz * 4.5), *r["focal_mm_tele"]))
    else:
        dist = _log_uniform(rng, *r["range_m_close_log"])
        focal = float(rng.uniform(*r["focal_mm_close"]))
    fov = float(np.rad2deg(2 * np.arctan(18.0 / focal)))
    field_w = dist * 36.0 / focal
    shallow = rng.random() < r["shallow_angle_prob"]
    theta = np.deg2rad(rng.uniform(*r["shallow_angle_deg" if shallow else "view_angle_deg"]))
    elevated = dist > 300 and rng.random() < r["elevated_prob"]  # hillside or tall river bank
    height = float(rng.uniform(*r["camera_height_m_elevated" if elevated else "camera_height_m"]))
    side = 1.0 if rng.random() < 0.5 else -1.0
    sx = 1.0 if rng.random() < 0.5 else -1.0
    y_main = tracks[main][0]
    target = (
        float(rng.normal(0, field_w * 0.1)),
        y_main,
        float(2.3 + rng.normal(0, 1.5) + field_w * rng.normal(0, r["target_height_sd"])),  # train off-centre too
    )
    horiz = np.sqrt(max(dist**2 - height**2, 1.0))
    theta = max(theta, float(np.arcsin(min(1.0, r["min_lateral_m"] / horiz))))  # photographers stand off the line
    curve = _curve(rng, target[0])
    eye = (target[0] - sx * horiz * np.cos(theta), y_main - side * horiz * np.sin(theta), height)
    half_len = float(min(2500.0, max(250.0, 1.6 * field_w / np.sin(theta) + dist * 0.3)))
    x_lo, x_hi = -half_len, half_len
    visible_half = float(min(half_len, field_w / np.sin(theta)))
    vehicles = (
        [] if negative else _trains(rng, tracks, target[0], visible_half, main, SCENERY["side_track_fill"]["ground"])
    )
    y_near = tracks[0][0] - 3.0 if side > 0 else tracks[-1][0] + 3.0
    y_far = tracks[-1][0] + 3.0 if side > 0 else tracks[0][0] - 3.0
    props = _props_common(rng, y_far, y_near, -visible_half, visible_half, overhead=False)
    if rng.random() < SCENERY["fence_prob"]:
        props.append(
            Prop(
                "fence",
                0.0,
                float(y_near - side * rng.uniform(2, 30)),
                0.0,
                int(rng.integers(2**31)),
                length=2 * half_len,
            )
        )
    if rng.random() < SCENERY["embankment_prob"] and not bridge:
        props.append(
            Prop(
                "embankment",
                0.0,
                float(y_near - side * rng.uniform(8, 40)),
                0.0,
                int(rng.integers(2**31)),
                length=2 * half_len,
                height=float(rng.uniform(1.5, 4.0)),
            )
        )
    if bridge:
        span = float(rng.uniform(150, 600))
        half_w = float(abs(tracks[-1][0] - tracks[0][0]) / 2 + 2.6)
        props.append(
            Prop(
                "truss",
                float(rng.uniform(-span / 3, span / 3)),
                float((tracks[0][0] + tracks[-1][0]) / 2),
                0.0,
                int(rng.integers(2**31)),
                length=span,
                height=half_w,
            )
        )
    clearance = 0.3 * horiz * np.sin(theta) + 2.0  # nothing right in front of the lens
    props = [p for p in props if p.kind == "truss" or abs(p.y - eye[1]) > clearance]
    camera = Camera(
        False,
        tuple(map(float, eye)),
        target,
        _rolled_up(eye, target, rng.normal(0.0, r["roll_deg_sd"])),
        fov,
        0.0,
        max(0.5, dist * 0.02),
        dist * 3 + half_len,
    )
    mpp = field_w / imgsz
    vis_km = _log_uniform(rng, *r["visibility_km_log"])
    light = _light(rng, min(700.0, field_w * 1.5 / max(np.sin(theta), 0.3) + 40))
    haze = (0.68, 0.72, 0.78) if not light.overcast else (0.74, 0.75, 0.77)
    band_half = float(rng.uniform(*r["ground_band_half_m"]))
    lateral = horiz * np.sin(theta)
    water_from = 0.0
    if bridge:
        water_from = abs(tracks[-1][0] - tracks[0][0]) / 2 + 4.0
    elif tele and rng.random() < r["river_prob"] and lateral > 80:  # photographed across a river
        water_from = float(rng.uniform(10.0, min(80.0, lateral * 0.5)))
    ground = tuple(
        float(c) for c in np.asarray([(0.30, 0.34, 0.20), (0.38, 0.35, 0.27), (0.32, 0.31, 0.28)][rng.integers(3)])
    )
    return Scene(
        view="ground",
        camera=camera,
        light=light,
        haze_colour=haze,
        haze_beta=3.0 / (vis_km * 1000.0),
        haze_veil=0.0,
        tracks=tracks,
        track_x=(x_lo, x_hi),
        sleeper_x=_sleeper_range(eye[0], target[0], field_w) if mpp < 0.12 else None,
        vehicles=tuple(vehicles),
        props=tuple(props),
        ground_colour=ground,
        ground_band=(float((tracks[0][0] + tracks[-1][0]) / 2), band_half, float(rng.uniform(*r["near_ground_alpha"]))),
        water_from=water_from,
        curve=curve,
        snow=float(rng.uniform(*r["snow_cover"])) if rng.random() < r["snow_prob"] else 0.0,
        background_distance=float(dist * rng.uniform(1.2, 3.0)),
        post_seed=int(rng.integers(2**31)),
        notes={
            "focal_mm": focal,
            "range_m": dist,
            "metres_per_px": mpp,
            "shimmer": float(rng.uniform(*r["shimmer_px"]) * min(1.0, dist / 800)),
        },
    )


def overhead_scene(rng: np.random.Generator, imgsz: int, negative: bool) -> Scene:
    r = VIEW_RANGES["overhead"]
    gsd = float(rng.uniform(*r["gsd_m"]))
    half = imgsz * gsd / 2
    n_tracks = int(rng.integers(r["tracks"][0], r["tracks"][1] + 1))
    tracks = _tracks(rng, n_tracks)
    x_half = half * 1.6 + 30
    vehicles = (
        []
        if negative
        else _trains(rng, tracks, 0.0, x_half, int(rng.integers(n_tracks)), SCENERY["side_track_fill"]["overhead"])
    )
    y_lo, y_hi = tracks[0][0] - 3.0, tracks[-1][0] + 3.0
    props = _props_common(rng, y_hi, y_lo, -x_half, x_half, overhead=True)
    near_axis = rng.random() < r["near_axis_prob"]
    yaw = rng.choice([0, np.pi / 2]) + rng.normal(0, 0.05) if near_axis else rng.uniform(0, 2 * np.pi)
    tilt = np.deg2rad(rng.uniform(*r["off_nadir_deg"]))
    tilt_az = rng.uniform(0, 2 * np.pi)
    target = (float(rng.normal(0, half * 0.2)), float(rng.normal(0, half * 0.15)), 0.0)
    d = np.array([np.sin(tilt) * np.cos(tilt_az), np.sin(tilt) * np.sin(tilt_az), np.cos(tilt)])
    eye = tuple(float(v) for v in np.asarray(target) + d * 1500.0)
    up = (float(np.cos(yaw)), float(np.sin(yaw)), 0.0)
    camera = Camera(True, eye, target, up, 0.0, half, 1000.0, 2000.0)
    light = _light(rng, half * 1.5 + 20)
    return Scene(
        view="overhead",
        camera=camera,
        light=light,
        haze_colour=(0.7, 0.72, 0.76),
        haze_beta=0.0,
        haze_veil=float(rng.uniform(*r["haze"])),
        tracks=tracks,
        track_x=(-x_half * 1.2, x_half * 1.2),
        sleeper_x=(target[0] - half * 1.5, target[0] + half * 1.5) if gsd < 0.4 else None,
        vehicles=tuple(vehicles),
        props=tuple(props),
        ground_colour=(0.35, 0.34, 0.3),
        ground_band=(0.0, 0.0, 0.0),
        water_from=0.0,
        curve=_curve(rng, target[0]),
        snow=0.0,  # the aerial backgrounds are all summer
        background_distance=0.0,
        post_seed=int(rng.integers(2**31)),
        notes={"gsd_m": gsd},
    )


CLUTTER = frozenset(
    {
        "truck",
        "tanker",
        "containers",
        "shed",
        "building",
        "storage_tank",
        "platform",
        "masts",
        "vegetation",
        "fence",
        "truss",
    }
)


def make_scene(rng: np.random.Generator, view: str, imgsz: int, negative: bool, clean_fraction: float = 0.0) -> Scene:
    """One random scene; a ``clean_fraction`` of them keep only the tracks, the trains and the ground.

    Clutter and occluders are what most separates the renders from real photos in COCO's eyes
    (``scripts/render_realism.py``: 0.62 of the rendered cars seen, 0.78 without clutter, 0.93 in realdev).
    The flag is drawn only when the fraction is positive, so older datasets keep their bytes.
    """
    clean = clean_fraction > 0 and rng.random() < clean_fraction
    scene = ground_scene(rng, imgsz, negative) if view == "ground" else overhead_scene(rng, imgsz, negative)
    if not clean:
        return scene
    return replace(scene, props=tuple(p for p in scene.props if p.kind not in CLUTTER))
