"""Building parts: a building divided by floors when whole buildings cannot make groups.

A building is divided only when it must be:

* it holds more than the band's upper bound (a tower): as many parts of exactly the target
  as fit, each a residents' group of its own, and the remainder (its top floors) stays a
  member that the partition puts with the neighbouring buildings; a tower alone in its
  block is cut into the number of equal parts closest to the target instead, and a tower
  whose piece would otherwise leave fewer than the band's lower bound over keeps one part
  more (``_leave_enough``);
* a group is still outside the band after the partition (whole buildings too lumpy): a
  building on its edge gives a part (whole dwellings) to the neighbouring group, so that
  both end in the band. A building of ``WALKUP_MAX`` households or fewer is never divided
  this way, and dividing a building not yet divided costs more than giving another part of
  one that is: low-rise compounds stay whole, and a building's parts go to few groups.
  A whole building may also move to the neighbouring group (no division) when its own
  group stays one piece, and two parts of one building trade households freely;
* then groups more than ``FINE_TUNE`` from the target are evened out the same way, without
  dividing any low-rise building.

Each part is a unit of its own (``Units``: the building's first unit keeps its cell and the
land joined to it; the others share the cell, ``part_of``). Parts are sizes here, ordered
by group so that each group holds one run of floors (``realise``); which dwellings each
holds is cut by ``part_store``.
"""

from __future__ import annotations

import math

import numpy as np

from gis.delineate.graph import is_connected
from gis.delineate.model import Params
from gis.delineate.refine import Cost
from gis.delineate.units import Units

WALKUP_MAX = 36  # households: a walk-up this size is divided only when alone in its block
NEW_DIVISION_COST = 50.0  # in squared households: dividing one more building
LOW_RISE_COST = 400.0  # and more when it is low-rise (up to twice WALKUP_MAX households)
NEW_PART_COST = 50.0  # and one more part of a building already divided
FINE_TUNE = 0.05  # in band but further than this from the target: evened out with parts


def equal_sizes(total: int, k: int) -> list[int]:
    """Return ``k`` integers as equal as can be, adding up to ``total``."""
    base, extra = divmod(int(total), k)
    return [base + (1 if i < extra else 0) for i in range(k)]


