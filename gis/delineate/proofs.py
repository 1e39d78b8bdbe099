"""Proofs that a piece of a major-road block cannot be shared into groups in band.

A group below the band in a piece that holds enough households for groups in band (count
wise: ``groups.has_band_split``) is either the partition's failure or the rules' doing: the
groups are connected unions of whole members (units), and a member may be indivisible (a
walk-up, ``parts.WALKUP_MAX``; several small buildings together). ``prove_band_split``
decides exactly, for every count of groups the households allow, whether the piece's
members can be partitioned into that many connected groups each within the band.

The search (``_Search``) fixes the first member with households, enumerates each connected
set of members holding it once (a set grows only by neighbours, and a member left out of
one branch stays out of the branches after it), and solves the rest of the piece for one
group fewer. A branch ends as soon as the members it left out can no longer end up in the
groups left: those with households must lie in at most as many pieces of what remains as
there are groups left, and when they fill them the group being grown must take every
other household. Members without households may stay out of every group (a group without
households is allowed: ``no_households``); in one piece that changes nothing, as such a
member can always join a group it touches. It is exact: "infeasible" means that no such
partition exists, for any allowed count.

Bounds: at most ``MAX_MEMBERS`` members, counts of at most ``MAX_GROUPS`` groups (a piece
that allows more is "unknown" unless a smaller count succeeds), and ``BUDGET`` steps
(walks over what remains of the piece, each at most ``MAX_MEMBERS`` members: about 0.15 s
of CPU when it runs out); beyond them the answer is "unknown".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from enum import StrEnum

import numpy as np

from gis.delineate.graph import assign_until_stable
from gis.delineate.parts import WALKUP_MAX
from gis.delineate.units import Units

MAX_MEMBERS = 40  # units of a piece; Porto's proven piece has 23
MAX_CELLS = 120  # buildings and land pieces of a piece (that piece: 73)
MAX_GROUPS = 3  # counts of groups tried: ceil(H / max) .. floor(H / min), each at most this
BUDGET = 20_000  # steps (walks over what remains of the piece) per piece, every count
TOLERANCE = 1e-6  # households: the band is widened by this, so rounding never proves anything


class Answer(StrEnum):
    """What the search found for a piece."""

    FEASIBLE = "feasible"  # some count of connected groups puts every group in band
    INFEASIBLE = "infeasible"  # proven: no count does
    UNKNOWN = "unknown"  # too large, a member could be divided, or the budget ran out


class _OutOfBudget(Exception):
    pass


def group_counts(households: float, band: tuple[float, float]) -> range:
    """The counts of groups that could share ``households`` with each group in ``band``."""
    lo, hi = band
    if households <= 0:
        return range(0)
    fewest = max(1, math.ceil(households / hi - TOLERANCE))
    return range(fewest, int(households / lo + TOLERANCE) + 1)


class _Search:
    """Exact search for connected groups in band over members as bit masks."""

    def __init__(self, households: Sequence[float], nbr: list[int], band, budget: int):
        self.hh = [float(h) for h in households]
        self.nbr = nbr
        self.lo, self.hi = band[0] - TOLERANCE, band[1] + TOLERANCE
        self.homes = sum(1 << i for i, h in enumerate(self.hh) if h > 0)
        self.steps = budget

    def _pieces(self, mask: int) -> list[tuple[int, float]]:
        """The connected pieces of ``mask`` and their households (one step of the budget)."""
        self.steps -= 1
        if self.steps < 0:
            raise _OutOfBudget
        out = []
        while mask:
            comp = frontier = mask & -mask
            weight = 0.0
            while frontier:
                bit = frontier & -frontier
                frontier ^= bit
                i = bit.bit_length() - 1
                weight += self.hh[i]
                new = self.nbr[i] & mask & ~comp
                comp |= new
                frontier |= new
            out.append((comp, weight))
            mask &= ~comp
        return out

    def solves(self, rest: int, k: int) -> list[int] | None:
        """k connected groups in band over ``rest`` (bit masks), if there are; else None.

        Members without homes may stay out of every group.
        """
        homes = [(c, w) for c, w in self._pieces(rest) if c & self.homes]
        if k == 0 or len(homes) > k:
            return [] if not homes and k == 0 else None
        if len(homes) > 1:
            return self._shares(homes, k)
        piece, weight = homes[0]
        if not k * self.lo <= weight <= k * self.hi:
            return None
        if k == 1:
            return [piece]
        # the group of the piece's first member with households, grown in every way
        first = piece & self.homes & -(piece & self.homes)
        i = first.bit_length() - 1
        low = max(self.lo, weight - (k - 1) * self.hi)
        high = min(self.hi, weight - (k - 1) * self.lo)
        if low > high or self.hh[i] > high:
            return None
        return self._grow(piece, k, first, self.hh[i], self.nbr[i] & piece, 0, low, high)

    def _shares(self, pieces: list[tuple[int, float]], k: int) -> list[int] | None:
        """The pieces' groups when they take k groups in all, each piece some of them."""
        (piece, weight), others = pieces[0], pieces[1:]
        for kc in group_counts(weight, (self.lo, self.hi)):
            if kc > k - len(others):
                continue
            mine = self.solves(piece, kc)
            if mine is None:
                continue
            rest = self._shares(others, k - kc) if others else ([] if kc == k else None)
            if rest is not None:
                return mine + rest
        return None

    def _may_grow(self, piece: int, k: int, group: int, weight: float, out: int, high: float):
        """Whether the members left ``out`` of ``group`` can still end in the k - 1 others.

        They lie in what stays outside the group: the pieces of it holding them need a
        group each, and when they need every group left, the group takes all the rest.
        """
        kept = out & self.homes
        if not kept:
            return True
        held, spare = 0, 0.0
        for comp, w in self._pieces(piece & ~group):
            if comp & kept:
                held += 1
            elif comp & self.homes:
                spare += w
        return held < k - 1 or held == k - 1 and weight + spare <= high

    def _grow(
        self, piece: int, k: int, group: int, weight: float, cand: int, out: int, low, high
    ) -> list[int] | None:
        """The groups when ``group`` grown by members of ``cand`` (never of ``out``) to
        ``low``–``high`` households leaves the rest of ``piece`` as k - 1 groups in band."""
        if weight >= low:
            rest = self.solves(piece & ~group, k - 1)
            if rest is not None:
                return [group, *rest]
        while cand:
            bit = cand & -cand
            cand ^= bit
            i = bit.bit_length() - 1
            w = weight + self.hh[i]
            if w <= high:
                grown = group | bit
                if self._may_grow(piece, k, grown, w, out, high):
                    more = (cand | self.nbr[i]) & piece & ~grown & ~out
                    found = self._grow(piece, k, grown, w, more, out, low, high)
                    if found is not None:
                        return found
            out |= bit  # sets with this member were all grown above
        return None


