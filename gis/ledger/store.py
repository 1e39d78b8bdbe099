"""The ledgers in PostGIS: the residents here (the other four in ``gis.ledger.entries``),
create, read, update, delete — encrypted, audited, scoped.

Every function runs inside the caller's transaction, as the app's database role, with the
user's id set for row-level security: a row outside the user's scope is simply not there
(``NotFound``, as for a row that does not exist). Every read of personal data writes one
``audit_log`` row in the same transaction, so a read that is not audited cannot commit.

Edits need the version the user last saw (``If-Match``): a stale one changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis import permissions
from gis.areas import lives_inside_sql
from gis.audit import (  # noqa: F401 - re-exported for the ledger modules
    LOOKUP,
    LOOKUP_BUDGET,
    LOOKUP_BUDGET_OTHERS,
    LOOKUP_WINDOW_MIN,
    Who,
    audit,
    audit_now,
    spend_lookup,
)
from gis.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    StaleVersion,
    VersionRequired,
)
from gis.fields import clean_text, field_label
from gis.ledger import idcard
from gis.ledger.reasons import Reason
from gis.ledger.templates import get_template
from gis.security import Keys


def _choices(ledger: str, column: str) -> tuple[str, ...]:
    """The stored keys a column allows: one list, the spreadsheet template's."""
    return tuple(key for _label, key in get_template(ledger).column(column).choices)


RELATIONS = _choices("residents", "relation")
STATUSES = _choices("residents", "status")
MAX_PAGE = 500


def _need_writer(user: Who, permission: str = "write_residents") -> None:
    if not permissions.may(user, permission):
        raise Forbidden(
            f"a {user.role} may read this ledger but not change it; "
            + permissions.refusal(permission, "change it")
        )


def parse_version(if_match: str | None) -> int:
    """The version an ``If-Match`` header names; 428 when it is missing or ``*``."""
    if if_match is None or if_match.strip() in ("", "*"):
        raise VersionRequired(
            "say which version you edited: send If-Match with the ETag you got from GET"
        )
    text = if_match.strip().removeprefix("W/").strip('"')
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        raise StaleVersion(f"If-Match {if_match!r} is not an ETag of this record; reload it")
    return int(text)


def etag(row: dict[str, Any]) -> str:
    return f'"{row["version"]}"'


# --- residents ---------------------------------------------------------------------------


@dataclass
class Reveal:
    """Which secrets to show in clear (only if the role may; each reveal is audited)."""

    id_number: bool = False
    phone: bool = False

    def check(self, user: Who) -> None:
        for field in ("id_number", "phone"):
            if getattr(self, field) and not user.may_reveal(field):
                raise Forbidden(f"a {user.role} may not see {field.replace('_', ' ')}s in clear")

    @property
    def any(self) -> bool:
        return self.id_number or self.phone


RESIDENT_COLUMNS = (
    "r.id, r.name, r.gender, r.birth_date, r.id_number_masked, r.phone_masked, "
    "r.id_number_enc, r.phone_enc, r.building_id, r.room, r.relation, r.status, r.notes, "
    "r.is_synthetic, r.version, r.updated_at, b.name AS building_name, "
    "b.addr_street, b.addr_housenumber"
)


def _resident_out(row: Any, keys: Keys, reveal: Reveal, may_see_birth_date: bool) -> dict[str, Any]:
    out = {
        "id": row.id,
        "name": row.name,
        "gender": row.gender,
        "birth_date": row.birth_date.isoformat() if row.birth_date else None,
        "birth_year": row.birth_date.year if row.birth_date else None,
        "id_number": row.id_number_masked,
        "phone": row.phone_masked,
        "building_id": row.building_id,
        "building": row.building_name,
        "address": "".join(p for p in (row.addr_street, row.addr_housenumber) if p) or None,
        "room": row.room,
        "relation": row.relation,
        "status": row.status,
        "notes": row.notes,
        "is_synthetic": row.is_synthetic,
        "version": row.version,
        "updated_at": row.updated_at.isoformat(),
    }
    if not may_see_birth_date:
        # with the date, the mask would give the number back: the year tells the age
        out["birth_date"] = None
    if reveal.id_number:
        out["id_number"] = keys.open(row.id_number_enc, "resident.id_number")
    if reveal.phone and row.phone_enc is not None:
        out["phone"] = keys.open(row.phone_enc, "resident.phone")
    return out


