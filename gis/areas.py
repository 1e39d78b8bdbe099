"""The hierarchy as the API serves it: levels, scoped reads, paths, leaders.

An area is visible to a user when it holds at least one building of the user's scope: a
grid worker sees their grid, the groups and buildings in it, and the community and
subdistrict above it — not the neighbouring grid. Admins see everything. GeoJSON is built
by PostGIS (``gis.geojson``), so a page is one query and no Python loop.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis import geojson, levels, permissions
from gis.audit import Who, audit
from gis.errors import Conflict, InvalidInput, NotFound
from gis.levels import Level
from gis.suppression import SMALL, WITHHELD, read_table, withhold

# The hierarchy's levels come from gis/levels.py, keyed here by their URL name (plural).
LEVELS: dict[str, Level] = dict(levels.BY_PLURAL)
BY_TABLE: dict[str, Level] = dict(levels.BY_TABLE)
LEADER_LEVELS = levels.LEADER_TABLES


def _leader_level(level: Level) -> str | None:
    return level.table if level.is_leader_level else None


# From a set of buildings (``{b}``: a subquery of building ids) up to the ids of one
# level's areas that hold them: index lookups along the parent keys, not a join of whole
# tables.
_UP = {
    "building": "SELECT b.id FROM building b WHERE b.id IN ({b})",
    "unit": "SELECT b.unit_id FROM building b WHERE b.id IN ({b})",
    "building_cluster": "SELECT u.building_cluster_id FROM building b "
    "JOIN unit u ON u.id = b.unit_id WHERE b.id IN ({b})",
    "residents_group": "SELECT c.residents_group_id FROM building b JOIN unit u ON u.id = "
    "b.unit_id JOIN building_cluster c ON c.id = u.building_cluster_id WHERE b.id IN ({b})",
    "grid": "SELECT g.grid_id FROM building b JOIN unit u ON u.id = b.unit_id "
    "JOIN building_cluster c ON c.id = u.building_cluster_id "
    "JOIN residents_group g ON g.id = c.residents_group_id WHERE b.id IN ({b})",
    "community": "SELECT b.community_id FROM building b WHERE b.id IN ({b})",
    "subdistrict": "SELECT cm.subdistrict_id FROM building b JOIN community cm "
    "ON cm.id = b.community_id WHERE b.id IN ({b})",
}
# Down from a community to one level's areas in it.
_IN_COMMUNITY = {
    "subdistrict": "t.id IN (SELECT subdistrict_id FROM community WHERE id = :cid)",
    "community": "t.id = :cid",
    "grid": "t.community_id = :cid",
    "residents_group": "t.community_id = :cid",
    "building_cluster": "t.residents_group_id IN "
    "(SELECT id FROM residents_group WHERE community_id = :cid)",
    "unit": "t.building_cluster_id IN (SELECT c.id FROM building_cluster c JOIN residents_group "
    "g ON g.id = c.residents_group_id WHERE g.community_id = :cid)",
    "building": "t.community_id = :cid",
}


def visible_sql(
    level: Level, alias: str = "t", scope: str = "SELECT ga_scope_buildings(ga_user())"
) -> str:
    """SQL: the area ``alias`` holds a building of the user's scope (admins: any area).

    ``scope`` is a subquery of building ids; a query that tests several levels passes one
    computed once (a materialized CTE) instead of calling the scope function each time.
    """
    up = _UP[level.table].format(b=scope)
    return f"((SELECT ga_role()) = 'admin' OR {alias}.id IN ({up}))"


def _code(level: Level) -> str:
    return "t.source_id" if level.table == "building" else "t.code"


def _properties(level: Level) -> dict[str, str]:
    """A feature's properties: name → SQL on ``t`` (the area), ``pt`` (parent), ``r``."""
    props = {
        "id": "t.id",
        "level": f"'{level.table}'",
        "code": _code(level),
        "name": "t.name" if level.has_name else "NULL",
        "households": "t.households",
    }
    if level.parent:
        props["parent_id"] = f"t.{level.parent_column}"
        props["parent_code"] = "pt.source_id" if level.parent == "building" else "pt.code"
    if level.table == "residents_group":
        props.update(community_id="t.community_id", flags="t.flags", locked="t.is_locked")
    elif level.table == "building":
        props.update(
            address="nullif(concat(t.addr_street, t.addr_housenumber), '')",
            levels="t.levels",
            community_id="t.community_id",
        )
    if _leader_level(level):
        props["leader"] = (
            "CASE WHEN r.id IS NULL THEN NULL ELSE json_build_object("
            "'resident_id', r.id, 'name', r.name, 'since', la.started_at) END"
        )
    return props


