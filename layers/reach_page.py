"""The planners' reach page (/app/reach): the user's buildings by walking minutes to one
category, its facilities, the gaps, and the panel web/static/app/reach.js fills and drives
(coverage per area, gap list, what-if taps, siting suggestions, isochrones).

Data in, Folium out: texts come already in the user's language (``texts``: catalogue key →
text). No tooltip or popup is bound: a tap opens the one card of reach.js.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

import folium
import geopandas as gpd

from layers.assets import APP_PREFIX, add_stylesheet
from layers.furniture import LocateMe, MetricScale
from layers.page import Fragment, Map
from layers.reach import BEYOND, NO_HOUSEHOLDS, TIME_BANDS, UNREACHABLE
from layers.site import OSM_CREDIT, STREET_WEIGHT, Attribution

REACH_CSS = f"{APP_PREFIX}/reach.css"
REACH_JS = f"{APP_PREFIX}/reach.js"
GAP_COLOUR = "#e7298a"
BAND_KEYS = ("reach.band_5", "reach.band_10", "reach.band_15")  # the order of TIME_BANDS
SPEEDS = {"adult": 80.0, "elderly": 60.0}  # m/min (docs/reach.md)


def band_of(walk_min: float, households: int) -> str:
    """The legend band of a building: 5, 10, 15, beyond, unreachable or none."""
    if households <= 0:
        return "none"
    if math.isnan(walk_min):
        return "unreachable"
    for limit, _colour, _label in TIME_BANDS:
        if walk_min <= limit:
            return str(limit)
    return "beyond"


BAND_COLOURS = {
    **{str(limit): colour for limit, colour, _ in TIME_BANDS},
    "beyond": BEYOND[0],
    "unreachable": UNREACHABLE[0],
    "none": NO_HOUSEHOLDS,
}


def _streets(edges: gpd.GeoDataFrame, name: str) -> folium.GeoJson:
    gdf = edges[["highway", "geom"]].copy()
    return folium.GeoJson(
        gdf,
        name=name,
        style_function=lambda f: {
            "color": "#8aa1c1",
            "weight": STREET_WEIGHT.get(f["properties"]["highway"], 1.2),
            "opacity": 0.8,
        },
        interactive=False,  # a tap on a street is a tap on the map: a what-if point
    )


def _buildings(
    buildings: gpd.GeoDataFrame, limit_min: float, name: str
) -> tuple[gpd.GeoDataFrame, folium.GeoJson]:
    gdf = buildings[["id", "name", "households", "walk_min", "geom"]].copy()
    gdf["name"] = gdf["name"].fillna("").astype(str)  # reach.js shows it as text
    walk = gdf["walk_min"].astype(float).fillna(math.nan)
    gdf["band"] = [band_of(w, int(h)) for w, h in zip(walk, gdf["households"], strict=True)]
    # walk_min: minutes, or null for no path ("unreachable") and beyond the run's cap
    gdf["walk_min"] = [round(w, 1) if math.isfinite(w) else None for w in walk]
    gdf["gap"] = [
        bool(h > 0 and not (math.isfinite(w) and w <= limit_min))
        for w, h in zip(walk, gdf["households"], strict=True)
    ]
    layer = folium.GeoJson(
        gdf,
        name=name,
        style_function=lambda f: {
            "fillColor": BAND_COLOURS[f["properties"]["band"]],
            "color": "#555",
            "weight": 0.6,
            "fillOpacity": 0.85,
        },
    )
    return gdf, layer


def _gaps(gaps: gpd.GeoDataFrame, name: str) -> folium.GeoJson:
    return folium.GeoJson(
        gaps[["id", "geom"]],
        name=name,
        style_function=lambda f: {"color": GAP_COLOUR, "weight": 2, "fill": False},
        interactive=False,
    )


def _facilities(facilities: gpd.GeoDataFrame, name: str) -> folium.GeoJson:
    fac = facilities[["id", "name", "geom"]].copy()
    fac["geom"] = fac.geometry.representative_point()
    fac = fac.rename(columns={"id": "facility_id"}).set_geometry("geom")
    fac["name"] = fac["name"].fillna("").astype(str)
    # a 44 px marker: the finger-sized target, with a small dot drawn inside it (reach.css)
    icon = folium.DivIcon(
        html="<span></span>", icon_size=(44, 44), icon_anchor=(22, 22), class_name="ga-fac"
    )
    return folium.GeoJson(fac, name=name, marker=folium.Marker(icon=icon))


def _legend(texts: Mapping[str, str], limit_min: float) -> str:
    rows = [
        *((colour, texts[key]) for (_, colour, _), key in zip(TIME_BANDS, BAND_KEYS, strict=True)),
        (BEYOND[0], texts["reach.band_beyond"]),
        (UNREACHABLE[0], texts["reach.unreachable"]),
        (NO_HOUSEHOLDS, texts["reach.no_households"]),
    ]
    items = "".join(f'<li><i style="background:{c}"></i>{escape(label)}</li>' for c, label in rows)
    gap = escape(texts["reach.gap"].replace("{limit}", f"{limit_min:g}"))
    items += f'<li><i class="ga-legend-gap" style="border-color:{GAP_COLOUR}"></i>{gap}</li>'
    items += f'<li><i class="ga-legend-fac"></i>{escape(texts["reach.facility"])}</li>'
    items += f'<li><i class="ga-legend-whatif"></i>{escape(texts["reach.whatif_marker"])}</li>'
    items += f'<li><i class="ga-legend-site"></i>{escape(texts["reach.site_marker"])}</li>'
    return (
        f'<div class="ga-legend ga-reach-legend" id="ga-legend"><b>{escape(texts["reach.legend"])}'
        f"</b><ul>{items}</ul></div>"
    )


def _panel(
    texts: Mapping[str, str],
    categories: Sequence[tuple[str, str]],
    category: str,
    speed: str,
    area: str,
) -> str:
    def tx(key: str) -> str:
        return escape(texts[key])

    options = "".join(
        f'<option value="{escape(code)}"{" selected" if code == category else ""}>'
        f"{escape(label)}</option>"
        for code, label in categories
    )
    speeds = "".join(
        f'<button type="button" class="ga-speed" data-speed="{key}" '
        f'aria-pressed="{"true" if key == speed else "false"}">{tx("reach." + key)}</button>'
        for key in SPEEDS
    )
    return (
        '<aside class="ga-reach-panel" id="ga-reach-panel">'
        f'<label class="ga-field">{tx("reach.category")}'
        f'<select id="ga-reach-category">{options}</select></label>'
        f'<div class="ga-field" role="group" aria-label="{tx("reach.speed")}">'
        f'<span>{tx("reach.speed")}</span><div class="ga-speeds">{speeds}</div></div>'
        f'<p class="ga-area" id="ga-reach-area">'
        f"{escape(texts['reach.area'].replace('{area}', area))}</p>"
        f'<p class="ga-hint">{tx("reach.area_note")}</p>'
        f'<p class="ga-hint">{tx("reach.hint")}</p>'
        f"<section><h2>{tx('reach.siting')}</h2>"
        f'<button type="button" id="ga-reach-siting" class="ga-wide">'
        f'{tx("reach.siting_button")}</button><ol id="ga-reach-sites"></ol></section>'
        f"<section><h2>{tx('reach.coverage')}</h2>"
        '<div id="ga-reach-chart" class="ga-chart"></div>'
        '<table class="ga-table" id="ga-reach-communities"></table>'
        '<table class="ga-table" id="ga-reach-grids"></table></section>'
        '<section><h2 id="ga-reach-gaps-title"></h2><p id="ga-reach-gaps-total"></p>'
        '<ul class="ga-gaps" id="ga-reach-gaps"></ul></section>'
        "</aside>"
        '<div class="ga-reach-card" id="ga-reach-card" role="dialog" hidden>'
        '<div id="ga-reach-card-body"></div><div class="ga-actions">'
        f'<button type="button" id="ga-reach-place" hidden>{tx("reach.place_here")}</button>'
        f'<button type="button" id="ga-reach-close">{tx("reach.close")}</button></div></div>'
    )


def reach_page_map(
    buildings: gpd.GeoDataFrame,
    facilities: gpd.GeoDataFrame,
    edges: gpd.GeoDataFrame,
    *,
    texts: Mapping[str, str],
    categories: Sequence[tuple[str, str]],
    category: str,
    speed: str,
    limit_min: float,
    area: str = "",
) -> Map:
    """The reach page's map: ``buildings`` (id, name, households, walk_min at the chosen
    speed; NaN no path, inf beyond the cap), the category's ``facilities``, the streets.

    ``categories`` are (code, label) of the select; ``speed`` is "adult" or "elderly";
    ``area`` names what the what-if and the siting count (the user's areas, or the city).
    """
    if speed not in SPEEDS:
        raise ValueError(f"speed must be one of {', '.join(SPEEDS)}")
    m = Map(tiles=None, control_scale=False, prefer_canvas=True, zoom_control=True)
    MetricScale().add_to(m)
    m.add_child(LocateMe())
    if len(edges):
        _streets(edges, texts["reach.layer_streets"]).add_to(m)
    names = {"map": m.get_name()}
    if len(buildings):  # Folium refuses a GeoJson layer without features
        gdf, layer = _buildings(buildings, limit_min, texts["reach.layer_buildings"])
        layer.add_to(m)
        names["buildings"] = layer.get_name()
        gaps = gdf[gdf["gap"]]
        if len(gaps):
            _gaps(gaps, texts["reach.layer_gaps"]).add_to(m)
    if len(facilities):
        layer = _facilities(facilities, texts["reach.layer_facilities"])
        layer.add_to(m)
        names["facilities"] = layer.get_name()
    for key, text in (("isochrone", "layer_isochrone"), ("whatif", "layer_whatif"),
                      ("sites", "layer_sites")):  # fmt: skip
        group = folium.FeatureGroup(name=texts[f"reach.{text}"]).add_to(m)
        names[key] = group.get_name()
    focus = buildings if len(buildings) else facilities
    if len(focus):
        x0, y0, x1, y1 = focus.total_bounds
        m.fit_bounds([[y0, x0], [y1, x1]])
    else:
        m.location, m.zoom_start = [32.04, 118.78], 14
    folium.LayerControl(collapsed=True).add_to(m)
    m.add_child(Attribution(OSM_CREDIT))
    add_stylesheet(m, f"{APP_PREFIX}/map.css")
    add_stylesheet(m, REACH_CSS)
    label = dict(categories).get(category, category)
    data = " ".join(f'data-{k}="{escape(v)}"' for k, v in names.items())
    data += (
        f' data-category="{escape(category)}" data-category-label="{escape(label)}"'
        f' data-speed="{speed}" data-speed-m-per-min="{SPEEDS[speed]:g}"'
        f' data-limit-min="{limit_min:g}" data-area-label="{escape(area)}"'
    )
    bar = (
        f'<div class="ga-bar" id="ga-bar"><h1>{escape(texts["reach.title"])} · '
        f'{escape(label)}</h1><span class="ga-stats" id="ga-stats"></span></div>'
        f'<div id="ga-reach" hidden {data}></div>'
    )
    root = m.get_root()
    root.html.add_child(Fragment(bar + _legend(texts, limit_min) +
                                 _panel(texts, categories, category, speed, area)))  # fmt: skip
    root.html.add_child(Fragment(f'<script src="{REACH_JS}" defer></script>'))
    root.title = f"{texts['reach.title']} · {label}"
    return m
