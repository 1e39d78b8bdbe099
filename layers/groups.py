"""The residents' groups map: groups coloured by how near they are to ~100 households,
buildings to tap, and the moves committee staff make by tapping (web/static/app/groups.js)."""

from __future__ import annotations

from html import escape

import folium
import geopandas as gpd

from gis import i18n
from layers.assets import APP_PREFIX, add_stylesheet
from layers.furniture import LocateMe, MetricScale, json_for_script
from layers.page import Fragment, Map
from layers.site import OSM_CREDIT, Attribution, streets_layer

# The texts of the moves, in both languages: the page's script picks the user's (GA.lang).
MOVE_TEXTS = "leaders.groups_"

BAND_COLOURS = {
    "in_band": "#41ab5d",  # within the band of the run (80–120 households by default)
    "small": "#fec44f",
    "large": "#f03b20",
    "oversize": "#8856a7",  # one building above the band
    "no_households": "#bdbdbd",
}
DEFAULT_BAND = (80, 120)  # when the groups carry no band of their own


def band_labels(band: tuple[float, float] | None) -> dict[str, str]:
    """The legend's labels for the band of the run that drew the groups."""
    lo, hi = band or DEFAULT_BAND
    return {
        "in_band": f"{lo:g}–{hi:g} 户",
        "small": f"少于 {lo:g} 户",
        "large": f"多于 {hi:g} 户",
        "oversize": "单栋超大（已标记）",
        "no_households": "无住户",
    }


def _groups_layer(groups: gpd.GeoDataFrame) -> folium.GeoJson:
    g = groups.copy()
    # Tooltips insert property values as HTML: codes come from imported files and edits.
    for col in ("community", "code", "grid"):
        g[col] = g[col].fillna("").astype(str).map(escape)
    g["locked"] = g["is_locked"].map({True: "已锁定", False: "未锁定"})
    return folium.GeoJson(
        g.drop(columns=["flags", "is_locked"]),
        name="居民小组 Residents' groups",
        style_function=lambda f: {
            "fillColor": BAND_COLOURS[f["properties"]["band"]],
            "color": "#222" if f["properties"]["locked"] == "已锁定" else "#555",
            "weight": 3 if f["properties"]["locked"] == "已锁定" else 1,
            "fillOpacity": 0.35,
        },
        tooltip=folium.GeoJsonTooltip(
            fields=["community", "code", "households", "grid", "locked"],
            aliases=["社区", "小组", "户数", "网格", "锁定"],
        ),
    )


def _buildings_layer(buildings: gpd.GeoDataFrame) -> folium.GeoJson:
    b = buildings.copy()
    for col in ("name", "unit", "cluster", "grp"):
        b[col] = b[col].fillna("").astype(str).map(escape)
    return folium.GeoJson(
        b,
        name="楼栋 Buildings",
        style_function=lambda f: {
            "fillColor": "#636363",
            "color": "#252525",
            "weight": 0.8,
            "fillOpacity": 0.55,
        },
        # no tooltip: a tap opens the building's card (one card per tap)
    )


def groups_map(
    groups: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame,
    edges: gpd.GeoDataFrame,
    *,
    title: str,
) -> Map:
    """Return the groups map (no basemap needed)."""
    m = Map(tiles=None, control_scale=False, prefer_canvas=False, zoom_control=True)
    m.add_child(MetricScale())
    m.add_child(LocateMe())
    if len(edges):
        streets_layer(edges).add_to(m)
    g = groups.copy()
    # the class against the band of the run that drew each group (gis.delineate.service)
    if "band_class" not in g:
        raise ValueError("groups need band_class (gis.delineate.service.map_frames gives it)")
    g["band"] = g["band_class"]
    band = groups.attrs.get("band")
    labels = band_labels(band)
    # Folium's tooltips refuse a layer without features (their fields are not in the data)
    if len(g):
        _groups_layer(g).add_to(m)
    if len(buildings):
        _buildings_layer(buildings).add_to(m)
    focus = buildings if len(buildings) else groups
    if len(focus):
        x0, y0, x1, y1 = focus.total_bounds
        m.fit_bounds([[y0, x0], [y1, x1]])
    else:
        m.location, m.zoom_start = [32.04, 118.78], 14
    folium.LayerControl(collapsed=True).add_to(m)
    m.add_child(Attribution(OSM_CREDIT))
    add_stylesheet(m, f"{APP_PREFIX}/map.css")
    in_band = int((g["band"] == "in_band").sum())
    bar = (
        f'<div class="ga-bar" id="ga-bar"><h1>{escape(title)}</h1>'
        f'<span class="ga-stats" id="ga-stats">小组 {len(g):,} · {labels["in_band"]} {in_band:,} · '
        f"楼栋 {len(buildings):,}</span></div>"
    )
    legend = (
        '<div class="ga-legend" id="ga-legend"><b>居民小组户数</b><br>'
        + "<br>".join(f'<i style="background:{c}"></i>{labels[k]}' for k, c in BAND_COLOURS.items())
        + "</div>"
    )

    def zh(key: str) -> str:  # the first drawing; the script puts the user's language in
        return escape(i18n.t(MOVE_TEXTS + key))

    panel = (
        '<div class="ga-panel" id="ga-panel" hidden>'
        '<div id="ga-card"></div>'
        '<div class="ga-actions">'
        f'<button id="ga-move-building" type="button">{zh("move_building")}</button>'
        f'<button id="ga-move-unit" type="button">{zh("move_unit")}</button>'
        f'<button id="ga-move-cluster" type="button">{zh("move_cluster")}</button>'
        '<button id="ga-lock" type="button">锁定小组</button>'
        '<button id="ga-cancel" type="button">取消</button></div>'
        '<div id="ga-message" role="status"></div></div>'
    )
    texts = {lang: i18n.texts(lang, MOVE_TEXTS) for lang in i18n.LANGS}
    data = f'<script type="application/json" id="ga-groups-texts">{json_for_script(texts)}</script>'
    m.get_root().html.add_child(Fragment(bar + legend + panel + data))
    m.get_root().html.add_child(Fragment(f'<script src="{APP_PREFIX}/groups.js" defer></script>'))
    m.get_root().title = title
    return m
