"""Towers divided by floors (issue 14), on the real Nanjing extract, checked in PostGIS.

One module database holds Nanjing and one delineation run; tests that change it (a house
register, a lock and a re-run) work on a copy of it. Every check reads the tables with its
own SQL, never through the delineation's code.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

from gis.db import create_engine
from gis.delineate.edits import move, set_locked
from gis.delineate.service import run
from gis.errors import Conflict
from gis.io.pipeline import import_file
from tests.conftest import NANJING, _admin_execute, _clone

# every dwelling with the group it is in: through its part when its building is divided,
# else through its building's unit
PLACED = """
    WITH part_room AS (
        SELECT p.building_id, r.room, p.unit_id FROM building_part p
         CROSS JOIN LATERAL unnest(p.rooms) AS r(room)),
    placed AS (
        SELECT d.building_id, d.room, d.households, c.residents_group_id AS group_id
          FROM dwelling_all d JOIN part_room pr
            ON pr.building_id = d.building_id AND pr.room = d.room
          JOIN unit u ON u.id = pr.unit_id JOIN building_cluster c ON c.id = u.building_cluster_id
        UNION ALL
        SELECT d.building_id, d.room, d.households, c.residents_group_id
          FROM dwelling_all d JOIN building b ON b.id = d.building_id
          JOIN unit u ON u.id = b.unit_id JOIN building_cluster c ON c.id = u.building_cluster_id
         WHERE NOT EXISTS (SELECT 1 FROM building_part p WHERE p.building_id = b.id))
