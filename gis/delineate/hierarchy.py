"""Draw the nested areas from buildings and streets: units, clusters, groups, grids.

Everything here is in metres and in memory; ``service`` reads and writes PostGIS. The
levels (defaults in ``Params``, documented in docs/delineation.md):

* unit: one building; buildings under ``unit_min_households`` join a neighbour in the
  same street block (a row of bungalows, a shed beside a walk-up) up to ``unit_cap``;
  buildings without households always join their neighbour;
* residents' group: contiguous units in one major-road block, about ``group_households``;
  a unit above the band's upper bound is a group of its own, flagged;
* building cluster: contiguous units of one group, about ``cluster_households``;
* grid: contiguous groups of one community, about ``grid_households`` (one worker);
* community, when none is imported: contiguous major-road blocks, about
  ``community_households``.

Polygons are unions of building cells (see ``cells``); street blocks without buildings
join the unit they share the longest edge with, so every level tiles its community.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely import STRtree

from gis.delineate import cells as C
from gis.delineate.partition import MAX_ROUNDS, _repair, choose_k, partition


@dataclass(frozen=True)
class Params:
    """Targets of the delineation (households)."""

    group_households: int = 100
    band: float = 0.2  # a group within ±20 % of the target is "in band"
    cluster_households: int = 35
    unit_min_households: int = 5
    unit_cap: int = 60
    grid_households: int = 300
    community_households: int = 2500
    major_highways: frozenset[str] = C.MAJOR_HIGHWAYS

    @property
    def group_max(self) -> float:
        return self.group_households * (1 + self.band)

    @property
    def group_min(self) -> float:
        return self.group_households * (1 - self.band)


@dataclass
class Inputs:
    """Buildings and streets in a metric CRS; optional community outlines."""

    building_ids: np.ndarray
    households: np.ndarray
    footprints: np.ndarray
    street_lines: np.ndarray
    highways: np.ndarray
    communities: list[tuple[str, object]] | None = None  # (code, polygon) when imported


@dataclass
class Level:
    """One level's areas: members (indices of the level below), codes, households, polygons."""

    code: list[str]
    parent: np.ndarray  # index into the level above
    households: np.ndarray
    geom: np.ndarray
    flags: list[list[str]] = field(default_factory=list)


@dataclass
class Result:
    """A delineation: per building its unit; per level the areas; timing and quality."""

    building_unit: np.ndarray  # per building, index of its unit (-1: outside every community)
    units: Level
    clusters: Level
    groups: Level
    grids: Level
    communities: Level
    cells: np.ndarray  # per building, its cell (metric)
    block_hash: list[str]
    block_cells: dict[str, list]
    timings: dict[str, float]
    quality: dict
    raw_cells: np.ndarray  # per building, its cell before noding (what blocks reuse)
    building_block_hash: list[str]  # per building, the hash of its block ("" outside)
    group_grid: np.ndarray  # per group, index of its grid
    frozen_geom: np.ndarray  # locked groups' land, as found in this run's cells
    frozen_comm: np.ndarray  # and their community
    frozen_grid: np.ndarray  # and the grid they now belong to
    land_geom: np.ndarray  # land without buildings (metric), joined to …
    land_unit: np.ndarray  # … this unit (-1: inside a locked group)
    coverage: tuple  # (key, cells per building, land pieces): what ``reuse`` takes back
    land_hash: list[str]  # per land piece, the hash of its block
    coverage_reused: bool  # the noded pieces came from ``reuse``


