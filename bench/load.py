"""Tablet traffic under locust: grid workers and staff at a steady rate, audit checked.

    .venv/bin/python bench/load.py [--minutes 1] [--rate 300] [--workers 2] [--fresh]

Builds (once; --fresh to rebuild) a database ``ga_bench_load`` on the local cluster as
``gridatlas demo`` makes one: the bundled Nanjing extract imported, walking reach computed,
residents' groups delineated, synthetic residents (seed 1). It adds ``--grid-workers``
grid workers (``lw0001`` …, each scoped to one grid that has residents, round robin) and
``--staff`` committee staff (``ls001`` …, each scoped to one community). Every simulated
user gets a session of its own, opened once before the run and reused for every request
(the sessions are opened in the database, as ``POST /api/auth/login`` would open them, so
that a thousand scrypt checks do not eat the start of the run; ``--logins N`` sends N real
logins first to show that path works).

The app runs under uvicorn on 127.0.0.1 with ``--workers`` processes; locust (FastHttpUser,
headless, as a library, in a child process of its own so that gevent's patching stays out
of this one) drives it with 2-5 s of think time between tasks. A grid worker's day:

  weight  task
    10    open a building's card: its path, dwellings, residents (audited) and the leader of
          every level on the path that has one (audited when it has one), as grid.js does
    4     check in at a building (POST /api/patrol/checkins, a fresh Idempotency-Key)
    3     search: an address of the grid, an address with a room, or a resident's name
    1     report a problem at a building (POST /api/problems)
    1     the problems of the area (GET /api/problems)
    1     today's reminders (GET /api/me/reminders; audited when visits are due)
    1     reopen the grid page (GET /app/grid: the Folium map of the grid, no person in it)

Staff (one in ``--staff-share`` of the users) open a residents' group's leader and its
candidates (both audited when they name someone) and assign one of the candidates
(PUT /api/leaders/residents_group/{id} with ``replaces``), each staff member on groups
no other one touches, so that no 409 comes from two of them racing for a seat.

The number of users is set so that their think time gives ``--rate`` requests/s. Figures
are taken over ``--minutes`` after all users have started; the audit check spans the whole
run (ramp-up, measure, drain: users stop taking new tasks and the bench waits for every
answer before counting).

A personal-data read, as counted by the clients, is a 2xx answer to one of:
  * GET /api/residents — always (an empty page is audited too: the query says whom);
  * GET /api/leaders/{level}/{id} — when its history is not empty;
  * GET /api/leaders/{level}/{id}/candidates — when it lists someone;
  * GET /api/search — when it looked into the residents' ledger: a query that is not an
    address and has 1-20 characters, or an address with a room that found something;
  * GET /api/me/reminders — when visits are due (their residents are named);
  * PUT /api/leaders/{level}/{id} — always in effect: the answer is the seat's history,
    which names the leader just assigned (a write whose answer is also a read).
Each such answer must have written exactly one audit_log row, and nothing else in the
scenario writes one (check-ins, problem reports and the problems list name nobody; no
request is replayed, so no replay row either). The bench compares the two counts; they
must be equal.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_NAME = "ga_bench_load"
NANJING = ROOT / "data" / "osm" / "nanjing-central.osm"
PASSWORD = "bench-load-password-2026"
THINK = (2.0, 5.0)
READ_GOAL_MS, WRITE_GOAL_MS = 300, 600
WORKER_WEIGHTS = {"card": 10, "checkin": 4, "search": 3, "problem": 1, "problems": 1,
                  "reminders": 1, "grid_page": 1}  # fmt: skip
# requests per task (a card: path, dwellings, residents and the leaders of the levels on the
# path, five in the Nanjing demo: eight; a staff task: leader, candidates, assignment)
REQUESTS_PER_TASK = {"card": 8, "staff": 3}
ANSWER_S = 0.1  # allowance per request in a user's cycle (its requests are sequential)
# The bench database holds synthetic people only; its key is its own (never a deployment's),
# so that the cached database reads back whatever key file this checkout has.
BENCH_KEY = "fed986eb160293b16a9ab320b5e123b6de9e23583cdd0702e726d148b8f4cfde"
os.environ["GRIDATLAS_SECRET_KEY"] = BENCH_KEY


# --- the database ------------------------------------------------------------------------


def _url(settings, name: str = DB_NAME) -> str:
    from gis import db

    base = db.resolve_url(settings)
    return db.make_url(base).set(database=name).render_as_string(hide_password=False)


def _exists(url: str, fresh: bool) -> bool:
    """Whether the bench database is there (dropped first when ``fresh``)."""
    import sqlalchemy as sa

    from gis import db

    name = db.make_url(url).database
    admin = db.create_engine(
        db.make_url(url).set(database="postgres").render_as_string(hide_password=False),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.NullPool,
    )
    with admin.connect() as conn:
        exists = conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        if exists and fresh:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            exists = False
    admin.dispose()
    return bool(exists)


def build(url: str, workers: int, staff: int, fresh: bool) -> dict:
    """Create and fill the bench database (kept between runs; rebuilt when asked or when
    it holds other numbers of users)."""
    import sqlalchemy as sa

    from gis import db, security
    from gis.delineate.service import run as delineate_run
    from gis.io.pipeline import import_file
    from gis.ledger.synth import generate
    from gis.reach.service import compute_and_store
    from gis.settings import get_settings

    want = {"grid_workers": workers, "staff": staff}
    if _exists(url, fresh):
        eng = db.create_engine(url, poolclass=sa.NullPool)
        with eng.connect() as conn:
            has = conn.scalar(sa.text("SELECT to_regclass('bench_load_info') IS NOT NULL"))
            info = conn.scalar(sa.text("SELECT info FROM bench_load_info")) if has else None
        eng.dispose()
        if info and all(info.get(k) == v for k, v in want.items()):
            return info
        _exists(url, True)
    t = time.perf_counter()
    db.ensure_database(url)
    db.migrate(url)
    eng = db.create_engine(url, poolclass=sa.NullPool)
    import_file(eng, NANJING)
    with eng.begin() as conn:
        compute_and_store(conn)
    delineate_run(eng)
    keys = security.Keys.from_settings(get_settings())
    with eng.begin() as conn:
        generate(conn, keys, seed=1)
        info = {**want, **_people(conn, workers, staff)}
        info["build_s"] = round(time.perf_counter() - t, 1)
        # written last, so that a build cut off half-way is built again
        conn.execute(sa.text("CREATE TABLE bench_load_info (info jsonb NOT NULL)"))
        conn.execute(
            sa.text("INSERT INTO bench_load_info VALUES (CAST(:a AS jsonb))"),
            {"a": json.dumps(info, ensure_ascii=False)},
        )
    eng.dispose()
    return info


def _people(conn, workers: int, staff: int) -> dict:
    """The users, and what each one's tasks pick from (all within its own scope)."""
    import sqlalchemy as sa

    from gis import security

    digest = security.hash_password(PASSWORD)  # one scrypt for all: synthetic users
    grids = conn.execute(
        sa.text(
            "SELECT p.grid_id, p.community_id, array_agg(DISTINCT p.building_id) AS buildings "
            "FROM building_path p JOIN resident r ON r.building_id = p.building_id "
            "WHERE p.grid_id IS NOT NULL GROUP BY 1, 2 ORDER BY 1"
        )
    ).all()
    if not grids:
        raise SystemExit("no grid has residents: the delineation drew none")
    out_grids = {}
    for g in grids:
        addrs = conn.execute(
            sa.text(
                "SELECT b.addr_street || b.addr_housenumber AS a, min(r.room) AS room "
                "FROM building b JOIN resident r ON r.building_id = b.id "
                "WHERE b.id = ANY(:b) AND b.addr_street IS NOT NULL "
                "AND b.addr_housenumber IS NOT NULL GROUP BY 1 ORDER BY 1 LIMIT 50"
            ),
            {"b": g.buildings},
        ).all()
        names = conn.scalars(
            sa.text(
                "SELECT DISTINCT ON (building_id) name FROM resident WHERE building_id = ANY(:b) "
                "ORDER BY building_id, id LIMIT 50"
            ),
            {"b": g.buildings},
        ).all()
        out_grids[str(g.grid_id)] = {
            "buildings": sorted(g.buildings)[:300],
            "addresses": [[a.a, a.room] for a in addrs],
            "names": list(names),
        }
    users = []
    for i in range(workers):
        g = grids[i % len(grids)]
        users.append({"name": f"lw{i + 1:04d}", "role": "grid_worker", "grid": str(g.grid_id)})
    communities = sorted({g.community_id for g in grids})
    for i in range(staff):
        c = communities[i % len(communities)]
        users.append({"name": f"ls{i + 1:03d}", "role": "committee_staff", "community": c})
    for u in users:
        level, area = ("grid", int(u["grid"])) if "grid" in u else ("community", u["community"])
        u["id"] = int(
            conn.scalar(
                sa.text("SELECT ga_user_create(:u, NULL, :r, :p, :l, :a)"),
                {"u": u["name"], "r": u["role"], "p": digest, "l": [level], "a": [area]},
            )
        )
    return {"grids": out_grids, "users": users}


