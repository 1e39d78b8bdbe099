"""Delineation against PostGIS: read buildings and streets, draw, write every level at once.

One run is one transaction: the previous delineation of the communities concerned is
replaced whole (groups, clusters, units, proposed grids), or nothing changes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import pyproj
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from gis.delineate.hierarchy import COVERAGE, Inputs, Params, Result, delineate
from gis.errors import InvalidInput, NotFound
from gis.io import households as hh
from gis.io.load import ewkb_4326

PROPOSED = "delineation"  # source_file of communities and grids the delineation proposed


@dataclass
class RunReport:
    """What a run wrote and how good it is."""

    run_id: int
    quality: dict
    timings: dict
    communities: list[str]
    reused_blocks: int
    computed_blocks: int
    coverage_reused: bool = False
    locked_groups: int = 0
    households_changed_group: int = 0
    leaders_ended: int = 0  # terms of leaders of units, clusters, groups that were redrawn


def _load(conn: Connection) -> tuple[Inputs, pyproj.Transformer, int, dict, list[int]]:
    rows = conn.execute(
        sa.text("SELECT id, households, ST_AsBinary(geom) FROM building ORDER BY id")
    ).all()
    if not rows:
        raise InvalidInput("no buildings yet: import a map first (gridatlas import FILE)")
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    households = np.array([r[1] for r in rows], dtype=float)
    geoms = shapely.from_wkb([bytes(r[2]) for r in rows])
    transformer, epsg = hh.metric_transformer(geoms, None)
    streets = conn.execute(sa.text("SELECT highway, ST_AsBinary(geom) FROM walk_edge")).all()
    lines = shapely.from_wkb([bytes(r[1]) for r in streets]) if streets else np.array([])
    communities = conn.execute(
        sa.text("SELECT id, code, ST_AsBinary(geom) FROM community ORDER BY code")
    ).all()
    comm = None
    comm_ids: list[int] = []
    if communities:
        polys = hh.to_metric(shapely.from_wkb([bytes(r[2]) for r in communities]), transformer)
        comm = [(r[1], g) for r, g in zip(communities, polys, strict=True)]
        comm_ids = [r[0] for r in communities]
    reuse: dict[str, list] = {}
    for block_hash, e, raws in conn.execute(
        sa.text(
            "SELECT block_hash, min(epsg), array_agg(raw_wkb ORDER BY building_id) "
            "FROM building_cell GROUP BY block_hash"
        )
    ):
        if e == epsg:
            reuse[block_hash] = list(shapely.from_wkb([bytes(b) for b in raws]))
    key = conn.scalar(sa.text("SELECT coverage_key FROM delineation_run ORDER BY id DESC LIMIT 1"))
    if key is not None:
        index = {int(b): i for i, b in enumerate(ids.tolist())}
        cells = np.full(len(ids), None, dtype=object)
        for b, wkb, e in conn.execute(
            sa.text("SELECT building_id, cell_wkb, epsg FROM building_cell")
        ):
            if e == epsg and b in index:
                cells[index[b]] = shapely.from_wkb(bytes(wkb))
        land = {
            h: shapely.from_wkb(bytes(wkb))
            for h, wkb, e in conn.execute(
                sa.text("SELECT block_hash, cell_wkb, epsg FROM land_piece")
            )
            if e == epsg
        }
        reuse[COVERAGE] = (key, cells, land)
    inputs = Inputs(
        building_ids=ids,
        households=households,
        footprints=hh.to_metric(geoms, transformer),
        street_lines=hh.to_metric(lines, transformer) if len(lines) else np.array([]),
        highways=np.array([r[0] for r in streets], dtype=object),
        communities=comm,
    )
    return inputs, transformer, epsg, reuse, comm_ids


def _to_wgs84(geoms: np.ndarray, epsg: int) -> np.ndarray:
    back = pyproj.Transformer.from_crs(epsg, 4326, always_xy=True)
    return shapely.transform(geoms, lambda xy: np.column_stack(back.transform(xy[:, 0], xy[:, 1])))


def run(
    engine: Engine,
    params: Params | None = None,
    community: str | None = None,
    on_step: Callable[[str, float], None] | None = None,
) -> RunReport:
    """Delineate every community (or the one with code ``community``) and store it."""
    with engine.begin() as conn:
        return run_on(conn, params, community, on_step)


def run_on(
    conn: Connection,
    params: Params | None = None,
    community: str | None = None,
    on_step: Callable[[str, float], None] | None = None,
) -> RunReport:
    """``run`` inside the caller's transaction."""
    params = params or Params()
    step = on_step or (lambda _n, _f: None)
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('delineation'))"))
    step("reading buildings and streets", 0.05)
    inputs, _tr, epsg, reuse, comm_ids = _load(conn)
    if community is not None and community not in [c for c, _ in inputs.communities or []]:
        raise NotFound(
            f"no community {community!r}; run without --community first to propose them, "
            "or import community boundaries"
        )
    locked = conn.execute(
        sa.text(
            "SELECT g.id, g.code, ST_AsBinary(g.geom) FROM residents_group g "
            "WHERE g.is_locked ORDER BY g.id"
        )
    ).all()
    frozen = []
    if locked:
        polys = hh.to_metric(shapely.from_wkb([bytes(r[2]) for r in locked]), _tr)
        # a hair inside, so that only land well within the locked outline is held back
        frozen = [(r[1], g) for r, g in zip(locked, shapely.buffer(polys, -0.05), strict=True)]
    before = _membership(conn)
    step("building cells and drawing the levels", 0.15)
    result = delineate(inputs, params, reuse, frozen)
    step("writing to PostGIS", 0.8)
    reused = sum(1 for h in set(result.block_cells) if h in reuse)
    reuse.pop(COVERAGE, None)
    report = _write(conn, inputs, result, epsg, params, comm_ids, community, [r[0] for r in locked])
    report.reused_blocks = reused
    report.computed_blocks = len(result.block_cells) - reused
    report.locked_groups = len(locked)
    report.coverage_reused = result.coverage_reused
    after = _membership(conn)
    report.households_changed_group = sum(
        h for b, (key, h) in before.items() if b in after and after[b][0] != key
    )
    return report


