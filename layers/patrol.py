"""The patrol map (巡查): patrol areas coloured by their worker (vacant ones grey), buildings
coloured by the days since their last check-in, open problems by status, the tour (drawn by
``web/static/app/patrol.js`` from the API into an empty layer made here), locate-me.

No database here: the route hands in the scoped frames (``gis.patrol.mapview``) and the
texts in the user's language. Nothing has a tooltip or popup: a tap opens the one card of
the panel. Everyone who patrols taps buildings (check-in, report a problem); staff also tap
areas (assign a worker): a building is drawn over its area, so a tap on it is the
building's, a tap beside it the area's. Property values are data for the script.
"""

from __future__ import annotations

import json
from html import escape

import folium
import geopandas as gpd
import pandas as pd

from layers.assets import APP_PREFIX, add_stylesheet
from layers.grid import DEFAULT_VIEW, LocateMe, MetricScale
from layers.page import Fragment, Map
from layers.site import STREET_WEIGHT, Attribution

# One colour per worker (by id, so the same worker has the same colour on every page).
WORKER_COLOURS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b",
    "#e377c2", "#17becf", "#bcbd22", "#d62728", "#393b79",
)  # fmt: skip
VACANT_COLOUR = "#9e9e9e"
# days since the last check-in: (band, highest day count of the band, colour)
DAY_BANDS = (
    ("today", 0, "#1a9850"),
    ("d3", 3, "#91cf60"),
    ("d7", 7, "#fee08b"),
    ("older", None, "#fc8d59"),
)
NEVER_COLOUR = "#d73027"
STATUS_COLOURS = {
    "reported": "#e03131",
    "accepted": "#f08c00",
    "in_progress": "#1971c2",
    "resolved": "#2f9e44",
}
ROUTE_COLOUR = "#6a1b9a"


def worker_colour(worker_id: int | None) -> str:
    """The colour of a worker's areas; grey for an area without a worker."""
    if worker_id is None or pd.isna(worker_id):
        return VACANT_COLOUR
    return WORKER_COLOURS[int(worker_id) % len(WORKER_COLOURS)]


def day_band(days: float | None) -> str:
    """The band of a building last checked in ``days`` ago (None or NaN: never)."""
    if days is None or pd.isna(days):
        return "never"
    for band, upto, _ in DAY_BANDS:
        if upto is None or days <= upto:
            return band
    return "older"


def band_colour(band: str) -> str:
    return next((c for b, _, c in DAY_BANDS if b == band), NEVER_COLOUR)


def _areas_layer(areas: gpd.GeoDataFrame, name: str, interactive: bool) -> folium.GeoJson:
    gdf = areas[["id", "code", "grid_id", "households", "buildings", "walk_m", "geom"]].copy()
    gdf["area_id"] = gdf["id"]
    gdf["worker_id"] = [None if pd.isna(w) else int(w) for w in areas["worker_id"]]
    gdf["worker_name"] = [None if pd.isna(n) else str(n) for n in areas["worker_name"]]
    return folium.GeoJson(
        gdf.set_index("id", drop=False),
        name=name,
        interactive=interactive,
        style_function=lambda f: {
            "color": worker_colour(f["properties"]["worker_id"]),
            "fillColor": worker_colour(f["properties"]["worker_id"]),
            "weight": 3,
            "fillOpacity": 0.12,
            "dashArray": "8 6" if f["properties"]["worker_id"] is None else None,
        },
    )


def _streets_layer(edges: gpd.GeoDataFrame, name: str) -> folium.GeoJson:
    gdf = edges[["highway", "length_m", "geom"]].copy()
    gdf["highway"] = gdf["highway"].fillna("").astype(str)
    return folium.GeoJson(
        gdf,
        name=name,
        interactive=False,
        style_function=lambda f: {
            "color": "#b8c4d6",
            "weight": STREET_WEIGHT.get(f["properties"]["highway"], 1.2),
            "opacity": 0.9,
        },
    )


def _buildings_layer(buildings: gpd.GeoDataFrame, name: str, interactive: bool) -> folium.GeoJson:
    gdf = buildings[["id", "code", "label", "households", "geom"]].copy()
    gdf["code"] = gdf["code"].fillna("").astype(str)
    gdf["label"] = gdf["label"].fillna("").astype(str)
    gdf["households"] = gdf["households"].fillna(0).astype(int)
    gdf["building_id"] = gdf["id"]  # what patrol.js looks for
    gdf["area_id"] = [None if pd.isna(a) else int(a) for a in buildings["area_id"]]
    gdf["days"] = [None if pd.isna(d) else int(d) for d in buildings["days"]]
    gdf["band"] = [day_band(d) for d in buildings["days"]]
    gdf["last_at"] = [None if pd.isna(t) else pd.Timestamp(t).isoformat()
                      for t in buildings["last_at"]]  # fmt: skip
    return folium.GeoJson(
        gdf.set_index("id", drop=False),
        name=name,
        interactive=interactive,
        style_function=lambda f: {
            "fillColor": band_colour(f["properties"]["band"]),
            "color": "#444",
            "weight": 1,
            "fillOpacity": 0.85,
        },
    )


