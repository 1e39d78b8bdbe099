"""巡查 in Chromium: a worker's own area, tour and buildings by days; check-ins made offline
kept in IndexedDB and synced once however often the sync runs; a far GPS check-in refused
with the distance; staff assign a worker by tapping an area; the printable tour; and on
the wire, nothing of another worker's area."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from gis import db, security
from tests.api.conftest import People, password, people, people_template  # noqa: F401
from tests.conftest import PROJECT_ROOT, serve_app
from tests.web.helpers import Visit, follow, open_page
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


def _open(browser, site: Site, username: str, viewport=(1024, 768), **options) -> Visit:
    visit = open_page(browser, site.base, username, "/app/patrol", viewport, **options)
    visit.page.wait_for_selector('#pp-panel[data-ready="1"]', state="attached")
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
            # a scope's {"level", "area_id"} names an area of the hierarchy (a grid…), not
            # a patrol area
            if isinstance(v.get("area_id"), int) and "level" not in v:
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


# --- tablets, the logout's question, staff check-ins, the problem and visit cards ---------

TABLETS = [(1280, 800), (800, 1280)]
TABLET_IDS = ["tablet-landscape", "tablet-portrait"]
SAVED = re.compile(r"已保存：问题 #(\d+)（(\d+) 张照片）")


def _jpeg(tmp_path: Path, name: str = "stairwell.jpg") -> Path:
    """A real JPEG (a photo of a stairwell, as far as the server can tell)."""
    from PIL import Image

    path = tmp_path / name
    Image.new("RGB", (96, 64), (180, 120, 60)).save(path, "JPEG", quality=85)
    return path


def _notice(page, text: str, timeout: float = 20000) -> str:
    """Wait until the page's notice says ``text`` (a regex); return the notice."""
    page.wait_for_function(
        "(re) => new RegExp(re).test(document.getElementById('ga-notice').textContent)",
        arg=text,
        timeout=timeout,
    )
    return page.inner_text("#ga-notice")


def _offered(page) -> list[str]:
    """The status steps the problem card offers."""
    return page.eval_on_selector_all("#ga-card .pp-flow button", "ns => ns.map(n => n.dataset.to)")


def _big_enough(page, selectors) -> None:
    for sel in selectors:
        box = page.locator(sel).first.bounding_box()
        assert box and box["width"] >= 44 and box["height"] >= 44, sel


def _row(site: Site, sql: str, **params):
    eng = db.create_engine(site.url, poolclass=sa.NullPool)
    try:
        with eng.connect() as conn:
            return conn.execute(sa.text(sql), params).one()
    finally:
        eng.dispose()


def _waiting(page) -> int:
    return page.evaluate("async () => (await GAPatrol.waiting()).length")


def _queue_offline(page, site: Site, tmp_path: Path) -> tuple[int, int, int]:
    """Offline: a check-in, a problem with a photo and a visit, all kept on the tablet.
    Returns (checked-in building, problem's building, visited resident)."""
    page.wait_for_selector("#pp-visits li .pp-visit-open")  # the reminders, read online
    first, second = sorted(site.mine_buildings & set(site.centres))[:2]
    page.context.set_offline(True)
    _check_in_by_tap(page, site, first)
    page.wait_for_function("() => document.getElementById('pp-count').textContent === '1'")
    _tap(page, *site.centres[second])
    page.wait_for_selector(f'#ga-card[data-building-id="{second}"] #pp-report')
    page.locator("#pp-report").tap()
    page.locator("#pp-report-form textarea[name=description]").fill("楼道堆放杂物，堵塞通道")
    page.locator("#pp-report-form input[name=photos]").set_input_files(str(_jpeg(tmp_path)))
    page.locator("#pp-report-send").tap()
    page.wait_for_function("() => document.getElementById('pp-count').textContent === '2'")
    row = page.locator("#pp-visits li").first
    resident = int(row.get_attribute("data-resident-id"))
    row.locator(".pp-visit-open").tap()
    page.locator("#pp-visit-note").fill("独居老人，精神尚好")
    page.locator("#pp-visit-save").tap()
    page.wait_for_function("() => document.getElementById('pp-count').textContent === '3'")
    return first, second, resident


