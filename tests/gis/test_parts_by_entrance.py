"""Towers divided by entrance (单元门) where the doors are known (issue 14), on real Nanjing.

Two ways a building's doors become known: a house register with an ``entrance`` (单元)
column, and OSM ``entrance=staircase`` nodes on its outline (numbered along its long side,
the estimated dwellings shared among them). Parts are then whole entrances, or floors
behind one entrance, when that fits as closely as floor ranges do; every invariant of the
floor-divided parts still holds. Checks read the tables with their own SQL.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gis.delineate.part_store import cut_dwellings
from gis.delineate.service import run
from gis.errors import InvalidInput
from gis.io.load import NUMBER_DOORS
from gis.io.pipeline import import_file
from tests.gis.test_delineate_parts import (  # noqa: F401 - fixtures
    _memberships,
    base,
    base_url,
    check_every_dwelling_in_exactly_one_group,
    check_households_add_up_at_every_level,
    check_parts_add_up_and_are_floor_ranges,
    check_tiling,
    copy,
)

ROOMS_PER_FLOOR = 4


def _dwellings(entrances: dict[str, int]) -> list[tuple]:
    """(floor, room, households, entrance) rows in floor order: ``n`` rooms per entrance,
    four to a floor, as a register lists them."""
    rows = []
    for label, n in entrances.items():
        for i in range(n):
            floor = i // ROOMS_PER_FLOOR + 1
            rows.append((floor, f"{label}-{floor}{i % ROOMS_PER_FLOOR + 1:02d}", 1, label))
    return sorted(rows, key=lambda r: (r[0], len(r[1]), r[1]))


def test_whole_entrances_when_they_fit_floors_when_they_do_not() -> None:
    three = _dwellings({"1": 36, "2": 36, "3": 36})
    by_door = cut_dwellings(three, [72.0, 36.0], 100.0)
    assert [(p.entrance, p.households) for p in by_door] == [("1,2", 72), ("3", 36)]
    assert all((p.floor_min, p.floor_max) == (1, 9) for p in by_door)
    # 54 + 54 is two entrances and a half: whole ones would be 18 households off each
    by_floor = cut_dwellings(three, [54.0, 54.0], 100.0)
    assert [(p.entrance, p.households) for p in by_floor] == [(None, 54), (None, 54)]
    assert by_floor[0].floor_max <= by_floor[1].floor_min
    # an entrance larger than a group: its floors are split, never mixed with the next door
    two = _dwellings({"1": 132, "2": 132})
    parts = cut_dwellings(two, [132.0, 66.0, 66.0], 100.0)
    assert [p.entrance for p in parts] == ["1", "2", "2"]
    assert [(p.floor_min, p.floor_max) for p in parts] == [(1, 33), (1, 17), (17, 33)]
    # every dwelling once, in whichever part
    assert sorted(r for p in parts for r in p.rooms) == sorted(d[1] for d in two)


def _tower(conn) -> sa.Row:
    return conn.execute(
        sa.text(
            "SELECT b.id, b.source_id, b.source_file, b.households, "
            "ST_AsBinary(b.geom) AS wkb FROM building b "
            "WHERE b.id IN (SELECT building_id FROM building_part) "
            "ORDER BY b.households DESC, b.id LIMIT 1"
        )
    ).one()


def test_a_register_naming_entrances_redivides_that_tower_by_entrance(
    copy: Engine,  # noqa: F811
    tmp_path: Path,
) -> None:
    with copy.connect() as conn:
        tower = _tower(conn)
        shares = [
            int(h)
            for h in conn.execute(
                sa.text(
                    "SELECT households FROM building_part WHERE building_id = :b ORDER BY part_no"
                ),
                {"b": tower.id},
            ).scalars()
        ]
        before = _memberships(conn)
    # one entrance per part, each as large as its part: whole entrances fit exactly
    path = tmp_path / "register.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["楼栋", "单元", "室号", "楼层"])
        for no, share in enumerate(shares, start=1):
            for floor, room, _h, _label in _dwellings({str(no): share}):
                w.writerow([tower.source_id, f"{no}单元", room, floor])
    import_file(copy, path)
    with copy.connect() as conn:
        parts = conn.execute(
            sa.text(
                "SELECT part_no, entrance, households, floor_min, floor_max FROM building_part "
                "WHERE building_id = :b ORDER BY part_no"
            ),
            {"b": tower.id},
        ).all()
        after = _memberships(conn)
        check_every_dwelling_in_exactly_one_group(conn)
        check_parts_add_up_and_are_floor_ranges(conn)
        check_households_add_up_at_every_level(conn)
    assert [p.entrance for p in parts] == [f"{no}单元" for no in range(1, len(shares) + 1)]
    assert [p.households for p in parts] == shares
    assert all(p.floor_min == 1 for p in parts)
    # no other building's parts or groups changed
    assert {k: v for k, v in after.items() if k[0] != tower.id} == {
        k: v for k, v in before.items() if k[0] != tower.id
    }


def test_an_entrance_too_long_or_with_a_comma_is_refused(
    copy: Engine,  # noqa: F811
    tmp_path: Path,
) -> None:
    with copy.connect() as conn:
        tower = _tower(conn)
    path = tmp_path / "bad.csv"
    path.write_text(
        f'楼栋,单元,室号\n{tower.source_id},1,101\n{tower.source_id},"1,2",102\n'
        f"{tower.source_id},{'门' * 30},103\n",
        encoding="utf-8",
    )
    with pytest.raises(InvalidInput) as err:
        import_file(copy, path)
    assert "row 3: entrance '1,2' has a comma" in str(err.value)
    assert "row 4: entrance" in str(err.value) and "20 characters" in str(err.value)
    with copy.connect() as conn:  # nothing written
        assert conn.scalar(sa.text("SELECT count(*) FROM dwelling")) == 0


def _doors_on(outline: shapely.Geometry, n: int) -> list[shapely.Point]:
    """``n`` points on the outline, spread along its exterior ring."""
    ring = shapely.get_exterior_ring(shapely.get_geometry(outline, 0))
    return [ring.interpolate((i + 0.5) / n, normalized=True) for i in range(n)]


def test_osm_doors_share_the_estimate_and_divide_the_tower(copy: Engine) -> None:  # noqa: F811
    doors = 4
    with copy.begin() as conn:
        tower = _tower(conn)
        outline = shapely.from_wkb(bytes(tower.wkb))
        points = _doors_on(outline, doors)
        for i, p in enumerate(points):
            conn.execute(
                sa.text(
                    "INSERT INTO building_entrance (building_id, source_id, kind, rank, geom) "
                    "VALUES (:b, :s, 'staircase', 2, ST_SetSRID(ST_GeomFromText(:g), 4326))"
                ),
                {"b": tower.id, "s": f"n-test-{i}", "g": p.wkt},
            )
        # a service door is never a door to homes
        conn.execute(
            sa.text(
                "INSERT INTO building_entrance (building_id, source_id, kind, rank, geom) "
                "VALUES (:b, 'n-test-service', 'service', 4, "
                "ST_SetSRID(ST_GeomFromText(:g), 4326))"
            ),
            {"b": tower.id, "g": points[0].wkt},
        )
        conn.execute(NUMBER_DOORS, {"sf": tower.source_file})
        numbered = conn.execute(
            sa.text(
                "SELECT source_id, door_no, ST_X(geom), ST_Y(geom) FROM building_entrance "
                "WHERE building_id = :b ORDER BY door_no NULLS LAST"
            ),
            {"b": tower.id},
        ).all()
        per_door = dict(
            conn.execute(
                sa.text(
                    "SELECT entrance, count(*) FROM dwelling_estimate WHERE building_id = :b "
                    "GROUP BY entrance"
                ),
                {"b": tower.id},
            ).all()
        )
    assert [r.door_no for r in numbered] == [1, 2, 3, 4, None]
    assert numbered[-1].source_id == "n-test-service"
    # numbered along the long side: their projections on it increase
    env = shapely.oriented_envelope(outline)
    c = np.asarray(env.exterior.coords)[:3]
    side = c[1] - c[0] if np.hypot(*(c[1] - c[0])) >= np.hypot(*(c[2] - c[1])) else c[2] - c[1]
    proj = [float(np.dot([r[2], r[3]], side)) for r in numbered[:doors]]
    assert proj == sorted(proj) or proj == sorted(proj, reverse=True)
    # the estimate shares the tower's households among its doors (floor by floor)
    assert set(per_door) == {str(d) for d in range(1, doors + 1)}
    assert sum(per_door.values()) == tower.households
    assert max(per_door.values()) - min(per_door.values()) <= tower.households / doors * 0.5
    run(copy)
    with copy.connect() as conn:
        parts = conn.execute(
            sa.text(
                "SELECT entrance, households FROM building_part WHERE building_id = :b "
                "ORDER BY part_no"
            ),
            {"b": tower.id},
        ).all()
        check_every_dwelling_in_exactly_one_group(conn)
        check_parts_add_up_and_are_floor_ranges(conn)
        check_households_add_up_at_every_level(conn)
        check_tiling(conn)
    assert len(parts) >= 2
    # four doors of about 500 households each: each part is floors behind one door
    assert all(p.entrance in {"1", "2", "3", "4"} for p in parts)
    assert [p.entrance for p in parts] == sorted(p.entrance for p in parts)
    assert sum(p.households for p in parts) == tower.households
