"""Scopes at every level: a user sees exactly the residents of the buildings under their area.

The prepared database (tests/api/conftest.py) scopes users to a community, a grid or a
building only; here every level gets users of each role that sees people, and the expected
residents are worked out independently, as the owner, through ``building_path``.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from gis import db
from gis.ledger.synth import generate
from gis.security import Keys
from gis.settings import Settings
from tests.api.conftest import password

# level, from the largest area to the smallest, with its column of building_path
LEVELS = {
    "subdistrict": "subdistrict_id",
    "community": "community_id",
    "grid": "grid_id",
    "residents_group": "residents_group_id",
    "building_cluster": "building_cluster_id",
    "unit": "unit_id",
    "building": "building_id",
}
PEOPLE_ROLES = ("committee_staff", "grid_worker", "building_leader")
# A housing building whose unit, cluster, group and grid each hold more than
# one housing building, unit, cluster and group: so each level's set differs from the next.
TARGET = """
    WITH h AS (SELECT p.* FROM building_path p JOIN building b ON b.id = p.building_id
                WHERE b.households > 0)
    SELECT h.building_id FROM h
     WHERE (SELECT count(*) FROM h x WHERE x.unit_id = h.unit_id) > 1
       AND (SELECT count(DISTINCT unit_id) FROM h x
             WHERE x.building_cluster_id = h.building_cluster_id) > 1
       AND (SELECT count(DISTINCT building_cluster_id) FROM h x
             WHERE x.residents_group_id = h.residents_group_id) > 1
       AND (SELECT count(DISTINCT residents_group_id) FROM h x WHERE x.grid_id = h.grid_id) > 1
     ORDER BY h.building_id LIMIT 1
"""
RLS_REFUSAL = "not found in your area; nothing was written"


def _owner(url: str):
    return db.create_engine(url, poolclass=sa.NullPool)


def _prepare(url: str, info) -> dict[str, int]:
    """Pick a building whose every area is split (TARGET); put residents in every housing
    building of its grid, in another grid of its community and in a community outside its
    subdistrict; make that subdistrict if there is none (two communities). Returns the
    building's areas, by level."""
    eng = _owner(url)
    with eng.begin() as conn:
        target = conn.scalar(sa.text(TARGET))
        assert target is not None, "the data needs a building whose every area is split"
        path = conn.execute(
            sa.text(
                f"SELECT {', '.join(LEVELS.values())} FROM building_path WHERE building_id = :b"
            ),
            {"b": target},
        ).one()
        areas = dict(zip(LEVELS, path, strict=True))
        if areas["subdistrict"] is None:
            # communities in the test data have none: the target's and one more
            other = (
                info.community_b if areas["community"] == info.community_a else (info.community_a)
            )
            ids = {"t": areas["community"], "o": other}
            areas["subdistrict"] = conn.scalar(
                sa.text(
                    "INSERT INTO subdistrict (code, name, geom) SELECT 'SD-TEST', '测试街道', "
                    "ST_Multi(ST_CollectionExtract(ST_MakeValid(ST_Union(geom)), 3)) "
                    "FROM community WHERE id IN (:t, :o) RETURNING id"
                ),
                ids,
            )
            conn.execute(
                sa.text("UPDATE community SET subdistrict_id = :s WHERE id IN (:t, :o)"),
                {"s": areas["subdistrict"], **ids},
            )

        def housing(where: str, limit: str = "") -> list[int]:
            return list(
                conn.scalars(
                    sa.text(
                        "SELECT p.building_id FROM building_path p JOIN building b "
                        f"ON b.id = p.building_id WHERE b.households > 0 AND {where} "
                        f"ORDER BY p.building_id {limit}"
                    ),
                    {"g": areas["grid"], "c": areas["community"], "s": areas["subdistrict"]},
                )
            )

        chosen = [
            *housing("p.grid_id = :g"),
            *housing("p.community_id = :c AND p.grid_id <> :g", "LIMIT 2"),
            *housing("p.subdistrict_id IS DISTINCT FROM :s", "LIMIT 2"),
        ]
        generate(conn, Keys.from_settings(Settings()), seed=11, building_ids=chosen)
        # the levels must differ, or a branch of one could pass for another's
        sizes = [
            conn.scalar(
                sa.text(
                    "SELECT count(*) FROM building_path p JOIN building b ON b.id = p.building_id "
                    f"WHERE b.households > 0 AND p.{col} = :a"
                ),
                {"a": areas[level]},
            )
            for level, col in LEVELS.items()
        ]
    eng.dispose()
    assert sizes == sorted(set(sizes), reverse=True) and sizes[-1] == 1, sizes
    return areas


