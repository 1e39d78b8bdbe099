"""Patrol areas in PostGIS: draw a grid's areas, list them, assign workers to them.

Drawing replaces the grid's areas (and so ends their assignments: the parts changed); one
transaction, owned by the caller.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis import permissions
from gis.audit import Who
from gis.crs import lonlat_to_metric, metric_epsg
from gis.errors import Conflict, InvalidInput, NotFound
from gis.patrol.areas import (
    DEFAULT_WEIGHTS,
    Split,
    Weights,
    adjacency_of_cells,
    adjacency_of_points,
    split_area,
)

# Buildings of a grid: walking starts at the main mapped entrance (as reach does); the walk
# a building asks for is the length of footways and streets inside its cell.
GRID_BUILDINGS = sa.text(
    """
    SELECT b.id, bp.households,
           ST_X(p.p) AS lon, ST_Y(p.p) AS lat, c.cell_wkb, c.epsg,
           coalesce((SELECT sum(ST_Length(ST_Intersection(e.geom, c.geom)::geography))
                       FROM walk_edge e
                      WHERE c.geom IS NOT NULL AND e.geom && c.geom
                        AND ST_Intersects(e.geom, c.geom)), 0) AS walk_m
      FROM (SELECT building_id, sum(households)::int AS households FROM part_path
             WHERE grid_id = :g GROUP BY building_id) bp  -- a divided tower: its parts here
      JOIN building b ON b.id = bp.building_id
      LEFT JOIN building_cell c ON c.building_id = b.id
      CROSS JOIN LATERAL (SELECT coalesce((SELECT e.geom FROM building_entrance e
                                            WHERE e.building_id = b.id
                                            ORDER BY e.rank, e.id LIMIT 1),
                                           ST_PointOnSurface(b.geom)) AS p) p
     ORDER BY b.id
    """
)
GRID_WORKERS = sa.text(
    "SELECT a.id FROM app_user a JOIN app_user_scope s ON s.user_id = a.id "
    "WHERE a.is_active AND a.role = 'grid_worker' AND s.level = 'grid' AND s.area_id = :g "
    "ORDER BY a.id"
)


def grid_workers(conn: Connection, grid_id: int) -> list[int]:
    """Active grid workers whose scope names this grid."""
    return list(conn.execute(GRID_WORKERS, {"g": grid_id}).scalars())


def split_grid(
    conn: Connection, grid_id: int, workers: int, weights: Weights = DEFAULT_WEIGHTS
) -> tuple[np.ndarray, Split]:
    """Read a grid's buildings and split them among ``workers``: (building ids, split)."""
    rows = conn.execute(GRID_BUILDINGS, {"g": grid_id}).all()
    if not rows:
        raise NotFound(f"grid {grid_id} has no buildings (draw the groups first)")
    ids = np.array([r.id for r in rows], dtype=np.int64)
    hh = np.array([r.households for r in rows], dtype=float)
    walk = np.array([float(r.walk_m) for r in rows])
    lon = np.array([r.lon for r in rows])
    lat = np.array([r.lat for r in rows])
    has_cells = all(r.cell_wkb is not None for r in rows) and len({r.epsg for r in rows}) == 1
    epsg = int(rows[0].epsg) if has_cells else metric_epsg(float(lon.mean()), float(lat.mean()))
    xy = np.column_stack(lonlat_to_metric(lon, lat, epsg))
    if has_cells:
        adj = adjacency_of_cells(shapely.from_wkb([bytes(r.cell_wkb) for r in rows]))
    else:
        adj = adjacency_of_points(xy)
    return ids, split_area(xy, adj, hh, walk, workers, weights)


