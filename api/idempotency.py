"""``Idempotency-Key`` on creating POSTs (the keys themselves: gis/idempotency.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse
from sqlalchemy.engine import Connection

from gis import idempotency
from gis.audit import Who

HEADER = "Idempotency-Key"


def run_once(
    conn: Connection,
    user: Who,
    key: str | None,
    request: dict[str, Any],
    create: Callable[[], dict[str, Any]],
    status_code: int = 201,
    headers: Callable[[dict[str, Any]], dict[str, str]] | None = None,
) -> JSONResponse:
    """Run ``create`` once per (user, key); a retry gets the first answer again."""
    if key is None:
        body, replayed = create(), False
    else:
        status_code, body, replayed = idempotency.run_once(
            conn, user, key, request, create, status_code
        )
    out = headers(body) if headers else {}
    if replayed:
        out["Idempotent-Replayed"] = "true"
    return JSONResponse(body, status_code, headers=out or None)
