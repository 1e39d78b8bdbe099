"""Base backups of the local cluster and point-in-time recovery from them and the WAL archive.

The cluster archives every finished WAL segment into ``var/pg/wal-archive``
(``pgcluster.archive_settings``). ``base_backup`` copies the running cluster with
``pg_basebackup`` into ``var/pg/base-backups/base-<time>`` and keeps the newest
``KEEP`` of them, removing the WAL no kept backup needs. ``recover_to`` rebuilds a cluster
from the newest base backup made before the moment asked for and replays the archive up
to that moment: into a new folder (a second cluster on its own port, the first one left
alone) or in place of ``var/pg`` (its data kept aside).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import shutil
import time
from pathlib import Path

import sqlalchemy as sa

from gis import db, pgcluster
from gis.errors import Conflict, DatabaseUnavailable, InvalidInput
from gis.pgcluster import LocalCluster

KEEP = 3  # base backups kept; older ones and the WAL only they needed are removed
INFO = "ga-base-backup.json"  # written into each base backup: when it was taken
RECOVERY_KEYS = ("restore_command", "recovery_target_time", "recovery_target_action")


def _engine(cluster: LocalCluster) -> sa.Engine:
    return db.create_engine(
        cluster.url("postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool
    )


def _server_now(cluster: LocalCluster) -> dt.datetime:
    eng = _engine(cluster)
    try:
        with eng.connect() as conn:
            return conn.scalar(sa.text("SELECT clock_timestamp()"))
    finally:
        eng.dispose()


def is_archiving(cluster: LocalCluster) -> bool:
    """Whether the running server archives its WAL into the cluster's archive."""
    eng = _engine(cluster)
    try:
        with eng.connect() as conn:
            mode = conn.scalar(sa.text("SELECT current_setting('archive_mode')"))
            command = conn.scalar(sa.text("SELECT current_setting('archive_command')"))
    finally:
        eng.dispose()
    return mode == "on" and str(cluster.wal_archive) in command


def turn_archiving_on(cluster: LocalCluster) -> None:
    """Configure archiving on a cluster made before it existed (takes effect at restart)."""
    pgcluster.make_service_dir(cluster.wal_archive)
    eng = _engine(cluster)
    try:
        with eng.connect() as conn:
            for key, value in pgcluster.archive_settings(cluster.wal_archive).items():
                conn.execute(sa.text(f"ALTER SYSTEM SET {key} = {value}"))  # our own values
    finally:
        eng.dispose()


def archive_now(cluster: LocalCluster, timeout_s: float = 60) -> None:
    """Close the current WAL segment and wait until the archive has it."""
    eng = _engine(cluster)
    try:
        with eng.connect() as conn:
            segment = conn.scalar(sa.text("SELECT pg_walfile_name(pg_switch_wal())"))
            deadline = time.monotonic() + timeout_s
            while not (cluster.wal_archive / segment).exists():
                failed = conn.scalar(sa.text("SELECT last_failed_wal FROM pg_stat_archiver"))
                if time.monotonic() > deadline:
                    raise DatabaseUnavailable(
                        f"WAL segment {segment} was not archived within {timeout_s:.0f} s "
                        f"(last failure: {failed or 'none'}); see {cluster.log_file}"
                    )
                time.sleep(0.1)
    finally:
        eng.dispose()


def base_backup(cluster: LocalCluster, into: Path | None = None) -> Path:
    """Copy the running cluster into a new base backup and return its folder."""
    pgcluster.ensure_up(cluster)
    if not is_archiving(cluster):
        turn_archiving_on(cluster)
        raise Conflict(
            "WAL archiving was off on this cluster (made before it existed); it is now set "
            "and starts with the server: run `gridatlas db down` and `gridatlas db up`, then "
            "`gridatlas backup base` again",
            key="pitr.archiving_was_off",
        )
    parent = into or cluster.base_backups
    pgcluster.make_service_dir(parent)
    started = _server_now(cluster)
    dest = parent / f"base-{started.astimezone(dt.UTC):%Y%m%dT%H%M%S%fZ}"
    env = {**os.environ, "PGPASSWORD": cluster.password_file.read_text().strip()}
    pgcluster._run(  # noqa: SLF001 - as the service user, like every server program
        [
            str(pgcluster.find_bin_dir() / "pg_basebackup"),
            *("-h", "127.0.0.1", "-p", str(cluster.port), "-U", pgcluster.SUPERUSER),
            *("-D", str(dest), "-Fp", "-X", "stream", "-c", "fast", "--no-password"),
        ],
        env=env,
    )
    archive_now(cluster)  # the segment the backup ended in is in the archive too
    finished = _server_now(cluster)
    info = {"started": started.isoformat(), "finished": finished.isoformat()}
    (dest / INFO).write_text(json.dumps(info))
    _prune(parent, cluster.wal_archive)
    return dest


def list_base_backups(parent: Path) -> list[tuple[dt.datetime, Path]]:
    """(finished, folder) of every complete base backup under ``parent``, oldest first."""
    found = []
    for info in sorted(parent.glob(f"base-*/{INFO}")):
        finished = dt.datetime.fromisoformat(json.loads(info.read_text())["finished"])
        found.append((finished, info.parent))
    return sorted(found)


