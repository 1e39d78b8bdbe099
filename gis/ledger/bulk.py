"""Spreadsheet import and export of the ledgers, as committee staff keep them.

Import is an upsert keyed as staff key their sheets: residents by ID number, entries by ID
number and category (or role), organisations by name and address. Every row is checked
first — its format (gis/ledger/tabular.py), then against the database (a building in the
user's areas, a resident who exists, an ID number not registered elsewhere) — and the plan
(added / updated / unchanged, and each bad row with its row number, column and reason) is
returned. Nothing is written unless every row is valid, or the user asked explicitly to
import the valid ones. An exported file imported again changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis.errors import Forbidden, InvalidInput, TooManyRequests
from gis.ledger import store, tabular
from gis.ledger.address import parse_address, search_keys
from gis.security import Keys

Mode = Literal["preview", "all", "valid_only"]
MAX_ROWS = 20_000
MAX_IMPORTS_PER_HOUR = 30  # previews and imports per user: each compares every row
EXPORTERS = ("admin", "committee_staff")  # the file holds ID numbers in clear


@dataclass
class Plan:
    """What an import would do, or did."""

    ledger: str
    total_rows: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    written: bool = False
    actions: list[tuple[str, int | None, dict[str, Any], int]] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)  # every resident or entry compared
    registered_elsewhere: int = 0  # numbers found registered outside the user's areas

    def error(self, row: int, heading: str, value: Any, reason: str) -> None:
        shown = None if value is None else str(value)
        if shown is not None and len(shown) > 200:  # the answer echoes it: keep it short
            shown = shown[:200] + "…"
        self.errors.append({"row": row, "column": heading, "value": shown, "reason": reason})

    def summary(self) -> dict[str, Any]:
        bad_rows = len({e["row"] for e in self.errors})
        return {
            "ledger": self.ledger,
            "total_rows": self.total_rows,
            "valid_rows": self.total_rows - bad_rows,
            "bad_rows": bad_rows,
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "written": self.written,
            "errors": self.errors[:1000],
            "warnings": [w if len(w) <= 300 else w[:300] + "…" for w in self.warnings],
        }


def _building_resolver(conn: Connection):
    """Building code (source id) or address text → building id, within the user's scope."""
    rows = conn.execute(
        sa.text(
            "SELECT b.id, b.source_id, b.address_keys FROM building b "
            "WHERE b.id IN (SELECT ga_people_buildings())"
        )
    ).all()
    by_code = {r.source_id: r.id for r in rows if r.source_id}
    by_key: dict[str, list[int]] = {}
    for r in rows:
        if r.address_keys:
            by_key.setdefault(r.address_keys[0], []).append(r.id)

    def resolve(text: str) -> tuple[int | None, str | None]:
        text = text.strip()
        if text in by_code:
            return by_code[text], None
        addr = parse_address(text)
        if addr.road:
            key = search_keys(addr)[0].rsplit("|", 1)[0] + "|"
            found = by_key.get(key, [])
            if len(found) == 1:
                return found[0], None
            if len(found) > 1:
                return (
                    None,
                    f"地址对应多栋楼 ({len(found)} buildings have this address; "
                    "use the building code)",
                )
        return None, "找不到该楼栋 (no building with this code or address in your area)"

    return resolve


def _resident_by_number(conn: Connection, keys: Keys):
    def find(number: str) -> int | None:
        rid = conn.scalar(
            sa.text("SELECT id FROM resident WHERE id_number_hmac = :h"),
            {"h": keys.search_hash(number, "id_number")},
        )
        return None if rid is None else int(rid)

    return find


RESIDENT_FIELDS = ("name", "gender", "birth_date", "phone", "room", "relation", "status", "notes")


def _resident_state(conn: Connection, keys: Keys, rid: int) -> dict[str, Any]:
    r = conn.execute(
        sa.text(
            "SELECT name, gender, birth_date, phone_enc, building_id, room, relation, status, "
            "notes FROM resident WHERE id = :i"
        ),
        {"i": rid},
    ).one()
    return {
        "name": r.name,
        "gender": r.gender,
        "birth_date": r.birth_date,
        "phone": keys.open(r.phone_enc, "resident.phone") if r.phone_enc is not None else None,
        "building_id": r.building_id,
        "room": r.room,
        "relation": r.relation,
        "status": r.status,
        "notes": r.notes,
    }


