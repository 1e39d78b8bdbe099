"""The overview map of what was imported: buildings, the walk network and facilities."""

from __future__ import annotations

from html import escape

import folium
import geopandas as gpd
import pandas as pd
from branca.element import MacroElement, Template

from gis import i18n
from layers.assets import APP_PREFIX, add_stylesheet
from layers.furniture import LocateMe, MetricScale
from layers.page import Fragment, Map

STREET_COLOUR = "#4a6fa5"
# The data's licence asks for both: the credit and the licence's name (ODbL).
OSM_CREDIT = (
    '© <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors, '
    '<a href="https://opendatacommons.org/licenses/odbl/">ODbL</a>'
)
STREET_WEIGHT = {
    "primary": 5,
    "secondary": 4,
    "tertiary": 3.5,
    "trunk": 5,
    "residential": 2.5,
    "living_street": 2.5,
    "unclassified": 2.5,
    "service": 1.8,
}
HOUSEHOLD_COLOURS = (
    (0, "#d9d9d9"),
    (1, "#fdd49e"),
    (30, "#fdae6b"),
    (100, "#f16913"),
    (300, "#a63603"),
)


class Attribution(MacroElement):
    """Adds a credit line to the map's attribution control (there may be no tile layer)."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        {{ this._parent.get_name() }}.attributionControl.addAttribution({{ this.text|tojson }});
        {% endmacro %}
    """)

    def __init__(self, text: str) -> None:
        super().__init__()
        self._name = "Attribution"
        self.text = text


def _escaped(values: pd.Series) -> pd.Series:
    # Folium's tooltips and popups insert property values as HTML: names come from imported
    # files, so they are escaped here, once, before they reach the page.
    return values.fillna("").astype(str).map(escape)


def _household_colour(n: int) -> str:
    colour = HOUSEHOLD_COLOURS[0][1]
    for threshold, c in HOUSEHOLD_COLOURS:
        if n >= threshold:
            colour = c
    return colour


TEXTS = "site_map."
BUILDING_FIELDS = ["name", "building_type", "levels", "households", "households_source", "area_m2"]
HOUSEHOLD_SOURCES = ("estimate", "flats", "attribute", "csv", "register", "none")


def _aliases(fields: list[str], lang: str) -> list[str]:
    return [i18n.t(f"{TEXTS}field.{f}", lang) for f in fields]


def buildings_layer(buildings: gpd.GeoDataFrame, lang: str = i18n.DEFAULT_LANG) -> folium.GeoJson:
    """Building footprints coloured by households, with a card in ``lang``."""
    gdf = buildings[
        ["name", "building_type", "levels", "households", "households_source", "area_m2", "geom"]
    ].copy()
    gdf["name"] = _escaped(gdf["name"])
    gdf["building_type"] = _escaped(gdf["building_type"])
    gdf["area_m2"] = gdf["area_m2"].round(0)
    gdf["households_source"] = (
        gdf["households_source"]
        .map({s: i18n.t(f"{TEXTS}source.{s}", lang) for s in HOUSEHOLD_SOURCES})
        .fillna("")
    )
    return folium.GeoJson(
        gdf,
        name=i18n.t(TEXTS + "layer_buildings", lang),
        style_function=lambda f: {
            "fillColor": _household_colour(f["properties"]["households"]),
            "color": "#555",
            "weight": 0.6,
            "fillOpacity": 0.75,
        },
        # one card per tap: no tooltip that would open on top of it on a tablet
        popup=folium.GeoJsonPopup(
            fields=BUILDING_FIELDS,
            aliases=_aliases(BUILDING_FIELDS, lang),
        ),
    )


def streets_layer(edges: gpd.GeoDataFrame, lang: str = i18n.DEFAULT_LANG) -> folium.GeoJson:
    """The walkable network, wider for bigger roads, named and labelled in ``lang``."""
    gdf = edges[["highway", "name", "length_m", "geom"]].copy()
    gdf["name"] = _escaped(gdf["name"])
    gdf["highway"] = _escaped(gdf["highway"])
    gdf["length_m"] = gdf["length_m"].round(1)
    return folium.GeoJson(
        gdf,
        name=i18n.t("map.walk_tiles", lang),
        style_function=lambda f: {
            "color": STREET_COLOUR,
            "weight": STREET_WEIGHT.get(f["properties"]["highway"], 1.2),
            "opacity": 0.9,
        },
        tooltip=folium.GeoJsonTooltip(
            fields=["name", "highway", "length_m"],
            aliases=_aliases(["street", "highway", "length_m"], lang),
        ),
    )


POINTS_PANE = "gaPoints"  # facilities above vector tiles, letting taps through to them


