"""Shared fixtures: a real PostGIS started by the test run itself, one fresh database per test.

The local cluster under var/pg is started if needed (or GRIDATLAS_DATABASE_URL is used).
A migrated template database is made once per run; each test that writes gets its own copy
(``CREATE DATABASE … TEMPLATE``), so no test sees another's rows. A missing database server
is an error, never a skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from gis import db, pgcluster
from gis.io.pipeline import import_file
from gis.settings import PROJECT_ROOT, Settings

SHARED_OSM = PROJECT_ROOT.parent / "shared" / "data" / "osm"
BUNDLED_OSM = PROJECT_ROOT / "data" / "osm"
NANJING = BUNDLED_OSM / "nanjing-central.osm"
SHANGHAI = SHARED_OSM / "shanghai-tongji.osm"
PORTO = SHARED_OSM / "porto-central.osm.pbf"
RUN_ID = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
# The app refuses to start without a key; tests use a fixed one of their own (never a
# deployment's): it encrypts only synthetic people in throw-away databases.
TEST_KEY = "2aef85ce5e8280dfbb33bfb11ffb9ae3f80231d00bd576b150f24061882df21e"
os.environ.setdefault("GRIDATLAS_SECRET_KEY", TEST_KEY)
# No scheduled jobs in the apps tests start (they fix their clocks); tests/gis/test_scheduler.py
# turns them on where it means to.
os.environ.setdefault("GRIDATLAS_JOBS_EVERY_MIN", "0")


def _admin_url(url: str) -> str:
    return make_url(url).set(database="postgres").render_as_string(hide_password=False)


def _with_db(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def _admin_execute(url: str, sql: str) -> None:
    eng = db.create_engine(_admin_url(url), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with eng.connect() as conn:
            conn.execute(sa.text(sql))
    finally:
        eng.dispose()


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """URL of a running PostGIS server (the project-local one unless configured)."""
    configured = os.environ.get("GRIDATLAS_DATABASE_URL")
    if configured:
        yield configured
        return
    cluster = pgcluster.LocalCluster(Settings().pg_dir)
    was_running = pgcluster.is_running(cluster)
    url = pgcluster.ensure_up(cluster)
    yield url
    if not was_running:  # leave the machine as we found it
        pgcluster.stop(cluster)


@pytest.fixture(scope="session")
def template_url(server_url: str) -> Iterator[str]:
    """A migrated, empty database used as the template of every test database."""
    name = f"ga_test_tpl_{RUN_ID}"
    url = _with_db(server_url, name)
    db.ensure_database(url)
    db.migrate(url)
    yield url
    _admin_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _clone(server_url: str, template_url: str, label: str) -> str:
    name = f"ga_test_{label}_{uuid.uuid4().hex[:10]}"
    tpl = make_url(template_url).database
    _admin_execute(server_url, f'CREATE DATABASE "{name}" TEMPLATE "{tpl}"')
    return _with_db(server_url, name)


@pytest.fixture
def db_url(server_url: str, template_url: str) -> Iterator[str]:
    """A fresh, migrated, empty database for one test."""
    url = _clone(server_url, template_url, "t")
    yield url
    _admin_execute(server_url, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = db.create_engine(db_url, poolclass=sa.NullPool)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def nanjing_url(server_url: str, template_url: str) -> Iterator[str]:
    """A database holding the bundled Nanjing import; tests must only read it."""
    url = _clone(server_url, template_url, "nanjing")
    eng = db.create_engine(url, poolclass=sa.NullPool)
    import_file(eng, NANJING)
    eng.dispose()
    yield url
    _admin_execute(server_url, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


@pytest.fixture(scope="session")
def nanjing_engine(nanjing_url: str) -> Iterator[Engine]:
    eng = db.create_engine(nanjing_url)
    yield eng
    eng.dispose()


def cli(
    *args: str, db_url: str | None = None, timeout: float = 300, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``gridatlas ARGS`` as a user would, against ``db_url``."""
    environ = {**os.environ, **env}
    if db_url:
        environ["GRIDATLAS_DATABASE_URL"] = db_url
    exe = Path(sys.executable).with_name("gridatlas")
    return subprocess.run(
        [str(exe), *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        cwd=PROJECT_ROOT,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_app(database_url: str, **env: str) -> Iterator[str]:
    """Serve the app with uvicorn on a free loopback port over ``database_url``."""
    port = free_port()
    environ = {**os.environ, "GRIDATLAS_DATABASE_URL": database_url, **env}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "api.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=PROJECT_ROOT,
        env=environ,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError("the app failed to start") from None
                if time.monotonic() > deadline:
                    raise RuntimeError("the app did not listen within 30 s") from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # stuck (a test that found a hang): not left behind
            proc.kill()
            proc.wait(timeout=10)
            raise


WEB_ADMIN = ("web_admin", "pw-web-admin-2026")  # the pages need a login


@pytest.fixture(scope="session")
def live_server(nanjing_url: str) -> Iterator[str]:
    """The app over the Nanjing database, with an admin login ``WEB_ADMIN`` for pages."""
    eng = db.create_engine(nanjing_url, poolclass=sa.NullPool)
    make_user(eng, WEB_ADMIN[0], "admin", WEB_ADMIN[1])
    eng.dispose()
    with serve_app(nanjing_url) as base:
        yield base


def logged_in(client, engine: Engine, username: str = "api_admin", role: str = "admin") -> None:
    """Give a TestClient the token of ``username`` (made if missing) in every request."""
    password = f"pw-{username}-for-tests"
    with engine.begin() as conn:
        exists = conn.scalar(sa.text("SELECT 1 FROM app_user WHERE username = :u"), {"u": username})
    if not exists:
        make_user(engine, username, role, password)
    r = client.post("/api/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    client.headers["Authorization"] = f"Bearer {r.json()['token']}"


def log_in_browser(context, base: str, username: str, password: str) -> None:
    """Log a Playwright browser context in (the session cookie, as the login page gets it)."""
    r = context.request.post(
        f"{base}/api/auth/login", data={"username": username, "password": password}
    )
    assert r.status == 200, r.text()


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's Chromium driven by Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    exe = shutil.which("chromium")
    if exe is None:
        raise RuntimeError("chromium is not installed; run scripts/bootstrap.sh")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_FLAGS)
        yield b
        b.close()


def make_user(engine: Engine, username: str, role: str, password: str) -> int:
    """Create a user directly in the database (no scope: give admins this)."""
    from gis.security import hash_password

    with engine.begin() as conn:
        return int(
            conn.scalar(
                sa.text(
                    "INSERT INTO app_user (username, role, password_hash) VALUES (:u, :r, :p) "
                    "RETURNING id"
                ),
                {"u": username, "r": role, "p": hash_password(password)},
            )
        )


def login(client, engine: Engine, username: str = "admin", role: str = "admin") -> None:
    """Create ``username`` and log ``client`` in (its token in every request's header)."""
    password = f"pw-{username}-for-tests"
    make_user(engine, username, role, password)
    r = client.post("/api/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    client.headers["Authorization"] = f"Bearer {r.json()['token']}"
