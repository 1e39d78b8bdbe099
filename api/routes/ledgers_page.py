"""The ledgers page (台账) for committee staff: residents by building and room, the four
other ledgers, and spreadsheet import (with the API's preview) and export.

A plain page (no map): the markup below is the frame; ``web/static/app/ledgers.js`` fills
it from the API, which limits every row to the user's areas. What the role may do is given
to the script as ``data-*`` attributes, from ``gis.permissions`` (the API refuses anyway).
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from api.deps import Conn
from api.errors import request_lang
from api.shell import PageUser, register, shell_for
from gis import i18n, permissions
from layers.assets import APP_PREFIX
from layers.shell import plain_page

router = APIRouter(tags=["pages"])

PATH = "/app/ledgers"
register(PATH)

# data-may-<name> on the page: what the script offers (the API still decides)
ABILITIES = (
    "reveal_id_number",
    "reveal_phone",
    "write_residents",
    "write_special_groups",
    "write_key_persons",
    "write_backbone",
    "write_organisations",
    "import_ledgers",
    "export_ledgers",
)
TABS = ("residents", "special_groups", "key_persons", "backbone", "organisations", "sheets")


def _body(lang: str, abilities: dict[str, bool]) -> str:
    def tx(key: str) -> str:
        return escape(i18n.t(key, lang))

    data = " ".join(
        f'data-may-{name.replace("_", "-")}="{"1" if ok else "0"}"'
        for name, ok in abilities.items()
    )
    tabs = "".join(
        f'<button type="button" role="tab" class="lg-tab" id="lg-tab-{t}" data-tab="{t}" '
        f'aria-controls="lg-panel-{t}" aria-selected="false">{tx("ledgers.tab_" + t)}</button>'
        for t in TABS
    )
    panels = "".join(
        f'<section class="lg-panel" id="lg-panel-{t}" role="tabpanel" hidden></section>'
        for t in TABS
    )
    return (
        f'<div id="lg-app" class="lg-app" {data}>'
        f'<h1 class="lg-title">{tx("page.ledgers")}</h1>'
        '<div class="lg-where">'
        f'<label class="lg-field">{tx("ledgers.community")}'
        '<select id="lg-community"></select></label>'
        "</div>"
        f'<div class="lg-tabs" role="tablist">{tabs}</div>'
        f"{panels}</div>"
    )


@router.get(PATH, response_class=HTMLResponse, include_in_schema=False)
def ledgers_page(request: Request, user: PageUser, conn: Conn) -> HTMLResponse:
    """The ledgers of the user's areas; other roles get the refusal page."""
    permissions.require(user, "page_ledgers", "open the ledgers page")
    lang = request_lang(request)
    abilities = {name: permissions.may(user, name) for name in ABILITIES}
    shell = shell_for(request, conn, user, ("ledgers.",))
    return HTMLResponse(
        plain_page(
            shell,
            i18n.t("page.ledgers", lang),
            _body(lang, abilities),
            scripts=(f"{APP_PREFIX}/ledgers.js",),
            styles=(f"{APP_PREFIX}/ledgers.css",),
        )
    )
