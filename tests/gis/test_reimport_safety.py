"""Re-imports never lose what staff entered, and odd values never crash an import.

Each test here is a case where an earlier version matched the wrong features, silently
dropped a register, or stopped with a traceback.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import sqlalchemy as sa
from shapely.geometry import box

from gis.errors import Conflict, InvalidInput
from gis.io.households import parse_count, parse_number
from gis.io.pipeline import import_file
from gis.io.vector import _kind_of
from tests.conftest import cli

LON, LAT = 121.50, 31.28


def _blocks(n: int, **columns: list) -> gpd.GeoDataFrame:
    """``n`` 30 m x 30 m footprints in a row, with the given attribute columns."""
    d = 0.0003
    geoms = [box(LON + 2 * i * d, LAT, LON + (2 * i + 1) * d, LAT + d) for i in range(n)]
    return gpd.GeoDataFrame(columns, geometry=geoms, crs=4326)


def _building_rows(engine) -> dict[str, tuple]:
    """name -> (database id, source id, households) of every building."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT name, id, source_id, households FROM building")).all()
    return {r[0]: tuple(r[1:]) for r in rows}


def test_geojson_without_ids_matches_features_not_positions(engine, tmp_path: Path) -> None:
    names = [f"{i}号楼" for i in range(1, 6)]
    gdf = _blocks(5, name=names, building=["apartments"] * 5)
    path = tmp_path / "buildings.geojson"
    gdf.to_file(path)
    first = import_file(engine, path)
    assert first.counts["building"].added == 5
    assert any("matched on re-import by their geometry" in n for n in first.notes)
    before = _building_rows(engine)
    # the same file, reordered, with 2号楼 gone: positions all shift by one or more
    gdf.iloc[[4, 3, 0, 2]].to_file(path)
    again = import_file(engine, path)
    c = again.counts["building"]
    assert (c.added, c.updated, c.unchanged, c.removed) == (0, 0, 4, 1)
    after = _building_rows(engine)
    assert set(after) == set(names) - {"2号楼"}
    for name in after:  # each building kept its row, so its dwellings and ledgers follow it
        assert after[name] == before[name]


def test_geopackage_without_ids_uses_its_feature_ids(engine, tmp_path: Path) -> None:
    path = tmp_path / "buildings.gpkg"
    _blocks(3, name=["a", "b", "c"]).to_file(path, layer="buildings")
    report = import_file(engine, path)
    assert report.notes == []
    with engine.connect() as conn:
        ids = dict(conn.execute(sa.text("SELECT name, source_id FROM building")).all())
    assert ids == {"a": "fid1", "b": "fid2", "c": "fid3"}  # GeoPackage fids start at 1


def _register(engine, tmp_path: Path, source_id: str) -> Path:
    xlsx = tmp_path / "register.xlsx"
    pd.DataFrame(
        {"楼栋": [source_id] * 3, "室号": ["101", "102", "201"], "户数": [1, 1, 2]}
    ).to_excel(xlsx, index=False)
    return xlsx


def test_reimport_that_drops_registered_buildings_is_refused(engine, tmp_path: Path) -> None:
    gdf = _blocks(3, id=["A", "B", "C"], building=["apartments"] * 3)
    path = tmp_path / "buildings.geojson"
    gdf.to_file(path)
    import_file(engine, path)
    import_file(engine, _register(engine, tmp_path, "B"))
    csv = tmp_path / "households.csv"
    pd.DataFrame({"building": ["C"], "households": [40]}).to_csv(csv, index=False)
    import_file(engine, csv)
    gdf[gdf["id"] == "A"].to_file(path)  # B (register) and C (households table) are gone
    with pytest.raises(Conflict, match=r"2 building\(s\).*B \(register, 3 dwellings\).*C \(csv\)"):
        import_file(engine, path)
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM building")) == 3
        assert conn.scalar(sa.text("SELECT count(*) FROM dwelling")) == 3
    report = import_file(engine, path, remove_registered=True)
    assert report.counts["building"].removed == 2
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM dwelling")) == 0


