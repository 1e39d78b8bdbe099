"""离线 in Chromium with the service worker: the grid page and its building cards come back
on a reload without network, the tablet keeps only this user's answers, and logging out (or
another login on the tablet) leaves none of them behind."""

from __future__ import annotations

import re
import urllib.request
from urllib.error import HTTPError

import pytest
import sqlalchemy as sa

from gis import db
from tests.api.conftest import password, people, people_template  # noqa: F401
from tests.web.test_grid_page import Site, _drawn_buildings, _open, _shot, _tap_building, site

__all__ = ["people", "people_template", "site"]  # fixtures

CACHED = """async () => {
  const out = {};
  for (const name of await caches.keys()) {
    const cache = await caches.open(name);
    out[name] = (await cache.keys()).map(r => { const u = new URL(r.url);
      return u.pathname + u.search; });
  }
  return out; }"""
KEPT = "() => document.documentElement.dataset.gaOffline === 'kept'"  # offline.js: all read
CARD_ANSWERS = [
    re.compile(r"^/api/buildings/(\d+)/(?:path|dwellings)$"),
    re.compile(r"^/api/residents\?level=building&area_id=(\d+)&limit=500$"),
]
LEADERS = re.compile(r"^/api/leaders/(building|unit|building_cluster|residents_group)/(\d+)$")


def _areas(url: str, buildings: set[int]) -> dict[str, set[int]]:
    """The areas holding ``buildings`` whose leaders a card shows (truth from the owner)."""
    eng = db.create_engine(url, poolclass=sa.NullPool)
    with eng.begin() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT building_id, unit_id, building_cluster_id, residents_group_id "
                "FROM building_path WHERE building_id = ANY(:b)"
            ),
            {"b": list(buildings)},
        ).all()
    eng.dispose()
    levels = ("building", "unit", "building_cluster", "residents_group")
    return {lv: {r[i] for r in rows if r[i] is not None} for i, lv in enumerate(levels)}


def _wait_kept(page) -> None:
    page.wait_for_function(KEPT, timeout=90000)


def _check_cached(cached: dict[str, list[str]], buildings: set[int], areas) -> set[int]:
    """Every kept URL is one of ours for ``buildings``; return the buildings with answers."""
    assert cached and all(name.startswith("ga-") for name in cached), cached
    assert cached.get("ga-pages") == ["/app/grid"]
    assert all(u.startswith("/static/") for u in cached.get("ga-assets", []))
    assert set(cached.get("ga-meta", [])) <= {"/__ga/owner", "/__ga/kept-at"}
    assert set(cached) <= {"ga-pages", "ga-api", "ga-assets", "ga-meta"}
    answered: dict[int, int] = {}
    for url in cached.get("ga-api", []):
        hit = next((m for m in (p.match(url) for p in CARD_ANSWERS) if m), None)
        if hit:
            assert int(hit.group(1)) in buildings, url
            answered[int(hit.group(1))] = answered.get(int(hit.group(1)), 0) + 1
            continue
        lead = LEADERS.match(url)
        assert lead and int(lead.group(2)) in areas[lead.group(1)], url
    return {b for b, n in answered.items() if n == 3}


def test_the_worker_script_is_served_from_the_root(site: Site) -> None:
    with urllib.request.urlopen(f"{site.base}/sw.js") as r:
        assert r.headers["Content-Type"].startswith("application/javascript")
        assert r.headers["Service-Worker-Allowed"] == "/"
        assert "default-src 'self'" in r.headers["Content-Security-Policy"]
        assert "workbox.setConfig" in r.read().decode()
    with urllib.request.urlopen(f"{site.base}/static/vendor/workbox/workbox-core.prod.js") as r:
        assert r.headers["Content-Type"].startswith("application/javascript")
    for name in ("workbox-build", "..%2F..%2Fpackage", "leaflet"):
        with pytest.raises(HTTPError) as err:
            urllib.request.urlopen(f"{site.base}/static/vendor/workbox/{name}.prod.js")
        assert err.value.code == 404


