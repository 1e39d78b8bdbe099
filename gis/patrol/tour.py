"""Walking tours: every building of a patrol area once, back to the start, on the walk graph.

The tour is a travelling-salesman problem on the shortest-path distances between the
buildings' access points on the walk network (``gis.reach.graph``: each building is
attached to its nearest street edge by a stub), solved by PyVRP as a single-vehicle VRP
whose depot is the start. The matrix comes from scipy's csgraph (Dijkstra from each stop's
access node), so a leg's length is a path on the graph, stub out and stub in included.
Pure core, in metres; ``gis.patrol.tour_store`` reads the area and its network from PostGIS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from pyvrp import Client, Depot, Location, ProblemData, VehicleType
from pyvrp import solve as pyvrp_solve
from pyvrp.stop import MaxRuntime, MultipleCriteria, NoImprovement
from scipy.sparse import csgraph

from gis.errors import InvalidInput
from gis.reach.graph import WalkGraph

WALK_M_PER_MIN = 70.0  # a worker on a round, stairwells not counted
SCALE = 10  # PyVRP takes integers: decimetres
DEFAULT_SECONDS = 1.5  # the solver's time budget (it stops earlier once it stops improving)
NO_IMPROVEMENT = 4_000  # iterations without a better tour after which it stops


@dataclass
class Tour:
    """A closed walk: ``order`` are stop indices starting with the start (index 0)."""

    order: np.ndarray
    leg_m: np.ndarray  # leg k goes from order[k] to order[k + 1] (the last one back to 0)
    solve_s: float

    @property
    def length_m(self) -> float:
        return float(self.leg_m.sum())

    def walk_min(self, speed_m_per_min: float = WALK_M_PER_MIN) -> float:
        return self.length_m / speed_m_per_min


def stop_matrix(graph: WalkGraph, points: np.ndarray) -> np.ndarray:
    """Shortest walking distances (m) between attached points (stubs included).

    ``points`` index the points attached in ``graph``; a pair with no path is ``inf``.
    """
    return stop_paths(graph, points)[0]


def stop_paths(graph: WalkGraph, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distances between ``points``, and the shortest-path trees that give them.

    Returns (matrix, predecessors, row): ``predecessors[row[i]]`` is the tree from point
    i's graph node (scipy's convention: -9999 where there is none).
    """
    points = np.asarray(points, dtype=np.int64)
    nodes = graph.point_node[points]
    extra = graph.point_extra_m[points]
    uniq, inv = np.unique(nodes, return_inverse=True)
    d, pred = csgraph.dijkstra(
        graph.matrix, directed=False, indices=uniq, return_predecessors=True
    )
    m = d[:, uniq][inv][:, inv] + extra[:, None] + extra[None, :]
    np.fill_diagonal(m, 0.0)
    return m, pred, inv


def leg_nodes(graph: WalkGraph, pred: np.ndarray, row: int, target_node: int) -> list[int]:
    """Graph nodes of the shortest path from the tree ``pred[row]``'s root to a node."""
    out = [int(target_node)]
    while pred[row, out[-1]] >= 0:
        out.append(int(pred[row, out[-1]]))
    return out[::-1]


def solve(matrix: np.ndarray, seconds: float = DEFAULT_SECONDS, seed: int = 1) -> Tour:
    """The shortest closed tour from stop 0 through every stop found within ``seconds``.

    ``matrix`` must be finite (drop unreachable stops first); it may be asymmetric.
    """
    matrix = np.asarray(matrix, dtype=float)
    n = len(matrix)
    if n == 0 or matrix.shape != (n, n):
        raise InvalidInput("a tour needs a square distance matrix with the start in row 0")
    if not np.isfinite(matrix).all():
        raise InvalidInput("some stops cannot be reached on the walk network",
                           key="patrol_refusal.unreachable")  # fmt: skip
    t0 = time.perf_counter()
    # up to 3 stops every order is the same tour (or its reverse)
    order = np.arange(n) if n <= 3 else _solve_vrp(matrix, seconds, seed)
    legs = matrix[order, np.roll(order, -1)]
    return Tour(order=order, leg_m=legs, solve_s=time.perf_counter() - t0)


def _solve_vrp(matrix: np.ndarray, seconds: float, seed: int) -> np.ndarray:
    """One vehicle from depot 0 through every client: PyVRP's iterated local search."""
    n = len(matrix)
    dist = np.rint(matrix * SCALE).astype(np.int64)
    data = ProblemData(
        locations=[Location(0, 0) for _ in range(n)],  # the matrix says all there is
        clients=[Client(location=i) for i in range(1, n)],
        depots=[Depot(location=0)],
        vehicle_types=[VehicleType(num_available=1, start_depot=0, end_depot=0)],
        distance_matrices=[dist],
        duration_matrices=[np.zeros_like(dist)],
    )
    stop = MultipleCriteria([MaxRuntime(seconds), NoImprovement(NO_IMPROVEMENT)])
    result = pyvrp_solve(data, stop, seed=seed, display=False, collect_stats=False)
    routes = result.best.routes()
    # a client's idx is its index among the clients: location idx + 1 here (depot first)
    visits = [a.idx + 1 for a in routes[0].schedule() if a.is_client()] if routes else []
    if not result.is_feasible() or sorted(visits) != list(range(1, n)):
        raise InvalidInput("the tour solver found no tour through every building",
                           key="patrol_refusal.no_tour")  # fmt: skip
    return np.array([0, *visits], dtype=np.int64)


def path_length(graph: WalkGraph, a: int, b: int) -> float:
    """Walking distance between two attached points (a check on a single leg)."""
    return float(stop_matrix(graph, np.array([a, b]))[0, 1])
