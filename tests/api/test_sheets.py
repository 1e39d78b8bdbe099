"""Ledger spreadsheets: export → import changes nothing; bad rows are shown, nothing written."""

from __future__ import annotations

import io

import openpyxl
import pytest

from gis.ledger import idcard

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
