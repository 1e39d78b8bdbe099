"""The command line as a user runs it: status, export and re-import round trip, help."""

from __future__ import annotations

import pyogrio
import sqlalchemy as sa

from gis.db import SCHEMA_HEAD
from tests.conftest import SHANGHAI, cli


def test_status_reports_the_schema_revision(db_url) -> None:
    result = cli("db", "status", db_url=db_url)
    assert result.returncode == 0, result.stderr
    assert f"schema revision {SCHEMA_HEAD}" in result.stdout
    assert "***" in result.stdout  # never prints the password


def test_import_prints_the_report(db_url) -> None:
    result = cli("import", "-q", str(SHANGHAI), db_url=db_url)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    building = next(line for line in lines if line.strip().startswith("building"))
    assert building.split()[1:] == ["226", "0", "0", "0"]
    assert "r20336700: broken ring" in result.stdout


def test_export_then_import_elsewhere_gives_the_same_buildings(
    db_url, engine, tmp_path, server_url, template_url
):
    assert cli("import", "-q", str(SHANGHAI), db_url=db_url).returncode == 0
    out = tmp_path / "tongji-buildings.gpkg"
    result = cli("export", "buildings", str(out), db_url=db_url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote 226 buildings to {out}"
    exported = pyogrio.read_dataframe(out)
    assert len(exported) == 226 and exported.crs.to_epsg() == 4326
    with engine.connect() as conn:
        conn.execute(sa.text("DELETE FROM building"))
        conn.commit()
    result = cli("import", "-q", str(out), "--layer", "buildings", db_url=db_url)
    assert result.returncode == 0, result.stderr
    with engine.connect() as conn:
        total, households = conn.execute(
            sa.text("SELECT count(*), sum(households) FROM building")
        ).one()
    assert total == 226
    assert households == int(exported["households"].sum())


def test_export_refuses_unknown_layer_and_format(db_url, tmp_path) -> None:
    r = cli("export", "people", str(tmp_path / "x.geojson"), db_url=db_url)
    assert r.returncode == 2 and "unknown layer 'people'" in r.stderr
    r = cli("export", "buildings", str(tmp_path / "x.kml"), db_url=db_url)
    assert r.returncode == 2 and ".geojson, .gpkg, .shp or .csv" in r.stderr


def test_help_lists_the_commands() -> None:
    result = cli("--help")
    assert result.returncode == 0
    for command in ("db", "import", "export", "serve", "demo", "synth"):
        assert command in result.stdout


def test_demo_sets_up_the_bundled_data_and_a_rerun_changes_nothing(
    db_url, engine, tmp_path
) -> None:
    var = str(tmp_path)  # the demo's login files go here, not into the project's var/
    first = cli("demo", "--no-serve", db_url=db_url, GRIDATLAS_VAR_DIR=var)
    assert first.returncode == 0, first.stderr
    with engine.connect() as conn:
        before = conn.execute(
            sa.text("SELECT count(*), sum(households), max(imported_at) FROM building")
        ).one()
    second = cli("demo", "--no-serve", db_url=db_url, GRIDATLAS_VAR_DIR=var)
    assert second.returncode == 0, second.stderr
    building = next(
        line for line in second.stdout.splitlines() if line.strip().startswith("building")
    )
    assert building.split()[1:] == ["0", "0", "1277", "0"]
    with engine.connect() as conn:
        after = conn.execute(
            sa.text("SELECT count(*), sum(households), max(imported_at) FROM building")
        ).one()
    assert before == after and before[0] == 1277
    with engine.connect() as conn:
        runs = conn.execute(
            sa.text(
                "SELECT (SELECT count(*) FROM reach_run), (SELECT count(*) FROM delineation_run), "
                "(SELECT count(*) FROM building WHERE unit_id IS NULL)"
            )
        ).one()
    assert tuple(runs) == (1, 1, 0)  # computed once, by the first demo
    assert "residents' groups drawn" in first.stdout
    assert "residents' groups drawn" not in second.stdout
    # one login per role, each with an area, written once
    logins = (tmp_path / "demo-logins.txt").read_text().split("\n")
    roles = {line.split("\t")[1] for line in logins if line}
    assert roles == {"committee_staff", "planner", "grid_worker", "building_leader"}
    with engine.connect() as conn:
        scoped = conn.scalar(
            sa.text(
                "SELECT count(DISTINCT u.id) FROM app_user u JOIN app_user_scope s "
                "ON s.user_id = u.id WHERE u.username IN ('staff1', 'planner1', 'worker1', "
                "'leader1')"
            )
        )
    assert scoped == 4 and len([line for line in logins if line]) == 4


def test_user_add_and_people_synth(db_url, engine) -> None:
    made = cli("user", "add", "chief", "--role", "admin", db_url=db_url)
    assert made.returncode == 0, made.stderr
    password = made.stdout.split("password:")[1].strip()
    assert len(password) >= 12
    again = cli("user", "add", "chief", "--role", "admin", db_url=db_url)
    assert again.returncode == 2 and "taken" in again.stderr
    no_area = cli("user", "add", "wang", "--role", "grid_worker", db_url=db_url)
    assert no_area.returncode == 2 and "needs at least one area" in no_area.stderr
    bad = cli("user", "add", "wang", "--role", "grid_worker", "--scope", "grid:NOPE", db_url=db_url)
    assert bad.returncode == 2 and "no grid" in bad.stderr
    weird = cli("user", "add", "w", "--role", "boss", db_url=db_url)
    assert weird.returncode == 2
    from gis.security import verify_password

    with engine.connect() as conn:
        stored = conn.scalar(sa.text("SELECT password_hash FROM app_user WHERE username = 'chief'"))
    assert verify_password(password, stored)
    empty = cli("people", "synth", db_url=db_url)
    assert empty.returncode == 0 and "0 residents" in empty.stdout
