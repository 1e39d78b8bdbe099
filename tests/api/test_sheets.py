"""Ledger spreadsheets: export → import changes nothing; bad rows are shown, nothing written."""

from __future__ import annotations

import csv
import io

import openpyxl
import pytest

from gis.ledger import idcard
from gis.ledger.tabular import MAX_FILE_BYTES
from tests.gis.test_ledger_tabular import big_cell_xlsx

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _upload(a, user, ledger, data, name, mode="preview", **params):
    return a.post(
        user,
        f"/api/ledgers/{ledger}/import",
        params={"mode": mode, **params},
        files={"file": (name, data, XLSX if name.endswith("xlsx") else "text/csv")},
    )


@pytest.mark.parametrize("fmt", ["xlsx", "csv"])
def test_export_import_round_trip(api, fmt):
    a, info, _url = api
    rid = info.residents["a1"][0]
    a.post(
        "staff_a", "/api/ledgers/special_groups", json={"resident_id": rid, "category": "disabled"}
    )
    for ledger in ("residents", "special_groups", "backbone"):
        r = a.get("staff_a", f"/api/ledgers/{ledger}/export", params={"format": fmt})
        assert r.status_code == 200, r.text
        exported = r.content
        before = a.get("staff_a", "/api/residents?limit=1").json()["total"]
        plan = _upload(a, "staff_a", ledger, exported, f"x.{fmt}", mode="all").json()
        assert plan["errors"] == [] and plan["added"] == 0 and plan["updated"] == 0, plan
        assert plan["unchanged"] == plan["total_rows"] > 0
        assert a.get("staff_a", "/api/residents?limit=1").json()["total"] == before
        again = a.get("staff_a", f"/api/ledgers/{ledger}/export", params={"format": fmt}).content
        if fmt == "csv":
            assert again == exported


def test_export_holds_numbers_in_clear_so_only_staff_export(api):
    a, _info, _url = api
    assert a.get("worker_a1", "/api/ledgers/residents/export").status_code == 403
    r = a.get("staff_a", "/api/ledgers/residents/export")
    wb = openpyxl.load_workbook(io.BytesIO(r.content))
    ws = wb.worksheets[0]
    headings = [c.value for c in ws[1]]
    assert headings[:4] == ["姓名", "性别", "出生日期", "身份证号"]
    number = ws.cell(row=2, column=4).value
    assert idcard.validate_id_number(number)[0] == number


def test_bad_rows_are_listed_and_nothing_is_written(api):
    a, info, _url = api
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["居民台账"])  # a title row above the headings, as staff keep them
    ws.append(["姓名", "身份证号", "联系电话", "楼栋", "室号", "与户主关系"])
    b = a.get("staff_a", f"/api/buildings/{info.buildings['a1'][0]}/path").json()[0]["code"]
    good = idcard.make_id_number("320102", __import__("datetime").date(1980, 1, 2), 11)
    bad = good[:-1] + ("1" if good[-1] != "1" else "2")
    ws.append(["张三", good, "13800001111", b, "101", "户主"])
    ws.append(["李四", bad, "13800001112", b, "102", "户主"])
    ws.append(
        [
            "王五",
            idcard.make_id_number("320102", __import__("datetime").date(1990, 3, 4), 12),
            "12",
            b,
            "103",
            "户主",
        ]
    )
    ws.append(
        [
            "赵六",
            idcard.make_id_number("320102", __import__("datetime").date(1991, 3, 4), 13),
            "",
            "w999999999",
            "104",
            "户主",
        ]
    )
    buf = io.BytesIO()
    wb.save(buf)
    data = buf.getvalue()
    total = a.get("staff_a", "/api/residents?limit=1").json()["total"]
    preview = _upload(a, "staff_a", "residents", data, "people.xlsx").json()
    assert preview["total_rows"] == 4 and preview["valid_rows"] == 1 and not preview["written"]
    rows = {(e["row"], e["column"]) for e in preview["errors"]}
    assert rows == {(4, "身份证号"), (5, "联系电话"), (6, "楼栋")}, preview["errors"]
    strict = _upload(a, "staff_a", "residents", data, "people.xlsx", mode="all")
    assert strict.status_code == 422 and not strict.json()["written"]
    assert a.get("staff_a", "/api/residents?limit=1").json()["total"] == total
    some = _upload(a, "staff_a", "residents", data, "people.xlsx", mode="valid_only").json()
    assert some["written"] and some["added"] == 1
    assert a.get("staff_a", "/api/residents?limit=1").json()["total"] == total + 1
    # a grid worker may preview but not write
    assert _upload(a, "worker_a1", "residents", data, "p.xlsx", mode="all").status_code == 403
    # a broken file: one clear reason, nothing written
    r = _upload(a, "staff_a", "residents", b"PK\x03\x04 broken", "broken.xlsx", mode="all")
    assert r.status_code == 422 and r.json()["errors"][0]["row"] == 0


