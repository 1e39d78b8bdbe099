"""The planners' reach page (/app/reach) in Chromium: a planner of community A sees only its
figures; the what-if tap, the siting suggestions and the elderly speed give the API's numbers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from gis import db
from gis.reach.service import compute_and_store
from tests.api.conftest import People, password, people_template  # noqa: F401
from tests.conftest import _admin_execute, _clone, serve_app
from tests.web.test_map_page import zoom_to

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CATEGORIES = ["health_station", "police_room", "shopping"]
VIEWPORTS = [(1024, 768), (768, 1024)]
VIEWPORT_IDS = ["landscape", "portrait"]
WATCH_VIOLATIONS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation',
  e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));
"""


@dataclass
class Site:
    base: str
    engine: sa.Engine
    info: People


@pytest.fixture(scope="module")
def site(server_url: str, people_template) -> Iterator[Site]:  # noqa: F811
    """The prepared people database with a reach run, served by the app (tests only read)."""
    tpl_url, info = people_template
    url = _clone(server_url, tpl_url, "reach_page")
    engine = db.create_engine(url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        compute_and_store(conn, categories=CATEGORIES)
    try:
        with serve_app(url) as base:
            yield Site(base, engine, info)
    finally:
        engine.dispose()
        _admin_execute(
            server_url, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'
        )


class Visit:
    """A tablet-sized browser logged in through the login page, watching for trouble."""

    def __init__(self, browser, base: str, username: str, viewport=(1024, 768)) -> None:
        self.base = base
        self.context = browser.new_context(
            viewport={"width": viewport[0], "height": viewport[1]},
            has_touch=True,
            is_mobile=True,
            locale="zh-CN",
        )
        self.context.add_init_script(WATCH_VIOLATIONS)
        self.outside: list[str] = []
        self.context.route("**/*", self._only_here)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else 0)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(f"{base}/login", wait_until="networkidle")
        self.page.locator("input[name=username]").fill(username)
        self.page.locator("input[name=password]").fill(password(username))
        self.page.locator("button[type=submit]").tap()
        self.page.wait_for_url(lambda url: "/login" not in url, timeout=15000)

    def _only_here(self, route) -> None:
        url = route.request.url
        if url.startswith(("http://127.0.0.1", "data:", "blob:")):
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def wait_for_figures(self) -> None:
        self.page.wait_for_function(
            "() => document.querySelector('#ga-reach-communities tbody') && "
            "document.getElementById('ga-reach-gaps-total').textContent !== ''",
            timeout=20000,
        )

    def check_clean(self) -> None:
        assert self.outside == []
        assert self.errors == []
        assert self.page.evaluate("() => window.__violations") == []

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"reach-{name}.png"))

    def close(self) -> None:
        self.context.close()


def _expected(conn, community_id: int | None, category: str, limit_m: float):
    """Per community and grid: (id, households, covered) straight from the stored run; a
    divided tower's households counted in the grid of each part (part_path)."""
    scope = "" if community_id is None else "AND p.community_id = :c"
    base = f"""
        FROM part_path p JOIN building b ON b.id = p.building_id
        JOIN building_reach_latest r ON r.building_id = b.id AND r.category = :cat
        WHERE b.households > 0 {scope}"""
    sums = "sum(p.households), coalesce(sum(p.households) FILTER (WHERE r.walk_m <= :lim), 0)"
    params = {"c": community_id, "cat": category, "lim": limit_m}
    out = {}
    for level in ("community_id", "grid_id"):
        rows = conn.execute(
            sa.text(
                f"SELECT p.{level}, {sums} {base} AND p.{level} IS NOT NULL GROUP BY 1 ORDER BY 1"
            ),
            params,
        ).all()
        out[level] = {r[0]: (int(r[1]), int(r[2])) for r in rows}
    return out