def _membership(conn: Connection) -> dict[int, tuple[tuple, int]]:
    """building id -> ((community code, group code), households) as now stored."""
    rows = conn.execute(
        sa.text(
            "SELECT b.id, cm.code, g.code, b.households FROM building b "
            "JOIN unit u ON u.id = b.unit_id "
            "JOIN building_cluster c ON c.id = u.building_cluster_id "
            "JOIN residents_group g ON g.id = c.residents_group_id "
            "JOIN community cm ON cm.id = g.community_id"
        )
    ).all()
    return {r[0]: ((r[1], r[2]), r[3]) for r in rows}


def _write(
    conn: Connection,
    inputs: Inputs,
    r: Result,
    epsg: int,
    params: Params,
    comm_ids: list[int],
    only: str | None,
    locked_ids: list[int],
) -> RunReport:
    # Cells: replaced whole (cheap) so that stale blocks disappear.
    conn.execute(sa.text("DELETE FROM building_cell"))
    has_cell = np.flatnonzero(r.building_unit >= 0)
    block_of_building = [r.building_block_hash[i] for i in has_cell.tolist()]
    cells_4326 = _to_wgs84(r.cells[has_cell], epsg)
    raw = r.raw_cells[has_cell]
    _copy(
        conn,
        "building_cell",
        ["building_id", "block_hash", "epsg", "raw_wkb", "cell_wkb", "geom"],
        ["int8", "text", "int4", "bytea", "bytea", "bytea"],
        [
            inputs.building_ids[has_cell].tolist(),
            block_of_building,
            [epsg] * len(has_cell),
            [shapely.to_wkb(g) for g in raw],
            [shapely.to_wkb(g) for g in r.cells[has_cell]],
            ewkb_4326(_multi(cells_4326)),
        ],
    )
    # Communities: imported or earlier proposed ones stay; the first run proposes them.
    if not comm_ids:
        geoms = _multi(_to_wgs84(r.communities.geom, epsg))
        comm_ids = []
        for code, g in zip(r.communities.code, geoms, strict=True):
            comm_ids.append(
                conn.scalar(
                    sa.text(
                        "INSERT INTO community (code, name, geom, source_file, source_id, attrs) "
                        "VALUES (:c, :n, ST_Multi(ST_CollectionExtract(ST_MakeValid("
                        "ST_GeomFromWKB(:g, 4326)), 3)), :sf, :c, "
                        "'{\"proposed\": true}'::jsonb) RETURNING id"
                    ),
                    {"c": code, "n": f"建议社区 {code}", "g": shapely.to_wkb(g), "sf": PROPOSED},
                )
            )
    codes = list(r.communities.code)
    targets = [i for i, c in enumerate(codes) if only is None or c == only]
    target_ids = [comm_ids[i] for i in targets]
    # Leaders of the areas about to be redrawn: their terms end now (kept as history), so no
    # current leader ever points at an area that no longer exists.
    ended = conn.execute(
        sa.text(
            """
            WITH g AS (SELECT id FROM residents_group
                        WHERE community_id = ANY(:c) AND NOT is_locked),
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
        {"c": target_ids},
    ).rowcount
    conn.execute(
        sa.text("DELETE FROM residents_group WHERE community_id = ANY(:c) AND NOT is_locked"),
        {"c": target_ids},
    )
    conn.execute(
        sa.text("DELETE FROM grid WHERE community_id = ANY(:c) AND source_file = :sf"),
        {"c": target_ids, "sf": PROPOSED},
    )
    has_grids = set(
        conn.execute(
            sa.text("SELECT DISTINCT community_id FROM grid WHERE community_id = ANY(:c)"),
            {"c": target_ids},
        ).scalars()
    )
    grid_geoms = _multi(_to_wgs84(r.grids.geom, epsg))
    grid_id = np.full(len(r.grids.code), -1, dtype=np.int64)
    for k in range(len(r.grids.code)):
        c = int(r.grids.parent[k])
        if c not in targets or comm_ids[c] in has_grids:
            continue
        grid_id[k] = conn.scalar(
            sa.text(
                "INSERT INTO grid (community_id, code, name, households, geom, source_file, "
                "source_id) VALUES (:cid, :code, :name, :hh, ST_Multi(ST_CollectionExtract("
                "ST_MakeValid(ST_GeomFromWKB(:g, 4326)), 3)), :sf, :sid) RETURNING id"
            ),
            {
                "cid": comm_ids[c],
                "code": r.grids.code[k],
                "name": f"{codes[c]} 网格 {r.grids.code[k]}",
                "hh": int(r.grids.households[k]),
                "g": shapely.to_wkb(grid_geoms[k]),
                "sf": PROPOSED,
                "sid": f"{codes[c]}/{r.grids.code[k]}",
            },
        )
    group_grid = r.group_grid
    g_ids = _insert_level(
        conn,
        "residents_group",
        "community_id",
        [comm_ids[int(c)] for c in r.groups.parent],
        r.groups.code,
        r.groups.households,
        _multi(_to_wgs84(r.groups.geom, epsg)),
        keep=[int(c) in targets for c in r.groups.parent],
        extra={
            "grid_id": [None if grid_id[g] < 0 else int(grid_id[g]) for g in group_grid],
            "flags": r.groups.flags,
        },
    )
    for f, gid in enumerate(locked_ids):  # locked groups join the grids drawn round them
        k = int(r.frozen_grid[f]) if f < len(r.frozen_grid) else -1
        if k >= 0 and grid_id[k] >= 0:
            conn.execute(
                sa.text("UPDATE residents_group SET grid_id = :g WHERE id = :id"),
                {"g": int(grid_id[k]), "id": gid},
            )
    c_ids = _insert_level(
        conn,
        "building_cluster",
        "residents_group_id",
        [g_ids[int(g)] for g in r.clusters.parent],
        r.clusters.code,
        r.clusters.households,
        _multi(_to_wgs84(r.clusters.geom, epsg)),
        keep=[g_ids[int(g)] is not None for g in r.clusters.parent],
    )
    u_ids = _insert_level(
        conn,
        "unit",
        "building_cluster_id",
        [c_ids[int(c)] for c in r.units.parent],
        r.units.code,
        r.units.households,
        _multi(_to_wgs84(r.units.geom, epsg)),
        keep=[c >= 0 and c_ids[int(c)] is not None for c in r.units.parent],
    )
    land = [i for i, u in enumerate(r.land_unit.tolist()) if u >= 0 and u_ids[u] is not None]
    if land:
        _copy(
            conn,
            "land_piece",
            ["unit_id", "block_hash", "epsg", "cell_wkb", "geom"],
            ["int8", "text", "int4", "bytea", "bytea"],
            [
                [u_ids[int(r.land_unit[i])] for i in land],
                [r.land_hash[i] for i in land],
                [epsg] * len(land),
                [shapely.to_wkb(r.land_geom[i]) for i in land],
                ewkb_4326(_multi(_to_wgs84(r.land_geom[land], epsg))),
            ],
        )
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
    for table in ("community", "grid"):
        conn.execute(
            sa.text(
                f"UPDATE {table} t SET households = s.h FROM (SELECT {table}_id AS id, "
                "sum(households)::int AS h FROM residents_group GROUP BY 1) s WHERE t.id = s.id"
            )
        )
    run_id = conn.scalar(
        sa.text(
            "INSERT INTO delineation_run (params, coverage_key, quality, timings) VALUES "
            "(CAST(:p AS jsonb), :k, CAST(:q AS jsonb), CAST(:t AS jsonb)) RETURNING id"
        ),
        {
            "p": json.dumps(
                {
                    k: (sorted(v) if isinstance(v, frozenset) else v)
                    for k, v in asdict(params).items()
                }
            ),
            "k": r.coverage[0],
            "q": json.dumps(r.quality),
            "t": json.dumps(r.timings),
        },
    )
    report = RunReport(int(run_id), r.quality, r.timings, [codes[i] for i in targets], 0, 0)
    report.leaders_ended = ended
    return report


def _insert_level(
    conn: Connection,
    table: str,
    parent_col: str,
    parent_ids: list,
    codes: list[str],
    households: np.ndarray,
    geoms: np.ndarray,
    keep: list[bool],
    extra: dict[str, list] | None = None,
) -> list[int | None]:
    extra = extra or {}
    idx = [i for i, k in enumerate(keep) if k]
    if not idx:
        return [None] * len(codes)
    cols = ["parent", "code", "households", "geom", *extra]
    values = {
        "parent": [int(parent_ids[i]) for i in idx],
        "code": [codes[i] for i in idx],
        "households": [int(households[i]) for i in idx],
        "geom": [shapely.to_wkb(geoms[i]) for i in idx],
        **{k: [v[i] for i in idx] for k, v in extra.items()},
    }
    casts = {
        "parent": "bigint[]",
        "code": "text[]",
        "households": "int[]",
        "geom": "bytea[]",
        "grid_id": "bigint[]",
    }
    if "flags" in extra:  # text[][] is rectangular in PostgreSQL: pass joined strings
        values["flags"] = [",".join(f) for f in values["flags"]]
        casts["flags"] = "text[]"
    select = ", ".join(
        {
            "parent": "v.parent",
            "code": "v.code",
            "households": "v.households",
            "geom": "ST_Multi(ST_CollectionExtract(ST_MakeValid(ST_GeomFromWKB(v.geom, 4326)), 3))",
            "grid_id": "v.grid_id",
            "flags": "CASE WHEN v.flags = '' THEN '{}'::text[] "
            "ELSE string_to_array(v.flags, ',') END",
        }[c]
        for c in cols
    )
    unnest = ", ".join(f"CAST(:{c} AS {casts[c]})" for c in cols)
    names = ", ".join(parent_col if c == "parent" else c for c in cols)
    ids = (
        conn.execute(
            sa.text(
                f"INSERT INTO {table} ({names}) SELECT {select} FROM unnest({unnest}) "
                f"WITH ORDINALITY AS v({', '.join(cols)}, n) ORDER BY v.n RETURNING id"
            ),
            values,
        )
        .scalars()
        .all()
    )
    out: list[int | None] = [None] * len(codes)
    for i, new_id in zip(idx, ids, strict=True):
        out[i] = int(new_id)
    return out


def _multi(geoms: np.ndarray) -> np.ndarray:
    geoms = np.array(geoms, dtype=object)
    single = shapely.get_type_id(geoms) == 3
    if single.any():
        geoms[single] = shapely.multipolygons(geoms[single], indices=np.arange(single.sum()))
    return geoms


def _copy(conn: Connection, table: str, names: list[str], types: list[str], data: list) -> None:
    raw = conn.connection.driver_connection
    with (
        raw.cursor() as cur,
        cur.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.set_types(types)
        for row in zip(*data, strict=True):
            copy.write_row(row)


def map_frames(conn: Connection, community: str | None, limit: int) -> tuple:
    """(groups, buildings) of one community (or all) as GeoDataFrames for the groups map."""
    import geopandas as gpd

    where = "WHERE cm.code = :c" if community else ""
    params = {"c": community, "limit": limit}
    groups = gpd.read_postgis(
        sa.text(
            "SELECT g.id, g.code, cm.code AS community, g.households, g.is_locked, "
            "array_to_string(g.flags, ',') AS flags, gr.code AS grid, g.geom "
            "FROM residents_group g JOIN community cm ON cm.id = g.community_id "
            f"LEFT JOIN grid gr ON gr.id = g.grid_id {where} ORDER BY g.id LIMIT :limit"
        ),
        conn,
        geom_col="geom",
        params=params,
        crs=4326,
    )
    buildings = gpd.read_postgis(
        sa.text(
            "SELECT b.id, b.name, b.households, u.id AS unit_id, u.code AS unit, "
            "c.id AS cluster_id, c.code AS cluster, g.id AS group_id, g.code AS grp, b.geom "
            "FROM building b JOIN unit u ON u.id = b.unit_id "
            "JOIN building_cluster c ON c.id = u.building_cluster_id "
            "JOIN residents_group g ON g.id = c.residents_group_id "
            f"JOIN community cm ON cm.id = g.community_id {where} ORDER BY b.id LIMIT :limit"
        ),
        conn,
        geom_col="geom",
        params=params,
        crs=4326,
    )
    return groups, buildings