def test_template_has_instructions(api):
    a, _info, _url = api
    r = a.get("staff_a", "/api/ledgers/key_persons/template")
    wb = openpyxl.load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames[-1] == "填写说明"


def _total(a) -> int:
    return a.get("staff_a", "/api/residents?limit=1").json()["total"]


def test_xlsx_with_a_600_mb_cell_is_refused_with_a_short_413(api):
    a, _info, _url = api
    data = big_cell_xlsx(600)  # about 600 KB, as in the finding
    assert len(data) < 1_000_000
    before = _total(a)
    r = _upload(a, "staff_a", "residents", data, "people.xlsx", mode="all")
    assert r.status_code == 413, r.text[:500]
    assert len(r.content) < 10_000
    body = r.json()
    assert body["error"] == "TooLarge"
    assert "50 MB" in body["detail"] and "save it as CSV" in body["detail"]
    assert _total(a) == before


def test_csv_of_a_million_rows_or_over_10_mb_is_a_413(api):
    a, _info, _url = api
    before = _total(a)
    head = "姓名,身份证号,楼栋,室号\r\n".encode()
    rows = head + b"a,,,\r\n" * (MAX_FILE_BYTES // 7)  # 1.5 million rows in 10 MB
    r = _upload(a, "staff_a", "residents", rows, "people.csv", mode="all")
    assert r.status_code == 413 and "split the file" in r.json()["detail"]
    assert len(r.content) < 10_000
    big = head + b"a" * MAX_FILE_BYTES
    r = _upload(a, "staff_a", "residents", big, "people.csv", mode="all")
    assert r.status_code == 413 and "10 MB" in r.json()["detail"]
    assert _total(a) == before


def test_long_values_are_echoed_short(api):
    a, _info, _url = api
    long = "名" * 9_000  # under the cell cap, over the column's 100 characters
    buf = io.StringIO(newline="")
    csv.writer(buf).writerows([["姓名", "身份证号", "楼栋", "室号", long], [long, "1", "x", "1"]])
    r = _upload(a, "staff_a", "residents", buf.getvalue().encode(), "p.csv")
    assert r.status_code == 200
    plan = r.json()
    names = [e for e in plan["errors"] if e["column"] == "姓名"]
    assert names and names[0]["value"] == "名" * 200 + "…"
    assert all(len(w) <= 301 for w in plan["warnings"]) and plan["warnings"]
    assert len(r.content) < 10_000


def test_csv_export_neutralises_formulas_and_reads_back(api):
    a, info, _url = api
    rid = info.residents["a1"][0]
    etag = a.get("staff_a", f"/api/residents/{rid}").headers["etag"]
    edit = {"name": '=HYPERLINK("http://evil.example")', "room": "-1", "notes": "@SUM(1)"}
    r = a.patch("staff_a", f"/api/residents/{rid}", json=edit, headers={"If-Match": etag})
    assert r.status_code == 200, r.text
    exported = a.get("staff_a", "/api/ledgers/residents/export", params={"format": "csv"}).content
    rows = list(csv.reader(io.StringIO(exported.decode("utf-8-sig"), newline="")))
    mine = next(row for row in rows if row[0].startswith("'=HYPERLINK"))
    assert mine[6] == "'-1" and mine[-1] == "'@SUM(1)"
    assert idcard.validate_id_number(mine[3])[0] == mine[3]  # the number stays in clear
    for row in rows:
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row)
    plan = _upload(a, "staff_a", "residents", exported, "x.csv", mode="all").json()
    assert plan["errors"] == [] and plan["added"] == plan["updated"] == 0, plan
    assert a.get("staff_a", f"/api/residents/{rid}").json()["name"] == edit["name"]
    xlsx = a.get("staff_a", "/api/ledgers/residents/export").content
    ws = openpyxl.load_workbook(io.BytesIO(xlsx)).worksheets[0]
    cell = next(c for c in ws["A"] if c.value == edit["name"])
    assert cell.data_type == "s"  # text, not a formula


