"""One table from domain errors to HTTP responses; a 500 is a bug, never an answer."""

from __future__ import annotations

import logging
from html import escape

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pandas.errors import DatabaseError as PandasDatabaseError
from starlette.exceptions import HTTPException as StarletteHTTPException

from gis import errors, i18n

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
LANG_COOKIE = "ga_lang"
OPEN311_PREFIX = "/open311/"


def request_lang(request: Request) -> str:
    """The user's language: the page's switch (cookie ``ga_lang``), else the browser's."""
    return i18n.lang_of(request.cookies.get(LANG_COOKIE) or request.headers.get("accept-language"))


def _answer(
    request: Request,
    status: int,
    error: str,
    detail: str,
    headers: dict[str, str] | None = None,
    key: str | None = None,
    params: dict[str, object] | None = None,
) -> JSONResponse:
    """``detail``: the English reason (API clients, logs); ``message``: what a person sees,
    in their language, from the catalogue (gis/messages.toml)."""
    lang = request_lang(request)
    has_key = bool(key and key in i18n.catalogue())
    if has_key:
        message = i18n.t(key, lang, **(params or {}))
    else:
        message = i18n.t(f"error.{error}" if f"error.{error}" in i18n.catalogue()
                         else "error.GridAtlasError", lang)  # fmt: skip
    if is_open311(request):
        # a refusal of its own words, else the English reason (the old general sentence
        # would tell an API client nothing)
        return open311_error(status, message if has_key else detail, headers)
    if is_page(request):
        return HTMLResponse(error_page(message, lang), status_code=status, headers=headers)
    return JSONResponse(
        {"detail": detail, "error": error, "message": message, "lang": lang},
        status_code=status,
        headers=headers,
    )


def is_open311(request: Request) -> bool:
    """An Open311 GeoReport address (api/routes/open311.py): an API, never a page."""
    return request.url.path.startswith(OPEN311_PREFIX)


def open311_error(
    status: int, description: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An error in the GeoReport v2 shape: a list of one code and description. Answered
    here, by the app's handlers, so that the request's transaction is rolled back as for
    any other refusal (``api.deps.get_conn``); 422 is the spec's 400, "bad request"."""
    status = 400 if status == 422 else status
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    return JSONResponse([{"code": status, "description": description}], status, headers)


def is_page(request: Request) -> bool:
    """A page a person opened (not the API, not an asset): errors are shown as a page."""
    path = request.url.path
    return not path.startswith(("/api/", "/static/", "/openapi")) and request.method == "GET"


def error_page(message: str, lang: str) -> str:
    """A refusal as a page in the user's language: the message and a way back."""
    back = i18n.t("app.home", lang)
    html_lang = "zh-CN" if lang == "zh" else "en"
    return (
        f'<!DOCTYPE html><html lang="{html_lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(i18n.t('app.name', lang))}</title>"
        '<link rel="stylesheet" href="/static/app/map.css"></head>'
        '<body class="ga-login-page"><div class="ga-login-card ga-error-card">'
        f"<h1>{escape(i18n.t('app.name', lang))}</h1>"
        f'<p id="ga-error-message">{escape(message)}</p>'
        f'<p><a href="/">{escape(back)}</a></p></div></body></html>'
    )


def _install_validation(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, err: RequestValidationError) -> JSONResponse:
        # FastAPI's own list of what is wrong stays in ``detail`` (API clients read it); a
        # person sees one sentence in their language naming the fields.
        problems = jsonable_encoder(err.errors())
        fields = (
            ", ".join(dict.fromkeys(str(p["loc"][-1]) for p in problems if p.get("loc"))) or "?"
        )
        lang = request_lang(request)
        if is_open311(request):
            return open311_error(400, f"missing or malformed: {fields}")
        if is_page(request):
            return HTMLResponse(
                error_page(i18n.t("error.RequestInvalid", lang, fields=fields), lang),
                status_code=422,
            )
        return JSONResponse(
            {
                "detail": problems,
                "error": "RequestInvalid",
                "message": i18n.t("error.RequestInvalid", lang, fields=fields),
                "lang": lang,
            },
            status_code=422,
        )


def _install_fallbacks(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        # Starlette's own answers (no such path, method not allowed): in the user's
        # language, and a page for a person, never {"detail": "Not Found"}.
        names = {404: "NotFound", 405: "MethodNotAllowed", 401: "NotAuthenticated",
                 403: "Forbidden"}  # fmt: skip
        error = names.get(err.status_code, "GridAtlasError")
        headers = getattr(err, "headers", None)
        return _answer(request, err.status_code, error, str(err.detail), headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception) -> JSONResponse:
        # A defect of ours: logged with its traceback; the person sees one sentence in their
        # language (the request's transaction was rolled back, nothing half-written).
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=err)
        return _answer(request, 500, "Internal", "an unexpected error; it has been logged")


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    _install_validation(app)
    _install_fallbacks(app)

    @app.exception_handler(errors.GridAtlasError)
    async def _domain_error(request: Request, err: errors.GridAtlasError) -> JSONResponse:
        status = status_for(err)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if isinstance(err, errors.TooManyRequests):
            headers = {"Retry-After": str(err.retry_after)}
        elif status == 503:
            headers = {"Retry-After": "5"}
        return _answer(request, status, type(err).__name__, str(err), headers, err.key, err.params)

    @app.exception_handler(sa.exc.TimeoutError)
    async def _busy(request: Request, err: sa.exc.TimeoutError) -> JSONResponse:
        log.warning("connection pool exhausted: %s", err)
        return _answer(
            request,
            503,
            "DatabaseUnavailable",
            "the service is busy; nothing was changed, try again in a moment",
            {"Retry-After": "2"},
        )

    @app.exception_handler(sa.exc.IntegrityError)
    async def _integrity(request: Request, err: sa.exc.IntegrityError) -> JSONResponse:
        # A constraint the checks before it did not foresee (a race, usually): the whole
        # transaction is rolled back, nothing was written.
        log.info("integrity error: %s", err.orig)
        return _answer(
            request,
            409,
            "Conflict",
            "the change clashes with the current data (a record changed or was added at the "
            "same time); nothing was written — reload and try again",
        )

    @app.exception_handler(sa.exc.ProgrammingError)
    async def _programming(request: Request, err: sa.exc.ProgrammingError) -> JSONResponse:
        if getattr(err.orig, "sqlstate", None) == "42501":
            # row-level security refused a write outside the user's areas: to the user that
            # area does not exist (the same answer as for one that does not)
            return _answer(request, 404, "NotFound", "not found in your area; nothing was written")
        raise err

    @app.exception_handler(sa.exc.DataError)
    async def _data_error(request: Request, err: sa.exc.DataError) -> JSONResponse:
        log.info("data error: %s", err.orig)
        return _answer(
            request,
            422,
            "InvalidInput",
            "a value is out of range or malformed for the database; nothing was written",
        )

    @app.exception_handler(sa.exc.OperationalError)
    async def _database_down(request: Request, err: sa.exc.OperationalError) -> JSONResponse:
        # The server went away, refused us, or cancelled a statement: the request may be
        # retried; nothing was committed.
        log.warning("database error: %s", err.orig)
        return _answer(
            request,
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
