"""Unknown query parameters are refused: a filter the API does not have must not look as if
it had been applied (``/api/residents?building_id=7`` listed the residents of every
building)."""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant

from gis.errors import InvalidInput


def _query_names(dependant: Dependant, into: set[str]) -> set[str]:
    for param in dependant.query_params:
        into.add(param.field_info.alias or param.name)
    for sub in dependant.dependencies:
        _query_names(sub, into)
    return into


def refuse_unknown_query(request: Request) -> None:
    """A dependency of every route: 422 naming the query parameters the route does not take."""
    if not request.url.path.startswith("/api/"):
        return  # pages: a browser or a bookmark may add its own (the page ignores them)
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    known = getattr(route, "_ga_query_names", None)
    if known is None:
        known = _query_names(dependant, set())
        route._ga_query_names = known  # computed once per route
    unknown = sorted({k for k in request.query_params if k not in known})
    if unknown:
        allowed = ", ".join(sorted(known)) or "none"
        raise InvalidInput(
            f"unknown query parameter(s): {', '.join(unknown)} — this address takes: {allowed} "
            f"(不支持的查询参数: {', '.join(unknown)})",
            key="request.unknown_params",
            names=", ".join(unknown),
        )
