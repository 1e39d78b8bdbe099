"""巡查: the patrol map (a worker's own area, tour, buildings by days since the last check-in,
problems; staff assign workers to their community's areas) and its printable tour.

The page embeds only what ``gis.patrol.mapview`` reads with the API's scope; the check-ins,
visits and problem reports are sent by ``web/static/app/patrol.js`` through the API (kept in
IndexedDB while offline, each with its Idempotency-Key).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from api.deps import AppSettings, Conn
from api.errors import request_lang
from api.headers import Nonce
from api.routes.patrol import Now
from api.shell import PageUser, register, shell_for
from gis import i18n, permissions
from gis.patrol import mapview, problems, tour_store
from layers.assets import APP_PREFIX, render_offline
from layers.patrol import patrol_map, route_sheet_html
from layers.shell import add_shell, plain_page

router = APIRouter(tags=["pages"])

PATH = "/app/patrol"
PREFIXES = ("patrol_page.", "patrol.", "grid.category.")
register(PATH)


def _texts(lang: str) -> dict[str, str]:
    return {k.removeprefix("patrol_page."): v for k, v in i18n.texts(lang, "patrol_page.").items()}


@router.get(PATH, response_class=HTMLResponse, include_in_schema=False)
def patrol_page(
    request: Request,
    user: PageUser,
    conn: Conn,
    settings: AppSettings,
    nonce: Nonce,
    now: Now,
) -> HTMLResponse:
    """The patrol map of the user's own area (a worker) or their community's areas (staff)."""
    permissions.require(user, "page_patrol", "open the patrol page")
    frames = mapview.patrol_frames(conn, user, now, settings.map_feature_limit)
    m = patrol_map(
        frames.areas,
        frames.buildings,
        frames.problems,
        frames.edges,
        texts=_texts(request_lang(request)),
        is_staff=frames.is_staff,
        user_id=user.id,
        total_buildings=frames.total_buildings,
        flow=problems.TRANSITIONS,
    )
    add_shell(m, shell_for(request, conn, user, PREFIXES))
    return HTMLResponse(render_offline(m, nonce))


@router.get(f"{PATH}/route", response_class=HTMLResponse, include_in_schema=False)
def route_page(
    request: Request,
    user: PageUser,
    conn: Conn,
    area: Annotated[int, Query(ge=1, le=2**62)],
) -> HTMLResponse:
    """An area's tour as a numbered list in walking order, to print."""
    permissions.require(user, "page_patrol", "open the patrol page")
    sheet = mapview.route_sheet(conn, user, area)
    tour = tour_store.area_tour(conn, area)
    tx = _texts(request_lang(request))
    body = route_sheet_html(tour, sheet, tx)
    shell = shell_for(request, conn, user, PREFIXES)
    return HTMLResponse(
        plain_page(
            shell,
            tx["print_title"].format(code=sheet["area"]["code"]),
            body,
            scripts=(f"{APP_PREFIX}/patrol.js",),
            styles=(f"{APP_PREFIX}/patrol.css",),
        )
    )
