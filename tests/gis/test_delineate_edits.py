"""Manual corrections and locks on a delineated Nanjing: accepted edits keep every invariant,
refused ones change nothing, locked groups survive a re-run."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from gis.delineate import edits
from gis.delineate.service import run
from gis.errors import Conflict
from gis.io.pipeline import import_file
from tests.conftest import NANJING

SNAPSHOT = sa.text(
    "SELECT 'u' || id, building_cluster_id, code, households, md5(ST_AsBinary(geom)) FROM unit "
    "UNION ALL SELECT 'c' || id, residents_group_id, code, households, md5(ST_AsBinary(geom)) "
    "FROM building_cluster UNION ALL SELECT 'g' || id, community_id, code, households, "
    "md5(ST_AsBinary(geom)) FROM residents_group UNION ALL "
    "SELECT 'b' || id, unit_id, '', households, '' FROM building ORDER BY 1"
)


@pytest.fixture
def delineated(engine):
    import_file(engine, NANJING)
    run(engine)
    return engine


def _neighbouring_units(conn, same_cluster: bool):
    """(building id, its unit, a touching unit) with the building's unit keeping others."""
    op = "=" if same_cluster else "<>"
    return conn.execute(
        sa.text(f"""
        SELECT b.id, b.unit_id, u2.id FROM building b
          JOIN building_cell bc ON bc.building_id = b.id
          JOIN unit u1 ON u1.id = b.unit_id
          JOIN unit u2 ON u2.id <> u1.id AND u2.building_cluster_id {op} u1.building_cluster_id
          JOIN building_cluster c1 ON c1.id = u1.building_cluster_id
          JOIN building_cluster c2 ON c2.id = u2.building_cluster_id
           AND c2.residents_group_id = c1.residents_group_id
         WHERE ST_Length(ST_Intersection(bc.geom, u2.geom)::geography) > 5
           AND (SELECT count(*) FROM building x WHERE x.unit_id = u1.id) > 1
         ORDER BY b.id LIMIT 1""")
    ).first()


def test_moving_a_building_rederives_counts_polygons_and_codes(delineated) -> None:
    with delineated.begin() as conn:
        row = _neighbouring_units(conn, same_cluster=True)
        assert row, "Nanjing has a multi-building unit touching another unit of its cluster"
        building, old, new = row
        hh = conn.scalar(sa.text("SELECT households FROM building WHERE id = :b"), {"b": building})
        before = dict(
            conn.execute(
                sa.text("SELECT id, households FROM unit WHERE id IN (:a, :b)"),
                {"a": old, "b": new},
            ).all()
        )
        edits.move(conn, "building", building, new)
    with delineated.connect() as conn:
        after = dict(
            conn.execute(
                sa.text("SELECT id, households FROM unit WHERE id IN (:a, :b)"),
                {"a": old, "b": new},
            ).all()
        )
        cell_in_new = conn.scalar(
            sa.text(
                "SELECT ST_Area(ST_Intersection(u.geom, c.geom)::geography) / "
                "ST_Area(c.geom::geography) FROM unit u, building_cell c "
                "WHERE u.id = :u AND c.building_id = :b"
            ),
            {"u": new, "b": building},
        )
        parts = conn.scalar(
            sa.text("SELECT max(ST_NumGeometries(geom)) FROM unit WHERE id IN (:a, :b)"),
            {"a": old, "b": new},
        )
        dup = conn.scalar(
            sa.text("SELECT count(*) - count(DISTINCT (building_cluster_id, code)) FROM unit")
        )
    assert after[old] == before[old] - hh and after[new] == before[new] + hh
    assert cell_in_new > 0.999  # the building's land went with it
    assert parts == 1 and dup == 0


