"""The app's scheduled jobs (gis/scheduler.py) against a real database: an overdue problem
is escalated once however many schedulers (threads or API processes) run; a failing pass
is recorded and retried, never fatal; passes are on record for admins; off by a setting."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.routes.patrol import clock
from gis import db, scheduler
from gis.scheduler import Job, JobResult, Scheduler
from gis.settings import Settings
from tests.api.conftest import api, people, people_template  # noqa: F401 (fixtures)
from tests.conftest import serve_app

CST = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=CST)
NOW = dt.datetime(2026, 12, 3, 9, 0, tzinfo=CST)  # the scheduler's fixed clock
WAIT_S = 120.0  # how long to wait for passes on a loaded machine (not a speed goal)


def _report(client, info, at: dt.datetime, deadline: dt.datetime) -> int:
    client.client.app.dependency_overrides[clock] = lambda: at
    r = client.post("worker_a1", "/api/problems",
                    json={"category": "lift", "description": "电梯停运", "handling": "time_limited",
                          "deadline": deadline.isoformat(),
                          "building_id": info.buildings["a1"][0]})  # fmt: skip
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _owner(url: str) -> Callable[[], sa.Engine]:
    return lambda: db.create_engine(url, poolclass=sa.NullPool)


def _runs(url: str) -> list[dict]:
    eng = db.create_engine(url, poolclass=sa.NullPool)
    try:
        with eng.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT subject, subject_ids, detail FROM audit_log WHERE user_id = 0 "
                "AND action = 'job' ORDER BY id")).all()  # fmt: skip
    finally:
        eng.dispose()
    return [{"job": r.subject, "ids": list(r.subject_ids), **r.detail} for r in rows]


def _escalations(url: str, pid: int) -> list[tuple[str, str]]:
    eng = db.create_engine(url, poolclass=sa.NullPool)
    try:
        with eng.connect() as conn:
            events = conn.scalars(sa.text(
                "SELECT escalated_to FROM problem_event WHERE problem_id = :p "
                "AND escalated_to IS NOT NULL ORDER BY id"), {"p": pid}).all()  # fmt: skip
            level = conn.scalar(sa.text("SELECT escalation_level FROM problem WHERE id = :p"),
                                {"p": pid})  # fmt: skip
    finally:
        eng.dispose()
    return [(level, e) for e in events]


def _wait_for(what: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing happened within {WAIT_S:.0f} s")
        time.sleep(0.2)


def test_two_schedulers_escalate_an_overdue_problem_once(api) -> None:  # noqa: F811
    client, info, url = api
    late = _report(client, info, T0, T0 + dt.timedelta(days=1))
    fine = _report(client, info, T0, NOW + dt.timedelta(days=5))
    fast = dt.timedelta(seconds=0.2)
    both = [Scheduler(_owner(url), fast, clock=lambda: NOW, first_pass_after=dt.timedelta(0))
            for _ in range(2)]  # fmt: skip
    for s in both:
        s.start()
    try:
        _wait_for(lambda: all(s.passes >= 5 for s in both))
    finally:
        for s in both:
            s.stop()
    assert not any(s.is_running for s in both)
    assert _escalations(url, late) == [("committee", "committee")]
    assert _escalations(url, fine) == []
    runs = [r for r in _runs(url) if r["job"] == "escalate"]
    assert runs and all(r["ok"] and r["clock"] == NOW.isoformat() for r in runs)
    assert sum(r["escalated"] for r in runs) == 1  # once, whoever ran it
    assert [r["ids"] for r in runs if r["escalated"]] == [[late]]
    # stopped means stopped: no pass after stop()
    count = len(_runs(url))
    time.sleep(1.0)
    assert len(_runs(url)) == count


def test_a_failing_pass_is_recorded_and_retried_without_stopping_anything(api) -> None:  # noqa: F811
    client, info, url = api
    late = _report(client, info, T0, T0 + dt.timedelta(days=1))
    calls = {"n": 0}

    def flaky(conn, now) -> JobResult:
        calls["n"] += 1
        if calls["n"] == 1:
            conn.execute(sa.text("SELECT 1 / 0"))  # the database refuses the first pass
        return JobResult([], {"tries": calls["n"]})

    jobs = (Job("flaky", flaky), *scheduler.JOBS)
    s = Scheduler(_owner(url), dt.timedelta(seconds=0.2), clock=lambda: NOW, jobs=jobs,
                  first_pass_after=dt.timedelta(0))  # fmt: skip
    s.start()
    try:
        _wait_for(lambda: calls["n"] >= 2)
        assert s.is_running  # the failure did not end the thread
    finally:
        s.stop()
    flaky_runs = [r for r in _runs(url) if r["job"] == "flaky"]
    assert not flaky_runs[0]["ok"] and "division by zero" in flaky_runs[0]["error"]
    assert flaky_runs[1]["ok"] and flaky_runs[1]["tries"] == 2
    # the other job ran in the failing pass all the same
    assert _escalations(url, late) == [("committee", "committee")]

    # a database that cannot be reached: the pass is logged and skipped, the thread lives on
    gone = db.make_url(url).set(port=1).render_as_string(hide_password=False)
    away = Scheduler(_owner(gone), dt.timedelta(seconds=0.2), first_pass_after=dt.timedelta(0))
    assert away.run_once() == []
    away.start()
    try:
        _wait_for(lambda: away.passes >= 3)
        assert away.is_running
    finally:
        away.stop()


def test_admins_see_the_passes_and_others_are_refused(api) -> None:  # noqa: F811
    client, info, url = api
    late = _report(client, info, T0, T0 + dt.timedelta(days=1))
    eng = db.create_engine(url, poolclass=sa.NullPool)
    try:
        assert scheduler.run_pass(eng, NOW)[0]["changed_ids"] == [late]
        assert scheduler.run_pass(eng, NOW, min_gap=dt.timedelta(hours=1)) == []  # just done
    finally:
        eng.dispose()
    runs = client.get("admin", "/api/patrol/jobs")
    assert runs.status_code == 200, runs.text
    by_job = {r["job"]: r for r in runs.json()}
    assert sorted(by_job) == ["escalate", "tile_cache"] and len(runs.json()) == 2
    assert by_job["tile_cache"]["is_ok"] and by_job["tile_cache"]["changed_ids"] == []
    run = by_job["escalate"]
    assert (run["job"], run["is_ok"], run["escalated"], run["overdue"]) == ("escalate", True, 1, 1)
    assert run["changed_ids"] == [late] and run["clock"] == NOW.isoformat()
    assert client.get("staff_a", "/api/patrol/jobs").status_code == 403
    assert client.get("worker_a1", "/api/patrol/jobs").status_code == 403


def test_the_app_runs_the_jobs_when_on_and_stops_them_on_shutdown(api) -> None:  # noqa: F811
    _, _, url = api
    from api.app import create_app

    off = create_app(Settings(database_url=url, jobs_every_min=0))
    with TestClient(off):
        assert off.state.scheduler is None
    on = create_app(Settings(database_url=url, jobs_every_min=0.005))  # every 0.3 s
    with TestClient(on):
        jobs = on.state.scheduler
        assert jobs.is_running
        _wait_for(lambda: jobs.passes >= 2)
    assert not jobs.is_running  # the lifespan stopped it


def test_two_api_processes_escalate_once_and_one_takes_over(api) -> None:  # noqa: F811
    """Two uvicorn processes over one database, each with its scheduler on the real clock:
    the overdue problem is escalated once, and when the first process stops, the second
    goes on with the passes."""
    client, info, url = api
    env = {"GRIDATLAS_JOBS_EVERY_MIN": "0.01"}  # every 0.6 s

    def processes() -> set[str]:
        return {r["process"] for r in _runs(url) if r["job"] == "escalate"}

    first, second = serve_app(url, **env), serve_app(url, **env)
    first.__enter__()
    first_up, second_up = True, False
    try:
        _wait_for(lambda: len(_runs(url)) >= 2)
        [by_first] = processes()
        second.__enter__()
        second_up = True
        real = dt.datetime.now(dt.UTC)  # both running: a problem goes overdue now
        late = _report(client, info, real - dt.timedelta(days=2), real - dt.timedelta(days=1))
        _wait_for(lambda: _escalations(url, late) != [])
        seen = len(_runs(url))
        _wait_for(lambda: len(_runs(url)) >= seen + 3)  # more passes with both up
        first.__exit__(None, None, None)
        first_up = False
        _wait_for(lambda: processes() - {by_first} != set())  # the second took over
    finally:
        if second_up:
            second.__exit__(None, None, None)
        if first_up:
            first.__exit__(None, None, None)
    runs = [r for r in _runs(url) if r["job"] == "escalate"]
    assert all(r["ok"] for r in runs), runs
    assert sum(r["escalated"] for r in runs) == 1
    assert [r["ids"] for r in runs if r["escalated"]] == [[late]]
    assert _escalations(url, late) == [("committee", "committee")]
    assert len(processes()) == 2
