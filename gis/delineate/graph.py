"""Which members touch which: the adjacency every level is drawn on, and its connectivity.

Members are pieces of land, units, groups or parts of a partition; ``adj[i]`` holds the
neighbours of member i (a dict to shared edge length, or a list). Every question "is this
set one piece?" and "what are its pieces?" in the delineation goes through ``_reach``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Container, Iterable, Sequence
from itertools import chain

import numpy as np
import shapely

from gis.delineate.cells import GRID_M

Adjacency = Sequence[Iterable[int]]
MIN_SHARED_M = 0.01  # shorter shared edges are a touch at a corner: not neighbours


def _reach(
    start: int,
    adj: Adjacency,
    allowed: Container[int],
    seen: set[int],
    wanted: set[int] | None = None,
) -> list[int]:
    """Return the members of ``allowed`` reachable from ``start``, depth first.

    ``seen`` is updated (members in it are walls); with ``wanted``, the walk stops as soon
    as every member of it has been found (it is emptied on the way).
    """
    seen.add(start)
    found, stack = [], [start]
    while stack and (wanted is None or wanted):
        u = stack.pop()
        found.append(u)
        for v in adj[u]:
            if v in allowed and v not in seen:
                seen.add(v)
                if wanted is not None:
                    wanted.discard(v)
                stack.append(v)
    return found


def components(nodes: Iterable[int], adj: Adjacency) -> list[list[int]]:
    """Return the connected pieces of ``nodes``, each from its first member in ``nodes``."""
    order = list(nodes)
    allowed = set(order)
    seen: set[int] = set()
    return [_reach(s, adj, allowed, seen) for s in order if s not in seen]


def is_connected(nodes: Collection[int], adj: Adjacency, without: int | None = None) -> bool:
    """Return whether ``nodes`` (less ``without``) are one non-empty piece.

    With ``without`` (a member of ``nodes``, which must be connected), the walk stops once
    every neighbour of ``without`` is reached: what a move of one member needs to know.
    """
    if without is None:
        if not nodes:
            return False
        seen: set[int] = set()
        _reach(next(iter(nodes)), adj, nodes, seen)
        return len(seen) == len(nodes)
    if len(nodes) <= 1:
        return False
    near = [v for v in adj[without] if v in nodes]
    if len(near) <= 1:
        return len(near) == 1  # a leaf leaves the rest as it was; none: it was alone
    wanted = set(near[1:])
    _reach(near[0], adj, nodes, {without}, wanted)
    return not wanted


def _segment_ids(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Number the distinct segments (end points ``lo``, ``hi`` on the grid) in sorted order.

    What ``np.unique(..., axis=0, return_inverse=True, return_counts=True)`` gives for the
    rows (lo, hi), without its row-wise sort: each end point is packed into one integer
    (rows of the bounding box, then columns), which keeps the order, and two keys are
    sorted instead of four columns.
    """
    if not len(lo):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    ends = np.concatenate([lo, hi])
    low = ends.min(axis=0)
    rows = int(ends[:, 1].max() - low[1]) + 1
    pa = (lo[:, 0] - low[0]) * rows + (lo[:, 1] - low[1])
    pb = (hi[:, 0] - low[0]) * rows + (hi[:, 1] - low[1])
    order = np.lexsort((pb, pa))
    sa, sb = pa[order], pb[order]
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = (sa[1:] != sa[:-1]) | (sb[1:] != sb[:-1])
    ids = np.cumsum(starts) - 1
    seg = np.empty(len(order), dtype=np.int64)
    seg[order] = ids
    return seg, np.bincount(ids)


