"""Planners read no personal rows, yet the report's people figures are counted for them by
the database (``ga_report_counts``, migration 0015): the same numbers as staff get from the
rows, small counts withheld, and the backbone team withheld wherever ``/api/stats`` withholds
one of its parts (else the total minus the shown parts would give it back)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from api.routes.patrol import clock
from gis import db

NOW = dt.datetime(2026, 12, 3, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
DAY = dt.timedelta(days=1)


@pytest.fixture
def fixed(api):
    client, info, url = api
    client.client.app.dependency_overrides[clock] = lambda: NOW
    eng = db.create_engine(url, poolclass=sa.NullPool)
    yield client, info, eng
    eng.dispose()


def _exec(eng, sql: str, **params) -> list:
    with eng.begin() as conn:
        res = conn.execute(sa.text(sql), params)
        return res.all() if res.returns_rows else []


def _residents(eng, cid: int, n: int) -> list[tuple[int, int]]:
    """(resident, building) of ``n`` residents of community ``cid``, one building first."""
    return [tuple(r) for r in _exec(
        eng, "SELECT r.id, r.building_id FROM resident r JOIN building b ON b.id = r.building_id "
        "WHERE b.community_id = :c ORDER BY r.building_id, r.id LIMIT :n", c=cid, n=n)]  # fmt: skip


def _backbone(eng, cid: int, roles: list[str]) -> None:
    """Replace the community's backbone team: one resident per role given."""
    _exec(eng, "DELETE FROM backbone")
    for (rid, _), role in zip(_residents(eng, cid, len(roles)), roles, strict=True):
        _exec(eng, "INSERT INTO backbone (resident_id, role) VALUES (:r, :role)", r=rid, role=role)


def _problem(eng, info, status: str, deadline, events: list[tuple[str, dt.datetime]]) -> None:
    """A problem of building a1 reported 30 days ago, with its status events."""
    (pid,) = _exec(
        eng, "INSERT INTO problem (building_id, category, description, handling, deadline, "
        "status, reported_by, reported_at, resolved_by, verified_by, geom) "
        "SELECT b.id, 'parking', 'x', CASE WHEN CAST(:d AS timestamptz) IS NULL "
        "THEN 'immediate' ELSE 'time_limited' END, :d, :s, w.id, :at, w.id, s.id, "
        "ST_PointOnSurface(b.geom) FROM building b, app_user w, app_user s "
        "WHERE b.id = :b AND w.username = 'worker_a1' AND s.username = 'staff_a' RETURNING id",
        d=deadline, s=status, at=NOW - 30 * DAY, b=info.buildings["a1"][0])[0]  # fmt: skip
    for to, at in events:
        _exec(eng, "INSERT INTO problem_event (problem_id, user_id, at, to_status) "
              "SELECT :p, id, :at, :t FROM app_user WHERE username = 'worker_a1'",
              p=pid, at=at, t=to)  # fmt: skip


def _lead_units(eng, cid: int, n: int) -> None:
    """Give ``n`` units of ``cid`` without a current leader one (a resident of A)."""
    _exec(
        eng, "INSERT INTO leader_assignment (level, area_id, resident_id, lives_inside) "
        "SELECT 'unit', u.id, (SELECT r.id FROM resident r JOIN building b ON "
        "b.id = r.building_id WHERE b.community_id = :c ORDER BY r.id LIMIT 1), false "
        "FROM unit u JOIN building_cluster k ON k.id = u.building_cluster_id "
        "JOIN residents_group g ON g.id = k.residents_group_id WHERE g.community_id = :c "
        "AND NOT EXISTS (SELECT 1 FROM leader_assignment la WHERE la.level = 'unit' "
        "AND la.area_id = u.id AND la.ended_at IS NULL) ORDER BY u.id LIMIT :n",
        c=cid, n=n)  # fmt: skip