def test_a_move_that_splits_an_area_is_refused_and_changes_nothing(delineated) -> None:
    with delineated.connect() as conn:
        before = conn.execute(SNAPSHOT).all()
        # a building and a unit of another group far away: never touching
        building, far_unit = conn.execute(
            sa.text("""
            SELECT b.id, u.id FROM building b JOIN unit u ON NOT ST_DWithin(
                   b.geom::geography, u.geom::geography, 300)
              JOIN building_cluster c ON c.id = u.building_cluster_id
              JOIN residents_group g ON g.id = c.residents_group_id
             WHERE g.community_id = b.community_id
               AND (SELECT count(*) FROM building x WHERE x.unit_id = b.unit_id) > 1
             ORDER BY b.id, u.id LIMIT 1""")
        ).one()
    with pytest.raises(Conflict, match="separate pieces"), delineated.begin() as conn:
        edits.move(conn, "building", building, far_unit)
    with delineated.connect() as conn:
        assert conn.execute(SNAPSHOT).all() == before


def test_emptying_a_unit_is_refused(delineated) -> None:
    with delineated.connect() as conn:
        building, unit, other = conn.execute(
            sa.text("""
            SELECT b.id, b.unit_id, u2.id FROM building b JOIN unit u1 ON u1.id = b.unit_id
              JOIN unit u2 ON u2.building_cluster_id = u1.building_cluster_id AND u2.id <> u1.id
             WHERE (SELECT count(*) FROM building x WHERE x.unit_id = u1.id) = 1
             ORDER BY b.id LIMIT 1""")
        ).one()
    with pytest.raises(Conflict, match="would be left empty"), delineated.begin() as conn:
        edits.move(conn, "building", building, other)


def test_moves_across_communities_are_refused(delineated) -> None:
    with delineated.connect() as conn:
        unit, cluster = conn.execute(
            sa.text("""
            SELECT u.id, c2.id FROM unit u
              JOIN building_cluster c1 ON c1.id = u.building_cluster_id
              JOIN residents_group g1 ON g1.id = c1.residents_group_id
              JOIN residents_group g2 ON g2.community_id <> g1.community_id
              JOIN building_cluster c2 ON c2.residents_group_id = g2.id
             ORDER BY u.id, c2.id LIMIT 1""")
        ).one()
    with pytest.raises(Conflict, match="another community"), delineated.begin() as conn:
        edits.move(conn, "unit", unit, cluster)


def test_locked_group_survives_a_rerun_with_other_targets(delineated) -> None:
    with delineated.begin() as conn:
        group, code, community = conn.execute(
            sa.text(
                "SELECT id, code, community_id FROM residents_group g "
                "WHERE households BETWEEN 80 AND 120 AND NOT EXISTS (SELECT 1 FROM "
                "building_part p JOIN unit u ON u.id = p.unit_id JOIN building_cluster c "
                "ON c.id = u.building_cluster_id WHERE c.residents_group_id = g.id) "
                "ORDER BY id LIMIT 1"
            )
        ).one()
        members = set(
            conn.execute(
                sa.text(
                    "SELECT b.id FROM building b JOIN unit u ON u.id = b.unit_id JOIN "
                    "building_cluster c ON c.id = u.building_cluster_id "
                    "WHERE c.residents_group_id = :g"
                ),
                {"g": group},
            ).scalars()
        )
        edits.set_locked(conn, group, True)
    from gis.delineate.hierarchy import Params

    report = run(delineated, Params(group_households=60))
    assert report.locked_groups == 1
    assert report.households_changed_group > 0  # a new target moves the unlocked ones
    with delineated.connect() as conn:
        kept = conn.execute(
            sa.text("SELECT code, community_id, is_locked FROM residents_group WHERE id = :g"),
            {"g": group},
        ).one()
        still = set(
            conn.execute(
                sa.text(
                    "SELECT b.id FROM building b JOIN unit u ON u.id = b.unit_id JOIN "
                    "building_cluster c ON c.id = u.building_cluster_id "
                    "WHERE c.residents_group_id = :g"
                ),
                {"g": group},
            ).scalars()
        )
        others_in_it = conn.scalar(
            sa.text(
                "SELECT count(*) FROM residents_group g WHERE g.community_id = :c "
                "AND g.id <> :g AND g.code = :code"
            ),
            {"c": community, "g": group, "code": code},
        )
        overlap = conn.scalar(
            sa.text(
                "SELECT coalesce(sum(ST_Area(ST_Intersection(a.geom, b.geom)::geography)), 0) "
                "FROM residents_group a JOIN residents_group b ON a.id = :g AND b.id <> a.id "
                "AND ST_Intersects(a.geom, b.geom)"
            ),
            {"g": group},
        )
        no_unit = conn.scalar(sa.text("SELECT count(*) FROM building WHERE unit_id IS NULL"))
        no_grid = conn.scalar(sa.text("SELECT count(*) FROM residents_group WHERE grid_id IS NULL"))
    assert tuple(kept) == (code, community, True)
    assert still == members
    assert others_in_it == 0
    assert overlap < 1.0
    assert no_unit == 0 and no_grid == 0