def facilities_layer(
    facilities: gpd.GeoDataFrame,
    labels: dict[str, str],
    *,
    pane: str | None = None,
    lang: str = i18n.DEFAULT_LANG,
) -> folium.GeoJson:
    """Facilities as points (polygons drawn at a point on their surface), in ``pane``."""
    gdf = facilities[["name", "kind", "categories", "geom"]].copy()
    gdf["geom"] = gdf.geometry.representative_point()
    gdf["name"] = _escaped(gdf["name"])
    gdf["kind"] = _escaped(gdf["kind"])
    gdf["category"] = [
        "、".join(escape(labels.get(c, c)) for c in cats) for cats in gdf["categories"]
    ]
    gdf = gdf.drop(columns=["categories"]).set_geometry("geom")
    marker = folium.CircleMarker(radius=6, fill=True, fill_opacity=0.9, weight=1.5)
    if pane:
        marker.options["pane"] = pane  # folium's CircleMarker has no pane argument
    return folium.GeoJson(
        gdf,
        name=i18n.t(TEXTS + "layer_facilities", lang),
        marker=marker,
        style_function=lambda f: {"color": "#ffffff", "fillColor": "#2b8a3e"},
        tooltip=folium.GeoJsonTooltip(
            fields=["name", "category", "kind"],
            aliases=_aliases(["name", "category", "kind"], lang),
        ),
    )


def overview_map(
    buildings: gpd.GeoDataFrame,
    edges: gpd.GeoDataFrame,
    facilities: gpd.GeoDataFrame,
    *,
    labels: dict[str, str],
    stats: dict[str, int],
    tiles_url: str | None = None,
    truncated: bool = False,
    is_tiled: bool = False,
    lang: str = i18n.DEFAULT_LANG,
) -> Map:
    """Return the overview map; without ``tiles_url`` it needs nothing but our own data.

    ``is_tiled``: buildings and streets will come as vector tiles (``layers.tiles``).
    Leaflet draws embedded layers on one canvas over the whole map, above the tiles, which
    would swallow every tap meant for a tiled footprint: the facilities then go in a pane
    of their own above the tiles that lets taps through (they are shown, not tapped).
    Every text is in ``lang`` (gis/messages/errors.toml, ``site_map.*``).
    """

    def tx(key: str, **params: object) -> str:
        return i18n.t(TEXTS + key, lang, **params)

    m = Map(tiles=None, control_scale=False, prefer_canvas=True, zoom_control=True)
    m.add_child(MetricScale())
    m.add_child(LocateMe())
    if tiles_url:
        folium.TileLayer(tiles_url, attr="basemap", name=tx("layer_basemap")).add_to(m)
    if len(edges):
        streets_layer(edges, lang).add_to(m)
    if len(buildings):
        buildings_layer(buildings, lang).add_to(m)
    if len(facilities):
        if is_tiled:
            folium.map.CustomPane(POINTS_PANE, z_index=450, pointer_events=False).add_to(m)
        pane = POINTS_PANE if is_tiled else None
        layer = facilities_layer(facilities, labels, pane=pane, lang=lang)
        layer.add_to(m)
    # Fit the view to the buildings (long arterials would zoom it out needlessly).
    focus = buildings if len(buildings) else (edges if len(edges) else facilities)
    if len(focus):
        x0, y0, x1, y1 = focus.total_bounds
        m.fit_bounds([[y0, x0], [y1, x1]])
    else:
        m.location, m.zoom_start = [32.04, 118.78], 14
    folium.LayerControl(collapsed=True).add_to(m)
    m.add_child(Attribution(OSM_CREDIT))
    add_stylesheet(m, f"{APP_PREFIX}/map.css")
    counts = {k: f"{stats.get(k, 0):,}" for k in ("buildings", "households", "facilities",
                                                   "walk_edges")}  # fmt: skip
    note = ""
    if truncated:
        shown = escape(tx("truncated", n=f"{len(buildings):,}"))
        note = f'<span class="ga-note" id="ga-note">{shown}</span>'
    bar = (
        f'<div class="ga-bar" id="ga-bar"><h1>{escape(tx("heading"))}</h1>'
        f'<span class="ga-stats" id="ga-stats">{escape(tx("stats", **counts))}</span>{note}</div>'
    )
    not_residential = escape(tx("not_residential"))
    legend = (
        f'<div class="ga-legend" id="ga-legend"><b>{escape(tx("legend"))}</b><br>'
        + "<br>".join(
            f'<i style="background:{escape(c)}"></i>{not_residential if t == 0 else f"≥ {t}"}'
            for t, c in HOUSEHOLD_COLOURS
        )
        + "</div>"
    )
    m.get_root().html.add_child(Fragment(bar + legend))
    m.get_root().title = tx("title")
    return m
