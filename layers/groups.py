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

# The page's texts (gis/messages/groups.toml), in the user's language; its script gets them
# too (the JSON block ga-groups-texts).
TEXTS = "groups."

BAND_COLOURS = {
    "in_band": "#41ab5d",  # within the band of the run (80–120 households by default)
    "small": "#fec44f",
    "large": "#f03b20",
    "oversize": "#8856a7",  # one building above the band
    "no_households": "#bdbdbd",
}
DEFAULT_BAND = (80, 120)  # when the groups carry no band of their own
# A building divided by floors among groups: striped (an SVG pattern groups-hatch.js adds),
# its outline dashed. The legend's swatch draws the same stripes in CSS.
BUILDING_COLOUR = "#636363"
FLOORS_HATCH = "ga-floors"
HATCH_SWATCH = f"repeating-linear-gradient(0deg, {BUILDING_COLOUR} 0 3px, #ffffff 3px 6px)"


def band_labels(band: tuple[float, float] | None, lang: str = i18n.DEFAULT_LANG) -> dict[str, str]:
    """The legend's labels for the band of the run that drew the groups, in ``lang``."""
    lo, hi = band or DEFAULT_BAND
    keys = {"in_band": "band_in", "small": "band_small", "large": "band_large",
            "oversize": "band_oversize", "no_households": "band_none"}  # fmt: skip
    return {k: i18n.t(TEXTS + key, lang, lo=f"{lo:g}", hi=f"{hi:g}") for k, key in keys.items()}


def group_notes(groups: gpd.GeoDataFrame, lang: str = i18n.DEFAULT_LANG) -> list[str]:
    """Per group, what its flags explain to the user ('' for none), with its run's band."""
    flags = groups["flags"].fillna("").astype(str) if "flags" in groups else [""] * len(groups)
    lo = groups["band_min"] if "band_min" in groups else [DEFAULT_BAND[0]] * len(groups)
    hi = groups["band_max"] if "band_max" in groups else [DEFAULT_BAND[1]] * len(groups)
    return [
        i18n.t(TEXTS + "note_no_contiguous_split", lang, lo=f"{a:g}", hi=f"{b:g}")
        if "no_contiguous_band_split" in f.split(",")
        else ""
        for f, a, b in zip(flags, lo, hi, strict=True)
    ]


def _groups_layer(groups: gpd.GeoDataFrame, lang: str) -> folium.GeoJson:
    g = groups.copy()
    # Tooltips insert property values as HTML: codes come from imported files and edits.
    for col in ("community", "code", "grid"):
        g[col] = g[col].fillna("").astype(str).map(escape)
    g["is_locked"] = g["is_locked"].astype(bool)
    g["locked"] = g["is_locked"].map(
        {True: i18n.t(TEXTS + "locked", lang), False: i18n.t(TEXTS + "unlocked", lang)}
    )
    columns = ["community", "group", "households", "grid", "locked"]
    fields = ["community", "code", "households", "grid", "locked"]
    notes = group_notes(g, lang)
    if any(notes):  # a row of its own only on maps with something to say
        g["note"] = [escape(n) for n in notes]
        columns.append("note")
        fields.append("note")
    return folium.GeoJson(
        g.drop(columns=["flags"]),
        name=i18n.t(TEXTS + "layer_groups", lang),
        style_function=lambda f: {
            "fillColor": BAND_COLOURS[f["properties"]["band"]],
            "color": "#222" if f["properties"]["is_locked"] else "#555",
            "weight": 3 if f["properties"]["is_locked"] else 1,
            "fillOpacity": 0.35,
        },
        tooltip=folium.GeoJsonTooltip(
            fields=fields,
            aliases=[escape(i18n.t(f"{TEXTS}col_{c}", lang)) for c in columns],
        ),
    )


def _buildings_layer(buildings: gpd.GeoDataFrame, lang: str) -> folium.GeoJson:
    b = buildings.copy()
    for col in ("name", "unit", "cluster", "grp", "parts"):
        if col in b:
            b[col] = b[col].fillna("").astype(str).map(escape)
    return folium.GeoJson(
        b,
        name=i18n.t(TEXTS + "layer_buildings", lang),
        style_function=lambda f: _building_style(bool(f["properties"].get("parts"))),
        # no tooltip: a tap opens the building's card (one card per tap)
    )


