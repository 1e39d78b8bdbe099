"""WGS 84 ⇄ GCJ-02 on published pairs, the inverse, the box, frames and the SQL twin."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import sqlalchemy as sa
from pyproj import Geod
from shapely.geometry import LineString, Point, Polygon

from gis import gcj02
from gis.tiles import _gcj02_offset_sql

GEOD = Geod(ellps="WGS84")

# (WGS 84 lat, lon) -> (GCJ-02 lat, lon), published as the test vectors of
# github.com/googollee/eviltransform, python/test.py (TESTS: "shanghai", "shenzhen",
# "beijing"); the same three pairs are in larryli/eviltransform's PHP tests.
PUBLISHED = [
    ((31.1774276, 121.5272106), (31.17530398364597, 121.531541859215)),  # Shanghai
    ((22.543847, 113.912316), (22.540796131694766, 113.9171764808363)),  # Shenzhen
    ((39.911954, 116.377817), (39.91334545536069, 116.38404722455657)),  # Beijing
]
TOL_M = 0.5


def _metres(lon1, lat1, lon2, lat2) -> np.ndarray:
    return np.asarray(GEOD.inv(lon1, lat1, lon2, lat2)[2])


@pytest.mark.parametrize(("wgs", "gcj"), PUBLISHED)
def test_forward_matches_published_pairs(wgs, gcj) -> None:
    lon, lat = gcj02.wgs84_to_gcj02(wgs[1], wgs[0])
    assert _metres(lon, lat, gcj[1], gcj[0]) < TOL_M
    # and the shift is the several hundred metres that makes it matter
    assert 300 < _metres(wgs[1], wgs[0], gcj[1], gcj[0]) < 700


@pytest.mark.parametrize(("wgs", "gcj"), PUBLISHED)
def test_inverse_of_published_pairs(wgs, gcj) -> None:
    lon, lat = gcj02.gcj02_to_wgs84(gcj[1], gcj[0])
    assert _metres(lon, lat, wgs[1], wgs[0]) < TOL_M


def test_round_trip_over_china_is_below_half_a_metre() -> None:
    rng = np.random.default_rng(3)
    lon = rng.uniform(73.0, 135.0, 20_000)
    lat = rng.uniform(18.0, 53.0, 20_000)
    g_lon, g_lat = gcj02.wgs84_to_gcj02(lon, lat)
    back_lon, back_lat = gcj02.gcj02_to_wgs84(g_lon, g_lat)
    assert _metres(lon, lat, back_lon, back_lat).max() < 0.01  # well below 0.5 m
    shift = _metres(lon, lat, g_lon, g_lat)
    assert np.median(shift) > 100 and shift.max() < 1000  # the datum shift is real


def test_outside_china_coordinates_are_unchanged() -> None:
    lon = np.array([-8.61, 139.69, 100.5, 121.5])  # Porto, Tokyo, Bangkok (in box), Shanghai
    lat = np.array([41.15, 35.69, 13.75, 60.0])  # the last is north of the box
    g_lon, g_lat = gcj02.wgs84_to_gcj02(lon, lat)
    assert np.array_equal(gcj02.is_in_china(lon, lat), [False, False, True, False])
    assert np.array_equal(g_lon[[0, 1, 3]], lon[[0, 1, 3]])
    assert np.array_equal(g_lat[[0, 1, 3]], lat[[0, 1, 3]])
    assert g_lon[2] != lon[2]
    back = gcj02.gcj02_to_wgs84(lon[[0, 1, 3]], lat[[0, 1, 3]])
    assert np.array_equal(back[0], lon[[0, 1, 3]])


def test_shift_frame_moves_every_vertex_and_keeps_the_rest() -> None:
    (lat, lon), (g_lat, g_lon) = PUBLISHED[0]
    square = Polygon(
        [(lon, lat), (lon + 0.001, lat), (lon + 0.001, lat + 0.001), (lon, lat + 0.001)]
    )
    frame = gpd.GeoDataFrame(
        {"id": [1, 2, 3], "name": ["a", "b", "c"]},
        geometry=[Point(lon, lat), LineString([(lon, lat), (lon + 0.01, lat)]), square],
        crs=4326,
    )
    out = gcj02.shift_frame(frame)
    assert list(out["name"]) == ["a", "b", "c"] and out.crs.to_epsg() == 4326
    assert _metres(out.geometry[0].x, out.geometry[0].y, g_lon, g_lat) < TOL_M
    assert _metres(out.geometry[1].coords[0][0], out.geometry[1].coords[0][1], g_lon, g_lat) < TOL_M
    assert len(out.geometry[2].exterior.coords) == 5
    assert frame.geometry[0].x == lon  # the input is not touched
    with pytest.raises(ValueError, match="WGS 84"):
        gcj02.shift_frame(frame.to_crs(32651))


def test_sql_offset_matches_numpy(nanjing_engine) -> None:
    """gis/tiles.py computes the same offset in SQL for Gaode vector tiles."""
    points = [(118.78, 32.04), (121.5272106, 31.1774276), (-8.61, 41.15), (113.9, 22.5)]
    d_lon, d_lat = _gcj02_offset_sql("p.lon", "p.lat")
    with nanjing_engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                f"SELECT {d_lon}, {d_lat} FROM (SELECT unnest(CAST(:lon AS float8[])) AS lon, "
                "unnest(CAST(:lat AS float8[])) AS lat) p"
            ),
            {"lon": [p[0] for p in points], "lat": [p[1] for p in points]},
        ).all()
    expect_lon, expect_lat = gcj02.offset([p[0] for p in points], [p[1] for p in points])
    assert np.allclose([r[0] for r in rows], expect_lon, atol=1e-12, rtol=0)
    assert np.allclose([r[1] for r in rows], expect_lat, atol=1e-12, rtol=0)
    assert rows[2] == (0, 0)