class _Graph:
    """Adjacency of pieces (cells and empty blocks) with shared edge lengths.

    The pieces are one exactly noded coverage, so two neighbours share their boundary
    segments vertex for vertex: matching segments by their end points finds every shared
    edge without any geometric predicate.
    """

    def __init__(self, geoms: np.ndarray):
        n = len(geoms)
        rings = shapely.get_rings(geoms, return_index=True)
        xy, ring_of = shapely.get_coordinates(rings[0], return_index=True)
        owner = rings[1][ring_of]
        same = ring_of[1:] == ring_of[:-1]  # consecutive vertices of one ring: a segment
        a, b = xy[:-1][same], xy[1:][same]
        piece = owner[:-1][same]
        key_a = np.round(a / C.GRID_M).astype(np.int64)
        key_b = np.round(b / C.GRID_M).astype(np.int64)
        swap = (key_a[:, 0] > key_b[:, 0]) | (
            (key_a[:, 0] == key_b[:, 0]) & (key_a[:, 1] > key_b[:, 1])
        )
        lo = np.where(swap[:, None], key_b, key_a)
        hi = np.where(swap[:, None], key_a, key_b)
        keys = np.column_stack([lo, hi])
        length = np.hypot(*(b - a).T)
        _, seg, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
        seg = seg.ravel()
        shared = counts[seg] == 2
        order = np.lexsort((piece[shared], seg[shared]))
        s_piece, s_len = piece[shared][order], length[shared][order]
        first = s_piece[0::2]
        second = s_piece[1::2]
        lens = s_len[0::2]
        diff = first != second
        i, j, L = first[diff], second[diff], lens[diff]
        lo_p, hi_p = np.minimum(i, j), np.maximum(i, j)
        pair = lo_p.astype(np.int64) * n + hi_p
        uniq, inv = np.unique(pair, return_inverse=True)
        total = np.bincount(inv.ravel(), weights=L)
        self.adj: list[dict[int, float]] = [{} for _ in range(n)]
        keep = total > 0.01
        for pr, tl in zip(uniq[keep].tolist(), total[keep].tolist(), strict=True):
            u, v = divmod(pr, n)
            self.adj[u][v] = tl
            self.adj[v][u] = tl


COMMUNITY_MAX = 1.6  # x community_households: 4,000 for 2,500, the seed's upper band
LIGHT_ROUNDS = 2  # clusters, grids, communities: balance matters less than for groups
COVERAGE = "__coverage__"  # key in ``reuse`` for the noded pieces of an earlier run


def coverage_key(block_hash: list[str], building_block: np.ndarray) -> str:
    """Hash of every block and of which building lies in which: equal keys, equal cells."""
    h = hashlib.blake2b(digest_size=16)
    for b in block_hash:
        h.update(b.encode())
    h.update(np.ascontiguousarray(building_block, dtype=np.int64).tobytes())
    return h.hexdigest()


def _stored_coverage(
    stored: tuple | None,
    key: str,
    inside: np.ndarray,
    block_hash: list[str],
    empty_blocks: np.ndarray,
) -> np.ndarray | None:
    """The noded pieces of an earlier run with the same key, in this run's order.

    ``stored`` is (key, cells per building index, {block hash: land piece}).
    """
    if stored is None or stored[0] != key:
        return None
    _key, cells, land = stored
    wanted = [block_hash[b] for b in empty_blocks.tolist()]
    if any(cells[i] is None for i in inside) or any(h not in land for h in wanted):
        return None
    return np.concatenate(
        [np.asarray(cells, dtype=object)[inside], np.array([land[h] for h in wanted], dtype=object)]
    )


def _aggregate(adj: list[dict[int, float]], label: np.ndarray, n: int) -> list[dict[int, float]]:
    """Adjacency between groups of pieces (label -1 ignored)."""
    out: list[dict[int, float]] = [{} for _ in range(n)]
    for i, nb in enumerate(adj):
        li = label[i]
        if li < 0:
            continue
        for j, L in nb.items():
            lj = label[j]
            if lj >= 0 and lj != li:
                out[li][lj] = out[li].get(lj, 0.0) + L
    return out


def _components(nodes: list[int], adj: list[dict[int, float]]) -> list[list[int]]:
    allowed = set(nodes)
    seen: set[int] = set()
    out = []
    for s in nodes:
        if s in seen:
            continue
        comp, stack = [], [s]
        seen.add(s)
        while stack:
            u = stack.pop()
            comp.append(u)
            for v in adj[u]:
                if v in allowed and v not in seen:
                    seen.add(v)
                    stack.append(v)
        out.append(comp)
    return out


