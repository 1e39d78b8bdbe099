"""``gridatlas city build FILE``: a whole city, stage by stage, on Dask (docs/scale.md)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from cli.common import EXIT_BAD_INPUT, open_engine
from gis import db, i18n
from gis.errors import GridAtlasError, InvalidInput
from gis.settings import get_settings

app = typer.Typer(
    help="A whole city in one command: import, cells, delineation, reach, report figures.",
    no_args_is_help=True,
)
EXIT_UNITS_FAILED = 1
STAGES = ("import", "cells", "delineate", "reach", "reports")


def _lang() -> str:
    return "zh" if os.environ.get("LANG", "").lower().startswith("zh") else "en"


def _fail(err: GridAtlasError) -> NoReturn:
    """The reason in the user's language (``LANG``: zh_CN… for Chinese), exit code 2."""
    text = i18n.t(err.key, _lang(), **err.params) if err.key else str(err)
    typer.echo(f"error: {text}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


@contextmanager
def _stage_bars(enabled: bool) -> Iterator:
    """Yield ``progress(stage, finished, total)``: one bar per stage on stderr."""
    if not enabled:
        yield lambda _s, _d, _t: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    lang = _lang()
    with Progress(
        TextColumn("{task.description:<30}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    ) as bars:
        tasks = {
            s: bars.add_task(i18n.t(f"city.stage.{s}", lang), total=None, start=False)
            for s in STAGES
        }

        def progress(stage: str, finished: float, total: float) -> None:
            task = tasks[stage]
            bars.start_task(task)
            bars.update(task, completed=finished, total=total)

        yield progress


def _echo_report(report, lang: str) -> None:
    typer.echo(i18n.t("city.header", lang, build=report.build))
    typer.echo("  " + i18n.t("city.columns", lang))
    for s in report.stages:
        typer.echo(
            f"  {s.stage:<14}{s.units:>8,}{s.recorded_before:>14,}{s.done + s.already:>11,}"
            f"{len(s.retried):>11,}{len(s.failed):>10,}{s.seconds:>9.1f} s"
        )
    retried = [f"{s.stage} {u}" for s in report.stages for u in s.retried]
    if retried:
        typer.echo(i18n.t("city.retried", lang, units=", ".join(retried)))


@app.command("build")
def build(
    path: Annotated[Path, typer.Argument(help="the city file (e.g. `gridatlas synth`'s .gpkg)")],
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="an existing Dask scheduler, tcp://host:port (default: settings' "
            "dask_scheduler, else a local cluster)"
        ),
    ] = None,  # fmt: skip
    workers: Annotated[
        int | None, typer.Option(help="local cluster: worker processes (default: every core)")
    ] = None,
    delineate_by: Annotated[
        str,
        typer.Option(help="community: one task per community; city: one engine run draws all"),
    ] = "community",
    retries: Annotated[int, typer.Option(help="retries of a failed task")] = 2,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
) -> None:
    """Import FILE, cut cells, delineate every community, compute reach, report figures.

    Resumable: units of work already recorded are not redone (run it again after a crash).
    """
    from gis.city.build import DELINEATE_BY, build_city
    from gis.city.cluster import dask_client
    from gis.io.pipeline import detect_format

    lang = _lang()
    if workers is not None and workers < 1:
        _fail(InvalidInput("--workers must be at least 1", key="city.bad_workers"))
    if delineate_by not in DELINEATE_BY:
        _fail(InvalidInput("--delineate-by: community or city", key="city.bad_delineate_by"))
    try:
        detect_format(path)  # refused before a cluster is started
    except GridAtlasError as err:
        _fail(err)
    settings = get_settings()
    address = scheduler or settings.dask_scheduler
    engine = open_engine()
    try:
        url = db.resolve_url(settings)
        with dask_client(address, workers) as client:
            n = len(client.scheduler_info().get("workers", {}))
            if address:
                typer.echo(i18n.t("city.cluster_remote", lang, address=address, workers=n))
            else:
                typer.echo(i18n.t("city.cluster_local", lang, workers=n))
            with _stage_bars(not quiet) as progress:
                report = build_city(
                    engine, url, path, client, delineate_by=delineate_by, retries=retries,
                    on_progress=progress,
                )  # fmt: skip
    except GridAtlasError as err:
        _fail(err)
    finally:
        engine.dispose()
    _echo_report(report, lang)
    if report.is_complete:
        typer.echo(i18n.t("city.complete", lang))
        return
    stopped = report.stages[-1]
    typer.echo(i18n.t("city.stopped", lang, stage=stopped.stage, count=len(stopped.failed)))
    for unit, error in stopped.failed:
        typer.echo(i18n.t("city.failed_unit", lang, stage=stopped.stage, unit=unit, error=error))
    raise typer.Exit(EXIT_UNITS_FAILED)
