"""Reads from the replica, writes to the primary, and every client reads its own writes.

With a replica (``gridatlas db replica up``, or ``GRIDATLAS_REPLICA_URL``) the routes that
only read take :data:`ReadConn` instead of ``Conn``: a transaction on the replica, as the
same app role under the same row-level security. Everything else stays on the primary.

Read-your-writes: when a request's transaction on the primary wrote anything, the WAL
position after its commit (``api.deps.get_conn``) goes back to the client (cookie
``ga_lsn`` and header ``X-GA-LSN``; an API client sends the header back). A read that
carries a position the replica has not replayed yet goes to the primary instead: whoever
just saved something sees it on the next page. Without a position (nothing written
lately) the replica answers, a moment behind the primary at most. A forged position only
moves that client's own reads between the two servers.

Audited reads stay audited: the audit row of a read served by the replica is written on
the primary (:class:`PrimaryWrites`), committed before the answer leaves, as on the
primary. A replica that does not answer is skipped (the primary serves), never a 500.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Request
from sqlalchemy.engine import Connection, Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import deps

log = logging.getLogger("gridatlas.api")

LSN_COOKIE = "ga_lsn"
LSN_HEADER = "x-ga-lsn"
READ_FROM_HEADER = "x-ga-read-from"  # replica or primary: which server answered a read
LSN_MAX_AGE_S = 600  # far longer than any replica lag worth serving from
_LSN = re.compile(r"^[0-9A-F]{1,8}/[0-9A-F]{1,8}$")
_CAUGHT_UP = sa.text("SELECT pg_last_wal_replay_lsn() >= CAST(:lsn AS pg_lsn)")


def client_lsn(request: Request) -> str | None:
    """The WAL position of this client's last write, if it sent a well-formed one."""
    value = (request.headers.get(LSN_HEADER) or request.cookies.get(LSN_COOKIE) or "").upper()
    return value if _LSN.match(value) else None


class PrimaryWrites:
    """The primary-side transaction of a read served by the replica (its audit rows)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.conn: Connection | None = None

    def connection(self, session_token: str | None) -> Connection:
        if self.conn is None:
            self.conn = self.engine.connect()
            self.conn.begin()
            if session_token:
                self.conn.execute(
                    sa.text("SELECT set_config('ga.session', :t, true)"), {"t": session_token}
                )
        return self.conn

    def commit(self) -> None:
        if self.conn is not None:
            try:
                self.conn.commit()
            except sa.exc.DBAPIError as err:
                log.warning("commit of a replica read's audit rows failed: %s", err.orig)
                raise deps.commit_failure(err) from err

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _replica_connection(request: Request) -> Connection | None:
    """A connection to the replica in a transaction, if there is a replica, it answers and
    it has replayed this client's last write; else None (read from the primary)."""
    engine: Engine | None = getattr(request.app.state, "read_engine", None)
    if engine is None:
        return None
    lsn = client_lsn(request)
    try:
        conn = engine.connect()
    except sa.exc.DBAPIError as err:
        log.warning("replica unreachable, reading from the primary: %s", err.orig)
        return None
    try:
        conn.begin()
        if lsn is None or conn.scalar(_CAUGHT_UP, {"lsn": lsn}):
            return conn
    except sa.exc.DBAPIError as err:
        log.warning("replica failed, reading from the primary: %s", err.orig)
    conn.close()
    return None


def get_read_conn(request: Request, _slot: deps.Slot) -> Iterator[Connection]:
    """A connection for a route that only reads: the replica's when it may answer this
    client (see the module's text), else the primary's, exactly as ``deps.get_conn``
    (after the same wait for a slot, ``deps.db_slot``)."""
    conn = _replica_connection(request)
    if conn is None:
        request.state.ga_read_from = "primary"
        yield from deps.transaction(request)
        return
    request.state.ga_read_from = "replica"
    writes = PrimaryWrites(request.app.state.engine)
    conn.info["ga_primary_writes"] = writes
    try:
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.rollback()  # a standby has nothing to commit
        writes.commit()
    finally:
        writes.close()
        conn.close()


ReadConn = Annotated[Connection, Depends(get_read_conn, scope="function")]


class _Positions:
    """ASGI middleware: the WAL position of a request's write goes to the client, and a
    read says which server answered it."""

    def __init__(self, app: ASGIApp, *, secure: bool) -> None:
        self.app = app
        self.secure = secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_position(message: Message) -> None:
            if message["type"] == "http.response.start":
                state = scope.get("state") or {}
                headers = list(message.get("headers") or [])
                if state.get("ga_lsn"):
                    lsn = str(state["ga_lsn"])
                    cookie = (
                        f"{LSN_COOKIE}={lsn}; Path=/; Max-Age={LSN_MAX_AGE_S}; HttpOnly; "
                        "SameSite=Strict" + ("; Secure" if self.secure else "")
                    )
                    headers += [
                        (b"set-cookie", cookie.encode()),
                        (LSN_HEADER.encode(), lsn.encode()),
                    ]
                if state.get("ga_read_from"):
                    headers.append((READ_FROM_HEADER.encode(), state["ga_read_from"].encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_position)


def install(app: FastAPI) -> None:
    app.add_middleware(_Positions, secure=app.state.settings.cookie_secure)
