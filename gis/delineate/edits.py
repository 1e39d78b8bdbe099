"""Corrections by committee staff: move a building to another unit, a unit to another
cluster, a cluster to another group; lock or unlock a group.

After a move the households, polygons and codes of every area touched are derived again
from the stored cells (exact unions in metres), and the invariants are checked: no area is
left empty, every area stays one polygon, moves stay inside the community. An edit that
would break one is refused with the reason, and nothing is changed.
"""

from __future__ import annotations

from typing import Any

import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis.crs import to_wgs84
from gis.delineate.codes import CLUSTER_BAND_M, UNIT_BAND_M, reading_order
from gis.delineate.runs import group_band
from gis.errors import Conflict, InvalidInput, NotFound
from gis.facilities import StaleVersion

# (table, parent column, child table, child's column pointing here)
LEVELS = {
    "unit": ("unit", "building_cluster_id", "building", "unit_id"),
    "building_cluster": ("building_cluster", "residents_group_id", "unit", "building_cluster_id"),
    "residents_group": (
        "residents_group",
        "community_id",
        "building_cluster",
        "residents_group_id",
    ),
}
LABEL = {"unit": "unit", "building_cluster": "cluster", "residents_group": "group"}


def _row(conn: Connection, table: str, row_id: int) -> Any:
    row = (
        conn.execute(sa.text(f"SELECT * FROM {table} WHERE id = :id FOR UPDATE"), {"id": row_id})
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"no {LABEL.get(table, table)} {row_id}")
    return row


def _community_of(conn: Connection, table: str, row_id: int) -> int:
    sql = {
        "building": "SELECT g.community_id FROM building b JOIN unit u ON u.id = b.unit_id "
        "JOIN building_cluster c ON c.id = u.building_cluster_id "
        "JOIN residents_group g ON g.id = c.residents_group_id WHERE b.id = :id",
        "unit": "SELECT g.community_id FROM unit u "
        "JOIN building_cluster c ON c.id = u.building_cluster_id "
        "JOIN residents_group g ON g.id = c.residents_group_id WHERE u.id = :id",
        "building_cluster": "SELECT g.community_id FROM building_cluster c "
        "JOIN residents_group g ON g.id = c.residents_group_id WHERE c.id = :id",
        "residents_group": "SELECT community_id FROM residents_group WHERE id = :id",
    }[table]
    cid = conn.scalar(sa.text(sql), {"id": row_id})
    if cid is None:
        raise NotFound(f"{table} {row_id} is not in any delineated community; run delineate")
    return int(cid)


def move(
    conn: Connection, kind: str, item_id: int, to_id: int, from_id: int | None = None
) -> dict[str, Any]:
    """Move a building (kind 'building') to unit ``to_id``, a unit to cluster ``to_id`` or a
    cluster to group ``to_id``; return the areas re-derived and any warnings.

    ``from_id`` is where the item was on the user's screen: if it has moved since, the move
    is refused (StaleVersion) and nothing changes.
    """
    moves = {"building": "unit", "unit": "building_cluster", "building_cluster": "residents_group"}
    if kind not in moves:
        raise InvalidInput("move a building, a unit or a building_cluster")
    target_table = moves[kind]
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('delineation'))"))
    if kind == "building":
        item = _row(conn, "building", item_id)
        old_parent = item["unit_id"]
        if old_parent is None:
            raise Conflict(f"building {item_id} is in no unit yet; run delineate first")
        if conn.scalar(
            sa.text("SELECT count(*) FROM building_part WHERE building_id = :b"), {"b": item_id}
        ):
            raise Conflict(
                f"building {item_id} is divided by floors into units of its own; move those "
                "units instead",
                key="refusal.edit_divided_building",
            )
    else:
        item = _row(conn, kind, item_id)
        old_parent = item[LEVELS[kind][1]]
    if from_id is not None and old_parent != from_id:
        raise StaleVersion(
            f"this {kind.replace('_', ' ')} was moved since your map was drawn (it is now in "
            f"{old_parent}, not {from_id}); reload the page and try again",
            key="refusal.edit_stale",
        )
    _row(conn, target_table, to_id)
    if old_parent == to_id:
        raise InvalidInput(
            f"{kind} {item_id} is already in {LABEL[target_table]} {to_id}",
            key="refusal.edit_already_there",
            level=f"@level.{target_table}",
        )
    if _community_of(conn, kind, item_id) != _community_of(conn, target_table, to_id):
        raise Conflict(
            f"{LABEL[target_table]} {to_id} is in another community; moves stay inside one "
            "community (import or edit the community boundary instead)",
            key="refusal.edit_other_community",
        )
    parent_col = "unit_id" if kind == "building" else LEVELS[kind][1]
    conn.execute(
        sa.text(f"UPDATE {kind} SET {parent_col} = :to WHERE id = :id"),
        {"to": to_id, "id": item_id},
    )
    touched = _touched(conn, target_table, [int(old_parent), int(to_id)])
    for table, ids in touched.items():
        for area_id in ids:
            _refuse_if_empty(conn, table, area_id)
    warnings = _rederive(conn, touched)
    return {"moved": {"kind": kind, "id": item_id, "to": to_id}, "warnings": warnings}


