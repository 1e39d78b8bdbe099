"""Benchmark: `gridatlas import` against osm2pgsql on the same file, same server, same run.

    .venv/bin/python bench/import_osm.py [--file ../shared/data/osm/porto-central.osm.pbf]
                                         [--repeat 3]

Each tool imports into its own fresh database on the same PostGIS server (the project-local
one, or GRIDATLAS_DATABASE_URL). Times are medians of ``--repeat`` runs, each into a new
database. Two figures for Grid Atlas:

* ``command``: the whole ``gridatlas import`` process, as a user runs it (Python start-up,
  schema check, read, write, commit);
* ``in-process``: ``gis.io.pipeline.import_file`` alone (what a long-running service pays).

osm2pgsql runs with its defaults (pgsql output, non-slim), timed as a whole process. It
writes points, lines, roads and polygons; Grid Atlas writes buildings with household
estimates, numbered dwellings, facilities with categories, the noded walk network, and an
import record, with upserts that make re-imports idempotent.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gis import db  # noqa: E402
from gis.io.pipeline import import_file  # noqa: E402
from gis.settings import get_settings  # noqa: E402

DEFAULT_FILE = ROOT.parent / "shared" / "data" / "osm" / "porto-central.osm.pbf"


def _admin(url: str) -> sa.Engine:
    return db.create_engine(
        make_url(url).set(database="postgres").render_as_string(False),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.NullPool,
    )


def _new_database(server: str, label: str, extensions: tuple[str, ...]) -> str:
    name = f"ga_bench_{label}_{uuid.uuid4().hex[:8]}"
    with _admin(server).connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    eng = db.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with eng.connect() as conn:
        for ext in extensions:
            conn.execute(sa.text(f"CREATE EXTENSION IF NOT EXISTS {ext}"))
    eng.dispose()
    return url


def _drop(server: str, url: str) -> None:
    with _admin(server).connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))


def time_osm2pgsql(server: str, path: Path) -> tuple[float, str]:
    url = _new_database(server, "osm2pgsql", ("postgis", "hstore"))
    u = make_url(url)
    env = {**os.environ, "PGPASSWORD": u.password or ""}
    cmd = [
        "osm2pgsql",
        "--create",
        "--database",
        u.database,
        "--host",
        u.host or "127.0.0.1",
        "--port",
        str(u.port),
        "--username",
        u.username or "",
        "--log-level",
        "warn",
        str(path),
    ]
    try:
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"osm2pgsql failed: {proc.stderr.strip()[-500:]}")
        eng = db.create_engine(url, poolclass=sa.NullPool)
        with eng.connect() as conn:
            n = conn.scalar(
                sa.text("SELECT count(*) FROM planet_osm_polygon WHERE building IS NOT NULL")
            )
        eng.dispose()
        return seconds, f"{n} building polygons"
    finally:
        _drop(server, url)


def _migrated_database(server: str) -> str:
    url = _new_database(server, "ours", ("postgis", "pgrouting", "pgcrypto"))
    db.migrate(url)
    return url


def time_ours_command(server: str, path: Path) -> tuple[float, str]:
    url = _migrated_database(server)
    exe = Path(sys.executable).with_name("gridatlas")
    env = {**os.environ, "GRIDATLAS_DATABASE_URL": url}
    try:
        t0 = time.perf_counter()
        proc = subprocess.run(
            [str(exe), "import", "-q", str(path)], env=env, capture_output=True, text=True
        )
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"gridatlas import failed: {proc.stderr.strip()[-500:]}")
        return seconds, proc.stdout.strip().splitlines()[2].split()[1] + " buildings"
    finally:
        _drop(server, url)


def time_ours_in_process(server: str, path: Path) -> tuple[float, float, str]:
    url = _migrated_database(server)
    eng = db.create_engine(url, poolclass=sa.NullPool)
    try:
        t0 = time.perf_counter()
        report = import_file(eng, path)
        first = time.perf_counter() - t0
        print(f"    in-process: read {report.read_s:.2f} s, write {report.write_s:.2f} s")
        t0 = time.perf_counter()
        import_file(eng, path)
        again = time.perf_counter() - t0
        c = report.counts
        with eng.connect() as conn:
            households = conn.scalar(sa.text("SELECT sum(households) FROM building"))
            dwellings = conn.scalar(sa.text("SELECT count(*) FROM dwelling_all"))
        what = (
            f"{c['building'].added} buildings ({households} households, {dwellings} "
            f"dwellings numbered), {c['facility'].added} facilities, "
            f"{c['walk_node'].added} walk nodes, {c['walk_edge'].added} walk edges"
        )
        return first, again, what
    finally:
        eng.dispose()
        _drop(server, url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("osm2pgsql") is None:
        raise SystemExit("osm2pgsql is not installed: run scripts/bootstrap.sh")
    server = db.resolve_url(get_settings())
    version = subprocess.run(["osm2pgsql", "--version"], capture_output=True, text=True)
    print(
        f"file: {args.file.name} ({args.file.stat().st_size / 1e6:.1f} MB), "
        f"{args.repeat} runs each, median; {version.stderr.splitlines()[0].strip()}"
    )
    o2p, cmd, inproc, again = [], [], [], []
    for i in range(args.repeat):
        s, o2p_what = time_osm2pgsql(server, args.file)
        o2p.append(s)
        s, _ = time_ours_command(server, args.file)
        cmd.append(s)
        first, re, ours_what = time_ours_in_process(server, args.file)
        inproc.append(first)
        again.append(re)
        print(
            f"  run {i + 1}: osm2pgsql {o2p[-1]:.2f} s | gridatlas command {cmd[-1]:.2f} s, "
            f"in-process {inproc[-1]:.2f} s, re-import {again[-1]:.2f} s"
        )
    m_o2p, m_cmd = statistics.median(o2p), statistics.median(cmd)
    m_in, m_again = statistics.median(inproc), statistics.median(again)
    print()
    print(f"{'tool':<34}{'median s':>10}{'vs osm2pgsql':>14}")
    print(f"{'osm2pgsql (default pgsql output)':<34}{m_o2p:>10.2f}{1.0:>13.2f}x")
    print(f"{'gridatlas import (command)':<34}{m_cmd:>10.2f}{m_cmd / m_o2p:>13.2f}x")
    print(f"{'gridatlas import_file (in-process)':<34}{m_in:>10.2f}{m_in / m_o2p:>13.2f}x")
    print(f"{'gridatlas re-import, no changes':<34}{m_again:>10.2f}{m_again / m_o2p:>13.2f}x")
    print()
    print(f"osm2pgsql wrote: {o2p_what}")
    print(f"gridatlas wrote: {ours_what}")
    print("goal: gridatlas within 2x of osm2pgsql")


if __name__ == "__main__":
    main()
