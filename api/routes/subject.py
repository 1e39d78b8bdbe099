"""A resident's own data over HTTP (PIPL): a copy of everything held, and erasure.

Admins and committee staff of the person's area only; outside it the person answers 404
like one who does not exist. The copy holds ID and phone numbers in clear and is never
cached; erasure needs ``If-Match`` and a reason, and is one transaction.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Header, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Editor
from api.deps import Conn
from gis.ledger import store, subject

router = APIRouter(prefix="/api", tags=["ledgers"])

RowId = Annotated[int, Path(ge=1, le=2**62)]
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@router.get(
    "/residents/{resident_id}/subject-export",
    summary="Everything held about one resident, for them (PIPL; audited, no-store)",
)
def get_subject_export(
    resident_id: RowId,
    user: Editor,
    conn: Conn,
    request: Request,
    format: Literal["json", "xlsx"] = "json",
) -> Response:
    doc = subject.export(conn, request.app.state.keys, user, resident_id)
    if format == "xlsx":
        name = quote(f"居民{resident_id}个人信息副本.xlsx")
        headers = {**NO_STORE, "Content-Disposition": f"attachment; filename*=UTF-8''{name}"}
        return Response(subject.to_xlsx(doc), media_type=XLSX, headers=headers)
    return JSONResponse(doc, headers=NO_STORE)


class Erasure(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        min_length=1,
        max_length=subject.MAX_REASON,
        description="why (e.g. the resident's request of 2026-12-01, 删除请求)",
    )


@router.post(
    "/residents/{resident_id}/erase",
    summary="Erase a resident and their entries; history scrubbed, audit kept (If-Match)",
)
def post_erase(
    resident_id: RowId,
    body: Erasure,
    user: Editor,
    conn: Conn,
    if_match: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    version = store.parse_version(if_match)
    return subject.erase(conn, user, resident_id, version, body.reason)