def max_parts(households: float, params: Params) -> int:
    """The most parts a building is cut into: its whole groups, and one on either side."""
    return int(households // params.group_households) + 2


def add_part(units: Units, unit: int, households: float) -> int:
    """Give ``households`` of single-building ``unit`` to a new unit of the same building."""
    return add_parts(units, unit, [households])[0]


def add_parts(units: Units, unit: int, sizes: list[float]) -> list[int]:
    """Give each of ``sizes`` of single-building ``unit`` to a new unit of the same building."""
    return add_many_parts(units, [(unit, sizes)])[0]


def add_many_parts(units: Units, plan: list[tuple[int, list[float]]]) -> list[list[int]]:
    """For each (unit, sizes) of ``plan`` in turn, ``add_parts``: the new units' numbers.

    The same as one ``add_part`` per size in that order, with the arrays grown once.
    """
    units_of = [u for u, sizes in plan for _ in sizes]
    k = len(units_of)
    if not k:
        return [[] for _ in plan]
    first = units.n
    units.n += k
    units.households = np.append(units.households, [h for _, sizes in plan for h in sizes])
    for u, sizes in plan:
        for households in sizes:  # one at a time, as one part after the other would
            units.households[u] -= households
    idx = np.asarray(units_of, dtype=np.int64)
    units.xy = np.vstack([units.xy, units.xy[idx]])
    for name in ("major", "comm", "frozen", "piece"):
        values = getattr(units, name)
        setattr(units, name, np.append(values, values[idx]))
    units.part_of = np.append(units.part_of, units.piece[idx])
    out = []
    new = first
    for unit, sizes in plan:
        out.append(list(range(new, new + len(sizes))))
        if sizes:
            _link_parts(units, unit, out[-1])
        new += len(sizes)
    return out


def _link_parts(units: Units, unit: int, new_ids: list[int]) -> None:
    """Neighbours of the new parts ``new_ids`` of ``unit``'s building, one after the other."""
    piece = int(units.piece[unit])
    siblings = units.parts.setdefault(piece, [unit])
    # what the cell itself touches (the land joined to the first unit stays with it); the
    # same for every part, as no part is any piece's unit
    around: dict[int, float] = {}
    for q, length in units.piece_adj[piece].items():
        v = int(units.of_piece[q])
        if v >= 0 and v not in siblings:
            around[v] = around.get(v, 0.0) + length
    # the parts of a building share its whole cell: the strongest tie there is
    tie = sum(around.values()) or 1.0
    for new in new_ids:
        units.blocks.append(set(units.blocks[unit]))
        units.adj.append(dict(around))
        for v, length in around.items():
            units.adj[v][new] = length
        for s in siblings:
            units.adj[s][new] = tie
            units.adj[new][s] = tie
        siblings.append(new)


def divide_towers(
    units: Units, nodes: list[int], params: Params, piece_of: dict[int, int] | None = None
) -> tuple[list[list[int]], list[int]]:
    """Divide the units of ``nodes`` above the band; return (groups made, members left).

    ``piece_of`` gives each node its connected piece of the major-road block: when what a
    piece's towers leave over (their top floors and every other building of the piece)
    would be too few for a group in band, one tower keeps one part more for it.
    """
    target = params.group_households
    node_set = set(nodes)
    # the groups made, in order: a unit as it is (an int), or the parts of plan[i] (a str)
    made: list[int | str] = []
    plan: list[tuple[int, list[float]]] = []  # (tower, sizes of its new parts), in order
    rest = []
    full_of: dict[int, int] = {}
    for u in nodes:
        total = int(round(units.households[u]))
        if total <= params.group_max or units.piece[u] < 0:
            rest.append(u)
            continue
        if not any(v in node_set for v in units.adj[u]):  # alone: equal parts
            k = min(
                (max(1, total // target), total // target + 1),
                key=lambda k: abs(total / k - target),
            )
            made.append(u)
            made.append(str(len(plan)))
            # its piece is itself alone: what it keeps does not change ``_leave_enough``
            plan.append((u, equal_sizes(total, k)[1:]))
            continue
        full_of[u] = total // target
    _leave_enough(units, nodes, full_of, piece_of or {}, params)
    for u, full in full_of.items():
        remainder = int(round(units.households[u])) - full * target
        made.append(str(len(plan)))
        plan.append((u, [target] * (full - (remainder == 0))))
        if remainder == 0:
            made.append(u)  # what is left of it is one target exactly
        else:
            rest.append(u)
    parts = add_many_parts(units, plan)
    groups: list[list[int]] = []
    for entry in made:
        if isinstance(entry, str):
            groups.extend([p] for p in parts[int(entry)])
        else:
            groups.append([entry])
    return groups, rest


def _leave_enough(
    units: Units, nodes: list[int], full_of: dict[int, int], piece_of: dict[int, int], params
) -> None:
    """Take one whole part back from a tower of each piece that would leave too few over.

    A tower of 148 households next to a house of 10 would give a group of 100 and leave
    58 that nothing can join; kept whole, the two are shared as evenly as they allow.
    """
    left: dict[int, float] = {}
    for u in nodes:
        pc = piece_of.get(u, -1)
        left[pc] = left.get(pc, 0.0) + float(units.households[u])
    for u, full in full_of.items():
        pc = piece_of.get(u, -1)
        left[pc] -= full * params.group_households
    for pc, households in left.items():
        if pc < 0 or not 0 < households < params.group_min:
            continue
        towers = [u for u in full_of if piece_of.get(u) == pc and full_of[u] > 0]
        if towers:
            full_of[max(towers, key=lambda u: (full_of[u], -u))] -= 1


class _Balancer:
    """Moves parts of buildings between neighbouring groups of one major-road block.

    Every step lowers the partition's own cost (``refine.Cost``: squared deviation from
    the target, heavier outside the band) by more than the cost of the division it makes,
    so the steps end.
    """

    def __init__(self, units: Units, groups: list[list[int]], whole: set[frozenset], params):
        self.units, self.groups, self.params = units, groups, params
        self.cost = Cost(params.group_households, params.band)
        self.skip = {i for i, g in enumerate(groups) if frozenset(g) in whole}
        self.group_of = {u: i for i, g in enumerate(groups) for u in g}
        self.size = [float(units.households[g].sum()) for g in groups]
        self.is_fine_tuning = False  # then: in band but off target, no new division
        self.stuck: set[int] = set()  # groups no step can fix until they or a neighbour change
        self.whole: dict[int, float] = {}  # per building's cell, its households (fixed)

    def is_bad(self, i: int) -> bool:
        s = self.size[i]
        if s == 0 or i in self.skip and s < self.cost.lo:
            return False  # no homes, or all the homes of a small block
        if self.is_fine_tuning:
            return abs(s - self.cost.target) > FINE_TUNE * self.cost.target
        return not self.cost.is_in_band(s)

    def _cost_of_giving(self, d: int, to: int) -> float | None:
        """What giving part of unit ``d`` to group ``to`` costs; None when it may not.

        Growing a part the group already holds is free; a new part of a divided building
        costs ``NEW_PART_COST`` (and a building is cut into no more parts than
        ``max_parts``), a first division more; evening out (``is_fine_tuning``) never
        divides a low-rise building not yet divided.
        """
        u = self.units
        if u.piece[d] < 0:
            return None  # several small buildings together: not divided
        piece = int(u.piece[d])
        siblings = u.parts.get(piece, [])
        if any(self.group_of.get(s) == to for s in siblings):
            return 0.0
        whole = self.whole.get(piece)
        if whole is None:
            whole = float(sum(u.households[s] for s in siblings) if siblings else u.households[d])
            self.whole[piece] = whole
        if siblings:
            return NEW_PART_COST if len(siblings) < max_parts(whole, self.params) else None
        if whole <= WALKUP_MAX or self.is_fine_tuning and whole <= 2 * WALKUP_MAX:
            return None
        return NEW_DIVISION_COST + (LOW_RISE_COST if whole <= 2 * WALKUP_MAX else 0.0)

    def _touches(self, donor: int, group: int) -> bool:
        """Whether the donor's cell itself (not land joined to it) touches ``group``.

        A group holding a part of the donor's building holds its cell too.
        """
        u = self.units
        piece = int(u.piece[donor])
        if any(self.group_of.get(s) == group for s in u.parts.get(piece, ())):
            return True
        for q in u.piece_adj[piece]:
            holders = u.parts.get(q, [int(u.of_piece[q])])
            if any(self.group_of.get(h) == group for h in holders):
                return True
        return False

    def _is_movable(self, unit: int, group: int) -> bool:
        """Whether ``unit`` may leave ``group`` whole: not a divided building's, and
        ``group`` stays one piece without it."""
        u = self.units
        if u.part_of[unit] >= 0 or int(u.piece[unit]) in u.parts:
            return False
        return is_connected(set(self.groups[group]), u.adj, without=unit)

    def _best_whole(
        self, a: int, b: int, m: int, v: int, best: tuple, memo: dict | None = None
    ) -> tuple:
        """The better of moving unit v (in b) whole to a, or unit m (in a) whole to b.

        The partition's own moves came before any building was divided; a part can give
        a group the link that lets a whole building move (or lose the one that did not).
        ``memo`` keeps what stays fixed until a step is taken (see ``_fix``).
        """
        memo = {} if memo is None else memo
        sa, sb, c = self.size[a], self.size[b], self.cost
        now = c(sa) + c(sb)
        for unit, src, to in ((v, b, a), (m, a, b)):
            w = float(self.units.households[unit])
            x = w if to == a else -w
            gain = now - c(sa + x) - c(sb - x)
            if gain > max(best[0], c.min_gain):
                key = ("movable", unit, src)
                if key not in memo:
                    memo[key] = self._is_movable(unit, src)
                if memo[key]:
                    best = (gain, unit, to, w, True)
        return best

    def _wanted(self, a: int, b: int) -> tuple[float, set[int]]:
        """The cost of groups a and b now, and the households worth moving between them."""
        sa, sb, c = self.size[a], self.size[b], self.cost
        wanted = {round((sb - sa) / 2), math.ceil(c.lo - sa), math.floor(c.hi - sa)}
        wanted |= {math.ceil(sb - c.hi), math.floor(sb - c.lo)}
        return c(sa) + c(sb), wanted

    def _best_for_pair(
        self, a: int, b: int, m: int, v: int, best: tuple, memo: dict | None = None
    ) -> tuple:
        """The best of moving households from v (in b) to a, or from m (in a) to b.

        ``memo`` keeps, for one ``_fix``, what depends only on the groups as they are then
        (nothing changes until its step is taken): each pair's figures, what giving from
        a donor to a group costs, whether its cell touches the group.
        """
        memo = {} if memo is None else memo
        best = self._best_whole(a, b, m, v, best, memo)
        sa, sb, c = self.size[a], self.size[b], self.cost
        pair = memo.get(b)
        if pair is None:
            pair = memo[b] = self._wanted(a, b)
        now, wanted = pair
        extras: dict[int, float | None] = {}  # per donor, what giving costs (None: it may not)
        for x in wanted:
            if x == 0:
                continue
            donor, to = (v, a) if x > 0 else (m, b)
            if donor not in extras:
                key = ("give", donor, to)
                if key not in memo:
                    memo[key] = self._cost_of_giving(donor, to)
                extra = memo[key]
                if extra is not None and now - extra <= max(best[0], c.min_gain):
                    extra = None  # no gain could beat the best so far
                if extra is not None:
                    key = ("touch", donor, to)
                    if key not in memo:
                        memo[key] = self._touches(donor, to)
                    if not memo[key]:
                        extra = None  # its cell does not touch the group
                extras[donor] = extra
            extra = extras[donor]
            if extra is None:
                continue
            give = min(abs(x), self.units.households[donor] - 1)
            if give <= 0:
                continue
            x = give if donor == v else -give
            gain = now - c(sa + x) - c(sb - x) - extra
            if gain > max(best[0], c.min_gain):
                best = (gain, donor, to, give, False)
        return best

    def _fix(self, a: int) -> bool:
        if not self.is_bad(a):
            return False
        best: tuple = (0.0, -1, -1, 0.0, False)
        memo: dict = {}  # nothing changes until the step is taken
        group_of, c = self.group_of, self.cost
        bound: dict[int, float] = {}  # per neighbouring group, the most any step can gain
        for m in self.groups[a]:
            for v in self.units.adj[m]:
                b = group_of.get(v)
                if b is None or b == a:
                    continue
                most = bound.get(b)
                if most is None:
                    # the cost is convex: no step between a and b, whole or part, leaves
                    # them below two halves of their households (a margin for rounding)
                    sa, sb = self.size[a], self.size[b]
                    most = bound[b] = c(sa) + c(sb) - 2 * c((sa + sb) / 2) + 1e-6
                if most <= max(best[0], c.min_gain):
                    continue  # no step here could beat the best so far
                best = self._best_for_pair(a, b, m, v, best, memo)
        if best[1] < 0:
            return False
        if best[4]:
            self._move_whole(best[1], best[2])
        else:
            self._give(best[1], best[2], best[3])
        return True

    def run(self) -> None:
        """Put groups in band, dividing where it must; then even out with parts already cut."""
        target = self.params.group_households
        for self.is_fine_tuning in (False, True):
            self.stuck.clear()
            for _ in range(4 * len(self.groups)):
                bad = sorted(
                    (i for i in range(len(self.groups)) if i not in self.stuck and self.is_bad(i)),
                    key=lambda i: -abs(self.size[i] - target),
                )
                for a in bad:
                    if self._fix(a):
                        break
                    self.stuck.add(a)
                else:
                    break

    def _changed(self, *changed: int) -> None:
        """Groups that changed, and their neighbours, may be fixable again."""
        u = self.units
        for g in changed:
            self.stuck.discard(g)
            for m in self.groups[g]:
                for v in u.adj[m]:
                    self.stuck.discard(self.group_of.get(v, -1))

    def _move_whole(self, unit: int, to: int) -> None:
        src = self.group_of[unit]
        w = float(self.units.households[unit])
        self.groups[src].remove(unit)
        self.groups[to].append(unit)
        self.group_of[unit] = to
        self.size[src] -= w
        self.size[to] += w
        self._changed(src, to)

    def _give(self, donor: int, to: int, give: float) -> None:
        u = self.units
        src = self.group_of[donor]
        piece = int(u.piece[donor])
        there = [s for s in u.parts.get(piece, []) if self.group_of.get(s) == to]
        if there:  # the group already holds a part of this building: that part grows
            u.households[there[0]] += give
            u.households[donor] -= give
        else:
            new = add_part(u, donor, give)
            self.groups[to].append(new)
            self.group_of[new] = to
        self.size[src] -= give
        self.size[to] += give
        self._changed(src, to)


def balance(units: Units, groups: list[list[int]], whole: set[frozenset], params: Params) -> None:
    """Divide buildings on groups' edges until every group is in band, where that can be."""
    _Balancer(units, groups, whole, params).run()


def realise(
    units: Units,
    group_of_unit: np.ndarray,
    dwellings: dict[int, np.ndarray],
    doors: dict[int, tuple[np.ndarray, np.ndarray]] | None = None,
) -> None:
    """Order each divided building's parts by group and fit them to whole dwellings.

    ``dwellings`` holds, per piece with a house register, the households of its dwellings
    in floor order (every other dwelling holds 1 household): a part ends where a dwelling
    does, so a size that falls inside a dwelling of several households moves to its end.
    ``doors`` holds, per piece whose building has two or more known entrances (单元门), the
    households of its dwellings ordered by entrance then floor, and the entrance of each:
    there parts are whole entrances, or floors behind one entrance, when that keeps them
    about as close to their sizes as floor ranges of the whole building do (``fit_parts``).
    """
    doors = doors or {}
    for piece, parts in units.parts.items():
        parts.sort(key=lambda p: (group_of_unit[p], p))
        seq = dwellings.get(piece)
        if piece in doors:
            door_seq, door = doors[piece]
            if seq is None:
                seq = np.ones(len(door_seq))
            units.households[parts] = fit_parts(
                units.households[parts], seq, door_seq, door, ENTRANCE_CUT_COST
            )[0]
        elif seq is not None:
            units.households[parts] = fit_to_dwellings(units.households[parts], seq)


def fit_parts(
    sizes: np.ndarray,
    seq: np.ndarray,
    door_seq: np.ndarray,
    door: np.ndarray,
    cut_cost: float,
) -> tuple[np.ndarray, bool]:
    """Parts of about ``sizes`` by entrance or by floors, and whether by entrance.

    ``seq`` is households per dwelling in floor order, ``door_seq`` the same dwellings by
    entrance then floor with their entrances ``door``. A cut between floors of the whole
    building splits every entrance (``cut_cost`` for each); entrance-wise parts
    (``door_cuts``) pay it once where they end inside an entrance. The cheaper wins;
    entrances on a tie.
    """
    sizes = np.asarray(sizes, dtype=float)
    by_floor = fit_to_dwellings(sizes, seq)
    doors = len(np.unique(door))
    floor_cost = float(((by_floor - sizes) ** 2).sum()) + cut_cost * doors * (len(sizes) - 1)
    by_door = fit_to_doors(sizes, door_seq, door, cut_cost)
    if by_door is not None:
        door_cost = float(((by_door[0] - sizes) ** 2).sum()) + cut_cost * by_door[1]
        if door_cost <= floor_cost:
            return by_door[0], True
    return by_floor, False


def fit_to_dwellings(sizes: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """Return ``sizes`` moved to dwelling ends (``seq``: households per dwelling, in order).

    Every part keeps at least one dwelling when there are enough of them.
    """
    ends = np.cumsum(np.asarray(seq, dtype=float))
    n, k = len(ends), len(sizes)
    idx = np.searchsorted(ends, np.cumsum(sizes) - 0.5).tolist()
    for i in range(k):
        low = idx[i - 1] + 1 if i else 0
        idx[i] = min(max(idx[i], low), n - k + i)
    idx[-1] = n - 1
    cut = ends[np.maximum(idx, 0)]
    return np.diff(np.concatenate([[0.0], cut]))


# In squared households, like the partition's cost: a part that ends inside an entrance
# (floors of one 单元 split between two groups) costs as much as two neighbouring groups
# each 7 households further from their size. Whole entrances win when they come that close.
ENTRANCE_CUT_COST = 100.0


def door_cuts(
    sizes: np.ndarray, seq: np.ndarray, door: np.ndarray, cut_cost: float = 0.0
) -> list[int] | None:
    """Where to cut dwellings ordered by entrance then floor into parts of about ``sizes``.

    Each part is either whole entrances (it starts and ends where an entrance does) or a
    run of dwellings behind one entrance (a range of its floors): never the top floors of
    one entrance with the next one. Among the cuts that keep to that, the one returned
    makes the parts' squared differences from ``sizes``, plus ``cut_cost`` for every part
    that ends inside an entrance, smallest (dynamic programming over dwelling ends). The
    result is the index after each part's last dwelling (the last is ``len(seq)``), or None
    when there are fewer dwellings than parts.
    """
    seq = np.asarray(seq, dtype=float)
    door = np.asarray(door)
    n, k = len(seq), len(sizes)
    if n < k or k == 0:
        return None
    ends = np.concatenate([[0.0], np.cumsum(seq)])  # households before position p
    bounds = np.concatenate([[0], np.flatnonzero(door[1:] != door[:-1]) + 1, [n]])
    is_bound = np.zeros(n + 1, dtype=bool)
    is_bound[bounds] = True
    penalty = np.where(is_bound, 0.0, cut_cost)
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    back = np.zeros((k, n + 1), dtype=np.int64)
    for i, size in enumerate(np.asarray(sizes, dtype=float)):
        new = np.full(n + 1, np.inf)
        arg = np.zeros(n + 1, dtype=np.int64)
        # a run of floors behind one entrance: starts and ends within [a, b]
        for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            p = np.arange(a, b)
            q = np.arange(a + 1, b + 1)
            cost = best[p][:, None] + (ends[q][None, :] - ends[p][:, None] - size) ** 2
            cost[p[:, None] >= q[None, :]] = np.inf
            j = np.argmin(cost, axis=0)
            c = cost[j, np.arange(len(q))]
            better = c < new[q]
            new[q[better]] = c[better]
            arg[q[better]] = p[j[better]]
        # whole entrances: from one entrance's start to a later entrance's end
        bp = bounds
        cost = best[bp][:, None] + (ends[bp][None, :] - ends[bp][:, None] - size) ** 2
        cost[bp[:, None] >= bp[None, :]] = np.inf
        j = np.argmin(cost, axis=0)
        c = cost[j, np.arange(len(bp))]
        better = c < new[bp]
        new[bp[better]] = c[better]
        arg[bp[better]] = bp[j[better]]
        best = new + penalty
        back[i] = arg
    if not np.isfinite(best[n]):
        return None
    cuts = [n]
    for i in range(k - 1, 0, -1):
        cuts.append(int(back[i][cuts[-1]]))
    return cuts[::-1]


def fit_to_doors(
    sizes: np.ndarray, seq: np.ndarray, door: np.ndarray, cut_cost: float
) -> tuple[np.ndarray, int] | None:
    """``sizes`` moved to whole entrances or floors of one entrance (``door_cuts``), and
    how many parts end inside an entrance."""
    cuts = door_cuts(sizes, seq, door, cut_cost)
    if cuts is None:
        return None
    door = np.asarray(door)
    inside = sum(1 for c in cuts[:-1] if door[c - 1] == door[c])
    ends = np.concatenate([[0.0], np.cumsum(np.asarray(seq, dtype=float))])
    return np.diff(ends[[0, *cuts]]), inside
