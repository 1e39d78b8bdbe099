"""Delineation over HTTP: a run, its groups as GeoJSON, the quality report, bad requests."""

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


def test_run_then_read_groups_and_report(client) -> None:
    assert client.get("/api/delineation/runs/latest").status_code == 404
    made = client.post("/api/delineation/runs", json={})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["quality"]["gap_m2"] == 0 and body["quality"]["overlap_m2"] == 0
    latest = client.get("/api/delineation/runs/latest").json()
    assert latest["id"] == body["run_id"]
    page = client.get("/api/layers/residents_groups?limit=10000").json()
    assert page["numberMatched"] == body["quality"]["groups"]
    total = sum(f["properties"]["households"] for f in page["features"])
    assert total == body["quality"]["households"]
    units = client.get("/api/layers/units?limit=1").json()
    assert units["numberMatched"] == body["quality"]["units"]


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"group_households": 0}, 422),
        ({"group_households": "many"}, 422),
        ({"community": "NOPE"}, 404),
    ],
)
def test_bad_requests_are_explained(client, payload, status) -> None:
    client.post("/api/delineation/runs", json={})
    r = client.post("/api/delineation/runs", json=payload)
    assert r.status_code == status, r.text
    assert r.json()["detail"]


def test_coverage_per_residents_group_adds_up(client) -> None:
    client.post("/api/delineation/runs", json={})
    assert client.post("/api/reach/runs", json={}).status_code in (200, 201)
    rows = client.get("/api/reach/coverage/residents_group").json()
    groups = client.get("/api/layers/residents_groups?limit=10000").json()
    assert len(rows) == groups["numberMatched"]
    summary = client.get("/api/reach/coverage").json()
    assert sum(r["households"] for r in rows) == summary["households"]
    assert (
        sum(r["households_with_every_category"] for r in rows)
        == (summary["households_with_every_category"])
    )
    for cat in summary["categories"]:
        covered = sum(r["categories"].get(cat["category"], 0) for r in rows)
        assert covered == cat["households_covered"], cat
    assert all("居民小组" in r["name"] for r in rows)


def test_moves_and_locks_over_http(client) -> None:
    client.post("/api/delineation/runs", json={})
    units = client.get("/api/layers/units?limit=10000").json()["features"]
    clusters = client.get("/api/layers/building_clusters?limit=10000").json()["features"]
    assert client.post("/api/delineation/moves", json={"kind": "house"}).status_code == 422
    missing = client.post("/api/delineation/moves", json={"kind": "unit", "id": 1, "to": 10**9})
    assert missing.status_code == 404
    # a unit moved to a cluster on the far side of the map: refused, with the reason
    far = max(clusters, key=lambda f: f["id"])["id"]
    near = min(units, key=lambda f: f["id"])
    refused = client.post(
        "/api/delineation/moves", json={"kind": "unit", "id": near["id"], "to": far}
    )
    assert refused.status_code == 409, refused.text
    assert "community" in refused.json()["detail"] or "pieces" in refused.json()["detail"]
    group = client.get("/api/layers/residents_groups?limit=1").json()["features"][0]["id"]
    locked = client.put(f"/api/delineation/groups/{group}/lock", json={"locked": True})
    assert locked.json() == {"id": group, "locked": True}
    assert (
        client.put("/api/delineation/groups/999999/lock", json={"locked": True}).status_code == 404
    )


def test_a_move_from_a_stale_map_is_refused(client, engine) -> None:
    """The page says where the building was; if someone moved it since, 412 and no change."""
    client.post("/api/delineation/runs", json={})
    with engine.connect() as conn:
        building, unit, other = conn.execute(
            sa.text(
                "SELECT b.id, b.unit_id, b2.unit_id FROM building b JOIN building b2 "
                "ON b2.unit_id <> b.unit_id JOIN unit u ON u.id = b.unit_id "
                "JOIN unit u2 ON u2.id = b2.unit_id "
                "AND u2.building_cluster_id = u.building_cluster_id "
                "WHERE (SELECT count(*) FROM building x WHERE x.unit_id = b.unit_id) > 1 "
                "ORDER BY b.id LIMIT 1"
            )
        ).one()
    stale = client.post(
        "/api/delineation/moves",
        json={"kind": "building", "id": building, "to": other, "from": unit + 10**6},
    )
    assert stale.status_code == 412 and "reload" in stale.json()["detail"]
    with engine.connect() as conn:
        now = conn.scalar(sa.text("SELECT unit_id FROM building WHERE id = :b"), {"b": building})
    assert now == unit


