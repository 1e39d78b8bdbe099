"""The run's quality report (see docs/delineation.md for each figure).

Household figures are over every group that holds households, divided towers included;
groups of buildings without households are counted apart.
"""

from __future__ import annotations

import numpy as np
import shapely

from gis.delineate import cells as C
from gis.delineate.model import Params, Result
from gis.delineate.partition import choose_k
from gis.delineate.parts import WALKUP_MAX


def _cv(x: np.ndarray) -> float:
    return float(x.std() / x.mean()) if len(x) and x.mean() > 0 else 0.0


def _flagged(flags: list[list[str]], flag: str) -> np.ndarray:
    return np.array([flag in f for f in flags], dtype=bool)


def _households(r: Result, params: Params) -> dict:
    """Band figures over every group that holds households, towers and small blocks included.

    Groups holding every home of a major-road block smaller than the band (``small_block``)
    can be nothing else: they count, and the report also gives the figures without them.
    """
    g = r.groups
    oversize, empty = _flagged(g.flags, "oversize"), _flagged(g.flags, "no_households")
    small_block = _flagged(g.flags, "small_block")
    has = (g.households > 0) & ~empty
    hh = g.households[has]
    splittable = g.households[has & ~small_block]
    in_band = (hh >= params.group_min) & (hh <= params.group_max)
    below_not_small = has & ~small_block & (g.households < params.group_min)
    no_split = _flagged(g.flags, "no_band_split")
    # of a piece whose whole buildings make no connected groups all in band (proofs.py)
    no_contiguous = _flagged(g.flags, "no_contiguous_band_split")
    parts = [len(p) for p in r.parts.values()]
    return {
        "households": float(g.households.sum()),
        "group_households": {
            "min": float(hh.min()) if len(hh) else 0.0,
            "median": float(np.median(hh)) if len(hh) else 0.0,
            "max": float(hh.max()) if len(hh) else 0.0,
            "cv": _cv(hh),
        },
        "share_in_band": float(in_band.mean()) if len(hh) else 1.0,
        "band": [params.group_min, params.group_max],
        "oversize_groups": int(oversize.sum()),
        "groups_without_households": int(empty.sum()),
        "small_block_groups": int(small_block.sum()),
        "cv_without_small_blocks": _cv(splittable),
        "share_in_band_without_small_blocks": float(
            ((splittable >= params.group_min) & (splittable <= params.group_max)).mean()
        )
        if len(splittable)
        else 1.0,
        "below_band_not_small_block": int(below_not_small.sum()),
        # of a piece of 120-160 households, which no split puts in band (one group or two)
        "no_band_split_groups": int(no_split.sum()),
        "no_contiguous_split_groups": int(no_contiguous.sum()),
        # below the band with none of the three reasons: the partition's own failures
        "below_band_unexplained": int((below_not_small & ~no_split & ~no_contiguous).sum()),
        "divided_buildings": len(parts),
        "building_parts": int(sum(parts)),
        "divided_walkups": int(
            sum(1 for ps in r.parts.values() if sum(h for _, h in ps) <= WALKUP_MAX)
        ),
    }


def _crossings(r: Result, unit_blocks: list[set[int]], unit_major: np.ndarray) -> dict:
    has = r.units.parent >= 0  # units of locked groups are not drawn again
    unit_group = np.where(has, r.clusters.parent[np.maximum(r.units.parent, 0)], -1)
    crossing_minor = 0
    crossing_major = 0
    for gi in range(len(r.groups.code)):
        units = np.flatnonzero(unit_group == gi)
        blocks = set().union(*(unit_blocks[u] for u in units)) if len(units) else set()
        crossing_minor += len(blocks) > 1
        crossing_major += len(set(unit_major[units].tolist())) > 1
    return {
        "groups_crossing_minor_streets": int(crossing_minor),
        "groups_crossing_major_roads": int(crossing_major),
    }


