"""Patrol areas: a grid split into contiguous parts of balanced workload, one per worker.

By default a worker's patrol area is their whole grid. When several workers share a grid it
is split with the delineation's partitioner (``gis.delineate.partition``) over the
buildings' cells: each building is one member, weighted by its share of the grid's
households, buildings and walking length (weights configurable), so a part with few big
towers and one with many walk-ups carry the same work. Everything here is in metres and in
memory; ``gis.patrol.area_store`` reads and writes PostGIS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import Delaunay, cKDTree

from gis.delineate.graph import components, shared_edges
from gis.delineate.partition import partition
from gis.errors import InvalidInput

DEFAULT_BAND = 0.05  # a part within ±5 % of the mean workload is in band
BRIDGE_M = 1.0  # shared "edge" given to a link that joins two separate pieces



@dataclass(frozen=True)
class Weights:
    """How much each measure of work counts in a part's workload (relative)."""

    households: float = 1.0
    buildings: float = 1.0
    walk: float = 1.0

    def check(self) -> None:
        values = (self.households, self.buildings, self.walk)
        if min(values) < 0 or sum(values) <= 0:
            raise InvalidInput("patrol weights must be ≥ 0 and not all zero")


@dataclass
class Split:
    """Per building its part (0..k-1); per part its households, buildings, walk and load."""

    labels: np.ndarray
    households: np.ndarray
    buildings: np.ndarray
    walk_m: np.ndarray
    load: np.ndarray  # combined workload per part, mean 1

    @property
    def spread(self) -> float:
        """(heaviest − lightest) / mean workload."""
        return workload_spread(self.load)


DEFAULT_WEIGHTS = Weights()


def workload_spread(load: np.ndarray) -> float:
    """Return (max − min) / mean of the parts' workloads (0 for one part)."""
    if len(load) <= 1 or float(np.mean(load)) <= 0:
        return 0.0
    return float((load.max() - load.min()) / load.mean())


def workload(households: np.ndarray, walk_m: np.ndarray, weights: Weights) -> np.ndarray:
    """Return each building's workload: its weighted share of the measures, mean 1."""
    weights.check()
    n = len(households)
    if n == 0:
        return np.zeros(0)
    parts, total_w = [], 0.0
    for value, w in (
        (np.asarray(households, float), weights.households),
        (np.ones(n), weights.buildings),
        (np.asarray(walk_m, float), weights.walk),
    ):
        total = float(value.sum())
        if w > 0 and total > 0:  # a measure that is zero everywhere cannot be balanced
            parts.append(w * value / total)
            total_w += w
    if not parts:
        return np.ones(n)
    return np.sum(parts, axis=0) / total_w * n


def adjacency_of_cells(cells: np.ndarray) -> list[dict[int, float]]:
    """Neighbours of metric cells that tile the land (the delineation's building cells)."""
    return shared_edges(np.asarray(cells, dtype=object))


def adjacency_of_points(xy: np.ndarray) -> list[dict[int, float]]:
    """Neighbours by Delaunay triangulation of points, for buildings without cells.

    An edge's "shared length" is the inverse of its length (in metres): near neighbours
    are joined more strongly, as cells with a long common edge are.
    """
    n = len(xy)
    adj: list[dict[int, float]] = [{} for _ in range(n)]
    if n < 2:
        return adj
    if n < 4:
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    else:
        tri = Delaunay(np.asarray(xy, float) + np.random.default_rng(0).normal(0, 1e-6, (n, 2)))
        s = tri.simplices
        e = np.vstack([s[:, [0, 1]], s[:, [1, 2]], s[:, [0, 2]]])
        pairs = np.unique(np.sort(e, axis=1), axis=0).tolist()
    for i, j in pairs:
        d = float(np.hypot(*(xy[i] - xy[j])))
        adj[i][j] = adj[j][i] = 1.0 / max(d, 1.0)
    return adj


def bridge(adj: list[dict[int, float]], xy: np.ndarray) -> list[dict[int, float]]:
    """Join separate pieces of ``adj`` at their nearest members, so the whole is one piece.

    A grid's cells are normally one piece; a building across a road or a river that the
    grid still holds is linked to the nearest building of the rest (a worker walks there).
    """
    pieces = components(range(len(adj)), adj)
    if len(pieces) <= 1:
        return adj
    out = [dict(a) for a in adj]
    pieces.sort(key=len, reverse=True)
    joined = list(pieces[0])
    for piece in pieces[1:]:
        tree = cKDTree(xy[joined])
        d, k = tree.query(xy[piece])
        m = int(np.argmin(d))
        u, v = piece[m], joined[int(k[m])]
        out[u][v] = out[v][u] = BRIDGE_M
        joined.extend(piece)
    return out


def split_area(
    xy: np.ndarray,
    adj: list[dict[int, float]],
    households: np.ndarray,
    walk_m: np.ndarray,
    k: int,
    weights: Weights = DEFAULT_WEIGHTS,
    band: float = DEFAULT_BAND,
) -> Split:
    """Split buildings into ``k`` contiguous parts of balanced workload.

    ``xy`` are building points (metres), ``adj`` their neighbours (cells or points); a
    graph in pieces is bridged first. Every building is in exactly one part.
    """
    n = len(xy)
    if k < 1:
        raise InvalidInput("a patrol split needs at least one worker",
                           key="patrol_refusal.no_worker")  # fmt: skip
    if n == 0:
        raise InvalidInput("the grid has no buildings to patrol",
                           key="patrol_refusal.no_buildings")  # fmt: skip
    k = min(k, n)
    w = workload(households, walk_m, weights)
    labels = (
        np.zeros(n, dtype=np.int64)
        if k == 1
        else partition(w, np.asarray(xy, float), bridge(adj, xy), k, band=band)
    )
    parts = int(labels.max()) + 1
    return Split(
        labels=labels,
        households=np.bincount(labels, weights=households, minlength=parts),
        buildings=np.bincount(labels, minlength=parts),
        walk_m=np.bincount(labels, weights=walk_m, minlength=parts),
        load=np.bincount(labels, weights=w, minlength=parts) / max(float(w.sum()) / parts, 1e-12),
    )
