"""A grid's weekly summary at a fixed clock: coverage, problems opened, closed, overdue."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from api.routes.patrol import clock
from gis import db
from gis.patrol.escalate import escalate_overdue
from gis.patrol.weekly import week_bounds
from tests.api.conftest import api, people, people_template  # noqa: F401 (fixtures)

CST = dt.timezone(dt.timedelta(hours=8))
W48 = dt.datetime(2026, 11, 27, 10, 0, tzinfo=CST)  # a Friday of 2026-W48
W49 = dt.datetime(2026, 12, 3, 9, 0, tzinfo=CST)  # a Thursday of 2026-W49
AFTER = dt.datetime(2026, 12, 8, 10, 0, tzinfo=CST)  # W49 is over


def test_week_bounds_are_iso_weeks_in_china_time() -> None:
    label, start, end = week_bounds("2026-W49", W49)
    assert label == "2026-W49"
    assert start == dt.datetime(2026, 11, 30, tzinfo=CST) and end - start == dt.timedelta(7)
    assert week_bounds(None, dt.datetime(2026, 11, 29, 17, 0, tzinfo=dt.UTC))[0] == "2026-W49"


def test_weekly_summary_counts_coverage_and_problems(api) -> None:  # noqa: F811
    client, info, url = api
    app = client.client.app
    a1 = info.buildings["a1"]

    def at(t: dt.datetime) -> None:
        app.dependency_overrides[clock] = lambda: t

    def post(user: str, path: str, body: dict) -> dict:
        r = client.post(user, path, json=body)
        assert r.status_code in (200, 201), r.text
        return r.json()

    def report(**extra) -> int:
        body = {"category": "parking", "description": "占用消防通道", "building_id": a1[0]}
        return post("worker_a1", "/api/problems", {**body, **extra})["id"]

    at(W48)
    report()  # open through both weeks
    report(handling="time_limited", deadline="2026-12-01T18:00:00+08:00")  # overdue in W49
    at(W49)
    for b in (a1[0], a1[0], a1[1]):
        post("worker_a1", "/api/patrol/checkins", {"building_id": b})
    closed = report()
    report(handling="joint")
    for user, to in (("worker_a1", "accepted"), ("worker_a1", "resolved"),
                     ("staff_a", "verified"), ("staff_a", "closed")):  # fmt: skip
        post(user, f"/api/problems/{closed}/status", {"to": to})
    eng = db.create_engine(url, poolclass=sa.NullPool)
    with eng.begin() as conn:
        assert len(escalate_overdue(conn, W49)["escalated"]) == 1
        grid_buildings = conn.scalar(
            sa.text("SELECT count(*) FROM building_path WHERE grid_id = :g"), {"g": info.grid_a1}
        )
    eng.dispose()

    at(AFTER)
    week = client.get("worker_a1", f"/api/patrol/grids/{info.grid_a1}/weekly?week=2026-W49")
    assert week.status_code == 200, week.text
    s = week.json()
    assert s["week"] == "2026-W49" and s["is_complete"] is True
    cov = s["coverage"]
    assert (cov["buildings"], cov["buildings_checked"], cov["checkins"]) == (grid_buildings, 2, 3)
    assert cov["share"] == round(2 / grid_buildings, 4)
    assert [(w["username"], w["checkins"], w["buildings_checked"]) for w in cov["by_worker"]] == [
        ("worker_a1", 3, 2)
    ]
    assert s["problems"] == {"opened": 2, "closed": 1, "escalated": 1, "overdue": 1,
                             "open_at_end": 3}  # fmt: skip
    before = client.get("staff_a", f"/api/patrol/grids/{info.grid_a1}/weekly?week=2026-W48")
    assert before.json()["problems"] == {"opened": 2, "closed": 0, "escalated": 0,
                                         "overdue": 0, "open_at_end": 2}  # fmt: skip
    assert before.json()["coverage"]["buildings_checked"] == 0

    # outside the scope: 404, as for a grid that does not exist
    assert client.get("staff_b", f"/api/patrol/grids/{info.grid_a1}/weekly").status_code == 404
    assert client.get("worker_a1", f"/api/patrol/grids/{info.grid_a2}/weekly").status_code == 404
    assert client.get("worker_a1", "/api/patrol/grids/999999/weekly").status_code == 404
    for bad in ("2026-W54", "2026-49"):
        r = client.get("worker_a1", f"/api/patrol/grids/{info.grid_a1}/weekly?week={bad}")
        assert r.status_code == 422, bad
    assert client.get("leader_a1", f"/api/patrol/grids/{info.grid_a1}/weekly").status_code == 403


def test_the_week_counts_overdue_by_the_one_rule(api) -> None:  # noqa: F811
    """Resolved in time and waiting for verification: not overdue at the week's end;
    resolved after the deadline and not verified: overdue (gis.patrol.overdue)."""
    client, info, _ = api
    app = client.client.app

    def at(t: dt.datetime) -> None:
        app.dependency_overrides[clock] = lambda: t

    def post(user: str, path: str, body: dict) -> dict:
        r = client.post(user, path, json=body)
        assert r.status_code in (200, 201), r.text
        return r.json()

    at(W48)
    body = {"category": "lift", "description": "电梯停运", "building_id": info.buildings["a1"][0],
            "handling": "time_limited", "deadline": "2026-12-01T18:00:00+08:00"}  # fmt: skip
    in_time = post("worker_a1", "/api/problems", body)["id"]
    late = post("worker_a1", "/api/problems", body)["id"]
    for pid, when in ((in_time, "2026-12-01T10:00:00+08:00"), (late, "2026-12-02T10:00:00+08:00")):
        at(dt.datetime.fromisoformat(when))
        for to in ("accepted", "resolved"):
            post("worker_a1", f"/api/problems/{pid}/status", {"to": to})
    at(AFTER)
    week = client.get("staff_a", f"/api/patrol/grids/{info.grid_a1}/weekly?week=2026-W49").json()
    assert week["problems"]["overdue"] == 1
    listed = client.get("staff_a", "/api/problems", params={"overdue": "true"}).json()
    assert [p["id"] for p in listed] == [late]
