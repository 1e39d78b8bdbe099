"""Leaders of areas (楼栋长, 单元长, 楼群长, 小组长): the seat, its history, candidates, undo.

One current leader per area, enforced by the database (a partial unique index decides
races). A resident lives inside an area when their dwelling belongs to it: a whole building
of it, or a dwelling of one of its building parts (``gis.areas.lives_inside_sql``), so the
residents of a tower's floors 10–18 are inside the group that holds those floors.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis import permissions
from gis.areas import BY_TABLE, LEADER_LEVELS, check_visible, lives_inside_sql
from gis.audit import Who, audit
from gis.errors import Conflict, InvalidInput, NotFound


def _require_leader_level(table: str) -> None:
    if table not in LEADER_LEVELS:
        raise InvalidInput(f"leaders are kept for {', '.join(LEADER_LEVELS)}")


def leaders(conn: Connection, user: Who, table: str, area_id: int) -> dict[str, Any]:
    """The current leader of an area and the ones before (as far as the user may see)."""
    _require_leader_level(table)
    check_visible(conn, table, area_id)
    rows = conn.execute(
        sa.text(
            "SELECT la.id, la.resident_id, r.name, la.started_at, la.ended_at, la.lives_inside, "
            "a.username AS assigned_by FROM leader_assignment la "
            "JOIN resident r ON r.id = la.resident_id "
            "LEFT JOIN app_user a ON a.id = la.assigned_by "
            "WHERE la.level = :l AND la.area_id = :a ORDER BY la.started_at DESC, la.id DESC"
        ),
        {"l": table, "a": area_id},
    ).all()
    items = [
        {
            **dict(r._mapping),
            "started_at": r.started_at.isoformat(),
            "ended_at": r.ended_at.isoformat() if r.ended_at else None,
        }
        for r in rows
    ]
    if items:
        audit(conn, user, "read", "resident", [i["resident_id"] for i in items], {"as": "leaders"})
    current = next((i for i in items if i["ended_at"] is None), None)
    return {"level": table, "area_id": area_id, "current": current, "history": items}


def assign_leader(
    conn: Connection,
    user: Who,
    table: str,
    area_id: int,
    resident_id: int,
    replaces: int | None,
) -> dict[str, Any]:
    """Make ``resident_id`` the leader; ``replaces`` names the assignment it ends.

    The partial unique index on current leaders decides races: of two people assigning at
    once, one wins and the other gets a Conflict naming the winner.
    """
    permissions.require(user, "assign_leader", "assign leaders")
    _require_leader_level(table)
    check_visible(conn, table, area_id)
    if not conn.scalar(
        sa.text("SELECT EXISTS (SELECT 1 FROM resident WHERE id = :r)"), {"r": resident_id}
    ):
        raise NotFound(f"no resident {resident_id}")
    inside = bool(
        conn.scalar(
            sa.text(
                "WITH members AS (SELECT * FROM ga_area_members(:l, :a)) SELECT EXISTS "
                f"(SELECT 1 FROM resident r WHERE r.id = :r AND {lives_inside_sql()})"
            ),
            {"r": resident_id, "l": table, "a": area_id},
        )
    )
    if replaces is not None:
        ended = conn.scalar(
            sa.text(
                "UPDATE leader_assignment SET ended_at = now(), ended_by = :u "
                "WHERE id = :id AND level = :l AND area_id = :a AND ended_at IS NULL RETURNING id"
            ),
            {"u": user.id, "id": replaces, "l": table, "a": area_id},
        )
        if ended is None:
            raise Conflict(
                f"assignment {replaces} is not the current leader of this {table} any more "
                "(someone changed it meanwhile); reload and choose again",
                key="refusal.leader_not_current",
            )
    try:
        with conn.begin_nested():
            new_id = conn.scalar(
                sa.text(
                    "INSERT INTO leader_assignment (level, area_id, resident_id, assigned_by, "
                    "lives_inside) VALUES (:l, :a, :r, :u, :inside) RETURNING id"
                ),
                {"l": table, "a": area_id, "r": resident_id, "u": user.id, "inside": inside},
            )
    except sa.exc.IntegrityError:
        current = conn.execute(
            sa.text(
                "SELECT la.id, r.name, la.started_at FROM leader_assignment la "
                "LEFT JOIN resident r ON r.id = la.resident_id WHERE la.level = :l "
                "AND la.area_id = :a AND la.ended_at IS NULL"
            ),
            {"l": table, "a": area_id},
        ).first()
        cid = current.id if current else None
        raise Conflict(
            f"this {table} already has a current leader (assignment {cid}); to replace "
            f"them send replaces={cid}",
            key="refusal.leader_taken",
            name=(current.name if current and current.name else "?"),
            when=(current.started_at.strftime("%Y-%m-%d %H:%M") if current else "?"),
            assignment_id=cid,
        ) from None
    result = leaders(conn, user, table, area_id)
    result["assignment_id"] = new_id
    result["warnings"] = (
        []
        if inside
        else [
            f"resident {resident_id} does not live in this {table.replace('_', ' ')} (不住在本区域)"
        ]
    )
    return result


def end_leader(conn: Connection, user: Who, table: str, area_id: int, assignment: int) -> None:
    permissions.require(user, "assign_leader", "assign leaders")
    check_visible(conn, table, area_id)
    ended = conn.scalar(
        sa.text(
            "UPDATE leader_assignment SET ended_at = now(), ended_by = :u "
            "WHERE id = :id AND level = :l AND area_id = :a AND ended_at IS NULL RETURNING id"
        ),
        {"u": user.id, "id": assignment, "l": table, "a": area_id},
    )
    if ended is None:
        raise Conflict(
            f"assignment {assignment} is not the current leader of this {table}",
            key="refusal.leader_not_current",
        )


# --- leaders: candidates and undo (the leaders page, /app/leaders) -----------------------

CANDIDATE_LIMIT = 30
# Straight-line metres from a resident's building to the area (0 inside). Walking distance
# would need the walk graph of the whole city per request (gis/reach builds it in seconds):
# not cheap enough for a tap, so the answer says which distance it gives.
DISTANCE_KIND = "straight_line"
_ORDER = (
    "(c.lives_inside AND c.is_backbone) DESC, c.distance_m, c.is_backbone DESC, "
    "c.building_id, c.room, c.resident_id"
)
# The UTM zone (EPSG) of a point in lon/lat: distances in metres (as gis.crs.metric_epsg).
_UTM_SRID = (
    "(CASE WHEN ST_Y({point}) >= 0 THEN 32600 ELSE 32700 END "
    "+ least(greatest(floor((ST_X({point}) + 180) / 6)::int + 1, 1), 60))"
)
# Each step once, materialized: the distance per building of the community in the area's
# UTM zone (not per resident: a polygon's geography distance costs up to a millisecond), the
# residents of those buildings (row-level security applies), then the backbone roles of the
# residents who can make the list only: those inside (backbone there comes first) and those
# no farther than the limit-th nearest (beyond it nobody is listed, backbone or not). Each
# role read is a probe under row-level security: reading them for the whole community cost
# more than everything else.
_CANDIDATES = f"""
    WITH area AS MATERIALIZED (
      SELECT ST_Transform(t.geom, z.srid) AS geom, z.srid FROM {{table}} t
       CROSS JOIN LATERAL (SELECT {_UTM_SRID.format(point="ST_PointOnSurface(t.geom)")} AS srid) z
       WHERE t.id = :a),
    members AS MATERIALIZED (SELECT * FROM ga_area_members(:l, :a)),
    near AS MATERIALIZED (
      SELECT b.id, coalesce(nullif(b.name, ''),
               nullif(concat(b.addr_street, b.addr_housenumber), ''), b.source_id) AS building,
             round(ST_Distance(ST_Transform(b.geom, a.srid), a.geom)::numeric, 0)::float
               AS distance_m
        FROM building b CROSS JOIN area a
       WHERE b.community_id = (SELECT x.community_id FROM building x  -- areas nest in one
                                WHERE x.id IN (SELECT building_id FROM members) LIMIT 1)),
    -- the community's buildings as an array: residents are found by the building index
    cand AS MATERIALIZED (
      SELECT r.id AS resident_id, r.name, r.building_id, n.building, r.room,
             {lives_inside_sql()} AS lives_inside, n.distance_m
        FROM resident r JOIN near n ON n.id = r.building_id
       WHERE r.building_id = ANY(ARRAY(SELECT id FROM near))
         AND r.status <> 'registered'  -- registered here but living elsewhere
    ),
    -- the distance of the limit-th nearest: nobody farther can make the list, unless inside
    cutoff AS MATERIALIZED (
      SELECT max(distance_m) AS m FROM (SELECT distance_m FROM cand
                                         ORDER BY distance_m LIMIT :limit) x),
    roles AS MATERIALIZED (
      SELECT k.resident_id, array_agg(k.role ORDER BY k.role) AS backbone FROM backbone k
       WHERE k.resident_id IN (SELECT resident_id FROM cand WHERE lives_inside
                                  OR distance_m <= (SELECT m FROM cutoff))
       GROUP BY k.resident_id),
    joined AS (
      SELECT c.*, coalesce(k.backbone, '{{{{}}}}') AS backbone, k.resident_id IS NOT NULL
               AS is_backbone
        FROM cand c LEFT JOIN roles k ON k.resident_id = c.resident_id),
    top AS (SELECT * FROM joined c ORDER BY {_ORDER} LIMIT :limit)
    SELECT c.resident_id, c.name, c.building_id, c.building, c.room, c.lives_inside,
           c.distance_m, c.backbone, EXISTS (SELECT 1 FROM leader_assignment la
             WHERE la.level = :l AND la.area_id = :a AND la.ended_at IS NULL
               AND la.resident_id = c.resident_id) AS is_current
      FROM top c ORDER BY {_ORDER}
