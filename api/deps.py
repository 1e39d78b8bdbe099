"""Typed dependencies: settings, and one connection (one transaction) per request."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

import anyio
import sqlalchemy as sa
from fastapi import Depends, FastAPI, Request
from sqlalchemy.engine import Connection

from gis.errors import CommitFailed
from gis.settings import Settings

log = logging.getLogger("gridatlas.api")


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


# Requests holding a database connection at once, per process: fewer than the threads
# (api.app.THREADS) and than the pool's connections (api.app), so that a request waiting
# for a connection never holds a thread.
DB_SLOTS = 28


def _slots(app: FastAPI) -> anyio.Semaphore:
    slots = getattr(app.state, "db_slots", None)
    if slots is None:  # an app used without its lifespan; made on the event loop's thread
        slots = app.state.db_slots = anyio.Semaphore(DB_SLOTS)
    return slots


async def db_slot(request: Request) -> AsyncIterator[None]:
    """Wait, on the event loop, for one of ``DB_SLOTS`` before a connection is taken.

    Without it, under a burst the pool ran dry: the requests holding connections waited
    for a thread to run their handler, while every thread was taken by a request blocked
    in the pool's checkout (10 s, then 503) — a standstill with idle CPUs (bench/load.py
    at 300 req/s: 3 req/s, 365 answers 503, load average 0.5). Waiting here holds no thread.
    """
    async with _slots(request.app):
        yield


Slot = Annotated[None, Depends(db_slot, scope="function")]


def get_conn(request: Request, _slot: Slot) -> Iterator[Connection]:
    """The request's connection (see ``transaction``), once a slot is free (``db_slot``)."""
    yield from transaction(request)


def transaction(request: Request) -> Iterator[Connection]:
    """Yield a connection inside a transaction, committed when the handler has returned and
    before its answer is sent (``scope="function"`` below): a commit that fails becomes a
    503 (``commit_failure``), so nothing is acknowledged that is not stored, and every
    audited read is on record by the time the client has the answer."""
    conn = request.app.state.engine.connect()
    try:
        transaction = conn.begin()
        try:
            yield conn
        except BaseException:
            transaction.rollback()
            raise
        # with a replica, a write's WAL position goes back to the client (api/reads.py)
        replicated = getattr(request.app.state, "read_engine", None) is not None
        try:
            wrote = replicated and bool(conn.scalar(_WROTE))
            transaction.commit()
        except sa.exc.DBAPIError as err:
            log.warning("commit failed: %s", err.orig)
            raise commit_failure(err) from err
        if wrote:
            _note_position(request, conn)
    finally:
        conn.close()


_WROTE = sa.text("SELECT pg_current_xact_id_if_assigned() IS NOT NULL")
_POSITION = sa.text("SELECT pg_current_wal_insert_lsn()::text")


def _note_position(request: Request, conn: Connection) -> None:
    """The WAL position just after a commit that wrote: at or past its commit record."""
    try:
        request.state.ga_lsn = conn.scalar(_POSITION)
        conn.rollback()  # the statement opened a transaction of its own
    except sa.exc.DBAPIError as err:  # committed all the same: only the hint is lost
        log.warning("could not read the WAL position after a commit: %s", err.orig)


def is_refused_by_server(err: sa.exc.DBAPIError) -> bool:
    """Whether the server answered the COMMIT with an ERROR on a live connection: it then
    rolled the transaction back. A connection that broke (or a FATAL: the backend ended)
    says nothing about whether the commit record reached the disk first."""
    diag = getattr(err.orig, "diag", None)
    severity = getattr(diag, "severity_nonlocalized", None) or getattr(diag, "severity", None)
    return not err.connection_invalidated and severity == "ERROR"


def commit_failure(err: sa.exc.DBAPIError) -> CommitFailed:
    """The 503 for a COMMIT that failed, worded as far as we know: "nothing was stored"
    only when the server said so by refusing it."""
    if is_refused_by_server(err):
        return CommitFailed(
            "the database refused to commit the change, so nothing of it was stored; try "
            "again in a moment",
            key="commit.refused",
        )
    return CommitFailed(
        "the connection to the database broke during the commit: the change may or may not "
        "have been stored; read it back before sending it again (a retry with the same "
        "Idempotency-Key is safe)",
        key="commit.unconfirmed",
    )


# scope="function": the exit code (the commit) runs before the response is sent, not after.
Conn = Annotated[Connection, Depends(get_conn, scope="function")]
AppSettings = Annotated[Settings, Depends(get_app_settings)]
