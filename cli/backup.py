"""``gridatlas backup FILE | base`` and ``gridatlas restore FILE | --to-time T``."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from cli.common import EXIT_BAD_INPUT
from gis import backup as backups
from gis import db, i18n
from gis.errors import GridAtlasError
from gis.settings import get_settings


def _fail(err: GridAtlasError) -> NoReturn:
    """The reason in the user's language (``LANG``: zh_CN… for Chinese), exit code 2."""
    lang = "zh" if os.environ.get("LANG", "").lower().startswith("zh") else "en"
    text = i18n.t(err.key, lang, **err.params) if err.key else str(err)
    typer.echo(f"error: {text}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def _owner_url() -> str:
    try:
        return db.resolve_url(get_settings())
    except GridAtlasError as err:
        _fail(err)


def _print_sums(outcome: backups.Outcome, copy_label: str) -> None:
    typer.echo(f"  {'table':<28}{'rows':>10}  {'checksum':<12}  {copy_label}")
    for name, s in outcome.source.items():
        other = outcome.copy.get(name)
        same = "equal" if other == s else f"DIFFERS ({other.rows if other else '-'} rows)"
        typer.echo(f"  {name:<28}{s.rows:>10,}  {s.md5[:12]}  {same}")


def backup(
    file: Annotated[
        str,
        typer.Argument(help="the dump to write (FILE.manifest.json is written beside it), "
                       "or `base` for a base backup of the local cluster (WAL archiving)"),
    ],
    into: Annotated[
        Path | None, typer.Option(help="base backup: the folder (default var/pg/base-backups)")
    ] = None,
) -> None:  # fmt: skip
    """Back up the database (pg_dump), verified by a restore into a scratch database."""
    if file == "base":
        _base_backup(into)
        return
    url = _owner_url()
    try:
        outcome = backups.backup(url, Path(file))
    except GridAtlasError as err:
        _fail(err)
    _print_sums(outcome, "after a trial restore")
    typer.echo(
        f"backup of {outcome.database} written to {outcome.path} and verified: "
        f"{len(outcome.source)} tables, {outcome.rows:,} rows, counts and checksums equal "
        f"after a restore into a scratch database (manifest {backups.manifest_path(outcome.path)})"
    )


def restore(
    file: Annotated[
        Path | None, typer.Argument(help="a dump written by `gridatlas backup FILE`")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="replace a database that holds data")
    ] = False,
    to_time: Annotated[
        str | None,
        typer.Option(
            "--to-time",
            help="point-in-time recovery of the local cluster: the moment to go back to, "
            "e.g. '2026-12-01 23:10:05+00' (from the newest base backup and archived WAL)",
        ),
    ] = None,
    target_dir: Annotated[
        Path | None,
        typer.Option(help="--to-time: recover into this new folder instead of var/pg"),
    ] = None,
) -> None:
    """Restore a backup (verified before it replaces anything), or recover to a moment."""
    if to_time is not None:
        _recover(to_time, target_dir, force)
        return
    if file is None:
        typer.echo("error: give the backup FILE, or --to-time for point-in-time recovery", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    url = _owner_url()
    try:
        outcome = backups.restore(url, file, force=force)
    except GridAtlasError as err:
        _fail(err)
    _print_sums(outcome, "restored")
    typer.echo(
        f"restored {file} as {outcome.database} and verified: {len(outcome.source)} tables, "
        f"{outcome.rows:,} rows, counts and checksums equal to the backup's manifest"
    )
    typer.echo("apply newer migrations, if any, with `gridatlas db up`")


def _base_backup(into: Path | None) -> None:
    from gis import pgcluster, pitr

    settings = get_settings()
    if settings.database_url:
        typer.echo("error: GRIDATLAS_DATABASE_URL is set: base backups are for the local "
                   "cluster; use `gridatlas backup FILE` for that server", err=True)  # fmt: skip
        raise typer.Exit(EXIT_BAD_INPUT)
    cluster = pgcluster.LocalCluster(settings.pg_dir)
    try:
        made = pitr.base_backup(cluster, into)
    except GridAtlasError as err:
        _fail(err)
    typer.echo(f"base backup written to {made} (WAL archive: {cluster.wal_archive})")


def _recover(to_time: str, target_dir: Path | None, force: bool) -> None:
    from gis import pgcluster, pitr
    from gis.errors import InvalidInput

    try:
        moment = dt.datetime.fromisoformat(to_time)
    except ValueError:
        _fail(InvalidInput(f"--to-time {to_time!r} is not a time; write e.g. "
                           "'2026-12-01 23:10:05+00:00'", key="pitr.bad_time",
                           value=repr(to_time)))  # fmt: skip
    if moment.tzinfo is None:
        moment = moment.astimezone()  # the machine's zone, said in the output
    settings = get_settings()
    cluster = pgcluster.LocalCluster(settings.pg_dir)
    try:
        target = pitr.recover_to(cluster, moment, target_dir, replace=force)
    except GridAtlasError as err:
        _fail(err)
    typer.echo(f"recovered to {moment.isoformat()} in {target.data_dir}; running on port "
               f"{target.port}")  # fmt: skip
