"""Helpers shared by the commands: engine set-up and the one way errors are reported."""

from __future__ import annotations

from typing import NoReturn

import typer
from sqlalchemy.engine import Engine

from gis import db
from gis.errors import GridAtlasError
from gis.settings import get_settings

EXIT_BAD_INPUT = 2


def fail(err: GridAtlasError) -> NoReturn:
    """Print the one-line reason and exit with code 2."""
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def open_engine() -> Engine:
    """Start the database if local, create and migrate it, and return an engine."""
    settings = get_settings()
    try:
        url = db.resolve_url(settings)
        engine = db.create_engine(url)
        if not db.is_at_head(engine):
            engine.dispose()
            db.ensure_database(url)
            db.migrate(url)
            engine = db.create_engine(url)
    except GridAtlasError as err:
        fail(err)
    return engine
