"""The residents' list and name search under row-level security: index lookups on the
user's scope, and the rows of that scope exactly (issue 16).

The residents' policy (``building_id IN (SELECT ga_people_buildings())``) is a hashed
subplan that PostgreSQL cannot use as an index condition: without the pre-filter of
``gis.ledger.store`` every list read every resident. The plans are checked on the statements
the endpoints really run (captured from the app's engine), explained as the same user, with
30,000 more synthetic residents in other communities so that the planner's choice is the
one it makes on a real ledger.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from gis import db, security
from gis.ledger.synth import generate
from gis.settings import Settings
from tests.api.conftest import Api, People

BALLAST = 30_000


@pytest.fixture
def loaded(api: tuple[Api, People, str]) -> Iterator[tuple[Api, People, str]]:
    """The API fixture plus synthetic residents in buildings outside community A."""
    client, info, url = api
    eng = db.create_engine(url, poolclass=sa.NullPool)
    with eng.begin() as conn:
        others = list(
            conn.scalars(
                sa.text("SELECT id FROM building WHERE community_id <> :c ORDER BY id"),
                {"c": info.community_a},
            )
        )
        generate(
            conn,
            security.Keys.from_settings(Settings()),
            seed=11,
            limit=BALLAST,
            building_ids=others,
        )
    with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("ANALYZE resident"))
    eng.dispose()
    yield client, info, url


def _capture(api: Api, username: str, path: str, starts: tuple[str, ...]) -> tuple[Any, list]:
    """GET ``path`` as ``username``; the response and the resident statements it ran."""
    engine = api.client.app.state.engine
    seen: list[tuple[str, Any]] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        if " ".join(statement.split()).startswith(starts):
            seen.append((statement, parameters))

    headers = api.as_(username)  # logged in before listening
    sa.event.listen(engine, "before_cursor_execute", before)
    try:
        r = api.client.get(path, headers=headers)
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)
    assert r.status_code == 200, r.text
    return r, seen


def _plans(api: Api, username: str, statements: list) -> list[dict]:
    """EXPLAIN (FORMAT JSON) of each statement, as ``username`` on the app's own role."""
    token = api.as_(username)["Authorization"].removeprefix("Bearer ")
    raw = api.client.app.state.engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("BEGIN")
        cur.execute("SELECT set_config('ga.session', %(t)s, true)", {"t": token})
        out = []
        for statement, params in statements:
            cur.execute("EXPLAIN (FORMAT JSON) " + statement, params)
            out.append(cur.fetchone()[0][0]["Plan"])
        cur.execute("ROLLBACK")
        return out
    finally:
        raw.close()


def _resident_scans(plan: dict) -> Iterator[dict]:
    if plan.get("Relation Name") == "resident":
        yield plan
    for child in plan.get("Plans", []):
        yield from _resident_scans(child)


def _assert_index_lookups(plans: list[dict], *columns: str) -> None:
    scans = [s for p in plans for s in _resident_scans(p)]
    assert scans, "no scan of resident in the plans"
    for s in scans:
        # neither a sequential scan nor a whole-index scan filtered by the policy
        assert s["Node Type"] in ("Index Scan", "Index Only Scan", "Bitmap Heap Scan"), s
        cond = s.get("Index Cond") or s.get("Recheck Cond") or ""
        assert any(c in cond for c in columns), s


def _owner_ids(url: str, sql: str, **params: Any) -> set[int]:
    eng = db.create_engine(url, poolclass=sa.NullPool)
    with eng.connect() as conn:
        ids = set(conn.scalars(sa.text(sql), params))
    eng.dispose()
    return ids


