"""Divided buildings on the maps, in Chromium: a tower divided by floors among groups is
drawn striped (an SVG pattern fill) on /map/groups and on the leaders page, and its card
lists which floors belong to which group — the figures read from building_part here."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa

from gis import security
from gis.delineate.service import run
from gis.io.load import NUMBER_DOORS
from gis.io.pipeline import import_file
from tests.api.conftest import password
from tests.conftest import NANJING, serve_app
from tests.web.helpers import open_page, watch

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"  # screenshots to look at
STAFF = "hatch_staff"
PARTS = """
    SELECT p.floor_min, p.floor_max, p.entrance, p.households, u.code AS unit, g.code AS grp
      FROM building_part p JOIN unit u ON u.id = p.unit_id
      JOIN building_cluster c ON c.id = u.building_cluster_id
      JOIN residents_group g ON g.id = c.residents_group_id
     WHERE p.building_id = :b ORDER BY p.part_no
"""


@dataclass
class Site:
    base: str = ""
    building: int = 0
    community: str = ""
    centre: tuple[float, float] = (0.0, 0.0)
    parts: list = field(default_factory=list)


LARGEST_DIVIDED = (
    "SELECT b.id FROM building b WHERE b.id IN (SELECT building_id FROM "
    "building_part) ORDER BY b.households DESC, b.id LIMIT 1"
)


def _add_doors(engine, doors: int) -> None:
    """Map ``doors`` stairwell doors (OSM entrance=staircase) on the largest tower."""
    with engine.begin() as conn:  # not divided yet: the largest building, which will be
        b = conn.scalar(sa.text("SELECT id FROM building ORDER BY households DESC, id LIMIT 1"))
        conn.execute(
            sa.text(
                "INSERT INTO building_entrance (building_id, source_id, kind, rank, geom) "
                "SELECT :b, 'n-door-' || i, 'staircase', 2, ST_LineInterpolatePoint("
                "ST_ExteriorRing(ST_GeometryN(geom, 1)), (i + 0.5) / :n) FROM building, "
                "generate_series(0, :n - 1) i WHERE id = :b"
            ),
            {"b": b, "n": doors},
        )
        sf = conn.scalar(sa.text("SELECT source_file FROM building WHERE id = :b"), {"b": b})
        conn.execute(NUMBER_DOORS, {"sf": sf})


@pytest.fixture
def site(engine, db_url) -> Iterator[Site]:
    yield from _site(engine, db_url)


@pytest.fixture
def door_site(engine, db_url) -> Iterator[Site]:
    yield from _site(engine, db_url, doors=4)


def _site(engine, db_url, doors: int = 0) -> Iterator[Site]:
    import_file(engine, NANJING)
    if doors:
        _add_doors(engine, doors)
    run(engine)
    s = Site()
    with engine.begin() as conn:
        # the largest divided building: its parts lie in two groups or more
        s.building = int(conn.scalar(sa.text(LARGEST_DIVIDED)))
        community_id, s.community = conn.execute(
            sa.text(
                "SELECT cm.id, cm.code FROM building b JOIN community cm "
                "ON cm.id = b.community_id WHERE b.id = :b"
            ),
            {"b": s.building},
        ).one()
        s.parts = conn.execute(sa.text(PARTS), {"b": s.building}).all()
        lon, lat = conn.execute(
            sa.text(
                "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM building "
                "WHERE id = :b) x"
            ),
            {"b": s.building},
        ).one()
        s.centre = (lat, lon)
        uid = conn.scalar(
            sa.text(
                "INSERT INTO app_user (username, role, password_hash, full_name) "
                "VALUES (:u, 'committee_staff', :p, :u) RETURNING id"
            ),
            {"u": STAFF, "p": security.hash_password(password(STAFF))},
        )
        conn.execute(
            sa.text("INSERT INTO app_user_scope VALUES (:u, 'community', :c)"),
            {"u": uid, "c": community_id},
        )
    assert len({p.grp for p in s.parts}) >= 2
    with serve_app(db_url) as base:
        s.base = base
        yield s


# The fill of one feature's path (the SVG attribute Leaflet wrote), and whether the pattern
# it names is in the document with its stripes.
FILL = """([id, key]) => { const map = Object.values(window).find(v => v instanceof L.Map);
  let out = null;
  map.eachLayer(l => { const p = l.feature && l.feature.properties;
    if (p && p.id === id && key in p && l._path) out = l._path.getAttribute('fill'); });
  if (!out) return null;
  const m = /^url\\(#([\\w-]+)\\)$/.exec(out);
  const pattern = m && document.getElementById(m[1]);
  return [out, pattern ? pattern.tagName : null,
          pattern ? pattern.querySelectorAll('rect').length : 0]; }"""


def _tap(page, lat: float, lon: float, zoom: int = 19) -> None:
    x, y = page.evaluate(
        """([lat, lon, z]) => { const map = Object.values(window).find(v => v instanceof L.Map);
        map.setView([lat, lon], z, {animate: false});
        const p = map.latLngToContainerPoint([lat, lon]);
        const r = map.getContainer().getBoundingClientRect();
        return [p.x + r.left, p.y + r.top]; }""",
        [lat, lon, zoom],
    )
    page.touchscreen.tap(x, y)


def test_the_groups_map_stripes_a_divided_building(browser, site: Site) -> None:
    visit = open_page(browser, site.base, STAFF, f"/map/groups?community={site.community}")
    page = visit.page
    fill, tag, stripes = page.evaluate(FILL, [site.building, "unit_id"])
    assert fill == "url(#ga-floors)" and tag == "pattern" and stripes == 2
    # a whole building of the same map keeps its plain fill
    plain = page.evaluate(
        """() => { const map = Object.values(window).find(v => v instanceof L.Map);
        const fills = new Set();
        map.eachLayer(l => { const p = l.feature && l.feature.properties;
          if (p && 'unit_id' in p && !p.parts && l._path)
            fills.add(l._path.getAttribute('fill')); });
        return [...fills]; }"""
    )
    assert plain == ["#636363"]
    assert page.locator(".ga-floors-swatch").count() == 1
    _tap(page, *site.centre)
    page.locator("#ga-panel").wait_for(state="visible", timeout=5000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "hatch-groups.png"))
    card = page.inner_text("#ga-card")
    for p in site.parts:
        assert f"{p.floor_min}–{p.floor_max} 层 → 小组 {p.grp}" in card, card
    assert visit.outside == [] and visit.errors == []
    visit.context.close()


def test_the_leaders_map_stripes_a_divided_building_and_lists_its_floors(
    browser, site: Site
) -> None:
    # the leaders page keeps reading after its load (levels, the offline copy): no networkidle
    context = browser.new_context(
        viewport={"width": 1024, "height": 768}, has_touch=True, is_mobile=True, locale="zh-CN"
    )
    page = context.new_page()
    visit = watch(context, page)
    page.goto(f"{site.base}/login?next=/app/leaders", wait_until="networkidle")
    page.locator("input[name=username]").fill(STAFF)
    page.locator("input[name=password]").fill(password(STAFF))
    page.locator("button[type=submit]").tap()
    page.wait_for_url(f"{site.base}/app/leaders", timeout=15000)
    page.wait_for_function("() => document.body.dataset.leadersLevels === 'all'", timeout=30000)
    page.locator('.ga-level[data-level="building"]').tap()
    fill, tag, stripes = page.evaluate(FILL, [site.building, "parts"])
    # a vacant seat (no leader yet): the stripes in the vacant colour
    assert fill == "url(#ga-floors-vacant)" and tag == "pattern" and stripes == 2
    _tap(page, *site.centre)
    page.locator("#ga-lead-panel").wait_for(state="visible", timeout=5000)
    page.locator("#ga-lead-parts-box").wait_for(state="visible", timeout=5000)
    page.screenshot(path=str(ARTIFACTS / "hatch-leaders.png"))
    items = page.locator("#ga-lead-parts li").all_inner_texts()
    assert len(items) == len(site.parts)
    for item, p in zip(items, site.parts, strict=True):
        floors = f"{p.floor_min}–{p.floor_max}" if p.floor_min != p.floor_max else f"{p.floor_min}"
        assert f"{floors} 层 → 小组 {p.grp}" in item and f"单元 {p.unit}" in item, item
        assert f"{p.households} 户" in item, item
    # at the group level the same card lists the floors the tapped group holds
    page.locator('.ga-level[data-level="residents_group"]').tap()
    _tap(page, *site.centre, zoom=18)
    page.locator("#ga-lead-panel").wait_for(state="visible", timeout=5000)
    page.wait_for_function("() => document.querySelectorAll('#ga-lead-parts li').length > 0")
    group_items = page.locator("#ga-lead-parts li").all_inner_texts()
    assert any(any(f"小组 {p.grp}" in i for p in site.parts) for i in group_items)
    assert visit.outside == [] and visit.errors == []
    visit.context.close()


def test_cards_name_the_entrances_of_a_tower_divided_by_door(browser, door_site: Site) -> None:
    site = door_site
    assert all(p.entrance for p in site.parts)  # four doors mapped: parts by entrance
    visit = open_page(browser, site.base, STAFF, f"/map/groups?community={site.community}")
    page = visit.page
    fill, tag, _stripes = page.evaluate(FILL, [site.building, "unit_id"])
    assert fill == "url(#ga-floors)" and tag == "pattern"
    _tap(page, *site.centre)
    page.locator("#ga-panel").wait_for(state="visible", timeout=5000)
    page.screenshot(path=str(ARTIFACTS / "hatch-groups-doors.png"))
    card = page.inner_text("#ga-card")
    for p in site.parts:
        assert f"单元门 {p.entrance}（{p.floor_min}–{p.floor_max} 层）→ 小组 {p.grp}" in card, card
    assert visit.outside == [] and visit.errors == []
    visit.context.close()
