"""Split a connected set of weighted members into k contiguous, balanced parts.

1. Recursive coordinate bisection: cut along the longer side at the weight that gives each
   side its share of the k parts. Parts come out compact, and nearly always contiguous.
2. Contiguity repair: a part that fell into pieces keeps its heaviest piece; the others
   join the neighbouring part they touch most.
3. Refinement (``refine``), repeated while it helps:
   * moves and swaps: a member on a part's edge moves to a neighbouring part, or swaps with
     a member across the edge, when that lowers the cost (squared deviation from the
     target, heavier outside the band) and leaves both parts in one piece;
   * re-splits: two neighbouring parts are put together and cut again, the best of many
     connected cuts grown from each member outwards. This finds what single moves cannot
     when members are lumpy (two walk-ups of 45 households each, a tower of 90);
   * chains: two parts outside the band, a few parts apart, are partitioned again together
     with the parts between them.

Members are whole (a building, a unit): balance is limited by their sizes, never by
splitting them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from gis.delineate.graph import components
from gis.delineate.refine import Cost, Parts, improve, moves

MAX_ROUNDS = 8  # rounds of (moves and swaps, then re-splits)
CHAIN_DEPTH = 6  # parts between two defects that ``_chains`` pairs, at most
RING_DEPTH = 4  # rings of neighbouring parts a lone defect is partitioned again with
RING_PARTS = 24  # parts in such a neighbourhood, at most
SMALL_BISECT = 32  # members or fewer: bisected in plain Python (the same cuts)


def choose_k(total: float, target: float) -> int:
    """Return the number of parts whose mean size is closest to ``target``."""
    if total <= 0:
        return 1
    lo = max(1, int(total // target))
    return min((lo, lo + 1), key=lambda k: abs(total / k - target))


def _bisect(idx: np.ndarray, xy: np.ndarray, w: np.ndarray, k: int, out: np.ndarray, nxt: list):
    if k == 1 or len(idx) == 1:
        out[idx] = nxt[0]
        nxt[0] += 1
        return
    if len(idx) <= SMALL_BISECT:
        ids = idx.tolist()
        _bisect_small(list(range(len(ids))), xy[idx].tolist(), w[idx].tolist(), k, ids, out, nxt)
        return
    pts = xy[idx]
    span = pts.max(axis=0) - pts.min(axis=0)
    axis = int(np.argmax(span))
    order = idx[np.lexsort((pts[:, 1 - axis], pts[:, axis]))]
    cum = np.cumsum(w[order])
    total = cum[-1]
    k1 = k // 2
    if total > 0:
        cut = int(np.argmin(np.abs(cum[:-1] - total * k1 / k))) + 1
    else:
        cut = max(1, len(order) * k1 // k)
    cut = min(max(cut, 1), len(order) - 1)
    _bisect(order[:cut], xy, w, k1, out, nxt)
    _bisect(order[cut:], xy, w, k - k1, out, nxt)


def _bisect_small(
    order: list[int], pts: list, w: list[float], k: int, ids: list[int], out: np.ndarray, nxt: list
) -> None:
    """``_bisect`` of a few members in plain Python, cut for cut the same.

    ``order`` indexes ``pts``, ``w`` and ``ids`` (the members' numbers in ``out``); the
    figures are computed as there (sequential sums, the first of equal minima, stable
    sorts), so the parts are the same.
    """
    if k == 1 or len(order) == 1:
        label = nxt[0]
        for i in order:
            out[ids[i]] = label
        nxt[0] += 1
        return
    xs = [pts[i][0] for i in order]
    ys = [pts[i][1] for i in order]
    axis = 0 if max(xs) - min(xs) >= max(ys) - min(ys) else 1
    order = sorted(order, key=lambda i: (pts[i][axis], pts[i][1 - axis]))
    cum, acc = [], 0.0
    for i in order:
        acc += w[i]
        cum.append(acc)
    total = cum[-1]
    k1 = k // 2
    if total > 0:
        goal = total * k1 / k
        cut = min(range(len(order) - 1), key=lambda j: abs(cum[j] - goal)) + 1
    else:
        cut = max(1, len(order) * k1 // k)
    cut = min(max(cut, 1), len(order) - 1)
    _bisect_small(order[:cut], pts, w, k1, ids, out, nxt)
    _bisect_small(order[cut:], pts, w, k - k1, ids, out, nxt)


def partition(
    w: np.ndarray,
    xy: np.ndarray,
    adj: list[dict[int, float]],
    k: int,
    band: float = 0.2,
    target: float | None = None,
    rounds: int | None = None,
    chains: bool = True,
) -> np.ndarray:
    """Return a part label (0..k'-1) per member; every part is connected in ``adj``.

    ``adj[i]`` maps each neighbour of member i to the length of their shared edge; the
    members must form one connected set. ``rounds`` bounds the refinement (default
    ``MAX_ROUNDS``); ``chains`` adds the pairing of distant defects.
    """
    n = len(w)
    if n == 0 or k <= 1:
        return np.zeros(n, dtype=np.int64)
    k = min(k, n)
    wf = w.astype(float)
    if target is None:
        target = float(wf.sum()) / k
    labels = np.zeros(n, dtype=np.int64)
    _bisect(np.arange(n), xy - xy.mean(axis=0), wf, k, labels, [0])
    lab = labels.tolist()
    repair(lab, wf.tolist(), adj)
    st = Parts.of(lab, wf.tolist(), adj, xy, Cost(target, band))
    _refine(st, MAX_ROUNDS if rounds is None else rounds, chains)
    # the parts numbered in the order of their ids (np.unique's inverse, without its sort)
    rank = {p: i for i, p in enumerate(sorted(set(st.lab)))}
    return np.fromiter((rank[p] for p in st.lab), np.int64, n)


def repair(lab: list[int], w: list[float], adj: list[dict[int, float]]) -> None:
    """Relabel in place so that every part is connected.

    A part in pieces keeps its heaviest one; each other piece joins the part it shares
    most edge with.
    """
    changed = True
    while changed:
        changed = False
        parts: dict[int, list[int]] = {}
        for i, p in enumerate(lab):
            parts.setdefault(p, []).append(i)
        for p, members in parts.items():
            pieces = components(members, adj)
            if len(pieces) == 1:
                continue
            pieces.sort(key=lambda c: (-sum(w[i] for i in c), -len(c)))
            for piece in pieces[1:]:
                changed |= _join_touching(lab, piece, p, adj)


def _join_touching(lab: list[int], piece: list[int], p: int, adj: list[dict[int, float]]) -> bool:
    """Give ``piece`` of part p to the part it shares most edge with; False if it has none."""
    touch: dict[int, float] = {}
    for u in piece:
        for v, length in adj[u].items():
            if lab[v] != p:
                touch[lab[v]] = touch.get(lab[v], 0.0) + length
    if not touch:
        return False
    q = max(touch, key=touch.get)
    for u in piece:
        lab[u] = q
    return True


def _refine(st: Parts, rounds: int, chains: bool) -> None:
    dirty = None
    for _ in range(rounds):
        moves(st)
        dirty = improve(st, dirty)
        if not dirty:
            break
    if chains and _chains(st):
        improve(st, None)


def _chains(st: Parts) -> bool:
    """Pair up parts outside the band through the parts between them; True if any changed.

    Members of one size (walk-ups of 45 households) leave one part too big or too small
    wherever a stretch holds an odd count of them. No single re-cut can move that defect,
    so two of them far apart both stay. Here the nearest other defect is found through
    neighbouring parts (at most ``CHAIN_DEPTH`` steps), and the whole chain between them is
    partitioned again: the two defects usually cancel out.
    """
    cost = st.cost
    tried: set[int] = set()
    changed = False
    for _ in range(len(st.members)):
        padj = st.neighbour_parts()
        defects = {p for p in st.members if not cost.is_in_band(st.size[p]) and p not in tried}
        if not defects:
            break
        improved = False
        for a in sorted(defects, key=lambda p: -cost(st.size[p])):
            path = _path_to_defect(st, a, padj)
            tried.add(a)
            if path is None:
                continue
            now = sum(cost(st.size[p]) for p in path)
            members = set().union(*(st.members[p] for p in path))
            groups = recut(members, st.w, st.xy, st.adj, cost)
            if groups is not None and sum(cost(st.weight(g)) for g in groups) < now - 1e-6:
                st.relabel(groups, tuple(path))
                tried.difference_update(path)
                changed = improved = True
                break
        if not improved:
            break
    return changed


def mend_in_rings(
    parts: list[list[int]],
    w: np.ndarray,
    xy: np.ndarray,
    adj: list[dict[int, float]],
    cost: Cost,
    is_fixed: Callable[[int], bool],
) -> None:
    """Partition each part outside the band again with the parts around it, in place.

    What the partition and the balancing of buildings leave is a defect with no other
    defect near it: a part of 75 walled in by parts of 100 through members whose move
    would cut their own part in two. It is partitioned again together with its
    neighbours (then theirs, ``RING_DEPTH`` rings and ``RING_PARTS`` parts at most), with
    k, k+1 and k-1 parts, and kept only if the cost drops. Parts for which ``is_fixed``
    holds are never taken in.
    """
    of = {m: i for i, p in enumerate(parts) for m in p}
    for a in sorted(range(len(parts)), key=lambda i: -cost(float(w[parts[i]].sum()))):
        if is_fixed(a) or not parts[a] or cost.is_in_band(float(w[parts[a]].sum())):
            continue
        ring = {a}
        for _depth in range(RING_DEPTH):
            near = {of[v] for i in ring for u in parts[i] for v in adj[u] if v in of}
            wider = ring | {i for i in near if not is_fixed(i)}
            if len(wider) == len(ring) or len(wider) > RING_PARTS:
                break
            ring = wider
            now = sum(cost(float(w[parts[i]].sum())) for i in ring)
            cut = recut({m for i in ring for m in parts[i]}, w, xy, adj, cost)
            if cut is None or len(cut) > len(ring):
                continue  # more parts than were there: not a fix of this one
            if sum(cost(float(w[list(g)].sum())) for g in cut) < now - 1e-6:
                _replace(parts, of, sorted(ring), cut)
                break


def _replace(parts: list[list[int]], of: dict[int, int], old: list[int], new: list) -> None:
    """Put the sets ``new`` in the places of parts ``old`` (fewer: the rest left empty)."""
    for i in old:
        parts[i] = []
    for i, g in zip(old, new, strict=False):
        parts[i] = sorted(g)
        for m in g:
            of[m] = i


def _path_to_defect(st: Parts, a: int, padj: dict[int, set[int]]) -> list[int] | None:
    """Parts from the nearest other part outside the band back to part ``a`` (breadth first)."""
    prev: dict[int, int | None] = {a: None}
    frontier, found = [a], None
    for _depth in range(CHAIN_DEPTH):
        step = []
        for p in frontier:
            found = _first_defect(st, p, padj, prev, step)
            if found is not None:
                break
        if found is not None or not step:
            break
        frontier = step
    if found is None:
        return None
    path = [found]
    while prev[path[-1]] is not None:
        path.append(prev[path[-1]])
    return path


def _first_defect(
    st: Parts, p: int, padj: dict[int, set[int]], prev: dict[int, int | None], step: list[int]
) -> int | None:
    """One breadth-first step from part p: the first new neighbour outside the band, if any."""
    for q in sorted(padj[p]):
        if q in prev:
            continue
        prev[q] = p
        if not st.cost.is_in_band(st.size[q]):
            return q
        step.append(q)
    return None


def recut(
    members: set[int], w: Sequence[float], xy: np.ndarray, adj: list[dict[int, float]], cost: Cost
) -> list[set[int]] | None:
    """The best contiguous partition of ``members`` with about total / target parts."""
    mem = sorted(members)
    local = {m: i for i, m in enumerate(mem)}
    sub = [{local[v]: L for v, L in adj[m].items() if v in local} for m in mem]
    wl = np.array([w[m] for m in mem], dtype=float)
    target = cost.target
    k0 = choose_k(float(wl.sum()), target)
    best, best_cost = None, None
    for k in dict.fromkeys((k0, k0 + 1, max(1, k0 - 1))):
        if k > len(mem):
            continue
        labels = partition(
            wl, xy[mem], sub, k, cost.band, target=target, rounds=MAX_ROUNDS, chains=False
        )
        c = float(cost.vec(np.bincount(labels, weights=wl)).sum())
        if best_cost is None or c < best_cost:
            best, best_cost = labels, c
    if best is None:
        return None
    return [{mem[i] for i in np.flatnonzero(best == p).tolist()} for p in range(best.max() + 1)]


def split(
    nodes: list[int],
    w: np.ndarray,
    xy: np.ndarray,
    adj: list[dict[int, float]],
    target: float,
    band: float,
    rounds: int = MAX_ROUNDS,
) -> list[list[int]]:
    """Return contiguous parts of about ``target`` over ``nodes`` (each connected piece apart).

    The partition starts from the number of parts closest to total / target and merges or
    cuts parts where members are too lumpy for it; ``rounds`` bounds that work (the levels
    that matter less get fewer, and no chains).
    """
    out = []
    for comp in components(nodes, adj):
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
            wc,
            xy[idx],
            sub,
            k0,
            band,
            target=target,
            rounds=rounds,
            chains=rounds >= MAX_ROUNDS,
        )
        order = np.argsort(labels, kind="stable")
        bounds = np.searchsorted(labels[order], np.arange(labels.max() + 2))
        out.extend(idx[order[bounds[p] : bounds[p + 1]]].tolist() for p in range(len(bounds) - 1))
    return out
