"""``gridatlas``: bring up the database, import, export, serve, demo."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cli import backup as backup_cmd
from cli import city as city_cmd
from cli import db as db_cmd
from cli import ha as ha_cmd
from cli import keys as keys_cmd
from cli import patrol as patrol_cmd
from cli import people as people_cmd
from cli import replica as replica_cmd
from cli.common import fail, open_engine
from gis.errors import GridAtlasError, InvalidInput
from gis.settings import PROJECT_ROOT, get_settings

app = typer.Typer(
    help="Grid Atlas (网格化管理): community grid management on PostGIS.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(db_cmd.app, name="db")
db_cmd.app.add_typer(ha_cmd.app, name="ha")
db_cmd.app.add_typer(replica_cmd.app, name="replica")
app.add_typer(people_cmd.users, name="user")
app.add_typer(people_cmd.people, name="people")
app.command("keygen")(people_cmd.keygen)
app.add_typer(keys_cmd.app, name="keys")
app.add_typer(patrol_cmd.app, name="patrol")
app.add_typer(city_cmd.app, name="city")
app.command("backup")(backup_cmd.backup)
app.command("restore")(backup_cmd.restore)

DEMO_FILE = PROJECT_ROOT / "data" / "osm" / "nanjing-central.osm"


@app.command("import")
def import_(
    path: Annotated[
        Path,
        typer.Argument(
            help="OSM (.osm/.pbf), GeoJSON, GeoPackage, Shapefile, "
            "or a CSV/XLSX of households or dwellings"
        ),
    ],
    layer: Annotated[
        list[str] | None,
        typer.Option(
            "--layer",
            help="what to import: buildings, streets, facilities, communities, grids, "
            "subdistricts, households, dwellings (repeat; default: all the file has)",
        ),
    ] = None,
    crs: Annotated[
        str | None,
        typer.Option(help="CRS of a file that carries none, e.g. EPSG:4326 or EPSG:32651"),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(help="dataset name that identifies re-imports (default: the file name)"),
    ] = None,
    remove_registered: Annotated[
        bool,
        typer.Option(
            "--remove-registered",
            help="let a re-import remove buildings whose households came from a "
            "households table or house register (refused by default)",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
) -> None:
    """Import a file into PostGIS in one transaction; re-importing updates in place."""
    from cli.progress import progress_reporter
    from gis.io.pipeline import import_file

    engine = open_engine()
    try:
        with progress_reporter(enabled=not quiet) as report_step:
            report = import_file(
                engine,
                path,
                layers=layer,
                crs=crs,
                source=source,
                on_step=report_step,
                remove_registered=remove_registered,
            )
    except GridAtlasError as err:
        fail(err)
    finally:
        engine.dispose()
    typer.echo(report.render())


@app.command("delineate")
def delineate_cmd(
    community: Annotated[
        str | None, typer.Option(help="only this community's code (default: all)")
    ] = None,
    group_households: Annotated[
        int, typer.Option(help="households per residents' group (居民小组)")
    ] = 100,
    cluster_households: Annotated[
        int, typer.Option(help="households per building cluster (楼群)")
    ] = 35,
    grid_households: Annotated[
        int, typer.Option(help="households per proposed grid (one worker: 300)")
    ] = 300,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
) -> None:
    """Draw units, building clusters, residents' groups and grids from the buildings."""
    import json

    from cli.progress import progress_reporter
    from gis.delineate.hierarchy import Params
    from gis.delineate.service import run

    if min(group_households, cluster_households, grid_households) < 1:
        fail(InvalidInput("household targets must be at least 1"))
    params = Params(
        group_households=group_households,
        cluster_households=cluster_households,
        grid_households=grid_households,
    )
    engine = open_engine()
    try:
        with progress_reporter(enabled=not quiet) as report_step:
            report = run(engine, params, community, on_step=report_step)
    except GridAtlasError as err:
        fail(err)
    finally:
        engine.dispose()
    typer.echo(
        f"delineation run {report.run_id}: communities {', '.join(report.communities)}; "
        f"blocks reused {report.reused_blocks}, computed {report.computed_blocks}; "
        f"noded cells {'reused' if report.coverage_reused else 'computed'}; "
        f"locked groups kept {report.locked_groups}; households that changed group "
        f"{report.households_changed_group}"
    )
    typer.echo(json.dumps(report.quality, ensure_ascii=False, indent=1))


