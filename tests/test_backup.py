"""``gridatlas backup`` / ``gridatlas restore`` as a user runs them, on a real database.

The round trip is checked independently of the command's own report: the tables' counts
and checksums are computed here before the backup and after the restore.
"""

from __future__ import annotations

import json
import threading

import sqlalchemy as sa

from gis import backup as backups
from gis import db
from gis.security import hash_password
from tests.conftest import SHANGHAI, _admin_execute, _with_db, cli


def _sums(url: str) -> dict[str, backups.TableSum]:
    eng = db.create_engine(url, poolclass=sa.NullPool)
    try:
        with eng.begin() as conn:
            return backups.table_sums(conn)
    finally:
        eng.dispose()


def _filled(db_url: str, engine) -> None:
    """Shanghai's buildings and streets, a login (bytea, jsonb, timestamps and all)."""
    assert cli("import", "-q", str(SHANGHAI), db_url=db_url).returncode == 0
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO app_user (username, role, password_hash) "
                "VALUES ('backup_admin', 'admin', :p)"
            ),
            {"p": hash_password("backup-test-password")},
        )


def test_backup_and_restore_round_trip_every_table(db_url, engine, tmp_path) -> None:
    _filled(db_url, engine)
    before = _sums(db_url)
    assert before["building"].rows == 226 and before["app_user"].rows >= 1
    dump = tmp_path / "atlas.dump"

    made = cli("backup", str(dump), db_url=db_url)
    assert made.returncode == 0, made.stderr
    assert "verified" in made.stdout and "DIFFERS" not in made.stdout
    assert f"  building{'226':>{28 - len('building') + 10}}" in made.stdout
    manifest = json.loads(backups.manifest_path(dump).read_text())
    assert manifest["tables"]["building"] == {"rows": 226, "md5": before["building"].md5}
    assert not list(tmp_path.glob(".*partial*"))  # nothing half-written is left

    with engine.begin() as conn:  # the mass delete a backup is for
        conn.execute(sa.text("DELETE FROM building"))
        conn.execute(sa.text("UPDATE app_user SET username = 'changed_name' "
                             "WHERE username = 'backup_admin'"))  # fmt: skip
    refused = cli("restore", str(dump), db_url=db_url)
    assert refused.returncode == 2
    assert "already holds data" in refused.stderr and "--force" in refused.stderr
    assert _sums(db_url)["building"].rows == 0  # refused: nothing touched

    done = cli("restore", str(dump), "--force", db_url=db_url)
    assert done.returncode == 0, done.stderr
    assert _sums(db_url) == before  # every table: the same rows, the same checksums
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM app_user WHERE username = 'backup_admin'"))


def test_restore_into_a_new_database_needs_no_force(db_url, engine, tmp_path, server_url) -> None:
    _filled(db_url, engine)
    dump = tmp_path / "atlas.dump"
    assert cli("backup", str(dump), db_url=db_url).returncode == 0
    other = _with_db(server_url, db.make_url(db_url).database + "_copy")
    try:
        done = cli("restore", str(dump), db_url=other)
        assert done.returncode == 0, done.stderr
        assert _sums(other) == _sums(db_url)
    finally:
        _admin_execute(server_url, f'DROP DATABASE IF EXISTS "{db.make_url(other).database}"')


def test_a_backup_taken_under_writes_is_one_consistent_moment(db_url, engine, tmp_path) -> None:
    _filled(db_url, engine)
    stop = threading.Event()

    def write() -> None:  # keeps changing two tables while the dump runs
        n = 0
        while not stop.is_set():
            n += 1
            with engine.begin() as conn:
                conn.execute(sa.text("UPDATE building SET name = :n WHERE id = "
                                     "(SELECT min(id) FROM building)"), {"n": f"w{n}"})  # fmt: skip
                conn.execute(sa.text("INSERT INTO app_user (username, role, password_hash) "
                                     "VALUES (:u, 'admin', 'x')"), {"u": f"wr_{n}"})  # fmt: skip

    writer = threading.Thread(target=write)
    writer.start()
    try:
        made = cli("backup", str(tmp_path / "live.dump"), db_url=db_url)
    finally:
        stop.set()
        writer.join()
    assert made.returncode == 0, made.stderr  # the trial restore equalled the snapshot
    assert "DIFFERS" not in made.stdout


def test_restore_refuses_what_is_not_a_backup(db_url, tmp_path) -> None:
    sql = tmp_path / "plain.sql"
    sql.write_text("-- PostgreSQL database dump\nCREATE TABLE x (a int);\n")
    result = cli("restore", str(sql), db_url=db_url)
    assert result.returncode == 2
    assert "not a backup made by `gridatlas backup`" in result.stderr
    assert "plain SQL dump" in result.stderr and "psql" in result.stderr
    missing = cli("restore", str(tmp_path / "nothing.dump"), db_url=db_url)
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_restore_refuses_a_truncated_or_unaccompanied_dump(db_url, engine, tmp_path) -> None:
    _filled(db_url, engine)
    dump = tmp_path / "atlas.dump"
    assert cli("backup", str(dump), db_url=db_url).returncode == 0
    data = dump.read_bytes()
    dump.write_bytes(data[: len(data) // 2])
    cut = cli("restore", str(dump), "--force", db_url=db_url)
    assert cut.returncode == 2 and "truncated or changed" in cut.stderr
    backups.manifest_path(dump).unlink()
    alone = cli("restore", str(dump), "--force", db_url=db_url)
    assert alone.returncode == 2 and "manifest.json is missing" in alone.stderr
    assert _sums(db_url)["building"].rows == 226  # refused before anything was touched


def test_a_freshly_migrated_database_counts_as_empty(db_url, engine) -> None:
    assert backups.has_data(db_url) == {}  # its seeded rows are not data to protect
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO app_user (username, role, password_hash) "
                             "VALUES ('someone', 'admin', 'x')"))  # fmt: skip
    assert backups.has_data(db_url) == {"app_user": _sums(db_url)["app_user"].rows}