def _building_style(is_divided: bool) -> dict[str, object]:
    if not is_divided:
        return {"fillColor": BUILDING_COLOUR, "color": "#252525", "weight": 0.8,
                "fillOpacity": 0.55}  # fmt: skip
    # divided by floors among groups (parts, gis/delineate/parts.py): striped and dashed
    return {"fillColor": f"url(#{FLOORS_HATCH})", "color": "#252525", "weight": 0.8,
            "fillOpacity": 0.9, "dashArray": "4 3"}  # fmt: skip


def groups_map(
    groups: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame,
    edges: gpd.GeoDataFrame,
    *,
    community: str | None = None,
    lang: str = i18n.DEFAULT_LANG,
) -> Map:
    """Return the groups map of ``community`` (None: every community) in ``lang``."""

    def tx(key: str, **params: object) -> str:
        return escape(i18n.t(TEXTS + key, lang, **params))

    title = (
        i18n.t(TEXTS + "title_community", lang, community=community)
        if community
        else i18n.t(TEXTS + "title_all", lang)
    )
    m = Map(tiles=None, control_scale=False, prefer_canvas=False, zoom_control=True)
    m.add_child(MetricScale())
    m.add_child(LocateMe())
    if len(edges):
        streets = streets_layer(edges)
        streets.layer_name = i18n.t(TEXTS + "layer_streets", lang)  # in the language
        streets.add_to(m)
    g = groups.copy()
    # the class against the band of the run that drew each group (gis.delineate.service)
    if "band_class" not in g:
        raise ValueError("groups need band_class (gis.delineate.service.map_frames gives it)")
    g["band"] = g["band_class"]
    band = groups.attrs.get("band")
    labels = band_labels(band, lang)
    # Folium's tooltips refuse a layer without features (their fields are not in the data)
    if len(g):
        _groups_layer(g, lang).add_to(m)
    if len(buildings):
        _buildings_layer(buildings, lang).add_to(m)
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
    stats = tx(
        "stats", groups=f"{len(g):,}", in_band_label=labels["in_band"], in_band=f"{in_band:,}",
        buildings=f"{len(buildings):,}",
    )  # fmt: skip
    bar = (
        f'<div class="ga-bar" id="ga-bar"><h1>{escape(title)}</h1>'
        f'<span class="ga-stats" id="ga-stats">{stats}</span></div>'
    )
    legend = (
        f'<div class="ga-legend" id="ga-legend"><b>{tx("legend")}</b><br>'
        + "<br>".join(
            f'<i style="background:{c}"></i>{escape(labels[k])}' for k, c in BAND_COLOURS.items()
        )
        + f'<br><i class="ga-floors-swatch" data-pattern="{FLOORS_HATCH}" '
        f'data-colour="{BUILDING_COLOUR}" style="background:{HATCH_SWATCH}"></i>'
        + tx("legend_divided")
        + "</div>"
    )
    panel = (
        '<div class="ga-panel" id="ga-panel" hidden>'
        '<div id="ga-card"></div>'
        '<div class="ga-actions">'
        f'<button id="ga-move-building" type="button">{tx("move_building")}</button>'
        f'<button id="ga-move-unit" type="button">{tx("move_unit")}</button>'
        f'<button id="ga-move-cluster" type="button">{tx("move_cluster")}</button>'
        f'<button id="ga-lock" type="button">{tx("lock")}</button>'
        f'<button id="ga-cancel" type="button">{tx("cancel")}</button></div>'
        '<div id="ga-message" role="status"></div></div>'
    )
    texts = i18n.texts(lang, TEXTS)
    data = f'<script type="application/json" id="ga-groups-texts">{json_for_script(texts)}</script>'
    m.get_root().html.add_child(Fragment(bar + legend + panel + data))
    m.get_root().html.add_child(
        Fragment(
            f'<script src="{APP_PREFIX}/groups-hatch.js" defer></script>'
            f'<script src="{APP_PREFIX}/groups.js" defer></script>'
        )
    )
    m.get_root().title = title
    return m
