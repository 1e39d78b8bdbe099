"""OpenAPI links between the editing operations: create → read → update → delete, and the
patrol chains (area → worker → tour; check-in → problem → its flow; Open311 → the problem).

They document how the answers feed the next request (the new row's ``id`` goes in the path,
the ``ETag`` goes in ``If-Match``) and let schemathesis chain the calls in stateful tests
(tests/api/test_fuzz_stateful.py). ``install(app)`` makes ``app.openapi()`` add them.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

ETAG = "$response.header.ETag"

# (collection, item path, path parameter of the item, extra path parameters kept from the request)
RESOURCES = (
    ("/api/residents", "/api/residents/{resident_id}", "resident_id", ()),
    ("/api/ledgers/{ledger}", "/api/ledgers/{ledger}/{entry_id}", "entry_id", ("ledger",)),
    ("/api/facilities", "/api/facilities/{facility_id}", "facility_id", ()),
)
HISTORY = {
    "/api/residents/{resident_id}": "/api/residents/{resident_id}/history",
    "/api/ledgers/{ledger}/{entry_id}": "/api/ledgers/{ledger}/{entry_id}/history",
}


def _op(schema: dict[str, Any], method: str, path: str) -> dict[str, Any] | None:
    return schema.get("paths", {}).get(path, {}).get(method)


def _link(
    target: dict[str, Any], parameters: dict[str, Any], body: Any = None, merge: bool = True
) -> dict[str, Any]:
    link: dict[str, Any] = {"operationId": target["operationId"], "parameters": parameters}
    if body is not None:
        link["requestBody"] = body
        if not merge:  # schemathesis: send this body as it is, not merged into a generated one
            link["x-schemathesis"] = {"merge_body": False}
    return link


def _add(
    schema: dict[str, Any], method: str, path: str, status: str, name: str, link: dict[str, Any]
) -> None:
    op = _op(schema, method, path)
    if op is None:
        return
    response = op.setdefault("responses", {}).setdefault(status, {"description": "OK"})
    response.setdefault("links", {})[name] = link


def add_links(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the links to an OpenAPI document (in place; operations it lacks are skipped)."""
    for collection, item, key, kept in RESOURCES:
        ops = {m: _op(schema, m, item) for m in ("get", "patch", "delete")}
        history = _op(schema, "get", HISTORY[item]) if item in HISTORY else None
        if any(op is None for op in ops.values()):
            continue

        def params(source_id: str, etag: bool, kept=kept, key=key) -> dict[str, str]:
            out = {f"path.{name}": f"$request.path.{name}" for name in kept}
            out[f"path.{key}"] = source_id
            if etag:
                out["header.if-match"] = ETAG
            return out

        new_id, same_id = "$response.body#/id", f"$request.path.{key}"
        targets = [("Get", ops["get"], False), ("Patch", ops["patch"], True)]
        targets += [("Delete", ops["delete"], True)]
        if history is not None:
            targets.append(("History", history, False))
        # create → read, update, delete (the new row's id; the ETag of the create answer)
        for method, path, status, row_id, name in (
            ("post", collection, "201", new_id, "Created"),
            ("get", item, "200", same_id, "Read"),
            ("patch", item, "200", same_id, "Updated"),
        ):
            for verb, target, etag in targets:
                link = _link(target, params(row_id, etag))
                _add(schema, method, path, status, f"{verb}{name}", link)
        # delete → read again (must answer 404)
        _add(schema, "delete", item, "204", "GetDeleted", _link(ops["get"], params(same_id, False)))
        # a listing → one of its rows
        listing = _op(schema, "get", collection)
        if listing is not None:
            _add(
                schema, "get", collection, "200", "GetListed",
                _link(ops["get"], params("$response.body#/items/0/id", False)),
            )  # fmt: skip
        _replay(schema, collection, kept)
    # a new resident → an entry about them in one of the people ledgers
    resident_post = _op(schema, "post", "/api/residents")
    entry_post = _op(schema, "post", "/api/ledgers/{ledger}")
    if resident_post is not None and entry_post is not None:
        _add(
            schema, "post", "/api/residents", "201", "AddToLedger",
            _link(entry_post, {}, {"resident_id": "$response.body#/id"}),
        )  # fmt: skip
    _add_patrol_links(schema)
    return schema


def _replay(schema: dict[str, Any], path: str, kept: tuple[str, ...] = ()) -> None:
    """A creating POST sent again with the same Idempotency-Key and body: the first answer."""
    create = _op(schema, "post", path)
    if create is None or not any(
        p.get("in") == "header" and p.get("name") == "Idempotency-Key"
        for p in create.get("parameters", [])
    ):
        return
    again = {f"path.{name}": f"$request.path.{name}" for name in kept}
    again["header.Idempotency-Key"] = "$request.header.Idempotency-Key"
    _add(schema, "post", path, "201", "Replay", _link(create, again, "$request.body", merge=False))


