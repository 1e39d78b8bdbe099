"""Complementary suppression of the people counts planners see (``gis.areas.stats``).

Counts from 1 to 4 are withheld in every area of every level, and then enough other cells
that no withheld count can be worked out by subtraction across the hierarchy's sums or
from the bound "a category never counts more than the residents" (:func:`withhold`).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis.levels import Level

SMALL = 5  # counts from 1 to 4 are withheld (zero is safe to show)
WITHHELD = "suppressed"
# One row per resident and kind, so such a count never exceeds the residents of its area;
# a reader knows this too, and the audit below uses it. (Key persons may have two rows.)
_AT_MOST_RESIDENTS = ("special_group:", "backbone:")
_UNBOUNDED = 10**12

Node = tuple[int, int]  # (index in LEVELS, area id); a gap in a building's path has id < 0
Cell = tuple[Node, str]  # (area, what is counted)


@dataclass
class PeopleTable:
    """People counts of the user's buildings summed up every level: parent = sum of children."""

    parent: dict[Node, Node | None]
    children: dict[Node, list[Node]]
    counts: dict[str, dict[Node, int]]  # what -> area -> count (nonzero only)


def read_table(conn: Connection, levels_top_down: list[Level]) -> PeopleTable:
    """All counts of the user's scope, per area of every level (one query)."""
    columns = [lv.path_column for lv in levels_top_down]  # names are ours
    rows = conn.execute(
        sa.text(
            f"SELECT {', '.join('p.' + c for c in columns)}, c.what, c.n "
            "FROM ga_people_counts() c JOIN building_path p ON p.building_id = c.building_id "
            "ORDER BY p.building_id, c.what"
        )
    ).all()
    table = PeopleTable({}, {}, {})
    gaps: dict[tuple[int, Node | None], Node] = {}
    for r in rows:
        up: Node | None = None
        for i, column in enumerate(columns):
            area = r._mapping[column]
            # a level missing from the path (a building in no unit) is still a cell of the
            # sums, only never published: community = grids + buildings in no grid
            node = (i, area) if area is not None else gaps.setdefault((i, up), (i, -1 - len(gaps)))
            if node not in table.parent:
                table.parent[node] = up
                if up is not None:
                    table.children.setdefault(up, []).append(node)
            by_area = table.counts.setdefault(r.what, {})
            by_area[node] = by_area.get(node, 0) + r.n
            up = node
    return table


def _groups_of(table: PeopleTable, cell: Cell) -> list[tuple[Node, str]]:
    """The additive groups (parent, what) a cell belongs to: as a child and as a parent."""
    node, what = cell
    up = table.parent[node]
    return ([(up, what)] if up is not None else []) + (
        [(node, what)] if node in table.children else []
    )


def _sum_cells(table: PeopleTable, group: tuple[Node, str]) -> list[Cell]:
    """The parent first, then its nonzero children (zeros are published, exactly 0)."""
    up, what = group
    counts = table.counts[what]
    return [(up, what)] + [(k, what) for k in table.children[up] if k in counts]


def _complement(table: PeopleTable, group: tuple[Node, str], withheld: set[Cell]) -> Cell | None:
    """The cell to withhold next in a group: a gap (never published anyway), else the
    smallest published child, else the parent."""
    cells = [x for x in _sum_cells(table, group) if x not in withheld]
    if not cells:
        return None
    counts = table.counts[group[1]]
    return min(cells, key=lambda x: (x[0][1] > 0, x[0] == group[0], counts[x[0]], x[0]))


def _complete(table: PeopleTable, withheld: set[Cell], todo: list[tuple[Node, str]]) -> None:
    """Withhold more cells until no group has exactly one withheld cell (it would be the
    published parent minus the published children)."""
    while todo:
        group = todo.pop()
        if sum(x in withheld for x in _sum_cells(table, group)) != 1:
            continue
        extra = _complement(table, group, withheld)
        if extra is not None:
            withheld.add(extra)
            todo.extend(_groups_of(table, extra))


