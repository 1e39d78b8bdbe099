"""Leader candidates (backbone in the area first, then the nearest, audited, in scope only)
and undo (end the new term, give the seat back to the one it replaced, one transaction)."""

from __future__ import annotations

import sqlalchemy as sa

from gis import db


def _group_of(url: str, building: int) -> int:
    eng = db.create_engine(url, poolclass=sa.NullPool)
    try:
        with eng.connect() as conn:
            return int(
                conn.scalar(
                    sa.text("SELECT residents_group_id FROM building_path WHERE building_id = :b"),
                    {"b": building},
                )
            )
    finally:
        eng.dispose()


def _owner(url: str):
    return db.create_engine(url, poolclass=sa.NullPool)


def test_candidates_put_backbone_of_the_area_first_then_the_nearest(api):
    a, info, url = api
    group = _group_of(url, info.buildings["a1"][0])
    eng = _owner(url)
    with eng.begin() as conn:
        inside = [
            r[0]
            for r in conn.execute(
                sa.text(
                    "SELECT r.id FROM resident r JOIN building_path p ON p.building_id = "
                    "r.building_id WHERE p.residents_group_id = :g AND r.status <> 'registered' "
                    "ORDER BY r.id"
                ),
                {"g": group},
            )
        ]
        assert len(inside) >= 3
        conn.execute(sa.text("DELETE FROM backbone WHERE resident_id = ANY(:r)"), {"r": inside})
        chosen = inside[-1]  # the last by every other order: only its backbone entry lifts it
        conn.execute(
            sa.text("INSERT INTO backbone (resident_id, role) VALUES (:r, 'volunteer')"),
            {"r": chosen},
        )
        audits_before = conn.scalar(sa.text("SELECT count(*) FROM audit_log"))
    r = a.get("staff_a", f"/api/leaders/residents_group/{group}/candidates?limit=50")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["distance"] == "straight_line"
    items = body["items"]
    assert items[0]["resident_id"] == chosen
    assert items[0]["backbone"] == ["volunteer"] and items[0]["lives_inside"] is True
    distances = [i["distance_m"] for i in items[1:]]
    assert distances == sorted(distances)
    assert all(i["distance_m"] == 0 for i in items if i["lives_inside"])
    # every candidate is someone staff_a may see: residents of community A
    with eng.connect() as conn:
        communities = {
            c
            for (c,) in conn.execute(
                sa.text(
                    "SELECT DISTINCT b.community_id FROM resident r JOIN building b "
                    "ON b.id = r.building_id WHERE r.id = ANY(:r)"
                ),
                {"r": [i["resident_id"] for i in items]},
            )
        }
        audited = conn.execute(
            sa.text(
                "SELECT action, subject_ids FROM audit_log WHERE user_id = :u "
                "ORDER BY id DESC LIMIT 1"
            ),
            {"u": info.users["staff_a"]},
        ).one()
        assert conn.scalar(sa.text("SELECT count(*) FROM audit_log")) > audits_before
    eng.dispose()
    assert communities == {info.community_a}
    assert audited.action == "list"
    assert sorted(audited.subject_ids) == sorted(i["resident_id"] for i in items)


def test_candidates_outside_the_scope_are_not_found_and_other_roles_refused(api):
    a, info, url = api
    group_b = _group_of(url, info.buildings["b"][0])
    group_a = _group_of(url, info.buildings["a1"][0])
    outside = a.get("staff_a", f"/api/leaders/residents_group/{group_b}/candidates")
    missing = a.get("staff_a", "/api/leaders/residents_group/999999999/candidates")
    assert outside.status_code == missing.status_code == 404
    assert outside.json()["error"] == missing.json()["error"]
    url = "/api/leaders/residents_group/{}/candidates"
    assert a.get("planner_a", url.format(group_a)).status_code == 403
    assert a.get("staff_b", url.format(group_b)).status_code == 200


def test_undo_restores_the_previous_leader_in_one_step(api):
    a, info, url = api
    group = _group_of(url, info.buildings["a1"][0])
    first, second = info.residents["a1"][:2]
    base = f"/api/leaders/residents_group/{group}"
    one = a.put("staff_a", base, json={"resident_id": first})
    assert one.status_code == 200, one.text
    two = a.put(
        "staff_a", base, json={"resident_id": second, "replaces": one.json()["assignment_id"]}
    )
    assert two.status_code == 200 and two.json()["current"]["resident_id"] == second
    undone = a.post("staff_a", f"{base}/undo", json={"assignment_id": two.json()["assignment_id"]})
    assert undone.status_code == 200, undone.text
    body = undone.json()
    assert body["restored"] is True and body["current"]["resident_id"] == first
    assert body["assignment_id"] == body["current"]["id"] != one.json()["assignment_id"]
    # history: first (ended), second (ended), first again (current)
    assert [t["resident_id"] for t in body["history"]] == [first, second, first]
    assert [t["ended_at"] is None for t in body["history"]] == [True, False, False]
    # undoing a term that is no longer current is refused, in Chinese, and changes nothing
    again = a.post("staff_a", f"{base}/undo", json={"assignment_id": two.json()["assignment_id"]})
    assert again.status_code == 409 and "不是现任" in again.json()["message"]
    assert a.get("staff_a", base).json()["current"]["resident_id"] == first


def test_undo_of_a_first_assignment_leaves_the_seat_vacant(api):
    a, info, url = api
    group = _group_of(url, info.buildings["a1"][0])
    base = f"/api/leaders/residents_group/{group}"
    one = a.put("staff_a", base, json={"resident_id": info.residents["a1"][0]}).json()
    undone = a.post("staff_a", f"{base}/undo", json={"assignment_id": one["assignment_id"]})
    assert undone.status_code == 200, undone.text
    assert undone.json()["restored"] is False and undone.json()["current"] is None
    feats = a.get("staff_a", f"/api/areas/residents_groups/{group}").json()
    assert feats["properties"]["leader"] is None
    assert a.post("worker_a1", f"{base}/undo", json={"assignment_id": 1}).status_code == 403
