"""Tours: every building once, back to the start, and the length is the sum of graph paths."""

from __future__ import annotations

import numpy as np
import shapely
from scipy.sparse import csgraph

from gis.patrol import tour as T
from gis.reach.graph import Network, attach_points


def _street_grid(side: int = 8, step: float = 80.0) -> Network:
    """A square street grid of ``side`` × ``side`` crossings ``step`` m apart."""
    xy = np.array([(i * step, j * step) for j in range(side) for i in range(side)], float)
    u, v = [], []
    for j in range(side):
        for i in range(side):
            k = j * side + i
            if i + 1 < side:
                u.append(k), v.append(k + 1)
            if j + 1 < side:
                u.append(k), v.append(k + side)
    u, v = np.array(u), np.array(v)
    return Network(np.arange(len(xy)), xy, u, v, shapely.linestrings(np.stack([xy[u], xy[v]], 1)))


def test_tour_visits_every_building_once_and_its_length_is_the_sum_of_graph_legs() -> None:
    rng = np.random.default_rng(4)
    buildings = rng.uniform(5, 555, (60, 2))
    graph = attach_points(_street_grid(), buildings, leaf_mask=np.zeros(60, bool))
    matrix = T.stop_matrix(graph, np.arange(60))
    tour = T.solve(matrix, seconds=1.0)
    assert sorted(tour.order.tolist()) == list(range(60)) and tour.order[0] == 0
    # each leg, measured again on the graph alone: node to node plus both stubs
    closed = [*tour.order.tolist(), 0]
    legs = []
    for a, b in zip(closed[:-1], closed[1:], strict=True):
        d = csgraph.dijkstra(graph.matrix, directed=False, indices=graph.point_node[a])
        legs.append(d[graph.point_node[b]] + graph.point_extra_m[a] + graph.point_extra_m[b])
    assert np.allclose(tour.leg_m, legs)
    assert abs(tour.length_m - sum(legs)) < 1e-6
    # no walk is shorter than the straight lines between its stops
    straight = np.hypot(*(buildings[closed[1:]] - buildings[closed[:-1]]).T).sum()
    assert tour.length_m >= straight - 1e-6


def test_tour_is_no_worse_than_visiting_in_id_order_and_the_line_follows_the_legs() -> None:
    rng = np.random.default_rng(9)
    buildings = rng.uniform(5, 555, (40, 2))
    graph = attach_points(_street_grid(), buildings, leaf_mask=np.zeros(40, bool))
    matrix, pred, row = T.stop_paths(graph, np.arange(40))
    tour = T.solve(matrix, seconds=0.5)
    naive = matrix[np.arange(40), np.roll(np.arange(40), -1)].sum()
    assert tour.length_m < 0.6 * naive
    a, b = int(tour.order[0]), int(tour.order[1])
    nodes = T.leg_nodes(graph, pred, int(row[a]), int(graph.point_node[b]))
    hop = graph.node_xy[nodes]
    path = np.hypot(*np.diff(hop, axis=0).T).sum()
    assert abs(path + graph.point_extra_m[a] + graph.point_extra_m[b] - tour.leg_m[0]) < 1e-6


def test_tiny_tours_and_refusals() -> None:
    m = np.array([[0, 3.0], [3.0, 0]])
    assert T.solve(m).length_m == 6.0
    inf = np.array([[0, np.inf, 1], [np.inf, 0, 1], [1, 1, 0]])
    try:
        T.solve(inf)
    except Exception as err:  # noqa: BLE001
        assert "reached" in str(err)
    else:
        raise AssertionError("an unreachable stop must be refused")
