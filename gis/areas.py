"""The hierarchy as the API serves it: levels, scoped reads, paths, leaders.

An area is visible to a user when it holds at least one building of the user's scope: a
grid worker sees their grid, the groups and buildings in it, and the community and
subdistrict above it — not the neighbouring grid. Admins see everything. GeoJSON is built
by PostGIS (``json_build_object``), so a page is one query and no Python loop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis.errors import Conflict, Forbidden, InvalidInput, NotFound
from gis.ledger.store import Who, audit


@dataclass(frozen=True)
class Level:
    """One level of the hierarchy: its table, parent and column in ``building_path``."""

    name: str  # URL name, plural
    table: str
    parent_table: str | None
    parent_column: str | None
    path_column: str
    has_name: bool
    leader_level: str | None


LEVELS = {
    lv.name: lv
    for lv in (
        Level("subdistricts", "subdistrict", None, None, "subdistrict_id", True, None),
        Level(
            "communities", "community", "subdistrict", "subdistrict_id", "community_id", True, None
        ),
        Level("grids", "grid", "community", "community_id", "grid_id", True, None),
        Level(
            "residents_groups",
            "residents_group",
            "grid",
            "grid_id",
            "residents_group_id",
            False,
            "residents_group",
        ),
        Level(
            "building_clusters",
            "building_cluster",
            "residents_group",
            "residents_group_id",
            "building_cluster_id",
            False,
            "building_cluster",
        ),
        Level("units", "unit", "building_cluster", "building_cluster_id", "unit_id", False, "unit"),
        Level("buildings", "building", "unit", "unit_id", "building_id", True, "building"),
    )
}
BY_TABLE = {lv.table: lv for lv in LEVELS.values()}
CHILD = {
    "subdistricts": "communities",
    "communities": "grids",
    "grids": "residents_groups",
    "residents_groups": "building_clusters",
    "building_clusters": "units",
    "units": "buildings",
}
LEADER_LEVELS = ("unit", "building_cluster", "residents_group", "building")
ASSIGNERS = ("admin", "committee_staff")


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


def _features_sql(level: Level, where: str) -> str:
    leader = ""
    leader_join = ""
    if level.leader_level:
        leader = (
            ", 'leader', CASE WHEN r.id IS NULL THEN NULL ELSE json_build_object("
            "'resident_id', r.id, 'name', r.name, 'since', la.started_at) END"
        )
        leader_join = (
            "LEFT JOIN leader_assignment la ON la.level = "
            f"'{level.leader_level}' AND la.area_id = t.id AND la.ended_at IS NULL "
            "LEFT JOIN resident r ON r.id = la.resident_id"
        )
    parent = ""
    parent_join = ""
    if level.parent_table:
        parent_code = "pt.source_id" if level.parent_table == "building" else "pt.code"
        parent = f", 'parent_id', t.{level.parent_column}, 'parent_code', {parent_code}"
        parent_join = f"LEFT JOIN {level.parent_table} pt ON pt.id = t.{level.parent_column}"
    name = "t.name" if level.has_name else "NULL"
    extra = ""
    if level.table == "residents_group":
        extra = ", 'community_id', t.community_id, 'flags', t.flags, 'locked', t.is_locked"
    elif level.table == "building":
        extra = (
            ", 'address', nullif(concat(t.addr_street, t.addr_housenumber), ''), "
            "'levels', t.levels, 'community_id', t.community_id"
        )
    return f"""
        SELECT json_build_object(
                 'type', 'Feature', 'id', t.id,
                 'geometry', ST_AsGeoJSON(t.geom, 6)::json,
                 'properties', json_build_object(
                     'id', t.id, 'level', '{level.table}', 'code', {_code(level)},
                     'name', {name}, 'households', t.households{parent}{extra}{leader}))::text
               AS feature,
               {"r.id" if level.leader_level else "NULL::bigint"} AS leader_id
          FROM {level.table} t {parent_join} {leader_join}
         WHERE {visible_sql(level)} AND {where}
    """


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

    PostGIS writes each feature's JSON; Python only joins them (no parsing and no
    re-encoding of coordinates).
    """
    level = get_level(level_name)
    where, params = ["true"], {"limit": limit, "offset": offset}
    if parent_id is not None:
        if level.parent_column is None:
            raise InvalidInput(f"{level.name} have no parent")
        where.append(f"t.{level.parent_column} = :parent")
        params["parent"] = parent_id
    if community_id is not None:
        where.append(_IN_COMMUNITY[level.table])
        params["cid"] = community_id
    if bbox is not None:
        where.append("t.geom && ST_MakeEnvelope(:w, :s, :e, :n, 4326)")
        params.update(w=bbox[0], s=bbox[1], e=bbox[2], n=bbox[3])
    sql = _features_sql(level, " AND ".join(where))
    rows = conn.execute(
        sa.text(f"{sql} ORDER BY {_code(level)}, t.id LIMIT :limit OFFSET :offset"), params
    ).all()
    if rows and (offset == 0 and len(rows) < limit):
        total = len(rows)  # the whole answer is on this page
    else:
        total = conn.scalar(sa.text(f"SELECT count(*) FROM ({sql}) q"), params)
    leaders = [r.leader_id for r in rows if r.leader_id is not None]
    if leaders:
        audit(conn, user, "list", "resident", leaders, {"as": f"leaders of {level.name}"})
    return (
        f'{{"type":"FeatureCollection","numberMatched":{int(total)},'
        f'"numberReturned":{len(rows)},"features":[{",".join(r.feature for r in rows)}]}}'
    )


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
    return json.loads(row.feature)