def share_groups(url: str, staff: list[dict]) -> None:
    """Give each staff member residents' groups of its community that no other one of the
    run has (groups holding a building: the others are no one's to lead)."""
    import sqlalchemy as sa

    from gis import db

    eng = db.create_engine(url, poolclass=sa.NullPool)
    per_comm: dict[int, list[dict]] = {}
    for u in staff:
        per_comm.setdefault(u["community"], []).append(u)
    with eng.connect() as conn:
        for c, members in per_comm.items():
            groups = conn.scalars(
                sa.text(
                    "SELECT DISTINCT residents_group_id FROM building_path WHERE community_id = "
                    ":c AND residents_group_id IS NOT NULL ORDER BY 1"
                ),
                {"c": c},
            ).all()
            for k, u in enumerate(members):
                u["groups"] = [g for j, g in enumerate(groups) if j % len(members) == k]
    eng.dispose()


def open_sessions(url: str, users: list[dict], hours: float = 2.0) -> list[str]:
    """One session per user, as a login opens it; returns the tokens, in ``users``' order."""
    import sqlalchemy as sa

    from gis import db, security

    tokens, rows = [], []
    for u in users:
        token, digest = security.new_token()
        tokens.append(token)
        rows.append({"h": digest, "u": u["id"], "x": hours})
    eng = db.create_engine(url, poolclass=sa.NullPool)
    with eng.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO auth_session (token_hash, user_id, expires_at) "
                "VALUES (:h, :u, now() + make_interval(secs => :x * 3600))"
            ),
            rows,
        )
    eng.dispose()
    return tokens


