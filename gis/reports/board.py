"""The affairs disclosure board (居务公开栏): what anyone may see of a community, no login.

Only non-personal figures: the profile from the map (households, buildings, grids,
residents' groups), the facilities (our own map's), problems opened and closed by category
(counts only, through ``ga_public_problem_counts``: the app's role reads no problem row
without a user) and the committee's latest published rating.

Small counts are withheld: a problem count from 1 to 4 (``gis.suppression.SMALL``), and then
enough other cells that none can be worked out — ``gis.suppression.withhold`` itself, audit
included, on the table as a hierarchy of its relations (``_as_hierarchy``): the opened total
is the sum of the categories' opened, and each category's opened is its closed plus its open
now (while every problem is younger than the window). The closed and open-now columns have
no total, which would add relations no hierarchy holds (a review found counts given back
through them: closed 2 = opened 9 − open now 7, or two withheld that must both be 1).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis.errors import NotFound
from gis.patrol.problems import CATEGORIES
from gis.reports import profiles
from gis.suppression import SMALL, WITHHELD, Node, PeopleTable, withhold

COLUMNS = ("opened", "closed", "open_now")
WINDOW_DAYS = 365
PROFILE = f"""
    WITH bh AS ({profiles.BUILDING_HOUSEHOLDS} WHERE b.community_id = :cid)
    SELECT c.id, c.code, c.name,
           (SELECT coalesce(sum(households), 0) FROM bh) AS households,
           (SELECT count(*) FROM building b WHERE b.community_id = c.id) AS buildings,
           (SELECT count(*) FROM grid g WHERE g.community_id = c.id) AS grids,
           (SELECT count(*) FROM residents_group g WHERE g.community_id = c.id) AS groups
      FROM community c WHERE c.id = :cid
"""
FACILITIES = """
    SELECT f.id, f.name, f.kind, f.categories, ST_AsBinary(ST_PointOnSurface(f.geom)) AS geom
      FROM facility f WHERE ST_Intersects(f.geom, (SELECT geom FROM community WHERE id = :cid))
     ORDER BY f.id
"""
OUTLINE = "SELECT ST_AsBinary(geom) FROM community WHERE id = :cid"
RATING = """
    SELECT stars, computed_at, capped_by FROM committee_rating WHERE community_id = :cid
     ORDER BY computed_at DESC, id DESC LIMIT 1
"""
SRC = "gis.reports.board"


def _as_hierarchy(rows: dict[str, dict[str, int]]) -> tuple[PeopleTable, dict[Node, tuple]]:
    """The table as a hierarchy for ``gis.suppression``, every relation a reader may use
    in it: the total of problems opened is the sum of the categories' opened, and while
    every problem is younger than the window, each category's opened is its closed plus its
    open now. (That is why the closed and open-now columns have no total: with one, the
    totals' row would be a second relation a hierarchy cannot hold.) Returns the table and
    each node's cell of the board."""
    root: Node = (0, 1)  # ids > 0: a negative one is a gap to gis.suppression
    parent: dict[Node, Node | None] = {root: None}
    children: dict[Node, list[Node]] = {root: []}
    counts: dict[Node, int] = {root: sum(v["opened"] for v in rows.values())}
    cell: dict[Node, tuple] = {root: ("total", "opened")}
    for i, (k, row) in enumerate(rows.items(), start=1):
        cat = (1, i)
        parent[cat], children[root] = root, [*children[root], cat]
        counts[cat], cell[cat], children[cat] = row["opened"], (k, "opened"), []
        for j, col in enumerate(("closed", "open_now")):
            node = (2, 2 * i + j)
            parent[node] = cat
            children[cat].append(node)
            counts[node], cell[node] = row[col], (k, col)
    table = PeopleTable(parent, children, {"n": {n: c for n, c in counts.items() if c}})
    return table, cell


def withhold_table(rows: dict[str, dict[str, int]]) -> dict[str, dict[str, int | str | None]]:
    """Rows (category -> column -> count) with small counts withheld, plus a ``total`` row
    (opened only: None in the other columns), by ``gis.suppression.withhold`` on the table
    as a hierarchy (``_as_hierarchy``): the same primary and complementary suppression and
    the same audit as for the people counts."""
    table, cell = _as_hierarchy(rows)
    hidden = {cell[node] for node, _what in withhold(table)}
    out: dict[str, dict[str, int | str | None]] = {
        k: {c: WITHHELD if (k, c) in hidden else row[c] for c in COLUMNS} for k, row in rows.items()
    }
    total = sum(v["opened"] for v in rows.values())
    out["total"] = {
        "opened": WITHHELD if ("total", "opened") in hidden else total,
        "closed": None,
        "open_now": None,
    }
    return out


def board(conn: Connection, community_id: int, now: dt.datetime) -> dict[str, Any]:
    """Every figure of the board of one community (no user needed)."""
    p = conn.execute(sa.text(PROFILE), {"cid": community_id, "year_tags": []}).first()
    if p is None:
        raise NotFound(f"no community {community_id}", key="board.no_community", id=community_id)
    # the counts are a snapshot at the start of the day (the function holds it to today's
    # at the latest), so that nobody can watch their own reports move them
    asof = now.replace(hour=0, minute=0, second=0, microsecond=0)
    since = asof - dt.timedelta(days=WINDOW_DAYS)
    counts = {c: dict.fromkeys(COLUMNS, 0) for c in CATEGORIES}
    for r in conn.execute(
        sa.text("SELECT * FROM ga_public_problem_counts(:c, :s, :a)"),
        {"c": community_id, "s": since, "a": asof},
    ):
        counts[r.category] = {
            "opened": int(r.opened),
            "closed": int(r.closed),
            "open_now": int(r.open_now),
        }
    table = withhold_table(counts)
    r = conn.execute(sa.text(RATING), {"cid": community_id}).first()
    fac = conn.execute(sa.text(FACILITIES), {"cid": community_id}).all()

    def small(n: int) -> int | str:
        return WITHHELD if 0 < n < SMALL else n

    return {
        "community": {"id": int(p.id), "code": p.code, "name": p.name},
        "at": asof.isoformat(),
        "profile": {
            "households": {
                "value": small(int(p.households)),
                "source": "gis.reports.profiles.BUILDING_HOUSEHOLDS",
            },
            "buildings": {"value": small(int(p.buildings)), "source": f"{SRC}.PROFILE"},
            "grids": {"value": small(int(p.grids)), "source": f"{SRC}.PROFILE"},
            "residents_groups": {"value": small(int(p.groups)), "source": f"{SRC}.PROFILE"},
        },
        "problems": {
            "since": since.isoformat(),
            "rows": table,
            "source": f"ga_public_problem_counts (migration 0012) + {SRC}.withhold_table",
        },
        "rating": None
        if r is None
        else {
            "stars": r.stars,
            "computed_at": r.computed_at.isoformat(),
            "capped_by": list(r.capped_by),
            "source": f"{SRC}.RATING (committee_rating)",
        },
        "facilities": [
            {
                "id": int(f.id),
                "name": f.name,
                "kind": f.kind,
                "categories": list(f.categories),
                "wkb": bytes(f.geom),
            }
            for f in fac
        ],
        "outline_wkb": conn.scalar(sa.text(OUTLINE), {"cid": community_id}),
    }
