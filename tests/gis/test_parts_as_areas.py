"""Building parts as areas, on Nanjing after delineation: a divided tower's dwellings belong
to the unit, group and grid of their part — for leader candidates, the residents' ledger and
its row-level security, and reach coverage per group and per grid.

The prepared database (made once for the module): Nanjing imported, walking reach computed,
groups delineated (towers divided by floors), synthetic residents in one divided tower whose
parts lie in two grids and in a few whole buildings of its community, and users: staff of
the community, a grid worker of each of the two grids, and a group leader (a building leader
scoped to the group of the tower's upper part). Every figure a test expects is worked out
here from the tables themselves (building_part, building.unit_id and the hierarchy), never
through the view or the functions under test.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from gis import db, security
from gis.delineate.service import run as delineate_run
from gis.io.pipeline import import_file
from gis.ledger.synth import generate
from gis.reach.coverage import coverage_by_area
from gis.reach.service import compute_and_store
from gis.settings import Settings
from tests.conftest import NANJING, _admin_execute, _clone

# the group (and grid) of each part of a building, from the tables
PART_GROUPS = """
    SELECT p.part_no, p.floor_min, p.floor_max, p.rooms, p.households, p.unit_id,
           c.residents_group_id AS group_id, g.grid_id, p.unit_id = b.unit_id AS is_home
      FROM building_part p JOIN building b ON b.id = p.building_id
      JOIN unit u ON u.id = p.unit_id
      JOIN building_cluster c ON c.id = u.building_cluster_id
      JOIN residents_group g ON g.id = c.residents_group_id
     WHERE p.building_id = :b ORDER BY p.part_no
