"""A resident's own data (PIPL arts. 45 and 47): everything held about one person, and erasure.

``export`` gathers the resident's record (ID and phone numbers in clear: it is their own
copy), every ledger entry about them, their leader terms, the history of changes of their
rows and who read their data (through ``ga_subject_audit``, migration 0007, since only
admins may read ``audit_log``). ``erase`` removes the person and their entries and scrubs
their history (``ga_scrub_erased``); the audit rows of who saw them stay as they are.

Both run in the caller's transaction, as the app's role, for admins and committee staff of
the person's area only: outside it the person is not there (``NotFound``).
"""

from __future__ import annotations

import datetime as dt
import io
import json
from typing import Any

import openpyxl
import sqlalchemy as sa
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from sqlalchemy.engine import Connection

from gis import permissions
from gis.audit import Who, audit
from gis.errors import Conflict, Forbidden, InvalidInput, StaleVersion
from gis.ledger import store
from gis.security import Keys

SUBJECT_ROLES = tuple(sorted(permissions.roles_with("subject_rights")))
MAX_REASON = 500

# Entry ledgers about a resident, with the columns a copy shows (names are ours).
ENTRIES = {
    "special_groups": ("special_group", "category"),
    "key_persons": ("key_person", "category, handling"),
    "backbone": ("backbone", "role"),
}


def _need_subject_role(user: Who) -> None:
    if not permissions.may(user, "subject_rights"):
        raise Forbidden(
            "only admins and committee staff answer a resident's request for their data"
        )


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date | dt.datetime) else value


def _rows(conn: Connection, sql: str, rid: int) -> list[dict[str, Any]]:
    result = conn.execute(sa.text(sql), {"rid": rid})
    return [{k: _plain(v) for k, v in row._mapping.items()} for row in result]


def export(conn: Connection, keys: Keys, user: Who, rid: int) -> dict[str, Any]:
    """Everything held about resident ``rid``, as one document; audited as 'subject_export'.

    Reading the record in clear writes a 'reveal' row as every such read does; the export
    row is written before the audit trail is read, so the copy lists itself.
    """
    _need_subject_role(user)
    person = store.get_resident(
        conn, keys, user, rid, store.Reveal(id_number=True, phone=True), audited=False
    )
    audit(conn, user, "subject_export", "resident", [rid])
    entries = {
        name: _rows(
            conn,
            f"SELECT id, {columns}, notes, created_at, updated_at, version FROM {table} "
            "WHERE resident_id = :rid ORDER BY id",
            rid,
        )
        for name, (table, columns) in ENTRIES.items()
    }
    leaders = _rows(
        conn,
        "SELECT la.id, la.level, la.area_id, la.started_at, la.ended_at, la.lives_inside, "
        "a.username AS assigned_by, e.username AS ended_by FROM leader_assignment la "
        "LEFT JOIN app_user a ON a.id = la.assigned_by "
        "LEFT JOIN app_user e ON e.id = la.ended_by "
        "WHERE la.resident_id = :rid ORDER BY la.started_at, la.id",
        rid,
    )
    history = _rows(
        conn,
        "SELECT h.at, u.username AS user, h.ledger, h.row_id, h.action, h.old, h.new "
        "FROM ledger_history h LEFT JOIN app_user u ON u.id = h.user_id "
        "WHERE h.resident_id = :rid ORDER BY h.id",
        rid,
    )
    seen_by = _rows(
        conn,
        "SELECT at, username AS user, action, subject, detail FROM ga_subject_audit(:rid)",
        rid,
    )
    return {
        "resident": person,
        **entries,
        "leader_assignments": leaders,
        "history": history,
        "audit": seen_by,
        "exported_at": dt.datetime.now(dt.UTC).isoformat(),
        "exported_by": getattr(user, "username", None),
    }


def erase(conn: Connection, user: Who, rid: int, version: int, reason: str) -> dict:
    """Remove resident ``rid`` and every entry about them; scrub their history.

    Needs the version the user last saw (412 if stale, 404 if not there: a second erase is
    a 404). A resident who leads an area now is refused (409): who leads an area is the
    committee's decision, made when they end the term or name a successor, not a side
    effect of an erasure. Audit rows of who saw the person stay; one 'erase' row is added.
    """
    _need_subject_role(user)
    reason = (reason or "").strip()
    if not 1 <= len(reason) <= MAX_REASON or "\x00" in reason:
        raise InvalidInput(
            f"say why the resident is erased: a reason of 1 to {MAX_REASON} characters"
        )
    terms = conn.scalar(
        sa.text("SELECT count(*) FROM leader_assignment WHERE resident_id = :rid"), {"rid": rid}
    )
    try:
        store.delete_resident(conn, user, rid, version)  # 404, 412 or 409 change nothing
    except StaleVersion:
        raise
    except Conflict:  # the only other refusal: the person leads an area now
        raise Conflict(_leads_message(conn, rid)) from None
    rows = conn.execute(
        sa.text("SELECT ledger, removed, scrubbed FROM ga_scrub_erased(:rid)"), {"rid": rid}
    ).all()
    removed = {r.ledger: r.removed for r in rows if r.ledger != "resident" and r.removed}
    if terms:
        removed["leader_assignment"] = int(terms)
    scrubbed = sum(r.scrubbed for r in rows)
    audit(
        conn,
        user,
        "erase",
        "resident",
        [rid],
        {"reason": reason, "removed": removed, "history_rows_scrubbed": scrubbed},
    )
    return {"erased": rid, "removed": removed, "history_rows_scrubbed": scrubbed}


def _leads_message(conn: Connection, rid: int) -> str:
    current = conn.execute(
        sa.text(
            "SELECT id, level, area_id FROM leader_assignment "
            "WHERE resident_id = :rid AND ended_at IS NULL ORDER BY id"
        ),
        {"rid": rid},
    ).all()
    areas = ", ".join(f"{r.level} {r.area_id} (assignment {r.id})" for r in current)
    first = current[0] if current else None
    how = (
        f"DELETE /api/leaders/{first.level}/{first.area_id}/{first.id}"
        if first
        else "DELETE /api/leaders/{level}/{area_id}/{assignment_id}"
    )
    return (
        f"resident {rid} leads {areas or 'an area'} now: end the term ({how}) or assign "
        "someone else, then erase — nothing was changed"
    )


# --- the copy as a workbook --------------------------------------------------------------

SHEETS = (
    ("resident", "居民信息"),
    ("special_groups", "特殊人群"),
    ("key_persons", "重点人员"),
    ("backbone", "骨干"),
    ("leader_assignments", "楼组长任职"),
    ("history", "变更记录"),
    ("audit", "查阅记录"),
)


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return ILLEGAL_CHARACTERS_RE.sub("", text)


def to_xlsx(doc: dict[str, Any]) -> bytes:
    """The export as a workbook: one sheet per part, one row per record."""
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for key, title in SHEETS:
        ws = wb.create_sheet(title)
        part = doc[key]
        if isinstance(part, dict):  # the record: one field per row
            rows = [{"field": k, "value": v} for k, v in part.items()]
        else:
            rows = part
        heads = list(dict.fromkeys(k for row in rows for k in row)) or ["(none)"]
        ws.append(heads)
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for row in rows:
            ws.append([_cell(row.get(h)) for h in heads])
        for line in ws.iter_rows(min_row=2):
            for cell in line:
                if isinstance(cell.value, str):
                    cell.data_type = "s"  # never a formula, even when text starts with "="
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()
