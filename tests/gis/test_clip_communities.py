"""Imported communities whose shared boundary cuts through street blocks (issue 14).

Nanjing with two imported community polygons: the buildings' hull (plus a margin) cut in two
by a straight line at an angle no street of the extract follows, so the boundary runs through
the middle of blocks. The groups of each community must still tile it: no gap inside a
community, no group reaching into the other one, no overlap. Measured in PostGIS, in metres
(UTM 50N), with its own SQL; the run's quality report must say the same.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from gis.db import create_engine
from gis.delineate.service import RunReport, run
from gis.io.pipeline import import_file
from tests.conftest import NANJING, _admin_execute, _clone

UTM = 32650
# the hull of the buildings plus 60 m, cut by a line through its centre, 35° east of north
HALVES = f"""
    WITH hull AS (
        SELECT ST_Buffer(ST_ConvexHull(ST_Collect(ST_Transform(geom, {UTM}))), 60) AS g
          FROM building),
    c AS (SELECT g, ST_Centroid(g) AS o FROM hull),
    cut AS (
        SELECT g, ST_MakeLine(
                 ST_Translate(o, -5000 * sin(radians(35)), -5000 * cos(radians(35))),
                 ST_Translate(o, 5000 * sin(radians(35)), 5000 * cos(radians(35)))) AS line
          FROM c)
    SELECT (ST_Dump(ST_Split(g, line))).geom AS half, line FROM cut
"""
BOUNDING = (
    "'residential', 'unclassified', 'living_street', 'pedestrian', 'road', 'tertiary', "
    "'tertiary_link', 'secondary', 'secondary_link', 'primary', 'primary_link', 'trunk', "
    "'trunk_link', 'motorway', 'motorway_link'"
)
# per community: its area, the area of it no group covers, the area of its groups outside
# it, and how much its groups overlap one another (a divided building's cell, which lies in
# each group holding a part of it, counted once, as in tests/gis/test_delineate.py)
TILING = f"""
    WITH divided AS (
        SELECT ST_Union(ST_Transform(geom, {UTM})) AS geom FROM building_cell
         WHERE building_id IN (SELECT building_id FROM building_part)),
    grp AS (
        SELECT community_id AS cid, ST_Transform(geom, {UTM}) AS geom FROM residents_group),
    plan AS (
        SELECT cid, coalesce(ST_Difference(geom, (SELECT geom FROM divided)), geom) AS geom
          FROM grp),
    per AS (
        SELECT c.code, ST_Transform(c.geom, {UTM}) AS comm,
               (SELECT ST_Union(geom) FROM grp WHERE cid = c.id) AS groups,
               (SELECT sum(ST_Area(geom)) FROM plan WHERE cid = c.id) AS plan_sum,
               (SELECT ST_Area(ST_Union(geom)) FROM plan WHERE cid = c.id) AS plan_union
          FROM community c)
    SELECT code, ST_Area(comm) AS area,
           ST_Area(ST_Difference(comm, groups, 0.01)) AS gap_slivers,
           (SELECT coalesce(sum(ST_Area(d.geom)), 0)
              FROM ST_Dump(ST_Difference(comm, groups, 0.01)) d
             WHERE NOT ST_IsEmpty(ST_Buffer(d.geom, -0.01))) AS gap,
           ST_Area(ST_Difference(groups, comm, 0.01)) AS outside_slivers,
           (SELECT coalesce(sum(ST_Area(d.geom)), 0)
              FROM ST_Dump(ST_Difference(groups, comm, 0.01)) d
             WHERE NOT ST_IsEmpty(ST_Buffer(d.geom, -0.01))) AS outside,
           plan_sum - plan_union AS overlap
      FROM per ORDER BY code
