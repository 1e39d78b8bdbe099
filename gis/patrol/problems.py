"""Problems (问题) listed until verified and crossed off (挂牌销号).

A problem is reported at a building or at a point (then the nearest building in the
reporter's area within ``NEAR_M`` anchors it, for scope). Its status moves only along
``TRANSITIONS``; every change is a ``problem_event`` (who, when, from, to, note). Verifying
needs someone other than the resolver (the database checks it too), and only a verified
problem is closed.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis import permissions
from gis.audit import Who
from gis.errors import Conflict, Forbidden, InvalidInput, NotFound
from gis.fields import clean_text
from gis.patrol.checkins import PATROL, check_time
from gis.patrol.overdue import overdue_sql

CATEGORIES = (
    "parking",
    "ebike_charging",
    "lift",
    "illegal_construction",
    "public_safety",
    "environment",
    "facilities",
    "other",
)
HANDLING = ("immediate", "joint", "time_limited")
STATUSES = ("reported", "accepted", "in_progress", "resolved", "verified", "closed")
# resolved -> in_progress: the verifier found it not done
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "reported": ("accepted",),
    "accepted": ("in_progress", "resolved"),
    "in_progress": ("resolved",),
    "resolved": ("verified", "in_progress"),
    "verified": ("closed",),
    "closed": (),
}
OPEN = ("reported", "accepted", "in_progress", "resolved")
NEAR_M = 200.0

COLUMNS = (
    "p.id, p.building_id, p.category, p.description, p.handling, p.deadline, p.status, "
    "p.reported_by, p.reported_at, p.resolved_by, p.verified_by, p.version, p.updated_at, "
    "ST_X(p.geom) AS lon, ST_Y(p.geom) AS lat"
)


def _out(row: Any) -> dict[str, Any]:
    d = dict(row._mapping)
    for k in ("deadline", "reported_at", "updated_at"):
        if d.get(k) is not None:
            d[k] = d[k].isoformat()
    return d


def _anchor(conn: Connection, data: dict[str, Any]) -> tuple[int, float, float]:
    """(building id, lon, lat) of a new problem; refused outside the reporter's area."""
    bid, lon, lat = data.get("building_id"), data.get("lon"), data.get("lat")
    if (lon is None) != (lat is None):
        raise InvalidInput("give both lon and lat, or neither")
    if bid is not None:
        row = conn.execute(
            sa.text(
                "SELECT id, ST_X(ST_PointOnSurface(geom)) AS x, ST_Y(ST_PointOnSurface(geom)) "
                "AS y FROM building WHERE id = :b AND id IN (SELECT ga_people_buildings())"
            ),
            {"b": bid},
        ).first()
        if row is None:
            raise NotFound(f"no building {bid} in your area")
        return int(row.id), (row.x if lon is None else lon), (row.y if lat is None else lat)
    if lon is None:
        raise InvalidInput("a problem needs a building_id or a position (lon, lat)")
    found = conn.scalar(
        sa.text(
            "SELECT b.id FROM building b WHERE b.id IN (SELECT ga_people_buildings()) "
            "AND ST_DWithin(b.geom::geography, ST_SetSRID(ST_MakePoint(:x, :y), 4326)"
            "::geography, :r) ORDER BY b.geom <-> ST_SetSRID(ST_MakePoint(:x, :y), 4326) "
            "LIMIT 1"
        ),
        {"x": lon, "y": lat, "r": NEAR_M},
    )
    if found is None:
        raise NotFound(f"no building of your area within {NEAR_M:.0f} m of this point",
                       key="patrol.no_building_near", metres=round(NEAR_M))  # fmt: skip
    return int(found), lon, lat


def _event(conn, pid: int, user: Who, now, frm: str | None, to: str, note: str | None) -> None:
    conn.execute(
        sa.text(
            "INSERT INTO problem_event (problem_id, user_id, at, from_status, to_status, note) "
            "VALUES (:p, :u, :at, :f, :t, :n)"
        ),
        {"p": pid, "u": user.id, "at": now, "f": frm, "t": to, "n": note},
    )


