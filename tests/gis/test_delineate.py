"""Delineation on the real Nanjing extract: invariants checked in PostGIS, figures recomputed.

One module-scoped database holds Nanjing and one delineation run; the checks read it with
their own SQL, not with the delineation's code.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from gis.db import create_engine
from gis.delineate.hierarchy import Params
from gis.delineate.partition import partition
from gis.delineate.service import run
from gis.errors import NotFound
from gis.io.pipeline import import_file
from tests.conftest import NANJING, _admin_execute, _clone


@pytest.fixture(scope="module")
def delineated(server_url: str, template_url: str) -> Iterator[tuple[Engine, dict]]:
    url = _clone(server_url, template_url, "delineate")
    engine = create_engine(url)
    import_file(engine, NANJING)
    report = run(engine)
    try:
        yield engine, report.quality
    finally:
        engine.dispose()
        name = make_url(url).database
        _admin_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_every_building_is_in_exactly_one_unit_and_the_levels_nest(delineated) -> None:
    engine, _ = delineated
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("""
            SELECT (SELECT count(*) FROM building) AS buildings,
                   (SELECT count(*) FROM building WHERE unit_id IS NULL) AS without_unit,
                   (SELECT count(*) FROM unit u WHERE NOT EXISTS
                        (SELECT 1 FROM building b WHERE b.unit_id = u.id) AND NOT EXISTS
                        (SELECT 1 FROM building_part p WHERE p.unit_id = u.id)) AS empty_units,
                   (SELECT count(*) FROM building_cluster c WHERE NOT EXISTS
                        (SELECT 1 FROM unit u WHERE u.building_cluster_id = c.id))
                        AS empty_clusters,
                   (SELECT count(*) FROM residents_group g WHERE NOT EXISTS
                        (SELECT 1 FROM building_cluster c WHERE c.residents_group_id = g.id))
                        AS empty_groups,
                   (SELECT count(*) FROM building b JOIN unit u ON u.id = b.unit_id
                      JOIN building_cluster c ON c.id = u.building_cluster_id
                      JOIN residents_group g ON g.id = c.residents_group_id
                     WHERE g.community_id IS DISTINCT FROM b.community_id) AS wrong_community,
                   (SELECT count(*) FROM residents_group WHERE grid_id IS NULL) AS groups_no_grid
        """)
        ).one()
    assert row.buildings == 1277
    assert row.without_unit == 0
    assert row.empty_units == row.empty_clusters == row.empty_groups == 0
    assert row.wrong_community == 0
    assert row.groups_no_grid == 0


def test_households_add_up_at_every_level(delineated) -> None:
    engine, _ = delineated
    with engine.connect() as conn:
        mismatches = conn.execute(
            sa.text("""
            SELECT
              (SELECT count(*) FROM unit u WHERE u.households <>
                 coalesce((SELECT sum(households) FROM building b WHERE b.unit_id = u.id
                    AND NOT EXISTS (SELECT 1 FROM building_part p WHERE p.building_id = b.id)),
                    0)
                 + coalesce((SELECT sum(households) FROM building_part p
                              WHERE p.unit_id = u.id), 0)),
              (SELECT count(*) FROM residents_group g WHERE g.households <>
                 (SELECT sum(u.households) FROM unit u JOIN building_cluster c
                    ON c.id = u.building_cluster_id WHERE c.residents_group_id = g.id)),
              (SELECT sum(households) FROM residents_group) - (SELECT sum(households) FROM building)
        """)
        ).one()
    assert tuple(mismatches) == (0, 0, 0)


def test_levels_tile_their_community_without_gaps_or_overlaps(delineated) -> None:
    """Measured in PostGIS in metres; stored in WGS 84, so a few cm² of rounding is allowed."""
    engine, _ = delineated
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("""
            WITH m AS (SELECT 32650 AS srid),
            -- a divided building's cell lies in each group holding one of its parts:
            -- overlaps are measured without those cells (tests/gis/test_delineate_parts.py
            -- checks each lies in every group of its parts)
            divided AS (
              SELECT ST_Union(ST_Transform(c.geom, (SELECT srid FROM m))) AS geom
                FROM building_cell c
               WHERE c.building_id IN (SELECT building_id FROM building_part)),
            lvl AS (
              SELECT g.community_id AS cid, ST_Transform(g.geom, (SELECT srid FROM m)) AS geom
                FROM residents_group g
            ),
            plan AS (
              SELECT cid, coalesce(ST_Difference(geom, (SELECT geom FROM divided)), geom)
                     AS geom FROM lvl
            )
            SELECT c.code,
                   ST_Area(ST_Transform(c.geom, (SELECT srid FROM m))) AS community,
                   (SELECT sum(ST_Area(geom)) FROM plan WHERE cid = c.id) AS sum_groups,
                   (SELECT ST_Area(ST_Union(geom)) FROM plan WHERE cid = c.id) AS union_groups,
                   (SELECT ST_Area(ST_Union(geom)) FROM lvl WHERE cid = c.id) AS union_all,
                   (SELECT sum(ST_Area(coalesce(ST_Difference(ST_Transform(gr.geom,
                           (SELECT srid FROM m)), (SELECT geom FROM divided)),
                           ST_Transform(gr.geom, (SELECT srid FROM m)))))
                      FROM grid gr WHERE gr.community_id = c.id) AS sum_grids,
                   ST_Area(coalesce(ST_Difference(ST_Transform(c.geom, (SELECT srid FROM m)),
                           (SELECT geom FROM divided)),
                           ST_Transform(c.geom, (SELECT srid FROM m)))) AS community_plan
              FROM community c
        """)
        ).all()
        communities_overlap = conn.scalar(
            sa.text(
                "SELECT coalesce(sum(ST_Area(ST_Transform(ST_Intersection(a.geom, b.geom), "
                "32650))), 0) FROM community a JOIN community b ON a.id < b.id "
                "AND ST_Intersects(a.geom, b.geom)"
            )
        )
    assert rows
    for r in rows:
        assert r.sum_groups - r.union_groups < 1.0, r  # overlaps
        assert abs(r.community - r.union_all) < 1.0, r  # gaps
        assert abs(r.sum_grids - r.community_plan) < 1.0, r
    assert communities_overlap < 1.0


MOST_OF = """(SELECT o.fid FROM (
                  SELECT f.fid, ST_Area(ST_Intersection(f.geom, b.geom)) AS a FROM faces f
                   WHERE ST_Intersects(f.geom, b.geom)
                  UNION ALL
                  SELECT 0, ST_Area(b.geom) - coalesce((SELECT sum(ST_Area(ST_Intersection(
                         f.geom, b.geom))) FROM faces f WHERE ST_Intersects(f.geom, b.geom)), 0)
                ) o ORDER BY o.a DESC, o.fid LIMIT 1)"""


def test_groups_are_contiguous_and_never_cross_a_major_road(delineated) -> None:
    engine, quality = delineated
    with engine.connect() as conn:
        multi = conn.scalar(
            sa.text(
                "SELECT count(*) FROM residents_group "
                "WHERE ST_NumGeometries(ST_MakeValid(geom)) > 1"
            )
        )
        # PostGIS's own faces of the major-road network: a group's buildings must all lie
        # in one face (or all outside every closed face)
        crossing = conn.scalar(
            sa.text(
                """
            WITH faces AS (
              SELECT row_number() OVER () AS fid, d.geom FROM ST_Dump((
                SELECT ST_Polygonize(l.geom) FROM ST_Dump((
                  SELECT ST_Node(ST_Collect(geom)) FROM walk_edge
                   WHERE highway IN ('primary', 'primary_link', 'secondary', 'secondary_link',
                                     'tertiary', 'tertiary_link', 'trunk', 'trunk_link',
                                     'motorway', 'motorway_link'))) l)) d),
            placed AS (
              SELECT c.residents_group_id AS gid,
                     -- the face holding most of the footprint, 0 (outside every face)
                     -- included: a building mapped over a primary road lies in several
                     """
                + MOST_OF
                + """ AS fid
                FROM building b JOIN building_part bp ON bp.building_id = b.id
                JOIN unit u ON u.id = bp.unit_id
                JOIN building_cluster c ON c.id = u.building_cluster_id
              UNION ALL
              SELECT c.residents_group_id,
                     """
                + MOST_OF
                + """
                FROM building b JOIN unit u ON u.id = b.unit_id
                JOIN building_cluster c ON c.id = u.building_cluster_id
               WHERE NOT EXISTS (SELECT 1 FROM building_part p WHERE p.building_id = b.id))
            SELECT count(*) FROM (SELECT gid FROM placed GROUP BY gid
                                   HAVING count(DISTINCT fid) > 1) x
        """
            )
        )
    assert multi == quality["non_contiguous_groups"]
    assert multi == 0
    assert quality["groups_crossing_major_roads"] == 0
    assert crossing == 0


def test_quality_report_matches_the_stored_groups(delineated) -> None:
    engine, quality = delineated
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT households, 'oversize' = ANY(flags) OR households = 0, "
                "'oversize' = ANY(flags) FROM residents_group"
            )
        ).all()
    hh = np.array([r[0] for r in rows if not r[1]], dtype=float)
    oversize = sum(1 for r in rows if r[2])
    assert quality["groups"] == len(rows)
    assert quality["oversize_groups"] == oversize
    assert quality["share_in_band"] == pytest.approx(((hh >= 80) & (hh <= 120)).mean())
    assert quality["group_households"]["cv"] == pytest.approx(hh.std() / hh.mean())
    assert quality["group_households"]["median"] == pytest.approx(np.median(hh))
    with engine.connect() as conn:
        big = conn.scalar(
            sa.text(
                "SELECT count(*) FROM residents_group WHERE households > 120 "
                "AND NOT 'oversize' = ANY(flags)"
            )
        )
        flagged_multi = conn.scalar(
            sa.text(
                "SELECT count(*) FROM residents_group g WHERE 'oversize' = ANY(flags) AND "
                "(SELECT count(*) FROM building_cluster c JOIN unit u "
                "ON u.building_cluster_id = c.id WHERE c.residents_group_id = g.id) <> 1"
            )
        )
    assert flagged_multi == 0  # an oversize group is one unit
    assert big <= 0.1 * quality["groups"]


def test_codes_are_unique_and_nested(delineated) -> None:
    engine, _ = delineated
    with engine.connect() as conn:
        bad = conn.execute(
            sa.text("""
            SELECT
              (SELECT count(*) FROM building_cluster c JOIN residents_group g
                 ON g.id = c.residents_group_id WHERE c.code NOT LIKE g.code || '-%'),
              (SELECT count(*) FROM unit u JOIN building_cluster c
                 ON c.id = u.building_cluster_id WHERE u.code NOT LIKE c.code || '-%'),
              (SELECT count(*) - count(DISTINCT (community_id, code)) FROM residents_group),
              (SELECT count(*) FROM residents_group WHERE code !~ '^[0-9]{2,}$')
        """)
        ).one()
    assert tuple(bad) == (0, 0, 0, 0)


def test_rerun_reuses_cells_and_keeps_codes(delineated) -> None:
    engine, _ = delineated
    with engine.connect() as conn:
        before = dict(
            conn.execute(
                sa.text(
                    "SELECT b.source_id, g.code FROM building b JOIN unit u ON u.id = b.unit_id "
                    "JOIN building_cluster c ON c.id = u.building_cluster_id "
                    "JOIN residents_group g ON g.id = c.residents_group_id"
                )
            ).all()
        )
        communities = conn.scalar(sa.text("SELECT count(*) FROM community"))
    again = run(engine)
    assert again.computed_blocks == 0 and again.reused_blocks > 100
    assert again.coverage_reused
    assert again.households_changed_group == 0
    with engine.connect() as conn:
        after = dict(
            conn.execute(
                sa.text(
                    "SELECT b.source_id, g.code FROM building b JOIN unit u ON u.id = b.unit_id "
                    "JOIN building_cluster c ON c.id = u.building_cluster_id "
                    "JOIN residents_group g ON g.id = c.residents_group_id"
                )
            ).all()
        )
        assert conn.scalar(sa.text("SELECT count(*) FROM community")) == communities
    assert after == before


def test_unknown_community_is_refused(delineated) -> None:
    engine, _ = delineated
    with pytest.raises(NotFound, match="no community 'NOPE'"):
        run(engine, Params(), community="NOPE")


def test_partition_parts_are_connected_and_balanced() -> None:
    """A 10 x 10 lattice of 10-household members cut into 10 parts of 100."""
    n = 10
    xy = np.array([(i, j) for i in range(n) for j in range(n)], dtype=float)
    adj = [dict() for _ in range(n * n)]
    for i in range(n):
        for j in range(n):
            a = i * n + j
            if i + 1 < n:
                adj[a][a + n] = adj[a + n][a] = 1.0
            if j + 1 < n:
                adj[a][a + 1] = adj[a + 1][a] = 1.0
    w = np.full(n * n, 10.0)
    labels = partition(w, xy, adj, 10)
    sizes = np.bincount(labels, weights=w)
    assert len(sizes) == 10 and sizes.min() >= 80 and sizes.max() <= 120
    for p in range(10):
        members = set(np.flatnonzero(labels == p).tolist())
        start = next(iter(members))
        seen, stack = {start}, [start]
        while stack:
            u = stack.pop()
            for v in adj[u]:
                if v in members and v not in seen:
                    seen.add(v)
                    stack.append(v)
        assert seen == members
