"""Reach over HTTP: compute, per-building answers, coverage, what-if, and refusals."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.app import create_app
from gis import db
from gis.io.pipeline import import_file
from gis.reach.service import compute_and_store
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


CATEGORY = "activity_room"


def _walks(conn) -> dict[int, float]:
    """Building id → walk to CATEGORY in the stored run (inf: beyond the cap or no path)."""
    rows = conn.execute(
        sa.text(
            "SELECT building_id, coalesce(walk_m, 'Infinity') FROM building_reach_latest "
            "WHERE category = :c"
        ),
        {"c": CATEGORY},
    ).all()
    return {r[0]: float(r[1]) for r in rows}


def test_a_planners_what_if_counts_their_community_only(api) -> None:
    """The gain a planner of community A is shown equals an independent count in A (build
    the facility, recompute, compare the runs), and differs from the city's."""
    client, info, url = api
    eng = db.create_engine(url, poolclass=sa.NullPool)
    with eng.begin() as conn:
        compute_and_store(conn, categories=[CATEGORY])
        before = _walks(conn)
        # inside a building of A, as near as can be to a building of another community:
        # its reach crosses the boundary, so the city gains more than A does
        lon, lat = conn.execute(
            sa.text("""
            SELECT ST_X(ST_PointOnSurface(a.geom)), ST_Y(ST_PointOnSurface(a.geom))
              FROM building a
             WHERE a.community_id = :a AND a.households > 0
             ORDER BY (SELECT min(ST_Distance(a.geom, o.geom)) FROM building o
                        WHERE o.community_id IS DISTINCT FROM :a AND o.households > 0), a.id
             LIMIT 1"""),
            {"a": info.community_a},
        ).one()
        households = dict(conn.execute(sa.text("SELECT id, households FROM building")).all())
        community = dict(conn.execute(sa.text("SELECT id, community_id FROM building")).all())
    point = {"lon": lon, "lat": lat, "category": CATEGORY, "limit_min": 10}
    planner = client.post("planner_a", "/api/reach/what-if", json=point)
    admin = client.post("admin", "/api/reach/what-if", json=point)
    assert planner.status_code == admin.status_code == 200, planner.text
    mine, city = planner.json(), admin.json()
    assert (mine["area"], city["area"]) == ("scope", "city")

    # the independent count: the facility built there, and reach computed again
    with eng.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO facility (categories, kind, name, geom, source_file, source_id) "
                "VALUES (ARRAY[:c], 'test', 'new', ST_SetSRID(ST_MakePoint(:x, :y), 4326), "
                "'test', 'what-if')"
            ),
            {"c": CATEGORY, "x": lon, "y": lat},
        )
        compute_and_store(conn, categories=[CATEGORY])
        after = _walks(conn)
        in_a = conn.scalar(
            sa.text("SELECT sum(households) FROM building WHERE community_id = :a"),
            {"a": info.community_a},
        )
    eng.dispose()
    gained = [b for b in before if before[b] > 800 >= after[b] and households[b] > 0]
    gained_in_a = sum(households[b] for b in gained if community[b] == info.community_a)
    gained_in_city = sum(households[b] for b in gained)
    assert mine["households_gained"] == gained_in_a > 0
    assert city["households_gained"] == gained_in_city
    assert gained_in_city > gained_in_a  # the test's point reaches beyond A
    assert mine["households_in_area"] == in_a
    covered_in_a = sum(
        households[b] for b in before if before[b] <= 800 and community[b] == info.community_a
    )
    assert mine["households_covered_before"] == covered_in_a
    assert mine["households_covered_after"] == covered_in_a + gained_in_a


def test_a_planners_siting_stays_in_their_community(api) -> None:
    client, info, url = api
    eng = db.create_engine(url, poolclass=sa.NullPool)
    with eng.begin() as conn:
        compute_and_store(conn, categories=[CATEGORY])
    body = {"category": CATEGORY, "k": 3, "limit_min": 10}
    mine = client.post("planner_a", "/api/reach/siting", json=body).json()
    city = client.post("admin", "/api/reach/siting", json=body).json()
    assert (mine["area"], city["area"]) == ("scope", "city")
    assert (
        mine["sites"] and mine["households_uncovered_before"] < city["households_uncovered_before"]
    )
    with eng.connect() as conn:
        uncovered_in_a = conn.scalar(
            sa.text("""
            SELECT sum(b.households) FROM building b JOIN building_reach_latest r
                ON r.building_id = b.id AND r.category = :c
             WHERE b.community_id = :a AND b.households > 0
               AND coalesce(r.walk_m, 'Infinity') > 800"""),
            {"c": CATEGORY, "a": info.community_a},
        )
        for site in mine["sites"]:
            # in community A (or on a street along its edge)
            assert conn.scalar(
                sa.text(
                    "SELECT ST_DWithin(geom::geography, ST_SetSRID(ST_MakePoint(:x, :y), "
                    "4326)::geography, 31) FROM community WHERE id = :a"
                ),
                {"x": site["lon"], "y": site["lat"], "a": info.community_a},
            ), site
    eng.dispose()
    assert mine["households_uncovered_before"] == uncovered_in_a
    assert mine["sites"][-1]["households_gained_total"] <= uncovered_in_a
    # each suggestion's gain is the planner's what-if there (A's households only)
    first = mine["sites"][0]
    gain = client.post(
        "planner_a",
        "/api/reach/what-if",
        json={"lon": first["lon"], "lat": first["lat"], "category": CATEGORY},
    ).json()
    assert gain["households_gained"] == first["households_gained"]
