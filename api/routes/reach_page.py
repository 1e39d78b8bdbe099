"""The planners' reach page (设施可达): walking minutes to one category in the user's areas."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from api.deps import AppSettings, Conn
from api.errors import request_lang
from api.headers import Nonce
from api.shell import PageUser, area_label, register, shell_for
from gis import i18n, permissions, query
from gis.categories import category_labels
from gis.reach import coverage
from layers.assets import render_offline
from layers.reach_page import SPEEDS, reach_page_map
from layers.shell import add_shell

router = APIRouter(tags=["pages"])
register("/app/reach")

DEFAULT_CATEGORY = "health_station"
STREET_MARGIN_DEG = 0.005  # streets a little beyond the buildings, so their edges have roads


@router.get("/app/reach", response_class=HTMLResponse, include_in_schema=False)
def reach_app_page(
    request: Request,
    user: PageUser,
    conn: Conn,
    settings: AppSettings,
    nonce: Nonce,
    category: Annotated[str | None, Query(max_length=64)] = None,
    speed: Literal["adult", "elderly"] = "adult",
    limit_min: Annotated[float, Query(ge=1, le=60)] = 10,
) -> HTMLResponse:
    permissions.require(user, "page_reach", "open the reach page")
    lang = request_lang(request)
    run, _ = coverage.latest_run(conn, limit_min)
    computed = list(run.categories)
    if category is None:
        category = DEFAULT_CATEGORY if DEFAULT_CATEGORY in computed else computed[0]
    # the user's buildings only (ga_scope_buildings, as the API); an admin's is the city
    buildings, facilities, _p = coverage.scoped_frames(
        conn, category, speed_m_per_min=SPEEDS[speed], limit=settings.map_feature_limit
    )
    box = None
    if len(buildings):
        x0, y0, x1, y1 = buildings.total_bounds
        m = STREET_MARGIN_DEG
        box = query.BBox(x0 - m, y0 - m, x1 + m, y1 + m)
    edges = query.layer_frame(conn, "walk_edges", bbox=box, limit=settings.map_feature_limit)
    texts = i18n.texts(lang, "reach.")
    labels = category_labels(lang)
    categories = [(c, labels.get(c, c)) for c in computed]
    # what the what-if and siting count (the API's scope): said on the page
    whole_city = permissions.may(user, "whole_city")
    area = i18n.t("app.whole_city", lang) if whole_city else area_label(conn, user.id, lang)
    m = reach_page_map(
        buildings,
        facilities,
        edges,
        texts=texts,
        categories=categories,
        category=category,
        speed=speed,
        limit_min=limit_min,
        area=area,
    )
    add_shell(m, shell_for(request, conn, user, ("reach.",)))
    return HTMLResponse(render_offline(m, nonce))
