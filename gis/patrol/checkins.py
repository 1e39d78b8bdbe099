"""Check-ins (巡查打卡): a worker was at a building, by tapping it or by GPS.

A GPS check-in is refused when the position is farther from the building's footprint than
its accuracy allows (plus ``SLACK_M``: the door, a footprint drawn a little off), with the
distance, so the worker can move closer or tap instead. Sent offline and synced later,
each carries its device time (``at``) and an Idempotency-Key (``api/idempotency.py``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis import permissions
from gis.audit import Who
from gis.errors import InvalidInput, NotFound

PATROL = "page_patrol"  # the roles that patrol: admins, committee staff, grid workers
SLACK_M = 15.0
MAX_ACCURACY_M = 100.0  # coarser than this a position names no building
MAX_AGE = dt.timedelta(days=7)  # an offline queue older than this is refused
CLOCK_SKEW = dt.timedelta(minutes=10)
METHODS = ("tap", "gps")


def in_scope(conn: Connection, building_id: int) -> bool:
    """Whether the building is in the user's people scope (what the policies check)."""
    return bool(
        conn.scalar(
            sa.text("SELECT :b IN (SELECT ga_people_buildings())"), {"b": building_id}
        )
    )


def check_time(at: dt.datetime | None, now: dt.datetime) -> dt.datetime:
    """The device time of a record made offline, or ``now``; refused in the future or stale."""
    if at is None:
        return now
    if at.tzinfo is None:
        raise InvalidInput("the time needs a time zone (e.g. 2026-12-03T09:30:00+08:00)")
    if at > now + CLOCK_SKEW:
        raise InvalidInput("the time is in the future: check the tablet's clock",
                           key="patrol.future")  # fmt: skip
    if at < now - MAX_AGE:
        raise InvalidInput(f"records older than {MAX_AGE.days} days are not accepted",
                           key="patrol.too_old", days=MAX_AGE.days)  # fmt: skip
    return at


def distance_to_building(conn: Connection, building_id: int, lon: float, lat: float) -> float:
    """Metres from lon/lat to the building's footprint (0 inside)."""
    d = conn.scalar(
        sa.text(
            "SELECT ST_Distance(geom::geography, ST_SetSRID(ST_MakePoint(:x, :y), 4326)"
            "::geography) FROM building WHERE id = :b"
        ),
        {"b": building_id, "x": lon, "y": lat},
    )
    if d is None:
        raise NotFound(f"no building {building_id} in your area")
    return float(d)


def check_in(conn: Connection, user: Who, data: dict[str, Any], now: dt.datetime) -> dict:
    """Record one check-in; refuse a GPS position too far from the building (422)."""
    permissions.require(user, PATROL, "check in on patrol")
    building_id = int(data["building_id"])
    method = data.get("method", "tap")
    if method not in METHODS:
        raise InvalidInput("method is tap or gps")
    if not in_scope(conn, building_id):
        raise NotFound(f"no building {building_id} in your area")
    at = check_time(data.get("at"), now)
    lon, lat, accuracy, distance = data.get("lon"), data.get("lat"), data.get("accuracy_m"), None
    if method == "gps":
        if lon is None or lat is None or accuracy is None:
            raise InvalidInput("a GPS check-in needs lon, lat and accuracy_m")
        if accuracy > MAX_ACCURACY_M:
            raise InvalidInput(
                f"the position is too imprecise (±{accuracy:.0f} m); wait for a better fix "
                "or tap the building",
                key="patrol.imprecise",
                accuracy_m=round(accuracy),
            )
        distance = distance_to_building(conn, building_id, lon, lat)
        if distance > accuracy + SLACK_M:
            raise InvalidInput(
                f"you are {distance:.0f} m from the building, more than the position's "
                f"accuracy (±{accuracy:.0f} m) allows; move closer or tap the building",
                key="patrol.too_far",
                distance_m=round(distance),
                accuracy_m=round(accuracy),
            )
    row = conn.execute(
        sa.text(
            "INSERT INTO patrol_checkin (user_id, building_id, at, method, lon, lat, "
            "accuracy_m, distance_m) VALUES (:u, :b, :at, :m, :x, :y, :acc, :d) "
            "RETURNING id, received_at"
        ),
        {
            "u": user.id,
            "b": building_id,
            "at": at,
            "m": method,
            "x": lon,
            "y": lat,
            "acc": accuracy,
            "d": distance,
        },
    ).one()
    return {
        "id": int(row.id),
        "building_id": building_id,
        "at": at.isoformat(),
        "method": method,
        "accuracy_m": accuracy,
        "distance_m": None if distance is None else round(distance, 1),
    }
