"""Answer in one breath (一口清): one box finds an address, a code, a place or a person.

Addresses are parsed (gis/address.py) into road | lane | number | building | unit
| room and matched by keys, so "长寿路１２３弄５号３０１室", "长寿路123弄5号301" and "长寿路
123 弄 5 号" find the same building. A building stores the keys of its own address
(``address_keys``, refreshed on import); a query matches on its most specific key that any
building has, and says when it fell back to a less specific one. A room in the query
lists the residents of that dwelling (people roles only, audited like every person read).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis import permissions
from gis.address import parse_address, search_keys
from gis.areas import BY_TABLE as LEVELS_BY_TABLE
from gis.areas import visible_sql
from gis.audit import Who, audit
from gis.facilities import visible_sql as facility_visible_sql
from gis.ledger.store import name_prefix_sql, scope_prefilter

_ALIASES = {
    "community": "t",
    "grid": "t",
    "residents_group": "t",
    "building_cluster": "t",
    "unit": "t",
    "building": "b",
}
LIMIT = 20


def building_keys(street: str | None, number: str | None) -> list[str] | None:
    """Keys of a building's address (no room), most specific first; None without a road."""
    if not street:
        return None
    addr = parse_address(f"{street}{number or ''}")
    if addr.road is None:
        return None
    return search_keys(addr)


def refresh_address_keys(conn: Connection) -> int:
    """Recompute ``building.address_keys`` for every building with an address."""
    rows = conn.execute(
        sa.text("SELECT id, addr_street, addr_housenumber, address_keys FROM building")
    ).all()
    ids, keys = [], []
    for r in rows:
        k = building_keys(r.addr_street, r.addr_housenumber)
        if k != r.address_keys:
            ids.append(r.id)
            keys.append(
                "{" + ",".join('"' + x.replace('"', "") + '"' for x in k) + "}" if k else None
            )
    if ids:
        conn.execute(
            sa.text(
                "UPDATE building b SET address_keys = CAST(v.k AS text[]) FROM "
                "unnest(CAST(:i AS bigint[]), CAST(:k AS text[])) AS v(i, k) WHERE b.id = v.i"
            ),
            {"i": ids, "k": keys},
        )
    return len(ids)


def _visible_buildings(alias: str = "b") -> str:
    return f"((SELECT ga_role()) = 'admin' OR {alias}.id IN (SELECT ga_scope_buildings(ga_user())))"


def _building_hit(r: Any, how: str) -> dict[str, Any]:
    return {
        "kind": "building",
        "id": r.id,
        "code": r.source_id,
        "label": r.label,
        "households": r.households,
        "community_id": r.community_id,
        "lon": r.lon,
        "lat": r.lat,
        "match": how,
    }


_BUILDING_COLS = (
    "b.id, b.source_id, b.households, b.community_id, ST_X(ST_PointOnSurface(b.geom)) AS lon, "
    "ST_Y(ST_PointOnSurface(b.geom)) AS lat, coalesce(nullif(concat(b.addr_street, "
    "b.addr_housenumber), ''), b.name, b.source_id) AS label"
)


