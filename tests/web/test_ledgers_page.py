"""The ledgers page (/app/ledgers) in Chromium, as committee staff of community A: residents
by building (masked), the resident form (add, edit, a stale edit refused), a special-group
entry, a CSV import previewed before anything is written, export; grid workers refused."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from gis import db
from gis.ledger import idcard
from gis.ledger.templates import TEMPLATES
from tests.api.conftest import People, api, password, people, people_template  # noqa: F401
from tests.conftest import serve_app
from tests.web.test_csp import WATCH_VIOLATIONS

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
LANDSCAPE, PORTRAIT = (1024, 768), (768, 1024)
LOCAL = ("http://127.0.0.1", "data:", "blob:")


@pytest.fixture
def site(people) -> Iterator[tuple[str, People, sa.Engine]]:  # noqa: F811
    """The app over a private copy of the prepared database; the owner's engine to check."""
    url, info = people
    owner = db.create_engine(url, poolclass=sa.NullPool)
    with serve_app(url) as base:
        yield base, info, owner
    owner.dispose()


class Tab:
    """A logged-in page with what it tried to fetch elsewhere and what went wrong."""

    def __init__(
        self, browser, base: str, username: str, viewport=LANDSCAPE, lang: str = "zh"
    ) -> None:
        self.base = base
        self.context = browser.new_context(
            viewport={"width": viewport[0], "height": viewport[1]},
            has_touch=True,
            locale="zh-CN",
            accept_downloads=True,
        )
        self.context.add_init_script(WATCH_VIOLATIONS)
        self.context.add_cookies([{"name": "ga_lang", "value": lang, "url": base}])
        self.outside: list[str] = []
        self.console: list[str] = []
        self.context.route("**/*", self._only_local)
        page = self.page = self.context.new_page()
        page.on("console", lambda m: self.console.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.console.append(str(e)))
        page.goto(f"{base}/login?next=/app/ledgers", wait_until="networkidle")
        page.locator("input[name=username]").fill(username)
        page.locator("input[name=password]").fill(password(username))
        page.locator("button[type=submit]").tap()
        page.wait_for_url(f"{base}/app/ledgers", timeout=15000)

    def _only_local(self, route) -> None:
        if route.request.url.startswith(LOCAL):
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()

    def ready(self) -> Tab:
        self.page.wait_for_selector("#lg-app[data-ready='1']", timeout=15000)
        return self

    def open_building(self, building_id: int) -> None:
        self.page.locator("#lg-building").select_option(str(building_id))
        self.page.wait_for_selector("table.people tbody tr", timeout=15000)

    def errors(self, *expected_status: int) -> list[str]:
        """Console errors, less the failed loads of answers the test provoked on purpose."""
        allowed = tuple(f"status of {s}" for s in expected_status)
        return [m for m in self.console if not (allowed and any(a in m for a in allowed))]

    def check_clean(self, *expected_status: int) -> None:
        assert self.errors(*expected_status) == []
        assert self.outside == []
        assert self.page.evaluate("window.__violations") == []
        assert "ledgers." not in self.page.inner_text("body")  # every text is in the catalogue

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"ledgers-{name}.png"), full_page=True)


def _resident(owner: sa.Engine, **where) -> dict | None:
    clause = " AND ".join(f"{k} = :{k}" for k in where)
    with owner.connect() as conn:
        row = conn.execute(sa.text(f"SELECT * FROM resident WHERE {clause}"), where).first()
    return dict(row._mapping) if row else None


def _scalar(owner: sa.Engine, sql: str, **params):
    with owner.connect() as conn:
        return conn.scalar(sa.text(sql), params)


def _new_id(seq: int, year: int = 1985) -> str:
    return idcard.make_id_number("320102", dt.date(year, 5, 6), seq)


