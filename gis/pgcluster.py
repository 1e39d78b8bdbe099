"""The project-local PostgreSQL cluster under ``var/pg``: create, start, stop, describe.

PostgreSQL refuses to run as root, so when we are root the cluster belongs to the
``postgres`` system user (created by Debian's package) and every server command runs
through ``runuser``. As an ordinary user the cluster is simply ours.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shlex
import shutil
import socket
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gis.errors import DatabaseUnavailable

PG_MAJOR = "15"
DB_NAME = "gridatlas"
SUPERUSER = "gridatlas"
SERVICE_USER_WHEN_ROOT = "postgres"
EXTENSIONS = ("postgis", "pgrouting", "pgcrypto")


@dataclass(frozen=True)
class LocalCluster:
    """Paths and state of the cluster kept in ``root`` (normally ``var/pg``)."""

    root: Path

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    @property
    def port_file(self) -> Path:
        return self.root / "port"

    @property
    def password_file(self) -> Path:
        return self.root / "password"

    @property
    def wal_archive(self) -> Path:
        """Where the server copies each finished WAL segment (point-in-time recovery)."""
        return self.root / "wal-archive"

    @property
    def base_backups(self) -> Path:
        return self.root / "base-backups"

    @property
    def is_initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    @property
    def port(self) -> int:
        """The port the cluster listens on (kept across restarts; see :func:`start`)."""
        return int(self.port_file.read_text())

    def url(self, database: str = DB_NAME) -> str:
        """Return the SQLAlchemy URL of ``database`` on this cluster."""
        port = self.port
        password = self.password_file.read_text().strip()
        return f"postgresql+psycopg://{SUPERUSER}:{password}@127.0.0.1:{port}/{database}"


def find_bin_dir() -> Path:
    """Return the directory of PostgreSQL's server programs or explain how to install them."""
    candidate = Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin")
    if (candidate / "initdb").exists():
        return candidate
    raise DatabaseUnavailable(
        f"PostgreSQL {PG_MAJOR} is not installed; run scripts/bootstrap.sh "
        f"(it installs postgresql-{PG_MAJOR}, PostGIS and pgRouting with apt)"
    )


def _is_root() -> bool:
    return os.geteuid() == 0


def _as_service_user(cmd: list[str]) -> list[str]:
    if _is_root():
        return ["runuser", "-u", SERVICE_USER_WHEN_ROOT, "--", *cmd]
    return cmd


def _run(
    cmd: list[str], *, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(_as_service_user(cmd), capture_output=True, text=True, cwd="/", env=env)
    if check and proc.returncode != 0:
        raise DatabaseUnavailable(
            f"{Path(cmd[0]).name} failed: {(proc.stderr or proc.stdout).strip()[-800:]}"
        )
    return proc


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _open_path_for_service_user(path: Path) -> None:
    """Let the service user reach ``path`` by adding search (x) permission to its parents.

    A fresh clone may sit in a private directory (``mktemp -d`` makes them 0700); the
    postgres user must be able to traverse to its data directory. Only the search bit is
    added: no directory becomes listable or readable.
    """
    for parent in reversed(path.resolve().parents):
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(parent, mode | stat.S_IXOTH)


def _chown_to_service_user(path: Path) -> None:
    shutil.chown(path, user=SERVICE_USER_WHEN_ROOT, group=SERVICE_USER_WHEN_ROOT)


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file that is never readable by others, not even for a moment."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


@contextmanager
def _locked(cluster: LocalCluster) -> Iterator[None]:
    """Hold the cluster's lock: two commands starting at once create and start it once."""
    cluster.root.mkdir(parents=True, exist_ok=True)
    with (cluster.root / ".lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def initialise(cluster: LocalCluster) -> None:
    """Create the cluster: initdb, loopback-only config, a random superuser password."""
    bin_dir = find_bin_dir()
    cluster.root.mkdir(parents=True, exist_ok=True)
    if cluster.data_dir.exists():  # left by an initdb that was interrupted: ours to redo
        shutil.rmtree(cluster.data_dir)
    password = secrets.token_urlsafe(24)
    _write_private(cluster.password_file, password + "\n")
    cluster.port_file.write_text(f"{_free_port()}\n")
    pwfile = cluster.root / ".initdb-pw"
    _write_private(pwfile, password + "\n")
    cluster.data_dir.mkdir(mode=0o700)
    if _is_root():
        _open_path_for_service_user(cluster.data_dir)
        for p in (cluster.data_dir, pwfile):
            _chown_to_service_user(p)
        # the log file is written by the server
        cluster.log_file.touch()
        _chown_to_service_user(cluster.log_file)
    try:
        _run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(cluster.data_dir),
                "-U",
                SUPERUSER,
                "--pwfile",
                str(pwfile),
                "--auth",
                "scram-sha-256",
                "--encoding",
                "UTF8",
                "--locale",
                "C.UTF-8",
            ]
        )
    finally:
        pwfile.unlink(missing_ok=True)
    conf = cluster.data_dir / "postgresql.auto.conf"
    settings = {
        "listen_addresses": "'127.0.0.1'",
        "unix_socket_directories": "''",
        "max_connections": "200",
        "shared_buffers": "'256MB'",
        "work_mem": "'32MB'",
        "maintenance_work_mem": "'256MB'",
        "max_wal_size": "'2GB'",
        "logging_collector": "off",
        **archive_settings(cluster.wal_archive),
    }
    make_service_dir(cluster.wal_archive)
    with conf.open("a") as fh:
        for key, value in settings.items():
            fh.write(f"{key} = {value}\n")