def _table(page, table_id: str) -> dict[int, tuple[int, int]]:
    rows = page.evaluate(
        """(id) => [...document.querySelectorAll('#' + id + ' tbody tr[data-id]')].map(tr =>
          [Number(tr.dataset.id), tr.querySelector('.n').textContent,
           tr.querySelector('.covered').textContent])""",
        table_id,
    )
    return {i: (int(n.replace(",", "")), int(c.replace(",", ""))) for i, n, c in rows}


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=VIEWPORT_IDS)
def test_planner_sees_only_community_a(browser, site, viewport) -> None:
    v = Visit(browser, site.base, "planner_a", viewport)
    v.page.wait_for_url(f"{site.base}/app/reach", timeout=15000)  # the planner's home
    v.wait_for_figures()
    with site.engine.connect() as conn:
        expected = _expected(conn, site.info.community_a, "health_station", 800)
        in_a = conn.scalar(
            sa.text("SELECT count(*) FROM building WHERE community_id = :c"),
            {"c": site.info.community_a},
        )
    communities = _table(v.page, "ga-reach-communities")
    grids = _table(v.page, "ga-reach-grids")
    assert list(communities) == [site.info.community_a]
    assert communities == expected["community_id"]
    assert grids == expected["grid_id"] and site.info.grid_a1 in grids
    # the map holds community A's buildings only, coloured; the gaps drawn and listed
    drawn = v.page.evaluate(
        """() => { const d = document.getElementById('ga-reach').dataset;
        let n = 0; window[d.buildings].eachLayer(() => n++); return n; }"""
    )
    assert drawn == in_a
    # the chart: one bar per area, the covered share of each
    bars = v.page.locator("#ga-reach-chart rect.bar").count()
    assert bars == len(communities) + len(grids)
    # the furniture: layer control, legend, metric-only scale, the ODbL credit
    assert v.page.locator(".leaflet-control-layers").count() == 1
    assert "5–10" in v.page.inner_text("#ga-legend")
    assert v.page.locator(".leaflet-control-scale-line").count() == 1
    assert " m" in v.page.inner_text(".leaflet-control-scale-line") or "km" in v.page.inner_text(
        ".leaflet-control-scale-line"
    )
    assert "OpenStreetMap contributors, ODbL" in v.page.inner_text(".leaflet-control-attribution")
    small = v.page.evaluate(
        """() => [...document.querySelectorAll('#ga-reach-panel button, #ga-reach-panel select,'
          + ' .leaflet-control-layers-toggle, .leaflet-control-zoom a, .ga-fac')]
          .filter(e => e.offsetParent !== null || e.classList.contains('ga-fac'))
          .map(e => e.getBoundingClientRect())
          .filter(r => r.width > 0 && (r.width < 44 || r.height < 44)).length"""
    )
    assert small == 0
    v.shot(f"planner-{viewport[0]}x{viewport[1]}")
    v.check_clean()
    v.close()


def test_admin_sees_the_city(browser, site) -> None:
    v = Visit(browser, site.base, "admin")
    v.page.goto(f"{site.base}/app/reach", wait_until="networkidle")
    v.wait_for_figures()
    with site.engine.connect() as conn:
        expected = _expected(conn, None, "health_station", 800)
    assert _table(v.page, "ga-reach-communities") == expected["community_id"]
    assert len(expected["community_id"]) > 1
    assert "全市" in v.page.inner_text("#ga-reach-area")  # what-ifs count the whole city
    v.check_clean()
    v.close()


def test_choosing_a_category(browser, site) -> None:
    v = Visit(browser, site.base, "planner_a")
    v.page.wait_for_url(f"{site.base}/app/reach", timeout=15000)
    v.wait_for_figures()
    v.page.select_option("#ga-reach-category", "police_room")
    v.page.wait_for_url("**/app/reach?category=police_room", timeout=15000)
    v.wait_for_figures()
    assert "警务室" in v.page.inner_text("#ga-bar")
    with site.engine.connect() as conn:
        expected = _expected(conn, site.info.community_a, "police_room", 800)
    assert _table(v.page, "ga-reach-communities") == expected["community_id"]
    assert v.page.locator("#ga-reach-category").input_value() == "police_room"
    v.check_clean()
    v.close()


