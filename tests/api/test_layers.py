"""The HTTP API over the Nanjing import: GeoJSON pages, bbox filters, errors that explain."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.app import create_app
from gis.settings import Settings
from tests.conftest import logged_in


@pytest.fixture(scope="module")
def client(nanjing_url: str, nanjing_engine) -> Iterator[TestClient]:
    """A logged-in client: map layers and figures are behind the login."""
    with TestClient(create_app(Settings(database_url=nanjing_url))) as c:
        logged_in(c, nanjing_engine, "layers_admin")
        yield c


def test_layers_and_figures_need_a_login(nanjing_url: str) -> None:
    with TestClient(create_app(Settings(database_url=nanjing_url))) as anonymous:
        for path in ("/api/layers/buildings", "/api/summary", "/api/reach/coverage"):
            assert anonymous.get(path).status_code == 401, path
        assert anonymous.get("/api/health").status_code == 200


def test_summary_matches_the_database(client, nanjing_engine) -> None:
    body = client.get("/api/summary").json()
    with nanjing_engine.connect() as conn:
        buildings, households = conn.execute(
            sa.text("SELECT count(*), sum(households) FROM building")
        ).one()
    assert body["buildings"] == buildings == 1277
    assert body["households"] == households
    assert body["dwellings"] == households  # one estimated dwelling per household
    west, south, east, north = body["bbox"]
    assert 118.75 < west < east < 118.81 and 32.02 < south < north < 32.06


def test_pages_walk_the_whole_layer_without_repeats(client) -> None:
    seen: list[int] = []
    url = "/api/layers/buildings?limit=500"
    while url:
        page = client.get(url).json()
        assert page["numberMatched"] == 1277
        seen.extend(f["id"] for f in page["features"])
        nxt = [link["href"] for link in page.get("links", []) if link["rel"] == "next"]
        url = nxt[0].replace("http://testserver", "") if nxt else ""
    assert len(seen) == 1277 and len(set(seen)) == 1277


def test_bbox_returns_exactly_the_features_that_touch_it(client, nanjing_engine) -> None:
    box = (118.775, 32.04, 118.785, 32.045)
    page = client.get(
        "/api/layers/buildings", params={"bbox": ",".join(map(str, box)), "limit": 10000}
    ).json()
    with nanjing_engine.connect() as conn:
        expected = set(
            conn.execute(
                sa.text(
                    "SELECT id FROM building WHERE geom && ST_MakeEnvelope(:a, :b, :c, :d, 4326)"
                ),
                dict(zip("abcd", box, strict=True)),
            ).scalars()
        )
    assert {f["id"] for f in page["features"]} == expected
    assert 0 < len(expected) < 1277
    feature = page["features"][0]
    assert feature["geometry"]["type"] == "MultiPolygon"
    assert {"households", "levels", "area_m2", "building_type"} <= set(feature["properties"])


@pytest.mark.parametrize(
    ("url", "status", "needle"),
    [
        ("/api/layers/buildings?bbox=1,2", 422, "four numbers"),
        ("/api/layers/buildings?bbox=10,50,5,60", 422, "west < east"),
        ("/api/layers/buildings?limit=0", 422, "limit"),
        ("/api/layers/buildings?limit=100001", 422, "limit"),
        ("/api/layers/residents", 422, "layer"),
        ("/api/layers/buildings?offset=-1", 422, "offset"),
        ("/map?bbox=a,b,c,d", 422, "四个数"),  # a page: the reason in the user's language
    ],
)
def test_bad_requests_say_what_is_wrong(client, url, status, needle) -> None:
    r = client.get(url)
    assert r.status_code == status
    assert needle in r.text


def test_walk_edges_and_facilities_layers(client) -> None:
    edges = client.get("/api/layers/walk_edges?limit=10000").json()
    assert edges["numberMatched"] == edges["numberReturned"] > 500
    assert all(f["properties"]["length_m"] > 0 for f in edges["features"])
    fac = client.get("/api/layers/facilities?limit=10000").json()
    assert fac["numberMatched"] > 100
    assert all(f["properties"]["categories"] for f in fac["features"])


def test_health(client) -> None:
    assert client.get("/api/health").json() == {"status": "ok"}


def test_imports_need_a_login_and_show_no_server_paths(engine, db_url, tmp_path) -> None:
    import json

    from gis.io.pipeline import import_file
    from tests.conftest import login

    lon, lat, d = 118.78, 32.04, 0.0004
    ring = [[lon, lat], [lon + d, lat], [lon + d, lat + d], [lon, lat + d], [lon, lat]]
    path = tmp_path / "secret-folder" / "buildings.geojson"
    path.parent.mkdir()
    feature = {
        "type": "Feature",
        "properties": {"id": "x", "levels": 6},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    import_file(engine, path)
    with TestClient(create_app(Settings(database_url=db_url))) as c:
        r = c.get("/api/imports")
        assert r.status_code == 401 and "log in" in r.json()["detail"]
        assert str(tmp_path) not in r.text
        login(c, engine)
        r = c.get("/api/imports")
    assert r.status_code == 200
    run = r.json()[0]
    assert run["source_file"] == "buildings.geojson"
    assert run["report"]["path"] == "buildings.geojson"
    assert run["report"]["counts"]["building"]["added"] == 1
    assert str(tmp_path) not in r.text and "secret-folder" not in r.text


def test_openapi_schema_is_served(client) -> None:
    schema = client.get("/openapi.json").json()
    assert "/api/layers/{layer}" in schema["paths"]


def test_database_down_is_503_not_500() -> None:
    from tests.conftest import free_port

    url = f"postgresql+psycopg://nobody:x@127.0.0.1:{free_port()}/gridatlas"
    with TestClient(create_app(Settings(database_url=url)), raise_server_exceptions=False) as c:
        for path in ("/api/summary", "/api/layers/buildings"):
            r = c.get(path)
            assert r.status_code == 503, (path, r.status_code, r.text)
            assert r.headers["retry-after"] == "5"
            assert "try again" in r.json()["detail"]
