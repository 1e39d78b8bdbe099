"""The community report as PDF (rendered with pdftoppm, its text read back with pdftotext),
an Excel workbook (opened with openpyxl), CSV and GeoJSON: the expected tables and values,
each figure with its source."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import sqlalchemy as sa
from openpyxl import load_workbook

from api.routes.patrol import clock
from gis import db, i18n
from gis.categories import load_categories

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
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
    assert f"{hh:,}" in text  # printed with thousands separators
    assert "gis.reports.profiles" in text  # sources are printed
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("停车"))
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


class _Cells(HTMLParser):
    """The text of every header, figure, value and unit cell of the report's tables."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[tuple[str, str]] = []  # (kind, text)
        self._kind: str | None = None

    def handle_starttag(self, tag, attrs) -> None:
        cls = dict(attrs).get("class") or ""
        if tag == "th":
            self._kind = "fig" if cls == "fig" else "head"
        elif tag == "td":
            self._kind = cls if cls in ("v", "u") else None
        if self._kind:
            self.cells.append((self._kind, ""))

    def handle_endtag(self, tag) -> None:
        if tag in ("th", "td"):
            self._kind = None

    def handle_data(self, data) -> None:
        if self._kind:
            kind, text = self.cells[-1]
            self.cells[-1] = (kind, text + data)


def _patterns(lang: str, labels: list[str]) -> list[re.Pattern]:
    """Every text the catalogue has for ``lang`` ({params} as wildcards), and the labels of
    the configuration (rating.toml, classification.toml) in that language."""
    out = [re.compile("^" + re.sub(r"\\\{\w+\\\}", ".+", re.escape(t)) + "$")
           for t in i18n.texts(lang).values()]  # fmt: skip
    return out + [re.compile("^" + re.escape(x) + "$") for x in labels]


NUMBER = re.compile(r"^-?[\d,]+(\.\d+)?%?$")


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_word_of_the_printed_report_is_the_readers_language(fixed, tmp_path, lang) -> None:
    api, info, eng = fixed
    cid = info.community_a
    headers = {"Accept-Language": "en-GB,en;q=0.9"} if lang == "en" else {}
    html = api.get("staff_a", f"/api/community-reports/{cid}/report.html", headers=headers).text
    assert f'lang="{"zh-CN" if lang == "zh" else "en"}"' in html
    rating = api.get("staff_a", f"/api/reports/communities/{cid}/rating").json()
    labels = [v[f"label_{lang}"] for v in (rating["indicators"] | rating["gates"]).values()]
    prof = api.get("staff_a", f"/api/reports/communities/{cid}").json()["classification"]
    labels.append(prof["households_band"][f"label_{lang}"])
    labels += [c.label(lang) for c in load_categories()]  # the facility categories' file
    patterns = _patterns(lang, labels)
    if lang == "zh" and prof["housing_type"]["code"]:
        patterns.append(re.compile("^" + re.escape(prof["housing_type"]["code"]) + "$"))
    parser = _Cells()
    parser.feed(html)
    assert len(parser.cells) > 60
    foreign = []
    for kind, text in parser.cells:
        for part in text.split("; ") if kind == "v" else [text]:
            # a reach value is "category share; …": the category's label, then a number
            words = part.rsplit(" ", 1)[0] if kind == "v" and " " in part else part
            if not words or NUMBER.match(words):
                continue
            if not any(p.match(words) for p in patterns):
                foreign.append((kind, words))
    assert foreign == []
    # the PDF says the same: the other language's words of the report are nowhere in it
    r = api.get("staff_a", f"/api/community-reports/{cid}/report.pdf?lang={lang}")
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(r.content)
    ARTIFACTS.mkdir(exist_ok=True)  # the first page, to look at
    subprocess.run(["pdftoppm", "-r", "70", "-png", "-f", "1", "-l", "1", "-singlefile",
                    str(pdf), str(ARTIFACTS / f"report-{lang}")], check=True)  # fmt: skip
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True,
                          capture_output=True, text=True).stdout  # fmt: skip
    other = "en" if lang == "zh" else "zh"
    theirs = {k: v for k, v in i18n.texts(other, "report.").items()
              if v != i18n.t(k, lang) and "{" not in v}  # fmt: skip
    # (a word inside a query's name, "PROFILES.buildings", is the name's, not a word)
    found = [v for v in theirs.values() if re.search(rf"(?<![\w.]){re.escape(v)}(?![\w.])", text)]
    assert theirs and found == []
    mine = i18n.texts(lang, "report.head.")
    assert all(v in text for v in mine.values())
    word = {"zh": ("通过", "停车"), "en": ("passed", "Parking")}[lang]
    assert all(w in text for w in word)
    if lang == "zh":
        assert re.search(r"\b(passed|failed|weight|cap|figure|Profile)\b", text) is None
