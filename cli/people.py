"""``gridatlas keygen``, ``gridatlas user …`` and ``gridatlas people …``."""

from __future__ import annotations

import secrets
import sys
from typing import Annotated

import typer

from cli.common import fail, open_engine
from gis.errors import GridAtlasError, InvalidInput
from gis.settings import get_settings

users = typer.Typer(
    help="Users of the API: roles and the areas they may see.", no_args_is_help=True
)
people = typer.Typer(help="The ledgers of people.", no_args_is_help=True)


def keygen() -> None:
    """Write a new secret key to var/secret.key (never overwrites: the key opens the data)."""
    from gis.security import write_key_file

    settings = get_settings()
    path = settings.secret_key_file
    if write_key_file(path):
        typer.echo(f"wrote a new secret key to {path} (mode 0600); back it up: without it the "
                   "encrypted ID and phone numbers cannot be read")  # fmt: skip
    else:
        typer.echo(f"{path} exists; kept it (delete it yourself only if no data uses it)")


def _scope(conn, text: str) -> tuple[str, int]:
    from gis.accounts import SCOPE_LEVELS, find_area

    level, _, ref = text.partition(":")
    if level not in SCOPE_LEVELS or not ref:
        raise InvalidInput(
            f"--scope is LEVEL:CODE_OR_ID with LEVEL one of {', '.join(SCOPE_LEVELS)}"
        )
    return level, find_area(conn, level, ref)


ROLE_HELP = "admin, planner, committee_staff, grid_worker, building_leader"
SCOPE_HELP = "LEVEL:CODE, e.g. community:C01 (repeat)"


@users.command("add")
def add_user(
    username: Annotated[str, typer.Argument(help="login name: letters, digits, . _ -")],
    role: Annotated[str, typer.Option(help=ROLE_HELP)],
    scope: Annotated[list[str] | None, typer.Option("--scope", help=SCOPE_HELP)] = None,
    full_name: Annotated[str | None, typer.Option(help="name shown in the app")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from stdin")
    ] = False,
) -> None:
    """Create a user; without --password-stdin a random password is printed once."""
    from gis.accounts import create_user

    password = sys.stdin.readline().rstrip("\n") if password_stdin else secrets.token_urlsafe(12)
    engine = open_engine()
    try:
        with engine.begin() as conn:
            areas = [_scope(conn, s) for s in scope or []]
            uid = create_user(conn, username, password, role, full_name, areas)
    except GridAtlasError as err:
        fail(err)
    finally:
        engine.dispose()
    typer.echo(f"user {username} (id {uid}, {role}) created")
    if not password_stdin:
        typer.echo(f"password: {password}")


@people.command("synth")
def synth_people(
    seed: Annotated[int, typer.Option(help="random seed")] = 1,
    limit: Annotated[int | None, typer.Option(help="stop after this many residents")] = None,
) -> None:
    """Fill the ledgers with synthetic residents (marked synthetic) for every dwelling."""
    from cli.progress import progress_reporter
    from gis.ledger.synth import generate
    from gis.security import Keys

    engine = open_engine()
    try:
        keys = Keys.from_settings(get_settings())
        with progress_reporter(enabled=sys.stderr.isatty()) as step, engine.begin() as conn:
            counts = generate(conn, keys, seed=seed, limit=limit, on_step=step)
    except GridAtlasError as err:
        fail(err)
    finally:
        engine.dispose()
    typer.echo(
        ", ".join(f"{v:,} {k.replace('_', ' ')}" for k, v in counts.items()) + " (synthetic)"
    )
