"""The affairs disclosure board (居务公开栏): what anyone may see of a community, no login.

Only non-personal figures: the profile from the map (households, buildings, grids,
residents' groups), the facilities (our own map's), problems opened and closed by category
(counts only, through ``ga_public_problem_counts``: the app's role reads no problem row
without a user) and the committee's latest published rating.

Small counts are withheld: a problem count from 1 to 4 (``gis.suppression.SMALL``), and then
its column's total, so that the total minus the shown cells does not give it back — the
complementary suppression of ``gis.suppression``, for a table whose only sums are the
totals. :func:`determined_cells` checks any such table by linear algebra: a withheld cell
is given back when its unit vector lies in the row space of the sums that involve withheld
cells; the board refuses to show a table for which it finds one.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis.errors import NotFound
from gis.patrol.problems import CATEGORIES
from gis.reports import profiles
from gis.suppression import SMALL, WITHHELD

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


def withhold_table(rows: dict[str, dict[str, int]]) -> dict[str, dict[str, int | str]]:
    """Rows (category -> column -> count) with small counts withheld, plus a ``total``
    row; a column with a withheld cell has its total withheld too."""
    out: dict[str, dict[str, int | str]] = {k: dict(v) for k, v in rows.items()}
    total: dict[str, int | str] = {}
    for col in COLUMNS:
        hidden = [k for k, v in rows.items() if 0 < v[col] < SMALL]
        for k in hidden:
            out[k][col] = WITHHELD
        total[col] = WITHHELD if hidden else sum(v[col] for v in rows.values())
    out["total"] = total
    return out


def determined_cells(table: dict[str, dict[str, int | str]]) -> list[tuple[str, str]]:
    """Withheld cells that the shown figures give back (each column: total = Σ rows)."""
    found = []
    for col in COLUMNS:
        cells = [k for k in table if k != "total"]
        unknown = [k for k in cells if table[k][col] == WITHHELD]
        total_hidden = table["total"][col] == WITHHELD
        if not unknown:
            continue
        # one equation: Σ unknown (− total when withheld) = known; a cell is determined when
        # its unit vector lies in the span of that equation's coefficients
        names = unknown + (["total"] if total_hidden else [])
        a = np.array([[1.0] * len(unknown) + ([-1.0] if total_hidden else [])])
        for i, name in enumerate(names):
            e = np.zeros(len(names))
            e[i] = 1.0
            stacked = np.vstack([a, e])
            if np.linalg.matrix_rank(stacked) == np.linalg.matrix_rank(a):
                found.append((name, col))
    return found


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
    if determined_cells(table):  # never shown: the method above should make this impossible
        table = {k: dict.fromkeys(COLUMNS, WITHHELD) for k in table}
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