def _empty_spot(conn, community_id: int) -> tuple[float, float]:
    """A street node inside the community, away from buildings and facilities."""
    return conn.execute(
        sa.text("""
        SELECT ST_Y(n.geom), ST_X(n.geom) FROM walk_node n
         WHERE ST_Contains((SELECT ST_ConvexHull(ST_Collect(geom)) FROM building
                             WHERE community_id = :c), n.geom)
           AND NOT EXISTS (SELECT 1 FROM building b
                            WHERE ST_DWithin(b.geom::geography, n.geom::geography, 8))
           AND NOT EXISTS (SELECT 1 FROM facility f
                            WHERE ST_DWithin(f.geom::geography, n.geom::geography, 40))
         ORDER BY n.id LIMIT 1"""),
        {"c": community_id},
    ).one()


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=VIEWPORT_IDS)
def test_what_if_tap_shows_the_api_gain(browser, site, viewport) -> None:
    with site.engine.connect() as conn:
        lat, lon = _empty_spot(conn, site.info.community_a)
    v = Visit(browser, site.base, "planner_a", viewport)
    v.page.wait_for_url(f"{site.base}/app/reach", timeout=15000)
    v.wait_for_figures()
    x, y = zoom_to(v.page, lat, lon)
    v.page.touchscreen.tap(x, y)
    v.page.wait_for_function(
        "() => document.getElementById('ga-reach-card').dataset.state === 'done'", timeout=20000
    )
    card = v.page.evaluate("() => ({...document.getElementById('ga-reach-card').dataset})")
    assert abs(float(card["lat"]) - lat) < 1e-4 and abs(float(card["lon"]) - lon) < 1e-4
    answer = v.context.request.post(
        f"{site.base}/api/reach/what-if",
        data={
            "lon": float(card["lon"]),
            "lat": float(card["lat"]),
            "category": "health_station",
            "limit_min": 10,
            "speed_m_per_min": 80,
        },
        headers={"X-Requested-With": "gridatlas"},
    )
    assert answer.ok, answer.text()
    gained = answer.json()["households_gained"]
    assert int(card["gained"]) == gained
    assert f"{gained:,}" in v.page.inner_text("#ga-reach-card .ga-gain")
    # counted in the planner's community, and the page says so (the card and the panel)
    assert card["area"] == answer.json()["area"] == "scope"
    with site.engine.connect() as conn:
        name = conn.scalar(
            sa.text("SELECT coalesce(name, code) FROM community WHERE id = :c"),
            {"c": site.info.community_a},
        )
        in_a = conn.scalar(
            sa.text("SELECT sum(households) FROM building WHERE community_id = :c"),
            {"c": site.info.community_a},
        )
    assert int(card["inArea"]) == in_a
    assert name in v.page.inner_text("#ga-reach-area")
    assert name in v.page.inner_text("#ga-reach-card .ga-area-figures")
    assert v.page.locator(".ga-whatif").count() == 1  # drawn where it was tapped
    assert v.page.locator("#ga-reach-card").count() == 1
    assert v.page.locator(".leaflet-popup, .leaflet-tooltip").count() == 0  # one card only
    v.shot(f"what-if-{viewport[0]}x{viewport[1]}")
    v.check_clean()
    v.close()


def test_tapping_a_facility_draws_its_isochrone(browser, site) -> None:
    with site.engine.connect() as conn:
        fid, lat, lon = conn.execute(
            sa.text("""
            SELECT f.id, ST_Y(ST_PointOnSurface(f.geom)), ST_X(ST_PointOnSurface(f.geom))
              FROM facility f WHERE 'health_station' = ANY(f.categories)
               AND ST_DWithin(f.geom::geography, (SELECT ST_Extent(geom)::geometry FROM building
                   WHERE community_id = :c)::geography, 2000)
             ORDER BY f.id LIMIT 1"""),
            {"c": site.info.community_a},
        ).one()
    v = Visit(browser, site.base, "planner_a")
    v.page.wait_for_url(f"{site.base}/app/reach", timeout=15000)
    v.wait_for_figures()
    x, y = zoom_to(v.page, lat, lon)
    v.page.touchscreen.tap(x, y)
    v.page.wait_for_function(
        f"() => document.getElementById('ga-reach-card').dataset.facility === '{fid}'",
        timeout=20000,
    )
    drawn = v.page.evaluate(
        """() => { const d = document.getElementById('ga-reach').dataset;
        let n = 0; window[d.isochrone].eachLayer(() => n++); return n; }"""
    )
    assert drawn == 1
    v.shot("isochrone")
    v.check_clean()
    v.close()


