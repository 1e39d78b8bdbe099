"""What the patrol page (巡查) draws: patrol areas and their workers, the buildings with the
days since their last check-in, open problems, and the streets around — read with the API's
scope, so nothing outside it is sent.

A grid worker sees only the areas they walk now (a worker with none: the buildings of their
scope, their grid, which is their area by default); committee staff see every area with a
building in their community, and its worker. Check-ins and problems are read under row-level
security as always. Read-only SQL, bound parameters.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis import permissions, query
from gis.audit import Who
from gis.errors import NotFound
from gis.patrol.problems import OPEN

LOCAL_TZ = "Asia/Shanghai"  # "today" is the worker's calendar day (China has one zone)
MARGIN_DEG = 0.003  # streets read around the buildings (~300 m)

_AREAS = sa.text(
    """
    WITH scope AS MATERIALIZED (SELECT ga_scope_buildings(ga_user()) AS id)
    SELECT a.id, a.code, a.grid_id, a.households, a.buildings, round(a.walk_m) AS walk_m,
           w.user_id AS worker_id, coalesce(u.full_name, u.username) AS worker_name, a.geom
      FROM patrol_area a
      LEFT JOIN patrol_assignment w ON w.area_id = a.id AND w.ends_at IS NULL
      LEFT JOIN app_user u ON u.id = w.user_id
     WHERE EXISTS (SELECT 1 FROM patrol_area_building ab
                    WHERE ab.area_id = a.id AND ab.building_id IN (SELECT id FROM scope))
       AND (NOT :mine OR w.user_id = ga_user())
       AND (CAST(:one AS bigint) IS NULL OR a.id = CAST(:one AS bigint))
     ORDER BY a.id LIMIT :n
    """
)
_BUILDINGS = sa.text(
    """
    WITH scope AS MATERIALIZED (SELECT ga_scope_buildings(ga_user()) AS id)
    SELECT b.id, b.source_id AS code,
           coalesce(b.name, nullif(concat(b.addr_street, b.addr_housenumber), ''), b.source_id)
             AS label,
           coalesce(b.households, 0) AS households, ab.area_id, last.at AS last_at,
           (CAST(:now AS timestamptz) AT TIME ZONE :tz)::date
             - (last.at AT TIME ZONE :tz)::date AS days,
           b.geom
      FROM building b
      LEFT JOIN patrol_area_building ab ON ab.building_id = b.id
      LEFT JOIN LATERAL (SELECT max(c.at) AS at FROM patrol_checkin c
                          WHERE c.building_id = b.id AND c.at <= :now) last ON true
     WHERE b.id IN (SELECT id FROM scope)
       AND (:every OR ab.area_id = ANY(CAST(:areas AS bigint[])))
     ORDER BY b.id LIMIT :n
    """
)
_PROBLEMS = sa.text(
    """
    SELECT p.id, p.building_id, p.category, p.status, p.handling, p.deadline, p.geom
      FROM problem p
     WHERE p.status = ANY(:open) AND p.building_id = ANY(CAST(:buildings AS bigint[]))
     ORDER BY p.id LIMIT :n
    """
)
_WORKERS = sa.text(
    """
    WITH scope AS MATERIALIZED (SELECT ga_scope_buildings(ga_user()) AS id)
    SELECT u.id, coalesce(u.full_name, u.username) AS name, g.id AS grid_id, g.code AS grid_code
      FROM app_user u
      JOIN app_user_scope s ON s.user_id = u.id AND s.level = 'grid'
      JOIN grid g ON g.id = s.area_id
     WHERE u.is_active AND u.role = 'grid_worker'
       AND EXISTS (SELECT 1 FROM building_path bp
                    WHERE bp.grid_id = g.id AND bp.building_id IN (SELECT id FROM scope))
     ORDER BY g.code, name, u.id
    """
)
_ROUTE_BUILDINGS = sa.text(
    """
    SELECT b.id, b.source_id AS code,
           coalesce(b.name, nullif(concat(b.addr_street, b.addr_housenumber), ''), b.source_id)
             AS label,
           coalesce(b.households, 0) AS households
      FROM patrol_area_building ab JOIN building b ON b.id = ab.building_id
     WHERE ab.area_id = :a AND b.id IN (SELECT ga_scope_buildings(ga_user()))
    """
)


@dataclass
class PatrolFrames:
    """The frames of one user's patrol page."""

    areas: gpd.GeoDataFrame
    buildings: gpd.GeoDataFrame
    problems: gpd.GeoDataFrame
    edges: gpd.GeoDataFrame
    is_staff: bool
    total_buildings: int


def is_staff(user: Who) -> bool:
    """Whether the user assigns areas (committee staff, admins) rather than walks one."""
    return permissions.may(user, "assign_leader")


def visible_areas(
    conn: Connection, user: Who, limit: int, area_id: int | None = None
) -> gpd.GeoDataFrame:
    """The patrol areas the user may see: their own (a worker) or their community's."""
    return gpd.read_postgis(
        _AREAS,
        conn,
        geom_col="geom",
        params={"mine": not is_staff(user), "one": area_id, "n": limit},
        crs=4326,
    )


def patrol_frames(conn: Connection, user: Who, now: dt.datetime, limit: int) -> PatrolFrames:
    """Areas, buildings (with ``days`` since the last check-in, NaN for never), open
    problems on them, and the streets within the buildings' box plus ``MARGIN_DEG``."""
    staff = is_staff(user)
    areas = visible_areas(conn, user, limit)
    area_ids = [int(a) for a in areas["id"]]
    # a worker with no area yet patrols their scope (their grid, the default area)
    every = staff or not area_ids
    buildings = gpd.read_postgis(
        _BUILDINGS,
        conn,
        geom_col="geom",
        params={"now": now, "tz": LOCAL_TZ, "every": every, "areas": area_ids, "n": limit + 1},
        crs=4326,
    )
    total = len(buildings)
    buildings = buildings.iloc[:limit]
    problems = gpd.read_postgis(
        _PROBLEMS,
        conn,
        geom_col="geom",
        params={"open": list(OPEN), "buildings": [int(b) for b in buildings["id"]], "n": limit},
        crs=4326,
    )
    if len(buildings):
        x0, y0, x1, y1 = buildings.total_bounds
        box = query.BBox(
            max(x0 - MARGIN_DEG, -180),
            max(y0 - MARGIN_DEG, -90),
            min(x1 + MARGIN_DEG, 180),
            min(y1 + MARGIN_DEG, 90),
        )
        edges = query.layer_frame(conn, "walk_edges", bbox=box, limit=limit)
    else:  # nothing in scope: nothing around it either
        edges = query.layer_frame(conn, "walk_edges", limit=0)
    return PatrolFrames(areas, buildings, problems, edges, staff, total)


def community_workers(conn: Connection, user: Who) -> list[dict[str, Any]]:
    """The grid workers of the user's community (their grids hold a building in scope)."""
    permissions.require(user, "assign_leader", "list the grid workers to assign")
    return [dict(r._mapping) for r in conn.execute(_WORKERS)]


def route_sheet(conn: Connection, user: Who, area_id: int) -> dict[str, Any]:
    """The area (one the user may see) and its buildings by id, for the printed tour."""
    areas = visible_areas(conn, user, 1, area_id)
    if not len(areas):
        raise NotFound(f"no patrol area {area_id} of yours")
    area = areas.drop(columns="geom").iloc[0].to_dict()
    rows = conn.execute(_ROUTE_BUILDINGS, {"a": area_id}).all()
    return {"area": area, "buildings": {r.id: dict(r._mapping) for r in rows}}
