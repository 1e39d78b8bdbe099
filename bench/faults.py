"""Fault test: ``kill -9`` of PostgreSQL under a mixed write load over the API, and during
imports; afterwards every acknowledged write must be in the database.

    .venv/bin/python bench/faults.py [--kills 20] [--import-kills 5] [--clients 4]
                                     [--seed 1] [--down-max 2.0] [--keep]

Everything runs on a cluster of its own, in a temporary var dir (``GRIDATLAS_VAR_DIR``):
the shared cluster under var/pg is never touched. Set-up: the cluster is created and
migrated, the bundled Nanjing extract imported and delineated, and one login per client is
made in the grid with most buildings (committee staff scoped to its community, grid
workers to the grid, as ``gridatlas demo`` makes staff1 and worker1). The API is served by
uvicorn on a free loopback port, as a process of its own, on the local cluster (it follows
the cluster's port file).

Load: ``--clients`` threads, half committee staff (organisations and residents: ledger
writes), half grid workers (check-ins and problem reports), each POST with its own
``Idempotency-Key``; a refused or failed request is retried with the same key. Each client
keeps a ledger of what the API acknowledged (2xx): the id answered and a token written
into the record. A probe asks ``/api/health`` five times a second throughout.

Faults: ``--kills`` times, at a random moment of the load, the postmaster gets SIGKILL;
the database stays down for a random time up to ``--down-max`` s, then comes back with
``gridatlas db up``. Then ``--import-kills`` times, during ``gridatlas import`` of a
synthetic city (a subprocess, a new source name each time), the postmaster is killed at a
random moment of the import's write transaction, with the load still running.

Printed: kills survived, acknowledged writes lost (must be 0), duplicated writes, partial
imports (must be 0), the most seconds the API took to answer again after ``db up``
returned (goal ≤ 30), and what the clients saw while it was down: 5xx other than 503, 503
without Retry-After, and hangs (no answer within ``--client-timeout`` s). Exit status 1
when a goal is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.fault_load import Ack, Area, Client, Login, Seen, probe, serve  # noqa: E402

GRIDATLAS = str(Path(sys.executable).with_name("gridatlas"))
NANJING = ROOT / "data" / "osm" / "nanjing-central.osm"
GOAL_BACK_S = 30.0


def _own_environment(var_dir: Path) -> None:
    """Point this process and its children at ``var_dir``; nothing of the shared set-up."""
    for name in ("GRIDATLAS_DATABASE_URL", "GRIDATLAS_APP_DATABASE_URL", "GRIDATLAS_SECRET_KEY"):
        os.environ.pop(name, None)
    os.environ["GRIDATLAS_VAR_DIR"] = str(var_dir)
    os.environ["GRIDATLAS_JOBS_EVERY_MIN"] = "0"  # no scheduled passes: only the load writes


def prepare(clients: int, import_buildings: int, seed: int) -> tuple[Area, list[Login], Path]:
    """Cluster, schema, Nanjing, delineation, logins, key file and the file to import."""
    import sqlalchemy as sa

    from cli.common import open_engine
    from gis.accounts import create_user
    from gis.delineate.service import run as delineate_run
    from gis.io.pipeline import import_file
    from gis.security import write_key_file
    from gis.settings import get_settings
    from gis.synth import write_city

    settings = get_settings()
    write_key_file(settings.secret_key_file)
    engine = open_engine()  # creates the cluster, the database and the schema
    try:
        import_file(engine, NANJING)
        delineate_run(engine)
        with engine.begin() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT p.grid_id, g.community_id FROM building_path p "
                    "JOIN grid g ON g.id = p.grid_id GROUP BY p.grid_id, g.community_id "
                    "ORDER BY count(*) DESC, p.grid_id LIMIT 1"
                )
            ).one()
            buildings = list(
                conn.scalars(
                    sa.text("SELECT building_id FROM building_path WHERE grid_id = :g ORDER BY 1"),
                    {"g": row.grid_id},
                )
            )
            logins = []
            for i in range(clients):
                role = "committee_staff" if i % 2 == 0 else "grid_worker"
                area = ("community", row.community_id) if i % 2 == 0 else ("grid", row.grid_id)
                login = Login(f"faults_{role}_{i}", secrets.token_urlsafe(12), role)
                create_user(conn, login.username, login.password, role, areas=[area])
                logins.append(login)
    finally:
        engine.dispose()
    city = settings.var_dir / "faults-city.gpkg"
    write_city(city, buildings=import_buildings, seed=seed)
    return Area(row.community_id, row.grid_id, buildings), logins, city


# --- faults ----------------------------------------------------------------------------


@dataclass
class Kill:
    """One kill: when the database was back (``db up`` returned) and the API after it."""

    phase: str
    killed_at: float = 0.0
    up_at: float = 0.0
    restart_attempts: int = 0
    back_s: float | None = None  # None: the API did not answer within the goal


def kill_postmaster(cluster) -> None:
    """SIGKILL to the postmaster of our own cluster (never the shared one), then wait."""
    from gis import pgcluster

    pid = int((cluster.data_dir / "postmaster.pid").read_text().splitlines()[0])
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pgcluster.is_running(cluster) and time.monotonic() < deadline:
        time.sleep(0.05)


def db_up(kill: Kill) -> None:
    """``gridatlas db up`` until it succeeds (a minute at most)."""
    deadline = time.monotonic() + 60
    while True:
        kill.restart_attempts += 1
        proc = subprocess.run([GRIDATLAS, "db", "up"], capture_output=True, text=True, cwd=ROOT)
        if proc.returncode == 0:
            kill.up_at = time.monotonic()
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"gridatlas db up failed: {proc.stderr.strip()[-600:]}")
        print(f"  db up failed, again: {proc.stderr.strip().splitlines()[-1:]}", flush=True)
        time.sleep(1)


def wait_back(kill: Kill, seen: Seen, wait_s: float) -> None:
    """Seconds from ``db up`` to the probe's next 200 (None: not within ``wait_s``)."""
    while time.monotonic() < kill.up_at + wait_s:
        with seen.lock:
            later = [t for t in seen.ok_times if t >= kill.up_at]
        if later:
            kill.back_s = later[0] - kill.up_at
            return
        time.sleep(0.05)


