"""The community report as PDF (rendered with pdftoppm, its text read back with pdftotext),
an Excel workbook (opened with openpyxl), CSV and GeoJSON: the expected tables and values,
each figure with its source."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import subprocess

import pytest
import sqlalchemy as sa
from openpyxl import load_workbook

from api.routes.patrol import clock
from gis import db

NOW = dt.datetime(2026, 12, 3, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


@pytest.fixture
def fixed(api):
    client, info, url = api
    client.client.app.dependency_overrides[clock] = lambda: NOW
    eng = db.create_engine(url, poolclass=sa.NullPool)
    with eng.begin() as conn:
        uid = conn.scalar(sa.text("SELECT id FROM app_user WHERE username = 'worker_a1'"))
        for cat in ("parking", "parking", "lift"):
            conn.execute(
                sa.text(
                    "INSERT INTO problem (building_id, category, description, handling, "
                    "reported_by, reported_at, geom) SELECT b.id, :c, 'x', 'immediate', :u, "
                    ":at, ST_PointOnSurface(b.geom) FROM building b WHERE b.id = :b"
                ),
                {"c": cat, "u": uid, "at": NOW - dt.timedelta(days=2),
                 "b": info.buildings["a1"][0]},
            )  # fmt: skip
    yield client, info, eng
    eng.dispose()


def _households(eng, cid: int) -> int:
    with eng.connect() as conn:
        return int(conn.scalar(sa.text(
            "SELECT coalesce(sum(d.households), 0) FROM dwelling_all d JOIN building b "
            "ON b.id = d.building_id WHERE b.community_id = :c"), {"c": cid}))  # fmt: skip


def test_the_pdf_renders_and_shows_the_figures(fixed, tmp_path) -> None:
    api, info, eng = fixed
    cid = info.community_a
    r = api.get("staff_a", f"/api/community-reports/{cid}/report.pdf")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf" and r.content[:5] == b"%PDF-"
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(r.content)
    subprocess.run(["pdftoppm", "-r", "50", "-png", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page*.png"))
    assert pages and all(p.stat().st_size > 2000 for p in pages)  # drawn, not blank
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True,
                          capture_output=True, text=True).stdout  # fmt: skip
    hh = _households(eng, cid)
    assert "社区概况" in text and "同心家园星级" in text
    assert str(hh) in text
    assert "gis.reports.profiles" in text  # sources are printed
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("parking"))
    assert line.split()[1:4] == ["2", "0", "2"]
    html = api.get("staff_a", f"/api/community-reports/{cid}/report.html").text
    assert 'data-figure="households"' in html
    assert api.get("staff_a", f"/api/community-reports/{info.community_b}/report.pdf"
                   ).status_code == 404  # fmt: skip
    assert api.get("planner_a", f"/api/community-reports/{cid}/report.pdf").status_code == 403


def test_the_workbook_csv_and_geojson(fixed) -> None:
    api, info, eng = fixed
    cid = info.community_a
    r = api.get("staff_a", f"/api/community-reports/{cid}/report.xlsx")
    assert r.status_code == 200, r.text
    wb = load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames == ["profile", "norms", "rating", "problems"]
    prof = {row[0]: row for row in wb["profile"].iter_rows(min_row=2, values_only=True)}
    assert prof["households"][1] == _households(eng, cid)
    assert prof["households"][3].startswith("gis.reports.profiles")
    with eng.connect() as conn:
        buildings = conn.scalar(sa.text("SELECT count(*) FROM building WHERE community_id = :c"),
                                {"c": cid})  # fmt: skip
    assert prof["buildings"][1] == buildings
    probs = {row[0]: row[1:4] for row in wb["problems"].iter_rows(min_row=2, values_only=True)}
    assert probs == {"lift": (1, 0, 1), "parking": (2, 0, 2)}
    rating = {row[0]: row for row in wb["rating"].iter_rows(min_row=2, values_only=True)}
    assert (
        rating["stars"][1] in (1, 2, 3, 4, 5) and rating["no_illegal_construction"][1] == "passed"
    )
    assert all(row[-1] for ws in wb for row in ws.iter_rows(min_row=2, values_only=True))
    rows = list(csv.DictReader(io.StringIO(api.get(
        "staff_a", f"/api/community-reports/{cid}/report.csv").text)))  # fmt: skip
    got = {(x["table"], x["figure"]): x["value"] for x in rows}
    assert got[("problems", "parking.reported")] == "2"
    assert got[("profile", "households")] == str(_households(eng, cid))
    assert all(x["source"] for x in rows)
    gj = json.loads(api.get("staff_a", f"/api/community-reports/{cid}/report.geojson").text)
    assert len(gj["features"]) == buildings
    assert sum(f["properties"]["households"] for f in gj["features"]) == _households(eng, cid)
