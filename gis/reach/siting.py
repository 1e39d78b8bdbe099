"""Where would new facilities close the most gaps? Greedy maximal coverage on the network.

Candidates are street nodes (a facility opens onto a street) or building points. Each
candidate covers the uncovered households within the walking limit of it, by network
distance; the greedy choice takes, k times, the candidate adding the most households. For
maximal coverage this is within (1 − 1/e) of the optimum by construction, and in practice
much closer: bench/siting.py and the tests compare it with spopt's exact MCLP.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from gis.crs import metric_to_lonlat
from gis.errors import InvalidInput
from gis.reach.model import ReachModel
from gis.reach.scope import WHOLE_CITY, ReachScope, nodes_in_area
from gis.reach.service import resolve_categories

BATCH = 256  # candidates per Dijkstra call: (BATCH × nodes) floats in memory at once


@dataclass
class CoverageProblem:
    """Which candidate covers which demand point, with the demand's weight."""

    candidate_nodes: np.ndarray  # graph nodes
    demand: np.ndarray  # positions of uncovered buildings
    weights: np.ndarray  # their households
    covers: sparse.csr_matrix  # candidates × demand, 1 where within the limit
    distances: sparse.csr_matrix  # same pattern: the distances themselves


def candidate_nodes(model: ReachModel, kind: str, scope: ReachScope = WHOLE_CITY) -> np.ndarray:
    """Return graph nodes to consider: 'nodes' (street nodes in the main pieces, inside the
    scope's areas), 'buildings' (where the scope's buildings meet their street)."""
    g = model.graph
    if kind == "nodes":
        e = g.usable_edges
        ends = np.concatenate(
            [g.chain_nodes[g.chain_start[e]], g.chain_nodes[g.chain_start[e + 1] - 1]]
        )
        return nodes_in_area(model, scope, np.unique(ends))
    if kind == "buildings":  # the point where each building meets its street
        n_b = len(model.inputs.building_ids)
        usable = g.point_edge[:n_b] >= 0
        if scope.buildings is not None:
            usable &= scope.buildings
        return np.unique(g.point_node[:n_b][usable])
    raise InvalidInput("candidates must be 'nodes' (street intersections) or 'buildings'")


def coverage_problem(
    model: ReachModel,
    category: str,
    limit_m: float,
    candidates: np.ndarray,
    scope: ReachScope = WHOLE_CITY,
) -> CoverageProblem:
    """Build the candidates × uncovered-buildings coverage matrix by capped Dijkstra; the
    demand is the uncovered buildings with households that ``scope`` counts."""
    before = model.baseline_m(category)
    hh = model.inputs.households
    wanted = ~(before <= limit_m) & (hh > 0)
    if scope.buildings is not None:
        wanted &= scope.buildings
    demand = np.flatnonzero(wanted)
    rows, cols, vals = [], [], []
    for start in range(0, len(candidates), BATCH):
        batch = candidates[start : start + BATCH]
        d = csgraph.dijkstra(model.graph.matrix, directed=True, indices=batch, limit=limit_m)
        sub = model.graph.point_distance(d, demand)
        r, c = np.nonzero(sub <= limit_m)
        rows.append(r + start)
        cols.append(c)
        vals.append(sub[r, c])
    shape = (len(candidates), len(demand))
    r = np.concatenate(rows) if rows else np.array([], dtype=np.int64)
    c = np.concatenate(cols) if cols else np.array([], dtype=np.int64)
    v = np.concatenate(vals) if vals else np.array([])
    covers = sparse.csr_matrix((np.ones(len(r)), (r, c)), shape=shape)
    distances = sparse.csr_matrix((np.maximum(v, 1e-9), (r, c)), shape=shape)
    return CoverageProblem(candidates, demand, hh[demand].astype(float), covers, distances)


def greedy_cover(problem: CoverageProblem, k: int) -> tuple[list[int], list[float]]:
    """Pick ``k`` candidates (row numbers) greedily; return them and each one's gain."""
    remaining = problem.weights.copy()
    chosen: list[int] = []
    gains: list[float] = []
    for _ in range(k):
        scores = problem.covers @ remaining
        if chosen:
            scores[chosen] = -1
        best = int(np.argmax(scores)) if len(scores) else -1
        if best < 0 or scores[best] <= 0:
            break
        chosen.append(best)
        gains.append(float(scores[best]))
        remaining[problem.covers[best].indices] = 0.0
    return chosen, gains


def suggest_sites(
    model: ReachModel,
    category: str,
    k: int,
    limit_m: float,
    candidates: str = "nodes",
    scope: ReachScope = WHOLE_CITY,
) -> dict:
    """Suggest up to ``k`` new sites for ``category`` covering the most uncovered households
    (of ``scope``'s buildings, at sites in its areas; the whole city by default)."""
    if not 1 <= k <= 50:
        raise InvalidInput("k must be between 1 and 50")
    (category,) = resolve_categories([category])
    t0 = time.perf_counter()
    nodes = candidate_nodes(model, candidates, scope)
    problem = coverage_problem(model, category, limit_m, nodes, scope)
    chosen, gains = greedy_cover(problem, k)
    sites = []
    total = 0.0
    for row, gain in zip(chosen, gains, strict=True):
        x, y = model.graph.node_xy[problem.candidate_nodes[row]]
        lon, lat = metric_to_lonlat(x, y, model.inputs.epsg)
        total += gain
        sites.append(
            {
                "lon": round(lon, 7),
                "lat": round(lat, 7),
                "households_gained": int(gain),
                "households_gained_total": int(total),
            }
        )
    return {
        "category": category,
        "limit_m": limit_m,
        "candidates": candidates,
        "area": "city" if scope.is_whole_city else "scope",
        "households_in_area": scope.households(model),
        "candidates_considered": len(nodes),
        "households_uncovered_before": int(problem.weights.sum()),
        "sites": sites,
        "compute_ms": round((time.perf_counter() - t0) * 1000, 1),
    }
