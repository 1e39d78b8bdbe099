"""Norms per community (社区指标): each figure with the query or function it came from.

* staffing and the backbone team against their norms (``gis.reports.norms``);
* leader coverage: the share of units, clusters, residents' groups and residential
  buildings of the community with a current leader;
* facility completeness (五室三站两栏一校一场所): each category of those groups present in
  the community (a facility on its land) or within the walk limit of every one of its
  households (the latest reach run, ``gis.reach``);
* reach coverage per category (households within the limit);
* patrol coverage and the week's problems: ``gis.patrol.weekly.summary`` of each grid;
* problems overall: closure rate, median days from report to closing, and the overdue
  count by ``gis.patrol.overdue.overdue_sql`` (their rule, not a copy of it).
"""

from __future__ import annotations

import datetime as dt
import statistics
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis import permissions
from gis.audit import Who
from gis.categories import load_categories
from gis.errors import NotFound
from gis.patrol import weekly
from gis.patrol.checkins import PATROL
from gis.patrol.overdue import overdue_sql
from gis.reach.coverage import latest_run
from gis.reports import counts, norms, profiles
from gis.reports.figures import Figure, share
from gis.suppression import WITHHELD

FACILITY_GROUPS = ("five_rooms", "three_stations", "two_boards", "one_school", "one_site")
WALK_LIMIT_MIN = 10.0  # a ten-minute walk (DOMAIN.md)
LEADER_LEVELS = ("unit", "building_cluster", "residents_group", "building")

# areas of each leader level in the community (:cid); buildings: residential ones only
_LEADER_AREAS = {
    "residents_group": "SELECT id FROM residents_group WHERE community_id = :cid",
    "building_cluster": "SELECT c.id FROM building_cluster c JOIN residents_group g "
    "ON g.id = c.residents_group_id WHERE g.community_id = :cid",
    "unit": "SELECT u.id FROM unit u JOIN building_cluster c ON c.id = u.building_cluster_id "
    "JOIN residents_group g ON g.id = c.residents_group_id WHERE g.community_id = :cid",
    "building": "SELECT id FROM building WHERE community_id = :cid AND households > 0",
}
LEADERS = " UNION ALL ".join(
    f"SELECT '{lv}' AS level, count(*) AS areas, count(*) FILTER (WHERE EXISTS ("
    f"SELECT 1 FROM leader_assignment la WHERE la.level = '{lv}' AND la.area_id = a.id "
    f"AND la.ended_at IS NULL)) AS led FROM ({sql}) a"
    for lv, sql in _LEADER_AREAS.items()
)
FACILITIES_INSIDE = """
    SELECT cat, count(f.id) AS inside
      FROM unnest(CAST(:cats AS text[])) cat
      LEFT JOIN facility f ON cat = ANY(f.categories)
       AND ST_Intersects(f.geom, (SELECT geom FROM community WHERE id = :cid))
     GROUP BY cat
"""
REACH = f"""
    WITH bh AS ({profiles.BUILDING_HOUSEHOLDS} WHERE b.community_id = :cid AND b.households > 0)
    SELECT x.category, sum(bh.households) AS households,
           coalesce(sum(bh.households) FILTER (WHERE x.walk_m <= :lim), 0) AS covered
      FROM bh LEFT JOIN building_reach r ON r.building_id = bh.id AND r.run_id = :run
     CROSS JOIN LATERAL unnest(CAST(:run_cats AS text[]),
                               coalesce(r.walk_m, CAST(:none AS real[]))) AS x(category, walk_m)
     GROUP BY x.category
"""
PROBLEMS = f"""
    SELECT p.id, p.status, p.deadline, p.reported_at, {overdue_sql(":now")} AS is_overdue,
           (SELECT min(e.at) FROM problem_event e WHERE e.problem_id = p.id
               AND e.to_status = 'closed') AS closed_at
      FROM problem p JOIN building b ON b.id = p.building_id
     WHERE b.community_id = :cid
"""
GRIDS = "SELECT id FROM grid WHERE community_id = :cid ORDER BY code, id"
SRC = "gis.reports.indicators"


def _counted_leaders(conn: Connection, cid: int, counted: counts.Counts | None) -> Figure:
    """Leader coverage for a user who reads no leader row: the areas from the map, the
    areas with a leader counted by the database (small counts withheld)."""
    areas = {r.level: int(r.areas) for r in conn.execute(sa.text(LEADERS), {"cid": cid})}
    led = None if counted is None else counted.get("leaders")
    value = share(led, sum(areas.values())) if isinstance(led, int) else led
    return Figure(value, f"{SRC}.LEADERS (areas) + {counts.SOURCE} (leaders)", "share",
                  counts.note_for(led) or "areas with a current leader, of all",
                  detail={"areas": areas, "with_leader": led})  # fmt: skip