@app.command("export")
def export(
    layer: Annotated[
        str,
        typer.Argument(
            help="buildings, facilities, walk_edges, walk_nodes, "
            "communities, grids, subdistricts, dwellings"
        ),
    ],
    path: Annotated[Path, typer.Argument(help=".geojson, .gpkg, .shp or .csv")],
) -> None:
    """Export a layer from PostGIS to a file (WGS 84)."""
    from gis.io.export import export_layer

    engine = open_engine()
    try:
        n = export_layer(engine, layer, path)
    except GridAtlasError as err:
        fail(err)
    finally:
        engine.dispose()
    typer.echo(f"wrote {n} {layer} to {path}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
) -> None:
    """Serve the API and the map pages."""
    import uvicorn

    from gis.security import Keys

    try:
        Keys.from_settings(get_settings())  # the app refuses to start without a real key
    except GridAtlasError as err:
        fail(err)
    open_engine().dispose()  # start the local database and fail early with a clear reason
    typer.echo(f"Grid Atlas at http://{host}:{port}/  (map: http://{host}:{port}/map)")
    settings = get_settings()
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=host,
        port=port,
        log_level="info",
        proxy_headers=settings.proxy_headers,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="set up only")] = False,
) -> None:
    """Set up everything (database, schema, bundled Nanjing data) and serve the map."""
    import sqlalchemy as sa

    from cli.progress import progress_reporter
    from gis.delineate.service import run as delineate_run
    from gis.io.pipeline import import_file
    from gis.reach.service import compute_and_store

    engine = open_engine()
    try:
        with progress_reporter(enabled=sys.stderr.isatty()) as report_step:
            report = import_file(engine, DEMO_FILE, on_step=report_step)
        # Every page shows something from the start: walking reach and residents' groups
        # are computed once, the first time (a second demo changes nothing).
        with engine.connect() as conn:
            has_reach, has_groups = conn.execute(
                sa.text(
                    "SELECT EXISTS (SELECT 1 FROM reach_run), "
                    "EXISTS (SELECT 1 FROM delineation_run)"
                )
            ).one()
        if not has_reach:
            with engine.begin() as conn:
                compute_and_store(conn)
            typer.echo("walking reach computed for every building (gridatlas reach to redo)")
        if not has_groups:
            run = delineate_run(engine)
            typer.echo(
                f"residents' groups drawn: {run.quality['groups']} groups in "
                f"{run.quality['communities']} proposed communities (see /map/groups)"
            )
        _demo_people(engine)
    except GridAtlasError as err:
        fail(err)
    finally:
        engine.dispose()
    typer.echo(report.render())
    if not no_serve:
        serve(host=host, port=port)


def _demo_people(engine) -> None:
    """A key, synthetic residents and an admin login, the first time."""
    import secrets

    import sqlalchemy as sa

    from gis.ledger.synth import generate
    from gis.security import Keys, write_key_file

    settings = get_settings()
    if settings.secret_key is None and write_key_file(settings.secret_key_file):
        typer.echo(f"secret key written to {settings.secret_key_file} (back it up)")
    keys = Keys.from_settings(settings)
    with engine.begin() as conn:
        if not conn.scalar(sa.text("SELECT EXISTS (SELECT 1 FROM resident)")):
            counts = generate(conn, keys, seed=1)
            typer.echo(f"{counts['residents']:,} synthetic residents (marked synthetic) added")
        if not conn.scalar(sa.text("SELECT EXISTS (SELECT 1 FROM app_user)")):
            from gis.accounts import create_user

            password = secrets.token_urlsafe(12)
            create_user(conn, "admin", password, "admin")
            path = settings.var_dir / "demo-admin.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"admin\n{password}\n")
            path.chmod(0o600)
            typer.echo(f"admin login created: user admin, password in {path}")
        _demo_role_logins(conn, settings.var_dir / "demo-logins.txt")


