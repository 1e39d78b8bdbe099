"""People figures of a community for the roles that read no personal rows (planners).

They come from ``ga_report_counts`` (migration 0015, SECURITY DEFINER): counts only, for a
community the user holds whole, each count from 1 to 4 withheld by the database itself
(``gis.suppression.SMALL``), so a withheld value never reaches the app. A shown figure is
then also checked against what ``/api/stats`` publishes (``gis.suppression``'s table): the
backbone team is about the sum of the community's ``backbone:*`` counts, so it is withheld
whenever stats withholds one of those, else it would give that one back by subtraction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis.levels import LEVELS
from gis.suppression import SMALL, WITHHELD, read_table, withhold

COUNTS = "SELECT * FROM ga_report_counts(:cid, coalesce(CAST(:at AS timestamptz), now()))"
SOURCE = "ga_report_counts (migration 0015; counts from 1 to 4 withheld)"
NAMES = ("backbone_people", "leaders", "problems_reported", "problems_closed",
         "problems_overdue", "median_days_to_close")  # fmt: skip
_COMMUNITY = [lv.table for lv in LEVELS].index("community")

Value = int | float | str | None  # a count, the median, WITHHELD; None: not counted


@dataclass(frozen=True)
class Counts:
    """One community's counted figures: a number, or ``WITHHELD``."""

    values: dict[str, Value]

    def get(self, name: str) -> Value:
        return self.values[name]


def read(conn: Connection, community_id: int, at: dt.datetime | None = None) -> Counts | None:
    """The counts of one community; None unless the user holds the whole community."""
    row = conn.execute(sa.text(COUNTS), {"cid": community_id, "at": at}).first()
    if row is None:
        return None
    values: dict[str, Value] = {}
    for name in NAMES:
        v = row._mapping[name]
        if name == "median_days_to_close":
            values[name] = WITHHELD if v is None else round(float(v), 1)
        else:
            values[name] = WITHHELD if v is None else int(v)
    return Counts(values)


def stats_withheld_backbone(conn: Connection, community_ids: list[int]) -> set[int]:
    """The communities of ``community_ids`` with a ``backbone:*`` count that ``/api/stats``
    withholds (one table of the user's scope, as stats cuts every answer from)."""
    if not community_ids:
        return set()
    table = read_table(conn, list(LEVELS))
    wanted = set(community_ids)
    return {
        node[1]
        for node, what in withhold(table)
        if node[0] == _COMMUNITY and node[1] in wanted and what.startswith("backbone:")
    }


def note_for(value: Value) -> str | None:
    """Why a counted figure has no number (None when it has one)."""
    if value is None:
        return "planners read no personal rows: counted only for a login that holds the community"
    if value == WITHHELD:
        return f"withheld: counts from 1 to {SMALL - 1} are not shown (nor what gives one back)"
    return None
