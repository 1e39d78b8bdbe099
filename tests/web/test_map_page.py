"""The overview map in a real browser (Debian's Chromium): offline, on tablet-sized screens."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.conftest import WEB_ADMIN, log_in_browser, make_user


def zoom_to(page, lat: float, lon: float, zoom: int = 19) -> tuple[float, float]:
    """Zoom the page's map close in on lat/lon; return that point's screen position."""
    x, y = page.evaluate(
        """([lat, lon, zoom]) => {
      const map = Object.values(window).find(v => v instanceof L.Map);
      map.setView([lat, lon], zoom, {animate: false});
      const p = map.latLngToContainerPoint([lat, lon]);
      const box = map.getContainer().getBoundingClientRect();  // below the app's bar
      return [box.left + p.x, box.top + p.y];
    }""",
        [lat, lon, zoom],
    )
    return x, y


# Count what Leaflet actually drew, by layer, from the live map object.
COUNT_FEATURES = """
() => {
  const map = Object.values(window).find(v => v instanceof L.Map);
  const counts = {};
  map.eachLayer(layer => {
    if (layer.feature && layer.feature.properties) {
      const p = layer.feature.properties;
      const kind = 'households' in p ? 'buildings' : ('length_m' in p ? 'streets' : 'facilities');
      counts[kind] = (counts[kind] || 0) + 1;
    }
  });
  return counts;
}
"""


@pytest.mark.parametrize("viewport", [(1024, 768), (768, 1024)], ids=["landscape", "portrait"])
def test_map_page_draws_our_data_with_nothing_from_outside(
    browser, live_server, nanjing_engine, viewport
) -> None:
    context = browser.new_context(
        viewport={"width": viewport[0], "height": viewport[1]},
        has_touch=True,
        is_mobile=True,
        locale="zh-CN",  # the page follows the browser's language: Chromium's is English
    )
    log_in_browser(context, live_server, *WEB_ADMIN)
    page = context.new_page()
    outside: list[str] = []
    failed: list[str] = []
    page.on(
        "request",
        lambda r: (
            outside.append(r.url)
            if not r.url.startswith(("http://127.0.0.1", "data:", "blob:"))
            else None
        ),
    )
    page.on("requestfailed", lambda r: failed.append(r.url))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    response = page.goto(f"{live_server}/map", wait_until="networkidle")
    assert response is not None and response.status == 200
    assert outside == [] and failed == [] and errors == []
    counts = page.evaluate(COUNT_FEATURES)
    with nanjing_engine.connect() as conn:
        expected = conn.execute(
            sa.text(
                "SELECT (SELECT count(*) FROM building), (SELECT count(*) FROM walk_edge), "
                "(SELECT count(*) FROM facility)"
            )
        ).one()
    assert (counts["buildings"], counts["streets"], counts["facilities"]) == tuple(expected)
    assert "OpenStreetMap contributors, ODbL" in page.inner_text(".leaflet-control-attribution")
    bar = page.locator("#ga-bar")
    assert "网格地图" in bar.inner_text()
    box = bar.bounding_box()
    assert box is not None and box["width"] <= viewport[0]
    # the map fills the screen below the app's bar: Leaflet sized it to what is left
    shell = page.locator("#ga-shell").bounding_box()
    assert shell is not None and shell["y"] == 0 and shell["width"] == viewport[0]
    size = page.evaluate(
        "() => { const m = Object.values(window).find(v => v instanceof L.Map);"
        " const s = m.getSize(); return [s.x, s.y]; }"
    )
    assert size == [viewport[0], viewport[1] - shell["height"]]
    context.close()


def test_tapping_a_building_shows_its_card(browser, live_server, nanjing_engine) -> None:
    with nanjing_engine.connect() as conn:
        households, lon, lat = conn.execute(
            sa.text(
                "SELECT households, ST_X(p), ST_Y(p) FROM (SELECT households, "
                "ST_PointOnSurface(geom) AS p FROM building ORDER BY households DESC, id "
                "LIMIT 1) b"
            )
        ).one()
    context = browser.new_context(
        viewport={"width": 1024, "height": 768}, has_touch=True, locale="zh-CN"
    )
    log_in_browser(context, live_server, *WEB_ADMIN)
    page = context.new_page()
    page.goto(f"{live_server}/map", wait_until="networkidle")
    x, y = zoom_to(page, lat, lon)
    page.touchscreen.tap(x, y)
    popup = page.locator(".leaflet-popup-content")
    popup.wait_for(timeout=5000)
    text = popup.inner_text()
    assert "户数" in text and f"{households:,}" in text
    # one card per tap: no tooltip opened on top of it
    assert page.locator(".leaflet-popup").count() == 1
    assert page.locator(".leaflet-tooltip").count() == 0
    context.close()


def test_names_from_imported_files_cannot_run_script(browser, engine, db_url, tmp_path) -> None:
    import json

    from gis.io.pipeline import import_file
    from tests.conftest import serve_app

    evil = '<img src=x onerror="window.__pwned=1">'
    lon, lat, d = 118.78, 32.04, 0.0004
    ring = [[lon, lat], [lon + d, lat], [lon + d, lat + d], [lon, lat + d], [lon, lat]]
    path = tmp_path / "buildings.geojson"
    path.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"id": "x", "name": evil, "levels": 6},
                        "geometry": {"type": "Polygon", "coordinates": [ring]},
                    }
                ],
            }
        )
    )
    import_file(engine, path)
    make_user(engine, *WEB_ADMIN[:1], "admin", WEB_ADMIN[1])
    with serve_app(db_url) as base:
        context = browser.new_context(viewport={"width": 1024, "height": 768}, has_touch=True)
        log_in_browser(context, base, *WEB_ADMIN)
        page = context.new_page()
        page.goto(f"{base}/map", wait_until="networkidle")
        x, y = zoom_to(page, lat + d / 2, lon + d / 2)
        page.mouse.move(x, y)
        page.touchscreen.tap(x, y)
        popup = page.locator(".leaflet-popup-content")
        popup.wait_for(timeout=5000)
        assert evil in popup.inner_text()  # shown as text, not markup
        page.wait_for_timeout(300)
        assert page.evaluate("() => window.__pwned") is None
        context.close()


def test_reach_map_colours_buildings_by_walking_time(browser, engine, db_url) -> None:
    from gis.io.pipeline import import_file
    from gis.reach.service import compute_and_store
    from tests.conftest import NANJING, serve_app

    import_file(engine, NANJING)
    with engine.begin() as conn:
        compute_and_store(conn, categories=["police_room", "shopping"])
        by_band = dict(
            conn.execute(
                sa.text("""
            SELECT CASE WHEN b.households = 0 THEN 'none'
                        WHEN r.walk_m IS NULL THEN 'unreachable'
                        WHEN r.walk_m <= 400 THEN 'le5'
                        WHEN r.walk_m <= 800 THEN 'le10'
                        WHEN r.walk_m <= 1200 THEN 'le15' ELSE 'beyond' END, count(*)
              FROM building b JOIN building_reach_latest r ON r.building_id = b.id
             WHERE r.category = 'police_room' GROUP BY 1""")
            ).all()
        )
    colours = {
        "le5": "#1a9850",
        "le10": "#91cf60",
        "le15": "#fc8d59",
        "beyond": "#d73027",
        "unreachable": "#7b3294",
        "none": "#cccccc",
    }
    make_user(engine, *WEB_ADMIN[:1], "admin", WEB_ADMIN[1])
    with serve_app(db_url) as base:
        context = browser.new_context(viewport={"width": 1024, "height": 768}, locale="zh-CN")
        log_in_browser(context, base, *WEB_ADMIN)
        page = context.new_page()
        outside: list[str] = []
        page.on(
            "request",
            lambda r: (
                outside.append(r.url)
                if not r.url.startswith(("http://127.0.0.1", "data:"))
                else None
            ),
        )
        response = page.goto(f"{base}/map/reach?category=police_room", wait_until="networkidle")
        assert response is not None and response.status == 200
        drawn = page.evaluate("""() => {
          const map = Object.values(window).find(v => v instanceof L.Map);
          const n = {};
          map.eachLayer(l => { if (l.feature && 'colour' in l.feature.properties) {
              const c = l.options.fillColor; n[c] = (n[c] || 0) + 1; } });
          return n; }""")
        assert outside == []
        assert drawn == {colours[band]: n for band, n in by_band.items()}
        assert "警务室" in page.inner_text("#ga-bar")
        context.close()


def test_a_large_scope_comes_as_vector_tiles_without_errors(
    browser, nanjing_url, live_server
) -> None:
    """Above the threshold the city map draws the buildings as tiles from /api/tiles: the
    page embeds none, asks for tiles with the login, and throws nothing (live_server: the
    login WEB_ADMIN)."""
    from tests.conftest import serve_app

    with serve_app(nanjing_url, GRIDATLAS_VECTOR_TILES_ABOVE="100") as base:
        context = browser.new_context(viewport={"width": 1024, "height": 768}, has_touch=True)
        log_in_browser(context, base, *WEB_ADMIN)
        page = context.new_page()
        errors: list[str] = []
        tiles: list[int] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on(
            "response",
            lambda r: tiles.append(r.status) if "/api/tiles/buildings/" in r.url else None,
        )
        response = page.goto(f"{base}/map", wait_until="networkidle")
        assert response is not None and response.status == 200
        assert '"households": ' not in response.text()  # no footprint embedded
        page.wait_for_timeout(500)
        assert errors == []
        assert tiles and set(tiles) <= {200, 204}
        context.close()


# The tiled layers of the page, by their URL, and how much each has drawn: canvas pixels
# painted (both are drawn on canvas: layers/tiles.py).
TILED = """
() => {
  const map = Object.values(window).find(v => v instanceof L.Map);
  const out = {};
  for (const v of Object.values(window)) {
    if (!(v instanceof L.VectorGrid)) continue;
    const kind = v._url.includes('/walk_edges/') ? 'streets' : 'buildings';
    let painted = 0, tiles = 0;
    for (const t of Object.values(v._tiles)) {
      tiles += 1;
      const el = t.el;
      if (el.tagName !== 'CANVAS' || !el.width) continue;
      const px = el.getContext('2d').getImageData(0, 0, el.width, el.height).data;
      for (let i = 3; i < px.length; i += 4) { if (px[i]) painted += 1; }
    }
    out[kind] = {on: map.hasLayer(v), tiles, painted};
  }
  return out;
}
"""


def test_streets_come_as_tiles_too_and_toggle_in_the_layer_control(
    browser, nanjing_url, nanjing_engine, live_server
) -> None:
    """Above the threshold the walk network is not embedded: it comes as tiles of our own
    (no basemap: the map still shows streets and buildings from our data alone), and the
    layer control switches it off and on (live_server: the login WEB_ADMIN)."""
    from tests.conftest import serve_app

    with nanjing_engine.connect() as conn:
        households, lon, lat = conn.execute(
            sa.text(
                "SELECT households, ST_X(p), ST_Y(p) FROM (SELECT households, "
                "ST_PointOnSurface(geom) AS p FROM building ORDER BY area_m2 DESC, id "
                "LIMIT 1) b"
            )
        ).one()
    with serve_app(nanjing_url, GRIDATLAS_VECTOR_TILES_ABOVE="100") as base:
        context = browser.new_context(
            viewport={"width": 1024, "height": 768}, has_touch=True, locale="zh-CN"
        )
        log_in_browser(context, base, *WEB_ADMIN)
        page = context.new_page()
        errors: list[str] = []
        outside: list[str] = []
        statuses: dict[str, list[int]] = {"walk_edges": [], "buildings": []}
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on(
            "request",
            lambda r: (
                outside.append(r.url)
                if not r.url.startswith(("http://127.0.0.1", "data:", "blob:"))
                else None
            ),
        )

        def seen(r) -> None:
            for layer, codes in statuses.items():
                if f"/api/tiles/{layer}/" in r.url:
                    codes.append(r.status)

        page.on("response", seen)
        response = page.goto(f"{base}/map", wait_until="networkidle")
        assert response is not None and response.status == 200
        html = response.text()
        assert '"length_m": ' not in html and '"households": ' not in html  # nothing embedded
        page.evaluate(  # close in on the data: every walk edge is sent from zoom 14
            "() => { Object.values(window).find(v => v instanceof L.Map).setZoom(15); }"
        )
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(300)
        drawn = page.evaluate(TILED)
        assert statuses["walk_edges"] and set(statuses["walk_edges"]) <= {200, 304}
        assert statuses["buildings"] and set(statuses["buildings"]) <= {200, 304}
        assert drawn["streets"]["on"] and drawn["streets"]["painted"] > 1000
        assert drawn["buildings"]["on"] and drawn["buildings"]["painted"] > 1000
        assert outside == [] and errors == []
        # the layer control: expand it, untick the walk network, tick it again
        page.locator(".leaflet-control-layers-toggle").tap()
        label = page.locator(".leaflet-control-layers-overlays label", has_text="步行路网")
        assert label.count() == 1
        label.locator("input").tap()
        assert page.evaluate(TILED)["streets"]["on"] is False
        assert page.evaluate(TILED)["buildings"]["on"] is True
        label.locator("input").tap()
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(300)
        again = page.evaluate(TILED)
        assert again["streets"]["on"] and again["streets"]["painted"] > 1000
        assert "户数" in page.inner_text("#ga-legend")  # the legend stays
        # a tap on a tiled footprint opens its one card, households from the tile
        x, y = zoom_to(page, lat, lon, 17)
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(300)
        page.touchscreen.tap(x, y)
        card = page.locator(".ga-tile-card")
        card.wait_for(timeout=5000)
        assert card.inner_text() == f"户数: {households}"
        assert page.locator(".leaflet-popup").count() == 1
        assert page.locator(".leaflet-tooltip").count() == 0
        assert errors == []
        context.close()
