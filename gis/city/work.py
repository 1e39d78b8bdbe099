"""The tasks of a city build, run on Dask workers: each one unit, in one transaction.

A task gets the database URL (never an engine: it runs in another process, maybe on
another machine), opens its own connection, claims its unit (``ledger.claim``), does the
work through the engines' public entry points, records the unit and commits. Anything that
goes wrong rolls the whole unit back, is logged as a failed attempt and raised again, so
that Dask retries it and the build reports it.

Two test hooks, read from the worker's environment:

* ``GRIDATLAS_CITY_FAULTS``: a folder; a file ``<stage>.<unit>`` in it (``delineate.C0002``)
  makes that unit fail once, after its work is written and before the commit (the file is
  removed as the fault fires, so the retry succeeds);
* ``GRIDATLAS_CITY_TASK_DELAY_S``: seconds every task waits before its commit, so that a
  test can kill a build while tasks are in flight.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from psycopg.types.json import Jsonb
from sqlalchemy.engine import Connection

from gis import db
from gis.city.ledger import Unit, claim, record, record_failure

CITY = "city"  # the unit of a whole-city step (cells, reach)
FAULTS_ENV = "GRIDATLAS_CITY_FAULTS"
DELAY_ENV = "GRIDATLAS_CITY_TASK_DELAY_S"


class UnitFailed(RuntimeError):
    """A unit of work failed (its transaction was rolled back); the message says why.

    Raised instead of the original error, which may not survive the trip back to the
    client (database errors hold unpicklable connection state).
    """


@dataclass(frozen=True)
class Done:
    """What a task did: ``status`` is ``done``, or ``already`` when it was recorded."""

    stage: str
    unit: str
    status: str
    seconds: float
    result: dict[str, Any]


def run_unit(db_url: str, build: str, stage: str, unit: str, options: dict[str, Any]) -> Done:
    """Do one unit of work in one transaction of its own and record it there."""
    u = Unit(stage, unit)
    engine = db.create_engine(db_url, poolclass=sa.NullPool)
    t0 = time.perf_counter()
    try:
        with engine.begin() as conn:
            if not claim(conn, build, u):
                return Done(stage, unit, "already", 0.0, {})
            result, also = WORK[stage](conn, unit, options)
            _test_hooks(u)
            seconds = time.perf_counter() - t0
            record(conn, build, u, seconds, result)
            for other in also:  # units the same engine run finished too
                record(conn, build, Unit("delineate", other), 0.0, {"with": f"{stage}/{unit}"})
        return Done(stage, unit, "done", seconds, result)
    except Exception as err:
        reason = f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0]}"
        with contextlib.suppress(Exception):  # the database may be what failed
            record_failure(engine, build, u, reason)
        raise UnitFailed(reason) from None
    finally:
        engine.dispose()


def _test_hooks(u: Unit) -> None:
    delay = float(os.environ.get(DELAY_ENV) or 0)
    if delay > 0:
        time.sleep(delay)
    folder = os.environ.get(FAULTS_ENV)
    if not folder:
        return
    try:
        Path(folder, f"{u.stage}.{u.unit}").unlink()  # one process wins: the fault fires once
    except FileNotFoundError:
        return
    raise RuntimeError(f"injected fault ({FAULTS_ENV}) in {u.stage} {u.unit}")


def _params(options: dict[str, Any]):
    from gis.delineate.hierarchy import Params

    return Params(**options.get("params", {}))


def _codes(conn: Connection) -> list[str]:
    return list(conn.scalars(sa.text("SELECT code FROM community ORDER BY code")))


def do_cells(conn: Connection, unit: str, options: dict[str, Any]) -> tuple[dict, list[str]]:
    """Cut every street block into building cells and store them.

    The delineation engine tessellates the whole study area in one run and stores each
    block's cells (reused by later runs block by block); its public entry point always
    draws a community too. So this run draws the first community (or, with
    ``delineate_by=city`` or no communities yet, every one) and records those as done.
    """
    from gis.delineate.service import run_on

    codes = _codes(conn)
    whole = options.get("delineate_by") == "city" or not codes
    report = run_on(conn, _params(options), None if whole else codes[0])
    cells = conn.scalar(sa.text("SELECT count(*) FROM building_cell"))
    result = {
        "blocks_computed": report.computed_blocks,
        "blocks_reused": report.reused_blocks,
        "cells": int(cells or 0),
        "run_id": report.run_id,
        "timings": {k: round(v, 3) for k, v in report.timings.items()},
    }
    return result, list(report.communities)


def do_delineate(conn: Connection, code: str, options: dict[str, Any]) -> tuple[dict, list[str]]:
    """Draw one community's units, clusters, groups and grids (stored cells reused).

    ``run_community`` reads and draws that community alone under its own lock (the
    engine's global one shared), so the tasks of different communities run side by side.
    """
    from gis.delineate.service import run_community

    report = run_community(conn, _params(options), code)
    groups, households = conn.execute(
        sa.text(
            "SELECT count(*), coalesce(sum(g.households), 0) FROM residents_group g "
            "JOIN community c ON c.id = g.community_id WHERE c.code = :c"
        ),
        {"c": code},
    ).one()
    result = {
        "run_id": report.run_id,
        "groups": int(groups),
        "households": int(households),
        "blocks_computed": report.computed_blocks,
        "blocks_reused": report.reused_blocks,
    }
    return result, []


def do_reach(conn: Connection, unit: str, options: dict[str, Any]) -> tuple[dict, list[str]]:
    """Walking reach from every building to every category (one run, all categories)."""
    from gis.reach.service import compute_and_store

    run = compute_and_store(conn)
    return {
        "run_id": run.run_id,
        "categories": len(run.result.categories),
        "buildings": len(run.households),
        "seconds": {k: round(v, 3) for k, v in run.seconds.items()},
    }, []


@dataclass(frozen=True)
class _Builder:
    """The identity the report figures are computed under (an admin that is never stored)."""

    id: int
    role: str = "admin"

    def may_reveal(self, field: str) -> bool:
        return False


@contextlib.contextmanager
def _as_transient_admin(conn: Connection) -> Iterator[_Builder]:
    """An admin login inside a savepoint that is always rolled back.

    The report queries see a community through the user's scope (row-level security and
    ``ga_user()``), which a batch job does not have; this identity exists only inside the
    savepoint, so no login is ever stored or visible to anyone else.
    """
    savepoint = conn.begin_nested()
    try:
        token = secrets.token_urlsafe(24)
        uid = conn.scalar(
            sa.text(
                "INSERT INTO app_user (username, full_name, role, password_hash, is_active) "
                "VALUES (:n, 'city build', 'admin', '!', true) RETURNING id"
            ),
            {"n": f"city-build-{secrets.token_hex(6)}"},
        )
        conn.execute(
            sa.text(
                "INSERT INTO auth_session (token_hash, user_id, expires_at) VALUES "
                "(sha256(convert_to(:t, 'UTF8')), :u, now() + interval '1 hour')"
            ),
            {"t": token, "u": uid},
        )
        conn.execute(sa.text("SELECT set_config('ga.session', :t, true)"), {"t": token})
        yield _Builder(int(uid))
    finally:
        savepoint.rollback()


def do_reports(conn: Connection, code: str, options: dict[str, Any]) -> tuple[dict, list[str]]:
    """One community's report figures (profile and norms), stored in ``community_figures``."""
    from gis.reports import indicators

    cid = conn.scalar(sa.text("SELECT id FROM community WHERE code = :c"), {"c": code})
    now = dt.datetime.now(dt.UTC)
    with _as_transient_admin(conn) as who:
        norms = indicators.community_norms(conn, who, int(cid), now)
    conn.execute(
        sa.text(
            "INSERT INTO community_figures (community_id, figures) VALUES (:c, :f) "
            "ON CONFLICT (community_id) DO UPDATE SET figures = excluded.figures, "
            "computed_at = clock_timestamp()"
        ),
        {"c": cid, "f": Jsonb(norms)},
    )
    return {"households": norms["households"], "figures": len(norms["figures"])}, []


WORK: dict[str, Callable[[Connection, str, dict[str, Any]], tuple[dict, list[str]]]] = {
    "cells": do_cells,
    "delineate": do_delineate,
    "reach": do_reach,
    "reports": do_reports,
}
