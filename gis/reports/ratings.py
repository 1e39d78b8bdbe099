"""Star ratings from the database: the indicators of each committee, the gates, the stars.

Every indicator is read from rows, never typed in: satisfaction from ``survey_answer``
(the residents' own scores), urgent response from ``problem`` (closed and not overdue of
those reported in the window), the standard of work from the ledgers (residential buildings
with a registered resident), leader coverage and patrol coverage (``gis.reports.indicators``),
and the gates from open problems by category and the facility completeness of the norms.
The arithmetic is ``gis.reports.rating`` (pure).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis import levels, permissions
from gis.areas import visible_sql
from gis.audit import Who
from gis.patrol.overdue import overdue_sql
from gis.reports import indicators, rating
from gis.reports.figures import Figure, share

SRC = "gis.reports.ratings"
LATEST_ROUND = (
    "SELECT id FROM survey_round WHERE opens_at <= :now ORDER BY opens_at DESC, id DESC LIMIT 1"
)
SATISFACTION = """
    SELECT count(*) AS answers,
           avg((a.overall + a.service + a.environment + a.safety) / 4.0) AS mean,
           (SELECT count(*) FROM survey_code k JOIN survey_sheet s ON s.id = k.sheet_id
              JOIN building b ON b.id = s.building_id
             WHERE s.round_id = :round AND b.community_id = :cid) AS codes
      FROM survey_answer a JOIN building b ON b.id = a.building_id
     WHERE a.round_id = :round AND b.community_id = :cid
"""
# An anonymous resident's report counts once staff have taken it on (as in the gates): a
# flood of reports by QR code cannot pull a committee's response score down by itself.
ACCEPTED = """(p.status <> 'reported'
            OR NOT EXISTS (SELECT 1 FROM resident_problem rp WHERE rp.problem_id = p.id))"""
RESPONSE = f"""
    SELECT count(*) AS reported,
           count(*) FILTER (WHERE p.status = 'closed') AS closed,
           count(*) FILTER (WHERE {overdue_sql(":now")}) AS overdue
      FROM problem p JOIN building b ON b.id = p.building_id
     WHERE b.community_id = :cid AND p.reported_at >= :since AND p.reported_at <= :now
       AND {ACCEPTED}
"""
LEDGERS = """
    SELECT count(*) AS buildings,
           count(*) FILTER (WHERE EXISTS (SELECT 1 FROM resident r WHERE r.building_id = b.id))
             AS registered
      FROM building b WHERE b.community_id = :cid AND b.households > 0
"""
OPEN_PROBLEMS = f"""
    SELECT p.category, count(*) AS open,
           count(*) FILTER (WHERE {overdue_sql(":now")} OR p.escalation_level <> 'worker')
             AS prominent
      FROM problem p JOIN building b ON b.id = p.building_id
     WHERE b.community_id = :cid AND p.status <> 'closed'
       AND {ACCEPTED}
     GROUP BY p.category