# Patrols (api/routes/patrol.py) and Open311 (api/routes/open311.py): (from method, from
# path, status, link name, to method, to path, parameters, body merged into a generated one)
PROBLEM = "/api/problems/{problem_id}"
AREA_TOUR = "/api/patrol/areas/{area_id}/tour"
AREA_WORKER = "/api/patrol/areas/{area_id}/worker"
AREAS = "/api/patrol/grids/{grid_id}/areas"
WEEKLY = "/api/patrol/grids/{grid_id}/weekly"
OPEN311_ONE = "/open311/v2/requests/{service_request_id}.json"
NEW_ID, SAME_PROBLEM = "$response.body#/id", "$request.path.problem_id"
PATROL_LINKS: tuple[tuple[str, str, str, str, str, str, dict[str, str], Any], ...] = (
    # a problem: read it, move it along its flow, read it again
    ("post", "/api/problems", "201", "GetCreated", "get", PROBLEM,
     {"path.problem_id": NEW_ID}, None),
    ("post", "/api/problems", "201", "MoveCreated", "post", PROBLEM + "/status",
     {"path.problem_id": NEW_ID}, None),
    ("post", PROBLEM + "/status", "200", "GetMoved", "get", PROBLEM,
     {"path.problem_id": SAME_PROBLEM}, None),
    ("post", PROBLEM + "/status", "200", "MoveAgain", "post", PROBLEM + "/status",
     {"path.problem_id": SAME_PROBLEM}, None),
    ("get", "/api/problems", "200", "GetListed", "get", PROBLEM,
     {"path.problem_id": "$response.body#/0/id"}, None),
    ("get", "/api/problems", "200", "MoveListed", "post", PROBLEM + "/status",
     {"path.problem_id": "$response.body#/0/id"}, None),
    # a check-in → a problem reported at the same building
    ("post", "/api/patrol/checkins", "201", "ReportHere", "post", "/api/problems", {},
     {"building_id": "$response.body#/building_id"}),
    # a check-in synced again in a batch (same key: the same answer); today's reminders
    ("post", "/api/patrol/checkins", "201", "SyncAgain", "post", "/api/patrol/checkins/batch",
     {}, {"items": [{"key": "$request.header.Idempotency-Key",
                     "building_id": "$response.body#/building_id"}]}),
    ("post", "/api/patrol/checkins", "201", "Reminders", "get", "/api/me/reminders", {}, None),
    ("post", "/api/problems", "201", "Reminders", "get", "/api/me/reminders", {}, None),
    # the problems listed → the scheduled passes that escalated them (admins)
    ("get", "/api/problems", "200", "JobRuns", "get", "/api/patrol/jobs", {}, None),
    # drawn areas → the workers to pick from, the first assigned, its tour, the grid's week
    ("post", AREAS, "201", "Workers", "get", "/api/patrol/workers", {}, None),
    ("post", AREAS, "201", "AssignDrawn", "put", AREA_WORKER,
     {"path.area_id": "$response.body#/0/id"}, None),
    ("post", AREAS, "201", "TourDrawn", "get", AREA_TOUR,
     {"path.area_id": "$response.body#/0/id"}, None),
    ("post", AREAS, "201", "WeekOfGrid", "get", WEEKLY,
     {"path.grid_id": "$request.path.grid_id"}, None),
    ("put", AREA_WORKER, "200", "TourAssigned", "get", AREA_TOUR,
     {"path.area_id": "$request.path.area_id"}, None),
    # a visit → the resident's visits
    ("post", "/api/visits", "201", "ListVisits", "get", "/api/visits",
     {"query.resident_id": "$response.body#/resident_id"}, None),
    # Open311: a new request → it, and the same problem in our own API
    ("post", "/open311/v2/requests.json", "201", "GetCreated", "get", OPEN311_ONE,
     {"path.service_request_id": "$response.body#/0/service_request_id"}, None),
    ("post", "/open311/v2/requests.json", "201", "GetProblem", "get", PROBLEM,
     {"path.problem_id": "$response.body#/0/service_request_id"}, None),
    ("get", "/open311/v2/requests.json", "200", "GetListed", "get", OPEN311_ONE,
     {"path.service_request_id": "$response.body#/0/service_request_id"}, None),
    ("get", "/open311/v2/services.json", "200", "GetService", "get",
     "/open311/v2/services/{service_code}.json",
     {"path.service_code": "$response.body#/0/service_code"}, None),
)  # fmt: skip


def _add_patrol_links(schema: dict[str, Any]) -> None:
    for method, path, status, name, to_method, to_path, parameters, body in PATROL_LINKS:
        target = _op(schema, to_method, to_path)
        if target is not None:
            _add(schema, method, path, status, name, _link(target, parameters, body))
    for path in ("/api/patrol/checkins", "/api/visits", "/api/problems",
                 "/open311/v2/requests.json"):  # fmt: skip
        _replay(schema, path)


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` (and /openapi.json) include the links; twice is harmless."""
    if getattr(app.openapi, "_with_links", False):
        return
    plain = app.openapi  # FastAPI's: builds the document once and keeps it in app.openapi_schema
    done: list[int] = []

    def openapi() -> dict[str, Any]:
        schema = plain()
        if id(schema) not in done:
            add_links(schema)
            done.append(id(schema))
        return schema

    openapi._with_links = True  # type: ignore[attr-defined]
    app.openapi = openapi  # type: ignore[method-assign]