@pytest.mark.parametrize("viewport", [LANDSCAPE, PORTRAIT], ids=["landscape", "portrait"])
def test_a_building_shows_its_residents_masked(browser, site, viewport) -> None:
    base, info, owner = site
    building = info.buildings["a1"][0]
    tab = Tab(browser, base, "staff_a", viewport).ready()
    tab.open_building(building)
    page = tab.page
    expected = _scalar(owner, "SELECT count(*) FROM resident WHERE building_id = :b", b=building)
    assert page.locator("table.people tbody tr").count() == expected > 0
    numbers = page.locator("table.people tbody tr td:nth-child(6)").all_inner_texts()
    phones = [
        p for p in page.locator("table.people tbody tr td:nth-child(7)").all_inner_texts() if p
    ]
    assert all(re.fullmatch(r"\d{3}\*{11}[\dX]{4}", n) for n in numbers), numbers
    assert phones and all(re.fullmatch(r"\d{3}\*{4}\d{4}", p) for p in phones), phones
    assert "与户主关系" in page.inner_text("table.people thead")
    # the labels of the templates, not the stored keys
    relations = set(page.locator("table.people tbody tr td:nth-child(8)").all_inner_texts())
    assert "户主" in relations and "head" not in relations
    tab.shot(f"building-{viewport[0]}x{viewport[1]}")
    # each room's chip counts its people; a tap shows that room only
    first_room = page.locator("#lg-rooms .lg-chip").nth(1)
    room = first_room.get_attribute("data-room")
    first_room.tap()
    rooms = set(page.locator("table.people tbody tr td:nth-child(2)").all_inner_texts())
    assert rooms <= {room}
    page.locator("#lg-rooms .lg-chip").first.tap()
    # a reveal shows the numbers in clear (staff may), and is audited by the API
    page.locator("#lg-reveal-id_number").tap()
    page.wait_for_function(
        "() => /^\\d{17}[\\dX]$/.test(document.querySelector("
        "'table.people tbody tr td:nth-child(6)').textContent)",
        timeout=10000,
    )
    # nothing sticks out sideways but the tables' own scrolling
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport[0]
    tab.check_clean()
    tab.context.close()


def test_add_and_edit_a_resident(browser, site) -> None:
    base, info, owner = site
    building = info.buildings["a1"][1]
    code = _scalar(owner, "SELECT source_id FROM building WHERE id = :b", b=building)
    tab = Tab(browser, base, "staff_a").ready()
    page = tab.page
    # found by its code in the search box (一口清)
    page.locator("#lg-search").fill(code)
    page.locator("#lg-search").press("Enter")
    page.locator("#lg-search-hits .lg-hit").first.tap()
    page.wait_for_selector("table.people tbody tr", timeout=15000)
    assert code in page.inner_text("#lg-building-title")
    assert page.locator("#lg-building").input_value() == str(building)
    room = page.locator("#lg-rooms .lg-chip").nth(1).get_attribute("data-room")
    number = _new_id(901)
    page.locator("#lg-add-resident").tap()
    form = page.locator("#lg-resident-edit")
    form.locator("input[name=name]").fill("测试甲")
    form.locator("input[name=id_number]").fill(number)
    form.locator("input[name=room]").fill(room)
    form.locator("input[name=phone]").fill("13912345678")
    form.locator("select[name=relation]").select_option(label="配偶")
    form.locator("select[name=status]").select_option(label="流动人口")
    tab.shot("resident-form")
    page.locator("#lg-resident-save").tap()
    page.wait_for_selector("#ga-notice.ok", timeout=10000)
    made = _resident(owner, name="测试甲")
    assert made is not None
    assert (made["building_id"], made["room"], made["relation"], made["status"]) == (
        building, room, "spouse", "migrant",
    )  # fmt: skip
    assert made["gender"] == idcard.gender_of(number) and made["version"] == 1
    row = page.locator(f"tr[data-resident='{made['id']}']")
    assert "139****5678" in row.inner_text()
    # edit: change the notes and the relation; the ID number left empty stays as it was
    row.locator("button[data-edit]").tap()
    form = page.locator("#lg-resident-edit")
    assert form.locator("input[name=name]").input_value() == "测试甲"
    form.locator("textarea[name=notes]").fill("新迁入")
    form.locator("select[name=relation]").select_option(label="其他")
    page.locator("#lg-resident-save").tap()
    page.wait_for_function(
        "() => document.getElementById('lg-resident-form').hidden", timeout=10000
    )
    now = _resident(owner, id=made["id"])
    assert (now["notes"], now["relation"], now["version"]) == ("新迁入", "other", 2)
    assert now["id_number_hmac"] == made["id_number_hmac"]
    tab.check_clean()
    tab.context.close()


