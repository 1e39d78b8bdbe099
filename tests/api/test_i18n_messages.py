"""Refusals a page can meet come in the reader's language, with their own words (issue 12).

Each fixed message is checked over HTTP in Chinese and in English: the text is the
catalogue's for that language, and no word of the other language reaches the screen.
The walk at the end reads the code: every refusal raised with a catalogue key names a key
that exists and fills each of its parameters, and the modules behind the ledger, upload and
patrol pages raise no bad-input or conflict refusal without one (bar the few listed, which
no page can send).
"""

from __future__ import annotations

import ast
import csv
import datetime as dt
import io
import json
import re
from pathlib import Path

import pytest

from gis import errors, i18n
from gis.ledger import idcard
from gis.ledger.sheetfile import MAX_CELL_CHARS, MAX_FILE_BYTES, MAX_GRID_ROWS

ROOT = Path(__file__).resolve().parents[2]
LANGS = ("zh", "en")
HAN = re.compile(r"[\u4e00-\u9fff]")
ENGLISH_WORD = re.compile(r"[A-Za-z]{4,}")


def _lang(lang: str) -> dict[str, str]:
    return {"Accept-Language": lang}


def _is_in_one_language(text: str, lang: str) -> bool:
    """Chinese text has no English word in it; English text has no Chinese character."""
    return not ENGLISH_WORD.search(text) if lang == "zh" else not HAN.search(text)


def _resident(info, **extra) -> dict:
    number = idcard.make_id_number("320102", dt.date(1958, 7, 9), 333)
    return {"name": "测试居民", "id_number": number, "building_id": info.buildings["a1"][0],
            "room": "402", "relation": "head", **extra}  # fmt: skip


# --- problems: the statuses of a refused change are labels, not codes ---------------------


@pytest.mark.parametrize("lang", LANGS)
def test_a_refused_problem_change_names_the_statuses_in_the_readers_language(api, lang):
    a, info, _url = api
    r = a.post("worker_a1", "/api/problems",
               json={"category": "lift", "description": "电梯停运",
                     "building_id": info.buildings["a1"][0]})  # fmt: skip
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    refused = a.post("staff_a", f"/api/problems/{pid}/status", json={"to": "verified"},
                     headers=_lang(lang))  # fmt: skip
    assert refused.status_code == 409
    message = refused.json()["message"]
    assert message == i18n.t(
        "patrol.bad_transition",
        lang,
        status=i18n.t("problems.status.reported", lang),
        to=i18n.t("problems.status.verified", lang),
    )
    assert "reported" not in message and "verified" not in message  # the codes
    assert _is_in_one_language(message, lang), message
    assert a.get("staff_a", f"/api/problems/{pid}").json()["status"] == "reported"


# --- the resident form: ID and phone numbers, required fields, duplicates -----------------


@pytest.mark.parametrize("lang", LANGS)
def test_the_resident_form_says_what_is_wrong_with_an_id_number(api, lang):
    a, info, _url = api
    good = _resident(info)["id_number"]
    wrong = good[:-1] + ("0" if good[-1] != "0" else "1")
    r = a.post("staff_a", "/api/residents", json=_resident(info, id_number=wrong),
               headers=_lang(lang))  # fmt: skip
    assert r.status_code == 422
    expected = i18n.t("import_reason.id_check_char", lang, expected=good[-1])
    assert r.json()["message"] == expected and _is_in_one_language(expected, lang)
    short = a.post("staff_a", "/api/residents", json=_resident(info, id_number="3201021958"),
                   headers=_lang(lang))  # fmt: skip
    assert short.json()["message"] == i18n.t("import_reason.id_length", lang, n=10)
    assert "校验" in r.json()["detail"] and "check character" in r.json()["detail"]  # for APIs


