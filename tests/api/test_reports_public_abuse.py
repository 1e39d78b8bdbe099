"""The public pages of issue 15 under attack: each test replays a finding of the security
review (a withheld board count read back, a building's reports blocked by one address, the
phone/ID filter got round, IPv6 rotation, reports on a closed round, a gate tripped by an
anonymous report, the SQL functions trusting the app, parallel requests past a limit).
"""

from __future__ import annotations

import secrets
import threading

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from starlette.requests import Request

from api.routes.patrol import clock
from api.routes.reports_public import _addr
from gis import db
from gis.reports import voice
from gis.suppression import WITHHELD
from tests.api.test_reports_voice_rating import NOW, _insert_problem, _sheets


@pytest.fixture
def fixed(api):
    client, info, url = api
    client.client.app.dependency_overrides[clock] = lambda: NOW
    eng = db.create_engine(url, poolclass=sa.NullPool)
    yield client, info, eng
    eng.dispose()


def _public(api, host: str = "198.51.100.7") -> TestClient:
    return TestClient(api.client.app, client=(host, 40000))


def _report(client: TestClient, token: str, category: str = "parking", text: str = "乱停车"):
    return client.post(
        f"/api/public/sheets/{token}/problem", json={"category": category, "description": text}
    )


def _age_throttle(eng, hours: int) -> None:
    """As if ``hours`` had passed for the rate limits."""
    with eng.begin() as conn:
        conn.execute(sa.text(f"UPDATE public_throttle SET at = at - interval '{hours} hours'"))


def test_own_reports_do_not_give_back_a_withheld_board_count(fixed) -> None:
    api, info, eng = fixed
    cid = info.community_a
    s = _sheets(api, info, 1)[0]
    for _ in range(2):
        _insert_problem(eng, info.buildings["a1"][0], "parking")
    board = _public(api).get(f"/api/public/board/{cid}").json()
    assert board["problems"]["rows"]["parking"]["opened"] == WITHHELD
    # the attack: four reports of one's own, then read the board again
    for _ in range(4):
        assert _report(_public(api), s["token"]).status_code == 201
    again = _public(api).get(f"/api/public/board/{cid}").json()
    rows = again["problems"]["rows"]
    assert rows["parking"]["opened"] == WITHHELD and rows["parking"]["open_now"] == WITHHELD
    assert again == board  # the same snapshot, dated: it does not move within the day
    assert again["at"].startswith(NOW.date().isoformat()) and "T00:00:00" in again["at"]
    # staff accept the reports today: still not before tomorrow's snapshot
    with eng.begin() as conn:
        uid = conn.scalar(sa.text("SELECT id FROM app_user WHERE username = 'worker_a1'"))
        ids = conn.execute(sa.text("SELECT problem_id FROM resident_problem")).scalars().all()
        conn.execute(sa.text(
            "UPDATE problem SET status = 'accepted' WHERE id = ANY(:i)"), {"i": ids})  # fmt: skip
        conn.execute(sa.text(
            "INSERT INTO problem_event (problem_id, user_id, at, from_status, to_status) "
            "SELECT unnest(CAST(:i AS bigint[])), :u, now(), 'reported', 'accepted'"),
            {"i": ids, "u": uid})  # fmt: skip
    assert _public(api).get(f"/api/public/board/{cid}").json() == board
    # two days later (the reports and their acceptance before the cut), they count
    with eng.begin() as conn:
        conn.execute(sa.text(
            "UPDATE problem SET reported_at = reported_at - interval '2 days' "
            "WHERE id = ANY(:i)"), {"i": ids})  # fmt: skip
        conn.execute(sa.text(
            "UPDATE problem_event SET at = at - interval '2 days' WHERE problem_id = ANY(:i)"),
            {"i": ids})  # fmt: skip
    later = _public(api).get(f"/api/public/board/{cid}").json()["problems"]["rows"]
    assert later["parking"]["opened"] == 6 and later["parking"]["open_now"] == 6