def children(
    conn: Connection, user: Who, level_name: str, area_id: int, limit: int, offset: int
) -> dict[str, Any]:
    feature(conn, user, level_name, area_id)  # 404 when not visible
    if level_name not in CHILD:
        raise InvalidInput(f"{level_name} have no child areas; see /api/buildings/ID/dwellings")
    child = LEVELS[CHILD[level_name]]
    if level_name == "communities":  # grids; groups without a grid hang from the community
        return feature_page(conn, user, "grids", parent_id=area_id, limit=limit, offset=offset)
    return feature_page(conn, user, child.name, parent_id=area_id, limit=limit, offset=offset)


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
    return {
        "type": "FeatureCollection",
        "numberMatched": len(rows),
        "numberReturned": len(rows),
        "features": [
            {
                "type": "Feature",
                "id": r.id,
                "geometry": None,
                "properties": {
                    "level": "dwelling",
                    "code": f"{code}-{r.room}",
                    "floor": r.floor,
                    "room": r.room,
                    "households": r.households,
                    "is_estimated": r.is_estimated,
                    "parent_id": building_id,
                    "parent_code": code,
                },
            }
            for r in rows
        ],
    }


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
    if user.role not in ASSIGNERS:
        raise Forbidden("only admins and committee staff assign leaders")
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
                "(someone changed it meanwhile); reload and choose again"
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
        current = conn.scalar(
            sa.text(
                "SELECT id FROM leader_assignment WHERE level = :l AND area_id = :a "
                "AND ended_at IS NULL"
            ),
            {"l": table, "a": area_id},
        )
        raise Conflict(
            f"this {table} already has a current leader (assignment {current}); to replace "
            f"them send replaces={current}"
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
    if user.role not in ASSIGNERS:
        raise Forbidden("only admins and committee staff assign leaders")
    check_visible(conn, table, area_id)
    ended = conn.scalar(
        sa.text(
            "UPDATE leader_assignment SET ended_at = now(), ended_by = :u "
            "WHERE id = :id AND level = :l AND area_id = :a AND ended_at IS NULL RETURNING id"
        ),
        {"u": user.id, "id": assignment, "l": table, "a": area_id},
    )
    if ended is None:
        raise Conflict(f"assignment {assignment} is not the current leader of this {table}")


SMALL = 5  # counts below this are shown as "<5" (never 0: zero is safe to show)


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

    Counts from 1 to 4 are suppressed (``"<5"``), so that no small group of people can be
    picked out; this is what planners get instead of personal rows.
    """
    level = get_level(level_name)
    page = feature_page(
        conn, user, level_name, parent_id=parent_id, community_id=community_id,
        limit=limit, offset=offset,
    )  # fmt: skip
    ids = [f["id"] for f in page["features"]]
    rows = conn.execute(
        sa.text(
            f"SELECT p.{level.path_column} AS area, c.what, sum(c.n)::bigint AS n "
            "FROM ga_people_counts() c JOIN building_path p ON p.building_id = c.building_id "
            f"WHERE p.{level.path_column} = ANY(:ids) GROUP BY 1, 2"
        ),
        {"ids": ids},
    ).all()
    counts: dict[int, dict[str, Any]] = {i: {} for i in ids}
    for r in rows:
        counts[r.area][r.what] = r.n if r.n >= SMALL else f"<{SMALL}"
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