def _statements(a):
    """A counter of the SQL statements the app's engine runs (an executemany counts once)."""
    import sqlalchemy as sa

    count = [0]
    sa.event.listen(a.client.app.state.engine, "before_cursor_execute",
                    lambda *_a, **_k: count.__setitem__(0, count[0] + 1))  # fmt: skip
    return count


def _sheet(rows: list[list[str]]) -> bytes:
    buf = io.StringIO(newline="")
    csv.writer(buf).writerows([["姓名", "身份证号", "联系电话", "楼栋", "室号"], *rows])
    return buf.getvalue().encode()


def _new_people(code: str, n: int, start: int = 0) -> list[list[str]]:
    import datetime as dt

    return [
        [f"新{i}", idcard.make_id_number("320102", dt.date(1970, 1, 1 + i % 28), 600 + i),
         f"1390000{i:04d}", code, str(100 + i)]
        for i in range(start, start + n)
    ]  # fmt: skip


def test_preview_runs_the_same_few_statements_for_3_rows_or_60(api):
    a, info, _url = api
    code = a.get("staff_a", f"/api/buildings/{info.buildings['a1'][0]}/path").json()[0]["code"]
    count = _statements(a)
    seen = []
    for n in (3, 60):
        count[0] = 0
        r = _upload(a, "staff_a", "residents", _sheet(_new_people(code, n)), "p.csv")
        assert r.status_code == 200 and r.json()["added"] == n, r.text
        seen.append(count[0])
    assert seen[0] == seen[1] <= 15, seen


def test_import_writes_in_batches_and_history_sees_each_change(api):
    a, info, url = api
    import sqlalchemy as sa

    from gis import db

    code = a.get("staff_a", f"/api/buildings/{info.buildings['a1'][0]}/path").json()[0]["code"]
    exported = a.get("staff_a", "/api/ledgers/residents/export", params={"format": "csv"})
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"), newline="")))
    head, people = rows[0], rows[1:]
    phone = head.index("联系电话")
    people[0][phone] = "13911112222"  # an update
    people[1][phone] = "12"  # a bad row: skipped with valid_only
    buf = io.StringIO(newline="")
    csv.writer(buf).writerows([head, *people])
    fresh = _new_people(code, 30)
    wide = ["" for _ in head]
    for p in fresh:
        row = list(wide)
        for value, key in zip(p, ("姓名", "身份证号", "联系电话", "楼栋", "室号"), strict=True):
            row[head.index(key)] = value
        csv.writer(buf).writerow(row)
    plan = _upload(a, "staff_a", "residents", buf.getvalue().encode(), "x.csv",
                   mode="valid_only").json()  # fmt: skip
    assert plan["written"] and plan["added"] == 30 and plan["updated"] == 1, plan
    assert plan["bad_rows"] == 1 and plan["unchanged"] == len(people) - 2
    eng = db.create_engine(url, poolclass=sa.NullPool)
    with eng.connect() as conn:
        history = conn.execute(
            sa.text("SELECT action, user_id, new ->> 'room' AS room, new ->> 'version' AS v, "
                    "new ->> 'phone_masked' AS phone "
                    "FROM ledger_history WHERE ledger = 'resident' AND user_id = :u"),
            {"u": info.users["staff_a"]},
        ).all()  # fmt: skip
        audit = conn.execute(
            sa.text("SELECT subject_ids FROM audit_log WHERE action = 'import valid_only'")
        ).scalar_one()
    eng.dispose()
    inserts = [h for h in history if h.action == "insert"]
    updates = [h for h in history if h.action == "update"]
    assert sorted(h.room for h in inserts) == sorted(p[4] for p in fresh)
    assert len(updates) == 1 and updates[0].v == "2"
    assert len(audit) == len(people) - 1  # every person compared, the bad row's apart
    assert updates[0].phone.endswith("2222")


