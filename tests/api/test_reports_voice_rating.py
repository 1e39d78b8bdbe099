"""Residents' voice, the star rating and the disclosure board over HTTP, on Nanjing.

The survey and the problem report are public (no login) and go through migration 0012's
functions; the rating is recomputed here from the raw rows; a gate caps a committee that
would otherwise rate higher; the board withholds small counts so none can be worked out,
and shows nothing personal.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import tomllib

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.routes.patrol import clock
from gis import db
from gis.reports import board, rating, ratings, voice
from gis.suppression import WITHHELD

NOW = dt.datetime(2026, 12, 3, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
MONDAY = dt.datetime(2026, 11, 30, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


@pytest.fixture
def fixed(api):
    client, info, url = api
    client.client.app.dependency_overrides[clock] = lambda: NOW
    eng = db.create_engine(url, poolclass=sa.NullPool)
    yield client, info, eng
    eng.dispose()


def _one(eng, sql: str, **params):
    with eng.connect() as conn:
        return conn.scalar(sa.text(sql), params)


def _sheets(api, info, n_buildings: int = 2) -> list[dict]:
    real_now = dt.datetime.now(dt.UTC)
    r = api.post("staff_a", "/api/surveys/rounds", json={
        "label": "2026 Q4", "opens_at": (real_now - dt.timedelta(hours=1)).isoformat(),
        "closes_at": (real_now + dt.timedelta(days=7)).isoformat()})  # fmt: skip
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    out = []
    for bid in info.buildings["a1"][:n_buildings]:
        s = api.post("staff_a", f"/api/surveys/rounds/{rid}/sheets",
                     json={"building_id": bid})  # fmt: skip
        assert s.status_code == 201, s.text
        out.append(s.json())
    return out


def _answer(client: TestClient, token: str, code: str, scores: tuple[int, ...]):
    return client.post(f"/api/public/sheets/{token}/answer", json={
        "code": code, "scores": dict(zip(voice.QUESTIONS, scores, strict=True))})  # fmt: skip


def test_one_answer_per_code_without_login_and_nothing_personal(fixed) -> None:
    api, info, eng = fixed
    public = TestClient(api.client.app)  # no login at all
    sheets = _sheets(api, info, 1)
    s = sheets[0]
    households = _one(eng, "SELECT households FROM building WHERE id = :b", b=s["building_id"])
    assert len(s["codes"]) == len(set(s["codes"])) == households  # one code per dwelling
    page = public.get(f"/v/{s['token']}")
    assert page.status_code == 200 and 'id="ga-survey"' in page.text
    code = s["codes"][0]
    first = _answer(public, s["token"], code, (5, 4, 3, 2))
    assert first.status_code == 201, first.text
    again = _answer(public, s["token"], code.lower(), (1, 1, 1, 1))
    assert again.status_code == 409 and again.json()["status"] == "used"
    assert "一次" in again.json()["message"]
    assert _one(eng, "SELECT count(*) FROM survey_answer") == 1
    row = sa.text("SELECT overall, service, environment, safety FROM survey_answer")
    with eng.connect() as conn:
        assert tuple(conn.execute(row).one()) == (5, 4, 3, 2)
    # a code of another sheet, a wrong one, scores out of range
    assert _answer(public, s["token"], "ZZZZZZZZ", (3, 3, 3, 3)).json()["status"] == "bad_code"
    bad = _answer(public, s["token"], s["codes"][1], (6, 3, 3, 3))
    assert bad.status_code == 422
    # the same code tried again and again is locked out (5 tries per 10 minutes)
    for _ in range(3):
        assert _answer(public, s["token"], code, (2, 2, 2, 2)).json()["status"] == "used"
    assert _answer(public, s["token"], code, (2, 2, 2, 2)).status_code == 429
    # no client address is stored: only keyed hashes
    keys = [k for (k,) in eng.connect().execute(sa.text("SELECT key FROM public_throttle"))]
    assert keys and not any("testclient" in k for k in keys)
    # the app's role cannot write answers itself
    with api.client.app.state.engine.connect() as conn, pytest.raises(sa.exc.ProgrammingError):
        conn.execute(sa.text("INSERT INTO survey_answer (code_id, round_id, building_id, overall, "
                             "service, environment, safety) SELECT id, 1, 1, 5, 5, 5, 5 "
                             "FROM survey_code LIMIT 1"))  # fmt: skip


def test_a_residents_problem_report_is_a_patrol_problem(fixed) -> None:
    api, info, eng = fixed
    public = TestClient(api.client.app)
    s = _sheets(api, info, 1)[0]
    url = f"/api/public/sheets/{s['token']}/problem"
    assert public.post(url, json={"category": "parking", "description": "<b>x</b>"}
                       ).status_code == 422  # fmt: skip
    refused = public.post(url, json={"category": "parking", "description": "call 13912345678"},
                          headers={"Accept-Language": "en"})  # fmt: skip
    assert refused.status_code == 422 and "phone" in refused.json()["message"]
    assert public.post(url, json={"category": "nope", "description": "x"}).status_code == 422
    ok = public.post(url, json={"category": "lift", "description": "电梯停运两天"})
    assert ok.status_code == 201, ok.text
    with eng.connect() as conn:
        p = conn.execute(sa.text(
            "SELECT p.building_id, p.category, p.status, u.username FROM problem p "
            "JOIN resident_problem rp ON rp.problem_id = p.id JOIN app_user u "
            "ON u.id = p.reported_by")).one()  # fmt: skip
    assert tuple(p) == (s["building_id"], "lift", "reported", "residents-qr")
    # the grid worker of the building sees it in their list, like any problem
    listed = api.get("worker_a1", "/api/problems")
    assert listed.status_code == 200, listed.text
    items = listed.json()
    assert any(i["category"] == "lift" and i["building_id"] == s["building_id"] for i in items)
    # five reports per address per hour
    for _ in range(4):
        public.post(url, json={"category": "other", "description": "噪音"})
    assert public.post(url, json={"category": "other", "description": "噪音"}).status_code == 429
    assert _one(eng, "SELECT count(*) FROM resident_problem") == 5


def _expected_rating(eng, cid: int, round_id: int) -> dict:
    """The rating recomputed from raw rows with the default configuration."""
    cfg = rating.load_config()
    with eng.connect() as conn:
        scores = conn.execute(sa.text(
            "SELECT a.overall, a.service, a.environment, a.safety FROM survey_answer a "
            "JOIN building b ON b.id = a.building_id WHERE b.community_id = :c "
            "AND a.round_id = :r"), {"c": cid, "r": round_id}).all()  # fmt: skip
        probs = conn.execute(sa.text(
            "SELECT p.status, p.category FROM problem p JOIN building b ON b.id = p.building_id "
            "WHERE b.community_id = :c"), {"c": cid}).all()  # fmt: skip
        res = conn.execute(sa.text(
            "SELECT count(*), count(*) FILTER (WHERE EXISTS (SELECT 1 FROM resident r WHERE "
            "r.building_id = b.id)) FROM building b WHERE b.community_id = :c "
            "AND b.households > 0"), {"c": cid}).one()  # fmt: skip
        areas = led = 0
        for level, sql in (
            ("residents_group", "SELECT id FROM residents_group WHERE community_id = :c"),
            ("building_cluster", "SELECT c.id FROM building_cluster c JOIN residents_group g "
             "ON g.id = c.residents_group_id WHERE g.community_id = :c"),
            ("unit", "SELECT u.id FROM unit u JOIN building_cluster c ON c.id = "
             "u.building_cluster_id JOIN residents_group g ON g.id = c.residents_group_id "
             "WHERE g.community_id = :c"),
            ("building", "SELECT id FROM building WHERE community_id = :c AND households > 0"),
        ):  # fmt: skip
            ids = [i for (i,) in conn.execute(sa.text(sql), {"c": cid})]
            areas += len(ids)
            led += conn.scalar(sa.text(
                "SELECT count(DISTINCT area_id) FROM leader_assignment WHERE level = :l "
                "AND area_id = ANY(:a) AND ended_at IS NULL"), {"l": level, "a": ids})  # fmt: skip
        grid_buildings = conn.execute(sa.text(
            "SELECT count(*), count(*) FILTER (WHERE EXISTS (SELECT 1 FROM patrol_checkin k "
            "WHERE k.building_id = p.building_id AND k.at >= :m AND k.at < :e)) "
            "FROM building_path p JOIN grid g ON g.id = p.grid_id WHERE g.community_id = :c"),
            {"c": cid, "m": MONDAY, "e": MONDAY + dt.timedelta(days=7)}).one()  # fmt: skip
    sat = sum(sum(s) / 4 for s in scores) / len(scores)
    values = {"satisfaction": (sat - 1) / 4}
    n = len(probs)
    closed = sum(p.status == "closed" for p in probs)
    values["urgent_response"] = (closed / n + 1.0) / 2 if n else None  # none has a deadline
    parts = [res[1] / res[0], led / areas, grid_buildings[1] / grid_buildings[0]]
    values["work_standard"] = sum(parts) / 3
    open_cats = {p.category for p in probs if p.status != "closed"}
    failed = [g.code for g in cfg.gates
              if g.categories and g.only_if is None and open_cats & set(g.categories)]  # fmt: skip
    used = {k: v for k, v in values.items() if v is not None}
    score = sum(cfg.weights[k] * v for k, v in used.items()) / sum(cfg.weights[k] for k in used)
    stars = next(s for s, t in cfg.stars if score >= t)
    cap = min((g.cap for g in cfg.gates if g.code in failed), default=5)
    return {"values": values, "score": score, "uncapped": stars, "stars": min(stars, cap),
            "failed": failed}  # fmt: skip


def _insert_problem(eng, bid: int, category: str, status: str = "reported") -> None:
    with eng.begin() as conn:
        uid = conn.scalar(sa.text("SELECT id FROM app_user WHERE username = 'worker_a1'"))
        other = conn.scalar(sa.text("SELECT id FROM app_user WHERE username = 'staff_a'"))
        closed = status == "closed"
        conn.execute(sa.text(
            "INSERT INTO problem (building_id, category, description, handling, status, "
            "reported_by, reported_at, resolved_by, verified_by, geom) SELECT b.id, :c, 'x', "
            "'immediate', :s, :u, :at, :rb, :vb, ST_PointOnSurface(b.geom) FROM building b "
            "WHERE b.id = :b"),
            {"c": category, "s": status, "u": uid, "at": NOW - dt.timedelta(days=3), "b": bid,
             "rb": uid if closed else None, "vb": other if closed else None})  # fmt: skip


def test_rating_matches_the_raw_rows(fixed) -> None:
    api, info, eng = fixed
    public = TestClient(api.client.app)
    sheets = _sheets(api, info, 2)
    answers = [(5, 5, 4, 4), (4, 4, 4, 3), (3, 4, 5, 5), (5, 5, 5, 5), (2, 3, 4, 4), (4, 4, 4, 4)]
    codes = [(s["token"], c) for s in sheets for c in s["codes"]][: len(answers)]
    for (tok, code), sc in zip(codes, answers, strict=True):
        assert _answer(public, tok, code, sc).status_code == 201
    _insert_problem(eng, info.buildings["a1"][0], "parking", "closed")
    _insert_problem(eng, info.buildings["a1"][1], "public_safety")
    cid = info.community_a
    r = api.get("staff_a", f"/api/reports/communities/{cid}/rating")
    assert r.status_code == 200, r.text
    got = r.json()
    want = _expected_rating(eng, cid, sheets[0]["round_id"])
    for k, v in want["values"].items():
        assert got["indicators"][k]["value"] == pytest.approx(v, abs=1e-4), k
    assert got["score"] == pytest.approx(want["score"], abs=1e-4)
    assert got["uncapped_stars"] == want["uncapped"]
    assert got["stars"] == want["stars"]
    assert got["failed_gates"] == want["failed"] == ["no_public_safety_problem"]
    # what holds it back: every indicator below 1 with its lost score
    lost = {h["code"]: h["score_lost"] for h in got["held_back_by"] if h["kind"] == "indicator"}
    total = sum(rating.load_config().weights.values())
    for k, v in want["values"].items():
        assert lost[k] == pytest.approx(rating.load_config().weights[k] * (1 - v) / total,
                                        abs=1e-4)  # fmt: skip
    # the subdistrict view counts the distribution; a planner may not rate
    assert api.get("staff_a", "/api/reports/ratings").json()["items"][0]["stars"] is None
    published = api.post("staff_a", f"/api/reports/communities/{cid}/rating")
    assert published.status_code == 201, published.text
    dist = api.get("staff_a", "/api/reports/ratings").json()["distribution"]
    assert dist["rated"] == 1 and dist["counts"][str(got["stars"])] == 1
    assert api.get("planner_a", f"/api/reports/communities/{cid}/rating").status_code == 403
    assert api.get("staff_a", f"/api/reports/communities/{info.community_b}/rating"
                   ).status_code == 404  # fmt: skip


def test_a_gate_caps_a_committee_that_would_rate_higher(fixed) -> None:
    api, info, eng = fixed
    public = TestClient(api.client.app)
    sheets = _sheets(api, info, 2)
    codes = [(s["token"], c) for s in sheets for c in s["codes"]][:6]
    for tok, code in codes:
        assert _answer(public, tok, code, (5, 5, 5, 5)).status_code == 201
    raw = tomllib.loads(rating.CONFIG_PATH.read_text())
    raw["indicators"]["urgent_response"]["weight"] = 0.001  # residents' voice above all
    raw["indicators"]["work_standard"]["weight"] = 0.001
    cfg = rating.parse_config(raw)
    cid = info.community_a
    from api.auth import Principal
    from gis import accounts

    engine = api.client.app.state.engine
    uid = info.users["staff_a"]

    def rate_now():
        with engine.begin() as conn:
            token = api.as_("staff_a")["Authorization"][7:]
            assert accounts.session_user(conn, token) is not None
            user = Principal(uid, "staff_a", "committee_staff", "staff_a")
            return ratings.community_rating(conn, user, cid, NOW, config=cfg)  # fmt: skip

    before = rate_now()
    assert before["stars"] == 5 and before["failed_gates"] == []
    _insert_problem(eng, info.buildings["a1"][2], "illegal_construction")
    after = rate_now()
    assert after["uncapped_stars"] == 5
    assert after["stars"] == 3 and after["capped_by"] == ["no_illegal_construction"]
    gate = next(h for h in after["held_back_by"] if h["kind"] == "gate")
    assert gate == {"kind": "gate", "code": "no_illegal_construction", "cap": 3,
                    "stars_without_gate": 5, "stars_gained": 2}  # fmt: skip


def test_the_board_withholds_small_counts_and_shows_no_person(fixed) -> None:
    api, info, eng = fixed
    public = TestClient(api.client.app)
    cid = info.community_a
    for _ in range(3):
        _insert_problem(eng, info.buildings["a1"][0], "parking")
    for _ in range(6):
        _insert_problem(eng, info.buildings["a1"][1], "environment")
    assert api.post("staff_a", f"/api/reports/communities/{cid}/rating").status_code == 201
    r = public.get(f"/api/public/board/{cid}")
    assert r.status_code == 200, r.text
    b = r.json()
    rows = b["problems"]["rows"]
    assert rows["parking"]["opened"] == WITHHELD and rows["parking"]["open_now"] == WITHHELD
    # the total stays shown: the smallest other category is withheld with parking instead,
    # else the total minus the shown cells would give parking back
    assert rows["environment"]["opened"] == WITHHELD and rows["lift"]["opened"] == 0
    assert rows["total"]["opened"] == 9
    assert _pinned(rows) == []
    assert b["rating"]["stars"] in range(1, 6)
    page = public.get(f"/board/{cid}")
    assert page.status_code == 200 and 'id="ga-board"' in page.text
    with eng.connect() as conn:
        people = conn.execute(sa.text("SELECT name FROM resident")).scalars().all()
    assert people
    for text in (page.text, r.text):
        for name in people:
            assert name not in text
    assert public.get("/board/999999999").status_code == 404


def _pinned(rows: dict) -> list[tuple[str, str]]:
    """Withheld cells a reader can work out from the shown ones (computed here, not by the
    app): in a column with a shown total, ``k`` withheld categories (each at least 1, zeros
    are shown) share the rest ``R`` = total − shown; one alone is R, and all are 1 if R = k."""
    found = []
    for col in board.COLUMNS:
        hidden = [k for k in rows if k != "total" and rows[k][col] == WITHHELD]
        total = rows["total"][col]
        if not hidden or total in (WITHHELD, None):  # None: the column has no total
            continue
        rest = total - sum(v[col] for k, v in rows.items() if k != "total" and k not in hidden)
        if len(hidden) == 1 or rest == len(hidden):
            found += [(k, col) for k in hidden]
    return found


def test_the_board_table_is_withheld_by_gis_suppression() -> None:
    def row(closed: int, still: int) -> dict[str, int]:
        return {"opened": closed + still, "closed": closed, "open_now": still}

    # one small count among large ones: a second cell is withheld, the total stays shown
    shown = board.withhold_table({"a": row(0, 3), "b": row(0, 9), "c": row(0, 12)})
    assert shown["a"]["opened"] == WITHHELD and shown["b"]["opened"] == WITHHELD
    assert shown["c"]["opened"] == 12 and shown["total"]["opened"] == 24
    assert shown["total"]["closed"] is None and shown["total"]["open_now"] is None
    # two ones beside a five: withheld together they would still be 1 and 1 (7 − 5 = 2, each
    # at least 1); gis.suppression's audit withholds more
    shown = board.withhold_table({"a": row(0, 1), "b": row(0, 1), "c": row(0, 5)})
    assert shown["a"]["opened"] == shown["b"]["opened"] == WITHHELD
    assert WITHHELD in (shown["c"]["opened"], shown["total"]["opened"])
    # the review's case: closed 2 beside opened 9 and open now 7 would be 9 − 7
    shown = board.withhold_table({"a": row(2, 7), "b": row(6, 6)})
    assert shown["a"]["closed"] == WITHHELD and shown["a"]["open_now"] == WITHHELD
    assert shown["a"]["opened"] == 9 and shown["b"] == row(6, 6)
    # zeros stay shown
    shown = board.withhold_table({"a": row(0, 2), "b": row(0, 0)})
    assert shown["b"] == row(0, 0) and shown["a"]["closed"] == 0


def _readings(shown: dict, limit: int) -> dict[tuple[str, str], set[int]]:
    """Every value each withheld cell can take, found here by trying them all: the shown
    cells exact, a withheld one at least 1 (zeros are shown), each shown total the sum of its
    column, and opened = closed + open now in each row (every problem younger than the
    window: what a reader may assume). Not the app's method: a brute force."""
    cats = [k for k in shown if k != "total"]
    unknown = [(k, c) for k in cats for c in ("closed", "open_now") if shown[k][c] == WITHHELD]
    found: dict[tuple[str, str], set[int]] = {x: set() for x in unknown}
    for values in itertools.product(range(1, limit + 1), repeat=len(unknown)):
        cell = dict(zip(unknown, values, strict=True))
        get = {(k, c): cell.get((k, c), shown[k][c]) for k in cats for c in ("closed", "open_now")}
        opened = {k: get[(k, "closed")] + get[(k, "open_now")] for k in cats}
        if any(shown[k]["opened"] not in (WITHHELD, opened[k]) for k in cats):
            continue
        if any(opened[k] == 0 and shown[k]["opened"] == WITHHELD for k in cats):
            continue  # a withheld opened is at least 1
        sums = {"opened": sum(opened.values()),
                **{c: sum(get[(k, c)] for k in cats) for c in ("closed", "open_now")}}  # fmt: skip
        if any(shown["total"][c] not in (WITHHELD, None, sums[c]) for c in board.COLUMNS):
            continue
        for x, v in cell.items():
            found[x].add(v)
        for k in cats:
            if shown[k]["opened"] == WITHHELD:
                found.setdefault((k, "opened"), set()).add(opened[k])
    return found


def test_no_withheld_board_count_can_be_worked_out_by_rows_or_columns() -> None:
    rng = random.Random(15)
    tables = [  # the review's case first: closed 2 between opened 9 and open now 7
        {
            "a": {"opened": 9, "closed": 2, "open_now": 7},
            "b": {"opened": 12, "closed": 6, "open_now": 6},
        },  # fmt: skip
    ]
    for _ in range(25):
        t = {}
        for k in "abc":
            closed, still = rng.choice([0, 0, 1, 2, 5]), rng.choice([0, 1, 2, 5, 6])
            t[k] = {"opened": closed + still, "closed": closed, "open_now": still}
        tables.append(t)
    for t in tables:
        shown = board.withhold_table(t)
        for k, row in t.items():  # what is shown is true; small counts are never shown
            for c, v in row.items():
                assert shown[k][c] == WITHHELD or (shown[k][c] == v and not 0 < v < 5)
        readings = _readings(shown, limit=max(v["opened"] for v in t.values()) + 1)
        pinned = {x: v for x, v in readings.items() if len(v) == 1 and 0 < min(v) < 5}
        assert pinned == {}, (t, shown)