def _features_sql(level: Level, where: str) -> str:
    """Features (``feature``, json) of one level's visible areas, with their sort keys."""
    leader_join = ""
    if _leader_level(level):
        leader_join = (
            "LEFT JOIN leader_assignment la ON la.level = "
            f"'{_leader_level(level)}' AND la.area_id = t.id AND la.ended_at IS NULL "
            "LEFT JOIN resident r ON r.id = la.resident_id"
        )
    parent_join = ""
    if level.parent:
        parent_join = f"LEFT JOIN {level.parent} pt ON pt.id = t.{level.parent_column}"
    feature = geojson.feature_sql("t.id", "t.geom", _properties(level), precision=6)
    return f"""
        SELECT {feature} AS feature,
               {"r.id" if _leader_level(level) else "NULL::bigint"} AS leader_id,
               {_code(level)} AS sort_code, t.id AS sort_id
          FROM {level.table} t {parent_join} {leader_join}
         WHERE {visible_sql(level)} AND {where}
    """


def first_delineated_community(conn: Connection, code: str | None = None) -> int | None:
    """The id of the user's first community (by code) that has residents' groups they see,
    or of the one with ``code``; None if there is none. No geometry is read."""
    community, group = levels.BY_TABLE["community"], levels.BY_TABLE["residents_group"]
    return conn.scalar(
        sa.text(
            f"SELECT t.id FROM community t WHERE {visible_sql(community)} "
            "AND (CAST(:code AS text) IS NULL OR t.code = :code) "
            f"AND EXISTS (SELECT 1 FROM residents_group g WHERE g.community_id = t.id "
            f"AND {visible_sql(group, 'g')}) ORDER BY t.code, t.id LIMIT 1"
        ),
        {"code": code},
    )


def get_level(name: str) -> Level:
    if name not in LEVELS:
        raise NotFound(f"no level {name}: one of {', '.join(LEVELS)}")
    return LEVELS[name]


def feature_page_json(
    conn: Connection,
    user: Who,
    level_name: str,
    *,
    parent_id: int | None = None,
    community_id: int | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    limit: int = 200,
    offset: int = 0,
) -> str:
    """A page of one level's areas in the user's scope, as FeatureCollection JSON text.

    PostGIS writes the whole collection (``gis.geojson.collection_sql``): no parsing and no
    re-encoding of coordinates in Python.
    """
    level = get_level(level_name)
    where, params = ["true"], {"limit": limit, "offset": offset}
    if parent_id is not None:
        if level.parent_column is None:
            raise InvalidInput(f"{level.plural} have no parent")
        where.append(f"t.{level.parent_column} = :parent")
        params["parent"] = parent_id
    if community_id is not None:
        where.append(_IN_COMMUNITY[level.table])
        params["cid"] = community_id
    if bbox is not None:
        where.append("t.geom && ST_MakeEnvelope(:w, :s, :e, :n, 4326)")
        params.update(w=bbox[0], s=bbox[1], e=bbox[2], n=bbox[3])
    sql = _features_sql(level, " AND ".join(where))
    page = f"{sql} ORDER BY sort_code, sort_id LIMIT :limit OFFSET :offset"
    # a page shorter than the limit from the start is the whole answer: no count query
    # (an InitPlan runs only when its value is needed)
    matched = (
        "CASE WHEN :offset = 0 AND count(*) BETWEEN 1 AND :limit - 1 THEN count(*) "
        f"ELSE (SELECT count(*) FROM ({sql}) q) END"
    )
    leaders = (
        "array_agg(p.leader_id ORDER BY p.sort_code, p.sort_id) "
        "FILTER (WHERE p.leader_id IS NOT NULL)"
    )
    collection = geojson.collection_sql(
        page, "p.sort_code, p.sort_id", matched=matched, also={"leaders": leaders}
    )
    row = conn.execute(sa.text(collection), params).one()
    if row.leaders:
        audit(conn, user, "list", "resident", row.leaders, {"as": f"leaders of {level.plural}"})
    return row.collection


def feature_page(conn: Connection, user: Who, level_name: str, **kw: Any) -> dict[str, Any]:
    """:func:`feature_page_json`, parsed."""
    return json.loads(feature_page_json(conn, user, level_name, **kw))


def feature(conn: Connection, user: Who, level_name: str, area_id: int) -> dict[str, Any]:
    level = get_level(level_name)
    row = conn.execute(sa.text(_features_sql(level, "t.id = :id")), {"id": area_id}).first()
    if row is None:
        raise NotFound(f"no {level.table.replace('_', ' ')} {area_id}")
    if row.leader_id is not None:
        audit(conn, user, "read", "resident", [row.leader_id], {"as": f"leader of {level.table}"})
    return row.feature


