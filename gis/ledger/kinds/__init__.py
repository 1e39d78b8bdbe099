"""The five ledgers as kinds of sheet: each selects, plans and exports its own rows.

A kind is what a spreadsheet import or export needs to know of one ledger: how to compare
the rows of a file with the database (``plan``, a handful of queries for the whole file),
how to write the planned changes (``write``, in batches) and how to read every row back
out (``export``). ``Residents`` and ``Organisations`` are their own; the three ledgers of
entries about a resident (special groups, key persons, backbone) share ``ResidentEntries``,
parameterised by table and choice field.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy.engine import Connection

from gis.audit import Who
from gis.errors import InvalidInput
from gis.ledger.kinds.entries import ResidentEntries
from gis.ledger.kinds.organisations import Organisations
from gis.ledger.kinds.residents import Residents
from gis.ledger.plan import Action, Plan
from gis.security import Keys


class LedgerKind(Protocol):
    """One ledger as a sheet."""

    name: str  # the sheet's (and template's) name
    subject: str  # the audit subject of its rows: their table
    compared: str  # the audit subject of the rows a comparison reads
    looks_up_numbers: bool  # whether its rows are found by ID number
    audits_touched: bool  # whether an import also audits the rows it updates, by table

    def plan(
        self, conn: Connection, keys: Keys, rows: list[dict[str, Any]], plan: Plan,
        community_id: int | None,
    ) -> None: ...  # fmt: skip

    def write(self, conn: Connection, keys: Keys, user: Who, actions: list[Action]) -> None:
        ...

    def export(self, conn: Connection, keys: Keys) -> tuple[list[int], list[dict[str, Any]]]:
        ...


KINDS: dict[str, LedgerKind] = {
    kind.name: kind
    for kind in (
        Residents(),
        Organisations(),
        ResidentEntries("special_groups", "special_group", "category"),
        ResidentEntries("key_persons", "key_person", "category"),
        ResidentEntries("backbone", "backbone", "role"),
    )
}


def get_kind(ledger: str) -> LedgerKind:
    """The kind of a ledger; InvalidInput for an unknown name."""
    try:
        return KINDS[ledger]
    except KeyError:
        raise InvalidInput(
            f"unknown ledger {ledger!r}; expected one of {', '.join(KINDS)}"
        ) from None
