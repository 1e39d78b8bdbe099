"""Every page under the Content-Security-Policy in Chromium: it still draws, nothing is
refused, and script smuggled in through a community code or a building name does not run."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from gis import db
from gis.delineate.service import run as delineate
from gis.io.pipeline import import_file
from gis.reach.service import compute_and_store
from tests.conftest import (
    NANJING,
    _admin_execute,
    _clone,
    log_in_browser,
    make_user,
    serve_app,
)

# Breaks out of <title> and tries Jinja on the server (within the 64 characters of a code);
# the name breaks out of the inline script that embeds the GeoJSON.
CODE_PAYLOAD = "</title><script>window.__pwned=1</script>{{ 7*7 }}"
NAME_PAYLOAD = '</script><script>window.__pwned=2</script><img src=x onerror="__pwned=3">'
# Every CSP refusal the page sees, as the browser reports it to the page.
WATCH_VIOLATIONS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation',
  e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));
"""
COUNT_FEATURES = """() => {
  const map = Object.values(window).find(v => v instanceof L.Map);
  let n = 0; map.eachLayer(l => { if (l.feature) n++; }); return n; }"""


@pytest.fixture(scope="module")
def csp_site(server_url: str, template_url: str) -> Iterator[tuple[str, sa.Engine]]:
    """Nanjing, delineated, reach computed, with the payloads in a community code and a
    building name; served by the app."""
    url = _clone(server_url, template_url, "csp")
    engine = db.create_engine(url, poolclass=sa.NullPool)
    import_file(engine, NANJING)
    delineate(engine)
    with engine.begin() as conn:
        compute_and_store(conn, categories=["health_station"])
        conn.execute(
            sa.text(
                "UPDATE community SET code = :c WHERE id = (SELECT min(community_id) "
                "FROM residents_group)"
            ),
            {"c": CODE_PAYLOAD},
        )
        conn.execute(
            sa.text("UPDATE building SET name = :n WHERE id = (SELECT min(id) FROM building)"),
            {"n": NAME_PAYLOAD},
        )
    make_user(engine, "csp_admin", "admin", "pw-csp-admin-2026")
    try:
        with serve_app(url) as base:
            yield base, engine
    finally:
        engine.dispose()
        _admin_execute(
            server_url, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'
        )


def _visit(browser, url: str, login: bool = True):
    """Open ``url``; return the page, its response and what it refused or threw."""
    # pages follow the browser's language; headless Chromium asks for English otherwise
    context = browser.new_context(
        viewport={"width": 1024, "height": 768}, has_touch=True, locale="zh-CN"
    )
    context.add_init_script(WATCH_VIOLATIONS)
    if login:
        base = url.split("/", 3)[:3]
        log_in_browser(context, "/".join(base), "csp_admin", "pw-csp-admin-2026")
    page = context.new_page()
    console: list[str] = []
    errors: list[str] = []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    response = page.goto(url, wait_until="networkidle")
    assert response is not None and response.status == 200, url
    assert "'nonce-" in response.headers["content-security-policy"]
    return context, page, console, errors


def _assert_nothing_refused(page, console: list[str], errors: list[str]) -> None:
    assert page.evaluate("() => window.__violations") == []
    assert [m for m in console if "Content Security Policy" in m] == []
    assert errors == []
    assert page.evaluate("() => window.__pwned") is None


@pytest.mark.parametrize(
    ("path", "expected_count"),
    [
        (
            "/map",
            "SELECT (SELECT count(*) FROM building) + (SELECT count(*) FROM walk_edge) "
            "+ (SELECT count(*) FROM facility)",
        ),
        (
            "/map/reach",
            "SELECT (SELECT count(*) FROM building) + (SELECT count(*) FROM walk_edge) "
            "+ (SELECT count(*) FROM facility WHERE 'health_station' = ANY(categories))",
        ),
        (
            "/map/groups",
            "SELECT (SELECT count(*) FROM building) + (SELECT count(*) FROM walk_edge) "
            "+ (SELECT count(*) FROM residents_group)",
        ),
    ],
    ids=["overview", "reach", "groups"],
)
def test_maps_draw_everything_under_the_csp(browser, csp_site, path, expected_count) -> None:
    base, engine = csp_site
    context, page, console, errors = _visit(browser, f"{base}{path}")
    drawn = page.evaluate(COUNT_FEATURES)
    with engine.connect() as conn:
        assert drawn == conn.scalar(sa.text(expected_count)) > 0
    _assert_nothing_refused(page, console, errors)
    context.close()