def _split(
    nodes: list[int],
    w: np.ndarray,
    xy: np.ndarray,
    adj: list[dict[int, float]],
    target: float,
    band: float = 0.2,
    rounds: int = MAX_ROUNDS,
) -> list[list[int]]:
    """Contiguous parts of about ``target`` over ``nodes`` (each connected piece apart).

    The partition starts from the number of parts closest to total / target and merges or
    cuts parts where members are too lumpy for it (see ``partition``); ``rounds`` bounds
    that work (the levels that matter less get fewer).
    """
    out = []
    for comp in _components(nodes, adj):
        if len(comp) == 1:
            out.append(comp)
            continue
        idx = np.array(comp)
        wc = w[idx]
        k0 = choose_k(float(wc.sum()), target)
        if k0 >= len(comp) and wc.min() >= target * (1 - band):
            # members alone: none is below the band, and two together would be above it
            out.extend([m] for m in comp)
            continue
        local = {g: i for i, g in enumerate(comp)}
        sub = [{local[v]: L for v, L in adj[g].items() if v in local} for g in comp]
        labels = partition(
            wc, xy[idx], sub, k0, band, target=target, rounds=rounds, chains=rounds >= MAX_ROUNDS
        )
        order = np.argsort(labels, kind="stable")
        bounds = np.searchsorted(labels[order], np.arange(labels.max() + 2))
        out.extend(idx[order[bounds[p] : bounds[p + 1]]].tolist() for p in range(len(bounds) - 1))
    return out


def _reading_order(xy: np.ndarray, band_m: float) -> np.ndarray:
    """Indices in reading order: north to south in bands, west to east within a band."""
    if not len(xy):
        return np.array([], dtype=np.int64)
    row = np.floor((xy[:, 1].max() - xy[:, 1]) / band_m)
    return np.lexsort((xy[:, 0], row))


