"""Open311 GeoReport v2 over our problems: services are categories, requests are problems.

* A **service** is a problem category (``service_code`` = our category name, e.g.
  ``ebike_charging``); its definition lists the attributes a report may carry (how it is
  handled, its deadline, the building).
* A **request** is a problem. Our six statuses map onto the spec's two: ``open`` until a
  colleague has verified the fix (reported, accepted, in_progress, resolved) and ``closed``
  once verified or crossed off (verified, closed); ``status_notes`` is the latest note of
  its history, else the status in words. ``agency_responsible`` is the level that answers
  for it now (the grid, the residents' committee, or the subdistrict once escalated),
  ``address_id`` its building, ``expected_datetime`` its deadline.

Who reads what (docs/patrol.md): the services are public; requests need a login and are
read with row-level security, like ``GET /api/problems``. Nothing names the reporter, and
the reporter's contact fields a client may post (email, name, phone) are not stored.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis import i18n
from gis.errors import InvalidInput, NotFound
from gis.patrol.problems import CATEGORIES, HANDLING, STATUSES

LOCAL_TZ = ZoneInfo("Asia/Shanghai")
OPEN311_STATUS = {s: ("closed" if s in ("verified", "closed") else "open") for s in STATUSES}
DEFAULT_DAYS = 90  # the spec: without dates, the last 90 days
MAX_REQUESTS = 1000  # the spec's default upper bound of one answer
MAX_IDS = 200


def w3c(t: dt.datetime | None) -> str | None:
    """A time as the spec writes it (W3C / ISO 8601 with offset), China time, no fraction."""
    return None if t is None else t.astimezone(LOCAL_TZ).replace(microsecond=0).isoformat()


def services(lang: str) -> list[dict[str, Any]]:
    """``GET services``: one service per problem category."""
    group = i18n.t("problems.service_group", lang)
    return [
        {
            "service_code": code,
            "service_name": i18n.t(f"problems.service.{code}", lang),
            "description": i18n.t(f"problems.service_description.{code}", lang),
            "metadata": True,
            "type": "realtime",
            "keywords": i18n.t(f"problems.service_keywords.{code}", lang),
            "group": group,
        }
        for code in CATEGORIES
    ]


def _attributes(lang: str) -> list[dict[str, Any]]:
    return [
        {
            "variable": True,
            "code": "handling",
            "datatype": "singlevaluelist",
            "required": False,
            "datatype_description": i18n.t("problems.attr.handling_hint", lang),
            "order": 1,
            "description": i18n.t("problems.attr.handling", lang),
            "values": [
                {"key": h, "name": i18n.t(f"problems.handling.{h}", lang)} for h in HANDLING
            ],
        },
        {
            "variable": True,
            "code": "deadline",
            "datatype": "datetime",
            "required": False,
            "datatype_description": i18n.t("problems.attr.deadline_hint", lang),
            "order": 2,
            "description": i18n.t("problems.attr.deadline", lang),
        },
        {
            "variable": True,
            "code": "building_id",
            "datatype": "number",
            "required": False,
            "datatype_description": i18n.t("problems.attr.building_hint", lang),
            "order": 3,
            "description": i18n.t("problems.attr.building", lang),
        },
    ]


def service_definition(code: str, lang: str) -> dict[str, Any]:
    """``GET services/{code}``: the attributes a request of this service may carry."""
    if code not in CATEGORIES:
        raise NotFound(f"no service {code!r}; the services are: {', '.join(CATEGORIES)}")
    return {"service_code": code, "attributes": _attributes(lang)}


def _ids(value: str | None) -> list[int] | None:
    if value is None or not value.strip():
        return None
    try:
        ids = [int(v) for v in value.split(",") if v.strip()]
    except ValueError as err:
        raise InvalidInput("service_request_id is a comma-separated list of ids") from err
    if not ids or len(ids) > MAX_IDS or any(not 1 <= i <= 2**62 for i in ids):
        raise InvalidInput(f"service_request_id takes 1 to {MAX_IDS} ids")
    return ids


def _codes(value: str | None) -> list[str] | None:
    if value is None or not value.strip():
        return None
    codes = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [c for c in codes if c not in CATEGORIES]
    if unknown:
        raise InvalidInput(f"unknown service_code {', '.join(unknown)}; the services are: "
                           f"{', '.join(CATEGORIES)}")  # fmt: skip
    return codes


def _statuses(value: str | None) -> list[str] | None:
    if value is None or not value.strip():
        return None
    wanted = {v.strip() for v in value.split(",") if v.strip()}
    if not wanted <= {"open", "closed"}:
        raise InvalidInput("status is open, closed, or both (open,closed)")
    return [s for s, o in OPEN311_STATUS.items() if o in wanted]


def parse_time(name: str, value: str | None) -> dt.datetime | None:
    """A W3C time of a query (``2010-04-14T06:37:38-08:00``, ``Z``); China time without offset."""
    if value is None or not value.strip():
        return None
    try:
        t = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as err:
        raise InvalidInput(f"{name} is a W3C time, e.g. 2026-12-01T00:00:00+08:00") from err
    return t if t.tzinfo else t.replace(tzinfo=LOCAL_TZ)


REQUESTS = """
    SELECT p.id, p.category, p.description, p.status, p.handling, p.deadline, p.reported_at,
           p.updated_at, p.escalation_level, p.building_id, ST_X(p.geom) AS lon,
           ST_Y(p.geom) AS lat, b.addr_street, b.addr_housenumber, b.name AS building_name,
           g.name AS grid_name, g.code AS grid_code, c.name AS community_name,
           s.name AS subdistrict_name,
           (SELECT e.note FROM problem_event e WHERE e.problem_id = p.id AND e.note IS NOT NULL
             ORDER BY e.at DESC, e.id DESC LIMIT 1) AS last_note,
           (SELECT min(ph.id) FROM problem_photo ph WHERE ph.problem_id = p.id) AS photo_id
      FROM problem p
      JOIN building b ON b.id = p.building_id
      LEFT JOIN building_path bp ON bp.building_id = p.building_id
      LEFT JOIN grid g ON g.id = bp.grid_id
      LEFT JOIN community c ON c.id = bp.community_id
      LEFT JOIN subdistrict s ON s.id = bp.subdistrict_id
