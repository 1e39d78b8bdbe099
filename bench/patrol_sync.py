"""Benchmark: 1,000 offline check-ins synced as the patrol page sends them.

    .venv/bin/python bench/patrol_sync.py [--n 1000] [--batch 200] [--keep]

The bundled Nanjing extract is imported into a fresh database and delineated; a grid worker
is given the grid with the most buildings. The app is served on a loopback port (uvicorn,
one worker, the app role, row-level security as for any user). The tablet's queue is
``--n`` tap check-ins at that grid's buildings, each with its own Idempotency-Key and a
device time in the last hours, made before the clock starts.

* Ours (as ``web/static/app/patrol.js``): ``POST /api/patrol/checkins/batch`` with
  ``--batch`` items a request, one request at a time. Then the same queue is synced again
  (answers lost, say): every item is replayed, nothing is created.
* Peer: the same number of new records, one ``POST /api/patrol/checkins`` each with its
  ``Idempotency-Key`` header (what a page without the batch endpoint would send).

Goal (issue 13): 1,000 offline check-ins synced in ≤ 5 s. Rows are counted as the owner.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
import uuid
from pathlib import Path

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_KEY = "3c9e1a7f5b2d8e0c4a6f1b3d9e7c5a2f8b0d6e4c1a9f3b7d5e2c8a0f6b4d1e9c"
if not os.environ.get("GRIDATLAS_SECRET_KEY") and not (ROOT / "var" / "secret.key").exists():
    os.environ["GRIDATLAS_SECRET_KEY"] = BENCH_KEY

from bench.import_osm import _drop, _migrated_database  # noqa: E402
from bench.tiles import _free_port, _uvicorn, _wait  # noqa: E402
from gis import db, security  # noqa: E402
from gis.delineate.service import run as delineate_run  # noqa: E402
from gis.io.pipeline import import_file  # noqa: E402
from gis.settings import get_settings  # noqa: E402

NANJING = ROOT / "data" / "osm" / "nanjing-central.osm"
USER, PASSWORD = "bench_worker", "bench-worker-password-2026"


def prepare(server: str) -> tuple[str, list[int]]:
    """A delineated Nanjing and a grid worker of its largest grid: (url, its buildings)."""
    url = _migrated_database(server)
    eng = db.create_engine(url, poolclass=sa.NullPool)
    try:
        import_file(eng, NANJING)
        delineate_run(eng)
        with eng.begin() as conn:
            grid = conn.scalar(
                sa.text(
                    "SELECT grid_id FROM building_path GROUP BY grid_id "
                    "ORDER BY count(*) DESC, grid_id LIMIT 1"
                )
            )
            buildings = list(
                conn.execute(
                    sa.text("SELECT building_id FROM building_path WHERE grid_id = :g ORDER BY 1"),
                    {"g": grid},
                ).scalars()
            )
            uid = conn.scalar(
                sa.text(
                    "INSERT INTO app_user (username, role, password_hash) "
                    "VALUES (:u, 'grid_worker', :p) RETURNING id"
                ),
                {"u": USER, "p": security.hash_password(PASSWORD)},
            )
            conn.execute(
                sa.text("INSERT INTO app_user_scope VALUES (:u, 'grid', :g)"), {"u": uid, "g": grid}
            )
    finally:
        eng.dispose()
    return url, buildings


def queue(buildings: list[int], n: int) -> list[dict]:
    """``n`` tap check-ins as the tablet keeps them: a key each, made when recorded."""
    now = dt.datetime.now(dt.UTC)
    return [
        {
            "key": str(uuid.uuid4()),
            "building_id": buildings[i % len(buildings)],
            "method": "tap",
            "at": (now - dt.timedelta(seconds=20 * (n - i))).isoformat(),
        }
        for i in range(n)
    ]


def sync_batches(client: httpx.Client, items: list[dict], batch: int) -> tuple[float, int, int]:
    """Seconds, created and replayed, sending ``batch`` items a request."""
    created = replayed = 0
    t0 = time.perf_counter()
    for k in range(0, len(items), batch):
        r = client.post("/api/patrol/checkins/batch", json={"items": items[k : k + batch]})
        r.raise_for_status()
        for res in r.json()["results"]:
            if res["status"] != 201:
                raise SystemExit(f"an item was refused: {res}")
            replayed += bool(res["replayed"])
            created += not res["replayed"]
    return time.perf_counter() - t0, created, replayed


def sync_one_by_one(client: httpx.Client, items: list[dict]) -> float:
    t0 = time.perf_counter()
    for item in items:
        body = {k: v for k, v in item.items() if k != "key"}
        r = client.post("/api/patrol/checkins", json=body, headers={"Idempotency-Key": item["key"]})
        r.raise_for_status()
    return time.perf_counter() - t0


def count(url: str) -> int:
    eng = db.create_engine(url, poolclass=sa.NullPool)
    try:
        with eng.connect() as conn:
            return int(conn.scalar(sa.text("SELECT count(*) FROM patrol_checkin")))
    finally:
        eng.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--keep", action="store_true", help="keep the database")
    args = ap.parse_args()
    server = db.resolve_url(get_settings())
    t0 = time.perf_counter()
    url, buildings = prepare(server)
    print(f"prepared Nanjing in {time.perf_counter() - t0:.1f} s: {len(buildings)} buildings "
          f"in the worker's grid")  # fmt: skip
    port = _free_port()
    proc = _uvicorn("api.app:create_app", port, {"GRIDATLAS_DATABASE_URL": url}, "--factory")
    try:
        _wait(port, "/api/health", proc, "the app")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            r = client.post("/api/auth/login", json={"username": USER, "password": PASSWORD})
            r.raise_for_status()
            client.headers["Authorization"] = f"Bearer {r.json()['token']}"
            items = queue(buildings, args.n)
            ours, created, _ = sync_batches(client, items, args.batch)
            rows = count(url)
            again, _, replayed = sync_batches(client, items, args.batch)
            rows_again = count(url)
            peer = sync_one_by_one(client, queue(buildings, args.n))
            rows_peer = count(url) - rows_again
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if not args.keep:
            _drop(server, url)
    goal = "met" if ours <= 5.0 and rows == args.n == rows_again else "NOT met"
    print(f"{'sync':34} {'seconds':>8} {'per item ms':>12} {'rows':>6}")
    print(f"{'ours: batch of ' + str(args.batch):34} {ours:8.2f} {1000 * ours / args.n:12.2f} "
          f"{rows:6d}  created {created}")  # fmt: skip
    print(f"{'ours again (all replayed)':34} {again:8.2f} {1000 * again / args.n:12.2f} "
          f"{rows_again:6d}  replayed {replayed}")  # fmt: skip
    print(f"{'peer: one POST per record':34} {peer:8.2f} {1000 * peer / args.n:12.2f} "
          f"{rows_peer:6d}")  # fmt: skip
    print(f"ratio peer / ours: {peer / ours:.1f}x; goal: {args.n} synced in <= 5 s: {goal}; "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
