"""The residents' groups map in Chromium: drawn from our data, moves made by tapping."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from gis.delineate.service import run
from gis.io.pipeline import import_file
from tests.conftest import NANJING, make_user, serve_app
from tests.web.test_map_page import zoom_to

STAFF, PASSWORD = "li_staff", "pw-li-staff-2026"


@pytest.fixture
def groups_server(engine, db_url) -> Iterator[str]:
    import_file(engine, NANJING)
    run(engine)
    make_user(engine, STAFF, "admin", PASSWORD)
    with serve_app(db_url) as base:
        yield base


def _log_in(page, base: str) -> None:
    """Log in through the login page, as staff do on a tablet."""
    page.goto(f"{base}/login?next=/map/groups", wait_until="networkidle")
    page.locator("input[name=username]").fill(STAFF)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("button[type=submit]").tap()
    page.wait_for_url(f"{base}/map/groups", timeout=15000)


def _open(browser, base: str, viewport=(1024, 768), logged_in: bool = True):
    context = browser.new_context(
        viewport={"width": viewport[0], "height": viewport[1]}, has_touch=True, is_mobile=True
    )
    page = context.new_page()
    if logged_in:
        _log_in(page, base)
    outside: list[str] = []
    errors: list[str] = []
    page.on(
        "request",
        lambda r: (
            outside.append(r.url) if not r.url.startswith(("http://127.0.0.1", "data:")) else None
        ),
    )
    page.on("pageerror", lambda e: errors.append(str(e)))
    response = page.goto(f"{base}/map/groups", wait_until="networkidle")
    assert response is not None and response.status == 200
    return context, page, outside, errors


def _centre(conn, building_id: int) -> tuple[float, float]:
    lon, lat = conn.execute(
        sa.text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM building "
            "WHERE id = :b) x"
        ),
        {"b": building_id},
    ).one()
    return lat, lon


@pytest.mark.parametrize("viewport", [(1024, 768), (768, 1024)], ids=["landscape", "portrait"])
def test_groups_page_draws_every_group_offline(browser, groups_server, engine, viewport) -> None:
    context, page, outside, errors = _open(browser, groups_server, viewport)
    drawn = page.evaluate(
        """() => { const map = Object.values(window).find(v => v instanceof L.Map);
        let g = 0, b = 0;
        map.eachLayer(l => { if (!l.feature) return;
          if ('band' in l.feature.properties) g++;
          else if ('unit_id' in l.feature.properties) b++; });
        return [g, b]; }"""
    )
    with engine.connect() as conn:
        expected = conn.execute(
            sa.text(
                "SELECT (SELECT count(*) FROM residents_group), (SELECT count(*) FROM building)"
            )
        ).one()
    assert tuple(drawn) == tuple(expected)
    assert outside == [] and errors == []
    assert "OpenStreetMap contributors" in page.inner_text(".leaflet-control-attribution")
    assert "居民小组" in page.inner_text("#ga-bar")
    context.close()


def test_moving_a_building_by_tapping(browser, groups_server, engine) -> None:
    with engine.connect() as conn:
        building, old_unit, target_building, new_unit = conn.execute(
            sa.text("""
            SELECT b.id, b.unit_id, b2.id, b2.unit_id FROM building b
              JOIN building_cell bc ON bc.building_id = b.id
              JOIN unit u1 ON u1.id = b.unit_id
              JOIN building b2 ON b2.unit_id <> b.unit_id
              JOIN unit u2 ON u2.id = b2.unit_id
               AND u2.building_cluster_id = u1.building_cluster_id
             WHERE ST_Length(ST_Intersection(bc.geom, u2.geom)::geography) > 5
               AND (SELECT count(*) FROM building x WHERE x.unit_id = u1.id) > 1
             ORDER BY b.id, b2.id LIMIT 1""")
        ).one()
        start, target = _centre(conn, building), _centre(conn, target_building)
    context, page, _outside, errors = _open(browser, groups_server)
    x, y = zoom_to(page, *start)
    page.touchscreen.tap(x, y)
    page.locator("#ga-panel").wait_for(state="visible", timeout=5000)
    assert "户" in page.inner_text("#ga-card")
    page.locator("#ga-move-building").tap()
    assert "目标单元" in page.inner_text("#ga-message")
    x, y = zoom_to(page, *target)
    page.touchscreen.tap(x, y)
    page.wait_for_function(
        "() => document.getElementById('ga-message').className === 'ok'", timeout=10000
    )
    with engine.connect() as conn:
        now = conn.scalar(sa.text("SELECT unit_id FROM building WHERE id = :b"), {"b": building})
    assert now == new_unit != old_unit
    assert errors == []
    context.close()


def test_a_refused_move_shows_the_reason_and_changes_nothing(browser, groups_server, engine):
    with engine.connect() as conn:
        building, far_building = conn.execute(
            sa.text("""
            SELECT b.id, b2.id FROM building b JOIN building b2
                ON b2.community_id = b.community_id AND b2.unit_id <> b.unit_id
               AND NOT ST_DWithin(b.geom::geography, b2.geom::geography, 300)
             WHERE (SELECT count(*) FROM building x WHERE x.unit_id = b.unit_id) > 1
             ORDER BY b.id, b2.id LIMIT 1""")
        ).one()
        before = conn.execute(sa.text("SELECT id, unit_id FROM building ORDER BY id")).all()
        start, target = _centre(conn, building), _centre(conn, far_building)
    context, page, _outside, _errors = _open(browser, groups_server)
    x, y = zoom_to(page, *start)
    page.touchscreen.tap(x, y)
    page.locator("#ga-move-building").tap()
    x, y = zoom_to(page, *target)
    page.touchscreen.tap(x, y)
    page.wait_for_function(
        "() => document.getElementById('ga-message').className === 'error'", timeout=10000
    )
    assert "未能修改" in page.inner_text("#ga-message")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT id, unit_id FROM building ORDER BY id")).all() == before
    context.close()


def test_a_move_without_login_asks_for_one(browser, groups_server, engine) -> None:
    with engine.connect() as conn:
        building, target_building = conn.execute(
            sa.text(
                "SELECT b.id, b2.id FROM building b JOIN building b2 ON b2.unit_id <> b.unit_id "
                "AND b2.community_id = b.community_id ORDER BY b.id, b2.id LIMIT 1"
            )
        ).one()
        before = conn.execute(sa.text("SELECT id, unit_id FROM building ORDER BY id")).all()
        start, target = _centre(conn, building), _centre(conn, target_building)
    context, page, outside, _errors = _open(browser, groups_server, logged_in=False)
    x, y = zoom_to(page, *start)
    page.touchscreen.tap(x, y)
    page.locator("#ga-move-building").tap()
    x, y = zoom_to(page, *target)
    page.touchscreen.tap(x, y)
    page.wait_for_function(
        "() => document.getElementById('ga-message').className === 'error'", timeout=10000
    )
    assert "登录" in page.inner_text("#ga-message")
    page.locator("#ga-message a").tap()
    page.locator("input[name=username]").fill(STAFF)
    page.locator("input[name=password]").fill("wrong password")
    page.locator("button[type=submit]").tap()
    page.wait_for_function(
        "() => document.getElementById('ga-login-message').className === 'error'", timeout=10000
    )
    assert "用户名或密码错误" in page.inner_text("#ga-login-message")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT id, unit_id FROM building ORDER BY id")).all() == before
    assert outside == []
    context.close()


@pytest.mark.parametrize(
    "next_",
    ["//evil.example/x", "/\\evil.example/x", "https://evil.example", "/.//evil.example/x"],
)
def test_login_never_sends_you_elsewhere(browser, groups_server, next_) -> None:
    from urllib.parse import quote

    context = browser.new_context(viewport={"width": 768, "height": 1024}, has_touch=True)
    page = context.new_page()
    page.goto(f"{groups_server}/login?next={quote(next_)}", wait_until="networkidle")
    page.locator("input[name=username]").fill(STAFF)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("button[type=submit]").tap()
    page.wait_for_url(f"{groups_server}/map/groups", timeout=15000)
    context.close()