def test_a_stale_edit_is_refused_and_the_current_values_can_be_reloaded(browser, site) -> None:
    base, info, owner = site
    building = info.buildings["a1"][0]
    rid = info.residents["a1"][0]
    first = Tab(browser, base, "staff_a").ready()
    first.open_building(building)
    first.page.locator(f"tr[data-resident='{rid}'] button[data-edit]").tap()
    first.page.locator("#lg-resident-edit textarea[name=notes]").fill("甲的修改")
    # someone else edits the same record first
    second = Tab(browser, base, "staff_a").ready()
    second.open_building(building)
    second.page.locator(f"tr[data-resident='{rid}'] button[data-edit]").tap()
    second.page.locator("#lg-resident-edit textarea[name=notes]").fill("乙先保存")
    second.page.locator("#lg-resident-save").tap()
    second.page.wait_for_selector("#ga-notice.ok", timeout=10000)
    assert _resident(owner, id=rid)["notes"] == "乙先保存"
    # the first one's save is refused with the stale-record message; nothing is overwritten
    first.page.locator("#lg-resident-save").tap()
    msg = first.page.locator("#lg-resident-msg.error")
    msg.wait_for(timeout=10000)
    assert "记录已被他人修改" in msg.inner_text()
    assert "If-Match" not in msg.inner_text()
    first.shot("stale")
    assert _resident(owner, id=rid)["notes"] == "乙先保存"
    # reload shows the values now stored; saving from there works
    first.page.locator("#lg-resident-reload").tap()
    first.page.wait_for_selector("#lg-resident-msg.ok", timeout=10000)
    notes = first.page.locator("#lg-resident-edit textarea[name=notes]")
    assert notes.input_value() == "乙先保存"
    notes.fill("乙先保存；甲补充")
    first.page.locator("#lg-resident-save").tap()
    first.page.wait_for_selector("#ga-notice.ok", timeout=10000)
    assert _resident(owner, id=rid)["notes"] == "乙先保存；甲补充"
    first.check_clean(412)
    second.check_clean()
    first.context.close()
    second.context.close()


