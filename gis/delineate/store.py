"""Writing a delineation to PostGIS: one writer per level, called in order by ``service``.

Writers take the run's ``Result`` (metres) and the ids written so far, and return the ids
of what they wrote: community ids → grids → groups → clusters → units → land pieces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis.crs import to_wgs84
from gis.delineate import cells as C
from gis.delineate.model import Inputs, Result
from gis.pgcopy import copy_rows, ewkb_4326, to_multi

PROPOSED = "delineation"  # source_file of communities and grids the delineation proposed
# outlines arrive as WKB of (multi)polygons; a union can leave a stray line: keep polygons
POLYGONAL = "ST_Multi(ST_CollectionExtract(ST_MakeValid(ST_GeomFromWKB({}, 4326)), 3))"


@dataclass
class Target:
    """The communities of a run (ids by index in the Result) and the ones it redraws."""

    comm_ids: list[int]
    codes: list[str]
    redrawn: list[int]  # indices into ``codes``

    @property
    def redrawn_ids(self) -> list[int]:
        return [self.comm_ids[i] for i in self.redrawn]


def write_cells(
    conn: Connection, inputs: Inputs, r: Result, epsg: int, only_these: bool = False
) -> None:
    """Replace every building cell (cheap), so that stale blocks disappear.

    ``only_these``: replace the cells of ``inputs``' buildings only (one community drawn
    alone); every other building keeps its stored cell.
    """
    if only_these:
        conn.execute(
            sa.text("DELETE FROM building_cell WHERE building_id = ANY(:ids)"),
            {"ids": inputs.building_ids.tolist()},
        )
    else:
        conn.execute(sa.text("DELETE FROM building_cell"))
    has_cell = np.flatnonzero(r.building_unit >= 0)
    copy_rows(
        conn,
        "building_cell",
        ["building_id", "block_hash", "epsg", "raw_wkb", "cell_wkb", "geom"],
        ["bigint", "text", "integer", "bytea", "bytea", "geometry"],
        [
            inputs.building_ids[has_cell].tolist(),
            [r.building_block_hash[i] for i in has_cell.tolist()],
            [epsg] * len(has_cell),
            [shapely.to_wkb(g) for g in r.raw_cells[has_cell]],
            [shapely.to_wkb(g) for g in r.cells[has_cell]],
            ewkb_4326(to_multi(to_wgs84(r.cells[has_cell], epsg))),
        ],
    )


def read_street_blocks(conn: Connection, epsg: int) -> C.StreetBlocks | None:
    """The street blocks the latest run stored (in ``epsg``), or None."""
    row = conn.execute(
        sa.text(
            "SELECT key, blocks, blocks_wkb, footprint_digests, footprint_blocks "
            "FROM street_block_cache WHERE epsg = :e ORDER BY made_at DESC LIMIT 1"
        ),
        {"e": epsg},
    ).first()
    if row is None:
        return None
    blocks = shapely.get_parts(shapely.from_wkb(bytes(row.blocks_wkb)))
    digests = bytes(row.footprint_digests)
    placed = np.frombuffer(bytes(row.footprint_blocks), dtype="<i4")
    if len(blocks) != row.blocks or len(digests) != 16 * len(placed):
        return None  # not what this code writes: compute the blocks again
    footprint_block = {digests[16 * i : 16 * i + 16]: int(b) for i, b in enumerate(placed.tolist())}
    return C.StreetBlocks(row.key, blocks, footprint_block, reused=False, changed=False)


def write_street_blocks(conn: Connection, blocks: C.StreetBlocks | None, epsg: int) -> None:
    """Store the run's street blocks in place of the earlier ones, when they changed."""
    if blocks is None or not blocks.changed:
        return
    conn.execute(sa.text("DELETE FROM street_block_cache"))
    digests = list(blocks.footprint_block)
    conn.execute(
        sa.text(
            "INSERT INTO street_block_cache (key, epsg, blocks, blocks_wkb, footprint_digests, "
            "footprint_blocks) VALUES (:k, :e, :n, :b, :d, :p)"
        ),
        {
            "k": blocks.key,
            "e": epsg,
            "n": len(blocks.blocks),
            "b": shapely.to_wkb(shapely.geometrycollections(list(blocks.blocks))),
            "d": b"".join(digests),
            "p": np.array([blocks.footprint_block[d] for d in digests], dtype="<i4").tobytes(),
        },
    )


def write_communities(conn: Connection, r: Result, epsg: int) -> list[int]:
    """Insert the communities the run proposed (the first run, none imported); their ids."""
    sql = sa.text(
        "INSERT INTO community (code, name, geom, source_file, source_id, attrs) "
        f"VALUES (:c, :n, {POLYGONAL.format(':g')}, :sf, :c, "
        "'{\"proposed\": true}'::jsonb) RETURNING id"
    )
    geoms = to_multi(to_wgs84(r.communities.geom, epsg))
    return [
        conn.scalar(
            sql, {"c": code, "n": f"建议社区 {code}", "g": shapely.to_wkb(g), "sf": PROPOSED}
        )
        for code, g in zip(r.communities.code, geoms, strict=True)
    ]


