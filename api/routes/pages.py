"""HTML pages for tablets: the maps and the login page (scripts carry the CSP nonce)."""

from __future__ import annotations

from html import escape
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from api import shell
from api.auth import current_user
from api.basemap import basemap_of, shift_frames
from api.deps import AppSettings, Conn
from api.errors import request_lang
from api.headers import Nonce
from api.shell import PageUser
from gis import i18n, permissions, query, tiles
from gis.categories import load_categories
from gis.delineate.service import map_frames
from gis.errors import InvalidInput, NotAuthenticated, NotFound
from gis.reach import coverage
from layers.assets import render_offline
from layers.basemap import add_basemap
from layers.groups import groups_map
from layers.reach import reach_map
from layers.shell import add_shell
from layers.site import overview_map
from layers.tiles import add_vector_buildings, add_vector_streets

router = APIRouter(tags=["pages"])

MAX_CODE = 64  # a community code is short printable text


def _check_community_code(code: str) -> None:
    """Refuse a ``code`` that cannot be one before it reaches the database (NUL, control)."""
    if not code.isprintable() or len(code) > MAX_CODE:
        raise InvalidInput(
            f"community must be a community code: printable text of at most {MAX_CODE} "
            "characters (see /api/layers/communities)"
        )


def _around(extent: tuple[float, float, float, float] | None) -> query.BBox | None:
    """The scope's extent with a margin of about 300 m (streets and facilities nearby)."""
    if extent is None:
        return None
    w, s, e, n = extent
    pad = tiles.AROUND_DEG  # the walk network's tiles use the same margin
    return query.BBox.parse(f"{w - pad},{s - pad},{e + pad},{n + pad}")


@router.get("/", include_in_schema=False)
def index(request: Request, conn: Conn) -> RedirectResponse:
    """The role's home page, or the login."""
    try:
        user = current_user(request, conn)
    except NotAuthenticated:
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse(shell.home_of(user.role), status_code=303)


@router.get(
    "/map",
    response_class=HTMLResponse,
    summary="Overview map: buildings, walk network, facilities (works offline)",
)
def overview(
    request: Request,
    user: PageUser,
    conn: Conn,
    settings: AppSettings,
    nonce: Nonce,
    bbox: Annotated[str | None, Query(description="west,south,east,north")] = None,
) -> HTMLResponse:
    permissions.require(user, "page_city", "open the city map")
    box = query.BBox.parse(bbox) if bbox else None
    limit = settings.map_feature_limit
    lang = request_lang(request)
    choice = basemap_of(settings, lang)
    # the buildings of the user's scope only; a large scope comes as vector tiles, and so
    # do the streets around it (scoped alike by gis/tiles.py)
    in_scope, scope_box = tiles.scope_buildings(conn)
    tiled = in_scope > settings.vector_tiles_above
    # streets and facilities around the user's buildings (an admin's scope is the city)
    around = box or (None if permissions.may(user, "whole_city") else _around(scope_box))
    buildings = query.layer_frame(
        conn, "buildings", bbox=box, limit=0 if tiled else limit, scoped=True
    )
    edges = query.layer_frame(conn, "walk_edges", bbox=around, limit=0 if tiled else limit)
    facilities = query.layer_frame(conn, "facilities", bbox=around, limit=limit)
    buildings, edges, facilities = shift_frames(choice, buildings, edges, facilities)
    labels = {c.code: c.label(lang) for c in load_categories()}
    truncated = not tiled and any(len(f) >= limit for f in (buildings, edges, facilities))
    m = overview_map(
        buildings,
        edges,
        facilities,
        labels=labels,
        stats=query.summary(conn),
        truncated=truncated,
        is_tiled=tiled,
        lang=lang,
    )
    add_basemap(m, choice)
    if tiled:
        add_vector_streets(m, name=i18n.t("map.walk_tiles", lang))
        add_vector_buildings(
            m,
            name=i18n.t("map.buildings_tiles", lang),
            households_label=i18n.t("map.households", lang),
            bounds=None if box else scope_box,
        )
    add_shell(m, shell.shell_for(request, conn, user))
    return HTMLResponse(render_offline(m, nonce))


