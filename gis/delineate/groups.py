"""The levels drawn by partition: residents' groups, building clusters and grids.

* group: contiguous units in one major-road block of one community, about
  ``group_households``; a unit above the band's upper bound is a group of its own, flagged;
* cluster: contiguous units of one group, about ``cluster_households``;
* grid: contiguous groups of one community, about ``grid_households``, locked groups
  taking part as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely

from gis.delineate.communities import LIGHT_ROUNDS, Communities
from gis.delineate.graph import aggregate, assign_until_stable, components
from gis.delineate.model import Params
from gis.delineate.partition import mend_in_rings, split
from gis.delineate.parts import balance, divide_towers
from gis.delineate.pieces import Pieces
from gis.delineate.proofs import Answer, PieceProofs, is_indivisible, unit_split
from gis.delineate.refine import Cost
from gis.delineate.units import Units


@dataclass
class Partitioned:
    """Areas of one level: their members (indices of the level below) and parent."""

    members: list[list[int]]
    parent: np.ndarray  # index of the community (groups, grids) or group (clusters)
    of_member: np.ndarray  # per member of the level below, its area (-1: none)

    @property
    def n(self) -> int:
        return len(self.members)


@dataclass
class Groups(Partitioned):
    """Residents' groups, with their flags, households and a weighted centre each."""

    flags: list[list[str]]
    households: np.ndarray
    xy: np.ndarray
    # households of each connected piece of a major-road block (what no group crosses)
    piece_households: list[float] = field(default_factory=list)
    # pieces to draw again: a building cell maps to itself (a unit of its own), a piece
    # of land to the cell whose unit it joins (``proofs.PieceProofs.to_regroup``)
    regroup: dict[int, int] = field(default_factory=dict)


@dataclass
class Grids(Partitioned):
    """Grids over the free groups followed by the locked ones ("nodes")."""

    node_households: np.ndarray
    node_xy: np.ndarray
    node_comm: np.ndarray
    frozen_comm: np.ndarray  # per locked group, its community


def _label(members: list[list[int]], n: int, fill: int) -> np.ndarray:
    out = np.full(n, fill, dtype=np.int64)
    for k, m in enumerate(members):
        out[m] = k
    return out