def _demo_role_logins(conn, path) -> None:
    """One login per role in one community of the demo, so that every page of the app can
    be tried as its user would (the passwords go to ``path``, mode 0600), the first time."""
    import secrets

    import sqlalchemy as sa

    from gis.accounts import create_user

    area = conn.execute(
        sa.text(
            "SELECT g.community_id, g.id AS grid_id, (SELECT p.building_id FROM building_path p "
            "JOIN building b ON b.id = p.building_id WHERE p.grid_id = g.id "
            "ORDER BY b.households DESC, b.id LIMIT 1) AS building_id FROM grid g "
            "WHERE EXISTS (SELECT 1 FROM building_path p JOIN resident r "
            "ON r.building_id = p.building_id WHERE p.grid_id = g.id) ORDER BY g.id LIMIT 1"
        )
    ).first()
    if area is None:
        return
    wanted = {
        "staff1": ("committee_staff", [("community", area.community_id)]),
        "planner1": ("planner", [("community", area.community_id)]),
        "worker1": ("grid_worker", [("grid", area.grid_id)]),
        "leader1": ("building_leader", [("building", area.building_id)]),
    }
    lines = []
    for name, (role, areas) in wanted.items():
        exists = conn.scalar(sa.text("SELECT 1 FROM app_user WHERE username = :u"), {"u": name})
        if exists:
            continue
        password = secrets.token_urlsafe(12)
        create_user(conn, name, password, role, areas=areas)
        lines.append(f"{name}\t{role}\t{password}")
    if lines:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        path.chmod(0o600)
        typer.echo(f"logins for each role (staff1, planner1, worker1, leader1) in {path}")


@app.command()
def reach(
    category: Annotated[
        list[str] | None,
        typer.Option("--category", help="facility category code (repeat; default: all)"),
    ] = None,
    speed_m_per_min: Annotated[
        float, typer.Option(help="walking speed; 80 is an adult, 60 an elderly walker")
    ] = 80.0,
    elderly: Annotated[bool, typer.Option("--elderly", help="use 60 m/min")] = False,
    max_walk_m: Annotated[float, typer.Option(help="longest distance kept, metres")] = 2000.0,
    limit_min: Annotated[float, typer.Option(help="coverage limit in minutes")] = 10.0,
) -> None:
    """Compute walking distance from every building to the nearest facility of each category."""
    from gis.reach.coverage import coverage
    from gis.reach.service import compute_and_store

    engine = open_engine()
    try:
        with engine.begin() as conn:
            run = compute_and_store(
                conn,
                categories=category,
                speed_m_per_min=60.0 if elderly else speed_m_per_min,
                max_walk_m=max_walk_m,
            )
            cov = coverage(conn, limit_min=limit_min)
    except GridAtlasError as err:
        fail(err)
    finally:
        engine.dispose()
    s = run.seconds
    typer.echo(
        f"reach run {run.run_id}: {len(run.households):,} buildings, "
        f"{len(run.result.categories)} categories in {sum(s.values()):.2f} s "
        f"(read {s['read']:.2f}, compute {s['compute']:.2f}, write {s['write']:.2f}); "
        f"{run.islands} street islands besides the main network, "
        f"{run.unattached_buildings} buildings too far from any street"
    )
    typer.echo(
        f"households within {limit_min:g} min ({cov['limit_m']:.0f} m) on foot, "
        f"of {cov['households']:,}:"
    )
    for c in cov["categories"]:
        share = "" if c["share"] is None else f"{c['share']:>7.1%}"
        # operators read both languages: the code, then the Chinese and the English label
        label = f"{c['label_zh']} / {c['label_en']}"
        typer.echo(f"  {c['category']:<22}{c['households_covered']:>10,}{share}  {label}")
    typer.echo(f"  every category: {cov['households_with_every_category']:,}")


@app.command()
def synth(
    buildings: Annotated[int, typer.Option(help="how many buildings")] = 5000,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same city)")] = 1,
    out: Annotated[Path, typer.Option(help="GeoPackage to write")] = Path("var/synth.gpkg"),
) -> None:
    """Generate a deterministic synthetic city (GeoPackage the importer reads)."""
    from gis.synth import write_city

    try:
        summary = write_city(out, buildings=buildings, seed=seed)
    except GridAtlasError as err:
        fail(err)
    typer.echo(summary)


def _settings_note() -> str:
    s = get_settings()
    return s.database_url or str(s.pg_dir)


if __name__ == "__main__":
    app()