def test_a_run_at_another_target_sets_the_band_of_move_warnings(client, engine) -> None:
    """POST a run at 50 households: moves are judged against 40–60, never 80–120."""
    made = client.post("/api/delineation/runs", json={"group_households": 50})
    assert made.status_code == 201, made.text
    assert made.json()["quality"]["band"] == [40.0, 60.0]
    with engine.connect() as conn:
        building, unit, group = conn.execute(
            sa.text(
                "SELECT b.id, u2.id, g.code FROM building b "
                "JOIN building_cell bc ON bc.building_id = b.id "
                "JOIN unit u1 ON u1.id = b.unit_id "
                "JOIN unit u2 ON u2.id <> u1.id "
                "AND u2.building_cluster_id = u1.building_cluster_id "
                "JOIN building_cluster c ON c.id = u1.building_cluster_id "
                "JOIN residents_group g ON g.id = c.residents_group_id "
                "WHERE ST_Length(ST_Intersection(bc.geom, u2.geom)::geography) > 5 "
                "AND (SELECT count(*) FROM building x WHERE x.unit_id = u1.id) > 1 "
                "AND g.households NOT BETWEEN 40 AND 60 ORDER BY b.id LIMIT 1"
            )
        ).one()
    moved = client.post(
        "/api/delineation/moves", json={"kind": "building", "id": building, "to": unit}
    )
    assert moved.status_code == 200, moved.text
    warnings = moved.json()["warnings"]
    assert len(warnings) == 1 and f"group {group} " in warnings[0]
    assert "(outside 40–60)" in warnings[0]
    # the map's legend and counts use the band of the run too
    with engine.connect() as conn:
        code = conn.scalar(
            sa.text(
                "SELECT cm.code FROM community cm JOIN residents_group g ON g.community_id = cm.id "
                "ORDER BY cm.id LIMIT 1"
            )
        )
    page = client.get(f"/map/groups?community={code}")
    assert page.status_code == 200
    assert "40–60 户" in page.text and "少于 40 户" in page.text and "80–120" not in page.text


def test_a_divided_building_lists_its_floors_per_group(client, engine) -> None:
    assert client.post("/api/delineation/runs", json={}).status_code == 201
    with engine.connect() as conn:
        tower, households = conn.execute(
            sa.text(
                "SELECT b.id, b.households FROM building b WHERE b.id IN "
                "(SELECT building_id FROM building_part) ORDER BY b.households DESC LIMIT 1"
            )
        ).one()
        whole = conn.scalar(
            sa.text(
                "SELECT id FROM building WHERE households > 0 AND id NOT IN "
                "(SELECT building_id FROM building_part) ORDER BY id LIMIT 1"
            )
        )
    body = client.get(f"/api/delineation/buildings/{tower}/parts").json()
    parts = body["parts"]
    assert body["divided"] and len(parts) >= households // 100
    assert [p["part_no"] for p in parts] == list(range(1, len(parts) + 1))
    assert sum(p["households"] for p in parts) == households
    assert all(a["floor_max"] <= b["floor_min"] for a, b in zip(parts[:-1], parts[1:], strict=True))
    assert len({p["group_id"] for p in parts}) == len(parts)
    one = client.get(f"/api/delineation/buildings/{whole}/parts").json()
    assert not one["divided"] and len(one["parts"]) == 1 and one["parts"][0]["part_no"] == 0
    assert client.get("/api/delineation/buildings/999999999/parts").status_code == 404
