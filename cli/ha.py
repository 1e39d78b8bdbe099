"""``gridatlas db ha up|down|status``: a pg_auto_failover formation under var/ha.

A monitor, a primary and a secondary on loopback ports (gis/failover.py). ``up`` prints
the multi-host URL to put in GRIDATLAS_DATABASE_URL: the API then connects to whichever
node accepts writes, and follows a failover without a restart.
"""

from __future__ import annotations

import shutil
from typing import Annotated

import typer

from cli.common import fail
from gis import failover
from gis.errors import GridAtlasError

app = typer.Typer(
    help="High availability: pg_auto_failover (monitor, primary, secondary) under var/ha.",
    no_args_is_help=True,
)


@app.command()
def up() -> None:
    """Create (first time) and start the formation; print the URL for the API."""
    formation = failover.Formation(failover.default_root())
    try:
        url = failover.up(formation)
    except GridAtlasError as err:
        fail(err)
    _print_states(formation)
    typer.echo(f"GRIDATLAS_DATABASE_URL='{url}'")


@app.command()
def down(
    remove: Annotated[
        bool, typer.Option("--remove", help="also delete the formation's data (var/ha)")
    ] = False,
) -> None:
    """Stop the keepers and their servers (data kept unless --remove)."""
    formation = failover.Formation(failover.default_root())
    try:
        failover.down(formation)
    except GridAtlasError as err:
        fail(err)
    if remove:
        shutil.rmtree(formation.root, ignore_errors=True)
        typer.echo(f"formation stopped and {formation.root} removed")
    else:
        typer.echo("formation stopped")


@app.command()
def status() -> None:
    """The monitor's view of the nodes, the synchronous replication settings, the URL."""
    formation = failover.Formation(failover.default_root())
    if not formation.is_created:
        typer.echo(f"no formation under {formation.root}: `gridatlas db ha up` makes one")
        raise typer.Exit(3)
    if not _print_states(formation):
        typer.echo("the monitor does not answer: `gridatlas db ha up` starts the formation")
        raise typer.Exit(3)
    typer.echo(failover.settings_text(formation))
    typer.echo(f"GRIDATLAS_DATABASE_URL='{formation.url()}'")


def _print_states(formation: failover.Formation) -> bool:
    rows = failover.states(formation)
    for r in rows:
        typer.echo(f"  {r['name']:<8} 127.0.0.1:{r['port']:<6} {r['state']:<14} "
                   f"(goal {r['goal']}, health {r['health']})")  # fmt: skip
    return bool(rows)
