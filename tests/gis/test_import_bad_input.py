"""Bad input: a clear one-line reason, exit code 2, and nothing written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from shapely.geometry import Polygon, mapping

from gis.io.pipeline import import_file
from tests.conftest import NANJING, PORTO, PROJECT_ROOT, cli

COUNT_ALL = sa.text(
    "SELECT (SELECT count(*) FROM building) + (SELECT count(*) FROM facility) + "
    "(SELECT count(*) FROM walk_edge) + (SELECT count(*) FROM dwelling_all) + "
    "(SELECT count(*) FROM import_run)"
)


def _total(engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(COUNT_ALL))


def _geojson(path: Path, features: list[dict], crs: str | None = None) -> Path:
    doc: dict = {"type": "FeatureCollection", "features": features}
    if crs:
        doc["crs"] = {"type": "name", "properties": {"name": crs}}
    path.write_text(json.dumps(doc))
    return path


def _square(lon: float, lat: float, d: float = 0.0002) -> Polygon:
    return Polygon([(lon, lat), (lon + d, lat), (lon + d, lat + d), (lon, lat + d)])


def _assert_refused(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    message = result.stderr.strip()
    assert message.startswith("error: ") and "\n" not in message, message
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in message, message


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("empty.osm", b"", "is empty"),
        ("truncated.osm", NANJING.read_bytes()[:50_000], "not a readable OSM file"),
        ("picture.osm", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "not a readable OSM file"),
        ("notes.txt", b"hello", "unknown format"),
        ("broken.geojson", b'{"type": "FeatureCollection", "features": [', "cannot be read"),
        (
            "empty-buildings.geojson",
            b'{"type": "FeatureCollection", "features": []}',
            "nothing to import",
        ),
    ],
)
def test_broken_files_are_refused_and_nothing_is_written(
    db_url, engine, tmp_path, name, content, needle
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    before = _total(engine)
    _assert_refused(cli("import", "-q", str(path), db_url=db_url), needle)
    assert _total(engine) == before


def test_unknown_layer_is_refused(db_url, engine) -> None:
    _assert_refused(
        cli("import", "-q", str(NANJING), "--layer", "roads", db_url=db_url),
        "unknown layer 'roads'",
    )
    assert _total(engine) == 0


def test_shapefile_without_crs_needs_crs_option(db_url, engine, tmp_path) -> None:
    import geopandas as gpd

    shp = tmp_path / "buildings.shp"
    gpd.GeoDataFrame(
        {"id": [1, 2]}, geometry=[_square(118.78, 32.04), _square(118.781, 32.04)]
    ).to_file(shp)
    assert not shp.with_suffix(".prj").exists()
    _assert_refused(
        cli("import", "-q", str(shp), db_url=db_url), "no coordinate reference", "--crs"
    )
    assert _total(engine) == 0
    ok = cli("import", "-q", str(shp), "--crs", "EPSG:4326", db_url=db_url)
    assert ok.returncode == 0, ok.stderr
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM building")) == 2


def test_projected_coordinates_labelled_wgs84_are_refused(db_url, engine, tmp_path) -> None:
    # UTM 51N metres in a GeoJSON without a crs member (GeoJSON means WGS 84): a wrong CRS
    poly = Polygon(
        [(351_000, 3_460_000), (351_020, 3_460_000), (351_020, 3_460_020), (351_000, 3_460_020)]
    )
    path = _geojson(
        tmp_path / "buildings.geojson",
        [{"type": "Feature", "properties": {}, "geometry": mapping(poly)}],
    )
    _assert_refused(
        cli("import", "-q", str(path), db_url=db_url), "not longitude/latitude", "--crs"
    )
    assert _total(engine) == 0


def test_reprojection_lands_on_known_coordinates(engine, tmp_path) -> None:
    """EPSG:3857 metres → degrees, checked with the closed-form inverse Mercator."""
    import math

    r = 6378137.0
    x, y = 13_222_000.0, 3_763_000.0  # central Nanjing in Web Mercator
    lon = math.degrees(x / r)
    lat = math.degrees(2 * math.atan(math.exp(y / r)) - math.pi / 2)
    poly = Polygon([(x, y), (x + 30, y), (x + 30, y + 30), (x, y + 30)])
    path = _geojson(
        tmp_path / "buildings.geojson",
        [{"type": "Feature", "properties": {"id": "a"}, "geometry": mapping(poly)}],
        crs="urn:ogc:def:crs:EPSG::3857",
    )
    import_file(engine, path)
    with engine.connect() as conn:
        px, py = conn.execute(
            sa.text(
                "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointN(ST_ExteriorRing("
                "ST_GeometryN(geom, 1)), 1) AS p FROM building) q"
            )
        ).one()
    assert px == pytest.approx(lon, abs=1e-7)
    assert py == pytest.approx(lat, abs=1e-7)


def test_invalid_polygons_repaired_or_refused_by_id(engine, tmp_path) -> None:
    bowtie = {
        "type": "Polygon",
        "coordinates": [
            [
                [118.78, 32.04],
                [118.7803, 32.0403],
                [118.7803, 32.04],
                [118.78, 32.0403],
                [118.78, 32.04],
            ]
        ],
    }
    flat = {
        "type": "Polygon",
        "coordinates": [[[118.79, 32.04], [118.7903, 32.04], [118.7906, 32.04], [118.79, 32.04]]],
    }
    good = mapping(_square(118.785, 32.045))
    path = _geojson(
        tmp_path / "buildings.geojson",
        [
            {"type": "Feature", "properties": {"id": "bowtie"}, "geometry": bowtie},
            {"type": "Feature", "properties": {"id": "flat"}, "geometry": flat},
            {"type": "Feature", "properties": {"id": "good"}, "geometry": good},
            {"type": "Feature", "properties": {"id": "nogeom"}, "geometry": None},
        ],
    )
    report = import_file(engine, path)
    assert report.repaired == {"buildings": 1}
    refused = {p.source_id: p.reason for p in report.problems}
    assert set(refused) == {"flat", "nogeom"}
    assert "not repairable" in refused["flat"]
    with engine.connect() as conn:
        rows = dict(
            conn.execute(
                sa.text("SELECT source_id, ST_IsValid(geom) AND ST_Area(geom) > 0 FROM building")
            ).all()
        )
    assert rows == {"bowtie": True, "good": True}


def test_broken_osm_rings_are_listed_not_fatal(engine) -> None:
    report = import_file(engine, NANJING)
    broken = [p for p in report.problems if p.layer == "buildings"]
    assert [p.source_id for p in broken] == ["r7098215"]
    assert "broken ring" in broken[0].reason
    assert "r7098215" in report.render()


def test_killed_import_leaves_database_as_before(db_url, engine) -> None:
    """kill -9 in the middle of writing: the transaction never commits."""
    import_file(engine, NANJING)  # something that must survive untouched
    before = _total(engine)
    env = {**os.environ, "GRIDATLAS_DATABASE_URL": db_url}
    exe = Path(sys.executable).with_name("gridatlas")
    proc = subprocess.Popen(
        [str(exe), "import", "-q", str(PORTO)],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    writing = False
    with engine.connect() as conn:
        while time.monotonic() < deadline and proc.poll() is None:
            # Interrupt once the buildings are written (uncommitted): the import has moved
            # on to the facilities or the walk network, all in the same transaction.
            active = conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL "
                    "AND query NOT ILIKE 'COPY building%' AND (query ILIKE 'COPY %' "
                    "OR query ILIKE '%walk_node_id_seq%' OR query ILIKE '%FROM walk_edge e%')"
                )
            ).scalar()
            conn.rollback()
            if active:
                writing = True
                break
            time.sleep(0.01)
    assert writing, "the import finished or failed before its buildings were written"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    time.sleep(0.5)  # the server notices the dropped connection and rolls back
    assert _total(engine) == before
    with engine.connect() as conn:
        assert (
            conn.scalar(
                sa.text("SELECT count(*) FROM building WHERE source_file = :s"), {"s": PORTO.name}
            )
            == 0
        )