def _problems_layer(problems: gpd.GeoDataFrame, name: str) -> folium.GeoJson:
    gdf = problems[["id", "building_id", "category", "status", "handling", "geom"]].copy()
    gdf["problem_id"] = gdf["id"]
    gdf["deadline"] = [None if pd.isna(t) else pd.Timestamp(t).isoformat()
                       for t in problems["deadline"]]  # fmt: skip
    return folium.GeoJson(
        gdf.set_index("id", drop=False),
        name=name,
        # a 44 px target around a dot coloured by status (patrol.css)
        marker=folium.Marker(
            icon=folium.DivIcon(html="<span></span>", icon_size=(44, 44), icon_anchor=(22, 22))
        ),
        style_function=lambda f: {"className": f"pp-problem pp-st-{f['properties']['status']}"},
    )


def _legend(tx: dict[str, str], is_staff: bool) -> str:
    def row(colour: str, text: str, cls: str = "") -> str:
        return f'<div><i class="{cls}" style="background:{escape(colour)}"></i>{escape(text)}</div>'

    bands = "".join(row(c, tx[f"band_{b}"]) for b, _, c in DAY_BANDS)
    statuses = "".join(row(c, tx[f"status.{s}"], "pp-dot") for s, c in STATUS_COLOURS.items())
    areas = row(WORKER_COLOURS[0], tx["legend_area"], "pp-area") + row(
        VACANT_COLOUR, tx["legend_vacant"], "pp-area pp-vacant"
    )
    return (
        '<div class="ga-legend pp-legend" id="ga-legend">'
        f"<b>{escape(tx['legend_days'])}</b>{bands}{row(NEVER_COLOUR, tx['band_never'])}"
        f"<b>{escape(tx['legend_problems'])}</b>{statuses}"
        f"<b>{escape(tx['legend_map'])}</b>{areas}"
        f'<div><i class="pp-line" style="border-color:{ROUTE_COLOUR}"></i>'
        f"{escape(tx['legend_route'])}</div></div>"
    )


def _panel(tx: dict[str, str], stats: str, note: str | None, data: dict[str, str]) -> str:
    attrs = " ".join(f'data-{k}="{escape(v)}"' for k, v in data.items())
    note_html = f'<p class="pp-note" id="pp-note">{escape(note)}</p>' if note else ""
    gps = f'<button type="button" id="pp-gps" class="pp-btn">{escape(tx["gps_nearest"])}</button>'
    return (
        f'<aside class="pp-panel" id="pp-panel" {attrs}>'
        f'<div class="pp-head"><h1>{escape(tx["title"])}</h1>'
        f'<p class="pp-stats" id="pp-stats">{escape(stats)}</p>{note_html}</div>'
        f'<div class="pp-actions">{gps}</div>'
        '<section class="pp-card" id="ga-card" hidden aria-live="polite"></section>'
        '<section class="pp-route" id="pp-route" hidden></section>'
        f'<section class="pp-queue" id="pp-queue"><h2>{escape(tx["waiting_title"])}'
        ' <span class="pp-count" id="pp-count">0</span></h2>'
        f'<p class="pp-muted" id="pp-queue-state">{escape(tx["waiting_none"])}</p>'
        '<ul class="pp-waiting" id="pp-waiting"></ul>'
        f'<button type="button" id="pp-sync" class="pp-btn" hidden>{escape(tx["sync_now"])}'
        "</button></section>"
        f'<section class="pp-reminders" id="pp-reminders"><h2>{escape(tx["reminders_title"])}'
        "</h2></section></aside>"
    )


