"""The public pages in Chromium with no login: the stairwell survey (answered once, the second
answer with the same code refused, a problem reported) and the disclosure board (its map,
its figures, small counts withheld), with nothing personal in their HTML or JSON — checked
by searching every answer the browser received for every resident's name, ID number and
phone number."""

from __future__ import annotations

import datetime as dt
import json

import httpx
import pytest
import sqlalchemy as sa

from gis import db, security
from gis.settings import Settings
from tests.api.conftest import password, people, people_template  # noqa: F401
from tests.conftest import serve_app
from tests.web.helpers import watch


def _client(base: str, username: str) -> httpx.Client:
    c = httpx.Client(base_url=base, timeout=60)
    r = c.post("/api/auth/login", json={"username": username, "password": password(username)})
    assert r.status_code == 200, r.text
    c.headers["Authorization"] = f"Bearer {r.json()['token']}"
    return c


def _secrets(url: str) -> list[str]:
    """Every resident's name, ID number and phone number (decrypted, as staff would see)."""
    keys = security.Keys.from_settings(Settings())
    eng = db.create_engine(url, poolclass=sa.NullPool)
    with eng.connect() as conn:
        rows = conn.execute(sa.text("SELECT name, id_number_enc, phone_enc FROM resident")).all()
    eng.dispose()
    out = []
    for r in rows:
        out.append(r.name)
        for sealed, column in ((r.id_number_enc, "resident.id_number"),
                               (r.phone_enc, "resident.phone")):  # fmt: skip
            if sealed is not None:
                out.append(keys.open(bytes(sealed), column))
    return [s for s in out if s]


def _public_context(browser):
    ctx = browser.new_context(viewport={"width": 768, "height": 1024}, has_touch=True,
                              is_mobile=True, locale="zh-CN")  # fmt: skip
    page = ctx.new_page()
    return ctx, page, watch(ctx, page)


def _bodies(visit) -> str:
    texts = []
    for r in visit.responses:
        try:
            if "text" in (r.headers.get("content-type") or "") or "json" in (
                r.headers.get("content-type") or ""
            ):
                texts.append(r.text())
        except Exception:  # a redirect or an aborted request has no body
            continue
    return "\n".join(texts)


@pytest.fixture
def served(people):  # noqa: F811
    url, info = people
    with serve_app(url) as base:
        yield base, url, info


def test_survey_and_board_without_login(browser, served) -> None:
    base, url, info = served
    staff = _client(base, "staff_a")
    now = dt.datetime.now(dt.UTC)
    rid = staff.post("/api/surveys/rounds", json={
        "label": "2026 Q4", "opens_at": (now - dt.timedelta(hours=1)).isoformat(),
        "closes_at": (now + dt.timedelta(days=7)).isoformat()}).json()["id"]  # fmt: skip
    sheet = staff.post(f"/api/surveys/rounds/{rid}/sheets",
                       json={"building_id": info.buildings["a1"][0]}).json()  # fmt: skip
    printable = staff.get(f"/app/reports/sheets/{sheet['id']}")
    assert printable.status_code == 200 and "<svg" in printable.text
    assert sheet["codes"][0] in printable.text and f"/v/{sheet['token']}" in printable.text
    assert staff.get(f"/api/surveys/sheets/{sheet['id']}/qr.png").content[:4] == b"\x89PNG"
    staff.close()

    ctx, page, visit = _public_context(browser)
    page.goto(f"{base}/v/{sheet['token']}")
    assert "/login" not in page.url
    for q in ("overall", "service", "environment", "safety"):
        page.locator(f"input[name={q}][value='4']").check()
    page.fill("#ga-code", sheet["codes"][0].lower())
    page.click("#ga-survey button")
    notice = page.locator("#ga-public-notice")
    notice.filter(has_text="感谢").wait_for(timeout=20000)
    # the same code again: refused, in Chinese
    for q in ("overall", "service", "environment", "safety"):
        page.locator(f"input[name={q}][value='1']").check()
    page.fill("#ga-code", sheet["codes"][0])
    page.click("#ga-survey button")
    notice.filter(has_text="已经使用过").wait_for(timeout=20000)
    page.select_option("#ga-problem select", "lift")
    page.fill("#ga-problem textarea", "三号电梯停运")
    page.click("#ga-problem button")
    notice.filter(has_text="已收到").wait_for(timeout=20000)
    # the browser logs the refused second answer (409) itself; nothing else went wrong
    assert visit.outside == [] and [e for e in visit.errors if "409" not in e] == []

    cid = info.community_a
    page.goto(f"{base}/board/{cid}")
    page.locator("#ga-board").wait_for()
    assert "/login" not in page.url
    assert page.locator(".leaflet-container").count() == 1
    assert "OpenStreetMap" in page.locator(".leaflet-control-attribution").inner_text()
    # the board is a snapshot at the start of the day and a resident's report counts once
    # staff have accepted it: the report just sent is not on it
    lift = page.locator("#ga-board-problems tr[data-category=lift] td").all_inner_texts()
    assert lift[:3] == ["0", "0", "0"]
    # accepted two days ago: now it is
    eng = sa.create_engine(url, poolclass=sa.NullPool)
    with eng.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE problem SET status = 'accepted', reported_at = reported_at - interval "
                "'2 days' WHERE id IN (SELECT problem_id FROM resident_problem)"
            )
        )
        conn.execute(
            sa.text(
                "UPDATE problem_event SET at = at - interval '2 days' WHERE problem_id IN "
                "(SELECT problem_id FROM resident_problem)"
            )
        )
        conn.execute(sa.text(
            "INSERT INTO problem_event (problem_id, user_id, at, from_status, to_status) "
            "SELECT rp.problem_id, u.id, now() - interval '2 days' + interval '1 minute', "
            "'reported', 'accepted' FROM resident_problem rp, app_user u "
            "WHERE u.username = 'worker_a1'"))  # fmt: skip
    eng.dispose()
    page.goto(f"{base}/board/{cid}")
    page.locator("#ga-board").wait_for()
    # one lift problem: a small count, withheld with its column's total
    lift = page.locator("#ga-board-problems tr[data-category=lift] td").all_inner_texts()
    assert lift[0] == "不公开" and lift[2] == "不公开"
    total = page.locator("#ga-board-problems tr[data-category=total] td").all_inner_texts()
    assert total[0] == "不公开"
    board = page.evaluate(f"fetch('/api/public/board/{cid}').then(r => r.text())")
    assert json.loads(board)["problems"]["rows"]["lift"]["opened"] == "suppressed"
    assert visit.outside == [] and [e for e in visit.errors if "409" not in e] == []
    seen = _bodies(visit) + board
    secrets = _secrets(url)
    assert len(secrets) > 10
    leaked = [s for s in secrets if s in seen]
    assert leaked == []
    ctx.close()


