"""Typed dependencies: settings, and one connection (one transaction) per request."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, Request
from sqlalchemy.engine import Connection

from gis.errors import CommitFailed
from gis.settings import Settings

log = logging.getLogger("gridatlas.api")


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_conn(request: Request) -> Iterator[Connection]:
    """Yield a connection inside a transaction, committed when the handler has returned and
    before its answer is sent (``scope="function"`` below): a commit that fails becomes a
    503, so nothing is acknowledged that is not stored, and every audited read is on
    record by the time the client has the answer."""
    conn = request.app.state.engine.connect()
    try:
        transaction = conn.begin()
        try:
            yield conn
        except BaseException:
            transaction.rollback()
            raise
        try:
            transaction.commit()
        except sa.exc.DBAPIError as err:
            log.warning("commit failed: %s", err.orig)
            raise CommitFailed(
                "the change could not be saved (the database refused to commit it); nothing "
                "was stored — try again in a moment (保存失败，请稍后重试)"
            ) from err
    finally:
        conn.close()


# scope="function": the exit code (the commit) runs before the response is sent, not after.
Conn = Annotated[Connection, Depends(get_conn, scope="function")]
AppSettings = Annotated[Settings, Depends(get_app_settings)]