def fault(cluster, phase: str, seen: Seen, rng: random.Random, args) -> Kill:
    kill = Kill(phase, killed_at=time.monotonic())
    kill_postmaster(cluster)
    time.sleep(rng.uniform(0, args.down_max))
    db_up(kill)
    wait_back(kill, seen, args.back_wait)
    return kill


def import_under_fault(cluster, city: Path, source: str, seen: Seen, rng: random.Random,
                       args, write_s: float) -> tuple[Kill, int]:  # fmt: skip
    """Start ``gridatlas import``, kill the postmaster inside its write transaction."""
    import sqlalchemy as sa

    from gis import db

    env = {**os.environ, "PGAPPNAME": f"faults-import-{source}"}
    proc = subprocess.Popen(
        _import_cmd(city, source),
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    owner = db.create_engine(cluster.url(), poolclass=sa.NullPool)
    try:  # its write transaction has begun once it holds the source's advisory lock
        while proc.poll() is None:
            with owner.connect() as conn:
                if conn.scalar(
                    sa.text("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a "
                            "USING (pid) WHERE a.application_name = :a "
                            "AND l.locktype = 'advisory' AND l.granted"), {"a": env["PGAPPNAME"]},
                ):  # fmt: skip
                    break
            time.sleep(0.02)
    finally:
        owner.dispose()
    time.sleep(rng.uniform(0, write_s))
    kill = fault(cluster, "import", seen, rng, args)
    _out, err = proc.communicate(timeout=120)
    if proc.returncode:
        print(f"  the import said: {err.strip().splitlines()[-1:]}", flush=True)
    return kill, proc.returncode


# --- the check -------------------------------------------------------------------------

TOKEN_COLUMN = {
    "organisation": ("organisation", "notes"),
    "resident": ("resident", "notes"),
    "problem": ("problem", "description"),
    "checkin": ("patrol_checkin", None),
}


def check_writes(cluster, acks: list[Ack]) -> tuple[int, int, Counter]:
    """(lost, duplicated, acknowledged per kind), read as the owner (no row-level security)."""
    import sqlalchemy as sa

    from gis import db

    lost = duplicated = 0
    per_kind = Counter(a.kind for a in acks)
    engine = db.create_engine(cluster.url(), poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            for kind, (table, column) in TOKEN_COLUMN.items():
                mine = [a for a in acks if a.kind == kind]
                ids = [a.id for a in mine]
                what = column or "NULL"
                stored = dict(conn.execute(  # names are ours (TOKEN_COLUMN), never input
                    sa.text(f"SELECT id, {what} FROM {table} WHERE id = ANY(:ids)"), {"ids": ids}
                ).all())  # fmt: skip
                lost += sum(1 for a in mine if a.id not in stored
                            or (column and stored[a.id] != a.token))  # fmt: skip
                if column:
                    duplicated += int(conn.scalar(
                        sa.text(f"SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n "
                                f"FROM {table} WHERE {column} LIKE 'faults-%' GROUP BY {column}) c")
                    ))  # fmt: skip
            # a check-in has no text of its own: every one was sent with a key, so a row
            # that no key's stored answer names was written a second time by a retry
            duplicated += conn.scalar(
                sa.text("SELECT count(*) FROM patrol_checkin c WHERE NOT EXISTS (SELECT 1 "
                        "FROM idempotency_key k WHERE k.user_id = c.user_id "
                        "AND k.response->>'id' = c.id::text)")
            )  # fmt: skip
    finally:
        engine.dispose()
    return lost, duplicated, per_kind


def import_state(cluster, source: str) -> tuple[int, int]:
    """(buildings, recorded import runs) of ``source``."""
    import sqlalchemy as sa

    from gis import db

    engine = db.create_engine(cluster.url(), poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            return tuple(conn.execute(
                sa.text("SELECT (SELECT count(*) FROM building WHERE source_file = :s), "
                        "(SELECT count(*) FROM import_run WHERE source_file = :s)"), {"s": source}
            ).one())  # fmt: skip
    finally:
        engine.dispose()


# --- the run ---------------------------------------------------------------------------


def run(args: argparse.Namespace, var_dir: Path) -> int:  # noqa: C901 - one scenario, in order
    from gis import pgcluster
    from gis.settings import get_settings

    rng = random.Random(args.seed)
    t0 = time.monotonic()
    area, logins, city = prepare(args.clients, args.import_buildings, args.seed)
    cluster = pgcluster.LocalCluster(get_settings().pg_dir)
    print(f"set up in {time.monotonic() - t0:.0f} s: cluster {cluster.root} on port "
          f"{cluster.port}, grid {area.grid_id} ({len(area.buildings)} buildings), "
          f"{len(logins)} clients", flush=True)  # fmt: skip

    # a clean import first: how many buildings a complete import has, how long it writes
    t_imp = time.monotonic()
    clean = subprocess.run(
        _import_cmd(city, "faults-clean"), capture_output=True, text=True, cwd=ROOT
    )
    if clean.returncode != 0:
        raise SystemExit(f"the clean import failed: {clean.stderr[-600:]}")
    expected, _ = import_state(cluster, "faults-clean")
    # the kills land inside the write transaction: its length from the import's report
    written = re.search(r"write ([0-9.]+) s", clean.stdout)
    write_s = 0.8 * float(written.group(1)) if written else (time.monotonic() - t_imp) / 3

    port = _free_port()
    api = serve(port, var_dir / "api.log")
    base = f"http://127.0.0.1:{port}"
    seen, stop = Seen(), threading.Event()
    threads = [Client(i, login, area, base, seen, stop, args.client_timeout, args.seed)
               for i, login in enumerate(logins)]  # fmt: skip
    threads.append(threading.Thread(target=probe, args=(base, seen, stop, args.client_timeout),
                                    daemon=True))  # fmt: skip
    kills: list[Kill] = []
    imports: list[tuple[str, int]] = []
    try:
        for t in threads:
            t.start()
        for i in range(args.kills):
            time.sleep(rng.uniform(0.5, 3.0))  # a random moment of the load
            kills.append(fault(cluster, "load", seen, rng, args))
            k = kills[-1]
            print(f"kill {i + 1:2d}/{args.kills} (load): down {k.up_at - k.killed_at:.1f} s, "
                  f"db up after {k.restart_attempts} attempt(s); API back in {_s(k.back_s)}; "
                  f"acknowledged so far {len(seen.acks)}", flush=True)  # fmt: skip
        for i in range(args.import_kills):
            source = f"faults-import-{i}"
            k, rc = import_under_fault(cluster, city, source, seen, rng, args, write_s)
            kills.append(k)
            imports.append((source, rc))
            print(f"kill {i + 1:2d}/{args.import_kills} (import): import exit {rc}; API back "
                  f"in {_s(k.back_s)}", flush=True)  # fmt: skip
        time.sleep(2)  # the load runs on the restarted database a little
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=args.client_timeout + 5)
        api.terminate()
        try:
            api.wait(timeout=15)
        except subprocess.TimeoutExpired:
            api.kill()
    lost, duplicated, per_kind = check_writes(cluster, seen.acks)
    partial = 0
    completed = 0
    tracebacks = sum(rc not in (0, 2) for _s, rc in imports)  # 2: a one-line reason
    for source, _rc in imports:
        buildings, runs = import_state(cluster, source)
        whole = buildings == expected and runs == 1
        partial += not (whole or (buildings == 0 and runs == 0))
        completed += whole
    # an import the kill stopped runs again to the end
    rerun_ok = True
    for source, rc in imports:
        if rc != 0:
            again = subprocess.run(_import_cmd(city, source), capture_output=True, cwd=ROOT)
            rerun_ok &= again.returncode == 0 and import_state(cluster, source) == (expected, 1)
    pgcluster.stop(cluster)
    return report(args, kills, seen, lost, duplicated, per_kind, partial, completed,
                  (len(imports), tracebacks), rerun_ok, expected)  # fmt: skip


def _import_cmd(city: Path, source: str) -> list[str]:
    return [GRIDATLAS, "import", str(city), "--layer", "buildings", "--source", source, "-q"]


def _s(seconds: float | None) -> str:
    return "NOT in time" if seconds is None else f"{seconds:.1f} s"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def report(args, kills, seen, lost, duplicated, per_kind, partial, completed, n_imports,
           rerun_ok, expected) -> int:  # fmt: skip
    """Print the table (and write ``--json``); 0 when every goal is met, else 1."""
    load = [k for k in kills if k.phase == "load"]
    imp = [k for k in kills if k.phase == "import"]
    backs = [k.back_s for k in kills if k.back_s is not None]
    result = {
        "kills_survived": sum(k.back_s is not None for k in load),
        "kills": len(load),
        "import_kills_survived": sum(k.back_s is not None for k in imp),
        "import_kills": len(imp),
        "acknowledged": len(seen.acks),
        "acknowledged_by_kind": dict(sorted(per_kind.items())),
        "lost": lost,
        "duplicated": duplicated,
        "imports_completed_anyway": completed,
        "partial_imports": partial,
        "import_crashes": n_imports[1],
        "reruns_complete": rerun_ok,
        "max_seconds_back": round(max(backs), 2) if backs else None,
        "answers_503": seen.statuses[503],
        "answers_503_without_retry_after": seen.no_retry_after,
        "other_5xx": sum(n for s, n in seen.statuses.items() if s >= 500 and s != 503),
        "hangs": seen.hangs,
        "transport_errors": seen.transport_errors,
        "statuses": {str(k): v for k, v in sorted(seen.statuses.items())},
        "unexpected": seen.samples,
    }
    r = result
    kinds = ", ".join(f"{k} {n}" for k, n in r["acknowledged_by_kind"].items())
    rows = [
        ("kills survived (write load)", f"{r['kills_survived']} / {r['kills']}",
         r["kills_survived"] == r["kills"]),
        ("kills survived (import)", f"{r['import_kills_survived']} / {r['import_kills']}",
         r["import_kills_survived"] == r["import_kills"]),
        ("acknowledged writes", f"{r['acknowledged']} ({kinds})", r["acknowledged"] > 0),
        ("acknowledged writes lost", str(lost), lost == 0),
        ("writes stored twice", str(duplicated), duplicated == 0),
        ("imports killed / finished before the kill", f"{n_imports[0]} / {completed}", True),
        ("killed imports that crashed (not exit 2)", str(n_imports[1]), n_imports[1] == 0),
        ("partial imports", f"{partial} (a whole import: {expected} buildings)", partial == 0),
        ("killed imports re-run to the end", "yes" if rerun_ok else "NO", rerun_ok),
        ("max seconds back (after db up)", str(r["max_seconds_back"]),
         bool(backs) and max(backs) <= GOAL_BACK_S),
        ("503 answers / without Retry-After", f"{r['answers_503']} / {seen.no_retry_after}",
         seen.no_retry_after == 0),
        ("5xx other than 503", str(r["other_5xx"]), r["other_5xx"] == 0),
        (f"hangs (no answer in {args.client_timeout:g} s)", str(seen.hangs), seen.hangs == 0),
        ("connections the API refused", str(seen.transport_errors), seen.transport_errors == 0),
    ]  # fmt: skip
    print()
    print(f"{'measure':42} {'value':>34}  goal")
    for name, value, ok in rows:
        print(f"{name:42} {value:>34}  {'ok' if ok else 'MISSED'}")
    print(f"answers seen: {json.dumps(r['statuses'])}; load average {os.getloadavg()[0]:.1f}")
    for sample in seen.samples:
        print(f"  unexpected: {sample}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, ensure_ascii=False))
    return 0 if all(ok for _n, _v, ok in rows) else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=20, help="kills during the write load")
    ap.add_argument("--import-kills", type=int, default=5, help="kills during an import")
    ap.add_argument("--clients", type=int, default=4, help="client threads (half staff)")
    ap.add_argument("--import-buildings", type=int, default=10000,
                    help="buildings of the synthetic city imported under faults")  # fmt: skip
    ap.add_argument("--down-max", type=float, default=2.0, help="longest time down, s")
    ap.add_argument("--client-timeout", type=float, default=20.0, help="a hang, s")
    ap.add_argument("--back-wait", type=float, default=GOAL_BACK_S + 1,
                    help="how long to wait for the API after db up before a kill counts as "
                    "not survived, s")  # fmt: skip
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the var dir (and its cluster)")
    args = ap.parse_args(argv)
    var_dir = Path(tempfile.mkdtemp(prefix="ga-faults-"))
    _own_environment(var_dir)
    print(f"var dir {var_dir}; load average {os.getloadavg()[0]:.1f}", flush=True)
    try:
        return run(args, var_dir)
    finally:
        _tear_down(var_dir, keep=args.keep)


def _tear_down(var_dir: Path, *, keep: bool) -> None:
    from gis import pgcluster

    cluster = pgcluster.LocalCluster(var_dir / "pg")
    if not keep:
        try:
            pgcluster.stop(cluster)
        except Exception as err:  # noqa: BLE001 - a cluster killed last is already down
            print(f"stopping the cluster: {err}")
        shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