@pytest.mark.parametrize("lang", LANGS)
def test_the_resident_form_says_what_is_wrong_with_a_phone_number(api, lang):
    a, info, _url = api
    r = a.post("staff_a", "/api/residents", json=_resident(info, phone="1391234"),
               headers=_lang(lang))  # fmt: skip
    assert r.status_code == 422
    assert r.json()["message"] == i18n.t("import_reason.phone_mobile", lang)
    rid = info.residents["a1"][1]
    etag = a.get("staff_a", f"/api/residents/{rid}").headers["etag"]
    edit = a.patch("staff_a", f"/api/residents/{rid}", json={"phone": "12-34 abc"},
                   headers={"If-Match": etag, **_lang(lang)})  # fmt: skip
    assert edit.status_code == 422
    assert edit.json()["message"] == i18n.t("import_reason.phone_characters", lang)
    search = a.get("staff_a", "/api/residents?phone=999", headers=_lang(lang))
    assert search.status_code == 422
    assert search.json()["message"] == i18n.t("import_reason.phone_format", lang)


@pytest.mark.parametrize("lang", LANGS)
def test_an_emptied_or_overlong_field_is_named_in_the_readers_language(api, lang):
    a, info, _url = api
    rid = info.residents["a1"][1]
    etag = a.get("staff_a", f"/api/residents/{rid}").headers["etag"]
    head = {"If-Match": etag, **_lang(lang)}
    blank = a.patch("staff_a", f"/api/residents/{rid}", json={"room": "   "}, headers=head)
    assert blank.status_code == 422
    room = i18n.t("ledgers.col_room", lang)
    assert blank.json()["message"] == i18n.t("form.required", lang, field=room)
    emptied = a.patch("staff_a", f"/api/residents/{rid}", json={"name": None}, headers=head)
    assert emptied.status_code == 422
    name = i18n.t("ledgers.col_name", lang)
    assert emptied.json()["message"] == i18n.t("form.required", lang, field=name)
    control = a.patch("staff_a", f"/api/residents/{rid}", json={"notes": "a\x01b"}, headers=head)
    assert control.status_code == 422
    notes = i18n.t("ledgers.col_notes", lang)
    assert control.json()["message"] == i18n.t("form.control_chars", lang, field=notes)
    for r in (blank, emptied, control):
        assert _is_in_one_language(r.json()["message"], lang), r.json()["message"]
    assert a.get("staff_a", f"/api/residents/{rid}").headers["etag"] == etag  # nothing written


@pytest.mark.parametrize("lang", LANGS)
def test_a_duplicate_ledger_entry_and_deleting_a_leader_are_explained(api, lang):
    a, info, _url = api
    rid = info.residents["a1"][3]
    entry = {"resident_id": rid, "category": "disabled"}
    assert a.post("staff_a", "/api/ledgers/special_groups", json=entry).status_code == 201
    dup = a.post("staff_a", "/api/ledgers/special_groups", json=entry, headers=_lang(lang))
    assert dup.status_code == 409
    assert dup.json()["message"] == i18n.t("form.duplicate_entry", lang)
    # a resident who leads an area is not deleted: the refusal says what to do first
    building = info.buildings["a1"][0]
    path = a.get("staff_a", f"/api/buildings/{building}/path").json()
    group = next(p["id"] for p in path if p["level"] == "residents_group")
    leader = info.residents["a1"][0]
    put = a.put("staff_a", f"/api/leaders/residents_group/{group}", json={"resident_id": leader})
    assert put.status_code in (200, 201), put.text
    etag = a.get("staff_a", f"/api/residents/{leader}").headers["etag"]
    gone = a.delete("staff_a", f"/api/residents/{leader}",
                    headers={"If-Match": etag, **_lang(lang)})  # fmt: skip
    assert gone.status_code == 409
    assert gone.json()["message"] == i18n.t("form.resident_leads", lang)
    assert a.get("staff_a", f"/api/residents/{leader}").status_code == 200


