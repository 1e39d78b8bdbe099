"""Backups of the project database (pg_dump custom format) and restores, both verified.

A backup is checked by a round trip before it is kept: the dump and the row counts and
checksums of every table are taken from one snapshot (``pg_export_snapshot``), the dump is
restored into a scratch database on the same server, and every table's count and checksum
there must equal the source's. The figures go into a manifest next to the dump
(``FILE.manifest.json``, with the dump's SHA-256); a restore checks the file against it,
restores into a scratch database, compares again, and only then puts the restored
database in the place of the old one (a rename), so a restore that fails leaves the
database as it was. The programs are Debian's, from the bin dir of ``pgcluster``.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gis import db, pgcluster
from gis.errors import Conflict, DatabaseUnavailable, InvalidInput

MAGIC = b"PGDMP"  # the first bytes of a pg_dump custom-format archive
# Schemas that are PostgreSQL's own; every other table is data to count.
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")


@dataclass(frozen=True)
class TableSum:
    """One table's row count and checksum (the md5 of its rows' md5s, sorted)."""

    rows: int
    md5: str


@dataclass
class Outcome:
    """What a backup or restore did, and the figures it compared."""

    path: Path
    database: str
    source: dict[str, TableSum]
    copy: dict[str, TableSum] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def differing(self) -> list[str]:
        """Tables whose count or checksum differ between source and copy."""
        names = sorted(set(self.source) | set(self.copy))
        return [n for n in names if self.source.get(n) != self.copy.get(n)]

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.source.values())


def manifest_path(path: Path) -> Path:
    return path.with_name(path.name + ".manifest.json")


# --- table sums ------------------------------------------------------------------------


def table_sums(conn: sa.Connection) -> dict[str, TableSum]:
    """Count and checksum every table outside PostgreSQL's own schemas.

    Each row's text form is hashed and the hashes are sorted before they are hashed
    together, so the figure depends on the rows, not on their physical order (which a
    restore changes). Row-level security is turned off for the session: a role it would
    apply to gets an error, never a silently smaller count.
    """
    conn.execute(sa.text("SET LOCAL row_security = off"))
    tables = conn.execute(
        sa.text(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') "
            "AND n.nspname <> ALL(:sys) AND n.nspname NOT LIKE 'pg_temp%' ORDER BY 1, 2"
        ),
        {"sys": list(SYSTEM_SCHEMAS)},
    ).all()
    sums = {}
    for schema, name in tables:
        qualified = f'"{schema}"."{name}"'  # names from the catalogue, never from a caller
        rows, digest = conn.execute(
            sa.text(
                f"SELECT count(*), md5(coalesce(string_agg(h, '' ORDER BY h), '')) "
                f"FROM (SELECT md5(t::text) AS h FROM {qualified} t) s"
            )
        ).one()
        label = name if schema == "public" else f"{schema}.{name}"
        sums[label] = TableSum(int(rows), str(digest))
    return sums


def has_data(url: str) -> dict[str, int]:
    """Tables of the database of ``url`` with more rows than the migrations alone put in
    (a freshly migrated database has a few: the schema's version, seeded settings and
    accounts), with their counts."""
    engine = db.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.begin() as conn:
            rows = {n: s.rows for n, s in table_sums(conn).items() if s.rows}
    finally:
        engine.dispose()
    if not rows:
        return {}
    fresh = _fresh_counts(url)
    return {n: r for n, r in rows.items() if r > fresh.get(n, 0)}


def _fresh_counts(url: str) -> dict[str, int]:
    """Row counts of a database freshly migrated beside ``url`` (made, counted, dropped)."""
    name = f"{db.make_url(url).database}_fresh_{secrets.token_hex(4)}"
    fresh = _on(url, name)
    try:
        db.ensure_database(fresh)
        db.migrate(fresh)
        engine = db.create_engine(fresh, poolclass=sa.NullPool)
        try:
            with engine.begin() as conn:
                return {n: s.rows for n, s in table_sums(conn).items()}
        finally:
            engine.dispose()
    finally:
        _drop(url, name)


# --- the client programs ----------------------------------------------------------------


def _client_env(url: str) -> dict[str, str]:
    """libpq's variables for ``url``: the password stays out of the process list."""
    u = db.make_url(url)
    env = {**os.environ, "PGHOST": u.host or "127.0.0.1", "PGPORT": str(u.port or 5432)}
    if u.username:
        env["PGUSER"] = u.username
    if u.password:
        env["PGPASSWORD"] = str(u.password)
    if "sslmode" in u.query:
        env["PGSSLMODE"] = str(u.query["sslmode"])
    env["PGDATABASE"] = u.database or "postgres"
    return env


