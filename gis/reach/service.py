"""Reach as a service over PostGIS: load the network, compute, store with COPY, summarise."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from numpy.typing import ArrayLike
from psycopg.types.json import Jsonb
from sqlalchemy.engine import Connection

from gis.categories import category_codes, category_labels, load_categories
from gis.crs import lonlat_to_metric, metric_epsg_for, to_metric
from gis.errors import InvalidInput, NotFound
from gis.reach.compute import DEFAULT_MAX_WALK_M, ReachResult, nearest_facilities
from gis.reach.graph import Network, WalkGraph, attach_points


@dataclass
class Inputs:
    """What a reach computation reads from the database."""

    network: Network
    building_ids: np.ndarray
    building_xy: np.ndarray
    households: np.ndarray
    facility_ids: np.ndarray
    facility_xy: np.ndarray
    facility_categories: list[list[str]]
    facility_building: np.ndarray  # position of the building holding the facility, or -1
    epsg: int


@dataclass
class ReachRun:
    """A stored computation and what it took."""

    run_id: int
    result: ReachResult
    households: np.ndarray
    seconds: dict[str, float] = field(default_factory=dict)
    islands: int = 0
    unattached_buildings: int = 0


def load_inputs(conn: Connection, metric_epsg: int | None = None) -> Inputs:
    """Read nodes, edges, building points and facility points, projected to metres."""
    nodes = conn.execute(
        sa.text("SELECT id, ST_X(geom), ST_Y(geom) FROM walk_node ORDER BY id")
    ).all()
    edges = conn.execute(
        sa.text("SELECT source, target, ST_AsBinary(geom) FROM walk_edge ORDER BY id")
    ).all()
    buildings = conn.execute(
        sa.text(
            # walking starts at the building's main mapped entrance, else inside it
            "SELECT id, households, ST_X(p), ST_Y(p) FROM (SELECT b.id, b.households, "
            "coalesce((SELECT e.geom FROM building_entrance e WHERE e.building_id = b.id "
            "ORDER BY e.rank, e.id LIMIT 1), ST_PointOnSurface(b.geom)) AS p "
            "FROM building b) b ORDER BY id"
        )
    ).all()
    facilities = conn.execute(
        sa.text(
            "SELECT f.id, f.categories, ST_X(f.p), ST_Y(f.p), b.id FROM (SELECT id, "
            "categories, ST_PointOnSurface(geom) AS p FROM facility) f "
            "LEFT JOIN LATERAL (SELECT id FROM building WHERE ST_Contains(geom, f.p) "
            "ORDER BY id LIMIT 1) b ON true ORDER BY f.id"
        )
    ).all()
    if not buildings:
        raise InvalidInput("no buildings: import a map first (gridatlas import FILE)")
    if not edges:
        raise InvalidInput("no walk network: import streets first (an OSM file or a streets layer)")
    b = np.array([(r[2], r[3]) for r in buildings])
    b_pos = {r[0]: k for k, r in enumerate(buildings)}
    epsg = metric_epsg or metric_epsg_for(shapely.points(b))
    node_ids = np.array([r[0] for r in nodes], dtype=np.int64)
    position = {int(i): k for k, i in enumerate(node_ids)}
    lines = shapely.from_wkb([r[2] for r in edges])
    metric_lines = to_metric(lines, epsg)
    net = Network(
        node_ids=node_ids,
        xy=_project([r[1] for r in nodes], [r[2] for r in nodes], epsg),
        edge_u=np.array([position[r[0]] for r in edges], dtype=np.int64),
        edge_v=np.array([position[r[1]] for r in edges], dtype=np.int64),
        edge_geoms=metric_lines,
    )
    f = np.array([(r[2], r[3]) for r in facilities]).reshape(-1, 2)
    return Inputs(
        network=net,
        building_ids=np.array([r[0] for r in buildings], dtype=np.int64),
        building_xy=_project(b[:, 0], b[:, 1], epsg),
        households=np.array([r[1] for r in buildings], dtype=np.int64),
        facility_ids=np.array([r[0] for r in facilities], dtype=np.int64),
        facility_xy=_project(f[:, 0], f[:, 1], epsg) if len(f) else f,
        facility_categories=[list(r[1]) for r in facilities],
        facility_building=np.array(
            [-1 if r[4] is None else b_pos[r[4]] for r in facilities], dtype=np.int64
        ),
        epsg=epsg,
    )


def _project(lon: ArrayLike, lat: ArrayLike, epsg: int) -> np.ndarray:
    """Return (n, 2) metric coordinates of lon/lat sequences."""
    return np.column_stack(lonlat_to_metric(np.asarray(lon, float), np.asarray(lat, float), epsg))


def build_graph(inputs: Inputs) -> WalkGraph:
    """Attach buildings then facilities to the street graph."""
    n_b, n_f = len(inputs.building_xy), len(inputs.facility_xy)
    return attach_points(
        inputs.network,
        np.vstack([inputs.building_xy, inputs.facility_xy]),
        leaf_mask=np.concatenate([np.zeros(n_b, bool), np.ones(n_f, bool)]),
    )


def reach_all(
    inputs: Inputs, graph: WalkGraph, categories: list[str], max_walk_m: float = DEFAULT_MAX_WALK_M
) -> ReachResult:
    """Nearest facility of each category for every building of ``inputs``."""
    n_b = len(inputs.building_ids)
    return nearest_facilities(
        graph,
        np.arange(n_b),
        n_b + np.arange(len(inputs.facility_ids)),
        inputs.facility_ids,
        inputs.facility_categories,
        categories,
        max_walk_m,
        facility_building=inputs.facility_building,
    )


def resolve_categories(requested: list[str] | None) -> list[str]:
    """Return the categories to compute, refusing unknown codes."""
    known = [c.code for c in load_categories()]
    if not requested:
        return known
    unknown = [c for c in requested if c not in category_codes()]
    if unknown:
        raise InvalidInput(f"unknown category {unknown[0]!r}; choose from {', '.join(known)}")
    return list(dict.fromkeys(requested))


def compute_and_store(
    conn: Connection,
    *,
    categories: list[str] | None = None,
    speed_m_per_min: float = 80.0,
    max_walk_m: float = DEFAULT_MAX_WALK_M,
    metric_epsg: int | None = None,
) -> ReachRun:
    """Compute reach for every building and store it as the latest run (one transaction)."""
    if not 10 <= speed_m_per_min <= 200:
        raise InvalidInput(
            "speed must be between 10 and 200 m/min (80 is an adult, 60 an elderly walker)"
        )
    if not 100 <= max_walk_m <= 20_000:
        raise InvalidInput("max walk must be between 100 and 20,000 m")
    cats = resolve_categories(categories)
    t0 = time.perf_counter()
    inputs = load_inputs(conn, metric_epsg)
    t1 = time.perf_counter()
    graph = build_graph(inputs)
    n_b = len(inputs.building_ids)
    result = reach_all(inputs, graph, cats, max_walk_m)
    t2 = time.perf_counter()
    run_id = store_reach(conn, inputs, result, speed_m_per_min)
    t3 = time.perf_counter()
    street_components = np.unique(graph.component[: graph.n_street])
    run = ReachRun(
        run_id=run_id,
        result=result,
        households=inputs.households,
        seconds={"read": t1 - t0, "compute": t2 - t1, "write": t3 - t2},
        islands=len(street_components) - 1,
        unattached_buildings=int((graph.point_edge[:n_b] < 0).sum()),
    )
    conn.execute(
        sa.text("UPDATE reach_run SET report = :r WHERE id = :id"),
        {
            "id": run_id,
            "r": Jsonb(
                {
                    "seconds": {k: round(v, 3) for k, v in run.seconds.items()},
                    "islands": run.islands,
                    "unattached_buildings": run.unattached_buildings,
                    "metric_epsg": inputs.epsg,
                }
            ),
        },
    )
    return run


FLOAT4_OID, INT8_OID = 700, 20


def pgcopy_reach_rows(
    run_id: int, building_ids: np.ndarray, walk_m: np.ndarray, facility: np.ndarray
) -> memoryview:
    """Encode building_reach rows in PostgreSQL's binary COPY format, all at once.

    Every row has the same shape (two int8, a float4[] and an int8[] of one length each),
    so the whole stream is one numpy structured array: no Python work per row. NaN in
    walk_m (no path) and -1 in facility (none) are stored as such; the view turns them
    into NULL.
    """
    n_cat, n = walk_m.shape

    def array_header(prefix: str) -> list[tuple[str, str]]:
        return [
            (f"{prefix}_len", ">i4"),
            (f"{prefix}_ndim", ">i4"),
            (f"{prefix}_flags", ">i4"),
            (f"{prefix}_oid", ">i4"),
            (f"{prefix}_dim", ">i4"),
            (f"{prefix}_lbound", ">i4"),
        ]

    dtype = np.dtype(
        [
            ("nfields", ">i2"),
            ("run_len", ">i4"),
            ("run", ">i8"),
            ("bid_len", ">i4"),
            ("bid", ">i8"),
            *array_header("w"),
            ("w", [("len", ">i4"), ("v", ">f4")], (n_cat,)),
            *array_header("f"),
            ("f", [("len", ">i4"), ("v", ">i8")], (n_cat,)),
        ]
    )
    rows = np.zeros(n, dtype=dtype)
    rows["nfields"] = 4
    rows["run_len"] = rows["bid_len"] = 8
    rows["run"] = run_id
    rows["bid"] = building_ids
    for prefix, oid, size in (("w", FLOAT4_OID, 4), ("f", INT8_OID, 8)):
        rows[f"{prefix}_len"] = 20 + n_cat * (4 + size)
        rows[f"{prefix}_ndim"] = 1
        rows[f"{prefix}_oid"] = oid
        rows[f"{prefix}_dim"] = n_cat
        rows[f"{prefix}_lbound"] = 1
    rows["w"]["len"] = 4
    rows["w"]["v"] = walk_m.T
    rows["f"]["len"] = 8
    rows["f"]["v"] = facility.T
    header = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
    return memoryview(header + rows.tobytes() + (-1).to_bytes(2, "big", signed=True))


def store_reach(
    conn: Connection, inputs: Inputs, result: ReachResult, speed_m_per_min: float
) -> int:
    run_id = conn.scalar(
        sa.text(
            "INSERT INTO reach_run (speed_m_per_min, max_walk_m, categories) "
            "VALUES (:s, :m, :c) RETURNING id"
        ),
        {"s": speed_m_per_min, "m": result.max_walk_m, "c": result.categories},
    )
    stream = pgcopy_reach_rows(run_id, inputs.building_ids, result.walk_m, result.facility)
    raw = conn.connection.driver_connection
    with (
        raw.cursor() as cur,
        cur.copy(
            "COPY building_reach (run_id, building_id, walk_m, facility_id) "
            "FROM STDIN (FORMAT BINARY)"
        ) as copy,
    ):
        for start in range(0, len(stream), 1 << 24):
            copy.write(stream[start : start + (1 << 24)])
    # the newest run replaces older ones: reach describes the map as it is now
    conn.execute(sa.text("DELETE FROM reach_run WHERE id <> :id"), {"id": run_id})
    return int(run_id)


def building_reach(conn: Connection, building_id: int) -> dict[str, Any]:
    """Return the latest reach of one building, per category."""
    rows = conn.execute(
        sa.text(
            "SELECT r.category, r.walk_m, r.walk_s, r.facility_id, f.name, r.speed_m_per_min "
            "FROM building_reach_latest r LEFT JOIN facility f ON f.id = r.facility_id "
            "WHERE r.building_id = :b"
        ),
        {"b": building_id},
    ).all()
    if not rows:
        exists = conn.scalar(
            sa.text("SELECT EXISTS (SELECT 1 FROM building WHERE id = :b)"), {"b": building_id}
        )
        if not exists:
            raise NotFound(f"no building {building_id}")
        raise NotFound("no reach computed yet: run `gridatlas reach`", key="reach_refusal.no_run")
    zh, en = category_labels("zh"), category_labels("en")
    return {
        "building_id": building_id,
        "speed_m_per_min": rows[0].speed_m_per_min,
        "categories": [
            {
                "category": r.category,
                "label_zh": zh.get(r.category, r.category),
                "label_en": en.get(r.category, r.category),
                "status": (
                    "unreachable"
                    if r.walk_m is None
                    else "beyond"
                    if r.walk_m == float("inf")
                    else "reached"
                ),
                "walk_m": None
                if r.walk_m is None or r.walk_m == float("inf")
                else round(r.walk_m, 2),
                "walk_s": None if r.walk_s is None else round(r.walk_s, 1),
                "facility_id": r.facility_id,
                "facility_name": r.name,
            }
            for r in rows
        ],
    }