def audit_last(url: str) -> int:
    import sqlalchemy as sa

    from gis import db

    eng = db.create_engine(url, poolclass=sa.NullPool)
    with eng.connect() as conn:
        n = conn.scalar(sa.text("SELECT coalesce(max(id), 0) FROM audit_log"))
    eng.dispose()
    return int(n)


AUDIT_KIND = """
    CASE WHEN action = 'list' AND detail ? 'by' THEN 'residents'
         WHEN action = 'search' AND detail->>'by' = 'search box' THEN 'search'
         WHEN detail->>'via' = 'reminders' THEN 'reminders'
         WHEN detail->>'as' = 'leaders' THEN 'leaders'
         WHEN detail->>'as' LIKE 'leader candidates of %' THEN 'candidates'
         ELSE action || ' ' || subject END"""


def audit_kinds(url: str, after: int) -> dict[str, int]:
    """The audit rows written since row ``after``, by kind of read."""
    import sqlalchemy as sa

    from gis import db

    eng = db.create_engine(url, poolclass=sa.NullPool)
    with eng.connect() as conn:
        rows = conn.execute(
            sa.text(f"SELECT {AUDIT_KIND} AS k, count(*) FROM audit_log WHERE id > :a GROUP BY 1"),
            {"a": after},
        ).all()
    eng.dispose()
    return {k: int(n) for k, n in rows}


