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


def _checked(data: dict[str, Any], now: dt.datetime) -> tuple[str, dt.datetime]:
    """What can be checked of one item without the database: method, time, GPS fields."""
    method = data.get("method", "tap")
    if method not in METHODS:
        raise InvalidInput("method is tap or gps")
    at = check_time(data.get("at"), now)
    if method == "gps":
        if data.get("lon") is None or data.get("lat") is None or data.get("accuracy_m") is None:
            raise InvalidInput("a GPS check-in needs lon, lat and accuracy_m")
        if data["accuracy_m"] > MAX_ACCURACY_M:
            raise InvalidInput(
                f"the position is too imprecise (±{data['accuracy_m']:.0f} m); wait for a "
                "better fix or tap the building",
                key="patrol.imprecise",
                accuracy_m=round(data["accuracy_m"]),
            )
    return method, at


def _distances(conn: Connection, gps: list[tuple[int, float, float]]) -> list[float | None]:
    """Metres from each (building, lon, lat) to the building's footprint, in one query."""
    if not gps:
        return []
    rows = conn.execute(
        sa.text(
            "SELECT t.i, ST_Distance(b.geom::geography, ST_SetSRID(ST_MakePoint(t.x, t.y), "
            "4326)::geography) AS d FROM unnest(CAST(:b AS bigint[]), CAST(:x AS float8[]), "
            "CAST(:y AS float8[])) WITH ORDINALITY AS t (b, x, y, i) "
            "LEFT JOIN building b ON b.id = t.b"
        ),
        {"b": [g[0] for g in gps], "x": [g[1] for g in gps], "y": [g[2] for g in gps]},
    ).all()
    by_index = {int(r.i): (None if r.d is None else float(r.d)) for r in rows}
    return [by_index.get(i + 1) for i in range(len(gps))]


def check_in_many(
    conn: Connection, user: Who, items: list[tuple[str, dict[str, Any]]], now: dt.datetime
) -> list[tuple[str, int, dict[str, Any], bool] | tuple[str, Exception]]:
    """Record a synced queue of check-ins, each once per Idempotency-Key, in a handful of
    statements whatever the number: the keys, the scope and the distances are looked up
    for all items at once, the new rows and their answers written in one statement each.

    Returns, per item in order, (key, status, body, replayed) or (key, refusal).
    """
    from gis import idempotency

    permissions.require(user, PATROL, "check in on patrol")
    digests = [
        idempotency.request_digest({"path": "/api/patrol/checkins", **data}) for _k, data in items
    ]
    stored = idempotency.claimed(conn, user, [k for k, _d in items])
    scope = set(
        conn.scalars(
            sa.text(
                "SELECT b FROM unnest(CAST(:b AS bigint[])) b "
                "WHERE b IN (SELECT ga_people_buildings())"
            ),
            {"b": sorted({int(d["building_id"]) for _k, d in items})},
        )
    )
    out: list[Any] = [None] * len(items)
    todo: list[tuple[int, str, dt.datetime]] = []  # (index, method, at)
    first_of: dict[str, int] = {}
    for i, ((key, data), digest) in enumerate(zip(items, digests, strict=True)):
        if key in stored or key in first_of:  # sent before, or twice in this batch
            row = stored.get(key)
            same = row.request_hash == digest if row else digests[first_of[key]] == digest
            if not same:
                out[i] = (key, InvalidInput(
                    "this Idempotency-Key was used for a different request; use a new key"))
            elif row is not None:
                out[i] = (key, row.status_code, row.response, True)
            else:
                out[i] = ("__same__", first_of[key])
            continue
        first_of[key] = i
        try:
            if int(data["building_id"]) not in scope:
                raise NotFound(f"no building {data['building_id']} in your area")
            method, at = _checked(data, now)
        except (InvalidInput, NotFound) as err:
            out[i] = (key, err)
            continue
        todo.append((i, method, at))
    gps = [(i, m) for i, m, _at in todo if m == "gps"]
    far = _distances(conn, [(int(items[i][1]["building_id"]), items[i][1]["lon"],
                             items[i][1]["lat"]) for i, _m in gps])  # fmt: skip
    distance = {i: d for (i, _m), d in zip(gps, far, strict=True)}
    rows = []
    for i, method, at in todo:
        data = items[i][1]
        d = distance.get(i)
        if method == "gps" and (d is None or d > data["accuracy_m"] + SLACK_M):
            out[i] = (items[i][0], InvalidInput(
                f"you are {d or 0:.0f} m from the building, more than the position's accuracy "
                f"(±{data['accuracy_m']:.0f} m) allows; move closer or tap the building",
                key="patrol.too_far", distance_m=round(d or 0),
                accuracy_m=round(data["accuracy_m"])))  # fmt: skip
            continue
        rows.append((i, method, at, d))
    ids: list[int] = []
    if rows:
        # the ids first, so that each answer names its own row whatever order the
        # database returns them in
        ids = list(
            conn.scalars(
                sa.text("SELECT nextval('patrol_checkin_id_seq') FROM generate_series(1, :n)"),
                {"n": len(rows)},
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO patrol_checkin (id, user_id, building_id, at, method, lon, lat, "
                "accuracy_m, distance_m) SELECT i, :u, b, at, m, x, y, acc, d FROM unnest("
                "CAST(:i AS bigint[]), CAST(:b AS bigint[]), CAST(:at AS timestamptz[]), "
                "CAST(:m AS text[]), CAST(:x AS float8[]), CAST(:y AS float8[]), "
                "CAST(:acc AS float8[]), CAST(:d AS float8[])) AS t (i, b, at, m, x, y, acc, d)"
            ),
            {
                "i": ids,
                "u": user.id,
                "b": [int(items[i][1]["building_id"]) for i, *_ in rows],
                "at": [at for _i, _m, at, _d in rows],
                "m": [m for _i, m, _at, _d in rows],
                "x": [items[i][1].get("lon") for i, *_ in rows],
                "y": [items[i][1].get("lat") for i, *_ in rows],
                "acc": [items[i][1].get("accuracy_m") for i, *_ in rows],
                "d": [d for *_r, d in rows],
            },
        )
    answers = []
    for (i, method, at, d), rid in zip(rows, ids, strict=True):
        data = items[i][1]
        body = {
            "id": int(rid),
            "building_id": int(data["building_id"]),
            "at": at.isoformat(),
            "method": method,
            "accuracy_m": data.get("accuracy_m"),
            "distance_m": None if d is None else round(d, 1),
        }
        out[i] = (items[i][0], 201, body, False)
        answers.append((items[i][0], digests[i], 201, body))
    idempotency.store_many(conn, user, answers)
    replayed = [e[2].get("id") for e in out if e and len(e) == 4 and e[3] and e[0] != "__same__"]
    if replayed:  # a replay answers with what the first sync wrote: audited like a read
        from gis.audit import audit

        audit(conn, user, "replay", "/api/patrol/checkins", [r for r in replayed if r])
    for i, entry in enumerate(out):  # a key sent twice in the batch: the first's answer
        if entry and entry[0] == "__same__":
            first = out[entry[1]]
            out[i] = first if len(first) == 2 else (first[0], first[1], first[2], True)
    return out