"""


@pytest.fixture(scope="module")
def clipped(server_url: str, template_url: str, tmp_path_factory) -> Iterator[tuple]:
    url = _clone(server_url, template_url, "clip")
    engine = create_engine(url, poolclass=sa.NullPool)
    try:
        import_file(engine, NANJING)
        path = _write_communities(engine, tmp_path_factory.mktemp("clip"))
        import_file(engine, path)
        report = run(engine)
        yield engine, report
    finally:
        engine.dispose()
        _admin_execute(
            server_url, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'
        )


def _write_communities(engine: Engine, folder: Path) -> Path:
    """Write the two halves as communities.geojson (WGS 84), codes C1 (west) and C2."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                f"SELECT ST_AsGeoJSON(ST_Transform(half, 4326), 9) FROM ({HALVES}) h "
                "ORDER BY ST_X(ST_Centroid(half))"
            )
        ).scalars()
        features = [
            {
                "type": "Feature",
                "properties": {"code": f"C{i + 1}", "name": f"社区 {i + 1}"},
                "geometry": json.loads(g),
            }
            for i, g in enumerate(rows)
        ]
    assert len(features) == 2
    path = folder / "communities.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def test_the_boundary_runs_through_blocks_not_along_streets(clipped) -> None:
    """The data really has what the test is about: a boundary through built-up blocks."""
    engine, _ = clipped
    with engine.connect() as conn:
        along, length, near = conn.execute(
            sa.text(
                f"""
                WITH line AS (
                    SELECT ST_Intersection(ST_Boundary(a.geom), ST_Boundary(b.geom)) AS g
                      FROM (SELECT ST_Transform(geom, {UTM}) AS geom FROM community
                             WHERE code = 'C1') a,
                           (SELECT ST_Transform(geom, {UTM}) AS geom FROM community
                             WHERE code = 'C2') b),
                streets AS (
                    SELECT ST_Union(ST_Buffer(ST_Transform(geom, {UTM}), 3)) AS g
                      FROM walk_edge WHERE highway IN ({BOUNDING}))
                SELECT ST_Length(ST_Intersection(line.g, streets.g)), ST_Length(line.g),
                       (SELECT count(*) FROM building b
                         WHERE ST_DWithin(ST_Transform(b.geom, {UTM}), line.g, 15))
                  FROM line, streets
                """
            )
        ).one()
    assert length > 1000
    assert along < 0.2 * length  # most of it is nowhere near a street that bounds a block
    assert near > 30  # and it passes within 15 m of many buildings


def test_groups_tile_each_community_across_the_cut(clipped) -> None:
    engine, report = clipped
    with engine.connect() as conn:
        rows = conn.execute(sa.text(TILING)).all()
        homes = conn.execute(
            sa.text(
                "SELECT count(*) FILTER (WHERE g.id IS NULL), count(*) FROM building b "
                "LEFT JOIN unit u ON u.id = b.unit_id "
                "LEFT JOIN building_cluster c ON c.id = u.building_cluster_id "
                "LEFT JOIN residents_group g ON g.id = c.residents_group_id "
                "WHERE b.households > 0"
            )
        ).one()
    assert [r.code for r in rows] == ["C1", "C2"]
    for r in rows:
        assert r.area > 100_000, r
        # The imported outline is not on the 1 cm grid the cells are cut to: what lies
        # between the two is slivers under 2 cm wide (no negative buffer of 1 cm leaves
        # anything of them), under a square metre in all along kilometres of boundary.
        # Before the cells were clipped, C1 had 29,204 m² of gap and its groups covered
        # 2.5 km² outside it.
        assert r.gap == 0.0 and r.gap_slivers < 1.0, r
        assert r.outside == 0.0 and r.outside_slivers < 1.0, r
        assert r.overlap < 0.05, r  # stored in WGS 84: a few cm² of rounding, no more
    assert homes[0] == 0 and homes[1] > 1000  # every home is in a group
    assert report.quality["gap_m2"] == 0.0
    assert report.quality["overlap_m2"] == 0.0
    assert report.quality["non_contiguous_groups"] == 0


def test_a_rerun_reuses_the_clipped_blocks_and_keeps_every_code(clipped) -> None:
    engine, _ = clipped
    codes = (
        "SELECT b.id, cm.code, g.code FROM building b JOIN unit u ON u.id = b.unit_id "
        "JOIN building_cluster c ON c.id = u.building_cluster_id "
        "JOIN residents_group g ON g.id = c.residents_group_id "
        "JOIN community cm ON cm.id = g.community_id ORDER BY b.id"
    )
    with engine.connect() as conn:
        before = conn.execute(sa.text(codes)).all()
    again: RunReport = run(engine)
    assert again.street_blocks_reused
    assert again.computed_blocks == 0 and again.coverage_reused
    with engine.connect() as conn:
        assert conn.execute(sa.text(codes)).all() == before
