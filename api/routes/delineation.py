"""Delineation over HTTP: draw the residents' groups and read the latest quality report."""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.auth import Editor, User
from api.deps import Conn
from gis import accounts, areas, permissions
from gis.delineate import edits, part_store
from gis.delineate.hierarchy import Params
from gis.delineate.service import run_on
from gis.errors import Forbidden, NotFound

router = APIRouter(prefix="/api/delineation", tags=["delineation"])


class RunRequest(BaseModel):
    """Targets of a run; the defaults are the documented ones."""

    community: str | None = Field(None, description="only this community's code")
    group_households: int = Field(100, ge=10, le=2000, description="households per group")
    cluster_households: int = Field(35, ge=1, le=1000, description="households per cluster")
    grid_households: int = Field(300, ge=50, le=20000, description="households per grid")


@router.post("/runs", status_code=201, summary="Draw units, clusters, groups and grids")
def post_run(body: RunRequest, conn: Conn, user: Editor) -> dict[str, Any]:
    if not permissions.may(user, "edit_city_map"):
        # committee staff redraw a community of their own, never the whole city, and only
        # one they hold whole (a grid's worker does not redraw the grid next door)
        if body.community is None:
            raise Forbidden("committee staff redraw one community: give its code")
        mine = accounts.holds_community(conn, user.id, body.community)
        if not mine:
            raise NotFound(f"no community {body.community!r} in your area")
    params = Params(
        group_households=body.group_households,
        cluster_households=body.cluster_households,
        grid_households=body.grid_households,
    )
    report = run_on(conn, params, body.community)
    return {
        "run_id": report.run_id,
        "communities": report.communities,
        "quality": report.quality,
        "seconds": {k: round(v, 3) for k, v in report.timings.items()},
        "blocks": {"reused": report.reused_blocks, "computed": report.computed_blocks},
        "leaders_ended": report.leaders_ended,
    }


@router.get("/runs/latest", summary="The latest run's quality report")
def latest_run(conn: Conn) -> dict[str, Any]:
    row = (
        conn.execute(
            sa.text(
                "SELECT id, created_at, params, quality, timings FROM delineation_run "
                "ORDER BY id DESC LIMIT 1"
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound("no delineation yet: POST /api/delineation/runs first")
    return {**row, "created_at": row["created_at"].isoformat()}


class MoveRequest(BaseModel):
    """Move one member to another area of the level above it."""

    kind: Literal["building", "unit", "building_cluster"] = Field(
        description="what moves: a building (to a unit), a unit (to a cluster), "
        "a building_cluster (to a residents' group)"
    )
    id: int = Field(ge=1, le=2**62, description="id of the building, unit or cluster")
    to: int = Field(ge=1, le=2**62, description="id of the unit, cluster or group it joins")
    from_: int | None = Field(
        None,
        alias="from",
        ge=1,
        le=2**62,
        description="the unit, cluster or group it is in on the screen: if it has been moved "
        "since, the move is refused with 412 (a stale edit) and nothing changes",
    )


@router.post("/moves", summary="Move a building, unit or cluster (polygons and codes follow)")
def post_move(body: MoveRequest, conn: Conn, _user: Editor) -> dict[str, Any]:
    target = {"building": "unit", "unit": "building_cluster", "building_cluster": "residents_group"}
    areas.check_visible(conn, body.kind, body.id)  # both ends in the user's areas, or 404
    areas.check_visible(conn, target[body.kind], body.to)
    return edits.move(conn, body.kind, body.id, body.to, body.from_)


class LockRequest(BaseModel):
    locked: bool = Field(description="true: a re-run keeps this group as it is")


@router.put("/groups/{group_id}/lock", summary="Lock or unlock a residents' group")
def put_lock(group_id: int, body: LockRequest, conn: Conn, _user: Editor) -> dict[str, Any]:
    areas.check_visible(conn, "residents_group", group_id)
    return edits.set_locked(conn, group_id, body.locked)


@router.get(
    "/buildings/{building_id}/parts",
    summary="Which floors (or entrances) of a building belong to which unit and residents' group",
)
def get_parts(building_id: int, conn: Conn, _user: User) -> dict[str, Any]:
    areas.check_visible(conn, "building", building_id)
    parts = part_store.parts_of(conn, building_id)
    if not parts:
        raise NotFound(f"building {building_id} is in no unit yet; run delineate first")
    return {"building_id": building_id, "divided": parts[0]["part_no"] > 0, "parts": parts}