def draw(
    conn: Connection,
    user: Who,
    grid_id: int,
    workers: int | None = None,
    weights: Weights = DEFAULT_WEIGHTS,
) -> list[dict[str, Any]]:
    """Replace a grid's patrol areas by ``workers`` parts (default: its grid workers, ≥ 1)."""
    permissions.require(user, "edit_map", "draw patrol areas")
    code = conn.scalar(sa.text("SELECT code FROM grid WHERE id = :g"), {"g": grid_id})
    if code is None:
        raise NotFound(f"no grid {grid_id}")
    k = workers if workers is not None else max(1, len(grid_workers(conn, grid_id)))
    if not 1 <= k <= 50:
        raise InvalidInput("a grid is split among 1 to 50 workers",
                           key="patrol_refusal.workers_range")  # fmt: skip
    ids, split = split_grid(conn, grid_id, k, weights)
    conn.execute(sa.text("DELETE FROM patrol_area WHERE grid_id = :g"), {"g": grid_id})
    out = []
    for p in range(len(split.load)):
        members = ids[split.labels == p].tolist()
        area_id = conn.scalar(
            sa.text(
                "INSERT INTO patrol_area (grid_id, code, households, buildings, walk_m, geom) "
                "SELECT :g, :code, :hh, :nb, :walk, ST_Multi(ST_CollectionExtract("
                "ST_UnaryUnion(ST_Collect(coalesce(c.geom, b.geom))), 3)) "
                "FROM building b LEFT JOIN building_cell c ON c.building_id = b.id "
                "WHERE b.id = ANY(:ids) RETURNING id"
            ),
            {
                "g": grid_id,
                "code": f"{code}-P{p + 1}",
                "hh": int(split.households[p]),
                "nb": int(split.buildings[p]),
                "walk": float(split.walk_m[p]),
                "ids": members,
            },
        )
        conn.execute(
            sa.text(
                "INSERT INTO patrol_area_building (building_id, area_id) "
                "SELECT unnest(CAST(:ids AS bigint[])), :a"
            ),
            {"ids": members, "a": area_id},
        )
        out.append(
            {
                "id": int(area_id),
                "code": f"{code}-P{p + 1}",
                "households": int(split.households[p]),
                "buildings": int(split.buildings[p]),
                "walk_m": round(float(split.walk_m[p]), 1),
                "load": round(float(split.load[p]), 4),
            }
        )
    return out


def area_buildings(conn: Connection, area_id: int) -> list[int]:
    """The buildings of a patrol area, by id."""
    return list(
        conn.execute(
            sa.text(
                "SELECT building_id FROM patrol_area_building WHERE area_id = :a ORDER BY 1"
            ),
            {"a": area_id},
        ).scalars()
    )


def assign(
    conn: Connection, user: Who, area_id: int, worker_id: int, now: dt.datetime
) -> dict[str, Any]:
    """Make ``worker_id`` the area's current worker from ``now`` (the previous one ends)."""
    permissions.require(user, "assign_leader", "assign patrol areas")
    grid_id = conn.scalar(sa.text("SELECT grid_id FROM patrol_area WHERE id = :a"), {"a": area_id})
    if grid_id is None:
        raise NotFound(f"no patrol area {area_id}")
    role = conn.scalar(
        sa.text("SELECT role FROM app_user WHERE id = :u AND is_active"), {"u": worker_id}
    )
    if role != "grid_worker":
        raise InvalidInput("patrol areas are assigned to active grid workers",
                           key="patrol_refusal.not_grid_worker")  # fmt: skip
    conn.execute(
        sa.text(
            "UPDATE patrol_assignment SET ends_at = greatest(:now, starts_at) "
            "WHERE area_id = :a AND ends_at IS NULL"
        ),
        {"a": area_id, "now": now},
    )
    try:
        with conn.begin_nested():
            row = conn.execute(
                sa.text(
                    "INSERT INTO patrol_assignment (area_id, user_id, assigned_by, starts_at) "
                    "VALUES (:a, :w, :by, :now) RETURNING id, starts_at"
                ),
                {"a": area_id, "w": worker_id, "by": user.id, "now": now},
            ).one()
    except sa.exc.IntegrityError as err:
        raise Conflict("someone assigned this area at the same time; reload",
                       key="patrol_refusal.assigned_meanwhile") from err  # fmt: skip
    return {"id": row.id, "area_id": area_id, "user_id": worker_id, "starts_at": row.starts_at}


def current_areas(conn: Connection, worker_id: int) -> list[int]:
    """The patrol areas ``worker_id`` walks now."""
    return list(
        conn.execute(
            sa.text(
                "SELECT area_id FROM patrol_assignment WHERE user_id = :u AND ends_at IS NULL "
                "ORDER BY area_id"
            ),
            {"u": worker_id},
        ).scalars()
    )


def check_visible(conn: Connection, user: Any, area_id: int) -> None:
    """404 unless the user may see this patrol area: it holds a building of their scope,
    and a grid worker sees only the areas they walk (staff see their community's)."""
    visible = conn.scalar(
        sa.text(
            "SELECT EXISTS (SELECT 1 FROM patrol_area_building pb WHERE pb.area_id = :a "
            "AND pb.building_id IN (SELECT ga_scope_buildings(ga_user())))"
        ),
        {"a": area_id},
    )
    if visible and not permissions.may(user, "assign_leader"):
        visible = conn.scalar(
            sa.text(
                "SELECT EXISTS (SELECT 1 FROM patrol_assignment WHERE area_id = :a "
                "AND user_id = :u AND ends_at IS NULL)"
            ),
            {"a": area_id, "u": user.id},
        )
    if not visible:
        raise NotFound(f"no patrol area {area_id} in your area")
