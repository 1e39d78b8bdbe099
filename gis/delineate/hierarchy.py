"""Draw the nested areas from buildings and streets: units, clusters, groups, grids.

Everything here is in metres and in memory; ``service`` reads and writes PostGIS. The
levels (defaults in ``Params``, documented in docs/delineation.md) are drawn in stages, one
module each, every stage taking and returning small typed values:

1. pieces (``pieces``): building cells and empty blocks, noded, with their neighbours;
2. communities (``communities``): imported, else contiguous major-road blocks of about
   ``community_households``;
3. units (``units``): a building, or small buildings of one street block together;
4. groups, clusters, grids (``groups``): contiguous partitions of about a target each;
5. polygons: exact coverage unions, level by level (here);
6. codes in reading order (``codes``); then the quality report (``quality``).

Polygons are unions of building cells (see ``cells``); street blocks without buildings
join the unit they share the longest edge with, so every level tiles its community.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import shapely

from gis.delineate.codes import COMMUNITY_BAND_M, Codes, draw_codes, rank
from gis.delineate.communities import Communities, find_communities
from gis.delineate.groups import (
    Grids,
    Groups,
    Partitioned,
    draw_clusters,
    draw_grids,
    draw_groups,
    total_groups,
)
from gis.delineate.model import Inputs, Level, Params, Result
from gis.delineate.parts import realise
from gis.delineate.pieces import COVERAGE, Pieces, draw_pieces, tessellate
from gis.delineate.quality import quality
from gis.delineate.units import Units, draw_units, drop_empty_communities

__all__ = ["COVERAGE", "Inputs", "Level", "Params", "Result", "delineate"]

T = TypeVar("T")


@dataclass
class Polygons:
    """Per area of each level its polygon (metres)."""

    unit: np.ndarray
    cluster: np.ndarray
    group: np.ndarray
    frozen: np.ndarray  # locked groups' land
    grid: np.ndarray
    community: np.ndarray
    group_plan: np.ndarray  # groups without the cells of buildings they hold only a part of


def union_by(geoms: np.ndarray, label: np.ndarray, n: int) -> np.ndarray:
    """Return the ``n`` unions of ``geoms`` by ``label`` (an exact coverage: cheap unions)."""
    order = np.argsort(label, kind="stable")
    bounds = np.searchsorted(label[order], np.arange(n + 1))
    out = np.empty(n, dtype=object)
    counts = np.diff(bounds)
    single = np.flatnonzero(counts == 1)
    out[single] = geoms[order[bounds[single]]]  # one member: its own polygon, no union
    for i in np.flatnonzero(counts != 1).tolist():
        members = geoms[order[bounds[i] : bounds[i + 1]]]
        members = members[~shapely.is_empty(members)]
        out[i] = shapely.coverage_union_all(members) if len(members) else shapely.Polygon()
    return out


def _with_shared_cells(
    grid_plan: np.ndarray, pieces: Pieces, units: Units, groups: Groups, grids: Grids
) -> np.ndarray:
    """Grids with the cells of divided buildings whose first part lies in another grid.

    Such a cell is not in the grid's plan (it is in its first part's grid), and cells and
    plans are unions of one noded coverage: the cheap coverage union is exact.
    """
    extra: dict[int, set[int]] = {}
    for p in np.flatnonzero(units.part_of >= 0).tolist():
        g, base = groups.of_member[p], units.of_piece[units.part_of[p]]
        gb = groups.of_member[base]
        if g < 0 or gb < 0 or grids.of_member[g] == grids.of_member[gb]:
            continue
        extra.setdefault(int(grids.of_member[g]), set()).add(int(units.part_of[p]))
    if not extra:
        return grid_plan
    out = grid_plan.copy()
    for k, cells in extra.items():
        mine = list(pieces.geom[sorted(cells)])
        if not shapely.is_empty(out[k]):
            mine.append(out[k])
        out[k] = mine[0] if len(mine) == 1 else shapely.coverage_union_all(mine)
    return out


def draw_polygons(
    inputs: Inputs,
    pieces: Pieces,
    units: Units,
    clusters: Partitioned,
    groups: Groups,
    grids: Grids,
    comms: Communities,
) -> Polygons:
    """Union the pieces level by level: units, clusters, groups, grids, communities."""
    unit = union_by(pieces.geom, units.of_piece, units.n)
    plan_unit = unit.copy()
    further = np.flatnonzero(units.part_of >= 0)
    unit[further] = pieces.geom[units.part_of[further]]  # a part: its building's whole cell
    plan_unit[further] = shapely.Polygon()
    cluster = union_by(unit, clusters.of_member, clusters.n)
    group = union_by(cluster, clusters.parent, groups.n)
    group_plan = group
    if len(further):
        group_plan = group.copy()
        has = clusters.of_member >= 0
        unit_group = np.where(has, clusters.parent[np.maximum(clusters.of_member, 0)], -1)
        wanted = np.unique(unit_group[further])
        of = np.flatnonzero(np.isin(unit_group, wanted))  # their units, in order
        of = of[~shapely.is_empty(plan_unit[of])]
        by = of[np.argsort(unit_group[of], kind="stable")]
        bounds = np.searchsorted(unit_group[by], np.r_[wanted, wanted[-1] + 1])
        for i, g in enumerate(wanted.tolist()):
            mine = plan_unit[by[bounds[i] : bounds[i + 1]]]
            group_plan[g] = shapely.coverage_union_all(mine) if len(mine) else shapely.Polygon()
    frozen = union_by(pieces.geom, pieces.frozen, len(pieces.frozen_polys))
    grid_plan = union_by(np.concatenate([group_plan, frozen]), grids.of_member, grids.n)
    grid = _with_shared_cells(grid_plan, pieces, units, groups, grids)
    if inputs.communities:
        community = np.array([g for _, g in inputs.communities], dtype=object)
    else:
        community = union_by(grid_plan, grids.parent, comms.n)
    return Polygons(unit, cluster, group, frozen, grid, community, group_plan)


def _levels(
    units: Units,
    clusters: Partitioned,
    groups: Groups,
    grids: Grids,
    polys: Polygons,
    codes: Codes,
    community_codes: list[str],
) -> dict[str, Level]:
    uc = units.households
    has = clusters.of_member >= 0
    return {
        "units": Level(codes.unit, clusters.of_member, uc, polys.unit),
        "clusters": Level(
            codes.cluster,
            clusters.parent,
            np.bincount(clusters.of_member[has], weights=uc[has], minlength=clusters.n),
            polys.cluster,
        ),
        "groups": Level(codes.group, groups.parent, groups.households, polys.group, groups.flags),
        "grids": Level(
            codes.grid,
            grids.parent,
            np.bincount(grids.of_member, weights=grids.node_households, minlength=grids.n),
            polys.grid,
        ),
        "communities": Level(
            community_codes,
            np.zeros(len(community_codes), dtype=np.int64),
            np.bincount(
                grids.node_comm, weights=grids.node_households, minlength=len(community_codes)
            ),
            polys.community,
        ),
    }


def _assemble(
    pieces: Pieces, units: Units, n_buildings: int, levels: dict, grids: Grids, frozen: np.ndarray
) -> Result:
    """Return the Result of the levels with the per-building and per-piece figures."""
    tess, inside, n_b = pieces.tess, pieces.inside, pieces.n_cells
    building_unit = np.full(n_buildings, -1, dtype=np.int64)
    building_unit[inside] = units.of_piece[:n_b]
    cells_out = np.full(n_buildings, None, dtype=object)
    cells_out[inside] = pieces.geom[:n_b]
    empty = pieces.empty_blocks.tolist()
    land = pieces.geom[n_b:]
    n_groups = len(levels["groups"].code)
    return Result(
        building_unit=building_unit,
        **levels,
        cells=cells_out,
        block_hash=tess.block_hash,
        block_cells={
            tess.block_hash[b]: list(tess.cells[tess.building_block == b])
            for b in np.unique(tess.building_block[inside]).tolist()
        },
        timings={},
        quality={},
        raw_cells=tess.cells,
        building_block_hash=[
            tess.block_hash[b] if b >= 0 else "" for b in tess.building_block.tolist()
        ],
        group_grid=grids.of_member[:n_groups],
        frozen_geom=frozen,
        frozen_comm=grids.frozen_comm,
        frozen_grid=grids.of_member[n_groups:],
        land_geom=land,
        land_unit=np.where(pieces.frozen[n_b:] >= 0, -1, units.of_piece[n_b:]),
        land_hash=[tess.block_hash[b] for b in empty],
        coverage_reused=pieces.coverage_reused,
        coverage=(
            pieces.cover_key,
            cells_out,
            {tess.block_hash[b]: g for b, g in zip(empty, land, strict=True)},
        ),
    )


def _register_of(inputs: Inputs, pieces: Pieces, units: Units) -> dict[int, np.ndarray]:
    """Per divided building's cell, its register's households per dwelling (floor order)."""
    if not inputs.dwellings:
        return {}
    out = {}
    for p in units.parts:
        b = int(pieces.inside[p])
        if b in inputs.dwellings:
            out[p] = inputs.dwellings[b]
    return out


def _doors_of(inputs: Inputs, pieces: Pieces, units: Units) -> dict:
    """Per divided building's cell, its dwellings by entrance (``Inputs.doors``), if known."""
    if not inputs.doors:
        return {}
    return {
        p: inputs.doors[int(pieces.inside[p])]
        for p in units.parts
        if int(pieces.inside[p]) in inputs.doors
    }


