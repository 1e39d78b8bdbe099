"""Engines, databases and migrations. Callers own transactions (one per request or command)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine
from sqlalchemy.engine import make_url as _sa_make_url

__all__ = ["make_url"]

from gis import pgcluster
from gis.errors import DatabaseUnavailable
from gis.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_MULTI_HOST = re.compile(
    r"^(?P<scheme>[^:/]+://)(?P<user>[^@/]*@)?(?P<hosts>[^/?@]*,[^/?@]*)(?P<rest>[/?].*)?$"
)


def make_url(url: str | URL) -> URL:
    """SQLAlchemy's ``make_url``, also for libpq's multi-host form (``@h1:p1,h2:p2/db``,
    as ``gridatlas db ha`` prints it), which SQLAlchemy reads as ``?host=h1:p1&host=h2:p2``."""
    if isinstance(url, str) and (m := _MULTI_HOST.match(url)):
        rest = m["rest"] or "/"
        path, _, query = rest.partition("?")
        hosts = "&".join(f"host={h.strip()}" for h in m["hosts"].split(",") if h.strip())
        url = f"{m['scheme']}{m['user'] or ''}{path}?{hosts}" + (f"&{query}" if query else "")
    return _sa_make_url(url)


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


def follow_local_cluster(engine: Engine, cluster: pgcluster.LocalCluster) -> None:
    """Make ``engine`` connect to the local cluster's current port, whatever it was at start.

    The cluster keeps its port across restarts, but moves when another program has taken
    it (``pgcluster.start``). Each new connection reads the port file, so a running API
    finds the database again without a restart. Only for the local cluster: a configured
    URL is left as it is.
    """

    @sa.event.listens_for(engine, "do_connect")
    def _current_port(dialect: object, conn_rec: object, cargs: object, cparams: dict) -> None:
        with contextlib.suppress(OSError, ValueError):  # no port file: connect as configured
            cparams["port"] = cluster.port


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
    url = make_url(url).render_as_string(hide_password=False)  # a multi-host URL too
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str, revision: str = "head") -> None:
    """Bring the schema of ``url`` to ``revision``."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


# The newest migration. Kept here so that every command can check the schema with one query
# instead of loading Alembic (a test keeps it equal to the migrations' head).
SCHEMA_HEAD = "0020"


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


APP_ROLE = "gridatlas_app"  # made by migration 0005: the group that holds the app's rights


def app_login_role(database: str) -> str:
    """The login role of one database: a member of APP_ROLE that may connect to it alone.

    Each database has its own, so that two instances on one server never rewrite each
    other's password and a role of one database has no way into another.
    """
    slug = re.sub(r"[^a-z0-9_]", "_", database.lower())[:40]
    return f"ga_app_{slug}_{hashlib.sha256(database.encode()).hexdigest()[:8]}"


def _derive(base_hex: str, purpose: str, database: str) -> bytes:
    return hmac.new(bytes.fromhex(base_hex), f"{purpose}|{database}".encode(), "sha256").digest()


def login_secret(base_password: str, database: str) -> bytes:
    """The key the app proves its logins with (``ga_login_record``), one per database."""
    return _derive(base_password, "login-proof", database)


def app_role_url(owner_url: str, password: str) -> str:
    """Set up the login role of the URL's database; return its URL on the same server.

    Runs at start-up with the owner's URL; every request then runs as that role, which
    owns nothing and to which row-level security applies. ``password`` is the hex secret
    (``Keys.db_password()``); the role's own password is derived from it and the database
    name. The owner also stores the login-proof key in ``ga_secret``.
    """
    if not password or not all(c in "0123456789abcdef" for c in password):
        raise ValueError("the app role's password must be lower-case hex")
    owner = make_url(owner_url)
    database = owner.database or "postgres"
    role = app_login_role(database)
    role_password = _derive(password, "db-role", database).hex()
    app_url = owner.set(username=role, password=role_password)
    app_url = app_url.render_as_string(hide_password=False)
    eng = create_engine(owner_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with eng.connect() as conn:
            if not conn.scalar(
                sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": APP_ROLE}
            ) or not conn.scalar(sa.text("SELECT to_regclass('ga_secret') IS NOT NULL")):
                raise DatabaseUnavailable(
                    f"the database is not at the newest schema (no {APP_ROLE} role or "
                    "ga_secret table): apply the migrations (`gridatlas db up`)"
                )
            # Several workers start at once: one at a time (two ALTER ROLE of the same role
            # at once fail with "tuple concurrently updated").
            conn.execute(sa.text("SELECT pg_advisory_lock(hashtext(:r))"), {"r": role})
            try:
                _set_up_login_role(conn, role, role_password, app_url)
                conn.execute(
                    sa.text(
                        "INSERT INTO ga_secret (name, value) VALUES ('login', :v) "
                        "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value"
                    ),
                    {"v": login_secret(password, database)},
                )
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(hashtext(:r))"), {"r": role})
    except sa.exc.ProgrammingError as err:
        raise DatabaseUnavailable(
            f"cannot set up the app's database role {role}: {str(err.orig).splitlines()[0]} "
            "(the database owner needs CREATEROLE, or set GRIDATLAS_APP_DATABASE_URL)"
        ) from err
    finally:
        eng.dispose()
    return app_url


def app_role_url_unchecked(owner_url: str, password: str) -> str:
    """The login role's URL without setting anything up (the database is down: the role
    set up by an earlier start works when it comes back)."""
    owner = make_url(owner_url)
    database = owner.database or "postgres"
    role_password = _derive(password, "db-role", database).hex()
    url = owner.set(username=app_login_role(database), password=role_password)
    return url.render_as_string(hide_password=False)


def _set_up_login_role(conn: sa.Connection, role: str, password: str, app_url: str) -> None:
    exists = conn.scalar(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
    if not exists:
        conn.execute(
            sa.text(
                f"CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE "
                f"INHERIT PASSWORD '{password}' IN ROLE {APP_ROLE}"
            )
        )
    elif not _can_log_in(app_url):
        conn.execute(sa.text(f"ALTER ROLE {role} WITH LOGIN PASSWORD '{password}'"))
        conn.execute(sa.text(f"GRANT {APP_ROLE} TO {role}"))
    # Only this database's role connects to it: not the group (whose rights reach every
    # Grid Atlas database on the server), not PUBLIC.
    conn.execute(
        sa.text(
            "DO $$ BEGIN EXECUTE format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC, "
            f"{APP_ROLE}', current_database()); EXECUTE format('GRANT CONNECT, TEMPORARY ON "
            f"DATABASE %I TO {role}', current_database()); END $$"
        )
    )
    # The role's settings for the request path (JIT off: migration 0020), at every start.
    if conn.scalar(sa.text("SELECT to_regprocedure('ga_app_role_settings(text)') IS NOT NULL")):
        conn.execute(sa.text("SELECT ga_app_role_settings(:r)"), {"r": role})


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