def _residents_under(url: str, level: str, area_id: int) -> set[int]:
    eng = _owner(url)
    with eng.connect() as conn:
        ids = set(
            conn.scalars(
                sa.text(
                    "SELECT r.id FROM resident r JOIN building_path p ON p.building_id = "
                    f"r.building_id WHERE p.{LEVELS[level]} = :a"
                ),
                {"a": area_id},
            )
        )
    eng.dispose()
    return ids


def _all_listed(a, username: str) -> set[int]:
    ids: set[int] = set()
    offset = 0
    while True:
        r = a.get(username, f"/api/residents?limit=500&offset={offset}")
        assert r.status_code == 200, r.text
        page = r.json()
        ids |= {i["id"] for i in page["items"]}
        offset += 500
        if offset >= page["total"]:
            assert len(ids) == page["total"]
            return ids


@pytest.mark.parametrize("level", list(LEVELS))
def test_each_scope_level_sees_exactly_its_residents(api, level):
    a, info, url = api
    areas = _prepare(url, info)
    expected = _residents_under(url, level, areas[level])
    # the nearest residents outside: under the smallest area above that has some
    names = list(LEVELS)
    nearby: set[int] = set()
    for up in reversed(names[: names.index(level)]):
        nearby = _residents_under(url, up, areas[up]) - expected
        if nearby:
            break
    if not nearby:
        nearby = _all_residents(url) - expected
    assert expected and nearby, (level, len(expected), len(nearby))
    outside = min(nearby)
    for role in PEOPLE_ROLES:
        username = f"{role}_{level}"
        r = a.post(
            "admin",
            "/api/users",
            json={
                "username": username,
                "password": password(username),
                "role": role,
                "scopes": [{"level": level, "area_id": areas[level]}],
            },
        )
        assert r.status_code == 201, r.text
        assert _all_listed(a, username) == expected, (role, level)
        assert a.get(username, f"/api/residents/{min(expected)}").status_code == 200
        r = a.get(username, f"/api/residents/{outside}")
        assert r.status_code == 404, (role, level, r.status_code)


def _all_residents(url: str) -> set[int]:
    eng = _owner(url)
    with eng.connect() as conn:
        ids = set(conn.scalars(sa.text("SELECT id FROM resident")))
    eng.dispose()
    return ids


def test_write_refused_by_row_level_security_is_a_404_and_writes_nothing(api):
    """Committee staff of one grid may name community A (a building of it is theirs) but
    do not hold it: only the organisation policy refuses the row, and the user gets 404."""
    a, info, url = api
    r = a.post(
        "admin",
        "/api/users",
        json={
            "username": "staff_grid_a1",
            "password": password("staff_grid_a1"),
            "role": "committee_staff",
            "scopes": [{"level": "grid", "area_id": info.grid_a1}],
        },
    )
    assert r.status_code == 201, r.text
    eng = _owner(url)
    count = "SELECT count(*) FROM organisation"
    with eng.connect() as conn:
        before = conn.scalar(sa.text(count))
    r = a.post(
        "staff_grid_a1",
        "/api/ledgers/organisations",
        json={"name": "网格外的超市", "kind": "shop", "community_id": info.community_a},
    )
    assert r.status_code == 404, r.text
    assert r.json() == {
        "detail": RLS_REFUSAL,
        "error": "NotFound",
        "message": "不存在，或不在您的辖区内",  # the person's words: Chinese by default
        "lang": "zh",
    }
    with eng.connect() as conn:
        assert conn.scalar(sa.text(count)) == before
    # the same organisation at a building of the grid is theirs
    r = a.post(
        "staff_grid_a1",
        "/api/ledgers/organisations",
        json={
            "name": "网格内的超市",
            "kind": "shop",
            "community_id": info.community_a,
            "building_id": info.buildings["a1"][0],
        },
    )
    assert r.status_code == 201, r.text
    eng.dispose()


def test_moving_a_resident_out_of_the_scope_is_a_404_and_changes_nothing(api):
    a, info, url = api
    rid = info.residents["a1"][0]
    before = a.get("worker_a1", f"/api/residents/{rid}")
    r = a.patch(
        "worker_a1",
        f"/api/residents/{rid}",
        json={"building_id": info.buildings["a2"][0]},
        headers={"If-Match": before.headers["etag"]},
    )
    assert r.status_code == 404, r.text
    after = a.get("worker_a1", f"/api/residents/{rid}")
    assert after.json() == before.json() and after.headers["etag"] == before.headers["etag"]
    eng = _owner(url)
    with eng.connect() as conn:
        assert (
            conn.scalar(sa.text("SELECT building_id FROM resident WHERE id = :i"), {"i": rid})
            == info.buildings["a1"][0]
        )
    eng.dispose()
