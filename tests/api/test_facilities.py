"""Facilities by hand over HTTP: versions guard every edit; reach sees the change at once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.app import create_app
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
