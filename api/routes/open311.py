"""Open311 GeoReport v2 (``/open311/v2``): our problems for FixMyStreet-style clients.

JSON only (``….json``; the spec's XML is not served). Services are public; requests need
our login (``Authorization: Bearer <token>``, or the pages' cookie) and, for ``POST``, may
carry it as the spec's ``api_key`` form field instead. Errors are the spec's list of
``{"code", "description"}``. The mapping is ``gis/open311.py``; the rules in docs/patrol.md.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Request

from api.auth import PeopleUser, Principal, current_user
from api.deps import Conn
from api.errors import request_lang
from api.idempotency import Created
from api.routes.patrol import Now
from gis import accounts, open311
from gis.errors import NotAuthenticated
from gis.patrol import problems

# Errors are shaped as the spec's list by the app's handlers (api/errors.py, by path), not
# here: a refusal answered by the route would let get_conn commit what it wrote before.
router = APIRouter(prefix="/open311/v2", tags=["open311"])
RequestId = Annotated[int, Path(ge=1, le=2**62)]


def _lang(request: Request) -> str:
    return request_lang(request)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _writer(request: Request, conn: Conn, api_key: str | None) -> Principal:
    """The login of a POST: the spec's api_key (one of our login tokens), else as always."""
    if not api_key:
        return current_user(request, conn)
    row = accounts.session_user(conn, api_key) if len(api_key) <= 200 else None
    if row is None:
        raise NotAuthenticated("api_key is not a live login token; log in again")
    return Principal(row.id, row.username, row.role, row.full_name)


@router.get("/services.json", summary="Service list: our problem categories")
def get_services(request: Request) -> list[dict[str, Any]]:
    return open311.services(_lang(request))


@router.get("/services/{service_code}.json", summary="Service definition: its attributes")
def get_service(service_code: str, request: Request) -> dict[str, Any]:
    return open311.service_definition(service_code, _lang(request))


@router.get("/requests.json", summary="Service requests: problems in your area")
def get_requests(
    request: Request,
    user: PeopleUser,
    conn: Conn,
    now: Now,
    service_request_id: str | None = None,
    service_code: str | None = None,
    start_date: str | None = None,
    end_date: str | None = None,
    status: str | None = None,
    jurisdiction_id: str | None = None,  # one jurisdiction: accepted and ignored
) -> list[dict[str, Any]]:
    return open311.list_requests(
        conn, _lang(request), _base(request), now, service_request_id, service_code,
        start_date, end_date, status,
    )  # fmt: skip


@router.get("/requests/{service_request_id}.json", summary="One service request")
def get_request(
    service_request_id: RequestId, request: Request, user: PeopleUser, conn: Conn,
    jurisdiction_id: str | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    return open311.get_request(conn, service_request_id, _lang(request), _base(request))


@router.post("/requests.json", status_code=201, summary="Create a service request (a problem)")
def post_request(
    request: Request,
    conn: Conn,
    now: Now,
    once: Created,
    service_code: Annotated[str, Form()],
    description: Annotated[str | None, Form(max_length=2000)] = None,
    lat: Annotated[str | None, Form(max_length=40)] = None,
    long: Annotated[str | None, Form(max_length=40)] = None,
    address_id: Annotated[str | None, Form(max_length=40)] = None,
    api_key: Annotated[str | None, Form(max_length=400)] = None,
    jurisdiction_id: Annotated[str | None, Form(max_length=100)] = None,
    handling: Annotated[str | None, Form(alias="attribute[handling]", max_length=40)] = None,
    deadline: Annotated[str | None, Form(alias="attribute[deadline]", max_length=60)] = None,
    building_id: Annotated[str | None, Form(alias="attribute[building_id]", max_length=40)] = None,
) -> list[dict[str, Any]]:
    # email, first_name, last_name, phone, device_id, account_id and media_url are ignored:
    # reports come from our own staff, who are known by their login; nothing fetches a URL.
    user = _writer(request, conn, api_key)
    data = open311.to_problem({
        "service_code": service_code, "description": description, "lat": lat, "long": long,
        "address_id": address_id, "attribute[handling]": handling,
        "attribute[deadline]": deadline, "attribute[building_id]": building_id,
    })  # fmt: skip
    lang = _lang(request)
    # a client retrying with the same Idempotency-Key gets the first answer, not a new problem
    return once(
        user, data, lambda d: open311.post_answer(problems.report(conn, user, d, now), lang)
    )
