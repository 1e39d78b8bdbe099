"""Engines, databases and migrations. Callers own transactions (one per request or command)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

__all__ = ["make_url"]

from gis import pgcluster
from gis.errors import DatabaseUnavailable
from gis.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def resolve_url(settings: Settings, *, start_local: bool = True) -> str:
    """Return the database URL: ``GRIDATLAS_DATABASE_URL`` or the local cluster's."""
    if settings.database_url:
        return settings.database_url
    cluster = pgcluster.LocalCluster(settings.pg_dir)
    if start_local:
        return pgcluster.ensure_up(cluster)
    if not pgcluster.is_running(cluster):
        raise DatabaseUnavailable(
            "the local database is not running; start it with `gridatlas db up`"
        )
    return cluster.url()


def create_engine(url: str, **kwargs: object) -> Engine:
    """Return an engine for ``url`` (psycopg 3 driver), checking connections before use."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return sa.create_engine(u, pool_pre_ping=True, **kwargs)  # type: ignore[arg-type]


def ensure_database(url: str) -> None:
    """Create the database of ``url`` if missing, with PostGIS, pgRouting and pgcrypto."""
    u = make_url(url)
    admin = create_engine(
        u.set(database="postgres").render_as_string(hide_password=False),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.NullPool,
    )
    try:
        with admin.connect() as conn:
            exists = conn.scalar(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": u.database}
            )
            if not exists:
                conn.execute(sa.text(f'CREATE DATABASE "{u.database}"'))
    except sa.exc.OperationalError as err:
        raise DatabaseUnavailable(
            f"cannot reach PostgreSQL at {u.host}:{u.port}: {str(err.orig).strip().splitlines()[0]}"
        ) from err
    finally:
        admin.dispose()
    eng = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with eng.connect() as conn:
            for ext in pgcluster.EXTENSIONS:
                conn.execute(sa.text(f"CREATE EXTENSION IF NOT EXISTS {ext}"))
    finally:
        eng.dispose()


def alembic_config(url: str) -> Config:  # noqa: F821 - alembic is imported lazily
    """Return an Alembic configuration pointing at our migrations and ``url``."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str, revision: str = "head") -> None:
    """Bring the schema of ``url`` to ``revision``."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


# The newest migration. Kept here so that every command can check the schema with one query
# instead of loading Alembic (a test keeps it equal to the migrations' head).
SCHEMA_HEAD = "0006"


def head_revision() -> str:
    """Return the newest migration's revision id, read from the migration files."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head() or ""


def is_at_head(engine: Engine) -> bool:
    """Return whether the database exists and its schema is at the newest revision."""
    try:
        return current_revision(engine) == SCHEMA_HEAD
    except sa.exc.OperationalError:
        return False  # no such database yet, or not reachable: the full path reports it


def current_revision(engine: Engine) -> str | None:
    """Return the schema revision of the database, or None before any migration."""
    with engine.connect() as conn:
        has = conn.scalar(sa.text("SELECT to_regclass('alembic_version') IS NOT NULL"))
        if not has:
            return None
        return conn.scalar(sa.text("SELECT version_num FROM alembic_version"))


APP_ROLE = "gridatlas_app"  # made by migration 0005: owns nothing, cannot bypass RLS


def app_role_url(owner_url: str, password: str) -> str:
    """Enable logins of the app's role with ``password``; return its URL on the same server.

    Runs once at start-up with the owner's URL; every request then runs as the app's role,
    which row-level security applies to. ``password`` must be hex (it is written inline:
    ALTER ROLE takes no parameters).
    """
    if not all(c in "0123456789abcdef" for c in password):
        raise ValueError("the app role's password must be lower-case hex")
    eng = create_engine(owner_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with eng.connect() as conn:
            if not conn.scalar(
                sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": APP_ROLE}
            ):
                raise DatabaseUnavailable(
                    f"the database has no {APP_ROLE} role: apply the migrations "
                    "(`gridatlas db up` or `gridatlas demo`)"
                )
            app_url = make_url(owner_url).set(username=APP_ROLE, password=password)
            app_url = app_url.render_as_string(hide_password=False)
            if _can_log_in(app_url):
                return app_url  # set up by an earlier start (or another worker): nothing to do
            # Several workers start at once: one at a time (two ALTER ROLE of the same role
            # at once fail with "tuple concurrently updated").
            conn.execute(sa.text("SELECT pg_advisory_lock(hashtext('gridatlas_app role'))"))
            try:
                conn.execute(sa.text(f"ALTER ROLE {APP_ROLE} WITH LOGIN PASSWORD '{password}'"))
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(hashtext('gridatlas_app role'))"))
    finally:
        eng.dispose()
    return app_url


def _can_log_in(url: str) -> bool:
    eng = create_engine(url, poolclass=sa.NullPool)
    try:
        with eng.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True
    except sa.exc.OperationalError:
        return False
    finally:
        eng.dispose()