def _touched(conn: Connection, table: str, ids: list[int]) -> dict[str, list[int]]:
    """The areas whose members changed, and every area above them."""
    out: dict[str, list[int]] = {}
    order = ["unit", "building_cluster", "residents_group"]
    level = order.index(table)
    current = sorted(set(ids))
    for t in order[level:]:
        out[t] = current
        if t == "residents_group":
            break
        col = LEVELS[t][1]
        current = sorted(
            set(
                conn.execute(
                    sa.text(f"SELECT {col} FROM {t} WHERE id = ANY(:ids)"), {"ids": current}
                ).scalars()
            )
        )
    return out


def _refuse_if_empty(conn: Connection, table: str, area_id: int) -> None:
    _t, _p, child, col = LEVELS[table]
    n = conn.scalar(sa.text(f"SELECT count(*) FROM {child} WHERE {col} = :id"), {"id": area_id})
    if n == 0:
        code = conn.scalar(sa.text(f"SELECT code FROM {table} WHERE id = :id"), {"id": area_id})
        raise Conflict(
            f"{LABEL[table]} {code} would be left empty; move its last member elsewhere only "
            f"by moving the whole {LABEL[table]}, or choose another target",
            key="refusal.edit_empties_area",
            level=f"@level.{table}",
            code=code,
        )


def _pieces(conn: Connection, unit_ids: list[int]) -> dict[int, list]:
    """unit id -> its cells and land pieces (metres)."""
    out: dict[int, list] = {u: [] for u in unit_ids}
    rows = conn.execute(
        sa.text(
            "SELECT b.unit_id, c.cell_wkb, c.epsg FROM building b "
            "JOIN building_cell c ON c.building_id = b.id WHERE b.unit_id = ANY(:u) "
            "UNION ALL SELECT unit_id, cell_wkb, epsg FROM land_piece WHERE unit_id = ANY(:u) "
            # a part of a divided building: its unit holds the building's whole cell
            "UNION ALL SELECT p.unit_id, c.cell_wkb, c.epsg FROM building_part p "
            "JOIN building b ON b.id = p.building_id "
            "JOIN building_cell c ON c.building_id = p.building_id "
            "WHERE p.unit_id = ANY(:u) AND b.unit_id IS DISTINCT FROM p.unit_id"
        ),
        {"u": unit_ids},
    ).all()
    epsgs = {r[2] for r in rows}
    if len(epsgs) > 1:
        raise Conflict("cells were computed in different projections; run delineate again")
    for u, wkb, _e in rows:
        out[u].append(shapely.from_wkb(bytes(wkb)))
    out["epsg"] = epsgs.pop() if epsgs else 4326  # type: ignore[index]
    return out


def _union(geoms: list) -> Any:
    """Union of cells: exact when they tile; a divided building's cell may come twice."""
    try:
        return shapely.coverage_union_all(geoms)
    except shapely.errors.GEOSException:
        return shapely.union_all(geoms, grid_size=0.01)


