"""Photos of problems, and a grid's weekly summary.

``POST /api/problems/{id}/photos`` takes one multipart field ``file``. The handler is
async so that the login is checked and the declared size is refused (413) before any of
the body is read; the upload is then read at most ``MAX_BYTES + 1`` bytes, and the checking,
cleaning and storing run in the thread pool (``gis/patrol/photos.py``). Photos are served
only through ``GET …/photos/{photo_id}``, to users who may see the problem (404 otherwise),
with ``Cache-Control: no-store``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from api.auth import PeopleUser, User
from api.deps import Conn
from api.routes.patrol import Now
from gis.errors import InvalidInput, TooLarge
from gis.patrol import photos, weekly

router = APIRouter(prefix="/api", tags=["patrol"])

RowId = Annotated[int, PathParam(ge=1, le=2**62)]
ENVELOPE = 64 * 1024  # multipart boundaries and headers around the file
UPLOAD = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


def photo_root(request: Request) -> Path:
    """The private directory of photos (under the settings' var_dir; tests override it)."""
    return photos.photos_dir(request.app.state.settings.var_dir)


PhotoRoot = Annotated[Path, Depends(photo_root)]


def _too_large() -> TooLarge:
    mb = photos.MAX_BYTES // (1024 * 1024)
    return TooLarge(f"the photo is larger than {mb} MB; send a smaller one",
                    key="problems.photo_too_large", mb=mb)  # fmt: skip


async def _read_upload(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > photos.MAX_BYTES + ENVELOPE:
        raise _too_large()
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidInput("send the photo as multipart/form-data, field file",
                           key="problems.photo_missing")  # fmt: skip
    form = await request.form(max_files=1, max_fields=4)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInput("send the photo as multipart/form-data, field file",
                               key="problems.photo_missing")  # fmt: skip
        data = await upload.read(photos.MAX_BYTES + 1)
    finally:
        await form.close()
    if len(data) > photos.MAX_BYTES:
        raise _too_large()
    return data


@router.post(
    "/problems/{problem_id}/photos",
    status_code=201,
    summary="Add a photo to a problem (JPEG, PNG, WebP; EXIF removed)",
    openapi_extra=UPLOAD,
)
async def post_photo(
    problem_id: RowId, request: Request, user: User, conn: Conn, now: Now, root: PhotoRoot
) -> dict[str, Any]:
    data = await _read_upload(request)
    return await run_in_threadpool(photos.add, conn, user, problem_id, data, root, now)


@router.get("/problems/{problem_id}/photos", summary="A problem's photos")
def get_photos(problem_id: RowId, user: PeopleUser, conn: Conn) -> list[dict[str, Any]]:
    return photos.list_photos(conn, problem_id)


@router.get(
    "/problems/{problem_id}/photos/{photo_id}",
    summary="One photo (only to users who may see the problem)",
    response_class=Response,
    responses={200: {"content": {t: {} for t in photos.FORMATS}}},
)
def get_photo(
    problem_id: RowId, photo_id: RowId, user: PeopleUser, conn: Conn, root: PhotoRoot
) -> Response:
    data, media_type = photos.read(conn, problem_id, photo_id, root)
    return Response(
        data,
        media_type=media_type,
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
                 "Content-Disposition": "inline"},  # fmt: skip
    )


@router.get("/patrol/grids/{grid_id}/weekly", summary="A grid's week: coverage and problems")
def get_weekly(
    grid_id: RowId,
    user: User,
    conn: Conn,
    now: Now,
    week: Annotated[
        str | None, Query(pattern=r"^\d{4}-W\d{2}$", description="ISO week, e.g. 2026-W49")
    ] = None,
) -> dict[str, Any]:
    return weekly.summary(conn, user, grid_id, week, now)
