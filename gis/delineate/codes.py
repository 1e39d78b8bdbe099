"""Codes in reading order: group 03, cluster 03-2, unit 03-2-1; grid G1 … per community.

Reading order runs north to south in bands, west to east within a band; the bands are
wider for larger areas. Edits number clusters and units again with the same rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

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


def _numbered(
    siblings: Iterable[np.ndarray], xy: np.ndarray, band_m: float
) -> Iterator[tuple[int, int]]:
    """Yield (area, number from 1) for each set of sibling areas, in reading order."""
    for ks in siblings:
        for number, k in enumerate(ks[reading_order(xy[ks], band_m)].tolist(), start=1):
            yield k, number


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
    cluster = [""] * clusters.n
    cxy = np.array([units.xy[m].mean(axis=0) for m in clusters.members]).reshape(-1, 2)
    by_group = (np.flatnonzero(clusters.parent == g) for g in range(groups.n))
    for k, number in _numbered(by_group, cxy, CLUSTER_BAND_M):
        cluster[k] = f"{group[clusters.parent[k]]}-{number}"
    unit = [""] * units.n
    by_cluster = (np.array(m) for m in clusters.members)
    for u, number in _numbered(by_cluster, units.xy, UNIT_BAND_M):
        unit[u] = f"{cluster[clusters.of_member[u]]}-{number}"
    grid = [""] * grids.n
    gxy = np.array([grids.node_xy[m].mean(axis=0) for m in grids.members]).reshape(-1, 2)
    by_comm = (np.flatnonzero(grids.parent == c) for c in range(n_comm))
    for k, number in _numbered(by_comm, gxy, GRID_BAND_M):
        grid[k] = f"G{number}"
    return Codes(group, cluster, unit, grid)
