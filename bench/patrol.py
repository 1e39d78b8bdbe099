"""Benchmark: patrol tours (PyVRP vs OR-Tools on the same matrix) and the balanced split.

    .venv/bin/python bench/patrol.py [--tour-buildings 200] [--ortools-s 30]

A synthetic city (``gis/synth.py``, seed 1) is written to a temporary GeoPackage and read
back; its streets are noded by identical coordinates, as the importer does.

* Tour: the ``--tour-buildings`` buildings nearest the city centre are attached to the walk
  graph (``gis.reach.graph.attach_points``); the distance matrix between their access
  points comes from scipy's csgraph. Ours: ``gis.patrol.tour.solve`` (PyVRP, ≤ 2 s budget).
  Peer: OR-Tools' routing solver (PATH_CHEAPEST_ARC then GUIDED_LOCAL_SEARCH) given
  ``--ortools-s`` seconds on the same integer matrix (decimetres). Both lengths are
  re-measured on the float matrix.
* Split: ``--split-buildings`` buildings (one grid) among ``--workers`` workers with
  ``gis.patrol.areas.split_area`` (Delaunay neighbours, households + buildings + walking
  length as equal weights); goal ≤ 1 s and a workload spread ≤ 10 %.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyogrio
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gis.crs import to_metric  # noqa: E402
from gis.delineate.graph import is_connected  # noqa: E402
from gis.patrol import tour as T  # noqa: E402
from gis.patrol.areas import adjacency_of_points, split_area  # noqa: E402
from gis.reach.graph import Network, attach_points  # noqa: E402
from gis.synth import METRIC_EPSG, write_city  # noqa: E402


def read_city(n: int) -> tuple[np.ndarray, np.ndarray, Network, np.ndarray]:
    """Building points and households, the street network, street lines (metres)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "city.gpkg"
        write_city(path, buildings=n, seed=1)
        b = pyogrio.read_dataframe(path, layer="buildings")
        s = pyogrio.read_dataframe(path, layer="streets")
    footprints = to_metric(np.asarray(b.geometry.values), METRIC_EPSG)
    xy = shapely.get_coordinates(shapely.point_on_surface(footprints))
    lines = to_metric(np.asarray(s.geometry.values), METRIC_EPSG)
    coords, which = shapely.get_coordinates(lines, return_index=True)
    same = which[1:] == which[:-1]
    a, c = coords[:-1][same], coords[1:][same]
    keys, inv = np.unique(np.round(np.vstack([a, c]), 2), axis=0, return_inverse=True)
    inv = inv.ravel()
    u, v = inv[: len(a)], inv[len(a) :]
    seg = shapely.linestrings(np.stack([a, c], axis=1))
    net = Network(np.arange(len(keys)), keys, u, v, seg)
    return xy, np.asarray(b["households"], float), net, lines


def ortools_tour(matrix: np.ndarray, seconds: int) -> tuple[np.ndarray, float]:
    from ortools.constraint_solver import pywrapcp, routing_enums_pb2

    dist = np.rint(matrix * T.SCALE).astype(np.int64).tolist()
    n = len(dist)
    manager = pywrapcp.RoutingIndexManager(n, 1, 0)
    routing = pywrapcp.RoutingModel(manager)
    cb = routing.RegisterTransitCallback(
        lambda i, j: dist[manager.IndexToNode(i)][manager.IndexToNode(j)]
    )
    routing.SetArcCostEvaluatorOfAllVehicles(cb)
    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.PATH_CHEAPEST_ARC
    params.local_search_metaheuristic = (
        routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    )
    params.time_limit.seconds = seconds
    t0 = time.perf_counter()
    sol = routing.SolveWithParameters(params)
    elapsed = time.perf_counter() - t0
    order, i = [], routing.Start(0)
    while not routing.IsEnd(i):
        order.append(manager.IndexToNode(i))
        i = sol.Value(routing.NextVar(i))
    return np.array(order), elapsed


def bench_tour(xy: np.ndarray, net: Network, n: int, ortools_s: int) -> None:
    centre = xy.mean(axis=0)
    pick = np.argsort(np.hypot(*(xy - centre).T))[:n]
    graph = attach_points(net, xy[pick], leaf_mask=np.zeros(n, bool))
    t0 = time.perf_counter()
    matrix = T.stop_matrix(graph, np.arange(n))
    t_matrix = time.perf_counter() - t0
    finite = np.isfinite(matrix).all(axis=1) & np.isfinite(matrix).all(axis=0)
    matrix = matrix[np.ix_(finite, finite)]
    t0 = time.perf_counter()
    ours = T.solve(matrix, seconds=T.DEFAULT_SECONDS)
    t_ours = time.perf_counter() - t0
    peer, t_peer = ortools_tour(matrix, ortools_s)
    assert sorted(peer.tolist()) == list(range(len(matrix)))
    peer_m = float(matrix[peer, np.roll(peer, -1)].sum())
    print(f"tour: {len(matrix)} buildings (matrix {t_matrix:.2f} s)")
    print(f"  ours (PyVRP)      {ours.length_m:10.1f} m  {t_ours:6.2f} s")
    print(f"  OR-Tools routing  {peer_m:10.1f} m  {t_peer:6.2f} s")
    print(f"  ratio ours/peer   {ours.length_m / peer_m:.4f} length, "
          f"{t_ours / t_peer:.3f} time")  # fmt: skip


def walk_per_building(xy: np.ndarray, lines: np.ndarray) -> np.ndarray:
    """Street length inside each building's Voronoi cell (the walk it asks for)."""
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(xy)))
    tree = shapely.STRtree(shapely.points(xy))
    owner = tree.query(cells, predicate="contains")
    cell_of = np.empty(len(xy), dtype=np.int64)
    cell_of[owner[1]] = owner[0]
    ci, li = shapely.STRtree(lines).query(cells, predicate="intersects")
    length = shapely.length(shapely.intersection(cells[ci], lines[li]))
    per_cell = np.bincount(ci, weights=length, minlength=len(cells))
    return per_cell[cell_of]


def bench_split(xy: np.ndarray, hh: np.ndarray, lines: np.ndarray, workers: int) -> None:
    walk = walk_per_building(xy, lines)
    adj = adjacency_of_points(xy)
    t0 = time.perf_counter()
    s = split_area(xy, adj, hh, walk, workers)
    elapsed = time.perf_counter() - t0
    ok = all(is_connected(set(np.flatnonzero(s.labels == p).tolist()), adj)
             for p in range(workers))  # fmt: skip
    print(f"split: {len(xy)} buildings, {int(hh.sum()):,} households, {workers} workers")
    print(f"  {elapsed:.2f} s, workload spread {s.spread:.2%}, contiguous: {ok}")
    print(f"  households per area {s.households.min():.0f}–{s.households.max():.0f}, "
          f"buildings {s.buildings.min()}–{s.buildings.max()}, "
          f"walk {s.walk_m.min():.0f}–{s.walk_m.max():.0f} m")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tour-buildings", type=int, default=200)
    p.add_argument("--ortools-s", type=int, default=30)
    p.add_argument("--split-buildings", type=int, default=5000)
    p.add_argument("--workers", type=int, default=10)
    a = p.parse_args()
    xy, hh, net, lines = read_city(a.split_buildings)
    bench_tour(xy, net, a.tour_buildings, a.ortools_s)
    bench_split(xy, hh, lines, a.workers)


if __name__ == "__main__":
    main()
