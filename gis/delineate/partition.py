"""Split a connected set of weighted members into k contiguous, balanced parts.

1. Recursive coordinate bisection: cut along the longer side at the weight that gives each
   side its share of the k parts. Parts come out compact, and nearly always contiguous.
2. Contiguity repair: a part that fell into pieces keeps its heaviest piece; the others
   join the neighbouring part they touch most.
3. Refinement, repeated while it helps:
   * moves and swaps: a member on a part's edge moves to a neighbouring part, or swaps with
     a member across the edge, when that lowers the cost (squared deviation from the
     target, ten times heavier outside the band) and leaves both parts in one piece;
   * re-splits: two neighbouring parts are put together and cut again, the best of many
     connected cuts grown from each member outwards. This finds what single moves cannot
     when members are lumpy (two walk-ups of 45 households each, a tower of 90).

Members are whole (a building, a unit): balance is limited by their sizes, never by
splitting them. Several starts (the bisection turned by 0°, 45°, 90°, 135°) may be asked
for; the best result wins.
"""

from __future__ import annotations

import heapq
import math
from collections import deque

import numpy as np

MAX_ROUNDS = 8  # rounds of (moves and swaps, then re-splits)
RESPLIT_SEEDS = 12  # members a re-split grows from, at most
CHAIN_DEPTH = 6  # parts between two defects that ``_chains`` pairs, at most
CUT_CHECKS = 40  # cheapest candidate cuts checked for a connected rest, at most
USE_MOVES = True
MIN_GAIN = 0.03
SWEEP = True
BAD_WEIGHT = 30.0  # how much heavier a household outside the band counts


