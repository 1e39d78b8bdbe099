"""The public pages in Chromium, no login: their 中文/English link (the query parameter, the
cookie it leaves, the browser's Accept-Language; Chinese by default), and the disclosure
board's layout on the tablets the committees use — no map control (zoom, layers, scale,
legend, credit) under the panel or under another control, at 800×1280, 768×1024, 1024×768
and 1280×800, the layer list opened too. Screenshots: tests/artifacts/board-*.png."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import httpx
import pytest

from gis import i18n
from tests.api.conftest import password, people, people_template  # noqa: F401
from tests.conftest import serve_app
from tests.web.helpers import watch

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
VIEWPORTS = [(800, 1280), (768, 1024), (1024, 768), (1280, 800)]
CJK = re.compile(r"[\u3400-\u9fff\uff00-\uffef]")
# the board's boxes: none may overlap another (the controls are inside the map's box)
BOXES = {
    "panel": "#ga-board",
    "zoom": ".leaflet-control-zoom",
    "layers": ".leaflet-control-layers",
    "scale": ".leaflet-control-scale",
    "legend": "#ga-legend",
    "credit": ".leaflet-control-attribution",
}
CONTROLS = [k for k in BOXES if k != "panel"]


@pytest.fixture
def served(people):  # noqa: F811
    url, info = people
    with serve_app(url) as base:
        yield base, url, info


def _context(browser, viewport=(768, 1024), locale="zh-CN"):
    ctx = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]},
                              has_touch=True, is_mobile=True, locale=locale)  # fmt: skip
    page = ctx.new_page()
    return ctx, page, watch(ctx, page)


def _sheet(base: str, building: int) -> dict:
    c = httpx.Client(base_url=base, timeout=60)
    r = c.post("/api/auth/login", json={"username": "staff_a", "password": password("staff_a")})
    c.headers["Authorization"] = f"Bearer {r.json()['token']}"
    now = dt.datetime.now(dt.UTC)
    rid = c.post("/api/surveys/rounds", json={
        "label": "2026 Q4", "opens_at": (now - dt.timedelta(hours=1)).isoformat(),
        "closes_at": (now + dt.timedelta(days=7)).isoformat()}).json()["id"]  # fmt: skip
    sheet = c.post(f"/api/surveys/rounds/{rid}/sheets", json={"building_id": building}).json()
    c.close()
    return sheet


def _box(page, selector: str) -> dict:
    loc = page.locator(selector)
    assert loc.count() == 1, selector
    box = loc.bounding_box()
    assert box and box["width"] > 0 and box["height"] > 0, selector
    return box


def _overlap(a: dict, b: dict) -> bool:
    return (a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
            and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])  # fmt: skip


def _check_layout(page, w: int, h: int) -> None:
    boxes = {k: _box(page, s) for k, s in BOXES.items()}
    boxes["language"] = _box(page, "#ga-public-lang")
    mapbox = _box(page, ".leaflet-container")
    for name, b in boxes.items():  # all on the screen
        assert b["x"] >= 0 and b["y"] >= 0, name
        assert b["x"] + b["width"] <= w + 0.5 and b["y"] + b["height"] <= h + 0.5, name
    for name in CONTROLS:  # every control on the map, none under the panel
        b = boxes[name]
        assert b["x"] >= mapbox["x"] - 0.5 and b["y"] >= mapbox["y"] - 0.5, name
        assert b["x"] + b["width"] <= mapbox["x"] + mapbox["width"] + 0.5, name
        assert b["y"] + b["height"] <= mapbox["y"] + mapbox["height"] + 0.5, name
    assert not _overlap(mapbox, boxes["panel"])
    names = list(BOXES)
    hits = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]
            if _overlap(boxes[a], boxes[b])]  # fmt: skip
    assert hits == []
    # the panel's figures are reachable: the problems table is inside the panel's box
    # (scrolled to when the panel is shorter than its content)
    page.locator("#ga-board-problems").scroll_into_view_if_needed()
    table = _box(page, "#ga-board-problems")
    panel = boxes["panel"]
    assert table["x"] >= panel["x"] - 0.5 and table["x"] + table["width"] <= panel["x"] + panel[
        "width"] + 0.5  # fmt: skip


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=[f"{w}x{h}" for w, h in VIEWPORTS])
def test_nothing_on_the_board_overlaps(browser, served, viewport) -> None:
    base, _url, info = served
    w, h = viewport
    ctx, page, visit = _context(browser, viewport)
    page.goto(f"{base}/board/{info.community_a}")
    page.locator("#ga-legend").wait_for()
    _check_layout(page, w, h)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"board-{w}x{h}.png"))
    # the layer list opened (a tap on its button): still clear of the panel and the rest
    page.locator(".leaflet-control-layers-toggle").tap()
    page.locator(".leaflet-control-layers-expanded").wait_for()
    _check_layout(page, w, h)
    page.screenshot(path=str(ARTIFACTS / f"board-{w}x{h}-layers.png"))
    assert visit.outside == [] and visit.errors == []
    ctx.close()


def _words(page, data: list[str]) -> str:
    """The page's visible text without the data it shows (names of places)."""
    text = page.locator("body").inner_text()
    for d in data:
        text = text.replace(d, "")
    return text


