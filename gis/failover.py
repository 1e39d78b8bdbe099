"""High availability with pg_auto_failover: a monitor, a primary and a secondary.

Everything lives in a var dir of its own (``var/ha`` by default), never in the shared
cluster's ``var/pg``. Three PostgreSQL servers on loopback ports: the monitor (which
decides who is primary) and two data nodes, each kept by its ``pg_autoctl run`` (the
keeper), started here as a process of its own session and recorded in ``pids.json``.

Replication is synchronous as pg_auto_failover sets it: the secondary takes part in the
write quorum (``--replication-quorum true``, the default), so while it is healthy the
primary runs with ``synchronous_standby_names = 'ANY 1 (...)'`` and a commit returns only
once the secondary has the WAL; that is what lets a failover lose no acknowledged write.

Authentication: every server listens on 127.0.0.1 only (each keeper reaches its own server
over the socket, by peer). pg_auto_failover's own users
(``autoctl_node``, ``pgautofailover_monitor``, ``pgautofailover_replicator``) connect with
``trust`` from 127.0.0.1/32 (``--auth trust``): these are its internal links on one
machine, and giving them passwords would put the passwords in its config files, which any
process of the ``postgres`` user reads anyway. Every other loopback connection (the API,
the CLI) needs the owner's scram-sha-256 password kept in ``password`` (mode 0600); the
initdb defaults (trust for everyone over TCP and the socket) are replaced: TCP by
scram-sha-256, the socket by peer. No TLS (``--no-ssl``): nothing leaves the loopback
interface.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from gis import pgcluster
from gis.errors import DatabaseUnavailable

OWNER = pgcluster.SUPERUSER
APP_GROUP = "gridatlas_app"  # gis.db.APP_ROLE: every app login role is a member
DB_NAME = pgcluster.DB_NAME
NODES = ("node1", "node2")
PG_AUTOCTL = "pg_autoctl"
SOCKET_DIR = "/var/run/postgresql"  # the keepers reach their own server here (peer)


@dataclass(frozen=True)
class Formation:
    """Paths and state of the formation kept in ``root`` (normally ``var/ha``)."""

    root: Path

    @property
    def monitor_dir(self) -> Path:
        return self.root / "monitor"

    def node_dir(self, name: str) -> Path:
        return self.root / name

    def log_file(self, name: str) -> Path:
        return self.root / f"{name}.log"

    @property
    def state_file(self) -> Path:
        return self.root / "formation.json"

    @property
    def pids_file(self) -> Path:
        return self.root / "pids.json"

    @property
    def password_file(self) -> Path:
        return self.root / "password"

    @property
    def is_created(self) -> bool:
        return self.state_file.exists()

    def ports(self) -> dict[str, int]:
        return json.loads(self.state_file.read_text())["ports"]

    @property
    def monitor_uri(self) -> str:
        port = self.ports()["monitor"]
        return f"postgres://autoctl_node@127.0.0.1:{port}/pg_auto_failover?sslmode=disable"

    def url(self, database: str = DB_NAME) -> str:
        """The multi-host URL for GRIDATLAS_DATABASE_URL: whichever node is the primary."""
        ports = self.ports()
        password = self.password_file.read_text().strip()
        hosts = ",".join(f"127.0.0.1:{ports[n]}" for n in NODES)
        return f"postgresql://{OWNER}:{password}@{hosts}/{database}?target_session_attrs=read-write"

    def node_url(self, name: str, database: str = DB_NAME) -> str:
        """The owner's URL of one node (whatever its role)."""
        password = self.password_file.read_text().strip()
        port = self.ports()[name]
        return f"postgresql+psycopg://{OWNER}:{password}@127.0.0.1:{port}/{database}"


def default_root() -> Path:
    from gis.settings import get_settings

    return get_settings().var_dir / "ha"


def _autoctl_cmd(f: Formation, args: list[str]) -> list[str]:
    """pg_autoctl as the service user, its config and state files kept in ``f.root``
    (by default it keeps them in the user's home, shared by every formation)."""
    xdg = [f"XDG_{k}_HOME={f.root / 'autoctl' / k.lower()}" for k in ("CONFIG", "DATA")]
    xdg.append(f"XDG_RUNTIME_DIR={f.root / 'autoctl' / 'run'}")
    return pgcluster._as_service_user(["env", *xdg, PG_AUTOCTL, *args])