def test_unchanged_register_reimport_changes_nothing(engine, tmp_path: Path) -> None:
    path = tmp_path / "buildings.geojson"
    _blocks(1, id=["A"], building=["apartments"]).to_file(path)
    import_file(engine, path)
    register = _register(engine, tmp_path, "A")
    import_file(engine, register)
    with engine.connect() as conn:
        before = conn.execute(sa.text("SELECT id, room FROM dwelling ORDER BY id")).all()
    again = import_file(engine, register)
    d = again.counts["dwelling"]
    assert (d.added, d.updated, d.unchanged, d.removed) == (0, 0, 3, 0)
    assert again.counts["building"].updated == 0
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT id, room FROM dwelling ORDER BY id")).all() == before
    # one room changes households, one goes, one arrives
    pd.DataFrame({"楼栋": ["A"] * 3, "室号": ["101", "201", "202"], "户数": [1, 3, 1]}).to_excel(
        register, index=False
    )
    d = import_file(engine, register).counts["dwelling"]
    assert (d.added, d.updated, d.unchanged, d.removed) == (1, 1, 1, 1)
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT households FROM building")) == 5


def test_households_table_refuses_duplicates_and_registered_buildings(
    db_url, engine, tmp_path: Path
) -> None:
    path = tmp_path / "buildings.geojson"
    _blocks(2, id=["A", "B"], building=["apartments"] * 2).to_file(path)
    import_file(engine, path)
    import_file(engine, _register(engine, tmp_path, "B"))
    csv = tmp_path / "households.csv"
    # a blank line after the header must not shift the row numbers we report
    csv.write_text("building,households\n\nA,10\nA,12\nB,30\nA,inf\nA,1e30\n")
    result = cli("import", "-q", str(csv), db_url=db_url)
    assert result.returncode == 2, result.stderr
    msg = result.stderr
    assert "Traceback" not in msg
    assert "row 4: building 'A' is already on row 3" in msg
    assert "row 5: building" in msg and "has a house register (3 dwellings)" in msg
    assert "row 6: households 'inf' is not a whole number" in msg
    assert "row 7: households '1e30' is not a whole number" in msg
    with engine.connect() as conn:
        sources = set(conn.execute(sa.text("SELECT households_source FROM building")).scalars())
    assert sources == {"estimate", "register"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12", (12, None)),
        ("12.0", (12, None)),
        ("1,200", (1200, None)),
        ("12.5", (None, "not a whole number")),
        ("3e9", (None, "not a number")),
        ("30000", (None, "more than 20,000")),
        ("", (None, None)),
    ],
)
def test_counts_are_whole_bounded_numbers(value: str, expected: tuple) -> None:
    n, why = parse_count(value, 20_000)
    assert n == expected[0]
    assert (why is None) == (expected[1] is None)
    if expected[1]:
        assert expected[1] in why


def test_number_parsing_reads_separators() -> None:
    assert parse_number("1,200") == 1200
    assert parse_number("6,5") == 6.5  # a decimal comma
    assert parse_number("18 m") == 18


def test_odd_flats_values_are_reported_not_fatal(engine, tmp_path: Path) -> None:
    path = tmp_path / "buildings.geojson"
    _blocks(
        4,
        id=["half", "huge", "sep", "ok"],
        building=["apartments"] * 4,
        **{"building:flats": ["12.5", "3e9", "1,200", "24"]},
    ).to_file(path)
    report = import_file(engine, path)
    reasons = {p.source_id: p.reason for p in report.problems}
    assert set(reasons) == {"half", "huge"}
    assert "not a whole number" in reasons["half"]
    with engine.connect() as conn:
        got = dict(conn.execute(sa.text("SELECT source_id, households_source FROM building")).all())
        flats = dict(conn.execute(sa.text("SELECT source_id, flats FROM building")).all())
    assert got == {"half": "estimate", "huge": "estimate", "sep": "flats", "ok": "flats"}
    assert flats["sep"] == 1200 and flats["ok"] == 24