# --- uploads: empty, too large, too many rows, a cell too long ----------------------------


def _upload(a, data: bytes, name: str, lang: str):
    return a.post("staff_a", "/api/ledgers/residents/import", params={"mode": "preview"},
                  files={"file": (name, data, "text/csv")}, headers=_lang(lang))  # fmt: skip


@pytest.mark.parametrize("lang", LANGS)
def test_upload_refusals_say_why_in_the_readers_language(api, lang):
    a, _info, _url = api
    head = "姓名,身份证号,楼栋,室号\r\n".encode()
    empty = _upload(a, b"", "p.csv", lang)
    assert empty.status_code == 422
    assert empty.json()["message"] == i18n.t("upload.empty", lang)
    big = _upload(a, head + b"a" * MAX_FILE_BYTES, "p.csv", lang)
    assert big.status_code == 413
    assert big.json()["message"] == i18n.t("upload.too_large", lang, mb=10)
    rows = _upload(a, head + b"a,,,\r\n" * MAX_GRID_ROWS, "p.csv", lang)
    assert rows.status_code == 413
    expected = i18n.t("upload.too_many_rows", lang, max=f"{MAX_GRID_ROWS:,}", rows="20,000")
    assert rows.json()["message"] == expected and "20,010" in expected
    buf = io.StringIO(newline="")
    csv.writer(buf).writerows([["姓名", "身份证号", "楼栋", "室号"], ["名" * (MAX_CELL_CHARS + 1)]])
    cell = _upload(a, buf.getvalue().encode(), "p.csv", lang)
    assert cell.status_code == 413
    assert cell.json()["message"] == i18n.t(
        "upload.cell_too_long_row", lang, row=2, max=f"{MAX_CELL_CHARS:,}"
    )
    for r in (empty, big, rows, cell):
        assert _is_in_one_language(r.json()["message"], lang), r.json()["message"]


# --- the city map and a hand-edited address ------------------------------------------------


def _shows(html: str, text: str) -> bool:
    """``text`` is in the page as HTML or as a JSON string of a script (layer names)."""
    return text in html or json.dumps(text)[1:-1] in html


def test_the_city_map_is_in_the_readers_language(api):
    a, _info, _url = api
    zh = a.get("planner_a", "/map", headers=_lang("zh")).text
    en = a.get("planner_a", "/map", headers={"Cookie": "ga_lang=en"}).text
    assert _shows(zh, "步行路网") and not _shows(zh, "Walk network")
    assert _shows(en, "Walk network") and not _shows(en, "步行路网")
    assert _shows(en, i18n.t("site_map.title", "en")) and not _shows(en, "户数(估算)")
    for page in (zh, en):
        assert not _shows(page, "楼栋 Buildings") and not _shows(page, "设施 Facilities")
    assert not _shows(en, "楼栋") and _shows(zh, "楼栋")
    legend = re.search(r'id="ga-legend"><b>([^<]*)</b>', en)
    assert legend and legend.group(1) == "Households"


@pytest.mark.parametrize("lang", LANGS)
def test_an_unknown_parameter_is_named_in_the_readers_language(api, lang):
    a, _info, _url = api
    r = a.get("staff_a", "/api/residents?colour=red", headers=_lang(lang))
    assert r.status_code == 422
    assert r.json()["message"] == i18n.t("request.unknown_params", lang, names="colour")


@pytest.mark.parametrize("lang", LANGS)
def test_reach_before_its_first_run_says_so_not_not_found(api, lang):
    a, _info, _url = api
    r = a.get("planner_a", "/api/reach/scoped/coverage?category=health_station",
              headers=_lang(lang))  # fmt: skip
    assert r.status_code == 404  # the prepared database has no reach run
    assert r.json()["message"] == i18n.t("reach_refusal.no_run", lang)
    assert r.json()["message"] != i18n.t("error.NotFound", lang)
    assert _is_in_one_language(r.json()["message"], lang)


