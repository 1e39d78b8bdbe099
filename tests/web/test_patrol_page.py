"""巡查 in Chromium: a worker's own area, tour and buildings by days; check-ins made offline
kept in IndexedDB and synced once however often the sync runs; a far GPS check-in refused
with the distance; staff assign a worker by tapping an area; the printable tour; and on
the wire, nothing of another worker's area."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from gis import db, security
from tests.api.conftest import People, password, people, people_template  # noqa: F401
from tests.conftest import PROJECT_ROOT, serve_app
from tests.web.test_map_page import zoom_to

ARTIFACTS = PROJECT_ROOT / "tests" / "artifacts"
VIEWPORTS = [(1024, 768), (768, 1024)]
VIEWPORT_IDS = ["landscape", "portrait"]
SECOND = "worker_a1b"  # a second grid worker of A1, who walks the other area


@dataclass
class Site:
    base: str
    url: str
    info: People
    mine: int  # worker_a1's area
    other: int  # the other area of grid A1 (vacant until a test assigns it)
    other_code: str
    mine_buildings: set[int]
    other_buildings: set[int]
    centres: dict[int, tuple[float, float]]
    other_point: tuple[float, float]  # inside the other area, on no building
    second_id: int


def _client(base: str, username: str) -> httpx.Client:
    c = httpx.Client(base_url=base, timeout=60)
    r = c.post("/api/auth/login", json={"username": username, "password": password(username)})
    assert r.status_code == 200, r.text
    c.headers["Authorization"] = f"Bearer {r.json()['token']}"
    return c


def _ids(conn, sql: str, **params) -> set[int]:
    return {r[0] for r in conn.execute(sa.text(sql), params)}


@pytest.fixture
def site(people) -> Iterator[Site]:  # noqa: F811
    url, info = people
    eng = db.create_engine(url, poolclass=sa.NullPool)
    with eng.begin() as conn:  # a second worker of grid A1 (users are made by admins)
        second = conn.scalar(
            sa.text(
                "INSERT INTO app_user (username, role, password_hash, full_name) "
                "VALUES (:u, 'grid_worker', :p, :u) RETURNING id"
            ),
            {"u": SECOND, "p": security.hash_password(password(SECOND))},
        )
        conn.execute(
            sa.text("INSERT INTO app_user_scope VALUES (:u, 'grid', :g)"),
            {"u": second, "g": info.grid_a1},
        )
    with serve_app(url) as base:
        staff = _client(base, "staff_a")
        drawn = staff.post(f"/api/patrol/grids/{info.grid_a1}/areas", params={"workers": 2})
        assert drawn.status_code == 201, drawn.text
        areas = drawn.json()
        with eng.connect() as conn:
            members = {
                a["id"]: _ids(
                    conn,
                    "SELECT building_id FROM patrol_area_building WHERE area_id = :a",
                    a=a["id"],
                )  # fmt: skip
                for a in areas
            }
        # worker_a1 walks the area holding the buildings with residents
        mine = next(a["id"] for a in areas if info.buildings["a1"][0] in members[a["id"]])
        other = next(a for a in areas if a["id"] != mine)
        r = staff.put(f"/api/patrol/areas/{mine}/worker", json={"user_id": info.users["worker_a1"]})
        assert r.status_code == 200, r.text
        staff.close()
        with eng.connect() as conn:
            centres = {
                r.id: (r.lat, r.lon)
                for r in conn.execute(
                    sa.text(
                        "SELECT id, ST_Y(p) AS lat, ST_X(p) AS lon FROM (SELECT id, "
                        "ST_PointOnSurface(geom) p FROM building WHERE id = ANY(:b)) x"
                    ),
                    {"b": list(members[mine] | members[other["id"]])},
                )
            }
            pt = conn.execute(
                sa.text(
                    "SELECT ST_Y(p), ST_X(p) FROM (SELECT ST_PointOnSurface(ST_Difference("
                    "a.geom, (SELECT ST_Buffer(ST_Union(b.geom), 0.00004) FROM building b "
                    "WHERE b.geom && a.geom))) p FROM patrol_area a WHERE a.id = :a) q"
                ),
                {"a": other["id"]},
            ).one()
        yield Site(
            base, url, info, mine, other["id"], other["code"], members[mine],
            members[other["id"]], centres, (pt[0], pt[1]), int(second),
        )  # fmt: skip
    eng.dispose()


@dataclass
class Visit:
    context: object
    page: object
    responses: list = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _open(browser, site: Site, username: str, viewport=(1024, 768), **options) -> Visit:
    context = browser.new_context(
        **options,
        viewport={"width": viewport[0], "height": viewport[1]},
        has_touch=True,
        is_mobile=True,
        locale="zh-CN",
    )
    visit = Visit(context, context.new_page())
    page = visit.page

    def guard(route) -> None:
        if route.request.url.startswith(("http://127.0.0.1", "data:", "blob:")):
            route.continue_()
        else:
            visit.outside.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page.on("response", lambda r: visit.responses.append(r))
    page.on("console", lambda m: visit.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: visit.errors.append(str(e)))
    page.goto(f"{site.base}/login?next=/app/patrol", wait_until="networkidle")
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(password(username))
    page.locator("button[type=submit]").tap()
    page.wait_for_url(f"{site.base}/app/patrol", timeout=15000)
    page.wait_for_load_state("networkidle")
    start = max(i for i, r in enumerate(visit.responses) if r.url.endswith("/app/patrol"))
    del visit.responses[:start]
    return visit


DRAWN = """() => { const map = Object.values(window).find(v => v instanceof L.Map);
  const out = {buildings: [], areas: [], problems: [], seq: [], bands: {}};
  map.eachLayer(l => { const p = l.feature && l.feature.properties; if (!p) return;
    if ('problem_id' in p) out.problems.push(p.problem_id);
    else if ('building_id' in p) { out.buildings.push(p.building_id);
      out.bands[p.band] = (out.bands[p.band] || 0) + 1; }
    else if ('area_id' in p) out.areas.push(p.area_id); });
  document.querySelectorAll('.pp-seq').forEach(n => out.seq.push(n.textContent));
  return out; }"""


def _area_ids_on_wire(visit: Visit) -> set[int]:
    """Every patrol-area id the page's HTML and JSON answers name."""
    found: set[int] = set()

    def walk(v) -> None:
        if isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, dict):
            if isinstance(v.get("area_id"), int):
                found.add(v["area_id"])
            for x in v.values():
                walk(x)

    for r in visit.responses:
        if r.url.split("?")[0].endswith("/app/patrol") and r.status == 200:
            found |= {int(x) for x in re.findall(r'"area_id":\s*(\d+)', r.text())}
            found |= {int(x) for x in re.findall(r'data-areas="([\d,]*)"', r.text())[0].split(",")
                      if x}  # fmt: skip
        elif "/api/" in r.url and "json" in (r.headers.get("content-type") or ""):
            walk(json.loads(r.body()))
    return found


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(Path(ARTIFACTS) / name))