def test_the_dashboard_drills_down_to_a_grid(browser, served) -> None:
    from tests.web.helpers import open_page

    base, url, info = served
    eng = db.create_engine(url, poolclass=sa.NullPool)
    with eng.begin() as conn:
        uid = conn.scalar(sa.text("SELECT id FROM app_user WHERE username = 'worker_a1'"))
        conn.execute(
            sa.text(
                "INSERT INTO problem (building_id, category, description, handling, "
                "reported_by, reported_at, geom) SELECT b.id, 'parking', 'x', 'immediate', :u, "
                "now(), ST_PointOnSurface(b.geom) FROM building b WHERE b.id = :b"
            ),
            {"u": uid, "b": info.buildings["a1"][0]},
        )
        grids = conn.scalar(
            sa.text("SELECT count(*) FROM grid WHERE community_id = :c"), {"c": info.community_a}
        )
    eng.dispose()
    visit = open_page(browser, base, "staff_a", "/app/reports")
    page = visit.page
    page.wait_for_function("document.getElementById('ga-main').dataset.level === 'subdistrict'")
    assert page.locator("#ga-chart-households canvas").count() >= 1
    assert "/app/reports" in page.locator("#ga-nav").inner_html()  # in the menu
    # drill into community A through the API's order (the first bar is the first community)
    sub = [r for r in visit.responses if "/api/dashboard" in r.url][-1].json()
    assert [i["id"] for i in sub["items"]] == [info.community_a]  # staff_a's scope
    # a tap on a bar: ECharts' own click event of the chart (its bars are drawn on a canvas)
    page.evaluate(
        "() => echarts.getInstanceByDom(document.getElementById('ga-chart-problems'))"
        ".trigger('click', {dataIndex: 0})"
    )
    page.wait_for_function("document.getElementById('ga-main').dataset.level === 'community'")
    com = [r for r in visit.responses if "level=community" in r.url][-1].json()
    assert len(com["items"]) == grids
    a1 = next(i for i, g in enumerate(com["items"]) if g["id"] == info.grid_a1)
    assert com["items"][a1]["problems_open"] == 1
    page.evaluate(
        f"() => echarts.getInstanceByDom(document.getElementById('ga-chart-problems'))"
        f".trigger('click', {{dataIndex: {a1}}})"
    )
    page.wait_for_function("document.getElementById('ga-main').dataset.level === 'grid'")
    grid = [r for r in visit.responses if "level=grid" in r.url][-1].json()
    assert grid["items"] == [{"category": "parking", "problems_open": 1, "problems_closed": 0}]
    assert len(page.locator("#ga-crumbs > *").all()) == 3  # subdistrict › community › grid
    assert visit.outside == [] and visit.errors == []
    visit.context.close()
