"""Reports for staff: star ratings, survey rounds and the printable stairwell sheets.

Thin: parse, call ``gis.reports.ratings`` / ``gis.reports.voice``, shape. Scope as
everywhere: a community or building outside the user's areas is a 404.
"""

from __future__ import annotations

import datetime as dt
import json
from html import escape
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from api import models
from api.auth import User
from api.deps import Conn
from api.errors import request_lang
from api.routes.patrol import Now
from api.shell import PageUser
from gis import i18n
from gis.reports import document, ratings, voice

router = APIRouter(tags=["reports"])

Id = Annotated[int, Path(ge=1, le=2**62)]
Lang = Annotated[
    str | None,
    Query(pattern=r"^(zh|en)$", description="the printed report's language (default: yours)"),
]


class Rating(models.Read):
    """A committee's star rating: indicators (each with its source), gates, stars."""

    community: dict[str, Any]
    stars: int | None = Field(description="1–5; None: no indicator has a value yet")
    score: float | None
    uncapped_stars: int | None
    capped_by: list[str] = Field(description="the failed gates that lowered the stars")
    held_back_by: list[dict[str, Any]]
    indicators: dict[str, Any]
    gates: dict[str, Any]
    source: str


class Ratings(models.Read):
    """Every visible committee's rating and the distribution against the target."""

    communities: int
    distribution: dict[str, Any]
    items: list[dict[str, Any]]
    source: str


class NewRound(BaseModel):
    label: str = Field(max_length=80)
    opens_at: dt.datetime
    closes_at: dt.datetime


class NewSheet(BaseModel):
    building_id: int = Field(ge=1, le=2**62)


@router.get(
    "/api/reports/ratings",
    response_model=Ratings,
    summary="The latest published star ratings of your committees and the distribution",
)
def get_ratings(user: User, conn: Conn, now: Now) -> dict[str, Any]:
    return ratings.subdistrict_ratings(conn, user, now)


@router.get(
    "/api/reports/communities/{community_id}/rating",
    response_model=Rating,
    summary="One committee's star rating: indicators, gates, what holds it back",
)
def get_rating(community_id: Id, user: User, conn: Conn, now: Now) -> dict[str, Any]:
    return ratings.community_rating(conn, user, community_id, now)


@router.post(
    "/api/reports/communities/{community_id}/rating",
    response_model=Rating,
    status_code=201,
    summary="Compute and publish a committee's rating (shown on the board)",
)
def publish_rating(community_id: Id, user: User, conn: Conn, now: Now) -> dict[str, Any]:
    return ratings.publish(conn, user, community_id, now)


@router.post("/api/surveys/rounds", status_code=201, summary="Open a survey round")
def post_round(body: NewRound, user: User, conn: Conn) -> dict[str, Any]:
    return voice.create_round(conn, user, body.label, body.opens_at, body.closes_at)


@router.post(
    "/api/surveys/rounds/{round_id}/sheets",
    status_code=201,
    summary="The stairwell sheet of a building: its token and one code per dwelling",
)
def post_sheet(round_id: Id, body: NewSheet, user: User, conn: Conn) -> dict[str, Any]:
    return voice.issue_sheet(conn, user, round_id, body.building_id)


def public_url(request: Request, token: str) -> str:
    base = request.app.state.settings.public_base_url or str(request.base_url)
    return voice.public_url(base, token)


@router.get(
    "/api/surveys/sheets/{sheet_id}/qr.png",
    summary="The QR code of a sheet (PNG)",
    response_class=Response,
)
def get_qr_png(sheet_id: Id, request: Request, user: User, conn: Conn) -> Response:
    s = voice.sheet(conn, user, sheet_id)
    return Response(voice.qr_png(public_url(request, s["token"])), media_type="image/png")


@router.get("/app/reports/sheets/{sheet_id}", response_class=HTMLResponse, include_in_schema=False)
def sheet_page(sheet_id: Id, request: Request, user: PageUser, conn: Conn) -> HTMLResponse:
    """The printable sheet: the QR code for the stairwell and one slip per dwelling."""
    s = voice.sheet(conn, user, sheet_id)
    lang = request_lang(request)

    def tx(key: str) -> str:
        return escape(i18n.t(key, lang))

    url = public_url(request, s["token"])
    slips = "".join(
        f'<li class="ga-slip"><span>{tx("voice.sheet_slip")}</span><b>{escape(c)}</b></li>'
        for c in s["codes"]
    )
    html = (
        f'<!DOCTYPE html><html lang="{"zh-CN" if lang == "zh" else "en"}"><head>'
        f'<meta charset="utf-8"><title>{tx("voice.sheet_title")}</title>'
        '<link rel="stylesheet" href="/static/app/reports_public.css"></head>'
        '<body class="ga-sheet">'
        f"<h1>{tx('voice.sheet_title')}</h1>"
        f'<p class="ga-sheet-where">{escape(s["community_name"] or "")} · '
        f"{escape(s['building_name'] or str(s['building_id']))}</p>"
        f"<p>{tx('voice.round')}: {escape(s['round_label'])} · {tx('voice.closes')} "
        f"{escape(s['closes_at'][:10])}</p>"
        f'<div class="ga-qr" id="ga-qr">{voice.qr_svg(url)}</div>'
        + (
            f'<p class="ga-sheet-warn" id="ga-sheet-warn">'
            f"{escape(i18n.t('voice.sheet_private_url', lang, url=url))}</p>"
            if voice.is_local_url(url)
            else ""
        )
        + f'<p class="ga-sheet-url">{escape(url)}</p><p>{tx("voice.sheet_scan")}</p>'
        f'<ol class="ga-slips">{slips}</ol></body></html>'
    )
    return HTMLResponse(html)


FORMATS = {
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv; charset=utf-8",
    "geojson": "application/geo+json",
}


@router.get(
    "/api/community-reports/{community_id}/report.{fmt}",
    summary="A community's report: html, pdf, xlsx (one sheet per table), csv or geojson",
    response_class=Response,
)
def get_report(
    community_id: Id,
    fmt: Annotated[str, Path(pattern=r"^(html|pdf|xlsx|csv|geojson)$")],
    request: Request,
    user: User,
    conn: Conn,
    now: Now,
    lang: Lang = None,
) -> Response:
    if fmt == "geojson":
        body = document.buildings_geojson(conn, user, community_id)
        return Response(json.dumps(body, ensure_ascii=False), media_type=FORMATS[fmt])
    report = document.community_report(conn, user, community_id, now)
    words = lang or request_lang(request)  # the printed report's; the files' are codes
    content: bytes | str = {
        "html": lambda r: document.to_html(r, words),
        "pdf": lambda r: document.to_pdf(r, words),
        "xlsx": document.to_xlsx,
        "csv": document.to_csv,
    }[fmt](report)
    name = f"community-{community_id}.{fmt}"
    disposition = "inline" if fmt in ("html", "pdf") else "attachment"
    return Response(
        content,
        media_type=FORMATS[fmt],
        headers={"Content-Disposition": f'{disposition}; filename="{name}"'},
    )