def end_leaders_and_clear(conn: Connection, target: Target, held: list[int]) -> int:
    """End the terms of leaders of areas about to be redrawn, delete those areas.

    ``held``: groups kept as they are (locked, or sharing a divided building with one).
    Terms are kept as history, so no current leader ever points at an area that no longer
    exists. Returns how many terms ended.
    """
    ids = target.redrawn_ids
    ended = conn.execute(
        sa.text(
            """
            WITH g AS (SELECT id FROM residents_group
                        WHERE community_id = ANY(:c) AND id <> ALL(CAST(:held AS bigint[]))),
                 c AS (SELECT id FROM building_cluster WHERE residents_group_id IN
                         (SELECT id FROM g)),
                 u AS (SELECT id FROM unit WHERE building_cluster_id IN (SELECT id FROM c)),
                 gone AS (SELECT 'residents_group' AS level, id FROM g
                          UNION ALL SELECT 'building_cluster', id FROM c
                          UNION ALL SELECT 'unit', id FROM u)
            UPDATE leader_assignment la SET ended_at = now() FROM gone
             WHERE la.level = gone.level AND la.area_id = gone.id AND la.ended_at IS NULL
            """
        ),
        {"c": ids, "held": held},
    ).rowcount
    conn.execute(
        sa.text(
            "DELETE FROM residents_group WHERE community_id = ANY(:c) "
            "AND id <> ALL(CAST(:held AS bigint[]))"
        ),
        {"c": ids, "held": held},
    )
    conn.execute(
        sa.text("DELETE FROM grid WHERE community_id = ANY(:c) AND source_file = :sf"),
        {"c": ids, "sf": PROPOSED},
    )
    return ended


def write_grids(conn: Connection, r: Result, epsg: int, target: Target) -> np.ndarray:
    """Insert proposed grids where a redrawn community has none of its own; per grid its id."""
    has_grids = set(
        conn.execute(
            sa.text("SELECT DISTINCT community_id FROM grid WHERE community_id = ANY(:c)"),
            {"c": target.redrawn_ids},
        ).scalars()
    )
    sql = sa.text(
        "INSERT INTO grid (community_id, code, name, households, geom, source_file, "
        f"source_id) VALUES (:cid, :code, :name, :hh, {POLYGONAL.format(':g')}, :sf, :sid) "
        "RETURNING id"
    )
    geoms = to_multi(to_wgs84(r.grids.geom, epsg))
    grid_id = np.full(len(r.grids.code), -1, dtype=np.int64)
    for k, code in enumerate(r.grids.code):
        c = int(r.grids.parent[k])
        if c not in target.redrawn or target.comm_ids[c] in has_grids:
            continue
        community = target.codes[c]
        grid_id[k] = conn.scalar(
            sql,
            {
                "cid": target.comm_ids[c],
                "code": code,
                "name": f"{community} 网格 {code}",
                "hh": int(r.grids.households[k]),
                "g": shapely.to_wkb(geoms[k]),
                "sf": PROPOSED,
                "sid": f"{community}/{code}",
            },
        )
    return grid_id


def write_groups(
    conn: Connection,
    r: Result,
    epsg: int,
    target: Target,
    grid_id: np.ndarray,
    locked_ids: list[int],
) -> list[int | None]:
    """Insert the groups of redrawn communities; locked groups join the grids drawn round."""
    g_ids = _insert_level(
        conn,
        "residents_group",
        "community_id",
        [target.comm_ids[int(c)] for c in r.groups.parent],
        r,
        "groups",
        epsg,
        keep=[int(c) in target.redrawn for c in r.groups.parent],
        extra={
            "grid_id": [None if grid_id[g] < 0 else int(grid_id[g]) for g in r.group_grid],
            "flags": [",".join(f) for f in r.groups.flags],  # text[][] must be rectangular
        },
    )
    for f, gid in enumerate(locked_ids):
        k = int(r.frozen_grid[f]) if f < len(r.frozen_grid) else -1
        if k >= 0 and grid_id[k] >= 0:
            conn.execute(
                sa.text("UPDATE residents_group SET grid_id = :g WHERE id = :id"),
                {"g": int(grid_id[k]), "id": gid},
            )
    return g_ids


def write_clusters(
    conn: Connection, r: Result, epsg: int, g_ids: list[int | None]
) -> list[int | None]:
    """Insert the clusters of the groups written; per cluster its id (None: not written)."""
    parent = [g_ids[int(g)] for g in r.clusters.parent]
    keep = [p is not None for p in parent]
    return _insert_level(
        conn, "building_cluster", "residents_group_id", parent, r, "clusters", epsg, keep
    )