def test_add_edit_and_delete_a_special_group_entry(browser, site) -> None:
    base, info, owner = site
    rid = info.residents["a1"][2]
    name = _scalar(owner, "SELECT name FROM resident WHERE id = :r", r=rid)
    tab = Tab(browser, base, "staff_a").ready()
    page = tab.page
    page.locator("#lg-tab-special_groups").tap()
    page.locator("#lg-add-special_groups").tap()
    page.locator("#lg-pick-name").fill(name)
    page.locator("#lg-pick-find").tap()
    page.wait_for_selector(f"#lg-pick option[value='{rid}']", state="attached", timeout=10000)
    page.locator("#lg-pick").select_option(str(rid))
    form = page.locator("#lg-entry-edit-special_groups")
    categories = form.locator("select[name=category] option").all_inner_texts()
    assert categories[1:] == ["独居老人", "残疾人", "低保", "特困", "重病", "留守儿童", "其他"]
    form.locator("select[name=category]").select_option(label="残疾人")
    form.locator("textarea[name=notes]").fill("轮椅")
    form.locator("button[type=submit]").tap()
    page.wait_for_selector("#ga-notice.ok", timeout=10000)
    with owner.connect() as conn:
        entry = conn.execute(
            sa.text("SELECT id, category, notes FROM special_group WHERE resident_id = :r "
                    "AND category = 'disabled'"),
            {"r": rid},
        ).one()  # fmt: skip
    assert entry.notes == "轮椅"
    row = page.locator(f"#lg-panel-special_groups tr[data-entry='{entry.id}']")
    row.wait_for(timeout=10000)
    assert "残疾人" in row.inner_text() and name in row.inner_text()
    tab.shot("special-groups")
    # delete: two taps, with If-Match
    row.locator("button[data-edit]").tap()
    delete = page.locator("#lg-entry-edit-special_groups button[data-action=delete]")
    delete.tap()
    delete.tap()
    page.wait_for_selector(f"tr[data-entry='{entry.id}']", state="detached", timeout=10000)
    assert _scalar(owner, "SELECT count(*) FROM special_group WHERE id = :i", i=entry.id) == 0
    tab.check_clean()
    tab.context.close()


def _csv(info_code: str) -> tuple[bytes, list[str]]:
    good = [_new_id(801, 1970), _new_id(802, 1971)]
    bad = good[0][:-1] + ("1" if good[0][-1] != "1" else "2")  # a wrong check character
    lines = [
        "姓名,身份证号,联系电话,楼栋,室号,与户主关系",
        f"导入甲,{good[0]},13800001111,{info_code},101,户主",
        f"导入乙,{bad},13800001112,{info_code},102,户主",
        f"导入丙,{good[1]},13800001113,{info_code},103,配偶",
    ]
    return ("\n".join(lines) + "\n").encode("utf-8"), good


def test_import_previews_every_bad_row_before_writing(browser, site, tmp_path) -> None:
    base, info, owner = site
    building = info.buildings["a1"][0]
    code = _scalar(owner, "SELECT source_id FROM building WHERE id = :b", b=building)
    data, _good = _csv(code)
    sheet = tmp_path / "居民.csv"
    sheet.write_bytes(data)
    before = _scalar(owner, "SELECT count(*) FROM resident")
    tab = Tab(browser, base, "staff_a").ready()
    page = tab.page
    page.locator("#lg-tab-sheets").tap()
    page.locator("#lg-sheet").select_option("residents")
    page.locator("#lg-file").set_input_files(str(sheet))
    page.locator("#lg-preview").tap()
    page.wait_for_selector("#lg-counts", timeout=20000)
    errors = page.locator("table.errors tbody tr")
    assert errors.count() == 1
    cells = errors.first.locator("td").all_inner_texts()
    assert cells[0] == "3" and cells[1] == "身份证号" and cells[3]
    counts = {
        k: page.locator(f"#lg-counts [data-count={k}] dd").inner_text()
        for k in ("total_rows", "bad_rows", "added")
    }
    assert counts == {"total_rows": "3", "bad_rows": "1", "added": "2"}
    tab.shot("import-preview")
    assert _scalar(owner, "SELECT count(*) FROM resident") == before
    assert _scalar(owner, "SELECT count(*) FROM resident WHERE name LIKE '导入%'") == 0
    # the valid rows only, after a confirming second tap
    write = page.locator("#lg-import-actions button[data-mode=valid_only]")
    write.tap()
    assert _scalar(owner, "SELECT count(*) FROM resident") == before  # not yet
    write.tap()
    page.wait_for_selector("#lg-import-done", timeout=20000)
    assert page.locator("#lg-counts [data-count=added] dd").inner_text() == "2"
    names = {
        r[0]
        for r in owner.connect().execute(
            sa.text("SELECT name FROM resident WHERE name LIKE '导入%'")
        )
    }
    assert names == {"导入甲", "导入丙"}
    assert _scalar(owner, "SELECT count(*) FROM resident") == before + 2
    tab.check_clean()
    tab.context.close()