def test_removing_a_community_that_still_has_grids_is_refused(engine, tmp_path: Path) -> None:
    gpkg = tmp_path / "areas.gpkg"
    communities = gpd.GeoDataFrame(
        {"code": ["C01", "C02"]},
        geometry=[box(121.49, 31.27, 121.5, 31.3), box(121.5, 31.27, 121.51, 31.3)],
        crs=4326,
    )
    communities.to_file(gpkg, layer="communities")
    import_file(engine, gpkg)
    grids = tmp_path / "grids.gpkg"
    gpd.GeoDataFrame(
        {"code": ["G1"], "community": ["C02"]}, geometry=[box(121.5, 31.27, 121.51, 31.3)], crs=4326
    ).to_file(grids, layer="grids")
    import_file(engine, grids)
    gpkg.unlink()
    communities.iloc[:1].to_file(gpkg, layer="communities")
    with pytest.raises(Conflict, match="community C02 not in the new file, but grid rows"):
        import_file(engine, gpkg)
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM community")) == 2


def test_several_building_layers_in_one_geopackage_are_all_kept(engine, tmp_path) -> None:
    gpkg = tmp_path / "survey.gpkg"
    _blocks(2, id=["1", "2"]).to_file(gpkg, layer="buildings_east")
    _blocks(3, id=["1", "2", "3"]).to_file(gpkg, layer="buildings_west")
    report = import_file(engine, gpkg)
    assert report.counts["building"].added == 5
    with engine.connect() as conn:
        ids = set(conn.execute(sa.text("SELECT source_id FROM building")).scalars())
    assert ids == {"buildings_east/1", "buildings_east/2"} | {
        f"buildings_west/{i}" for i in (1, 2, 3)
    }


@pytest.mark.parametrize(
    ("layer", "kind"),
    [
        ("社区网格", "grids"),
        ("community_grids", "grids"),
        ("社区", "communities"),
        ("街道", "subdistricts"),
        ("街道线", "streets"),
        ("楼栋", "buildings"),
    ],
)
def test_layer_names_are_recognised(layer: str, kind: str) -> None:
    assert _kind_of(layer) == kind


def test_households_table_with_unknown_columns_is_explained(engine, tmp_path) -> None:
    csv = tmp_path / "x.csv"
    csv.write_text("foo,bar\n1,2\n")
    with pytest.raises(InvalidInput, match="building"):
        import_file(engine, csv)


def test_summary_counts_dwellings_as_the_view_lists_them(engine, tmp_path: Path) -> None:
    from gis.query import summary

    path = tmp_path / "buildings.geojson"
    _blocks(3, id=["A", "B", "C"], building=["apartments", "apartments", "retail"]).to_file(path)
    import_file(engine, path)
    import_file(engine, _register(engine, tmp_path, "A"))
    with engine.connect() as conn:
        listed = conn.scalar(sa.text("SELECT count(*) FROM dwelling_all"))
        body = summary(conn)
    assert body["dwellings"] == listed > 3


def test_reimport_that_drops_buildings_with_residents_is_refused(engine, tmp_path: Path) -> None:
    from gis.ledger.synth import generate
    from gis.security import Keys
    from gis.settings import Settings

    gdf = _blocks(2, id=["A", "B"], building=["apartments"] * 2, **{"building:flats": [6, 6]})
    path = tmp_path / "buildings.geojson"
    gdf.to_file(path)
    import_file(engine, path)
    with engine.begin() as conn:
        made = generate(conn, Keys.from_settings(Settings()), seed=3)
    assert made["residents"] > 0
    gdf[gdf["id"] == "A"].to_file(path)  # B, where people live, is gone
    with pytest.raises(Conflict, match=r"1 building\(s\) where residents.*B \(\d+ residents\)"):
        import_file(engine, path, remove_registered=True)
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM building")) == 2
        assert conn.scalar(sa.text("SELECT count(*) FROM resident")) == made["residents"]
