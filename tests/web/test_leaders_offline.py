"""The leaders page from the tablet's cache, in Chromium with the service worker: it opens at
once from the kept copy (online, and offline too) and says so with the time of its data; the
levels other than the residents' groups are read after the first drawing; edits made from a
kept copy still meet the server's conflict check; and another login on the same tablet never
sees the previous user's kept page."""

from __future__ import annotations

import json
import re

import sqlalchemy as sa

from tests.api.conftest import people, people_template  # noqa: F401 (fixtures)
from tests.web.test_leaders_page import Tab, _current, _group, _name, site
from tests.web.test_offline import CACHED, KEPT

__all__ = ["people", "people_template", "site"]  # fixtures

PLURALS = ("residents_groups", "building_clusters", "units", "buildings")
LEVELS = ("residents_group", "building_cluster", "unit", "building")
# what the page had when leaders.js said it was ready (installed before any script)
FIRST_DRAWING = r"""
(() => {
  const seen = window.__first = {at: null, enabled: null, drawn: null};
  new MutationObserver(() => {
    if (seen.at !== null || !document.body || document.body.dataset.leadersReady !== "true") return;
    seen.at = performance.now();
    seen.enabled = [...document.querySelectorAll(".ga-level:not([disabled])")]
      .map((b) => b.dataset.level);
    const data = JSON.parse(document.getElementById("ga-leaders-data").textContent);
    const levels = new Set();
    window[data.map].eachLayer((l) => {
      if (l.feature && l.feature.properties.level) levels.add(l.feature.properties.level);
    });
    seen.drawn = [...levels];
  }).observe(document, {subtree: true, childList: true, attributes: true,
                        attributeFilter: ["data-leaders-ready"]});
})();
"""
AREA_READS = """() => performance.getEntriesByType("resource")
  .filter((e) => /^\\/api\\/(areas|layers\\/walk_edges)/.test(new URL(e.name).pathname))
  .map((e) => [new URL(e.name).pathname + new URL(e.name).search, e.startTime])"""
DRAWN = """(level) => {
  const data = JSON.parse(document.getElementById("ga-leaders-data").textContent);
  const ids = []; const holder = window[(data.layers || {})[level] || (data.holders || {})[level]];
  holder.eachLayer((l) => { if (l.feature) ids.push(l.feature.properties.id);
    else if (l.eachLayer) l.eachLayer((f) => ids.push(f.feature.properties.id)); });
  return ids.sort((a, b) => a - b); }"""
OWNER = """async () => { const r = await (await caches.open("ga-meta")).match("/__ga/owner");
  return r ? r.text() : null; }"""
# every leaders page this tablet showed: its community (kept across navigations)
SHOWN = r"""
document.addEventListener("DOMContentLoaded", () => {
  const node = document.getElementById("ga-leaders-data");
  if (!node) return;
  const shown = JSON.parse(localStorage.getItem("ga-test-shown") || "[]");
  shown.push(JSON.parse(node.textContent).community.id);
  localStorage.setItem("ga-test-shown", JSON.stringify(shown));
});
"""
BADGE_TIME = re.compile(r"数据时间 .*\d{1,2}:\d{2}")


def _community_of(html: str) -> int:
    found = re.search(r'id="ga-leaders-data">(.*?)</script>', html, re.S)
    assert found, html[:300]
    return int(json.loads(found.group(1))["community"]["id"])


def _kept(tab: Tab) -> dict[str, list[str]]:
    tab.page.wait_for_function(KEPT, timeout=60000)
    return tab.page.evaluate(CACHED)


def _area_urls(community: int) -> list[str]:
    return sorted(f"/api/areas/{p}?community_id={community}&limit=2000" for p in PLURALS)


