"""The hierarchy as the API serves it: levels, scoped reads, paths (leaders: ``gis.leaders``).

An area is visible to a user when it holds at least one building of the user's scope: a
grid worker sees their grid, the groups and buildings in it, and the community and
subdistrict above it — not the neighbouring grid. Admins see everything. GeoJSON is built
by PostGIS (``gis.geojson``), so a page is one query and no Python loop.

A divided building (``building_part``) is in each area that holds one of its parts: its
dwellings belong to the unit of their part and the areas above it (``ga_area_members``,
migration 0013). A user whose scope holds one part sees the building and that part's
areas, not the areas of its other parts.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis import geojson, levels
from gis.audit import Who, audit
from gis.errors import InvalidInput, NotFound
from gis.levels import Level
from gis.suppression import SMALL, WITHHELD, read_table, withhold

# The hierarchy's levels come from gis/levels.py, keyed here by their URL name (plural).
LEVELS: dict[str, Level] = dict(levels.BY_PLURAL)
BY_TABLE: dict[str, Level] = dict(levels.BY_TABLE)
LEADER_LEVELS = levels.LEADER_TABLES


def lives_inside_sql(members: str = "members", alias: str = "r") -> str:
    """SQL: resident ``alias`` lives in the area whose ``ga_area_members`` rows are the CTE
    (or subquery) ``members``: in a whole building of it, or in a dwelling of one of its
    parts (the part a divided building hangs from also holds rooms no part names)."""
    return (
        f"EXISTS (SELECT 1 FROM {members} m WHERE m.building_id = {alias}.building_id AND "
        f"(CASE WHEN m.rooms IS NULL THEN {alias}.room <> ALL(m.other_rooms) "
        f"ELSE {alias}.room = ANY(m.rooms) END))"
    )


def _leader_level(level: Level) -> str | None:
    return level.table if level.is_leader_level else None


# From a set of buildings (``{b}``: a subquery of building ids) up to the ids of one
# level's areas that hold them: index lookups along the parent keys, not a join of whole
# tables. A divided building reaches the units of its parts, less those of parts the
# user's scope does not hold (``ga_scope_parts_out``: empty unless the scope is a unit,
# cluster, group or grid that holds only some parts of a building).
_UNITS = (
    "SELECT x.u FROM (SELECT b.unit_id FROM building b WHERE b.id IN ({b}) UNION ALL "
    "SELECT p.unit_id FROM building_part p WHERE p.building_id IN ({b})) x(u) "
    "WHERE x.u NOT IN (SELECT o.unit_id FROM ga_scope_parts_out(ga_user()) o "
    "WHERE o.unit_id IS NOT NULL)"
)
_UP = {
    "building": "SELECT b.id FROM building b WHERE b.id IN ({b})",
    "unit": _UNITS,
    "building_cluster": f"SELECT u.building_cluster_id FROM unit u WHERE u.id IN ({_UNITS})",
    "residents_group": "SELECT c.residents_group_id FROM unit u JOIN building_cluster c "
    f"ON c.id = u.building_cluster_id WHERE u.id IN ({_UNITS})",
    "grid": "SELECT g.grid_id FROM unit u JOIN building_cluster c ON c.id = u.building_cluster_id "
    f"JOIN residents_group g ON g.id = c.residents_group_id WHERE u.id IN ({_UNITS})",
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
    if level.table in _PARTS_UNDER:
        props["parts"] = _parts_sql(level.table)
    if _leader_level(level):
        props["leader"] = (
            "CASE WHEN r.id IS NULL THEN NULL ELSE json_build_object("
            "'resident_id', r.id, 'name', r.name, 'since', la.started_at) END"
        )
    return props


# Building parts under an area (a divided building's parts: floors, households, unit and
# group), so that maps draw divided buildings hatched and cards list their floors per group.
# Keyed by level: how the parts ``p`` under the area ``t`` are found.
_PARTS_UNDER = {
    "building": "p.building_id = t.id",
    "unit": "p.unit_id = t.id",
    "building_cluster": "pu.building_cluster_id = t.id",
    "residents_group": "pc.residents_group_id = t.id",
}


def _parts_sql(table: str) -> str:
    """SQL: a json array of the parts under area ``t`` in floor order (NULL when none)."""
    return (
        "(SELECT json_agg(json_build_object('building_id', p.building_id, 'building', "
        "coalesce(nullif(pb.name, ''), pb.source_id), 'part_no', p.part_no, 'floor_min', "
        "p.floor_min, 'floor_max', p.floor_max, 'entrance', p.entrance, 'households', "
        "p.households, 'unit', pu.code, "
        "'group', pg.code, 'group_id', pg.id) ORDER BY p.building_id, p.part_no) "
        "FROM building_part p JOIN building pb ON pb.id = p.building_id "
        "JOIN unit pu ON pu.id = p.unit_id "
        "JOIN building_cluster pc ON pc.id = pu.building_cluster_id "
        f"JOIN residents_group pg ON pg.id = pc.residents_group_id WHERE {_PARTS_UNDER[table]})"
    )


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


def check_visible(conn: Connection, table: str, area_id: int) -> None:
    """404 unless the area (any level, by table name) holds a building of the user's scope."""
    level = BY_TABLE[table]
    # the scope once (the lower levels look it up twice: buildings, and parts of buildings);
    # an admin's short cut leaves it unread, so it is not computed for them
    ok = conn.scalar(
        sa.text(
            "WITH scope AS MATERIALIZED (SELECT ga_scope_buildings(ga_user()) AS id) "
            f"SELECT EXISTS (SELECT 1 FROM {table} t WHERE t.id = :i AND "
            f"{visible_sql(level, scope='SELECT id FROM scope')})"
        ),
        {"i": area_id},
    )
    if not ok:
        raise NotFound(f"no {table.replace('_', ' ')} {area_id}")


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