def _sent(site: Site, user: int) -> dict[str, int]:
    return {
        "checkins": _count(site, "SELECT count(*) FROM patrol_checkin WHERE user_id = :u", u=user),
        "problems": _count(site, "SELECT count(*) FROM problem WHERE reported_by = :u", u=user),
        "photos": _count(site, "SELECT count(*) FROM problem_photo ph JOIN problem p "
                               "ON p.id = ph.problem_id WHERE p.reported_by = :u", u=user),
        "visits": _count(site, "SELECT count(*) FROM visit WHERE user_id = :u", u=user),
    }  # fmt: skip


def test_logout_asks_before_unsent_records_go(browser, site: Site, tmp_path: Path) -> None:
    """Records made offline are not deleted by a logout unseen: the count is told, cancel
    keeps them, and from any page "send now" puts them in the database before logging out."""
    worker = site.info.users["worker_a1"]
    visit = _open(browser, site, "worker_a1", (1280, 800))
    page = visit.page
    first, second, resident = _queue_offline(page, site, tmp_path)
    page.locator("#ga-logout").tap()
    page.wait_for_selector("#ga-outbox")
    assert "本机有 3 条记录尚未上传" in page.inner_text("#ga-outbox-text")
    assert page.inner_text("#ga-outbox-detail") == "签到 1 条 · 走访 1 条 · 问题 1 条"
    assert page.locator("#ga-outbox-send").count() == 0  # offline: nothing to send with
    assert "现在离线" in page.inner_text("#ga-outbox")
    _big_enough(page, ["#ga-outbox-cancel", "#ga-outbox-discard"])
    _shot(page, "patrol-logout-offline-1280x800.png")
    page.locator("#ga-outbox-cancel").tap()
    assert page.locator("#ga-outbox").count() == 0
    assert page.url == f"{site.base}/app/patrol"  # still logged in, records kept
    assert _waiting(page) == 3 and page.inner_text("#pp-count") == "3"
    assert _sent(site, worker) == {"checkins": 0, "problems": 0, "photos": 0, "visits": 0}
    # the patrol page would send them itself once online: log out from another page
    page.close()
    visit.context.set_offline(False)
    grid = follow(visit, visit.context.new_page())
    grid.goto(f"{site.base}/app/grid", wait_until="networkidle")
    grid.locator("#ga-logout").tap()
    grid.wait_for_selector("#ga-outbox-send")
    assert "本机有 3 条记录尚未上传" in grid.inner_text("#ga-outbox-text")
    _big_enough(grid, ["#ga-outbox-send", "#ga-outbox-cancel", "#ga-outbox-discard"])
    _shot(grid, "patrol-logout-online-1280x800.png")
    grid.locator("#ga-outbox-send").tap()
    grid.wait_for_url(f"{site.base}/login", timeout=30000)
    assert _sent(site, worker) == {"checkins": 1, "problems": 1, "photos": 1, "visits": 1}
    assert _count(site, "SELECT count(*) FROM patrol_checkin WHERE building_id = :b "
                        "AND user_id = :u AND method = 'tap'", b=first, u=worker) == 1  # fmt: skip
    problem = _row(site, "SELECT building_id, description FROM problem WHERE reported_by = :u",
                   u=worker)  # fmt: skip
    assert tuple(problem) == (second, "楼道堆放杂物，堵塞通道")
    seen = _row(site, "SELECT resident_id, note_enc FROM visit WHERE user_id = :u", u=worker)
    assert seen.resident_id == resident
    assert "独居老人".encode() not in bytes(seen.note_enc)  # sealed at rest
    # logged out: the tablet keeps nothing of it
    grid.wait_for_function(
        "async () => !(await indexedDB.databases()).some(d => d.name === 'ga-patrol')"
    )
    assert visit.outside == [] and visit.errors == []
    visit.context.close()


