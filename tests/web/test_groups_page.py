"""The residents' groups map in Chromium: drawn from our data, moves made by tapping."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from gis.delineate import edits
from gis.delineate.service import run
from gis.io.pipeline import import_file
from tests.conftest import NANJING, make_user, serve_app

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


def zoom_to(page, lat: float, lon: float) -> tuple[float, float]:
    """Zoom the map close in on lat/lon; return that point on the screen (the map starts
    below the shell's bar, so the container's offset is added)."""
    x, y = page.evaluate(
        """([lat, lon]) => { const map = Object.values(window).find(v => v instanceof L.Map);
        map.setView([lat, lon], 19, {animate: false});
        const p = map.latLngToContainerPoint([lat, lon]);
        const r = map.getContainer().getBoundingClientRect();
        return [p.x + r.left, p.y + r.top]; }""",
        [lat, lon],
    )
    return x, y


def _open(browser, base: str, viewport=(1024, 768), logged_in: bool = True):
    context = browser.new_context(
        viewport={"width": viewport[0], "height": viewport[1]},
        has_touch=True,
        is_mobile=True,
        locale="zh-CN",
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
    assert "OpenStreetMap contributors, ODbL" in page.inner_text(".leaflet-control-attribution")
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
    """A visitor is sent to the login; a login lost while the page is open sends the move
    to the login too, and nothing changes."""
    with engine.connect() as conn:
        building, target_building = conn.execute(
            sa.text(
                "SELECT b.id, b2.id FROM building b JOIN building b2 ON b2.unit_id <> b.unit_id "
                "AND b2.community_id = b.community_id ORDER BY b.id, b2.id LIMIT 1"
            )
        ).one()
        before = conn.execute(sa.text("SELECT id, unit_id FROM building ORDER BY id")).all()
        start, target = _centre(conn, building), _centre(conn, target_building)
    context = browser.new_context(
        viewport={"width": 1024, "height": 768}, has_touch=True, locale="zh-CN"
    )
    page = context.new_page()
    page.goto(f"{groups_server}/map/groups", wait_until="networkidle")
    assert page.url == f"{groups_server}/login?next=/map/groups"
    page.locator("input[name=username]").fill(STAFF)
    page.locator("input[name=password]").fill("wrong password")
    page.locator("button[type=submit]").tap()
    page.wait_for_function(
        "() => document.getElementById('ga-login-message').className === 'error'", timeout=10000
    )
    assert "用户名或密码错误" in page.inner_text("#ga-login-message")
    context.close()
    context, page, outside, _errors = _open(browser, groups_server)
    context.clear_cookies()  # the login ends while the page is open
    x, y = zoom_to(page, *start)
    page.touchscreen.tap(x, y)
    page.locator("#ga-move-building").tap()
    x, y = zoom_to(page, *target)
    page.touchscreen.tap(x, y)
    page.wait_for_url(f"{groups_server}/login?next=%2Fmap%2Fgroups", timeout=10000)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT id, unit_id FROM building ORDER BY id")).all() == before
    assert outside == []
    context.close()


def test_tapping_a_building_outlines_it(browser, groups_server, engine) -> None:
    with engine.connect() as conn:
        first, second = [
            r[0]
            for r in conn.execute(
                sa.text("SELECT b.id FROM building b JOIN unit u ON u.id = b.unit_id "
                        "ORDER BY b.households DESC, b.id LIMIT 2")
            )
        ]  # fmt: skip
        a, b = _centre(conn, first), _centre(conn, second)
    context, page, _outside, errors = _open(browser, groups_server)
    weight_of = """(id) => { let w = null; const map = Object.values(window).find(
        v => v instanceof L.Map); map.eachLayer(l => { if (l.feature && 'unit_id' in
        l.feature.properties && l.feature.properties.id === id) w = l.options.weight; });
        return w; }"""
    x, y = zoom_to(page, *a)
    page.touchscreen.tap(x, y)
    page.locator("#ga-panel").wait_for(state="visible", timeout=5000)
    assert page.evaluate(weight_of, first) == 4
    x, y = zoom_to(page, *b)
    page.touchscreen.tap(x, y)
    page.wait_for_function(f"() => ({weight_of})({second}) === 4")
    assert page.evaluate(weight_of, first) == 0.8  # the one before is back to normal
    assert page.locator(".leaflet-tooltip").count() == 0  # one card per tap
    scale = page.inner_text(".leaflet-control-scale")
    assert "m" in scale and "ft" not in scale
    assert errors == []
    context.close()


def _movable_cluster(engine) -> tuple[int, int, int, int]:
    """(cluster, its group, a building of a group it may join, that group): tried by the
    same code as the API, in a transaction rolled back."""
    with engine.connect() as conn:
        pairs = conn.execute(
            sa.text("""
            SELECT c.id, c.residents_group_id, b.id, g2.id FROM building_cluster c
              JOIN residents_group g1 ON g1.id = c.residents_group_id
              JOIN residents_group g2 ON g2.community_id = g1.community_id AND g2.id <> g1.id
              JOIN building_cluster c2 ON c2.residents_group_id = g2.id
              JOIN unit u2 ON u2.building_cluster_id = c2.id
              JOIN building b ON b.unit_id = u2.id
             WHERE ST_Length(ST_Intersection(ST_Boundary(c.geom), g2.geom)::geography) > 5
               AND (SELECT count(*) FROM building_cluster x
                     WHERE x.residents_group_id = g1.id) > 1
             ORDER BY c.id, g2.id, b.households DESC, b.id""")
        ).all()
        conn.rollback()  # each try below in a transaction of its own
        seen = set()
        for cluster, group, building, target in pairs:
            if (cluster, target) in seen:
                continue
            seen.add((cluster, target))
            tx = conn.begin()
            try:
                edits.move(conn, "building_cluster", cluster, target, group)
                return cluster, group, building, target
            except Exception:  # noqa: BLE001 - a refused move: try the next pair
                continue
            finally:
                tx.rollback()
    raise AssertionError("no cluster can move in this data")


def test_moving_a_whole_cluster_by_tapping(browser, groups_server, engine) -> None:
    cluster, old_group, target_building, new_group = _movable_cluster(engine)
    with engine.connect() as conn:
        building = conn.scalar(
            sa.text("SELECT b.id FROM building b JOIN unit u ON u.id = b.unit_id "
                    "WHERE u.building_cluster_id = :c ORDER BY b.households DESC, b.id LIMIT 1"),
            {"c": cluster},
        )  # fmt: skip
        start, target = _centre(conn, building), _centre(conn, target_building)
    context, page, outside, errors = _open(browser, groups_server, (768, 1024))
    x, y = zoom_to(page, *start)
    page.touchscreen.tap(x, y)
    page.locator("#ga-panel").wait_for(state="visible", timeout=5000)
    button = page.locator("#ga-move-cluster")
    assert button.inner_text() == "移动整个楼群到…"
    assert button.bounding_box()["height"] >= 44
    button.tap()
    assert "目标居民小组" in page.inner_text("#ga-message")
    x, y = zoom_to(page, *target)
    page.touchscreen.tap(x, y)
    page.wait_for_function(
        "() => document.getElementById('ga-message').className === 'ok'", timeout=10000
    )
    assert "楼群" in page.inner_text("#ga-message")
    with engine.connect() as conn:
        now = conn.scalar(
            sa.text("SELECT residents_group_id FROM building_cluster WHERE id = :c"),
            {"c": cluster},
        )
    assert now == new_group != old_group
    from pathlib import Path

    artifacts = Path(__file__).resolve().parents[1] / "artifacts"
    artifacts.mkdir(exist_ok=True)
    page.screenshot(path=str(artifacts / "groups-cluster-moved-portrait.png"))
    assert outside == [] and errors == []
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
    page.wait_for_url(f"{groups_server}/app/leaders", timeout=15000)  # an admin's home
    context.close()


def _has_cjk(text: str) -> bool:
    return any("\u3400" <= ch <= "\u9fff" for ch in text)


def test_the_groups_page_in_english(browser, groups_server, engine) -> None:
    """The bar, legend, layer names, card, buttons and messages in English."""
    with engine.connect() as conn:
        building, households, unit, cluster, group = conn.execute(
            sa.text("""
            SELECT b.id, b.households, u.code, c.code, g.code FROM building b
              JOIN unit u ON u.id = b.unit_id
              JOIN building_cluster c ON c.id = u.building_cluster_id
              JOIN residents_group g ON g.id = c.residents_group_id
             WHERE b.name IS NULL AND b.households > 0 ORDER BY b.id LIMIT 1""")
        ).one()
        point = _centre(conn, building)
    context, page, outside, errors = _open(browser, groups_server)
    context.add_cookies([{"name": "ga_lang", "value": "en", "url": groups_server}])
    page.goto(f"{groups_server}/map/groups", wait_until="networkidle")
    assert page.inner_text("#ga-bar h1") == "Residents' groups · every community"
    legend = page.inner_text("#ga-legend")
    assert "Households per group" in legend and "households" in legend
    layers = page.locator(".leaflet-control-layers").text_content() or ""
    assert "Residents' groups" in layers and "Walk network" in layers
    x, y = zoom_to(page, *point)
    page.touchscreen.tap(x, y)
    page.locator("#ga-panel").wait_for(state="visible", timeout=5000)
    card = page.inner_text("#ga-card")
    assert f"Building {building}" in card and f"{households} households" in card
    assert f"Unit {unit} · cluster {cluster} · group {group}" in card
    buttons = page.locator("#ga-panel button").all_inner_texts()
    assert buttons[:3] == [
        "Move this building to…",
        "Move its whole unit to…",
        "Move its whole cluster to…",
    ]
    page.locator("#ga-move-cluster").tap()
    assert (
        page.inner_text("#ga-message") == "Tap any building of the residents' group it should join"
    )
    shown = " ".join(
        [page.inner_text("#ga-bar"), legend, layers, card, " ".join(buttons),
         page.inner_text("#ga-message")]
    )  # fmt: skip
    assert not _has_cjk(shown), shown
    assert outside == [] and errors == []
    context.close()