def _count(site: Site, sql: str, **params) -> int:
    eng = db.create_engine(site.url, poolclass=sa.NullPool)
    try:
        with eng.connect() as conn:  # as the owner: the truth
            return int(conn.scalar(sa.text(sql), params))
    finally:
        eng.dispose()


def _tap(page, lat: float, lon: float) -> None:
    x, y = zoom_to(page, lat, lon)
    page.touchscreen.tap(x, y)


def _check_in_by_tap(page, site: Site, building: int) -> None:
    _tap(page, *site.centres[building])
    page.wait_for_selector(f'#ga-card[data-building-id="{building}"] #pp-checkin')
    page.locator("#pp-checkin").tap()


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=VIEWPORT_IDS)
def test_a_worker_sees_their_area_its_route_and_days(browser, site: Site, viewport) -> None:
    visit = _open(browser, site, "worker_a1", viewport)
    page = visit.page
    page.wait_for_selector("#pp-route .pp-route-summary", timeout=30000)
    drawn = page.evaluate(DRAWN)
    assert set(drawn["buildings"]) == site.mine_buildings
    assert drawn["areas"] == [site.mine]
    assert drawn["bands"] == {"never": len(site.mine_buildings)}  # nobody checked in yet
    # the tour: a stop number on every reachable building of the area, in order, from 0
    stops = [int(s) for s in drawn["seq"]]
    assert stops[0] == 0 and sorted(stops[1:]) == list(range(1, len(stops)))
    assert len(stops) - 1 >= len(site.mine_buildings) - 2
    assert "米" in page.inner_text("#pp-route .pp-route-summary")
    # the furniture
    assert "OpenStreetMap contributors, ODbL" in page.inner_text(".leaflet-control-attribution")
    scale = page.inner_text(".leaflet-control-scale")
    assert ("m" in scale or "km" in scale) and "ft" not in scale and "mi" not in scale
    assert page.locator(".leaflet-control-layers").count() == 1
    assert page.locator("#ga-legend").is_visible()
    assert "从未签到" in page.inner_text("#ga-legend")
    page.wait_for_selector("#pp-reminders h3")  # today's reminders: unseen buildings at least
    assert "未巡查" in page.inner_text("#pp-reminders")
    for sel in (".leaflet-control-locate a", ".leaflet-control-layers-toggle", "#pp-gps",
                ".leaflet-control-zoom-in", "#pp-route .pp-print-link"):  # fmt: skip
        box = page.locator(sel).first.bounding_box()
        assert box and box["width"] >= 44 and box["height"] >= 44, sel
    # a tap opens one card, no tooltip or popup over it
    building = site.info.buildings["a1"][0]
    _tap(page, *site.centres[building])
    page.wait_for_selector(f'#ga-card[data-building-id="{building}"]')
    assert page.locator(".pp-card").count() == 1
    assert page.locator(".leaflet-tooltip, .leaflet-popup").count() == 0
    for sel in ("#pp-checkin", "#pp-checkin-gps", "#pp-report", "#pp-card-close"):
        box = page.locator(sel).bounding_box()
        assert box and box["width"] >= 44 and box["height"] >= 44, sel
    _shot(page, f"patrol-worker-{viewport[0]}x{viewport[1]}.png")
    # the other area is nowhere on the wire, nor its code in the page
    assert site.other not in _area_ids_on_wire(visit)
    assert site.mine in _area_ids_on_wire(visit)
    html = "".join(r.text() for r in visit.responses if r.url.endswith("/app/patrol"))
    assert site.other_code not in html
    assert not ({int(x) for x in re.findall(r'"building_id":\s*(\d+)', html)}
                & site.other_buildings)  # fmt: skip
    assert visit.outside == [] and visit.errors == []
    visit.context.close()


