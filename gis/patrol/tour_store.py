"""A patrol area's walking tour from PostGIS: its buildings, the streets around, the start.

Only the network near the area is read (its bounding box and a margin): a tour never
needs the whole city's streets. The start is what the worker chose (a building), else the
committee office nearest the area (a facility of category ``committee_office`` within
``OFFICE_WITHIN_M``), else the area's first building.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis.crs import lonlat_to_metric, metric_epsg, metric_to_lonlat, to_metric
from gis.errors import InvalidInput, NotFound
from gis.patrol import tour as T
from gis.reach.graph import Network, attach_points

MARGIN_DEG = 0.004  # streets read around the area (~400 m)
OFFICE_WITHIN_M = 1_500.0
OFFICE_CATEGORY = "committee_office"

AREA_BUILDINGS = sa.text(
    """
    SELECT b.id, ST_X(p.p) AS lon, ST_Y(p.p) AS lat
      FROM patrol_area_building ab JOIN building b ON b.id = ab.building_id
      CROSS JOIN LATERAL (SELECT coalesce((SELECT e.geom FROM building_entrance e
                                            WHERE e.building_id = b.id
                                            ORDER BY e.rank, e.id LIMIT 1),
                                           ST_PointOnSurface(b.geom)) AS p) p
     WHERE ab.area_id = :a ORDER BY b.id
    """
)
NEAR_EDGES = sa.text(
    "SELECT e.source, e.target, ST_AsBinary(e.geom) AS wkb FROM walk_edge e, "
    "(SELECT ST_Expand(geom, :m) AS box FROM patrol_area WHERE id = :a) a "
    "WHERE e.geom && a.box ORDER BY e.id"
)
NODES = sa.text(
    "SELECT id, ST_X(geom) AS lon, ST_Y(geom) AS lat FROM walk_node WHERE id = ANY(:ids) "
    "ORDER BY id"
)
OFFICE = sa.text(
    "SELECT f.id, f.name, ST_X(p) AS lon, ST_Y(p) AS lat FROM (SELECT id, name, "
    "ST_PointOnSurface(geom) AS p FROM facility WHERE :cat = ANY(categories)) f, "
    "(SELECT ST_PointOnSurface(geom) AS c FROM patrol_area WHERE id = :a) a "
    "WHERE ST_DWithin(f.p::geography, a.c::geography, :within) "
    "ORDER BY f.p::geography <-> a.c::geography, f.id LIMIT 1"
)


def _network(conn: Connection, area_id: int, epsg: int) -> Network:
    edges = conn.execute(NEAR_EDGES, {"a": area_id, "m": MARGIN_DEG}).all()
    if not edges:
        raise InvalidInput("no walk network near this patrol area: import streets first",
                           key="patrol_refusal.no_network")  # fmt: skip
    ids = sorted({r.source for r in edges} | {r.target for r in edges})
    nodes = conn.execute(NODES, {"ids": ids}).all()
    node_ids = np.array([r.id for r in nodes], dtype=np.int64)
    pos = {int(i): k for k, i in enumerate(node_ids)}
    xy = np.column_stack(
        lonlat_to_metric(np.array([r.lon for r in nodes]), np.array([r.lat for r in nodes]), epsg)
    )
    return Network(
        node_ids=node_ids,
        xy=xy,
        edge_u=np.array([pos[r.source] for r in edges], dtype=np.int64),
        edge_v=np.array([pos[r.target] for r in edges], dtype=np.int64),
        edge_geoms=to_metric(shapely.from_wkb([bytes(r.wkb) for r in edges]), epsg),
    )


def _start(conn: Connection, area_id: int, buildings: list, start_building_id: int | None):
    """(kind, id, name, lon, lat) of the tour's start."""
    if start_building_id is not None:
        for b in buildings:
            if b.id == start_building_id:
                return "building", b.id, None, b.lon, b.lat
        raise InvalidInput("the start must be a building of this patrol area",
                           key="patrol_refusal.start_not_in_area")  # fmt: skip
    office = conn.execute(
        OFFICE, {"a": area_id, "cat": OFFICE_CATEGORY, "within": OFFICE_WITHIN_M}
    ).first()
    if office is not None:
        return "facility", office.id, office.name, office.lon, office.lat
    b = buildings[0]
    return "building", b.id, None, b.lon, b.lat


def area_tour(
    conn: Connection,
    area_id: int,
    start_building_id: int | None = None,
    seconds: float = T.DEFAULT_SECONDS,
) -> dict[str, Any]:
    """The tour of a patrol area: stops in walking order, legs, length, time, and its line."""
    buildings = conn.execute(AREA_BUILDINGS, {"a": area_id}).all()
    if not buildings:
        raise NotFound(f"no patrol area {area_id}, or it has no buildings")
    kind, sid, sname, slon, slat = _start(conn, area_id, buildings, start_building_id)
    start_is_building = kind == "building"
    stops = [b for b in buildings if not (start_is_building and b.id == sid)]
    lon = np.array([slon] + [b.lon for b in stops])
    lat = np.array([slat] + [b.lat for b in stops])
    epsg = metric_epsg(float(lon.mean()), float(lat.mean()))
    xy = np.column_stack(lonlat_to_metric(lon, lat, epsg))
    graph = attach_points(_network(conn, area_id, epsg), xy, leaf_mask=np.zeros(len(xy), bool))
    matrix, pred, row = T.stop_paths(graph, np.arange(len(xy)))
    ok = np.isfinite(matrix[0]) & np.isfinite(matrix[:, 0])
    if not ok[0]:
        raise InvalidInput("the start is not on the walk network; choose another start",
                           key="patrol_refusal.start_off_network")  # fmt: skip
    keep = np.flatnonzero(ok)
    tour = T.solve(matrix[np.ix_(keep, keep)], seconds)
    order = keep[tour.order]
    cum = np.cumsum(tour.leg_m)
    out_stops = [
        {
            "seq": k,
            "building_id": int(stops[i - 1].id),
            "leg_m": round(float(tour.leg_m[k - 1]), 1),
            "cum_m": round(float(cum[k - 1]), 1),
        }
        for k, i in enumerate(order[1:].tolist(), start=1)
    ]
    return {
        "area_id": area_id,
        "start": {"kind": kind, "id": int(sid), "name": sname, "lon": slon, "lat": slat},
        "stops": out_stops,
        "length_m": round(tour.length_m, 1),
        "walk_min": round(tour.walk_min(), 1),
        "unreachable": [int(stops[i - 1].id) for i in np.flatnonzero(~ok).tolist()],
        "solve_s": round(tour.solve_s, 3),
        "line": _line(graph, pred, row, order, epsg),
    }


def _line(graph, pred: np.ndarray, row: np.ndarray, order: np.ndarray, epsg: int) -> dict:
    """The tour as a GeoJSON LineString along the graph (street nodes and access points)."""
    coords: list[tuple[float, float]] = []
    closed = [*order.tolist(), int(order[0])]
    for a, b in zip(closed[:-1], closed[1:], strict=True):
        nodes = T.leg_nodes(graph, pred, int(row[a]), int(graph.point_node[b]))
        coords.extend(map(tuple, graph.node_xy[nodes].tolist()))
    if len(coords) < 2:
        coords = coords * 2
    x, y = metric_to_lonlat(*np.array(coords).T, epsg)
    return {"type": "LineString", "coordinates": np.round(np.column_stack([x, y]), 6).tolist()}
