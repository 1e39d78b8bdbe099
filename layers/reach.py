"""The planners' reach map: buildings by walking time to one category, its facilities, gaps."""

from __future__ import annotations

import math
from html import escape

import folium
import geopandas as gpd

from gis import i18n
from layers.assets import APP_PREFIX, add_stylesheet
from layers.furniture import LocateMe, MetricScale
from layers.page import Fragment, Map
from layers.site import OSM_CREDIT, Attribution, streets_layer

# minutes -> colour and the catalogue key of its label; beyond the last band and
# unreachable have their own
TIME_BANDS = (
    (5, "#1a9850", "reach.band_5"),
    (10, "#91cf60", "reach.band_10"),
    (15, "#fc8d59", "reach.band_15"),
)
BEYOND = ("#d73027", "reach.band_beyond")
UNREACHABLE = ("#7b3294", "reach.unreachable")
NO_HOUSEHOLDS = "#cccccc"
NO_HOUSEHOLDS_KEY = "reach.no_households"


def _band(walk_min: float | None, households: int) -> tuple[str, str]:
    """The colour of a building and the catalogue key of its band."""
    if households <= 0:
        return NO_HOUSEHOLDS, NO_HOUSEHOLDS_KEY
    if walk_min is None or (isinstance(walk_min, float) and math.isnan(walk_min)):
        return UNREACHABLE
    for limit, colour, key in TIME_BANDS:
        if walk_min <= limit:
            return colour, key
    return BEYOND


def reach_map(
    buildings: gpd.GeoDataFrame,
    facilities: gpd.GeoDataFrame,
    edges: gpd.GeoDataFrame,
    *,
    category_label: str,
    limit_min: float,
    covered: int,
    households: int,
    lang: str = i18n.DEFAULT_LANG,
) -> Map:
    """Buildings coloured by walking time (``walk_min``; NaN unreachable, inf beyond), with
    every text in ``lang`` (``category_label`` comes in it already)."""

    def tx(key: str, **params: object) -> str:
        return i18n.t(key, lang, **params)

    gdf = buildings[["name", "households", "walk_min", "geom"]].copy()
    gdf["name"] = gdf["name"].fillna("").astype(str).map(escape)
    bands = [
        _band(w if math.isfinite(w) or math.isnan(w) else 99.0, h)
        for w, h in zip(gdf["walk_min"], gdf["households"], strict=True)
    ]
    gdf["colour"] = [b[0] for b in bands]
    gdf["band"] = [tx(b[1]) for b in bands]
    gdf["walk_min"] = [None if not math.isfinite(w) else round(w, 1) for w in gdf["walk_min"]]
    m = Map(tiles=None, control_scale=False, prefer_canvas=True)
    m.add_child(MetricScale())
    m.add_child(LocateMe())
    if len(edges):
        streets = streets_layer(edges)
        streets.layer_name = tx("reach.layer_streets")  # in the language
        streets.add_to(m)
    fields = ["name", "households", "walk_min", "band"]
    aliases = [tx(f"reach.map.{f}") for f in fields]
    if len(gdf):  # Folium's tooltips refuse a layer without features
        folium.GeoJson(
            gdf,
            name=tx("reach.map.layer_buildings"),
            style_function=lambda f: {
                "fillColor": f["properties"]["colour"],
                "color": "#555",
                "weight": 0.5,
                "fillOpacity": 0.8,
            },
            tooltip=folium.GeoJsonTooltip(fields=fields, aliases=aliases),
            popup=folium.GeoJsonPopup(fields=fields, aliases=aliases),
        ).add_to(m)
    if len(facilities):
        fac = facilities[["name", "geom"]].copy()
        fac["geom"] = fac.geometry.representative_point()
        fac["name"] = fac["name"].fillna("").astype(str).map(escape)
        folium.GeoJson(
            fac.set_geometry("geom"),
            name=escape(tx("reach.map.layer_facilities", category=category_label)),
            marker=folium.CircleMarker(radius=8, fill=True, fill_opacity=1, weight=2),
            style_function=lambda f: {"color": "#ffffff", "fillColor": "#08519c"},
            tooltip=folium.GeoJsonTooltip(fields=["name"], aliases=[tx("reach.map.name")]),
        ).add_to(m)
    if len(gdf):
        x0, y0, x1, y1 = gdf.total_bounds
        m.fit_bounds([[y0, x0], [y1, x1]])
    folium.LayerControl(collapsed=True).add_to(m)
    m.add_child(Attribution(OSM_CREDIT))
    add_stylesheet(m, f"{APP_PREFIX}/map.css")
    share = f"{covered / households:.1%}" if households else "—"
    title = tx("reach.map.title", category=category_label)
    stats = tx(
        "reach.map.stats", limit=f"{limit_min:g}", covered=f"{covered:,}",
        households=f"{households:,}", share=share,
    )  # fmt: skip
    bar = (
        f'<div class="ga-bar" id="ga-bar"><h1>{escape(title)}</h1>'
        f'<span class="ga-stats" id="ga-stats">{escape(stats)}</span></div>'
    )
    rows = [
        *((c, key) for _, c, key in TIME_BANDS),
        BEYOND,
        UNREACHABLE,
        (NO_HOUSEHOLDS, NO_HOUSEHOLDS_KEY),
    ]
    legend = (
        f'<div class="ga-legend" id="ga-legend"><b>{escape(tx("reach.legend"))}</b><br>'
        + "<br>".join(f'<i style="background:{c}"></i>{escape(tx(key))}' for c, key in rows)
        + "</div>"
    )
    m.get_root().html.add_child(Fragment(bar + legend))
    m.get_root().title = title
    return m