def search(conn: Connection, user: Who, q: str, limit: int = LIMIT) -> dict[str, Any]:
    """Buildings by address, areas by code or name, places by name, people by name."""
    q = q.strip()
    hits: list[dict[str, Any]] = []
    addr = parse_address(q)
    fallback = None
    if addr.road:
        # the building's part of each key: the room dropped, duplicates once
        keys = list(dict.fromkeys(k.rsplit("|", 1)[0] + "|" for k in search_keys(addr)))
        for i, key in enumerate(keys):
            rows = conn.execute(
                sa.text(
                    f"SELECT {_BUILDING_COLS} FROM building b WHERE b.address_keys @> "
                    f"ARRAY[CAST(:k AS text)] AND {_visible_buildings()} ORDER BY b.id LIMIT :n"
                ),
                {"k": key, "n": limit},
            ).all()
            if rows:
                how = "address" if i == 0 else "address (less specific)"
                if i:
                    fallback = key.replace("|", " ").strip()
                hits.extend(_building_hit(r, how) for r in rows)
                break
        if addr.room and hits and permissions.may(user, "see_people"):
            bids = [h["id"] for h in hits if h["match"] == "address"]
            people = conn.execute(
                sa.text(
                    "SELECT r.id, r.name, r.building_id, r.room FROM resident r "
                    "WHERE r.building_id = ANY(:b) AND r.room = :room ORDER BY r.id LIMIT :n"
                ),
                {"b": bids, "room": addr.room, "n": limit},
            ).all()
            hits.extend(
                {
                    "kind": "resident",
                    "id": p.id,
                    "label": p.name,
                    "building_id": p.building_id,
                    "room": p.room,
                    "match": "dwelling",
                }
                for p in people
            )
    # codes and names of areas, buildings and facilities, in one query
    pattern = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    vis = {
        f"vis_{t}": visible_sql(LEVELS_BY_TABLE[t], a, "SELECT id FROM scope")
        for t, a in _ALIASES.items()
    }
    rows = conn.execute(
        sa.text(
            """
            WITH scope AS MATERIALIZED (SELECT ga_scope_buildings(ga_user()) AS id)
            SELECT 'community' AS kind, t.id, t.code, coalesce(t.name, t.code) AS label,
                   t.households, NULL::float AS lon, NULL::float AS lat
              FROM community t WHERE (t.code = :q OR t.name LIKE :p)
               AND {vis_community}
            UNION ALL
            SELECT 'grid', t.id, t.code, coalesce(t.name, t.code), t.households, NULL, NULL
              FROM grid t WHERE (t.code = :q OR t.name LIKE :p)
               AND {vis_grid}
            UNION ALL
            SELECT 'residents_group', t.id, t.code, t.code, t.households, NULL, NULL
              FROM residents_group t WHERE t.code = :q
               AND {vis_residents_group}
            UNION ALL
            SELECT 'building_cluster', t.id, t.code, t.code, t.households, NULL, NULL
              FROM building_cluster t WHERE t.code = :q
               AND {vis_building_cluster}
            UNION ALL
            SELECT 'unit', t.id, t.code, t.code, t.households, NULL, NULL
              FROM unit t WHERE t.code = :q AND {vis_unit}
            UNION ALL
            SELECT 'building', b.id, b.source_id,
                   coalesce(b.name, nullif(concat(b.addr_street, b.addr_housenumber), ''),
                            b.source_id),
                   b.households, ST_X(ST_PointOnSurface(b.geom)), ST_Y(ST_PointOnSurface(b.geom))
              FROM building b WHERE (b.source_id = :q OR (length(:q) >= 2 AND b.name LIKE :p))
               AND {vis_building}
            UNION ALL
            SELECT 'facility', f.id, f.kind, f.name, NULL, ST_X(ST_PointOnSurface(f.geom)),
                   ST_Y(ST_PointOnSurface(f.geom))
              FROM facility f WHERE length(:q) >= 2 AND f.name LIKE :p
               AND {vis_facility}
            LIMIT :n
            """.format(**vis, vis_facility=facility_visible_sql("f", "SELECT id FROM scope"))
        ),
        {"q": q, "p": f"%{pattern}%", "n": limit * 2},
    ).all()
    seen = {(h["kind"], h["id"]) for h in hits}
    for r in rows:
        if (r.kind, r.id) in seen:
            continue
        hit = {"kind": r.kind, "id": r.id, "code": r.code, "label": r.label}
        if r.households is not None:
            hit["households"] = r.households
        if r.lon is not None:
            hit.update(lon=r.lon, lat=r.lat)
        hit["match"] = "code" if r.code == q else "name"
        if r.kind == "facility":
            hit["facility_kind"] = hit.pop("code")
        hits.append(hit)
    if permissions.may(user, "see_people") and 1 <= len(q) <= 20 and not addr.road:
        # as the ledger's list: index conditions the residents' policy lets through
        by_name, params = name_prefix_sql(q)
        rows = conn.execute(
            sa.text(
                "SELECT r.id, r.name, r.building_id, r.room FROM resident r "
                f"WHERE {scope_prefilter(user)} AND {by_name} ORDER BY r.name, r.id LIMIT :n"
            ),
            {**params, "n": limit},
        ).all()
        hits.extend(
            {"kind": "resident", "id": r.id, "label": r.name, "building_id": r.building_id,
             "room": r.room, "match": "name"}
            for r in rows
        )  # fmt: skip
    # a search that looked into the residents' ledger is audited, whether it found anyone
    # or not (the query itself says whom the user was looking for)
    looked = permissions.may(user, "see_people") and (
        (1 <= len(q) <= 20 and not addr.road) or (addr.room is not None and bool(hits))
    )
    if looked:
        people = [h["id"] for h in hits if h["kind"] == "resident"]
        audit(conn, user, "search", "resident", people, {"by": "search box", "q": q})
    return {
        "q": q,
        "parsed": {k: v for k, v in vars(addr).items() if v} if addr.road else None,
        "fallback": fallback,
        "results": hits[: limit * 3],
    }
