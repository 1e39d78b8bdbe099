"""Schemathesis against the OpenAPI schema, and raw query strings against the pages: no input,
valid or not, gets a 5xx.

A bounded run (a few examples per operation, derandomized) in CI, as three roles: an admin
(the widest scope: requests reach the handlers instead of stopping at 401/404), the
committee staff of community A and a grid worker of A1 (scope and role refusals on every
path). The HTML pages (/map, /map/reach, /map/groups, /login) are in the schema and fuzzed
with fewer examples (each draws a map); the pages and paths outside it (/, /static/…) get
hypothesis-made query strings, percent-escapes included (``%00``, broken UTF-8), through the
test client. Logout runs last, so the session lives through the run (every operation must
get answers past the login check). Operations that redraw or recompute everything are left
out: each call takes seconds and their input checks are tested on their own
(tests/api/test_delineation.py, test_reach.py); what-if and siting are fuzzed.
Chains of calls (create → read → update → delete): test_fuzz_stateful.py.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.python import asgi as schemathesis_asgi

from gis import db

SLOW = re.compile(r"^POST /api/(delineation|reach)/runs$")
LAST = re.compile(r"^POST /api/auth/logout$")  # ends the session: run it after the rest
PAGES = re.compile(r"^GET /(map|login)\b.*$")
# examples per operation and per page, by role
ROLES = {"admin": (25, 6), "staff_a": (12, 3), "worker_a1": (8, 3)}


@pytest.fixture
def schema(api):
    a, _info, _url = api
    for user in ROLES:  # log in first, through the test client
        a.as_(user)
    yield schemathesis.openapi.from_asgi("/openapi.json", a.client.app)
    schemathesis_asgi.shutdown_lifespans()  # the lifespans schemathesis started for its calls


@pytest.mark.parametrize("user", list(ROLES))
def test_no_server_errors(api, schema, user):
    """Every operation of the schema (pages included), positive and negative inputs."""
    a, _info, _url = api
    headers = a.as_(user)
    failures: list[str] = []
    reached: dict[str, int] = {}  # operation -> answers that were not a 401
    ran = pages = 0
    operations = [result.ok() for result in schema.get_all_operations()]
    operations.sort(key=lambda op: bool(LAST.match(f"{op.method.upper()} {op.path}")))
    for op in operations:
        name = f"{op.method.upper()} {op.path}"
        if SLOW.match(name):
            continue
        reached[name] = 0
        ran += 1
        is_page = bool(PAGES.match(name))
        pages += is_page
        examples = ROLES[user][1 if is_page else 0]

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(
            case=st.one_of(
                op.as_strategy(GenerationMode.POSITIVE), op.as_strategy(GenerationMode.NEGATIVE)
            )
        )
        def run(case):
            response = case.call(headers={**(case.headers or {}), **headers})
            if response.status_code != 401:
                reached[case.operation.label] = reached.get(case.operation.label, 0) + 1
            if response.status_code >= 500:
                failures.append(
                    f"{case.operation.label}: {case.formatted_path} path={case.path_parameters} "
                    f"query={case.query} headers={case.headers} body={case.body!r} -> "
                    f"{response.status_code} {response.text[:200]}"
                )

        run()
    assert ran >= 30
    assert pages >= 4  # /map, /map/reach, /map/groups, /login
    assert failures == [], "\n".join(failures[:20])
    # the session stayed alive: every operation got answers past the login check
    never = [n for n, k in reached.items() if k == 0]
    assert never == [], never


# --- pages and paths outside the schema, with raw query strings ---------------------------

PAGE_PATHS = ["/", "/map", "/map/reach", "/map/groups", "/login"]
OTHER_PATHS = ["/static/app/map.css", "/static/app/", "/map/", "/login/", "/map/nope"]
PARAMS = ["bbox", "category", "limit_min", "community", "next", "q", "limit", "offset"]
ESCAPES = ["%00", "%ff", "%c3", "%ed%a0%80", "%e2%80%ae", "%", "%zz", "%2e%2e%2f", "%0a", "%20"]
PLAIN = ["118.77,32.04,118.80,32.07", "nan,nan,inf,inf", "1e309", "-0", "0", "60", "61",
         "health_station", "school", "", ",,,", "1,2,3", "//evil.example", "/map"]  # fmt: skip


def _text() -> st.SearchStrategy[str]:
    chars = st.characters(exclude_categories=["Cs"])  # quote() needs encodable text
    return st.text(chars, max_size=20).map(lambda t: quote(t, safe=""))


def _query(codes: list[str]) -> st.SearchStrategy[str]:
    piece = st.one_of(
        _text(), st.sampled_from(ESCAPES), st.sampled_from(PLAIN + [quote(c) for c in codes])
    )
    value = st.lists(piece, max_size=3).map("".join)
    key = st.sampled_from(PARAMS) | _text() | st.sampled_from(ESCAPES)
    pair = st.tuples(key, st.none() | value).map(
        lambda kv: kv[0] if kv[1] is None else "=".join(kv)
    )
    return st.lists(pair, max_size=4).map("&".join)


def _community_codes(url: str) -> list[str]:
    eng = db.create_engine(url, poolclass=sa.NullPool)
    try:
        with eng.connect() as conn:
            return list(conn.scalars(sa.text("SELECT code FROM community ORDER BY id LIMIT 3")))
    finally:
        eng.dispose()


@pytest.mark.parametrize("user", [None, "worker_a1"])
def test_pages_take_any_query_string(api, user):
    """GET /, /map, /map/reach, /map/groups, /login (and neighbours) with any query string:
    a page, a redirect or a 4xx, never a 5xx. Anonymous and logged in (cookie)."""
    a, _info, url = api
    client = a.client
    client.cookies.clear()
    if user:
        client.cookies.set("ga_session", a.as_(user)["Authorization"].removeprefix("Bearer "))
    codes = _community_codes(url)
    failures: list[str] = []

    @settings(
        max_examples=100,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(path=st.sampled_from(PAGE_PATHS + OTHER_PATHS), query=_query(codes))
    @example(path="/map/groups", query="community=%00")  # answered 500 once
    @example(path="/map", query="bbox=%00,%ff,nan,inf")
    @example(path="/map/reach", query="category=%00&limit_min=nan")
    def run(path, query):
        target = f"{path}?{query}" if query else path
        note(target)
        response = client.get(target, follow_redirects=False)
        if response.status_code >= 500:
            failures.append(f"GET {target} -> {response.status_code} {response.text[:200]}")

    try:
        run()
    finally:
        client.cookies.clear()
    assert failures == [], "\n".join(failures[:20])
