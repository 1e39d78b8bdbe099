"""Benchmark: the reports dashboard over 35 communities of the synthetic city, and one
community's PDF (issue 15, Goals: dashboard ≤ 1 s server time, PDF ≤ 3 s).

    .venv/bin/python bench/reports.py [--runs 7] [--communities 35] [--keep]

A synthetic city (``gis.synth.write_city``, seed 1) is made with the fewest buildings that
give the wanted number of communities, imported into a fresh database on the local server
(``gis.io.pipeline.import_file``); the first community is delineated and given synthetic
residents and a staff login, and there is an admin; every committee's rating is published
once (timed, shown).
Then, in process (``TestClient``: the app's own role, no network), each run times:

* ``GET /api/dashboard`` (the subdistrict level: every community, as the admin sees them)
  and ``GET /app/reports`` (the page) — server time, the goal ≤ 1 s;
* ``GET /api/community-reports/{id}/report.pdf`` of the community with residents, as its
  staff, in Chinese and in English — server time, the goal ≤ 3 s;
* its norms as staff (read from the rows) and as a planner (counted by ``ga_report_counts``,
  small counts withheld), and the planner's profile (which also cuts the stats table).

The machine is shared: the load (``uptime``) is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gis import db, security  # noqa: E402
from gis.settings import Settings, get_settings  # noqa: E402


def _city(tmp: Path, communities: int) -> tuple[Path, str]:
    from gis.synth import write_city

    n = 1500
    while True:
        out = tmp / f"city-{n}.gpkg"
        summary = write_city(out, buildings=n, seed=1)
        got = int(re.search(r"(\d+) communities", summary).group(1))
        if got >= communities:
            return out, summary
        n += 20


def _drop(server: str, url: str) -> None:
    admin = db.create_engine(
        make_url(server).set(database="postgres").render_as_string(False),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.NullPool,
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


def _prepare(url: str, city: Path) -> int:
    from gis.delineate.service import run as delineate
    from gis.io.pipeline import import_file
    from gis.ledger.synth import generate

    eng = db.create_engine(url, poolclass=sa.NullPool)
    import_file(eng, city)
    with eng.connect() as conn:
        code = conn.scalar(sa.text("SELECT code FROM community ORDER BY id LIMIT 1"))
    delineate(eng, community=code)  # its groups, clusters and units: the staff's scope
    keys = security.Keys.from_settings(Settings())
    with eng.begin() as conn:
        cid = conn.scalar(sa.text("SELECT min(id) FROM community"))
        bids = [r[0] for r in conn.execute(
            sa.text("SELECT id FROM building WHERE community_id = :c AND households > 0"),
            {"c": cid})]  # fmt: skip
        generate(conn, keys, seed=1, building_ids=bids)
        for name, role in (
            ("bench_admin", "admin"),
            ("bench_staff", "committee_staff"),
            ("bench_planner", "planner"),
        ):
            uid = conn.scalar(
                sa.text("INSERT INTO app_user (username, role, password_hash) VALUES "
                        "(:u, :r, :p) RETURNING id"),
                {"u": name, "r": role, "p": security.hash_password(f"pw-{name}-2026")},
            )  # fmt: skip
            if role != "admin":
                conn.execute(sa.text("INSERT INTO app_user_scope VALUES (:u, 'community', :c)"),
                             {"u": uid, "c": cid})  # fmt: skip
    eng.dispose()
    return int(cid)


def _login(client, name: str) -> dict[str, str]:
    r = client.post("/api/auth/login", json={"username": name, "password": f"pw-{name}-2026"})
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['token']}"}


def _times(client, path: str, headers: dict, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        r = client.get(path, headers=headers)
        out.append(time.perf_counter() - t)
        if r.status_code != 200:
            raise SystemExit(f"{path}: {r.status_code} {r.text[:300]}")
    return out


def _show(label: str, ts: list[float], goal: float) -> None:
    print(f"{label:<44} median {statistics.median(ts) * 1000:7.0f} ms  min "
          f"{min(ts) * 1000:7.0f}  max {max(ts) * 1000:7.0f}  (goal ≤ {goal * 1000:.0f} ms, "
          f"{'met' if statistics.median(ts) <= goal else 'NOT met'})")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--communities", type=int, default=35)
    ap.add_argument("--keep", action="store_true", help="keep the database")
    args = ap.parse_args()
    from fastapi.testclient import TestClient

    from api.app import create_app

    # a key for this run only (synthetic residents are sealed with it); no file is written
    os.environ.setdefault("GRIDATLAS_SECRET_KEY", secrets.token_hex(32))
    get_settings.cache_clear()
    print("load:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    server = db.resolve_url(get_settings())
    url = make_url(server).set(database=f"ga_bench_reports_{uuid.uuid4().hex[:8]}")
    url = url.render_as_string(hide_password=False)
    db.ensure_database(url)
    db.migrate(url)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            city, summary = _city(Path(tmp), args.communities)
            print(summary)
            t = time.perf_counter()
            cid = _prepare(url, city)
            print(f"imported, residents made: {time.perf_counter() - t:.1f} s")
        with TestClient(create_app(Settings(database_url=url))) as client:
            admin, staff = _login(client, "bench_admin"), _login(client, "bench_staff")
            planner = _login(client, "bench_planner")
            ids = [i["id"] for i in client.get("/api/dashboard", headers=admin).json()["items"]]
            t = time.perf_counter()
            for i in ids:
                r = client.post(f"/api/reports/communities/{i}/rating", headers=admin)
                r.raise_for_status()
            took = time.perf_counter() - t
            print(f"{len(ids)} communities; every rating computed and published once: "
                  f"{took:.1f} s ({took / len(ids) * 1000:.0f} ms each)")  # fmt: skip
            _show("GET /api/dashboard (subdistrict level)",
                  _times(client, "/api/dashboard", admin, args.runs), 1.0)  # fmt: skip
            _show("GET /app/reports (the page)", _times(client, "/app/reports", admin, args.runs),
                  1.0)  # fmt: skip
            pdf = f"/api/community-reports/{cid}/report.pdf"
            _show(f"GET report.pdf (community {cid}, its staff)",
                  _times(client, pdf, staff, args.runs), 3.0)  # fmt: skip
            _show("GET report.pdf?lang=en (the same, English)",
                  _times(client, f"{pdf}?lang=en", staff, args.runs), 3.0)  # fmt: skip
            # peers: the norms read from the rows (staff) and counted by ga_report_counts
            # with the stats table's check (a planner of the same community)
            norms = f"/api/reports/communities/{cid}/norms"
            _show("GET norms (staff: from the rows)", _times(client, norms, staff, args.runs),
                  1.0)  # fmt: skip
            _show("GET norms (planner: counted, suppressed)",
                  _times(client, norms, planner, args.runs), 1.0)  # fmt: skip
            _show("GET profile (planner: + the stats table)",
                  _times(client, f"/api/reports/communities/{cid}", planner, args.runs),
                  1.0)  # fmt: skip
    finally:
        if not args.keep:
            _drop(server, url)
    print("load:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
