"""The ledgers of entries about a resident (special groups, key persons, backbone) as sheets.

An entry is keyed by the resident's ID number and its choice (category or role); the
resident must already be in the user's areas.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis.audit import Who
from gis.ledger import entries as ledger_entries
from gis.ledger.kinds.common import number_hash, residents_by_hash, write_entries
from gis.ledger.plan import Action, Plan
from gis.ledger.reasons import reason
from gis.ledger.templates import get_template
from gis.security import Keys

NOT_FOUND = reason("no_resident")


class ResidentEntries:
    """One ledger of entries about residents, by its table and choice field."""

    compared = "resident"
    looks_up_numbers = True
    audits_touched = True

    def __init__(self, name: str, table: str, choice_field: str) -> None:
        self.name, self.subject, self.choice_field = name, table, choice_field

    @property
    def fields(self) -> tuple[str, ...]:
        """The entry's columns a sheet fills, besides the resident's id."""
        return tuple(f for f in ledger_entries.LEDGERS[self.name].fields if f != "resident_id")

    def plan(
        self, conn: Connection, keys: Keys, rows: list[dict[str, Any]], plan: Plan,
        community_id: int | None,
    ) -> None:  # fmt: skip
        """Compare each row with its resident's entry of that choice: two queries in all."""
        heading = {c.key: c.heading for c in get_template(self.name).columns}
        hashes = {row["_row"]: number_hash(keys, row["id_number"]) for row in rows}
        people = residents_by_hash(conn, list(dict.fromkeys(hashes.values())), "name")
        existing = self._entries(conn, [p.id for p in people.values()])
        for row in rows:
            n = row["_row"]
            person = people.get(hashes[n])
            if person is None:
                plan.error(n, heading["id_number"], None, NOT_FOUND)
                continue
            plan.seen.add(person.id)
            if row.get("name") and row["name"] != person.name:
                plan.warnings.append(
                    f"row {n}: 姓名 {row['name']} differs from the ledger's {person.name}"
                )
            values = {k: row.get(k) for k in self.fields} | {"resident_id": person.id}
            entry = existing.get((person.id, row[self.choice_field]))
            if entry is None:
                plan.actions.append(("add", None, values, n))
                continue
            plan.compare(entry.id, values, {k: getattr(entry, k) for k in values}, n)

    def _entries(self, conn: Connection, resident_ids: list[int]) -> dict[tuple[int, str], Any]:
        rows = conn.execute(
            sa.text(f"SELECT * FROM {self.subject} WHERE resident_id = ANY(:r)"),
            {"r": resident_ids},
        )
        return {(r.resident_id, getattr(r, self.choice_field)): r for r in rows}

    def write(self, conn: Connection, keys: Keys, user: Who, actions: list[Action]) -> None:
        write_entries(conn, keys, user, self.name, actions)

    def export(self, conn: Connection, keys: Keys) -> tuple[list[int], list[dict[str, Any]]]:
        extra = ", e.handling" if "handling" in self.fields else ""
        ids, out = [], []
        for r in conn.execute(
            sa.text(
                f"SELECT e.id, e.{self.choice_field} AS c, e.notes{extra}, r.name, "
                f"r.id_number_enc FROM {self.subject} e JOIN resident r ON r.id = e.resident_id "
                "ORDER BY e.id"
            )
        ):
            ids.append(r.id)
            row = {
                "name": r.name,
                "id_number": keys.open(r.id_number_enc, "resident.id_number"),
                self.choice_field: r.c,
                "notes": r.notes,
            }
            if extra:
                row["handling"] = r.handling
            out.append(row)
        return ids, out
