"""What a person meets when something is missing or breaks: a page in their language.

Found by a walk-through as users: an unknown page showed {"detail": "Not Found"}, a cut
survey link showed "请求有误：token", and an unexpected error the plain English text
"Internal Server Error".
"""

from __future__ import annotations

from fastapi.testclient import TestClient

from gis import i18n

PAGE = {"accept": "text/html"}


def test_an_unknown_page_is_a_page_in_the_users_language(api) -> None:
    client, _info, _url = api
    r = client.get("worker_a1", "/app/nonexistent", headers={"cookie": "ga_lang=zh"})
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert i18n.t("error.NotFound", "zh") in r.text and '"detail"' not in r.text
    r = client.get("worker_a1", "/app/nonexistent", headers={"cookie": "ga_lang=en"})
    assert i18n.t("error.NotFound", "en") in r.text


def test_an_unknown_api_path_answers_json_with_a_message(api) -> None:
    client, _info, _url = api
    r = client.get("worker_a1", "/api/nonexistent", headers={"accept-language": "zh-CN"})
    assert r.status_code == 404
    body = r.json()
    assert body["error"] == "NotFound" and body["message"] == i18n.t("error.NotFound", "zh")
    r = client.client.delete("/api/auth/me")  # a method the path does not take
    assert r.status_code == 405 and r.json()["error"] == "MethodNotAllowed"


def test_a_cut_survey_link_says_what_the_resident_should_do(api) -> None:
    client, _info, _url = api
    for token in ("notarealtoken", "x" * 40, "has spaces%20in"):
        r = client.client.get(f"/v/{token}", headers={"cookie": "ga_lang=zh"})
        assert r.status_code == 404, token
        assert i18n.t("voice.no_sheet", "zh") in r.text and "token" not in r.text


def test_an_unexpected_error_is_logged_and_shown_in_the_users_language(api) -> None:
    client, _info, _url = api
    app = client.client.app

    def broken() -> None:
        raise RuntimeError("a defect of ours")

    app.add_api_route("/app/broken-for-test", broken, methods=["GET"])
    app.add_api_route("/api/broken-for-test", broken, methods=["GET"])
    with TestClient(app, raise_server_exceptions=False) as raw:
        page = raw.get("/app/broken-for-test", headers={"cookie": "ga_lang=zh"})
        assert page.status_code == 500 and page.headers["content-type"].startswith("text/html")
        assert i18n.t("error.Internal", "zh") in page.text
        assert "Internal Server Error" not in page.text and "defect" not in page.text
        answer = raw.get("/api/broken-for-test", headers={"accept-language": "en"})
        assert answer.status_code == 500
        assert answer.json()["message"] == i18n.t("error.Internal", "en")
        assert "defect" not in answer.text
