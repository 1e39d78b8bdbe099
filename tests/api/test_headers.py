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
from tests.conftest import logged_in


@pytest.fixture(scope="module")
def client(nanjing_url: str, nanjing_engine) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=nanjing_url))
    with TestClient(app, raise_server_exceptions=False) as c:
        logged_in(c, nanjing_engine, "headers_admin")  # pages need a login
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
        # data blocks (type="application/json") are not scripts: the browser never runs them
        inline = [t for t in tags if "src=" not in t and 'type="application/json"' not in t]
        assert inline and all(t == f'<script nonce="{nonce}">' for t in inline)
        assert not any("nonce" in t for t in tags if "src=" in t)
        nonces.append(nonce)
    assert nonces[0] != nonces[1]


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("community=%00", 422),
        ("community=a%00b", 422),
        ("community=%1b%5b31m", 422),
        ("community=" + "a" * 65, 422),
        ("community=%F0%9F%98%80", 404),  # printable, unknown
    ],
)
def test_groups_page_refuses_what_cannot_be_a_code_without_a_5xx(client, query, status) -> None:
    r = client.get(f"/map/groups?{query}")
    assert r.status_code == status, (r.status_code, r.text)
    # a page: the refusal as a page in Chinese, never JSON
    assert r.headers["content-type"].startswith("text/html")
    assert "ga-error-message" in r.text and "{" not in r.text


def test_database_errors_wrapped_by_pandas_answer_as_the_error_itself(nanjing_engine) -> None:
    # read_sql / read_postgis wrap the driver's DataError (here: a NUL) in pandas' own error
    app = FastAPI()
    errors.install(app)

    @app.get("/api/nul")
    def nul() -> dict[str, int]:
        with nanjing_engine.connect() as conn:
            frame = pd.read_sql(sa.text("SELECT CAST(:x AS text) AS x"), conn, params={"x": "a\0"})
        return {"rows": len(frame)}

    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/api/nul")
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "InvalidInput"


def test_img_src_allows_the_configured_basemap_hosts_only(nanjing_url: str, client) -> None:
    from api.headers import content_security_policy

    default = _policy(client.get("/login").headers["content-security-policy"])
    assert default["img-src"] == "'self' data:"
    policy = _policy(content_security_policy("n", ("https://tiles.corp.test",)))
    assert policy["img-src"] == "'self' data: https://tiles.corp.test"
    assert policy["connect-src"] == policy["font-src"] == "'self'"
    app = create_app(Settings(database_url=nanjing_url, basemap="tianditu", tianditu_key="k"))
    with TestClient(app, raise_server_exceptions=False) as c:
        header = c.get("/login").headers["content-security-policy"]
    policy = _policy(header)
    hosts = [f"https://t{i}.tianditu.gov.cn" for i in range(8)]
    assert policy["img-src"] == " ".join(("'self'", "data:", *hosts))
    assert header.count("tianditu") == 8 and policy["script-src"].startswith("'self' 'nonce-")


def test_answers_are_compressed_for_clients_that_ask(client) -> None:
    """A tablet's first load: pages and JSON travel gzipped (bench/pages.py: 0.86 → 0.21 MB)."""
    import gzip


    page = client.get("/map", headers={"Accept-Encoding": "gzip"})
    assert page.status_code == 200 and page.headers["content-encoding"] == "gzip"
    # the security headers survive the compression
    assert "'nonce-" in page.headers["content-security-policy"]
    raw = client.get("/map", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers
    assert len(gzip.compress(raw.content)) < len(raw.content) / 3