def _prune(parent: Path, archive: Path) -> None:
    backups = list_base_backups(parent)
    for _finished, folder in backups[:-KEEP]:
        shutil.rmtree(folder)
    oldest = backups[-KEEP:][0][1]
    label = (oldest / "backup_label").read_text()
    first_wal = label.split("(file ", 1)[1].split(")", 1)[0]  # START WAL LOCATION: … (file X)
    pgcluster._run([str(pgcluster.find_bin_dir() / "pg_archivecleanup"), str(archive), first_wal])  # noqa: SLF001


def recover_to(
    cluster: LocalCluster,
    moment: dt.datetime,
    target_root: Path | None = None,
    *,
    replace: bool = False,
) -> LocalCluster:
    """Rebuild the state of ``cluster`` at ``moment`` and start it; return the cluster.

    With ``target_root`` the result is a new cluster there (on a free port, archiving into
    its own folder) and ``cluster`` keeps running; without it the recovery takes the place
    of ``cluster``'s data, which is moved aside (``data.before-recovery-…``) — only with
    ``replace``.
    """
    if moment.tzinfo is None:
        raise InvalidInput("give the moment with its time zone, e.g. 2026-12-01 23:10:05+00:00")
    candidates = [(f, p) for f, p in list_base_backups(cluster.base_backups) if f <= moment]
    if not candidates:
        raise InvalidInput(
            f"no base backup was finished before {moment.isoformat()}: a recovery starts "
            f"from one (`gridatlas backup base`, kept in {cluster.base_backups})",
            key="pitr.no_base_backup",
            moment=moment.isoformat(),
            folder=str(cluster.base_backups),
        )
    _finished, base = candidates[-1]
    if pgcluster.is_running(cluster):
        if moment > _server_now(cluster):
            raise InvalidInput(
                f"{moment.isoformat()} is in the future", key="pitr.future", moment=moment
            )
        archive_now(cluster)  # the newest changes are in the archive, not only in pg_wal
    if target_root is None:
        if not replace:
            raise Conflict(
                f"recovering in place replaces the data of {cluster.root} (it is kept aside "
                "in data.before-recovery-…): add --force, or --target-dir DIR for a copy",
                key="pitr.in_place_needs_force",
                root=str(cluster.root),
            )
        target = cluster
        pgcluster.stop(cluster)
        aside = cluster.root / f"data.before-recovery-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}"
        cluster.data_dir.rename(aside)
    else:
        target = _new_cluster_beside(cluster, Path(target_root))
    _lay_out(base, target, cluster.wal_archive, moment, own_archive=target is not cluster)
    pgcluster.start(target)
    _wait_promoted(target)
    return target


def _new_cluster_beside(cluster: LocalCluster, root: Path) -> LocalCluster:
    if root.exists() and any(root.iterdir()):
        raise InvalidInput(
            f"{root} is not empty; give a new folder for the recovered cluster",
            key="pitr.target_not_empty",
            root=str(root),
        )
    root.mkdir(parents=True, exist_ok=True)
    target = LocalCluster(root)
    shutil.copy2(cluster.password_file, target.password_file)
    target.port_file.write_text(f"{pgcluster._free_port()}\n")  # noqa: SLF001
    if pgcluster._is_root():  # noqa: SLF001
        target.log_file.touch()
        pgcluster._chown_to_service_user(target.log_file)  # noqa: SLF001
    return target


def _lay_out(
    base: Path, target: LocalCluster, archive: Path, moment: dt.datetime, *, own_archive: bool
) -> None:
    """The base backup as the target's data, told to replay ``archive`` up to ``moment``."""
    shutil.copytree(base, target.data_dir, ignore=shutil.ignore_patterns(INFO, "postmaster.pid"))
    settings = {
        "restore_command": "'" + f"cp {shlex.quote(str(archive))}/%f %p".replace("'", "''") + "'",
        "recovery_target_time": f"'{moment.isoformat()}'",
        "recovery_target_action": "'promote'",
    }
    if own_archive:  # a copy must not write its new timeline into the original's archive
        settings.update(pgcluster.archive_settings(target.wal_archive))
        pgcluster.make_service_dir(target.wal_archive)
    with (target.data_dir / "postgresql.auto.conf").open("a") as fh:
        for key, value in settings.items():
            fh.write(f"{key} = {value}\n")
    (target.data_dir / "recovery.signal").touch()
    os.chmod(target.data_dir, 0o700)
    if pgcluster._is_root():  # noqa: SLF001
        pgcluster._open_path_for_service_user(target.data_dir)  # noqa: SLF001
        for path in [target.data_dir, *target.data_dir.rglob("*")]:
            shutil.chown(path, pgcluster.SERVICE_USER_WHEN_ROOT, pgcluster.SERVICE_USER_WHEN_ROOT)


def _wait_promoted(target: LocalCluster, timeout_s: float = 300) -> None:
    """Wait until recovery reached its moment and the server accepts writes; then drop the
    recovery settings (a later restart must not replay again)."""
    deadline = time.monotonic() + timeout_s
    eng = _engine(target)
    try:
        while True:
            try:
                with eng.connect() as conn:
                    if not conn.scalar(sa.text("SELECT pg_is_in_recovery()")):
                        for key in RECOVERY_KEYS:
                            conn.execute(sa.text(f"ALTER SYSTEM RESET {key}"))
                        conn.execute(sa.text("SELECT pg_reload_conf()"))
                        return
            except sa.exc.OperationalError:
                pass
            if time.monotonic() > deadline or not pgcluster.is_running(target):
                tail = target.log_file.read_text(errors="replace").strip().splitlines()[-5:]
                raise DatabaseUnavailable("recovery did not finish: " + " | ".join(tail))
            time.sleep(0.2)
    finally:
        eng.dispose()