def _run_client(program: str, args: list[str], url: str) -> None:
    proc = subprocess.run(
        [str(pgcluster.find_bin_dir() / program), *args],
        env=_client_env(url),
        capture_output=True,
        text=True,
        cwd="/",
    )
    if proc.returncode != 0:
        raise DatabaseUnavailable(f"{program} failed: {proc.stderr.strip()[-800:]}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --- scratch databases ------------------------------------------------------------------


def _admin(url: str) -> Engine:
    u = db.make_url(url).set(database="postgres").render_as_string(hide_password=False)
    return db.create_engine(u, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)


def _on(url: str, database: str) -> str:
    return db.make_url(url).set(database=database).render_as_string(hide_password=False)


def _create_scratch(url: str, purpose: str) -> str:
    """An empty database beside the project's (template0: the dump brings the extensions)."""
    name = f"{db.make_url(url).database}_{purpose}_{secrets.token_hex(4)}"
    admin = _admin(url)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE template0'))
            # the dump's grants and policies name the app's group role (migration 0005)
            if not conn.scalar(
                sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": db.APP_ROLE}
            ):
                conn.execute(sa.text(f"CREATE ROLE {db.APP_ROLE} NOLOGIN"))
    finally:
        admin.dispose()
    return name


def _drop(url: str, database: str) -> None:
    admin = _admin(url)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    finally:
        admin.dispose()


def _restore_into(url: str, dump: Path, database: str) -> dict[str, TableSum]:
    """pg_restore ``dump`` into the empty ``database`` in one transaction; its sums."""
    _run_client(
        "pg_restore",
        ["--no-owner", "--exit-on-error", "--single-transaction", "-d", database, str(dump)],
        _on(url, database),
    )
    engine = db.create_engine(_on(url, database), poolclass=sa.NullPool)
    try:
        with engine.begin() as conn:
            return table_sums(conn)
    finally:
        engine.dispose()


# --- backup ----------------------------------------------------------------------------


def backup(url: str, path: Path) -> Outcome:
    """Dump the database of ``url`` to ``path``, verified by a restore into a scratch
    database; nothing is left at ``path`` unless the round trip gave equal tables.

    Raises
    ------
    InvalidInput
        ``path`` is a folder or its folder does not exist.
    Conflict
        The round trip gave different counts or checksums (names the tables).
    DatabaseUnavailable
        The server or pg_dump/pg_restore failed (their message is kept).
    """
    path = Path(path)
    if path.is_dir():
        raise InvalidInput(
            f"{path} is a folder; give a file name, e.g. {path}/gridatlas.dump",
            key="backup.is_folder",
            path=str(path),
        )
    if not path.parent.is_dir():
        raise InvalidInput(
            f"{path.parent} does not exist; create it or choose another folder",
            key="backup.no_folder",
            folder=str(path.parent),
        )
    database = db.make_url(url).database or "postgres"
    partial = path.with_name(f".{path.name}.partial-{secrets.token_hex(4)}")
    engine = db.create_engine(url, poolclass=sa.NullPool)
    scratch = None
    try:
        # One snapshot for the dump and the sums: the API may go on writing meanwhile.
        snap = engine.connect().execution_options(isolation_level="REPEATABLE READ")
        with snap as conn, conn.begin():
            conn.execute(sa.text("SET TRANSACTION READ ONLY"))
            snapshot = conn.scalar(sa.text("SELECT pg_export_snapshot()"))
            _run_client("pg_dump", ["-Fc", f"--snapshot={snapshot}", "-f", str(partial)], url)
            source = table_sums(conn)
            version = conn.scalar(sa.text("SELECT current_setting('server_version')"))
        outcome = Outcome(path, database, source)
        scratch = _create_scratch(url, "verify")
        outcome.copy = _restore_into(url, partial, scratch)
        if outcome.differing:
            raise Conflict(
                "the backup did not restore to the same data (tables "
                f"{', '.join(outcome.differing[:10])}); it was not kept — try again, and "
                "report it if it happens twice",
                key="backup.not_kept",
                tables=", ".join(outcome.differing[:10]),
            )
        manifest = {
            "database": database,
            "server_version": version,
            "sha256": _sha256(partial),
            "tables": {n: {"rows": s.rows, "md5": s.md5} for n, s in source.items()},
        }
        partial_manifest = partial.with_name(partial.name + ".manifest.json")
        partial_manifest.write_text(json.dumps(manifest, indent=1, ensure_ascii=False))
        os.replace(partial, path)
        os.replace(partial_manifest, manifest_path(path))
        return outcome
    except sa.exc.OperationalError as err:
        raise DatabaseUnavailable(f"cannot reach the database: {_first_line(err)}") from err
    finally:
        engine.dispose()
        partial.unlink(missing_ok=True)
        if scratch:
            _drop(url, scratch)


def _first_line(err: sa.exc.DBAPIError) -> str:
    return str(err.orig).strip().splitlines()[0]


# --- restore ---------------------------------------------------------------------------


def read_manifest(path: Path) -> dict[str, TableSum]:
    """Check ``path`` is a dump with its manifest and unchanged; return the sums it holds."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(
            f"{path}: no such file; give the file `gridatlas backup` wrote",
            key="backup.no_file",
            file=str(path),
        )
    with path.open("rb") as fh:
        head = fh.read(len(MAGIC))
    if head != MAGIC:
        hint = {
            b"\x1f\x8b": ("gzip", "it is gzip-compressed: gunzip it first"),
            b"--": ("sql", "it looks like a plain SQL dump: load it with psql instead"),
        }
        kind, reason = next(
            (v for k, v in hint.items() if head.startswith(k)),
            (None, "check that you gave the right file"),
        )
        raise InvalidInput(
            f"{path.name} is not a backup made by `gridatlas backup` (a pg_dump custom-format "
            f"archive); {reason}",
            key="backup.not_a_dump" + (f"_{kind}" if kind else ""),
            file=path.name,
        )
    mpath = manifest_path(path)
    if not mpath.is_file():
        raise InvalidInput(
            f"{mpath.name} is missing: it holds the row counts and checksums the restore is "
            f"checked against; copy it next to {path.name} (backups always write both)",
            key="backup.no_manifest",
            manifest=mpath.name,
            file=path.name,
        )
    try:
        manifest = json.loads(mpath.read_text())
        sums = {n: TableSum(int(t["rows"]), str(t["md5"])) for n, t in manifest["tables"].items()}
        expected_sha = str(manifest["sha256"])
    except (ValueError, KeyError, TypeError) as err:
        raise InvalidInput(
            f"{mpath.name} is damaged ({err}); use the one made with the backup",
            key="backup.bad_manifest",
            manifest=mpath.name,
        ) from err
    if _sha256(path) != expected_sha:
        raise InvalidInput(
            f"{path.name} is not the file its manifest describes (truncated or changed since "
            "the backup: its SHA-256 differs); copy it again from where the backup is kept",
            key="backup.changed",
            file=path.name,
        )
    return sums


def restore(url: str, path: Path, *, force: bool = False) -> Outcome:
    """Restore the backup ``path`` as the database of ``url``, verified before it replaces
    anything; a database that holds data is replaced only with ``force``.

    Raises
    ------
    InvalidInput
        Not a dump, no manifest, a changed file.
    Conflict
        The database holds data and ``force`` is not set; or the restored tables differ.
    DatabaseUnavailable
        The server or pg_restore failed.
    """
    path = Path(path)
    expected = read_manifest(path)
    database = db.make_url(url).database or "postgres"
    try:
        existing = _existing_data(url, database)
        if existing and not force:
            shown = ", ".join(f"{n} ({r:,} rows)" for n, r in list(existing.items())[:3])
            raise Conflict(
                f"the database {database} already holds data ({shown}…); a restore would "
                f"replace all of it. Keep a copy first (`gridatlas backup FILE`), then run "
                f"`gridatlas restore {path} --force`",
                key="backup.holds_data",
                database=database,
                tables=shown,
                file=str(path),
            )
        outcome = Outcome(path, database, expected)
        scratch = _create_scratch(url, "restore")
        try:
            outcome.copy = _restore_into(url, path, scratch)
            if outcome.differing:
                raise Conflict(
                    f"the restored data differ from the backup (tables "
                    f"{', '.join(outcome.differing[:10])}); the database was left as it was",
                    key="backup.restore_differs",
                    tables=", ".join(outcome.differing[:10]),
                )
            _swap_in(url, scratch, database)
            scratch = None
        finally:
            if scratch:
                _drop(url, scratch)
    except sa.exc.OperationalError as err:
        raise DatabaseUnavailable(f"cannot reach the database: {_first_line(err)}") from err
    return outcome


def _existing_data(url: str, database: str) -> dict[str, int]:
    admin = _admin(url)
    try:
        with admin.connect() as conn:
            exists = conn.scalar(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": database}
            )
    finally:
        admin.dispose()
    if not exists:
        return {}
    return has_data(url)


def _swap_in(url: str, scratch: str, database: str) -> None:
    """Put ``scratch`` in the place of ``database`` (closing its connections): renames."""
    old = f"{database}_replaced_{secrets.token_hex(4)}"
    admin = _admin(url)
    try:
        with admin.connect() as conn:
            exists = conn.scalar(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": database}
            )
            if exists:
                conn.execute(sa.text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false'))
                conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :d AND pid <> pg_backend_pid()"
                    ),
                    {"d": database},
                )
                conn.execute(sa.text(f'ALTER DATABASE "{database}" RENAME TO "{old}"'))
            conn.execute(sa.text(f'ALTER DATABASE "{scratch}" RENAME TO "{database}"'))
            if exists:
                conn.execute(sa.text(f'DROP DATABASE "{old}" WITH (FORCE)'))
            _grant_connect(conn, database)
    finally:
        admin.dispose()


def _grant_connect(conn: sa.Connection, database: str) -> None:
    """The database-level rights the API set on the old database (gis/db.py): only its
    login role connects (database rights are not part of a dump)."""
    role = db.app_login_role(database)
    conn.execute(sa.text(f'REVOKE CONNECT, TEMPORARY ON DATABASE "{database}" FROM PUBLIC'))
    if conn.scalar(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}):
        conn.execute(sa.text(f'GRANT CONNECT, TEMPORARY ON DATABASE "{database}" TO {role}'))