def test_siting_suggestions_are_drawn_with_their_gains(browser, site) -> None:
    v = Visit(browser, site.base, "planner_a")
    v.page.wait_for_url(f"{site.base}/app/reach", timeout=15000)
    v.wait_for_figures()
    v.page.locator("#ga-reach-siting").tap()
    v.page.wait_for_function(
        "() => document.querySelector('#ga-reach-sites li[data-gained]') !== null", timeout=60000
    )
    answer = v.context.request.post(
        f"{site.base}/api/reach/siting",
        data={"category": "health_station", "k": 3, "limit_min": 10, "speed_m_per_min": 80},
        headers={"X-Requested-With": "gridatlas"},
    )
    sites = answer.json()["sites"]
    shown = v.page.evaluate(
        "() => [...document.querySelectorAll('#ga-reach-sites li')]"
        ".map(li => Number(li.dataset.gained))"
    )
    assert shown == [s["households_gained"] for s in sites] and len(sites) > 0
    assert v.page.locator(".ga-site").count() == len(sites)
    v.shot("siting")
    v.check_clean()
    v.close()


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=VIEWPORT_IDS)
def test_elderly_speed_changes_the_figures(browser, site, viewport) -> None:
    with site.engine.connect() as conn:
        # the category whose coverage in community A differs most between 800 m and 600 m
        category = max(
            CATEGORIES,
            key=lambda c: sum(
                adult[1] - elderly[1]
                for adult, elderly in zip(
                    _expected(conn, site.info.community_a, c, 800)["community_id"].values(),
                    _expected(conn, site.info.community_a, c, 600)["community_id"].values(),
                    strict=True,
                )
            ),
        )
        adult = _expected(conn, site.info.community_a, category, 800)
        elderly = _expected(conn, site.info.community_a, category, 600)
    assert adult != elderly
    v = Visit(browser, site.base, "planner_a", viewport)
    v.page.wait_for_url(f"{site.base}/app/reach", timeout=15000)
    v.page.goto(f"{site.base}/app/reach?category={category}", wait_until="networkidle")
    v.wait_for_figures()
    assert _table(v.page, "ga-reach-communities") == adult["community_id"]
    v.page.locator(".ga-speed[data-speed=elderly]").tap()
    v.page.wait_for_url("**speed=elderly", timeout=15000)
    v.wait_for_figures()
    assert v.page.locator(".ga-speed[data-speed=elderly]").get_attribute("aria-pressed") == "true"
    assert _table(v.page, "ga-reach-communities") == elderly["community_id"]
    assert _table(v.page, "ga-reach-grids") == elderly["grid_id"]
    v.shot(f"elderly-{viewport[0]}x{viewport[1]}")
    v.check_clean()
    v.close()


def _has_cjk(text: str) -> bool:
    return any("\u3400" <= ch <= "\u9fff" for ch in text)


