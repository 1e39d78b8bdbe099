"""The metric CRS of a place, and conversions between it and WGS 84 (EPSG:4326, lon/lat).

Lengths, areas, buffers and distances are computed in metres in a UTM zone derived from the
data (or the one configured as ``metric_epsg``), never in degrees. Transformers are built
once per pair of CRSs and always take and return (x, y) = (lon, lat) order.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import pyproj
import shapely

WGS84 = 4326
FALLBACK_EPSG = 32651  # UTM 51N (Shanghai), for a place with no geometry to derive a zone from


@lru_cache(maxsize=32)
def _transformer(from_epsg: int, to_epsg: int) -> pyproj.Transformer:
    """Return the (cached) transformer from ``from_epsg`` to ``to_epsg``, in x/y order."""
    return pyproj.Transformer.from_crs(from_epsg, to_epsg, always_xy=True)


def metric_epsg(lon: float, lat: float) -> int:
    """Return the EPSG code of the UTM zone holding (lon, lat), WGS 84 datum."""
    zone = int((lon + 180.0) // 6.0) + 1
    zone = min(max(zone, 1), 60)
    return (32600 if lat >= 0 else 32700) + zone


def metric_epsg_for(geoms: np.ndarray) -> int:
    """Return the UTM zone of the centre of the bounds of lon/lat ``geoms`` (a fallback if none)."""
    if not len(geoms):
        return FALLBACK_EPSG
    x0, y0, x1, y1 = shapely.total_bounds(geoms)
    return metric_epsg((x0 + x1) / 2.0, (y0 + y1) / 2.0)


def lonlat_to_metric(lon: Any, lat: Any, epsg: int) -> tuple[Any, Any]:
    """Return (x, y) in ``epsg`` of lon/lat scalars or arrays."""
    return _transformer(WGS84, epsg).transform(lon, lat)


def metric_to_lonlat(x: Any, y: Any, epsg: int) -> tuple[Any, Any]:
    """Return (lon, lat) of x/y scalars or arrays in ``epsg``."""
    return _transformer(epsg, WGS84).transform(x, y)


def to_metric(geoms: Any, epsg: int) -> Any:
    """Project lon/lat geometries (one or an array) to ``epsg`` (vectorised)."""
    return _transform(geoms, _transformer(WGS84, epsg))


def to_wgs84(geoms: Any, epsg: int) -> Any:
    """Return geometries (one or an array) in ``epsg`` as lon/lat (vectorised)."""
    return _transform(geoms, _transformer(epsg, WGS84))


def _transform(geoms: Any, tr: pyproj.Transformer) -> Any:
    return shapely.transform(geoms, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
