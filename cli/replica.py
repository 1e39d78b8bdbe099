"""``gridatlas db replica up|down|status``: a read replica of the local cluster (var/pg-replica).

A streaming-replication standby of the project-local PostgreSQL (gis/replica.py). While
it runs, an API started against the local cluster sends the reads of read-only routes to
it (a client that has just written reads from the primary until its write has arrived).
"""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import fail
from gis import db, pgcluster, replica
from gis.errors import GridAtlasError
from gis.settings import get_settings

app = typer.Typer(
    help="A read replica (streaming standby) of the local database, under var/pg-replica.",
    no_args_is_help=True,
)


def _primary() -> pgcluster.LocalCluster:
    settings = get_settings()
    if settings.database_url:
        fail(
            GridAtlasError(
                "GRIDATLAS_DATABASE_URL is set: replicate that server with its own tools and "
                "give the standby's URL in GRIDATLAS_REPLICA_URL"
            )
        )
    return pgcluster.LocalCluster(settings.pg_dir)


@app.command()
def up() -> None:
    """Copy the local database (first time) and start the replica; print where it runs."""
    primary = _primary()
    try:
        url = replica.up(primary)
        state = replica.state(primary)
    except GridAtlasError as err:
        fail(err)
    shown = db.make_url(url).render_as_string(hide_password=True)
    typer.echo(f"replica running: {shown} (behind by {state.lag_bytes or 0} bytes of WAL)")


@app.command()
def down(
    remove: Annotated[
        bool, typer.Option("--remove", help="also delete the replica's data (var/pg-replica)")
    ] = False,
) -> None:
    """Stop the replica (the API then reads from the primary again)."""
    try:
        replica.down(_primary(), remove=remove)
    except GridAtlasError as err:
        fail(err)
    typer.echo("replica stopped" + (" and removed" if remove else ""))


@app.command()
def status() -> None:
    """Whether the replica runs, its port, and how far behind the primary it is."""
    try:
        state = replica.state(_primary())
    except GridAtlasError as err:
        fail(err)
    if not state.running:
        typer.echo("replica stopped (`gridatlas db replica up` starts it)")
        raise typer.Exit(3)
    typer.echo(
        f"replica running on 127.0.0.1:{state.port}, replayed {state.replay_lsn}, "
        f"behind by {state.lag_bytes if state.lag_bytes is not None else '?'} bytes of WAL"
    )
