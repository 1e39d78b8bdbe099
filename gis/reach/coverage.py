"""Coverage figures from stored reach: per category, per area, and the gaps themselves.

Always from network distances (building_reach), never from isochrone polygons.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis import geojson
from gis.categories import category_labels
from gis.errors import InvalidInput, NotFound
from gis.reach.service import resolve_categories

AREA_LEVELS = ("subdistrict", "community", "grid", "residents_group")  # ours, never the caller's


def latest_run(conn: Connection, limit_min: float) -> tuple[Any, float]:
    """Return the latest reach run and the limit in metres, or explain what is missing."""
    run = conn.execute(
        sa.text("SELECT id, speed_m_per_min, categories FROM reach_run ORDER BY id DESC LIMIT 1")
    ).one_or_none()
    if run is None:
        raise NotFound("no reach computed yet: run `gridatlas reach`", key="reach_refusal.no_run")
    if not 1 <= limit_min <= 60:
        raise InvalidInput("limit must be between 1 and 60 minutes")
    return run, limit_min * run.speed_m_per_min


def coverage(conn: Connection, *, limit_min: float = 10.0) -> dict[str, Any]:
    """Households within ``limit_min`` minutes on foot, per category, over the whole map."""
    run, limit_m = latest_run(conn, limit_min)
    rows = conn.execute(
        sa.text("""
        SELECT c.category,
               sum(b.households) AS households,
               sum(b.households) FILTER (WHERE c.walk_m <= :lim) AS covered,
               sum(b.households) FILTER (WHERE c.walk_m = 'NaN') AS unreachable
          FROM building_reach r JOIN building b ON b.id = r.building_id
          CROSS JOIN LATERAL unnest(CAST(:cats AS text[]), r.walk_m) AS c(category, walk_m)
         WHERE r.run_id = :run AND b.households > 0
         GROUP BY c.category"""),
        {"lim": limit_m, "cats": list(run.categories), "run": run.id},
    ).all()
    all_within = conn.scalar(
        sa.text("""
        SELECT coalesce(sum(b.households), 0) FROM building_reach r
          JOIN building b ON b.id = r.building_id
         WHERE r.run_id = :run AND b.households > 0
           AND NOT EXISTS (SELECT 1 FROM unnest(r.walk_m) w
                            WHERE w > :lim)"""),
        {"lim": limit_m, "run": run.id},
    )
    total = sum(int(r.households or 0) for r in rows[:1])
    zh, en = category_labels("zh"), category_labels("en")
    return {
        "run_id": run.id,
        "limit_min": limit_min,
        "limit_m": limit_m,
        "speed_m_per_min": run.speed_m_per_min,
        "households": total,
        "households_with_every_category": int(all_within),
        "categories": [
            {
                "category": r.category,
                "label_zh": zh.get(r.category, r.category),
                "label_en": en.get(r.category, r.category),
                "households_covered": int(r.covered or 0),
                "households_unreachable": int(r.unreachable or 0),
                "share": round((r.covered or 0) / r.households, 4) if r.households else None,
            }
            for r in sorted(rows, key=lambda r: list(run.categories).index(r.category))
        ],
    }


def coverage_by_area(conn: Connection, level: str, *, limit_min: float = 10.0) -> list[dict]:
    """Per area of ``level`` (buildings by the point on their footprint): households, and
    households within the limit of each category and of every category."""
    if level not in AREA_LEVELS:
        raise InvalidInput(f"level must be one of {', '.join(AREA_LEVELS)}")
    run, limit_m = latest_run(conn, limit_min)
    households = "bl.households"
    if level == "residents_group":  # by membership, as delineated (buildings → unit → …)
        # a divided building counts in the group of each part, with the part's households
        members = """
              FROM residents_group a
              JOIN part_path pp ON pp.residents_group_id = a.id
              JOIN building bl ON bl.id = pp.building_id"""
        households = "pp.households"
        name = "(SELECT cm.code FROM community cm WHERE cm.id = a.community_id) || ' 第' "
        name += "|| a.code || '居民小组'"
    else:  # areas drawn by hand: buildings by the point on their footprint
        members = f"""
              FROM {level} a
              JOIN building bl ON ST_Contains(a.geom, ST_PointOnSurface(bl.geom))"""
        name = "a.name"
    rows = conn.execute(
        sa.text(f"""
        WITH b AS (
            SELECT a.id AS area_id, r.walk_m, {households} AS households {members}
              JOIN building_reach r ON r.building_id = bl.id AND r.run_id = :run
             WHERE bl.households > 0)
        SELECT a.id, a.code, {name} AS name,
               coalesce((SELECT sum(households) FROM b WHERE b.area_id = a.id), 0) AS households,
               coalesce((SELECT sum(b.households) FROM b WHERE b.area_id = a.id
                   AND NOT EXISTS (SELECT 1 FROM unnest(b.walk_m) w
                                   WHERE w > :lim)), 0) AS every,
               (SELECT coalesce(json_agg(json_build_object('category', c.category,
                        'covered', c.covered) ORDER BY c.ord), '[]'::json)
                  FROM (SELECT x.category, x.ord,
                               sum(b.households) FILTER (WHERE x.walk_m <= :lim) AS covered
                          FROM b CROSS JOIN LATERAL unnest(CAST(:cats AS text[]), b.walk_m)
                               WITH ORDINALITY AS x(category, walk_m, ord)
                         WHERE b.area_id = a.id GROUP BY x.category, x.ord) c) AS per_category
          FROM {level} a ORDER BY a.code"""),
        {"run": run.id, "lim": limit_m, "cats": list(run.categories)},
    ).all()
    out = []
    for r in rows:
        per = r.per_category if isinstance(r.per_category, list) else json.loads(r.per_category)
        out.append(
            {
                "id": r.id,
                "code": r.code,
                "name": r.name,
                "households": int(r.households),
                "households_with_every_category": int(r.every),
                "categories": {p["category"]: int(p["covered"] or 0) for p in per},
            }
        )
    return out


# a gap's properties (name → SQL on b, the building, and w, its walk to the category)
_GAP_PROPERTIES = {
    "households": "b.households",
    "name": "b.name",
    "walk_m": "CASE WHEN w.walk_m = 'NaN' OR w.walk_m = 'Infinity' THEN NULL "
    "ELSE round(w.walk_m::numeric, 1) END",
    "status": "CASE WHEN w.walk_m = 'NaN' THEN 'unreachable' ELSE 'too far' END",
}


def gaps(
    conn: Connection, category: str, *, limit_min: float = 10.0, limit: int = 500, offset: int = 0
) -> dict[str, Any]:
    """Buildings with households and no ``category`` within the limit, most households first,
    as a GeoJSON FeatureCollection page."""
    (category,) = resolve_categories([category])
    if not 1 <= limit <= 5000 or offset < 0:
        raise InvalidInput("limit must be 1–5000 and offset 0 or more")
    run, limit_m = latest_run(conn, limit_min)
    if category not in run.categories:
        raise NotFound(f"{category} was not in the latest reach run; compute it first")
    where = """
          FROM building_reach r JOIN building b ON b.id = r.building_id
         CROSS JOIN LATERAL (SELECT (r.walk_m)[array_position(CAST(:cats AS text[]), :cat)]
                             AS walk_m) w
         WHERE r.run_id = :run AND b.households > 0
           AND w.walk_m > :lim"""
    params = {
        "run": run.id,
        "cats": list(run.categories),
        "cat": category,
        "lim": limit_m,
        "limit": limit,
        "offset": offset,
    }
    total, households = conn.execute(
        sa.text(f"SELECT count(*), coalesce(sum(b.households), 0) {where}"), params
    ).one()
    rows = (
        conn.execute(
            sa.text(f"""
        SELECT {geojson.feature_sql("b.id", "b.geom", _GAP_PROPERTIES)}
          {where} ORDER BY b.households DESC, b.id LIMIT :limit OFFSET :offset"""),
            params,
        )
        .scalars()
        .all()
    )
    members = {"category": category, "limit_m": limit_m, "households_in_gaps": int(households)}
    return geojson.collection(rows, matched=total, members=members)


def reach_frames(conn: Connection, category: str, *, limit: int = 6000) -> tuple[Any, Any, Any]:
    """Return (buildings with walk_min, facilities of the category, run) for the reach map."""
    import geopandas as gpd

    (category,) = resolve_categories([category])
    run, _ = latest_run(conn, 10)
    if category not in run.categories:
        raise NotFound(f"{category} was not in the latest reach run; compute it first")
    buildings = gpd.read_postgis(
        sa.text("""
        SELECT b.id, b.name, b.households,
               (r.walk_m)[array_position(CAST(:cats AS text[]), :cat)]::float8
                   / :speed AS walk_min,
               b.geom
          FROM building b LEFT JOIN building_reach r ON r.building_id = b.id AND r.run_id = :run
         ORDER BY b.id LIMIT :limit"""),
        conn,
        geom_col="geom",
        crs=4326,
        params={
            "cats": list(run.categories),
            "cat": category,
            "run": run.id,
            "speed": run.speed_m_per_min,
            "limit": limit,
        },
    )
    facilities = gpd.read_postgis(
        sa.text("SELECT id, name, geom FROM facility WHERE :cat = ANY(categories) ORDER BY id"),
        conn,
        geom_col="geom",
        crs=4326,
        params={"cat": category},
    )
    return buildings, facilities, run


# --- within the user's scope (the planners' page, /app/reach) ---------------------------
# Areas hold the scope's buildings by the stored hierarchy (part_path, as the scope itself
# is computed), so a community's figure is the sum of its grids' and of its buildings in no
# grid. A divided building counts each part's households in the grid of that part (``bp``:
# one row per building or part), and only the parts the scope holds (a worker of one part's
# grid: not the other parts, ``ga_scope_parts_out``); ``b`` is one row per building.
# Limits are minutes at a speed of the caller's choice: stored distances are metres, so the
# elderly speed (60 m/min) needs no new run.
MAX_DRAWN_FACILITY_M = 2000  # the default cap of a reach run (docs/reach.md)
SCOPED_LEVELS = {"community": "community_id", "grid": "grid_id"}  # ours, never the caller's
_SCOPED = """
    WITH scope AS MATERIALIZED (SELECT ga_scope_buildings(ga_user()) AS id),
    out AS MATERIALIZED (SELECT o.unit_id FROM ga_scope_parts_out(ga_user()) o
                          WHERE o.unit_id IS NOT NULL),
    bp AS MATERIALIZED (
        SELECT bl.id, p.households, p.community_id, p.grid_id,
               (r.walk_m)[array_position(CAST(:cats AS text[]), :cat)] AS walk_m
          FROM building bl
          JOIN building_reach r ON r.building_id = bl.id AND r.run_id = :run
          JOIN part_path p ON p.building_id = bl.id
         WHERE bl.households > 0 AND bl.id IN (SELECT id FROM scope)
           AND (p.part_id IS NULL OR p.unit_id NOT IN (SELECT unit_id FROM out))),
    b AS MATERIALIZED (
        SELECT id, sum(households) AS households, min(grid_id) AS grid_id, min(walk_m) AS walk_m
          FROM bp GROUP BY id)"""


def _scoped_params(
    conn: Connection, category: str, limit_min: float, speed_m_per_min: float | None
) -> dict[str, Any]:
    (category,) = resolve_categories([category])
    run, _ = latest_run(conn, limit_min)
    if category not in run.categories:
        raise NotFound(f"{category} was not in the latest reach run; compute it first")
    speed = float(speed_m_per_min or run.speed_m_per_min)
    if not 10 <= speed <= 200:
        raise InvalidInput("speed must be between 10 and 200 m/min (80 adult, 60 elderly)")
    return {
        "run": run.id,
        "cats": list(run.categories),
        "cat": category,
        "lim": limit_min * speed,
        "speed": speed,
        "limit_min": limit_min,
    }


def _sums(b: str) -> str:
    """SQL: households, those covered and those unreachable of the rows ``b``."""
    return f"""sum({b}.households) AS households,
        coalesce(sum({b}.households) FILTER (WHERE {b}.walk_m <= :lim), 0) AS covered,
        coalesce(sum({b}.households) FILTER (WHERE {b}.walk_m = 'NaN'), 0) AS unreachable"""


def scoped_coverage(
    conn: Connection,
    category: str,
    *,
    limit_min: float = 10.0,
    speed_m_per_min: float | None = None,
) -> dict[str, Any]:
    """Households within ``limit_min`` minutes of ``category`` at ``speed_m_per_min`` (the
    run's by default) in the user's scope: in total, per community and per grid."""
    p = _scoped_params(conn, category, limit_min, speed_m_per_min)
    total = conn.execute(sa.text(f"{_SCOPED} SELECT {_sums('b')} FROM b"), p).one()
    out: dict[str, Any] = {
        "category": p["cat"],
        "limit_min": limit_min,
        "speed_m_per_min": p["speed"],
        "limit_m": p["lim"],
        "households": int(total.households or 0),
        "households_covered": int(total.covered),
        "households_unreachable": int(total.unreachable),
    }
    for level, column in SCOPED_LEVELS.items():
        rows = conn.execute(
            sa.text(f"""{_SCOPED}
            SELECT a.id, a.code, a.name, {_sums("bp")}
              FROM bp JOIN {level} a ON a.id = bp.{column}
             GROUP BY a.id, a.code, a.name ORDER BY a.code, a.id"""),
            p,
        ).all()
        out[level] = [
            {
                "id": r.id,
                "code": r.code,
                "name": r.name,
                "households": int(r.households),
                "households_covered": int(r.covered),
                "households_unreachable": int(r.unreachable),
                "share": round(r.covered / r.households, 4) if r.households else None,
            }
            for r in rows
        ]
    return out


def scoped_gaps(
    conn: Connection,
    category: str,
    *,
    limit_min: float = 10.0,
    speed_m_per_min: float | None = None,
    limit: int = 500,
    offset: int = 0,
) -> dict[str, Any]:
    """The user's buildings with households and no ``category`` within the limit at the
    speed, most households first, as a GeoJSON FeatureCollection page."""
    if not 1 <= limit <= 5000 or offset < 0:
        raise InvalidInput("limit must be 1–5000 and offset 0 or more")
    p = {**_scoped_params(conn, category, limit_min, speed_m_per_min), "limit": limit}
    p["offset"] = offset
    where = "FROM b JOIN building bl ON bl.id = b.id WHERE b.walk_m > :lim"
    total, households = conn.execute(
        sa.text(f"{_SCOPED} SELECT count(*), coalesce(sum(b.households), 0) {where}"), p
    ).one()
    props = {
        "households": "b.households",
        "name": "bl.name",
        "grid_id": "b.grid_id",
        "walk_m": "CASE WHEN b.walk_m = 'NaN' OR b.walk_m = 'Infinity' THEN NULL "
        "ELSE round(b.walk_m::numeric, 1) END",
        "status": "CASE WHEN b.walk_m = 'NaN' THEN 'unreachable' ELSE 'too far' END",
    }
    rows = (
        conn.execute(
            sa.text(f"""{_SCOPED}
            SELECT {geojson.feature_sql("b.id", "ST_PointOnSurface(bl.geom)", props)}
              {where} ORDER BY b.households DESC, b.id LIMIT :limit OFFSET :offset"""),
            p,
        )
        .scalars()
        .all()
    )
    members = {
        "category": p["cat"],
        "limit_m": p["lim"],
        "speed_m_per_min": p["speed"],
        "households_in_gaps": int(households),
    }
    return geojson.collection(rows, matched=total, members=members)


def scoped_frames(
    conn: Connection,
    category: str,
    *,
    speed_m_per_min: float | None = None,
    limit: int = 6000,
) -> tuple[Any, Any, Any]:
    """Return (the user's buildings with ``walk_min`` at the speed, the category's
    facilities within the longest stored walk of them, the run) for the planners' map."""
    import geopandas as gpd

    p = {**_scoped_params(conn, category, 10, speed_m_per_min), "limit": limit}
    buildings = gpd.read_postgis(
        sa.text("""
        WITH scope AS MATERIALIZED (SELECT ga_scope_buildings(ga_user()) AS id)
        SELECT b.id, b.name, b.households,
               (r.walk_m)[array_position(CAST(:cats AS text[]), :cat)]::float8
                   / :speed AS walk_min,
               b.geom
          FROM building b LEFT JOIN building_reach r ON r.building_id = b.id AND r.run_id = :run
         WHERE b.id IN (SELECT id FROM scope)
         ORDER BY b.id LIMIT :limit"""),
        conn,
        geom_col="geom",
        crs=4326,
        params=p,
    )
    # the nearest facility of a building may stand outside the scope: those within reach of
    # its extent (the run's cap) are drawn too
    facilities = gpd.read_postgis(
        sa.text("""
        WITH scope AS MATERIALIZED (SELECT ga_scope_buildings(ga_user()) AS id),
        ext AS (SELECT ST_Extent(geom)::geometry AS g FROM building
                 WHERE id IN (SELECT id FROM scope))
        SELECT f.id, f.name, f.geom FROM facility f, ext
         WHERE :cat = ANY(f.categories) AND ext.g IS NOT NULL
           AND ST_DWithin(f.geom::geography, ext.g::geography, :reach)
         ORDER BY f.id"""),
        conn,
        geom_col="geom",
        crs=4326,
        params={"cat": p["cat"], "reach": MAX_DRAWN_FACILITY_M},
    )
    return buildings, facilities, p