def plan_import(
    conn: Connection, keys: Keys, user: store.Who, ledger: str, data: bytes, filename: str,
    community_id: int | None = None,
) -> Plan:  # fmt: skip
    """Check every row and decide what each would do; write nothing."""
    template = tabular.get_template(ledger)
    parsed = tabular.read_table(data, filename, ledger)
    plan = Plan(ledger, total_rows=parsed.total_rows, warnings=list(parsed.warnings))
    for e in parsed.errors:
        plan.error(e.row, e.column_heading, e.value, e.reason)
    if any(e.row == 0 for e in parsed.errors):
        return plan  # the file itself is unusable
    if parsed.total_rows > MAX_ROWS:
        plan.error(0, "", parsed.total_rows, f"at most {MAX_ROWS} rows per file; split it")
        return plan
    heading = {c.key: c.heading for c in template.columns}
    find = _resident_by_number(conn, keys)
    if ledger == "residents":
        resolve = _building_resolver(conn)
        for row in parsed.rows:
            n = row["_row"]
            bid, reason = resolve(str(row["building"]))
            if bid is None:
                plan.error(n, heading["building"], row["building"], reason)
                continue
            values = {k: row.get(k) for k in RESIDENT_FIELDS}
            values["building_id"] = bid
            rid = find(row["id_number"])
            if rid is None:
                taken = conn.scalar(
                    sa.text("SELECT EXISTS (SELECT 1 FROM ga_id_number_taken(:h, 0))"),
                    {"h": keys.search_hash(row["id_number"], "id_number")},
                )
                if taken:
                    plan.registered_elsewhere += 1
                    reason = "此身份证号已在其他社区登记 (registered outside your area)"
                    plan.error(n, heading["id_number"], None, reason)
                    continue
                plan.actions.append(("add", None, {**values, "id_number": row["id_number"]}, n))
                continue
            plan.seen.add(rid)
            now = _resident_state(conn, keys, rid)
            changes = {k: v for k, v in values.items() if k not in ("gender", "birth_date")
                       and v != now.get(k)}  # fmt: skip
            if changes:
                plan.actions.append(("update", rid, changes, n))
            else:
                plan.unchanged += 1
    elif ledger in ("special_groups", "key_persons", "backbone"):
        spec = store.LEDGERS[ledger]
        column = spec.choice_field
        for row in parsed.rows:
            n = row["_row"]
            rid = find(row["id_number"])
            if rid is None:
                plan.error(n, heading["id_number"], None,
                           "找不到该居民 (no resident with this ID number in your area; "
                           "import the residents first)")  # fmt: skip
                continue
            plan.seen.add(rid)
            name = conn.scalar(sa.text("SELECT name FROM resident WHERE id = :i"), {"i": rid})
            if row.get("name") and row["name"] != name:
                plan.warnings.append(
                    f"row {n}: 姓名 {row['name']} differs from the ledger's {name}"
                )
            values = {k: row.get(k) for k in spec.fields if k not in ("resident_id",)}
            values["resident_id"] = rid
            existing = conn.execute(
                sa.text(f"SELECT * FROM {spec.table} WHERE resident_id = :r AND {column} = :c"),
                {"r": rid, "c": row[column]},
            ).first()
            if existing is None:
                plan.actions.append(("add", None, values, n))
                continue
            changes = {k: v for k, v in values.items() if getattr(existing, k) != v}
            if changes:
                plan.actions.append(("update", existing.id, changes, n))
            else:
                plan.unchanged += 1
    else:  # organisations
        if community_id is None:
            raise InvalidInput("organisations need community_id: the community they belong to")
        for row in parsed.rows:
            n = row["_row"]
            values = {k: row.get(k) for k in ("name", "kind", "contact_name", "phone", "address",
                                               "notes")}  # fmt: skip
            values["community_id"] = community_id
            existing = conn.execute(
                sa.text(
                    "SELECT id, name, kind, contact_name, phone_enc, address, notes FROM "
                    "organisation WHERE community_id = :c AND name = :n AND "
                    "address IS NOT DISTINCT FROM :a"
                ),
                {"c": community_id, "n": values["name"], "a": values["address"]},
            ).first()
            if existing is None:
                plan.actions.append(("add", None, values, n))
                continue
            plan.seen.add(existing.id)
            now = {
                "kind": existing.kind,
                "contact_name": existing.contact_name,
                "phone": keys.open(existing.phone_enc, "organisation.phone")
                if existing.phone_enc is not None
                else None,
                "notes": existing.notes,
            }
            changes = {k: v for k, v in values.items() if k in now and now[k] != v}
            if changes:
                plan.actions.append(("update", existing.id, changes, n))
            else:
                plan.unchanged += 1
    plan.added = sum(a[0] == "add" for a in plan.actions)
    plan.updated = sum(a[0] == "update" for a in plan.actions)
    return plan


