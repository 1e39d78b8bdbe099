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
    errors.NotAuthenticated: 401,
    errors.Forbidden: 403,
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
        status = status_for(err)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(
            {"detail": str(err), "error": type(err).__name__}, status_code=status, headers=headers
        )

    @app.exception_handler(sa.exc.TimeoutError)
    async def _busy(_request: Request, err: sa.exc.TimeoutError) -> JSONResponse:
        logging.getLogger("gridatlas.api").warning("connection pool exhausted: %s", err)
        return JSONResponse(
            {
                "detail": "the service is busy; nothing was changed, try again in a moment",
                "error": "DatabaseUnavailable",
            },
            status_code=503,
            headers={"Retry-After": "2"},
        )

    @app.exception_handler(sa.exc.IntegrityError)
    async def _integrity(_request: Request, err: sa.exc.IntegrityError) -> JSONResponse:
        # A constraint the checks before it did not foresee (a race, usually): the whole
        # transaction is rolled back, nothing was written.
        logging.getLogger("gridatlas.api").info("integrity error: %s", err.orig)
        return JSONResponse(
            {
                "detail": "the change clashes with the current data (a record changed or was "
                "added at the same time); nothing was written — reload and try again",
                "error": "Conflict",
            },
            status_code=409,
        )

    @app.exception_handler(sa.exc.ProgrammingError)
    async def _programming(_request: Request, err: sa.exc.ProgrammingError) -> JSONResponse:
        if getattr(err.orig, "sqlstate", None) == "42501":
            # row-level security refused a write outside the user's areas: to the user that
            # area does not exist (the same answer as for one that does not)
            return JSONResponse(
                {"detail": "not found in your area; nothing was written", "error": "NotFound"},
                status_code=404,
            )
        raise err

    @app.exception_handler(sa.exc.DataError)
    async def _data_error(_request: Request, err: sa.exc.DataError) -> JSONResponse:
        logging.getLogger("gridatlas.api").info("data error: %s", err.orig)
        return JSONResponse(
            {
                "detail": "a value is out of range or malformed for the database; "
                "nothing was written",
                "error": "InvalidInput",
            },
            status_code=422,
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
