"""我的网格: the grid worker's map of their own area (any role that sees people may open it:
a building leader sees their building, committee staff their community).

The page embeds only the buildings of the user's scope (``gis.gridview``, the API's scope
function), the streets and facilities around them, and no person: the card of a building
is filled by ``web/static/app/grid.js`` from the API, which masks and audits as always.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from api.deps import AppSettings, Conn
from api.errors import request_lang
from api.headers import Nonce
from api.shell import PageUser, register, shell_for
from gis import gridview, i18n, permissions
from gis.categories import load_categories
from layers.assets import render_offline
from layers.grid import grid_map
from layers.shell import add_shell

router = APIRouter(tags=["pages"])

PATH = "/app/grid"
register(PATH)


@router.get(PATH, response_class=HTMLResponse, include_in_schema=False)
def grid_page(
    request: Request, user: PageUser, conn: Conn, settings: AppSettings, nonce: Nonce
) -> HTMLResponse:
    """The user's own grid: buildings to tap, the search box, today's patrol (to come)."""
    permissions.require(user, "page_grid", "open the grid page")
    lang = request_lang(request)
    frames = gridview.grid_frames(conn, settings.map_feature_limit)
    texts = {k.removeprefix("grid."): v for k, v in i18n.texts(lang, "grid.").items()}
    m = grid_map(
        frames.buildings,
        frames.grids,
        frames.edges,
        frames.facilities,
        texts=texts,
        facility_labels={c.code: c.label(lang) for c in load_categories()},
        total_buildings=frames.total_buildings,
        bounds=frames.bounds,
    )
    add_shell(m, shell_for(request, conn, user, ("grid.",)))
    return HTMLResponse(render_offline(m, nonce))