def test_offline_check_ins_wait_then_sync_once(browser, site: Site) -> None:
    visit = _open(browser, site, "worker_a1", (1024, 768))
    page = visit.page
    first, second = sorted(site.mine_buildings & set(site.centres))[:2]
    visit.context.set_offline(True)
    _check_in_by_tap(page, site, first)
    page.wait_for_function("() => document.getElementById('pp-count').textContent === '1'")
    page.locator("#pp-card-close").tap()
    _check_in_by_tap(page, site, second)
    page.wait_for_function("() => document.getElementById('pp-count').textContent === '2'")
    assert page.locator("#pp-waiting li").count() == 2
    assert "2 条记录待上传" in page.inner_text("#pp-queue")
    _shot(page, "patrol-offline-waiting-1024x768.png")
    assert _count(site, "SELECT count(*) FROM patrol_checkin") == 0
    kept = page.evaluate("() => GAPatrol.waiting()")
    assert len({k["key"] for k in kept}) == 2 and all(len(k["key"]) >= 32 for k in kept)
    visit.context.set_offline(False)  # the online event sends them
    page.wait_for_function(
        "() => document.getElementById('pp-count').textContent === '0'", timeout=15000
    )
    assert _count(site, "SELECT count(*) FROM patrol_checkin") == 2
    assert _count(site, "SELECT count(DISTINCT building_id) FROM patrol_checkin "
                        "WHERE building_id = ANY(:b) AND method = 'tap' AND user_id = :u",
                  b=[first, second], u=site.info.users["worker_a1"]) == 2  # fmt: skip
    # the answers were lost, say: the same records are sent again, three times
    page.evaluate("async (items) => { for (const i of items) await GAPatrol.put(i); }", kept)
    page.evaluate("async () => { await GAPatrol.sync(); await GAPatrol.sync(); "
                  "await GAPatrol.sync(); }")  # fmt: skip
    page.wait_for_function("() => document.getElementById('pp-count').textContent === '0'")
    assert _count(site, "SELECT count(*) FROM patrol_checkin") == 2
    page.reload(wait_until="networkidle")
    page.evaluate("() => GAPatrol.sync()")
    assert _count(site, "SELECT count(*) FROM patrol_checkin") == 2
    bands = page.evaluate(DRAWN)["bands"]
    assert bands.get("today") == 2  # checked in today: the first band's colour
    _shot(page, "patrol-synced-1024x768.png")
    assert visit.outside == [] and visit.errors == []
    visit.context.close()