@router.get(
    "/map/reach",
    response_class=HTMLResponse,
    summary="Planners' map: walking time from every building to one category",
)
def reach_page(
    request: Request,
    user: PageUser,
    conn: Conn,
    settings: AppSettings,
    nonce: Nonce,
    category: str = "health_station",
    limit_min: Annotated[float, Query(ge=1, le=60)] = 10,
) -> HTMLResponse:
    permissions.require(user, "page_reach", "open the reach map")
    buildings, facilities, _run = coverage.reach_frames(
        conn, category, limit=settings.map_feature_limit
    )
    edges = query.layer_frame(conn, "walk_edges", limit=settings.map_feature_limit)
    total = coverage.coverage(conn, limit_min=limit_min)
    row = next(
        (c for c in total["categories"] if c["category"] == category), {"households_covered": 0}
    )
    lang = request_lang(request)
    labels = {c.code: c.label(lang) for c in load_categories()}
    m = reach_map(
        buildings,
        facilities,
        edges,
        category_label=labels[category],
        limit_min=limit_min,
        covered=row["households_covered"],
        households=total["households"],
        lang=lang,
    )
    add_shell(m, shell.shell_for(request, conn, user))
    return HTMLResponse(render_offline(m, nonce))


@router.get(
    "/map/groups",
    response_class=HTMLResponse,
    summary="Residents' groups map: tap a building, move it or its unit, lock a group",
)
def groups_page(
    request: Request,
    user: PageUser,
    conn: Conn,
    settings: AppSettings,
    nonce: Nonce,
    community: Annotated[str | None, Query(description="community code")] = None,
) -> HTMLResponse:
    permissions.require(user, "page_groups", "open the groups map")
    if community:
        _check_community_code(community)
    groups, buildings = map_frames(conn, community, settings.map_feature_limit)
    if community and not len(groups):
        raise NotFound(f"no delineated community {community!r}")
    edges = query.layer_frame(conn, "walk_edges", limit=settings.map_feature_limit)
    m = groups_map(groups, buildings, edges, community=community, lang=request_lang(request))
    add_shell(m, shell.shell_for(request, conn, user))
    return HTMLResponse(render_offline(m, nonce))


def _login_page(lang: str) -> str:
    def tx(key: str) -> str:
        return escape(i18n.t(key, lang))

    other = "en" if lang == "zh" else "zh"
    return f"""<!DOCTYPE html>
<html lang="{"zh-CN" if lang == "zh" else "en"}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{tx("login.title")}</title>
<link rel="stylesheet" href="/static/app/map.css"></head>
<body class="ga-login-page">
<form id="ga-login" class="ga-login-card" autocomplete="on"
  data-busy="{tx("login.busy")}" data-done="{tx("login.done")}"
  data-wrong="{tx("login.wrong")}" data-offline="{tx("app.connection_failed")}">
  <h1>{tx("login.title")}</h1>
  <label>{tx("login.username")}<input name="username" autocomplete="username" required
    maxlength="64" autocapitalize="none"></label>
  <label>{tx("login.password")}<input name="password" type="password"
    autocomplete="current-password" required maxlength="200"></label>
  <button type="submit">{tx("login.submit")}</button>
  <div id="ga-login-message" role="status"></div>
  <button type="button" id="ga-login-lang" class="ga-login-lang" data-to="{other}">
    {tx("app.language")}</button>
</form>
<script src="/static/app/login.js"></script>
</body></html>
"""


@router.get("/login", response_class=HTMLResponse, summary="Log in (tablets)")
def login_page(request: Request) -> HTMLResponse:
    # the page reads ?next= itself and only ever goes to a path on this server; not cached
    # (api/headers.py), and its one script is a file of ours (no inline script)
    return HTMLResponse(_login_page(request_lang(request)))