def report(conn: Connection, user: Who, data: dict[str, Any], now: dt.datetime) -> dict:
    """Register a problem (status ``reported``) and its first event."""
    permissions.require(user, PATROL, "report problems")
    if data.get("category") not in CATEGORIES:
        raise InvalidInput(f"category is one of {', '.join(CATEGORIES)}")
    handling = data.get("handling", "immediate")
    if handling not in HANDLING:
        raise InvalidInput(f"handling is one of {', '.join(HANDLING)}")
    deadline = data.get("deadline")
    if (handling == "time_limited") != (deadline is not None):
        raise InvalidInput("a deadline is given with time_limited handling, and only then",
                           key="patrol.deadline")  # fmt: skip
    if deadline is not None and (deadline.tzinfo is None or deadline <= now):
        raise InvalidInput("the deadline must be a future time with a time zone",
                           key="patrol.deadline")  # fmt: skip
    description = clean_text("description", data.get("description"), 2000, required=True)
    at = check_time(data.get("at"), now)
    bid, lon, lat = _anchor(conn, data)
    pid = conn.scalar(
        sa.text(
            "INSERT INTO problem (building_id, category, description, handling, deadline, "
            "reported_by, reported_at, updated_at, geom) VALUES (:b, :c, :d, :h, :dl, :u, :at, "
            ":now, ST_SetSRID(ST_MakePoint(:x, :y), 4326)) RETURNING id"
        ),
        {
            "b": bid,
            "c": data["category"],
            "d": description,
            "h": handling,
            "dl": deadline,
            "u": user.id,
            "at": at,
            "now": now,
            "x": lon,
            "y": lat,
        },
    )
    _event(conn, pid, user, at, None, "reported", None)
    return get(conn, pid)


def get(conn: Connection, pid: int) -> dict[str, Any]:
    """One problem in the user's area, with its events (404 outside it)."""
    row = conn.execute(
        sa.text(f"SELECT {COLUMNS} FROM problem p WHERE p.id = :p"), {"p": pid}
    ).first()
    if row is None:
        raise NotFound(f"no problem {pid} in your area")
    out = _out(row)
    out["events"] = [
        {**dict(e._mapping), "at": e.at.isoformat()}
        for e in conn.execute(
            sa.text(
                "SELECT user_id, at, from_status, to_status, note FROM problem_event "
                "WHERE problem_id = :p ORDER BY at, id"
            ),
            {"p": pid},
        )
    ]
    return out


def change_status(
    conn: Connection, user: Who, pid: int, to: str, note: str | None, now: dt.datetime
) -> dict[str, Any]:
    """Move a problem to ``to`` if the flow allows it from its status; record the change."""
    permissions.require(user, PATROL, "handle problems")
    note = clean_text("note", note, 2000)
    row = conn.execute(
        sa.text("SELECT status, resolved_by FROM problem WHERE id = :p FOR UPDATE"), {"p": pid}
    ).first()
    if row is None:
        raise NotFound(f"no problem {pid} in your area")
    if to not in TRANSITIONS.get(row.status, ()):
        allowed = ", ".join(TRANSITIONS[row.status]) or "none (it is closed)"
        raise Conflict(
            f"a {row.status} problem cannot become {to}; next: {allowed}",
            key="patrol.bad_transition",
            status=f"@problems.status.{row.status}",  # the label, in the reader's language
            to=f"@problems.status.{to}" if to in STATUSES else to,
        )
    sets = {"resolved": "resolved_by = :u", "in_progress": "resolved_by = NULL",
            "verified": "verified_by = :u"}.get(to, "")  # fmt: skip
    if to == "verified" and row.resolved_by == user.id:
        raise Forbidden("the one who resolved a problem cannot verify it; ask a colleague",
                        key="patrol.verify_own")  # fmt: skip
    conn.execute(
        sa.text(
            "UPDATE problem SET status = :t, version = version + 1, updated_at = :now"
            + (f", {sets}" if sets else "")
            + " WHERE id = :p"
        ),
        {"t": to, "u": user.id, "now": now, "p": pid},
    )
    _event(conn, pid, user, now, row.status, to, note)
    return get(conn, pid)


def list_problems(
    conn: Connection,
    status: str | None = None,
    is_overdue: bool | None = None,
    now: dt.datetime | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Problems in the user's area, newest first; ``is_overdue`` (``gis.patrol.overdue``)
    needs ``now``."""
    where, params = ["true"], {"lim": limit}
    if status is not None:
        if status not in STATUSES:
            raise InvalidInput(f"status is one of {', '.join(STATUSES)}")
        where.append("p.status = :st")
        params["st"] = status
    if is_overdue is not None:
        if now is None:
            raise InvalidInput("the overdue filter needs the time (now)")
        where.append(("" if is_overdue else "NOT ") + overdue_sql(":now"))
        params["now"] = now
    rows = conn.execute(
        sa.text(
            f"SELECT {COLUMNS} FROM problem p WHERE {' AND '.join(where)} "
            "ORDER BY p.reported_at DESC, p.id DESC LIMIT :lim"
        ),
        params,
    )
    return [_out(r) for r in rows]
