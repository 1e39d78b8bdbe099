"""Spreadsheet import of a 20,000-row residents sheet: SQL statements and seconds.

    .venv/bin/python bench/ledger_import.py [--rows 20000] [--fresh]

Builds (once; --fresh to rebuild) a template database ``ga_bench_ledger`` on the local
cluster: Nanjing (data/osm/nanjing-central.osm) with its residents' groups, ``--rows``
synthetic residents (gis/ledger/synth.py, seed 1) in the largest communities, and
one committee-staff user scoped to them. The sheet is those
residents as the export writes them (.xlsx); then the residents of the second half are
deleted from the database, so that importing the sheet adds them, and every tenth of the
remaining rows gets a new phone number, so that it updates them.

Each run clones the template, serves the app in process (TestClient: the app's own role,
row-level security, audit on) and posts the sheet twice through the API: mode=preview,
then mode=all. It prints, per request, the SQL statements the app's engine ran (a
``before_cursor_execute`` counter; an executemany counts once) and the seconds. Run it
before and after a change to compare: the template is kept, so both runs import the same
sheet into the same database.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Like the tests: without a configured key, a fixed one of the bench's own, which encrypts
# only synthetic people in throw-away databases (never a deployment's).
BENCH_KEY = "6b1f0c3e9a4d27f58e0b6c1d3a9f4e2b7c5d8a1f0e3b6c9d2a5f8e1b4c7d0a3f"
if not os.environ.get("GRIDATLAS_SECRET_KEY") and not (ROOT / "var" / "secret.key").exists():
    os.environ["GRIDATLAS_SECRET_KEY"] = BENCH_KEY

from gis import db, security  # noqa: E402
from gis.settings import Settings, get_settings  # noqa: E402

TEMPLATE_DB = "ga_bench_ledger"
RUN_DB = "ga_bench_ledger_run"
USER, PASSWORD = "bench_importer", "bench-importer-password-2026"
NANJING = ROOT / "data" / "osm" / "nanjing-central.osm"


def _with_db(url: str, name: str) -> str:
    return db.make_url(url).set(database=name).render_as_string(hide_password=False)


def _admin(url: str, sql: str) -> Any:
    eng = db.create_engine(_with_db(url, "postgres"), isolation_level="AUTOCOMMIT",
                           poolclass=sa.NullPool)  # fmt: skip
    try:
        with eng.connect() as conn:
            result = conn.execute(sa.text(sql))
            return result.first() if result.returns_rows else None
    finally:
        eng.dispose()


def build(server: str, rows: int, fresh: bool) -> None:
    """Create the template database with its residents, user and sheet (unless there)."""
    from gis.delineate.service import run as delineate_run
    from gis.io.pipeline import import_file
    from gis.ledger import tabular
    from gis.ledger.synth import generate

    url = _with_db(server, TEMPLATE_DB)
    exists = _admin(server, f"SELECT 1 FROM pg_database WHERE datname = '{TEMPLATE_DB}'")
    if exists and not fresh:
        eng = db.create_engine(url, poolclass=sa.NullPool)
        with eng.connect() as conn:
            has = conn.scalar(sa.text("SELECT to_regclass('bench_sheet') IS NOT NULL"))
            made = conn.scalar(sa.text("SELECT rows FROM bench_sheet")) if has else None
        eng.dispose()
        if made == rows:
            return
    if exists:
        _admin(server, f'DROP DATABASE "{TEMPLATE_DB}" WITH (FORCE)')
    t = time.perf_counter()
    db.ensure_database(url)
    db.migrate(url)
    eng = db.create_engine(url, poolclass=sa.NullPool)
    import_file(eng, NANJING)
    delineate_run(eng)
    keys = security.Keys.from_settings(get_settings())
    with eng.begin() as conn:
        # the largest communities, as many as hold the rows (about 2.6 people a household)
        communities, households = [], 0
        for c, n in conn.execute(
            sa.text(
                "SELECT p.community_id, sum(b.households) FROM building_path p JOIN building b "
                "ON b.id = p.building_id WHERE p.community_id IS NOT NULL "
                "GROUP BY 1 ORDER BY 2 DESC"
            )
        ):
            if households * 2.4 >= rows:
                break
            communities.append(c)
            households += n
        bids = list(conn.scalars(
            sa.text("SELECT building_id FROM building_path WHERE community_id = ANY(:c)"),
            {"c": communities},
        ))  # fmt: skip
        made = generate(conn, keys, seed=1, limit=rows, building_ids=bids)
        people = conn.execute(
            sa.text(
                "SELECT r.*, b.source_id FROM resident r JOIN building b ON b.id = r.building_id "
                "ORDER BY r.id LIMIT :n"
            ),
            {"n": rows},
        ).all()
        sheet = []
        for i, r in enumerate(people):
            phone = keys.open(r.phone_enc, "resident.phone") if r.phone_enc else None
            if i < len(people) // 2 and i % 10 == 0:
                phone = f"139{i:08d}"  # an update
            sheet.append({
                "name": r.name, "gender": r.gender, "birth_date": r.birth_date,
                "id_number": keys.open(r.id_number_enc, "resident.id_number"),
                "phone": phone, "building": r.source_id, "room": r.room,
                "relation": r.relation, "status": r.status, "notes": r.notes,
            })  # fmt: skip
        data = tabular.write_table("residents", sheet, "xlsx")
        added = [r.id for r in people[len(people) // 2 :]]
        for table in ("special_group", "key_person", "backbone", "leader_assignment"):
            conn.execute(sa.text(f"DELETE FROM {table} WHERE resident_id = ANY(:i)"), {"i": added})
        conn.execute(sa.text("DELETE FROM resident WHERE id = ANY(:i)"), {"i": added})
        uid = conn.scalar(
            sa.text(
                "INSERT INTO app_user (username, role, password_hash) "
                "VALUES (:u, 'committee_staff', :p) RETURNING id"
            ),
            {"u": USER, "p": security.hash_password(PASSWORD)},
        )
        conn.execute(
            sa.text("INSERT INTO app_user_scope SELECT :u, 'community', unnest(:c)"),
            {"u": uid, "c": communities},
        )
        conn.execute(sa.text("CREATE TABLE bench_sheet (rows int, made jsonb, data bytea)"))
        conn.execute(
            sa.text("INSERT INTO bench_sheet VALUES (:n, CAST(:m AS jsonb), :d)"),
            {"n": rows, "m": json.dumps(made), "d": data},
        )
    eng.dispose()
    print(f"built {TEMPLATE_DB} in {time.perf_counter() - t:.0f} s: {made}")


def run(server: str) -> None:
    """Clone the template, then preview and import the sheet through the API."""
    from fastapi.testclient import TestClient

    from api.app import create_app

    _admin(server, f'DROP DATABASE IF EXISTS "{RUN_DB}" WITH (FORCE)')
    _admin(server, f'CREATE DATABASE "{RUN_DB}" TEMPLATE "{TEMPLATE_DB}"')
    url = _with_db(server, RUN_DB)
    try:
        eng = db.create_engine(url, poolclass=sa.NullPool)
        with eng.connect() as conn:
            data = bytes(conn.scalar(sa.text("SELECT data FROM bench_sheet")))
            before = conn.scalar(sa.text("SELECT count(*) FROM resident"))
            history_before = conn.scalar(sa.text("SELECT count(*) FROM ledger_history"))
        app = create_app(Settings(database_url=url))
        with TestClient(app) as client:
            r = client.post("/api/auth/login", json={"username": USER, "password": PASSWORD})
            auth = {"Authorization": f"Bearer {r.json()['token']}"}
            count = [0]
            sa.event.listen(app.state.engine, "before_cursor_execute",
                            lambda *_a, **_k: count.__setitem__(0, count[0] + 1))  # fmt: skip
            print(f"sheet: {len(data) / 2**20:.1f} MB .xlsx; residents before: {before}")
            print(f"{'mode':<9}{'statements':>11}{'seconds':>9}  outcome")
            for mode in ("preview", "all"):
                count[0] = 0
                t = time.perf_counter()
                r = client.post(
                    "/api/ledgers/residents/import", params={"mode": mode}, headers=auth,
                    files={"file": ("residents.xlsx", io.BytesIO(data))},
                )  # fmt: skip
                seconds = time.perf_counter() - t
                body = r.json()
                outcome = {k: body.get(k) for k in ("total_rows", "added", "updated",
                                                    "unchanged", "bad_rows", "written")}
                print(f"{mode:<9}{count[0]:>11}{seconds:>9.2f}  {r.status_code} {outcome}")
        with eng.connect() as conn:
            after = conn.scalar(sa.text("SELECT count(*) FROM resident"))
            history = conn.scalar(sa.text("SELECT count(*) FROM ledger_history"))
        eng.dispose()
        print(f"residents after: {after}; ledger_history rows added: {history - history_before}")
    finally:
        _admin(server, f'DROP DATABASE IF EXISTS "{RUN_DB}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--fresh", action="store_true", help="rebuild the template database")
    args = parser.parse_args()
    server = db.resolve_url(get_settings())
    build(server, args.rows, args.fresh)
    run(server)


if __name__ == "__main__":
    main()