# --- the app -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(url: str, port: int, workers: int) -> subprocess.Popen:
    import urllib.request

    env = {**os.environ, "GRIDATLAS_DATABASE_URL": url, "GRIDATLAS_JOBS_EVERY_MIN": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host",
         "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log",
         "--workers", str(workers)],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2)
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise SystemExit("the app did not start") from None
            time.sleep(0.3)


def real_logins(port: int, users: list[dict], n: int) -> int:
    """``n`` logins through POST /api/auth/login; returns how many succeeded."""
    import urllib.request

    ok = 0
    for u in users[:n]:
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/auth/login",
            data=json.dumps({"username": u["name"], "password": PASSWORD}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            ok += bool(json.loads(r.read()).get("token"))
    return ok


# --- the run -----------------------------------------------------------------------------


def users_for(rate: float, staff_share: float) -> int:
    """Users whose cycle (a task's requests, then 2-5 s of thought) gives ``rate`` req/s."""
    total = sum(WORKER_WEIGHTS.values())
    per_task = sum(REQUESTS_PER_TASK.get(k, 1) * w for k, w in WORKER_WEIGHTS.items()) / total
    per_task = per_task * (1 - staff_share) + REQUESTS_PER_TASK["staff"] * staff_share
    return max(2, round(rate * (sum(THINK) / 2 + ANSWER_S * per_task) / per_task))


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


def run(args: argparse.Namespace) -> dict:
    from gis import pgcluster
    from gis.levels import LEADER_TABLES
    from gis.patrol.problems import CATEGORIES
    from gis.settings import get_settings

    settings = get_settings()
    if not settings.database_url:
        pgcluster.ensure_up(pgcluster.LocalCluster(settings.pg_dir))
    url = _url(settings, args.database)
    n_users = users_for(args.rate, args.staff_share)
    n_staff = max(1, round(n_users * args.staff_share))
    n_workers = n_users - n_staff
    t = time.perf_counter()
    info = build(url, args.grid_workers, args.staff, args.fresh)
    workers = [u for u in info["users"] if u["role"] == "grid_worker"][:n_workers]
    staff = [u for u in info["users"] if u["role"] == "committee_staff"][:n_staff]
    if len(workers) < n_workers or len(staff) < n_staff:
        raise SystemExit(
            f"--rate {args.rate} needs {n_workers} grid workers and {n_staff} staff; the "
            f"database has {args.grid_workers} and {args.staff} (raise --grid-workers/--staff)"
        )
    print(
        f"data: Nanjing demo, {len(info['grids'])} grids with residents, "
        f"{args.grid_workers} grid workers and {args.staff} staff in the database "
        f"(ready in {time.perf_counter() - t:.1f} s)"
    )
    port = free_port()
    proc = serve(url, port, args.workers)
    try:
        if args.logins:
            ok = real_logins(port, workers, args.logins)
            print(f"real logins through POST /api/auth/login: {ok}/{args.logins} ok")
        share_groups(url, staff)
        tokens = open_sessions(url, workers + staff)
        plan = {
            "host": f"http://127.0.0.1:{port}",
            "grids": info["grids"],
            "workers": [{**u, "token": tok} for u, tok in zip(workers, tokens, strict=False)],
            "staff": [
                {**u, "token": tok} for u, tok in zip(staff, tokens[len(workers) :], strict=True)
            ],
            "seconds": args.minutes * 60,
            "spawn_rate": max(1.0, n_users / args.ramp),
            "seed": args.seed,
            "leader_levels": list(LEADER_TABLES),
            "problem_categories": list(CATEGORIES),
        }
        before = audit_last(url)
        with tempfile.TemporaryDirectory() as tmp:
            plan_file, out_file = Path(tmp) / "plan.json", Path(tmp) / "out.json"
            plan_file.write_text(json.dumps(plan, ensure_ascii=False))
            subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--drive",
                 str(plan_file), str(out_file)],
                check=True, cwd=ROOT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
            result = json.loads(out_file.read_text())
        result["audit_kinds"] = audit_kinds(url, before)
        result["audit_rows"] = sum(result["audit_kinds"].values())
        result["users"] = n_users
        result["staff"] = n_staff
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return result


# --- the clients (a child process: locust patches the standard library with gevent) -------


