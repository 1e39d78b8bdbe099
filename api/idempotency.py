"""``Idempotency-Key`` on creating POSTs (the keys themselves: gis/idempotency.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Connection

from api.deps import Conn
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


class Once:
    """A creating POST's ``Idempotency-Key``, bound to its route: ``once(user, data, create)``
    runs ``create(data)`` once per key and answers a retry with the first answer. The key
    is bound to the route and the body, so the same key for another record is refused."""

    def __init__(self, conn: Connection, key: str | None, path: str) -> None:
        self.conn, self.key, self.path = conn, key, path

    def __call__(
        self,
        user: Who,
        data: dict[str, Any],
        create: Callable[[dict[str, Any]], dict[str, Any]],
        status_code: int = 201,
        headers: Callable[[dict[str, Any]], dict[str, str]] | None = None,
    ) -> JSONResponse:
        return run_once(self.conn, user, self.key, {"path": self.path, **data},
                        lambda: create(data), status_code, headers)  # fmt: skip


def _once(
    request: Request,
    conn: Conn,
    idempotency_key: Annotated[str | None, Header(alias=HEADER)] = None,
) -> Once:
    # the route's own path (the template, with its parameters), whatever the app is mounted at
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path).format(**request.path_params)
    return Once(conn, idempotency_key, path)


Created = Annotated[Once, Depends(_once)]
