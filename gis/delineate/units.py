"""The third stage: units. A building is a unit; small ones join a neighbour in their block.

Buildings under ``unit_min_households`` join a neighbour in the same street block and
community up to ``unit_cap`` (buildings without households always join); land without
buildings then joins the unit it shares the longest edge with, so units tile the land.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gis.delineate.communities import Communities
from gis.delineate.graph import aggregate, assign_until_stable
from gis.delineate.model import Params
from gis.delineate.pieces import Pieces


@dataclass
class Units:
    """Per piece its unit (-1: locked land); per unit its figures and neighbours."""

    of_piece: np.ndarray
    n: int
    households: np.ndarray
    xy: np.ndarray
    major: np.ndarray  # major-road block
    comm: np.ndarray  # community
    frozen: np.ndarray  # locked group (-1: none)
    blocks: list[set[int]]  # street blocks its buildings lie in
    adj: list[dict[int, float]]  # neighbours, through land between them too
    piece: np.ndarray  # its one cell with households (a building or part of one), else -1
    part_of: np.ndarray  # the cell it shares when it is a further part of a building, else -1
    parts: dict[int, list[int]]  # per divided building's cell, the units of its parts
    piece_adj: list[dict[int, float]]  # the pieces' own neighbours (what a part touches)
    cell_households: np.ndarray | None = None  # per piece, its households (land: 0)


def draw_units(
    pieces: Pieces, comms: Communities, params: Params, regroup: dict[int, int] | None = None
) -> Units:
    """Group building cells into units and join empty land to them.

    ``regroup`` (``groups.Groups.regroup``) overrides the drawing for some pieces: a
    building cell mapped to itself stays a unit of its own, a piece of land mapped to a cell
    joins that cell's unit.
    """
    regroup = regroup or {}
    n_b = pieces.n_cells
    alone = frozenset(c for c, to in regroup.items() if c == to and c < n_b)
    _, of_cell = np.unique(_merge_small(pieces, comms, params, alone), return_inverse=True)
    n_units = int(of_cell.max()) + 1 if n_b else 0
    of_piece = np.full(len(pieces.geom), -1)
    of_piece[:n_b] = of_cell
    hh = pieces.households[:n_b]
    xy = np.zeros((n_units, 2))
    np.add.at(xy, of_cell, pieces.xy[:n_b])
    xy /= np.bincount(of_cell, minlength=n_units)[:, None]
    blocks: list[set[int]] = [set() for _ in range(n_units)]
    for p in range(n_b):
        blocks[of_cell[p]].add(int(pieces.block[p]))
    units = Units(
        of_piece=of_piece,
        n=n_units,
        households=np.bincount(of_cell, weights=hh, minlength=n_units),
        xy=xy,
        major=_per_unit(of_cell, pieces.major[:n_b], n_units, 0),
        comm=_per_unit(of_cell, comms.of_piece[:n_b], n_units, 0),
        frozen=_per_unit(of_cell, pieces.frozen[:n_b], n_units, -1),
        blocks=blocks,
        adj=[],
        piece=_single_piece(of_cell, hh, n_units),
        part_of=np.full(n_units, -1, dtype=np.int64),
        parts={},
        piece_adj=pieces.free_adj,
        cell_households=pieces.households,
    )
    _join_land(pieces, comms, units, {c: to for c, to in regroup.items() if c >= n_b})
    units.adj = aggregate(pieces.free_adj, of_piece, n_units)  # empty blocks link neighbours
    return units


def _single_piece(of_cell: np.ndarray, households: np.ndarray, n: int) -> np.ndarray:
    """Per unit its one cell with households (sheds without any may be with it), else -1."""
    out = np.full(n, -1, dtype=np.int64)
    homes = households > 0
    alone = np.bincount(of_cell[homes], minlength=n)[of_cell] == 1
    out[of_cell[alone & homes]] = np.flatnonzero(alone & homes)
    return out


def _per_unit(of_cell: np.ndarray, values: np.ndarray, n: int, fill: int) -> np.ndarray:
    out = np.full(n, fill, dtype=np.int64)
    out[of_cell] = values
    return out


def _merge_small(
    pieces: Pieces, comms: Communities, params: Params, alone: frozenset[int] = frozenset()
) -> list[int]:
    """Return per cell the cell whose unit it joins (itself when it stays alone).

    Smallest first, a cell under the minimum joins the smallest unit next to it in the same
    block and community (the longest shared edge among equals) that stays under the cap.
    Cells in ``alone`` neither join nor are joined.
    """
    n_b = pieces.n_cells
    owner = list(range(n_b))
    members = [[i] for i in range(n_b)]
    size = pieces.households[:n_b].copy()
    for i in np.argsort(size, kind="stable").tolist():
        ri = owner[i]
        if size[ri] >= params.unit_min_households or pieces.frozen[i] >= 0 or i in alone:
            continue
        options = []
        for j, length in pieces.free_adj[i].items():
            if j < n_b and j not in alone and _may_join(pieces, comms, params, i, j, owner, size):
                options.append((size[owner[j]], -length, owner[j]))
        if options:
            rj = min(options)[2]
            for m in members[ri]:
                owner[m] = rj
            members[rj].extend(members[ri])
            members[ri] = []
            size[rj] += size[ri]
    return owner


def _may_join(
    pieces: Pieces,
    comms: Communities,
    params: Params,
    i: int,
    j: int,
    owner: list[int],
    size: np.ndarray,
) -> bool:
    """Whether cell i's unit may join cell j's: same block and community, under the cap."""
    if pieces.block[j] != pieces.block[i] or comms.of_piece[j] != comms.of_piece[i]:
        return False
    ri, rj = owner[i], owner[j]
    if rj == ri:
        return False
    return not (pieces.households[i] > 0 and size[ri] + size[rj] > params.unit_cap)


def _join_land(
    pieces: Pieces, comms: Communities, units: Units, given: dict[int, int] | None = None
) -> None:
    """Give every land piece outside locked groups a unit (``units.of_piece``).

    Land in ``given`` joins the unit of the cell it maps to (in the order given: a cell of
    land it maps to has its unit by then).
    """
    of_piece, comm, adj = units.of_piece, comms.of_piece, pieces.free_adj
    for p, to in (given or {}).items():
        if of_piece[to] >= 0 and pieces.frozen[p] < 0:
            of_piece[p] = of_piece[to]

    def by_longest_edge(p: int) -> bool:  # same community; same major block first
        best, best_key = -1, None
        for q, length in adj[p].items():
            u = of_piece[q]
            if u < 0 or comm[q] != comm[p] and comm[p] >= 0:
                continue
            key = (pieces.major[q] == pieces.major[p], length)
            if best_key is None or key > best_key:
                best, best_key = u, key
        if best >= 0:
            of_piece[p] = best
        return best >= 0

    def by_any_neighbour(p: int) -> bool:
        near = [(length, of_piece[q]) for q, length in adj[p].items() if of_piece[q] >= 0]
        if near:
            of_piece[p] = max(near)[1]
        return bool(near)

    n_b = pieces.n_cells
    pending = [p for p in range(n_b, len(pieces.geom)) if pieces.frozen[p] < 0 and of_piece[p] < 0]
    pending = assign_until_stable(pending, by_longest_edge)
    # Left: land whose neighbours with a unit are all in another community. It joins the
    # neighbour it shares most edge with anyway (a polygon must stay one piece), repeating
    # for chains; only land touching no unit at all (an island) takes the nearest unit.
    pending = assign_until_stable(pending, by_any_neighbour)
    free_units = np.flatnonzero(units.frozen < 0)
    for p in pending:
        if len(free_units):
            d = np.hypot(*(units.xy[free_units] - pieces.xy[p]).T)
            of_piece[p] = int(free_units[np.argmin(d)])


def drop_empty_communities(comms: Communities, units: Units) -> Communities:
    """Proposed communities are what their units cover; one left with no unit drops out."""
    if comms.is_imported or not units.n:
        return comms
    present, units.comm = np.unique(units.comm, return_inverse=True)
    return Communities(comms.of_piece, comms.codes, len(present), False)