def test_logout_discards_unsent_records_only_when_told_twice(
    browser, site: Site, tmp_path: Path
) -> None:
    worker = site.info.users["worker_a1"]
    visit = _open(browser, site, "worker_a1", (800, 1280))
    page = visit.page
    _queue_offline(page, site, tmp_path)
    page.close()
    visit.context.set_offline(False)
    grid = follow(visit, visit.context.new_page())
    grid.goto(f"{site.base}/app/grid", wait_until="networkidle")
    grid.locator("#ga-logout").tap()
    grid.wait_for_selector("#ga-outbox-discard")
    assert "放弃这 3 条记录并退出" in grid.inner_text("#ga-outbox-discard")
    grid.locator("#ga-outbox-cancel").tap()
    # the same question in English, after the language switch
    grid.locator("#ga-lang").tap()
    grid.wait_for_selector("html[lang=en]", state="attached")
    grid.wait_for_load_state("networkidle")
    grid.locator("#ga-logout").tap()
    grid.wait_for_selector("#ga-outbox-discard")
    assert "not yet sent to the server: 3" in grid.inner_text("#ga-outbox-text")
    assert grid.inner_text("#ga-outbox-discard") == "Discard the unsent records (3) and log out"
    grid.locator("#ga-outbox-discard").tap()
    assert "deleted for good" in grid.inner_text("#ga-outbox-text")  # a second, explicit step
    assert grid.url == f"{site.base}/app/grid"
    _big_enough(grid, ["#ga-outbox-discard-yes", "#ga-outbox-cancel"])
    _shot(grid, "patrol-logout-discard-800x1280.png")
    grid.locator("#ga-outbox-discard-yes").tap()
    grid.wait_for_url(f"{site.base}/login", timeout=30000)
    assert _sent(site, worker) == {"checkins": 0, "problems": 0, "photos": 0, "visits": 0}
    grid.wait_for_function(
        "async () => !(await indexedDB.databases()).some(d => d.name === 'ga-patrol')"
    )
    assert visit.outside == [] and visit.errors == []
    visit.context.close()


def test_staff_check_in_over_the_api_with_the_workers_gps_rules(site: Site) -> None:
    building = sorted(site.mine_buildings & set(site.centres))[0]
    lat, lon = site.centres[building]
    staff = _client(site.base, "staff_a")
    near = staff.post("/api/patrol/checkins", json={"building_id": building, "method": "gps",
                      "lon": lon, "lat": lat, "accuracy_m": 12})  # fmt: skip
    assert near.status_code == 201, near.text
    assert near.json()["distance_m"] == 0
    far = staff.post("/api/patrol/checkins", json={"building_id": building, "method": "gps",
                     "lon": lon + 0.01, "lat": lat, "accuracy_m": 12})  # fmt: skip
    assert far.status_code == 422 and far.json()["error"] == "InvalidInput"
    assert "m from the building" in far.json()["detail"]
    vague = staff.post("/api/patrol/checkins", json={"building_id": building, "method": "gps",
                       "lon": lon, "lat": lat, "accuracy_m": 150})  # fmt: skip
    assert vague.status_code == 422
    staff.close()
    assert _count(site, "SELECT count(*) FROM patrol_checkin WHERE user_id = :u",
                  u=site.info.users["staff_a"]) == 1  # fmt: skip


@pytest.mark.parametrize("viewport", TABLETS, ids=TABLET_IDS)
def test_staff_check_in_at_a_building_they_patrol(browser, site: Site, viewport) -> None:
    staff = site.info.users["staff_a"]
    building = sorted(site.mine_buildings & set(site.centres))[0]
    lat, lon = site.centres[building]
    visit = _open(
        browser, site, "staff_a", viewport,
        geolocation={"latitude": lat, "longitude": lon, "accuracy": 10},
        permissions=["geolocation"],
    )  # fmt: skip
    page = visit.page
    _big_enough(page, ["#pp-gps"])
    _tap(page, lat, lon)  # on the building: its card, not the area's
    page.wait_for_selector(f'#ga-card[data-building-id="{building}"] #pp-checkin-gps')
    _big_enough(page, ["#pp-checkin", "#pp-checkin-gps", "#pp-report"])
    page.locator("#pp-checkin-gps").tap()
    page.wait_for_function(
        "() => document.querySelector('#ga-card .pp-last').textContent === '今天已签到'",
        timeout=20000,
    )
    row = _row(site, "SELECT building_id, method, accuracy_m, distance_m FROM patrol_checkin "
                     "WHERE user_id = :u", u=staff)  # fmt: skip
    assert (row.building_id, row.method, row.accuracy_m) == (building, "gps", 10)
    assert row.distance_m <= 10 + 15
    # the same rule as a worker's: a position ~950 m away is refused with the distance
    visit.context.set_geolocation({"latitude": lat, "longitude": lon + 0.01, "accuracy": 10})
    page.locator("#pp-checkin-gps").tap()
    text = _notice(page, "您距该楼 \\d+ 米")
    assert 850 <= int(re.search(r"您距该楼 (\d+) 米", text).group(1)) <= 1000
    assert _count(site, "SELECT count(*) FROM patrol_checkin WHERE user_id = :u", u=staff) == 1
    assert page.inner_text("#pp-count") == "0"
    # beside the buildings, a tap is still the area's (assigning a worker)
    page.locator("#pp-card-close").tap()
    _tap(page, *site.other_point)
    page.wait_for_selector(f'#ga-card[data-area-id="{site.other}"] #pp-worker')
    _shot(page, f"patrol-staff-checkin-{viewport[0]}x{viewport[1]}.png")
    assert visit.outside == [] and visit.errors == []
    visit.context.close()