def test_the_other_levels_arrive_after_the_first_drawing(browser, site) -> None:
    base, owner, info = site
    tab = Tab(browser, base, "staff_a", init=FIRST_DRAWING)
    page = tab.page
    first = page.evaluate("() => window.__first")
    assert first["enabled"] == ["residents_group"] and first["drawn"] == ["residents_group"]
    # the page itself carries the residents' groups only
    html = tab.context.request.get(f"{base}/app/leaders").text()
    assert '"level": "residents_group"' in html
    for level in LEVELS[1:]:
        assert f'"level": "{level}"' not in html, level
    tab.levels()
    reads = page.evaluate(AREA_READS)
    later = {f"/api/areas/{p}?community_id={info.community_a}&limit=2000" for p in PLURALS[1:]}
    assert later <= {url for url, _at in reads}
    assert any(url.startswith("/api/layers/walk_edges?bbox=") for url, _at in reads)
    assert all(at >= first["at"] for _url, at in reads), (first["at"], reads)
    assert page.locator(".leaflet-ga-streets-pane canvas").count() == 1  # the streets drawn
    # every level as the API gives it to this user, each one drawn in full
    for level, plural in zip(LEVELS, PLURALS, strict=True):
        answer = tab.context.request.get(
            f"{base}/api/areas/{plural}?community_id={info.community_a}&limit=2000"
        ).json()
        ids = sorted(f["properties"]["id"] for f in answer["features"])
        assert ids and page.evaluate(DRAWN, level) == ids, level
        with_households = sum(1 for f in answer["features"] if f["properties"]["households"])
        button = page.locator(f'.ga-level[data-level="{level}"]')
        assert button.is_enabled()
        assert sum(tab.counts(level)) == with_households, level
    # the groups holding a building of the staff's community, or a part of one (the floors
    # of a divided tower that are a unit of their own)
    with owner.connect() as conn:
        groups = conn.scalar(
            sa.text(
                "SELECT count(DISTINCT c.residents_group_id) FROM (SELECT b.unit_id FROM "
                "building b WHERE b.community_id = :c UNION SELECT p.unit_id FROM "
                "building_part p JOIN building b ON b.id = p.building_id "
                "WHERE b.community_id = :c) x JOIN unit u ON u.id = x.unit_id "
                "JOIN building_cluster c ON c.id = u.building_cluster_id"
            ),
            {"c": info.community_a},
        )
    assert len(page.evaluate(DRAWN, "residents_group")) == groups
    page.locator('.ga-level[data-level="building"]').tap()
    assert page.get_attribute('.ga-level[data-level="building"]', "aria-pressed") == "true"
    tab.shot("levels-later-landscape")
    tab.close()


def test_the_page_opens_from_the_tablets_cache_and_says_when_its_data_is_from(
    browser, site
) -> None:
    base, owner, info = site
    gid, lat, lon = _group(owner, info)
    tab = Tab(browser, base, "staff_a")
    page, context = tab.page, tab.context
    tab.levels()
    cached = _kept(tab)
    assert cached["ga-pages"] == ["/app/leaders"]
    areas = sorted(u for u in cached["ga-api"] if u.startswith("/api/areas/"))
    assert areas == _area_urls(info.community_a)
    assert any(u.startswith("/api/layers/walk_edges?bbox=") for u in cached["ga-api"])
    assert page.evaluate(OWNER) == str(info.users["staff_a"])
    vacant, filled = tab.counts()
    tab.tap_area(lat, lon)  # its seat is kept too (network first)
    assert "空缺" in page.inner_text("#ga-lead-current")

    # online: the kept copy at once, then read again from the server
    answer = page.reload(wait_until="commit")
    assert answer is not None and answer.from_service_worker
    tab.ready()
    assert page.evaluate("() => GA.offline.fromCache") is True
    assert page.locator('meta[name="ga-kept-at"]').count() == 1
    tab.levels()
    assert page.locator("#ga-offline").is_hidden()  # now current
    assert tab.counts() == (vacant, filled)

    # online, but the server does not answer the levels: the kept copy says it is one
    context.route("**/api/areas/**", lambda route: route.abort())
    page.reload(wait_until="commit")
    tab.ready()
    tab.levels(fresh=False)
    badge = page.locator("#ga-offline")
    assert badge.is_visible()
    text = badge.inner_text()
    assert text.startswith("缓存副本") and BADGE_TIME.search(text), text
    assert page.get_attribute("body", "data-leaders-fresh") == "false"
    tab.shot("kept-copy-landscape")
    context.unroute("**/api/areas/**")

    # no network at all: the same page, every level, the seat tapped before
    context.set_offline(True)
    page.reload(wait_until="load")
    tab.ready()
    tab.levels(fresh=False)
    text = badge.inner_text()
    assert badge.is_visible() and text.startswith("离线") and BADGE_TIME.search(text), text
    assert tab.counts() == (vacant, filled)
    assert page.locator(".leaflet-ga-streets-pane canvas").count() == 1
    page.locator('.ga-level[data-level="unit"]').tap()
    assert page.evaluate(DRAWN, "unit")
    page.locator('.ga-level[data-level="residents_group"]').tap()
    tab.tap_area(lat, lon)
    assert "空缺" in page.inner_text("#ga-lead-current")
    tab.shot("offline-landscape")
    context.set_offline(False)
    # offline, the candidates (never kept) could not be read: those failures only
    tab.close(expected=("ERR_INTERNET_DISCONNECTED",))


