"""The reports dashboard (subdistrict → community → grid): a few aggregate queries per level.

Each level lists its children with the figures the charts draw: households (the map's),
problems open and closed (row-level security: the rows the user may read), survey answers
and their mean score, and the latest published star rating (``committee_rating``). Ratings
are read as published, not recomputed: the dashboard stays one query per figure family,
whatever the number of communities.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis import levels, permissions
from gis.areas import visible_sql
from gis.audit import Who
from gis.errors import InvalidInput, NotFound
from gis.reports import profiles

LEVELS = ("subdistrict", "community", "grid")
SRC = "gis.reports.dashboard"
COMMUNITIES = f"""
    WITH c AS MATERIALIZED (SELECT t.id, t.code, t.name FROM community t
                             WHERE {visible_sql(levels.level("community"))}),
    bh AS ({profiles.BUILDING_HOUSEHOLDS} WHERE b.community_id IN (SELECT id FROM c)),
    hh AS (SELECT community_id AS id, sum(households) AS households, count(*) AS buildings
             FROM bh GROUP BY community_id),
    pr AS (SELECT b.community_id AS id, count(*) FILTER (WHERE p.status <> 'closed') AS open,
                  count(*) FILTER (WHERE p.status = 'closed') AS closed
             FROM problem p JOIN building b ON b.id = p.building_id
            WHERE b.community_id IN (SELECT id FROM c) GROUP BY b.community_id),
    sv AS (SELECT b.community_id AS id, count(*) AS answers,
                  avg((a.overall + a.service + a.environment + a.safety) / 4.0) AS mean
             FROM survey_answer a JOIN building b ON b.id = a.building_id
            WHERE a.round_id = (SELECT max(id) FROM survey_round)
              AND b.community_id IN (SELECT id FROM c) GROUP BY b.community_id),
    rt AS (SELECT DISTINCT ON (community_id) community_id AS id, stars FROM committee_rating
            WHERE community_id IN (SELECT id FROM c)
            ORDER BY community_id, computed_at DESC, id DESC)
    SELECT c.id, c.code, c.name, coalesce(hh.households, 0) AS households,
           coalesce(hh.buildings, 0) AS buildings, coalesce(pr.open, 0) AS open,
           coalesce(pr.closed, 0) AS closed, coalesce(sv.answers, 0) AS answers, sv.mean,
           rt.stars
      FROM c LEFT JOIN hh USING (id) LEFT JOIN pr USING (id) LEFT JOIN sv USING (id)
      LEFT JOIN rt USING (id)
     ORDER BY c.code, c.id
"""
GRIDS = f"""
    WITH g AS (SELECT t.id, t.code, t.name FROM grid t WHERE t.community_id = :id
                 AND {visible_sql(levels.level("grid"))}),
    bh AS ({profiles.BUILDING_HOUSEHOLDS}
           JOIN building_path bp ON bp.building_id = b.id WHERE bp.grid_id IN (SELECT id FROM g))
    SELECT g.id, g.code, g.name,
           (SELECT coalesce(sum(bh.households), 0) FROM bh JOIN building_path p
              ON p.building_id = bh.id WHERE p.grid_id = g.id) AS households,
           (SELECT count(*) FROM building_path p WHERE p.grid_id = g.id) AS buildings,
           (SELECT count(*) FROM problem x JOIN building_path p ON p.building_id = x.building_id
             WHERE p.grid_id = g.id AND x.status <> 'closed') AS open,
           (SELECT count(*) FROM problem x JOIN building_path p ON p.building_id = x.building_id
             WHERE p.grid_id = g.id AND x.status = 'closed') AS closed
      FROM g ORDER BY g.code, g.id
"""
GRID_CATEGORIES = f"""
    SELECT x.category, count(*) FILTER (WHERE x.status <> 'closed') AS open,
           count(*) FILTER (WHERE x.status = 'closed') AS closed
      FROM problem x JOIN building_path p ON p.building_id = x.building_id
      JOIN grid t ON t.id = p.grid_id
     WHERE p.grid_id = :id AND {visible_sql(levels.level("grid"))}
     GROUP BY x.category ORDER BY x.category
"""


def _check(conn: Connection, level: str, area_id: int) -> None:
    lv = levels.level(level)
    found = conn.scalar(
        sa.text(f"SELECT 1 FROM {lv.table} t WHERE t.id = :i AND {visible_sql(lv)}"),
        {"i": area_id},
    )
    if found is None:
        raise NotFound(f"no {level} {area_id} in your area", key="dashboard.no_area", id=area_id)


def dashboard(
    conn: Connection, user: Who, level: str = "subdistrict", area_id: int | None = None
) -> dict[str, Any]:
    """The children of one area with their figures (the subdistrict: every visible community)."""
    permissions.require(user, "page_reports", "open the reports dashboard")
    if level not in LEVELS:
        raise InvalidInput(f"level is one of {', '.join(LEVELS)}", key="dashboard.level")
    if level == "subdistrict":
        rows = conn.execute(sa.text(COMMUNITIES), {"year_tags": []}).all()
        items = [
            {"id": int(r.id), "code": r.code, "name": r.name, "households": int(r.households),
             "buildings": int(r.buildings), "problems_open": int(r.open),
             "problems_closed": int(r.closed), "answers": int(r.answers),
             "mean_score": None if r.mean is None else round(float(r.mean), 2),
             "stars": r.stars}
            for r in rows
        ]  # fmt: skip
        return {"level": level, "child_level": "community", "items": items,
                "source": f"{SRC}.COMMUNITIES"}  # fmt: skip
    if area_id is None:
        raise InvalidInput("give the id of the area", key="dashboard.level")
    _check(conn, level, area_id)
    if level == "community":
        rows = conn.execute(sa.text(GRIDS), {"id": area_id, "year_tags": []}).all()
        items = [
            {"id": int(r.id), "code": r.code, "name": r.name, "households": int(r.households),
             "buildings": int(r.buildings), "problems_open": int(r.open),
             "problems_closed": int(r.closed)}
            for r in rows
        ]  # fmt: skip
        return {"level": level, "id": area_id, "child_level": "grid", "items": items,
                "source": f"{SRC}.GRIDS"}  # fmt: skip
    rows = conn.execute(sa.text(GRID_CATEGORIES), {"id": area_id}).all()
    items = [{"category": r.category, "problems_open": int(r.open),
              "problems_closed": int(r.closed)} for r in rows]  # fmt: skip
    return {"level": level, "id": area_id, "child_level": None, "items": items,
            "source": f"{SRC}.GRID_CATEGORIES"}  # fmt: skip
