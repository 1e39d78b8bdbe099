"""Open311 GeoReport v2, with requests shaped as the specification's examples."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from api.routes.patrol import clock
from gis import db, open311
from gis.errors import InvalidInput

NOW = dt.datetime(2026, 12, 3, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
SERVICE_FIELDS = {"service_code", "service_name", "description", "metadata", "type",
                  "keywords", "group"}  # fmt: skip
REQUEST_FIELDS = {
    "service_request_id", "status", "status_notes", "service_name", "service_code",
    "description", "agency_responsible", "service_notice", "requested_datetime",
    "updated_datetime", "expected_datetime", "address", "address_id", "zipcode", "lat",
    "long", "media_url",
}  # fmt: skip
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def o311(api):
    client, info, url = api
    client.client.app.dependency_overrides[clock] = lambda: NOW
    eng = db.create_engine(url, poolclass=sa.NullPool)
    with eng.connect() as conn:
        lon, lat = conn.execute(
            sa.text("SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) AS p "
                    "FROM building WHERE id = :b) q"), {"b": info.buildings["a1"][0]},
        ).one()  # fmt: skip
    eng.dispose()
    return client, info, (lon, lat)


def _post(client, token: str, lon: float, lat: float, **extra) -> object:
    # the spec's example POST, with our codes and a place in the worker's grid
    body = {
        "api_key": token, "service_code": "ebike_charging", "lat": str(lat),
        "long": str(lon), "address_string": "1234 5th street", "email": "smit222@sfgov.edu",
        "device_id": "tt222111", "account_id": "123456", "first_name": "john",
        "last_name": "smith", "phone": "111111111", "description": "楼道内电动车充电",
        "media_url": "http://farm3.static.flickr.com/2002/2212426634_5ed477a060.jpg",
        **extra,
    }  # fmt: skip
    return client.client.post("/open311/v2/requests.json", data=body, headers=FORM)


def test_services_are_public_and_shaped_as_the_spec(o311) -> None:
    client, _, _ = o311
    r = client.client.get("/open311/v2/services.json", headers={"Accept-Language": "en"})
    assert r.status_code == 200
    services = r.json()
    assert {s["service_code"] for s in services} >= {"parking", "ebike_charging", "lift"}
    assert all(set(s) == SERVICE_FIELDS for s in services)
    charging = next(s for s in services if s["service_code"] == "ebike_charging")
    assert charging["service_name"] == "E-bike charging" and charging["metadata"] is True
    assert charging["type"] == "realtime"
    zh = client.client.get("/open311/v2/services.json", headers={"Accept-Language": "zh"})
    assert next(s for s in zh.json() if s["service_code"] == "lift")["service_name"] == "电梯"

    d = client.client.get("/open311/v2/services/ebike_charging.json").json()
    assert d["service_code"] == "ebike_charging"
    for a in d["attributes"]:
        assert {"variable", "code", "datatype", "required", "datatype_description", "order",
                "description"} <= set(a)  # fmt: skip
    handling = next(a for a in d["attributes"] if a["code"] == "handling")
    assert handling["datatype"] == "singlevaluelist"
    assert [v["key"] for v in handling["values"]] == ["immediate", "joint", "time_limited"]
    missing = client.client.get("/open311/v2/services/033.json")
    assert missing.status_code == 404
    assert set(missing.json()[0]) == {"code", "description"} and missing.json()[0]["code"] == 404


def test_requests_need_a_login_and_are_never_read_anonymously(o311) -> None:
    client, _, (lon, lat) = o311
    r = client.client.get("/open311/v2/requests.json")
    assert r.status_code == 401 and r.json()[0]["code"] == 401
    assert client.client.get("/open311/v2/requests/1.json").status_code == 401
    assert _post(client, "not-a-token", lon, lat).status_code == 401


def test_post_then_get_as_the_spec_examples(o311) -> None:
    client, info, (lon, lat) = o311
    token = client.as_("worker_a1")["Authorization"].split(" ", 1)[1]
    client.client.cookies.clear()  # the api_key alone identifies the client
    deadline = (NOW + dt.timedelta(days=2)).isoformat()
    r = _post(client, token, lon, lat, **{"attribute[handling]": "time_limited",
                                         "attribute[deadline]": deadline})  # fmt: skip
    assert r.status_code == 201, r.text
    (answer,) = r.json()
    assert set(answer) == {"service_request_id", "service_notice", "account_id"}
    rid = answer["service_request_id"]

    # the spec's example query: requests.json?start_date=…&end_date=…&status=open
    q = ("/open311/v2/requests.json?start_date=2026-12-01T00:00:00Z"
         "&end_date=2026-12-31T00:00:00Z&status=open")  # fmt: skip
    listed = client.get("worker_a1", q)
    assert listed.status_code == 200, listed.text
    (req,) = [x for x in listed.json() if x["service_request_id"] == rid]
    assert set(req) == REQUEST_FIELDS
    assert req["status"] == "open" and req["service_code"] == "ebike_charging"
    assert req["description"] == "楼道内电动车充电"
    assert req["address_id"] == str(info.buildings["a1"][0])
    assert abs(req["lat"] - lat) < 1e-9 and abs(req["long"] - lon) < 1e-9
    assert req["requested_datetime"] == "2026-12-03T09:00:00+08:00"
    assert req["expected_datetime"] == "2026-12-05T09:00:00+08:00"
    assert req["media_url"] is None
    flat = str(listed.json())
    for personal in ("john", "smith", "111111111", "smit222", "worker_a1"):
        assert personal not in flat  # the reporter is never named, contact fields not kept

    one = client.get("worker_a1", f"/open311/v2/requests/{rid}.json")
    assert one.status_code == 200 and one.json() == [req]
    by_id = client.get("worker_a1", f"/open311/v2/requests.json?service_request_id={rid},999999")
    assert [x["service_request_id"] for x in by_id.json()] == [rid]
    other = client.get("worker_a1", "/open311/v2/requests.json?service_code=parking")
    assert rid not in {x["service_request_id"] for x in other.json()}

    # our statuses map onto open/closed; status_notes is the latest note
    for user, to in (("worker_a1", "accepted"), ("worker_a1", "resolved"),
                     ("staff_a", "verified"), ("staff_a", "closed")):  # fmt: skip
        ok = client.post(user, f"/api/problems/{rid}/status", json={"to": to, "note": f"{to}了"})
        assert ok.status_code == 200, ok.text
    closed = client.get("staff_a", "/open311/v2/requests.json?status=closed").json()
    (req,) = [x for x in closed if x["service_request_id"] == rid]
    assert req["status"] == "closed" and req["status_notes"] == "closed了"
    assert rid not in {
        x["service_request_id"]
        for x in client.get("staff_a", "/open311/v2/requests.json?status=open").json()
    }


def test_requests_outside_the_scope_are_404_and_bad_queries_400(o311) -> None:
    client, _, (lon, lat) = o311
    token = client.as_("worker_a1")["Authorization"].split(" ", 1)[1]
    rid = _post(client, token, lon, lat).json()[0]["service_request_id"]
    assert client.get("staff_b", f"/open311/v2/requests/{rid}.json").status_code == 404
    assert rid not in {
        x["service_request_id"] for x in client.get("staff_b", "/open311/v2/requests.json").json()
    }
    missing = client.get("staff_b", "/open311/v2/requests/999999.json")
    assert missing.status_code == 404 and missing.json()[0]["code"] == 404
    for q in ("status=pending", "service_code=nope", "start_date=yesterday",
              "service_request_id=a,b"):  # fmt: skip
        r = client.get("worker_a1", f"/open311/v2/requests.json?{q}")
        assert r.status_code == 400 and r.json()[0]["code"] == 400, q
    no_code = client.client.post("/open311/v2/requests.json",
                                 data={"api_key": token, "lat": lat, "long": lon},
                                 headers=FORM)  # fmt: skip
    assert no_code.status_code == 400 and no_code.json()[0]["code"] == 400
    far = _post(client, token, lon + 0.05, lat)
    assert far.status_code == 404  # no building of the worker's area near that point


def test_a_post_retried_with_its_idempotency_key_creates_one_problem(o311) -> None:
    client, _, (lon, lat) = o311
    token = client.as_("worker_a1")["Authorization"].split(" ", 1)[1]
    form = {"api_key": token, "service_code": "lift", "lat": str(lat), "long": str(lon),
            "description": "电梯停运"}  # fmt: skip
    headers = {**FORM, "Idempotency-Key": "o311-sync-1"}
    sent = [client.client.post("/open311/v2/requests.json", data=form, headers=headers)
            for _ in range(3)]  # fmt: skip
    assert [r.status_code for r in sent] == [201] * 3
    assert len({r.json()[0]["service_request_id"] for r in sent}) == 1
    assert [r.headers.get("Idempotent-Replayed") for r in sent] == [None, "true", "true"]
    mine = client.get("worker_a1", "/api/problems").json()
    assert [p["description"] for p in mine].count("电梯停运") == 1
    # the same key for another request is refused (400, the spec's shape), nothing created
    other = client.client.post("/open311/v2/requests.json",
                               data={**form, "description": "另一处"}, headers=headers)  # fmt: skip
    assert other.status_code == 400 and other.json()[0]["code"] == 400
    assert len(client.get("worker_a1", "/api/problems").json()) == len(mine)


def test_a_refused_post_leaves_no_key_behind_and_its_retry_is_refused_again(o311) -> None:
    # Found by the stateful fuzz: Open311 answers errors in the spec's shape, so the request's
    # transaction commits; the key's claim was kept without an answer, and the retry crashed.
    client, _, (lon, lat) = o311
    token = client.as_("worker_a1")["Authorization"].split(" ", 1)[1]
    form = {"api_key": token, "service_code": "lift", "lat": str(lat), "long": str(lon),
            "description": "电梯\x00停运"}  # fmt: skip
    headers = {**FORM, "Idempotency-Key": "o311-refused-1"}
    sent = [client.client.post("/open311/v2/requests.json", data=form, headers=headers)
            for _ in range(2)]  # fmt: skip
    assert [r.status_code for r in sent] == [400, 400]
    assert all(r.json()[0]["code"] == 400 for r in sent)
    again = {**form, "description": "电梯停运了"}
    fixed = client.client.post("/open311/v2/requests.json", data=again, headers=headers)
    assert fixed.status_code == 201  # the key was not used up by the refused attempts


def test_a_refused_request_rolls_back_what_it_wrote_before_refusing(o311, api, monkeypatch) -> None:
    # A refusal after the problem row was written (here: the answer cannot be shaped) must
    # leave nothing: Open311 errors are shaped by the app's handlers, so get_conn rolls the
    # request's transaction back as for any other refusal (it used to commit it).
    client, _, (lon, lat) = o311
    token = client.as_("worker_a1")["Authorization"].split(" ", 1)[1]
    eng = db.create_engine(api[2], poolclass=sa.NullPool)
    count = sa.text("SELECT count(*) FROM problem WHERE description = :d")

    def refuse(problem, lang):
        assert problem["id"]  # the problem and its event were written
        raise InvalidInput("refused after writing", key="patrol.deadline")

    monkeypatch.setattr(open311, "post_answer", refuse)
    r = _post(client, token, lon, lat, description="写了又拒绝")
    assert r.status_code == 400, r.text
    (err,) = r.json()
    assert err["code"] == 400 and err["description"]
    with eng.connect() as conn:
        assert conn.scalar(count, {"d": "写了又拒绝"}) == 0
        assert conn.scalar(sa.text("SELECT count(*) FROM problem_event e JOIN problem p ON "
                                   "p.id = e.problem_id WHERE p.description = :d"),
                           {"d": "写了又拒绝"}) == 0  # fmt: skip
    monkeypatch.undo()
    ok = _post(client, token, lon, lat, description="写了又拒绝")
    assert ok.status_code == 201, ok.text
    with eng.connect() as conn:
        assert conn.scalar(count, {"d": "写了又拒绝"}) == 1  # the check sees committed rows
    eng.dispose()


def test_errors_keep_the_spec_shape_for_browsers_and_unknown_addresses(o311) -> None:
    client, _, _ = o311
    page = client.client.get("/open311/v2/services/033.json", headers={"Accept": "text/html"})
    assert page.status_code == 404 and page.headers["content-type"].startswith("application/json")
    assert page.json()[0]["code"] == 404
    nowhere = client.client.get("/open311/v2/nowhere.json")
    assert nowhere.status_code == 404 and nowhere.json()[0]["code"] == 404
    anon = client.client.get("/open311/v2/requests.json")
    assert anon.status_code == 401 and anon.headers["www-authenticate"] == "Bearer"
