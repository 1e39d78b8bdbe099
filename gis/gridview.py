"""What the grid page (我的网格) draws: the user's own buildings and grids, and the streets
and facilities around them — read with the API's scope, so nothing outside it is sent.

The scope is ``ga_scope_buildings(ga_user())``, the function behind the API and the row-level
security (a building leader: their building; committee staff: their community; admins: the
city). Streets and facilities carry no personal data and are cut to the box of those
buildings plus a margin, not the whole city. Read-only SQL, bound parameters.

The four layers come back from one statement as GeoJSON FeatureCollections built by
PostGIS. The page used to read four GeoDataFrames in five round trips (the scope function
run three times) and have geopandas and Folium turn them into GeoJSON again; that was most
of the page's time (bench/load.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis.areas import BY_TABLE, visible_sql

MARGIN_DEG = 0.003  # about 300 m around the user's buildings: the streets to walk there
# 7 decimals of a degree are about a centimetre: the precision of OSM's own coordinates
DIGITS = 7


def _collection(rows: str, properties: str, geometry: str = "geom") -> str:
    """SQL: the rows of CTE ``rows`` as one FeatureCollection (ordered by id), with the
    feature id the row's id and ``properties`` a list of ``'name', expression`` pairs."""
    return (
        "(SELECT json_build_object('type', 'FeatureCollection', 'features', "
        "coalesce(json_agg(json_build_object('type', 'Feature', 'id', x.id, "
        f"'properties', json_build_object({properties}), "
        f"'geometry', ST_AsGeoJSON({geometry}, {DIGITS})::json) ORDER BY x.id), '[]'::json)) "
        f"FROM {rows} x)"
    )


_GRIDS_VISIBLE = visible_sql(BY_TABLE["grid"], "t", "SELECT id FROM scope")
_FRAMES = sa.text(
    f"""
    WITH scope AS MATERIALIZED (SELECT ga_scope_buildings(ga_user()) AS id),
    mine AS MATERIALIZED (
      SELECT b.id, coalesce(b.source_id, '') AS code,
             coalesce(b.name, nullif(concat(b.addr_street, b.addr_housenumber), ''),
                      b.source_id, '') AS label,
             coalesce(b.households, 0) AS households, p.grid_id, b.geom
        FROM building b JOIN building_path p ON p.building_id = b.id
       WHERE b.id IN (SELECT id FROM scope)
       ORDER BY b.id LIMIT :n
    ),
    extent AS MATERIALIZED (SELECT ST_Extent(geom) AS e FROM mine),
    box AS MATERIALIZED (
      SELECT ST_MakeEnvelope(greatest(ST_XMin(e) - :margin, -180),
                             greatest(ST_YMin(e) - :margin, -90),
                             least(ST_XMax(e) + :margin, 180),
                             least(ST_YMax(e) + :margin, 90), 4326) AS g
        FROM extent WHERE e IS NOT NULL
    ),
    grids AS (
      SELECT t.id, t.code, coalesce(t.name, t.code) AS label, t.geom FROM grid t
       WHERE t.geom IS NOT NULL AND {_GRIDS_VISIBLE} ORDER BY t.id LIMIT :n
    ),
    edges AS (
      SELECT w.id, coalesce(w.highway, '') AS highway, w.length_m, w.geom
        FROM walk_edge w, box WHERE w.geom && box.g ORDER BY w.id LIMIT :n
    ),
    facilities AS (
      SELECT f.id, coalesce(f.name, '') AS name, f.categories,
             ST_PointOnSurface(f.geom) AS geom
        FROM facility f, box WHERE f.geom && box.g ORDER BY f.id LIMIT :n
    )
    SELECT (SELECT count(DISTINCT id) FROM scope) AS total,
           (SELECT ARRAY[ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)] FROM extent
             WHERE e IS NOT NULL) AS bounds,
           {
        _collection(
            "mine",
            "'id', x.id, 'building_id', x.id, 'code', x.code, "
            "'label', x.label, 'households', x.households, 'grid_id', x.grid_id",
        )
    }
             AS buildings,
           {_collection("grids", "'id', x.id, 'code', x.code, 'label', x.label")} AS grids,
           {_collection("edges", "'highway', x.highway, 'length_m', x.length_m")} AS edges,
           {_collection("facilities", "'id', x.id, 'name', x.name, 'categories', x.categories")}
             AS facilities
    """
)


@dataclass
class GridFrames:
    """The layers of one user's grid page (GeoJSON FeatureCollections), the box of their
    buildings (west, south, east, north; None without any) and whether they were capped."""

    buildings: dict[str, Any]
    grids: dict[str, Any]
    edges: dict[str, Any]
    facilities: dict[str, Any]
    total_buildings: int
    bounds: tuple[float, float, float, float] | None

    @property
    def is_truncated(self) -> bool:
        return len(self.buildings["features"]) < self.total_buildings


def grid_frames(conn: Connection, limit: int) -> GridFrames:
    """The user's buildings (at most ``limit``), their grids, and streets and facilities
    within the buildings' box plus ``MARGIN_DEG`` (at most ``limit`` each)."""
    row = conn.execute(_FRAMES, {"n": limit, "margin": MARGIN_DEG}).one()
    b = row.bounds
    bounds = (float(b[0]), float(b[1]), float(b[2]), float(b[3])) if b else None
    return GridFrames(
        buildings=row.buildings,
        grids=row.grids,
        edges=row.edges,
        facilities=row.facilities,
        total_buildings=int(row.total or 0),
        bounds=bounds,
    )