def _parts_of(pieces: Pieces, units: Units) -> dict[int, list[tuple[int, float]]]:
    """Per divided building (index in the inputs), its parts' (unit, households) in order."""
    return {
        int(pieces.inside[p]): [(int(u), float(units.households[u])) for u in us]
        for p, us in units.parts.items()
    }


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector for the duration (restored as it was).

    A delineation makes and drops millions of small sets and lists, none in a cycle; each
    is freed by its reference count. The collector's full passes over the whole heap still
    come every so often, each costing as much as half a small run, wherever they happen to
    land (measured: 0.045 s calls on shanghai-tongji taking 0.070 s now and then).
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def delineate(
    inputs: Inputs,
    params: Params | None = None,
    reuse: dict | None = None,
    frozen: list | None = None,
) -> Result:
    """Draw every level for the study area of ``inputs``.

    ``frozen`` holds (code, outline in metres[, households]) of locked groups (with the
    groups that share a divided building with them): the land inside them is
    left alone (their buildings keep their units), the rest is drawn around them, and new
    groups take codes the locked ones do not use.
    """
    with _collector_paused():
        return _delineate(inputs, params, reuse, frozen)


def _delineate(
    inputs: Inputs, params: Params | None, reuse: dict | None, frozen: list | None
) -> Result:
    params = params or Params()
    frozen = frozen or []
    t: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], T]) -> T:
        t0 = time.perf_counter()
        out = fn()
        t[name] = time.perf_counter() - t0
        return out

    cut = timed("cells", lambda: tessellate(inputs, reuse))
    pieces = timed("graph", lambda: draw_pieces(inputs, params, cut, reuse, frozen))
    t0 = time.perf_counter()
    found = find_communities(inputs, params, pieces)
    units = draw_units(pieces, found, params)
    comms = drop_empty_communities(found, units)
    t["units"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    groups = draw_groups(units, comms, params)
    if groups.regroup:  # the units as drawn stood in the way of groups all in band
        units = draw_units(pieces, found, params, regroup=groups.regroup)
        comms = drop_empty_communities(found, units)
        groups = draw_groups(units, comms, params)
    realise(
        units,
        groups.of_member,
        _register_of(inputs, pieces, units),
        _doors_of(inputs, pieces, units),
    )
    total_groups(units, groups)
    clusters = draw_clusters(units, groups, params)
    grids = draw_grids(pieces, comms, units, groups, params)
    t["partition"] = time.perf_counter() - t0
    polys = timed(
        "polygons", lambda: draw_polygons(inputs, pieces, units, clusters, groups, grids, comms)
    )
    community_codes = comms.codes or [
        f"P{c + 1:02d}" for c in rank(polys.community, COMMUNITY_BAND_M)
    ]
    codes = draw_codes(units, clusters, groups, grids, comms.n, [f[0] for f in frozen])
    levels = _levels(units, clusters, groups, grids, polys, codes, community_codes)
    result = _assemble(pieces, units, len(inputs.footprints), levels, grids, polys.frozen)
    result.parts = _parts_of(pieces, units)
    result.group_plan = polys.group_plan
    result.timings = t
    result.quality = quality(result, units.blocks, units.major, params, groups.piece_households)
    return result
