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

    The app runs it every few minutes itself (GRIDATLAS_JOBS_EVERY_MIN); with that set to
    0, run this from cron or a timer (e.g. hourly). Running it again at the same time
    changes nothing. Each run is on record like the app's passes (GET /api/patrol/jobs).
    """
    from gis.patrol.escalate import escalate_overdue
    from gis.scheduler import process_name, record_pass

    at = _parse_now(now)
    engine = open_engine()
    try:
        with engine.begin() as conn:  # one transaction for the whole run, and its record
            result = escalate_overdue(conn, at)
            moved = [e["problem_id"] for e in result["escalated"]]
            detail = {"clock": at.isoformat(), "process": process_name(), "via": "cli",
                      "ok": True, "overdue": result["overdue"],
                      "escalated": len(moved)}  # fmt: skip
            record_pass(conn, "escalate", moved, detail)
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
