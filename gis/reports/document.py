"""The per-community report: print-ready HTML and PDF (WeasyPrint), an Excel workbook (one
sheet per table), CSV and GeoJSON. Every figure carries its source.

``community_report`` reads (profile, norms, rating, problems by category); the writers below
turn that into files and touch no database.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from html import escape
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis import i18n, permissions
from gis.audit import Who
from gis.categories import load_categories
from gis.reports import classify, indicators, profiles, ratings

SRC = "gis.reports.document"
PROBLEMS = """
    SELECT p.category, count(*) AS reported, count(*) FILTER (WHERE p.status = 'closed') AS closed,
           count(*) FILTER (WHERE p.status <> 'closed') AS open
      FROM problem p JOIN building b ON b.id = p.building_id
     WHERE b.community_id = :cid GROUP BY p.category ORDER BY p.category
"""
BUILDINGS = f"""
    WITH bh AS ({profiles.BUILDING_HOUSEHOLDS} WHERE b.community_id = :cid)
    SELECT bh.id, bh.households, bh.is_registered, b.name, ST_AsGeoJSON(b.geom, 7) AS geom
      FROM bh JOIN building b ON b.id = bh.id ORDER BY bh.id
"""


def _text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _labels(prof: dict, rate: dict) -> dict[str, dict[str, str]]:
    """Labels of the rows and values that the configuration names (indicators and gates of
    ``rating.toml``, the household band, the housing type): text -> language -> label."""
    band = prof["classification"]["households_band"]
    kind = prof["classification"]["housing_type"]
    tax = classify.taxonomy(kind["taxonomy"])
    kinds = {t.code: t.label_en for t in tax.types}
    out = {band["label_zh"]: {"zh": band["label_zh"], "en": band["label_en"]}}
    if kind["code"] is not None:
        out[kind["code"]] = {"zh": kind["code"], "en": kinds.get(kind["code"], kind["code"])}
    for k, v in (rate["indicators"] | rate["gates"]).items():
        out[k] = {"zh": v["label_zh"], "en": v["label_en"]}
    return out


def community_report(conn: Connection, user: Who, community_id: int, now: dt.datetime) -> dict:
    """Every table of one community's report (staff; a 404 outside their areas)."""
    permissions.require(user, "rate_committees", "print community reports")
    prof = profiles.profile(conn, user, community_id)
    norms = indicators.community_norms(conn, user, community_id, now)
    rate = ratings.community_rating(conn, user, community_id, now, norms=norms)
    rows_profile = [(k, f["value"], f.get("unit"), f["source"]) for k, f in prof["figures"].items()]
    band = prof["classification"]["households_band"]
    kind = prof["classification"]["housing_type"]
    rows_profile += [
        ("households_band", band["label_zh"], None, band["source"]),
        ("housing_type", kind["code"], None, kind["source"]),
    ]
    rows_norms = [(k, f["value"], f.get("unit"), f["source"]) for k, f in norms["figures"].items()]
    rows_rating = [
        (k, f["value"], f"weight {f['weight']}", f["source"]) for k, f in rate["indicators"].items()
    ]
    rows_rating += [
        (g, "passed" if v["passed"] else "failed", f"cap {v['cap']}", v["source"])
        for g, v in rate["gates"].items()
    ]
    rows_rating += [
        ("score", rate["score"], "share", rate["source"]),
        ("stars", rate["stars"], "stars", rate["source"]),
    ]
    problems = [
        (r.category, int(r.reported), int(r.closed), int(r.open), f"{SRC}.PROBLEMS")
        for r in conn.execute(sa.text(PROBLEMS), {"cid": community_id})
    ]
    return {
        "community": {"id": prof["id"], "code": prof["code"], "name": prof["name"]},
        "at": now.isoformat(),
        "tables": {
            "profile": rows_profile,
            "norms": rows_norms,
            "rating": rows_rating,
            "problems": problems,
        },
        "held_back_by": rate["held_back_by"],
        "labels": _labels(prof, rate),
    }


# the files' column names (workbook, CSV: for programs, as they are); the HTML and PDF
# print them from the catalogue (report.head.*) in the reader's language
HEADS = {
    "profile": ("figure", "value", "unit", "source"),
    "norms": ("figure", "value", "unit", "source"),
    "rating": ("indicator", "value", "unit", "source"),
    "problems": ("category", "reported", "closed", "open", "source"),
}
CSS = """
@page { size: A4; margin: 16mm 14mm;
        @bottom-right { content: counter(page) " / " counter(pages); } }
body { font-family: "WenQuanYi Micro Hei", sans-serif; font-size: 9.5pt; }
h1 { font-size: 16pt; } h2 { font-size: 12pt; margin-top: 8mm; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 0.5pt solid #adb5bd; padding: 2pt 4pt; text-align: left; vertical-align: top; }
td.src { font-size: 7pt; color: #495057; font-family: "DejaVu Sans Mono", monospace; }
tr { break-inside: avoid; }
"""
# "unit" words of the rows with a number after them (rating rows: "weight 0.4", "cap 3")
_UNIT_NUMBER = re.compile(r"^(weight|cap) (\S+)$")
# a source's explanation in brackets, in English, is the workbook's: the printed report
# names the query only, and a column named in brackets as its part ("PROFILES (buildings)"
# is printed "PROFILES.buildings")
_EXPLAINED = re.compile(r"\s*\([^()]*\s[^()]*\)")
_COLUMN = re.compile(r"\s*\((\w+)\)")


