"""/app/grid over HTTP: the page embeds only the buildings of the user's scope."""

from __future__ import annotations

import re

import sqlalchemy as sa
from fastapi.testclient import TestClient

from gis import db
from gis.settings import Settings

BUILDING_ID = re.compile(r'"building_id":\s*(\d+)')


def _owner_ids(url: str, sql: str, **params) -> set[int]:
    """Ids read as the owner (no row-level security), to compare the page against."""
    eng = db.create_engine(url, poolclass=sa.NullPool)
    try:
        with eng.connect() as conn:
            return {r[0] for r in conn.execute(sa.text(sql), params)}
    finally:
        eng.dispose()


def _a1_buildings(url: str, grid_id: int) -> set[int]:
    return _owner_ids(url, "SELECT building_id FROM building_path WHERE grid_id = :g", g=grid_id)


def _source_ids(url: str, ids: set[int]) -> set[str]:
    eng = db.create_engine(url, poolclass=sa.NullPool)
    try:
        with eng.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT source_id FROM building WHERE id = ANY(:i)"), {"i": list(ids)}
            )
            return {r[0] for r in rows if r[0]}
    finally:
        eng.dispose()


def test_a_grid_worker_gets_their_grid_and_nothing_else(api) -> None:
    client, info, url = api
    r = client.get("worker_a1", "/app/grid")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    a1 = _a1_buildings(url, info.grid_a1)
    shown = {int(x) for x in BUILDING_ID.findall(html)}
    assert shown == a1 and a1
    outside = _owner_ids(url, "SELECT id FROM building") - a1
    # no source id (the building's code) of another grid anywhere in the page
    leaked = [s for s in _source_ids(url, outside) if f'"{s}"' in html]
    assert leaked == []
    # no person on the page itself: the card fetches them from the API
    assert not re.search(r"\d{3}\*+\d{4}", html)  # no ID or phone number, even masked
    # the furniture: metric-only scale, locate-me from our own vendor folder, the credit
    assert "L.control.scale({imperial: false" in html and "imperial: true" not in html
    assert "/static/vendor/locatecontrol/dist/L.Control.Locate.min.js" in html
    assert "ODbL" in html and 'id="ga-today"' in html
    assert "打开巡查页面" in html and 'href="/app/patrol"' in html  # today's work: the patrol page
    assert "/static/app/grid.js" in html and "leaflet-tooltip" not in html
    assert client.client.get("/static/vendor/locatecontrol/dist/L.Control.Locate.min.js").is_success


def test_streets_are_cut_to_the_grid(api) -> None:
    client, _info, url = api
    html = client.get("worker_a1", "/app/grid").text
    edges_drawn = html.count('"length_m"')
    total = len(_owner_ids(url, "SELECT id FROM walk_edge"))
    assert 0 < edges_drawn < total


def test_a_building_leader_gets_one_building(api) -> None:
    client, info, _url = api
    html = client.get("leader_a1", "/app/grid").text
    assert {int(x) for x in BUILDING_ID.findall(html)} == {info.buildings["a1"][0]}


def test_committee_staff_get_their_community(api) -> None:
    client, info, url = api
    html = client.get("staff_a", "/app/grid").text
    mine = _owner_ids(
        url, "SELECT building_id FROM building_path WHERE community_id = :c", c=info.community_a
    )
    assert {int(x) for x in BUILDING_ID.findall(html)} == mine


def test_the_cap_is_said(people) -> None:
    from api.app import create_app

    url, _info = people
    with TestClient(create_app(Settings(database_url=url, map_feature_limit=3))) as c:
        token = c.post(
            "/api/auth/login", json={"username": "worker_a1", "password": "pw-worker_a1-2026"}
        ).json()["token"]
        html = c.get("/app/grid", headers={"Authorization": f"Bearer {token}"}).text
    assert len(set(BUILDING_ID.findall(html))) == 3
    assert 'id="gd-note"' in html and "只显示前 3 栋" in html


def test_planners_and_visitors_are_refused_with_a_page(api) -> None:
    client, _info, _url = api
    r = client.get("planner_a", "/app/grid")
    assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
    client.client.cookies.clear()  # the logins above left their cookie
    r = client.client.get("/app/grid", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=/app/grid")


def test_the_page_speaks_english_on_request(api) -> None:
    client, _info, _url = api
    html = client.get("worker_a1", "/app/grid", headers={"Cookie": "ga_lang=en"}).text
    assert "My grid" in html and "Today&#x27;s patrol" in html
    assert "OpenStreetMap contributors, ODbL" in html


def test_names_are_data_never_template_source(api) -> None:
    # Folium's GeoJson writes its features into a script that branca compiles as Jinja:
    # a building named "{{ 7*7 }}" came out as "49" (and worse could run on the server).
    # The layers of this page carry their features as JSON data blocks instead.
    client, info, url = api
    eng = db.create_engine(url, poolclass=sa.NullPool)
    name = "{{ 7*7 }}{% if true %}楼X{% endif %}"
    with eng.begin() as conn:
        conn.execute(sa.text("UPDATE building SET name = :n WHERE id = :b"),
                     {"n": name, "b": info.buildings["a1"][0]})  # fmt: skip
    eng.dispose()
    html = client.get("worker_a1", "/app/grid").text
    assert f'"label": "{name}"' in html
    assert '"label": "49' not in html and "楼X" not in html.replace(name, "")
