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
from html import escape
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis import permissions
from gis.audit import Who
from gis.reports import indicators, profiles, ratings

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
    }


HEADS = {
    "profile": ("figure", "value", "unit", "source"),
    "norms": ("figure", "value", "unit", "source"),
    "rating": ("indicator", "value", "unit", "source"),
    "problems": ("category", "reported", "closed", "open", "source"),
}
TITLES = {
    "profile": "社区概况 Profile",
    "norms": "指标 Norms",
    "rating": "同心家园星级 Star rating",
    "problems": "问题办理 Problems",
}
CSS = """
@page { size: A4; margin: 16mm 14mm;
        @bottom-right { content: counter(page) " / " counter(pages); } }
body { font-family: "WenQuanYi Micro Hei", sans-serif; font-size: 9.5pt; }
h1 { font-size: 16pt; } h2 { font-size: 12pt; margin-top: 8mm; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 0.5pt solid #adb5bd; padding: 2pt 4pt; text-align: left; vertical-align: top; }
td.src { font-size: 7pt; color: #495057; }
tr { break-inside: avoid; }
"""


def to_html(report: dict) -> str:
    """The report as one print-ready HTML document (A4)."""
    c = report["community"]
    parts = []
    for name, rows in report["tables"].items():
        head = "".join(f"<th>{escape(h)}</th>" for h in HEADS[name])
        body = "".join(
            f'<tr data-figure="{escape(str(r[0]))}">'
            + "".join(f"<td>{escape(_text(v))}</td>" for v in r[:-1])
            + f'<td class="src">{escape(str(r[-1]))}</td></tr>'
            for r in rows
        )
        parts.append(
            f'<h2>{escape(TITLES[name])}</h2><table id="t-{name}"><tr>{head}</tr>{body}</table>'
        )
    title = f"{c['name'] or c['code']} · 社区报告 Community report"
    return (
        f'<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1><p>{escape(c['code'])} · {escape(report['at'][:16])}</p>"
        + "".join(parts)
        + "</body></html>"
    )


def to_pdf(report: dict) -> bytes:
    """The report as a PDF (WeasyPrint; fonts from the system: WenQuanYi for Chinese)."""
    from weasyprint import HTML  # imported here: its libraries load only when a PDF is asked

    return HTML(string=to_html(report)).write_pdf()


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
