"""Residents' voice (居民评议): survey rounds, the stairwell sheets and their public answers.

Staff open a round and print one sheet per building: a QR code (the sheet's ``token``) and
one code per dwelling on tear-off slips. A resident scans the code, opens the public page
(no login) and either answers the short survey (four scores 1–5, once per code) or reports
a problem, which becomes a problem of ``gis.patrol.problems`` (reported by the locked
account ``residents-qr``, listed in ``resident_problem``). Nothing personal is asked: no
name, no phone, no room; the client's address is kept only as a keyed hash for the rate
limits, a day. A problem's free text is what a resident writes: phone and ID-card numbers
are refused (also when spaced, dashed or full-width), HTML too, but a name or a flat
written in words cannot be told from a description and may be stored. The public side goes
through the SECURITY DEFINER functions of migration 0012 (``ga_public_*``); the app's role
has no write on answers or problems there.
"""

from __future__ import annotations

import datetime as dt
import io
import ipaddress
import re
import secrets
import unicodedata
from typing import Any
from urllib.parse import urlsplit

import segno
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis import permissions
from gis.audit import Who
from gis.errors import InvalidInput, NotFound
from gis.fields import clean_text
from gis.patrol.problems import CATEGORIES
from gis.reports import profiles

QUESTIONS = ("overall", "service", "environment", "safety")
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no I, O, 0, 1: read off paper
CODE_LEN = 8
MAX_DESCRIPTION = 500
MAX_CODES_PER_SHEET = 2000
_CODE = re.compile(r"^[A-HJ-NP-Z2-9]{8}$")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_HTML = re.compile(r"[<>]|&[#a-zA-Z0-9]+;")
# personal data a resident might type: a mobile number, an ID card number (matched once
# the separators people put between digits are taken out: 139 1234 5678, 139-1234-5678)
_PERSONAL = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)|(?<![0-9])\d{17}[\dXx](?![0-9Xx])")
_DIGIT_GAP = re.compile(r"(?<=\d)[\s\-.·・‧]+(?=[\dXx])")
STATUSES = (
    "ok",
    "rate_limited",
    "no_sheet",
    "closed",
    "sheet_closed",
    "bad_text",
    "bad_scores",
    "bad_code",
    "used",
)
SHEET_HOUSEHOLDS = (
    f"WITH bh AS ({profiles.BUILDING_HOUSEHOLDS} WHERE b.id = :b) SELECT households FROM bh"
)


def create_round(
    conn: Connection, user: Who, label: str, opens_at: dt.datetime, closes_at: dt.datetime
) -> dict[str, Any]:
    """Open a survey round (staff)."""
    permissions.require(user, "run_surveys", "open survey rounds")
    label = clean_text("label", label, 80, required=True) or ""
    if opens_at.tzinfo is None or closes_at.tzinfo is None or closes_at <= opens_at:
        raise InvalidInput(
            "a round closes after it opens (times with a time zone)", key="voice.round_times"
        )
    row = conn.execute(
        sa.text(
            "INSERT INTO survey_round (label, opens_at, closes_at, created_by) "
            "VALUES (:l, :o, :c, :u) RETURNING id, label, opens_at, closes_at"
        ),
        {"l": label, "o": opens_at, "c": closes_at, "u": user.id},
    ).one()
    return {
        "id": int(row.id),
        "label": row.label,
        "opens_at": row.opens_at.isoformat(),
        "closes_at": row.closes_at.isoformat(),
    }


def _new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LEN))


