"""Many rows of a ledger written in a few statements: the spreadsheet import's writes.

Every row is validated exactly as one written through the API (``store._resident_columns``,
``entries._entry_columns``: every field before anything touches an ID number), the scope
checks are made once for all rows, and then the rows go to the database in batches
(executemany). The statements are still one per row for PostgreSQL, so the
``ledger_history`` trigger records each change as the user, and the constraints refuse a
duplicate ID number as they do for one row (audited and refused by ``_refuse_duplicate``).
"""

from __future__ import annotations

from itertools import groupby
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis.audit import Who
from gis.errors import Conflict, InvalidInput, NotFound
from gis.ledger import entries, store
from gis.security import Keys

BATCH = 1_000  # rows per executemany


def create_residents(conn: Connection, keys: Keys, user: Who, rows: list[dict]) -> None:
    """Create residents, as ``store.create_resident(..., in_import=True)`` does one."""
    store._need_writer(user)
    cols = []
    for data in rows:
        missing = [f for f in ("name", "id_number", "building_id", "room") if not data.get(f)]
        if missing:
            raise InvalidInput(f"missing {', '.join(missing)}")
        cols.append(store._resident_columns(keys, data) | _by(user, created=True))
    _buildings_in_scope(conn, [c["building_id"] for c in cols])
    try:
        with conn.begin_nested():
            _insert(conn, "resident", cols)
    except sa.exc.IntegrityError as err:
        if store._is_duplicate_number(err):
            store._refuse_duplicate(conn, user, "create")
        raise


def update_residents(
    conn: Connection, keys: Keys, user: Who, changes: list[tuple[int, dict]]
) -> None:
    """Change residents, as ``store.update_resident`` does one (never their ID number)."""
    store._need_writer(user)
    cols = [(rid, store._resident_columns(keys, data)) for rid, data in changes]
    if any("id_number_hmac" in c for _rid, c in cols):
        raise InvalidInput("an import does not change ID numbers")
    _lock(conn, "resident", [rid for rid, _c in cols], "resident")
    _buildings_in_scope(conn, [c["building_id"] for _rid, c in cols if "building_id" in c])
    try:
        with conn.begin_nested():
            _update(conn, "resident", cols, user)
    except sa.exc.IntegrityError as err:
        if store._is_duplicate_number(err):
            store._refuse_duplicate(conn, user, "update")
        raise


def create_entries(
    conn: Connection, keys: Keys, user: Who, name: str, rows: list[dict]
) -> None:
    """Create rows of an entry ledger or organisations, as ``entries.create_entry`` does one."""
    ledger = entries.LEDGERS[name]
    store._need_writer(user, ledger.writers)
    ledger.check_new(conn, rows)
    cols = [entries._entry_columns(keys, ledger, data) | _by(user, created=True) for data in rows]
    try:
        with conn.begin_nested():
            _insert(conn, ledger.table, cols)
    except sa.exc.IntegrityError as err:
        if "unique" in str(err.orig).lower():
            raise Conflict(
                f"this resident already has that {ledger.choice_field} in the ledger",
                key="form.duplicate_entry",
            ) from None
        raise


def update_entries(
    conn: Connection, keys: Keys, user: Who, name: str, changes: list[tuple[int, dict]]
) -> None:
    """Change rows of an entry ledger or organisations, as ``entries.update_entry`` does one."""
    ledger = entries.LEDGERS[name]
    store._need_writer(user, ledger.writers)
    _lock(conn, ledger.table, [eid for eid, _data in changes], ledger.label)
    residents = [d["resident_id"] for _eid, d in changes if "resident_id" in d]
    if residents:
        entries._visible_residents(conn, residents)
    _buildings_in_scope(
        conn, [d["building_id"] for _e, d in changes if d.get("building_id") is not None]
    )
    for community_id in dict.fromkeys(d.get("community_id") for _eid, d in changes):
        if community_id is not None:
            store._community_in_scope(conn, community_id)
    cols = [(eid, entries._entry_columns(keys, ledger, data)) for eid, data in changes]
    try:
        with conn.begin_nested():
            _update(conn, ledger.table, cols, user)
    except sa.exc.IntegrityError as err:
        if "unique" in str(err.orig).lower():
            raise Conflict(f"this resident already has that {ledger.choice_field}",
                           key="form.duplicate_entry") from None  # fmt: skip
        raise


def _by(user: Who, *, created: bool) -> dict[str, Any]:
    return {"created_by": user.id, "updated_by": user.id} if created else {"_user": user.id}


def _buildings_in_scope(conn: Connection, building_ids: list[int]) -> None:
    """NotFound for the first building outside the user's areas (one query for all)."""
    wanted = sorted(set(building_ids))
    if not wanted:
        return
    found = set(
        conn.scalars(
            sa.text("SELECT b FROM ga_people_buildings() b WHERE b = ANY(:b)"), {"b": wanted}
        )
    )
    for building_id in wanted:
        if building_id not in found:
            raise NotFound(f"no building {building_id} in your area")


def _lock(conn: Connection, table: str, ids: list[int], label: str) -> None:
    """Lock the rows (one query); NotFound for the first one not visible."""
    found = set(
        conn.scalars(
            sa.text(f"SELECT id FROM {table} WHERE id = ANY(:ids) FOR UPDATE"), {"ids": ids}
        )
    )
    for row_id in ids:
        if row_id not in found:
            raise NotFound(f"no {label} {row_id}")


def _insert(conn: Connection, table: str, rows: list[dict[str, Any]]) -> None:
    """INSERT the rows, one executemany per set of columns and batch (names are ours)."""
    for names, group in groupby(sorted(rows, key=lambda r: tuple(r)), key=lambda r: tuple(r)):
        sql = sa.text(
            f"INSERT INTO {table} ({', '.join(names)}) "
            f"VALUES ({', '.join(f':{k}' for k in names)})"
        )
        _execute_many(conn, sql, list(group))


def _update(
    conn: Connection, table: str, rows: list[tuple[int, dict[str, Any]]], user: Who
) -> None:
    """UPDATE each row's columns, bumping its version (as ``store._write`` does one)."""
    params = []
    for row_id, cols in rows:
        if not cols:
            raise InvalidInput("nothing to change: send at least one field",
                               key="form.nothing_to_change")  # fmt: skip
        params.append({**cols, "_id": row_id, **_by(user, created=False)})
    for names, group in groupby(sorted(params, key=tuple), key=tuple):
        sets = ", ".join(f"{k} = :{k}" for k in names if not k.startswith("_"))
        sql = sa.text(
            f"UPDATE {table} SET {sets}, version = version + 1, updated_at = now(), "
            "updated_by = :_user WHERE id = :_id"
        )
        _execute_many(conn, sql, list(group))


def _execute_many(conn: Connection, sql: sa.TextClause, params: list[dict[str, Any]]) -> None:
    for start in range(0, len(params), BATCH):
        conn.execute(sql, params[start : start + BATCH])