def children(
    conn: Connection, user: Who, level_name: str, area_id: int, limit: int, offset: int
) -> dict[str, Any]:
    feature(conn, user, level_name, area_id)  # 404 when not visible
    child = levels.child_of(get_level(level_name).table) if level_name in LEVELS else None
    if child is None:
        raise InvalidInput(f"{level_name} have no child areas; see /api/buildings/ID/dwellings")
    if level_name == "communities":  # grids; groups without a grid hang from the community
        return feature_page(conn, user, "grids", parent_id=area_id, limit=limit, offset=offset)
    return feature_page(conn, user, child.plural, parent_id=area_id, limit=limit, offset=offset)


def path(conn: Connection, building_id: int) -> list[dict[str, Any]]:
    """From a building up to its subdistrict (levels not drawn yet are left out)."""
    row = conn.execute(
        sa.text(
            "SELECT p.* FROM building_path p WHERE p.building_id = :b AND "
            "((SELECT ga_role()) = 'admin' OR p.building_id IN "
            "(SELECT ga_scope_buildings(ga_user())))"
        ),
        {"b": building_id},
    ).first()
    if row is None:
        raise NotFound(f"no building {building_id}")
    out = []
    for level in LEVELS.values():
        area_id = getattr(row, level.path_column)
        if area_id is None:
            continue
        code = "source_id" if level.table == "building" else "code"
        name = "name" if level.has_name else "NULL"
        r = conn.execute(
            sa.text(
                f"SELECT id, {code} AS code, {name} AS name, households FROM {level.table} "
                "WHERE id = :i"
            ),
            {"i": area_id},
        ).first()
        if r is not None:
            out.append({"level": level.table, **dict(r._mapping)})
    return list(reversed(out))


def dwellings(conn: Connection, building_id: int) -> dict[str, Any]:
    """A building's dwellings as a FeatureCollection: no geometry of their own (a room is
    inside its building's footprint), properties floor, room, households and the parent."""
    up = path(conn, building_id)  # 404 outside scope
    code = up[0]["code"]
    rows = conn.execute(
        sa.text(
            "SELECT id, floor, room, households, is_estimated FROM dwelling_all "
            "WHERE building_id = :b ORDER BY floor, room LIMIT 5000"
        ),
        {"b": building_id},
    ).all()
    return geojson.collection(
        geojson.feature(
            r.id,
            None,
            {
                "level": "dwelling",
                "code": f"{code}-{r.room}",
                "floor": r.floor,
                "room": r.room,
                "households": r.households,
                "is_estimated": r.is_estimated,
                "parent_id": building_id,
                "parent_code": code,
            },
        )
        for r in rows
    )


# --- leaders -----------------------------------------------------------------------------


def check_visible(conn: Connection, table: str, area_id: int) -> None:
    """404 unless the area (any level, by table name) holds a building of the user's scope."""
    level = BY_TABLE[table]
    ok = conn.scalar(
        sa.text(
            f"SELECT EXISTS (SELECT 1 FROM {table} t WHERE t.id = :i AND {visible_sql(level)})"
        ),
        {"i": area_id},
    )
    if not ok:
        raise NotFound(f"no {table.replace('_', ' ')} {area_id}")


