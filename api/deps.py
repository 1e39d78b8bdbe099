"""Typed dependencies: settings, and one connection (one transaction) per request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.engine import Connection

from gis.settings import Settings


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_conn(request: Request) -> Iterator[Connection]:
    """Yield a connection inside a transaction, committed if the handler succeeds."""
    with request.app.state.engine.begin() as conn:
        yield conn


Conn = Annotated[Connection, Depends(get_conn)]
AppSettings = Annotated[Settings, Depends(get_app_settings)]