def patrol_map(
    areas: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame,
    problems: gpd.GeoDataFrame,
    edges: gpd.GeoDataFrame,
    *,
    texts: dict[str, str],
    is_staff: bool,
    user_id: int,
    total_buildings: int,
    flow: dict[str, tuple[str, ...]],
) -> Map:
    """Return the patrol page's map, opened on the user's areas (else their buildings).

    ``texts`` are the page's texts in the user's language, keyed as in ``[patrol_page]``
    of ``gis/messages/patrol_page.toml`` without the prefix; they are escaped here.
    ``flow`` is the problems' status flow (status → the statuses it may become): the
    problem card offers only those steps.
    """
    tx = texts
    m = Map(tiles=None, control_scale=False, prefer_canvas=False, zoom_control=True)
    if len(edges):
        _streets_layer(edges, tx["layer_streets"]).add_to(m)
    if len(areas):
        _areas_layer(areas, tx["layer_areas"], interactive=is_staff).add_to(m)
    if len(buildings):
        _buildings_layer(buildings, tx["layer_buildings"], interactive=True).add_to(m)
    route = folium.FeatureGroup(name=tx["layer_route"]).add_to(m)
    if len(problems):
        _problems_layer(problems, tx["layer_problems"]).add_to(m)
    shown = areas if len(areas) else buildings
    if len(shown):
        x0, y0, x1, y1 = shown.total_bounds
        m.fit_bounds([[y0, x0], [y1, x1]], padding=(16, 16))
    else:
        m.location, m.zoom_start = DEFAULT_VIEW
    folium.LayerControl(collapsed=True).add_to(m)
    m.add_child(MetricScale())
    m.add_child(LocateMe(tx["locate"], tx["locate_failed"]))
    m.add_child(Attribution(tx["credit"]))
    add_stylesheet(m, f"{APP_PREFIX}/map.css")
    add_stylesheet(m, f"{APP_PREFIX}/patrol.css")
    households = int(buildings["households"].fillna(0).sum()) if len(buildings) else 0
    vacant = int(areas["worker_id"].isna().sum()) if len(areas) else 0
    if is_staff:
        stats = tx["stats_staff"].format(areas=len(areas), vacant=vacant, buildings=len(buildings))
    else:
        codes = "、".join(str(c) for c in areas["code"]) if len(areas) else "—"
        stats = tx["stats_worker"].format(
            areas=codes, buildings=len(buildings), households=households
        )
    note = None
    if len(buildings) < total_buildings:
        note = tx["capped"].format(shown=len(buildings), total=total_buildings)
    elif not len(buildings):
        note = tx["empty"]
    elif not is_staff and not len(areas):
        note = tx["no_area"]
    data = {
        "mode": "staff" if is_staff else "worker",
        "user": str(user_id),
        "route-layer": route.get_name(),
        "areas": ",".join(str(int(a)) for a in areas["id"]) if len(areas) else "",
        "palette": json.dumps({"workers": WORKER_COLOURS, "vacant": VACANT_COLOUR,
                               "today": band_colour("today"), "route": ROUTE_COLOUR}),
        "flow": json.dumps({k: list(v) for k, v in flow.items()}),
    }  # fmt: skip
    root = m.get_root()
    root.html.add_child(Fragment(_panel(tx, stats, note, data) + _legend(tx, is_staff)))
    root.html.add_child(Fragment(f'<script src="{APP_PREFIX}/patrol.js" defer></script>'))
    root.title = tx["title"]  # type: ignore[attr-defined]
    return m


def route_sheet_html(tour: dict, sheet: dict, tx: dict[str, str]) -> str:
    """The printable tour: a numbered list of the area's buildings in walking order.

    ``tour`` is the API's tour (``gis.patrol.tour_store.area_tour``); ``sheet`` the area and
    its buildings by id (``gis.patrol.mapview.route_sheet``). Every value is escaped.
    """
    area, by_id = sheet["area"], sheet["buildings"]
    start = tour["start"]
    if start["kind"] == "facility":
        start_text = tx["start_office"].format(name=start.get("name") or "")
    else:
        b = by_id.get(start["id"], {})
        start_text = tx["start_building"].format(label=b.get("label") or b.get("code") or "")
    worker = area.get("worker_name")
    who = tx["area_worker"].format(name=worker) if worker else tx["area_vacant"]
    rows = [f'<tr class="pp-start"><td>0</td><td>{escape(start_text)}</td><td></td><td>0</td></tr>']
    for s in tour["stops"]:
        b = by_id.get(s["building_id"], {})
        label = b.get("label") or b.get("code") or str(s["building_id"])
        rows.append(
            f'<tr data-building-id="{int(s["building_id"])}"><td>{int(s["seq"])}</td>'
            f"<td>{escape(str(label))}</td><td>{s['leg_m']:.0f}</td><td>{s['cum_m']:.0f}</td></tr>"
        )
    missing = tx["route_unreachable"].format(n=len(tour["unreachable"]))
    unreachable = f'<p class="pp-muted">{escape(missing)}</p>' if tour["unreachable"] else ""
    summary = tx["route_summary"].format(
        length=f"{tour['length_m']:.0f}",
        minutes=f"{tour['walk_min']:.0f}",
        stops=len(tour["stops"]),
    )
    return (
        '<article class="pp-sheet" id="pp-sheet">'
        f"<h1>{escape(tx['print_title'].format(code=area['code']))}</h1>"
        f'<p class="pp-sheet-meta">{escape(who)} · {escape(summary)}</p>'
        f'<p class="pp-sheet-meta">{escape(tx["print_start"].format(name=start_text))}</p>'
        '<p class="pp-noprint">'
        f'<button type="button" class="pp-btn" id="pp-print">{escape(tx["print_button"])}</button> '
        f'<a class="pp-btn pp-link" href="/app/patrol">{escape(tx["print_back"])}</a></p>'
        '<table class="pp-stops" id="pp-stops"><thead><tr>'
        f"<th>{escape(tx['col_seq'])}</th><th>{escape(tx['col_building'])}</th>"
        f"<th>{escape(tx['col_leg'])}</th><th>{escape(tx['col_cum'])}</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>{unreachable}</article>"
    )