def test_the_cli_names_facility_categories_in_both_languages(people):
    """Operators read the CLI: a category is its code, its Chinese and its English label."""
    from gis.categories import category_labels
    from tests.conftest import cli

    url, _info = people
    r = cli("reach", "--category", "health_station", "--category", "police_room", db_url=url)
    assert r.returncode == 0, r.stderr
    zh, en = category_labels("zh"), category_labels("en")
    for code in ("health_station", "police_room"):
        line = next(x for x in r.stdout.splitlines() if x.strip().startswith(code))
        assert line.rstrip().endswith(f"{zh[code]} / {en[code]}"), line
        assert zh[code] != en[code]


# --- the walk: keys exist and are filled; page modules raise no keyless refusal -----------

ERROR_CLASSES = {
    name
    for name, obj in vars(errors).items()
    if isinstance(obj, type) and issubclass(obj, errors.GridAtlasError)
}
# the refusals a person acts on; NotFound, Forbidden and StaleVersion read right as their
# kind's general message ("not found in your area", "your account may not do this", …)
NEED_OWN_WORDS = {"InvalidInput", "InvalidGeometry", "Conflict", "TooLarge"}
PAGE_MODULES = (
    "gis/ledger/store.py",
    "gis/ledger/entries.py",
    "gis/ledger/sheetfile.py",
    "api/routes/sheets.py",
    "gis/patrol/area_store.py",
    "gis/patrol/tour_store.py",
    "gis/patrol/problems.py",
)
# raised only for what no page sends (the pages' forms offer choices, not free text, for
# these, or the API alone takes the parameter): the kind's general message is enough
API_ONLY = {
    "gis/ledger/store.py": (
        "{field} must be one of",
        "{field} {data[field]} disagrees",
        "gender and birth date follow",
        "building_id must be",
        "missing ",
        "area level must be",
    ),
    "gis/ledger/entries.py": ("{self.choice_field} is required", "an organisation needs"),
    "gis/patrol/problems.py": (
        "give both lon and lat",
        "a problem needs a building_id",
        "category is one of",
        "handling is one of",
        "status is one of",
        "the overdue filter",
    ),
}


def _calls(path: Path):
    """Every call of an error class in ``path``: (class name, first argument, the call)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        is_error = isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        if is_error and node.func.id in ERROR_CLASSES:
            first = ast.unparse(node.args[0]) if node.args else ""
            yield node.func.id, first.strip("f\"'"), node


def test_every_catalogue_key_raised_exists_and_is_filled() -> None:
    catalogue = i18n.catalogue()
    checked = 0
    for folder in ("gis", "api"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for _name, _first, call in _calls(path):
                kw = {k.arg: k.value for k in call.keywords}
                key = kw.get("key")
                if not isinstance(key, ast.Constant) or not isinstance(key.value, str):
                    continue  # no key, or one computed at run time (a Reason's)
                where = f"{path.relative_to(ROOT)}:{call.lineno}"
                assert key.value in catalogue, f"{where}: no message {key.value}"
                if None in kw:  # **params: the names are not known here
                    continue
                for lang, text in catalogue[key.value].items():
                    wanted = set(re.findall(r"{(\w+)", text))
                    assert wanted <= set(kw) - {"key"}, f"{where}: {lang} needs {wanted}"
                checked += 1
    assert checked > 40  # the walk saw the code it is meant to see


@pytest.mark.parametrize("module", PAGE_MODULES)
def test_page_modules_raise_no_refusal_without_its_own_words(module) -> None:
    allowed = API_ONLY.get(module, ())
    keyless = [
        f"{module}:{call.lineno} {name}({first[:60]})"
        for name, first, call in _calls(ROOT / module)
        if name in NEED_OWN_WORDS
        and not any(k.arg == "key" for k in call.keywords)
        and not first.startswith(allowed)
    ]
    assert keyless == []
