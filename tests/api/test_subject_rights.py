"""A resident's own data (PIPL): the copy of everything held about them, and erasure."""

from __future__ import annotations

import datetime as dt
import io
import json

import openpyxl
import pytest
import sqlalchemy as sa

from gis import accounts, db
from gis.ledger import idcard
from gis.security import Keys
from gis.settings import Settings


def _owner_rows(url: str, sql: str, **params) -> list:
    eng = db.create_engine(url, poolclass=sa.NullPool)
    try:
        with eng.connect() as conn:
            return conn.execute(sa.text(sql), params).all()
    finally:
        eng.dispose()


def _new_resident(a, info, name: str, serial: int, room: str = "901", **headers) -> dict:
    number = idcard.make_id_number("320102", dt.date(1970, 3, 9), serial)
    body = {
        "name": name,
        "id_number": number,
        "phone": "13912340000",
        "building_id": info.buildings["a1"][0],
        "room": room,
    }
    r = a.post("staff_a", "/api/residents", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return {**r.json(), "etag": r.headers["etag"], "number": number}


def _entry(a, ledger: str, body: dict, **headers) -> dict:
    r = a.post("staff_a", f"/api/ledgers/{ledger}", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def test_export_holds_the_person_their_history_and_who_read_them(api):
    a, info, url = api
    me = _new_resident(a, info, "导出本人", 301)
    other = _new_resident(a, info, "别人甲乙", 302, room="902")
    rid = me["id"]
    sg = _entry(a, "special_groups", {"resident_id": rid, "category": "disabled"})
    kp = _entry(
        a, "key_persons", {"resident_id": rid, "category": "petitioner", "handling": "每月走访"}
    )
    bb = _entry(a, "backbone", {"resident_id": rid, "role": "volunteer"})
    _entry(
        a,
        "special_groups",
        {"resident_id": other["id"], "category": "low_income", "notes": "OTHER-MARK"},
    )
    r = a.patch(
        "staff_a", f"/api/residents/{rid}", json={"room": "903"}, headers={"If-Match": me["etag"]}
    )
    assert r.status_code == 200, r.text
    # another user reads the person (alone, then in a list with the other one), before
    assert a.get("worker_a1", f"/api/residents/{rid}").status_code == 200
    assert a.get("worker_a1", f"/api/ledgers/key_persons/{kp['id']}").status_code == 200
    assert a.get("worker_a1", "/api/residents?name=导出").status_code == 200
    assert a.get("worker_a1", "/api/residents?limit=500").status_code == 200

    r = a.get("staff_a", f"/api/residents/{rid}/subject-export")
    assert r.status_code == 200, r.text
    assert "no-store" in r.headers["cache-control"]
    doc = r.json()
    person = doc["resident"]
    assert person["id"] == rid and person["name"] == "导出本人" and person["room"] == "903"
    assert person["id_number"] == me["number"] and person["phone"] == "13912340000"
    assert [e["id"] for e in doc["special_groups"]] == [sg["id"]]
    assert doc["special_groups"][0]["category"] == "disabled"
    assert [(e["id"], e["handling"]) for e in doc["key_persons"]] == [(kp["id"], "每月走访")]
    assert [(e["id"], e["role"]) for e in doc["backbone"]] == [(bb["id"], "volunteer")]
    hist = {(h["ledger"], h["row_id"], h["action"]) for h in doc["history"]}
    assert {
        ("resident", rid, "insert"),
        ("resident", rid, "update"),
        ("special_group", sg["id"], "insert"),
        ("key_person", kp["id"], "insert"),
        ("backbone", bb["id"], "insert"),
    } == hist
    update = next(h for h in doc["history"] if h["action"] == "update")
    assert update["user"] == "staff_a" and update["new"]["room"] == "903"
    assert all("id_number_enc" not in (h["new"] or {}) for h in doc["history"])
    seen = {(s["user"], s["action"], s["subject"]) for s in doc["audit"]}
    assert {
        ("worker_a1", "read", "resident"),
        ("worker_a1", "read", "key_person"),
        ("worker_a1", "search", "resident"),
        ("worker_a1", "list", "resident"),
        ("staff_a", "subject_export", "resident"),
    } <= seen
    assert all(set(s) == {"at", "user", "action", "subject", "detail"} for s in doc["audit"])
    # nothing of anyone else: not the other's name, number, entry or list membership
    text = json.dumps(doc, ensure_ascii=False)
    for foreign in ("别人甲乙", other["number"], "OTHER-MARK", "low_income"):
        assert foreign not in text
    # the export itself is audited
    rows = _owner_rows(
        url,
        "SELECT user_id FROM audit_log WHERE action = 'subject_export' AND :i = ANY(subject_ids)",
        i=rid,
    )
    assert [r.user_id for r in rows] == [info.users["staff_a"]]


def test_export_is_for_admins_and_staff_of_the_area(api):
    a, info, db_url = api
    rid = info.residents["a1"][0]
    url = f"/api/residents/{rid}/subject-export"
    missing = a.get("staff_b", "/api/residents/999999999/subject-export")
    out = a.get("staff_b", url)
    assert out.status_code == missing.status_code == 404
    assert out.json()["error"] == missing.json()["error"]
    for user in ("worker_a1", "leader_a1", "planner_a"):
        assert a.get(user, url).status_code == 403, user
    assert a.get("admin", url).json()["resident"]["id"] == rid
    book = a.get("staff_a", url + "?format=xlsx")
    assert book.status_code == 200 and "no-store" in book.headers["cache-control"]
    wb = openpyxl.load_workbook(io.BytesIO(book.content))
    assert wb.sheetnames[0] == "居民信息" and "查阅记录" in wb.sheetnames
    values = {row[0]: row[1] for row in wb["居民信息"].iter_rows(min_row=2, values_only=True)}
    assert values["id"] == rid and "*" not in values["id_number"]
    # the same scope for erasure
    body = {"reason": "本人申请删除"}
    r = a.post("staff_b", f"/api/residents/{rid}/erase", json=body, headers={"If-Match": '"1"'})
    assert r.status_code == 404
    r = a.post("worker_a1", f"/api/residents/{rid}/erase", json=body, headers={"If-Match": '"1"'})
    assert r.status_code == 403
    assert _owner_rows(db_url, "SELECT id FROM resident WHERE id = :i", i=rid)


def test_erase_removes_the_person_and_keeps_who_saw_them(api):
    a, info, url = api
    me = _new_resident(a, info, "删除本人", 311, **{"Idempotency-Key": "erase-me-1"})
    rid = me["id"]
    _entry(a, "special_groups", {"resident_id": rid, "category": "disabled"})
    _entry(
        a,
        "key_persons",
        {"resident_id": rid, "category": "released", "notes": "删除本人的记录"},
        **{"Idempotency-Key": "erase-me-2"},
    )
    _entry(a, "backbone", {"resident_id": rid, "role": "party_member"})
    assert a.get("worker_a1", f"/api/residents/{rid}").status_code == 200
    assert a.get("admin", f"/api/residents/{rid}?reveal=phone").status_code == 200
    audit_sql = (
        "SELECT id, user_id, action, detail FROM audit_log WHERE :i = ANY(subject_ids) ORDER BY id"
    )
    erase_url = f"/api/residents/{rid}/erase"
    etag = a.get("staff_a", f"/api/residents/{rid}").headers["etag"]
    before = _owner_rows(url, audit_sql, i=rid)
    assert {(r.user_id, r.action) for r in before} >= {
        (info.users["worker_a1"], "read"),
        (info.users["admin"], "reveal"),
    }
    assert a.post("staff_a", erase_url, json={"reason": "x"}).status_code == 428
    r = a.post("staff_a", erase_url, json={}, headers={"If-Match": etag})
    assert r.status_code == 422
    r = a.post(
        "staff_a", erase_url, json={"reason": "本人书面申请删除"}, headers={"If-Match": etag}
    )
    assert r.status_code == 200, r.text
    assert r.json()["removed"] == {"backbone": 1, "key_person": 1, "special_group": 1}

    # right after the answer, in the database as its owner sees it
    for table in ("special_group", "key_person", "backbone", "leader_assignment"):
        left = _owner_rows(url, f"SELECT id FROM {table} WHERE resident_id = :i", i=rid)
        assert left == [], table
    assert _owner_rows(url, "SELECT id FROM resident WHERE id = :i", i=rid) == []
    hist = _owner_rows(
        url,
        "SELECT h.*, h::text AS whole FROM ledger_history h WHERE resident_id = :i ORDER BY id",
        i=rid,
    )
    ledgers = ("resident", "special_group", "key_person", "backbone")
    assert len(hist) == 8  # four inserts, four deletes: who, when and what stay
    assert {(h.ledger, h.action) for h in hist} == {
        (ledger, action) for ledger in ledgers for action in ("insert", "delete")
    }
    assert {h.user_id for h in hist} == {info.users["staff_a"]}
    for h in hist:
        assert h.old in (None, {"erased": True}) and h.new in (None, {"erased": True})
        masks = (idcard.mask_id_number(me["number"]), idcard.mask_phone("13912340000"))
        for secret in ("删除本人", me["number"], "13912340000", *masks):
            assert secret not in h.whole
    anywhere = _owner_rows(url, "SELECT id FROM ledger_history h WHERE h::text LIKE '%删除本人%'")
    assert anywhere == []
    # a retried create must not bring the person back from a stored answer
    kept = _owner_rows(url, "SELECT key FROM idempotency_key WHERE key LIKE 'erase-me-%'")
    assert kept == []
    # who saw them stays, untouched; one row more says who erased them and why
    after = _owner_rows(url, audit_sql, i=rid)
    assert after[: len(before)] == before
    assert [(r.user_id, r.action) for r in after[len(before) :]] == [
        (info.users["staff_a"], "erase")
    ]
    assert after[-1].detail["reason"] == "本人书面申请删除"
    # idempotent: a second erase finds nobody
    again = a.post("staff_a", erase_url, json={"reason": "再次"}, headers={"If-Match": etag})
    assert again.status_code == 404
    assert a.get("staff_a", f"/api/residents/{rid}").status_code == 404


def test_a_stale_erase_or_a_current_leader_changes_nothing(api):
    a, info, url = api
    me = _new_resident(a, info, "仍在此处", 321)
    rid = me["id"]
    _entry(a, "special_groups", {"resident_id": rid, "category": "disabled"})
    fresh = a.patch(
        "staff_a", f"/api/residents/{rid}", json={"room": "905"}, headers={"If-Match": me["etag"]}
    ).headers["etag"]
    erase_url = f"/api/residents/{rid}/erase"
    body = {"reason": "本人申请"}

    def unchanged() -> None:
        assert _owner_rows(url, "SELECT id FROM resident WHERE id = :i", i=rid)
        assert _owner_rows(url, "SELECT id FROM special_group WHERE resident_id = :i", i=rid)
        named = _owner_rows(
            url,
            "SELECT id FROM ledger_history h WHERE resident_id = :i AND h::text LIKE '%仍在此处%'",
            i=rid,
        )
        assert len(named) == 2  # the insert and the update still hold the name
        erases = _owner_rows(url, "SELECT id FROM audit_log WHERE action = 'erase'")
        assert erases == []

    r = a.post("staff_a", erase_url, json=body, headers={"If-Match": me["etag"]})
    assert r.status_code == 412
    unchanged()
    building = info.buildings["a1"][0]
    lead = a.put("staff_a", f"/api/leaders/building/{building}", json={"resident_id": rid})
    assert lead.status_code == 200, lead.text
    r = a.post("staff_a", erase_url, json=body, headers={"If-Match": fresh})
    assert r.status_code == 409
    assert f"DELETE /api/leaders/building/{building}/" in r.json()["detail"]
    unchanged()
    term = lead.json()["current"]["id"]
    assert a.delete("staff_a", f"/api/leaders/building/{building}/{term}").status_code == 200
    r = a.post("staff_a", erase_url, json=body, headers={"If-Match": fresh})
    assert r.status_code == 200, r.text
    assert r.json()["removed"] == {"special_group": 1, "leader_assignment": 1}


def test_the_functions_refuse_what_they_are_not_for(api):
    """Called directly as the app role: no trail of another area, no scrub of a live person."""
    a, info, url = api
    app_url = db.app_role_url(url, Keys.from_settings(Settings()).db_password())
    eng = db.create_engine(app_url, poolclass=sa.NullPool)
    rid = info.residents["a1"][0]
    assert a.get("worker_a1", f"/api/residents/{rid}").status_code == 200
    try:
        for user, expected in (("staff_b", 0), ("worker_a1", 0), ("staff_a", 1)):
            a.as_(user)
            with eng.begin() as conn:
                assert accounts.session_user(conn, a.tokens[user]) is not None
                rows = conn.execute(sa.text("SELECT * FROM ga_subject_audit(:i)"), {"i": rid}).all()
                assert min(len(rows), 1) == expected, user
        with pytest.raises(sa.exc.ProgrammingError, match="not removed"), eng.begin() as conn:
            accounts.session_user(conn, a.tokens["staff_a"])
            conn.execute(sa.text("SELECT * FROM ga_scrub_erased(:i)"), {"i": rid})
    finally:
        eng.dispose()
