"""The residents' groups map in Chromium: a building divided by floors shows its groups."""

from __future__ import annotations

import sqlalchemy as sa

from tests.web.test_groups_page import _centre, _open, groups_server, zoom_to

__all__ = ["groups_server"]  # the fixture, shared with the groups page's tests


def test_a_divided_building_is_dashed_and_its_card_lists_floors_per_group(
    browser, groups_server, engine
) -> None:
    with engine.connect() as conn:
        building = conn.scalar(
            sa.text(
                "SELECT b.id FROM building b WHERE b.id IN (SELECT building_id FROM "
                "building_part) ORDER BY b.households DESC LIMIT 1"
            )
        )
        parts = conn.execute(
            sa.text(
                "SELECT p.floor_min, p.floor_max, g.code FROM building_part p "
                "JOIN unit u ON u.id = p.unit_id "
                "JOIN building_cluster c ON c.id = u.building_cluster_id "
                "JOIN residents_group g ON g.id = c.residents_group_id "
                "WHERE p.building_id = :b ORDER BY p.part_no"
            ),
            {"b": building},
        ).all()
        centre = _centre(conn, building)
    context, page, outside, errors = _open(browser, groups_server)
    dashed = page.evaluate(
        """(id) => { const map = Object.values(window).find(v => v instanceof L.Map);
        let out = null;
        map.eachLayer(l => { if (l.feature && l.feature.properties.id === id
                                 && 'unit_id' in l.feature.properties)
                               out = l.options.dashArray || ''; });
        return out; }""",
        building,
    )
    assert dashed == "4 3"
    x, y = zoom_to(page, *centre)
    page.touchscreen.tap(x, y)
    page.locator("#ga-panel").wait_for(state="visible", timeout=5000)
    card = page.inner_text("#ga-card")
    assert len(parts) >= 2
    for lo, hi, code in parts:
        assert f"{lo}–{hi} 层 → 小组 {code}" in card, card
    assert outside == [] and errors == []
    context.close()
