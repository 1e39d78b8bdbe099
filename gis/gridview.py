"""What the grid page (我的网格) draws: the user's own buildings and grids, and the streets
and facilities around them — read with the API's scope, so nothing outside it is sent.

The scope is ``ga_scope_buildings(ga_user())``, the function behind the API and the row-level
security (a building leader: their building; committee staff: their community; admins: the
city). Streets and facilities carry no personal data and are cut to the box of those
buildings plus a margin, not the whole city. Read-only SQL, bound parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis import query
from gis.areas import BY_TABLE, visible_sql

MARGIN_DEG = 0.003  # about 300 m around the user's buildings: the streets to walk there

_BUILDINGS = sa.text(
    """
    WITH scope AS MATERIALIZED (SELECT ga_scope_buildings(ga_user()) AS id)
    SELECT b.id, b.source_id AS code,
           coalesce(b.name, nullif(concat(b.addr_street, b.addr_housenumber), ''), b.source_id)
             AS label,
           coalesce(b.households, 0) AS households, p.grid_id, b.geom
      FROM building b JOIN building_path p ON p.building_id = b.id
     WHERE b.id IN (SELECT id FROM scope)
     ORDER BY b.id LIMIT :n
    """
)
_COUNT = sa.text("SELECT count(DISTINCT b) FROM ga_scope_buildings(ga_user()) AS b")


@dataclass
class GridFrames:
    """The frames of one user's grid page, and whether the buildings were capped."""

    buildings: gpd.GeoDataFrame
    grids: gpd.GeoDataFrame
    edges: gpd.GeoDataFrame
    facilities: gpd.GeoDataFrame
    total_buildings: int

    @property
    def is_truncated(self) -> bool:
        return len(self.buildings) < self.total_buildings


def _grids(conn: Connection, limit: int) -> gpd.GeoDataFrame:
    """The grids holding a building of the user's scope (as the API shows them)."""
    vis = visible_sql(BY_TABLE["grid"], "t", "SELECT id FROM scope")
    sql = sa.text(
        "WITH scope AS MATERIALIZED (SELECT ga_scope_buildings(ga_user()) AS id) "
        "SELECT t.id, t.code, coalesce(t.name, t.code) AS label, t.geom FROM grid t "
        f"WHERE t.geom IS NOT NULL AND {vis} ORDER BY t.id LIMIT :n"
    )
    return gpd.read_postgis(sql, conn, geom_col="geom", params={"n": limit}, crs=4326)


def grid_frames(conn: Connection, limit: int) -> GridFrames:
    """The user's buildings (at most ``limit``), their grids, and streets and facilities
    within the buildings' box plus ``MARGIN_DEG`` (at most ``limit`` each)."""
    buildings = gpd.read_postgis(_BUILDINGS, conn, geom_col="geom", params={"n": limit}, crs=4326)
    total = int(conn.scalar(_COUNT) or 0)
    grids = _grids(conn, limit)
    if len(buildings):
        x0, y0, x1, y1 = buildings.total_bounds
        box = query.BBox(
            max(x0 - MARGIN_DEG, -180),
            max(y0 - MARGIN_DEG, -90),
            min(x1 + MARGIN_DEG, 180),
            min(y1 + MARGIN_DEG, 90),
        )
        edges = query.layer_frame(conn, "walk_edges", bbox=box, limit=limit)
        facilities = query.layer_frame(conn, "facilities", bbox=box, limit=limit)
    else:  # nothing in scope: nothing around it either
        edges = query.layer_frame(conn, "walk_edges", limit=0)
        facilities = query.layer_frame(conn, "facilities", limit=0)
    return GridFrames(buildings, grids, edges, facilities, total)