"""


@dataclass
class Tower:
    """The prepared tower, its two parts of interest, their residents and the users."""

    url: str = ""
    building: int = 0
    community: int = 0
    low: dict = field(default_factory=dict)  # the part the building hangs from (home)
    high: dict = field(default_factory=dict)  # a part in another grid
    parts: list[dict] = field(default_factory=list)  # every part of the tower
    low_resident: int = 0
    high_resident: int = 0
    users: dict[str, str] = field(default_factory=dict)  # username -> password


def _pick_tower(conn) -> int:
    """A divided building whose home part and another part lie in different grids."""
    return int(
        conn.scalar(
            sa.text(
                """
                SELECT p.building_id FROM building_part p JOIN building b ON b.id = p.building_id
                  JOIN unit u ON u.id = p.unit_id
                  JOIN building_cluster c ON c.id = u.building_cluster_id
                  JOIN residents_group g ON g.id = c.residents_group_id
                 GROUP BY p.building_id
                HAVING count(DISTINCT g.grid_id) >= 2 AND bool_or(p.unit_id = b.unit_id)
                 ORDER BY max(b.households), p.building_id LIMIT 1
                """
            )
        )
    )


def _resident_in(conn, building: int, rooms: list[str]) -> int:
    return int(
        conn.scalar(
            sa.text(
                "SELECT id FROM resident WHERE building_id = :b AND room = ANY(:rooms) "
                "AND status <> 'registered' ORDER BY id LIMIT 1"
            ),
            {"b": building, "rooms": rooms},
        )
    )


def _add_user(conn, username: str, role: str, level: str, area: int) -> str:
    password = f"pw-{username}-2026"
    uid = conn.scalar(
        sa.text(
            "INSERT INTO app_user (username, role, password_hash, full_name) "
            "VALUES (:u, :r, :p, :u) RETURNING id"
        ),
        {"u": username, "r": role, "p": security.hash_password(password)},
    )
    conn.execute(
        sa.text("INSERT INTO app_user_scope VALUES (:u, :l, :a)"),
        {"u": uid, "l": level, "a": area},
    )
    return password


@pytest.fixture(scope="module")
def tower(server_url: str, template_url: str) -> Iterator[Tower]:
    url = _clone(server_url, template_url, "parts_areas")
    eng = db.create_engine(url, poolclass=sa.NullPool)
    import_file(eng, NANJING)
    with eng.begin() as conn:
        compute_and_store(conn)
    delineate_run(eng)
    t = Tower(url=url)
    keys = security.Keys.from_settings(Settings())
    with eng.begin() as conn:
        t.building = _pick_tower(conn)
        t.community = int(
            conn.scalar(
                sa.text("SELECT community_id FROM building WHERE id = :b"), {"b": t.building}
            )
        )
        parts = [dict(r._mapping) for r in conn.execute(sa.text(PART_GROUPS), {"b": t.building})]
        t.parts = parts
        t.low = next(p for p in parts if p["is_home"])
        t.high = next(p for p in parts if p["grid_id"] != t.low["grid_id"])
        whole = [
            b
            for (b,) in conn.execute(
                sa.text(
                    "SELECT id FROM building WHERE community_id = :c AND households BETWEEN 4 "
                    "AND 40 AND id NOT IN (SELECT building_id FROM building_part) "
                    "ORDER BY id LIMIT 3"
                ),
                {"c": t.community},
            )
        ]
        generate(conn, keys, seed=11, building_ids=[t.building, *whole])
        t.low_resident = _resident_in(conn, t.building, t.low["rooms"])
        t.high_resident = _resident_in(conn, t.building, t.high["rooms"])
        # nobody is backbone but the two of them: each leads the list where they live
        conn.execute(sa.text("DELETE FROM backbone"))
        conn.execute(
            sa.text(
                "INSERT INTO backbone (resident_id, role) VALUES (:a, 'volunteer'), "
                "(:b, 'volunteer')"
            ),  # fmt: skip
            {"a": t.low_resident, "b": t.high_resident},
        )
        for username, role, level, area in (
            ("parts_staff", "committee_staff", "community", t.community),
            ("parts_worker_low", "grid_worker", "grid", t.low["grid_id"]),
            ("parts_worker_high", "grid_worker", "grid", t.high["grid_id"]),
            ("parts_group_leader", "building_leader", "residents_group", t.high["group_id"]),
        ):
            t.users[username] = _add_user(conn, username, role, level, area)
    eng.dispose()
    yield t
    _admin_execute(server_url, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


def _rooms(tower: Tower, key: str, area: int) -> set[str]:
    """The tower's rooms whose part lies in the group or grid (``key``) ``area``."""
    return {r for p in tower.parts if p[key] == area for r in p["rooms"]}


class Client:
    """The API as one user or another (a login each)."""

    def __init__(self, client: TestClient, users: dict[str, str]) -> None:
        self.client, self.users, self.tokens = client, users, {}

    def get(self, username: str, url: str):
        if username not in self.tokens:
            r = self.client.post(
                "/api/auth/login", json={"username": username, "password": self.users[username]}
            )
            assert r.status_code == 200, r.text
            self.tokens[username] = r.json()["token"]
        return self.client.get(url, headers={"Authorization": f"Bearer {self.tokens[username]}"})

    def put(self, username: str, url: str, body: dict):
        self.get(username, "/api/health")
        headers = {"Authorization": f"Bearer {self.tokens[username]}"}
        return self.client.put(url, json=body, headers=headers)


@pytest.fixture(scope="module")
def api(tower: Tower) -> Iterator[Client]:
    from api.app import create_app

    with TestClient(create_app(Settings(database_url=tower.url))) as client:
        yield Client(client, tower.users)


def _candidates(api: Client, group: int) -> dict[int, dict]:
    r = api.get("parts_staff", f"/api/leaders/residents_group/{group}/candidates?limit=100")
    assert r.status_code == 200, r.text
    return {i["resident_id"]: i for i in r.json()["items"]}


