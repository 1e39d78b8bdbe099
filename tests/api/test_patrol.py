"""Patrols over HTTP: check-ins (near, far, synced thrice), problems' flow, visits and
reminders at a fixed clock, scope (404 outside it), patrol areas stored and assigned."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from api.routes.patrol import clock
from gis import db
from gis.patrol import problems

NOW = dt.datetime(2026, 12, 3, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


@pytest.fixture
def fixed(api):
    client, info, url = api
    client.client.app.dependency_overrides[clock] = lambda: NOW
    eng = db.create_engine(url, poolclass=sa.NullPool)
    yield client, info, eng
    eng.dispose()


def _point(eng, building_id: int, metres_east: float = 0.0) -> tuple[float, float]:
    """A point inside the building, moved east by ``metres_east``."""
    with eng.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_Project(ST_PointOnSurface(geom)"
                "::geography, :d, radians(90))::geometry AS p FROM building WHERE id = :b) q"
            ),
            {"b": building_id, "d": metres_east},
        ).one()
    return float(row[0]), float(row[1])


def _count(eng, sql: str, **params) -> int:
    with eng.connect() as conn:
        return int(conn.scalar(sa.text(sql), params))


def test_gps_checkin_near_is_kept_far_is_refused_with_the_distance(fixed) -> None:
    api, info, eng = fixed
    b = info.buildings["a1"][0]
    lon, lat = _point(eng, b)
    ok = api.post("worker_a1", "/api/patrol/checkins",
                  json={"building_id": b, "method": "gps", "lon": lon, "lat": lat,
                        "accuracy_m": 10})  # fmt: skip
    assert ok.status_code == 201, ok.text
    assert ok.json()["distance_m"] == 0.0
    lon, lat = _point(eng, b, 400)
    far = api.post("worker_a1", "/api/patrol/checkins",
                   json={"building_id": b, "method": "gps", "lon": lon, "lat": lat,
                         "accuracy_m": 20}, headers={"Accept-Language": "en"})  # fmt: skip
    assert far.status_code == 422
    body = far.json()
    assert "m from the building" in body["detail"] and "±20 m" in body["message"]
    distance = int(body["message"].split("You are ")[1].split(" m")[0])
    assert 370 <= distance <= 400  # from the footprint's edge, not its inside point
    vague = api.post("worker_a1", "/api/patrol/checkins",
                     json={"building_id": b, "method": "gps", "lon": lon, "lat": lat,
                           "accuracy_m": 500})  # fmt: skip
    assert vague.status_code == 422 and "精度" in vague.json()["message"]
    assert _count(eng, "SELECT count(*) FROM patrol_checkin") == 1


def test_a_sync_sent_three_times_creates_one_set_of_rows(fixed) -> None:
    api, info, eng = fixed
    queue = [
        ({"building_id": b, "at": (NOW - dt.timedelta(hours=h)).isoformat()}, f"chk-{b}-{h}")
        for h, b in enumerate(info.buildings["a1"])
    ]
    for _ in range(3):
        for body, key in queue:
            r = api.post("worker_a1", "/api/patrol/checkins", json=body,
                         headers={"Idempotency-Key": key})  # fmt: skip
            assert r.status_code == 201, r.text
    assert _count(eng, "SELECT count(*) FROM patrol_checkin") == len(queue)
    # a key used again for another record is refused, not silently answered
    again = api.post("worker_a1", "/api/patrol/checkins",
                     json={"building_id": info.buildings["a1"][1]},
                     headers={"Idempotency-Key": queue[0][1]})  # fmt: skip
    assert again.status_code == 422


def test_checkins_outside_the_area_or_in_the_future_are_refused(fixed) -> None:
    api, info, _ = fixed
    other = api.post("worker_a1", "/api/patrol/checkins",
                     json={"building_id": info.buildings["a2"][0]})  # fmt: skip
    assert other.status_code == 404
    future = api.post("worker_a1", "/api/patrol/checkins",
                      json={"building_id": info.buildings["a1"][0],
                            "at": (NOW + dt.timedelta(hours=2)).isoformat()})  # fmt: skip
    assert future.status_code == 422
    leader = api.post("leader_a1", "/api/patrol/checkins",
                      json={"building_id": info.buildings["a1"][0]})  # fmt: skip
    assert leader.status_code == 403


def _report(api, info, **extra):
    r = api.post("worker_a1", "/api/problems",
                 json={"category": "ebike_charging", "description": "楼道内充电",
                       "building_id": info.buildings["a1"][0], **extra})  # fmt: skip
    assert r.status_code == 201, r.text
    return r.json()


def test_problem_flow_allows_only_its_transitions_and_records_each(fixed) -> None:
    api, info, eng = fixed
    pid = _report(api, info)["id"]

    def move(user: str, to: str):
        return api.post(user, f"/api/problems/{pid}/status", json={"to": to, "note": "ok"})

    # every forbidden transition from every status is refused, and changes nothing
    path = ["accepted", "in_progress", "resolved", "verified", "closed"]
    users = {"accepted": "worker_a1", "in_progress": "worker_a1", "resolved": "worker_a1",
             "verified": "staff_a", "closed": "staff_a"}  # fmt: skip
    status = "reported"
    for nxt in path:
        for to in problems.STATUSES:
            if to not in problems.TRANSITIONS[status]:
                r = move("staff_a", to)
                assert r.status_code == 409, (status, to, r.text)
        if nxt == "verified":
            own = move("worker_a1", "verified")
            assert own.status_code == 403  # the resolver cannot verify their own work
        r = move(users[nxt], nxt)
        assert r.status_code == 200, r.text
        status = nxt
    done = api.get("worker_a1", f"/api/problems/{pid}").json()
    assert done["status"] == "closed"
    assert done["resolved_by"] == info.users["worker_a1"]
    assert done["verified_by"] == info.users["staff_a"]
    assert [(e["from_status"], e["to_status"]) for e in done["events"]] == list(
        zip([None, "reported", *path[:-1]], ["reported", *path], strict=True)
    )
    assert move("staff_a", "reported").status_code == 409  # closed is final
    # the database itself refuses a verification by the resolver
    with pytest.raises(sa.exc.IntegrityError), eng.begin() as conn:
        conn.execute(sa.text("UPDATE problem SET verified_by = resolved_by WHERE id = :p"),
                     {"p": pid})  # fmt: skip


def test_time_limited_problems_need_a_deadline_and_show_when_near(fixed) -> None:
    api, info, _ = fixed
    bad = api.post("worker_a1", "/api/problems",
                   json={"category": "lift", "description": "电梯停运", "handling": "time_limited",
                         "building_id": info.buildings["a1"][0]})  # fmt: skip
    assert bad.status_code == 422
    soon = _report(api, info, handling="time_limited",
                   deadline=(NOW + dt.timedelta(days=1)).isoformat())  # fmt: skip
    _report(api, info, handling="time_limited", deadline=(NOW + dt.timedelta(days=9)).isoformat())
    due = api.get("worker_a1", "/api/me/reminders").json()["problems_due"]
    assert [p["problem_id"] for p in due] == [soon["id"]] and not due[0]["is_overdue"]
    later = NOW + dt.timedelta(days=3)
    api.client.app.dependency_overrides[clock] = lambda: later
    due = api.get("worker_a1", "/api/me/reminders").json()["problems_due"]
    assert {p["problem_id"]: p["is_overdue"] for p in due}[soon["id"]] is True
    overdue = api.get("worker_a1", "/api/problems", params={"overdue": "true"}).json()
    assert [p["id"] for p in overdue] == [soon["id"]]


def test_a_worker_cannot_read_another_grids_problems_or_visits(fixed) -> None:
    api, info, eng = fixed
    pid = _report(api, info)["id"]
    assert api.get("worker_a1", f"/api/problems/{pid}").status_code == 200
    assert api.get("staff_b", f"/api/problems/{pid}").status_code == 404
    assert api.get("staff_b", f"/api/problems/{pid + 999}").status_code == 404
    assert api.get("staff_b", "/api/problems").json() == []
    moved = api.post("staff_b", f"/api/problems/{pid}/status", json={"to": "accepted"})
    assert moved.status_code == 404
    rid = info.residents["a2"][0]
    assert api.get("worker_a1", "/api/visits", params={"resident_id": rid}).status_code == 404


def _entry(eng, residents: list[int]) -> tuple[int, str]:
    with eng.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT resident_id, 'special_group:' || category FROM special_group "
                "WHERE resident_id = ANY(:r) ORDER BY resident_id, category LIMIT 1"
            ),
            {"r": residents},
        ).first()
    assert row is not None, "the synthetic residents of A1 include a special group"
    return int(row[0]), str(row[1])


def test_visit_frequencies_give_the_reminders_at_a_fixed_clock(fixed) -> None:
    api, info, eng = fixed
    rid, category = _entry(eng, info.residents["a1"])
    days = _count(eng, "SELECT days FROM visit_frequency WHERE category = :c", c=category)

    def due() -> list[dict]:
        items = api.get("worker_a1", "/api/me/reminders").json()["visits_due"]
        return [v for v in items if (v["resident_id"], v["category"]) == (rid, category)]

    never = due()
    assert len(never) == 1 and never[0]["last_visit_at"] is None
    visited = NOW - dt.timedelta(days=2)  # offline records up to a week old are taken
    r = api.post("worker_a1", "/api/visits",
                 json={"resident_id": rid, "category": category, "note": "王阿姨身体尚好",
                       "at": visited.isoformat()})  # fmt: skip
    assert r.status_code == 201, r.text
    assert due() == []  # every frequency is a week or more
    api.client.app.dependency_overrides[clock] = lambda: visited + dt.timedelta(days=days - 1)
    assert due() == []  # due tomorrow
    api.client.app.dependency_overrides[clock] = lambda: visited + dt.timedelta(days=days + 2)
    (late,) = due()
    assert late["overdue_days"] == 2 and late["every_days"] == days
    # the note is sealed at rest and opened for those who may see the resident
    with eng.connect() as conn:
        raw = conn.scalar(sa.text("SELECT note_enc FROM visit"))
    assert "王阿姨".encode() not in bytes(raw)
    listed = api.get("worker_a1", "/api/visits", params={"resident_id": rid}).json()
    assert listed[0]["note"] == "王阿姨身体尚好"
    wrong = api.post(
        "worker_a1",
        "/api/visits",
        json={"resident_id": info.residents["a2"][0], "category": category},
    )
    assert wrong.status_code == 404


def test_unseen_buildings_are_those_of_the_worker_area_not_checked_in_lately(fixed) -> None:
    api, info, eng = fixed
    seen = info.buildings["a1"][0]
    api.post(
        "worker_a1",
        "/api/patrol/checkins",
        json={"building_id": seen, "at": (NOW - dt.timedelta(days=1)).isoformat()},
    )
    unseen = {b["building_id"] for b in
              api.get("worker_a1", "/api/me/reminders").json()["buildings_unseen"]}  # fmt: skip
    in_grid = _count(eng, "SELECT count(*) FROM building_path WHERE grid_id = :g", g=info.grid_a1)
    assert seen not in unseen and len(unseen) == in_grid - 1
    assert info.buildings["a2"][0] not in unseen


def test_areas_are_drawn_stored_and_assigned_one_worker_at_a_time(fixed) -> None:
    api, info, eng = fixed
    r = api.post("staff_a", f"/api/patrol/grids/{info.grid_a1}/areas", params={"workers": 3})
    assert r.status_code == 201, r.text
    areas = r.json()
    with eng.connect() as conn:
        members = (
            conn.execute(
                sa.text(
                    "SELECT ab.building_id FROM patrol_area_building ab JOIN patrol_area a "
                    "ON a.id = ab.area_id WHERE a.grid_id = :g"
                ),
                {"g": info.grid_a1},
            )
            .scalars()
            .all()
        )
        in_grid = set(conn.execute(sa.text(
            "SELECT building_id FROM building_path WHERE grid_id = :g"),
            {"g": info.grid_a1}).scalars())  # fmt: skip
        valid = conn.scalar(sa.text(
            "SELECT bool_and(ST_IsValid(geom)) FROM patrol_area WHERE grid_id = :g"),
            {"g": info.grid_a1})  # fmt: skip
    assert len(areas) == 3 and sorted(members) == sorted(in_grid) and valid
    assert api.post("worker_a1", f"/api/patrol/grids/{info.grid_a1}/areas").status_code == 403
    area = areas[0]["id"]
    worker = info.users["worker_a1"]
    first = api.put("staff_a", f"/api/patrol/areas/{area}/worker", json={"user_id": worker})
    assert first.status_code == 200, first.text
    second = api.put("staff_a", f"/api/patrol/areas/{area}/worker", json={"user_id": worker})
    assert second.status_code == 200
    assert _count(eng, "SELECT count(*) FROM patrol_assignment WHERE area_id = :a "
                       "AND ends_at IS NULL", a=area) == 1  # fmt: skip
    staff = api.put("staff_a", f"/api/patrol/areas/{area}/worker",
                    json={"user_id": info.users["staff_a"]})  # fmt: skip
    assert staff.status_code == 422
    # the worker's unseen buildings are now those of their area only
    unseen = api.get("worker_a1", "/api/me/reminders").json()["buildings_unseen"]
    assert len(unseen) == areas[0]["buildings"]
    tour = api.get("worker_a1", f"/api/patrol/areas/{area}/tour")
    assert tour.status_code == 200, tour.text
    t = tour.json()
    visited = [s["building_id"] for s in t["stops"]] + (
        [t["start"]["id"]] if t["start"]["kind"] == "building" else [])  # fmt: skip
    assert sorted(visited + t["unreachable"]) == sorted(
        b for b in members if b in set(visited) | set(t["unreachable"])
    )
    assert len(visited) + len(t["unreachable"]) == areas[0]["buildings"]
    # an area may be one building (the split balances households and walking): no stop then
    walked = t["stops"][-1]["cum_m"] if t["stops"] else 0
    assert abs(sum(s["leg_m"] for s in t["stops"]) - walked) < 1
    assert t["length_m"] >= walked
    # another area's tour: not the worker's (404, as for none); other communities' staff too
    assert api.get("worker_a1", f"/api/patrol/areas/{areas[1]['id']}/tour").status_code == 404
    assert api.get("staff_b", f"/api/patrol/areas/{area}/tour").status_code == 404
    assert api.get("staff_a", f"/api/patrol/areas/{areas[1]['id']}/tour").status_code == 200


def test_a_batched_sync_is_the_same_as_one_post_per_record(fixed) -> None:
    """The offline queue's batches: each item once per key (also twice in one batch, and
    after single POSTs with the same keys); refusals answered in place, the rest kept."""
    api, info, eng = fixed
    a1, a2 = info.buildings["a1"], info.buildings["a2"]
    lon, lat = _point(eng, a1[0], 400)
    items = [
        {"key": f"b-{i}", "building_id": b, "at": (NOW - dt.timedelta(minutes=i)).isoformat()}
        for i, b in enumerate(a1)
    ]
    single = api.post("worker_a1", "/api/patrol/checkins",
                      json={k: v for k, v in items[0].items() if k != "key"},
                      headers={"Idempotency-Key": items[0]["key"]})  # fmt: skip
    assert single.status_code == 201
    extra = [
        items[1],  # the same key twice in one batch
        {"key": "b-out", "building_id": a2[0]},  # outside the worker's grid
        {"key": "b-far", "building_id": a1[0], "method": "gps", "lon": lon, "lat": lat,
         "accuracy_m": 20},  # 400 m away
        {"key": "b-0", "building_id": a1[1]},  # a used key with another body
    ]  # fmt: skip
    for round_ in range(3):
        r = api.post("worker_a1", "/api/patrol/checkins/batch", json={"items": items + extra})
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        assert [x["status"] for x in results[: len(items)]] == [201] * len(items)
        assert results[0]["replayed"] and results[0]["body"]["id"] == single.json()["id"]
        assert all(x["replayed"] for x in results[1 : len(items)]) == (round_ > 0)
        twice = results[len(items)]
        assert twice["status"] == 201 and twice["body"] == results[1]["body"]
        assert [x["status"] for x in results[len(items) + 1 :]] == [404, 422, 422]
        assert "米" in results[len(items) + 2]["message"]
    assert _count(eng, "SELECT count(*) FROM patrol_checkin") == len(items)
    ids = {x["body"]["id"] for x in results[: len(items)]}
    with eng.connect() as conn:
        stored = dict(conn.execute(sa.text("SELECT id, building_id FROM patrol_checkin")).all())
    assert ids == set(stored)
    assert {stored[x["body"]["id"]] for x in results[: len(items)]} == set(a1)


def test_the_visits_due_are_every_ledger_entry_in_scope_and_key_persons_not_for_leaders(
    fixed,
) -> None:
    # Compared with the ledgers read as the owner (no row-level security): every special
    # group and key-person entry of a resident in the worker's grid, none from outside it;
    # a building leader gets their building's special groups, never its key persons.
    api, info, eng = fixed
    leader_building = info.buildings["a1"][0]
    with eng.begin() as conn:  # a key person inside A1 (the leader's building), one in A2
        for rid in (
            conn.scalar(
                sa.text("SELECT min(id) FROM resident WHERE building_id = :b"),
                {"b": leader_building},
            ),  # fmt: skip
            info.residents["a2"][0],
        ):
            conn.execute(
                sa.text("INSERT INTO key_person (resident_id, category) VALUES (:r, 'other') "
                        "ON CONFLICT DO NOTHING"), {"r": rid},
            )  # fmt: skip
    entries = (
        "SELECT e.resident_id, e.category FROM (SELECT resident_id, 'special_group:' || "
        "category AS category FROM special_group UNION ALL SELECT resident_id, "
        "'key_person:' || category FROM key_person) e JOIN resident r ON r.id = e.resident_id "
        "JOIN building_path p ON p.building_id = r.building_id WHERE {where}"
    )
    with eng.connect() as conn:
        in_grid = {tuple(r) for r in conn.execute(
            sa.text(entries.format(where="p.grid_id = :g")), {"g": info.grid_a1})}  # fmt: skip
        in_building = {tuple(r) for r in conn.execute(
            sa.text(entries.format(where="r.building_id = :b AND e.category LIKE 'special%'")),
            {"b": leader_building})}  # fmt: skip

    def due(user: str) -> set[tuple[int, str]]:
        r = api.get(user, "/api/me/reminders")
        assert r.status_code == 200, r.text
        return {(v["resident_id"], v["category"]) for v in r.json()["visits_due"]}

    worker = due("worker_a1")
    assert worker == in_grid  # nothing visited yet: every entry is due
    assert any(c.startswith("key_person:") for _, c in worker)
    assert any(c.startswith("special_group:") for _, c in worker)
    assert due("leader_a1") == in_building
