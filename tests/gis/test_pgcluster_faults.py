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
import subprocess
import sys
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


def test_an_import_whose_database_dies_says_so_and_leaves_nothing(own_cluster) -> None:
    """``kill -9`` while the import's transaction is open: a one-line reason and exit code 2
    (not a traceback), nothing of it stored, and the same command then imports it whole."""
    from tests.conftest import SHANGHAI, cli

    url = own_cluster.url("gridatlas_import_faults")
    db.ensure_database(url)
    db.migrate(url)
    engine = db.create_engine(url, poolclass=sa.NullPool)
    blocker = engine.connect()  # holds the source's lock: the import waits inside its transaction
    blocker.execute(sa.text("SELECT pg_advisory_lock(hashtext('tongji'))"))
    blocker.commit()  # the lock is the session's; each look below is a new snapshot
    exe = os.path.join(os.path.dirname(sys.executable), "gridatlas")
    env = {**os.environ, "GRIDATLAS_DATABASE_URL": url, "PGAPPNAME": "import-under-fault"}
    proc = subprocess.Popen(
        [exe, "import", "-q", "--source", "tongji", str(SHANGHAI)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not blocker.scalar(
        sa.text("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                "'import-under-fault' AND wait_event_type = 'Lock'")
    ):  # fmt: skip
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        blocker.commit()
        time.sleep(0.05)
    _kill_9(own_cluster)
    _out, err = proc.communicate(timeout=120)
    blocker.invalidate()
    blocker.close()
    assert proc.returncode == 2, err
    assert err.startswith("error: the database went away during the import"), err
    assert "Traceback" not in err and "run it again" in err
    pgcluster.ensure_up(own_cluster)
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM building")) == 0
        assert conn.scalar(sa.text("SELECT count(*) FROM import_run")) == 0
    again = cli("import", "-q", "--source", "tongji", str(SHANGHAI), db_url=url)
    assert again.returncode == 0, again.stderr
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM building")) == 226
    engine.dispose()
