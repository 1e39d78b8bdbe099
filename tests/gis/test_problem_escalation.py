"""Overdue escalation at a fixed clock: one level per run, idempotent, recorded as events;
the same through ``gridatlas patrol escalate --now``."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa

from api.routes.patrol import clock
from gis import db
from gis.patrol.escalate import STEP, escalate_overdue
from tests.api.conftest import api, people, people_template  # noqa: F401 (fixtures)
from tests.conftest import cli

CST = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=CST)  # reported
NOW = dt.datetime(2026, 12, 3, 9, 0, tzinfo=CST)  # the job runs


@pytest.fixture
def reported(api):  # noqa: F811
    client, info, url = api
    app = client.client.app
    app.dependency_overrides[clock] = lambda: T0
    b = info.buildings["a1"][0]

    def report(**extra) -> int:
        r = client.post("worker_a1", "/api/problems",
                        json={"category": "lift", "description": "电梯停运",
                              "building_id": b, **extra})  # fmt: skip
        assert r.status_code == 201, r.text
        return r.json()["id"]

    late = report(handling="time_limited", deadline=(T0 + dt.timedelta(days=1)).isoformat())
    later = report(handling="time_limited", deadline=(NOW + dt.timedelta(days=5)).isoformat())
    done = report(handling="time_limited", deadline=(T0 + dt.timedelta(hours=6)).isoformat())
    at_once = report()
    for to in ("accepted", "resolved"):  # resolved in time: waits for verification
        r = client.post("worker_a1", f"/api/problems/{done}/status", json={"to": to})
        assert r.status_code == 200, r.text
    eng = db.create_engine(url, poolclass=sa.NullPool)  # the owner, as the CLI runs
    yield client, eng, url, {"late": late, "later": later, "done": done, "at_once": at_once}
    eng.dispose()


def _run(eng, now: dt.datetime) -> dict:
    with eng.begin() as conn:
        return escalate_overdue(conn, now)


def _levels(eng) -> dict[int, str]:
    with eng.connect() as conn:
        return dict(conn.execute(sa.text("SELECT id, escalation_level FROM problem")).all())


def test_overdue_problems_go_up_one_level_per_step_and_only_once(reported) -> None:
    client, eng, _, ids = reported
    assert _run(eng, T0 + dt.timedelta(hours=12))["escalated"] == []  # nothing overdue yet

    first = _run(eng, NOW)
    assert [(e["problem_id"], e["to"]) for e in first["escalated"]] == [(ids["late"], "committee")]
    assert first["overdue"] == 1
    assert _run(eng, NOW)["escalated"] == []  # the same clock again: nothing more
    assert _run(eng, NOW + STEP - dt.timedelta(minutes=1))["escalated"] == []
    levels = _levels(eng)
    assert levels[ids["late"]] == "committee"
    assert {levels[ids[k]] for k in ("later", "done", "at_once")} == {"worker"}

    up = _run(eng, NOW + STEP)
    assert [(e["problem_id"], e["to"]) for e in up["escalated"]] == [(ids["late"], "subdistrict")]
    # "late" is at the top (nowhere further); "later" is overdue by now and starts its climb
    top = _run(eng, NOW + 10 * STEP)
    assert [(e["problem_id"], e["to"]) for e in top["escalated"]] == [(ids["later"], "committee")]

    # each escalation is an event, by nobody, with the status unchanged
    client.client.app.dependency_overrides[clock] = lambda: NOW
    events = client.get("staff_a", f"/api/problems/{ids['late']}").json()["events"]
    ups = [e for e in events if e["user_id"] is None]
    assert [(e["from_status"], e["to_status"]) for e in ups] == [("reported", "reported")] * 2
    assert [e["note"].rsplit(" ", 1)[-1] for e in ups] == ["committee", "subdistrict"]
    with eng.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM problem_event WHERE escalated_to "
                                   "IS NOT NULL")) == 3  # fmt: skip


def test_the_cli_escalates_once_at_a_fixed_clock(reported) -> None:
    _, eng, url, ids = reported
    first = cli("patrol", "escalate", "--now", NOW.isoformat(), "--json", db_url=url)
    assert first.returncode == 0, first.stderr
    assert [e["problem_id"] for e in json.loads(first.stdout)["escalated"]] == [ids["late"]]
    again = cli("patrol", "escalate", "--now", NOW.isoformat(), db_url=url)
    assert again.returncode == 0 and "escalated 0" in again.stdout
    assert _levels(eng)[ids["late"]] == "committee"
    with eng.connect() as conn:  # each run is on record, like the app's passes
        runs = conn.execute(sa.text("SELECT subject_ids, detail FROM audit_log WHERE "
                                    "user_id = 0 AND action = 'job' ORDER BY id")
                            ).all()  # fmt: skip
    assert [(r.subject_ids, r.detail["via"], r.detail["escalated"]) for r in runs] == [
        ([ids["late"]], "cli", 1), ([], "cli", 0)]  # fmt: skip
    bad = cli("patrol", "escalate", "--now", "2026-12-03T09:00", db_url=url)
    assert bad.returncode == 2 and "time zone" in bad.stderr


def test_the_overdue_filter_and_the_job_agree_on_resolved_problems(reported) -> None:
    """One rule (gis.patrol.overdue): resolved in time waits for its verifier and is not
    overdue; resolved late stays overdue until verified; a failed verification after the
    deadline makes it overdue again. The list, the job and the reminders all say so."""
    client, eng, _, ids = reported
    app = client.client.app
    b = client.get("worker_a1", f"/api/problems/{ids['late']}").json()["building_id"]

    def at(t: dt.datetime) -> None:
        app.dependency_overrides[clock] = lambda: t

    def post(user: str, path: str, body: dict) -> dict:
        r = client.post(user, path, json=body)
        assert r.status_code in (200, 201), r.text
        return r.json()

    def move(user: str, pid: int, *path: str) -> None:
        for to in path:
            post(user, f"/api/problems/{pid}/status", {"to": to})

    at(T0)
    body = {"category": "lift", "description": "电梯停运", "building_id": b,
            "handling": "time_limited"}  # fmt: skip

    def report(hours: int) -> int:
        deadline = (T0 + dt.timedelta(hours=hours)).isoformat()
        return post("worker_a1", "/api/problems", {**body, "deadline": deadline})["id"]

    fixed_late, rejected = report(1), report(6)
    move("worker_a1", rejected, "accepted", "resolved")  # in time…
    at(T0 + dt.timedelta(hours=2))
    move("worker_a1", fixed_late, "accepted", "resolved")  # an hour after its deadline
    at(T0 + dt.timedelta(days=1))
    move("staff_a", rejected, "in_progress")  # …but the verifier found it not done

    at(NOW)
    overdue = {ids["late"], fixed_late, rejected}
    listed = client.get("staff_a", "/api/problems", params={"overdue": "true"}).json()
    assert {p["id"] for p in listed} == overdue
    # "done" was resolved in time and waits for its verifier: the old filter counted it
    not_overdue = client.get("staff_a", "/api/problems", params={"overdue": "false"}).json()
    assert {p["id"] for p in not_overdue} == {ids["done"], ids["later"], ids["at_once"]}
    due = client.get("worker_a1", "/api/me/reminders").json()["problems_due"]
    assert {p["problem_id"] for p in due if p["is_overdue"]} == overdue
    assert ids["done"] not in {p["problem_id"] for p in due}  # not the worker's to do

    first = _run(eng, NOW)
    assert first["overdue"] == 3
    assert {e["problem_id"] for e in first["escalated"]} == overdue
    assert {e["status"] for e in first["escalated"]} == {"reported", "resolved", "in_progress"}
    # verified, the late one is crossed off: no longer overdue, and it climbs no further
    at(NOW + dt.timedelta(hours=1))
    move("staff_a", fixed_late, "verified")
    assert fixed_late not in {p["id"] for p in client.get(
        "staff_a", "/api/problems", params={"overdue": "true"}).json()}  # fmt: skip
    up = _run(eng, NOW + STEP)
    assert {e["problem_id"] for e in up["escalated"]} == {ids["late"], rejected}
    assert up["overdue"] == 2
    levels = _levels(eng)
    assert (levels[fixed_late], levels[ids["done"]]) == ("committee", "worker")
