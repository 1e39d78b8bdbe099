"""The disclosure board's map: the community's outline, its facilities, and the board's
figures in a panel beside it. Data in (``gis.reports.board.board``), Folium out."""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Any

import folium
import geopandas as gpd
from shapely import wkb

from layers.assets import add_stylesheet
from layers.furniture import MetricScale
from layers.page import Fragment, Map
from layers.site import OSM_CREDIT, Attribution

CSS = "/static/app/reports_public.css"


def _cell(value: Any, tx: Callable[[str], str]) -> str:
    return escape(tx("board.suppressed")) if isinstance(value, str) else f"{value:,}"


def panel_html(b: dict[str, Any], tx: Callable[[str], str]) -> str:
    """The board's figures as HTML (every value escaped; withheld counts named as such)."""
    p = b["profile"]
    prof = "".join(
        f"<tr><th>{escape(tx(label))}</th><td>{_cell(p[k]['value'], tx)}</td></tr>"
        for k, label in (
            ("households", "board.households"),
            ("buildings", "board.buildings"),
            ("grids", "board.grids"),
            ("residents_groups", "board.groups"),
        )
    )
    rows = b["problems"]["rows"]
    cols = ("opened", "closed", "open_now")
    head = "".join(f"<th>{escape(tx('board.' + c))}</th>" for c in cols)
    body = "".join(
        f'<tr data-category="{escape(k)}"><th>'
        f"{escape(tx('board.total') if k == 'total' else tx('patrol_page.category.' + k))}</th>"
        + "".join(f"<td>{_cell(rows[k][c], tx)}</td>" for c in cols)
        + "</tr>"
        for k in rows
    )
    r = b["rating"]
    if r is None or r["stars"] is None:
        rating = escape(tx("rating.none"))
    else:
        rating = (
            f'<span class="ga-stars" data-stars="{int(r["stars"])}">'
            f"{'★' * int(r['stars'])}{'☆' * (5 - int(r['stars']))}</span>"
            f" ({escape(r['computed_at'][:10])})"
        )
    return (
        '<aside class="ga-board" id="ga-board">'
        f"<h1>{escape(tx('board.title'))} · {escape(b['community']['name'] or '')}</h1>"
        f'<h2>{escape(tx("board.rating"))}</h2><p id="ga-board-rating">{rating}</p>'
        f'<h2>{escape(tx("board.profile"))}</h2><table id="ga-board-profile">{prof}</table>'
        f'<h2>{escape(tx("board.problems"))}</h2><table id="ga-board-problems">'
        f"<tr><th>{escape(tx('board.category'))}</th>{head}</tr>{body}</table>"
        f'<p class="ga-hint">{escape(tx("board.suppressed_note"))}</p>'
        f'<p class="ga-hint">{escape(tx("board.at"))}: {escape(b["at"][:10])}</p></aside>'
    )


def board_map(b: dict[str, Any], tx: Callable[[str], str]) -> Map:
    """The board page: outline and facilities on our own map, the figures beside it."""
    m = Map(tiles=None, control_scale=False, zoom_control=True)
    m.add_child(MetricScale())
    m.add_child(Attribution(OSM_CREDIT))
    add_stylesheet(m, CSS)
    if b.get("outline_wkb") is not None:
        outline = gpd.GeoDataFrame(geometry=[wkb.loads(bytes(b["outline_wkb"]))], crs=4326)
        folium.GeoJson(
            outline,
            name=tx("board.profile"),
            style_function=lambda f: {"color": "#1864ab", "weight": 2, "fillOpacity": 0.05},
        ).add_to(m)
        x0, y0, x1, y1 = outline.total_bounds
        m.fit_bounds([[y0, x0], [y1, x1]])
    else:
        m.location, m.zoom_start = [32.04, 118.78], 14
    if b["facilities"]:
        fac = gpd.GeoDataFrame(
            {
                "name": [escape(f["name"] or "") for f in b["facilities"]],
                "kind": [escape(f["kind"]) for f in b["facilities"]],
            },
            geometry=[wkb.loads(f["wkb"]) for f in b["facilities"]],
            crs=4326,
        )
        folium.GeoJson(
            fac,
            name=tx("board.facilities"),
            marker=folium.CircleMarker(radius=6, fill=True, fill_opacity=0.9, weight=1.5),
            style_function=lambda f: {"color": "#ffffff", "fillColor": "#2b8a3e"},
            popup=folium.GeoJsonPopup(fields=["name", "kind"], labels=False),
        ).add_to(m)
    folium.LayerControl(collapsed=True).add_to(m)
    legend = (
        f'<div class="ga-legend" id="ga-legend"><span class="ga-dot"></span>'
        f"{escape(tx('board.facilities'))}</div>"
    )
    m.get_root().html.add_child(Fragment(panel_html(b, tx) + legend))
    return m
