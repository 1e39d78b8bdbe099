"""Idempotency-Key for creating POSTs: a retried request creates one record.

The key is claimed with an INSERT in the request's own transaction. A retry that arrives
while the first is still running waits on that row; once the first commits it gets the
stored response, and if the first failed (rolled back) the retry simply runs. A key sent
again with a different body is refused (422): it would otherwise silently return the
answer to another request.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Connection

from gis.errors import InvalidInput

HEADER = "Idempotency-Key"


def run_once(
    conn: Connection,
    user_id: int,
    key: str | None,
    request: dict[str, Any],
    create: Callable[[], dict[str, Any]],
    status_code: int = 201,
    headers: Callable[[dict[str, Any]], dict[str, str]] | None = None,
) -> JSONResponse:
    """Run ``create`` once per (user, key); replay its response for a retry."""
    if key is None:
        body = create()
        return JSONResponse(body, status_code, headers=headers(body) if headers else None)
    key = key.strip()
    if not 1 <= len(key) <= 200:
        raise InvalidInput("Idempotency-Key must have 1 to 200 characters")
    digest = hashlib.sha256(
        json.dumps(request, sort_keys=True, default=str, ensure_ascii=False).encode()
    ).hexdigest()
    claimed = conn.scalar(
        sa.text(
            "INSERT INTO idempotency_key (user_id, key, request_hash) VALUES (:u, :k, :h) "
            "ON CONFLICT DO NOTHING RETURNING 1"
        ),
        {"u": user_id, "k": key, "h": digest},
    )
    if not claimed:
        row = conn.execute(
            sa.text(
                "SELECT request_hash, status_code, response FROM idempotency_key "
                "WHERE user_id = :u AND key = :k"
            ),
            {"u": user_id, "k": key},
        ).one()
        if row.request_hash != digest:
            raise InvalidInput(
                "this Idempotency-Key was used for a different request; use a new key "
                "for a new record"
            )
        # a replay answers with what the first request wrote: a read, audited like one
        rid = row.response.get("id") if isinstance(row.response, dict) else None
        conn.execute(
            sa.text(
                "INSERT INTO audit_log (user_id, action, subject, subject_ids, detail) "
                "VALUES (:u, 'replay', :s, :ids, '{}'::jsonb)"
            ),
            {"u": user_id, "s": str(request.get("path", ""))[:200], "ids": [rid] if rid else []},
        )
        replay = {"Idempotent-Replayed": "true"}
        if headers:
            replay.update(headers(row.response))
        return JSONResponse(row.response, row.status_code, headers=replay)
    conn.execute(
        sa.text(
            "DELETE FROM idempotency_key WHERE user_id = :u "
            "AND created_at < now() - interval '1 day'"
        ),
        {"u": user_id},
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
            "u": user_id,
            "k": key,
        },
    )
    return JSONResponse(body, status_code, headers=headers(body) if headers else None)
