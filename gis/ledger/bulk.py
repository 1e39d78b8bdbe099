"""Spreadsheet import and export of the ledgers, as committee staff keep them.

Import is an upsert keyed as staff key their sheets: residents by ID number, entries by ID
number and category (or role), organisations by name and address. Every row is checked
first — its format (gis/ledger/tabular.py), then against the database (a building in the
user's areas, a resident who exists, an ID number not registered elsewhere) — and the plan
(added / updated / unchanged, and each bad row with its row number, column and reason) is
returned. Nothing is written unless every row is valid, or the user asked explicitly to
import the valid ones. An exported file imported again changes nothing.

What differs between the ledgers is their kind (gis/ledger/kinds): each compares a whole
file in a handful of queries and writes in batches (gis/ledger/batch.py).
"""

from __future__ import annotations

from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis import permissions
from gis.audit import Who, audit
from gis.errors import Forbidden, TooManyRequests
from gis.ledger import tabular
from gis.ledger.kinds import get_kind
from gis.ledger.plan import Plan
from gis.ledger.reasons import reason
from gis.security import Keys

__all__ = ["EXPORTERS", "MAX_IMPORTS_PER_HOUR", "MAX_ROWS", "Mode", "Plan", "export",
           "plan_import", "run_import"]  # fmt: skip

Mode = Literal["preview", "all", "valid_only"]
MAX_ROWS = 20_000
MAX_IMPORTS_PER_HOUR = 30  # previews and imports per user: each compares every row
EXPORTERS = tuple(sorted(permissions.roles_with("export_ledgers")))  # ID numbers in clear
IMPORT_ACTIONS = ("import preview", "import all", "import valid_only")


def plan_import(
    conn: Connection, keys: Keys, user: Who, ledger: str, data: bytes, filename: str,
    community_id: int | None = None,
) -> Plan:  # fmt: skip
    """Check every row and decide what each would do; write nothing."""
    tabular.get_template(ledger)
    kind = get_kind(ledger)
    parsed = tabular.read_table(data, filename, ledger)
    plan = Plan(ledger, total_rows=parsed.total_rows, warnings=list(parsed.warnings))
    for e in parsed.errors:
        plan.error(e.row, e.column_heading, e.value, e.reason)
    if any(e.row == 0 for e in parsed.errors):
        return plan  # the file itself is unusable
    if parsed.total_rows > MAX_ROWS:
        plan.error(0, "", parsed.total_rows, reason("too_many_rows", max=MAX_ROWS))
        return plan
    kind.plan(conn, keys, parsed.rows, plan, community_id)
    plan.added = sum(a[0] == "add" for a in plan.actions)
    plan.updated = sum(a[0] == "update" for a in plan.actions)
    return plan


def _refuse_over_rate(conn: Connection) -> None:
    """TooManyRequests once the user has run too many previews and imports this hour."""
    used = conn.scalar(
        sa.text(
            "SELECT coalesce(sum(ga_recent_actions(a, 60)), 0) FROM unnest(CAST(:a AS text[])) a"
        ),
        {"a": list(IMPORT_ACTIONS)},
    )
    if used >= MAX_IMPORTS_PER_HOUR:
        raise TooManyRequests(
            f"at most {MAX_IMPORTS_PER_HOUR} imports or previews an hour; try again later",
            retry_after=600,
            key="import_reason.too_many_imports",
            max=MAX_IMPORTS_PER_HOUR,
        )


def run_import(
    conn: Connection, keys: Keys, user: Who, ledger: str, data: bytes, filename: str,
    mode: Mode, community_id: int | None = None,
) -> Plan:  # fmt: skip
    """Preview, or write all rows (only if all are valid), or write the valid ones."""
    # a preview compares every row with the ledger (is this ID number registered? is this
    # the phone on file?): it is a read of people, for importers only
    permissions.require(user, "import_ledgers", "import ledgers")
    _refuse_over_rate(conn)
    plan = plan_import(conn, keys, user, ledger, data, filename, community_id)
    kind = get_kind(ledger)
    # Every person the preview compared is in the audit row (a comparison reads them: the
    # phone on file, the name for an ID number), and so is the number of ID numbers that
    # were found registered outside the user's areas.
    audit(conn, user, f"import {mode}", kind.compared, sorted(plan.seen),
                {"rows": plan.total_rows, "file": filename[:200], "ledger": ledger,
                 "registered_elsewhere": plan.registered_elsewhere,
                 "id_numbers_looked_up": plan.total_rows if kind.looks_up_numbers
                 else 0})  # fmt: skip
    touched = [a[1] for a in plan.actions if a[1] is not None]
    if kind.audits_touched and touched:
        audit(conn, user, f"import {mode}", kind.subject, touched,
                    {"file": filename[:200]})  # fmt: skip
    if mode == "preview" or (mode == "all" and plan.errors) or not plan.actions:
        return plan
    if any(e["row"] == 0 for e in plan.errors):
        return plan
    bad = {e["row"] for e in plan.errors}
    kind.write(conn, keys, user, [a for a in plan.actions if a[3] not in bad])
    plan.written = True
    return plan


def export(
    conn: Connection, keys: Keys, user: Who, ledger: str, fmt: Literal["xlsx", "csv"]
) -> bytes:
    """Every row of a ledger in the user's areas, in the import template (audited)."""
    if not permissions.may(user, "export_ledgers"):
        raise Forbidden(
            "only admins and committee staff export ledgers (the file holds ID numbers)"
        )
    tabular.get_template(ledger)
    kind = get_kind(ledger)
    ids, rows = kind.export(conn, keys)
    audit(conn, user, "export", kind.subject, ids, {"format": fmt})
    return tabular.write_table(ledger, rows, fmt)
