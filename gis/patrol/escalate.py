"""Overdue problems flagged and escalated one level up (超期升级): worker → committee → subdistrict.

A time-limited problem not yet resolved when its deadline passes is overdue. Each run of
the job (``gridatlas patrol escalate``, from cron or a systemd timer) moves every overdue
problem one level up: from the grid's workers to the residents' committee at once, and to
the subdistrict (街道) when it is still overdue ``STEP`` after that. Each move is a
``problem_event`` with ``escalated_to`` (no user: the job acts for nobody).

The job is idempotent: one UPDATE picks and moves the problems, and a problem moved at
``now`` is not due again before ``now + STEP``, so running twice at the same clock (or two
runs at once: the second re-checks each row after the first's lock) escalates once.
Overdue is ``gis.patrol.overdue`` (the list's ``?overdue=`` filter uses the same rule): a
problem resolved in time waits for its verifier and is not escalated; one resolved late is
overdue until verified. The app runs the job every few minutes (``gis.scheduler``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis.errors import InvalidInput
from gis.patrol.overdue import overdue_sql

LEVELS = ("worker", "committee", "subdistrict")
STEP = dt.timedelta(days=3)  # committee → subdistrict when still overdue this long after

ESCALATE = sa.text(
    f"""
    WITH due AS (
      UPDATE problem p
         SET escalation_level = CASE p.escalation_level WHEN 'worker' THEN 'committee'
                                                         ELSE 'subdistrict' END,
             escalated_at = :now, version = p.version + 1, updated_at = :now
       WHERE {overdue_sql(":now")}
         AND (p.escalation_level = 'worker'
              OR (p.escalation_level = 'committee' AND p.escalated_at <= :now - :step))
      RETURNING p.id, p.building_id, p.status, p.deadline, p.escalation_level
    ), events AS (
      INSERT INTO problem_event (problem_id, user_id, at, from_status, to_status, note,
                                 escalated_to)
      SELECT id, NULL, :now, status, status, 'overdue since ' || to_char(deadline
               AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI"Z"') || '; escalated to '
               || escalation_level, escalation_level
        FROM due
    )
    SELECT id, building_id, status, deadline, escalation_level FROM due ORDER BY id
    """
)
OVERDUE = sa.text(f"SELECT count(*) FROM problem p WHERE {overdue_sql(':now')}")


def escalate_overdue(
    conn: Connection, now: dt.datetime, step: dt.timedelta = STEP
) -> dict[str, Any]:
    """Escalate every overdue problem one level (at most once per ``step``); what moved.

    Runs with whatever rows ``conn`` sees: as the owner (the CLI) every problem. Returns
    ``{"at", "overdue", "escalated": [{"problem_id", "to", "deadline", …}]}``.
    """
    if now.tzinfo is None:
        raise InvalidInput("now needs a time zone (e.g. 2026-12-03T09:00:00+08:00)")
    if step <= dt.timedelta(0):
        raise InvalidInput("the step between escalations must be positive")
    params = {"now": now, "step": step}
    moved = [
        {
            "problem_id": int(r.id),
            "building_id": int(r.building_id),
            "status": r.status,
            "deadline": r.deadline.isoformat(),
            "to": r.escalation_level,
        }
        for r in conn.execute(ESCALATE, params)
    ]
    overdue = int(conn.scalar(OVERDUE, params) or 0)
    return {"at": now.isoformat(), "overdue": overdue, "escalated": moved}