def drive(plan_file: Path, out_file: Path) -> None:  # noqa: C901 - the users are defined here
    """Run the plan with locust as a library and write what the clients saw."""
    import uuid
    from collections import Counter, defaultdict

    import gevent
    from locust import FastHttpUser, between, task
    from locust.env import Environment
    from locust.exception import StopUser

    plan = json.loads(plan_file.read_text())
    rng = random.Random(plan["seed"])
    state = {"stop": False, "inflight": 0, "measuring": False, "personal": 0, "5xx": 0}
    errors: Counter[str] = Counter()
    kinds: Counter[str] = Counter()  # personal-data reads by kind (as audit_kinds names them)
    lat: dict[str, list[float]] = {"read": [], "write": []}
    per_ep: dict[str, list[float]] = defaultdict(list)
    workers, staff = list(plan["workers"]), list(plan["staff"])
    leader_levels = set(plan["leader_levels"])

    class Tablet(FastHttpUser):
        abstract = True
        host = plan["host"]
        wait_time = between(*THINK)
        # long enough that an answer is waited for (an answer given up on would leave an
        # audit row the client cannot count); "no answer": 120 s passed or the connection broke
        network_timeout = 120.0
        connection_timeout = 120.0

        def call(self, method: str, path: str, name: str, body=None, key=False):
            """One request; returns the JSON of a 2xx answer (or {}), else None."""
            if state["stop"]:
                raise StopUser()
            headers = dict(self.auth)
            if key:
                headers["Idempotency-Key"] = uuid.uuid4().hex
            kind = "read" if method == "GET" else "write"
            state["inflight"] += 1
            t0 = time.perf_counter()
            try:
                with self.client.request(
                    method, path, name=name, json=body, headers=headers, catch_response=True
                ) as resp:
                    ms = (time.perf_counter() - t0) * 1000
                    code = resp.status_code or 0
                    if state["measuring"]:
                        lat[kind].append(ms)
                        per_ep[f"{method} {name}"].append(ms)
                    if 200 <= code < 300:
                        resp.success()
                        ctype = resp.headers.get("content-type", "")
                        return resp.json() if "json" in ctype else {}
                    if code >= 500:
                        state["5xx"] += 1
                    errors[f"{code or 'no answer'} {method} {name}"] += 1
                    resp.failure(f"status {code}")
                    return None
            finally:
                state["inflight"] -= 1

        def personal(self, kind: str) -> None:
            state["personal"] += 1
            kinds[kind] += 1

    class GridWorker(Tablet):
        weight = 1

        def on_start(self) -> None:
            me = workers.pop()
            self.auth = {"Authorization": f"Bearer {me['token']}"}
            self.grid = plan["grids"][me["grid"]]
            self.rng = random.Random(rng.random())

        def building(self) -> int:
            return self.rng.choice(self.grid["buildings"])

        @task(WORKER_WEIGHTS["card"])
        def card(self) -> None:
            b = self.building()
            path = self.call("GET", f"/api/buildings/{b}/path", "/api/buildings/{id}/path")
            self.call("GET", f"/api/buildings/{b}/dwellings", "/api/buildings/{id}/dwellings")
            if (
                self.call(
                    "GET", f"/api/residents?level=building&area_id={b}&limit=500", "/api/residents"
                )
                is not None
            ):
                self.personal("residents")  # audited, even an empty page
            for area in path or []:
                if area.get("level") in leader_levels:
                    r = self.call(
                        "GET", f"/api/leaders/{area['level']}/{area['id']}",
                        "/api/leaders/{level}/{id}",
                    )  # fmt: skip
                    if r and r.get("history"):
                        self.personal("leaders")

        @task(WORKER_WEIGHTS["checkin"])
        def checkin(self) -> None:
            body = {"building_id": self.building(), "method": "tap"}
            self.call("POST", "/api/patrol/checkins", "/api/patrol/checkins", body, key=True)

        @task(WORKER_WEIGHTS["search"])
        def search(self) -> None:
            from urllib.parse import quote

            g, pick = self.grid, self.rng.random()
            if g["addresses"] and pick < 0.4:
                q = self.rng.choice(g["addresses"])[0]
            elif g["addresses"] and pick < 0.7:
                a, room = self.rng.choice(g["addresses"])
                q = f"{a}{room}室" if room else a
            else:
                q = self.rng.choice(g["names"])
            r = self.call("GET", f"/api/search?q={quote(q)}", "/api/search")
            if r is None:
                return
            parsed = r.get("parsed") or {}
            looked = (not parsed.get("road") and 1 <= len(q.strip()) <= 20) or (
                bool(parsed.get("room")) and bool(r.get("results"))
            )
            if looked:
                self.personal("search")

        @task(WORKER_WEIGHTS["problem"])
        def problem(self) -> None:
            body = {
                "category": self.rng.choice(plan["problem_categories"]),
                "description": "负载测试：楼道堆物 (load test)",
                "building_id": self.building(),
            }
            self.call("POST", "/api/problems", "/api/problems", body, key=True)

        @task(WORKER_WEIGHTS["problems"])
        def problems(self) -> None:
            self.call("GET", "/api/problems", "/api/problems")

        @task(WORKER_WEIGHTS["reminders"])
        def reminders(self) -> None:
            r = self.call("GET", "/api/me/reminders", "/api/me/reminders")
            if r and r.get("visits_due"):
                self.personal("reminders")

        @task(WORKER_WEIGHTS["grid_page"])
        def grid_page(self) -> None:
            self.call("GET", "/app/grid", "/app/grid")

    class Staff(Tablet):
        fixed_count = len(staff)

        def on_start(self) -> None:
            me = staff.pop()
            self.auth = {"Authorization": f"Bearer {me['token']}"}
            self.groups = me["groups"]
            self.rng = random.Random(rng.random())

        @task
        def assign(self) -> None:
            if not self.groups:
                return
            gid = self.rng.choice(self.groups)
            base = f"/api/leaders/residents_group/{gid}"
            now = self.call("GET", base, "/api/leaders/{level}/{id}")
            if now is None:
                return
            if now.get("history"):
                self.personal("leaders")
            cands = self.call("GET", f"{base}/candidates", "/api/leaders/{level}/{id}/candidates")
            if not cands or not cands.get("items"):
                return
            self.personal("candidates")
            free = [c for c in cands["items"] if not c.get("is_current")]
            if free:
                current = now.get("current") or {}
                body = {
                    "resident_id": self.rng.choice(free)["resident_id"],
                    "replaces": current.get("id"),
                }
                done = self.call("PUT", base, "/api/leaders/{level}/{id}", body)
                if done and done.get("history"):
                    self.personal("leaders")  # the answer names the new leader

    env = Environment(user_classes=[GridWorker, Staff])
    runner = env.create_local_runner()
    n = len(workers) + len(staff)
    t0 = time.monotonic()
    runner.start(n, spawn_rate=plan["spawn_rate"])
    while runner.user_count < n and time.monotonic() - t0 < n / plan["spawn_rate"] + 60:
        gevent.sleep(0.5)
    gevent.sleep(THINK[1])  # every user past its first pause
    ramp_s = time.monotonic() - t0
    state["measuring"] = True
    m0, c0 = time.monotonic(), sum(len(v) for v in lat.values())
    gevent.sleep(plan["seconds"])
    state["measuring"] = False
    measured_s = time.monotonic() - m0
    measured = sum(len(v) for v in lat.values()) - c0
    state["stop"] = True  # no new request; wait for every answer before the audit count
    deadline = time.monotonic() + 130
    while state["inflight"] and time.monotonic() < deadline:
        gevent.sleep(0.1)
    if state["inflight"]:
        errors["still waiting after 130 s"] += state["inflight"]
    runner.quit()
    endpoints = {
        k: {"count": len(v), "p50": percentile(v, 50), "p95": percentile(v, 95),
            "p99": percentile(v, 99)}
        for k, v in per_ep.items()
    }  # fmt: skip
    out_file.write_text(
        json.dumps(
            {"latency": lat, "endpoints": endpoints, "status_5xx": state["5xx"],
             "errors": dict(errors), "personal_reads": state["personal"],
             "personal_kinds": dict(kinds),
             "measured_requests": measured, "measured_s": measured_s, "ramp_s": ramp_s}
        )
    )  # fmt: skip


