"""Visits (走访) to residents in special groups and to key persons, at set frequencies.

A visit is logged like a check-in, with a note. Notes name people, so they are sealed
(``Keys.seal``, column ``visit.note``) and opened only for those who may see the resident
(row-level security: the resident's building in scope); each read is audited.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis import permissions
from gis.audit import Who, audit
from gis.errors import InvalidInput, NotFound
from gis.fields import clean_text
from gis.patrol.checkins import PATROL, check_time
from gis.security import Keys

NOTE_COLUMN = "visit.note"
# the ledger entries a visit can be for: 'special_group:<category>', 'key_person:<category>'
ENTRIES = (
    "SELECT resident_id, 'special_group:' || category AS category FROM special_group "
    "UNION ALL SELECT resident_id, 'key_person:' || category FROM key_person"
)


def frequencies(conn: Connection) -> dict[str, int]:
    """Days between visits, per category."""
    rows = conn.execute(sa.text("SELECT category, days FROM visit_frequency ORDER BY 1"))
    return {r.category: int(r.days) for r in rows}


def set_frequency(conn: Connection, user: Who, category: str, days: int) -> None:
    """Set the days between visits of one category (committee staff)."""
    permissions.require(user, "assign_leader", "set visit frequencies")
    if not 1 <= days <= 366:
        raise InvalidInput("visits are due every 1 to 366 days")
    done = conn.execute(
        sa.text("UPDATE visit_frequency SET days = :d WHERE category = :c"),
        {"c": category, "d": days},
    ).rowcount
    if not done:
        raise NotFound(f"no visit category {category!r}")


def record(conn: Connection, keys: Keys, user: Who, data: dict[str, Any], now: dt.datetime):
    """Log a visit to a resident for one of their ledger entries."""
    permissions.require(user, PATROL, "log visits")
    rid, category = int(data["resident_id"]), str(data["category"])
    note = clean_text("note", data.get("note"), 2000)
    at = check_time(data.get("at"), now)
    has = conn.scalar(
        sa.text(f"SELECT 1 FROM ({ENTRIES}) e WHERE e.resident_id = :r AND e.category = :c"),
        {"r": rid, "c": category},
    )
    if not has:
        # the resident is not in the user's area, or not in that group: the same answer
        raise NotFound(f"no resident {rid} with {category} in your area")
    vid = conn.scalar(
        sa.text(
            "INSERT INTO visit (resident_id, user_id, category, at, note_enc) "
            "VALUES (:r, :u, :c, :at, :n) RETURNING id"
        ),
        {
            "r": rid,
            "u": user.id,
            "c": category,
            "at": at,
            "n": None if note is None else keys.seal(note, NOTE_COLUMN),
        },
    )
    audit(conn, user, "read", "resident", [rid], {"via": "visit"})
    return {"id": int(vid), "resident_id": rid, "category": category, "at": at.isoformat(),
            "user_id": user.id, "note": note}  # fmt: skip


def list_visits(conn: Connection, keys: Keys, user: Who, resident_id: int, limit: int = 100):
    """A resident's visits, newest first, notes opened (audited)."""
    permissions.require(user, "see_people", "read visits")
    if not conn.scalar(sa.text("SELECT 1 FROM resident WHERE id = :r"), {"r": resident_id}):
        raise NotFound(f"no resident {resident_id} in your area")
    rows = conn.execute(
        sa.text(
            "SELECT id, resident_id, category, at, user_id, note_enc FROM visit "
            "WHERE resident_id = :r ORDER BY at DESC, id DESC LIMIT :lim"
        ),
        {"r": resident_id, "lim": limit},
    ).all()
    audit(conn, user, "list", "visit", [r.id for r in rows], {"resident_id": resident_id})
    return [
        {
            "id": r.id,
            "resident_id": r.resident_id,
            "category": r.category,
            "at": r.at.isoformat(),
            "user_id": r.user_id,
            "note": None if r.note_enc is None else keys.open(r.note_enc, NOTE_COLUMN),
        }
        for r in rows
    ]
