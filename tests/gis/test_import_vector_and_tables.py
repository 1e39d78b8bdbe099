"""GeoJSON/GeoPackage boundaries, buildings and facilities; household and register tables."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
import sqlalchemy as sa
from shapely.geometry import LineString, box

from gis.errors import InvalidInput
from gis.io.pipeline import import_file
from tests.conftest import SHANGHAI, cli


def _boundaries(tmp_path: Path) -> Path:
    gpkg = tmp_path / "areas.gpkg"
    gpd.GeoDataFrame(
        {"code": ["SD1"], "name": ["长寿路街道"]},
        geometry=[box(121.49, 31.27, 121.52, 31.30)],
        crs=4326,
    ).to_file(gpkg, layer="subdistricts")
    gpd.GeoDataFrame(
        {"code": ["C01", "C02"], "name": ["一居", "二居"], "subdistrict": ["SD1", "SD1"]},
        geometry=[box(121.49, 31.27, 121.505, 31.30), box(121.505, 31.27, 121.52, 31.30)],
        crs=4326,
    ).to_file(gpkg, layer="communities")
    gpd.GeoDataFrame(
        {"code": ["G1", "G2"], "community": ["C01", "C01"]},
        geometry=[box(121.49, 31.27, 121.4975, 31.30), box(121.4975, 31.27, 121.505, 31.30)],
        crs=4326,
    ).to_crs(32651).to_file(gpkg, layer="grids")
    return gpkg


def test_geopackage_boundaries_nest_by_code(engine, tmp_path) -> None:
    report = import_file(engine, _boundaries(tmp_path))
    assert report.counts["subdistrict"].added == 1
    assert report.counts["community"].added == 2
    assert report.counts["grid"].added == 2
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT g.code, c.code, s.code, ST_XMin(g.geom) FROM grid g "
                "JOIN community c ON c.id = g.community_id "
                "JOIN subdistrict s ON s.id = c.subdistrict_id ORDER BY g.code"
            )
        ).all()
    assert [(r[0], r[1], r[2]) for r in rows] == [("G1", "C01", "SD1"), ("G2", "C01", "SD1")]
    assert rows[0][3] == pytest.approx(121.49, abs=1e-7)  # reprojected back from UTM 51N


def test_grid_with_unknown_community_is_refused_whole(engine, tmp_path) -> None:
    gpkg = tmp_path / "grids.gpkg"
    gpd.GeoDataFrame(
        {"code": ["G9"], "community": ["NOPE"]},
        geometry=[box(121.49, 31.27, 121.5, 31.28)],
        crs=4326,
    ).to_file(gpkg)
    with pytest.raises(InvalidInput, match="NOPE"):
        import_file(engine, gpkg, layers=["grids"])
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM grid")) == 0
        assert conn.scalar(sa.text("SELECT count(*) FROM import_run")) == 0


def test_buildings_with_household_attribute_and_facilities_by_category(engine, tmp_path):
    gj = tmp_path / "buildings.geojson"
    gpd.GeoDataFrame(
        {
            "id": ["A", "B"],
            "levels": [6, None],
            "households": [36, None],
            "building": ["apartments", "retail"],
        },
        geometry=[box(121.50, 31.28, 121.5003, 31.2803), box(121.51, 31.28, 121.5103, 31.2803)],
        crs=4326,
    ).to_file(gj)
    fac = tmp_path / "facilities.geojson"
    gpd.GeoDataFrame(
        {
            "id": ["f1", "f2", "f3"],
            "name": ["卫生站", "警务室", "?"],
            "category": ["health_station;medical", "police_room", "spaceport"],
        },
        geometry=gpd.points_from_xy([121.5, 121.51, 121.52], [31.28] * 3),
        crs=4326,
    ).to_file(fac)
    import_file(engine, gj)
    report = import_file(engine, fac)
    assert [p.source_id for p in report.problems] == ["f3"]
    with engine.connect() as conn:
        b = dict(
            conn.execute(
                sa.text(
                    "SELECT source_id, concat_ws(',', households, households_source, levels) "
                    "FROM building"
                )
            ).all()
        )
        f = dict(conn.execute(sa.text("SELECT source_id, categories FROM facility")).all())
    assert b["A"] == "36,attribute,6"
    assert b["B"].startswith("0,none,")  # retail: no households
    assert f == {"f1": ["health_station", "medical"], "f2": ["police_room"]}


def test_household_table_overrides_estimate_and_survives_reimport(engine, tmp_path) -> None:
    import_file(engine, SHANGHAI)
    with engine.connect() as conn:
        sid, levels = conn.execute(
            sa.text(
                "SELECT source_id, levels FROM building WHERE households > 5 ORDER BY id LIMIT 1"
            )
        ).one()
    csv = tmp_path / "households.csv"
    pd.DataFrame({"楼栋": [sid], "户数": [levels * 4]}).to_csv(csv, index=False)
    import_file(engine, csv)
    again = import_file(engine, SHANGHAI)
    assert again.counts["building"].updated == 0
    with engine.connect() as conn:
        hh, src, n = conn.execute(
            sa.text(
                "SELECT b.households, b.households_source, count(*) FROM building b "
                "JOIN dwelling_all d ON d.building_id = b.id WHERE b.source_id = :s "
                "GROUP BY b.id"
            ),
            {"s": sid},
        ).one()
    assert (hh, src, n) == (levels * 4, "csv", levels * 4)


def test_house_register_replaces_estimated_dwellings(engine, tmp_path) -> None:
    import_file(engine, SHANGHAI)
    with engine.connect() as conn:
        sid = conn.scalar(
            sa.text("SELECT source_id FROM building WHERE households > 3 ORDER BY id LIMIT 1")
        )
    xlsx = tmp_path / "register.xlsx"
    pd.DataFrame({"楼栋": [sid] * 3, "室号": ["101", "102", "201"], "户数": [1, 2, 1]}).to_excel(
        xlsx, index=False
    )
    import_file(engine, xlsx)
    import_file(engine, SHANGHAI)  # a later map import must not undo the register
    with engine.connect() as conn:
        rooms = conn.execute(
            sa.text(
                "SELECT d.room, d.floor, d.households, d.is_estimated FROM dwelling_all d "
                "JOIN building b ON b.id = d.building_id WHERE b.source_id = :s ORDER BY d.room"
            ),
            {"s": sid},
        ).all()
        hh = conn.scalar(
            sa.text("SELECT households FROM building WHERE source_id = :s"), {"s": sid}
        )
    assert [tuple(r) for r in rooms] == [
        ("101", 1, 1, False),
        ("102", 1, 2, False),
        ("201", 2, 1, False),
    ]
    assert hh == 4


def test_register_with_bad_rows_names_them_and_writes_nothing(db_url, engine, tmp_path):
    import_file(engine, SHANGHAI)
    with engine.connect() as conn:
        sid = conn.scalar(sa.text("SELECT source_id FROM building ORDER BY id LIMIT 1"))
        before = conn.scalar(sa.text("SELECT count(*) FROM dwelling_all"))
    csv = tmp_path / "register.csv"
    pd.DataFrame(
        {
            "building": [sid, "w0", sid, sid],
            "room": ["101", "101", "", "101"],
            "households": ["1", "1", "1", "x"],
        }
    ).to_csv(csv, index=False)
    result = cli("import", "-q", str(csv), db_url=db_url)
    assert result.returncode == 2
    msg = result.stderr
    assert "row 3: no building 'w0'" in msg
    assert "row 4: room is empty" in msg
    assert "row 5: households 'x'" in msg
    assert "row 5: room '101' appears twice" in msg
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM dwelling_all")) == before


def test_synthetic_city_imports_whole_and_by_layer(engine, tmp_path) -> None:
    from gis.synth import write_city

    gpkg = tmp_path / "city.gpkg"
    write_city(gpkg, buildings=1500, seed=3)
    expected = {
        name: len(pyogrio.read_dataframe(gpkg, layer=name, read_geometry=False))
        for name in ("buildings", "facilities", "communities", "subdistricts")
    }
    only = import_file(engine, gpkg, layers=["buildings"])
    assert set(only.counts) == {"building"}
    assert only.counts["building"].added == expected["buildings"] == 1500
    report = import_file(engine, gpkg)
    assert report.counts["building"].unchanged == 1500
    assert report.counts["facility"].added == expected["facilities"]
    assert report.counts["community"].added == expected["communities"]
    assert report.counts["subdistrict"].added == expected["subdistricts"]
    assert report.problems == []
    with engine.connect() as conn:
        orphans = conn.scalar(
            sa.text("SELECT count(*) FROM community WHERE subdistrict_id IS NULL")
        )
        components = (
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM pgr_connectedComponents("
                    "'SELECT id, source, target, length_m AS cost, length_m AS reverse_cost "
                    "FROM walk_edge') GROUP BY component ORDER BY 1 DESC"
                )
            )
            .scalars()
            .all()
        )
    assert orphans == 0
    assert components[0] == sum(components)  # one connected walk network


def test_vector_streets_honour_foot_and_access(engine, tmp_path) -> None:
    gj = tmp_path / "streets.geojson"
    lines = [
        LineString([(121.50, 31.28), (121.501, 31.28)]),
        LineString([(121.501, 31.28), (121.502, 31.28)]),
        LineString([(121.502, 31.28), (121.503, 31.28)]),
        LineString([(121.503, 31.28), (121.504, 31.28)]),
    ]
    gpd.GeoDataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "highway": ["residential", "footway", "service", "motorway"],
            "foot": [None, "no", None, None],
            "access": [None, None, "private", None],
        },
        geometry=lines,
        crs=4326,
    ).to_file(gj)
    import_file(engine, gj)
    with engine.connect() as conn:
        kept = conn.execute(sa.text("SELECT source_id FROM walk_edge")).scalars().all()
    assert kept == ["a:0"]  # edges are named <line id>:<first vertex>
