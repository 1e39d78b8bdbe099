"""Point-in-time recovery of a local cluster of its own: back to a moment before a mass delete.

The cluster archives its WAL from the start (``pgcluster.initialise``); a base backup is
taken, rows are written, the moment T is noted, more rows are written and then most rows
are deleted. Recovered into a second cluster at T, the deleted rows are back and the rows
written after T are not; the first cluster is left running as it was.
"""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from cli.common import EXIT_BAD_INPUT
from gis import db, pgcluster, pitr
from gis.errors import Conflict, InvalidInput


def _execute(cluster: pgcluster.LocalCluster, sql: str) -> object:
    eng = db.create_engine(cluster.url("postgres"), poolclass=sa.NullPool)
    try:
        with eng.begin() as conn:
            result = conn.execute(sa.text(sql))
            return result.scalar() if result.returns_rows else None
    finally:
        eng.dispose()


@pytest.fixture(scope="module")
def archived_cluster(tmp_path_factory):
    cluster = pgcluster.LocalCluster(tmp_path_factory.mktemp("pg-pitr") / "pg")
    pgcluster.ensure_up(cluster)
    yield cluster
    pgcluster.stop(cluster)


def test_recovery_to_a_moment_before_a_mass_delete(archived_cluster, tmp_path) -> None:
    cluster = archived_cluster
    assert pitr.is_archiving(cluster)
    _execute(cluster, "CREATE TABLE patrol_log (n int PRIMARY KEY, note text)")
    _execute(cluster, "INSERT INTO patrol_log SELECT n, 'before the base backup' "
                      "FROM generate_series(1, 500) n")  # fmt: skip
    base = pitr.base_backup(cluster)
    assert (base / "backup_label").exists()
    _execute(cluster, "INSERT INTO patrol_log SELECT n, 'after the base backup' "
                      "FROM generate_series(501, 1000) n")  # fmt: skip
    moment = _execute(cluster, "SELECT clock_timestamp()")
    time.sleep(1.0)  # the commits below are clearly after T
    _execute(
        cluster, "INSERT INTO patrol_log SELECT n, 'after T' FROM generate_series(1001, 1100) n"
    )
    _execute(cluster, "DELETE FROM patrol_log WHERE n <= 1000")  # the mistake
    assert _execute(cluster, "SELECT count(*) FROM patrol_log") == 100

    copy = pitr.recover_to(cluster, moment, tmp_path / "recovered")
    try:
        assert copy.port != cluster.port
        assert _execute(copy, "SELECT count(*) FROM patrol_log") == 1000  # the rows are back
        assert _execute(copy, "SELECT count(*) FROM patrol_log WHERE n > 1000") == 0
        assert _execute(copy, "SELECT count(*) FROM patrol_log WHERE note = 'after the base "
                              "backup'") == 500  # replayed from the WAL archive  # fmt: skip
        assert _execute(copy, "SELECT NOT pg_is_in_recovery()")  # open for writes again
        _execute(copy, "INSERT INTO patrol_log VALUES (2000, 'written after recovery')")
        # the original is untouched and archives on; the copy archives into its own folder
        assert _execute(cluster, "SELECT count(*) FROM patrol_log") == 100
        assert "recovered" in _execute(copy, "SELECT current_setting('archive_command')")
        # a later restart does not replay again: the recovery settings are gone
        assert "recovery_target_time" not in (copy.data_dir / "postgresql.auto.conf").read_text()
        assert not (copy.data_dir / "recovery.signal").exists()
    finally:
        pgcluster.stop(copy)


def test_recovery_refuses_what_it_cannot_do(archived_cluster, tmp_path) -> None:
    import datetime as dt

    long_ago = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    with pytest.raises(InvalidInput, match="no base backup was finished before"):
        pitr.recover_to(archived_cluster, long_ago, tmp_path / "x")
    now = _execute(archived_cluster, "SELECT clock_timestamp()")
    if not pitr.list_base_backups(archived_cluster.base_backups):
        pitr.base_backup(archived_cluster)
        now = _execute(archived_cluster, "SELECT clock_timestamp()")
    with pytest.raises(Conflict, match="--force"):
        pitr.recover_to(archived_cluster, now)  # in place, without being told to
    assert pgcluster.is_running(archived_cluster)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "something").write_text("x")
    with pytest.raises(InvalidInput, match="not empty"):
        pitr.recover_to(archived_cluster, now, busy)


def test_the_command_says_what_is_wrong_with_a_time(tmp_path) -> None:
    from tests.conftest import cli

    result = cli("restore", "--to-time", "yesterday-ish", GRIDATLAS_VAR_DIR=str(tmp_path))
    assert result.returncode == EXIT_BAD_INPUT
    assert "is not a time" in result.stderr


def test_the_archive_command_accepts_again_a_segment_it_has(tmp_path) -> None:
    """A server killed after copying a segment but before noting it asks again: the same
    bytes count as archived (else archiving stops for good), different bytes are refused."""
    import subprocess

    archive = tmp_path / "archive"
    archive.mkdir()
    value = pgcluster.archive_settings(archive)["archive_command"]
    command = value[1:-1].replace("''", "'")
    segment = tmp_path / "000000010000000000000007"
    segment.write_bytes(b"wal bytes")

    def archive_it() -> int:
        line = command.replace("%p", str(segment)).replace("%f", segment.name)
        return subprocess.run(["sh", "-c", line]).returncode  # as the server runs it

    assert archive_it() == 0 and (archive / segment.name).read_bytes() == b"wal bytes"
    assert archive_it() == 0  # asked again after a crash
    segment.write_bytes(b"other bytes")
    assert archive_it() != 0  # never over a different segment
    assert (archive / segment.name).read_bytes() == b"wal bytes"
    assert not list(archive.glob("*.part"))
