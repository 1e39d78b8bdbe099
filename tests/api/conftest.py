"""Nanjing with drawn groups, synthetic residents in a few areas, and one user per role.

The prepared database is a template made once per run; each test gets its own copy, so
tests may write. Areas: community A with grids A1 and A2, community B. Users (password
``pw-<username>-2026``): admin; staff_a and planner_a (community A); worker_a1 (grid A1);
leader_a1 (one building of A1, a building leader); staff_b (community B).
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
from gis.settings import Settings
from tests.conftest import NANJING, _admin_execute, _clone


@dataclass
class People:
    """Ids of the prepared areas, buildings and residents."""

    community_a: int = 0
    community_b: int = 0
    grid_a1: int = 0
    grid_a2: int = 0
    buildings: dict[str, list[int]] = field(default_factory=dict)  # a1, a2, b
    residents: dict[str, list[int]] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)


USERS = {
    "admin": ("admin", None),
    "staff_a": ("committee_staff", ("community", "community_a")),
    "planner_a": ("planner", ("community", "community_a")),
    "worker_a1": ("grid_worker", ("grid", "grid_a1")),
    "leader_a1": ("building_leader", ("building", "a1")),
    "staff_b": ("committee_staff", ("community", "community_b")),
}


def password(username: str) -> str:
    return f"pw-{username}-2026"


def _buildings(conn, grid_id: int, n: int) -> list[int]:
    return [
        r[0]
        for r in conn.execute(
            sa.text(
                "SELECT p.building_id FROM building_path p JOIN building b ON b.id = p.building_id "
                "WHERE p.grid_id = :g AND b.households BETWEEN 4 AND 40 ORDER BY b.id LIMIT :n"
            ),
            {"g": grid_id, "n": n},
        )
    ]


@pytest.fixture(scope="session")
def people_template(server_url: str, template_url: str) -> Iterator[tuple[str, People]]:
    url = _clone(server_url, template_url, "people_tpl")
    eng = db.create_engine(url, poolclass=sa.NullPool)
    import_file(eng, NANJING)
    delineate_run(eng)
    info = People()
    keys = security.Keys.from_settings(Settings())
    with eng.begin() as conn:
        # two communities with at least two grids holding small residential buildings
        rows = conn.execute(
            sa.text(
                "SELECT g.community_id, g.id FROM grid g WHERE EXISTS (SELECT 1 FROM "
                "building_path p JOIN building b ON b.id = p.building_id WHERE p.grid_id = g.id "
                "AND b.households BETWEEN 4 AND 40) ORDER BY g.community_id, g.id"
            )
        ).all()
        by_comm: dict[int, list[int]] = {}
        for c, g in rows:
            by_comm.setdefault(c, []).append(g)
        comms = [c for c, gs in by_comm.items() if len(gs) >= 2]
        info.community_a, info.community_b = comms[0], comms[1]
        info.grid_a1, info.grid_a2 = by_comm[comms[0]][:2]
        grid_b = by_comm[comms[1]][0]
        info.buildings = {
            "a1": _buildings(conn, info.grid_a1, 3),
            "a2": _buildings(conn, info.grid_a2, 2),
            "b": _buildings(conn, grid_b, 2),
        }
        generate(conn, keys, seed=7, building_ids=sum(info.buildings.values(), []))
        for key, bids in info.buildings.items():
            info.residents[key] = [
                r[0]
                for r in conn.execute(
                    sa.text("SELECT id FROM resident WHERE building_id = ANY(:b) ORDER BY id"),
                    {"b": bids},
                )
            ]
        for username, (role, scope) in USERS.items():
            uid = conn.scalar(
                sa.text(
                    "INSERT INTO app_user (username, role, password_hash, full_name) "
                    "VALUES (:u, :r, :p, :u) RETURNING id"
                ),
                {"u": username, "r": role, "p": security.hash_password(password(username))},
            )
            info.users[username] = uid
            if scope:
                level, ref = scope
                area = info.buildings["a1"][0] if ref == "a1" else getattr(info, ref)
                conn.execute(
                    sa.text("INSERT INTO app_user_scope VALUES (:u, :l, :a)"),
                    {"u": uid, "l": level, "a": area},
                )
    eng.dispose()
    yield url, info
    _admin_execute(server_url, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


@pytest.fixture
def people(server_url: str, people_template: tuple[str, People]) -> Iterator[tuple[str, People]]:
    """A private copy of the prepared database."""
    tpl_url, info = people_template
    url = _clone(server_url, tpl_url, "people")
    yield url, info
    _admin_execute(server_url, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


class Api:
    """A test client that logs in as one user or another."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.tokens: dict[str, str] = {}

    def as_(self, username: str) -> dict[str, str]:
        if username not in self.tokens:
            r = self.client.post(
                "/api/auth/login", json={"username": username, "password": password(username)}
            )
            assert r.status_code == 200, r.text
            self.tokens[username] = r.json()["token"]
        return {"Authorization": f"Bearer {self.tokens[username]}"}

    def get(self, username: str, url: str, **kw):
        return self.client.get(url, headers={**self.as_(username), **kw.pop("headers", {})}, **kw)

    def post(self, username: str, url: str, **kw):
        return self.client.post(url, headers={**self.as_(username), **kw.pop("headers", {})}, **kw)

    def patch(self, username: str, url: str, **kw):
        return self.client.patch(url, headers={**self.as_(username), **kw.pop("headers", {})}, **kw)

    def put(self, username: str, url: str, **kw):
        return self.client.put(url, headers={**self.as_(username), **kw.pop("headers", {})}, **kw)

    def delete(self, username: str, url: str, **kw):
        return self.client.delete(
            url, headers={**self.as_(username), **kw.pop("headers", {})}, **kw
        )


@pytest.fixture
def api(people: tuple[str, People]) -> Iterator[tuple[Api, People, str]]:
    from api.app import create_app

    url, info = people
    app = create_app(Settings(database_url=url))
    with TestClient(app) as client:
        yield Api(client), info, url
