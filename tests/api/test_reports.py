"""Reports over HTTP on the Nanjing data: profiles and norms recomputed here from raw rows,
scope (404 outside it), errors in the user's language, the seed's tables, OpenAPI."""

from __future__ import annotations

import datetime as dt
import math
import statistics

import pytest
import sqlalchemy as sa
from shapely import wkb

from api.routes.patrol import clock
from gis import db
from gis.categories import load_categories
from gis.reach import service as reach_service

NOW = dt.datetime(2026, 12, 3, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
MONDAY = dt.datetime(2026, 11, 30, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
FACILITY_GROUPS = {"five_rooms", "three_stations", "two_boards", "one_school", "one_site"}


@pytest.fixture
def fixed(api):
    client, info, url = api
    client.client.app.dependency_overrides[clock] = lambda: NOW
    eng = db.create_engine(url, poolclass=sa.NullPool)
    yield client, info, eng
    eng.dispose()


def _rows(eng, sql: str, **params):
    with eng.connect() as conn:
        return conn.execute(sa.text(sql), params).all()


def _one(eng, sql: str, **params):
    with eng.connect() as conn:
        return conn.scalar(sa.text(sql), params)


def _households(eng, cid: int) -> int:
    # every dwelling of the community's buildings, one row per dwelling (dwelling_all)
    return int(_one(eng, "SELECT coalesce(sum(d.households), 0) FROM dwelling_all d "
                    "JOIN building b ON b.id = d.building_id WHERE b.community_id = :c",
                    c=cid))  # fmt: skip


def test_profile_figures_match_the_raw_rows(fixed) -> None:
    api, info, eng = fixed
    cid = info.community_a
    # a house register for one building: its three dwellings replace its estimate
    bid = info.buildings["a1"][0]
    with eng.begin() as conn:
        for room in ("101", "102", "201"):
            conn.execute(
                sa.text(
                    "INSERT INTO dwelling (building_id, floor, room, households) "
                    "VALUES (:b, :f, :r, 1)"
                ),
                {"b": bid, "f": int(room[0]), "r": room},
            )
    r = api.get("admin", f"/api/reports/communities/{cid}")
    assert r.status_code == 200, r.text
    p = r.json()
    f = {k: v["value"] for k, v in p["figures"].items()}
    assert f["households"] == _households(eng, cid) > 0
    assert p["figures"]["households"]["detail"]["registered"] == 3
    estimate = _one(eng, "SELECT sum(households) FROM building WHERE community_id = :c "
                    "AND id <> :b", c=cid, b=bid)  # fmt: skip
    assert f["households"] == estimate + 3
    assert f["buildings"] == _one(eng, "SELECT count(*) FROM building WHERE community_id = :c",
                                  c=cid)  # fmt: skip
    assert f["grids"] == _one(eng, "SELECT count(*) FROM grid WHERE community_id = :c", c=cid)
    assert f["residents_groups"] == _one(
        eng, "SELECT count(*) FROM residents_group WHERE community_id = :c", c=cid
    )
    assert f["workers"] == 1  # worker_a1, scoped to grid A1 of community A
    backbone = {
        rid for (rid,) in _rows(
            eng, "SELECT k.resident_id FROM backbone k JOIN resident r ON r.id = k.resident_id "
            "JOIN building b ON b.id = r.building_id WHERE b.community_id = :c", c=cid)
    }  # fmt: skip
    assert backbone and f["backbone_people"] == len(backbone)
    assert p["holds_community"] is True
    for fig in p["figures"].values():
        assert fig["source"].startswith("gis.reports.")
    band = p["classification"]["households_band"]
    assert band["lower"] <= f["households"] and (band["upper"] is None
                                                 or f["households"] < band["upper"])  # fmt: skip
    # community B has no grid worker; a second worker in a residents' group of B counts
    assert api.get("admin", f"/api/reports/communities/{info.community_b}").json()[
        "figures"]["workers"]["value"] == 0  # fmt: skip
    with eng.begin() as conn:
        uid = conn.scalar(
            sa.text(
                "INSERT INTO app_user (username, role, password_hash) "
                "VALUES ('worker_b', 'grid_worker', 'x') RETURNING id"
            )
        )
        gid = conn.scalar(
            sa.text("SELECT min(residents_group_id) FROM building_path WHERE community_id = :c"),
            {"c": info.community_b},
        )
        conn.execute(sa.text("INSERT INTO app_user_scope VALUES (:u, 'residents_group', :g)"),
                     {"u": uid, "g": gid})  # fmt: skip
    b = api.get("admin", f"/api/reports/communities/{info.community_b}").json()
    assert b["figures"]["workers"]["value"] == 1


def test_a_grid_worker_gets_no_other_communitys_profile(fixed) -> None:
    api, info, _ = fixed
    own = api.get("worker_a1", f"/api/reports/communities/{info.community_a}")
    assert own.status_code == 200, own.text
    body = own.json()
    assert body["holds_community"] is False  # a grid of it, not the whole community
    assert body["figures"]["backbone_people"]["is_partial"] is True
    other = api.get("worker_a1", f"/api/reports/communities/{info.community_b}")
    assert other.status_code == 404
    assert other.json()["message"] == f"在您的辖区内没有编号为 {info.community_b} 的社区"
    en = api.get("worker_a1", f"/api/reports/communities/{info.community_b}/norms",
                 headers={"Accept-Language": "en"})  # fmt: skip
    assert en.status_code == 404
    assert en.json()["message"] == f"There is no community {info.community_b} in your area"
    page = api.get("worker_a1", "/api/reports/communities").json()
    assert [p["id"] for p in page["items"]] == [info.community_a] and page["total"] == 1
    assert api.get("staff_b", f"/api/reports/communities/{info.community_a}").status_code == 404


def test_planners_get_people_figures_counted_and_admins_page_every_community(fixed) -> None:
    api, info, eng = fixed
    planner = api.get("planner_a", f"/api/reports/communities/{info.community_a}").json()
    # counted by the database, not read (tests/api/test_reports_planner_counts.py)
    assert planner["figures"]["backbone_people"]["source"].startswith("ga_report_counts")
    assert planner["figures"]["backbone_people"]["value"] is not None
    assert planner["figures"]["households"]["value"] == _households(eng, info.community_a)
    total = _one(eng, "SELECT count(*) FROM community")
    first = api.get("admin", "/api/reports/communities?limit=5").json()
    second = api.get("admin", "/api/reports/communities?limit=5&offset=5").json()
    assert first["total"] == second["total"] == total
    assert len(first["items"]) == 5
    codes = [p["code"] for p in first["items"] + second["items"]]
    assert codes == sorted(codes) and len(set(codes)) == 10


def test_bad_parameters_are_refused_in_the_users_language(fixed) -> None:
    api, info, _ = fixed
    url = f"/api/reports/communities/{info.community_a}"
    r = api.get("admin", f"{url}?taxonomy=nowhere")
    assert r.status_code == 422
    assert "nowhere" in r.json()["message"] and "changshou" in r.json()["message"]
    r = api.get("admin", f"{url}/norms?week=2026-W60", headers={"Accept-Language": "en"})
    assert r.status_code == 422 and r.json()["error"] == "InvalidInput"
    r = api.get("admin", f"{url}?taxonomy=nowhere", headers={"Accept-Language": "en"})
    assert r.json()["message"] == (
        "There is no housing-type taxonomy nowhere; choose one of: changshou, changning"
    )
    assert api.get("admin", "/api/reports/communities?limit=0").status_code == 422
    assert api.get("admin", "/api/reports/communities/0").status_code == 422


def _reach(eng) -> None:
    with eng.begin() as conn:
        reach_service.compute_and_store(conn)


def _assign_leaders(eng, cid: int) -> dict[str, int]:
    """Give two units and one building of the community a leader (a resident of it)."""
    with eng.begin() as conn:
        rid = conn.scalar(sa.text("SELECT r.id FROM resident r JOIN building b ON b.id = "
                                  "r.building_id WHERE b.community_id = :c ORDER BY r.id LIMIT 1"),
                          {"c": cid})  # fmt: skip
        units = conn.execute(sa.text(
            "SELECT u.id FROM unit u JOIN building_cluster c ON c.id = u.building_cluster_id "
            "JOIN residents_group g ON g.id = c.residents_group_id WHERE g.community_id = :c "
            "ORDER BY u.id LIMIT 2"), {"c": cid}).scalars().all()  # fmt: skip
        bid = conn.scalar(sa.text("SELECT min(id) FROM building WHERE community_id = :c "
                                  "AND households > 0"), {"c": cid})  # fmt: skip
        for level, area in [("unit", units[0]), ("unit", units[1]), ("building", bid)]:
            conn.execute(sa.text("INSERT INTO leader_assignment (level, area_id, resident_id, "
                                 "lives_inside) VALUES (:l, :a, :r, true)"),
                         {"l": level, "a": area, "r": rid})  # fmt: skip
        # an ended term is no current leader
        conn.execute(sa.text("INSERT INTO leader_assignment (level, area_id, resident_id, "
                             "lives_inside, ended_at) VALUES ('residents_group', "
                             "(SELECT min(id) FROM residents_group WHERE community_id = :c), "
                             ":r, true, now())"), {"c": cid, "r": rid})  # fmt: skip
    return {"unit": 2, "building": 1, "building_cluster": 0, "residents_group": 0}


def test_norms_leaders_and_staffing_recomputed(fixed) -> None:
    api, info, eng = fixed
    cid = info.community_a
    led = _assign_leaders(eng, cid)
    r = api.get("staff_a", f"/api/reports/communities/{cid}/norms")
    assert r.status_code == 200, r.text
    f = r.json()["figures"]
    households = _households(eng, cid)
    assert f["workers"]["detail"]["required"] == max(5, math.ceil(households / 300))
    assert f["workers"]["detail"]["is_met"] is False  # one worker
    counts = {
        "unit": _one(eng, "SELECT count(*) FROM unit u JOIN building_cluster c ON c.id = "
                     "u.building_cluster_id JOIN residents_group g ON g.id = c.residents_group_id"
                     " WHERE g.community_id = :c", c=cid),
        "building_cluster": _one(eng, "SELECT count(*) FROM building_cluster c JOIN "
                                 "residents_group g ON g.id = c.residents_group_id "
                                 "WHERE g.community_id = :c", c=cid),
        "residents_group": _one(eng, "SELECT count(*) FROM residents_group "
                                "WHERE community_id = :c", c=cid),
        "building": _one(eng, "SELECT count(*) FROM building WHERE community_id = :c "
                         "AND households > 0", c=cid),
    }  # fmt: skip
    detail = f["leader_coverage"]["detail"]
    for level, n in counts.items():
        assert detail[level]["areas"] == n and detail[level]["with_leader"] == led[level]
    assert f["leader_coverage"]["value"] == round(3 / sum(counts.values()), 4)
    backbone = f["backbone"]
    assert backbone["detail"]["status"] == ("below" if backbone["value"] < 50 else "within")


def test_facility_completeness_and_reach_recomputed_from_the_reach_tables(fixed) -> None:
    api, info, eng = fixed
    cid = info.community_a
    before = api.get("admin", f"/api/reports/communities/{cid}/norms").json()["figures"]
    assert before["reach_coverage"]["value"] is None and "gridatlas reach" in before[
        "reach_coverage"]["note"]  # fmt: skip
    _reach(eng)
    f = api.get("admin", f"/api/reports/communities/{cid}/norms").json()["figures"]
    run = _rows(eng, "SELECT id, speed_m_per_min, categories FROM reach_run "
                "ORDER BY id DESC LIMIT 1")[0]  # fmt: skip
    limit_m = 10 * run.speed_m_per_min
    community = wkb.loads(bytes(_one(eng, "SELECT ST_AsBinary(geom) FROM community "
                                     "WHERE id = :c", c=cid)))  # fmt: skip
    facilities = _rows(eng, "SELECT categories, ST_AsBinary(geom) AS g FROM facility")
    buildings = _rows(
        eng,
        "SELECT b.households, r.walk_m FROM building b LEFT JOIN "
        "building_reach r ON r.building_id = b.id AND r.run_id = :run "
        "WHERE b.community_id = :c AND b.households > 0",
        run=run.id,
        c=cid,
    )
    total = sum(b.households for b in buildings)
    cats = list(run.categories)
    expected_present = 0
    items = {i["category"]: i for i in f["facility_completeness"]["detail"]["items"]}
    wanted = [c.code for c in load_categories() if c.group in FACILITY_GROUPS]
    assert sorted(items) == sorted(wanted)
    for code in wanted:
        inside = sum(code in cs and wkb.loads(bytes(g)).intersects(community)
                     for cs, g in facilities)  # fmt: skip
        covered = sum(
            b.households
            for b in buildings
            if b.walk_m is not None and b.walk_m[cats.index(code)] <= limit_m
        )
        assert items[code]["facilities_inside"] == inside
        assert items[code]["households_within_walk"] == covered
        assert items[code]["households"] == total
        present = inside > 0 or covered == total
        assert items[code]["is_present"] is present
        expected_present += present
    assert f["facility_completeness"]["value"] == round(expected_present / len(wanted), 4)
    per_cat = f["reach_coverage"]["detail"]["categories"]
    for code in cats:
        covered = sum(
            b.households
            for b in buildings
            if b.walk_m is not None and b.walk_m[cats.index(code)] <= limit_m
        )
        assert per_cat[code]["covered"] == covered
        assert per_cat[code]["share"] == round(covered / total, 4)
        assert f["reach_coverage"]["value"][code] == round(covered / total, 4)


def _problem(conn, bid, uid, reported, status, deadline=None, closed=None, verifier=None):
    """A problem as the patrol routes leave it: the report, and the closing if closed."""
    pid = conn.scalar(sa.text(
        "INSERT INTO problem (building_id, category, description, handling, deadline, status, "
        "reported_by, reported_at, resolved_by, verified_by, geom) SELECT :b, 'parking', 'x', "
        ":h, :d, :s, :u, :r, :rb, :vb, ST_PointOnSurface(geom) FROM building WHERE id = :b "
        "RETURNING id"),
        {"b": bid, "h": "time_limited" if deadline else "immediate", "d": deadline, "s": status,
         "u": uid, "r": reported, "rb": uid if closed else None,
         "vb": verifier if closed else None})  # fmt: skip
    conn.execute(
        sa.text(
            "INSERT INTO problem_event (problem_id, user_id, at, to_status) "
            "VALUES (:p, :u, :r, 'reported')"
        ),
        {"p": pid, "u": uid, "r": reported},
    )
    if closed is not None:
        conn.execute(sa.text("INSERT INTO problem_event (problem_id, user_id, at, from_status, "
                             "to_status) VALUES (:p, :u, :at, 'verified', 'closed')"),
                     {"p": pid, "u": uid, "at": closed})  # fmt: skip


def test_problems_and_patrol_figures_recomputed(fixed) -> None:
    api, info, eng = fixed
    cid, uid, staff = info.community_a, info.users["worker_a1"], info.users["staff_a"]
    a1 = info.buildings["a1"]
    day = dt.timedelta(days=1)
    with eng.begin() as conn:
        for building, reported, closed in [(a1[0], 10, 7), (a1[1], 10, 9), (a1[1], 9, 1)]:
            _problem(conn, building, uid, MONDAY - reported * day, "closed",
                     closed=MONDAY - closed * day, verifier=staff)  # fmt: skip
        _problem(conn, a1[2], uid, MONDAY + dt.timedelta(hours=6), "in_progress",
                 deadline=NOW - day)  # overdue  # fmt: skip
        _problem(conn, a1[2], uid, MONDAY, "accepted", deadline=NOW + day)  # not yet
        for b in a1[:2]:
            conn.execute(sa.text("INSERT INTO patrol_checkin (user_id, building_id, at, method) "
                                 "VALUES (:u, :b, :at, 'tap')"),
                         {"u": uid, "b": b, "at": MONDAY + dt.timedelta(hours=10)})  # fmt: skip
    r = api.get("staff_a", f"/api/reports/communities/{cid}/norms?week=2026-W49")
    assert r.status_code == 200, r.text
    f = r.json()["figures"]
    assert f["problems_closure_rate"]["value"] == round(3 / 5, 4)
    assert f["problems_median_days_to_close"]["value"] == statistics.median([3.0, 1.0, 8.0])
    assert f["problems_overdue"]["value"] == 1
    grid_buildings = _one(eng, "SELECT count(*) FROM building_path p WHERE p.community_id = :c "
                          "AND p.grid_id IS NOT NULL", c=cid)  # fmt: skip
    cov = f["patrol_coverage"]
    assert cov["detail"]["buildings"] == grid_buildings
    assert cov["detail"]["buildings_checked"] == 2
    assert cov["value"] == round(2 / grid_buildings, 4)
    assert f["problems_this_week"]["value"] == 2  # reported on or after Monday
    # a planner reads no problem and no patrol log: problems are counted by the database
    # (small counts withheld), patrol figures are none, with a note
    p = api.get("planner_a", f"/api/reports/communities/{cid}/norms").json()["figures"]
    overdue = f["problems_overdue"]["value"]
    assert p["problems_overdue"]["value"] == ("suppressed" if 0 < overdue < 5 else overdue)
    assert p["patrol_coverage"]["value"] is None and p["patrol_coverage"]["note"]


def test_classification_table_and_the_seed_reference(fixed) -> None:
    api, info, eng = fixed
    t = api.get("admin", "/api/reports/classification?taxonomy=changning").json()
    assert t["taxonomy"] == "changning"
    assert sum(row["count"] for row in t["by_households"]) == t["communities"]
    assert sum(row["count"] for row in t["by_type"]) == t["communities"]
    for row in t["by_households"]:
        for name in row["communities"]:
            cid = _one(eng, "SELECT id FROM community WHERE coalesce(name, code) = :n", n=name)
            h = _households(eng, cid)
            assert h >= row["lower"] and (row["upper"] is None or h < row["upper"])
    ref = api.get("staff_a", "/api/reports/reference/changshou-road").json()
    assert [r["count"] for r in ref["by_type"]] == [8, 4, 15, 8]
    assert [r["count"] for r in ref["by_households"]] == [9, 12, 12, 2]
    assert ref["areas"] == 35
    assert ref["only_in_type_list"] == ref["only_in_households_list"] == []


def test_openapi_documents_the_report_routes_with_models(fixed) -> None:
    api, _, _ = fixed
    doc = api.get("admin", "/openapi.json").json()
    paths = [p for p in doc["paths"] if p.startswith("/api/reports/")]
    assert set(paths) >= {
        "/api/reports/communities", "/api/reports/communities/{community_id}",
        "/api/reports/communities/{community_id}/norms", "/api/reports/classification",
        "/api/reports/reference/changshou-road",
    }  # fmt: skip
    for path in paths:
        schema = doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
        assert "$ref" in schema["schema"]
    assert "Profile" in doc["components"]["schemas"]


def test_the_recorded_housing_type_is_shown_beside_the_derived_one(fixed) -> None:
    api, info, eng = fixed
    cid = info.community_a
    with eng.begin() as conn:
        conn.execute(sa.text("UPDATE community SET housing_type = '售后公房' WHERE id = :c"),
                     {"c": cid})  # fmt: skip
    for taxonomy in ("changshou", "changning"):
        p = api.get("admin", f"/api/reports/communities/{cid}?taxonomy={taxonomy}").json()
        t = p["classification"]["housing_type"]
        assert t["taxonomy"] == taxonomy and t["recorded"] == "售后公房"
        assert t["agrees_with_recorded"] == (None if t["code"] is None
                                             else t["code"] == "售后公房")  # fmt: skip
        assert 0 <= t["known_form_share"] <= 1
