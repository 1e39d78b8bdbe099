"""A read replica (``gridatlas db replica up``): reads go to it, writes to the primary, and a
client that has just written reads its write even while the replica is held back.

Everything runs on a cluster of its own under a temporary ``GRIDATLAS_VAR_DIR`` (a primary
made by ``gridatlas db up``, its standby by ``gridatlas db replica up``), so the replica
copies a small database, not the test run's cluster.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from gis import db, pgcluster, replica, security
from gis.settings import Settings
from tests.api.test_tiles import decode
from tests.conftest import cli

ADMIN = ("replica_admin", "replica-admin-password-2026")
# a footprint in Nanjing (about 40 m × 40 m), inside tile z16 53616/26717
SQUARE = "MULTIPOLYGON(((118.7840 32.0440, 118.7844 32.0440, 118.7844 32.0444, 118.7840 32.0444, 118.7840 32.0440)))"  # noqa: E501
TILE = "/api/tiles/buildings/16/{x}/{y}.mvt"
LOGIN = {"username": ADMIN[0], "password": ADMIN[1]}


def _tile_path() -> str:
    import math

    n = 2**16
    lon, lat = 118.7842, 32.0442
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return TILE.format(x=x, y=y)


@pytest.fixture(scope="module")
def clusters(tmp_path_factory) -> Iterator[tuple[Path, pgcluster.LocalCluster]]:
    var = tmp_path_factory.mktemp("replica-var")
    env = {"GRIDATLAS_VAR_DIR": str(var)}
    up = cli("db", "up", **env)
    assert up.returncode == 0, up.stderr
    primary = pgcluster.LocalCluster(var / "pg")
    try:
        made = cli("db", "replica", "up", **env)
        assert made.returncode == 0, made.stderr
        assert "replica running" in made.stdout
        eng = db.create_engine(primary.url(), poolclass=sa.NullPool)
        with eng.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO app_user (username, role, password_hash) VALUES (:u, 'admin', :p)"
                ),
                {"u": ADMIN[0], "p": security.hash_password(ADMIN[1])},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO building (building_type, area_m2, is_residential, households, "
                    "geom) VALUES ('residential', 1600, true, 40, ST_GeomFromText(:g, 4326))"
                ),
                {"g": SQUARE},
            )
        eng.dispose()
        yield var, primary
    finally:
        replica.down(primary, remove=True)
        pgcluster.stop(primary)


def _replica_engine(primary: pgcluster.LocalCluster) -> sa.Engine:
    return db.create_engine(
        replica.replica_of(primary).url(), poolclass=sa.NullPool, isolation_level="AUTOCOMMIT"
    )


def _wait_replayed(primary: pgcluster.LocalCluster, lsn: str) -> None:
    eng = _replica_engine(primary)
    try:
        deadline = time.monotonic() + 30
        with eng.connect() as conn:
            while not conn.scalar(
                sa.text("SELECT pg_last_wal_replay_lsn() >= CAST(:l AS pg_lsn)"), {"l": lsn}
            ):
                assert time.monotonic() < deadline, "the replica did not catch up in 30 s"
                time.sleep(0.05)
    finally:
        eng.dispose()


def _households(client: TestClient, token: str) -> tuple[str, bytes]:
    r = client.get(_tile_path(), headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    return r.headers["x-ga-read-from"], r.content


def _primary_now(primary: pgcluster.LocalCluster) -> str:
    eng = db.create_engine(primary.url(), poolclass=sa.NullPool)
    with eng.connect() as conn:
        lsn = conn.scalar(sa.text("SELECT pg_current_wal_lsn()::text"))
    eng.dispose()
    return str(lsn)


def test_reads_go_to_the_replica_and_a_fresh_login_reads_from_the_primary(clusters) -> None:
    var, primary = clusters
    status = cli("db", "replica", "status", GRIDATLAS_VAR_DIR=str(var))
    assert status.returncode == 0 and "replica running" in status.stdout, status.stdout
    app = _app(var)
    with TestClient(app) as client:
        login = client.post("/api/auth/login", json=LOGIN)
        assert login.status_code == 200, login.text
        lsn = login.headers["x-ga-lsn"]  # the login wrote its session: its position comes back
        assert "ga_lsn=" in login.headers["set-cookie"]
        token = login.json()["token"]
        _wait_replayed(primary, lsn)
        source, first = _households(client, token)
        assert source == "replica" and first  # the footprint is in the tile

        # Hold the replica back, then log in again: the new session exists on the primary
        # only. The client carries its new position, so its reads go to the primary.
        held = _replica_engine(primary)
        with held.connect() as conn:
            conn.execute(sa.text("SELECT pg_wal_replay_pause()"))
        try:
            again = client.post("/api/auth/login", json=LOGIN)
            assert again.status_code == 200
            fresh = again.json()["token"]
            source, _ = _households(client, fresh)
            assert source == "primary"
            # Another client, with no position of its own: the replica answers, and it has
            # not seen the new session (this is why clients send the position back).
            with TestClient(app) as other:
                r = other.get(_tile_path(), headers={"Authorization": f"Bearer {fresh}"})
                assert r.status_code == 401 and r.headers["x-ga-read-from"] == "replica"
        finally:
            with held.connect() as conn:
                conn.execute(sa.text("SELECT pg_wal_replay_resume()"))
            held.dispose()
        _wait_replayed(primary, _primary_now(primary))
        source, _ = _households(client, fresh)
        assert source == "replica"


def test_a_change_on_the_primary_reaches_the_replica_s_tiles(clusters) -> None:
    var, primary = clusters
    app = _app(var)
    with TestClient(app) as client:
        token = client.post("/api/auth/login", json=LOGIN).json()["token"]
        eng = db.create_engine(primary.url(), poolclass=sa.NullPool)
        with eng.begin() as conn:
            conn.execute(sa.text("UPDATE building SET households = 77"))
        eng.dispose()
        _wait_replayed(primary, _primary_now(primary))
        source, body = _households(client, token)
        assert source == "replica"
        assert b"buildings" in body
        assert [f["households"] for f in decode(body)["buildings"]] == [77]


def test_without_the_replica_the_primary_answers(clusters) -> None:
    var, primary = clusters
    app = _app(var)
    with TestClient(app) as client:
        token = client.post("/api/auth/login", json=LOGIN).json()["token"]
        stopped = cli("db", "replica", "down", GRIDATLAS_VAR_DIR=str(var))
        assert stopped.returncode == 0, stopped.stderr
        try:
            source, body = _households(client, token)
            assert source == "primary" and body
        finally:
            restarted = cli("db", "replica", "up", GRIDATLAS_VAR_DIR=str(var))
            assert restarted.returncode == 0, restarted.stderr


def _app(var: Path):
    from api.app import create_app

    return create_app(Settings(var_dir=var, database_url=None))


def _calls(dependant) -> set:
    found = {dependant.call}
    for sub in dependant.dependencies:
        found |= _calls(sub)
    return found


def test_no_route_reads_on_one_server_and_checks_its_user_on_the_other() -> None:
    """A route that takes ReadConn must take ReadUser (and Conn with User): the user's
    identity is set on the connection the data is read from, or row-level security would
    hide everything (or the route would read from one server and audit on neither)."""
    from fastapi.routing import APIRoute

    from api.app import create_app
    from api.deps import get_conn
    from api.reads import get_read_conn

    def routes(items):  # FastAPI keeps included routers as such: their routes inside
        for item in items:
            inner = getattr(item, "original_router", None)
            if inner is not None:
                yield from routes(inner.routes)
            elif isinstance(item, APIRoute):
                yield item

    app = create_app(Settings())
    mixed, readers = [], []
    for route in routes(app.routes):
        calls = _calls(route.dependant)
        if get_read_conn in calls:
            readers.append(route.path)
            if get_conn in calls:
                mixed.append(route.path)
    assert readers and not mixed, mixed


def test_an_audited_read_on_the_replica_is_recorded_on_the_primary(clusters) -> None:
    from api.reads import PrimaryWrites
    from gis.audit import audit

    _, primary = clusters
    owner = db.create_engine(primary.url(), poolclass=sa.NullPool)
    reader = db.create_engine(replica.replica_of(primary).url(), poolclass=sa.NullPool)

    class Someone:
        id, role = 0, "admin"

        def may_reveal(self, field: str) -> bool:
            return False

    try:
        with reader.connect() as conn:
            conn.begin()
            writes = PrimaryWrites(owner)
            conn.info["ga_primary_writes"] = writes
            audit(conn, Someone(), "read", "resident", [424242], {"as": "replica test"})
            writes.commit()
            writes.close()
            conn.rollback()
        with owner.connect() as conn:
            row = conn.execute(
                sa.text("SELECT action, subject_ids FROM audit_log WHERE 424242 = ANY(subject_ids)")
            ).one()
        assert (row.action, list(row.subject_ids)) == ("read", [424242])
    finally:
        owner.dispose()
        reader.dispose()
