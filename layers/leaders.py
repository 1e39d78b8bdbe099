"""The leaders map (楼组长与小组长): one community's seats at four levels — residents'
groups, building clusters, units, buildings — coloured filled or vacant, tapped to name a
leader (web/static/app/leaders.js does the tapping; the API does the rest).

Data in, markup out: the route gives the areas as GeoJSON (``gis.areas.feature_page``, so
the user's scope and the leaders' audit are the API's), the walk network and the texts in
the user's language. Only the level shown first comes with the page: the script reads the
other levels from ``GET /api/areas/{level}`` and the walk network from
``GET /api/layers/walk_edges`` after the first drawing (a smaller page, drawn sooner), and
the switch buttons of those levels wait for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

import folium

from gis.levels import BY_TABLE
from layers.assets import APP_PREFIX, add_stylesheet
from layers.furniture import LocateMe, MetricScale, json_for_script
from layers.page import Fragment, Map
from layers.site import OSM_CREDIT, STREET_WEIGHT, Attribution

STREETS = {"color": "#4a6fa5", "weight": 1.2, "opacity": 0.7}  # weight: a highway not listed

# Top-down, the order of the switch; the first one shown is the residents' group.
LEVELS = ("residents_group", "building_cluster", "unit", "building")
DEFAULT_LEVEL = "residents_group"
PLURALS = {lv: BY_TABLE[lv].plural for lv in LEVELS}  # the API's names (/api/areas/{plural})
# One table of styles for the server's first drawing and the script's recolouring.
STYLES: dict[str, dict[str, Any]] = {
    "filled": {"fillColor": "#2171b5", "color": "#08306b", "weight": 1.5, "fillOpacity": 0.45,
               "dashArray": None},
    "vacant": {"fillColor": "url(#ga-hatch-vacant)", "color": "#d94801", "weight": 2,
               "fillOpacity": 0.6, "dashArray": "6 4"},
    "no_seat": {"fillColor": "#bdbdbd", "color": "#737373", "weight": 0.8, "fillOpacity": 0.35,
                "dashArray": None},
}  # fmt: skip
SELECTED = {"color": "#000000", "weight": 5}
# A building divided by floors among groups, and a unit that is one of its parts: striped
# in its seat's colour (an SVG pattern per seat state, groups-hatch.js), the card listing
# the floors per group. Areas above hold parts but are not striped (their card lists them).
HATCHED_LEVELS = ("building", "unit")
FLOORS_HATCH = {k: f"ga-floors-{k}" for k in STYLES}  # seat state -> pattern id


def is_divided(properties: Mapping[str, Any]) -> bool:
    """A building divided by floors, or a unit that is a part of one."""
    return properties.get("level") in HATCHED_LEVELS and bool(properties.get("parts"))


def area_style(properties: Mapping[str, Any]) -> dict[str, Any]:
    """The style of an area by its seat (and stripes when it is divided by floors)."""
    state = seat_state(properties)
    style = dict(STYLES[state])
    if is_divided(properties):
        style.update(fillColor=f"url(#{FLOORS_HATCH[state]})", fillOpacity=0.8)
    return style


def seat_state(properties: Mapping[str, Any]) -> str:
    """filled, vacant, or no_seat (an area without households has no leader to name)."""
    if properties.get("leader"):
        return "filled"
    return "vacant" if (properties.get("households") or 0) > 0 else "no_seat"


def seat_counts(collection: Mapping[str, Any]) -> dict[str, int]:
    """Vacant and filled seats of one level."""
    states = [seat_state(f["properties"]) for f in collection.get("features", [])]
    return {"vacant": states.count("vacant"), "filled": states.count("filled")}


def _level_layer(level: str, collection: dict[str, Any], name: str) -> folium.GeoJson:
    # no tooltip and no popup: a tap opens the panel, one card per tap
    return folium.GeoJson(
        collection,
        name=name,
        overlay=False,  # the levels are alternatives: radio buttons in the layer control
        show=level == DEFAULT_LEVEL,
        style_function=lambda f: area_style(f["properties"]),
    )


def _switch(texts: Mapping[str, str], counts: Mapping[str, dict[str, int]]) -> str:
    """The level buttons; a level not on the page yet is disabled, "loading", until read."""
    buttons = "".join(
        f'<button type="button" class="ga-level" data-level="{lv}" aria-pressed='
        f'"{"true" if lv == DEFAULT_LEVEL else "false"}"{"" if lv in counts else " disabled"}>'
        f'<b>{escape(texts[f"level.{lv}"])}</b><span class="ga-level-counts" '
        f'data-counts="{lv}">'
        f"{escape(_counts_text(texts, counts[lv]) if lv in counts else texts['app.loading'])}"
        "</span></button>"
        for lv in LEVELS
    )
    return f'<div class="ga-levels" id="ga-levels" role="group">{buttons}</div>'


def _counts_text(texts: Mapping[str, str], n: Mapping[str, int]) -> str:
    return texts["leaders.counts"].format(vacant=n["vacant"], filled=n["filled"])


def _legend(texts: Mapping[str, str]) -> str:
    items = "".join(
        f'<div><i class="ga-swatch ga-swatch-{k}"></i>{escape(texts[f"leaders.legend_{k}"])}</div>'
        for k in ("filled", "vacant", "no_seat", "selected", "divided")
    )
    return (
        f'<div class="ga-legend ga-lead-legend" id="ga-legend"><b>'
        f"{escape(texts['leaders.legend_title'])}</b>{items}</div>"
    )


def _panel(texts: Mapping[str, str], groups_href: str) -> str:
    def tx(key: str) -> str:
        return escape(texts[f"leaders.{key}"])

    return (
        '<aside class="ga-lead-panel" id="ga-lead-panel" hidden>'
        '<div class="ga-lead-head"><h2 id="ga-lead-title"></h2>'
        f'<button type="button" id="ga-lead-close">{escape(texts["app.close"])}</button></div>'
        '<div id="ga-lead-message" role="status" aria-live="polite"></div>'
        f'<section id="ga-lead-parts-box" hidden><h3>{tx("parts_title")}</h3>'
        '<ul class="ga-lead-parts" id="ga-lead-parts"></ul></section>'
        f'<section><h3>{tx("current")}</h3><div id="ga-lead-current"></div></section>'
        '<div class="ga-lead-actions">'
        f'<button type="button" id="ga-lead-save" disabled>{escape(texts["app.save"])}</button>'
        f'<button type="button" id="ga-lead-undo" hidden>{escape(texts["app.undo"])}</button>'
        f'<a id="ga-lead-groups" class="ga-lead-link" href="{escape(groups_href)}">'
        f"{tx('edit_groups')}</a></div>"
        f"<section><h3>{tx('candidates')}</h3>"
        f'<p class="ga-lead-note" id="ga-lead-distance">{tx("distance_straight")}</p>'
        '<ul class="ga-lead-list" id="ga-lead-candidates"></ul></section>'
        f"<section><h3>{tx('search')}</h3>"
        f'<input type="search" id="ga-lead-search" maxlength="50" autocomplete="off" '
        f'placeholder="{tx("search_placeholder")}">'
        '<ul class="ga-lead-list" id="ga-lead-results"></ul></section>'
        f'<section><h3>{tx("history")}</h3><ol class="ga-lead-history" id="ga-lead-history">'
        "</ol></section></aside>"
    )


def leaders_map(
    community: Mapping[str, Any],
    collections: Mapping[str, dict[str, Any]],
    *,
    streets_bbox: tuple[float, float, float, float] | None,
    streets_limit: int,
    texts: Mapping[str, str],
    groups_href: str,
) -> Map:
    """The leaders page of one community.

    ``collections``: level (table name) → FeatureCollection of its areas in the user's
    scope, with ``leader`` in each feature's properties: the levels drawn with the page
    (the others are read by the script). ``streets_bbox``: west, south, east, north of the
    walk network the script reads for orientation (at most ``streets_limit`` edges; None:
    no streets). ``texts``: the catalogue in the user's language (``leaders.*``,
    ``level.*``, ``app.*``).
    """
    m = Map(tiles=None, control_scale=False, prefer_canvas=False, zoom_control=True)
    streets = None
    if streets_bbox is not None:  # an overlay in the layer control; the script fills it
        holder = folium.FeatureGroup(name=texts["leaders.layer_streets"], overlay=True, show=True)
        holder.add_to(m)
        streets = {
            "holder": holder.get_name(),
            "bbox": ",".join(f"{v:.6f}" for v in streets_bbox),
            "limit": streets_limit,
            "style": STREETS,
            "weights": STREET_WEIGHT,
        }
    bounds: list[float] | None = None
    drawn: dict[str, str] = {}  # a level on the page -> its layer's name (a global variable)
    holders: dict[str, str] = {}  # a level read later -> its (empty) place in the control
    for level in LEVELS:
        if level not in collections:
            holder = folium.FeatureGroup(name=texts[f"level.{level}"], overlay=False, show=False)
            holder.add_to(m)
            holders[level] = holder.get_name()
            continue
        coll = collections[level]
        if coll["features"]:  # an empty GeoJSON layer draws nothing and has no level to find
            layer = _level_layer(level, coll, texts[f"level.{level}"]).add_to(m)
            drawn[level] = layer.get_name()
        bbox = bounds_of(coll)
        if bbox and (level == "building" or bounds is None):  # buildings: the tightest
            bounds = bbox
    if bounds:
        m.fit_bounds([[bounds[1], bounds[0]], [bounds[3], bounds[2]]])
    else:
        m.location, m.zoom_start = [32.04, 118.78], 14
    folium.LayerControl(collapsed=True).add_to(m)
    m.add_child(MetricScale())
    m.add_child(LocateMe())
    m.add_child(Attribution(OSM_CREDIT))
    add_stylesheet(m, f"{APP_PREFIX}/map.css")
    add_stylesheet(m, f"{APP_PREFIX}/leaders.css")
    counts = {lv: seat_counts(collections[lv]) for lv in LEVELS if lv in collections}
    title = f"{texts['page.leaders']} · {community.get('name') or community.get('code')}"
    data = {
        "community": {k: community.get(k) for k in ("id", "code", "name")},
        "levels": list(LEVELS),
        "default_level": DEFAULT_LEVEL,
        # the levels the script reads after the first drawing: table -> its API name
        "later": [lv for lv in LEVELS if lv not in collections],
        "plurals": PLURALS,
        "holders": holders,  # the script puts each level it reads into its holder
        "map": m.get_name(),
        "layers": drawn,
        "streets": streets,
        "styles": STYLES,
        "selected": SELECTED,
        "hatched_levels": list(HATCHED_LEVELS),
        "floors_hatch": FLOORS_HATCH,
    }
    bar = (
        f'<div class="ga-bar ga-lead-bar" id="ga-bar"><h1>{escape(title)}</h1>'
        f"{_switch(texts, counts)}</div>"
    )
    m.get_root().html.add_child(
        Fragment(
            bar + _legend(texts) + _panel(texts, groups_href)
            + f'<script type="application/json" id="ga-leaders-data">{json_for_script(data)}'
            "</script>"
        )
    )  # fmt: skip
    m.get_root().html.add_child(
        Fragment(
            f'<script src="{APP_PREFIX}/groups-hatch.js" defer></script>'
            f'<script src="{APP_PREFIX}/leaders.js" defer></script>'
        )
    )
    m.get_root().title = title
    return m


def bounds_of(collection: Mapping[str, Any]) -> list[float] | None:
    """west, south, east, north of a FeatureCollection's polygons (None if empty)."""
    xs: list[float] = []
    ys: list[float] = []

    def walk(coords: Any) -> None:
        if coords and isinstance(coords[0], (int, float)):
            xs.append(float(coords[0]))
            ys.append(float(coords[1]))
        else:
            for c in coords or ():
                walk(c)

    for f in collection.get("features", []):
        if f.get("geometry"):
            walk(f["geometry"].get("coordinates"))
    return [min(xs), min(ys), max(xs), max(ys)] if xs else None
