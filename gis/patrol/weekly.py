"""A grid's week (周报): patrol coverage and problems opened, closed and overdue.

The week is an ISO week (``2026-W49``: Monday 00:00 to the next Monday, China time). Counts
are of the grid's buildings within the user's scope (row-level security), so a worker's
summary of a grid they hold is the grid's, and of any other grid a 404.

* coverage: the share of the grid's buildings with at least one check-in during the week,
  in total and per worker (check-ins, buildings);
* problems: reported during the week (``opened``), closed during it (``closed``), escalated
  during it, and overdue at its end (``gis.patrol.overdue``, with the status it had then:
  not resolved by its deadline, or resolved late and not yet verified). A week not over
  yet is counted up to ``now``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis import permissions
from gis.audit import Who
from gis.errors import InvalidInput, NotFound
from gis.patrol.checkins import PATROL
from gis.patrol.overdue import overdue_sql

LOCAL_TZ = ZoneInfo("Asia/Shanghai")  # China has one time zone and no summer time
WEEK = re.compile(r"^(\d{4})-W(\d{2})$")

# The grid's buildings in the user's scope. An admin's scope is every building: said as
# such (an init plan read once), so that the set of every building of the city is not
# hashed again for each grid (a city's report figures read every grid of it).
BUILDINGS = (
    "SELECT bp.building_id FROM building_path bp WHERE bp.grid_id = :g "
    "AND ((SELECT ga_role()) = 'admin' OR bp.building_id IN (SELECT ga_people_buildings()))"
)
COVERAGE = sa.text(
    f"""
    WITH b AS ({BUILDINGS}),
    c AS (SELECT c.user_id, c.building_id FROM patrol_checkin c JOIN b USING (building_id)
           WHERE c.at >= :start AND c.at < :until)
    SELECT (SELECT count(*) FROM b) AS buildings,
           (SELECT count(DISTINCT building_id) FROM c) AS seen,
           (SELECT count(*) FROM c) AS checkins
    """
)
BY_WORKER = sa.text(
    f"""
    WITH b AS ({BUILDINGS})
    SELECT c.user_id, u.username, count(*) AS checkins, count(DISTINCT c.building_id) AS seen
      FROM patrol_checkin c JOIN b USING (building_id) JOIN app_user u ON u.id = c.user_id
     WHERE c.at >= :start AND c.at < :until
     GROUP BY c.user_id, u.username ORDER BY u.username
    """
)
PROBLEMS = sa.text(
    f"""
    WITH b AS ({BUILDINGS}),
    p AS (SELECT p.id, p.reported_at, p.deadline FROM problem p JOIN b USING (building_id)
           WHERE p.reported_at < :until)
    SELECT
      (SELECT count(*) FROM p WHERE p.reported_at >= :start) AS opened,
      (SELECT count(DISTINCT e.problem_id) FROM problem_event e JOIN p ON p.id = e.problem_id
        WHERE e.to_status = 'closed' AND e.at >= :start AND e.at < :until) AS closed,
      (SELECT count(DISTINCT e.problem_id) FROM problem_event e JOIN p ON p.id = e.problem_id
        WHERE e.escalated_to IS NOT NULL AND e.at >= :start AND e.at < :until) AS escalated,
      (SELECT count(*) FROM p CROSS JOIN LATERAL (
          SELECT e.to_status FROM problem_event e WHERE e.problem_id = p.id AND e.at < :until
           ORDER BY e.at DESC, e.id DESC LIMIT 1) s
        WHERE {overdue_sql(":until", status="s.to_status")}) AS overdue,
      (SELECT count(*) FROM p CROSS JOIN LATERAL (
          SELECT e.to_status FROM problem_event e WHERE e.problem_id = p.id AND e.at < :until
           ORDER BY e.at DESC, e.id DESC LIMIT 1) s
        WHERE s.to_status <> 'closed') AS open_at_end
    """
)


def week_bounds(week: str | None, now: dt.datetime) -> tuple[str, dt.datetime, dt.datetime]:
    """(``YYYY-Www``, Monday 00:00, next Monday 00:00) of ``week``, or of ``now``'s week."""
    if week is None:
        year, num, _ = now.astimezone(LOCAL_TZ).isocalendar()
    else:
        m = WEEK.match(week)
        if m is None:
            raise InvalidInput(f"week is written YYYY-Www, e.g. 2026-W49: {week!r}",
                               key="problems.week")  # fmt: skip
        year, num = int(m[1]), int(m[2])
    try:
        monday = dt.date.fromisocalendar(year, num, 1)
    except ValueError as err:
        raise InvalidInput(f"there is no week {num} in {year}", key="problems.week") from err
    start = dt.datetime.combine(monday, dt.time(), LOCAL_TZ)
    return f"{year}-W{num:02d}", start, start + dt.timedelta(days=7)


def _share(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


def summary(
    conn: Connection, user: Who, grid_id: int, week: str | None, now: dt.datetime
) -> dict[str, Any]:
    """The week of a grid in the user's area (404 outside it): coverage and problems."""
    permissions.require(user, PATROL, "read patrol summaries")
    if now.tzinfo is None:
        raise InvalidInput("now needs a time zone")
    label, start, end = week_bounds(week, now)
    until = min(end, now)
    params = {"g": grid_id, "start": start, "until": until}
    cov = conn.execute(COVERAGE, params).one()
    if not cov.buildings:
        raise NotFound(f"no grid {grid_id} in your area")
    grid = conn.execute(sa.text("SELECT code, name FROM grid WHERE id = :g"), params).one()
    workers = [
        {
            "user_id": int(r.user_id),
            "username": r.username,
            "checkins": int(r.checkins),
            "buildings_checked": int(r.seen),
            "coverage": _share(int(r.seen), int(cov.buildings)),
        }
        for r in conn.execute(BY_WORKER, params)
    ]
    prob = conn.execute(PROBLEMS, params).one()
    return {
        "grid_id": grid_id,
        "grid_code": grid.code,
        "grid_name": grid.name,
        "week": label,
        "starts_at": start.isoformat(),
        "ends_at": end.isoformat(),
        "counted_until": until.isoformat(),
        "is_complete": until == end,
        "coverage": {
            "buildings": int(cov.buildings),
            "buildings_checked": int(cov.seen),
            "share": _share(int(cov.seen), int(cov.buildings)),
            "checkins": int(cov.checkins),
            "by_worker": workers,
        },
        "problems": {
            "opened": int(prob.opened),
            "closed": int(prob.closed),
            "escalated": int(prob.escalated),
            "overdue": int(prob.overdue),
            "open_at_end": int(prob.open_at_end),
        },
    }