def issue_sheet(conn: Connection, user: Who, round_id: int, building_id: int) -> dict[str, Any]:
    """The sheet of a building in a round, made the first time: a token and one code per
    dwelling (the building's households). Outside the user's area: a 404."""
    permissions.require(user, "run_surveys", "print survey sheets")
    if conn.scalar(sa.text("SELECT 1 FROM survey_round WHERE id = :r"), {"r": round_id}) is None:
        raise NotFound(f"no survey round {round_id}", key="voice.no_round", id=round_id)
    seen = conn.scalar(
        sa.text("SELECT 1 FROM building WHERE id = :b AND id IN (SELECT ga_people_buildings())"),
        {"b": building_id},
    )
    if seen is None:
        raise NotFound(
            f"no building {building_id} in your area", key="voice.no_building", id=building_id
        )
    sid = conn.scalar(
        sa.text("SELECT id FROM survey_sheet WHERE round_id = :r AND building_id = :b"),
        {"r": round_id, "b": building_id},
    )
    if sid is None:
        households = int(
            conn.scalar(sa.text(SHEET_HOUSEHOLDS), {"b": building_id, "year_tags": []}) or 0
        )
        if not 1 <= households <= MAX_CODES_PER_SHEET:
            raise InvalidInput(
                f"building {building_id} has {households} households: a sheet "
                f"holds 1 to {MAX_CODES_PER_SHEET}",
                key="voice.sheet_size",
                households=households,
                max=MAX_CODES_PER_SHEET,
            )
        sid = conn.scalar(
            sa.text(
                "INSERT INTO survey_sheet (round_id, building_id, token) "
                "VALUES (:r, :b, :t) RETURNING id"
            ),
            {"r": round_id, "b": building_id, "t": secrets.token_urlsafe(18)},
        )
        codes: set[str] = set()
        while len(codes) < households:
            codes.add(_new_code())
        conn.execute(
            sa.text(
                "INSERT INTO survey_code (sheet_id, code) SELECT :s, unnest(CAST(:c AS text[])) "
                "ON CONFLICT (code) DO NOTHING"
            ),
            {"s": sid, "c": sorted(codes)},
        )
        # a clash with another sheet's code (about 1 in 10^9 per code) is made up here
        count = sa.text("SELECT count(*) FROM survey_code WHERE sheet_id = :s")
        while int(conn.scalar(count, {"s": sid})) < households:
            conn.execute(
                sa.text(
                    "INSERT INTO survey_code (sheet_id, code) VALUES (:s, :c) "
                    "ON CONFLICT (code) DO NOTHING"
                ),
                {"s": sid, "c": _new_code()},
            )
    return sheet(conn, user, int(sid))


def sheet(conn: Connection, user: Who, sheet_id: int) -> dict[str, Any]:
    """A sheet with its token and codes (staff, in their area)."""
    permissions.require(user, "run_surveys", "print survey sheets")
    row = conn.execute(
        sa.text(
            "SELECT s.id, s.token, s.round_id, r.label, r.closes_at, b.id AS building_id, "
            "b.name AS building_name, c.name AS community_name FROM survey_sheet s "
            "JOIN survey_round r ON r.id = s.round_id JOIN building b ON b.id = s.building_id "
            "LEFT JOIN community c ON c.id = b.community_id WHERE s.id = :s"
        ),
        {"s": sheet_id},
    ).first()
    if row is None:
        raise NotFound(f"no survey sheet {sheet_id} in your area", key="voice.no_sheet")
    codes = [
        r[0]
        for r in conn.execute(
            sa.text("SELECT code FROM survey_code WHERE sheet_id = :s ORDER BY id"), {"s": sheet_id}
        )
    ]
    return {
        "id": int(row.id),
        "token": row.token,
        "round_id": int(row.round_id),
        "round_label": row.label,
        "closes_at": row.closes_at.isoformat(),
        "building_id": int(row.building_id),
        "building_name": row.building_name,
        "community_name": row.community_name,
        "codes": codes,
    }


def public_url(base_url: str, token: str) -> str:
    """The address a sheet's QR code opens: ``base_url`` (the setting ``public_base_url``
    when set, else the staff member's request) with ``/v/{token}``."""
    return f"{base_url.rstrip('/')}/v/{check_token(token)}"


def is_local_url(url: str) -> bool:
    """True when ``url``'s host is a loopback, private or link-local address, or a name
    such as ``localhost``: residents' phones will probably not reach it."""
    host = (urlsplit(url).hostname or "").lower()
    if host in ("", "localhost") or host.endswith((".localhost", ".local", ".internal")):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return "." not in host  # a bare name (testserver, a machine's name) is local
    return ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_unspecified


