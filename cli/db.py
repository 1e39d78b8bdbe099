"""``gridatlas db up|down|status|url``: the project-local PostGIS cluster."""

from __future__ import annotations

import typer

from cli.common import fail, open_engine
from gis import db, pgcluster
from gis.errors import GridAtlasError
from gis.settings import get_settings

app = typer.Typer(
    help="The database: a project-local PostGIS under var/pg, or GRIDATLAS_DATABASE_URL when set.",
    no_args_is_help=True,
)


@app.command()
def up() -> None:
    """Create (first time) and start the database, then apply migrations."""
    engine = open_engine()
    rev = db.current_revision(engine)
    engine.dispose()
    typer.echo(f"database up, schema at revision {rev}")


@app.command()
def down() -> None:
    """Stop the local database (data is kept under var/pg)."""
    settings = get_settings()
    if settings.database_url:
        typer.echo("GRIDATLAS_DATABASE_URL is set: that server is not ours to stop")
        return
    try:
        pgcluster.stop(pgcluster.LocalCluster(settings.pg_dir))
    except GridAtlasError as err:
        fail(err)
    typer.echo("database stopped")


@app.command()
def status() -> None:
    """Say whether the database runs, where, and at which schema revision."""
    settings = get_settings()
    if settings.database_url:
        url = settings.database_url
    else:
        cluster = pgcluster.LocalCluster(settings.pg_dir)
        if not pgcluster.is_running(cluster):
            typer.echo(
                f"local database at {cluster.data_dir}: stopped "
                f"({'initialised' if cluster.is_initialised else 'not created yet'})"
            )
            raise typer.Exit(3)
        url = cluster.url()
    engine = db.create_engine(url)
    try:
        rev = db.current_revision(engine)
    except Exception as err:  # noqa: BLE001 - report any connection failure as status
        typer.echo(f"database unreachable: {err}")
        raise typer.Exit(3) from err
    finally:
        engine.dispose()
    shown = db.make_url(url).render_as_string(hide_password=True)
    typer.echo(f"running: {shown} (schema revision {rev})")
