"""The reports dashboard for subdistrict and committee staff: charts (Apache ECharts, served
from npm) drilling down subdistrict → community → grid, and its data route."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from api.auth import User
from api.deps import Conn
from api.shell import PageUser, register, shell_for
from gis import permissions
from gis.reports import dashboard
from layers.assets import VENDOR_PREFIX
from layers.shell import plain_page

PATH = "/app/reports"
register(PATH)
router = APIRouter(tags=["reports"])
ECHARTS = f"{VENDOR_PREFIX}/echarts/dist/echarts.min.js"


@router.get("/api/dashboard", summary="The dashboard's figures of one level (drill-down)")
def get_dashboard(
    user: User,
    conn: Conn,
    level: Annotated[str, Query(max_length=20, pattern=r"^[a-z_]+$")] = "subdistrict",
    id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> dict[str, Any]:
    return dashboard.dashboard(conn, user, level, id)


@router.get(PATH, response_class=HTMLResponse, include_in_schema=False)
def dashboard_page(request: Request, user: PageUser, conn: Conn) -> HTMLResponse:
    """Charts of the user's communities; a bar opens that community's grids, then a grid's
    problems by category."""
    permissions.require(user, "page_reports", "open the reports dashboard")
    shell = shell_for(request, conn, user, ("dashboard.", "patrol_page.category."))
    body = (
        '<nav class="ga-crumbs" id="ga-crumbs"></nav>'
        '<div id="ga-chart-households" class="ga-chart"></div>'
        '<div id="ga-chart-problems" class="ga-chart"></div>'
        '<div id="ga-chart-stars" class="ga-chart"></div>'
    )
    return HTMLResponse(
        plain_page(
            shell,
            shell.texts.get("dashboard.title", "dashboard"),
            body,
            scripts=(ECHARTS, "/static/app/reports_dashboard.js"),
            styles=("/static/app/reports_public.css",),
        )  # fmt: skip
    )