"""


def leader_candidates(
    conn: Connection, user: Who, table: str, area_id: int, limit: int = CANDIDATE_LIMIT
) -> dict[str, Any]:
    """Who could lead an area: backbone residents living in it first, then the nearest.

    Only residents the user may see (row-level security) and only of the area's community;
    the nearest by straight-line distance from their building to the area (0 inside). A
    resident of a divided building lives inside the areas of their dwelling's part.
    Audited as one list read.
    """
    permissions.require(user, "assign_leader", "list leader candidates")
    _require_leader_level(table)
    check_visible(conn, table, area_id)
    sql = _CANDIDATES.format(table=BY_TABLE[table].table)  # names are ours, never the caller's
    rows = conn.execute(sa.text(sql), {"a": area_id, "l": table, "limit": limit}).all()
    items = [
        {**dict(r._mapping), "backbone": list(r.backbone), "is_backbone": bool(r.backbone)}
        for r in rows
    ]
    if items:
        audit(
            conn, user, "list", "resident", [i["resident_id"] for i in items],
            {"as": f"leader candidates of {table} {area_id}"},
        )  # fmt: skip
    return {
        "level": table,
        "area_id": area_id,
        "distance": DISTANCE_KIND,
        "items": items,
    }


def undo_leader(
    conn: Connection, user: Who, table: str, area_id: int, assignment: int
) -> dict[str, Any]:
    """Undo an assignment in one transaction: end its term and give the seat back to the
    leader it replaced (a new term for them), or leave it vacant if it was vacant.

    ``assignment`` must be the current one (else a Conflict: someone changed it since).
    The replaced term is the one that ended when ``assignment`` started (same transaction).
    """
    permissions.require(user, "assign_leader", "assign leaders")
    _require_leader_level(table)
    check_visible(conn, table, area_id)
    current = conn.execute(
        sa.text(
            "SELECT id, started_at FROM leader_assignment WHERE id = :id AND level = :l "
            "AND area_id = :a AND ended_at IS NULL FOR UPDATE"
        ),
        {"id": assignment, "l": table, "a": area_id},
    ).first()
    if current is None:
        raise Conflict(
            f"assignment {assignment} is not the current leader of this {table} any more; "
            "reload and choose again",
            key="refusal.leader_not_current",
        )
    previous = conn.scalar(
        sa.text(
            "SELECT resident_id FROM leader_assignment WHERE level = :l AND area_id = :a "
            "AND id <> :id AND ended_at = :t ORDER BY id DESC LIMIT 1"
        ),
        {"l": table, "a": area_id, "id": assignment, "t": current.started_at},
    )
    end_leader(conn, user, table, area_id, assignment)
    if previous is None:
        result = leaders(conn, user, table, area_id)
        return {**result, "assignment_id": None, "restored": False, "warnings": []}
    result = assign_leader(conn, user, table, area_id, int(previous), None)
    return {**result, "restored": True}
