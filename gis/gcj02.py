"""WGS 84 ⇄ GCJ-02 (the "Mars" datum of Gaode/AutoNavi and Tencent tiles), vectorised.

GCJ-02 is WGS 84 plus a smooth, deliberately non-linear offset of up to about 500 m, applied
only inside China. The forward formulas are the published ones (a Krasovsky ellipsoid,
``a = 6378245 m``, ``e² = 0.006693421622965943``, and two trigonometric series in the
offsets from 105° E, 35° N). The inverse has no closed form: it is solved by fixed-point
iteration, which converges to well under a millimetre in a few steps because the offset
changes slowly with position.

Outside the rough box around China that the published formulas use, coordinates are
returned unchanged (Gaode's tiles are WGS 84 there too).
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import shapely

Array = npt.NDArray[np.float64]

A_M = 6378245.0  # Krasovsky 1940 semi-major axis, as the formulas use it
EE = 0.00669342162296594323  # its first eccentricity squared
# The box outside which the offset is not applied: west, south, east, north.
CHINA_BOX = (72.004, 0.8293, 137.8347, 55.8271)
INVERSE_STEPS = 30
INVERSE_TOL_DEG = 1e-10  # about 0.01 mm


def is_in_china(lon: npt.ArrayLike, lat: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Whether each point lies in the box where GCJ-02 differs from WGS 84."""
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    west, south, east, north = CHINA_BOX
    return (lon >= west) & (lon <= east) & (lat >= south) & (lat <= north)


def _series(x: Array, y: Array) -> tuple[Array, Array]:
    """The two published series in x = lon - 105, y = lat - 35 (in "metres" of the datum)."""
    common = (20.0 * np.sin(6.0 * np.pi * x) + 20.0 * np.sin(2.0 * np.pi * x)) * 2.0 / 3.0
    d_lat = (
        -100.0
        + 2.0 * x
        + 3.0 * y
        + 0.2 * y * y
        + 0.1 * x * y
        + 0.2 * np.sqrt(np.abs(x))
        + common
        + (20.0 * np.sin(np.pi * y) + 40.0 * np.sin(np.pi * y / 3.0)) * 2.0 / 3.0
        + (160.0 * np.sin(np.pi * y / 12.0) + 320.0 * np.sin(np.pi * y / 30.0)) * 2.0 / 3.0
    )
    d_lon = (
        300.0
        + x
        + 2.0 * y
        + 0.1 * x * x
        + 0.1 * x * y
        + 0.1 * np.sqrt(np.abs(x))
        + common
        + (20.0 * np.sin(np.pi * x) + 40.0 * np.sin(np.pi * x / 3.0)) * 2.0 / 3.0
        + (150.0 * np.sin(np.pi * x / 12.0) + 300.0 * np.sin(np.pi * x / 30.0)) * 2.0 / 3.0
    )
    return d_lon, d_lat


def offset(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[Array, Array]:
    """GCJ-02 minus WGS 84 in degrees (lon, lat) at WGS 84 points; zero outside China."""
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    d_lon, d_lat = _series(lon - 105.0, lat - 35.0)
    rad = np.radians(lat)
    magic = 1.0 - EE * np.sin(rad) ** 2
    sqrt_magic = np.sqrt(magic)
    d_lat = d_lat * 180.0 / ((A_M * (1.0 - EE)) / (magic * sqrt_magic) * np.pi)
    d_lon = d_lon * 180.0 / (A_M / sqrt_magic * np.cos(rad) * np.pi)
    inside = is_in_china(lon, lat)
    return np.where(inside, d_lon, 0.0), np.where(inside, d_lat, 0.0)


def wgs84_to_gcj02(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[Array, Array]:
    """Shift WGS 84 longitudes and latitudes (degrees, any shape) to GCJ-02."""
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    d_lon, d_lat = offset(lon, lat)
    return lon + d_lon, lat + d_lat


def gcj02_to_wgs84(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[Array, Array]:
    """Shift GCJ-02 longitudes and latitudes back to WGS 84 (iterated to ~0.01 mm).

    Points outside China are returned unchanged, as the forward transform leaves them.
    """
    g_lon, g_lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    w_lon, w_lat = g_lon.copy(), g_lat.copy()
    for _ in range(INVERSE_STEPS):
        f_lon, f_lat = wgs84_to_gcj02(w_lon, w_lat)
        e_lon, e_lat = f_lon - g_lon, f_lat - g_lat
        w_lon, w_lat = w_lon - e_lon, w_lat - e_lat
        if np.all(np.abs(e_lon) < INVERSE_TOL_DEG) and np.all(np.abs(e_lat) < INVERSE_TOL_DEG):
            break
    return w_lon, w_lat


def _forward_xy(coords: Array) -> Array:
    lon, lat = wgs84_to_gcj02(coords[:, 0], coords[:, 1])
    return np.column_stack((lon, lat))


def shift_geometries(geoms: npt.ArrayLike) -> npt.NDArray[np.object_]:
    """Every vertex of WGS 84 shapely geometries shifted to GCJ-02 (one vectorised call)."""
    return shapely.transform(np.asarray(geoms, dtype=object), _forward_xy)


def shift_frame(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """A copy of a WGS 84 GeoDataFrame with its geometries in GCJ-02, for Gaode tiles.

    The frame keeps ``EPSG:4326`` as its CRS: Leaflet draws it as such, and GCJ-02 has no
    EPSG code. Use it only for what is drawn on a Gaode basemap, never for what is stored
    or measured.
    """
    if gdf.crs is not None and gdf.crs.to_epsg() != 4326:
        raise ValueError(f"shift_frame needs WGS 84 (EPSG:4326) geometries, not {gdf.crs}")
    out = gdf.copy()
    if len(out):
        col = out.geometry.name
        out[col] = gpd.GeoSeries(
            shift_geometries(out.geometry.values), index=out.index, crs=gdf.crs
        )
    return out
