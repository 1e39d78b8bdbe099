"""The audit trail of personal data: who read, searched, revealed or looked up whom.

Every read of a person writes one ``audit_log`` row in the reading transaction (``audit``),
which commits before the answer is sent; a refused attempt that must stay on record is
written in a transaction of its own (``audit_now``). Look-ups by ID or phone number are
counted and limited per user (``spend_lookup``): each one tells whether a number is
registered.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis.errors import TooManyRequests


class Who(Protocol):
    id: int
    role: str

    def may_reveal(self, field: str) -> bool: ...


def audit(
    conn: Connection,
    user: Who,
    action: str,
    subject: str,
    ids: list[int],
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one audit row (in the caller's transaction).

    A read served by the replica writes its row on the primary, in the request's
    primary-side transaction (``api.reads.PrimaryWrites``), committed before the answer.
    """
    writes = conn.info.get("ga_primary_writes")
    if writes is not None:
        conn = writes.connection(conn.info.get("ga_session"))
    conn.execute(
        sa.text(
            "INSERT INTO audit_log (user_id, action, subject, subject_ids, detail) "
            "VALUES (:u, :a, :s, :ids, CAST(:d AS jsonb))"
        ),
        {"u": user.id, "a": action, "s": subject, "ids": ids, "d": _json(detail or {})},
    )


def audit_now(
    conn: Connection,
    user: Who,
    action: str,
    subject: str,
    ids: list[int],
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one audit row in a transaction of its own, committed before this returns.

    For attempts whose answer is a refusal (the request's transaction is rolled back): a
    lookup by number that was refused is still on record.
    """
    token = conn.info.get("ga_session")
    writes = conn.info.get("ga_primary_writes")  # a replica read: its primary's engine
    engine = writes.engine if writes is not None else conn.engine
    with engine.connect() as other, other.begin():
        if token:
            other.execute(sa.text("SELECT set_config('ga.session', :t, true)"), {"t": token})
        audit(other, user, action, subject, ids, detail)


LOOKUP = "number_lookup"  # the audit action of every lookup by ID or phone number
LOOKUP_WINDOW_MIN = 10
# Lookups by number per user in LOOKUP_WINDOW_MIN minutes. Roles that may not see ID
# numbers get few: each lookup tells whether a number is registered.
LOOKUP_BUDGET = {"admin": 300, "committee_staff": 300}
LOOKUP_BUDGET_OTHERS = 20


def spend_lookup(conn: Connection, user: Who, via: str, field: str) -> None:
    """Refuse (429) a lookup by number over the user's budget; otherwise record it."""
    budget = LOOKUP_BUDGET.get(user.role, LOOKUP_BUDGET_OTHERS)
    used = conn.scalar(
        sa.text("SELECT ga_recent_actions(:a, :m)"), {"a": LOOKUP, "m": LOOKUP_WINDOW_MIN}
    )
    if used is not None and used >= budget:
        audit_now(
            conn,
            user,
            LOOKUP,
            "resident",
            [],
            {"via": via, "field": field, "outcome": "refused: over budget"},
        )
        raise TooManyRequests(
            f"too many look-ups by ID or phone number ({budget} in {LOOKUP_WINDOW_MIN} min); "
            f"wait {LOOKUP_WINDOW_MIN} min (查询次数过多，请 {LOOKUP_WINDOW_MIN} 分钟后再试)",
            retry_after=LOOKUP_WINDOW_MIN * 60,
            key="refusal.lookup_budget",
            minutes=LOOKUP_WINDOW_MIN,
        )


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