def _check_choice(field: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise InvalidInput(f"{field} must be one of {', '.join(allowed)}, not {value!r}")


def _reason_error(field: str, reason: Reason) -> InvalidInput:
    """A refused ID or phone number: the reason's own text, in the reader's language."""
    return InvalidInput(f"{field}: {reason}", key=reason.prefix + reason.code, **reason.params)


def _required_text(field: str, value: Any, max_len: int, message: str) -> str | None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(message, key="form.required", field=field_label(field))
    return clean_text(field, value, max_len, required=True)


def _id_number_columns(keys: Keys, data: dict[str, Any]) -> dict[str, Any]:
    """The sealed ID number, its hash and mask, and the birth date and gender it gives."""
    number, reason = idcard.validate_id_number(data["id_number"] or "")
    if number is None:
        raise _reason_error("id_number", reason)
    born, gender = idcard.birth_date_of(number), idcard.gender_of(number)
    for field, value in (("birth_date", born), ("gender", gender)):
        if data.get(field) not in (None, value):
            raise InvalidInput(
                f"{field} {data[field]} disagrees with the ID number ({value}); "
                "leave it empty to take it from the ID number"
            )
    return {
        "id_number_enc": keys.seal(number, "resident.id_number"),
        "id_number_hmac": keys.search_hash(number, "id_number"),
        "id_number_masked": idcard.mask_id_number(number),
        "birth_date": born,
        "gender": gender,
    }


def _phone_columns(keys: Keys, value: Any, column: str) -> dict[str, Any]:
    """The sealed phone number, its hash and mask (all None to clear it)."""
    if value in (None, ""):
        return {"phone_enc": None, "phone_hmac": None, "phone_masked": None}
    phone, reason = idcard.validate_phone(value)
    if phone is None:
        raise _reason_error("phone", reason)
    return {
        "phone_enc": keys.seal(phone, column),
        "phone_hmac": keys.search_hash(phone, "phone"),
        "phone_masked": idcard.mask_phone(phone),
    }


def _resident_columns(keys: Keys, data: dict[str, Any], current: Any = None) -> dict[str, Any]:
    """Validate a resident's fields and turn them into columns (secrets sealed)."""
    cols: dict[str, Any] = {}
    if "name" in data:
        cols["name"] = _required_text(
            "name", data["name"], 100, "name must have 1 to 100 characters (姓名不能为空)"
        )
    if "id_number" in data:
        cols.update(_id_number_columns(keys, data))
    elif "gender" in data or "birth_date" in data:
        raise InvalidInput("gender and birth date follow the ID number: change id_number")
    if "phone" in data:
        cols.update(_phone_columns(keys, data["phone"], "resident.phone"))
    if "room" in data:
        cols["room"] = _required_text(
            "room", data["room"], 40, "room must have 1 to 40 characters (室号不能为空)"
        )
    if "building_id" in data:
        if not isinstance(data["building_id"], int) or isinstance(data["building_id"], bool):
            raise InvalidInput("building_id must be a building's id (a number)")
        cols["building_id"] = data["building_id"]
    for field, allowed in (("relation", RELATIONS), ("status", STATUSES)):
        if field in data:
            _check_choice(field, data[field], allowed)
            cols[field] = data[field]
    if "status" in cols:
        cols["status"] = cols["status"] or "both"
    if "notes" in data:
        cols["notes"] = clean_text("notes", data["notes"], 2000)
    if "is_synthetic" in data:
        cols["is_synthetic"] = bool(data["is_synthetic"])
    return cols


def _building_in_scope(conn: Connection, building_id: int) -> None:
    ok = conn.scalar(
        sa.text("SELECT EXISTS (SELECT 1 FROM ga_people_buildings() b WHERE b = :b)"),
        {"b": building_id},
    )
    if not ok:
        raise NotFound(f"no building {building_id} in your area")


def _community_in_scope(conn: Connection, community_id: Any) -> None:
    ok = isinstance(community_id, int) and conn.scalar(
        sa.text(
            "SELECT EXISTS (SELECT 1 FROM building_path p WHERE p.community_id = :c "
            "AND p.building_id IN (SELECT ga_people_buildings()))"
        ),
        {"c": community_id},
    )
    if not ok:
        raise NotFound(f"no community {community_id} in your area")


def _is_duplicate_number(err: sa.exc.IntegrityError) -> bool:
    diag = getattr(err.orig, "diag", None)
    return getattr(diag, "constraint_name", None) == "resident_id_number_hmac_key"


def _refuse_duplicate(conn: Connection, user: Who, via: str) -> None:
    """The number is registered (in the user's scope or not): audited, then refused.

    Only roles that may see ID numbers are told that it is registered; the others are told
    it cannot be registered here. (Either answer differs from a success — each attempt of a
    number that is not registered creates a real, audited record — and the look-up budget
    caps how many numbers anyone can try.)
    """
    audit_now(
        conn,
        user,
        LOOKUP,
        "resident",
        [],
        {"via": via, "field": "id_number", "outcome": "registered"},
    )
    if user.may_reveal("id_number"):
        raise Conflict(
            "a resident with this ID number is already registered (此身份证号已登记); "
            "if they moved here, ask the committee that holds the record to move it",
            key="refusal.duplicate_id_number",
        )
    raise Conflict(
        "this ID number cannot be registered here (此身份证号无法在此登记); "
        "ask the committee staff (社区工作人员) to check it",
        key="refusal.id_number_not_here",
    )


def create_resident(
    conn: Connection, keys: Keys, user: Who, data: dict[str, Any], *, in_import: bool = False
) -> dict:
    """Create a resident; ``in_import``: a row of an import, whose look-ups are audited and
    limited by the import as a whole (gis/ledger/bulk.py)."""
    _need_writer(user)
    missing = [f for f in ("name", "id_number", "building_id", "room") if not data.get(f)]
    if missing:
        raise InvalidInput(f"missing {', '.join(missing)}")
    # every field first; the building's scope; only then the number (by inserting: the
    # database checks every other constraint before the unique one)
    cols = _resident_columns(keys, data)
    _building_in_scope(conn, cols["building_id"])
    if not in_import:
        spend_lookup(conn, user, "create", "id_number")
    cols["created_by"] = cols["updated_by"] = user.id
    names = ", ".join(cols)
    values = ", ".join(f":{k}" for k in cols)
    try:
        with conn.begin_nested():
            rid = conn.scalar(
                sa.text(f"INSERT INTO resident ({names}) VALUES ({values}) RETURNING id"), cols
            )
    except sa.exc.IntegrityError as err:
        if _is_duplicate_number(err):
            _refuse_duplicate(conn, user, "create")
        raise
    if in_import:
        return get_resident(conn, keys, user, int(rid), Reveal(), audited=False)
    audit(conn, user, LOOKUP, "resident", [int(rid)],
          {"via": "create", "field": "id_number", "outcome": "new"})  # fmt: skip
    return get_resident(conn, keys, user, int(rid), Reveal())


def _resident_row(conn: Connection, rid: int) -> Any:
    row = conn.execute(
        sa.text(
            f"SELECT {RESIDENT_COLUMNS} FROM resident r JOIN building b ON b.id = r.building_id "
            "WHERE r.id = :id"
        ),
        {"id": rid},
    ).first()
    if row is None:
        raise NotFound(f"no resident {rid}")
    return row


def get_resident(
    conn: Connection, keys: Keys, user: Who, rid: int, reveal: Reveal, audited: bool = True
) -> dict[str, Any]:
    """One resident (404 outside the user's scope); the read is audited."""
    reveal.check(user)
    row = _resident_row(conn, rid)
    out = _resident_out(row, keys, reveal, user.may_reveal("id_number"))
    out["categories"] = categories_of(conn, [rid]).get(rid, {})
    if audited:
        audit(conn, user, "read", "resident", [rid])
    if reveal.any:
        fields = [f for f in ("id_number", "phone") if getattr(reveal, f)]
        audit(conn, user, "reveal", "resident", [rid], {"fields": fields})
    return out


def categories_of(conn: Connection, ids: list[int]) -> dict[int, dict[str, list[str]]]:
    """Special-group, key-person and backbone categories per resident (as the user may see)."""
    # One resident at a time (a lateral join): the three tables' policy, "EXISTS (SELECT 1
    # FROM resident r WHERE r.id = resident_id)", is then a primary-key probe per row found.
    # Given the whole array at once the planner made it a hashed subplan over every
    # resident in the user's scope (a sequential scan of resident under its policy, 50 ms
    # each for special_group and backbone on a page of 500 in Nanjing's largest grid).
    rows = conn.execute(
        sa.text(
            "SELECT x.resident_id, x.kind, x.c FROM unnest(CAST(:ids AS bigint[])) AS i(id) "
            "CROSS JOIN LATERAL ("
            "SELECT resident_id, 'special_groups' AS kind, category AS c FROM special_group "
            "WHERE resident_id = i.id "
            "UNION ALL SELECT resident_id, 'key_persons', category FROM key_person "
            "WHERE resident_id = i.id "
            "UNION ALL SELECT resident_id, 'backbone', role FROM backbone "
            "WHERE resident_id = i.id) x"
        ),
        {"ids": ids},
    )
    out: dict[int, dict[str, list[str]]] = {}
    for r in rows:
        out.setdefault(r.resident_id, {}).setdefault(r.kind, []).append(r.c)
    return out


AREA_COLUMN = {
    "building": "building_id",
    "unit": "unit_id",
    "building_cluster": "building_cluster_id",
    "residents_group": "residents_group_id",
    "grid": "grid_id",
    "community": "community_id",
    "subdistrict": "subdistrict_id",
}


# The residents' policy (0013) is ``building_id IN (SELECT ga_people_buildings()) AND …``.
# A policy's sublink stays a hashed SubPlan filter (PostgreSQL never pulls it up into a
# join), so under row-level security every list read every resident's index entry, twice
# (count and page). The same set as an array is one InitPlan, and ``building_id = ANY($0)``
# (int8 equality, leakproof) is an index condition on resident_building_idx: the planner
# reads the user's buildings only. It admits nothing the policy would not: the policy
# still filters every row.
SCOPE_PREFILTER = "r.building_id = ANY(ARRAY(SELECT ga_people_buildings()))"


def scope_prefilter(user: Who) -> str:
    """``SCOPE_PREFILTER`` for a scoped user; "true" for an admin, whose scope is every
    building (an array of all of them would be one index probe per building of the city)."""
    return "true" if user.role == "admin" else SCOPE_PREFILTER


def name_prefix_sql(prefix: str, column: str = "r.name") -> tuple[str, dict[str, str]]:
    """SQL and parameters: ``column`` starts with ``prefix``.

    ``LIKE`` is not leakproof, so under row-level security PostgreSQL may not use it as an
    index condition; the same prefix as a range of ``text_pattern_ops`` comparisons (byte
    order, leakproof) is one, on resident_name_idx. The ``LIKE`` stays as the exact test.
    """
    pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    sql, params = f"{column} LIKE :name_like", {"name_like": pattern}
    last = ord(prefix[-1]) if prefix else None
    # the smallest string above every one that starts with the prefix (UTF-8 byte order is
    # code point order); none to give for the highest code point or next to surrogates
    if last is not None and last < 0x10FFFF and not 0xD7FF <= last <= 0xDFFF:
        params.update(name_lo=prefix, name_hi=prefix[:-1] + chr(last + 1))
        sql = f"{column} ~>=~ :name_lo AND {column} ~<~ :name_hi AND {sql}"
    return sql, params


def list_residents(
    conn: Connection,
    keys: Keys,
    user: Who,
    *,
    level: str | None = None,
    area_id: int | None = None,
    name: str | None = None,
    id_number: str | None = None,
    phone: str | None = None,
    category: str | None = None,
    limit: int = 100,
    offset: int = 0,
    reveal: Reveal | None = None,
) -> dict[str, Any]:
    """A page of residents in the user's scope, filtered; audited as one 'list' row."""
    reveal = reveal or Reveal()
    reveal.check(user)
    where, params = [scope_prefilter(user)], {"limit": min(limit, MAX_PAGE), "offset": offset}
    if level is not None:
        if level not in AREA_COLUMN or area_id is None:
            raise InvalidInput(f"area level must be one of {', '.join(AREA_COLUMN)}, with an id")
        # by dwelling: a resident of a divided building is in the areas of their part
        members = "(SELECT * FROM ga_area_members(CAST(:area_level AS text), :area))"
        # the area's buildings as an index condition too (a lives-inside row has one of them)
        where.append(f"r.building_id = ANY(ARRAY(SELECT m.building_id FROM {members} m))")
        where.append(lives_inside_sql(members))
        params.update(area=area_id, area_level=level)
    if name:
        sql, name_params = name_prefix_sql(name)
        where.append(sql)
        params.update(name_params)
    for field, value in (("id_number", id_number), ("phone", phone)):
        if value and not user.may_reveal(field):
            # a search by number is a way to test guesses of a number one may not see
            raise Forbidden(f"a {user.role} may not search by {field.replace('_', ' ')}")
    for field, value in (("id_number", id_number), ("phone", phone)):
        if value:
            spend_lookup(conn, user, "search", field)
    if id_number:
        number, reason = idcard.validate_id_number(id_number)
        if number is None:
            raise _reason_error("id_number", reason)
        where.append("r.id_number_hmac = :idh")
        params["idh"] = keys.search_hash(number, "id_number")
    if phone:
        number, reason = idcard.validate_phone(phone)
        if number is None:
            raise _reason_error("phone", reason)
        where.append("r.phone_hmac = :ph")
        params["ph"] = keys.search_hash(number, "phone")
    if category:
        where.append(
            "(EXISTS (SELECT 1 FROM special_group s WHERE s.resident_id = r.id "
            "AND s.category = :cat) OR EXISTS (SELECT 1 FROM key_person k "
            "WHERE k.resident_id = r.id AND k.category = :cat))"
        )
        params["cat"] = category
    sql_where = " AND ".join(where)
    total = conn.scalar(sa.text(f"SELECT count(*) FROM resident r WHERE {sql_where}"), params)
    rows = conn.execute(
        sa.text(
            f"SELECT {RESIDENT_COLUMNS} FROM resident r JOIN building b ON b.id = r.building_id "
            f"WHERE {sql_where} ORDER BY r.building_id, r.room, r.id LIMIT :limit OFFSET :offset"
        ),
        params,
    ).all()
    items = [_resident_out(r, keys, reveal, user.may_reveal("id_number")) for r in rows]
    ids = [r["id"] for r in items]
    cats = categories_of(conn, ids) if ids else {}
    for item in items:
        item["categories"] = cats.get(item["id"], {})
    given = {"name": name, "id_number": id_number, "phone": phone, "category": category}
    searched = [k for k, v in given.items() if v]
    audit(
        conn,
        user,
        "search" if searched else "list",
        "resident",
        ids,
        {"by": searched, "area": [level, area_id] if level else None, "total": total},
    )
    if reveal.any and ids:
        fields = [f for f in ("id_number", "phone") if getattr(reveal, f)]
        audit(conn, user, "reveal", "resident", ids, {"fields": fields})
    return {"total": total, "limit": params["limit"], "offset": offset, "items": items}


def update_resident(
    conn: Connection, keys: Keys, user: Who, rid: int, version: int, data: dict[str, Any]
) -> dict[str, Any]:
    _need_writer(user)
    _lock(conn, "resident", rid, version, "resident")
    cols = _resident_columns(keys, data)
    if "building_id" in cols:
        _building_in_scope(conn, cols["building_id"])
    if "id_number_hmac" in cols:
        spend_lookup(conn, user, "update", "id_number")
    try:
        with conn.begin_nested():
            _write(conn, "resident", rid, cols, user)
    except sa.exc.IntegrityError as err:
        if _is_duplicate_number(err):
            _refuse_duplicate(conn, user, "update")
        raise
    if "id_number_hmac" in cols:
        audit(conn, user, LOOKUP, "resident", [rid],
              {"via": "update", "field": "id_number", "outcome": "new"})  # fmt: skip
    return get_resident(conn, keys, user, rid, Reveal())  # the answer is a read: audited


def delete_resident(conn: Connection, user: Who, rid: int, version: int) -> None:
    _need_writer(user, "delete_residents")
    _lock(conn, "resident", rid, version, "resident")
    leads = conn.scalar(
        sa.text(
            "SELECT count(*) FROM leader_assignment WHERE resident_id = :id AND ended_at IS NULL"
        ),
        {"id": rid},
    )
    if leads:
        raise Conflict("this resident leads an area: assign someone else first, then delete",
                       key="form.resident_leads")  # fmt: skip
    conn.execute(sa.text("DELETE FROM resident WHERE id = :id"), {"id": rid})


def _lock(conn: Connection, table: str, row_id: int, version: int, label: str) -> None:
    """Lock the row at ``version``: 404 if not visible, 412 if it changed since."""
    current = conn.scalar(
        sa.text(f"SELECT version FROM {table} WHERE id = :id FOR UPDATE"), {"id": row_id}
    )
    if current is None:
        raise NotFound(f"no {label} {row_id}")
    if current != version:
        raise StaleVersion(
            f"the {label} changed since you loaded it (now version {current}, you sent "
            f"{version}); reload it and edit again — nothing was changed"
        )


def _write(conn: Connection, table: str, row_id: int, cols: dict[str, Any], user: Who) -> None:
    if not cols:
        raise InvalidInput("nothing to change: send at least one field",
                           key="form.nothing_to_change")  # fmt: skip
    sets = ", ".join(f"{k} = :{k}" for k in cols)
    conn.execute(
        sa.text(
            f"UPDATE {table} SET {sets}, version = version + 1, updated_at = now(), "
            "updated_by = :_user WHERE id = :_id"
        ),
        {**cols, "_user": user.id, "_id": row_id},
    )


def history(conn: Connection, user: Who, ledger: str, row_id: int) -> list[dict[str, Any]]:
    """Changes of one row, newest first (admins and committee staff)."""
    rows = conn.execute(
        sa.text(
            "SELECT h.at, h.user_id, u.username, h.action, h.old, h.new FROM ledger_history h "
            "LEFT JOIN app_user u ON u.id = h.user_id "
            "WHERE h.ledger = :l AND h.row_id = :id ORDER BY h.id DESC LIMIT 200"
        ),
        {"l": ledger, "id": row_id},
    ).all()
    if not rows:
        raise NotFound(f"no history of {ledger} {row_id} in your area")
    audit(conn, user, "history", ledger, [row_id])
    out = []
    for r in rows:
        changed = sorted(
            k
            for k in set(r.old or {}) | set(r.new or {})
            if (r.old or {}).get(k) != (r.new or {}).get(k)
            and k not in ("version", "updated_at", "updated_by")
        )
        out.append(
            {
                "at": r.at.isoformat(),
                "user": r.username,
                "action": r.action,
                "changed": changed,
                "old": {k: (r.old or {}).get(k) for k in changed} if r.old else None,
                "new": {k: (r.new or {}).get(k) for k in changed} if r.new else None,
            }
        )
    return out