@pytest.mark.parametrize("viewport", TABLETS, ids=TABLET_IDS)
def test_a_problem_reported_with_a_photo_and_moved_along_its_flow(
    browser, site: Site, viewport, tmp_path: Path
) -> None:
    worker = site.info.users["worker_a1"]
    building = sorted(site.mine_buildings & set(site.centres))[0]
    visit = _open(browser, site, "worker_a1", viewport)
    page = visit.page
    _tap(page, *site.centres[building])
    page.wait_for_selector(f'#ga-card[data-building-id="{building}"] #pp-report')
    page.locator("#pp-report").tap()
    form = page.locator("#pp-report-form")
    form.locator("select[name=category]").select_option("ebike_charging")
    form.locator("select[name=handling]").select_option("time_limited")
    deadline = page.evaluate("() => new Date(Date.now() + 3 * 86400000).toISOString().slice(0, 10)")
    form.locator("input[name=deadline]").fill(deadline)
    form.locator("textarea[name=description]").fill("3号楼楼道内电动车充电")
    form.locator("input[name=photos]").set_input_files(str(_jpeg(tmp_path)))
    fields = ("select[name=category]", "input[name=photos]", "input[name=deadline]", "button")
    _big_enough(page, [f"#pp-report-form {c}" for c in fields])
    page.locator("#pp-report-send").tap()
    pid, photos = map(int, SAVED.search(_notice(page, SAVED.pattern)).groups())
    assert photos == 1
    # saved means in the database, photo included
    row = _row(site, "SELECT building_id, category, description, handling, status, "
                     "reported_by, to_char(deadline AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD') "
                     "AS day FROM problem WHERE id = :p", p=pid)  # fmt: skip
    assert tuple(row) == (building, "ebike_charging", "3号楼楼道内电动车充电", "time_limited",
                          "reported", worker, deadline)  # fmt: skip
    assert _count(site, "SELECT count(*) FROM problem_photo WHERE problem_id = :p", p=pid) == 1
    # its card: the photo (served to the reporter), and the one step the flow allows
    page.wait_for_selector(f'#ga-card[data-problem-id="{pid}"] .pp-flow')
    page.wait_for_function("() => { const i = document.querySelector('#ga-card img.pp-thumb');"
                           " return i && i.complete && i.naturalWidth === 96; }")  # fmt: skip
    assert "已上报" in page.inner_text("#pp-problem-status")
    assert _offered(page) == ["accepted"]
    _big_enough(page, ["#ga-card .pp-flow button", "#pp-status-note"])
    page.locator('#ga-card .pp-flow button[data-to="accepted"]').tap()
    _notice(page, f"已保存：问题 #{pid} 现为“已受理”")
    assert _count(site, "SELECT count(*) FROM problem WHERE id = :p AND status = 'accepted'",
                  p=pid) == 1  # fmt: skip
    assert _offered(page) == ["in_progress", "resolved"]
    page.locator("#pp-status-note").fill("已通知物业")
    page.locator('#ga-card .pp-flow button[data-to="resolved"]').tap()
    _notice(page, f"已保存：问题 #{pid} 现为“已办结（待核验）”")
    done = _row(site, "SELECT status, resolved_by FROM problem WHERE id = :p", p=pid)
    assert tuple(done) == ("resolved", worker)
    assert _row(site, "SELECT note FROM problem_event WHERE problem_id = :p AND to_status = "
                      "'resolved'", p=pid).note == "已通知物业"  # fmt: skip
    # whoever resolved it does not verify it: not offered, and the card says why
    assert _offered(page) == ["in_progress"]
    assert "须由其他同事核验" in page.inner_text("#ga-card .pp-verify-own")
    # meanwhile a colleague verifies it: the card's "back to handling" is now forbidden
    staff = _client(site.base, "staff_a")
    r = staff.post(f"/api/problems/{pid}/status", json={"to": "verified"})
    staff.close()
    assert r.status_code == 200, r.text
    page.locator('#ga-card .pp-flow button[data-to="in_progress"]').tap()
    text = _notice(page, f"未保存：问题 #{pid} 现为“已核验”")
    assert "不能改为“处理中”" in text and not re.search("[A-Za-z]", text)  # Chinese only
    assert _count(site, "SELECT count(*) FROM problem WHERE id = :p AND status = 'verified'",
                  p=pid) == 1  # fmt: skip
    assert _offered(page) == ["closed"]  # the card now offers what the flow allows now
    page.locator('#ga-card .pp-flow button[data-to="closed"]').tap()
    _notice(page, f"已保存：问题 #{pid} 现为“已销号”")
    assert _count(site, "SELECT count(*) FROM problem WHERE id = :p AND status = 'closed'",
                  p=pid) == 1  # fmt: skip
    assert _offered(page) == [] and "此问题已销号" in page.inner_text("#ga-card")
    assert pid not in page.evaluate(DRAWN)["problems"]  # crossed off: off the map
    _shot(page, f"patrol-problem-closed-{viewport[0]}x{viewport[1]}.png")
    # the one refusal asked for, which Chromium logs as a failed load; nothing else
    refusals = [e for e in visit.errors if "status of 409 (Conflict)" in e]
    assert len(refusals) == 1 and len(visit.errors) == 1, visit.errors
    assert visit.outside == []
    visit.context.close()


