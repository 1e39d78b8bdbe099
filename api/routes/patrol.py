"""Patrols over HTTP: areas and their tours, check-ins, visits, problems, today's reminders.

Creating POSTs take ``Idempotency-Key``: a tablet syncing its offline queue sends each record
with its own key, so a sync sent three times creates each record once. The clock is a
dependency (``clock``) so that tests can fix it.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from api.auth import PeopleUser, User
from api.deps import Conn
from api.errors import request_lang, status_for
from api.idempotency import Created
from gis import i18n, scheduler
from gis.errors import GridAtlasError
from gis.patrol import area_store, checkins, mapview, problems, reminders, tour_store, visits
from gis.patrol.areas import Weights

router = APIRouter(prefix="/api", tags=["patrol"])

RowId = Annotated[int, Path(ge=1, le=2**62)]
ProblemCategory = Literal[problems.CATEGORIES]  # type: ignore[valid-type]
Status = Literal[problems.STATUSES]  # type: ignore[valid-type]


def clock() -> dt.datetime:
    """Now, with its time zone (overridden in tests)."""
    return dt.datetime.now(dt.UTC)


Now = Annotated[dt.datetime, Depends(clock)]


class NewCheckin(BaseModel):
    model_config = ConfigDict(extra="forbid")

    building_id: int = Field(ge=1, le=2**62)
    method: Literal["tap", "gps"] = "tap"
    lon: float | None = Field(None, ge=-180, le=180)
    lat: float | None = Field(None, ge=-90, le=90)
    accuracy_m: float | None = Field(None, ge=0, le=10_000, description="GPS accuracy (m)")
    at: dt.datetime | None = Field(None, description="device time (offline); default now")


class NewVisit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resident_id: int = Field(ge=1, le=2**62)
    category: str = Field(max_length=60, description="special_group:… or key_person:…")
    note: str | None = Field(None, max_length=2000)
    at: dt.datetime | None = None


class NewProblem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: ProblemCategory
    description: str = Field(min_length=1, max_length=2000)
    handling: Literal["immediate", "joint", "time_limited"] = "immediate"
    deadline: dt.datetime | None = Field(None, description="needed for time_limited")
    building_id: int | None = Field(None, ge=1, le=2**62)
    lon: float | None = Field(None, ge=-180, le=180)
    lat: float | None = Field(None, ge=-90, le=90)
    at: dt.datetime | None = None


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: Status
    note: str | None = Field(None, max_length=2000)


class Assignment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: int = Field(ge=1, le=2**62)


def _keys(request: Request):
    return request.app.state.keys


@router.post("/patrol/checkins", status_code=201, summary="Check in at a building (tap or GPS)")
def post_checkin(body: NewCheckin, user: User, conn: Conn, now: Now, once: Created):
    return once(user, body.model_dump(), lambda data: checkins.check_in(conn, user, data, now))


@router.post("/patrol/grids/{grid_id}/areas", status_code=201, summary="Draw a grid's patrol areas")
def post_areas(
    grid_id: RowId,
    user: User,
    conn: Conn,
    workers: Annotated[int | None, Query(ge=1, le=50)] = None,
    households: Annotated[float, Query(ge=0, le=100)] = 1.0,
    buildings: Annotated[float, Query(ge=0, le=100)] = 1.0,
    walk: Annotated[float, Query(ge=0, le=100)] = 1.0,
) -> list[dict[str, Any]]:
    return area_store.draw(conn, user, grid_id, workers, Weights(households, buildings, walk))


@router.put("/patrol/areas/{area_id}/worker", summary="Assign a worker to a patrol area")
def put_worker(area_id: RowId, body: Assignment, user: User, conn: Conn, now: Now):
    return area_store.assign(conn, user, area_id, body.user_id, now)


@router.get("/patrol/areas/{area_id}/tour", summary="The area's walking tour")
def get_tour(
    area_id: RowId,
    user: User,
    conn: Conn,
    start_building_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> dict[str, Any]:
    area_store.check_visible(conn, user, area_id)
    return tour_store.area_tour(conn, area_id, start_building_id)


@router.post("/visits", status_code=201, summary="Log a visit (Idempotency-Key honoured)")
def post_visit(
    body: NewVisit, user: PeopleUser, conn: Conn, request: Request, now: Now, once: Created
):
    keys = _keys(request)
    return once(user, body.model_dump(), lambda data: visits.record(conn, keys, user, data, now))


@router.get("/visits", summary="A resident's visits (audited)")
def get_visits(
    user: PeopleUser, conn: Conn, request: Request,
    resident_id: Annotated[int, Query(ge=1, le=2**62)],
) -> list[dict[str, Any]]:  # fmt: skip
    return visits.list_visits(conn, _keys(request), user, resident_id)


@router.post("/problems", status_code=201, summary="Report a problem (Idempotency-Key honoured)")
def post_problem(body: NewProblem, user: User, conn: Conn, now: Now, once: Created):
    return once(user, body.model_dump(), lambda data: problems.report(conn, user, data, now))


@router.get("/problems", summary="Problems in your area")
def get_problems(
    user: PeopleUser,
    conn: Conn,
    now: Now,
    status: Status | None = None,
    overdue: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    return problems.list_problems(conn, status, overdue, now, limit)


@router.get("/problems/{problem_id}", summary="One problem and its history")
def get_problem(problem_id: RowId, user: PeopleUser, conn: Conn) -> dict[str, Any]:
    return problems.get(conn, problem_id)


@router.post("/problems/{problem_id}/status", summary="Move a problem along its flow")
def post_status(
    problem_id: RowId, body: StatusChange, user: User, conn: Conn, now: Now
) -> dict[str, Any]:
    return problems.change_status(conn, user, problem_id, body.to, body.note, now)


@router.get("/patrol/jobs", summary="The scheduled jobs' latest passes (admins)")
def get_job_runs(
    user: User, conn: Conn, limit: Annotated[int, Query(ge=1, le=scheduler.MAX_RUNS)] = 50
) -> list[dict[str, Any]]:
    return scheduler.recent_runs(conn, user, limit)


@router.get("/me/reminders", summary="Today's reminders: visits, unseen buildings, deadlines")
def get_reminders(
    user: PeopleUser,
    conn: Conn,
    now: Now,
    unseen_days: Annotated[int, Query(ge=1, le=90)] = reminders.DEFAULT_UNSEEN_DAYS,
    near_days: Annotated[int, Query(ge=0, le=30)] = reminders.DEFAULT_NEAR_DAYS,
) -> dict[str, Any]:
    return reminders.reminders(conn, user, now, unseen_days, near_days)


# --- for the patrol page (api/routes/patrol_page.py, web/static/app/patrol.js) ------------

BATCH_MAX = 500


class CheckinItem(NewCheckin):
    key: str = Field(min_length=1, max_length=200, description="the item's Idempotency-Key")


class CheckinBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[CheckinItem] = Field(min_length=1, max_length=BATCH_MAX)


def _refused(err: GridAtlasError, lang: str) -> dict[str, Any]:
    """An item's refusal as a whole answer would say it: status, kind, English detail and
    the message in the user's language (what the page shows)."""
    kind = type(err).__name__
    if err.key and err.key in i18n.catalogue():
        message = i18n.t(err.key, lang, **err.params)
    else:
        fallback = f"error.{kind}"
        message = i18n.t(fallback if fallback in i18n.catalogue() else "error.GridAtlasError", lang)
    return {"status": status_for(err), "error": kind, "detail": str(err), "message": message}


@router.get("/patrol/workers", summary="The grid workers of your community (to assign areas)")
def get_workers(user: User, conn: Conn) -> list[dict[str, Any]]:
    return mapview.community_workers(conn, user)


@router.post("/patrol/checkins/batch", summary="Sync offline check-ins (a key per item)")
def post_checkin_batch(
    body: CheckinBatch, user: User, conn: Conn, now: Now, request: Request
) -> dict[str, Any]:
    """Each item is created once per key, as ``POST /patrol/checkins`` with that key would
    (the same stored answer either way); a refused item (too far, outside the area) is
    answered in its place and the others are kept. One transaction, a savepoint per item."""
    lang = request_lang(request)
    items = [(item.key.strip(), item.model_dump(exclude={"key"})) for item in body.items]
    results = []
    for entry in checkins.check_in_many(conn, user, items, now):
        if len(entry) == 2:
            key, err = entry
            results.append({"key": key, **_refused(err, lang)})
        else:
            key, status, answer, replayed = entry
            results.append({"key": key, "status": status, "replayed": replayed, "body": answer})
    return {"results": results}