def _move_inside_a_group(conn, households: str) -> list[str]:
    """Move a building to a touching unit of its cluster, in a group whose households match;
    return the warnings of the first such move accepted (refused ones roll back)."""
    candidates = conn.execute(
        sa.text(f"""
        SELECT b.id, u2.id FROM building b
          JOIN building_cell bc ON bc.building_id = b.id
          JOIN unit u1 ON u1.id = b.unit_id
          JOIN unit u2 ON u2.id <> u1.id AND u2.building_cluster_id = u1.building_cluster_id
          JOIN building_cluster c ON c.id = u1.building_cluster_id
          JOIN residents_group g ON g.id = c.residents_group_id
         WHERE ST_Length(ST_Intersection(bc.geom, u2.geom)::geography) > 5
           AND (SELECT count(*) FROM building x WHERE x.unit_id = u1.id) > 1
           AND g.households {households}
         ORDER BY b.id LIMIT 30""")
    ).all()
    for building, unit in candidates:
        savepoint = conn.begin_nested()
        try:
            warnings = edits.move(conn, "building", building, unit)["warnings"]
        except Conflict:
            savepoint.rollback()
            continue
        savepoint.commit()
        return warnings
    raise AssertionError(f"no accepted move inside a group of {households} households")


def test_warnings_use_the_band_of_the_run_that_drew_the_groups(engine) -> None:
    """After a run at 50 households, in band is 40–60 (the partition's ±20 %), not 80–120."""
    from gis.delineate.hierarchy import Params
    from gis.delineate.runs import group_band

    import_file(engine, NANJING)
    run(engine, Params(group_households=50))
    with engine.begin() as conn:
        community = conn.scalar(sa.text("SELECT min(community_id) FROM residents_group"))
        assert group_band(conn, community) == (40.0, 60.0)
        # households stay in the group: a group in 40–60 draws no warning (80–120 would)
        assert _move_inside_a_group(conn, "BETWEEN 40 AND 60") == []
        warnings = _move_inside_a_group(conn, "NOT BETWEEN 40 AND 60")
    assert len(warnings) == 1 and "(outside 40–60)" in warnings[0]


def test_the_band_follows_the_latest_run_of_each_community(engine) -> None:
    from gis.delineate.hierarchy import Params
    from gis.delineate.runs import group_band
    from gis.delineate.service import map_frames

    import_file(engine, NANJING)
    with engine.connect() as conn:
        assert group_band(conn, 1) == (80.0, 120.0)  # no run yet: the default target
    run(engine, Params(group_households=50))
    with engine.connect() as conn:
        first, *others = conn.execute(sa.text("SELECT id, code FROM community ORDER BY code")).all()
    assert others, "Nanjing proposes several communities"
    run(engine, Params(group_households=120), community=first.code)
    with engine.connect() as conn:
        assert group_band(conn, first.id) == (96.0, 144.0)
        assert all(group_band(conn, c.id) == (40.0, 60.0) for c in others)
        groups, _ = map_frames(conn, None, 100_000)
        one, _ = map_frames(conn, others[0].code, 100_000)
    mine = groups["community"] == first.code
    assert set(groups.loc[mine, "band_min"]) == {96.0}
    assert set(groups.loc[~mine, "band_max"]) == {60.0}
    assert groups.attrs["band"] is None and one.attrs["band"] == (40.0, 60.0)
    small = one[(one["households"] < 40) & (one["flags"] == "")]
    assert (small["band_class"] == "small").all()
    in_band = one[one["households"].between(40, 60) & (one["flags"] == "")]
    assert len(in_band) and (in_band["band_class"] == "in_band").all()
