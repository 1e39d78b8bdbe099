"""A read replica of the local cluster: a streaming-replication standby under ``var/pg-replica``.

``gridatlas db replica up`` copies the running primary with ``pg_basebackup`` (over the
replication protocol, as the cluster's superuser, on loopback) into its own data directory,
marks it a standby (``standby.signal``, ``primary_conninfo``) and starts it on a port of its
own. It is Debian's PostgreSQL, the same binaries as the primary; nothing is installed.

The API then sends the reads of routes that only read (``api.deps.ReadConn``) to the
replica and everything else to the primary; a client that has just written reads from the
primary until the replica has replayed that write (see ``api/deps.py``).

The standby does not archive WAL (the primary does), streams from the primary's current
port (rewritten at every ``up``, since the primary may move), and is never promoted by us:
failover is pg_auto_failover's job (``gridatlas db ha``), not this one's.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from gis import db, pgcluster
from gis.errors import DatabaseUnavailable
from gis.settings import Settings

REPLICA_DIR = "pg-replica"
APPLICATION_NAME = "gridatlas_replica"


def replica_of(primary: pgcluster.LocalCluster) -> pgcluster.LocalCluster:
    """The replica of ``primary``: a cluster beside it (``var/pg-replica``), same password."""
    return pgcluster.LocalCluster(primary.root.parent / REPLICA_DIR)


def _conninfo(primary: pgcluster.LocalCluster) -> str:
    password = primary.password_file.read_text().strip()
    return (
        f"host=127.0.0.1 port={primary.port} user={pgcluster.SUPERUSER} "
        f"password={password} application_name={APPLICATION_NAME}"
    )


def _standby_settings(primary: pgcluster.LocalCluster) -> dict[str, str]:
    conninfo = _conninfo(primary).replace("'", "''")
    return {
        "primary_conninfo": f"'{conninfo}'",
        "archive_mode": "'off'",  # the primary archives; a standby would only with 'always'
        "hot_standby": "on",
        # a long read on the replica is not cancelled by the cleanup it holds back
        "hot_standby_feedback": "on",
    }


def _write_settings(replica: pgcluster.LocalCluster, settings: dict[str, str]) -> None:
    """Put ``settings`` in the replica's postgresql.auto.conf, replacing earlier values."""
    conf = replica.data_dir / "postgresql.auto.conf"
    kept = [
        line
        for line in conf.read_text().splitlines()
        if line.split("=", 1)[0].strip() not in settings
    ]
    kept += [f"{key} = {value}" for key, value in settings.items()]
    conf.write_text("\n".join(kept) + "\n")


@dataclass(frozen=True)
class ReplicaState:
    running: bool
    port: int | None
    replay_lsn: str | None
    lag_bytes: int | None  # how far behind the primary's current WAL position


def _copy(primary: pgcluster.LocalCluster, replica: pgcluster.LocalCluster) -> None:
    """A fresh copy of the running primary, as a standby, in the replica's data directory."""
    bin_dir = pgcluster.find_bin_dir()
    replica.root.mkdir(parents=True, exist_ok=True)
    if replica.data_dir.exists():  # left by a copy that was interrupted: ours to redo
        shutil.rmtree(replica.data_dir)
    shutil.copyfile(primary.password_file, replica.password_file)
    os.chmod(replica.password_file, 0o600)
    replica.port_file.write_text(f"{pgcluster._free_port()}\n")
    pgcluster.make_service_dir(replica.root)
    replica.log_file.touch()
    if pgcluster._is_root():
        pgcluster._chown_to_service_user(replica.log_file)
    env = {**os.environ, "PGPASSWORD": primary.password_file.read_text().strip()}
    pgcluster._run(
        [str(bin_dir / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port),
         "-U", pgcluster.SUPERUSER, "-D", str(replica.data_dir), "-X", "stream",
         "-c", "fast", "--no-password"],
        env=env,
    )  # fmt: skip
    (replica.data_dir / "standby.signal").touch()
    if pgcluster._is_root():
        pgcluster._chown_to_service_user(replica.data_dir / "standby.signal")


def up(primary: pgcluster.LocalCluster) -> str:
    """Create (first time) and start the replica of ``primary``; return its owner URL.

    The primary is started first if it is not running. The replica keeps its data across
    ``down``/``up`` and catches up by streaming; a replica that fell too far behind (the
    primary recycled the WAL it needs) is copied again.
    """
    pgcluster.ensure_up(primary)
    replica = replica_of(primary)
    with pgcluster._locked(replica):
        if not replica.is_initialised:
            _copy(primary, replica)
        _write_settings(replica, _standby_settings(primary))
        pgcluster.start(replica)
    return replica.url()


def down(primary: pgcluster.LocalCluster, *, remove: bool = False) -> None:
    """Stop the replica (fast shutdown); with ``remove``, delete its data too."""
    replica = replica_of(primary)
    pgcluster.stop(replica)
    if remove:
        shutil.rmtree(replica.root, ignore_errors=True)


def state(primary: pgcluster.LocalCluster) -> ReplicaState:
    """Whether the replica runs, its port, the WAL position it has replayed and its lag."""
    replica = replica_of(primary)
    if not pgcluster.is_running(replica):
        return ReplicaState(False, None, None, None)
    eng = db.create_engine(replica.url(), poolclass=sa.NullPool)
    try:
        with eng.connect() as conn:
            replayed = conn.scalar(sa.text("SELECT pg_last_wal_replay_lsn()::text"))
    finally:
        eng.dispose()
    lag = None
    if replayed is not None and pgcluster.is_running(primary):
        eng = db.create_engine(primary.url(), poolclass=sa.NullPool)
        try:
            with eng.connect() as conn:
                lag = conn.scalar(
                    sa.text("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), CAST(:r AS pg_lsn))"),
                    {"r": replayed},
                )
        finally:
            eng.dispose()
    return ReplicaState(True, replica.port, replayed, None if lag is None else int(lag))


def resolve_replica_url(settings: Settings) -> str | None:
    """The owner URL of the replica the API reads from, or None (no replica: all on the
    primary). ``GRIDATLAS_REPLICA_URL`` when set; else the local replica when it runs and
    the primary is the local cluster."""
    if settings.replica_url:
        return settings.replica_url
    if settings.database_url:
        return None
    replica = replica_of(pgcluster.LocalCluster(settings.pg_dir))
    if not replica.is_initialised or not pgcluster.is_running(replica):
        return None
    return replica.url()


def require_running(primary: pgcluster.LocalCluster) -> None:
    if not pgcluster.is_running(primary):
        raise DatabaseUnavailable(
            "the local database is not running; start it with `gridatlas db up` first"
        )


def replica_path(settings: Settings) -> Path:
    return replica_of(pgcluster.LocalCluster(settings.pg_dir)).root