def test_the_board_speaks_chinese_or_english(browser, served) -> None:
    base, _url, info = served
    cid = info.community_a
    ctx, page, visit = _context(browser)
    page.goto(f"{base}/board/{cid}")
    page.locator("#ga-board").wait_for()
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.locator("#ga-board h1").inner_text().startswith("居务公开栏")
    assert page.locator(".leaflet-control-zoom-in").get_attribute("title") == "放大"
    name = page.locator("#ga-board h1").inner_text().split(" · ", 1)[1]
    link = page.locator("#ga-public-lang")
    assert link.inner_text() == "English"
    link.tap()
    page.wait_for_url(re.compile(r"\?lang=en$"))
    page.locator("#ga-board").wait_for()
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("#ga-board h1").inner_text() == f"Community affairs board · {name}"
    assert page.locator(".leaflet-control-zoom-in").get_attribute("title") == "Zoom in"
    assert page.locator("#ga-legend").inner_text() == i18n.t("board.facilities", "en")
    # every word English but the names and the link to Chinese, named in Chinese
    assert CJK.findall(_words(page, [name, "中文"])) == []
    assert page.locator("#ga-public-lang").inner_text() == "中文"
    # the cookie the link left: the board without the parameter is still English
    page.goto(f"{base}/board/{cid}")
    assert page.locator("#ga-board h2").first.inner_text() == i18n.t("board.rating", "en")
    page.locator("#ga-public-lang").tap()
    page.wait_for_url(re.compile(r"\?lang=zh$"))
    assert page.locator("#ga-board h2").first.inner_text() == "居委会星级"
    assert visit.outside == [] and visit.errors == []
    ctx.close()
    # a browser that asks for English (and has no cookie) gets it without the link
    ctx, page, visit = _context(browser, locale="en-GB")
    page.goto(f"{base}/board/{cid}")
    assert page.locator("#ga-board h2").first.inner_text() == "The committee's rating"
    ctx.close()


def test_the_survey_speaks_chinese_or_english(browser, served) -> None:
    base, _url, info = served
    sheet = _sheet(base, info.buildings["a1"][0])
    ctx, page, visit = _context(browser)
    page.goto(f"{base}/v/{sheet['token']}")
    assert page.locator("h1").inner_text() == "居民评议与问题反映"
    where = page.locator(".ga-where").inner_text()
    data = [*where.split(" · "), "2026 Q4"]
    page.locator("#ga-public-lang").tap()
    page.wait_for_url(re.compile(r"\?lang=en$"))
    assert page.locator("h1").inner_text() == i18n.t("voice.title", "en")
    assert CJK.findall(_words(page, [*data, "中文"])) == []
    options = page.locator("#ga-problem select option").all_inner_texts()
    assert options and CJK.findall(" ".join(options)) == []
    # the answer's message comes back in the page's language too
    for q in ("overall", "service", "environment", "safety"):
        page.locator(f"input[name={q}][value='5']").check()
    page.fill("#ga-code", sheet["codes"][0])
    page.click("#ga-survey button")
    page.locator("#ga-public-notice").filter(
        has_text=i18n.t("voice.status.ok", "en")).wait_for(timeout=20000)  # fmt: skip
    page.fill("#ga-code", sheet["codes"][0])
    for q in ("overall", "service", "environment", "safety"):
        page.locator(f"input[name={q}][value='3']").check()
    page.click("#ga-survey button")
    page.locator("#ga-public-notice").filter(
        has_text=i18n.t("voice.status.used", "en")).wait_for(timeout=20000)  # fmt: skip
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "survey-en.png"), full_page=True)
    # back to Chinese with the link; the cookie keeps it
    page.locator("#ga-public-lang").tap()
    page.wait_for_url(re.compile(r"\?lang=zh$"))
    page.goto(f"{base}/v/{sheet['token']}")
    assert page.locator("h1").inner_text() == "居民评议与问题反映"
    assert page.locator("#ga-public-lang").inner_text() == "English"
    assert [e for e in visit.errors if "409" not in e] == [] and visit.outside == []
    ctx.close()