"""


def _agency(r: Any, lang: str) -> str:
    level = r.escalation_level
    name = {"worker": r.grid_name or r.grid_code, "committee": r.community_name,
            "subdistrict": r.subdistrict_name}.get(level)  # fmt: skip
    label = i18n.t(f"problems.agency.{level}", lang)
    return f"{name} {label}" if name else label


def _request(r: Any, lang: str, base_url: str) -> dict[str, Any]:
    address = " ".join(x for x in (r.addr_street, r.addr_housenumber) if x) or r.building_name
    notice = i18n.t(f"problems.handling.{r.handling}", lang)
    return {
        "service_request_id": str(r.id),
        "status": OPEN311_STATUS[r.status],
        "status_notes": r.last_note or i18n.t(f"problems.status.{r.status}", lang),
        "service_name": i18n.t(f"problems.service.{r.category}", lang),
        "service_code": r.category,
        "description": r.description,
        "agency_responsible": _agency(r, lang),
        "service_notice": notice,
        "requested_datetime": w3c(r.reported_at),
        "updated_datetime": w3c(r.updated_at),
        "expected_datetime": w3c(r.deadline),
        "address": address,
        "address_id": str(r.building_id),
        "zipcode": None,
        "lat": r.lat,
        "long": r.lon,
        "media_url": None if r.photo_id is None
        else f"{base_url}/api/problems/{r.id}/photos/{r.photo_id}",
    }


def list_requests(
    conn: Connection,
    lang: str,
    base_url: str,
    now: dt.datetime,
    service_request_id: str | None = None,
    service_code: str | None = None,
    start_date: str | None = None,
    end_date: str | None = None,
    status: str | None = None,
) -> list[dict[str, Any]]:
    """``GET requests``: the problems the user may see, filtered as the spec says.

    ``service_request_id`` (comma-separated) overrides every other filter. Without dates,
    the last ``DEFAULT_DAYS`` days; at most ``MAX_REQUESTS``, newest first.
    """
    where, params = [], {"lim": MAX_REQUESTS}
    ids = _ids(service_request_id)
    if ids is not None:
        where.append("p.id = ANY(:ids)")
        params["ids"] = ids
    else:
        codes, statuses = _codes(service_code), _statuses(status)
        start, end = parse_time("start_date", start_date), parse_time("end_date", end_date)
        if start is not None and end is not None and start > end:
            raise InvalidInput("start_date is after end_date")
        if start is None and end is None:
            start = now - dt.timedelta(days=DEFAULT_DAYS)
        for cond, key, value in (
            ("p.category = ANY(:codes)", "codes", codes),
            ("p.status = ANY(:statuses)", "statuses", statuses),
            ("p.reported_at >= :start", "start", start),
            ("p.reported_at <= :end", "end", end),
        ):
            if value is not None:
                where.append(cond)
                params[key] = value
    sql = REQUESTS + (" WHERE " + " AND ".join(where) if where else "")
    rows = conn.execute(sa.text(sql + " ORDER BY p.reported_at DESC, p.id DESC LIMIT :lim"),
                        params)  # fmt: skip
    return [_request(r, lang, base_url) for r in rows]


def get_request(conn: Connection, pid: int, lang: str, base_url: str) -> list[dict[str, Any]]:
    """``GET requests/{id}``: a list of one request (the spec's shape); 404 outside scope."""
    row = conn.execute(sa.text(REQUESTS + " WHERE p.id = :p"), {"p": pid}).first()
    if row is None:
        raise NotFound(f"no service request {pid} in your area")
    return [_request(row, lang, base_url)]


def to_problem(form: dict[str, Any]) -> dict[str, Any]:
    """The ``POST requests`` form (service_code, lat, long, description, attribute[…])
    as ``gis.patrol.problems.report``'s data."""
    code = form.get("service_code")
    if code not in CATEGORIES:
        raise InvalidInput(f"service_code is one of {', '.join(CATEGORIES)}")
    lat, lon = form.get("lat"), form.get("long")
    building = form.get("attribute[building_id]") or form.get("address_id")
    handling = form.get("attribute[handling]") or "immediate"
    deadline = parse_time("attribute[deadline]", form.get("attribute[deadline]"))
    try:
        building_id = None if building in (None, "") else int(building)
        if building_id is not None and not 1 <= building_id <= 2**62:
            raise ValueError(building)
        lat_f = None if lat in (None, "") else float(lat)
        lon_f = None if lon in (None, "") else float(lon)
    except ValueError as err:
        raise InvalidInput("lat and long are numbers, address_id a building id") from err
    if (lat_f is not None and not -90 <= lat_f <= 90) or (
        lon_f is not None and not -180 <= lon_f <= 180
    ):
        raise InvalidInput("lat is -90 to 90 and long -180 to 180")
    if building_id is None and lat_f is None:
        raise InvalidInput("a request needs lat and long, or address_id (a building id)")
    return {
        "category": code,
        "description": form.get("description"),
        "handling": handling,
        "deadline": deadline,
        "building_id": building_id,
        "lon": lon_f,
        "lat": lat_f,
    }


def post_answer(problem: dict[str, Any], lang: str) -> list[dict[str, Any]]:
    """The spec's answer to ``POST requests``: the new id and its service notice."""
    return [
        {
            "service_request_id": str(problem["id"]),
            "service_notice": i18n.t(f"problems.handling.{problem['handling']}", lang),
            "account_id": None,
        }
    ]
