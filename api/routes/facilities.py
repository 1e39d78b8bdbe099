"""Facilities by hand: add, read, move, recategorise, remove (If-Match for edits).

Reads are public map data; every change stays inside the editor's area (gis/facilities.py).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Response
from pydantic import BaseModel, Field

from api.auth import Editor, Principal, User
from api.deps import Conn
from gis import facilities, permissions

router = APIRouter(prefix="/api/facilities", tags=["facilities"])
FacilityId = Annotated[int, Path(ge=1, le=2**62)]


class NewFacility(BaseModel):
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    categories: list[str] = Field(min_length=1, max_length=20)
    name: str | None = Field(None, max_length=200)


class FacilityEdit(BaseModel):
    lon: float | None = Field(None, ge=-180, le=180)
    lat: float | None = Field(None, ge=-90, le=90)
    categories: list[str] | None = Field(None, min_length=1, max_length=20)
    name: str | None = Field(None, max_length=200)


def _scope(user: Principal) -> facilities.EditorScope:
    return facilities.EditorScope(user.id, permissions.may(user, "edit_city_map"))


def _etag(row: dict[str, Any]) -> str:
    return f'"{row["version"]}"'


def _version(if_match: str | None) -> str | None:
    return None if if_match is None else if_match.strip().removeprefix("W/").strip('"')


@router.post("", status_code=201, summary="Add a facility at a point")
def post_facility(
    body: NewFacility, conn: Conn, response: Response, user: Editor
) -> dict[str, Any]:
    row = facilities.create_facility(
        conn, _scope(user), lon=body.lon, lat=body.lat, categories=body.categories, name=body.name
    )
    response.headers["ETag"] = _etag(row)
    return row


@router.get("/{facility_id}", summary="One facility, with its ETag for editing")
def get_facility(
    facility_id: FacilityId, conn: Conn, response: Response, _user: User
) -> dict[str, Any]:
    row = facilities.get_facility(conn, facility_id)
    response.headers["ETag"] = _etag(row)
    return row


@router.patch("/{facility_id}", summary="Move, rename or recategorise (needs If-Match)")
def patch_facility(
    facility_id: FacilityId,
    body: FacilityEdit,
    conn: Conn,
    user: Editor,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    row = facilities.update_facility(
        conn,
        _scope(user),
        facility_id,
        _version(if_match),
        lon=body.lon,
        lat=body.lat,
        categories=body.categories,
        name=body.name,
    )
    response.headers["ETag"] = _etag(row)
    return row


@router.delete("/{facility_id}", status_code=204, summary="Remove (needs If-Match)")
def delete_facility(
    facility_id: FacilityId,
    conn: Conn,
    user: Editor,
    if_match: Annotated[str | None, Header()] = None,
) -> Response:
    facilities.delete_facility(conn, _scope(user), facility_id, _version(if_match))
    return Response(status_code=204)
