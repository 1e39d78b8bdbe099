"""The leaders page (楼组长与小组长, /app/leaders): committee staff tap an area of their
community and name its leader. The areas come from the same scoped, audited reads as
``GET /api/areas/{level}``; the page's script then uses the leaders API.

Only the level shown first (the residents' groups) comes with the page; the script reads the
three others from ``GET /api/areas/{level}``, and the walk network around them from
``GET /api/layers/walk_edges``, after its first drawing. The service worker
keeps this page (web/static/app/sw.js), so a tablet that opened it before shows it at once.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.engine import Connection

from api.auth import Principal
from api.deps import AppSettings, Conn
from api.errors import request_lang
from api.headers import Nonce
from api.shell import PageUser, register, shell_for
from gis import areas, i18n, permissions, query
from gis.errors import NotFound
from layers.assets import render_offline
from layers.leaders import DEFAULT_LEVEL, bounds_of, leaders_map
from layers.shell import add_shell

router = APIRouter(tags=["pages"])
register("/app/leaders")

MAX_AREAS = 5000  # areas of one level in one community (a community has a few hundred)
MARGIN_DEG = 0.002  # walk network a little beyond the buildings (about 200 m)


def _community(conn: Connection, user: Principal, code: str | None) -> dict[str, Any]:
    """The community asked for, else the user's first one with residents' groups."""
    found = areas.first_delineated_community(conn, code)
    if found is not None:
        return areas.feature(conn, user, "communities", found)["properties"]
    raise NotFound(
        f"no delineated community {code!r} in your areas"
        if code
        else "no delineated community "
        "in your areas: run the delineation first (gridatlas delineate)"
    )


@router.get("/app/leaders", response_class=HTMLResponse, include_in_schema=False)
def leaders_page(
    request: Request,
    user: PageUser,
    conn: Conn,
    settings: AppSettings,
    nonce: Nonce,
    community: Annotated[str | None, Query(max_length=64, description="community code")] = None,
) -> HTMLResponse:
    permissions.require(user, "page_leaders", "open the leaders page")
    lang = request_lang(request)
    where = _community(conn, user, community)
    first = areas.feature_page(
        conn, user, areas.BY_TABLE[DEFAULT_LEVEL].plural, community_id=where["id"], limit=MAX_AREAS
    )
    collections = {DEFAULT_LEVEL: first}
    box = bounds_of(first)
    streets = (
        (box[0] - MARGIN_DEG, box[1] - MARGIN_DEG, box[2] + MARGIN_DEG, box[3] + MARGIN_DEG)
        if box
        else None
    )
    texts = {
        **i18n.texts(lang, "leaders."),
        **i18n.texts(lang, "level."),
        **i18n.texts(lang, "app."),
        "page.leaders": i18n.t("page.leaders", lang),
    }
    m = leaders_map(
        where,
        collections,
        streets_bbox=streets,
        streets_limit=min(settings.map_feature_limit, query.MAX_PAGE),
        texts=texts,
        groups_href=f"/map/groups?community={quote(str(where['code']), safe='')}",
    )
    add_shell(m, shell_for(request, conn, user, ("leaders.",)))
    return HTMLResponse(render_offline(m, nonce))
