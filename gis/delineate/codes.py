"""Codes in reading order: group 03, cluster 03-2, unit 03-2-1; grid G1 … per community.

Reading order runs north to south in bands, west to east within a band; the bands are
wider for larger areas. Edits number clusters and units again with the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain

import numpy as np
import shapely

from gis.delineate.groups import Grids, Groups, Partitioned
from gis.delineate.units import Units

GROUP_BAND_M = 150.0
CLUSTER_BAND_M = 40.0
UNIT_BAND_M = 15.0
GRID_BAND_M = 300.0
COMMUNITY_BAND_M = 1000.0


def reading_order(xy: np.ndarray, band_m: float) -> np.ndarray:
    """Return indices in reading order: north to south in bands, west to east within one."""
    if not len(xy):
        return np.array([], dtype=np.int64)
    row = np.floor((xy[:, 1].max() - xy[:, 1]) / band_m)
    return np.lexsort((xy[:, 0], row))


def rank(geoms: np.ndarray, band_m: float) -> np.ndarray:
    """Return each geometry's position in reading order."""
    xy = shapely.get_coordinates(shapely.point_on_surface(geoms))
    order = reading_order(xy, band_m)
    out = np.empty(len(order), dtype=np.int64)
    out[order] = np.arange(len(order))
    return out


def _numbers(
    parent: np.ndarray, xy: np.ndarray, band_m: float, tie: np.ndarray | None = None
) -> np.ndarray:
    """Per area its number from 1 among its siblings (same ``parent``), in reading order.

    One sort for every parent at once: the same order as ``reading_order`` applied to each
    set of siblings, ties kept in ``tie`` order (else index order). Areas with a parent
    below 0 get 0.
    """
    out = np.zeros(len(parent), dtype=np.int64)
    has = np.flatnonzero(parent >= 0)
    if not len(has):
        return out
    par, pts = parent[has], xy[has]
    top = np.full(int(par.max()) + 1, -np.inf)
    np.maximum.at(top, par, pts[:, 1])
    row = np.floor((top[par] - pts[:, 1]) / band_m)
    keys = [pts[:, 0], row, par] if tie is None else [tie[has], pts[:, 0], row, par]
    order = np.lexsort(keys)
    sorted_par = par[order]
    first = np.r_[0, np.flatnonzero(sorted_par[1:] != sorted_par[:-1]) + 1]
    start = np.repeat(first, np.diff(np.r_[first, len(order)]))
    out[has[order]] = np.arange(len(order)) - start + 1
    return out


@dataclass
class Codes:
    """Per area of each level its code."""

    group: list[str]
    cluster: list[str]
    unit: list[str]
    grid: list[str]


def _group_codes(groups: Groups, grids: Grids, n_comm: int, locked_codes: list[str]) -> list:
    """Two-digit numbers per community, skipping those locked groups keep."""
    out = [""] * groups.n
    for c in range(n_comm):
        gs = np.flatnonzero(groups.parent == c)
        taken = {code for code, fc in zip(locked_codes, grids.frozen_comm, strict=True) if fc == c}
        number = 0
        for g in gs[reading_order(groups.xy[gs], GROUP_BAND_M)].tolist():
            number += 1
            while f"{number:02d}" in taken:
                number += 1
            out[g] = f"{number:02d}"
    return out


def _flat(members: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """All members in order, and how many each area has."""
    count = np.fromiter(map(len, members), np.int64, len(members))
    flat = np.fromiter(chain.from_iterable(members), np.int64, int(count.sum()))
    return flat, count


def _means(xy: np.ndarray, members: list[list[int]]) -> np.ndarray:
    """Per area the mean of its members' ``xy`` (added in member order, as numpy's mean
    of each area's rows does)."""
    flat, count = _flat(members)
    area = np.repeat(np.arange(len(members)), count)
    n = len(members)
    sums = np.column_stack(
        [np.bincount(area, weights=xy[flat, i], minlength=n) for i in range(2)]
    ).reshape(-1, 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / count[:, None]


def draw_codes(
    units: Units,
    clusters: Partitioned,
    groups: Groups,
    grids: Grids,
    n_comm: int,
    locked_codes: list[str],
) -> Codes:
    """Code every group, cluster, unit and grid in reading order within its parent."""
    group = _group_codes(groups, grids, n_comm, locked_codes)
    cxy = _means(units.xy, clusters.members)
    numbers = _numbers(clusters.parent, cxy, CLUSTER_BAND_M).tolist()
    cluster = [f"{group[g]}-{k}" for g, k in zip(clusters.parent.tolist(), numbers, strict=True)]
    position = np.zeros(units.n, dtype=np.int64)  # within its cluster's members: ties
    flat, count = _flat(clusters.members)
    position[flat] = np.arange(len(flat)) - np.repeat(np.cumsum(count) - count, count)
    numbers = _numbers(clusters.of_member, units.xy, UNIT_BAND_M, position).tolist()
    unit = [
        f"{cluster[c]}-{k}" if c >= 0 else ""
        for c, k in zip(clusters.of_member.tolist(), numbers, strict=True)
    ]
    gxy = _means(grids.node_xy, grids.members)
    grid = [f"G{k}" for k in _numbers(grids.parent, gxy, GRID_BAND_M).tolist()]
    return Codes(group, cluster, unit, grid)