def band_split(
    households: Sequence[float],
    adjacency: Sequence[Iterable[int]],
    band: tuple[float, float],
    budget: int = BUDGET,
    max_members: int = MAX_MEMBERS,
) -> tuple[Answer, list[list[int]] | None]:
    """``prove_band_split``'s answer, with the groups found (member indices) when feasible.

    Members without households may be in no group.
    """
    n = len(households)
    counts = group_counts(float(sum(households)), band)
    if not counts:
        return Answer.INFEASIBLE, None
    if n > max_members or counts[0] > MAX_GROUPS:
        return Answer.UNKNOWN, None
    # Python ints as bit masks: indices may come as numpy integers, which do not shift far
    nbr = [
        sum(1 << j for j in {int(v) for v in adj} if 0 <= j < n and j != i)
        for i, adj in enumerate(adjacency)
    ]
    search = _Search(households, nbr, band, budget)
    try:
        for k in counts:
            if k > MAX_GROUPS:
                break
            found = search.solves((1 << n) - 1, k)
            if found is not None:
                return Answer.FEASIBLE, [[i for i in range(n) if g >> i & 1] for g in found]
    except _OutOfBudget:
        return Answer.UNKNOWN, None
    # a count above the bound is not tried: nothing is proven for it
    return (Answer.INFEASIBLE if counts[-1] <= MAX_GROUPS else Answer.UNKNOWN), None


def prove_band_split(
    households: Sequence[float],
    adjacency: Sequence[Iterable[int]],
    band: tuple[float, float],
    budget: int = BUDGET,
    max_members: int = MAX_MEMBERS,
) -> Answer:
    """Whether the members can be k connected groups each within ``band``, for some k.

    ``households`` per member, ``adjacency`` its neighbours (indices of members; others are
    ignored). Every member is taken as indivisible: the caller checks that
    (``prove_piece``). Counts k from ``group_counts``; none allowed is infeasible.
    """
    return band_split(households, adjacency, band, budget, max_members)[0]


def is_indivisible(units: Units, unit: int) -> bool:
    """Whether the rules keep ``unit`` whole: small buildings together, or a walk-up.

    A building above ``WALKUP_MAX`` households may be divided, and a part of a divided one
    already is; a walk-up is divided only when alone in its block (``piece`` of one unit).
    """
    if units.part_of[unit] >= 0 or int(units.piece[unit]) in units.parts:
        return False
    return units.piece[unit] < 0 or units.households[unit] <= WALKUP_MAX


def prove_piece(units: Units, members: Sequence[int], band: tuple[float, float]) -> Answer:
    """``prove_band_split`` over ``members`` (one piece of a major-road block) of ``units``.

    Unknown when a member could be divided, or a lone building could be (alone in its block).
    """
    members = list(members)
    if len(members) > MAX_MEMBERS:
        return Answer.UNKNOWN
    if len(members) == 1 and units.piece[members[0]] >= 0:
        return Answer.UNKNOWN
    if not all(is_indivisible(units, u) for u in members):
        return Answer.UNKNOWN
    return unit_split(units, members, band)[0]


