"""Leader candidates of every residents' group of one community, as the app role under RLS.

    .venv/bin/python bench/leader_candidates.py [--community P07] [--fresh] [--explain]

Builds (once; --fresh to rebuild) a database ``ga_bench_parts`` on the local cluster: the
bundled Nanjing extract imported, residents' groups delineated (towers divided by floors,
``building_part``), synthetic residents for every dwelling (seed 1). A committee staff user
scoped to the community (default: the one nearest 3,000 households that has divided
buildings) opens a session, and the candidates query of ``gis.leaders`` runs for each of the
community's groups on one connection of the app's role (row-level security applies),
after one warm-up call, next to its peer in the same run: the query as it was before
building parts were areas (resident by building only, a geography distance per resident,
every backbone row of the city aggregated). Printed per query: median, 90th percentile and
largest time, how many groups got no candidate, and the load average of the machine, which
other work shares (read figures against it). ``--explain`` prints EXPLAIN ANALYZE of both
for the group where the new query was slowest.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_NAME = "ga_bench_parts"
NANJING = ROOT / "data" / "osm" / "nanjing-central.osm"
USERNAME = "bench_parts_staff"

# The candidates query before this change (gis/areas.py then), for residents' groups.
PEER = """
    WITH area AS (SELECT geom FROM residents_group WHERE id = :a),
    inside AS (SELECT building_id FROM building_path WHERE residents_group_id = :a),
    community AS (SELECT DISTINCT p.community_id FROM building_path p
                   WHERE p.residents_group_id = :a),
    near AS (
      SELECT b.id, coalesce(nullif(b.name, ''),
               nullif(concat(b.addr_street, b.addr_housenumber), ''), b.source_id)
               AS building,
             b.id IN (SELECT building_id FROM inside) AS lives_inside,
             ST_Distance(b.geom::geography, (SELECT geom FROM area)::geography)
               AS distance_m
        FROM building b WHERE b.community_id IN (SELECT community_id FROM community)
    ),
    roles AS (SELECT k.resident_id, array_agg(k.role ORDER BY k.role) AS backbone
                FROM backbone k GROUP BY k.resident_id),
    cand AS (
      SELECT r.id AS resident_id, r.name, r.building_id, n.building, r.room,
             n.lives_inside, round(n.distance_m::numeric, 0)::float AS distance_m,
             coalesce(k.backbone, '{}') AS backbone
        FROM resident r JOIN near n ON n.id = r.building_id
        LEFT JOIN roles k ON k.resident_id = r.id
       WHERE r.status <> 'registered'
    )
    SELECT c.*, EXISTS (SELECT 1 FROM leader_assignment la WHERE la.level = :l
             AND la.area_id = :a AND la.ended_at IS NULL
             AND la.resident_id = c.resident_id) AS is_current
      FROM cand c
     ORDER BY (c.lives_inside AND cardinality(c.backbone) > 0) DESC, c.distance_m,
              cardinality(c.backbone) > 0 DESC, c.building_id, c.room, c.resident_id
     LIMIT :limit
