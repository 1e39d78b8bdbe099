"""``gridatlas keys status|rotate|retire``: which keys seal the data, and changing them."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from cli.common import fail, open_engine
from gis.errors import GridAtlasError, InvalidInput
from gis.settings import get_settings

app = typer.Typer(
    help="The secret keys that encrypt ID and phone numbers: status, rotation, retirement.",
    no_args_is_help=True,
)

PRINT_HELP = (
    "for keys kept in GRIDATLAS_SECRET_KEY: print its new value (a secret!) instead of "
    "writing the key file"
)


@app.command("status")
def status() -> None:
    """Show the keys in the ring and how many sealed fields each one holds."""
    from gis.keyring import load_ring
    from gis.rotate import count_by_version, totals

    engine = open_engine()
    try:
        ring = load_ring(get_settings())
        with engine.connect() as conn:
            counts = count_by_version(conn)
    except GridAtlasError as err:
        fail(err)
    finally:
        engine.dispose()
    per_key = totals(counts)
    typer.echo(f"keys from {ring.where}; newest v{ring.newest}")
    typer.echo(f"{'key':<6}{'fields':>10}  " + "".join(f"{c:>20}" for c in counts))
    for v in sorted(set(ring.versions) | set(per_key), reverse=True):
        if v not in ring.versions:
            note = "MISSING from the key file: these fields cannot be opened"
        elif v == ring.newest:
            note = "newest"
        elif per_key.get(v):
            note = "older: `gridatlas keys rotate` re-encrypts these"
        else:
            note = "unused: `gridatlas keys retire` drops it"
        cells = "".join(f"{c.get(v, 0):>20,}" for c in counts.values())
        typer.echo(f"v{v:<5}{per_key.get(v, 0):>10,}  {cells}  {note}")


@app.command("rotate")
def rotate(
    batch_size: Annotated[
        int, typer.Option(help="rows per transaction (smaller holds row locks shorter)")
    ] = 1000,
    pause: Annotated[
        float, typer.Option(help="seconds to wait between batches, to spare a busy server")
    ] = 0.0,
    print_ring: Annotated[bool, typer.Option("--print", help=PRINT_HELP)] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
) -> None:
    """Add a new key and re-encrypt every sealed field with it; run again to resume."""
    from cli.progress import progress_reporter
    from gis.keyring import load_ring
    from gis.rotate import new_ring_to_print, rotate_keys

    if batch_size < 1 or pause < 0:
        fail(InvalidInput("--batch-size must be at least 1 and --pause not negative"))
    engine = open_engine()
    try:
        ring = load_ring(get_settings())
        if print_ring:
            if ring.path is not None:
                fail(
                    InvalidInput(
                        f"--print is for keys in GRIDATLAS_SECRET_KEY; these are "
                        f"in {ring.where}, which rotate updates itself"
                    )
                )
            typer.echo(new_ring_to_print(engine, ring).render(one_line=True))
            return
        with progress_reporter(enabled=not quiet and sys.stderr.isatty()) as step:
            report = rotate_keys(engine, ring, batch_size=batch_size, pause_s=pause, on_step=step)
    except GridAtlasError as err:
        fail(err)
    finally:
        engine.dispose()
    if report.added:
        typer.echo(f"added key v{report.version} to {ring.where} (back the file up now)")
    else:
        typer.echo(f"resumed the rotation to key v{report.version} (no new key made)")
    typer.echo(f"re-encrypted {report.reencrypted:,} fields in {report.seconds:.1f} s")
    if report.history_rows:
        typer.echo(
            f"note: ledger history recorded {report.history_rows:,} unchanged updates "
            "(this database role may not set session_replication_role)"
        )
    if report.unreadable:
        typer.echo(
            f"{len(report.unreadable):,} rows could not be opened and were left as "
            f"they are: {', '.join(report.unreadable[:20])}",
            err=True,
        )
    if report.busy:
        typer.echo(
            f"{report.busy:,} fields were held by edits throughout; run "
            "`gridatlas keys rotate` again to finish",
            err=True,
        )
    if report.unreadable or report.busy:
        raise typer.Exit(1)
    typer.echo("every field uses the newest key; `gridatlas keys retire` drops the old ones")


@app.command("retire")
def retire(print_ring: Annotated[bool, typer.Option("--print", help=PRINT_HELP)] = False) -> None:
    """Drop older keys that no sealed field uses any more from the key file."""
    from gis.keyring import load_ring
    from gis.rotate import retire_keys

    engine = open_engine()
    try:
        ring = load_ring(get_settings())
        if ring.path is None and not print_ring:
            fail(
                InvalidInput(
                    "the keys come from GRIDATLAS_SECRET_KEY: run `gridatlas keys "
                    "retire --print` for its new value and set it yourself"
                )
            )
        after, counts = retire_keys(engine, ring, write=ring.path is not None)
    except GridAtlasError as err:
        fail(err)
    finally:
        engine.dispose()
    if print_ring:
        typer.echo(after.render(one_line=True))
        return
    dropped = [v for v in ring.versions if v not in after.versions]
    kept = [f"v{v} ({counts.get(v, 0):,} fields)" for v in after.versions]
    if dropped:
        typer.echo(
            f"retired {', '.join(f'v{v}' for v in dropped)} from {ring.where}; kept "
            f"{', '.join(kept)}. Backups of the database made before the rotation "
            "need the retired keys: keep an offline copy if you may restore one"
        )
    else:
        typer.echo(f"nothing to retire: {', '.join(kept)}")
