"""Reach over HTTP: compute, per-building answers, coverage, what-if, and refusals."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.app import create_app
from gis import db
from gis.io.pipeline import import_file
from gis.settings import Settings
from tests.conftest import NANJING, login


@pytest.fixture
def client(db_url, engine) -> Iterator[TestClient]:
    import_file(engine, NANJING)
    with TestClient(create_app(Settings(database_url=db_url))) as c:
        login(c, engine)
        yield c


def test_reach_round_trip(client, engine) -> None:
    assert client.get("/api/reach/coverage").status_code == 404  # nothing computed yet
    run = client.post("/api/reach/runs", json={"categories": ["shopping", "police_room"]})
    assert run.status_code == 200, run.text
    assert run.json()["buildings"] == 1277
    with engine.connect() as conn:
        bid, walk_m = conn.execute(
            sa.text(
                "SELECT building_id, walk_m FROM building_reach_latest "
                "WHERE category = 'shopping' AND walk_m < 'Infinity' LIMIT 1"
            )
        ).one()
    one = client.get(f"/api/reach/buildings/{bid}").json()
    shop = next(c for c in one["categories"] if c["category"] == "shopping")
    assert shop["status"] == "reached"
    assert shop["walk_m"] == pytest.approx(walk_m, abs=0.01)
    assert shop["walk_s"] == pytest.approx(walk_m / 80 * 60, abs=0.1)
    cov = client.get("/api/reach/coverage?limit_min=10").json()
    assert [c["category"] for c in cov["categories"]] == ["shopping", "police_room"]
    gain = client.post(
        "/api/reach/what-if", json={"lon": 118.78, "lat": 32.043, "category": "police_room"}
    ).json()
    police = cov["categories"][1]["households_covered"]
    assert gain["households_covered_before"] == police
    assert gain["households_covered_after"] == police + gain["households_gained"]


@pytest.mark.parametrize(
    ("method", "url", "body", "status"),
    [
        ("get", "/api/reach/buildings/999999", None, 404),
        ("get", "/api/reach/buildings/0", None, 422),
        ("get", "/api/reach/coverage?limit_min=0", None, 422),
        ("post", "/api/reach/what-if", {"lon": 500, "lat": 32, "category": "shopping"}, 422),
        ("post", "/api/reach/what-if", {"lon": 118.78, "lat": 32.04, "category": "spa"}, 422),
        ("post", "/api/reach/runs", {"categories": ["spa"]}, 422),
        ("post", "/api/reach/runs", {"speed_m_per_min": 0}, 422),
    ],
)
def test_reach_refusals(client, method, url, body, status) -> None:
    r = getattr(client, method)(url, json=body) if body else getattr(client, method)(url)
    assert r.status_code == status, r.text
    assert "detail" in r.json()


def test_isochrone_endpoint(client, engine) -> None:
    with engine.connect() as conn:
        fid = conn.scalar(sa.text("SELECT min(id) FROM facility"))
    feature = client.get(f"/api/reach/isochrones/{fid}?limit_min=10").json()
    assert feature["geometry"]["type"] in ("Polygon", "MultiPolygon")
    lon, lat = (
        feature["geometry"]["coordinates"][0][0][:2]
        if feature["geometry"]["type"] == "Polygon"
        else feature["geometry"]["coordinates"][0][0][0][:2]
    )
    assert 118.7 < lon < 118.9 and 31.9 < lat < 32.2  # back in WGS 84
    assert client.get("/api/reach/isochrones/999999").status_code == 404


def test_siting_endpoint(client) -> None:
    r = client.post("/api/reach/siting", json={"category": "activity_room", "k": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["sites"]) == 2
    first, second = body["sites"]
    assert first["households_gained"] >= second["households_gained"] > 0
    assert (
        second["households_gained_total"]
        == first["households_gained"] + second["households_gained"]
        <= body["households_uncovered_before"]
    )
    # building the first suggested site gains what the what-if says
    gain = client.post(
        "/api/reach/what-if",
        json={"lon": first["lon"], "lat": first["lat"], "category": "activity_room"},
    ).json()
    assert gain["households_gained"] == first["households_gained"]
    assert client.post("/api/reach/siting", json={"category": "x", "k": 2}).status_code == 422
    assert (
        client.post("/api/reach/siting", json={"category": "shopping", "k": 0}).status_code == 422
    )


def test_area_coverage_and_gaps_endpoints(client) -> None:
    assert client.post("/api/reach/runs", json={"categories": ["police_room"]}).status_code == 200
    overall = client.get("/api/reach/coverage").json()
    police = overall["categories"][0]["households_covered"]
    gap = client.get("/api/reach/gaps?category=police_room&limit=5000").json()
    assert gap["households_in_gaps"] == overall["households"] - police
    assert client.get("/api/reach/coverage/community").json() == []  # none imported
    assert client.get("/api/reach/coverage/street").status_code == 422
    assert client.get("/api/reach/gaps?category=shopping").status_code == 404  # not computed
    assert client.get("/api/reach/gaps?category=nope").status_code == 422


def test_city_wide_reach_runs_are_for_admins(api) -> None:
    """Security finding 5: committee staff of one community started a city-wide run.

    A run computes every building and replaces the last run; it cannot be limited to one
    community, so only admins start one.
    """
    client, _info, url = api
    for username in ("staff_b", "staff_a"):
        r = client.post(username, "/api/reach/runs", json={"categories": ["shopping"]})
        assert r.status_code == 403, r.text
        assert "only an admin" in r.json()["detail"]
    eng = db.create_engine(url, poolclass=sa.NullPool)
    with eng.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM reach_run")) == 0  # nothing ran
    r = client.post("admin", "/api/reach/runs", json={"categories": ["shopping"]})
    assert r.status_code == 200, r.text
    with eng.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM building_reach")) == r.json()["buildings"]
    eng.dispose()