def test_export_and_template_download(browser, site) -> None:
    base, _info, _owner = site
    tab = Tab(browser, base, "staff_a").ready()
    page = tab.page
    page.locator("#lg-tab-sheets").tap()
    page.locator("#lg-sheet").select_option("residents")
    with page.expect_download() as got:
        page.locator("#lg-export-csv").tap()
    body = Path(got.value.path()).read_bytes().decode("utf-8-sig")
    assert body.splitlines()[0].startswith("姓名,性别,出生日期,身份证号")
    assert len(body.splitlines()) > 10
    with page.expect_download() as got:
        page.locator("#lg-template-xlsx").tap()
    assert Path(got.value.path()).read_bytes()[:2] == b"PK"
    assert got.value.suggested_filename.endswith(".xlsx")
    tab.check_clean()
    tab.context.close()


def test_a_grid_worker_gets_the_refusal_page(browser, site) -> None:
    base, _info, _owner = site
    context = browser.new_context(viewport={"width": 768, "height": 1024}, locale="zh-CN")
    page = context.new_page()
    page.goto(f"{base}/login?next=/app/ledgers", wait_until="networkidle")
    page.locator("input[name=username]").fill("worker_a1")
    page.locator("input[name=password]").fill(password("worker_a1"))
    with page.expect_response(lambda r: r.url.endswith("/app/ledgers")) as answer:
        page.locator("button[type=submit]").click()
    assert answer.value.status == 403
    page.wait_for_selector("#ga-error-message")
    assert page.inner_text("#ga-error-message") == "您的账号没有此权限"
    assert page.locator("#lg-app").count() == 0
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ledgers-refused.png"))
    context.close()


def test_every_ledger_lists_the_community_and_an_organisation_is_added(browser, site) -> None:
    base, info, owner = site
    tab = Tab(browser, base, "staff_a").ready()
    page = tab.page
    for ledger, table in (("special_groups", "special_group"), ("backbone", "backbone")):
        total = _scalar(
            owner,
            f"SELECT count(*) FROM {table} e JOIN resident r ON r.id = e.resident_id "
            "JOIN building b ON b.id = r.building_id WHERE b.community_id = :c",
            c=info.community_a,
        )
        page.locator(f"#lg-tab-{ledger}").tap()
        rows = page.locator(f"#lg-panel-{ledger} table.entries tbody tr")
        rows.first.wait_for(timeout=10000)
        assert rows.count() == min(total, 50) > 0
        assert f"共 {total} 条" in page.inner_text(f"#lg-panel-{ledger} .lg-pager")
    page.locator("#lg-tab-organisations").tap()
    page.locator("#lg-add-organisations").tap()
    form = page.locator("#lg-entry-edit-organisations")
    assert form.locator("select[name=kind] option").all_inner_texts()[1:] == [
        "企业", "社会组织", "机关事业单位", "商户", "学校", "医疗机构", "其他",
    ]  # fmt: skip
    form.locator("input[name=name]").fill("社区卫生服务站")
    form.locator("select[name=kind]").select_option(label="医疗机构")
    form.locator("input[name=phone]").fill("13700001234")
    form.locator("input[name=address]").fill("中山路 1 号")
    form.locator("button[type=submit]").tap()
    page.wait_for_selector("#lg-panel-organisations table.entries tbody tr", timeout=10000)
    with owner.connect() as conn:
        org = conn.execute(sa.text("SELECT * FROM organisation")).one()
    assert (org.name, org.kind, org.community_id) == ("社区卫生服务站", "medical", info.community_a)
    row = page.locator(f"tr[data-entry='{org.id}']").inner_text()
    assert "医疗机构" in row and "137****1234" in row
    tab.shot("organisations")
    tab.check_clean()
    tab.context.close()


