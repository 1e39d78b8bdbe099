"""One table from domain errors to HTTP responses; a 500 is a bug, never an answer."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from gis import errors, facilities

STATUS: dict[type[errors.GridAtlasError], int] = {
    facilities.StaleVersion: 412,
    facilities.VersionRequired: 428,
    errors.InvalidGeometry: 422,
    errors.MissingCRS: 422,
    errors.InvalidInput: 422,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.DatabaseUnavailable: 503,
}


def status_for(err: errors.GridAtlasError) -> int:
    """Return the HTTP status of ``err`` (its most specific class in STATUS)."""
    for cls in type(err).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(errors.GridAtlasError)
    async def _domain_error(_request: Request, err: errors.GridAtlasError) -> JSONResponse:
        return JSONResponse(
            {"detail": str(err), "error": type(err).__name__}, status_code=status_for(err)
        )

    @app.exception_handler(sa.exc.OperationalError)
    async def _database_down(_request: Request, err: sa.exc.OperationalError) -> JSONResponse:
        # The server went away, refused us, or cancelled a statement: the request may be
        # retried; nothing was committed.
        logging.getLogger("gridatlas.api").warning("database error: %s", err.orig)
        return JSONResponse(
            {
                "detail": "the database is not answering; nothing was changed, try again "
                "in a moment",
                "error": "DatabaseUnavailable",
            },
            status_code=503,
            headers={"Retry-After": "5"},
        )
