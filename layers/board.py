"""The disclosure board's map: the community's outline, its facilities, and the board's
figures in a panel beside it. Data in (``gis.reports.board.board``), Folium out.

Layout (``web/static/app/reports_board.css``): the panel is never drawn over the map, so no
map control can lie under it — beside the map on a landscape screen, below it on a portrait
one. The legend is a Leaflet control, so Leaflet stacks it with the scale bar instead of
the page placing it over them; the zoom buttons' titles come from the catalogue.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Any

import folium
import geopandas as gpd
from branca.element import MacroElement
from folium.template import Template
from shapely import wkb

from gis.categories import load_categories
from layers.assets import add_stylesheet
from layers.furniture import MetricScale
from layers.page import Fragment, Map
from layers.site import OSM_CREDIT, Attribution

CSS = ("/static/app/reports_public.css", "/static/app/reports_board.css")


class BoardControls(MacroElement):
    """The zoom buttons with their titles in the page's language, and the legend as a
    bottom-left control (its text set as text, never as HTML)."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        (function (map) {
            L.control.zoom({position: "topleft", zoomInTitle: {{ this.zoom_in|tojson }},
                            zoomOutTitle: {{ this.zoom_out|tojson }}}).addTo(map);
            var legend = L.control({position: "bottomleft"});
            legend.onAdd = function () {
                var div = L.DomUtil.create("div", "ga-legend");
                div.id = "ga-legend";
                L.DomUtil.create("span", "ga-dot", div);
                div.appendChild(document.createTextNode({{ this.legend|tojson }}));
                return div;
            };
            legend.addTo(map);
        })({{ this._parent.get_name() }});
        {% endmacro %}
    """)

    def __init__(self, zoom_in: str, zoom_out: str, legend: str) -> None:
        super().__init__()
        self._name = "BoardControls"
        self.zoom_in, self.zoom_out, self.legend = zoom_in, zoom_out, legend


def _cell(value: Any, tx: Callable[[str], str]) -> str:
    if value is None:  # not shown at all (the closed and open-now columns have no total)
        return escape(tx("board.none"))
    return escape(tx("board.suppressed")) if isinstance(value, str) else f"{value:,}"


def panel_html(b: dict[str, Any], tx: Callable[[str], str], switch: str = "") -> str:
    """The board's figures as HTML (every value escaped; withheld counts named as such);
    ``switch``: the page's language link (ready-made HTML)."""
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
        '<aside class="ga-board" id="ga-board"><header class="ga-public-head">'
        f"<h1>{escape(tx('board.title'))} · {escape(b['community']['name'] or '')}</h1>"
        f"{switch}</header>"
        f'<h2>{escape(tx("board.rating"))}</h2><p id="ga-board-rating">{rating}</p>'
        f'<h2>{escape(tx("board.profile"))}</h2><table id="ga-board-profile">{prof}</table>'
        f'<h2>{escape(tx("board.problems"))}</h2><table id="ga-board-problems">'
        f"<tr><th>{escape(tx('board.category'))}</th>{head}</tr>{body}</table>"
        f'<p class="ga-hint">{escape(tx("board.suppressed_note"))}</p>'
        f'<p class="ga-hint">{escape(tx("board.at"))}: {escape(b["at"][:10])}</p></aside>'
    )


def _what(facility: dict[str, Any], names: dict[str, str], lang: str) -> str:
    """What a facility is, in the page's language: its categories' names (``names``, from
    the mapping file), else its kind as imported."""
    found = [names[c] for c in facility["categories"] if c in names]
    return ("、" if lang == "zh" else ", ").join(found) if found else facility["kind"]


def board_map(
    b: dict[str, Any], tx: Callable[[str], str], switch: str = "", lang: str = "zh"
) -> Map:
    """The board page: outline and facilities on our own map, the figures beside it."""
    m = Map(tiles=None, control_scale=False, zoom_control=False)
    root = m.get_root()
    root.html_lang = lang  # type: ignore[attr-defined]
    root.title = f"{tx('board.title')} · {b['community']['name'] or ''}"  # type: ignore[attr-defined]
    m.add_child(BoardControls(tx("board.zoom_in"), tx("board.zoom_out"), tx("board.facilities")))
    m.add_child(MetricScale())
    m.add_child(Attribution(OSM_CREDIT))
    for href in CSS:
        add_stylesheet(m, href)
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
        names = {c.code: c.label(lang) for c in load_categories()}
        fac = gpd.GeoDataFrame(
            {
                "name": [escape(f["name"] or "") for f in b["facilities"]],
                "kind": [escape(_what(f, names, lang)) for f in b["facilities"]],
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
    root.html.add_child(Fragment(panel_html(b, tx, switch)))  # type: ignore[attr-defined]
    return m
