"""Refinement of a contiguous partition: moves, swaps and re-cuts that lower its cost.

The partition being refined is one ``Parts`` object (labels, members and size per part, the
graph and the cost); every step reads and changes it, so nothing else is passed around.
``partition`` runs these steps; see its docstring for the method.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from gis.delineate.graph import is_connected

RESPLIT_SEEDS = 12  # members a re-split grows from, at most
CUT_CHECKS = 40  # cheapest candidate cuts checked for a connected rest, at most
SMALL_CUT = 8  # fewer members than this: a cut is searched in plain Python (same result)
MIN_GAIN = 0.03  # a re-cut must gain (MIN_GAIN x target)² to be worth its time
BAD_WEIGHT = 30.0  # how much heavier a household outside the band counts


class Cost:
    """Squared deviation from the target, ``BAD_WEIGHT`` times heavier outside the band."""

    __slots__ = ("band", "hi", "lo", "min_gain", "target")

    def __init__(self, target: float, band: float):
        self.target, self.band = target, band
        self.lo, self.hi = target * (1 - band), target * (1 + band)
        # a re-cut that gains less than this is not worth its time (for 100 households at
        # MIN_GAIN 0.03: (3 households)², nothing a coefficient of variation shows)
        self.min_gain = (MIN_GAIN * target) ** 2

    def __call__(self, x: float) -> float:
        d = x - self.target
        if x < self.lo:  # called a million times a run: in band, one product only
            out = self.lo - x
        elif x > self.hi:
            out = x - self.hi
        else:
            return d * d
        return d * d + BAD_WEIGHT * out * out

    def vec(self, x: np.ndarray) -> np.ndarray:
        out = np.maximum(np.maximum(self.lo - x, x - self.hi), 0.0)
        return (x - self.target) ** 2 + BAD_WEIGHT * out * out

    def is_in_band(self, x: float) -> bool:
        return self.lo <= x <= self.hi


@dataclass
class Parts:
    """A partition under refinement: per member its part; per part its members and size."""

    lab: list[int]
    w: list[float]
    adj: list[dict[int, float]]
    xy: np.ndarray
    cost: Cost
    members: dict[int, set[int]]
    size: dict[int, float]
    next_id: int

    @classmethod
    def of(
        cls, lab: list[int], w: list[float], adj: list[dict[int, float]], xy: np.ndarray, cost: Cost
    ) -> Parts:
        members: dict[int, set[int]] = {}
        for i, p in enumerate(lab):
            members.setdefault(p, set()).add(i)
        size = {p: sum(w[i] for i in m) for p, m in members.items()}
        return cls(lab, w, adj, xy, cost, members, size, max(members) + 1)

    def weight(self, members: set[int]) -> float:
        return sum(self.w[m] for m in members)

    def relabel(self, groups: list[set[int]], old: tuple[int, ...]) -> set[int]:
        """Replace parts ``old`` by ``groups`` (reusing their ids); return the ids touched."""
        for p in old:
            del self.members[p]
            del self.size[p]
        ids = list(old[: len(groups)])
        while len(ids) < len(groups):
            ids.append(self.next_id)
            self.next_id += 1
        for pid, g in zip(ids, groups, strict=True):
            self.members[pid] = g
            self.size[pid] = self.weight(g)
            for m in g:
                self.lab[m] = pid
        return set(old) | set(ids)

    def neighbour_parts(self) -> dict[int, set[int]]:
        """Return per part the parts it touches."""
        out: dict[int, set[int]] = {p: set() for p in self.members}
        for u, p in enumerate(self.lab):
            for v in self.adj[u]:
                if self.lab[v] != p:
                    out[p].add(self.lab[v])
        return out


def moves(st: Parts) -> None:
    """Single moves and swaps across part edges while they lower the cost."""
    n = len(st.lab)
    queue = deque(u for u in range(n) if any(st.lab[v] != st.lab[u] for v in st.adj[u]))
    queued = set(queue)
    budget = 50 * n + 100
    while queue and budget > 0:
        budget -= 1
        u = queue.popleft()
        queued.discard(u)
        touched = _move(st, u)
        if touched is None:
            touched = _swap(st, u)
        elif not touched:
            continue  # inside its part: nothing to move or swap
        for part in touched or ():
            for m in st.members[part]:
                if m not in queued:
                    queue.append(m)
                    queued.add(m)


def _move(st: Parts, u: int) -> tuple[int, ...] | None:
    """Move ``u`` to the neighbouring part where that gains most; return the parts changed.

    None when no move gains; ``()`` when ``u`` has no neighbour in another part.
    """
    p = st.lab[u]
    others = {st.lab[v] for v in st.adj[u]}
    others.discard(p)
    if not others:
        return ()
    wu, cost = st.w[u], st.cost
    base = cost(st.size[p]) - cost(st.size[p] - wu)
    best, best_gain = -1, 1e-9
    for q in others:
        g = base + cost(st.size[q]) - cost(st.size[q] + wu)
        if g > best_gain:
            best, best_gain = q, g
    if best < 0 or not is_connected(st.members[p], st.adj, without=u):
        return None
    st.members[p].discard(u)
    st.members[best].add(u)
    st.size[p] -= wu
    st.size[best] += wu
    st.lab[u] = best
    return p, best


def _swap(st: Parts, u: int) -> tuple[int, int] | None:
    """Swap ``u`` with a member of a neighbouring part when that lowers the cost."""
    lab, adj, members, size, cost = st.lab, st.adj, st.members, st.size, st.cost
    p, wu = lab[u], st.w[u]
    sp = size[p]
    cp = cost(sp)
    cost_of: dict[int, float] = {}  # per neighbouring part, the cost of its size now
    for v in adj[u]:
        q = lab[v]
        if q == p:
            continue
        delta = wu - st.w[v]
        if delta == 0:
            continue
        sq = size[q]
        cq = cost_of.get(q)
        if cq is None:
            cq = cost_of[q] = cost(sq)
        if cp + cq - cost(sp - delta) - cost(sq + delta) <= 1e-9:
            continue
        # quick refusals, exact: v must touch what stays of p, u what stays of q
        if len(members[p]) > 1 and not any(lab[x] == p and x != u for x in adj[v]):
            continue
        if len(members[q]) > 1 and not any(lab[x] == q and x != v for x in adj[u]):
            continue
        new_p = (members[p] - {u}) | {v}
        new_q = (members[q] - {v}) | {u}
        if is_connected(new_p, adj) and is_connected(new_q, adj):
            members[p], members[q] = new_p, new_q
            size[p] -= delta
            size[q] += delta
            lab[u], lab[v] = q, p
            return p, q
    return None


def improve(st: Parts, dirty: set[int] | None) -> set[int]:
    """One round of re-cuts around ``dirty`` parts (None: all); return the parts changed.

    For each part: cut it in two. For each pair of neighbouring parts: merge them, cut them
    again in two, or cut them in three. The option that lowers the cost most is taken; the
    options are tried cheapest bound first and skipped when even an ideal cut of their
    households could not beat what the best so far gives.
    """
    changed: set[int] = set()
    _cut_singles(st, dirty, changed)
    _regroup_pairs(st, dirty, changed)
    return changed


def _cut_singles(st: Parts, dirty: set[int] | None, changed: set[int]) -> None:
    cost = st.cost
    singles = [p for p in st.members if dirty is None or p in dirty]
    for p in sorted(singles, key=lambda p: -cost(st.size[p])):
        if p in changed or len(st.members[p]) < 2:
            continue
        now = cost(st.size[p])
        if now - 2 * cost(st.size[p] / 2) <= cost.min_gain:
            continue
        cut = best_cut(st, st.members[p], now)
        if cut is not None:
            changed.update(st.relabel(list(cut), (p,)))


def _regroup_pairs(st: Parts, dirty: set[int] | None, changed: set[int]) -> None:
    cost = st.cost

    def is_wanted(p: int, q: int) -> bool:
        return dirty is None or p in dirty or q in dirty or p in changed or q in changed

    pairs = set()
    for u, p in enumerate(st.lab):
        for v in st.adj[u]:
            q = st.lab[v]
            if p < q and is_wanted(p, q):
                pairs.add((p, q))
    # worst pairs first: their parts are the furthest from the target
    for p, q in sorted(pairs, key=lambda pq: -(cost(st.size[pq[0]]) + cost(st.size[pq[1]]))):
        if p not in st.members or q not in st.members or st.lab[next(iter(st.members[q]))] != q:
            continue
        if not any(st.lab[v] == q for u in st.members[p] for v in st.adj[u]):
            continue  # no longer neighbours
        best = _best_regroup(st, p, q)
        if best is not None:
            changed.update(st.relabel(best, (p, q)))


def _best_regroup(st: Parts, p: int, q: int) -> list[set[int]] | None:
    """The members of parts p and q merged, cut in two or in three, if that gains."""
    cost = st.cost
    now = cost(st.size[p]) + cost(st.size[q])
    total = st.size[p] + st.size[q]
    options = [(cost(total), "merge"), (2 * cost(total / 2), "two")]
    if len(st.members[p]) + len(st.members[q]) >= 3:
        options.append((3 * cost(total / 3), "three"))
    options.sort()
    best, best_cost = None, now - cost.min_gain
    members = st.members[p] | st.members[q]
    for bound, how in options:
        if bound >= best_cost:
            break
        if how == "merge":
            best, best_cost = [members], bound
        elif how == "two":
            cut = best_cut(st, members, best_cost)
            if cut is not None:
                best = list(cut)
                best_cost = cost(st.weight(best[0])) + cost(st.weight(best[1]))
        else:
            three = _best_three(st, members, best_cost)
            if three is not None:
                best = three
                best_cost = sum(cost(st.weight(g)) for g in three)
    return best


def _best_three(st: Parts, members: set[int], now: float) -> list[set[int]] | None:
    """Three connected sets costing less than ``now``: one grown, the rest cut in two."""
    cost = st.cost
    # the grown side's cost, and the rest's as if cut evenly in two: a bound
    grown = best_cut(st, members, now, rest=2)
    if grown is None:
        return None
    a, rest = grown
    if len(rest) < 2:
        return None
    cut = best_cut(st, rest, now - cost(st.weight(a)))
    if cut is None:
        return None
    return [a, cut[0], cut[1]]


def _seeds(pts: np.ndarray) -> list[int]:
    """Members a cut grows from: all of few, else the outermost spread around the centre."""
    n = len(pts)
    if n <= RESPLIT_SEEDS:
        return list(range(n))
    d = pts - pts.mean(axis=0)
    ang = np.arctan2(d[:, 1], d[:, 0])
    bins = np.floor((ang + math.pi) / (2 * math.pi) * RESPLIT_SEEDS).astype(int)
    far = np.hypot(d[:, 0], d[:, 1])
    pick: dict[int, tuple[float, int]] = {}
    for i, b in enumerate(bins.tolist()):
        if b not in pick or far[i] > pick[b][0]:
            pick[b] = (far[i], i)
    return [i for _, i in pick.values()]


def best_cut(
    st: Parts,
    members: set[int],
    now: float,
    rest: int = 1,
) -> tuple[set[int], set[int]] | None:
    """The best split of ``members`` into two connected sets, if it costs less than ``now``.

    From each seed, members are added nearest first; every prefix is a candidate cut, and
    the cheapest whose two sides are both connected wins. With ``rest`` above 1, a cut is
    scored as the grown side plus the rest cut evenly into ``rest`` sets (a bound for
    cutting in three).
    """
    mem = list(members)
    n = len(mem)
    if n < SMALL_CUT:
        return _best_cut_small(st, mem, members, now, rest)
    pts = st.xy[mem]
    seeds = _seeds(pts)
    wl = np.array([st.w[m] for m in mem])
    total = float(wl.sum()) if rest == 1 else st.weight(members)
    dist = ((pts[None, seeds, :] - pts[:, None, :]) ** 2).sum(axis=2).T  # seeds x members
    orders = np.argsort(dist, axis=1, kind="stable")[:, : n - 1]
    acc = np.cumsum(wl[orders], axis=1)
    cost = st.cost
    if rest == 1:
        c = cost.vec(acc) + cost.vec(total - acc)
    else:
        c = cost.vec(acc) + rest * cost.vec((total - acc) / rest)
    si, j = np.nonzero(c < now - 1e-9)
    if not len(si):
        return None
    rank = np.argsort(c[si, j], kind="stable")
    order_lists = orders.tolist()
    picks = (order_lists[si[r]][: j[r] + 1] for r in rank[:CUT_CHECKS].tolist())
    return _first_connected(st, mem, members, picks)


def _best_cut_small(
    st: Parts, mem: list[int], members: set[int], now: float, rest: int
) -> tuple[set[int], set[int]] | None:
    """``best_cut`` of fewer than ``SMALL_CUT`` members, in plain Python.

    Numpy's overhead is most of a small cut's time. The figures are computed in the same
    order as there (sequential sums, the same squares, stable sorts), so the cut found is
    the same, bit for bit.
    """
    n = len(mem)
    xy = st.xy[mem].tolist()
    wl = [st.w[m] for m in mem]
    total = sum(wl)
    lo, hi, target = st.cost.lo, st.cost.hi, st.cost.target
    limit = now - 1e-9
    found: list[tuple[float, list[int]]] = []
    for sx, sy in xy:  # every member is a seed
        d = [(sx - x) ** 2 + (sy - y) ** 2 for x, y in xy]
        order = sorted(range(n), key=d.__getitem__)
        acc = 0.0
        for j in range(n - 1):
            acc += wl[order[j]]
            # Cost(acc) + rest x Cost(the rest / rest), written out (this is the hot loop)
            e = acc - target
            c = e * e
            if acc < lo:
                o = lo - acc
                c += BAD_WEIGHT * o * o
            elif acc > hi:
                o = acc - hi
                c += BAD_WEIGHT * o * o
            x = total - acc if rest == 1 else (total - acc) / rest
            e = x - target
            cr = e * e
            if x < lo:
                o = lo - x
                cr += BAD_WEIGHT * o * o
            elif x > hi:
                o = x - hi
                cr += BAD_WEIGHT * o * o
            c = c + cr if rest == 1 else c + rest * cr
            if c < limit:
                found.append((c, order[: j + 1]))
    if not found:
        return None
    found.sort(key=lambda cg: cg[0])  # stable: seed, then size on a tie, as ``best_cut``
    return _first_connected(st, mem, members, (g for _, g in found[:CUT_CHECKS]))


def _first_connected(
    st: Parts, mem: list[int], members: set[int], picks
) -> tuple[set[int], set[int]] | None:
    """The first candidate (local indices into ``mem``) whose two sides are connected."""
    n = len(mem)
    local = {m: i for i, m in enumerate(mem)}
    nb = [[local[v] for v in st.adj[m] if v in local] for m in mem]
    tried: set[tuple[int, ...]] = set()
    everyone = set(range(n))
    for grown_idx in picks:
        key = tuple(sorted(grown_idx))
        if key in tried:
            continue
        tried.add(key)
        grown = set(grown_idx)
        if is_connected(everyone - grown, nb) and is_connected(grown, nb):
            a = {mem[x] for x in grown_idx}
            return a, members - a
    return None
