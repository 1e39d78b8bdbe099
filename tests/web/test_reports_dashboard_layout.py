"""The reports dashboard's charts as drawn in Chromium: count axes with whole ticks only (no
0.5 household), and each chart's title, legend and bars apart — read from the charts
themselves (their options, the axis ticks ECharts drew, the boxes of its components).
Screenshots: tests/artifacts/dashboard-*.png."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from gis import db
from tests.api.conftest import people, people_template  # noqa: F401
from tests.conftest import serve_app
from tests.web.helpers import open_page

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
VIEWPORTS = [(768, 1024), (1024, 768)]

# every drawn chart: its y axis' minInterval, the ticks drawn, and the boxes of its title,
# legend (None when hidden) and plot area, in the chart's pixels
LAYOUT = """() => Array.from(document.querySelectorAll('.ga-chart'))
  .filter(el => !el.hidden).map(el => {
    const ec = echarts.getInstanceByDom(el);
    const model = ec.getModel();
    const box = (type) => {
      const m = model.getComponent(type);
      if (!m || m.get('show') === false) return null;
      const g = ec.getViewOfComponentModel(m).group;
      const r = g.getBoundingRect().clone();
      if (g.transform) r.applyTransform(g.transform);
      return r.width > 0 ? {x: r.x, y: r.y, w: r.width, h: r.height} : null;
    };
    const grid = model.getComponent('grid').coordinateSystem.getRect();
    return {
      id: el.id,
      minInterval: ec.getOption().yAxis[0].minInterval,
      ticks: model.getComponent('yAxis', 0).axis.scale.getTicks().map(t => t.value),
      title: box('title'), legend: box('legend'),
      grid: {x: grid.x, y: grid.y, w: grid.width, h: grid.height},
      series: ec.getOption().series.length,
    };
  })"""


def _apart(a: dict | None, b: dict | None) -> bool:
    if a is None or b is None:
        return True
    return (a["x"] + a["w"] <= b["x"] or b["x"] + b["w"] <= a["x"]
            or a["y"] + a["h"] <= b["y"] or b["y"] + b["h"] <= a["y"])  # fmt: skip


def _check(charts: list[dict]) -> None:
    assert charts
    for c in charts:
        assert c["minInterval"] == 1, c["id"]
        assert c["ticks"] and all(float(t).is_integer() for t in c["ticks"]), c
        assert c["title"] is not None, c["id"]
        if c["series"] > 1:
            assert c["legend"] is not None, c["id"]
        assert _apart(c["title"], c["legend"]), c
        assert _apart(c["title"], c["grid"]), c
        assert _apart(c["legend"], c["grid"]), c


@pytest.fixture
def served(people):  # noqa: F811
    url, info = people
    eng = db.create_engine(url, poolclass=sa.NullPool)
    with eng.begin() as conn:
        # one open problem: a count axis from 0 to 1, where ECharts would put 0.2, 0.4, …
        conn.execute(
            sa.text(
                "INSERT INTO problem (building_id, category, description, handling, "
                "reported_by, reported_at, geom) SELECT b.id, 'parking', 'x', 'immediate', "
                "u.id, now(), ST_PointOnSurface(b.geom) FROM building b, app_user u "
                "WHERE b.id = :b AND u.username = 'worker_a1'"
            ),
            {"b": info.buildings["a1"][0]},
        )
    eng.dispose()
    with serve_app(url) as base:
        yield base, info


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=[f"{w}x{h}" for w, h in VIEWPORTS])
def test_the_charts_count_in_whole_numbers_and_keep_apart(browser, served, viewport) -> None:
    base, info = served
    visit = open_page(browser, base, "staff_a", "/app/reports", viewport=viewport)
    page = visit.page
    page.wait_for_function("document.getElementById('ga-main').dataset.level === 'subdistrict'")
    charts = page.evaluate(LAYOUT)
    assert {c["id"] for c in charts} == {
        "ga-chart-households", "ga-chart-problems", "ga-chart-stars"}  # fmt: skip
    _check(charts)
    problems = next(c for c in charts if c["id"] == "ga-chart-problems")
    assert max(problems["ticks"]) >= 1 and len(problems["ticks"]) == len(set(problems["ticks"]))
    ARTIFACTS.mkdir(exist_ok=True)
    w, h = viewport
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{w}x{h}.png"), full_page=True)
    page.evaluate(
        "() => echarts.getInstanceByDom(document.getElementById('ga-chart-problems'))"
        ".trigger('click', {dataIndex: 0})"
    )
    page.wait_for_function("document.getElementById('ga-main').dataset.level === 'community'")
    _check(page.evaluate(LAYOUT))
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{w}x{h}-community.png"), full_page=True)
    assert visit.outside == [] and visit.errors == []
    visit.context.close()
