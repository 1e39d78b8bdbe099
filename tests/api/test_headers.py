"""Security headers on every answer, nonces only on our scripts, no 5xx from page input."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api import errors
from api.app import create_app
from gis.settings import Settings


@pytest.fixture(scope="module")
def client(nanjing_url: str) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=nanjing_url))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _policy(header: str) -> dict[str, str]:
    parts = (p.strip().split(" ", 1) for p in header.split(";") if p.strip())
    return {p[0]: (p[1] if len(p) > 1 else "") for p in parts}


@pytest.mark.parametrize(
    "path",
    [
        "/map",
        "/map/groups?community=%00",
        "/login",
        "/api/summary",
        "/api/imports",
        "/api/residents?reveal=id_number,phone",
        "/api/layers/residents",
        "/openapi.json",
        "/no/such/page",
    ],
)
def test_every_answer_carries_the_security_headers(client, path) -> None:
    r = client.get(path)
    assert r.status_code < 500, (path, r.status_code, r.text)
    policy = _policy(r.headers["content-security-policy"])
    assert policy["default-src"] == "'self'"
    assert re.fullmatch(r"'self' 'nonce-[A-Za-z0-9_-]{24}'", policy["script-src"])
    assert policy["frame-ancestors"] == "'none'"
    assert policy["object-src"] == policy["base-uri"] == "'none'"
    assert "unsafe-eval" not in r.headers["content-security-policy"]
    assert "*" not in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    "path", ["/static/vendor/leaflet/dist/leaflet.js", "/static/app/groups.js"]
)
def test_static_assets_may_be_cached(client, path) -> None:
    r = client.get(path)
    assert r.status_code == 200
    assert "no-store" not in r.headers.get("cache-control", "")
    assert r.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("path", ["/map", "/map/groups"])  # groups: none drawn yet
def test_only_our_inline_scripts_carry_the_nonce_of_the_answer(client, path) -> None:
    first, second = client.get(path), client.get(path)
    assert first.status_code == second.status_code == 200
    nonces = []
    for r in (first, second):
        nonce = re.search(r"'nonce-([^']+)'", r.headers["content-security-policy"]).group(1)
        tags = re.findall(r"<script\b[^>]*>", r.text)
        inline = [t for t in tags if "src=" not in t]
        assert inline and all(t == f'<script nonce="{nonce}">' for t in inline)
        assert not any("nonce" in t for t in tags if "src=" in t)
        nonces.append(nonce)
    assert nonces[0] != nonces[1]


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("community=%00", "printable"),
        ("community=a%00b", "printable"),
        ("community=%1b%5b31m", "printable"),
        ("community=" + "a" * 65, "at most 64"),
        ("community=%F0%9F%98%80", "no delineated community"),  # printable, unknown: 404
    ],
)
def test_groups_page_refuses_what_cannot_be_a_code_without_a_5xx(client, query, needle) -> None:
    r = client.get(f"/map/groups?{query}")
    assert r.status_code in (404, 422), (r.status_code, r.text)
    assert needle in r.json()["detail"]


def test_database_errors_wrapped_by_pandas_answer_as_the_error_itself(nanjing_engine) -> None:
    # read_sql / read_postgis wrap the driver's DataError (here: a NUL) in pandas' own error
    app = FastAPI()
    errors.install(app)

    @app.get("/nul")
    def nul() -> dict[str, int]:
        with nanjing_engine.connect() as conn:
            frame = pd.read_sql(sa.text("SELECT CAST(:x AS text) AS x"), conn, params={"x": "a\0"})
        return {"rows": len(frame)}

    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/nul")
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "InvalidInput"
