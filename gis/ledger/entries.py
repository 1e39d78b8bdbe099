"""The four ledgers about residents and places: special groups, key persons, backbone
people and organisations — create, read, update, delete, with the residents' ledger's rules
(``gis.ledger.store``: encrypted, audited, scoped, versioned).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis.audit import Who, audit
from gis.errors import Conflict, Forbidden, InvalidInput, NotFound
from gis.fields import clean_text
from gis.ledger.store import (
    MAX_PAGE,
    _building_in_scope,
    _check_choice,
    _choices,
    _community_in_scope,
    _lock,
    _need_writer,
    _phone_columns,
    _required_text,
    _write,
)
from gis.security import Keys


@dataclass(frozen=True)
class Ledger:
    """A ledger of rows about a resident: special groups, key persons, backbone."""

    table: str
    label: str
    fields: tuple[str, ...]
    choice_field: str | None
    choices: tuple[str, ...]
    writers: str  # the permission that changes it (gis/permissions.py)

    def select(self) -> str:
        """The SELECT of a row as the API shows it (``e`` is the ledger's table)."""
        extra = ", e.handling" if "handling" in self.fields else ""
        return (
            f"SELECT e.id, e.resident_id, r.name AS resident_name, e.{self.choice_field}"
            f"{extra}, e.notes, e.version, e.updated_at FROM {self.table} e "
            "JOIN resident r ON r.id = e.resident_id"
        )

    def check_new(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Refuse new rows without their choice or about a resident the user cannot see."""
        for data in rows:
            if not data.get(self.choice_field):
                raise InvalidInput(f"{self.choice_field} is required")
        _visible_residents(conn, [data.get("resident_id") for data in rows])

    def owner_filter(self, resident_id: int | None, community_id: int | None) -> dict[str, Any]:
        """The list filter on the row's owner: the resident's id."""
        return {} if resident_id is None else {"resident_id": resident_id}


@dataclass(frozen=True)
class OrganisationLedger(Ledger):
    """The organisations (辖区单位) of a community."""

    def select(self) -> str:
        return (
            "SELECT e.id, e.name, e.kind, e.contact_name, e.phone_masked AS phone, e.phone_enc, "
            "e.address, e.building_id, e.community_id, e.notes, e.version, e.updated_at "
            "FROM organisation e"
        )

    def check_new(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Refuse new organisations without name, kind and a community in the user's areas."""
        for data in rows:
            if not data.get("name") or not data.get("kind") or not data.get("community_id"):
                raise InvalidInput("an organisation needs name, kind and community_id")
        for community_id in dict.fromkeys(data["community_id"] for data in rows):
            _community_in_scope(conn, community_id)
        buildings = {data["building_id"] for data in rows if data.get("building_id") is not None}
        for building_id in sorted(buildings):
            _building_in_scope(conn, building_id)

    def owner_filter(self, resident_id: int | None, community_id: int | None) -> dict[str, Any]:
        """The list filter on the row's owner: the community's id."""
        return {} if community_id is None else {"community_id": community_id}


SPECIAL = _choices("special_groups", "category")
KEY_PERSON = _choices("key_persons", "category")
BACKBONE = _choices("backbone", "role")
ORG_KINDS = _choices("organisations", "kind")

LEDGERS = {
    "special_groups": Ledger(
        "special_group",
        "special-group entry",
        ("resident_id", "category", "notes"),
        "category",
        SPECIAL,
        "write_special_groups",
    ),
    "key_persons": Ledger(
        "key_person",
        "key-person entry",
        ("resident_id", "category", "handling", "notes"),
        "category",
        KEY_PERSON,
        "write_key_persons",
    ),
    "backbone": Ledger(
        "backbone",
        "backbone entry",
        ("resident_id", "role", "notes"),
        "role",
        BACKBONE,
        "write_backbone",
    ),
    "organisations": OrganisationLedger(
        "organisation",
        "organisation",
        (
            "name",
            "kind",
            "contact_name",
            "phone",
            "address",
            "building_id",
            "community_id",
            "notes",
        ),
        "kind",
        ORG_KINDS,
        "write_organisations",
    ),
}


TEXT_LIMITS = {"notes": 2000, "handling": 2000, "contact_name": 100, "address": 300}


def _entry_columns(keys: Keys, ledger: Ledger, data: dict[str, Any]) -> dict[str, Any]:
    cols = {}
    for f in ledger.fields:
        if f not in data:
            continue
        value = data[f]
        if f == ledger.choice_field:
            _check_choice(f, value, ledger.choices)
        if f == "phone":
            cols.update(_phone_columns(keys, value, f"{ledger.table}.phone"))
            continue
        if f == "name":
            value = _required_text(
                "name", value, 200, "name must have 1 to 200 characters (名称不能为空)"
            )
        elif f in TEXT_LIMITS:
            value = clean_text(f, value, TEXT_LIMITS[f])
        cols[f] = value
    return cols


def _entry_out(row: Any, keys: Keys, ledger: Ledger, reveal_phone: bool) -> dict[str, Any]:
    out = dict(row._mapping)
    out["updated_at"] = out["updated_at"].isoformat()
    enc = out.pop("phone_enc", None)
    if reveal_phone and enc is not None:
        out["phone"] = keys.open(enc, f"{ledger.table}.phone")
    return out


def _visible_residents(conn: Connection, rids: list[Any]) -> None:
    """NotFound for the first of these residents the user cannot see (one query)."""
    for rid in rids:
        if not isinstance(rid, int):
            raise NotFound(f"no resident {rid}")
    found = set(
        conn.scalars(sa.text("SELECT id FROM resident WHERE id = ANY(:ids)"), {"ids": rids})
    )
    for rid in rids:
        if rid not in found:
            raise NotFound(f"no resident {rid}")


def create_entry(
    conn: Connection, keys: Keys, user: Who, name: str, data: dict[str, Any]
) -> dict[str, Any]:
    ledger = LEDGERS[name]
    _need_writer(user, ledger.writers)
    ledger.check_new(conn, [data])
    cols = _entry_columns(keys, ledger, data)
    cols["created_by"] = cols["updated_by"] = user.id
    names, values = ", ".join(cols), ", ".join(f":{k}" for k in cols)
    try:
        with conn.begin_nested():
            eid = conn.scalar(
                sa.text(f"INSERT INTO {ledger.table} ({names}) VALUES ({values}) RETURNING id"),
                cols,
            )
    except sa.exc.IntegrityError as err:
        if "unique" in str(err.orig).lower():
            raise Conflict(
                f"this resident already has that {ledger.choice_field} in the ledger",
                key="form.duplicate_entry",
            ) from None
        raise
    return get_entry(conn, keys, user, name, int(eid))  # the answer is a read: audited


def get_entry(
    conn: Connection,
    keys: Keys,
    user: Who,
    name: str,
    eid: int,
    audited: bool = True,
    reveal_phone: bool = False,
) -> dict[str, Any]:
    ledger = LEDGERS[name]
    if reveal_phone and not user.may_reveal("phone"):
        raise Forbidden(f"a {user.role} may not see phone numbers in clear")
    row = conn.execute(sa.text(f"{ledger.select()} WHERE e.id = :id"), {"id": eid}).first()
    if row is None:
        raise NotFound(f"no {ledger.label} {eid}")
    if audited:
        audit(conn, user, "read", ledger.table, [eid])
    if reveal_phone:
        audit(conn, user, "reveal", ledger.table, [eid], {"fields": ["phone"]})
    return _entry_out(row, keys, ledger, reveal_phone)


def list_entries(
    conn: Connection,
    keys: Keys,
    user: Who,
    name: str,
    *,
    category: str | None = None,
    resident_id: int | None = None,
    community_id: int | None = None,
    limit: int = 100,
    offset: int = 0,
) -> dict[str, Any]:
    ledger = LEDGERS[name]
    where, params = ["true"], {"limit": min(limit, MAX_PAGE), "offset": offset}
    if category is not None:
        _check_choice(ledger.choice_field or "category", category, ledger.choices)
        where.append(f"e.{ledger.choice_field} = :cat")
        params["cat"] = category
    for column, value in ledger.owner_filter(resident_id, community_id).items():
        where.append(f"e.{column} = :owner")  # the column is ours, never the caller's text
        params["owner"] = value
    sql_where = " AND ".join(where)
    total = conn.scalar(
        sa.text(f"SELECT count(*) FROM ({ledger.select()} WHERE {sql_where}) q"),
        params,
    )
    rows = conn.execute(
        sa.text(f"{ledger.select()} WHERE {sql_where} ORDER BY e.id LIMIT :limit OFFSET :offset"),
        params,
    ).all()
    items = [_entry_out(r, keys, ledger, False) for r in rows]
    audit(conn, user, "list", ledger.table, [i["id"] for i in items], {"total": total})
    return {"total": total, "limit": params["limit"], "offset": offset, "items": items}


def update_entry(
    conn: Connection,
    keys: Keys,
    user: Who,
    name: str,
    eid: int,
    version: int,
    data: dict[str, Any],
) -> dict[str, Any]:
    ledger = LEDGERS[name]
    _need_writer(user, ledger.writers)
    _lock(conn, ledger.table, eid, version, ledger.label)
    if "resident_id" in data:
        _visible_residents(conn, [data["resident_id"]])
    if data.get("building_id") is not None:
        _building_in_scope(conn, data["building_id"])
    if data.get("community_id") is not None:
        _community_in_scope(conn, data["community_id"])
    cols = _entry_columns(keys, ledger, data)
    try:
        with conn.begin_nested():
            _write(conn, ledger.table, eid, cols, user)
    except sa.exc.IntegrityError as err:
        if "unique" in str(err.orig).lower():
            raise Conflict(f"this resident already has that {ledger.choice_field}",
                           key="form.duplicate_entry") from None  # fmt: skip
        raise
    return get_entry(conn, keys, user, name, eid)  # the answer is a read: audited


def delete_entry(conn: Connection, user: Who, name: str, eid: int, version: int) -> None:
    ledger = LEDGERS[name]
    _need_writer(user, ledger.writers)
    _lock(conn, ledger.table, eid, version, ledger.label)
    conn.execute(sa.text(f"DELETE FROM {ledger.table} WHERE id = :id"), {"id": eid})