def has_band_split(households: float, params: Params) -> bool:
    """Whether some number of groups shares ``households`` with every group in band."""
    k = int(households // params.group_min)
    return k >= 1 and households <= k * params.group_max


def _group_flags(
    part: list[int], units: Units, piece_hh: dict[int, float], params, proofs: PieceProofs
) -> list:
    total = units.households[part].sum()
    if total == 0:  # offices, schools, a hospital block: held, not balanced
        return ["no_households"]
    first = next((u for u in part if u in piece_hh), None)
    if first is None or params.group_min <= total <= params.group_max:
        return []
    piece = piece_hh[first]
    if piece < params.group_min:
        # all the homes of a piece of a major-road block: nothing to add them to
        return ["small_block"]
    if not has_band_split(piece, params):  # 120-160 households: one group or two, none in band
        return ["no_band_split"]
    if total < params.group_min and proofs.is_infeasible(first):
        # the piece's buildings may not be divided, and no connected groups of them are all
        # in band (gis/delineate/proofs.py): the rules' doing, not the partition's
        return ["no_contiguous_band_split"]
    return []


def _mend(units: Units, drawn: list[list[int]], whole: set[frozenset], params: Params) -> None:
    """Groups still out of band are partitioned again with their neighbours (in place).

    Groups holding a part of a divided building, and small blocks, are left as they are.
    """

    def is_fixed(i: int) -> bool:
        g = drawn[i]
        return frozenset(g) in whole or any(
            units.part_of[u] >= 0 or int(units.piece[u]) in units.parts for u in g
        )

    cost = Cost(params.group_households, params.band)
    mend_in_rings(drawn, units.households, units.xy, units.adj, cost, is_fixed)


def _snapshot(units: Units) -> dict:
    """What ``balance`` changes in ``units`` (it adds parts and moves households)."""
    return {
        "n": units.n,
        "households": units.households.copy(),
        "xy": units.xy,
        "major": units.major,
        "comm": units.comm,
        "frozen": units.frozen,
        "piece": units.piece,
        "part_of": units.part_of,
        "blocks": list(units.blocks),
        "adj": [dict(a) for a in units.adj],
        "parts": {k: list(v) for k, v in units.parts.items()},
    }


def _merge_walled_in(
    units: Units, drawn: list[list[int]], whole: set[frozenset], params: Params
) -> None:
    """A group still below the band joins its smallest neighbour; the block is balanced again.

    Neither the balancer (a part may only go to a group its building's cell touches) nor
    ``_mend`` (which leaves groups holding parts alone) can reach, say, a group of small
    houses walled in by the land of a divided building. Joined to a neighbour, with one
    group fewer, the balancer can share the two out among the groups around them. Kept
    only when fewer groups are then out of band and the partition's cost drops (in place).
    """
    cost = Cost(params.group_households, params.band)

    def size(g: list[int]) -> float:
        return float(units.households[g].sum())

    def out_of_band() -> int:
        return sum(1 for g in drawn if g and size(g) > 0 and not cost.is_in_band(size(g)))

    def total() -> float:
        return sum(cost(size(g)) for g in drawn if g and frozenset(g) not in whole)

    for a in range(len(drawn)):
        g = drawn[a]
        if not g or frozenset(g) in whole or not 0 < size(g) < params.group_min:
            continue
        of = {u: i for i, grp in enumerate(drawn) for u in grp}
        near = {of[v] for u in g for v in units.adj[u] if v in of and of[v] != a}
        if not near or any(frozenset(drawn[b]) in whole for b in near):
            continue
        b = min(near, key=lambda i: (size(drawn[i]), i))
        before, bad = total(), out_of_band()
        kept, saved = [list(x) for x in drawn], _snapshot(units)
        drawn[b] = drawn[b] + g
        drawn[a] = []
        balance(units, drawn, whole, params)
        if out_of_band() < bad and total() < before:
            continue
        drawn[:] = kept
        for name, value in saved.items():
            setattr(units, name, value)


def _solve_exactly(
    units: Units,
    drawn: list[list[int]],
    comps: list[list[int]],
    piece_of: dict[int, int],
    params: Params,
) -> None:
    """A piece of whole units still holding a group below the band is shared out exactly.

    The partition is a heuristic: in a piece of indivisible units (walk-ups, small
    buildings together) where it leaves a group below the band, the exact search of
    ``proofs.band_split`` finds connected groups all in band when there are any (units
    without households then join a group they touch). Those replace the piece's groups
    (in place); a piece where the search finds none, or gives up, is left as it was.
    """
    band = (params.group_min, params.group_max)

    def piece(g: list[int]) -> int | None:
        return next((piece_of[u] for u in g if u in piece_of), None)

    below = [g for g in drawn if g and 0 < units.households[g].sum() < params.group_min]
    for i in sorted({piece(g) for g in below} - {None}):
        members = comps[i]
        total = float(units.households[members].sum())
        if total < params.group_min or not has_band_split(total, params):
            continue
        if not all(is_indivisible(units, u) for u in members):
            continue
        answer, found = unit_split(units, members, band)
        if answer is not Answer.FEASIBLE or found is None:
            continue
        label = dict.fromkeys(members, -1)
        for k, grp in enumerate(found):
            for u in grp:
                label[u] = k

        def join(u: int, label: dict[int, int] = label) -> bool:  # units without households
            k = next((label[v] for v in units.adj[u] if label.get(v, -1) >= 0), -1)
            label[u] = k
            return k >= 0

        if assign_until_stable([u for u in members if label[u] < 0], join):
            continue  # a unit touching no group: left as it was
        groups = [[u for u in members if label[u] == k] for k in range(len(found))]
        drawn[:] = [g for g in drawn if not g or piece(g) != i] + groups


def draw_groups(units: Units, comms: Communities, params: Params) -> Groups:
    """Partition the free units of each community and major-road block into groups.

    Towers are divided first (``parts.divide_towers``), then the rest is partitioned, then
    buildings on the edges of groups still out of band are divided (``parts.balance``).
    A group still below the band whose piece's buildings could make groups all in band,
    were its units drawn otherwise, says how in ``regroup``: the caller draws the units
    again so and partitions once more.
    """
    members: list[list[int]] = []
    flags: list[list[str]] = []
    comm: list[int] = []
    pieces: list[float] = []
    regroup: dict[int, int] = {}
    for c in range(comms.n):
        for m in np.unique(units.major[units.comm == c]).tolist():
            nodes = np.flatnonzero((units.comm == c) & (units.major == m) & (units.frozen < 0))
            # the connected pieces of the block, towers included: a piece that only a
            # tower cuts off from the rest is not a small block (it can take its floors)
            comps = components(nodes.tolist(), units.adj)
            whole = {frozenset(comp) for comp in comps}
            piece_of = {u: i for i, comp in enumerate(comps) for u in comp}
            totals = [float(units.households[comp].sum()) for comp in comps]
            piece_hh = {u: totals[i] for u, i in piece_of.items()}
            pieces.extend(totals)
            made, rest = divide_towers(units, nodes.tolist(), params, piece_of)
            drawn = split(
                rest, units.households, units.xy, units.adj, params.group_households, params.band
            )
            drawn = made + drawn
            balance(units, drawn, whole, params)
            _mend(units, drawn, whole, params)
            _merge_walled_in(units, drawn, whole, params)
            _solve_exactly(units, drawn, comps, piece_of, params)
            proofs = PieceProofs(units, comps, piece_of, (params.group_min, params.group_max))
            for part in filter(None, drawn):
                members.append(part)
                flags.append(_group_flags(part, units, piece_hh, params, proofs))
                if not flags[-1] and units.households[part].sum() < params.group_min:
                    first = next((u for u in part if u in piece_hh), None)
                    if first is not None:
                        regroup.update(proofs.to_regroup(first))
            comm.extend([c] * (len(members) - len(comm)))
    n = len(members)
    of_unit = _label(members, units.n, -1)  # frozen units keep their own group
    return Groups(
        members,
        np.array(comm, dtype=np.int64),
        of_unit,
        flags,
        np.zeros(n),
        np.zeros((n, 2)),
        pieces,
        regroup,
    )


def total_groups(units: Units, groups: Groups) -> None:
    """Fill in each group's households and household-weighted centre."""
    n, of_unit = groups.n, groups.of_member
    free = of_unit >= 0
    groups.households = np.bincount(of_unit[free], weights=units.households[free], minlength=n)
    xy = np.zeros((n, 2))
    wxy = np.maximum(units.households[free], 1e-3)
    np.add.at(xy, of_unit[free], units.xy[free] * wxy[:, None])
    xy /= np.maximum(np.bincount(of_unit[free], weights=wxy, minlength=n), 1e-9)[:, None]
    groups.xy = xy


def draw_clusters(units: Units, groups: Groups, params: Params) -> Partitioned:
    """Partition each group's units into building clusters."""
    members: list[list[int]] = []
    group: list[int] = []
    for g, mine in enumerate(groups.members):
        for part in split(
            mine,
            units.households,
            units.xy,
            units.adj,
            params.cluster_households,
            params.band,
            rounds=LIGHT_ROUNDS,
        ):
            members.append(part)
            group.append(g)
    return Partitioned(members, np.array(group, dtype=np.int64), _label(members, units.n, -1))


def _share_cells(units: Units, groups: Groups, group_adj: list[dict[int, float]]) -> None:
    """Groups holding parts of one building touch where that building's other groups do."""
    for p in np.flatnonzero(units.part_of >= 0).tolist():
        gp = int(groups.of_member[p])
        gb = int(groups.of_member[units.of_piece[units.part_of[p]]])
        if gp < 0 or gb < 0 or gp == gb:
            continue
        tie = sum(group_adj[gb].values()) or 1.0
        for q, length in list(group_adj[gb].items()) + [(gb, tie)]:
            if q != gp:
                group_adj[gp][q] = max(group_adj[gp].get(q, 0.0), length)
                group_adj[q][gp] = group_adj[gp][q]


def _share_frozen_cells(pieces: Pieces, n_groups: int, group_adj: list[dict]) -> None:
    """Locked groups holding parts of one building touch what its cell's locked group does."""
    for p, f in zip(*pieces.frozen_pairs.tolist(), strict=True):
        owner = int(pieces.frozen[p])
        if owner == f:
            continue
        a, b = n_groups + f, n_groups + owner
        tie = sum(group_adj[b].values()) or 1.0
        for q, length in list(group_adj[b].items()) + [(b, tie)]:
            if q != a:
                group_adj[a][q] = max(group_adj[a].get(q, 0.0), length)
                group_adj[q][a] = group_adj[a][q]


def draw_grids(
    pieces: Pieces, comms: Communities, units: Units, groups: Groups, params: Params
) -> Grids:
    """Partition each community's groups, free and locked, into grids."""
    n_groups, n_frozen = groups.n, len(pieces.frozen_polys)
    pf = pieces.frozen
    piece_group = np.where(
        pf >= 0,
        n_groups + pf,
        np.where(units.of_piece >= 0, groups.of_member[np.maximum(units.of_piece, 0)], -1),
    )
    group_adj = aggregate(pieces.adj, piece_group, n_groups + n_frozen)
    _share_cells(units, groups, group_adj)
    _share_frozen_cells(pieces, n_groups, group_adj)
    frozen_hh = pieces.frozen_households
    if frozen_hh is None:
        frozen_hh = np.bincount(pf[pf >= 0], weights=pieces.households[pf >= 0], minlength=n_frozen)
    frozen_comm = np.zeros(n_frozen, dtype=np.int64)
    for p, f in zip(*pieces.frozen_pairs.tolist(), strict=True):
        frozen_comm[f] = comms.of_piece[p] if comms.is_imported else 0
    frozen_xy = shapely.get_coordinates(shapely.point_on_surface(pieces.frozen_polys))
    node_hh = np.concatenate([groups.households, frozen_hh])
    node_xy = np.vstack([groups.xy, frozen_xy.reshape(-1, 2)])
    node_comm = np.concatenate([groups.parent, frozen_comm])
    members: list[list[int]] = []
    comm: list[int] = []
    for c in range(comms.n):
        nodes = np.flatnonzero(node_comm == c).tolist()
        for part in split(
            nodes,
            node_hh,
            node_xy,
            group_adj,
            params.grid_households,
            params.band,
            rounds=LIGHT_ROUNDS,
        ):
            members.append(part)
            comm.append(c)
    of_node = _label(members, n_groups + n_frozen, 0)
    return Grids(
        members, np.array(comm, dtype=np.int64), of_node, node_hh, node_xy, node_comm, frozen_comm
    )
