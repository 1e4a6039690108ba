"""Every randomised range of the generator, as data (the recipe in ``datasets/synth.md`` cites these).

Lengths in metres, angles in degrees. ``(a, b)`` is a uniform range unless a name says ``log``.
"""

from __future__ import annotations

# Consist: which vehicle kinds, and how often (weights); kind -> class name from the taxonomy.
VEHICLE_KINDS: dict[str, tuple[str, float]] = {
    "2te10": ("diesel_locomotive", 0.0),  # locomotives are chosen separately (0, 1 or 2 at the head)
    "tem2": ("diesel_locomotive", 0.0),
    "chme3": ("diesel_locomotive", 0.0),
    "tank": ("tank_car", 3.0),
    "tarp_flat": ("covered_flatbed", 2.5),
    "boxcar": ("closed_wagon", 2.5),
    "hopper": ("other_railcar", 1.2),  # gondolas and hoppers: most of real freight that is not in the four kinds
    "gondola": ("other_railcar", 1.4),
    "flat_empty": ("other_railcar", 0.4),
    "flat_vehicles": ("other_railcar", 0.35),
    "flat_container": ("other_railcar", 0.45),
    "coach": ("other_railcar", 0.25),
    "electric": ("other_railcar", 0.15),
    "steam": ("other_railcar", 0.05),
    "track_machine": ("other_railcar", 0.08),
}
LOCO_KINDS: dict[str, float] = {"2te10": 0.5, "tem2": 0.3, "chme3": 0.2}
LOCO_COUNT_WEIGHTS = (0.3, 0.45, 0.25)  # P(0, 1, 2 locomotives) at the head of a consist
LIGHT_ENGINE_PROB = 0.25  # a side track holds only 1-3 parked locomotives
CARS_PER_CONSIST = (3, 40)
BLOCK_PROB = 0.55  # a consist is often made of blocks of one kind (rows of tank cars)

DIMENSIONS = {
    "wheel_diameter": 0.95,
    "bogie_wheelbase": 1.85,
    "tank_length": (11.5, 13.0),
    "tank_length_long": (15.0, 20.0),
    "tank_diameter": (2.8, 3.2),
    "boxcar_length": (14.7, 18.7),
    "boxcar_height": (4.4, 4.8),
    "flat_deck_length": (13.4, 19.6),
    "tarp_load_height": (1.4, 3.2),  # above the 1.3 m deck
    "loco_section_length": (17.0, 18.2),
    "shunter_length": (16.5, 17.5),
    "coach_length": (23.6, 25.0),
    "gondola_length": (13.0, 14.5),
    "hopper_length": (13.5, 15.0),
    "track_spacing": (4.1, 5.3),
    "gauge_1520": 1.52,
    "gauge_1435": 1.435,
    "sleeper_spacing": 0.55,
}

# Liveries (linear-ish RGB 0..1). Picked per vehicle, then faded/dirtied.
LIVERIES = {
    "loco_body": [(0.12, 0.28, 0.16), (0.10, 0.22, 0.13), (0.13, 0.22, 0.42), (0.55, 0.12, 0.10), (0.50, 0.50, 0.50)],
    "loco_stripe": [(0.85, 0.70, 0.15), (0.75, 0.15, 0.10), (0.85, 0.80, 0.60), (0.80, 0.80, 0.78)],
    "tank": [(0.06, 0.06, 0.06), (0.10, 0.10, 0.11), (0.18, 0.18, 0.19), (0.45, 0.46, 0.46), (0.60, 0.60, 0.58)],
    "tank_band": [(0.70, 0.55, 0.10), (0.60, 0.12, 0.10), (0.80, 0.80, 0.78), (0.15, 0.30, 0.55)],
    "boxcar": [(0.42, 0.17, 0.11), (0.45, 0.20, 0.13), (0.38, 0.16, 0.12), (0.45, 0.45, 0.44), (0.18, 0.30, 0.20)],
    "boxcar_rare": [(0.18, 0.26, 0.40), (0.55, 0.50, 0.40)],
    "tarp": [(0.16, 0.27, 0.13), (0.20, 0.30, 0.15), (0.24, 0.32, 0.18), (0.13, 0.21, 0.11), (0.30, 0.33, 0.20)],
    "tarp_rare": [(0.45, 0.40, 0.27), (0.40, 0.41, 0.40), (0.18, 0.26, 0.40)],
    "freight_misc": [(0.30, 0.15, 0.10), (0.40, 0.40, 0.40), (0.25, 0.22, 0.20), (0.45, 0.28, 0.15)],
    # gondolas: red-brown, green, grey, the red corporate livery; hoppers: grey-green, brown, grey, cement grey
    "gondola": [(0.36, 0.14, 0.09), (0.16, 0.28, 0.17), (0.40, 0.40, 0.40), (0.58, 0.10, 0.08), (0.27, 0.22, 0.18)],
    "hopper": [(0.36, 0.40, 0.33), (0.38, 0.22, 0.14), (0.50, 0.50, 0.48), (0.62, 0.61, 0.57), (0.30, 0.30, 0.32)],
    "coach": [(0.12, 0.30, 0.18), (0.15, 0.25, 0.45), (0.50, 0.15, 0.12), (0.60, 0.60, 0.55)],
    "container": [(0.55, 0.15, 0.10), (0.15, 0.30, 0.50), (0.10, 0.35, 0.25), (0.70, 0.55, 0.15), (0.65, 0.65, 0.62)],
    "military": [(0.25, 0.28, 0.16), (0.33, 0.32, 0.22), (0.20, 0.22, 0.15)],
    "building": [(0.65, 0.62, 0.56), (0.55, 0.52, 0.48), (0.50, 0.30, 0.22), (0.70, 0.70, 0.68), (0.45, 0.47, 0.50)],
}