def test_an_upper_floor_resident_is_a_candidate_inside_their_part_group_only(api, tower):
    high, low = _candidates(api, tower.high["group_id"]), _candidates(api, tower.low["group_id"])
    # in the group of their floors: inside, and first (the only backbone living there)
    assert next(iter(high)) == tower.high_resident
    assert high[tower.high_resident]["lives_inside"] is True
    assert high[tower.low_resident]["lives_inside"] is False
    # and the other way round in the group of the lower floors
    assert next(iter(low)) == tower.low_resident
    assert low[tower.low_resident]["lives_inside"] is True
    assert low[tower.high_resident]["lives_inside"] is False
    # the residents inside a part's group are exactly those of its rooms, by the tables
    rooms = _rooms(tower, "group_id", tower.high["group_id"])
    for item in high.values():
        if item["building_id"] == tower.building:
            assert item["lives_inside"] is (item["room"] in rooms), item


def test_a_leader_of_the_upper_group_from_its_floors_lives_inside(api, tower):
    seat = f"/api/leaders/residents_group/{tower.high['group_id']}"
    inside = api.put("parts_staff", seat, {"resident_id": tower.high_resident})
    assert inside.status_code == 200, inside.text
    assert inside.json()["warnings"] == [] and inside.json()["current"]["lives_inside"] is True
    other = f"/api/leaders/residents_group/{tower.low['group_id']}"
    outside = api.put("parts_staff", other, {"resident_id": tower.high_resident})
    assert outside.status_code == 200, outside.text
    assert outside.json()["current"]["lives_inside"] is False
    assert len(outside.json()["warnings"]) == 1


def _residents(api: Client, username: str, query: str = "") -> set[int]:
    """Every resident the user's list gives (all its pages)."""
    out: set[int] = set()
    while True:
        r = api.get(username, f"/api/residents?limit=500&offset={len(out)}{query}")
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        out |= {i["id"] for i in items}
        if len(items) < 500:
            return out


def test_grid_workers_and_a_group_leader_see_the_residents_of_their_part(api, tower):
    high_worker = _residents(api, "parts_worker_high")
    low_worker = _residents(api, "parts_worker_low")
    leader = _residents(api, "parts_group_leader")
    assert tower.high_resident in high_worker and tower.low_resident not in high_worker
    assert tower.low_resident in low_worker and tower.high_resident not in low_worker
    assert tower.high_resident in leader and tower.low_resident not in leader
    # each sees exactly the tower's residents of their parts' rooms, no one else's
    eng = db.create_engine(tower.url, poolclass=sa.NullPool)
    with eng.connect() as conn:
        by_room = dict(
            conn.execute(
                sa.text("SELECT id, room FROM resident WHERE building_id = :b"),
                {"b": tower.building},
            ).all()
        )
    eng.dispose()

    def of(rooms: set[str]) -> set[int]:
        return {i for i, room in by_room.items() if room in rooms}

    assert leader & set(by_room) == of(_rooms(tower, "group_id", tower.high["group_id"]))
    assert high_worker & set(by_room) == of(_rooms(tower, "grid_id", tower.high["grid_id"]))
    assert low_worker & set(by_room) == of(_rooms(tower, "grid_id", tower.low["grid_id"]))
    # the building itself is in both workers' areas (they walk it)
    for worker in ("parts_worker_high", "parts_worker_low"):
        assert api.get(worker, f"/api/buildings/{tower.building}/path").status_code == 200


def test_the_ledger_filtered_by_a_group_lists_the_residents_of_its_part(api, tower):
    q = f"&level=residents_group&area_id={tower.high['group_id']}"
    listed = _residents(api, "parts_staff", q)
    assert tower.high_resident in listed and tower.low_resident not in listed
    low = _residents(api, "parts_staff", f"&level=unit&area_id={tower.low['unit_id']}")
    assert tower.low_resident in low and tower.high_resident not in low