def report(r: dict, args: argparse.Namespace) -> bool:
    """Print the table; True when every goal is met."""
    reads, writes = r["latency"]["read"], r["latency"]["write"]
    rps = r["measured_requests"] / r["measured_s"] if r["measured_s"] else 0.0
    load = os.getloadavg()
    print(
        f"\nlocust on 127.0.0.1: {r['users']} users ({r['staff']} staff), think "
        f"{THINK[0]:.0f}-{THINK[1]:.0f} s, uvicorn with {args.workers} worker process(es), "
        f"{r['measured_s']:.0f} s measured after a {r['ramp_s']:.0f} s ramp-up; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores"
    )
    p99r, p99w = percentile(reads, 99), percentile(writes, 99)
    rows = [
        ("requests/s achieved", f"{rps:.1f}", f"≥ {args.rate:g}", rps >= args.rate * 0.95),
        (f"reads: {len(reads):,}, p50 / p95 / p99 ms",
         f"{percentile(reads, 50):.0f} / {percentile(reads, 95):.0f} / {p99r:.0f}",
         f"p99 ≤ {READ_GOAL_MS}", p99r <= READ_GOAL_MS),
        (f"writes: {len(writes):,}, p50 / p95 / p99 ms",
         f"{percentile(writes, 50):.0f} / {percentile(writes, 95):.0f} / {p99w:.0f}",
         f"p99 ≤ {WRITE_GOAL_MS}", p99w <= WRITE_GOAL_MS),
        ("5xx answers (whole run)", str(r["status_5xx"]), "0", r["status_5xx"] == 0),
        ("other errors (whole run)",
         ", ".join(f"{k}: {v}" for k, v in sorted(r["errors"].items())) or "none", "", True),
        ("audit rows written / personal-data reads",
         f"{r['audit_rows']:,} / {r['personal_reads']:,}", "equal",
         r["audit_rows"] == r["personal_reads"]),
    ]  # fmt: skip
    print(f"  {'':<44}{'measured':>24}  {'goal':<12}")
    for name, value, goal, ok in rows:
        mark = ("met" if ok else "NOT met") if goal else ""
        print(f"  {name:<44}{value:>24}  {goal:<12}{mark}")
    kinds = sorted(set(r["audit_kinds"]) | set(r["personal_kinds"]))
    print(
        "  audit rows / reads, by kind: "
        + ", ".join(
            f"{k} {r['audit_kinds'].get(k, 0)}/{r['personal_kinds'].get(k, 0)}" for k in kinds
        )
    )
    print("\n  every endpoint, slowest first (p99 ms over the measured window):")
    for name, st in sorted(r["endpoints"].items(), key=lambda kv: -kv[1]["p99"]):
        print(
            f"    {name:<40}{st['count']:>8,} req  p50 {st['p50']:>6.0f}  p95 {st['p95']:>6.0f}"
            f"  p99 {st['p99']:>6.0f}"
        )
    return all(ok for _, _, goal, ok in rows if goal)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=1.0, help="measured time (default 1)")
    ap.add_argument("--rate", type=float, default=300, help="requests/s aimed at (default 300)")
    ap.add_argument("--workers", type=int, default=2, help="uvicorn processes (default 2)")
    ap.add_argument("--ramp", type=float, default=15, help="seconds to start every user")
    ap.add_argument("--grid-workers", type=int, default=1500, help="grid-worker users made")
    ap.add_argument("--staff", type=int, default=80, help="staff users made")
    ap.add_argument("--staff-share", type=float, default=0.05, help="share of staff users")
    ap.add_argument("--logins", type=int, default=5, help="real logins sent first")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fresh", action="store_true", help="rebuild the bench database")
    ap.add_argument("--database", default=DB_NAME, help=f"its name (default {DB_NAME})")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    r = run(args)
    ok = report(r, args)
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    if args.json:
        args.json.write_text(json.dumps({k: v for k, v in r.items() if k != "latency"}))
    return 0 if ok else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["--drive"]:
        drive(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        raise SystemExit(main())
