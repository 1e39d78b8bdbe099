"""Errors a user can act on. The API and the CLI map each class to one response."""

from __future__ import annotations


class GridAtlasError(Exception):
    """Base class: ``str(err)`` is a one-line reason that says what to do (English, for
    API clients and logs). ``key`` names its text in the catalogue (gis/messages.toml) with
    ``params`` filled in, which is what a person sees in their language; without a key
    they see the general message of the error's kind."""

    def __init__(self, message: str = "", *, key: str | None = None, **params: object) -> None:
        super().__init__(message)
        self.key = key
        self.params = params


class InvalidInput(GridAtlasError):
    """The input is malformed, empty, of the wrong format or missing something required."""


class InvalidGeometry(InvalidInput):
    """A geometry cannot be used, even after repair."""


class MissingCRS(InvalidInput):
    """A file carries no coordinate reference system and none was given."""


class NotFound(GridAtlasError):
    """The record does not exist (or is outside the caller's scope)."""


class Conflict(GridAtlasError):
    """The change clashes with the current state (a stale edit, a duplicate)."""


class StaleVersion(Conflict):
    """The record changed since the version the edit was based on (HTTP 412)."""


class VersionRequired(InvalidInput):
    """An edit did not say which version it was based on (HTTP 428)."""


class DatabaseUnavailable(GridAtlasError):
    """PostGIS is not running, not installed or not reachable."""


class NotAuthenticated(GridAtlasError):
    """No login, or the token expired: log in again."""


class Forbidden(GridAtlasError):
    """Logged in, but this role may not do that (within the user's scope)."""


class InsecureConfiguration(GridAtlasError):
    """A setting that would put residents' data at risk (a missing or default key)."""


class TooLarge(InvalidInput):
    """An upload, a cell or a request is larger than the service accepts (HTTP 413)."""


class TooManyRequests(GridAtlasError):
    """The caller made too many attempts of this kind; ``retry_after`` seconds to wait."""

    def __init__(
        self, message: str, retry_after: int = 60, *, key: str | None = None, **params: object
    ) -> None:
        super().__init__(message, key=key, **params)
        self.retry_after = retry_after


class CommitFailed(DatabaseUnavailable):
    """The transaction could not commit: nothing of it was stored (HTTP 503)."""
