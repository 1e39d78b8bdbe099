"""我的网格 in Chromium, checked on the wire: a grid worker's page and every answer it
fetched hold no building or resident outside their grid; search, tap, one card."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa

from gis import db
from gis.search import refresh_address_keys
from tests.api.conftest import People, people, people_template  # noqa: F401
from tests.conftest import PROJECT_ROOT, serve_app
from tests.web.helpers import Visit, open_page
from tests.web.test_map_page import zoom_to

ARTIFACTS = PROJECT_ROOT / "tests" / "artifacts"
VIEWPORTS = [(1024, 768), (768, 1024)]
VIEWPORT_IDS = ["landscape", "portrait"]
ADDRESS = ("测试路", "88号")  # given to one building of A1 when none has an address


@dataclass
class Site:
    base: str
    info: People
    a1_buildings: set[int]
    a1_residents: set[int]
    outside_buildings: set[int]
    outside_residents: set[int]
    outside_codes: set[str]
    address: str = ""
    address_building: int = 0
    centres: dict[int, tuple[float, float]] = field(default_factory=dict)


def _ids(conn, sql: str, **params) -> set[int]:
    return {r[0] for r in conn.execute(sa.text(sql), params)}


@pytest.fixture
def site(people) -> Iterator[Site]:  # noqa: F811
    url, info = people
    eng = db.create_engine(url, poolclass=sa.NullPool)
    with eng.begin() as conn:  # as the owner: the truth to compare the page against
        a1 = _ids(conn, "SELECT building_id FROM building_path WHERE grid_id = :g", g=info.grid_a1)
        everyone = _ids(conn, "SELECT id FROM building")
        residents = _ids(conn, "SELECT id FROM resident WHERE building_id = ANY(:b)", b=list(a1))
        outside_res = _ids(conn, "SELECT id FROM resident") - residents
        codes = {
            r[0]
            for r in conn.execute(
                sa.text("SELECT source_id FROM building WHERE NOT (id = ANY(:b))"), {"b": list(a1)}
            )
            if r[0]
        }
        row = conn.execute(
            sa.text(
                "SELECT id, addr_street || addr_housenumber FROM building WHERE id = ANY(:b) "
                "AND addr_street IS NOT NULL AND addr_housenumber IS NOT NULL "
                "AND address_keys IS NOT NULL AND id = ANY(:r) ORDER BY id LIMIT 1"
            ),
            {"b": list(a1), "r": info.buildings["a1"]},
        ).first()
        if row is None:  # give a building with residents an address of its own
            bid = info.buildings["a1"][1]
            conn.execute(
                sa.text(
                    "UPDATE building SET addr_street = :s, addr_housenumber = :n WHERE id = :b"
                ),
                {"s": ADDRESS[0], "n": ADDRESS[1], "b": bid},
            )
            refresh_address_keys(conn)
            row = (bid, "".join(ADDRESS))
        centres = {
            r.id: (r.lat, r.lon)
            for r in conn.execute(
                sa.text(
                    "SELECT id, ST_Y(p) AS lat, ST_X(p) AS lon FROM (SELECT id, "
                    "ST_PointOnSurface(geom) p FROM building WHERE id = ANY(:b)) x"
                ),
                {"b": info.buildings["a1"]},
            )
        }
    eng.dispose()
    with serve_app(url) as base:
        yield Site(
            base, info, a1, residents, everyone - a1, outside_res, codes, row[1], row[0], centres
        )


def _open(browser, site: Site, username: str, viewport=(1024, 768), **options) -> Visit:
    return open_page(browser, site.base, username, "/app/grid", viewport, **options)


def _walk(value, found: dict[str, set[int]], in_residents: bool = False) -> None:
    """Every building and resident id an answer names, whatever its shape."""
    if isinstance(value, list):
        for v in value:
            _walk(v, found, in_residents)
    elif isinstance(value, dict):
        for key in ("building_id", "parent_id"):
            if isinstance(value.get(key), int):
                found["buildings"].add(value[key])
        is_building = value.get("kind") == "building" or value.get("level") == "building"
        if is_building and isinstance(value.get("id"), int):
            found["buildings"].add(value["id"])
        if value.get("kind") == "resident" or (in_residents and "id_number" in value):
            found["residents"].add(value["id"])
        if isinstance(value.get("resident_id"), int):
            found["residents"].add(value["resident_id"])
        for k, v in value.items():
            _walk(v, found, in_residents or k == "items")


def _wire(visit: Visit) -> tuple[str, dict[str, set[int]], list[str]]:
    """The page's HTML, the ids named by every JSON answer, and those answers' URLs."""
    html, found, urls = "", {"buildings": set(), "residents": set()}, []
    for r in visit.responses:
        path = r.url.split("?")[0]
        if path.endswith("/app/grid") and r.status == 200:
            html += r.text()
        elif "/api/" in r.url and "json" in (r.headers.get("content-type") or ""):
            urls.append(r.url)
            _walk(json.loads(r.body()), found)
    return html, found, urls


def _drawn_buildings(page) -> list[int]:
    return page.evaluate(
        """() => { const map = Object.values(window).find(v => v instanceof L.Map);
        const ids = []; map.eachLayer(l => { if (l.feature && 'building_id' in
        l.feature.properties) ids.push(l.feature.properties.building_id); }); return ids; }"""
    )


def _assert_inside(site: Site, visit: Visit, buildings: set[int]) -> dict[str, set[int]]:
    html, found, _urls = _wire(visit)
    embedded = {int(x) for x in re.findall(r'"building_id":\s*(\d+)', html)}
    assert embedded and embedded <= buildings
    assert [c for c in site.outside_codes if f'"{c}"' in html] == []
    assert found["buildings"] <= buildings, found["buildings"] - buildings
    assert not (found["residents"] & site.outside_residents)
    assert found["residents"] <= site.a1_residents
    return found


def _tap_building(page, site: Site, building: int) -> None:
    x, y = zoom_to(page, *site.centres[building])
    page.touchscreen.tap(x, y)
    page.wait_for_selector("#ga-card .gd-residents", timeout=10000)


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(Path(ARTIFACTS) / name))


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=VIEWPORT_IDS)
def test_a_grid_worker_sees_only_their_grid(browser, site: Site, viewport) -> None:
    visit = _open(browser, site, "worker_a1", viewport)
    page = visit.page
    assert set(_drawn_buildings(page)) == site.a1_buildings
    # the map opened on the grid: every drawn building is in view
    inside = page.evaluate(
        """() => { const map = Object.values(window).find(v => v instanceof L.Map);
        const view = map.getBounds(); let all = true; map.eachLayer(l => {
        if (l.feature && 'building_id' in l.feature.properties)
          all = all && view.intersects(l.getBounds()); }); return all; }"""
    )
    assert inside
    # the furniture
    assert "OpenStreetMap contributors, ODbL" in page.inner_text(".leaflet-control-attribution")
    scale = page.inner_text(".leaflet-control-scale")
    assert ("m" in scale or "km" in scale) and "ft" not in scale and "mi" not in scale
    assert page.locator(".leaflet-control-scale-line").count() == 1
    assert page.locator(".leaflet-control-layers").count() == 1
    assert page.locator("#ga-legend").is_visible()
    assert page.inner_text("#ga-today h2") == "今日工作"  # today's work: on the patrol page
    assert page.locator("#ga-today a.gd-today-go").get_attribute("href") == "/app/patrol"
    for sel in (".leaflet-control-locate a", ".leaflet-control-layers-toggle", "#gd-go", "#gd-q",
                ".leaflet-control-zoom-in", ".gd-today-go"):  # fmt: skip
        box = page.locator(sel).first.bounding_box()
        assert box and box["width"] >= 44 and box["height"] >= 44, sel
    # tap a building: one card, no tooltip or popup over it
    building = site.info.buildings["a1"][0]
    _tap_building(page, site, building)
    card = page.locator("#ga-card")
    assert card.is_visible() and page.locator(".gd-card").count() == 1
    assert page.locator(".leaflet-tooltip, .leaflet-popup").count() == 0
    text = card.inner_text()
    assert "户" in text and page.locator("#ga-card .gd-path .gd-area").count() >= 4
    assert {"unit", "building_cluster", "residents_group", "grid"} <= set(
        page.eval_on_selector_all("#ga-card .gd-area", "ns => ns.map(n => n.dataset.level)")
    )
    assert page.locator("#ga-card .gd-room").count() >= 1
    ids = page.eval_on_selector_all("#ga-card .gd-id", "ns => ns.map(n => n.textContent)")
    assert ids and all("*" in i for i in ids)
    _shot(page, f"grid-worker-card-{viewport[0]}x{viewport[1]}.png")
    page.locator("#gd-card-close").tap()
    assert card.is_hidden()
    found = _assert_inside(site, visit, site.a1_buildings)
    assert found["residents"] and building in found["buildings"]  # the card's answers were read
    assert visit.outside == [] and visit.errors == []
    visit.context.close()


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=VIEWPORT_IDS)
def test_search_finds_an_address_of_the_grid(browser, site: Site, viewport) -> None:
    visit = _open(browser, site, "worker_a1", viewport)
    page = visit.page
    page.locator("#gd-q").fill(site.address)
    page.locator("#gd-go").tap()
    page.wait_for_selector(f'#gd-results .gd-hit[data-key="building:{site.address_building}"]')
    page.wait_for_selector(f'#ga-card[data-building-id="{site.address_building}"] .gd-residents')
    page.wait_for_timeout(800)  # the map's flight
    centre = page.evaluate(
        """() => { const map = Object.values(window).find(v => v instanceof L.Map);
        const c = map.getCenter(); return [c.lat, c.lng, map.getZoom()]; }"""
    )
    lat, lon = site.centres[site.address_building]
    assert abs(centre[0] - lat) < 0.002 and abs(centre[1] - lon) < 0.002 and centre[2] >= 17
    assert page.locator("#gd-results .leaflet-interactive").count() == 0  # list, not markers
    markers = page.evaluate(
        """() => { let n = 0; const map = Object.values(window).find(v => v instanceof L.Map);
        map.eachLayer(l => { if (l instanceof L.CircleMarker && !l.feature) n++; }); return n; }"""
    )
    assert markers >= 1
    _shot(page, f"grid-search-{viewport[0]}x{viewport[1]}.png")
    _assert_inside(site, visit, site.a1_buildings)
    assert visit.outside == [] and visit.errors == []
    visit.context.close()


def test_a_building_leader_sees_only_their_building(browser, site: Site) -> None:
    mine = site.info.buildings["a1"][0]
    lat, lon = site.centres[mine]
    visit = _open(
        browser,
        site,
        "leader_a1",
        (768, 1024),
        geolocation={"latitude": lat, "longitude": lon},
        permissions=["geolocation"],
    )
    page = visit.page
    page.evaluate("() => Object.values(window).find(v => v instanceof L.Map).setZoom(12)")
    page.locator(".leaflet-control-locate a").tap()  # locate me: the map flies to the tablet
    page.wait_for_function(
        "() => Object.values(window).find(v => v instanceof L.Map).getZoom() >= 17", timeout=8000
    )
    assert _drawn_buildings(page) == [mine]
    _tap_building(page, site, mine)
    ids = page.eval_on_selector_all("#ga-card .gd-id", "ns => ns.map(n => n.textContent)")
    assert ids and all("*" in i for i in ids)
    # an address of another building of the grid finds nothing for them
    page.locator("#gd-q").fill(site.address)
    page.locator("#gd-go").tap()
    page.wait_for_selector("#gd-results .gd-count")
    if site.address_building != mine:
        assert page.locator(f'.gd-hit[data-key="building:{site.address_building}"]').count() == 0
    _shot(page, "grid-leader-768x1024.png")
    _assert_inside(site, visit, {mine})
    assert visit.outside == [] and visit.errors == []
    visit.context.close()
