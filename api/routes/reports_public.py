"""Public pages, no login: the residents' survey and problem report behind a stairwell QR
code, and the affairs disclosure board. They reach the database through the narrow
SECURITY DEFINER functions of migration 0012 only (``gis.reports.voice``,
``gis.reports.board``); nothing personal is asked or shown (a problem's free text is
filtered for phone and ID numbers, see ``gis.reports.voice``).

A refused answer (a used code, a wrong one, too many tries) is answered without raising, so
that the attempt itself is committed: the rate limits count it.
"""

from __future__ import annotations

import ipaddress
from html import escape
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field
from shapely import wkb

from api.deps import Conn
from api.errors import LANG_COOKIE, request_lang
from api.headers import Nonce
from api.routes.patrol import Now
from gis import i18n
from gis.patrol.problems import CATEGORIES
from gis.reports import board as board_service
from gis.reports import voice
from layers.assets import render_offline
from layers.board import board_map

router = APIRouter(tags=["public"])
Token = Annotated[str, Path(min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
# The page a resident opens: a mistyped or cut link gets the page's own "no such sheet",
# not a request error naming a field (gis.reports.voice.check_token checks the form).
PageToken = Annotated[str, Path(max_length=200)]
CommunityId = Annotated[int, Path(ge=1, le=2**62)]
# The public pages have no login, so no profile to keep a language in: ``?lang=`` (the
# pages' 中文/English link, also sent by their script with each answer), else the cookie the
# link left, else the browser's Accept-Language; Chinese by default.
Lang = Annotated[str | None, Query(pattern=r"^(zh|en)$", description="zh (default) or en")]
LANG_MAX_AGE = 365 * 24 * 3600
STATUS_HTTP = {
    "ok": 201,
    "rate_limited": 429,
    "no_sheet": 404,
    "closed": 409,
    "sheet_closed": 409,
    "bad_text": 422,
    "bad_scores": 422,
    "bad_code": 422,
    "used": 409,
}


class Answer(BaseModel):
    code: str = Field(max_length=16)
    scores: dict[str, int] = Field(description="overall, service, environment, safety: 1–5")


class Report(BaseModel):
    category: str = Field(max_length=40)
    description: str = Field(max_length=2000)


def _addr(request: Request) -> str:
    """The key of the client's address for the rate limits: an IPv4 address as it is, an
    IPv6 one by its /64 (one household's or one host's network: changing addresses inside
    it is free). Behind a proxy the address is the proxy's unless the proxy is trusted
    (settings ``proxy_headers`` and ``forwarded_allow_ips``, docs/operations.md)."""
    host = request.client.host if request.client else "unknown"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def public_lang(request: Request, lang: str | None) -> str:
    """The language of a public page or answer (see ``Lang``)."""
    return lang if lang in i18n.LANGS else request_lang(request)


def switch_html(lang: str, path: str) -> str:
    """The 中文/English link of a public page: the same page in the other language."""
    other = "en" if lang == "zh" else "zh"
    return (
        f'<a class="ga-public-lang" id="ga-public-lang" href="{escape(path)}?lang={other}" '
        f'hreflang="{other}" lang="{"zh-CN" if other == "zh" else "en"}">'
        f"{escape(i18n.t('app.language', lang))}</a>"
    )


def _remember(response: HTMLResponse, lang: str | None) -> HTMLResponse:
    """Keep a language picked with the link (the page's own answers ask with ``?lang=``)."""
    if lang in i18n.LANGS:
        response.set_cookie(LANG_COOKIE, lang, max_age=LANG_MAX_AGE, path="/", samesite="lax")
    return response


def _status(request: Request, status: str, lang: str | None = None) -> JSONResponse:
    lang = public_lang(request, lang)
    code = STATUS_HTTP[status]
    body: dict[str, Any] = {"status": status, "message": i18n.t(f"voice.status.{status}", lang)}
    headers = {"Retry-After": "600"} if status == "rate_limited" else None
    return JSONResponse(body, status_code=code, headers=headers)


@router.post(
    "/api/public/sheets/{token}/answer",
    summary="A resident's survey answer (no login; one per code)",
)
def post_answer(
    token: Token, body: Answer, request: Request, conn: Conn, lang: Lang = None
) -> JSONResponse:
    status = voice.answer(conn, token, body.code, _addr(request), body.scores)
    return _status(request, status, lang)


@router.post("/api/public/sheets/{token}/problem", summary="A resident's problem report (no login)")
def post_problem(
    token: Token, body: Report, request: Request, conn: Conn, lang: Lang = None
) -> JSONResponse:
    status, _pid = voice.report_problem(
        conn, token, _addr(request), body.category, body.description
    )
    if status != "ok":
        return _status(request, status, lang)
    lang = public_lang(request, lang)
    return JSONResponse(
        {"status": "ok", "message": i18n.t("voice.problem_ok", lang)}, status_code=201
    )


@router.get("/v/{token}", response_class=HTMLResponse, include_in_schema=False)
def survey_page(token: PageToken, request: Request, conn: Conn, lang: Lang = None) -> HTMLResponse:
    """The page a stairwell QR code opens: the survey and the problem report."""
    s = voice.public_sheet(conn, token)
    picked, lang = lang, public_lang(request, lang)

    def tx(key: str) -> str:
        return escape(i18n.t(key, lang))

    questions = "".join(
        f'<fieldset class="ga-q"><legend>{tx("voice.q." + q)}</legend>'
        + "".join(
            f'<label><input type="radio" name="{q}" value="{v}" required>{v}</label>'
            for v in range(1, 6)
        )
        + "</fieldset>"
        for q in voice.QUESTIONS
    )
    cats = "".join(
        f'<option value="{c}">{tx("patrol_page.category." + c)}</option>' for c in CATEGORIES
    )
    survey = (
        f'<form id="ga-survey" class="ga-card"><h2>{tx("voice.survey")}</h2>'
        f'<p class="ga-hint">{tx("voice.scale")}</p>{questions}'
        f'<label>{tx("voice.code")}<input id="ga-code" name="code" maxlength="8" '
        'autocomplete="off" autocapitalize="characters" required></label>'
        f'<button type="submit">{tx("voice.submit")}</button></form>'
        if s["is_open"]
        else f'<p class="ga-card">{tx("voice.not_open")}</p>'
    )
    report = (
        f'<p class="ga-card" id="ga-sheet-over">{tx("voice.sheet_over")}</p>'
        if s["is_over"]
        else f'<form id="ga-problem" class="ga-card"><h2>{tx("voice.problem")}</h2>'
        f'<label>{tx("voice.problem_kind")}<select name="category">{cats}</select></label>'
        f'<label>{tx("voice.problem_text")}<textarea name="description" maxlength="500" '
        'rows="4" required></textarea></label>'
        f'<button type="submit">{tx("voice.problem_submit")}</button></form>'
    )
    html = (
        f'<!DOCTYPE html><html lang="{"zh-CN" if lang == "zh" else "en"}"><head>'
        '<meta charset="utf-8"><meta name="viewport" content="width=device-width, '
        f'initial-scale=1"><title>{tx("voice.title")}</title>'
        '<link rel="stylesheet" href="/static/app/reports_public.css"></head>'
        f'<body class="ga-public" data-token="{escape(token)}" data-lang="{lang}" '
        f'data-sending="{tx("voice.sending")}" data-failed="{tx("voice.network_error")}">'
        f'<header class="ga-public-head"><h1>{tx("voice.title")}</h1>'
        f"{switch_html(lang, request.url.path)}</header>"
        f'<p class="ga-where">{escape(s["community_name"] or "")} · '
        f"{escape(s['building_name'] or '')}</p>"
        f'<p class="ga-hint">{tx("voice.round")}: {escape(s["round_label"])} · '
        f"{tx('voice.closes')} {escape(s['closes_at'][:10])}. {tx('voice.intro')}</p>"
        f'<div id="ga-public-notice" class="ga-public-notice" role="status" hidden></div>'
        f"{survey}{report}"
        '<script src="/static/app/reports_public.js"></script></body></html>'
    )
    return _remember(HTMLResponse(html), picked)


@router.get(
    "/api/public/board/{community_id}",
    summary="The disclosure board's figures (no login; small counts withheld)",
)
def get_board(community_id: CommunityId, conn: Conn, now: Now) -> dict[str, Any]:
    b = board_service.board(conn, community_id, now)
    b["facilities"] = [
        {k: v for k, v in f.items() if k != "wkb"}
        | {"lon": wkb.loads(f["wkb"]).x, "lat": wkb.loads(f["wkb"]).y}
        for f in b["facilities"]
    ]
    b.pop("outline_wkb", None)
    return b


@router.get("/board/{community_id}", response_class=HTMLResponse, include_in_schema=False)
def board_page(
    community_id: CommunityId,
    request: Request,
    conn: Conn,
    now: Now,
    nonce: Nonce,
    lang: Lang = None,
) -> HTMLResponse:
    """The affairs disclosure board (居务公开栏) of a community: a map and its figures."""
    b = board_service.board(conn, community_id, now)
    picked, lang = lang, public_lang(request, lang)
    m = board_map(b, lambda key: i18n.t(key, lang), switch_html(lang, request.url.path), lang)
    return _remember(HTMLResponse(render_offline(m, nonce)), picked)