def test_one_address_cannot_block_a_buildings_reports(fixed) -> None:
    api, info, eng = fixed
    s = _sheets(api, info, 1)[0]
    flooder = _public(api, "203.0.113.9")
    for _ in range(4):  # 5 an hour, 20 a day on one sheet from one address
        for _ in range(5):
            assert _report(flooder, s["token"], "other", "噪音").status_code == 201
        _age_throttle(eng, 2)
    assert _report(flooder, s["token"], "other", "噪音").status_code == 429
    # a neighbour on another address still gets through
    assert _report(_public(api, "203.0.113.10"), s["token"], "lift", "电梯坏了").status_code == 201


@pytest.mark.parametrize(
    "text",
    [
        "电话 139 1234 5678",
        "１３９１２３４５６７８",
        "身份证 3201 0219 9001 0112 34",
        "王小明 5栋302 电话139-1234-5678",
    ],
)
def test_spaced_dashed_and_full_width_numbers_are_refused(fixed, text) -> None:
    api, info, eng = fixed
    s = _sheets(api, info, 1)[0]
    zh = _report(_public(api), s["token"], "other", text)
    assert zh.status_code == 422 and "电话" in zh.json()["message"], zh.text
    en = _public(api).post(
        f"/api/public/sheets/{s['token']}/problem",
        json={"category": "other", "description": text},
        headers={"Accept-Language": "en"},
    )
    assert en.status_code == 422 and "phone" in en.json()["message"]
    assert eng.connect().scalar(sa.text("SELECT count(*) FROM resident_problem")) == 0


def test_the_filter_keeps_ordinary_numbers_and_normalises() -> None:
    assert voice.clean_public_text("5栋302室门口漏水 2 天") == "5栋302室门口漏水 2 天"
    assert voice.clean_public_text("３号楼") == "3号楼"  # stored as NFKC
    with pytest.raises(Exception, match="HTML"):
        voice.clean_public_text("＜script＞")  # full-width brackets are < > after NFKC


def _request(host: str) -> Request:
    return Request({"type": "http", "client": (host, 1), "headers": []})


def test_ipv6_addresses_count_by_their_64(fixed) -> None:
    assert _addr(_request("2001:db8:1:2::1")) == _addr(_request("2001:db8:1:2:ffff::9"))
    assert _addr(_request("2001:db8:1:2::1")) == "2001:db8:1:2::/64"
    assert _addr(_request("2001:db8:1:3::1")) != _addr(_request("2001:db8:1:2::1"))
    assert _addr(_request("::ffff:198.51.100.7")) == "198.51.100.7"
    api, info, eng = fixed
    s = _sheets(api, info, 1)[0]
    for i in range(5):
        assert _report(_public(api, f"2001:db8:1:2::{i + 1}"), s["token"]).status_code == 201
    assert _report(_public(api, "2001:db8:1:2:abcd::1"), s["token"]).status_code == 429
    assert _report(_public(api, "2001:db8:1:3::1"), s["token"]).status_code == 201


def test_a_closed_rounds_sheet_takes_no_reports(fixed) -> None:
    api, info, eng = fixed
    s = _sheets(api, info, 1)[0]
    with eng.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE survey_round SET opens_at = now() - interval '10 days', "
                "closes_at = now() - interval '1 hour' WHERE id = :r"
            ),
            {"r": s["round_id"]},
        )
    r = _report(_public(api), s["token"])
    assert r.status_code == 409 and r.json()["status"] == "sheet_closed"
    assert "不再受理" in r.json()["message"]
    en = _public(api).get(f"/v/{s['token']}", headers={"Accept-Language": "en"})
    assert en.status_code == 200 and 'id="ga-sheet-over"' in en.text
    assert 'id="ga-problem"' not in en.text and "takes no more problem reports" in en.text
    assert eng.connect().scalar(sa.text("SELECT count(*) FROM resident_problem")) == 0


def test_an_anonymous_report_trips_a_gate_only_once_accepted(fixed) -> None:
    api, info, eng = fixed
    cid = info.community_a
    s = _sheets(api, info, 1)[0]
    url = f"/api/reports/communities/{cid}/rating"
    assert "no_public_safety_problem" not in api.get("staff_a", url).json()["failed_gates"]
    assert _report(_public(api), s["token"], "public_safety", "楼道堆物").status_code == 201
    got = api.get("staff_a", url).json()
    assert "no_public_safety_problem" not in got["failed_gates"]
    with eng.begin() as conn:
        conn.execute(sa.text("UPDATE problem SET status = 'accepted' WHERE id IN "
                             "(SELECT problem_id FROM resident_problem)"))  # fmt: skip
    assert "no_public_safety_problem" in api.get("staff_a", url).json()["failed_gates"]


