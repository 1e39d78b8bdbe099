"""One table from domain errors to HTTP responses; a 500 is a bug, never an answer."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pandas.errors import DatabaseError as PandasDatabaseError

from gis import errors

STATUS: dict[type[errors.GridAtlasError], int] = {
    errors.StaleVersion: 412,
    errors.VersionRequired: 428,
    errors.TooLarge: 413,
    errors.TooManyRequests: 429,
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


log = logging.getLogger("gridatlas.api")


def _answer(
    status: int, error: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"detail": detail, "error": error}, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(errors.GridAtlasError)
    async def _domain_error(_request: Request, err: errors.GridAtlasError) -> JSONResponse:
        status = status_for(err)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if isinstance(err, errors.TooManyRequests):
            headers = {"Retry-After": str(err.retry_after)}
        elif status == 503:
            headers = {"Retry-After": "5"}
        return _answer(status, type(err).__name__, str(err), headers)

    @app.exception_handler(sa.exc.TimeoutError)
    async def _busy(_request: Request, err: sa.exc.TimeoutError) -> JSONResponse:
        log.warning("connection pool exhausted: %s", err)
        return _answer(
            503,
            "DatabaseUnavailable",
            "the service is busy; nothing was changed, try again in a moment",
            {"Retry-After": "2"},
        )

    @app.exception_handler(sa.exc.IntegrityError)
    async def _integrity(_request: Request, err: sa.exc.IntegrityError) -> JSONResponse:
        # A constraint the checks before it did not foresee (a race, usually): the whole
        # transaction is rolled back, nothing was written.
        log.info("integrity error: %s", err.orig)
        return _answer(
            409,
            "Conflict",
            "the change clashes with the current data (a record changed or was added at the "
            "same time); nothing was written — reload and try again",
        )

    @app.exception_handler(sa.exc.ProgrammingError)
    async def _programming(_request: Request, err: sa.exc.ProgrammingError) -> JSONResponse:
        if getattr(err.orig, "sqlstate", None) == "42501":
            # row-level security refused a write outside the user's areas: to the user that
            # area does not exist (the same answer as for one that does not)
            return _answer(404, "NotFound", "not found in your area; nothing was written")
        raise err

    @app.exception_handler(sa.exc.DataError)
    async def _data_error(_request: Request, err: sa.exc.DataError) -> JSONResponse:
        log.info("data error: %s", err.orig)
        return _answer(
            422,
            "InvalidInput",
            "a value is out of range or malformed for the database; nothing was written",
        )

    @app.exception_handler(sa.exc.OperationalError)
    async def _database_down(_request: Request, err: sa.exc.OperationalError) -> JSONResponse:
        # The server went away, refused us, or cancelled a statement: the request may be
        # retried; nothing was committed.
        log.warning("database error: %s", err.orig)
        return _answer(
            503,
            "DatabaseUnavailable",
            "the database is not answering; nothing was changed, try again in a moment",
            {"Retry-After": "5"},
        )

    @app.exception_handler(PandasDatabaseError)
    async def _wrapped_by_pandas(request: Request, err: PandasDatabaseError) -> JSONResponse:
        # pandas (read_sql, read_postgis) wraps the driver's error in its own: answer as for
        # the error it wraps (a DataError is a 422, a lost server a 503, …).
        cause = err.__cause__
        if isinstance(cause, sa.exc.SQLAlchemyError):
            for cls in type(cause).__mro__:
                handler = app.exception_handlers.get(cls)
                if handler is not None:
                    return await handler(request, cause)
        raise err