def _wider_than_grid(gap) -> float:
    """Area of the parts of ``gap`` wider than two grid cells.

    An imported outline does not lie on the 1 cm grid; the cells cut along it do, and
    snap-rounding can put a corner of theirs up to a cell off the outline. The slivers
    between the two (a few mm wide, up to the length of an edge) are rounding, not land
    left out: a part that a negative buffer of one cell removes is not counted.
    """
    parts = shapely.get_parts(gap)
    if not len(parts):
        return 0.0
    wide = ~shapely.is_empty(shapely.buffer(parts, -C.GRID_M, quad_segs=1))
    return float(shapely.area(parts[wide]).sum())


def _union(mine: np.ndarray):
    """Union of one community's areas, exact whether or not they overlap.

    Drawn from cells of one noded coverage, they normally form a valid coverage (no
    overlaps, shared edges vertex for vertex), which GEOS checks in a sweep and unions by
    merging edges: a third of the cost of a general overlay. Anything else (an overlap, an
    edge not matched) takes the general overlay, so the overlap figure still sees it.
    """
    if len(mine) and bool(shapely.coverage_is_valid(mine)):
        return shapely.coverage_union_all(mine)
    try:  # the pieces are on the 1 cm grid already: a plain overlay is exact and quicker
        return shapely.union_all(mine)
    except shapely.errors.GEOSException:  # robust snap-rounding when it is not
        return shapely.union_all(mine, grid_size=C.GRID_M)


def _tiling(r: Result) -> dict:
    g = r.groups
    gaps, overlaps = [], []
    for c in range(len(r.communities.code)):
        plan = g.geom if r.group_plan is None else r.group_plan
        # a divided building's cell is in each group holding a part: counted once, in plan
        mine = np.concatenate([plan[g.parent == c], r.frozen_geom[r.frozen_comm == c]])
        comm = r.communities.geom[c]
        union = _union(mine)
        gap = shapely.difference(comm, union, grid_size=C.GRID_M)
        overlaps.append(max(0.0, float(shapely.area(mine).sum() - shapely.area(union))))
        gaps.append(_wider_than_grid(gap))
    return {"gap_m2": round(float(sum(gaps)), 3), "overlap_m2": round(float(sum(overlaps)), 3)}


def _floors(r: Result, params: Params, piece_households: list[float]) -> dict:
    """Lowest CVs over every group with households that the major roads leave reachable.

    * ``cv_floor_small_blocks``: the small-block groups as they are (they can be nothing
      else), every other group at exactly the others' mean;
    * ``cv_floor_pieces``: every group at the mean of its piece of a major-road block
      (no group crosses a major road, so a piece's households are shared by its groups
      alone), with the number of groups closest to the target for each piece.

    A goal on the CV below a floor cannot be met without crossing a major road.
    """
    g = r.groups
    has = (g.households > 0) & ~_flagged(g.flags, "no_households")
    small = _flagged(g.flags, "small_block")[has]
    hh = g.households[has]
    others = hh[~small]
    at_mean = np.full(len(others), others.mean() if len(others) else 0.0)
    target = params.group_households
    per_piece = [
        np.full(k, t / k) for t in piece_households if t > 0 for k in [choose_k(t, target)]
    ]
    return {
        "cv_floor_small_blocks": _cv(np.concatenate([hh[small], at_mean])),
        "cv_floor_pieces": _cv(np.concatenate(per_piece)) if per_piece else 0.0,
    }


def quality(
    r: Result,
    unit_blocks: list[set[int]],
    unit_major: np.ndarray,
    params: Params,
    piece_households: list[float] | None = None,
) -> dict:
    """Return the run's quality report."""
    return {
        "buildings": int((r.building_unit >= 0).sum()),
        "units": len(r.units.code),
        "clusters": len(r.clusters.code),
        "groups": len(r.groups.code),
        "grids": len(r.grids.code),
        "communities": len(r.communities.code),
        **_households(r, params),
        "non_contiguous_groups": int((shapely.get_num_geometries(r.groups.geom) > 1).sum()),
        **_crossings(r, unit_blocks, unit_major),
        **_tiling(r),
        **_floors(r, params, piece_households or []),
    }