def _rederive(conn: Connection, touched: dict[str, list[int]]) -> list[str]:
    """Recompute households, polygons and codes of ``touched``; check they are one piece."""
    groups = touched["residents_group"]
    units = conn.execute(
        sa.text(
            "SELECT u.id, u.building_cluster_id, c.residents_group_id FROM unit u "
            "JOIN building_cluster c ON c.id = u.building_cluster_id "
            "WHERE c.residents_group_id = ANY(:g)"
        ),
        {"g": groups},
    ).all()
    pieces = _pieces(conn, [u[0] for u in units])
    epsg = pieces.pop("epsg")  # type: ignore[call-overload]

    unit_geom = {u: _union(pieces[u]) for u, _c, _g in units}
    cluster_members: dict[int, list[int]] = {}
    group_members: dict[int, list[int]] = {}
    for u, c, g in units:
        cluster_members.setdefault(c, []).append(u)
        group_members.setdefault(g, []).append(c)
    cluster_geom = {c: _union([unit_geom[u] for u in us]) for c, us in cluster_members.items()}
    group_geom = {g: _union([cluster_geom[c] for c in set(cs)]) for g, cs in group_members.items()}
    for table, geoms in (
        ("unit", unit_geom),
        ("building_cluster", cluster_geom),
        ("residents_group", group_geom),
    ):
        for area_id in touched.get(table, []):
            g = geoms.get(area_id)
            if g is not None and shapely.get_num_geometries(g) > 1:
                code = conn.scalar(
                    sa.text(f"SELECT code FROM {table} WHERE id = :id"), {"id": area_id}
                )
                raise Conflict(
                    f"{LABEL[table]} {code} would fall into {shapely.get_num_geometries(g)} "
                    "separate pieces; move only to an area it touches",
                    key="refusal.edit_splits_area",
                    level=f"@level.{table}",
                    code=code,
                )
    # Households bottom-up, then polygons, then codes in reading order.
    conn.execute(
        sa.text(
            "UPDATE unit u SET households = coalesce((SELECT sum(households) FROM building b "
            "WHERE b.unit_id = u.id AND NOT EXISTS (SELECT 1 FROM building_part p "
            "WHERE p.building_id = b.id)), 0) + coalesce((SELECT sum(households) "
            "FROM building_part p WHERE p.unit_id = u.id), 0) WHERE u.id = ANY(:u)"
        ),
        {"u": list(unit_geom)},
    )
    conn.execute(
        sa.text(
            "UPDATE building_cluster c SET households = coalesce((SELECT sum(households) "
            "FROM unit u WHERE u.building_cluster_id = c.id), 0) WHERE c.id = ANY(:c)"
        ),
        {"c": list(cluster_geom)},
    )
    conn.execute(
        sa.text(
            "UPDATE residents_group g SET households = coalesce((SELECT sum(households) "
            "FROM building_cluster c WHERE c.residents_group_id = g.id), 0) "
            "WHERE g.id = ANY(:g)"
        ),
        {"g": groups},
    )
    for table, geoms in (
        ("unit", unit_geom),
        ("building_cluster", cluster_geom),
        ("residents_group", group_geom),
    ):
        for area_id, g in geoms.items():
            conn.execute(
                sa.text(
                    f"UPDATE {table} SET geom = ST_Multi(ST_CollectionExtract(ST_MakeValid("
                    "ST_GeomFromWKB(:g, 4326)), 3)) WHERE id = :id"
                ),
                {"g": shapely.to_wkb(to_wgs84(g, epsg)), "id": area_id},
            )
    _recode(conn, cluster_members, group_members, unit_geom, cluster_geom)
    conn.execute(
        sa.text(
            "UPDATE grid t SET households = coalesce((SELECT sum(households) FROM "
            "residents_group g WHERE g.grid_id = t.id), 0) WHERE t.id IN (SELECT grid_id "
            "FROM residents_group WHERE id = ANY(:g))"
        ),
        {"g": groups},
    )
    return _band_warnings(conn, groups)


def _band_warnings(conn: Connection, groups: list[int]) -> list[str]:
    """One warning per group now outside the band of the run that drew its community."""
    warnings = []
    for g in groups:
        code, hh, community_id = conn.execute(
            sa.text("SELECT code, households, community_id FROM residents_group WHERE id = :id"),
            {"id": g},
        ).one()
        lo, hi = group_band(conn, community_id)
        if not lo <= hh <= hi:
            warnings.append(f"group {code} now has {hh} households (outside {lo:g}–{hi:g})")
    return warnings


def _recode(
    conn: Connection,
    cluster_members: dict[int, list[int]],
    group_members: dict[int, list[int]],
    unit_geom: dict,
    cluster_geom: dict,
) -> None:
    """Number clusters within their group and units within their cluster, in reading order."""
    for g, clusters in group_members.items():
        gcode = conn.scalar(sa.text("SELECT code FROM residents_group WHERE id = :id"), {"id": g})
        cs = sorted(set(clusters))
        xy = shapely.get_coordinates(shapely.point_on_surface([cluster_geom[c] for c in cs]))
        order = [cs[i] for i in reading_order(xy, CLUSTER_BAND_M)]
        # two steps: the (group, code) pair is unique, and codes swap places
        conn.execute(
            sa.text("UPDATE building_cluster SET code = '~' || id WHERE id = ANY(:c)"), {"c": cs}
        )
        for rank, c in enumerate(order):
            conn.execute(
                sa.text("UPDATE building_cluster SET code = :code WHERE id = :id"),
                {"code": f"{gcode}-{rank + 1}", "id": c},
            )
            us = sorted(cluster_members[c])
            uxy = shapely.get_coordinates(shapely.point_on_surface([unit_geom[u] for u in us]))
            conn.execute(sa.text("UPDATE unit SET code = '~' || id WHERE id = ANY(:u)"), {"u": us})
            for urank, i in enumerate(reading_order(uxy, UNIT_BAND_M).tolist()):
                conn.execute(
                    sa.text("UPDATE unit SET code = :code WHERE id = :id"),
                    {"code": f"{gcode}-{rank + 1}-{urank + 1}", "id": us[i]},
                )


def set_locked(conn: Connection, group_id: int, locked: bool) -> dict[str, Any]:
    """Lock a group (a re-run keeps it as it is) or unlock it."""
    _row(conn, "residents_group", group_id)
    conn.execute(
        sa.text("UPDATE residents_group SET is_locked = :l WHERE id = :id"),
        {"l": locked, "id": group_id},
    )
    return {"id": group_id, "locked": locked}
