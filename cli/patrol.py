"""``gridatlas patrol escalate``: the scheduled job that escalates overdue problems."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import typer

from cli.common import fail, open_engine
from gis.errors import GridAtlasError, InvalidInput

app = typer.Typer(help="Patrols and problems: scheduled jobs.", no_args_is_help=True)


def _parse_now(value: str | None) -> dt.datetime:
    if value is None:
        return dt.datetime.now(dt.UTC)
    try:
        now = dt.datetime.fromisoformat(value)
    except ValueError:
        fail(InvalidInput(f"--now must be an ISO 8601 time, e.g. 2026-12-03T09:00:00+08:00: "
                          f"{value!r}"))  # fmt: skip
    if now.tzinfo is None:
        fail(InvalidInput("--now needs a time zone, e.g. 2026-12-03T09:00:00+08:00"))
    return now


@app.command("escalate")
def escalate(
    now: Annotated[
        str | None,
        typer.Option(help="the clock (ISO 8601 with a time zone); default: now"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Escalate overdue time-limited problems one level (worker → committee → subdistrict).

    Run it from cron or a timer (e.g. hourly); running it again at the same time changes
    nothing.
    """
    from gis.patrol.escalate import escalate_overdue

    at = _parse_now(now)
    engine = open_engine()
    try:
        with engine.begin() as conn:  # one transaction for the whole run
            result = escalate_overdue(conn, at)
    except GridAtlasError as err:
        fail(err)
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    typer.echo(f"{result['overdue']} overdue; escalated {len(result['escalated'])}")
    for item in result["escalated"]:
        typer.echo(f"  problem {item['problem_id']} → {item['to']} (deadline {item['deadline']})")