"""


def _url(name: str = DB_NAME) -> str:
    from gis import db
    from gis.settings import get_settings

    base = db.resolve_url(get_settings())
    return db.make_url(base).set(database=name).render_as_string(hide_password=False)


def _drop(url: str) -> None:
    import sqlalchemy as sa

    from gis import db

    name = db.make_url(url).database
    admin = db.create_engine(
        db.make_url(url).set(database="postgres").render_as_string(hide_password=False),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.NullPool,
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def build(url: str, fresh: bool) -> None:
    """Create and fill the bench database unless it is there (or ``fresh``)."""
    import sqlalchemy as sa

    from gis import db, security
    from gis.delineate.service import run as delineate_run
    from gis.io.pipeline import import_file
    from gis.ledger.synth import generate
    from gis.settings import get_settings

    eng = db.create_engine(url, poolclass=sa.NullPool)
    done = False
    if not fresh and db.is_at_head(eng):
        with eng.connect() as conn:
            done = conn.scalar(sa.text("SELECT to_regclass('bench_parts_done') IS NOT NULL"))
    eng.dispose()
    if done:
        return
    _drop(url)  # half built, at an older schema, or asked for
    t = time.perf_counter()
    db.ensure_database(url)
    db.migrate(url)
    eng = db.create_engine(url, poolclass=sa.NullPool)
    import_file(eng, NANJING)
    delineate_run(eng)
    with eng.begin() as conn:
        generate(conn, security.Keys.from_settings(get_settings()), seed=1)
        conn.execute(sa.text("ANALYZE"))  # the planner's statistics, as a settled database has
        conn.execute(sa.text("CREATE TABLE bench_parts_done (at timestamptz DEFAULT now())"))
    eng.dispose()
    print(f"built {DB_NAME} in {time.perf_counter() - t:.0f} s")


def _community(conn, code: str | None) -> tuple[int, str, int]:
    import sqlalchemy as sa

    return conn.execute(
        sa.text(
            "SELECT c.id, c.code, c.households FROM community c WHERE (CAST(:code AS text) "
            "IS NULL OR c.code = :code) AND EXISTS (SELECT 1 FROM building_part p JOIN "
            "building b ON b.id = p.building_id WHERE b.community_id = c.id) "
            "ORDER BY abs(c.households - 3000), c.id LIMIT 1"
        ),
        {"code": code},
    ).one()


def _session(conn, community_id: int) -> str:
    import sqlalchemy as sa

    from gis import security

    uid = conn.scalar(sa.text("SELECT id FROM app_user WHERE username = :u"), {"u": USERNAME})
    if uid is None:
        uid = conn.scalar(
            sa.text(
                "INSERT INTO app_user (username, role, password_hash, full_name) "
                "VALUES (:u, 'committee_staff', 'none', :u) RETURNING id"
            ),
            {"u": USERNAME},
        )
    conn.execute(sa.text("DELETE FROM app_user_scope WHERE user_id = :u"), {"u": uid})
    conn.execute(
        sa.text("INSERT INTO app_user_scope VALUES (:u, 'community', :c)"),
        {"u": uid, "c": community_id},
    )
    token, digest = security.new_token()
    conn.execute(
        sa.text(
            "INSERT INTO auth_session (token_hash, user_id, expires_at) "
            "VALUES (:h, :u, now() + interval '1 hour')"
        ),
        {"h": digest, "u": uid},
    )
    return token


def _time(conn, sql: str, groups: list[int]) -> tuple[list[float], int, dict[int, float]]:
    import sqlalchemy as sa

    stmt = sa.text(sql)
    params = {"l": "residents_group", "limit": 30}
    conn.execute(stmt, {**params, "a": groups[0]}).all()  # warm-up: plans, PROJ, caches
    times, empty, by_group = [], 0, {}
    for g in groups:
        t = time.perf_counter()
        n = len(conn.execute(stmt, {**params, "a": g}).all())
        ms = (time.perf_counter() - t) * 1000
        times.append(ms)
        by_group[g] = ms
        empty += n == 0
    return times, empty, by_group


def _line(name: str, times: list[float], empty: int, groups: int) -> str:
    ordered = sorted(times)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return (
        f"  {name:<6} median {statistics.median(times):8.1f} ms   p90 {p90:8.1f} ms   "
        f"max {ordered[-1]:8.1f} ms   groups without a candidate {empty}/{groups}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--community", help="community code (default: nearest 3,000 households)")
    ap.add_argument("--fresh", action="store_true", help="rebuild the bench database")
    ap.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE the slowest group")
    args = ap.parse_args(argv)

    import sqlalchemy as sa

    from gis import db, security
    from gis.leaders import _CANDIDATES
    from gis.settings import get_settings

    url = _url()
    build(url, args.fresh)
    owner = db.create_engine(url, poolclass=sa.NullPool)
    with owner.begin() as conn:
        cid, code, households = _community(conn, args.community)
        groups = list(
            conn.execute(
                sa.text("SELECT id FROM residents_group WHERE community_id = :c ORDER BY id"),
                {"c": cid},
            ).scalars()
        )
        token = _session(conn, cid)
    owner.dispose()
    keys = security.Keys.from_settings(get_settings())
    app = db.create_engine(db.app_role_url(url, keys.db_password()), poolclass=sa.NullPool)
    ours = _CANDIDATES.format(table="residents_group")
    print(f"community {code}: {households:,} households, {len(groups)} residents' groups")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with app.connect() as conn, conn.begin():
        conn.execute(sa.text("SELECT set_config('ga.session', :t, true)"), {"t": token})
        new, new_empty, by_group = _time(conn, ours, groups)
        old, old_empty, _ = _time(conn, PEER, groups)
        print(_line("ours", new, new_empty, len(groups)))
        print(_line("before", old, old_empty, len(groups)))
        print(f"  ratio of medians: {statistics.median(old) / statistics.median(new):.1f}x")
        if args.explain:
            slowest = max(by_group, key=by_group.get)
            for name, sql in (("ours", ours), ("before", PEER)):
                plan = conn.execute(
                    sa.text(f"EXPLAIN (ANALYZE, BUFFERS) {sql}"),
                    {"a": slowest, "l": "residents_group", "limit": 30},
                ).scalars()
                print(f"--- {name}, group {slowest}")
                print("\n".join(plan))
    app.dispose()
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
