"""The organisations' ledger (辖区单位台账) as a sheet: keyed by name and address."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis.audit import Who
from gis.errors import InvalidInput
from gis.ledger.kinds.common import write_entries
from gis.ledger.plan import Action, Plan
from gis.security import Keys

FIELDS = ("name", "kind", "contact_name", "phone", "address", "notes")


class Organisations:
    """Organisations of one community, found by name and address (no ID numbers)."""

    name = "organisations"
    subject = compared = "organisation"
    looks_up_numbers = False
    audits_touched = False

    def plan(
        self, conn: Connection, keys: Keys, rows: list[dict[str, Any]], plan: Plan,
        community_id: int | None,
    ) -> None:  # fmt: skip
        """Compare each row with the community's organisation of that name and address."""
        if community_id is None:
            raise InvalidInput("organisations need community_id: the community they belong to")
        existing = self._existing(conn, community_id, [row["name"] for row in rows])
        for row in rows:
            n = row["_row"]
            values = {k: row.get(k) for k in FIELDS} | {"community_id": community_id}
            org = existing.get((values["name"], values["address"]))
            if org is None:
                plan.actions.append(("add", None, values, n))
                continue
            plan.seen.add(org.id)
            now = {
                "kind": org.kind,
                "contact_name": org.contact_name,
                "phone": keys.open(org.phone_enc, "organisation.phone")
                if org.phone_enc is not None
                else None,
                "notes": org.notes,
            }
            plan.compare(org.id, values, now, n)

    @staticmethod
    def _existing(conn: Connection, community_id: int, names: list[str]) -> dict[tuple, Any]:
        """(name, address) → the community's first organisation of that name and address."""
        rows = conn.execute(
            sa.text(
                "SELECT id, name, kind, contact_name, phone_enc, address, notes FROM "
                "organisation WHERE community_id = :c AND name = ANY(:n) ORDER BY id"
            ),
            {"c": community_id, "n": list(dict.fromkeys(names))},
        )
        out: dict[tuple, Any] = {}
        for r in rows:
            out.setdefault((r.name, r.address), r)
        return out

    def write(self, conn: Connection, keys: Keys, user: Who, actions: list[Action]) -> None:
        write_entries(conn, keys, user, self.name, actions)

    def export(self, conn: Connection, keys: Keys) -> tuple[list[int], list[dict[str, Any]]]:
        ids, rows = [], []
        for r in conn.execute(sa.text("SELECT * FROM organisation ORDER BY id")):
            ids.append(r.id)
            rows.append({
                "name": r.name, "kind": r.kind, "contact_name": r.contact_name,
                "phone": keys.open(r.phone_enc, "organisation.phone") if r.phone_enc else None,
                "address": r.address, "notes": r.notes,
            })  # fmt: skip
        return ids, rows