@dataclass
class _Bounds:
    """Interval bounds of cells, and the relations between them (see :func:`_bounds`)."""

    lo: dict[Cell, int]
    hi: dict[Cell, int]
    members: dict[tuple[Node, str], list[Cell]]  # a sum: the parent first, then children
    links: dict[Cell, list[tuple[str, Node, str]]]  # relations a cell is in
    withheld: set[Cell]

    def narrow(self, x: Cell, low: int, high: int) -> bool:
        """Tighten a withheld cell to [low, high]; True if it changed."""
        if x not in self.withheld or (low <= self.lo[x] and high >= self.hi[x]):
            return False
        self.lo[x], self.hi[x] = max(self.lo[x], low), min(self.hi[x], high)
        return True

    def apply(self, kind: str, node: Node, what: str) -> list[Cell]:
        """Propagate one relation; the cells whose bounds changed."""
        lo, hi = self.lo, self.hi
        changed: list[Cell] = []
        if kind == "le":
            part, whole = (node, what), (node, "residents")
            if self.narrow(part, 0, hi[whole]):
                changed.append(part)
            if self.narrow(whole, lo[part], _UNBOUNDED):
                changed.append(whole)
            return changed
        top, *kids = self.members[(node, what)]
        low, high = sum(lo[k] for k in kids), sum(hi[k] for k in kids)
        if self.narrow(top, low, high):
            changed.append(top)
        for k in kids:
            k_lo, k_hi = lo[k], hi[k]
            if self.narrow(k, lo[top] - (high - k_hi), hi[top] - (low - k_lo)):
                changed.append(k)
                low, high = low - k_lo + lo[k], high - k_hi + hi[k]
        return changed


def _start_bounds(table: PeopleTable, withheld: set[Cell]) -> _Bounds:
    """Published cells are exact; a withheld one starts in [1, unbounded]."""
    b = _Bounds({}, {}, {}, {}, withheld)
    for x in withheld:
        b.lo[x], b.hi[x] = 1, _UNBOUNDED
        node, what = x
        b.links[x] = [("sum", *g) for g in _groups_of(table, x)]
        if what.startswith(_AT_MOST_RESIDENTS):
            b.links[x].append(("le", node, what))
            b.links.setdefault((node, "residents"), []).append(("le", node, what))
        for g in _groups_of(table, x):
            for y in b.members.setdefault(g, _sum_cells(table, g)):
                b.lo.setdefault(y, table.counts[y[1]].get(y[0], 0))
                b.hi.setdefault(y, b.lo[y])
    for node, what in list(b.links):
        b.lo.setdefault((node, what), table.counts[what].get(node, 0))
        b.hi.setdefault((node, what), b.lo[(node, what)])
    return b


def _bounds(table: PeopleTable, withheld: set[Cell]) -> dict[Cell, tuple[int, int]]:
    """What a reader can prove about each withheld cell from the published ones.

    Interval propagation over every sum and over ``special_group:*``/``backbone:*`` <=
    ``residents``; a withheld cell starts in [1, unbounded] (zeros are never withheld).
    Bounds only tighten, between the true value and the start, so the queue empties.
    """
    b = _start_bounds(table, withheld)
    queue = list({c for x in withheld for c in b.links[x]})
    queued = set(queue)
    while queue:
        relation = queue.pop()
        queued.discard(relation)
        for x in b.apply(*relation):
            for c in b.links.get(x, ()):
                if c not in queued:
                    queued.add(c)
                    queue.append(c)
    return {x: (b.lo[x], b.hi[x]) for x in withheld}


def _widen(table: PeopleTable, cell: Cell, withheld: set[Cell]) -> None:
    """Withhold one more cell next to a cell a reader could still pin down: in its own
    group, below it, or further up; if none is left, the whole count (never reached)."""
    node, what = cell
    groups = _groups_of(table, cell)
    up = table.parent[node]
    while up is not None:
        groups.append((up, what))
        up = table.parent[up]
    for group in groups:
        extra = _complement(table, group, withheld)
        if extra is not None:
            withheld.add(extra)
            return
    withheld.update((n, what) for n in table.counts[what])


def withhold(table: PeopleTable) -> set[Cell]:
    """The cells to withhold: small counts and enough others that none can be worked out.

    Primary suppression withholds counts from 1 to 4 in every area of every level.
    Complementary suppression then withholds, in each sum (an area and its children, for
    each thing counted), a second cell wherever only one is withheld, preferring the
    smallest child so that totals stay published, until no sum has exactly one. Last, an
    audit (:func:`_bounds`) bounds every withheld cell by all sums at once; any cell it pins
    to one value gets another cell withheld next to it, and the whole is repeated until none
    is pinned. Every answer is cut from this one table, whatever level, parent, community or
    page is asked for, so combining answers adds no equation the audit has not seen.
    """
    withheld = {
        (node, what)
        for what, by_area in table.counts.items()
        for node, n in by_area.items()
        if n < SMALL
    }
    todo = sorted({g for x in withheld for g in _groups_of(table, x)}, reverse=True)
    while True:
        _complete(table, withheld, todo)
        pinned = sorted(x for x, (low, high) in _bounds(table, withheld).items() if low == high)
        if not pinned:
            return withheld
        for x in pinned:
            _widen(table, x, withheld)
        todo = sorted({g for x in withheld for g in _groups_of(table, x)}, reverse=True)
