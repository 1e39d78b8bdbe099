"""Patrol areas: a grid split among workers into contiguous parts of balanced workload."""

from __future__ import annotations

import numpy as np
import pytest

from gis.delineate.graph import is_connected
from gis.errors import InvalidInput
from gis.patrol.areas import (
    Weights,
    adjacency_of_points,
    bridge,
    split_area,
    workload,
    workload_spread,
)


def _city(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 1500, (n, 2))
    households = rng.choice([0, 6, 24, 45, 90], n, p=[0.1, 0.2, 0.3, 0.3, 0.1])
    walk = rng.uniform(5, 80, n)
    return xy, households.astype(float), walk


@pytest.mark.parametrize(("n", "k"), [(600, 4), (2000, 10), (57, 3)])
def test_split_is_contiguous_complete_and_balanced(n: int, k: int) -> None:
    xy, hh, walk = _city(n)
    adj = adjacency_of_points(xy)
    s = split_area(xy, adj, hh, walk, k)
    assert len(s.labels) == n and set(s.labels.tolist()) == set(range(k))  # each once
    for p in range(k):
        assert is_connected(set(np.flatnonzero(s.labels == p).tolist()), adj), p
    assert s.buildings.sum() == n and s.households.sum() == hh.sum()
    assert s.spread <= (0.10 if n >= 600 else 0.35), s.load
    # the loads are what the weights say: the mean share of the three measures
    w = workload(hh, walk, Weights())
    assert np.allclose(np.bincount(s.labels, weights=w) / (n / k), s.load)


def test_weights_change_what_is_balanced() -> None:
    xy, hh, walk = _city(800, seed=5)
    adj = adjacency_of_points(xy)
    only_households = split_area(xy, adj, hh, walk, 4, Weights(1, 0, 0))
    only_buildings = split_area(xy, adj, hh, walk, 4, Weights(0, 1, 0))
    assert workload_spread(only_households.households) <= 0.10
    assert workload_spread(only_buildings.buildings.astype(float)) <= 0.10
    with pytest.raises(InvalidInput):
        split_area(xy, adj, hh, walk, 4, Weights(0, 0, 0))


def test_pieces_are_bridged_so_parts_stay_contiguous() -> None:
    xy, hh, walk = _city(200)
    xy[100:] += 5_000  # two estates far apart, no adjacency between them
    adj = [{j: v for j, v in nb.items() if (i < 100) == (j < 100)} for i, nb in
           enumerate(adjacency_of_points(xy))]
    joined = bridge(adj, xy)
    assert is_connected(set(range(200)), joined) and not is_connected(set(range(200)), adj)
    s = split_area(xy, adj, hh, walk, 2)
    for p in range(2):
        assert is_connected(set(np.flatnonzero(s.labels == p).tolist()), joined)


def test_one_worker_walks_the_whole_grid() -> None:
    xy, hh, walk = _city(30)
    s = split_area(xy, adjacency_of_points(xy), hh, walk, 1)
    assert (s.labels == 0).all() and s.spread == 0.0
