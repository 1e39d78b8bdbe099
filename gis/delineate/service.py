"""Delineation against PostGIS: read buildings and streets, draw, write every level at once.

One run is one transaction: the previous delineation of the communities concerned is
replaced whole (groups, clusters, units, proposed grids), or nothing changes.

Two entry points: ``run_on`` draws the whole study area (and writes every community, or
one), holding the ``delineation`` advisory lock exclusively; ``run_community`` reads and
draws one stored community alone, holding that lock shared and a lock of its own, so that
runs of different communities go side by side and a whole-city run excludes them all.
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
from gis.delineate import read_inputs as read
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
    epsg = metric_epsg_for(shapely.from_wkb([bytes(r[2]) for r in rows]))
    streets = conn.execute(sa.text("SELECT highway, ST_AsBinary(geom) FROM walk_edge")).all()
    comm, comm_ids, proposed = _load_communities(conn, epsg)
    inputs = read.inputs_of(conn, rows, streets, epsg, comm)
    ids = inputs.building_ids
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
    reuse = read.block_cells(conn, epsg)
    # A community run's key covers its own blocks only: never a whole study area's key, so
    # cells one community run noded are never taken for a whole-city coverage.
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
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": LOCK})
    step("reading buildings and streets", 0.05)
    inputs, epsg, reuse, comm_ids = _load(conn)
    if community is not None and community not in [c for c, _ in inputs.communities or []]:
        raise NotFound(
            f"no community {community!r}; run without --community first to propose them, "
            "or import community boundaries"
        )
    locked = conn.execute(part_store.HELD_GROUPS).all()
    return _draw_and_write(conn, inputs, epsg, reuse, comm_ids, params, community, locked, step)


def run_community(
    conn: Connection,
    params: Params | None = None,
    code: str = "",
    on_step: Callable[[str, float], None] | None = None,
) -> RunReport:
    """Draw the stored community ``code`` alone and replace its areas, in the caller's
    transaction.

    Reads only the community's buildings (those lying mostly in its outline) and the
    streets that cross it, reuses their stored cells block by block, and replaces only the
    community's rows: its buildings' cells, its groups, clusters, units, land pieces and
    proposed grids (codes in reading order within the community, as a whole-city run
    numbers them; locked groups kept). Other communities' rows are not touched.

    Locks: the community's own, and the ``delineation`` lock shared, so that community runs
    go side by side and a whole-city run waits for them (and they for it).
    """
    params = params or Params()
    step = on_step or (lambda _n, _f: None)
    conn.execute(sa.text("SELECT pg_advisory_xact_lock_shared(hashtext(:k))"), {"k": LOCK})
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"{LOCK}:{code}"})
    step("reading the community's buildings and streets", 0.05)
    inputs, epsg, reuse, comm_id = read.load_community(conn, code)
    mine = set(_group_ids(conn, comm_id))
    locked = [r for r in conn.execute(part_store.HELD_GROUPS).all() if r[0] in mine]
    return _draw_and_write(
        conn, inputs, epsg, reuse, [comm_id], params, code, locked, step, is_community=True
    )


LOCK = "delineation"  # the advisory lock's name: exclusive for a whole run, shared per community


def _group_ids(conn: Connection, comm_id: int) -> list[int]:
    return list(
        conn.scalars(
            sa.text("SELECT id FROM residents_group WHERE community_id = :c"), {"c": comm_id}
        )
    )


def _draw_and_write(
    conn: Connection,
    inputs: Inputs,
    epsg: int,
    reuse: dict,
    comm_ids: list[int],
    params: Params,
    only: str | None,
    locked: list,
    step: Callable[[str, float], None],
    is_community: bool = False,
) -> RunReport:
    """Draw ``inputs`` around the ``locked`` groups and write the result (both entry points)."""
    frozen = []
    if locked:
        polys = to_metric(shapely.from_wkb([bytes(r[2]) for r in locked]), epsg)
        # a hair inside, so that only land well within the locked outline is held back
        frozen = [
            (r[1], g, r[3]) for r, g in zip(locked, shapely.buffer(polys, -0.05), strict=True)
        ]
    mine = comm_ids[0] if is_community else None
    before = _membership(conn, mine)
    step("building cells and drawing the levels", 0.15)
    result = delineate(inputs, params, reuse, frozen)
    step("writing to PostGIS", 0.8)
    reused = sum(1 for h in set(result.block_cells) if h in reuse)
    reuse.pop(COVERAGE, None)
    blocks = reuse.get(BLOCKS)  # the street blocks this run used (``pieces.tessellate``)
    if not is_community:  # the cache holds the whole study area's blocks, not a community's
        store.write_street_blocks(conn, blocks, epsg)
    locked_ids = [r[0] for r in locked]
    report = _write(conn, inputs, result, epsg, params, comm_ids, only, locked_ids, is_community)
    report.street_blocks_reused = bool(blocks is not None and blocks.reused)
    report.reused_blocks = reused
    report.computed_blocks = len(result.block_cells) - reused
    report.locked_groups = len(locked)
    report.coverage_reused = result.coverage_reused
    after = _membership(conn, mine)
    report.households_changed_group = sum(
        h for b, (key, h) in before.items() if b in after and after[b][0] != key
    )
    return report


def _membership(
    conn: Connection, comm_id: int | None = None
) -> dict[tuple[int, int], tuple[tuple, int]]:
    """(building id, part number or 0) -> ((community code, group code), households),
    of the buildings in the groups of community ``comm_id`` only when given."""
    if comm_id is not None:
        rows = conn.execute(COMMUNITY_MEMBERSHIP, {"c": comm_id}).all()
        return {(r[0], r[1]): ((r[2], r[3]), r[4]) for r in rows}
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


# The same, from one community's groups down: every join follows an indexed foreign key,
# so the plan stays cheap when the statistics are stale (tables filled in this transaction),
# where the whole-table query's join on coalesce(...) degenerates into nested scans.
COMMUNITY_MEMBERSHIP = sa.text(
    """
    WITH u AS (SELECT u.id, cm.code AS cc, g.code AS gc FROM residents_group g
                 JOIN community cm ON cm.id = g.community_id
                 JOIN building_cluster c ON c.residents_group_id = g.id
                 JOIN unit u ON u.building_cluster_id = c.id WHERE g.community_id = :c)
    SELECT b.id, 0, u.cc, u.gc, b.households FROM u JOIN building b ON b.unit_id = u.id
     WHERE NOT EXISTS (SELECT 1 FROM building_part p WHERE p.building_id = b.id)
    UNION ALL
    SELECT p.building_id, p.part_no, u.cc, u.gc, p.households
      FROM u JOIN building_part p ON p.unit_id = u.id
    """
)


def _write(
    conn: Connection,
    inputs: Inputs,
    r: Result,
    epsg: int,
    params: Params,
    comm_ids: list[int],
    only: str | None,
    locked_ids: list[int],
    is_community: bool = False,
) -> RunReport:
    """Write every level of ``r``, replacing the redrawn communities' areas whole.

    ``is_community``: ``r`` is one community drawn alone (``run_community``), whose
    buildings' cells alone are replaced and whose totals alone are summed again.
    """
    store.write_cells(conn, inputs, r, epsg, only_these=is_community)
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
    totals = target.redrawn_ids if is_community else None
    store.update_buildings(conn, inputs, r, comm_ids, u_ids, totals)
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