def test_the_page_in_english(browser, site) -> None:
    base, info, _owner = site
    tab = Tab(browser, base, "staff_a", PORTRAIT, lang="en").ready()
    page = tab.page
    tabs = page.locator(".lg-tab").all_inner_texts()
    assert tabs == [
        "Residents", "Special groups", "Key persons", "Backbone", "Organisations",
        "Import / export",
    ]  # fmt: skip
    tab.open_building(info.buildings["a1"][0])
    assert "Relation to the head" in page.inner_text("table.people thead")
    tab.shot("english")
    tab.check_clean()
    tab.context.close()


def test_choices_come_from_the_templates(api) -> None:  # noqa: F811
    a, _info, _url = api
    r = a.get("staff_a", "/api/ledgers/choices")
    assert r.status_code == 200
    body = r.json()
    for name, template in TEMPLATES.items():
        expected = {
            c.key: [{"value": key, "label": label} for label, key in c.choices]
            for c in template.columns
            if c.kind == "choice"
        }
        assert body[name] == expected
    assert body["residents"]["relation"][0] == {"value": "head", "label": "户主"}
    assert a.get("planner_a", "/api/ledgers/choices").status_code == 403
    # the page itself: staff open it, a planner and a grid worker are refused (as a page)
    assert a.get("staff_a", "/app/ledgers").status_code == 200
    for other in ("planner_a", "worker_a1", "leader_a1"):
        refused = a.get(other, "/app/ledgers")
        assert refused.status_code == 403 and "<html" in refused.text


def _has_cjk(text: str) -> bool:
    return re.search(r"[\u3400-\u9fff]", text) is not None


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_import_reasons_in_the_users_language_only(browser, site, tmp_path, lang) -> None:
    """A bad row's reason is shown in the user's language alone, its code on the row."""
    base, info, owner = site
    code = _scalar(owner, "SELECT source_id FROM building WHERE id = :b", b=info.buildings["a1"][0])
    good = _new_id(811, 1972)
    bad = good[:-1] + ("1" if good[-1] != "1" else "2")
    lines = [
        "姓名,身份证号,联系电话,楼栋,室号,与户主关系,籍贯",
        f"错行甲,{bad},13800002221,{code},101,户主,江苏",
        f"错行乙,{_new_id(812, 1973)},1380000,{code},102,户主,江苏",
    ]
    sheet = tmp_path / "居民.csv"
    sheet.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tab = Tab(browser, base, "staff_a", lang=lang).ready()
    page = tab.page
    page.locator("#lg-tab-sheets").tap()
    page.locator("#lg-sheet").select_option("residents")
    page.locator("#lg-file").set_input_files(str(sheet))
    page.locator("#lg-preview").tap()
    page.wait_for_selector("#lg-counts", timeout=20000)
    rows = page.evaluate(
        """() => [...document.querySelectorAll('table.errors tbody tr')].map(tr =>
          [tr.dataset.code, tr.querySelectorAll('td')[3].textContent])"""
    )
    expected = {
        "zh": [
            ["id_check_char", f"身份证号校验位错误（应为 {good[-1]}）"],
            ["phone_mobile", "手机号应为11位，以13–19开头"],
        ],
        "en": [
            ["id_check_char", f"Wrong check character: it should be {good[-1]}"],
            ["phone_mobile", "Mobile numbers have 11 digits starting 13–19"],
        ],
    }[lang]
    assert rows == expected
    warnings = page.locator(".lg-warning").all_inner_texts()
    assert len(warnings) == 1 and "籍贯" in warnings[0]  # the sheet's own heading, quoted
    shown = " ".join(r[1] for r in rows) + warnings[0].replace("籍贯", "")
    if lang == "en":
        assert not _has_cjk(shown)
    else:
        assert not re.search(r"[A-Za-z]{3,}", shown)  # no English sentence in brackets
    tab.shot(f"import-reasons-{lang}")
    tab.check_clean()
    tab.context.close()
