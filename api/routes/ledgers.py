"""The ledgers over HTTP: residents, organisations, special groups, key persons, backbone.

Reads need a login; rows outside the user's areas answer 404 like rows that do not exist.
Edits need ``If-Match`` (412 stale, 428 missing); creating POSTs take ``Idempotency-Key``.
ID and phone numbers come masked; ``reveal=id_number,phone`` shows them in clear to the
roles allowed to see them, and each reveal is audited.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api import models
from api.auth import PeopleUser
from api.deps import Conn
from api.idempotency import HEADER as IDEM
from api.idempotency import run_once
from gis import levels
from gis.errors import InvalidInput
from gis.fields import field_label
from gis.ledger import entries, store

router = APIRouter(prefix="/api", tags=["ledgers"])

RowId = Annotated[int, Path(ge=1, le=2**62)]
Relation = Literal["head", "spouse", "child", "parent", "grandchild", "sibling", "other"]
Status = Literal["registered", "living_here", "both", "migrant"]
LedgerName = Literal["special_groups", "key_persons", "backbone", "organisations"]
AreaLevel = levels.literal(levels.TABLES)


def _keys(request: Request):
    return request.app.state.keys


def _reveal(text: str | None) -> store.Reveal:
    fields = {f.strip() for f in (text or "").split(",") if f.strip()}
    unknown = fields - {"id_number", "phone"}
    if unknown:
        raise InvalidInput(f"reveal takes id_number and/or phone, not {', '.join(sorted(unknown))}")
    return store.Reveal("id_number" in fields, "phone" in fields)


RevealQ = Annotated[
    str | None,
    Query(description="id_number,phone: show in clear (roles that may; audited)", max_length=40),
]


class NewResident(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, description="姓名")
    id_number: str = Field(min_length=1, max_length=40, description="身份证号 (GB 11643)")
    building_id: int = Field(ge=1, le=2**62, description="楼栋 id")
    room: str = Field(min_length=1, max_length=40, description="室号")
    phone: str | None = Field(None, max_length=40, description="联系电话")
    gender: Literal["男", "女"] | None = Field(None, description="empty: from the ID number")
    birth_date: dt.date | None = Field(None, description="empty: from the ID number")
    relation: Relation | None = Field(None, description="与户主关系")
    status: Status = Field("both", description="居住状态")
    notes: str | None = Field(None, max_length=2000)


class ResidentEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=100)
    id_number: str | None = Field(None, min_length=1, max_length=40)
    building_id: int | None = Field(None, ge=1, le=2**62)
    room: str | None = Field(None, min_length=1, max_length=40)
    phone: str | None = Field(None, max_length=40, description="empty string removes it")
    relation: Relation | None = None
    status: Status | None = None
    notes: str | None = Field(None, max_length=2000)


def _edits(body: BaseModel, required: tuple[str, ...] = ()) -> dict[str, Any]:
    data = body.model_dump(exclude_unset=True)
    for key in required:
        if data.get(key) is None and key in data:
            raise InvalidInput(f"{key} cannot be emptied", key="form.required",
                               field=field_label(key))  # fmt: skip
    return data


@router.post(
    "/residents",
    status_code=201,
    summary="Add a resident (Idempotency-Key honoured)",
    response_model=models.Resident,
)
def post_resident(
    body: NewResident,
    user: PeopleUser,
    conn: Conn,
    request: Request,
    idempotency_key: Annotated[str | None, Header(alias=IDEM)] = None,
):
    data = body.model_dump(exclude_unset=True)
    return run_once(
        conn,
        user,
        idempotency_key,
        {"path": "/api/residents", **data},
        lambda: store.create_resident(conn, _keys(request), user, data),
        headers=lambda b: {"ETag": store.etag(b), "Location": f"/api/residents/{b['id']}"},
    )


@router.get(
    "/residents",
    summary="Residents in your areas, filtered and paged (audited)",
    response_model=models.ResidentPage,
)
def get_residents(
    user: PeopleUser,
    conn: Conn,
    request: Request,
    level: AreaLevel | None = None,
    area_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    name: Annotated[str | None, Query(max_length=100, description="姓名 prefix")] = None,
    id_number: Annotated[str | None, Query(max_length=40, description="exact 身份证号")] = None,
    phone: Annotated[str | None, Query(max_length=40, description="exact 电话")] = None,
    category: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=store.MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    reveal: RevealQ = None,
) -> dict[str, Any]:
    return store.list_residents(
        conn,
        _keys(request),
        user,
        level=level,
        area_id=area_id,
        name=name,
        id_number=id_number,
        phone=phone,
        category=category,
        limit=limit,
        offset=offset,
        reveal=_reveal(reveal),
    )


@router.get(
    "/residents/{resident_id}",
    summary="One resident, with its ETag (audited)",
    response_model=models.Resident,
)
def get_resident(
    resident_id: RowId,
    user: PeopleUser,
    conn: Conn,
    request: Request,
    response: Response,
    reveal: RevealQ = None,
) -> dict[str, Any]:
    row = store.get_resident(conn, _keys(request), user, resident_id, _reveal(reveal))
    response.headers["ETag"] = store.etag(row)
    return row


@router.patch(
    "/residents/{resident_id}",
    summary="Change a resident (needs If-Match)",
    response_model=models.Resident,
)
def patch_resident(
    resident_id: RowId,
    body: ResidentEdit,
    user: PeopleUser,
    conn: Conn,
    request: Request,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    version = store.parse_version(if_match)
    data = _edits(body, ("name", "id_number", "building_id", "room", "status"))
    row = store.update_resident(conn, _keys(request), user, resident_id, version, data)
    response.headers["ETag"] = store.etag(row)
    return row


@router.delete("/residents/{resident_id}", status_code=204, summary="Remove (needs If-Match)")
def delete_resident(
    resident_id: RowId,
    user: PeopleUser,
    conn: Conn,
    if_match: Annotated[str | None, Header()] = None,
) -> Response:
    store.delete_resident(conn, user, resident_id, store.parse_version(if_match))
    return Response(status_code=204)


@router.get(
    "/residents/{resident_id}/history",
    summary="Who changed what, when",
    response_model=list[models.Change],
)
def resident_history(resident_id: RowId, user: PeopleUser, conn: Conn) -> list[dict[str, Any]]:
    return store.history(conn, user, "resident", resident_id)


class NewEntry(BaseModel):
    """A special-group, key-person or backbone entry (about a resident) or an organisation."""

    model_config = ConfigDict(extra="forbid")

    resident_id: int | None = Field(None, ge=1, le=2**62)
    category: str | None = Field(None, max_length=40, description="special_groups, key_persons")
    role: str | None = Field(None, max_length=40, description="backbone")
    handling: str | None = Field(None, max_length=2000, description="key_persons: 处置措施")
    name: str | None = Field(None, max_length=200, description="organisations")
    kind: str | None = Field(None, max_length=40, description="organisations")
    contact_name: str | None = Field(None, max_length=100)
    phone: str | None = Field(None, max_length=40)
    address: str | None = Field(None, max_length=300)
    building_id: int | None = Field(None, ge=1, le=2**62)
    community_id: int | None = Field(None, ge=1, le=2**62)
    notes: str | None = Field(None, max_length=2000)


def _entry_data(ledger: str, body: NewEntry) -> dict[str, Any]:
    data = body.model_dump(exclude_unset=True)
    allowed = set(entries.LEDGERS[ledger].fields)
    extra = sorted(set(data) - allowed)
    if extra:
        raise InvalidInput(
            f"{ledger} has no field {', '.join(extra)}; it has {', '.join(sorted(allowed))}"
        )
    return data


@router.post(
    "/ledgers/{ledger}",
    status_code=201,
    summary="Add an entry (Idempotency-Key)",
    response_model=models.Entry,
)
def post_entry(
    ledger: LedgerName,
    body: NewEntry,
    user: PeopleUser,
    conn: Conn,
    request: Request,
    idempotency_key: Annotated[str | None, Header(alias=IDEM)] = None,
):
    data = _entry_data(ledger, body)
    return run_once(
        conn,
        user,
        idempotency_key,
        {"path": f"/api/ledgers/{ledger}", **data},
        lambda: entries.create_entry(conn, _keys(request), user, ledger, data),
        headers=lambda b: {"ETag": store.etag(b)},
    )


@router.get(
    "/ledgers/{ledger}",
    summary="Entries in your areas, paged (audited)",
    response_model=models.EntryPage,
)
def get_entries(
    ledger: LedgerName,
    user: PeopleUser,
    conn: Conn,
    request: Request,
    category: Annotated[str | None, Query(max_length=40)] = None,
    resident_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    community_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=store.MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    return entries.list_entries(
        conn,
        _keys(request),
        user,
        ledger,
        category=category,
        resident_id=resident_id,
        community_id=community_id,
        limit=limit,
        offset=offset,
    )


@router.get(
    "/ledgers/{ledger}/{entry_id}",
    summary="One entry, with its ETag (audited)",
    response_model=models.Entry,
)
def get_entry(
    ledger: LedgerName,
    entry_id: RowId,
    user: PeopleUser,
    conn: Conn,
    request: Request,
    response: Response,
    reveal: RevealQ = None,
) -> dict[str, Any]:
    row = entries.get_entry(
        conn, _keys(request), user, ledger, entry_id, reveal_phone=_reveal(reveal).phone
    )
    response.headers["ETag"] = store.etag(row)
    return row


@router.patch(
    "/ledgers/{ledger}/{entry_id}",
    summary="Change an entry (needs If-Match)",
    response_model=models.Entry,
)
def patch_entry(
    ledger: LedgerName,
    entry_id: RowId,
    body: NewEntry,
    user: PeopleUser,
    conn: Conn,
    request: Request,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    version = store.parse_version(if_match)
    row = entries.update_entry(
        conn, _keys(request), user, ledger, entry_id, version, _entry_data(ledger, body)
    )
    response.headers["ETag"] = store.etag(row)
    return row


@router.get(
    "/ledgers/{ledger}/{entry_id}/history",
    summary="Who changed what, when",
    response_model=list[models.Change],
)
def entry_history(
    ledger: LedgerName, entry_id: RowId, user: PeopleUser, conn: Conn
) -> list[dict[str, Any]]:
    return store.history(conn, user, entries.LEDGERS[ledger].table, entry_id)


@router.delete("/ledgers/{ledger}/{entry_id}", status_code=204, summary="Remove (If-Match)")
def delete_entry(
    ledger: LedgerName,
    entry_id: RowId,
    user: PeopleUser,
    conn: Conn,
    if_match: Annotated[str | None, Header()] = None,
) -> Response:
    entries.delete_entry(conn, user, ledger, entry_id, store.parse_version(if_match))
    return Response(status_code=204)