def shared_edges(geoms: np.ndarray) -> list[dict[int, float]]:
    """Return per piece its neighbours and the length of edge shared with each.

    The pieces are one exactly noded coverage, so two neighbours share their boundary
    segments vertex for vertex: matching segments by their end points finds every shared
    edge without any geometric predicate.
    """
    n = len(geoms)
    rings = shapely.get_rings(geoms, return_index=True)
    xy, ring_of = shapely.get_coordinates(rings[0], return_index=True)
    owner = rings[1][ring_of]
    same = ring_of[1:] == ring_of[:-1]  # consecutive vertices of one ring: a segment
    a, b = xy[:-1][same], xy[1:][same]
    piece = owner[:-1][same]
    key_a = np.round(a / GRID_M).astype(np.int64)
    key_b = np.round(b / GRID_M).astype(np.int64)
    swap = (key_a[:, 0] > key_b[:, 0]) | (
        (key_a[:, 0] == key_b[:, 0]) & (key_a[:, 1] > key_b[:, 1])
    )
    lo = np.where(swap[:, None], key_b, key_a)
    hi = np.where(swap[:, None], key_a, key_b)
    length = np.hypot(*(b - a).T)
    seg, counts = _segment_ids(lo, hi)
    shared = counts[seg] == 2
    order = np.lexsort((piece[shared], seg[shared]))
    s_piece, s_len = piece[shared][order], length[shared][order]
    first, second, lens = s_piece[0::2], s_piece[1::2], s_len[0::2]
    diff = first != second
    i, j, seg_len = first[diff], second[diff], lens[diff]
    pair = np.minimum(i, j).astype(np.int64) * n + np.maximum(i, j)
    uniq, inv = np.unique(pair, return_inverse=True)
    total = np.bincount(inv.ravel(), weights=seg_len)
    adj: list[dict[int, float]] = [{} for _ in range(n)]
    keep = total > MIN_SHARED_M
    for pr, tl in zip(uniq[keep].tolist(), total[keep].tolist(), strict=True):
        u, v = divmod(pr, n)
        adj[u][v] = tl
        adj[v][u] = tl
    return adj


def aggregate(adj: list[dict[int, float]], label: np.ndarray, n: int) -> list[dict[int, float]]:
    """Return the adjacency between ``n`` sets of members (members labelled -1 left out).

    Each set's neighbours come in the order their first shared edge is met (member by
    member, neighbour by neighbour), and the lengths add up in that order.
    """
    out: list[dict[int, float]] = [{} for _ in range(n)]
    count = np.fromiter(map(len, adj), np.int64, len(adj))
    total = int(count.sum())
    if not total:
        return out
    label = np.asarray(label, dtype=np.int64)
    src = np.repeat(np.arange(len(adj)), count)
    dst = np.fromiter(chain.from_iterable(adj), np.int64, total)
    length = np.fromiter(chain.from_iterable(nb.values() for nb in adj), float, total)
    li, lj = label[src], label[dst]
    keep = (li >= 0) & (lj >= 0) & (li != lj)
    pair = li[keep] * n + lj[keep]
    uniq, first, inv = np.unique(pair, return_index=True, return_inverse=True)
    sums = np.bincount(inv.ravel(), weights=length[keep], minlength=len(uniq))  # in order
    seen = np.argsort(first, kind="stable")
    a, b = np.divmod(uniq[seen], n)
    for x, y, t in zip(a.tolist(), b.tolist(), sums[seen].tolist(), strict=True):
        out[x][y] = t
    return out


def without_frozen(adj: list[dict[int, float]], frozen: np.ndarray) -> list[dict[int, float]]:
    """Return ``adj`` where members with ``frozen >= 0`` are nobody's neighbour."""
    return [
        {} if frozen[i] >= 0 else {j: L for j, L in nb.items() if frozen[j] < 0}
        for i, nb in enumerate(adj)
    ]


def assign_until_stable(pending: list[int], assign: Callable[[int], bool]) -> list[int]:
    """Pass over ``pending`` while passes assign some; return what is left."""
    for _ in range(len(pending) + 1):
        if not pending:
            break
        still = [p for p in pending if not assign(p)]
        if len(still) == len(pending):
            break
        pending = still
    return pending
