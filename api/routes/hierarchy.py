"""The hierarchy for logged-in users: areas as GeoJSON, children, paths, leaders.

The reads (areas, children, paths, dwellings, stats) take ``ReadConn``: with a replica they
are served by it (api/reads.py); their audit rows still go to the primary.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from api import models
from api.auth import ReadUser, User
from api.deps import Conn
from api.reads import ReadConn
from gis import areas, leaders, levels, query

router = APIRouter(prefix="/api", tags=["hierarchy"])

LevelName = levels.literal(levels.PLURALS)
LeaderLevel = levels.literal(levels.LEADER_TABLES)
AreaId = Annotated[int, Path(ge=1, le=2**62)]
Limit = Annotated[int, Query(ge=1, le=2000)]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]


@router.get(
    "/areas/{level}",
    summary="Areas of one level in your scope (GeoJSON, paged)",
    response_class=models.GeoJSONResponse,
    response_model=None,
    responses=models.GEOJSON_PAGE,
)
def get_areas(
    level: LevelName,
    user: ReadUser,
    conn: ReadConn,
    parent_id: Annotated[int | None, Query(ge=1, le=2**62, description="the level above")] = None,
    community_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    bbox: Annotated[
        str | None, Query(description="west,south,east,north in degrees", max_length=200)
    ] = None,
    limit: Limit = 200,
    offset: Offset = 0,
) -> Response:
    box = query.BBox.parse(bbox) if bbox else None
    text = areas.feature_page_json(
        conn,
        user,
        level,
        parent_id=parent_id,
        community_id=community_id,
        bbox=(box.west, box.south, box.east, box.north) if box else None,
        limit=limit,
        offset=offset,
    )
    return models.GeoJSONResponse(text)


@router.get(
    "/areas/{level}/{area_id}",
    summary="One area (GeoJSON Feature)",
    response_model=None,
    responses=models.GEOJSON_FEATURE,
)
def get_area(level: LevelName, area_id: AreaId, user: ReadUser, conn: ReadConn) -> dict[str, Any]:
    return areas.feature(conn, user, level, area_id)


@router.get(
    "/areas/{level}/{area_id}/children",
    summary="The areas one level down",
    response_model=None,
    responses=models.GEOJSON_PAGE,
)
def get_children(
    level: LevelName,
    area_id: AreaId,
    user: ReadUser,
    conn: ReadConn,
    limit: Limit = 500,
    offset: Offset = 0,
) -> dict[str, Any]:
    return areas.children(conn, user, level, area_id, limit, offset)


@router.get("/buildings/{building_id}/path", summary="From a building up to its subdistrict")
def get_path(building_id: AreaId, user: ReadUser, conn: ReadConn) -> list[dict[str, Any]]:
    return areas.path(conn, building_id)


@router.get(
    "/buildings/{building_id}/dwellings",
    summary="A building's dwellings (GeoJSON)",
    response_model=None,
    responses=models.GEOJSON_PAGE,
)
def get_dwellings(building_id: AreaId, user: ReadUser, conn: ReadConn) -> dict[str, Any]:
    return areas.dwellings(conn, building_id)


@router.get(
    "/leaders/{level}/{area_id}",
    summary="The current leader and those before",
    response_model=models.Leaders,
)
def get_leaders(level: LeaderLevel, area_id: AreaId, user: User, conn: Conn) -> dict[str, Any]:
    return leaders.leaders(conn, user, level, area_id)


class Assign(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resident_id: int = Field(ge=1, le=2**62)
    replaces: int | None = Field(
        None, ge=1, le=2**62, description="the current assignment's id; empty if there is none"
    )


@router.put(
    "/leaders/{level}/{area_id}",
    summary="Assign or replace the leader",
    response_model=models.LeaderChange,
)
def put_leader(
    level: LeaderLevel, area_id: AreaId, body: Assign, user: User, conn: Conn
) -> dict[str, Any]:
    return leaders.assign_leader(conn, user, level, area_id, body.resident_id, body.replaces)


@router.delete(
    "/leaders/{level}/{area_id}/{assignment_id}",
    summary="End a leader's term",
    response_model=models.Leaders,
)
def delete_leader(
    level: LeaderLevel, area_id: AreaId, assignment_id: AreaId, user: User, conn: Conn
) -> dict[str, Any]:
    leaders.end_leader(conn, user, level, area_id, assignment_id)
    return leaders.leaders(conn, user, level, area_id)


@router.get(
    "/search",
    summary="一口清: an address, a code, a place or a person, in one box",
    response_model=models.SearchResult,
    response_model_exclude_unset=True,  # a hit leaves out the fields its kind has not
)
def get_search(
    user: User,
    conn: Conn,
    q: Annotated[str, Query(min_length=1, max_length=100, description="e.g. 长寿路123弄5号301室")],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    from gis import search

    return search.search(conn, user, q, limit)


@router.get(
    "/stats/{level}",
    summary="People counts per area: small counts, and those that would reveal them, suppressed",
    response_model=models.Stats,
)
def get_stats(
    level: LevelName,
    user: ReadUser,
    conn: ReadConn,
    parent_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    community_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Limit = 500,
    offset: Offset = 0,
) -> dict[str, Any]:
    return areas.stats(
        conn, user, level, parent_id=parent_id, community_id=community_id, limit=limit,
        offset=offset,
    )  # fmt: skip


# --- leaders: candidates and undo (the leaders page, /app/leaders) -----------------------


class LeaderCandidate(models.Read):
    resident_id: int
    name: str
    building_id: int
    building: str | None = Field(description="the building's name or source id")
    room: str
    lives_inside: bool = Field(description="lives in the area")
    distance_m: float = Field(description="from their building to the area; 0 inside")
    backbone: list[str] = Field(description="their roles in the backbone ledger (骨干)")
    is_backbone: bool
    is_current: bool = Field(description="the area's current leader")


class LeaderCandidates(models.Read):
    level: str
    area_id: int
    distance: str = Field(description="how distance_m is measured: straight_line")
    items: list[LeaderCandidate] = Field(
        description="backbone residents living in the area first, then the nearest"
    )


@router.get(
    "/leaders/{level}/{area_id}/candidates",
    summary="Who could lead an area: backbone residents in it, then the nearest (audited)",
    response_model=LeaderCandidates,
)
def get_leader_candidates(
    level: LeaderLevel,
    area_id: AreaId,
    user: User,
    conn: Conn,
    limit: Annotated[int, Query(ge=1, le=100)] = leaders.CANDIDATE_LIMIT,
) -> dict[str, Any]:
    return leaders.leader_candidates(conn, user, level, area_id, limit)


class Undo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assignment_id: int = Field(ge=1, le=2**62, description="the current assignment to undo")


class LeaderUndo(models.Leaders):
    assignment_id: int | None = Field(description="the restored leader's new term, if any")
    restored: bool = Field(description="a previous leader was given the seat back")
    warnings: list[str]


@router.post(
    "/leaders/{level}/{area_id}/undo",
    summary="Undo an assignment: end its term and give the seat back to the one it replaced",
    response_model=LeaderUndo,
)
def post_leader_undo(
    level: LeaderLevel, area_id: AreaId, body: Undo, user: User, conn: Conn
) -> dict[str, Any]:
    return leaders.undo_leader(conn, user, level, area_id, body.assignment_id)