def test_a_visit_is_logged_from_its_card_with_a_note(browser, site: Site) -> None:
    worker = site.info.users["worker_a1"]
    visit = _open(browser, site, "worker_a1", (800, 1280))
    page = visit.page
    page.wait_for_selector("#pp-visits li .pp-visit-open")
    row = page.locator("#pp-visits li").first
    resident = int(row.get_attribute("data-resident-id"))
    category = row.get_attribute("data-category")
    _big_enough(page, ["#pp-visits li .pp-visit-open"])
    row.locator(".pp-visit-open").tap()
    page.wait_for_selector(f'#ga-card[data-resident-id="{resident}"] #pp-visit-note')
    name = page.inner_text("#ga-card h2").removeprefix("走访：")
    page.locator("#pp-visit-note").fill("独居，血压正常，下周再来")
    _big_enough(page, ["#pp-visit-save", "#pp-card-close"])
    _shot(page, "patrol-visit-card-800x1280.png")
    page.locator("#pp-visit-save").tap()
    _notice(page, f"已保存走访：{re.escape(name)}")
    seen = _row(site, "SELECT count(*) AS n, min(category) AS category, bool_and(note_enc "
                      "IS NOT NULL) AS sealed FROM visit WHERE resident_id = :r AND user_id = :u",
                r=resident, u=worker)  # fmt: skip
    assert tuple(seen) == (1, category, True)
    worker_api = _client(site.base, "worker_a1")
    notes = worker_api.get("/api/visits", params={"resident_id": resident}).json()
    worker_api.close()
    assert [n["note"] for n in notes] == ["独居，血压正常，下周再来"]
    assert "今天已走访" in page.inner_text(
        f'#pp-visits li[data-resident-id="{resident}"][data-category="{category}"]'
    )
    assert page.inner_text("#pp-count") == "0"
    assert visit.outside == [] and visit.errors == []
    visit.context.close()