def _autoctl(f: Formation, args: list[str], *, check: bool = True, timeout: float = 300):
    cmd = _autoctl_cmd(f, args)
    env = {**os.environ, "PG_CONFIG": str(pgcluster.find_bin_dir() / "pg_config")}
    env["PATH"] = f"{pgcluster.find_bin_dir()}:{env.get('PATH', '/usr/bin:/bin')}"
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, cwd="/", env=env, timeout=timeout
        )
    except FileNotFoundError as err:
        raise DatabaseUnavailable(
            "pg_auto_failover is not installed; run scripts/bootstrap.sh "
            f"(it installs postgresql-{pgcluster.PG_MAJOR}-auto-failover with apt)"
        ) from err
    if check and proc.returncode != 0:
        raise DatabaseUnavailable(
            f"pg_autoctl {args[0]} {args[1] if len(args) > 1 else ''} failed: "
            f"{(proc.stderr or proc.stdout).strip()[-1200:]}"
        )
    return proc


def _pids(f: Formation) -> dict[str, int]:
    try:
        return {k: int(v) for k, v in json.loads(f.pids_file.read_text()).items()}
    except (OSError, ValueError):
        return {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _start_keeper(f: Formation, name: str, pgdata: Path) -> int:
    """``pg_autoctl run`` of one server, in a session of its own; its pid is recorded."""
    pid = _pids(f).get(name)
    if pid and _alive(pid):
        return pid
    env = {**os.environ, "PATH": f"{pgcluster.find_bin_dir()}:{os.environ.get('PATH', '')}"}
    with f.log_file(name).open("ab") as log:
        proc = subprocess.Popen(
            _autoctl_cmd(f, ["run", "--pgdata", str(pgdata)]),
            cwd="/",
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    pids = _pids(f)
    pids[name] = proc.pid
    f.pids_file.write_text(json.dumps(pids))
    return proc.pid


def _wait_accepting(port: int, timeout: float) -> None:
    bin_dir = pgcluster.find_bin_dir()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = subprocess.run(
            [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-q"],
            check=False,
        )
        if ready.returncode == 0:
            return
        time.sleep(0.5)
    raise DatabaseUnavailable(f"no server on 127.0.0.1:{port} after {timeout:.0f} s")


def _harden_hba(pgdata: Path) -> None:
    """Replace initdb's trust-for-everyone lines by named ones; pg_autoctl's own lines
    (trust for its users from 127.0.0.1, added now and when a node joins) stay as they are.

    No catch-all line is left: pg_hba.conf takes the first line that matches, and one for
    ``all`` would shadow the lines pg_autoctl appends later.
    """
    hba = pgdata / "pg_hba.conf"
    kept = []
    for line in hba.read_text().splitlines():
        fields = line.split("#", 1)[0].split()
        if fields and fields[0] in ("local", "host") and fields[2] == "all" and "trust" in fields:
            continue  # initdb's: everyone, trusted
        kept.append(line)
    ours = [
        "# Grid Atlas (gis/failover.py): the postgres user over the socket, the owner and",
        "# the app's roles over loopback TCP with their passwords",
        "local   all   postgres   peer",
        "local   replication   postgres   peer",
        "local   all   autoctl_node,pgautofailover_monitor   trust",
        f"host   all   {OWNER}   127.0.0.1/32   scram-sha-256",
        f"host   all   +{APP_GROUP}   127.0.0.1/32   scram-sha-256",
    ]
    hba.write_text("\n".join(ours + kept) + "\n")
    if postmaster_pid(pgdata):  # running already (left by pg_autoctl create): reload
        pgcluster._run([str(pgcluster.find_bin_dir() / "pg_ctl"), "-D", str(pgdata), "reload"],
                       check=False)  # fmt: skip


def _node_hba(pgdata: Path) -> None:
    """The whole pg_hba.conf of a data node (created with ``--skip-pg-hba``).

    Left to itself, pg_autoctl adds ``host <dbname> postgres 127.0.0.1/32 trust`` (the
    keeper's own link when it connects over TCP): any local user would be a superuser.
    Here the keeper uses the socket (peer), and only pg_auto_failover's replication and
    health-check users are trusted, from 127.0.0.1 alone.
    """
    lines = [
        "# Grid Atlas (gis/failover.py); pg_autoctl does not edit this file (--skip-pg-hba)",
        "local   all           postgres                    peer",
        "local   replication   postgres                    peer",
        "host    replication   pgautofailover_replicator   127.0.0.1/32   trust",
        f"host    {DB_NAME}     pgautofailover_replicator   127.0.0.1/32   trust",
        "host    all           pgautofailover_monitor      127.0.0.1/32   trust",
        f"host    all           {OWNER}                     127.0.0.1/32   scram-sha-256",
        f"host    all           +{APP_GROUP}              127.0.0.1/32   scram-sha-256",
    ]
    (pgdata / "pg_hba.conf").write_text("\n".join(lines) + "\n")
    if postmaster_pid(pgdata):
        pgcluster._run([str(pgcluster.find_bin_dir() / "pg_ctl"), "-D", str(pgdata), "reload"],
                       check=False)  # fmt: skip


def _create_node(f: Formation, name: str, port: int) -> None:
    args = [
            "create", "postgres", "--pgdata", str(f.node_dir(name)), "--pgport", str(port),
            "--pghost", SOCKET_DIR, "--listen", "127.0.0.1", "--hostname", "127.0.0.1",
            "--name", name, "--dbname", DB_NAME, "--monitor", f.monitor_uri,
            "--skip-pg-hba", "--no-ssl", "--replication-quorum", "true",
    ]  # fmt: skip
    _autoctl(f, args)


def _set_up_owner(f: Formation) -> None:
    """The owner role (a superuser, as on the local cluster: it makes the extensions and
    the app's role) with its password, made on the primary (the secondary replicates it)."""
    port = f.ports()["node1"]
    password = f.password_file.read_text().strip()
    sql = (
        f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{OWNER}') THEN "
        f"CREATE ROLE {OWNER} SUPERUSER LOGIN; END IF; END $$; "
        f"ALTER ROLE {OWNER} PASSWORD '{password}'; "
        "SELECT pg_reload_conf();"
    )
    psql = str(pgcluster.find_bin_dir() / "psql")
    pgcluster._run([psql, "-X", "-q", "-p", str(port), "-U", "postgres",  # the socket: peer
                    "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql])  # fmt: skip


def create(f: Formation) -> None:
    """Make the three servers: monitor, then the primary, then the secondary (a copy)."""
    f.root.mkdir(parents=True, exist_ok=True)
    pgcluster.make_service_dir(f.root)
    for sub in ("config", "data", "run"):
        pgcluster.make_service_dir(f.root / "autoctl" / sub)
    os.chmod(f.root / "autoctl" / "run", 0o700)
    password = secrets.token_hex(24)
    pgcluster._write_private(f.password_file, password + "\n")
    ports = {"monitor": pgcluster._free_port()}
    for n in NODES:
        while (p := pgcluster._free_port()) in ports.values():
            pass
        ports[n] = p
    state = {"ports": ports, "created": False}
    f.state_file.write_text(json.dumps(state))
    args = [
            "create", "monitor", "--pgdata", str(f.monitor_dir), "--pgport",
            str(ports["monitor"]), "--hostname", "127.0.0.1", "--listen", "127.0.0.1",
            "--auth", "trust", "--no-ssl",
    ]  # fmt: skip
    _autoctl(f, args)
    _harden_hba(f.monitor_dir)
    _start_keeper(f, "monitor", f.monitor_dir)
    _wait_accepting(ports["monitor"], 120)
    _create_node(f, "node1", ports["node1"])
    _node_hba(f.node_dir("node1"))
    _start_keeper(f, "node1", f.node_dir("node1"))
    wait_for(f, {"single", "primary", "wait_primary"}, set(), timeout=180)
    _set_up_owner(f)
    _create_node(f, "node2", ports["node2"])  # pg_basebackup of node1
    _node_hba(f.node_dir("node2"))
    _start_keeper(f, "node2", f.node_dir("node2"))
    state["created"] = True
    f.state_file.write_text(json.dumps(state))


def up(f: Formation, timeout: float = 300) -> str:
    """Create (first time) and start the formation; wait for a primary and a secondary."""
    if not f.is_created or not json.loads(f.state_file.read_text()).get("created"):
        if f.root.exists() and any(f.root.iterdir()):
            raise DatabaseUnavailable(
                f"{f.root} holds a formation whose creation did not finish; run "
                "`gridatlas db ha down --remove` and try again"
            )
        create(f)
    else:
        _start_keeper(f, "monitor", f.monitor_dir)
        _wait_accepting(f.ports()["monitor"], 120)
        for n in NODES:
            _start_keeper(f, n, f.node_dir(n))
    wait_for(f, {"primary"}, {"secondary"}, timeout=timeout)
    return f.url()


def states(f: Formation) -> list[dict]:
    """The monitor's view: one dict per node (name, port, reported and goal state)."""
    proc = _autoctl(f, ["show", "state", "--pgdata", str(f.monitor_dir), "--json"], check=False,
                    timeout=30)  # fmt: skip
    if proc.returncode != 0:
        return []
    try:
        rows = json.loads(proc.stdout)
    except ValueError:
        return []
    return [
        {"name": r.get("nodename"), "port": r.get("nodeport"), "health": r.get("health"),
         "state": r.get("current_group_state"), "goal": r.get("assigned_group_state")}
        for r in rows
    ]  # fmt: skip


def wait_for(f: Formation, want_a: set[str], want_b: set[str], timeout: float) -> list[dict]:
    """Wait until one node is (reported and goal) in ``want_a`` and, if given, another in
    ``want_b``."""
    deadline = time.monotonic() + timeout
    seen: list[dict] = []
    in_a_row = 0  # the monitor's states right after a restart are the old ones: 3 in a row
    while time.monotonic() < deadline:
        seen = states(f)
        settled = [s for s in seen if s["state"] == s["goal"] and s["health"] == 1]
        a = [s for s in settled if s["state"] in want_a]
        b = [s for s in settled if s["state"] in want_b]
        ok = bool(a) and (not want_b or bool(b and b[0]["name"] != a[0]["name"]))
        in_a_row = in_a_row + 1 if ok else 0
        if in_a_row >= 3:
            return seen
        time.sleep(1)
    raise DatabaseUnavailable(
        f"the formation did not reach {sorted(want_a)} + {sorted(want_b)} in {timeout:.0f} s; "
        f"the monitor says {seen}; logs in {f.root}/*.log"
    )


def primary(f: Formation) -> str | None:
    for s in states(f):
        if s["state"] in ("primary", "wait_primary", "single") and s["state"] == s["goal"]:
            return s["name"]
    return None


def postmaster_pid(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def kill_node(f: Formation, name: str) -> None:
    """``kill -9`` of a node's postmaster and of its keeper (its whole session), so that it
    cannot restart in place."""
    pid = _pids(f).get(name)
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(os.getpgid(pid), signal.SIGKILL)
    pm = postmaster_pid(f.node_dir(name))
    if pm:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pm, signal.SIGKILL)


def down(f: Formation, timeout: float = 60) -> None:
    """Stop every keeper (SIGTERM: each stops its server), nodes first, the monitor last."""
    pids = _pids(f)
    for name in (*NODES, "monitor"):
        pid = pids.get(name)
        if not pid or not _alive(pid):
            continue
        try:
            os.killpg(os.getpgid(pid), signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.2)
        if _alive(pid):
            os.killpg(os.getpgid(pid), signal.SIGKILL)
    for pgdata in (*[f.node_dir(n) for n in NODES], f.monitor_dir):
        pm = postmaster_pid(pgdata)
        if pm and _alive(pm):
            pgcluster._run([str(pgcluster.find_bin_dir() / "pg_ctl"), "-D", str(pgdata),
                            "-m", "fast", "-w", "stop"], check=False)  # fmt: skip
    f.pids_file.unlink(missing_ok=True)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def settings_text(f: Formation) -> str:
    """``pg_autoctl show settings``: the replication quorum and number_sync_standbys."""
    proc = _autoctl(f, ["show", "settings", "--pgdata", str(f.monitor_dir)], check=False)
    return re.sub(r"\n+$", "", proc.stdout or proc.stderr)