def test_a_far_gps_check_in_is_refused_with_the_distance(browser, site: Site) -> None:
    building = site.info.buildings["a1"][0]
    lat, lon = site.centres[building]
    visit = _open(
        browser, site, "worker_a1", (768, 1024),
        geolocation={"latitude": lat, "longitude": lon + 0.01, "accuracy": 20},  # ~950 m east
        permissions=["geolocation"],
    )  # fmt: skip
    page = visit.page
    _tap(page, lat, lon)
    page.wait_for_selector(f'#ga-card[data-building-id="{building}"] #pp-checkin-gps')
    page.locator("#pp-checkin-gps").tap()
    page.wait_for_function(
        "() => document.getElementById('ga-notice').textContent.includes('您距该楼')",
        timeout=20000,
    )
    text = page.inner_text("#ga-notice")
    metres = int(re.search(r"您距该楼 (\d+) 米", text).group(1))
    assert 850 <= metres <= 1000 and "±20 米" in text
    assert page.inner_text("#pp-count") == "0"  # refused: not kept to send again
    assert _count(site, "SELECT count(*) FROM patrol_checkin") == 0
    _shot(page, "patrol-far-gps-768x1024.png")
    assert visit.outside == [] and visit.errors == []
    visit.context.close()


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=VIEWPORT_IDS)
def test_staff_assign_a_worker_by_tapping_an_area(browser, site: Site, viewport) -> None:
    visit = _open(browser, site, "staff_a", viewport)
    page = visit.page
    drawn = page.evaluate(DRAWN)
    assert {site.mine, site.other} <= set(drawn["areas"])
    assert "空缺 1 个" in page.inner_text("#pp-stats")
    _tap(page, *site.other_point)
    page.wait_for_selector(f'#ga-card[data-area-id="{site.other}"] #pp-worker')
    assert "空缺" in page.inner_text("#ga-card .pp-who")
    page.wait_for_selector(f'#pp-worker option[value="{site.second_id}"]', state="attached")
    page.locator("#pp-worker").select_option(str(site.second_id))
    page.locator("#pp-save-worker").tap()
    page.wait_for_function(
        "() => document.querySelector('#ga-card .pp-who').textContent.includes('worker_a1b')"
    )
    assert "已将" in page.inner_text("#ga-notice")
    assert _count(site, "SELECT user_id FROM patrol_assignment WHERE area_id = :a "
                        "AND ends_at IS NULL", a=site.other) == site.second_id  # fmt: skip
    colour = page.evaluate(
        """(id) => { const map = Object.values(window).find(v => v instanceof L.Map);
        let c = null; map.eachLayer(l => { const p = l.feature && l.feature.properties;
        if (p && p.area_id === id && !('building_id' in p)) c = l.options.color; });
        return c; }""",
        site.other,
    )
    assert colour and colour != "#9e9e9e"  # no longer vacant grey
    for sel in ("#pp-worker", "#pp-save-worker", "#pp-route-show", "#ga-card .pp-print-link"):
        box = page.locator(sel).bounding_box()
        assert box and box["height"] >= 44, sel
    _shot(page, f"patrol-staff-assign-{viewport[0]}x{viewport[1]}.png")
    assert visit.outside == [] and visit.errors == []
    visit.context.close()


def test_the_route_prints_as_a_numbered_list_for_its_worker_only(browser, site: Site) -> None:
    visit = _open(browser, site, "worker_a1", (768, 1024))
    page = visit.page
    page.goto(f"{site.base}/app/patrol/route?area={site.mine}", wait_until="networkidle")
    seqs = page.eval_on_selector_all(
        "#pp-stops tbody td:first-child", "ns => ns.map(n => +n.textContent)"
    )
    assert seqs == list(range(len(seqs))) and len(seqs) >= 2
    rows = page.eval_on_selector_all(
        "#pp-stops tbody tr[data-building-id]", "ns => ns.map(n => +n.dataset.buildingId)"
    )
    assert set(rows) <= site.mine_buildings and len(set(rows)) == len(rows)
    box = page.locator("#pp-print").bounding_box()
    assert box and box["height"] >= 44
    page.emulate_media(media="print")
    assert page.locator(".ga-shell").is_hidden() and page.locator("#pp-print").is_hidden()
    _shot(page, "patrol-route-print-768x1024.png")
    page.emulate_media(media="screen")
    other = page.goto(f"{site.base}/app/patrol/route?area={site.other}")
    assert other.status == 404 and site.other_code not in page.content()
    assert visit.outside == []
    visit.context.close()
