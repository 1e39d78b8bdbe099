"""Split a connected set of weighted members into k contiguous, balanced parts.

1. Recursive coordinate bisection: cut along the longer side at the weight that gives each
   side its share of the k parts. Parts come out compact, and nearly always contiguous.
2. Contiguity repair: a part that fell into pieces keeps its heaviest piece; the others
   join the neighbouring part they touch most.
3. Refinement: members on a part's edge move to a neighbouring part, or swap with a member
   across the edge, while that lowers the cost (squared deviation from the target, ten
   times heavier outside the band) and leaves both parts in one piece.

Members are whole (a building, a unit): balance is limited by their sizes, never by
splitting them.
"""

from __future__ import annotations

from collections import deque

import numpy as np

MAX_PASSES = 30
FULL_PASSES = 30  # passes that also even out parts already within the band


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


def _pieces(members: list[int], adj: list[dict[int, float]], allowed: set[int]) -> list[list[int]]:
    seen: set[int] = set()
    out = []
    for m in members:
        if m in seen:
            continue
        comp, queue = [], deque([m])
        seen.add(m)
        while queue:
            u = queue.popleft()
            comp.append(u)
            for v in adj[u]:
                if v in allowed and v not in seen:
                    seen.add(v)
                    queue.append(v)
        out.append(comp)
    return out


def _connected_without(part: set[int], u: int, adj: list[dict[int, float]]) -> bool:
    return _connected(part - {u}, adj)


def partition(
    w: np.ndarray, xy: np.ndarray, adj: list[dict[int, float]], k: int, band: float = 0.2
) -> np.ndarray:
    """Return a part label (0..k'-1) per member; every part is connected in ``adj``.

    ``adj[i]`` maps each neighbour of member i to the length of their shared edge; the
    members must form one connected set.
    """
    n = len(w)
    labels = np.zeros(n, dtype=np.int64)
    if n == 0 or k <= 1:
        return labels
    k = min(k, n)
    _bisect(np.arange(n), xy, w.astype(float), k, labels, [0])
    _repair(labels, w, adj)
    _refine(labels, w, adj, w.sum() / len(np.unique(labels)), band)
    _, labels = np.unique(labels, return_inverse=True)
    return labels


def _repair(labels: np.ndarray, w: np.ndarray, adj: list[dict[int, float]]) -> None:
    changed = True
    while changed:
        changed = False
        for p in np.unique(labels):
            members = np.flatnonzero(labels == p).tolist()
            pieces = _pieces(members, adj, set(members))
            if len(pieces) == 1:
                continue
            pieces.sort(key=lambda c: (-w[c].sum(), -len(c)))
            for piece in pieces[1:]:
                touch: dict[int, float] = {}
                for u in piece:
                    for v, length in adj[u].items():
                        if labels[v] != p:
                            touch[labels[v]] = touch.get(labels[v], 0.0) + length
                if touch:
                    labels[piece] = max(touch, key=touch.get)
                    changed = True


def _cost(size: float, target: float, band: float) -> float:
    """Squared deviation from the target, ten times heavier outside the band."""
    out = max(0.0, target * (1 - band) - size, size - target * (1 + band))
    return (size - target) ** 2 + 10.0 * out**2


def _refine(
    labels: np.ndarray, w: np.ndarray, adj: list[dict[int, float]], target: float, band: float
):
    parts: dict[int, set[int]] = {}
    for i, p in enumerate(labels.tolist()):
        parts.setdefault(p, set()).add(i)
    size = {p: float(w[list(m)].sum()) for p, m in parts.items()}

    lo, hi = target * (1 - band), target * (1 + band)

    def cost(x: float) -> float:  # _cost, inlined: this runs in the innermost loop
        out = lo - x if x < lo else (x - hi if x > hi else 0.0)
        return (x - target) * (x - target) + 10.0 * out * out

    def gain(p: int, q: int, delta: float) -> float:
        """Lower cost when ``delta`` households go from part p to part q."""
        sp, sq = size[p], size[q]
        return cost(sp) + cost(sq) - cost(sp - delta) - cost(sq + delta)

    for n_pass in range(MAX_PASSES):
        passes_left_in_band = n_pass >= FULL_PASSES
        moved = 0
        for u in range(len(labels)):
            p = labels[u]
            if all(labels[v] == p for v in adj[u]):
                continue  # inside its part: nothing to move or swap
            if (
                passes_left_in_band
                and lo <= size[p] <= hi
                and all(lo <= size[labels[v]] <= hi for v in adj[u])
            ):
                continue  # after the first passes, only parts outside the band are worked on
            wu = float(w[u])
            best, best_gain = None, 1e-9
            for q in {labels[v] for v in adj[u]} - {p}:
                g = gain(p, q, wu)
                if g > best_gain:
                    best, best_gain = q, g
            if best is not None and _connected_without(parts[p], u, adj):
                parts[p].discard(u)
                parts[best].add(u)
                size[p] -= wu
                size[best] += wu
                labels[u] = best
                moved += 1
                continue
            # No single move helps: swap u with a member v of a neighbouring part.
            for v in list(adj[u]):
                q = labels[v]
                if q == p:
                    continue
                delta = wu - float(w[v])
                if delta == 0 or gain(p, q, delta) <= 1e-9:
                    continue
                new_p = (parts[p] - {u}) | {v}
                new_q = (parts[q] - {v}) | {u}
                if _connected(new_p, adj) and _connected(new_q, adj):
                    parts[p], parts[q] = new_p, new_q
                    size[p] -= delta
                    size[q] += delta
                    labels[u], labels[v] = q, p
                    moved += 1
                    break
        if not moved:
            break


def _connected(members: set[int], adj: list[dict[int, float]]) -> bool:
    if not members:
        return False
    start = next(iter(members))
    seen, queue = {start}, deque([start])
    while queue:
        a = queue.popleft()
        for b in adj[a]:
            if b in members and b not in seen:
                seen.add(b)
                queue.append(b)
    return len(seen) == len(members)
