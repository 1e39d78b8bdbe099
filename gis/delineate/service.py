"""Delineation against PostGIS: read buildings and streets, draw, write every level at once.

One run is one transaction: the previous delineation of the communities concerned is
replaced whole (groups, clusters, units, proposed grids), or nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from gis.crs import metric_epsg_for, to_metric
from gis.delineate import part_store, runs, store
from gis.delineate.hierarchy import COVERAGE, Inputs, Params, Result, delineate
from gis.delineate.pieces import BLOCKS, PROPOSED
from gis.errors import InvalidInput, NotFound


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
    street_blocks_reused: bool = False  # the street blocks came from the earlier run's cache


def _load(conn: Connection) -> tuple[Inputs, int, dict, list[int]]:
    """Read buildings, streets and communities (metres), and what an earlier run left."""
    rows = conn.execute(
        sa.text("SELECT id, households, ST_AsBinary(geom) FROM building ORDER BY id")
    ).all()
    if not rows:
        raise InvalidInput("no buildings yet: import a map first (gridatlas import FILE)")
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    geoms = shapely.from_wkb([bytes(r[2]) for r in rows])
    epsg = metric_epsg_for(geoms)
    streets = conn.execute(sa.text("SELECT highway, ST_AsBinary(geom) FROM walk_edge")).all()
    lines = shapely.from_wkb([bytes(r[1]) for r in streets]) if streets else np.array([])
    comm, comm_ids, proposed = _load_communities(conn, epsg)
    inputs = Inputs(
        building_ids=ids,
        households=np.array([r[1] for r in rows], dtype=float),
        footprints=to_metric(geoms, epsg),
        street_lines=to_metric(lines, epsg) if len(lines) else np.array([]),
        highways=np.array([r[0] for r in streets], dtype=object),
        communities=comm,
        dwellings=part_store.load_registers(conn, ids),
        doors=part_store.load_doors(conn, ids),
    )
    reuse = _load_reuse(conn, ids, epsg)
    reuse[PROPOSED] = proposed
    blocks = store.read_street_blocks(conn, epsg)
    if blocks is not None:
        reuse[BLOCKS] = blocks
    return inputs, epsg, reuse, comm_ids


def _load_communities(
    conn: Connection, epsg: int
) -> tuple[list[tuple[str, object]] | None, list[int], set[str]]:
    """(code, outline in metres) of every stored community, their ids (None, []), and the
    codes of those an earlier run proposed (the others were imported)."""
    rows = conn.execute(
        sa.text(
            "SELECT id, code, ST_AsBinary(geom), source_file IS NOT DISTINCT FROM :sf "
            "FROM community ORDER BY code"
        ),
        {"sf": store.PROPOSED},
    ).all()
    if not rows:
        return None, [], set()
    polys = to_metric(shapely.from_wkb([bytes(r[2]) for r in rows]), epsg)
    proposed = {r[1] for r in rows if r[3]}
    return [(r[1], g) for r, g in zip(rows, polys, strict=True)], [r[0] for r in rows], proposed


def _load_reuse(conn: Connection, ids: np.ndarray, epsg: int) -> dict:
    """Cells per block hash, and the noded coverage of the latest run, in ``epsg``."""
    reuse: dict = {}
    for block_hash, e, raws in conn.execute(
        sa.text(
            "SELECT block_hash, min(epsg), array_agg(raw_wkb ORDER BY building_id) "
            "FROM building_cell GROUP BY block_hash"
        )
    ):
        if e == epsg:
            reuse[block_hash] = list(shapely.from_wkb([bytes(b) for b in raws]))
    key = conn.scalar(sa.text("SELECT coverage_key FROM delineation_run ORDER BY id DESC LIMIT 1"))
    if key is None:
        return reuse
    index = {int(b): i for i, b in enumerate(ids.tolist())}
    cells = np.full(len(ids), None, dtype=object)
    for b, wkb, e in conn.execute(sa.text("SELECT building_id, cell_wkb, epsg FROM building_cell")):
        if e == epsg and b in index:
            cells[index[b]] = shapely.from_wkb(bytes(wkb))
    land = {
        h: shapely.from_wkb(bytes(wkb))
        for h, wkb, e in conn.execute(sa.text("SELECT block_hash, cell_wkb, epsg FROM land_piece"))
        if e == epsg
    }
    reuse[COVERAGE] = (key, cells, land)
    return reuse


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
    inputs, epsg, reuse, comm_ids = _load(conn)
    if community is not None and community not in [c for c, _ in inputs.communities or []]:
        raise NotFound(
            f"no community {community!r}; run without --community first to propose them, "
            "or import community boundaries"
        )
    # locked groups, with the groups sharing a divided building with them
    locked = conn.execute(part_store.HELD_GROUPS).all()
    frozen = []
    if locked:
        polys = to_metric(shapely.from_wkb([bytes(r[2]) for r in locked]), epsg)
        # a hair inside, so that only land well within the locked outline is held back
        frozen = [
            (r[1], g, r[3]) for r, g in zip(locked, shapely.buffer(polys, -0.05), strict=True)
        ]
    before = _membership(conn)
    step("building cells and drawing the levels", 0.15)
    result = delineate(inputs, params, reuse, frozen)
    step("writing to PostGIS", 0.8)
    reused = sum(1 for h in set(result.block_cells) if h in reuse)
    reuse.pop(COVERAGE, None)
    blocks = reuse.get(BLOCKS)  # the street blocks this run used (``pieces.tessellate``)
    store.write_street_blocks(conn, blocks, epsg)
    report = _write(conn, inputs, result, epsg, params, comm_ids, community, [r[0] for r in locked])
    report.street_blocks_reused = bool(blocks is not None and blocks.reused)
    report.reused_blocks = reused
    report.computed_blocks = len(result.block_cells) - reused
    report.locked_groups = len(locked)
    report.coverage_reused = result.coverage_reused
    after = _membership(conn)
    report.households_changed_group = sum(
        h for b, (key, h) in before.items() if b in after and after[b][0] != key
    )
    return report


def _membership(conn: Connection) -> dict[tuple[int, int], tuple[tuple, int]]:
    """(building id, part number or 0) -> ((community code, group code), households)."""
    rows = conn.execute(
        sa.text(
            "SELECT b.id, coalesce(p.part_no, 0), cm.code, g.code, "
            "coalesce(p.households, b.households) FROM building b "
            "LEFT JOIN building_part p ON p.building_id = b.id "
            "JOIN unit u ON u.id = coalesce(p.unit_id, b.unit_id) "
            "JOIN building_cluster c ON c.id = u.building_cluster_id "
            "JOIN residents_group g ON g.id = c.residents_group_id "
            "JOIN community cm ON cm.id = g.community_id"
        )
    ).all()
    return {(r[0], r[1]): ((r[2], r[3]), r[4]) for r in rows}


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
    """Write every level of ``r``, replacing the redrawn communities' areas whole."""
    store.write_cells(conn, inputs, r, epsg)
    # imported or earlier proposed communities stay; the first run proposes them
    comm_ids = comm_ids or store.write_communities(conn, r, epsg)
    codes = list(r.communities.code)
    target = store.Target(comm_ids, codes, [i for i, c in enumerate(codes) if only in (None, c)])
    ended = store.end_leaders_and_clear(conn, target, locked_ids)
    grid_id = store.write_grids(conn, r, epsg, target)
    g_ids = store.write_groups(conn, r, epsg, target, grid_id, locked_ids)
    c_ids = store.write_clusters(conn, r, epsg, g_ids)
    u_ids = store.write_units(conn, r, epsg, c_ids)
    part_store.write_parts(conn, inputs, r, u_ids)
    store.write_land(conn, r, epsg, u_ids)
    store.update_buildings(conn, inputs, r, comm_ids, u_ids)
    run_id = runs.record_run(conn, params, only, r)
    report = RunReport(run_id, r.quality, r.timings, [codes[i] for i in target.redrawn], 0, 0)
    report.leaders_ended = ended
    return report


