"""Today's reminders (工作提醒): visits due, buildings not seen lately, problems near deadline.

Everything is computed at ``now``, which the caller passes (tests pass a fixed clock), and
within the user's area (row-level security). Buildings to patrol are those of the user's
current patrol areas; a grid worker with none patrols the buildings of their scope.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis.audit import Who, audit
from gis.errors import InvalidInput
from gis.patrol.overdue import UNRESOLVED, overdue_sql

DEFAULT_UNSEEN_DAYS = 7
DEFAULT_NEAR_DAYS = 2

# Driven from the user's residents (an index scan of ``resident`` by building), then their
# ledger entries by resident id. Joined the other way round (every entry, then its resident)
# row-level security made it two sequential scans of all residents, and the estimates so
# inflated that PostgreSQL JIT-compiled the query: ~0.4 s a call, now ~15 ms (a grid worker
# of the bench/load.py data, EXPLAIN ANALYZE as the app role).
# ``= ANY (ARRAY(...))``, not ``IN (SELECT ...)``: the array is an index condition whose
# size the planner takes as small, where the set-returning function counts as 1,000 rows.
# The filter only narrows what the resident policy shows: that policy too requires the
# building to be in ga_people_buildings() (0005, 0013). The entries are visits.ENTRIES,
# one branch per ledger.
VISITS_DUE = sa.text(
    """
    WITH people AS MATERIALIZED (
      SELECT r.id, r.name, r.building_id, r.room FROM resident r
       WHERE r.building_id = ANY (ARRAY(SELECT ga_people_buildings()))
    ), entries AS (
      SELECT p.id, 'special_group:' || s.category AS category
        FROM people p JOIN special_group s ON s.resident_id = p.id
      UNION ALL
      SELECT p.id, 'key_person:' || k.category
        FROM people p JOIN key_person k ON k.resident_id = p.id
    )
    SELECT p.id AS resident_id, p.name, p.building_id, p.room, e.category, f.days, lv.last_at,
           lv.last_at + make_interval(days => f.days) AS due_at
      FROM entries e
      JOIN people p ON p.id = e.id
      JOIN visit_frequency f ON f.category = e.category
      LEFT JOIN LATERAL (SELECT max(v.at) AS last_at FROM visit v
                          WHERE v.resident_id = e.id AND v.category = e.category
                            AND v.at <= :now) lv ON true
     WHERE lv.last_at IS NULL OR lv.last_at + make_interval(days => f.days) <= :now
     ORDER BY due_at NULLS FIRST, p.id, e.category
    """
)
UNSEEN = sa.text(
    """
    WITH mine AS (
      SELECT ab.building_id FROM patrol_assignment a
        JOIN patrol_area_building ab ON ab.area_id = a.area_id
       WHERE a.user_id = :u AND a.starts_at <= :now AND (a.ends_at IS NULL OR a.ends_at > :now)
    ), todo AS (
      SELECT building_id FROM mine
      UNION
      SELECT b FROM ga_people_buildings() b
       WHERE :fallback AND NOT EXISTS (SELECT 1 FROM mine)
    )
    SELECT t.building_id, b.name, last.at AS last_at
      FROM todo t JOIN building b ON b.id = t.building_id
      LEFT JOIN LATERAL (SELECT max(c.at) AS at FROM patrol_checkin c
                          WHERE c.building_id = t.building_id AND c.at <= :now) last ON true
     WHERE last.at IS NULL OR last.at < :since
     ORDER BY last.at NULLS FIRST, t.building_id
    """
)
# Still to fix with the deadline near, or overdue (gis.patrol.overdue): a problem resolved
# in time waits for its verifier and is no longer the worker's to do.
PROBLEMS_DUE = sa.text(
    f"SELECT p.id, p.building_id, p.category, p.status, p.deadline, {overdue_sql(':now')} "
    "AS is_overdue FROM problem p WHERE p.deadline IS NOT NULL AND ((p.status = ANY(:todo) "
    f"AND p.deadline <= :near) OR {overdue_sql(':now')}) ORDER BY p.deadline, p.id"
)


def _iso(t: dt.datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def _days(delta: dt.timedelta) -> int:
    return int(delta.total_seconds() // 86_400)


def reminders(
    conn: Connection,
    user: Who,
    now: dt.datetime,
    unseen_days: int = DEFAULT_UNSEEN_DAYS,
    near_days: int = DEFAULT_NEAR_DAYS,
) -> dict[str, Any]:
    """The user's list for ``now``: visits due or overdue, buildings unseen, problems due."""
    if now.tzinfo is None:
        raise InvalidInput("now needs a time zone")
    if not 1 <= unseen_days <= 90 or not 0 <= near_days <= 30:
        raise InvalidInput("unseen_days is 1 to 90 and near_days 0 to 30")
    visits = [
        {
            "resident_id": r.resident_id,
            "name": r.name,
            "building_id": r.building_id,
            "room": r.room,
            "category": r.category,
            "every_days": r.days,
            "last_visit_at": _iso(r.last_at),
            "due_at": _iso(r.due_at),
            "overdue_days": None if r.due_at is None else _days(now - r.due_at),
        }
        for r in conn.execute(VISITS_DUE, {"now": now})
    ]
    if visits:
        audit(conn, user, "list", "resident", sorted({v["resident_id"] for v in visits}),
              {"via": "reminders"})  # fmt: skip
    unseen = [
        {
            "building_id": r.building_id,
            "name": r.name,
            "last_checkin_at": _iso(r.last_at),
            "days_unseen": None if r.last_at is None else _days(now - r.last_at),
        }
        for r in conn.execute(
            UNSEEN,
            {
                "u": user.id,
                "now": now,
                "since": now - dt.timedelta(days=unseen_days),
                "fallback": user.role == "grid_worker",
            },
        )
    ]
    problems = [
        {
            "problem_id": r.id,
            "building_id": r.building_id,
            "category": r.category,
            "status": r.status,
            "deadline": _iso(r.deadline),
            "is_overdue": r.is_overdue,
        }
        for r in conn.execute(
            PROBLEMS_DUE,
            {"todo": list(UNRESOLVED), "now": now, "near": now + dt.timedelta(days=near_days)},
        )
    ]
    return {
        "at": now.isoformat(),
        "visits_due": visits,
        "buildings_unseen": unseen,
        "problems_due": problems,
        "unseen_days": unseen_days,
        "near_days": near_days,
    }