def write_units(
    conn: Connection, r: Result, epsg: int, c_ids: list[int | None]
) -> list[int | None]:
    """Insert the units of the clusters written; per unit its id (None: not written)."""
    parent = [c_ids[int(c)] if c >= 0 else None for c in r.units.parent]
    keep = [p is not None for p in parent]
    return _insert_level(conn, "unit", "building_cluster_id", parent, r, "units", epsg, keep)


def write_land(conn: Connection, r: Result, epsg: int, u_ids: list[int | None]) -> None:
    """Store the land pieces joined to the units written."""
    land = [i for i, u in enumerate(r.land_unit.tolist()) if u >= 0 and u_ids[u] is not None]
    if not land:
        return
    copy_rows(
        conn,
        "land_piece",
        ["unit_id", "block_hash", "epsg", "cell_wkb", "geom"],
        ["bigint", "text", "integer", "bytea", "geometry"],
        [
            [u_ids[int(r.land_unit[i])] for i in land],
            [r.land_hash[i] for i in land],
            [epsg] * len(land),
            [shapely.to_wkb(r.land_geom[i]) for i in land],
            ewkb_4326(to_multi(to_wgs84(r.land_geom[land], epsg))),
        ],
    )


def update_buildings(
    conn: Connection,
    inputs: Inputs,
    r: Result,
    comm_ids: list[int],
    u_ids: list[int | None],
    totals_of: list[int] | None = None,
) -> None:
    """Point every building written at its unit and community; then total the households
    (of every community and grid, or of the communities ``totals_of`` and their grids)."""
    b_unit = [u_ids[int(u)] if u >= 0 else None for u in r.building_unit]
    b_comm = [
        comm_ids[int(r.groups.parent[r.clusters.parent[r.units.parent[u]]])]
        if u >= 0 and r.units.parent[u] >= 0
        else None
        for u in r.building_unit
    ]
    conn.execute(
        sa.text(
            "UPDATE building b SET unit_id = v.u, community_id = v.c FROM unnest("
            "CAST(:ids AS bigint[]), CAST(:u AS bigint[]), CAST(:c AS bigint[])) AS v(id, u, c) "
            "WHERE b.id = v.id AND v.u IS NOT NULL"
        ),
        {"ids": inputs.building_ids.tolist(), "u": b_unit, "c": b_comm},
    )
    # names are ours (the two tables), never the caller's text
    where = "" if totals_of is None else "WHERE community_id = ANY(:c) "
    for table in ("community", "grid"):
        conn.execute(
            sa.text(
                f"UPDATE {table} t SET households = s.h FROM (SELECT {table}_id AS id, "
                f"sum(households)::int AS h FROM residents_group {where}GROUP BY 1) s "
                "WHERE t.id = s.id"
            ),
            {} if totals_of is None else {"c": totals_of},
        )


_CASTS = {"parent": "bigint[]", "code": "text[]", "households": "int[]", "geom": "bytea[]"}
_CASTS |= {"grid_id": "bigint[]", "flags": "text[]"}
_SELECT = {
    "parent": "v.parent",
    "code": "v.code",
    "households": "v.households",
    "geom": POLYGONAL.format("v.geom"),
    "grid_id": "v.grid_id",
    "flags": "CASE WHEN v.flags = '' THEN '{}'::text[] ELSE string_to_array(v.flags, ',') END",
}


def _insert_level(
    conn: Connection,
    table: str,
    parent_col: str,
    parent_ids: list,
    r: Result,
    level: str,
    epsg: int,
    keep: list[bool],
    extra: dict[str, list] | None = None,
) -> list[int | None]:
    """Insert the areas of ``level`` marked ``keep`` in one statement; per area its id."""
    areas = getattr(r, level)
    idx = [i for i, k in enumerate(keep) if k]
    out: list[int | None] = [None] * len(areas.code)
    if not idx:
        return out
    extra = extra or {}
    geoms = to_multi(to_wgs84(areas.geom, epsg))
    cols = ["parent", "code", "households", "geom", *extra]
    values = {
        "parent": [int(parent_ids[i]) for i in idx],
        "code": [areas.code[i] for i in idx],
        "households": [int(areas.households[i]) for i in idx],
        "geom": [shapely.to_wkb(geoms[i]) for i in idx],
        **{k: [v[i] for i in idx] for k, v in extra.items()},
    }
    select = ", ".join(_SELECT[c] for c in cols)
    unnest = ", ".join(f"CAST(:{c} AS {_CASTS[c]})" for c in cols)
    names = ", ".join(parent_col if c == "parent" else c for c in cols)
    ids = conn.execute(
        sa.text(
            f"INSERT INTO {table} ({names}) SELECT {select} FROM unnest({unnest}) "
            f"WITH ORDINALITY AS v({', '.join(cols)}, n) ORDER BY v.n RETURNING id"
        ),
        values,
    ).scalars()
    for i, new_id in zip(idx, ids, strict=True):
        out[i] = int(new_id)
    return out