# a divided building's floors per group, up from the ground: "1–9:03|10–18:04" ('' if whole);
# a part that is whole entrances or floors behind one adds them: "1–12:03@1,2|1–12:04@3"
PARTS_OF_BUILDING = (
    "coalesce((SELECT string_agg(p.floor_min || '–' || p.floor_max || ':' || pg.code "
    "|| coalesce('@' || translate(p.entrance, ':|@', '///'), ''), '|' "
    "ORDER BY p.part_no) FROM building_part p JOIN unit pu ON pu.id = p.unit_id "
    "JOIN building_cluster pc ON pc.id = pu.building_cluster_id "
    "JOIN residents_group pg ON pg.id = pc.residents_group_id "
    "WHERE p.building_id = b.id), '')"
)


def map_frames(conn: Connection, community: str | None, limit: int) -> tuple:
    """(groups, buildings) of one community (or all) as GeoDataFrames for the groups map.

    A building divided by floors carries ``parts`` ("1–9:03|10–18:04": floors and group,
    up from the ground; '' when whole). Each group carries the band of the run that drew
    it (``band_min``, ``band_max``) and its class against that band (``band_class``:
    in_band, small, large, oversize, no_households); ``groups.attrs["band"]`` is the band
    when every group shares one.
    """
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
    _add_band(conn, groups)
    buildings = gpd.read_postgis(
        sa.text(
            "SELECT b.id, b.name, b.households, u.id AS unit_id, u.code AS unit, "
            "c.id AS cluster_id, c.code AS cluster, g.id AS group_id, g.code AS grp, "
            f"{PARTS_OF_BUILDING} AS parts, b.geom "
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


def band_class(households: float, flags: str, band: tuple[float, float]) -> str:
    """Return how a group stands against its run's band (what the map colours)."""
    if "oversize" in flags:
        return "oversize"
    if "no_households" in flags or households == 0:
        return "no_households"
    if households < band[0]:
        return "small"
    if households > band[1]:
        return "large"
    return "in_band"


def _add_band(conn: Connection, groups) -> None:
    """Add the band columns and attribute that ``map_frames`` promises to ``groups``."""
    bands = runs.group_bands(conn)
    default = runs.band_of_params(None)
    per_group = [bands.get(c, default) for c in groups["community"]]
    groups["band_min"] = [b[0] for b in per_group]
    groups["band_max"] = [b[1] for b in per_group]
    groups["band_class"] = [
        band_class(float(h), f or "", b)
        for h, f, b in zip(groups["households"], groups["flags"], per_group, strict=True)
    ]
    distinct = set(per_group) or {default}
    groups.attrs["band"] = distinct.pop() if len(distinct) == 1 else None
