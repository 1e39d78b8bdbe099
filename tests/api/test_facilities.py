"""Facilities by hand over HTTP: versions guard every edit; reach sees the change at once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.app import create_app
from gis import db, facilities
from gis.io.pipeline import import_file
from gis.settings import Settings
from tests.conftest import NANJING, login


@pytest.fixture
def client(db_url, engine) -> Iterator[TestClient]:
    import_file(engine, NANJING)
    with TestClient(create_app(Settings(database_url=db_url))) as c:
        login(c, engine)
        yield c


def test_create_edit_delete_with_versions(client, engine) -> None:
    point = {"lon": 118.781, "lat": 32.0445}
    before = client.post("/api/reach/what-if", json={**point, "category": "activity_room"})
    assert before.json()["households_gained"] > 0
    made = client.post(
        "/api/facilities",
        json={**point, "categories": ["activity_room"], "name": "<b>新</b>活动室"},
    )
    assert made.status_code == 201, made.text
    fid, etag = made.json()["id"], made.headers["etag"]
    # the cached reach model notices the new facility: nothing left to gain there
    after = client.post("/api/reach/what-if", json={**point, "category": "activity_room"})
    assert after.json()["households_gained"] == 0

    assert client.patch(f"/api/facilities/{fid}", json={"name": "x"}).status_code == 428
    moved = client.patch(
        f"/api/facilities/{fid}", json={"lon": 118.79, "lat": 32.04}, headers={"If-Match": etag}
    )
    assert moved.status_code == 200, moved.text
    assert moved.headers["etag"] != etag
    stale = client.patch(
        f"/api/facilities/{fid}", json={"name": "late"}, headers={"If-Match": etag}
    )
    assert stale.status_code == 412
    with engine.connect() as conn:
        name, x = conn.execute(
            sa.text("SELECT name, ST_X(geom) FROM facility WHERE id = :i"), {"i": fid}
        ).one()
    assert name == "<b>新</b>活动室" and x == pytest.approx(118.79)  # the stale edit lost
    assert client.delete(f"/api/facilities/{fid}", headers={"If-Match": etag}).status_code == 412
    fresh = client.get(f"/api/facilities/{fid}").headers["etag"]
    assert client.delete(f"/api/facilities/{fid}", headers={"If-Match": fresh}).status_code == 204
    assert client.get(f"/api/facilities/{fid}").status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"lon": 118.78, "lat": 32.04, "categories": []},
        {"lon": 118.78, "lat": 32.04, "categories": ["casino"]},
        {"lon": 518.78, "lat": 32.04, "categories": ["library"]},
        {"lat": 32.04, "categories": ["library"]},
        {"lon": "east", "lat": 32.04, "categories": ["library"]},
    ],
)
def test_bad_facilities_are_refused(client, engine, body) -> None:
    with engine.connect() as conn:
        before = conn.scalar(sa.text("SELECT count(*) FROM facility"))
    r = client.post("/api/facilities", json=body)
    assert r.status_code == 422 and "detail" in r.json()
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM facility")) == before


def test_edits_to_imported_facilities_survive_a_reimport(client, engine) -> None:
    with engine.connect() as conn:
        (a, a_sid), (b, b_sid) = conn.execute(
            sa.text(
                "SELECT id, source_id FROM facility WHERE source_file = :f ORDER BY id LIMIT 2"
            ),
            {"f": NANJING.name},
        ).all()
    etag = client.get(f"/api/facilities/{a}").headers["etag"]
    moved = client.patch(
        f"/api/facilities/{a}",
        json={"lon": 118.785, "lat": 32.045, "name": "挪过的"},
        headers={"If-Match": etag},
    )
    assert moved.status_code == 200, moved.text
    etag = client.get(f"/api/facilities/{b}").headers["etag"]
    assert client.delete(f"/api/facilities/{b}", headers={"If-Match": etag}).status_code == 204
    report = import_file(engine, NANJING)
    assert report.counts["facility"].added == 0  # the removed one does not come back
    assert report.counts["facility"].updated == 0
    with engine.connect() as conn:
        kept = conn.execute(
            sa.text("SELECT name, ST_X(geom), ST_Y(geom) FROM facility WHERE id = :id"),
            {"id": a},
        ).one()
        back = conn.scalar(
            sa.text("SELECT count(*) FROM facility WHERE source_id = :s"), {"s": b_sid}
        )
    assert kept[0] == "挪过的"
    assert kept[1:] == pytest.approx((118.785, 32.045))
    assert back == 0


# --- area scope (security finding 5): committee staff edit only their own community ------


def _read(url: str, sql: str, **params):
    eng = db.create_engine(url, poolclass=sa.NullPool)
    try:
        with eng.connect() as conn:
            return conn.execute(sa.text(sql), params).all()
    finally:
        eng.dispose()


def _snapshot(url: str) -> tuple[list, list]:
    """Every facility as stored, and every withdrawn source id."""
    return (
        _read(
            url,
            "SELECT id, categories, name, ST_AsEWKT(geom), edited_at, xmin::text "
            "FROM facility ORDER BY id",
        ),
        _read(url, "SELECT source_file, source_id FROM facility_withdrawn ORDER BY 1, 2"),
    )


def _imported_facility_in(url: str, community_id: int):
    """An OSM facility whose position lies in the community: id, lon, lat."""
    return _read(
        url,
        "SELECT f.id, ST_X(ST_PointOnSurface(f.geom)), ST_Y(ST_PointOnSurface(f.geom)) "
        "FROM facility f JOIN community c ON ST_Covers(c.geom, ST_PointOnSurface(f.geom)) "
        "WHERE c.id = :c AND f.source_file = :sf ORDER BY f.id LIMIT 1",
        c=community_id,
        sf=NANJING.name,
    )[0]


def _points_in(url: str, community_id: int, n: int = 2) -> list[dict[str, float]]:
    rows = _read(
        url,
        "SELECT ST_X(p.geom), ST_Y(p.geom) FROM community c, "
        "ST_Dump(ST_GeneratePoints(c.geom, :n, 7)) p WHERE c.id = :c",
        c=community_id,
        n=n,
    )
    return [{"lon": x, "lat": y} for x, y in rows]


def test_staff_cannot_edit_facilities_of_another_community(api) -> None:
    client, info, url = api
    fid, _lon, _lat = _imported_facility_in(url, info.community_a)
    before = _snapshot(url)
    etag = client.get("staff_b", f"/api/facilities/{fid}").headers["etag"]  # public read
    missing = client.patch(
        "staff_b", "/api/facilities/999999999", json={"name": "x"}, headers={"If-Match": etag}
    )
    assert missing.status_code == 404
    elsewhere = _points_in(url, info.community_b)[0]
    attempts = [
        ("patch", {"json": {"name": "改名"}}),
        ("patch", {"json": {"categories": ["library"]}}),
        ("patch", {"json": elsewhere}),  # moving it away into staff_b's own community
        ("delete", {}),
    ]
    for method, kw in attempts:
        r = getattr(client, method)(
            "staff_b", f"/api/facilities/{fid}", headers={"If-Match": etag}, **kw
        )
        # exactly what a facility that does not exist answers: its existence is not revealed
        assert r.status_code == 404, (method, kw, r.text)
        assert r.json()["error"] == missing.json()["error"]
        assert r.json()["detail"] == missing.json()["detail"].replace("999999999", str(fid))
    # nothing written: the deleted OSM facility would have stayed withdrawn on re-import
    assert _snapshot(url) == before


def test_staff_cannot_add_a_facility_in_another_community(api) -> None:
    client, info, url = api
    before = _snapshot(url)
    inside_a = _points_in(url, info.community_a)[0]
    r = client.post(
        "staff_b", "/api/facilities", json={**inside_a, "categories": ["library"], "name": "越界"}
    )
    assert r.status_code == 403, r.text
    assert "outside your area" in r.json()["detail"]
    assert _snapshot(url) == before


def test_staff_cannot_move_its_own_facility_into_another_community(api) -> None:
    client, info, url = api
    home = _points_in(url, info.community_b)[0]
    made = client.post("staff_b", "/api/facilities", json={**home, "categories": ["library"]})
    assert made.status_code == 201, made.text
    fid, etag = made.json()["id"], made.headers["etag"]
    before = _snapshot(url)
    inside_a = _points_in(url, info.community_a)[0]
    r = client.patch(
        "staff_b",
        f"/api/facilities/{fid}",
        json={**inside_a, "name": "挪走"},
        headers={"If-Match": etag},
    )
    assert r.status_code == 403, r.text
    assert "the new position" in r.json()["detail"]
    assert "outside your area" in r.json()["detail"]
    assert _snapshot(url) == before  # neither moved nor renamed
    stored = client.get("staff_b", f"/api/facilities/{fid}").json()
    assert (stored["lon"], stored["lat"], stored["name"]) == pytest.approx(
        (home["lon"], home["lat"], None)
    )


def test_staff_edits_facilities_of_its_own_community(api) -> None:
    client, info, url = api
    fid, _lon, _lat = _imported_facility_in(url, info.community_a)
    here, there = _points_in(url, info.community_a)
    etag = client.get("staff_a", f"/api/facilities/{fid}").headers["etag"]
    moved = client.patch(
        "staff_a",
        f"/api/facilities/{fid}",
        json={**here, "name": "社区图书室"},
        headers={"If-Match": etag},
    )
    assert moved.status_code == 200, moved.text
    assert (moved.json()["lon"], moved.json()["lat"]) == pytest.approx((here["lon"], here["lat"]))
    assert moved.json()["name"] == "社区图书室"
    made = client.post("staff_a", "/api/facilities", json={**there, "categories": ["library"]})
    assert made.status_code == 201, made.text
    r = client.delete(
        "staff_a", f"/api/facilities/{fid}", headers={"If-Match": moved.headers["etag"]}
    )
    assert r.status_code == 204, r.text
    assert _read(url, "SELECT count(*) FROM facility WHERE id = :i", i=fid)[0][0] == 0
    assert len(_read(url, "SELECT 1 FROM facility_withdrawn")) == 1  # stays out on re-import


# --- the search box finds the facilities of the user's areas only ------------------------


def _place_named(url: str, name: str, building_id: int) -> int:
    eng = db.create_engine(url, poolclass=sa.NullPool)
    try:
        with eng.begin() as conn:
            return int(
                conn.scalar(
                    sa.text(
                        "INSERT INTO facility (categories, kind, name, geom, source_file, "
                        "source_id) SELECT ARRAY['library'], 'manual', :n, "
                        "ST_PointOnSurface(geom), 'test', :n FROM building WHERE id = :b "
                        "RETURNING id"
                    ),
                    {"n": name, "b": building_id},
                )
            )
    finally:
        eng.dispose()


def test_search_finds_facilities_in_the_users_areas_only(api) -> None:
    client, info, url = api
    # one facility inside grid A1, one at community B's building farthest from A's
    near = _place_named(url, "测试阅览室甲", info.buildings["a1"][0])
    (far_building, metres), *_ = _read(
        url,
        "SELECT b.id, (SELECT min(ST_Distance(ST_PointOnSurface(b.geom)::geography, "
        "x.geom::geography))"
        "FROM building x WHERE x.community_id = :a) FROM building b "
        "WHERE b.community_id = :c ORDER BY 2 DESC LIMIT 1",
        a=info.community_a,
        c=info.community_b,
    )
    assert metres > facilities.AROUND_M  # beyond the walk around any of A's buildings
    far = _place_named(url, "测试阅览室乙", far_building)

    def found(username: str) -> set[int]:
        r = client.get(username, "/api/search", params={"q": "测试阅览室"})
        assert r.status_code == 200, r.text
        return {h["id"] for h in r.json()["results"] if h["kind"] == "facility"}

    assert found("admin") == {near, far}
    assert found("worker_a1") == {near}
    assert found("staff_a") == {near}
    assert found("staff_b") == {far}