def test_a_number_registered_elsewhere_is_refused_and_counted(api):
    a, info, url = api
    import sqlalchemy as sa

    from gis import db
    from gis.security import Keys
    from gis.settings import Settings

    eng = db.create_engine(url, poolclass=sa.NullPool)
    with eng.connect() as conn:
        blob = conn.scalar(sa.text("SELECT id_number_enc FROM resident WHERE id = :i"),
                           {"i": info.residents["b"][0]})  # fmt: skip
    number = Keys.from_settings(Settings()).open(blob, "resident.id_number")
    code = a.get("staff_a", f"/api/buildings/{info.buildings['a1'][0]}/path").json()[0]["code"]
    rows = [*_new_people(code, 2), ["甲", number, "", code, "9"]]
    plan = _upload(a, "staff_a", "residents", _sheet(rows), "p.csv", mode="all")
    assert plan.status_code == 422
    errors = plan.json()["errors"]
    assert [(e["row"], e["column"]) for e in errors] == [(4, "身份证号")]
    assert errors[0]["code"] == "registered_elsewhere"
    with eng.connect() as conn:
        detail = conn.scalar(
            sa.text("SELECT detail FROM audit_log WHERE action = 'import all' ORDER BY id DESC")
        )
    eng.dispose()
    assert detail["registered_elsewhere"] == 1 and detail["id_numbers_looked_up"] == 3


def test_entries_and_organisations_import_updates_in_batches(api):
    a, info, _url = api
    rid = info.residents["a1"][0]
    a.post("staff_a", "/api/ledgers/special_groups",
           json={"resident_id": rid, "category": "disabled"})  # fmt: skip
    exported = a.get("staff_a", "/api/ledgers/special_groups/export", params={"format": "csv"})
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"), newline="")))
    rows[1][-1] = "新备注"
    buf = io.StringIO(newline="")
    csv.writer(buf).writerows(rows)
    plan = _upload(a, "staff_a", "special_groups", buf.getvalue().encode(), "s.csv", mode="all")
    assert plan.json()["updated"] == 1 and plan.json()["written"], plan.text
    listed = a.get("staff_a", "/api/ledgers/special_groups").json()["items"]
    assert "新备注" in {i["notes"] for i in listed}
    orgs = "名称,类型,联系电话,地址\r\n甲店,商户,13912345678,一路1号\r\n乙厂,企业,,二路2号\r\n"
    params = {"community_id": info.community_a}
    plan = _upload(a, "staff_a", "organisations", orgs.encode(), "o.csv", mode="all", **params)
    assert plan.json()["added"] == 2, plan.text
    again = orgs.replace("13912345678", "13912345679")
    plan = _upload(a, "staff_a", "organisations", again.encode(), "o.csv", mode="all", **params)
    body = plan.json()
    assert body["updated"] == 1 and body["unchanged"] == 1 and body["written"], body