def run_import(
    conn: Connection, keys: Keys, user: store.Who, ledger: str, data: bytes, filename: str,
    mode: Mode, community_id: int | None = None,
) -> Plan:  # fmt: skip
    """Preview, or write all rows (only if all are valid), or write the valid ones."""
    if user.role not in ("admin", "committee_staff"):
        # a preview compares every row with the ledger (is this ID number registered? is
        # this the phone on file?): it is a read of people, for importers only
        raise Forbidden("only admins and committee staff import ledgers")
    used = sum(
        conn.scalar(sa.text("SELECT ga_recent_actions(:a, 60)"), {"a": f"import {m}"}) or 0
        for m in ("preview", "all", "valid_only")
    )
    if used >= MAX_IMPORTS_PER_HOUR:
        raise TooManyRequests(
            f"at most {MAX_IMPORTS_PER_HOUR} imports or previews an hour; try again later "
            "(导入次数过多，请稍后再试)",
            retry_after=600,
        )
    plan = plan_import(conn, keys, user, ledger, data, filename, community_id)
    # Every person the preview compared is in the audit row (a comparison reads them: the
    # phone on file, the name for an ID number), and so is the number of ID numbers that
    # were found registered outside the user's areas.
    compared = "organisation" if ledger == "organisations" else "resident"
    store.audit(conn, user, f"import {mode}", compared, sorted(plan.seen),
                {"rows": plan.total_rows, "file": filename[:200], "ledger": ledger,
                 "registered_elsewhere": plan.registered_elsewhere,
                 "id_numbers_looked_up": plan.total_rows if ledger != "organisations"
                 else 0})  # fmt: skip
    touched = [a[1] for a in plan.actions if a[1] is not None]
    if ledger in store.LEDGERS and ledger != "organisations" and touched:
        store.audit(conn, user, f"import {mode}", store.LEDGERS[ledger].table, touched,
                    {"file": filename[:200]})  # fmt: skip
    if mode == "preview" or (mode == "all" and plan.errors) or not plan.actions:
        return plan
    if any(e["row"] == 0 for e in plan.errors):
        return plan
    bad = {e["row"] for e in plan.errors}
    for action, row_id, values, n in plan.actions:
        if n in bad:
            continue
        if ledger == "residents":
            if action == "add":
                store.create_resident(conn, keys, user, values, in_import=True)
            else:
                version = conn.scalar(sa.text("SELECT version FROM resident WHERE id = :i"),
                                      {"i": row_id})  # fmt: skip
                store.update_resident(conn, keys, user, row_id, version, values)
        else:
            if action == "add":
                store.create_entry(conn, keys, user, ledger, values)
            else:
                table = store.LEDGERS[ledger].table
                version = conn.scalar(sa.text(f"SELECT version FROM {table} WHERE id = :i"),
                                      {"i": row_id})  # fmt: skip
                store.update_entry(conn, keys, user, ledger, row_id, version, values)
    plan.written = True
    return plan


def export(
    conn: Connection, keys: Keys, user: store.Who, ledger: str, fmt: Literal["xlsx", "csv"]
) -> bytes:
    """Every row of a ledger in the user's areas, in the import template (audited)."""
    if user.role not in EXPORTERS:
        raise Forbidden(
            "only admins and committee staff export ledgers (the file holds ID numbers)"
        )
    tabular.get_template(ledger)
    rows: list[dict[str, Any]] = []
    ids: list[int] = []
    if ledger == "residents":
        for r in conn.execute(
            sa.text(
                "SELECT r.*, b.source_id FROM resident r JOIN building b ON b.id = r.building_id "
                "ORDER BY r.building_id, r.room, r.id"
            )
        ):
            ids.append(r.id)
            rows.append({
                "name": r.name,
                "gender": r.gender,
                "birth_date": r.birth_date,
                "id_number": keys.open(r.id_number_enc, "resident.id_number"),
                "phone": keys.open(r.phone_enc, "resident.phone") if r.phone_enc else None,
                "building": r.source_id,
                "room": r.room,
                "relation": r.relation,
                "status": r.status,
                "notes": r.notes,
            })  # fmt: skip
    elif ledger == "organisations":
        for r in conn.execute(sa.text("SELECT * FROM organisation ORDER BY id")):
            ids.append(r.id)
            rows.append({
                "name": r.name, "kind": r.kind, "contact_name": r.contact_name,
                "phone": keys.open(r.phone_enc, "organisation.phone") if r.phone_enc else None,
                "address": r.address, "notes": r.notes,
            })  # fmt: skip
    else:
        spec = store.LEDGERS[ledger]
        extra = ", e.handling" if "handling" in spec.fields else ""
        for r in conn.execute(
            sa.text(
                f"SELECT e.id, e.{spec.choice_field} AS c, e.notes{extra}, r.name, "
                f"r.id_number_enc FROM {spec.table} e JOIN resident r ON r.id = e.resident_id "
                "ORDER BY e.id"
            )
        ):
            ids.append(r.id)
            row = {
                "name": r.name,
                "id_number": keys.open(r.id_number_enc, "resident.id_number"),
                spec.choice_field: r.c,
                "notes": r.notes,
            }
            if extra:
                row["handling"] = r.handling
            rows.append(row)
    subject = store.LEDGERS[ledger].table if ledger in store.LEDGERS else "resident"
    store.audit(conn, user, "export", subject, ids, {"format": fmt})
    return tabular.write_table(ledger, rows, fmt)
