"""The planners' reach map: buildings by walking time to one category, its facilities, gaps."""

from __future__ import annotations

import math
from html import escape

import folium
import geopandas as gpd

from layers.assets import APP_PREFIX, add_stylesheet
from layers.furniture import LocateMe, MetricScale
from layers.page import Fragment, Map
from layers.site import OSM_CREDIT, Attribution, streets_layer

# minutes -> colour; beyond the last band and unreachable have their own
TIME_BANDS = (
    (5, "#1a9850", "≤ 5 分钟"),
    (10, "#91cf60", "5–10 分钟"),
    (15, "#fc8d59", "10–15 分钟"),
)
BEYOND = ("#d73027", "超过 15 分钟")
UNREACHABLE = ("#7b3294", "无步行路径")
NO_HOUSEHOLDS = "#cccccc"


def _band(walk_min: float | None, households: int) -> tuple[str, str]:
    if households <= 0:
        return NO_HOUSEHOLDS, "非住宅"
    if walk_min is None or (isinstance(walk_min, float) and math.isnan(walk_min)):
        return UNREACHABLE
    for limit, colour, label in TIME_BANDS:
        if walk_min <= limit:
            return colour, label
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
) -> Map:
    """Buildings coloured by walking time (``walk_min``; NaN unreachable, inf beyond)."""
    gdf = buildings[["name", "households", "walk_min", "geom"]].copy()
    gdf["name"] = gdf["name"].fillna("").astype(str).map(escape)
    bands = [
        _band(w if math.isfinite(w) or math.isnan(w) else 99.0, h)
        for w, h in zip(gdf["walk_min"], gdf["households"], strict=True)
    ]
    gdf["colour"] = [b[0] for b in bands]
    gdf["band"] = [b[1] for b in bands]
    gdf["walk_min"] = [None if not math.isfinite(w) else round(w, 1) for w in gdf["walk_min"]]
    m = Map(tiles=None, control_scale=False, prefer_canvas=True)
    m.add_child(MetricScale())
    m.add_child(LocateMe())
    if len(edges):
        streets_layer(edges).add_to(m)
    if len(gdf):  # Folium's tooltips refuse a layer without features
        folium.GeoJson(
            gdf,
            name="楼栋步行时间 Walking time",
            style_function=lambda f: {
                "fillColor": f["properties"]["colour"],
                "color": "#555",
                "weight": 0.5,
                "fillOpacity": 0.8,
            },
            tooltip=folium.GeoJsonTooltip(
                fields=["name", "households", "walk_min", "band"],
                aliases=["名称", "户数", "步行分钟", "区间"],
            ),
            popup=folium.GeoJsonPopup(
                fields=["name", "households", "walk_min", "band"],
                aliases=["名称", "户数", "步行分钟", "区间"],
            ),
        ).add_to(m)
    if len(facilities):
        fac = facilities[["name", "geom"]].copy()
        fac["geom"] = fac.geometry.representative_point()
        fac["name"] = fac["name"].fillna("").astype(str).map(escape)
        folium.GeoJson(
            fac.set_geometry("geom"),
            name=f"{escape(category_label)} 设施",
            marker=folium.CircleMarker(radius=8, fill=True, fill_opacity=1, weight=2),
            style_function=lambda f: {"color": "#ffffff", "fillColor": "#08519c"},
            tooltip=folium.GeoJsonTooltip(fields=["name"], aliases=["名称"]),
        ).add_to(m)
    if len(gdf):
        x0, y0, x1, y1 = gdf.total_bounds
        m.fit_bounds([[y0, x0], [y1, x1]])
    folium.LayerControl(collapsed=True).add_to(m)
    m.add_child(Attribution(OSM_CREDIT))
    add_stylesheet(m, f"{APP_PREFIX}/map.css")
    share = f"{covered / households:.1%}" if households else "—"
    bar = (
        f'<div class="ga-bar" id="ga-bar"><h1>步行可达 · {escape(category_label)}</h1>'
        f'<span class="ga-stats" id="ga-stats">{limit_min:g} 分钟内覆盖 {covered:,} / '
        f"{households:,} 户 ({share})</span></div>"
    )
    rows = [
        *((c, label) for _, c, label in TIME_BANDS),
        BEYOND,
        UNREACHABLE,
        (NO_HOUSEHOLDS, "非住宅"),
    ]
    legend = (
        '<div class="ga-legend" id="ga-legend"><b>步行时间</b><br>'
        + "<br>".join(f'<i style="background:{c}"></i>{label}' for c, label in rows)
        + "</div>"
    )
    m.get_root().html.add_child(Fragment(bar + legend))
    m.get_root().title = f"步行可达 · {category_label}"
    return m