def archive_settings(archive: Path) -> dict[str, str]:
    """Archive every finished WAL segment into ``archive``: copied under a temporary name
    first (the archive never holds half a segment), never over a different file. A segment
    already there with the same bytes counts as archived: a server killed after the copy
    but before it noted it asks again, and would otherwise stop archiving for good."""
    target = shlex.quote(str(archive))
    command = (
        f"if test -f {target}/%f; then cmp -s %p {target}/%f; "
        f"else cp %p {target}/%f.part && mv {target}/%f.part {target}/%f; fi"
    )
    return {"archive_mode": "'on'", "archive_command": "'" + command.replace("'", "''") + "'"}


def make_service_dir(path: Path) -> None:
    """A folder the server writes into (the service user's when we are root)."""
    path.mkdir(parents=True, exist_ok=True)
    if _is_root():
        _open_path_for_service_user(path)
        _chown_to_service_user(path)


def is_running(cluster: LocalCluster) -> bool:
    """Return whether the server of ``cluster`` is running."""
    if not cluster.is_initialised:
        return False
    proc = _run(
        [str(find_bin_dir() / "pg_ctl"), "-D", str(cluster.data_dir), "status"], check=False
    )
    return proc.returncode == 0


def start(cluster: LocalCluster) -> None:
    """Start the server on its loopback port, waiting until it accepts connections."""
    if is_running(cluster):
        return
    port = int(cluster.port_file.read_text())
    if not _port_is_free(port):
        port = _free_port()
        cluster.port_file.write_text(f"{port}\n")
    _run(
        [
            str(find_bin_dir() / "pg_ctl"),
            "-D",
            str(cluster.data_dir),
            "-l",
            str(cluster.log_file),
            "-o",
            f"-p {port}",
            "-w",
            "-t",
            "60",
            "start",
        ]
    )


def _port_is_free(port: int) -> bool:
    """Whether the server could listen on ``port``: bound the way PostgreSQL binds it.

    PostgreSQL sets ``SO_REUSEADDR``, so connections of a server that just died (their
    sockets in TIME_WAIT) do not keep it from its port; only a live listener does. A check
    without the option would see such a port as taken and move the cluster to another one,
    where nothing that knew the old port finds it.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def stop(cluster: LocalCluster) -> None:
    """Stop the server (fast shutdown); a stopped cluster is left as it is."""
    if is_running(cluster):
        _run(
            [
                str(find_bin_dir() / "pg_ctl"),
                "-D",
                str(cluster.data_dir),
                "-m",
                "fast",
                "-w",
                "stop",
            ]
        )


def ensure_up(cluster: LocalCluster) -> str:
    """Create and start the cluster as needed and return the URL of its main database."""
    with _locked(cluster):
        if not cluster.is_initialised:
            initialise(cluster)
        start(cluster)
    return cluster.url()