@pytest.mark.parametrize("viewport", [(1024, 768), (768, 1024)], ids=["landscape", "portrait"])
def test_the_grid_and_its_cards_work_offline(browser, people, site: Site, viewport) -> None:  # noqa: F811
    visit = _open(browser, site, "worker_a1", viewport)
    page, context = visit.page, visit.context
    seen: list[tuple[str, bool]] = []  # every request, the page's and the worker's
    context.on("request", lambda r: seen.append((r.url, r.service_worker is not None)))
    size = f"{viewport[0]}x{viewport[1]}"
    assert page.locator("#ga-offline").is_hidden()  # online, from the network
    _wait_kept(page)
    assert page.evaluate("() => navigator.serviceWorker.controller !== null")
    areas = _areas(people[0], site.a1_buildings)
    answered = _check_cached(page.evaluate(CACHED), site.a1_buildings, areas)
    assert answered == site.a1_buildings  # every card of the grid, and nothing else

    context.set_offline(True)
    page.reload(wait_until="load")
    page.wait_for_function("() => window.GA && GA.offline")
    badge = page.locator("#ga-offline")
    assert badge.is_visible()
    text = badge.inner_text()
    assert text.startswith("离线") and "数据时间" in text and re.search(r"\d{1,2}:\d{2}", text)
    assert page.evaluate("() => GA.offline.fromCache") is True
    assert set(_drawn_buildings(page)) == site.a1_buildings
    building = site.info.buildings["a1"][0]
    _tap_building(page, site, building)
    card = page.locator("#ga-card")
    assert "户" in page.inner_text("#ga-card .gd-card-hh")
    assert page.locator("#ga-card .gd-path .gd-area").count() >= 4
    assert page.locator("#ga-card .gd-room").count() >= 1
    ids = page.eval_on_selector_all("#ga-card .gd-id", "ns => ns.map(n => n.textContent)")
    assert ids and all("*" in i for i in ids)
    assert card.locator(".gd-person").count() >= 1
    _shot(page, f"offline-grid-card-{size}.png")
    # the network is back: the page still says its data is the kept copy until reloaded
    context.set_offline(False)
    page.wait_for_timeout(200)
    assert badge.is_visible()

    page.locator("#ga-logout").tap()
    page.wait_for_url(f"{site.base}/login", timeout=15000)
    page.wait_for_load_state("load")
    assert [n for n in page.evaluate("() => caches.keys()") if n.startswith("ga-")] == []
    registrations = "async () => (await navigator.serviceWorker.getRegistrations()).length"
    assert page.evaluate(registrations) == 0
    _shot(page, f"offline-logged-out-{size}.png")
    # the worker's own requests are on the wire too, and none left this server
    assert any(worker for _url, worker in seen)
    assert all(url.startswith(site.base) for url, _worker in seen)
    assert visit.outside == [] and visit.errors == []  # not even an offline fetch failed
    context.close()


def test_another_login_on_the_tablet_sees_nothing_kept(browser, people, site: Site) -> None:  # noqa: F811
    visit = _open(browser, site, "worker_a1")
    page = visit.page
    _wait_kept(page)
    assert page.evaluate(CACHED)["ga-api"]
    # the next person logs in without the first having logged out
    page.goto(f"{site.base}/login?next=/app/grid", wait_until="load")
    page.locator("input[name=username]").fill("leader_a1")
    page.locator("input[name=password]").fill(password("leader_a1"))
    page.locator("button[type=submit]").tap()
    page.wait_for_url(f"{site.base}/app/grid", timeout=15000)
    _wait_kept(page)
    mine = {site.info.buildings["a1"][0]}
    assert set(_drawn_buildings(page)) == mine
    answered = _check_cached(page.evaluate(CACHED), mine, _areas(people[0], mine))
    assert answered == mine
    assert visit.outside == [] and visit.errors == []
    visit.context.close()