class Words:
    """The report's words in one language: every string printed comes from here."""

    def __init__(self, lang: str, labels: dict[str, dict[str, str]]) -> None:
        self.lang, self.labels = lang, labels

    def t(self, key: str, **params: Any) -> str:
        return i18n.t(key, self.lang, **params)

    def figure(self, table: str, key: str) -> str:
        if table == "problems":
            return self.t(f"patrol_page.category.{key}")
        if f"report.figure.{key}" in i18n.catalogue():
            return self.t(f"report.figure.{key}")
        return self.labels.get(key, {}).get(self.lang, key)

    def unit(self, unit: str | None) -> str:
        if not unit:
            return ""
        m = _UNIT_NUMBER.match(unit)
        if m:
            return self.t(f"report.unit.{m[1]}", n=m[2])
        return self.t(f"report.unit.{unit}") if f"report.unit.{unit}" in i18n.catalogue() else ""

    def value(self, value: Any, unit: str | None) -> str:
        if value is None:
            return self.t("report.value.none")
        if isinstance(value, bool):
            return self.t(f"report.value.{'passed' if value else 'failed'}")
        if isinstance(value, int):
            return f"{value:,}"
        if isinstance(value, float):
            # shares and the rating's indicators (each 0…1) as percentages
            is_share = unit == "share" or (unit or "").startswith("weight ")
            return f"{value * 100:.1f}%" if is_share else f"{value:.4g}"
        if isinstance(value, dict):  # reach per category
            cats = {c.code: c.label(self.lang) for c in load_categories()}
            return "; ".join(f"{cats.get(k, k)} {self.value(v, unit)}" for k, v in value.items())
        if f"report.value.{value}" in i18n.catalogue():
            return self.t(f"report.value.{value}")
        return self.labels.get(str(value), {}).get(self.lang, str(value))


def _source(source: str) -> str:
    return _COLUMN.sub(r".\1", _EXPLAINED.sub("", source))


def _table(name: str, rows: list[tuple], w: Words) -> str:
    keys = HEADS[name]
    head = "".join(f"<th>{escape(w.t('report.head.' + h))}</th>" for h in keys)
    body = []
    for r in rows:
        unit = r[2] if name != "problems" else None
        cells = [f'<th class="fig">{escape(w.figure(name, str(r[0])))}</th>']
        if name == "problems":
            cells += [f'<td class="v">{escape(w.value(v, None))}</td>' for v in r[1:-1]]
        else:
            cells += [f'<td class="v">{escape(w.value(r[1], unit))}</td>',
                      f'<td class="u">{escape(w.unit(unit))}</td>']  # fmt: skip
        cells.append(f'<td class="src">{escape(_source(str(r[-1])))}</td>')
        body.append(f'<tr data-figure="{escape(str(r[0]))}">{"".join(cells)}</tr>')
    return (
        f"<h2>{escape(w.t('report.table.' + name))}</h2>"
        f'<table id="t-{name}"><tr>{head}</tr>{"".join(body)}</table>'
    )


def to_html(report: dict, lang: str = i18n.DEFAULT_LANG) -> str:
    """The report as one print-ready HTML document (A4), every word in ``lang``."""
    c = report["community"]
    w = Words(lang, report.get("labels", {}))
    parts = [_table(name, rows, w) for name, rows in report["tables"].items()]
    title = f"{c['name'] or c['code']} · {w.t('report.title')}"
    return (
        f'<!DOCTYPE html><html lang="{"zh-CN" if lang == "zh" else "en"}"><head>'
        f'<meta charset="utf-8"><title>{escape(title)}</title><style>{CSS}</style></head><body>'
        f"<h1>{escape(title)}</h1><p>{escape(c['code'])} · {escape(w.t('report.as_of'))} "
        f"{escape(report['at'][:16].replace('T', ' '))}</p>" + "".join(parts) + "</body></html>"
    )


def to_pdf(report: dict, lang: str = i18n.DEFAULT_LANG) -> bytes:
    """The report as a PDF (WeasyPrint; fonts from the system: WenQuanYi for Chinese)."""
    from weasyprint import HTML  # imported here: its libraries load only when a PDF is asked

    return HTML(string=to_html(report, lang)).write_pdf()


def to_xlsx(report: dict) -> bytes:
    """The report as an Excel workbook: one sheet per table, the source in the last column."""
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    for name, rows in report["tables"].items():
        ws = wb.create_sheet(name)
        ws.append(list(HEADS[name]))
        for r in rows:
            ws.append([v if isinstance(v, int | float | str) or v is None else _text(v) for v in r])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def to_csv(report: dict) -> str:
    """Every table in one CSV: table, figure, value, unit, source."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(("table", "figure", "value", "unit", "source"))
    for name, rows in report["tables"].items():
        for r in rows:
            if name == "problems":
                for col, v in zip(("reported", "closed", "open"), r[1:4], strict=True):
                    w.writerow((name, f"{r[0]}.{col}", v, "problems", r[-1]))
            else:
                w.writerow((name, r[0], _text(r[1]), r[2] or "", r[3]))
    return out.getvalue()


def buildings_geojson(conn: Connection, user: Who, community_id: int) -> dict:
    """The community's buildings with their households (map figures; nothing personal)."""
    permissions.require(user, "rate_committees", "export community reports")
    profiles.profile(conn, user, community_id)  # a 404 outside the user's areas
    rows = conn.execute(sa.text(BUILDINGS), {"cid": community_id, "year_tags": []}).all()
    return {
        "type": "FeatureCollection",
        "source": "gis.reports.profiles.BUILDING_HOUSEHOLDS (dwelling, else dwelling_estimate)",
        "features": [
            {
                "type": "Feature",
                "id": int(r.id),
                "geometry": json.loads(r.geom),
                "properties": {
                    "households": int(r.households),
                    "is_registered": bool(r.is_registered),
                    "name": r.name,
                },
            }
            for r in rows
        ],
    }