def choose_k(total: float, target: float) -> int:
    """Return the number of parts whose mean size is closest to ``target``."""
    if total <= 0:
        return 1
    lo = max(1, int(total // target))
    return min((lo, lo + 1), key=lambda k: abs(total / k - target))


def score(labels: np.ndarray, w: np.ndarray, target: float, band: float) -> tuple[int, float]:
    """(parts outside the band, sum of squared deviations from the target): lower is better."""
    sizes = np.bincount(labels, weights=w)
    out = int(((sizes < target * (1 - band)) | (sizes > target * (1 + band))).sum())
    return out, float(((sizes - target) ** 2).sum())


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


def partition(
    w: np.ndarray,
    xy: np.ndarray,
    adj: list[dict[int, float]],
    k: int,
    band: float = 0.2,
    starts: int = 1,
    target: float | None = None,
    rounds: int | None = None,
    chains: bool = True,
) -> np.ndarray:
    """Return a part label (0..k'-1) per member; every part is connected in ``adj``.

    ``adj[i]`` maps each neighbour of member i to the length of their shared edge; the
    members must form one connected set. ``starts`` (1–4) bisections turned by 45° each are
    refined and the best kept.
    """
    n = len(w)
    if n == 0 or k <= 1:
        return np.zeros(n, dtype=np.int64)
    k = min(k, n)
    wf = w.astype(float)
    if target is None:
        target = float(wf.sum()) / k
    best, best_score = None, None
    centred = xy - xy.mean(axis=0)
    for s in range(max(1, min(starts, 4))):
        a = s * math.pi / 4
        rot = centred @ np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        labels = np.zeros(n, dtype=np.int64)
        _bisect(np.arange(n), rot, wf, k, labels, [0])
        lab = labels.tolist()
        _repair(lab, wf.tolist(), adj)
        _refine(
            lab,
            wf.tolist(),
            adj,
            xy,
            target,
            band,
            MAX_ROUNDS if rounds is None else rounds,
            chains,
        )
        _, labels = np.unique(np.asarray(lab), return_inverse=True)
        sc = score(labels, wf, target, band)
        if best_score is None or sc < best_score:
            best, best_score = labels, sc
        if sc[0] == 0 and sc[1] <= (0.05 * target) ** 2 * k:
            break  # every part in the band and within 5 % on average: good enough
    return best


def _pieces(members: list[int], adj: list[dict[int, float]]) -> list[list[int]]:
    allowed = set(members)
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


def _repair(lab: list[int], w: list[float], adj: list[dict[int, float]]) -> None:
    changed = True
    while changed:
        changed = False
        parts: dict[int, list[int]] = {}
        for i, p in enumerate(lab):
            parts.setdefault(p, []).append(i)
        for p, members in parts.items():
            pieces = _pieces(members, adj)
            if len(pieces) == 1:
                continue
            pieces.sort(key=lambda c: (-sum(w[i] for i in c), -len(c)))
            for piece in pieces[1:]:
                touch: dict[int, float] = {}
                for u in piece:
                    for v, length in adj[u].items():
                        if lab[v] != p:
                            touch[lab[v]] = touch.get(lab[v], 0.0) + length
                if touch:
                    q = max(touch, key=touch.get)
                    for u in piece:
                        lab[u] = q
                    changed = True


def _connected(members: set[int], adj: list[dict[int, float]]) -> bool:
    if not members:
        return False
    start = next(iter(members))
    seen, queue = {start}, [start]
    while queue:
        a = queue.pop()
        for b in adj[a]:
            if b in members and b not in seen:
                seen.add(b)
                queue.append(b)
    return len(seen) == len(members)


def _still_connected(part: set[int], u: int, adj: list[dict[int, float]]) -> bool:
    """Whether ``part`` without ``u`` is one non-empty piece."""
    if len(part) <= 1:
        return False
    near = [v for v in adj[u] if v in part]
    if len(near) <= 1:
        return len(near) == 1  # a leaf leaves the rest as it was; none: u was alone
    want = set(near)
    start = near[0]
    seen, stack = {start, u}, [start]
    want.discard(start)
    while stack and want:
        a = stack.pop()
        for b in adj[a]:
            if b in part and b not in seen:
                seen.add(b)
                want.discard(b)
                stack.append(b)
    return not want


def _refine(
    lab: list[int],
    w: list[float],
    adj: list[dict[int, float]],
    xy: np.ndarray,
    target: float,
    band: float,
    rounds: int,
    chains: bool,
) -> None:
    parts: dict[int, set[int]] = {}
    for i, p in enumerate(lab):
        parts.setdefault(p, set()).add(i)
    size = {p: sum(w[i] for i in m) for p, m in parts.items()}
    cost = _Cost(target, band)
    dirty = None
    nxt = [max(parts) + 1]
    for _ in range(rounds):
        if USE_MOVES:
            _moves(lab, w, adj, parts, size, cost)
        dirty = _improve(lab, w, adj, xy, parts, size, cost, dirty, nxt)
        if not dirty:
            break
    if chains and _chains(lab, w, adj, xy, parts, size, cost, nxt, band):
        _improve(lab, w, adj, xy, parts, size, cost, None, nxt)


class _Cost:
    """Squared deviation from the target, ``BAD_WEIGHT`` times heavier outside the band."""

    def __init__(self, target: float, band: float):
        self.target, self.lo, self.hi = target, target * (1 - band), target * (1 + band)
        # a re-cut that gains less than this is not worth its time (for 100 households,
        # 1 household squared at MIN_GAIN 0.01: nothing a coefficient of variation shows)
        self.min_gain = (MIN_GAIN * target) ** 2

    def __call__(self, x: float) -> float:
        out = self.lo - x if x < self.lo else (x - self.hi if x > self.hi else 0.0)
        return (x - self.target) * (x - self.target) + BAD_WEIGHT * out * out

    def vec(self, x: np.ndarray) -> np.ndarray:
        out = np.maximum(np.maximum(self.lo - x, x - self.hi), 0.0)
        return (x - self.target) ** 2 + BAD_WEIGHT * out * out


def _moves(lab, w, adj, parts, size, cost) -> None:
    """Single moves and swaps across part edges while they lower the cost."""
    n = len(lab)
    queue = deque(u for u in range(n) if any(lab[v] != lab[u] for v in adj[u]))
    queued = set(queue)
    budget = 50 * n + 100
    while queue and budget > 0:
        budget -= 1
        u = queue.popleft()
        queued.discard(u)
        p = lab[u]
        others = {lab[v] for v in adj[u]}
        others.discard(p)
        if not others:
            continue
        wu = w[u]
        sp = size[p]
        base = cost(sp) - cost(sp - wu)
        best, best_gain = -1, 1e-9
        for q in others:
            sq = size[q]
            g = base + cost(sq) - cost(sq + wu)
            if g > best_gain:
                best, best_gain = q, g
        touched = None
        if best >= 0 and _still_connected(parts[p], u, adj):
            parts[p].discard(u)
            parts[best].add(u)
            size[p] -= wu
            size[best] += wu
            lab[u] = best
            touched = (p, best)
        else:
            # no single move helps: swap u with a member v of a neighbouring part
            for v in adj[u]:
                q = lab[v]
                if q == p:
                    continue
                delta = wu - w[v]
                sq = size[q]
                if delta == 0 or cost(sp) + cost(sq) - cost(sp - delta) - cost(sq + delta) <= 1e-9:
                    continue
                new_p = (parts[p] - {u}) | {v}
                new_q = (parts[q] - {v}) | {u}
                if _connected(new_p, adj) and _connected(new_q, adj):
                    parts[p], parts[q] = new_p, new_q
                    size[p] -= delta
                    size[q] += delta
                    lab[u], lab[v] = q, p
                    touched = (p, q)
                    break
        if touched:
            for part in touched:
                for m in parts[part]:
                    if m not in queued:
                        queue.append(m)
                        queued.add(m)


def _improve(lab, w, adj, xy, parts, size, cost, dirty: set[int] | None, nxt: list[int]):
    """One round of re-cuts around ``dirty`` parts (None: all); return the parts changed.

    For each part: cut it in two. For each pair of neighbouring parts: merge them, cut them
    again in two, or cut them in three. The option that lowers the cost most is taken; the
    options are tried cheapest bound first and skipped when even an ideal cut of their
    households could not beat what the best so far gives.
    """
    changed: set[int] = set()

    def relabel(groups: list[set[int]], old: tuple[int, ...]) -> None:
        changed.update(_relabel(lab, w, parts, size, groups, old, nxt))

    singles = [p for p in parts if dirty is None or p in dirty]
    for p in sorted(singles, key=lambda p: -cost(size[p])):
        if p in changed or len(parts[p]) < 2:
            continue
        now = cost(size[p])
        if now - 2 * cost(size[p] / 2) <= cost.min_gain:
            continue
        cut = _best_cut(parts[p], w, adj, xy, cost, now)
        if cut is not None:
            relabel(list(cut), (p,))

    pairs = set()
    for u in range(len(lab)):
        p = lab[u]
        for v in adj[u]:
            q = lab[v]
            if p < q and (
                dirty is None or p in dirty or q in dirty or p in changed or q in changed
            ):
                pairs.add((p, q))
    # worst pairs first: their parts are the furthest from the target
    for p, q in sorted(pairs, key=lambda pq: -(cost(size[pq[0]]) + cost(size[pq[1]]))):
        if p not in parts or q not in parts or lab[next(iter(parts[q]))] != q:
            continue
        if not any(lab[v] == q for u in parts[p] for v in adj[u]):
            continue  # no longer neighbours
        now = cost(size[p]) + cost(size[q])
        total = size[p] + size[q]
        options = [(cost(total), "merge"), (2 * cost(total / 2), "two")]
        if len(parts[p]) + len(parts[q]) >= 3:
            options.append((3 * cost(total / 3), "three"))
        options.sort()
        best, best_cost = None, now - cost.min_gain
        for bound, how in options:
            if bound >= best_cost:
                break
            members = parts[p] | parts[q]
            if how == "merge":
                best, best_cost = [members], bound
            elif how == "two":
                cut = _best_cut(members, w, adj, xy, cost, best_cost)
                if cut is not None:
                    best = list(cut)
                    best_cost = cost(size_of(best[0], w)) + cost(size_of(best[1], w))
            else:
                three = _best_three(members, w, adj, xy, cost, best_cost)
                if three is not None:
                    best = three
                    best_cost = sum(cost(size_of(g, w)) for g in three)
        if best is not None:
            relabel(best, (p, q))
    return changed


def _relabel(lab, w, parts, size, groups: list[set[int]], old, nxt: list[int]) -> set[int]:
    """Replace parts ``old`` by ``groups`` (reusing their ids); return the ids touched."""
    for p in old:
        del parts[p]
        del size[p]
    ids = list(old[: len(groups)])
    while len(ids) < len(groups):
        ids.append(nxt[0])
        nxt[0] += 1
    for pid, g in zip(ids, groups, strict=True):
        parts[pid] = g
        size[pid] = sum(w[m] for m in g)
        for m in g:
            lab[m] = pid
    return set(old) | set(ids)


def _chains(lab, w, adj, xy, parts, size, cost, nxt, band: float) -> bool:
    """Pair up parts outside the band through the parts between them; True if any changed.

    Members of one size (walk-ups of 45 households) leave one part too big or too small
    wherever a stretch holds an odd count of them. No single re-cut can move that defect,
    so two of them far apart both stay. Here the nearest other defect is found through
    neighbouring parts (at most ``CHAIN_DEPTH`` steps), and the whole chain between them is
    partitioned again: the two defects usually cancel out.
    """
    lo, hi = cost.lo, cost.hi
    tried: set[int] = set()
    changed = False
    for _ in range(len(parts)):
        padj: dict[int, set[int]] = {p: set() for p in parts}
        for u, p in enumerate(lab):
            for v in adj[u]:
                if lab[v] != p:
                    padj[p].add(lab[v])
        defects = {p for p in parts if not lo <= size[p] <= hi and p not in tried}
        if not defects:
            break
        improved = False
        for a in sorted(defects, key=lambda p: -cost(size[p])):
            prev: dict[int, int | None] = {a: None}
            frontier, found = [a], None
            for _depth in range(CHAIN_DEPTH):
                step = []
                for p in frontier:
                    for q in sorted(padj[p]):
                        if q in prev:
                            continue
                        prev[q] = p
                        if not lo <= size[q] <= hi:
                            found = q
                            break
                        step.append(q)
                    if found is not None:
                        break
                if found is not None or not step:
                    break
                frontier = step
            tried.add(a)
            if found is None:
                continue
            path = [found]
            while prev[path[-1]] is not None:
                path.append(prev[path[-1]])
            now = sum(cost(size[p]) for p in path)
            groups = _recut(set().union(*(parts[p] for p in path)), w, adj, xy, cost, band)
            if groups is not None and sum(cost(size_of(g, w)) for g in groups) < now - 1e-6:
                _relabel(lab, w, parts, size, groups, tuple(path), nxt)
                tried.difference_update(path)
                changed = improved = True
                break
        if not improved:
            break
    return changed


def _recut(members: set[int], w, adj, xy, cost, band: float) -> list[set[int]] | None:
    """The best contiguous partition of ``members`` with about total / target parts."""
    mem = sorted(members)
    local = {m: i for i, m in enumerate(mem)}
    sub = [{local[v]: L for v, L in adj[m].items() if v in local} for m in mem]
    wl = np.array([w[m] for m in mem])
    k0 = choose_k(float(wl.sum()), cost.target)
    best, best_cost = None, None
    for k in dict.fromkeys((k0, k0 + 1, max(1, k0 - 1))):
        if k > len(mem):
            continue
        labels = partition(
            wl, xy[mem], sub, k, band, target=cost.target, rounds=MAX_ROUNDS, chains=False
        )
        sizes = np.bincount(labels, weights=wl)
        c = float(cost.vec(sizes).sum())
        if best_cost is None or c < best_cost:
            best, best_cost = labels, c
    if best is None:
        return None
    return [{mem[i] for i in np.flatnonzero(best == p).tolist()} for p in range(best.max() + 1)]


def size_of(members: set[int], w: list[float]) -> float:
    return sum(w[m] for m in members)


def _best_three(members: set[int], w, adj, xy, cost, now: float):
    """Three connected sets costing less than ``now``: one grown, the rest cut in two."""
    total = size_of(members, w)

    def first(acc: np.ndarray) -> np.ndarray:  # the rest is assumed cut evenly: a bound
        return cost.vec(acc) + 2 * cost.vec((total - acc) / 2)

    grown = _best_cut(members, w, adj, xy, cost, now, first)
    if grown is None:
        return None
    a, rest = grown
    if len(rest) < 2:
        return None
    left = now - cost(size_of(a, w))
    cut = _best_cut(rest, w, adj, xy, cost, left)
    if cut is None:
        return None
    return [a, cut[0], cut[1]]


def _best_cut(members: set[int], w, adj, xy, cost, now: float, score=None):
    """The best split of ``members`` into two connected sets, if it costs less than ``now``.

    From each seed, members are added nearest first (among those touching what is grown);
    every prefix is a candidate cut, and the cheapest whose rest is connected wins.
    ``score(grown households)`` (vectorised) replaces the cost of the two sides when given.
    """
    mem = list(members)
    n = len(mem)
    pts = xy[mem]
    if n <= RESPLIT_SEEDS:
        seeds = list(range(n))
    else:  # the outermost members, spread around the centre
        d = pts - pts.mean(axis=0)
        ang = np.arctan2(d[:, 1], d[:, 0])
        bins = np.floor((ang + math.pi) / (2 * math.pi) * RESPLIT_SEEDS).astype(int)
        far = np.hypot(d[:, 0], d[:, 1])
        pick: dict[int, tuple[float, int]] = {}
        for i, b in enumerate(bins.tolist()):
            if b not in pick or far[i] > pick[b][0]:
                pick[b] = (far[i], i)
        seeds = [i for _, i in pick.values()]
    local = {m: i for i, m in enumerate(mem)}
    nb = [[local[v] for v in adj[m] if v in local] for m in mem]
    wl = np.array([w[m] for m in mem])
    total = float(wl.sum())
    dist = ((pts[None, seeds, :] - pts[:, None, :]) ** 2).sum(axis=2).T  # seeds x members
    if SWEEP:
        orders_a = np.argsort(dist, axis=1, kind="stable")[:, : n - 1]
        orders = orders_a.tolist()
    else:
        orders = []
        for si, s in enumerate(seeds):
            d = dist[si].tolist()
            seen = [False] * n
            seen[s] = True
            heap = [(0.0, s)]
            order = []
            while heap and len(order) < n - 1:
                _, x = heapq.heappop(heap)
                order.append(x)
                for y in nb[x]:
                    if not seen[y]:
                        seen[y] = True
                        heapq.heappush(heap, (d[y], y))
            orders.append(order)
        orders_a = np.array(orders, dtype=np.int64).reshape(len(seeds), -1)
    acc = np.cumsum(wl[orders_a], axis=1)
    c = score(acc) if score else cost.vec(acc) + cost.vec(total - acc)
    si, j = np.nonzero(c < now - 1e-9)
    if not len(si):
        return None
    rank = np.argsort(c[si, j], kind="stable")
    tried: set[tuple[int, ...]] = set()
    for r in rank[:CUT_CHECKS].tolist():
        grown_idx = orders[si[r]][: j[r] + 1]
        key = tuple(sorted(grown_idx))
        if key in tried:
            continue
        tried.add(key)
        grown = [False] * n
        for x in grown_idx:
            grown[x] = True
        if _rest_connected(grown, nb, n - len(grown_idx)) and (
            not SWEEP or _side_connected(grown_idx, grown, nb)
        ):
            a = {mem[x] for x in grown_idx}
            return a, members - a
    return None


def _side_connected(idx: list[int], grown: list[bool], nb: list[list[int]]) -> bool:
    seen = {idx[0]}
    stack = [idx[0]]
    while stack:
        x = stack.pop()
        for y in nb[x]:
            if grown[y] and y not in seen:
                seen.add(y)
                stack.append(y)
    return len(seen) == len(idx)


def _rest_connected(grown: list[bool], nb: list[list[int]], left: int) -> bool:
    start = grown.index(False)
    seen = {start}
    stack = [start]
    while stack:
        x = stack.pop()
        for y in nb[x]:
            if not grown[y] and y not in seen:
                seen.add(y)
                stack.append(y)
    return len(seen) == left