def test_an_edit_from_the_kept_copy_meets_the_conflict_check(browser, site) -> None:
    base, owner, info = site
    gid, lat, lon = _group(owner, info)
    tab = Tab(browser, base, "staff_a", (768, 1024))
    page = tab.page
    tab.levels()
    _kept(tab)
    page.reload(wait_until="commit")
    tab.ready()
    assert page.evaluate("() => GA.offline.fromCache") is True
    tab.tap_area(lat, lon)
    assert "空缺" in page.inner_text("#ga-lead-current")
    winner = info.residents["a1"][1]
    page.locator("#ga-lead-candidates button").first.wait_for(timeout=10000)
    # someone else names a leader meanwhile
    with owner.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO leader_assignment (level, area_id, resident_id, assigned_by, "
                "lives_inside) VALUES ('residents_group', :g, :r, :u, true)"
            ),
            {"g": gid, "r": winner, "u": info.users["staff_a"]},
        )
    other = f'#ga-lead-candidates button:not([data-resident-id="{winner}"])'
    page.locator(other).first.tap()
    page.locator("#ga-lead-save").tap()
    text = tab.wait_message("error")
    assert "该岗位已有现任" in text and _name(owner, winner) in text
    assert _current(owner, gid) == winner
    # the seat as it is now: a save replaces the winner's term
    page.wait_for_function(
        "(name) => document.getElementById('ga-lead-current').textContent.includes(name)",
        arg=_name(owner, winner),
    )
    chosen = page.locator(other).first
    chosen_id = int(chosen.get_attribute("data-resident-id"))
    chosen.tap()
    page.locator("#ga-lead-save").tap()
    assert "已保存" in tab.wait_message("ok")
    assert _current(owner, gid) == chosen_id
    tab.shot("kept-copy-conflict-portrait")
    tab.close(expected=("status of 409 (Conflict)",))


def test_another_login_never_sees_the_kept_page(browser, site) -> None:
    base, owner, info = site
    tab = Tab(browser, base, "staff_a", init=SHOWN)
    page = tab.page
    tab.levels()
    assert "/app/leaders" in _kept(tab)["ga-pages"]
    shown = '() => JSON.parse(localStorage.getItem("ga-test-shown") || "[]")'
    assert page.evaluate(shown) == [info.community_a]
    page.evaluate('() => localStorage.removeItem("ga-test-shown")')

    # the next person logs in without the first having logged out
    tab.login("staff_b")
    tab.ready()
    tab.levels()
    assert page.evaluate("() => GA.offline.fromCache") is False
    assert page.evaluate(shown) == [info.community_b]  # never the kept page of staff_a
    cached = _kept(tab)
    assert page.evaluate(OWNER) == str(info.users["staff_b"])
    areas = sorted(u for u in cached["ga-api"] if u.startswith("/api/areas/"))
    assert areas == _area_urls(info.community_b)
    assert all(f"community_id={info.community_a}" not in u for u in cached["ga-api"])
    # the copy kept now is staff_b's: a reload shows it at once
    answer = page.reload(wait_until="commit")
    tab.ready()
    assert answer is not None and answer.from_service_worker
    assert _community_of(answer.text()) == info.community_b

    # a role that may not open the page: refused, and nothing of it kept
    tab.login("worker_a1", "/app/grid")
    answer = page.goto(f"{base}/app/leaders", wait_until="load")
    assert answer is not None and answer.status == 403
    assert "ga-leaders-data" not in answer.text()
    page.wait_for_load_state("networkidle")
    cached = page.evaluate(CACHED)
    assert "/app/leaders" not in cached.get("ga-pages", [])
    assert all(not u.startswith("/api/areas/") for u in cached.get("ga-api", []))
    tab.close(expected=("status of 403 (Forbidden)",))