def test_grid_worker_lists_residents_by_index_and_sees_their_grid_only(loaded) -> None:
    api, info, url = loaded
    mine = set(info.residents["a1"])
    assert mine and info.residents["a2"] and info.residents["b"]
    # the ballast is there and outside the worker's scope
    assert len(_owner_ids(url, "SELECT id FROM resident")) > BALLAST // 2
    # the independent answer: residents of buildings whose unit lies in grid A1 (the
    # fixture's buildings are small walk-ups, never divided into parts)
    in_grid = _owner_ids(
        url,
        "SELECT r.id FROM resident r JOIN building_path p ON p.building_id = r.building_id "
        "WHERE p.grid_id = :g",
        g=info.grid_a1,
    )
    assert in_grid == mine

    starts = ("SELECT count(*) FROM resident r", "SELECT r.id, r.name")
    r, seen = _capture(api, "worker_a1", "/api/residents?limit=500", starts)
    body = r.json()
    assert {x["id"] for x in body["items"]} == mine
    assert body["total"] == len(mine)
    assert len(seen) == 2
    _assert_index_lookups(_plans(api, "worker_a1", seen), "building_id")

    # a building's card, as the tablet asks for it
    b = info.buildings["a1"][0]
    r, seen = _capture(
        api, "worker_a1", f"/api/residents?level=building&area_id={b}&limit=500", starts
    )
    expected = _owner_ids(url, "SELECT id FROM resident WHERE building_id = :b", b=b)
    assert expected and {x["id"] for x in r.json()["items"]} == expected
    _assert_index_lookups(_plans(api, "worker_a1", seen), "building_id")

    # staff of the community see both of its grids, and nothing of the ballast
    r, seen = _capture(api, "staff_a", "/api/residents?limit=500", starts)
    assert {x["id"] for x in r.json()["items"]} == mine | set(info.residents["a2"])
    _assert_index_lookups(_plans(api, "staff_a", seen), "building_id")


def test_name_search_uses_an_index_and_finds_in_scope_only(loaded) -> None:
    api, info, url = loaded
    # a surname that residents of the worker's grid and of the ballast both have
    surname = next(
        iter(
            _owner_ids(
                url,
                "SELECT ascii(left(name, 1)) FROM resident WHERE id = ANY(:a) "
                "AND left(name, 1) IN (SELECT left(name, 1) FROM resident "
                "WHERE NOT (id = ANY(:a)))",
                a=info.residents["a1"],
            )
        )
    )
    q = chr(surname)
    expected = _owner_ids(
        url,
        "SELECT id FROM resident WHERE id = ANY(:a) AND name LIKE :p",
        a=info.residents["a1"],
        p=f"{q}%",
    )
    outside = _owner_ids(
        url, "SELECT id FROM resident WHERE NOT (id = ANY(:a)) AND name LIKE :p",
        a=info.residents["a1"], p=f"{q}%",
    )  # fmt: skip
    assert expected and outside

    starts = ("SELECT r.id, r.name, r.building_id, r.room FROM resident r",)
    r, seen = _capture(api, "worker_a1", f"/api/search?q={q}", starts)
    found = {h["id"] for h in r.json()["results"] if h["kind"] == "resident"}
    assert found and found <= expected  # at most 20 are listed
    assert len(found) == min(len(expected), 20)
    assert len(seen) == 1
    _assert_index_lookups(_plans(api, "worker_a1", seen), "name", "building_id")

    # the ledger's name filter: the same prefix, every match of the scope
    starts = ("SELECT count(*) FROM resident r", "SELECT r.id, r.name")
    r, seen = _capture(api, "worker_a1", f"/api/residents?name={q}&limit=500", starts)
    assert {x["id"] for x in r.json()["items"]} == expected
    _assert_index_lookups(_plans(api, "worker_a1", seen), "name", "building_id")


def test_app_role_runs_without_jit(api: tuple[Api, People, str]) -> None:
    """Migration 0020's setting reaches the role the requests run as (set at start-up)."""
    client, _info, _url = api
    with client.client.app.state.engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT current_setting('jit')")) == "off"
        role = conn.scalar(sa.text("SELECT session_user"))
        assert conn.scalar(sa.text("SELECT pg_has_role(session_user, 'gridatlas_app', 'MEMBER')"))
    assert role.startswith("ga_app_")