def _leaders(
    conn: Connection, user: Who, cid: int, is_partial: bool, counted: counts.Counts | None
) -> Figure:
    if not permissions.may(user, "see_people"):
        return _counted_leaders(conn, cid, counted)
    rows = {r.level: r for r in conn.execute(sa.text(LEADERS), {"cid": cid})}
    detail = {
        lv: {"areas": int(rows[lv].areas), "with_leader": int(rows[lv].led),
             "share": share(int(rows[lv].led), int(rows[lv].areas))}
        for lv in LEADER_LEVELS
    }  # fmt: skip
    areas = sum(d["areas"] for d in detail.values())
    led = sum(d["with_leader"] for d in detail.values())
    return Figure(share(led, areas), f"{SRC}.LEADERS", "share",
                  "units, clusters, groups and residential buildings with a current leader",
                  is_partial, detail)  # fmt: skip


def _reach(conn: Connection, cid: int) -> tuple[Any, dict[str, dict[str, int]]]:
    """The latest run (None without one) and, per category, households and covered."""
    try:
        run, limit_m = latest_run(conn, WALK_LIMIT_MIN)
    except NotFound:
        return None, {}
    cats = list(run.categories)
    rows = conn.execute(
        sa.text(REACH),
        {"cid": cid, "run": run.id, "lim": limit_m, "run_cats": cats,
         "none": [float("nan")] * len(cats), "year_tags": []},
    ).all()  # fmt: skip
    return (run, limit_m), {
        r.category: {"households": int(r.households), "covered": int(r.covered)} for r in rows
    }


def _facilities(conn: Connection, cid: int, run: Any, reach: dict) -> Figure:
    cats = [c for c in load_categories() if c.group in FACILITY_GROUPS]
    inside = {
        r.cat: int(r.inside)
        for r in conn.execute(
            sa.text(FACILITIES_INSIDE), {"cid": cid, "cats": [c.code for c in cats]}
        )
    }
    items = []
    for c in cats:
        got = reach.get(c.code)
        if inside[c.code]:
            status = "inside"
        elif run is None or got is None:
            status = "unknown"  # no reach computed for it: only "inside" can be told
        elif got["households"] and got["covered"] == got["households"]:
            status = "within_walk"
        else:
            status = "partial" if got and got["covered"] else "missing"
        items.append({
            "category": c.code, "group": c.group, "label_zh": c.label_zh,
            "facilities_inside": inside[c.code],
            "households_within_walk": None if got is None else got["covered"],
            "households": None if got is None else got["households"],
            "status": status, "is_present": status in ("inside", "within_walk"),
        })  # fmt: skip
    present = sum(i["is_present"] for i in items)
    return Figure(
        share(present, len(items)),
        f"{SRC}.FACILITIES_INSIDE + {SRC}.REACH (building_reach, run "
        f"{None if run is None else run[0].id})",
        "share",
        f"present in the community or within {WALK_LIMIT_MIN:g} minutes of every household",
        detail={"present": present, "categories": len(items), "items": items},
    )


def _reach_coverage(run: Any, reach: dict) -> Figure:
    if run is None:
        return Figure(None, f"{SRC}.REACH", "share", "no reach computed yet: gridatlas reach")
    (r, limit_m) = run
    items = {cat: {**v, "share": share(v["covered"], v["households"])} for cat, v in reach.items()}
    return Figure(
        {cat: v["share"] for cat, v in items.items()},
        f"{SRC}.REACH (building_reach, run {r.id})", "share",
        f"per category: households within {limit_m:g} m on foot, of all",
        detail={"run_id": r.id, "limit_m": limit_m, "categories": items},
    )  # fmt: skip


def _patrol(conn: Connection, user: Who, cid: int, week: str | None, now: dt.datetime):
    """Patrol coverage and the week's problems, summed over the community's grids."""
    source = "gis.patrol.weekly.summary (per grid, summed)"
    if not permissions.may(user, PATROL):
        note = "patrol logs are read by those who patrol (admins, staff, grid workers)"
        return Figure(None, source, "share", note), Figure(None, source, None, note)
    weekly.week_bounds(week, now)  # a malformed week is refused before anything is read
    sums = dict.fromkeys(("buildings", "buildings_checked", "checkins"), 0)
    probs = dict.fromkeys(("opened", "closed", "escalated", "overdue", "open_at_end"), 0)
    grids, label, skipped = 0, None, 0
    for (gid,) in conn.execute(sa.text(GRIDS), {"cid": cid}):
        try:
            s = weekly.summary(conn, user, int(gid), week, now)
        except NotFound:  # a grid outside the user's area, or one with no building
            skipped += 1
            continue
        grids += 1
        label = s["week"]
        for k in sums:
            sums[k] += s["coverage"][k]
        for k in probs:
            probs[k] += s["problems"][k]
    partial = skipped > 0
    detail = {"week": label, "grids": grids, "grids_not_counted": skipped, **sums}
    coverage = Figure(share(sums["buildings_checked"], sums["buildings"]), source, "share",
                      "buildings with a check-in during the week", partial, detail)  # fmt: skip
    week_problems = Figure(probs["opened"], source, "problems",
                           "problems reported during the week", partial,
                           {"week": label, **probs})  # fmt: skip
    return coverage, week_problems