def test_the_page_in_english(browser, site) -> None:
    """Category names, the panel, the legend and the what-if card in English."""
    with site.engine.connect() as conn:
        lat, lon = _empty_spot(conn, site.info.community_a)
    v = Visit(browser, site.base, "planner_a")
    v.page.wait_for_url(f"{site.base}/app/reach", timeout=15000)
    v.context.add_cookies([{"name": "ga_lang", "value": "en", "url": site.base}])
    v.page.goto(f"{site.base}/app/reach", wait_until="networkidle")
    v.wait_for_figures()
    options = v.page.locator("#ga-reach-category option").all_inner_texts()
    assert options == ["Health station", "Police room", "Shopping"]  # the run's order
    assert "Health station" in v.page.inner_text("#ga-bar")
    x, y = zoom_to(v.page, lat, lon)
    v.page.touchscreen.tap(x, y)
    v.page.wait_for_function(
        "() => document.getElementById('ga-reach-card').dataset.state === 'done'", timeout=20000
    )
    assert "A new Health station here" in v.page.inner_text("#ga-reach-card")
    with site.engine.connect() as conn:
        names = [
            r[0]
            for r in conn.execute(
                sa.text("SELECT coalesce(name, '') FROM community UNION ALL "
                        "SELECT coalesce(name, '') FROM grid UNION ALL "
                        "SELECT coalesce(name, '') FROM building")
            )
        ]  # fmt: skip
    # our own texts: no Chinese, only the names of places (data) may be
    shown = " ".join(
        v.page.inner_text(s) for s in ("#ga-legend", "#ga-reach-panel", "#ga-reach-card", "#ga-bar")
    )
    for name in sorted(set(names), key=len, reverse=True):
        if name:
            shown = shown.replace(name, "")
    assert not _has_cjk(shown), shown
    v.shot("english")
    v.check_clean()
    v.close()


def test_the_old_reach_map_in_english(browser, site) -> None:
    v = Visit(browser, site.base, "planner_a")
    v.page.wait_for_url(f"{site.base}/app/reach", timeout=15000)
    v.context.add_cookies([{"name": "ga_lang", "value": "en", "url": site.base}])
    response = v.page.goto(f"{site.base}/map/reach?category=police_room", wait_until="networkidle")
    assert response is not None and response.status == 200
    assert "Walking reach · Police room" in v.page.inner_text("#ga-bar")
    assert not _has_cjk(v.page.inner_text("#ga-legend") + v.page.inner_text("#ga-bar"))
    layers = v.page.locator(".leaflet-control-layers").text_content() or ""  # collapsed
    assert "Police room facilities" in layers and not _has_cjk(layers)
    v.close()


def test_the_old_reach_map_still_opens(browser, site) -> None:
    v = Visit(browser, site.base, "planner_a")
    v.page.wait_for_url(f"{site.base}/app/reach", timeout=15000)
    response = v.page.goto(f"{site.base}/map/reach", wait_until="networkidle")
    assert response is not None and response.status == 200
    assert v.page.locator("#ga-nav a[href='/map/reach']").count() == 0
    assert v.page.locator("#ga-nav a[href='/app/reach']").count() == 1
    v.close()


def test_scoped_figures_follow_the_login(site) -> None:
    """The figures the page fetches: a login's own areas only, none without a login."""
    import httpx

    url = f"{site.base}/api/reach/scoped/coverage?category=shopping&speed_m_per_min=60"
    with httpx.Client() as client:
        assert client.get(url).status_code == 401
        assert client.get(f"{site.base}/api/reach/scoped/gaps?category=shopping").status_code == 401
        for username, community in (("staff_b", site.info.community_b), ("worker_a1", None)):
            token = client.post(
                f"{site.base}/api/auth/login",
                json={"username": username, "password": password(username)},
            ).json()["token"]
            auth = {"Authorization": f"Bearer {token}"}
            figures = client.get(url, headers=auth).json()
            if community is not None:
                assert [c["id"] for c in figures["community"]] == [community]
            else:  # a grid worker of A1: that grid only, and its community's part of it
                assert [g["id"] for g in figures["grid"]] == [site.info.grid_a1]
                assert figures["community"][0]["households"] == figures["grid"][0]["households"]
            assert figures["limit_m"] == 600
            gaps = client.get(
                f"{site.base}/api/reach/scoped/gaps?category=shopping&speed_m_per_min=60",
                headers=auth,
            ).json()
            assert gaps["households_in_gaps"] == sum(
                a["households"] - a["households_covered"] for a in figures["community"]
            )
            assert client.get(f"{url}&limit_min=0", headers=auth).status_code == 422