def test_planners_get_the_people_figures_counted_with_small_ones_withheld(fixed) -> None:
    api, info, eng = fixed
    cid = info.community_a
    _backbone(eng, cid, ["volunteer"] * 6)  # six people, one role: nothing small anywhere
    _lead_units(eng, cid, 6)  # and whatever leaders the fixture has
    late = NOW - 2 * DAY
    for _ in range(5):  # in progress past the deadline: overdue
        _problem(eng, info, "in_progress", late, [])
    _problem(eng, info, "resolved", late, [("resolved", late + DAY)])  # resolved late: overdue
    _problem(eng, info, "resolved", late, [("resolved", late - DAY)])  # in time: not overdue
    for days in (1, 2, 4, 7, 10):  # five closed, the median closes after 4 days
        _problem(eng, info, "closed", None, [("closed", NOW - 30 * DAY + days * DAY)])

    staff = api.get("staff_a", f"/api/reports/communities/{cid}/norms").json()["figures"]
    planner = api.get("planner_a", f"/api/reports/communities/{cid}/norms").json()["figures"]
    assert staff["backbone"]["value"] == 6 and planner["backbone"]["value"] == 6
    assert planner["backbone"]["detail"]["status"] == "below"  # 50–300: counted, checked
    assert staff["problems_overdue"]["value"] == 6
    assert planner["problems_overdue"]["value"] == 6  # the function's rule is overdue_sql's
    assert staff["problems_median_days_to_close"]["value"] == 4.0
    assert planner["problems_median_days_to_close"]["value"] == 4.0
    assert planner["problems_closure_rate"]["value"] == staff["problems_closure_rate"]["value"]
    assert planner["problems_closure_rate"]["value"] == round(5 / 12, 4)
    led = staff["leader_coverage"]["detail"]
    with_leader = sum(d["with_leader"] for d in led.values())
    assert with_leader >= 6
    assert planner["leader_coverage"]["detail"]["with_leader"] == with_leader
    assert planner["leader_coverage"]["value"] == staff["leader_coverage"]["value"]
    profile = api.get("planner_a", f"/api/reports/communities/{cid}").json()["figures"]
    assert profile["backbone_people"]["value"] == 6
    assert profile["backbone_people"]["source"].startswith("ga_report_counts")

    # small counts: withheld for the planner, exact for staff
    _backbone(eng, cid, ["volunteer"] * 3)
    _exec(eng, "UPDATE problem SET status = 'closed', deadline = NULL, handling = 'immediate' "
          "WHERE status = 'in_progress'")  # fmt: skip
    staff = api.get("staff_a", f"/api/reports/communities/{cid}/norms").json()["figures"]
    planner = api.get("planner_a", f"/api/reports/communities/{cid}/norms").json()["figures"]
    assert staff["backbone"]["value"] == 3 and planner["backbone"]["value"] == "suppressed"
    assert staff["problems_overdue"]["value"] == 1
    assert planner["problems_overdue"]["value"] == "suppressed"
    assert "withheld" in planner["problems_overdue"]["note"]
    profile = api.get("planner_a", f"/api/reports/communities/{cid}").json()["figures"]
    assert profile["backbone_people"]["value"] == "suppressed"
    assert "3" not in str(profile["backbone_people"])


def test_the_backbone_total_is_withheld_where_stats_withholds_a_part(fixed) -> None:
    api, info, eng = fixed
    cid = info.community_a
    # seven people: six volunteers and one party member. Stats withholds the lone one; the
    # total of seven beside six volunteers would give it back
    _backbone(eng, cid, ["volunteer"] * 6 + ["party_member"])
    stats = api.get("planner_a", f"/api/stats/communities?community_id={cid}").json()
    counts = next(a for a in stats["areas"] if a["id"] == cid)["counts"]
    assert counts["backbone:party_member"] == "suppressed" and counts["backbone:volunteer"] == 6
    profile = api.get("planner_a", f"/api/reports/communities/{cid}").json()["figures"]
    assert profile["backbone_people"]["value"] == "suppressed"
    assert api.get("staff_a", f"/api/reports/communities/{cid}").json()["figures"][
        "backbone_people"]["value"] == 7  # fmt: skip
    # without a login's session nobody holds the community: the function counts nothing
    with eng.connect() as conn:
        raw = conn.execute(sa.text("SELECT * FROM ga_report_counts(:c, now())"), {"c": cid})
        assert raw.first() is None