def _counted_problems(counted: counts.Counts | None) -> dict[str, Figure]:
    """The problem figures for a user who reads no problem row, from the database's counts.
    The closure rate is a share only (both counts shown), without the counts themselves:
    with the board's public totals they could give a withheld board count back."""
    src = f"{counts.SOURCE} (problems)"
    if counted is None:
        note = counts.note_for(None)
        return {n: Figure(None, src, u, note) for n, u in
                (("problems_closure_rate", "share"), ("problems_median_days_to_close", "days"),
                 ("problems_overdue", "problems"))}  # fmt: skip
    reported, closed = counted.get("problems_reported"), counted.get("problems_closed")
    rate = (share(closed, reported) if isinstance(reported, int) and isinstance(closed, int)
            else WITHHELD)  # fmt: skip
    median, overdue = counted.get("median_days_to_close"), counted.get("problems_overdue")
    if closed == 0:
        median = None  # nothing closed: no median, as for staff (not a withheld one)
    return {
        "problems_closure_rate": Figure(rate, src, "share",
                                        counts.note_for(rate)
                                        or "closed (verified and crossed off) of all reported"),
        "problems_median_days_to_close": Figure(
            median, src, "days", counts.note_for(median)
            or "from the report to the closing event (at least 5 closed)"),
        "problems_overdue": Figure(overdue, f"{src} (the rule of gis.patrol.overdue)",
                                   "problems", counts.note_for(overdue)),
    }  # fmt: skip


def _problems(
    conn: Connection, user: Who, cid: int, now: dt.datetime, is_partial: bool,
    counted: counts.Counts | None,
) -> dict[str, Figure]:  # fmt: skip
    src = f"{SRC}.PROBLEMS"
    if not permissions.may(user, "see_people"):  # problems are read where people are
        return _counted_problems(counted)
    rows = conn.execute(sa.text(PROBLEMS), {"cid": cid, "now": now}).all()
    closed = [r for r in rows if r.status == "closed"]
    days = [(r.closed_at - r.reported_at).total_seconds() / 86400 for r in closed if r.closed_at]
    overdue = sum(bool(r.is_overdue) for r in rows)
    return {
        "problems_closure_rate": Figure(share(len(closed), len(rows)), src, "share",
                                        "closed (verified and crossed off) of all reported",
                                        is_partial, {"reported": len(rows),
                                                     "closed": len(closed)}),
        "problems_median_days_to_close": Figure(
            round(statistics.median(days), 1) if days else None, src, "days",
            "from the report to the closing event", is_partial, {"closed": len(days)}),
        "problems_overdue": Figure(overdue, f"{src} (gis.patrol.overdue.overdue_sql)",
                                   "problems", f"at {now.isoformat()}", is_partial),
    }  # fmt: skip


def community_norms(
    conn: Connection, user: Who, community_id: int, now: dt.datetime, *, week: str | None = None
) -> dict[str, Any]:
    """Every norm of one community the user may see (a 404 outside the scope)."""
    prof = profiles.profile(conn, user, community_id)
    figs = prof["figures"]
    is_partial = not prof["holds_community"]
    households = figs["households"]["value"]
    staffing = norms.workers_check(households, figs["workers"]["value"])
    out: dict[str, Figure] = {
        "workers": Figure(
            staffing["actual"],
            "gis.reports.norms.workers_check",
            "people",
            staffing["rule"],
            detail=staffing,
        ),  # fmt: skip
    }
    backbone = figs["backbone_people"]["value"]
    is_counted = isinstance(backbone, int)
    out["backbone"] = Figure(
        backbone, "gis.reports.norms.backbone_check", "people",
        figs["backbone_people"].get("note"), figs["backbone_people"]["is_partial"],
        norms.backbone_check(backbone) if is_counted else {},
    )  # fmt: skip
    sees_people = permissions.may(user, "see_people")
    counted = None if sees_people else counts.read(conn, community_id, now)
    out["leader_coverage"] = _leaders(conn, user, community_id, is_partial, counted)
    run, reach = _reach(conn, community_id)
    out["facility_completeness"] = _facilities(conn, community_id, run, reach)
    out["reach_coverage"] = _reach_coverage(run, reach)
    out["patrol_coverage"], out["problems_this_week"] = _patrol(conn, user, community_id,
                                                                week, now)  # fmt: skip
    out.update(_problems(conn, user, community_id, now, is_partial, counted))
    return {
        "community": {"id": prof["id"], "code": prof["code"], "name": prof["name"]},
        "households": households,
        "holds_community": prof["holds_community"],
        "at": now.isoformat(),
        "figures": {k: f.as_dict() for k, f in out.items()},
    }
