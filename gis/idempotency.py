"""Idempotency keys for creating requests: a retried request creates one record.

The key is claimed with an INSERT in the request's own transaction. A retry that arrives
while the first is still running waits on that row; once the first commits it gets the
stored answer, and if the first failed (rolled back) the retry simply runs. A key sent
again with a different body is refused: it would otherwise silently return the answer to
another request. Keys are kept a day per user.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis.audit import Who, audit
from gis.errors import Conflict, InvalidInput


def run_once(
    conn: Connection,
    user: Who,
    key: str,
    request: dict[str, Any],
    create: Callable[[], dict[str, Any]],
    status_code: int,
) -> tuple[int, dict[str, Any], bool]:
    """Run ``create`` once per (user, key): (status, body, whether it is a replay)."""
    key = key.strip()
    if not 1 <= len(key) <= 200:
        raise InvalidInput("Idempotency-Key must have 1 to 200 characters")
    digest = hashlib.sha256(
        json.dumps(request, sort_keys=True, default=str, ensure_ascii=False).encode()
    ).hexdigest()
    # The claim and the record it stands for are one savepoint: a refused ``create`` leaves
    # no claim behind, even where a route turns the error into an answer and the request's
    # transaction commits (Open311 answers errors in the spec's shape).
    with conn.begin_nested():
        claimed = conn.scalar(
            sa.text(
                "INSERT INTO idempotency_key (user_id, key, request_hash) VALUES (:u, :k, :h) "
                "ON CONFLICT DO NOTHING RETURNING 1"
            ),
            {"u": user.id, "k": key, "h": digest},
        )
        if not claimed:
            row = conn.execute(
                sa.text(
                    "SELECT request_hash, status_code, response FROM idempotency_key "
                    "WHERE user_id = :u AND key = :k"
                ),
                {"u": user.id, "k": key},
            ).one()
            if row.request_hash != digest:
                raise InvalidInput(
                    "this Idempotency-Key was used for a different request; use a new key "
                    "for a new record"
                )
            if row.status_code is None:  # claimed by a request that never finished
                raise Conflict(
                    "a request with this Idempotency-Key did not finish; send it again with "
                    "a new key"
                )
            # a replay answers with what the first request wrote: a read, audited like one
            rid = row.response.get("id") if isinstance(row.response, dict) else None
            audit(conn, user, "replay", str(request.get("path", ""))[:200], [rid] if rid else [])
            return row.status_code, row.response, True
        conn.execute(
            sa.text(
                "DELETE FROM idempotency_key WHERE user_id = :u "
                "AND created_at < now() - interval '1 day'"
            ),
            {"u": user.id},
        )
        body = create()
        conn.execute(
            sa.text(
                "UPDATE idempotency_key SET status_code = :s, response = CAST(:r AS jsonb) "
                "WHERE user_id = :u AND key = :k"
            ),
            {
                "s": status_code,
                "r": json.dumps(body, ensure_ascii=False, default=str),
                "u": user.id,
                "k": key,
            },
        )
    return status_code, body, False


def request_digest(request: dict[str, Any]) -> str:
    """The hash a key is bound to: the same body gets the same answer, another is refused."""
    return hashlib.sha256(
        json.dumps(request, sort_keys=True, default=str, ensure_ascii=False).encode()
    ).hexdigest()


def claimed(conn: Connection, user: Who, keys: list[str]) -> dict[str, Any]:
    """The stored answers of those of ``keys`` the user has used (one query)."""
    rows = conn.execute(
        sa.text(
            "SELECT key, request_hash, status_code, response FROM idempotency_key "
            "WHERE user_id = :u AND key = ANY(:k)"
        ),
        {"u": user.id, "k": keys},
    ).all()
    return {r.key: r for r in rows}


def store_many(
    conn: Connection, user: Who, answers: list[tuple[str, str, int, dict[str, Any]]]
) -> None:
    """Keep (key, request hash, status, body) for each created record, in one statement;
    a key claimed meanwhile by a concurrent sync fails the whole batch (retried, it replays)."""
    if not answers:
        return
    conn.execute(
        sa.text(
            "INSERT INTO idempotency_key (user_id, key, request_hash, status_code, response) "
            "SELECT :u, k, h, s, CAST(r AS jsonb) "
            "FROM unnest(CAST(:k AS text[]), CAST(:h AS text[]), CAST(:s AS int[]), "
            "CAST(:r AS text[])) AS t (k, h, s, r)"
        ),
        {
            "u": user.id,
            "k": [a[0] for a in answers],
            "h": [a[1] for a in answers],
            "s": [a[2] for a in answers],
            "r": [json.dumps(a[3], ensure_ascii=False, default=str) for a in answers],
        },
    )
    conn.execute(
        sa.text(
            "DELETE FROM idempotency_key WHERE user_id = :u "
            "AND created_at < now() - interval '1 day'"
        ),
        {"u": user.id},
    )
