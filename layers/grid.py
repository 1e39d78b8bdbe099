"""The grid worker's map (我的网格): their own buildings to tap, the one-breath search box,
and room for today's patrol list. No database here: the route hands in the scoped frames
(``gis.gridview``) and the texts in the user's language.

The layers come as GeoJSON FeatureCollections (built by PostGIS), not GeoDataFrames: a
round trip through geopandas and back to GeoJSON was most of the page's time.

A tap on a building opens one card (``web/static/app/grid.js`` fills it from the API); the
buildings layer has no tooltip or popup of its own, so nothing opens on top of the card.
Property values are data for the script (set with ``textContent``), never markup.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Any

import folium
from folium.map import Layer
from folium.template import Template

from layers.assets import APP_PREFIX, add_stylesheet
from layers.furniture import LocateMe, MetricScale, json_for_script
from layers.page import Fragment, Map
from layers.site import HOUSEHOLD_COLOURS, STREET_WEIGHT, Attribution

DEFAULT_VIEW = ([32.04, 118.78], 14)  # Nanjing, when the user has no building at all
GRID_COLOUR = "#1f3a5f"
FACILITY_COLOUR = "#2b8a3e"
SEARCH_COLOUR = "#d6336c"


def household_colour(n: int) -> str:
    """The fill of a building with ``n`` households (the overview map's classes)."""
    colour = HOUSEHOLD_COLOURS[0][1]
    for threshold, c in HOUSEHOLD_COLOURS:
        if n >= threshold:
            colour = c
    return colour


class _Features(Layer):
    """A GeoJSON layer whose features travel as data: a ``<script type="application/json">``
    block that the layer's script parses, each feature carrying its Leaflet style.

    Not ``folium.GeoJson``: that writes the features into the page script, which branca
    compiles as a Jinja template before rendering it — most of the page's time for a
    community's streets, and a ``{{ … }}`` in a street or building name would be evaluated
    on the server. Here the data is a template *value* (``Fragment``), never template source.
    """

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = L.geoJson(
            JSON.parse(document.getElementById({{ this.data_id|tojson }}).textContent),
            {
                style: function (f) { return f.properties.style; },
                {%- if this.marker %}
                pointToLayer: function (f, latlng) {
                    return L.circleMarker(latlng, {{ this.marker|tojson }});
                },
                {%- endif %}
            }
        );
        {% endmacro %}
        """
    )

    def __init__(
        self,
        collection: dict[str, Any],
        name: str,
        style: Callable[[dict[str, Any]], dict[str, Any]],
        marker: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(name=name, overlay=True, control=True, show=True)
        self._name = "Features"
        self.data_id = f"ga-data-{self.get_name()}"
        self.marker = marker
        features = [
            {**f, "properties": {**f["properties"], "style": style(f)}}
            for f in collection["features"]
        ]
        self.data = {"type": "FeatureCollection", "features": features}

    def render(self, **kwargs: Any) -> None:
        self.get_root().html.add_child(
            Fragment(
                f'<script type="application/json" id="{self.data_id}">'
                f"{json_for_script(self.data)}</script>"
            ),
            name=self.data_id,
        )
        super().render(**kwargs)


def _grids_layer(grids: dict[str, Any], name: str) -> _Features:
    return _Features(
        grids,
        name,
        lambda f: {"color": GRID_COLOUR, "weight": 3, "dashArray": "6 4", "fill": False},
    )


def _streets_layer(edges: dict[str, Any], name: str) -> _Features:
    return _Features(
        edges,
        name,
        lambda f: {
            "color": "#8aa1c1",
            "weight": STREET_WEIGHT.get(f["properties"]["highway"], 1.2),
            "opacity": 0.9,
        },
    )


def _facilities_layer(facilities: dict[str, Any], labels: dict[str, str], name: str) -> _Features:
    features = []
    for f in facilities["features"]:
        p = dict(f["properties"])
        cats = p.pop("categories", None) or ()
        p["facility"] = "、".join(labels.get(c, c) for c in cats)
        features.append({**f, "properties": p})
    return _Features(
        {"type": "FeatureCollection", "features": features},
        name,
        lambda f: {"color": "#ffffff", "fillColor": FACILITY_COLOUR},
        marker={"radius": 7, "fill": True, "fillOpacity": 0.9, "weight": 2},
    )


def _buildings_layer(buildings: dict[str, Any], name: str) -> _Features:
    # properties: id, building_id (what grid.js looks for), code, label, households, grid_id;
    # no tooltip, no popup: a tap opens the one card (grid.js)
    return _Features(
        buildings,
        name,
        lambda f: {
            "fillColor": household_colour(f["properties"]["households"]),
            "color": "#444",
            "weight": 1,
            "fillOpacity": 0.8,
        },
    )


def _legend(tx: dict[str, str]) -> str:
    rows = "".join(
        f'<div><i style="background:{escape(c)}"></i>'
        f"{escape(tx['legend_none'] if t == 0 else tx['legend_at_least'].format(n=t))}</div>"
        for t, c in HOUSEHOLD_COLOURS
    )
    return (
        f'<div class="ga-legend gd-legend" id="ga-legend"><b>{escape(tx["legend_title"])}</b>'
        f"{rows}"
        f'<div><i class="gd-line" style="border-color:{GRID_COLOUR}"></i>'
        f"{escape(tx['legend_grid'])}</div>"
        f'<div><i class="gd-dot" style="background:{FACILITY_COLOUR}"></i>'
        f"{escape(tx['legend_facility'])}</div>"
        f'<div><i class="gd-dot" style="background:{SEARCH_COLOUR}"></i>'
        f"{escape(tx['legend_result'])}</div></div>"
    )


def _panel(tx: dict[str, str], stats: str, note: str | None) -> str:
    note_html = f'<p class="gd-note" id="gd-note">{escape(note)}</p>' if note else ""
    return (
        '<aside class="gd-panel" id="gd-panel">'
        f'<div class="gd-head"><h1>{escape(tx["title"])}</h1>'
        f'<p class="gd-stats" id="gd-stats">{escape(stats)}</p>{note_html}</div>'
        '<form class="gd-search" id="gd-search" role="search" autocomplete="off">'
        f'<input type="search" id="gd-q" name="q" maxlength="100" enterkeyhint="search" '
        f'placeholder="{escape(tx["search_placeholder"])}" '
        f'aria-label="{escape(tx["search_label"])}">'
        f'<button type="submit" id="gd-go">{escape(tx["search"])}</button></form>'
        '<div class="gd-results" id="gd-results" role="status" aria-live="polite"></div>'
        '<section class="gd-card" id="ga-card" hidden aria-live="polite"></section>'
        f'<section class="gd-today" id="ga-today"><h2>{escape(tx["today"])}</h2>'
        f"<p>{escape(tx['today_soon'])}</p>"
        f'<a class="gd-today-go" href="/app/patrol">{escape(tx["today_open"])}</a></section>'
        "</aside>"
    )


def grid_map(
    buildings: dict[str, Any],
    grids: dict[str, Any],
    edges: dict[str, Any],
    facilities: dict[str, Any],
    *,
    texts: dict[str, str],
    facility_labels: dict[str, str],
    total_buildings: int,
    bounds: tuple[float, float, float, float] | None = None,
) -> Map:
    """Return the grid page's map, opened on ``buildings`` (the user's own).

    The layers are GeoJSON FeatureCollections (``gis.gridview``); ``bounds`` is the box
    of the buildings (west, south, east, north). ``texts`` are the page's texts in the
    user's language, keyed as in ``[grid]`` of ``gis/messages.toml`` without the prefix
    (plus ``credit``); they are escaped here.
    """
    tx = texts
    shown = buildings["features"]
    m = Map(tiles=None, control_scale=False, prefer_canvas=False, zoom_control=True)
    if edges["features"]:
        _streets_layer(edges, tx["layer_streets"]).add_to(m)
    if grids["features"]:
        _grids_layer(grids, tx["layer_grids"]).add_to(m)
    if facilities["features"]:
        _facilities_layer(facilities, facility_labels, tx["layer_facilities"]).add_to(m)
    if shown:
        _buildings_layer(buildings, tx["layer_buildings"]).add_to(m)
    if shown and bounds:
        x0, y0, x1, y1 = bounds
        m.fit_bounds([[y0, x0], [y1, x1]], padding=(16, 16))
    else:
        m.location, m.zoom_start = DEFAULT_VIEW
    folium.LayerControl(collapsed=True).add_to(m)
    m.add_child(MetricScale())
    m.add_child(LocateMe(tx["locate"], tx["locate_failed"]))
    m.add_child(Attribution(tx["credit"]))
    add_stylesheet(m, f"{APP_PREFIX}/map.css")
    add_stylesheet(m, f"{APP_PREFIX}/grid.css")
    households = sum(int(f["properties"].get("households") or 0) for f in shown)
    stats = tx["stats"].format(buildings=len(shown), households=households)
    note = (
        tx["capped"].format(shown=len(shown), total=total_buildings)
        if len(shown) < total_buildings
        else (tx["empty"] if not shown else None)
    )
    root = m.get_root()
    root.html.add_child(Fragment(_panel(tx, stats, note) + _legend(tx)))
    root.html.add_child(Fragment(f'<script src="{APP_PREFIX}/grid.js" defer></script>'))
    root.title = tx["title"]  # type: ignore[attr-defined]
    return m
