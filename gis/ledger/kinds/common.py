"""What the kinds share: finding residents by ID number for a whole file at once."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis.audit import Who
from gis.ledger import batch
from gis.ledger.plan import Action
from gis.security import Keys


def number_hash(keys: Keys, number: str) -> bytes:
    return keys.search_hash(number, "id_number")


def residents_by_hash(conn: Connection, hashes: list[bytes], columns: str) -> dict[bytes, Any]:
    """The residents in the user's scope with these ID-number hashes (one query)."""
    rows = conn.execute(
        sa.text(
            f"SELECT id, id_number_hmac, {columns} FROM resident "
            "WHERE id_number_hmac = ANY(:h)"
        ),
        {"h": hashes},
    )
    return {bytes(r.id_number_hmac): r for r in rows}


def taken_elsewhere(conn: Connection, hashes: list[bytes]) -> set[bytes]:
    """Which of these hashes are registered anywhere (outside the user's scope, since
    those within it were found): one call of the yes-or-no function per hash, one query."""
    if not hashes:
        return set()
    rows = conn.scalars(
        sa.text(
            "SELECT h FROM unnest(CAST(:h AS bytea[])) h "
            "WHERE EXISTS (SELECT 1 FROM ga_id_number_taken(h, 0))"
        ),
        {"h": hashes},
    )
    return {bytes(h) for h in rows}


def split(actions: list[Action]) -> tuple[list[dict], list[tuple[int, dict]]]:
    """The values of the rows to add, and (id, changes) of the rows to update."""
    adds = [values for what, _id, values, _n in actions if what == "add"]
    updates = [(row_id, values) for what, row_id, values, _n in actions
               if what == "update" and row_id is not None]  # fmt: skip
    return adds, updates


def write_entries(
    conn: Connection, keys: Keys, user: Who, name: str, actions: list[Action]
) -> None:
    """Write the planned rows of an entry ledger or of organisations, in batches."""
    adds, updates = split(actions)
    if adds:
        batch.create_entries(conn, keys, user, name, adds)
    if updates:
        batch.update_entries(conn, keys, user, name, updates)