"""


@pytest.fixture(scope="module")
def base_url(server_url: str, template_url: str) -> Iterator[str]:
    url = _clone(server_url, template_url, "parts")
    engine = create_engine(url, poolclass=sa.NullPool)
    import_file(engine, NANJING)
    run(engine)
    engine.dispose()
    try:
        yield url
    finally:
        _admin_execute(
            server_url, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'
        )


@pytest.fixture(scope="module")
def base(base_url: str) -> Iterator[Engine]:
    engine = create_engine(base_url, poolclass=sa.NullPool)  # no idle link: copies need none
    yield engine
    engine.dispose()


@pytest.fixture
def copy(server_url: str, base_url: str, base: Engine) -> Iterator[Engine]:
    """A copy of the delineated database for a test that changes it."""
    url = _clone(server_url, base_url, "partscopy")
    engine = create_engine(url, poolclass=sa.NullPool)
    yield engine
    engine.dispose()
    _admin_execute(server_url, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


def _latest_quality(conn: Connection) -> dict:
    return conn.scalar(sa.text("SELECT quality FROM delineation_run ORDER BY id DESC LIMIT 1"))


def check_every_dwelling_in_exactly_one_group(conn: Connection) -> None:
    row = conn.execute(
        sa.text(
            PLACED
            + """
            SELECT (SELECT count(*) FROM dwelling_all) AS dwellings,
                   (SELECT count(*) FROM placed) AS placed,
                   (SELECT count(*) FROM (SELECT DISTINCT building_id, room FROM placed) x)
                       AS distinct_placed,
                   (SELECT sum(households) FROM placed) AS households,
                   (SELECT sum(households) FROM building) AS building_households
            """
        )
    ).one()
    assert row.dwellings > 50_000
    assert row.placed == row.distinct_placed == row.dwellings  # none twice, none missing
    assert row.households == row.building_households


def check_parts_add_up_and_are_floor_ranges(conn: Connection) -> int:
    """Return how many buildings are divided."""
    bad_totals = conn.scalar(
        sa.text(
            "SELECT count(*) FROM (SELECT p.building_id FROM building_part p "
            "JOIN building b ON b.id = p.building_id GROUP BY p.building_id, b.households "
            "HAVING sum(p.households) <> b.households OR count(*) < 2) x"
        )
    )
    assert bad_totals == 0
    # each part's households are its dwellings'; its floors are the range they span
    bad_parts = conn.scalar(
        sa.text(
            """
            SELECT count(*) FROM building_part p CROSS JOIN LATERAL (
              SELECT sum(d.households) AS h, min(d.floor) AS lo, max(d.floor) AS hi,
                     count(*) AS n
                FROM dwelling_all d WHERE d.building_id = p.building_id
                 AND d.room = ANY(p.rooms)) s
             WHERE s.h <> p.households OR s.lo <> p.floor_min OR s.hi <> p.floor_max
                OR s.n <> cardinality(p.rooms)
            """
        )
    )
    assert bad_parts == 0
    # contiguous: no dwelling of another part strictly inside a part's floors, and the parts
    # follow each other up the building (part k+1 starts where part k ends, or above)
    # (a part by entrance: the same within the one entrance it holds floors of)
    holes = conn.scalar(
        sa.text(
            """
            SELECT count(*) FROM building_part p JOIN dwelling_all d
              ON d.building_id = p.building_id AND d.floor > p.floor_min
             AND d.floor < p.floor_max AND NOT d.room = ANY(p.rooms)
             WHERE p.entrance IS NULL
                OR (p.entrance NOT LIKE '%,%' AND d.entrance = p.entrance)
            """
        )
    )
    order = conn.scalar(
        sa.text(
            "SELECT count(*) FROM building_part a JOIN building_part b ON "
            "b.building_id = a.building_id AND b.part_no = a.part_no + 1 "
            "WHERE b.floor_min < a.floor_max AND a.entrance IS NULL AND b.entrance IS NULL"
        )
    )
    assert holes == 0 and order == 0
    # by entrance: the dwellings it names are behind the entrances it names, and a part of
    # several entrances holds every dwelling behind them (whole entrances)
    wrong_door = conn.scalar(
        sa.text(
            """
            SELECT count(*) FROM building_part p JOIN dwelling_all d
              ON d.building_id = p.building_id
             WHERE p.entrance IS NOT NULL
               AND (d.room = ANY(p.rooms)) <> (d.entrance = ANY(string_to_array(p.entrance, ',')))
               AND (p.entrance LIKE '%,%' OR d.room = ANY(p.rooms))
            """
        )
    )
    assert wrong_door == 0
    return int(conn.scalar(sa.text("SELECT count(DISTINCT building_id) FROM building_part")))


def check_households_add_up_at_every_level(conn: Connection) -> None:
    row = conn.execute(
        sa.text(
            """
            SELECT
              (SELECT count(*) FROM unit u WHERE u.households <>
                 coalesce((SELECT sum(b.households) FROM building b WHERE b.unit_id = u.id
                    AND NOT EXISTS (SELECT 1 FROM building_part p WHERE p.building_id = b.id)),
                    0)
                 + coalesce((SELECT sum(p.households) FROM building_part p
                              WHERE p.unit_id = u.id), 0)) AS units,
              (SELECT count(*) FROM building_cluster c WHERE c.households <>
                 (SELECT sum(households) FROM unit u WHERE u.building_cluster_id = c.id))
                 AS clusters,
              (SELECT count(*) FROM residents_group g WHERE g.households <>
                 (SELECT sum(households) FROM building_cluster c
                   WHERE c.residents_group_id = g.id)) AS groups,
              (SELECT count(*) FROM grid t WHERE t.households <>
                 (SELECT sum(households) FROM residents_group g WHERE g.grid_id = t.id))
                 AS grids,
              (SELECT sum(households) FROM community)
                 - (SELECT sum(households) FROM building) AS communities,
              (SELECT count(*) FROM unit u WHERE NOT EXISTS
                 (SELECT 1 FROM building b WHERE b.unit_id = u.id) AND NOT EXISTS
                 (SELECT 1 FROM building_part p WHERE p.unit_id = u.id)) AS empty_units
            """
        )
    ).one()
    assert tuple(row) == (0, 0, 0, 0, 0, 0), row


def check_tiling(conn: Connection) -> None:
    """Groups tile their community in plan; a divided cell lies in every group of its parts.

    Overlaps are measured with the divided buildings' cells taken out (they belong to each
    of their parts' groups); metres in UTM 50N, stored in WGS 84: < 1 m² of rounding.
    """
    rows = conn.execute(
        sa.text(
            """
            WITH divided AS (
              SELECT ST_Union(ST_Transform(c.geom, 32650)) AS geom FROM building_cell c
               WHERE c.building_id IN (SELECT building_id FROM building_part)),
            lvl AS (
              SELECT g.community_id AS cid, ST_Transform(g.geom, 32650) AS geom
                FROM residents_group g),
            plan AS (
              SELECT cid, coalesce(ST_Difference(l.geom, (SELECT geom FROM divided)), l.geom)
                     AS geom FROM lvl l)
            SELECT c.code, ST_Area(ST_Transform(c.geom, 32650)) AS community,
                   (SELECT ST_Area(ST_Union(geom)) FROM lvl WHERE cid = c.id) AS union_groups,
                   (SELECT sum(ST_Area(geom)) FROM plan WHERE cid = c.id) AS sum_plan,
                   (SELECT ST_Area(ST_Union(geom)) FROM plan WHERE cid = c.id) AS union_plan
              FROM community c
            """
        )
    ).all()
    for r in rows:
        assert abs(r.community - r.union_groups) < 1.0, r  # no gaps
        assert r.sum_plan - r.union_plan < 1.0, r  # no overlaps of undivided cells
    uncovered = conn.scalar(
        sa.text(
            """
            SELECT count(*) FROM building_part p JOIN unit u ON u.id = p.unit_id
              JOIN building_cluster c ON c.id = u.building_cluster_id
              JOIN residents_group g ON g.id = c.residents_group_id
              JOIN building_cell bc ON bc.building_id = p.building_id
             WHERE ST_Area(ST_Transform(ST_Difference(bc.geom, g.geom), 32650)) > 0.5
            """
        )
    )
    assert uncovered == 0
    multi = conn.scalar(
        sa.text(
            "SELECT count(*) FROM residents_group WHERE ST_NumGeometries(ST_MakeValid(geom)) > 1"
        )
    )
    assert multi == 0


def check_band(conn: Connection) -> tuple[float, float]:
    """Share in 80–120 and CV, recomputed from the stored groups; return them."""
    rows = conn.execute(
        sa.text(
            "SELECT households, 'small_block' = ANY(flags) FROM residents_group "
            "WHERE households > 0"
        )
    ).all()
    hh = np.array([r[0] for r in rows], dtype=float)
    small = np.array([r[1] for r in rows], dtype=bool)
    in_band = float(((hh >= 80) & (hh <= 120)).mean())
    cv = float(hh[~small].std() / hh[~small].mean())
    # only groups holding every home of a small major-road block may fall below the band
    assert ((hh < 80) & ~small).sum() <= 0.01 * len(hh)
    return in_band, cv


def test_every_dwelling_is_in_exactly_one_group(base: Engine) -> None:
    with base.connect() as conn:
        check_every_dwelling_in_exactly_one_group(conn)


def test_parts_of_a_building_add_up_and_are_floor_ranges(base: Engine) -> None:
    with base.connect() as conn:
        divided = check_parts_add_up_and_are_floor_ranges(conn)
        towers = conn.scalar(sa.text("SELECT count(*) FROM building WHERE households > 120"))
        walkups = conn.scalar(
            sa.text(
                "SELECT count(DISTINCT p.building_id) FROM building_part p "
                "JOIN building b ON b.id = p.building_id WHERE b.households <= 36"
            )
        )
        # a building's parts go to as few groups as can hold them, one part per group
        spread = conn.execute(
            sa.text(
                """
                SELECT b.households, count(*) AS parts,
                       count(DISTINCT c.residents_group_id) AS groups
                  FROM building_part p JOIN building b ON b.id = p.building_id
                  JOIN unit u ON u.id = p.unit_id
                  JOIN building_cluster c ON c.id = u.building_cluster_id
                 GROUP BY b.id, b.households
                """
            )
        ).all()
    assert divided >= towers > 50  # every tower, and the buildings balance needed
    assert walkups == 0
    for households, parts, groups in spread:
        assert parts == groups
        assert groups <= np.ceil(households / 80) + 1


def test_households_add_up_at_every_level(base: Engine) -> None:
    with base.connect() as conn:
        check_households_add_up_at_every_level(conn)


def test_groups_tile_in_plan_and_hold_their_divided_cells(base: Engine) -> None:
    with base.connect() as conn:
        check_tiling(conn)


def test_band_and_cv_recomputed_match_the_report_and_the_goals(base: Engine) -> None:
    with base.connect() as conn:
        in_band, cv = check_band(conn)
        quality = _latest_quality(conn)
        over = conn.scalar(sa.text("SELECT count(*) FROM residents_group WHERE households > 120"))
    assert quality["share_in_band"] == pytest.approx(in_band)
    assert quality["cv_without_small_blocks"] == pytest.approx(cv)
    assert quality["oversize_groups"] == 0
    assert in_band >= 0.95 and cv <= 0.08
    assert over <= 0.01 * quality["groups"]  # towers no longer make groups of 2,000


def _memberships(conn: Connection) -> dict[tuple, tuple]:
    """(building, part) -> (community, group code, group id): what each group holds."""
    rows = conn.execute(
        sa.text(
            """
            SELECT b.id, coalesce(p.part_no, 0), cm.code, g.code, g.id
              FROM building b LEFT JOIN building_part p ON p.building_id = b.id
              JOIN unit u ON u.id = coalesce(p.unit_id, b.unit_id)
              JOIN building_cluster c ON c.id = u.building_cluster_id
              JOIN residents_group g ON g.id = c.residents_group_id
              JOIN community cm ON cm.id = g.community_id
            """
        )
    ).all()
    return {(r[0], r[1]): (r[2], r[3], r[4]) for r in rows}


def _write_register(path: Path, source_id: str, floors: int, per_floor: int) -> int:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["楼栋", "室号", "楼层"])
        for floor in range(1, floors + 1):
            for room in range(1, per_floor + 1):
                w.writerow([source_id, f"{floor}{room:02d}", floor])
    return floors * per_floor


def test_a_house_register_redivides_only_that_buildings_groups(
    copy: Engine, tmp_path: Path
) -> None:
    with copy.connect() as conn:
        tower = conn.execute(
            sa.text(
                "SELECT b.id, b.source_id, b.households FROM building b WHERE b.id IN "
                "(SELECT building_id FROM building_part) ORDER BY b.households DESC LIMIT 1"
            )
        ).one()
        before = _memberships(conn)
        groups_before = dict(
            conn.execute(sa.text("SELECT id, households FROM residents_group")).all()
        )
    # the register: 28 floors of 8 rooms, not the estimate's layout nor its total
    total = _write_register(tmp_path / "register.csv", tower.source_id, 28, 8)
    assert total != tower.households
    import_file(copy, tmp_path / "register.csv")
    with copy.connect() as conn:
        after = _memberships(conn)
        groups_after = dict(
            conn.execute(sa.text("SELECT id, households FROM residents_group")).all()
        )
        rooms = conn.scalar(
            sa.text(
                "SELECT count(*) FROM building_part p CROSS JOIN LATERAL unnest(p.rooms) r "
                "WHERE p.building_id = :b"
            ),
            {"b": tower.id},
        )
        check_every_dwelling_in_exactly_one_group(conn)
        check_parts_add_up_and_are_floor_ranges(conn)
        check_households_add_up_at_every_level(conn)
    assert rooms == total  # the register's dwellings, not the estimated ones
    others = {k: v for k, v in before.items() if k[0] != tower.id}
    assert {k: v for k, v in after.items() if k[0] != tower.id} == others
    tower_groups = {v[2] for k, v in after.items() if k[0] == tower.id}
    assert tower_groups == {v[2] for k, v in before.items() if k[0] == tower.id}
    changed = {g for g in groups_after if groups_after[g] != groups_before[g]}
    assert changed and changed <= tower_groups
    assert sum(groups_after.values()) - sum(groups_before.values()) == total - tower.households


def test_a_locked_group_holding_part_of_a_tower_survives_a_rerun(copy: Engine) -> None:
    with copy.begin() as conn:
        locked = conn.execute(
            sa.text(
                """
                SELECT g.id, g.code, g.households, p.building_id FROM building_part p
                  JOIN unit u ON u.id = p.unit_id
                  JOIN building_cluster c ON c.id = u.building_cluster_id
                  JOIN residents_group g ON g.id = c.residents_group_id
                 ORDER BY g.id LIMIT 1
                """
            )
        ).one()
        set_locked(conn, locked.id, True)
        members = {k for k, v in _memberships(conn).items() if v[2] == locked.id}
        tower_groups = {v[2] for k, v in _memberships(conn).items() if k[0] == locked.building_id}
    report = run(copy)
    assert report.locked_groups >= len(tower_groups)
    with copy.connect() as conn:
        row = conn.execute(
            sa.text("SELECT code, households, is_locked FROM residents_group WHERE id = :id"),
            {"id": locked.id},
        ).one()
        after = _memberships(conn)
        check_every_dwelling_in_exactly_one_group(conn)
        check_parts_add_up_and_are_floor_ranges(conn)
        check_households_add_up_at_every_level(conn)
    assert (row.code, row.households, row.is_locked) == (locked.code, locked.households, True)
    assert {k for k, v in after.items() if v[2] == locked.id} == members
    # the tower's other groups were kept with it: its parts are where they were
    assert {v[2] for k, v in after.items() if k[0] == locked.building_id} == tower_groups


def test_a_divided_building_cannot_be_moved_whole(base: Engine) -> None:
    with base.begin() as conn:
        b, unit = conn.execute(
            sa.text(
                "SELECT b.id, b.unit_id FROM building b WHERE b.id IN "
                "(SELECT building_id FROM building_part) ORDER BY b.id LIMIT 1"
            )
        ).one()
        other = conn.scalar(
            sa.text("SELECT id FROM unit WHERE id <> :u ORDER BY id LIMIT 1"), {"u": unit}
        )
        with pytest.raises(Conflict, match="divided by floors"):
            move(conn, "building", b, other)
        conn.rollback()


def test_rerun_keeps_parts_and_codes(copy: Engine) -> None:
    with copy.connect() as conn:
        before = _memberships(conn)
        parts = conn.execute(
            sa.text("SELECT building_id, part_no, households, rooms FROM building_part")
        ).all()
    again = run(copy)
    assert again.households_changed_group == 0
    with copy.connect() as conn:
        after = _memberships(conn)
        parts_after = conn.execute(
            sa.text("SELECT building_id, part_no, households, rooms FROM building_part")
        ).all()
    strip = {k: v[:2] for k, v in before.items()}
    assert {k: v[:2] for k, v in after.items()} == strip
    assert sorted(parts_after) == sorted(parts)


def test_parts_end_on_whole_dwellings_of_a_register() -> None:
    """A register's dwellings of several households: parts move to dwelling ends."""
    from gis.delineate.part_store import cut_dwellings

    # floors 1–4, households per dwelling 1, 1, 2 | 1, 3 | 1, 1 | 2, 1, 1
    dwellings = [
        (1, "101", 1), (1, "102", 1), (1, "103", 2),
        (2, "201", 1), (2, "202", 3),
        (3, "301", 1), (3, "302", 1),
        (4, "401", 2), (4, "402", 1), (4, "403", 1),
    ]  # fmt: skip
    parts = cut_dwellings(dwellings, [6.0, 4.0, 4.0])
    rooms = [r for p in parts for r in p.rooms]
    assert rooms == [d[1] for d in dwellings]  # each dwelling once, in floor order
    assert sum(p.households for p in parts) == 14
    # 6 ends inside the 3-household flat 202: the first part takes it whole
    assert [p.households for p in parts] == [8, 2, 4]
    assert [(p.floor_min, p.floor_max) for p in parts] == [(1, 2), (3, 3), (4, 4)]
    assert [p.households for p in cut_dwellings(dwellings, [5.0, 5.0, 4.0])] == [5, 5, 4]
    with pytest.raises(Conflict, match="cannot hold"):
        cut_dwellings(dwellings[:2], [1.0, 1.0, 1.0])