def delineate(
    inputs: Inputs,
    params: Params = Params(),
    reuse: dict | None = None,
    frozen: list | None = None,
) -> Result:
    """Draw every level for the study area of ``inputs``.

    ``frozen`` holds (code, outline in metres) of locked groups: the land inside them is
    left alone (their buildings keep their units), the rest is drawn around them, and new
    groups take codes the locked ones do not use.
    """
    frozen_codes = [code for code, _ in frozen or []]
    t = {}
    t0 = time.perf_counter()
    fp = inputs.footprints
    hh = inputs.households.astype(float)
    is_bounding = np.isin(inputs.highways, list(C.BOUNDING_HIGHWAYS))
    is_major = np.isin(inputs.highways, list(params.major_highways))
    area = C.study_area(fp, inputs.street_lines)
    tess = C.tessellate(fp, inputs.street_lines[is_bounding], area, reuse)
    t["cells"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    inside = np.flatnonzero(tess.building_block >= 0)
    empty_blocks = np.setdiff1d(np.arange(len(tess.blocks)), tess.building_block[inside])
    raw = np.concatenate([tess.cells[inside], tess.blocks[empty_blocks]])
    cover_key = coverage_key(tess.block_hash, tess.building_block)
    stored = (reuse or {}).get(COVERAGE)
    pieces = _stored_coverage(stored, cover_key, inside, tess.block_hash, empty_blocks)
    coverage_reused = pieces is not None
    if pieces is None:  # some block changed: node everything again
        pieces = C.node_coverage(raw)
    n_b = len(inside)
    piece_building = np.concatenate([inside, np.full(len(empty_blocks), -1)])
    piece_block = np.concatenate([tess.building_block[inside], empty_blocks])
    piece_hh = np.where(piece_building >= 0, hh[np.maximum(piece_building, 0)], 0.0)
    piece_xy = shapely.get_coordinates(shapely.point_on_surface(raw))
    majors = C.polygonize_within(inputs.street_lines[is_major], area)
    block_major = C.assign_to_blocks(
        shapely.point_on_surface(tess.blocks), majors
    )  # a block lies in one major block
    lost = block_major < 0
    if lost.any():  # a point on an edge after snapping: the nearest major block
        block_major[lost] = STRtree(majors).nearest(shapely.point_on_surface(tess.blocks[lost]))
    piece_major = block_major[piece_block]
    graph = _Graph(pieces)
    adj = graph.adj
    frozen_polys = np.array([g for _, g in frozen or []], dtype=object)
    piece_frozen = np.full(len(pieces), -1, dtype=np.int64)
    if len(frozen_polys):
        pi, fi = STRtree(frozen_polys).query(shapely.point_on_surface(raw), predicate="within")
        piece_frozen[pi] = fi
        # the rest of the run does not see frozen land: it is nobody's neighbour
        free_adj = [
            {} if piece_frozen[i] >= 0 else {j: L for j, L in nb.items() if piece_frozen[j] < 0}
            for i, nb in enumerate(adj)
        ]
    else:
        free_adj = adj
    t["graph"] = time.perf_counter() - t1

    # Communities: imported outlines, else contiguous major blocks of about N households.
    t2 = time.perf_counter()
    if inputs.communities:
        codes = [c for c, _ in inputs.communities]
        polys = np.array([g for _, g in inputs.communities], dtype=object)
        piece_comm = C.assign_to_blocks(raw, polys)
    else:
        # Nodes: major-road blocks; one holding more than a community's upper bound (a
        # historic centre without major roads through it) is cut first into contiguous
        # sets of its street blocks of about a community each.
        n_major = len(majors)
        n_blocks = len(tess.blocks)
        block_hh = np.bincount(piece_block, weights=piece_hh, minlength=n_blocks)
        major_hh = np.bincount(block_major, weights=block_hh, minlength=n_major)
        block_xy = shapely.get_coordinates(shapely.point_on_surface(tess.blocks))
        node_of_block = block_major.astype(np.int64).copy()
        n_nodes = n_major
        too_big = major_hh > params.community_households * COMMUNITY_MAX
        if too_big.any():
            block_adj = _aggregate(adj, piece_block, n_blocks)
            for m in np.flatnonzero(too_big).tolist():
                blocks = np.flatnonzero(block_major == m).tolist()
                for part in _split(
                    blocks,
                    block_hh,
                    block_xy,
                    block_adj,
                    params.community_households,
                    rounds=LIGHT_ROUNDS,
                ):
                    node_of_block[part] = n_nodes
                    n_nodes += 1
        node_of_piece = node_of_block[piece_block]
        node_hh = np.bincount(node_of_block, weights=block_hh, minlength=n_nodes)
        node_adj = _aggregate(adj, node_of_piece, n_nodes)
        node_n = np.bincount(node_of_block, minlength=n_nodes)
        node_xy = np.zeros((n_nodes, 2))
        np.add.at(node_xy, node_of_block, block_xy)
        node_xy /= np.maximum(node_n, 1)[:, None]
        parts = _split(
            np.flatnonzero(node_n > 0).tolist(),
            node_hh,
            node_xy,
            node_adj,
            params.community_households,
            rounds=LIGHT_ROUNDS,
        )
        comm_of_node = np.full(n_nodes, -1)
        for ci, members in enumerate(parts):
            comm_of_node[members] = ci
        # communities made only of major blocks without land pieces drop out
        # a sliver of a block that the major-road outline put on the wrong side is not
        # next to the rest of its community: it joins the community it touches most
        lab = comm_of_node[node_of_piece].tolist()
        _repair(lab, piece_hh.tolist(), adj)
        _, piece_comm = np.unique(np.asarray(lab), return_inverse=True)
        codes = []
    n_comm = len(codes) if inputs.communities else int(piece_comm.max()) + 1

    # Units: within a street block, small buildings join a neighbour.
    unit_of_piece = np.full(len(pieces), -1)
    unit_of_piece[:n_b] = np.arange(n_b)
    parent = list(range(n_b))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    size = hh[inside].copy()
    order = np.argsort(size, kind="stable")
    for i in order.tolist():
        if size[find(i)] >= params.unit_min_households or piece_frozen[i] >= 0:
            continue
        ri = find(i)
        options = []
        for j, L in free_adj[i].items():
            if j >= n_b or piece_block[j] != piece_block[i] or piece_comm[j] != piece_comm[i]:
                continue
            rj = find(j)
            if rj == ri:
                continue
            if hh[inside[i]] > 0 and size[ri] + size[rj] > params.unit_cap:
                continue
            options.append((size[rj], -L, rj))
        if options:
            _, _, rj = min(options)
            parent[ri] = rj
            size[rj] += size[ri]
    roots = np.array([find(i) for i in range(n_b)], dtype=np.int64)
    _, unit_of_building_piece = np.unique(roots, return_inverse=True)
    n_units = int(unit_of_building_piece.max()) + 1 if n_b else 0
    unit_of_piece[:n_b] = unit_of_building_piece
    unit_hh = np.bincount(unit_of_building_piece, weights=hh[inside], minlength=n_units)
    unit_xy = np.zeros((n_units, 2))
    np.add.at(unit_xy, unit_of_building_piece, piece_xy[:n_b])
    unit_xy /= np.bincount(unit_of_building_piece, minlength=n_units)[:, None]
    unit_major = np.zeros(n_units, dtype=np.int64)
    unit_major[unit_of_building_piece] = piece_major[:n_b]
    unit_comm = np.zeros(n_units, dtype=np.int64)
    unit_comm[unit_of_building_piece] = piece_comm[:n_b]
    unit_frozen = np.full(n_units, -1, dtype=np.int64)
    unit_frozen[unit_of_building_piece] = piece_frozen[:n_b]
    unit_blocks: list[set[int]] = [set() for _ in range(n_units)]
    for p in range(n_b):
        unit_blocks[unit_of_building_piece[p]].add(int(piece_block[p]))

    # Empty blocks join the unit they share the longest edge with (same major block first).
    pending = [p for p in range(n_b, len(pieces)) if piece_frozen[p] < 0]
    for _ in range(len(pending) + 1):
        if not pending:
            break
        still = []
        for p in pending:
            best, best_key = -1, None
            for q, L in free_adj[p].items():
                u = unit_of_piece[q]
                if u < 0 or piece_comm[q] != piece_comm[p] and piece_comm[p] >= 0:
                    continue
                key = (piece_major[q] == piece_major[p], L)
                if best_key is None or key > best_key:
                    best, best_key = u, key
            if best >= 0:
                unit_of_piece[p] = best
            else:
                still.append(p)
        if len(still) == len(pending):
            break
        pending = still
    # Left: land whose neighbours with a unit are all in another community. It joins the
    # neighbour it shares most edge with anyway (a polygon must stay one piece), repeating
    # for chains; only land touching no unit at all (an island) takes the nearest unit.
    for _ in range(len(pending) + 1):
        still = []
        for p in pending:
            near = [(L, unit_of_piece[q]) for q, L in free_adj[p].items() if unit_of_piece[q] >= 0]
            if near:
                unit_of_piece[p] = max(near)[1]
            else:
                still.append(p)
        if not still or len(still) == len(pending):
            pending = still
            break
        pending = still
    free_units = np.flatnonzero(unit_frozen < 0)
    for p in pending:
        if len(free_units):
            d = np.hypot(*(unit_xy[free_units] - piece_xy[p]).T)
            unit_of_piece[p] = int(free_units[np.argmin(d)])
    unit_adj = _aggregate(free_adj, unit_of_piece, n_units)  # empty blocks link neighbours
    if not inputs.communities and n_units:
        # proposed communities are what their units cover; one left with no unit drops out
        present, unit_comm = np.unique(unit_comm, return_inverse=True)
        n_comm = len(present)
    t["units"] = time.perf_counter() - t2

    # Groups: per community and major block; oversize units stand alone.
    t3 = time.perf_counter()
    group_members: list[list[int]] = []
    group_flags: list[list[str]] = []
    group_comm: list[int] = []
    for c in range(n_comm):
        for m in np.unique(unit_major[unit_comm == c]).tolist():
            nodes = np.flatnonzero((unit_comm == c) & (unit_major == m) & (unit_frozen < 0))
            big = nodes[unit_hh[nodes] > params.group_max]
            for u in big.tolist():
                group_members.append([u])
                group_flags.append(["oversize"])
                group_comm.append(c)
            rest = nodes[unit_hh[nodes] <= params.group_max].tolist()
            whole = {frozenset(comp) for comp in _components(rest, unit_adj)}
            for part in _split(rest, unit_hh, unit_xy, unit_adj, params.group_households):
                group_members.append(part)
                total = unit_hh[part].sum()
                if total == 0:  # offices, schools, a hospital block: held, not balanced
                    flags = ["no_households"]
                elif total < params.group_min and frozenset(part) in whole:
                    # all the homes of a piece of a major-road block: nothing to add them to
                    flags = ["small_block"]
                else:
                    flags = []
                group_flags.append(flags)
                group_comm.append(c)
    n_groups = len(group_members)
    unit_group = np.full(n_units, -1, dtype=np.int64)  # frozen units keep their own group
    for g, members in enumerate(group_members):
        unit_group[members] = g
    # Clusters inside each group.
    cluster_members: list[list[int]] = []
    cluster_group: list[int] = []
    for g, members in enumerate(group_members):
        for part in _split(
            members, unit_hh, unit_xy, unit_adj, params.cluster_households, rounds=LIGHT_ROUNDS
        ):
            cluster_members.append(part)
            cluster_group.append(g)
    unit_cluster = np.full(n_units, -1, dtype=np.int64)
    for k, members in enumerate(cluster_members):
        unit_cluster[members] = k
    free = unit_group >= 0
    group_hh = np.bincount(unit_group[free], weights=unit_hh[free], minlength=n_groups)
    group_xy = np.zeros((n_groups, 2))
    wxy = np.maximum(unit_hh[free], 1e-3)
    np.add.at(group_xy, unit_group[free], unit_xy[free] * wxy[:, None])
    group_xy /= np.maximum(np.bincount(unit_group[free], weights=wxy, minlength=n_groups), 1e-9)[
        :, None
    ]
    # Grids: contiguous groups of one community, locked groups taking part as they are.
    n_frozen = len(frozen_polys)
    piece_group = np.where(
        piece_frozen >= 0,
        n_groups + piece_frozen,
        np.where(unit_of_piece >= 0, unit_group[np.maximum(unit_of_piece, 0)], -1),
    )
    group_adj = _aggregate(adj, piece_group, n_groups + n_frozen)
    frozen_hh = np.bincount(
        piece_frozen[piece_frozen >= 0], weights=piece_hh[piece_frozen >= 0], minlength=n_frozen
    )
    frozen_comm = np.zeros(n_frozen, dtype=np.int64)
    for p in np.flatnonzero(piece_frozen >= 0).tolist():
        frozen_comm[piece_frozen[p]] = piece_comm[p] if inputs.communities else 0
    all_hh = np.concatenate([group_hh, frozen_hh])
    all_xy = np.vstack(
        [group_xy, shapely.get_coordinates(shapely.point_on_surface(frozen_polys)).reshape(-1, 2)]
    )
    gc = np.array(group_comm, dtype=np.int64)
    all_comm = np.concatenate([gc, frozen_comm])
    grid_members: list[list[int]] = []
    grid_comm: list[int] = []
    for c in range(n_comm):
        nodes = np.flatnonzero(all_comm == c).tolist()
        for part in _split(
            nodes, all_hh, all_xy, group_adj, params.grid_households, rounds=LIGHT_ROUNDS
        ):
            grid_members.append(part)
            grid_comm.append(c)
    all_grid = np.zeros(n_groups + n_frozen, dtype=np.int64)
    for k, members in enumerate(grid_members):
        all_grid[members] = k
    group_grid = all_grid[:n_groups]
    t["partition"] = time.perf_counter() - t3

    # Polygons: exact coverage unions, level by level.
    t4 = time.perf_counter()
    unit_geom = _union_by(pieces, unit_of_piece, n_units)
    cluster_geom = _union_by(unit_geom, unit_cluster, len(cluster_members))
    group_geom = _union_by(cluster_geom, np.array(cluster_group, dtype=np.int64), n_groups)
    frozen_geom = _union_by(pieces, piece_frozen, n_frozen)
    grid_geom = _union_by(np.concatenate([group_geom, frozen_geom]), all_grid, len(grid_members))
    if inputs.communities:
        comm_geom = np.array([g for _, g in inputs.communities], dtype=object)
    else:
        comm_geom = _union_by(grid_geom, np.array(grid_comm, dtype=np.int64), n_comm)
        codes = [f"P{c + 1:02d}" for c in _rank(comm_geom, 1000.0)]
    t["polygons"] = time.perf_counter() - t4

    # Codes in reading order: group 03, cluster 03-2, unit 03-2-1; grid G1 … per community.
    group_code = [""] * n_groups
    for c in range(n_comm):
        gs = np.flatnonzero(gc == c)
        taken = {frozen_codes[f] for f in range(n_frozen) if frozen_comm[f] == c}
        number = 0
        for g in gs[_reading_order(group_xy[gs], 150.0)].tolist():
            number += 1
            while f"{number:02d}" in taken:
                number += 1
            group_code[g] = f"{number:02d}"
    cluster_code = [""] * len(cluster_members)
    cg = np.array(cluster_group, dtype=np.int64)
    cxy = np.array([unit_xy[m].mean(axis=0) for m in cluster_members]).reshape(-1, 2)
    for g in range(n_groups):
        ks = np.flatnonzero(cg == g)
        for rank, k in enumerate(ks[_reading_order(cxy[ks], 40.0)].tolist()):
            cluster_code[k] = f"{group_code[g]}-{rank + 1}"
    unit_code = [""] * n_units
    for k in range(len(cluster_members)):
        us = np.array(cluster_members[k])
        for rank, u in enumerate(us[_reading_order(unit_xy[us], 15.0)].tolist()):
            unit_code[u] = f"{cluster_code[k]}-{rank + 1}"
    grid_code = [""] * len(grid_members)
    gcomm = np.array(grid_comm, dtype=np.int64)
    gxy = np.array([all_xy[m].mean(axis=0) for m in grid_members]).reshape(-1, 2)
    for c in range(n_comm):
        ks = np.flatnonzero(gcomm == c)
        for rank, k in enumerate(ks[_reading_order(gxy[ks], 300.0)].tolist()):
            grid_code[k] = f"G{rank + 1}"

    building_unit = np.full(len(fp), -1, dtype=np.int64)
    building_unit[inside] = unit_of_building_piece
    cells_out = np.full(len(fp), None, dtype=object)
    cells_out[inside] = pieces[:n_b]
    groups = Level(group_code, gc, group_hh, group_geom, group_flags)
    result = Result(
        building_unit=building_unit,
        units=Level(unit_code, unit_cluster, unit_hh, unit_geom),
        clusters=Level(
            cluster_code,
            cg,
            np.bincount(
                unit_cluster[unit_cluster >= 0],
                weights=unit_hh[unit_cluster >= 0],
                minlength=len(cluster_members),
            ),
            cluster_geom,
        ),
        groups=groups,
        grids=Level(
            grid_code,
            gcomm,
            np.bincount(all_grid, weights=all_hh, minlength=len(grid_members)),
            grid_geom,
        ),
        communities=Level(
            codes,
            np.zeros(n_comm, dtype=np.int64),
            np.bincount(all_comm, weights=all_hh, minlength=n_comm),
            comm_geom,
        ),
        cells=cells_out,
        block_hash=tess.block_hash,
        block_cells={
            tess.block_hash[b]: list(tess.cells[tess.building_block == b])
            for b in np.unique(tess.building_block[inside]).tolist()
        },
        timings=t,
        quality={},
        raw_cells=tess.cells,
        building_block_hash=[
            tess.block_hash[b] if b >= 0 else "" for b in tess.building_block.tolist()
        ],
        group_grid=group_grid,
        frozen_geom=frozen_geom,
        frozen_comm=frozen_comm,
        frozen_grid=all_grid[n_groups:],
        land_geom=pieces[n_b:],
        land_unit=np.where(piece_frozen[n_b:] >= 0, -1, unit_of_piece[n_b:]),
        land_hash=[tess.block_hash[b] for b in empty_blocks.tolist()],
        coverage_reused=coverage_reused,
        coverage=(
            cover_key,
            cells_out,
            {
                tess.block_hash[b]: g
                for b, g in zip(empty_blocks.tolist(), pieces[n_b:], strict=True)
            },
        ),
    )
    result.quality = quality(result, unit_blocks, unit_major, params)
    return result


def _rank(geoms: np.ndarray, band: float) -> np.ndarray:
    """Return each geometry's position in reading order."""
    xy = shapely.get_coordinates(shapely.point_on_surface(geoms))
    order = _reading_order(xy, band)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank


def _union_by(geoms: np.ndarray, label: np.ndarray, n: int) -> np.ndarray:
    order = np.argsort(label, kind="stable")
    sorted_label = label[order]
    bounds = np.searchsorted(sorted_label, np.arange(n + 1))
    out = np.empty(n, dtype=object)
    counts = np.diff(bounds)
    single = np.flatnonzero(counts == 1)
    out[single] = geoms[order[bounds[single]]]  # one member: its own polygon, no union
    for i in np.flatnonzero(counts != 1).tolist():
        members = geoms[order[bounds[i] : bounds[i + 1]]]
        members = members[~shapely.is_empty(members)]
        out[i] = shapely.coverage_union_all(members) if len(members) else shapely.Polygon()
    return out


def quality(r: Result, unit_blocks: list[set[int]], unit_major: np.ndarray, params: Params) -> dict:
    """The run's quality report (see docs/delineation.md for each figure).

    Household figures are over residential groups: oversize single buildings and groups of
    buildings without households are counted apart.
    """
    g = r.groups
    oversize = np.array(["oversize" in f for f in g.flags], dtype=bool)
    empty = np.array(["no_households" in f for f in g.flags], dtype=bool)
    hh = g.households[~oversize & ~empty]
    small_block = np.array(["small_block" in f for f in g.flags], dtype=bool)
    splittable = g.households[~oversize & ~empty & ~small_block]
    in_band = (hh >= params.group_min) & (hh <= params.group_max)
    parts = shapely.get_num_geometries(g.geom)
    has = r.units.parent >= 0  # units of locked groups are not drawn again
    unit_group = np.where(has, r.clusters.parent[np.maximum(r.units.parent, 0)], -1)
    crossing_minor = 0
    crossing_major = 0
    for gi in range(len(g.code)):
        units = np.flatnonzero(unit_group == gi)
        blocks = set().union(*(unit_blocks[u] for u in units)) if len(units) else set()
        crossing_minor += len(blocks) > 1
        crossing_major += len(set(unit_major[units].tolist())) > 1
    gaps, overlaps = [], []
    for c in range(len(r.communities.code)):
        mine = np.concatenate([g.geom[g.parent == c], r.frozen_geom[r.frozen_comm == c]])
        union = shapely.union_all(mine, grid_size=C.GRID_M)
        comm = r.communities.geom[c]
        overlaps.append(float(shapely.area(mine).sum() - shapely.area(union)))
        gaps.append(float(shapely.area(shapely.difference(comm, union, grid_size=C.GRID_M))))
    return {
        "buildings": int((r.building_unit >= 0).sum()),
        "units": len(r.units.code),
        "clusters": len(r.clusters.code),
        "groups": len(g.code),
        "grids": len(r.grids.code),
        "communities": len(r.communities.code),
        "households": float(g.households.sum()),
        "group_households": {
            "min": float(hh.min()) if len(hh) else 0.0,
            "median": float(np.median(hh)) if len(hh) else 0.0,
            "max": float(hh.max()) if len(hh) else 0.0,
            "cv": float(hh.std() / hh.mean()) if len(hh) and hh.mean() > 0 else 0.0,
        },
        "share_in_band": float(in_band.mean()) if len(hh) else 1.0,
        "band": [params.group_min, params.group_max],
        "oversize_groups": int(oversize.sum()),
        "groups_without_households": int(empty.sum()),
        # below the band because their whole piece of a major-road block holds fewer homes:
        # no partition can help these; the CV without them shows what the partition achieves
        "small_block_groups": int(small_block.sum()),
        "cv_without_small_blocks": float(splittable.std() / splittable.mean())
        if len(splittable) and splittable.mean() > 0
        else 0.0,
        "non_contiguous_groups": int((parts > 1).sum()),
        "groups_crossing_minor_streets": int(crossing_minor),
        "groups_crossing_major_roads": int(crossing_major),
        "gap_m2": round(float(sum(gaps)), 3),
        "overlap_m2": round(float(sum(overlaps)), 3),
    }