def _group_households_by_tables(conn) -> dict[int, int]:
    """Households per group: whole buildings by building.unit_id, divided ones by part."""
    rows = conn.execute(
        sa.text(
            """
            SELECT c.residents_group_id, sum(x.households) FROM (
                SELECT b.unit_id, b.households FROM building b
                 WHERE b.households > 0 AND NOT EXISTS
                       (SELECT 1 FROM building_part p WHERE p.building_id = b.id)
                UNION ALL
                SELECT p.unit_id, p.households FROM building_part p) x
              JOIN unit u ON u.id = x.unit_id
              JOIN building_cluster c ON c.id = u.building_cluster_id
             GROUP BY 1
            """
        )
    ).all()
    return {int(g): int(h) for g, h in rows}


def test_coverage_per_group_counts_each_part_in_its_own_group(tower):
    eng = db.create_engine(tower.url, poolclass=sa.NullPool)
    with eng.connect() as conn:
        expected = _group_households_by_tables(conn)
        stored = dict(conn.execute(sa.text("SELECT id, households FROM residents_group")).all())
        figures = {a["id"]: a["households"] for a in coverage_by_area(conn, "residents_group")}
        reached = conn.scalar(
            sa.text(
                "SELECT count(*) FROM building WHERE households > 0 AND id NOT IN "
                "(SELECT building_id FROM building_reach)"
            )  # fmt: skip
        )
    eng.dispose()
    assert reached == 0  # every building with households has a reach row: nothing dropped
    for part in (tower.low, tower.high):
        g = part["group_id"]
        assert figures[g] == expected[g] == stored[g]
    assert {g: h for g, h in figures.items() if h} == expected
    assert sum(figures.values()) == sum(expected.values())


def test_scoped_coverage_counts_a_worker_s_parts_in_their_grid(api, tower):
    eng = db.create_engine(tower.url, poolclass=sa.NullPool)
    with eng.connect() as conn:
        category = conn.scalar(sa.text("SELECT categories[1] FROM reach_run ORDER BY id DESC"))
        by_grid = dict(
            conn.execute(
                sa.text("SELECT grid_id, sum(households) FROM residents_group GROUP BY 1")
            ).all()
        )
    eng.dispose()
    for username, part in (("parts_worker_high", tower.high), ("parts_worker_low", tower.low)):
        r = api.get(username, f"/api/reach/scoped/coverage?category={category}")
        assert r.status_code == 200, r.text
        body = r.json()
        grids = {g["id"]: g["households"] for g in body["grid"]}
        # the worker's own grid only, with every household of its groups (parts included)
        assert grids == {part["grid_id"]: by_grid[part["grid_id"]]}
        assert body["households"] == by_grid[part["grid_id"]]
    staff = api.get("parts_staff", f"/api/reach/scoped/coverage?category={category}").json()
    assert {g["id"]: g["households"] for g in staff["grid"]} == {
        g: h for g, h in by_grid.items() if g in {x["id"] for x in staff["grid"]}
    }


def test_patrol_areas_take_a_divided_tower_into_each_grid_with_its_parts(tower) -> None:
    """A tower's upper floors in another grid are patrolled there, weighted by their own
    households (gis/patrol/area_store.py GRID_BUILDINGS)."""
    from gis.patrol.area_store import GRID_BUILDINGS

    eng = db.create_engine(tower.url, poolclass=sa.NullPool)
    try:
        with eng.connect() as conn:
            total = conn.scalar(
                sa.text("SELECT households FROM building WHERE id = :b"), {"b": tower.building}
            )
            per_grid = {}
            for grid in {p["grid_id"] for p in tower.parts}:
                rows = {r.id: r.households for r in conn.execute(GRID_BUILDINGS, {"g": grid})}
                per_grid[grid] = rows.get(tower.building)
    finally:
        eng.dispose()
    expected = {}
    for p in tower.parts:
        expected[p["grid_id"]] = expected.get(p["grid_id"], 0) + p["households"]
    assert per_grid == expected and len(per_grid) >= 2
    assert sum(per_grid.values()) == total
