"""Ledgers as spreadsheets: blank templates, export, and import with a preview."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse

from api.auth import PeopleUser
from api.deps import Conn
from api.errors import request_lang
from gis.errors import InvalidInput
from gis.ledger import bulk, tabular
from gis.ledger.sheetfile import file_too_large

router = APIRouter(prefix="/api/ledgers", tags=["ledgers"])

Sheet = Literal["residents", "organisations", "special_groups", "key_persons", "backbone"]
Format = Literal["xlsx", "csv"]
MAX_BYTES = tabular.MAX_FILE_BYTES
TYPES = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv; charset=utf-8",
}


def _file(content: bytes, name: str, fmt: str) -> Response:
    return Response(
        content,
        media_type=TYPES[fmt],
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}.{fmt}"},
    )


@router.get("/{ledger}/template", summary="A blank template with Chinese headings (填写说明)")
def get_template(ledger: Sheet, _user: PeopleUser, format: Format = "xlsx") -> Response:
    t = tabular.get_template(ledger)
    return _file(tabular.write_template(ledger, format), f"{t.title}模板", format)


@router.get("/{ledger}/export", summary="Every row in your areas, re-importable (audited)")
def get_export(
    ledger: Sheet, user: PeopleUser, conn: Conn, request: Request, format: Format = "xlsx"
) -> Response:
    data = bulk.export(conn, request.app.state.keys, user, ledger, format)
    return _file(data, tabular.get_template(ledger).title, format)


@router.post("/{ledger}/import", summary="Check a sheet (preview) or import it")
def post_import(
    ledger: Sheet,
    file: UploadFile,
    user: PeopleUser,
    conn: Conn,
    request: Request,
    mode: Annotated[
        bulk.Mode,
        Query(description="preview: check only; all: write only if every row is valid; "
              "valid_only: write the valid rows and skip the bad ones"),
    ] = "preview",
    community_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> Any:  # fmt: skip
    data = file.file.read(MAX_BYTES + 1)  # a plain def: runs in the thread pool, not the loop
    if len(data) > MAX_BYTES:
        raise file_too_large()
    if not data:
        raise InvalidInput("the file is empty", key="upload.empty")
    plan = bulk.run_import(
        conn, request.app.state.keys, user, ledger, data, file.filename or "upload.xlsx", mode,
        community_id,
    )  # fmt: skip
    out = plan.summary(request_lang(request))
    out["mode"] = mode
    if mode != "preview" and plan.errors and not plan.written:
        out["detail"] = (
            "nothing was written: fix the rows listed in errors, or import with mode=valid_only"
        )
        return JSONResponse(out, status_code=422)
    return out


@router.get("/choices", summary="The choice fields of every ledger, with their Chinese labels")
def get_choices(_user: PeopleUser) -> dict[str, dict[str, list[dict[str, str]]]]:
    """ledger → field → [{value, label}], in the templates' order (one list: the templates)."""
    return {
        name: {
            col.key: [{"value": key, "label": label} for label, key in col.choices]
            for col in template.columns
            if col.kind == "choice"
        }
        for name, template in tabular.TEMPLATES.items()
    }
