"""Walking reach: per building, per area, and what a new facility would change."""

from __future__ import annotations

import threading
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from api import models
from api.auth import Editor, Principal, User
from api.deps import Conn
from gis import permissions
from gis.errors import Forbidden
from gis.reach import coverage, service, siting
from gis.reach import model as reach_model
from gis.reach import scope as reach_scope

router = APIRouter(prefix="/api/reach", tags=["reach"])
_model_lock = threading.Lock()


class WhatIf(BaseModel):
    """A hypothetical facility."""

    lon: float = Field(ge=-180, le=180, description="longitude, WGS 84")
    lat: float = Field(ge=-90, le=90, description="latitude, WGS 84")
    category: str = Field(description="facility category code, e.g. activity_room")
    limit_min: float = Field(10, ge=1, le=60, description="walking time limit, minutes")
    speed_m_per_min: float = Field(80, ge=10, le=200, description="80 adult, 60 elderly")


class SitingRequest(BaseModel):
    """Where to put k new facilities of a category."""

    category: str
    k: int = Field(3, ge=1, le=50, description="how many sites")
    limit_min: float = Field(10, ge=1, le=60)
    speed_m_per_min: float = Field(80, ge=10, le=200)
    candidates: Literal["nodes", "buildings"] = Field(
        "nodes", description="street intersections or buildings"
    )


class RunRequest(BaseModel):
    """Parameters of a reach computation."""

    categories: list[str] | None = Field(None, description="default: every category")
    speed_m_per_min: float = Field(80, ge=10, le=200)
    max_walk_m: float = Field(2000, ge=100, le=20_000)


def _model(request: Request, conn: Conn) -> reach_model.ReachModel:
    """The app's cached reach model, rebuilt when imported data changed."""
    key = reach_model.data_version(conn)
    with _model_lock:
        cached = getattr(request.app.state, "reach_model", None)
        if cached is None or cached[0] != key:
            cached = (key, reach_model.load_model(conn, request.app.state.settings.metric_epsg))
            request.app.state.reach_model = cached
        return cached[1]


@router.get("/buildings/{building_id}", summary="Nearest facility of each category on foot")
def get_building_reach(
    building_id: Annotated[int, Path(ge=1, le=2**62)], conn: Conn, _user: User
) -> dict[str, Any]:
    return service.building_reach(conn, building_id)


@router.get("/coverage", summary="Households within the limit, per category")
def get_coverage(
    conn: Conn, _user: User, limit_min: Annotated[float, Query(ge=1, le=60)] = 10
) -> dict[str, Any]:
    return coverage.coverage(conn, limit_min=limit_min)


@router.get("/coverage/{level}", summary="Coverage per subdistrict, community, grid, group")
def get_coverage_by_area(
    level: Literal["subdistrict", "community", "grid", "residents_group"],
    conn: Conn,
    _user: User,
    limit_min: Annotated[float, Query(ge=1, le=60)] = 10,
) -> list[dict[str, Any]]:
    return coverage.coverage_by_area(conn, level, limit_min=limit_min)


@router.get(
    "/gaps",
    summary="Households without a category within the limit (GeoJSON)",
    response_model=None,
    responses=models.geojson_responses(models.GapsPage),
)
def get_gaps(
    conn: Conn,
    _user: User,
    category: str,
    limit_min: Annotated[float, Query(ge=1, le=60)] = 10,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    return coverage.gaps(conn, category, limit_min=limit_min, limit=limit, offset=offset)


def _scope(
    conn: Conn, user: Principal, m: reach_model.ReachModel, *, with_area: bool = False
) -> reach_scope.ReachScope:
    """The buildings the user's questions count: their areas; an admin's, the city."""
    return reach_scope.load_scope(
        conn, m, is_whole_city=permissions.may(user, "whole_city"), with_area=with_area
    )


@router.post(
    "/what-if",
    summary="Households in my areas a facility placed at a point would bring within reach",
)
def post_what_if(body: WhatIf, conn: Conn, request: Request, user: User) -> dict[str, Any]:
    m = _model(request, conn)
    inside = reach_model.building_at(conn, body.lon, body.lat)
    return reach_model.what_if(
        m,
        body.lon,
        body.lat,
        body.category,
        body.limit_min * body.speed_m_per_min,
        inside_building_id=inside,
        counted=_scope(conn, user, m).buildings,
    )


@router.post(
    "/siting", summary="Best new sites in my areas for a category (greedy maximal coverage)"
)
def post_siting(body: SitingRequest, conn: Conn, request: Request, user: User) -> dict[str, Any]:
    m = _model(request, conn)
    return siting.suggest_sites(
        m,
        body.category,
        body.k,
        body.limit_min * body.speed_m_per_min,
        body.candidates,
        scope=_scope(conn, user, m, with_area=True),
    )


@router.get(
    "/isochrones/{facility_id}",
    summary="Area within the walking limit (display only)",
    response_model=None,
    responses=models.GEOJSON_FEATURE,
)
def get_isochrone(
    facility_id: Annotated[int, Path(ge=1, le=2**62)],
    conn: Conn,
    request: Request,
    _user: User,
    limit_min: Annotated[float, Query(ge=1, le=60)] = 10,
    speed_m_per_min: Annotated[float, Query(ge=10, le=200)] = 80,
) -> dict[str, Any]:
    m = _model(request, conn)
    return reach_model.facility_isochrone(m, facility_id, limit_min * speed_m_per_min)


@router.post("/runs", summary="Compute and store reach for every building")
def post_run(body: RunRequest, conn: Conn, user: Editor) -> dict[str, Any]:
    if not permissions.may(user, "run_reach_city"):
        # a run computes every building of the city and replaces the previous run: it
        # cannot be limited to one community, so it is not committee staff's to start
        raise Forbidden(
            "a reach run recomputes the whole city and replaces the last run: only an admin "
            "(系统管理员) may start one; ask an admin to run it"
        )
    run = service.compute_and_store(
        conn,
        categories=body.categories,
        speed_m_per_min=body.speed_m_per_min,
        max_walk_m=body.max_walk_m,
    )
    return {
        "run_id": run.run_id,
        "buildings": len(run.households),
        "seconds": {k: round(v, 3) for k, v in run.seconds.items()},
        "islands": run.islands,
        "unattached_buildings": run.unattached_buildings,
    }


# --- within the user's scope, at a chosen speed (the planners' page, /app/reach) ----------

SPEEDS = "walking speed, m/min: 80 adult, 60 elderly"


@router.get("/scoped/coverage", summary="Coverage of one category in my areas, per area")
def get_scoped_coverage(
    conn: Conn,
    _user: User,
    category: str,
    limit_min: Annotated[float, Query(ge=1, le=60)] = 10,
    speed_m_per_min: Annotated[float, Query(ge=10, le=200, description=SPEEDS)] = 80,
) -> dict[str, Any]:
    return coverage.scoped_coverage(
        conn, category, limit_min=limit_min, speed_m_per_min=speed_m_per_min
    )


@router.get(
    "/scoped/gaps",
    summary="Households in my areas without a category within the limit (GeoJSON)",
    response_model=None,
    responses=models.geojson_responses(models.GapsPage),
)
def get_scoped_gaps(
    conn: Conn,
    _user: User,
    category: str,
    limit_min: Annotated[float, Query(ge=1, le=60)] = 10,
    speed_m_per_min: Annotated[float, Query(ge=10, le=200, description=SPEEDS)] = 80,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    return coverage.scoped_gaps(
        conn,
        category,
        limit_min=limit_min,
        speed_m_per_min=speed_m_per_min,
        limit=limit,
        offset=offset,
    )