def test_a_community_code_cannot_run_script(browser, csp_site) -> None:
    base, _engine = csp_site
    url = f"{base}/map/groups?community={quote(CODE_PAYLOAD)}"
    context, page, console, errors = _visit(browser, url)
    assert page.title() == f"居民小组 · {CODE_PAYLOAD}"  # shown as text, not markup
    assert page.inner_text("#ga-bar h1") == f"居民小组 · {CODE_PAYLOAD}"  # nor run as Jinja
    assert page.evaluate(COUNT_FEATURES) > 0
    page.wait_for_timeout(300)
    _assert_nothing_refused(page, console, errors)
    context.close()


def test_groups_page_script_works_under_the_csp(browser, csp_site) -> None:
    """groups.js (same origin) runs: tapping a building opens its card."""
    base, engine = csp_site
    with engine.connect() as conn:
        lon, lat = conn.execute(
            sa.text(
                "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(b.geom) p FROM building b "
                "JOIN unit u ON u.id = b.unit_id ORDER BY b.households DESC, b.id LIMIT 1) x"
            )
        ).one()
    context, page, console, errors = _visit(browser, f"{base}/map/groups")
    x, y = page.evaluate(
        """([lat, lon]) => { const map = Object.values(window).find(v => v instanceof L.Map);
        map.setView([lat, lon], 19, {animate: false});
        const p = map.latLngToContainerPoint([lat, lon]);
        const box = map.getContainer().getBoundingClientRect();
        return [box.left + p.x, box.top + p.y]; }""",
        [lat, lon],
    )
    page.touchscreen.tap(x, y)
    page.locator("#ga-panel").wait_for(state="visible", timeout=5000)
    assert "户" in page.inner_text("#ga-card")  # the card in the browser's language
    _assert_nothing_refused(page, console, errors)
    context.close()


def test_login_page_works_under_the_csp(browser, csp_site) -> None:
    base, _engine = csp_site
    context, page, console, errors = _visit(browser, f"{base}/login?next=/map", login=False)
    page.locator("input[name=username]").fill("csp_admin")
    page.locator("input[name=password]").fill("pw-csp-admin-2026")
    page.locator("button[type=submit]").tap()
    page.wait_for_url(f"{base}/map", timeout=15000)  # login.js ran and sent us on
    page.wait_for_function(
        "() => window.L && Object.values(window).some(v => v instanceof L.Map)", timeout=15000
    )
    assert page.evaluate(COUNT_FEATURES) > 0
    _assert_nothing_refused(page, console, errors)
    context.close()


def test_docs_page_works_under_the_csp(browser, csp_site) -> None:
    base, _engine = csp_site
    context, page, console, errors = _visit(browser, f"{base}/docs")
    try:
        page.locator(".swagger-ui .opblock").first.wait_for(timeout=15000)
        assert page.locator(".swagger-ui .opblock").count() > 20
        _assert_nothing_refused(page, console, errors)
    finally:
        context.close()


def test_redoc_page_works_under_the_csp(browser, csp_site) -> None:
    base, _engine = csp_site
    context, page, console, errors = _visit(browser, f"{base}/redoc")
    try:
        page.locator("[data-section-id]").first.wait_for(timeout=20000)
        assert page.locator("[data-section-id]").count() > 10
        # ReDoc's sidebar asks for its maker's logo from a CDN; the CSP refuses it (so the
        # page stays offline) and ReDoc hides the image. Nothing else may be refused.
        logo = "img-src https://cdn.redoc.ly/redoc/logo-mini.svg"
        assert page.evaluate("() => window.__violations") in ([], [logo])
        assert [m for m in console if "Content Security Policy" in m and "cdn.redoc.ly" not in m
                ] == []  # fmt: skip
        assert errors == [] and page.evaluate("() => window.__pwned") is None
    finally:
        context.close()
