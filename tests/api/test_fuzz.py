"""Schemathesis against the OpenAPI schema: no input, valid or not, gets a 5xx.

A bounded run (a few examples per operation, fixed seed) in CI, logged in as an admin (the
widest scope: requests reach the handlers instead of stopping at 401/404). Operations that
redraw or recompute everything are left out: each call takes seconds and their input
checks are tested on their own (tests/api/test_delineation.py, test_reach.py).
"""

from __future__ import annotations

import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

SLOW = re.compile(r"^(POST /api/delineation/runs|POST /api/reach.*|GET /map.*)$")
EXAMPLES = 25


@pytest.mark.parametrize("user, examples", [("admin", EXAMPLES), ("worker_a1", 8)])
def test_no_server_errors(api, user, examples):
    """As an admin (requests reach the handlers) and as a grid worker (scope and role
    refusals on every path)."""
    a, _info, _url = api
    schema = schemathesis.openapi.from_asgi("/openapi.json", a.client.app)
    headers = a.as_(user)
    failures: list[str] = []
    ran = 0
    for result in schema.get_all_operations():
        op = result.ok()
        name = f"{op.method.upper()} {op.path}"
        if SLOW.match(name):
            continue
        ran += 1

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
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.path} {case.path_parameters} {case.query} -> "
                                f"{response.status_code} {response.text[:200]}")  # fmt: skip

        run()
    assert ran >= 30
    assert failures == [], "\n".join(failures[:20])
