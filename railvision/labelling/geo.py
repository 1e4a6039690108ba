"""Georeferencing: a GeoTIFF's CRS and affine transform, and pixel boxes through them into lon/lat.

rasterio (the ``label`` extra) is imported only here and only when needed, so labelling
plain photos works without it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

GEOTIFF_SUFFIXES = frozenset({".tif", ".tiff"})
LONLAT = "EPSG:4326"


def read_georef(path: Path) -> dict[str, Any] | None:
    """CRS and affine transform of a georeferenced GeoTIFF whose corners map to lon/lat; ``None`` for anything
    else or without rasterio."""
    if path.suffix.lower() not in GEOTIFF_SUFFIXES:
        return None
    try:
        import rasterio
    except ImportError:
        return None
    try:
        with rasterio.open(path) as dataset:
            if dataset.crs is None or dataset.transform.is_identity:
                return None
            geo = {"crs": dataset.crs.to_string(), "transform": [float(v) for v in tuple(dataset.transform)[:6]]}
            width, height = dataset.width, dataset.height
    except rasterio.errors.RasterioError:
        return None
    return geo if _maps_to_lonlat(geo, width, height) else None


def _maps_to_lonlat(geo: dict[str, Any], width: int, height: int) -> bool:
    """Whether the image's corners project to real longitudes and latitudes. A damaged GeoTIFF (a pixel 1e247 m
    wide, a CRS PROJ cannot invert) would otherwise fail the GeoJSON output at the end of a run."""
    try:
        lon, lat = to_lonlat(geo, [0, width, 0, width], [0, 0, height, height])
    except Exception:  # GDAL and PROJ errors: rasterio's CPLE_* classes are private
        return False
    return all(math.isfinite(x) and abs(x) <= 180 for x in lon) and all(math.isfinite(y) and abs(y) <= 90 for y in lat)


def to_lonlat(geo: dict[str, Any], xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    """Pixel coordinates through the GeoTIFF's affine transform, then into lon/lat."""
    a, b, c, d, e, f = geo["transform"]
    east = [a * x + b * y + c for x, y in zip(xs, ys, strict=True)]
    north = [d * x + e * y + f for x, y in zip(xs, ys, strict=True)]
    if geo["crs"] == LONLAT:
        return east, north
    from rasterio.warp import transform

    lon, lat = transform(geo["crs"], LONLAT, east, north)
    return list(lon), list(lat)