"""


def _satisfaction(conn: Connection, cid: int, round_id: int | None, cfg: rating.Config) -> Figure:
    if round_id is None:
        return Figure(None, f"{SRC}.SATISFACTION", "share", "no survey round yet")
    r = conn.execute(sa.text(SATISFACTION), {"cid": cid, "round": round_id}).one()
    n = int(r.answers)
    detail = {
        "round_id": round_id,
        "answers": n,
        "codes": int(r.codes),
        "response_rate": share(n, int(r.codes)),
        "mean_score": None if r.mean is None else round(float(r.mean), 3),
    }
    if n < cfg.min_survey_answers:
        return Figure(
            None,
            f"{SRC}.SATISFACTION",
            "share",
            f"fewer than {cfg.min_survey_answers} answers: too few to judge",
            detail=detail,
        )
    return Figure(
        round((float(r.mean) - 1) / 4, 4),
        f"{SRC}.SATISFACTION (survey_answer)",
        "share",
        "(mean score − 1) / 4 of the round's answers",
        detail=detail,
    )


def _response(conn: Connection, cid: int, now: dt.datetime, cfg: rating.Config) -> Figure:
    since = now - dt.timedelta(days=cfg.window_days)
    r = conn.execute(sa.text(RESPONSE), {"cid": cid, "now": now, "since": since}).one()
    n, closed, overdue = int(r.reported), int(r.closed), int(r.overdue)
    detail = {
        "reported": n,
        "closed": closed,
        "overdue": overdue,
        "since": since.isoformat(),
        "closed_share": share(closed, n),
        "not_overdue_share": share(n - overdue, n),
    }
    if n == 0:
        return Figure(
            None, f"{SRC}.RESPONSE", "share", "no problem reported in the window", detail=detail
        )
    value = round((closed / n + (n - overdue) / n) / 2, 4)
    return Figure(
        value,
        f"{SRC}.RESPONSE (problem; gis.patrol.overdue.overdue_sql)",
        "share",
        "mean of closed and not overdue, of the problems reported in the window",
        detail=detail,
    )


def _work(conn: Connection, cid: int, norms: dict[str, Any], cfg: rating.Config) -> Figure:
    r = conn.execute(sa.text(LEDGERS), {"cid": cid}).one()
    parts = {
        "ledgers_complete": share(int(r.registered), int(r.buildings)),
        "leader_coverage": norms["leader_coverage"]["value"],
        "patrol_coverage": norms["patrol_coverage"]["value"],
    }
    parts = {k: parts[k] for k in cfg.work_parts}
    known = [v for v in parts.values() if v is not None]
    value = round(sum(known) / len(known), 4) if known else None
    return Figure(
        value,
        f"{SRC}.LEDGERS + gis.reports.indicators (leader_coverage, patrol_coverage)",
        "share",
        "mean of its parts with a value",
        detail={
            "parts": parts,
            "buildings": int(r.buildings),
            "buildings_registered": int(r.registered),
        },
    )


def _gates(
    conn: Connection, cid: int, norms: dict[str, Any], now: dt.datetime, cfg: rating.Config
) -> dict[str, dict[str, Any]]:
    rows = {r.category: r for r in conn.execute(sa.text(OPEN_PROBLEMS), {"cid": cid, "now": now})}
    items = norms["facility_completeness"]["detail"]["items"]
    missing = [i["category"] for i in items if i["status"] in ("missing", "partial")]
    unknown = [i["category"] for i in items if i["status"] == "unknown"]
    out = {}
    for g in cfg.gates:
        if g.facilities_missing:
            out[g.code] = {
                "passed": not missing,
                "facilities_missing": missing,
                "facilities_unknown": unknown,
                "cap": g.cap,
                "source": "gis.reports.indicators.facility_completeness",
            }
            continue
        col = "prominent" if g.only_if == "overdue_or_escalated" else "open"
        found = {c: int(getattr(rows[c], col)) for c in g.categories if c in rows}
        found = {c: n for c, n in found.items() if n}
        out[g.code] = {
            "passed": not found,
            "open_problems": found,
            "cap": g.cap,
            "counts": col,
            "source": f"{SRC}.OPEN_PROBLEMS",
        }
    return out


def latest_round(conn: Connection, now: dt.datetime) -> int | None:
    """The survey round opened most recently (None before the first)."""
    found = conn.scalar(sa.text(LATEST_ROUND), {"now": now})
    return None if found is None else int(found)


def community_rating(
    conn: Connection,
    user: Who,
    community_id: int,
    now: dt.datetime,
    *,
    round_id: int | None = None,
    config: rating.Config | None = None,
    norms: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The rating of one committee: indicators, gates, stars and what holds it back
    (``config``: another rating file's, default ``gis/reports/rating.toml``; ``norms``: the
    community's ``indicators.community_norms`` at ``now`` when already read)."""
    permissions.require(user, "rate_committees", "rate residents' committees")
    cfg = config or rating.load_config()
    norms = norms or indicators.community_norms(conn, user, community_id, now)
    figs = norms["figures"]
    rid = latest_round(conn, now) if round_id is None else round_id
    values = {
        "satisfaction": _satisfaction(conn, community_id, rid, cfg),
        "urgent_response": _response(conn, community_id, now, cfg),
        "work_standard": _work(conn, community_id, figs, cfg),
    }
    gates = _gates(conn, community_id, figs, now, cfg)
    failed = [code for code, g in gates.items() if not g["passed"]]
    result = rating.rate({k: f.value for k, f in values.items()}, failed, cfg)
    return {
        "community": norms["community"],
        "at": now.isoformat(),
        "holds_community": norms["holds_community"],
        "indicators": {
            k: {
                **f.as_dict(),
                "weight": cfg.weights[k],
                "label_zh": cfg.labels[k][0],
                "label_en": cfg.labels[k][1],
            }
            for k, f in values.items()
        },
        "gates": {
            g.code: {**gates[g.code], "label_zh": g.label_zh, "label_en": g.label_en}
            for g in cfg.gates
        },
        **result,
        "source": "gis.reports.rating.rate (weights: gis/reports/rating.toml)",
    }


PUBLISHED = f"""
    SELECT t.id, t.code, t.name, r.stars, r.score, r.capped_by, r.detail, r.computed_at
      FROM community t
      LEFT JOIN LATERAL (SELECT * FROM committee_rating x WHERE x.community_id = t.id
                          ORDER BY x.computed_at DESC, x.id DESC LIMIT 1) r ON true
     WHERE {visible_sql(levels.level("community"))}
     ORDER BY t.code, t.id LIMIT :limit
"""


def subdistrict_ratings(
    conn: Connection, user: Who, now: dt.datetime, *, limit: int = 2000
) -> dict[str, Any]:
    """Every visible committee's latest published rating, and the distribution against the
    target (one query: a rating is computed when it is published, :func:`publish`)."""
    permissions.require(user, "rate_committees", "rate residents' committees")
    rows = conn.execute(sa.text(PUBLISHED), {"limit": limit}).all()
    cfg = rating.load_config()
    items = []
    for r in rows:
        d = r.detail or {}
        items.append({
            "community": {"id": int(r.id), "code": r.code, "name": r.name},
            "stars": r.stars, "score": r.score,
            "computed_at": None if r.computed_at is None else r.computed_at.isoformat(),
            "uncapped_stars": d.get("uncapped_stars"),
            "capped_by": list(r.capped_by or []),
            "held_back_by": d.get("held_back_by", []), "missing": d.get("missing", []),
        })  # fmt: skip
    return {
        "at": now.isoformat(),
        "communities": len(items),
        "is_complete": len(items) < limit,
        "distribution": rating.distribution([i["stars"] for i in items], cfg),
        "items": items,
        "source": f"{SRC}.PUBLISHED (committee_rating, as published)",
    }


def publish(conn: Connection, user: Who, community_id: int, now: dt.datetime) -> dict[str, Any]:
    """Compute and store a committee's rating: the disclosure board shows the latest one."""
    r = community_rating(conn, user, community_id, now)
    conn.execute(
        sa.text(
            "INSERT INTO committee_rating (community_id, computed_at, stars, score, capped_by, "
            "detail, computed_by) VALUES (:c, :at, :s, :sc, :cap, CAST(:d AS jsonb), :u)"
        ),
        {
            "c": community_id,
            "at": now,
            "s": r["stars"],
            "sc": r["score"],
            "cap": r["capped_by"],
            "d": _json(r),
            "u": user.id,
        },
    )
    return r


def _json(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, default=str)
