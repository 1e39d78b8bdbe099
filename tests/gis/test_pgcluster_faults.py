"""The local cluster after a crash: it keeps its port, and a running engine finds it again.

Measured before the fix: ``kill -9`` of the postmaster under write load, then ``gridatlas
db up``, moved the cluster to another port (the free-port check bound without
``SO_REUSEADDR``, so the old port's TIME_WAIT sockets looked taken), and the running API
answered 503 until restarted by hand. These tests use a cluster of their own: the shared
one other tests use is never killed.
"""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest
import sqlalchemy as sa

from gis import db, pgcluster


def _time_wait_port() -> int:
    """A loopback port left with a connection in TIME_WAIT and no listener, as PostgreSQL
    leaves its port when it dies (its listener sets ``SO_REUSEADDR``, which the accepted
    connections inherit; Linux lets a new bind pass such a TIME_WAIT only with it too)."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        server_side, _ = listener.accept()
        server_side.close()  # the side that closes first keeps TIME_WAIT on the port
        time.sleep(0.05)
        client.close()
    return port


def test_a_port_whose_connections_linger_in_time_wait_is_free() -> None:
    port = _time_wait_port()
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))  # the old check: "taken"
    assert pgcluster._port_is_free(port)  # noqa: SLF001 - PostgreSQL could listen there


def test_a_port_with_a_live_listener_is_taken() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        assert not pgcluster._port_is_free(listener.getsockname()[1])  # noqa: SLF001


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("pg-faults")
    cluster = pgcluster.LocalCluster(root)
    pgcluster.ensure_up(cluster)
    yield cluster
    pgcluster.stop(cluster)


def _postmaster_pid(cluster: pgcluster.LocalCluster) -> int:
    return int((cluster.data_dir / "postmaster.pid").read_text().splitlines()[0])


def _kill_9(cluster: pgcluster.LocalCluster) -> None:
    pid = _postmaster_pid(cluster)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pgcluster.is_running(cluster) and time.monotonic() < deadline:
        time.sleep(0.05)


def test_after_kill_9_under_load_the_cluster_comes_back_on_its_port(own_cluster) -> None:
    port = own_cluster.port
    engine = db.create_engine(own_cluster.url("postgres"), pool_size=4)
    db.follow_local_cluster(engine, own_cluster)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE IF NOT EXISTS t (n int)"))
    held = [engine.connect() for _ in range(3)]  # open connections: TIME_WAIT after the kill
    for c in held:
        c.execute(sa.text("SELECT 1"))
    _kill_9(own_cluster)
    time.sleep(1.0)  # the orphaned backends see their postmaster gone and hang up first
    for c in held:
        c.invalidate()
        c.close()
    pgcluster.ensure_up(own_cluster)
    assert own_cluster.port == port
    with engine.begin() as conn:  # the pool finds the restarted server by itself
        conn.execute(sa.text("INSERT INTO t VALUES (1)"))
    engine.dispose()


def test_an_engine_follows_the_cluster_when_its_port_was_taken(own_cluster) -> None:
    engine = db.create_engine(own_cluster.url("postgres"), pool_size=2)
    db.follow_local_cluster(engine, own_cluster)
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    old = own_cluster.port
    pgcluster.stop(own_cluster)
    with socket.socket() as squatter:  # another program takes the port meanwhile
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
        squatter.bind(("127.0.0.1", old))
        squatter.listen(1)
        pgcluster.ensure_up(own_cluster)
        assert own_cluster.port != old
        with engine.connect() as conn:  # the same engine, started with the old URL
            assert conn.scalar(sa.text("SELECT current_setting('port')::int")) == own_cluster.port
    engine.dispose()