def test_anonymous_reports_move_the_response_score_only_once_accepted(fixed) -> None:
    api, info, eng = fixed
    url = f"/api/reports/communities/{info.community_a}/rating"

    def reported() -> int:
        response = api.get("staff_a", url).json()["indicators"]["urgent_response"]
        return response["detail"]["reported"]

    before = reported()
    s = _sheets(api, info, 1)[0]
    for text in ("车乱停", "楼道堆物", "路灯坏了"):
        assert _report(_public(api), s["token"], "parking", text).status_code == 201
    assert reported() == before  # a flood of QR reports alone changes nothing
    with eng.begin() as conn:
        conn.execute(sa.text("UPDATE problem SET status = 'accepted' WHERE id IN "
                             "(SELECT problem_id FROM resident_problem)"))  # fmt: skip
    assert reported() == before + 3


def test_the_functions_check_the_text_themselves(fixed) -> None:
    api, info, eng = fixed
    s = _sheets(api, info, 1)[0]
    engine = api.client.app.state.engine  # the app's role, as the routes use it
    sql = sa.text("SELECT status FROM ga_public_problem(:t, :a, 'other', :d)")
    for i, text in enumerate(("<b>x</b>", "a &amp; b", "x" * 501)):
        with engine.begin() as conn:
            got = conn.scalar(sql, {"t": s["token"], "a": f"192.0.2.{i}", "d": text})
        assert got == "bad_text", text
    assert eng.connect().scalar(sa.text("SELECT count(*) FROM problem WHERE description "
                                        "LIKE '%<b>%'")) == 0  # fmt: skip


def test_parallel_guesses_do_not_overshoot_the_limit(fixed) -> None:
    api, info, eng = fixed
    s = _sheets(api, info, 1)[0]
    engine = sa.create_engine(api.client.app.state.engine.url, poolclass=sa.NullPool)
    n, limit = 40, 30  # ADDR_ANSWERS of migration 0012
    barrier = threading.Barrier(n)
    got: list[str] = []
    lock = threading.Lock()

    def guess() -> None:
        code = "".join(secrets.choice(voice.CODE_ALPHABET) for _ in range(8))
        with engine.connect() as conn:
            barrier.wait()
            status = conn.scalar(
                sa.text("SELECT ga_public_answer(:t, :c, '192.0.2.77', '{3,3,3,3}')"),
                {"t": s["token"], "c": code},
            )
            conn.commit()
        with lock:
            got.append(status)

    threads = [threading.Thread(target=guess) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine.dispose()
    assert len(got) == n
    assert sum(g != "rate_limited" for g in got) == limit
    assert got.count("rate_limited") == n - limit


def test_the_qr_address_comes_from_the_setting_and_a_local_one_is_flagged(fixed) -> None:
    assert voice.is_local_url("http://127.0.0.1:8000/v/x")
    assert voice.is_local_url("http://192.168.1.5/v/x") and voice.is_local_url("http://[::1]/")
    assert voice.is_local_url("http://testserver/v/x")  # a bare machine name
    assert not voice.is_local_url("https://grid.example.gov.cn/v/x")
    api, info, eng = fixed
    s = _sheets(api, info, 1)[0]
    page = f"/app/reports/sheets/{s['id']}"
    local = api.get("staff_a", page, headers={"Accept-Language": "en"})
    assert local.status_code == 200, local.text
    assert 'id="ga-sheet-warn"' in local.text and "public_base_url" in local.text
    assert f"http://testserver/v/{s['token']}" in local.text
    settings = api.client.app.state.settings
    old = settings.public_base_url
    settings.public_base_url = "https://grid.example.gov.cn/"
    try:
        got = api.get("staff_a", page)
        # a forged Host no longer chooses the address printed on the stairwell
        forged = api.get("staff_a", page, headers={"Host": "evil.example.com"})
    finally:
        settings.public_base_url = old
    assert got.status_code == 200 and 'id="ga-sheet-warn"' not in got.text
    for text in (got.text, forged.text):
        assert f"https://grid.example.gov.cn/v/{s['token']}" in text
        assert "evil.example.com" not in text