def qr_svg(url: str) -> str:
    """The QR code of ``url`` as an SVG document (segno; error correction M)."""
    out = io.BytesIO()
    segno.make(url, error="m", micro=False).save(
        out, kind="svg", scale=6, border=2, xmldecl=False, svgns=True
    )
    return out.getvalue().decode()


def qr_png(url: str) -> bytes:
    """The QR code of ``url`` as a PNG image."""
    out = io.BytesIO()
    segno.make(url, error="m", micro=False).save(out, kind="png", scale=8, border=2)
    return out.getvalue()


def check_token(token: str) -> str:
    if not isinstance(token, str) or not _TOKEN.match(token):
        raise NotFound("no such sheet", key="voice.no_sheet")
    return token


def public_sheet(conn: Connection, token: str) -> dict[str, Any]:
    """What the public page shows of a sheet (no login): the round and the building."""
    row = conn.execute(
        sa.text("SELECT * FROM ga_public_sheet(:t)"), {"t": check_token(token)}
    ).first()
    if row is None:
        raise NotFound("no such sheet", key="voice.no_sheet")
    now = _db_now(conn)
    return {
        "round_label": row.round_label,
        "opens_at": row.opens_at.isoformat(),
        "closes_at": row.closes_at.isoformat(),
        "building_name": row.building_name,
        "community_name": row.community_name,
        "is_open": row.opens_at <= now < row.closes_at,
        "is_over": now >= row.closes_at,
    }


def _db_now(conn: Connection) -> dt.datetime:
    return conn.scalar(sa.text("SELECT now()"))


def clean_public_text(value: Any) -> str:
    """A resident's free text: plain, short, without HTML and without personal numbers.

    NFKC first (full-width digits and ＜ ＞ become ASCII), and the text kept is the
    normalised one; numbers are matched with the spaces, dashes and dots between their digits
    taken out."""
    if isinstance(value, str):
        value = unicodedata.normalize("NFKC", value)
    text = clean_text("description", value, MAX_DESCRIPTION, required=True) or ""
    if _HTML.search(text):
        raise InvalidInput("the text may not contain < > or HTML entities", key="voice.no_html")
    if _PERSONAL.search(_DIGIT_GAP.sub("", text)):
        raise InvalidInput(
            "do not write phone or ID numbers: the report is anonymous", key="voice.no_personal"
        )
    return text


def answer(conn: Connection, token: str, code: Any, addr: str, scores: Any) -> str:
    """Record one answer; the status of ``STATUSES`` (the function counts every attempt
    for the rate limits, so the caller commits whatever the status)."""
    check_token(token)
    if not isinstance(code, str) or not _CODE.match(code.strip().upper()):
        raise InvalidInput(
            "the code is the 8 letters and digits on your slip", key="voice.code_format"
        )
    if (
        not isinstance(scores, dict)
        or set(scores) != set(QUESTIONS)
        or any(type(scores[q]) is not int or not 1 <= scores[q] <= 5 for q in QUESTIONS)
    ):
        raise InvalidInput("give each question a score from 1 to 5", key="voice.scores")
    return str(
        conn.scalar(
            sa.text("SELECT ga_public_answer(:t, :c, :a, CAST(:s AS smallint[]))"),
            {
                "t": token,
                "c": code.strip().upper(),
                "a": addr[:100],
                "s": [scores[q] for q in QUESTIONS],
            },
        )
    )


def report_problem(
    conn: Connection, token: str, addr: str, category: Any, description: Any
) -> tuple[str, int | None]:
    """A resident's problem report: a problem of ``gis.patrol`` marked as from a resident."""
    check_token(token)
    if category not in CATEGORIES:
        raise InvalidInput(f"category is one of {', '.join(CATEGORIES)}", key="voice.category")
    text = clean_public_text(description)
    row = conn.execute(
        sa.text("SELECT * FROM ga_public_problem(:t, :a, :c, :d)"),
        {"t": token, "a": addr[:100], "c": category, "d": text},
    ).one()
    return str(row.status), None if row.problem_id is None else int(row.problem_id)