SCENERY = {
    "long_tank_prob": 0.15,  # gas / chemical tanks of 15-20 m
    "block_purity": 0.8,  # share of a block consist's cars that are of the block's kind
    "dual_gauge_prob": 0.35,  # a track has the third rail for 1435 mm
    "wide_gap_prob": 0.15,  # 3-12 m extra between two neighbouring tracks
    "side_track_fill": {"ground": 0.45, "overhead": 0.6},  # P(a side track holds vehicles)
    "side_track_locos_prob": 0.4,  # a rake on a side track has locomotives at its head
    "covers_centre_prob": (0.85, 0.6),  # (main, side track): the consist spans the view centre
    "distractors": (1, 8),  # lorries, tankers, containers, sheds, tanks, buildings per scene
    "distractor_far_side_prob": 0.7,  # beyond the tracks rather than on the camera side
    "road_prob": 0.35,  # a road with 1-4 lorries along the line
    "masts_prob": 0.4,  # catenary masts
    "vegetation_prob": (0.55, 0.4),  # (ground, overhead) strips of trees and bushes
    "ground_tracks": {1: 0.3, 2: 0.3, 3: 0.2, 4: 0.12, 6: 0.08},  # number of parallel tracks: weight
    "bridge_prob": 0.12,  # ground scenes with 1-2 tracks on a truss bridge
    "fence_prob": 0.3,
    "embankment_prob": 0.15,
}
PLATFORM_PROB = 0.2  # a station platform (sometimes with a canopy) beside the outer track
CURVE = {"prob": 0.35, "radius_m_log": (350.0, 3000.0)}  # curved lines; straight at the view centre

VIEW_RANGES = {
    "ground": {
        "telephoto_prob": 0.5,  # the other half close and medium views, as most real photos of wagons are
        "focal_mm_tele": (100.0, 800.0),
        "focal_mm_close": (28.0, 110.0),
        "range_m_tele_log": (100.0, 3000.0),
        "range_m_close_log": (35.0, 160.0),
        "car_height_px_log": (22.0, 320.0),  # apparent car height at 640 px: tiny ones are left to tiling
        "camera_height_m": (1.5, 12.0),
        "camera_height_m_elevated": (12.0, 45.0),
        "elevated_prob": 0.2,
        "ground_band_half_m": (8.0, 60.0),  # rendered ground fades out this far beyond the tracks
        "near_ground_alpha": (0.55, 1.0),  # on the camera side the photo's lower part shows through
        "river_prob": 0.25,  # telephoto scenes shot across water (bridge scenes always have it)
        "snow_prob": 0.12,  # winter scenes: snow on the ground, roofs, loads and trees
        "snow_cover": (0.5, 0.95),
        "roll_deg_sd": 1.2,  # hand-held tilt of the horizon
        "shallow_angle_prob": 0.5,  # line of sight to the track: long lines of overlapping cars
        "shallow_angle_deg": (6.0, 25.0),
        "view_angle_deg": (25.0, 90.0),
        "min_lateral_m": 12.0,  # the camera stands at least this far to the side of the main track
        "target_height_sd": 0.15,  # aim above/below the track, in frame heights: where the train sits in the frame
        "visibility_km_log": (2.0, 40.0),
        "shimmer_px": (0.0, 1.6),
    },
    "overhead": {
        "gsd_m": (0.12, 0.45),  # a car at least ~33 px long at 640 px; coarser imagery is tiled
        "off_nadir_deg": (0.0, 18.0),
        "tracks": (1, 9),
        "haze": (0.0, 0.25),
        "near_axis_prob": 0.4,  # the line runs (nearly) along an image axis; otherwise any direction
    },
}

LIGHT = {
    "overcast_prob": 0.35,
    "sun_elevation_deg": (8.0, 70.0),
    "sun_intensity": (0.9, 1.3),
    "ambient_sunny": (0.30, 0.45),
    "ambient_overcast": (0.65, 0.9),
}

HELD_OUT_BACKGROUND_EVERY = 4  # every 4th background photo (sorted by name) is never a backdrop: false-alarm test

POST = {
    "photo_background_prob": 0.85,  # when photos are available; procedural backgrounds otherwise
    "overhead_photo_gsd_m": (0.1, 0.3),  # assumed resolution of the aerial background tiles (not known exactly)
    "jpeg_quality": (38, 95),
    "antialias_sigma_px": (0.35, 0.6),  # on the rendered layer only (premultiplied), before compositing
    "background_blur_px": (0.0, 1.8),  # ground view: the photo behind the train is out of focus
    "defocus_sigma_px": (0.0, 1.3),
    "motion_blur_prob": 0.15,
    "motion_blur_px": (2, 6),
    "noise_sigma": (0.5, 6.0),
    "colour_transfer": (0.15, 0.5),
    "overhead_resample": (1.0, 2.2),
    "pan_fringe_prob": 0.5,
    "glass_prob": 0.08,
    "white_balance_sd": 0.035,  # per-channel gain
    "chromatic_aberration": (0.0, 0.0015),  # radial scale difference of red vs blue (ground view)
    "sharpen_prob": 0.45,  # phone / satellite processing halos
    "sharpen_amount": (0.2, 0.9),
}

VIEW_WEIGHTS = {"ground": 0.6, "overhead": 0.4}  # when both views are asked for
NEGATIVE_FRACTION = 0.10
MIN_VISIBLE_FRACTION = 0.2
MIN_BOX_PX = 3.0
MIN_HAZE_TRANSMISSION = 0.12  # vehicles behind more haze than this are not labelled
SUPERSAMPLE = 1