def unit_split(
    units: Units, members: Sequence[int], band: tuple[float, float]
) -> tuple[Answer, list[list[int]] | None]:
    """``band_split`` over ``members`` of ``units`` as they are drawn (``units.adj``); the
    groups found are of units. The caller checks that the units are indivisible."""
    members = list(members)
    index = {u: i for i, u in enumerate(members)}
    adjacency = [[index[v] for v in units.adj[u] if v in index] for u in members]
    answer, found = band_split(units.households[members].tolist(), adjacency, band)
    return answer, None if found is None else [[members[i] for i in g] for g in found]


def prove_buildings(units: Units, members: Sequence[int], band: tuple[float, float]) -> Answer:
    """``prove_piece`` over the piece's buildings and land instead of its units."""
    return building_split(units, members, band)[0]


def building_split(
    units: Units, members: Sequence[int], band: tuple[float, float]
) -> tuple[Answer, list[list[int]] | None]:
    """``band_split`` over the buildings and land pieces of ``members`` (one piece).

    A unit of several small buildings, and the unit each piece of land joins, are this
    product's drawing, not a rule: only when whole buildings (walk-ups, never divided), with
    the land between them given to any group it touches, admit no groups all in band is it
    the rules' doing. The groups found are of piece indices (``units.of_piece``).
    """
    members = list(members)
    if units.cell_households is None or not all(is_indivisible(units, u) for u in members):
        return Answer.UNKNOWN, None
    if len(members) == 1 and units.piece[members[0]] >= 0:
        return Answer.UNKNOWN, None
    cells = np.flatnonzero(np.isin(units.of_piece, members)).tolist()
    if len(cells) > MAX_CELLS:
        return Answer.UNKNOWN, None
    hh = units.cell_households[cells]
    if (hh > WALKUP_MAX).any():  # a building the rules let divide: nothing to prove
        return Answer.UNKNOWN, None
    index = {c: i for i, c in enumerate(cells)}
    adjacency = [[index[v] for v in units.piece_adj[c] if v in index] for c in cells]
    answer, found = band_split(hh.tolist(), adjacency, band, max_members=MAX_CELLS)
    return answer, None if found is None else [[cells[i] for i in g] for g in found]


class PieceProofs:
    """The proofs of the pieces of one major-road block, each made once, when first asked."""

    def __init__(
        self,
        units: Units,
        pieces: Sequence[Sequence[int]],
        piece_of: dict[int, int],
        band: tuple[float, float],
    ):
        """``pieces``: the units of each piece; ``piece_of``: per unit, its piece."""
        self.units, self.pieces, self.piece_of, self.band = units, pieces, piece_of, band
        self.answers: dict[int, Answer] = {}
        self.found: dict[int, list[list[int]] | None] = {}

    def answer(self, unit: int) -> Answer | None:
        """The piece holding ``unit``: can its whole buildings make groups all in band?"""
        i = self.piece_of.get(unit)
        if i is None:
            return None
        if i not in self.answers:
            self.answers[i], self.found[i] = building_split(self.units, self.pieces[i], self.band)
        return self.answers[i]

    def is_infeasible(self, unit: int) -> bool:
        """Whether the piece holding ``unit`` is proven to allow no groups all in band."""
        return self.answer(unit) is Answer.INFEASIBLE

    def to_regroup(self, unit: int) -> dict[int, int]:
        """How to draw the units of the piece holding ``unit`` again so that the groups its
        buildings allow are unions of units: per building cell of the piece, itself (a unit
        of its own), and per piece of land in a group found, a cell it joins (a building of
        that group it touches, or land that joined one). Empty when the piece's buildings
        admit no groups all in band, or when its units already are single buildings whose
        land allows them (nothing to draw again)."""
        if self.answer(unit) is not Answer.FEASIBLE:
            return {}
        i = self.piece_of[unit]
        members, units = self.pieces[i], self.units
        if unit_split(units, members, self.band)[0] in (Answer.FEASIBLE, Answer.UNKNOWN):
            return {}  # the units as drawn allow it (or it is not known): the search's work
        hh = units.cell_households
        out: dict[int, int] = {}
        for group in self.found[i] or []:
            homes = [c for c in group if hh[c] > 0]
            out.update((c, c) for c in homes)
            mine = set(group)

            def join(c: int, mine: set[int] = mine) -> bool:  # land next to what joined
                joined = next((v for v in units.piece_adj[c] if v in out and v in mine), None)
                if joined is not None:
                    out[c] = out[joined]
                return joined is not None

            assign_until_stable([c for c in group if hh[c] <= 0], join)
        return out