def leaders(conn: Connection, user: Who, table: str, area_id: int) -> dict[str, Any]:
    """The current leader of an area and the ones before (as far as the user may see)."""
    if table not in LEADER_LEVELS:
        raise InvalidInput(f"leaders are kept for {', '.join(LEADER_LEVELS)}")
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
    if table not in LEADER_LEVELS:
        raise InvalidInput(f"leaders are kept for {', '.join(LEADER_LEVELS)}")
    check_visible(conn, table, area_id)
    if not conn.scalar(
        sa.text("SELECT EXISTS (SELECT 1 FROM resident WHERE id = :r)"), {"r": resident_id}
    ):
        raise NotFound(f"no resident {resident_id}")
    column = BY_TABLE[table].path_column
    inside = bool(
        conn.scalar(
            sa.text(
                f"SELECT EXISTS (SELECT 1 FROM resident r JOIN building_path p "
                f"ON p.building_id = r.building_id WHERE r.id = :r AND p.{column} = :a)"
            ),
            {"r": resident_id, "a": area_id},
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


def stats(
    conn: Connection,
    user: Who,
    level_name: str,
    *,
    parent_id: int | None = None,
    community_id: int | None = None,
    limit: int = 500,
    offset: int = 0,
) -> dict[str, Any]:
    """People counts per area of a level: residents, special groups, key persons, backbone.

    A count is either exact or ``"suppressed"``: counts from 1 to 4 are suppressed so that
    no small group of people can be picked out, and so are the complementary cells that
    would let a reader work them out by subtraction (a grid minus its other groups, a
    community minus its grids, across every level and query; see
    :func:`gis.suppression.withhold`). This is what planners get instead of personal rows.
    Categories are not parts of ``residents`` (a resident may be in several, or none), so
    they form no sum, only the bound ``special_group:*``/``backbone:*`` <= ``residents``
    the audit also uses.
    """
    level = get_level(level_name)
    index = list(LEVELS).index(level_name)
    page = feature_page(
        conn, user, level_name, parent_id=parent_id, community_id=community_id,
        limit=limit, offset=offset,
    )  # fmt: skip
    table = read_table(conn, list(LEVELS.values()))
    withheld = withhold(table)
    counts: dict[int, dict[str, Any]] = {f["id"]: {} for f in page["features"]}
    for what in sorted(table.counts):
        by_area = table.counts[what]
        for area, shown in counts.items():
            n = by_area.get((index, area))
            if n:
                shown[what] = WITHHELD if ((index, area), what) in withheld else n
    return {
        "level": level.table,
        "numberMatched": page["numberMatched"],
        "suppressed_below": SMALL,
        "areas": [
            {
                "id": f["id"],
                "code": f["properties"]["code"],
                "name": f["properties"]["name"],
                "households": f["properties"]["households"],
                "counts": counts[f["id"]],
            }
            for f in page["features"]
        ],
    }


# --- leaders: candidates and undo (the leaders page, /app/leaders) -----------------------

CANDIDATE_LIMIT = 30
# Straight-line metres from a resident's building to the area (0 inside). Walking distance
# would need the walk graph of the whole city per request (gis/reach builds it in seconds):
# not cheap enough for a tap, so the answer says which distance it gives.
DISTANCE_KIND = "straight_line"


def leader_candidates(
    conn: Connection, user: Who, table: str, area_id: int, limit: int = CANDIDATE_LIMIT
) -> dict[str, Any]:
    """Who could lead an area: backbone residents living in it first, then the nearest.

    Only residents the user may see (row-level security) and only of the area's community;
    the nearest by straight-line distance from their building to the area (0 inside).
    Audited as one list read.
    """
    permissions.require(user, "assign_leader", "list leader candidates")
    if table not in LEADER_LEVELS:
        raise InvalidInput(f"leaders are kept for {', '.join(LEADER_LEVELS)}")
    check_visible(conn, table, area_id)
    column = BY_TABLE[table].path_column  # names are ours, never the caller's text
    rows = conn.execute(
        sa.text(
            f"""
            WITH area AS (SELECT geom FROM {table} WHERE id = :a),
            inside AS (SELECT building_id FROM building_path WHERE {column} = :a),
            community AS (SELECT DISTINCT p.community_id FROM building_path p
                           WHERE p.{column} = :a),
            near AS (
              SELECT b.id, coalesce(nullif(b.name, ''),
                       nullif(concat(b.addr_street, b.addr_housenumber), ''), b.source_id)
                       AS building,
                     b.id IN (SELECT building_id FROM inside) AS lives_inside,
                     ST_Distance(b.geom::geography, (SELECT geom FROM area)::geography)
                       AS distance_m
                FROM building b WHERE b.community_id IN (SELECT community_id FROM community)
            ),
            -- the roles once for all (a subquery per resident cost 0.4 ms each under RLS)
            roles AS (SELECT k.resident_id, array_agg(k.role ORDER BY k.role) AS backbone
                        FROM backbone k GROUP BY k.resident_id),
            cand AS (
              SELECT r.id AS resident_id, r.name, r.building_id, n.building, r.room,
                     n.lives_inside, round(n.distance_m::numeric, 0)::float AS distance_m,
                     coalesce(k.backbone, '{{}}') AS backbone
                FROM resident r JOIN near n ON n.id = r.building_id
                LEFT JOIN roles k ON k.resident_id = r.id
               WHERE r.status <> 'registered'  -- registered here but living elsewhere
            )
            SELECT c.*, EXISTS (SELECT 1 FROM leader_assignment la WHERE la.level = :l
                     AND la.area_id = :a AND la.ended_at IS NULL
                     AND la.resident_id = c.resident_id) AS is_current
              FROM cand c
             ORDER BY (c.lives_inside AND cardinality(c.backbone) > 0) DESC, c.distance_m,
                      cardinality(c.backbone) > 0 DESC, c.building_id, c.room, c.resident_id
             LIMIT :limit
            """
        ),
        {"a": area_id, "l": table, "limit": limit},
    ).all()
    items = [
        {
            **dict(r._mapping),
            "backbone": list(r.backbone),
            "is_backbone": bool(r.backbone),
        }
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
    if table not in LEADER_LEVELS:
        raise InvalidInput(f"leaders are kept for {', '.join(LEADER_LEVELS)}")
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
