"""The grid worker's map (我的网格): their own buildings to tap, the one-breath search box,
and room for today's patrol list. No database here: the route hands in the scoped frames
(``gis.gridview``) and the texts in the user's language.

A tap on a building opens one card (``web/static/app/grid.js`` fills it from the API); the
buildings layer has no tooltip or popup of its own, so nothing opens on top of the card.
Property values are data for the script (set with ``textContent``), never markup.
"""

from __future__ import annotations

from html import escape

import folium
import geopandas as gpd

from layers.assets import APP_PREFIX, add_stylesheet
from layers.furniture import LocateMe, MetricScale
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


def _grids_layer(grids: gpd.GeoDataFrame, name: str) -> folium.GeoJson:
    return folium.GeoJson(
        grids[["id", "code", "label", "geom"]].set_index("id", drop=False),
        name=name,
        style_function=lambda f: {
            "color": GRID_COLOUR,
            "weight": 3,
            "dashArray": "6 4",
            "fill": False,
        },
    )


def _streets_layer(edges: gpd.GeoDataFrame, name: str) -> folium.GeoJson:
    gdf = edges[["highway", "length_m", "geom"]].copy()
    gdf["highway"] = gdf["highway"].fillna("").astype(str)
    return folium.GeoJson(
        gdf,
        name=name,
        style_function=lambda f: {
            "color": "#8aa1c1",
            "weight": STREET_WEIGHT.get(f["properties"]["highway"], 1.2),
            "opacity": 0.9,
        },
    )


def _facilities_layer(
    facilities: gpd.GeoDataFrame, labels: dict[str, str], name: str
) -> folium.GeoJson:
    gdf = facilities[["id", "name", "categories", "geom"]].copy()
    gdf["geom"] = gdf.geometry.representative_point()
    gdf["name"] = gdf["name"].fillna("").astype(str)
    gdf["facility"] = [
        "、".join(labels.get(c, c) for c in cats or ()) for cats in gdf["categories"]
    ]
    gdf = gdf.drop(columns=["categories"]).set_geometry("geom")
    return folium.GeoJson(
        gdf,
        name=name,
        marker=folium.CircleMarker(radius=7, fill=True, fill_opacity=0.9, weight=2),
        style_function=lambda f: {"color": "#ffffff", "fillColor": FACILITY_COLOUR},
    )


def _buildings_layer(buildings: gpd.GeoDataFrame, name: str) -> folium.GeoJson:
    gdf = buildings[["id", "code", "label", "households", "grid_id", "geom"]].copy()
    gdf["code"] = gdf["code"].fillna("").astype(str)
    gdf["label"] = gdf["label"].fillna("").astype(str)
    gdf["households"] = gdf["households"].fillna(0).astype(int)
    gdf["building_id"] = gdf["id"]  # what grid.js looks for
    return folium.GeoJson(
        gdf.set_index("id", drop=False),
        name=name,
        # no tooltip, no popup: a tap opens the one card (grid.js)
        style_function=lambda f: {
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
    buildings: gpd.GeoDataFrame,
    grids: gpd.GeoDataFrame,
    edges: gpd.GeoDataFrame,
    facilities: gpd.GeoDataFrame,
    *,
    texts: dict[str, str],
    facility_labels: dict[str, str],
    total_buildings: int,
) -> Map:
    """Return the grid page's map, opened on ``buildings`` (the user's own).

    ``texts`` are the page's texts in the user's language, keyed as in ``[grid]`` of
    ``gis/messages.toml`` without the prefix (plus ``credit``); they are escaped here.
    """
    tx = texts
    m = Map(tiles=None, control_scale=False, prefer_canvas=False, zoom_control=True)
    if len(edges):
        _streets_layer(edges, tx["layer_streets"]).add_to(m)
    if len(grids):
        _grids_layer(grids, tx["layer_grids"]).add_to(m)
    if len(facilities):
        _facilities_layer(facilities, facility_labels, tx["layer_facilities"]).add_to(m)
    if len(buildings):
        _buildings_layer(buildings, tx["layer_buildings"]).add_to(m)
        x0, y0, x1, y1 = buildings.total_bounds
        m.fit_bounds([[y0, x0], [y1, x1]], padding=(16, 16))
    else:
        m.location, m.zoom_start = DEFAULT_VIEW
    folium.LayerControl(collapsed=True).add_to(m)
    m.add_child(MetricScale())
    m.add_child(LocateMe(tx["locate"], tx["locate_failed"]))
    m.add_child(Attribution(tx["credit"]))
    add_stylesheet(m, f"{APP_PREFIX}/map.css")
    add_stylesheet(m, f"{APP_PREFIX}/grid.css")
    households = int(buildings["households"].fillna(0).sum()) if len(buildings) else 0
    stats = tx["stats"].format(buildings=len(buildings), households=households)
    note = (
        tx["capped"].format(shown=len(buildings), total=total_buildings)
        if len(buildings) < total_buildings
        else (tx["empty"] if not len(buildings) else None)
    )
    root = m.get_root()
    root.html.add_child(Fragment(_panel(tx, stats, note) + _legend(tx)))
    root.html.add_child(Fragment(f'<script src="{APP_PREFIX}/grid.js" defer></script>'))
    root.title = tx["title"]  # type: ignore[attr-defined]
    return m
