"""The record of a city build's finished units of work, which makes a build resumable.

A unit (the import, the cells, one community's delineation, reach, one community's report
figures) is written by one task in one transaction, and that same transaction inserts the
unit's row here: a unit is recorded exactly when its work is stored. A killed or failed
task leaves neither its rows nor its record, so the next build redoes it; a recorded unit
is never redone.

The tables are made by migration 0017; a build refuses a database without them.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from psycopg.types.json import Jsonb
from sqlalchemy.engine import Connection, Engine

from gis.errors import DatabaseUnavailable

STAGES = ("import", "cells", "delineate", "reach", "reports")


@dataclass(frozen=True)
class Unit:
    """One unit of work: ``unit`` is a community code, or ``city`` for a whole-city step."""

    stage: str
    unit: str


def ensure_tables(engine: Engine) -> None:
    """Refuse a database without the build's tables (migration 0017): migrate it first."""
    with engine.connect() as conn:
        if conn.scalar(sa.text("SELECT to_regclass('city_build_unit')")) is None:
            raise DatabaseUnavailable(
                "this database has no city build tables: run `gridatlas db up` (or point "
                "GRIDATLAS_DATABASE_URL at a migrated database) first"
            )


def finished(conn: Connection, build: str, stage: str) -> set[str]:
    """The units of ``stage`` already recorded for ``build``."""
    rows = conn.execute(
        sa.text("SELECT unit FROM city_build_unit WHERE build = :b AND stage = :s"),
        {"b": build, "s": stage},
    )
    return {r[0] for r in rows}


def claim(conn: Connection, build: str, unit: Unit) -> bool:
    """Lock ``unit`` for this transaction; False when it is already recorded.

    A task whose client was killed can still be running when the next build hands the same
    unit to another worker: the lock makes the second wait, then find the unit done.
    """
    conn.execute(
        sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
        {"k": f"city:{build}:{unit.stage}:{unit.unit}"},
    )
    return not conn.scalar(
        sa.text(
            "SELECT EXISTS (SELECT 1 FROM city_build_unit "
            "WHERE build = :b AND stage = :s AND unit = :u)"
        ),
        {"b": build, "s": unit.stage, "u": unit.unit},
    )


def record(
    conn: Connection, build: str, unit: Unit, seconds: float, result: dict | None = None
) -> None:
    """Record ``unit`` as finished, in the transaction that stored its work."""
    conn.execute(
        sa.text(
            "INSERT INTO city_build_unit (build, stage, unit, seconds, attempt, result) "
            "VALUES (:b, :s, :u, :t, 1 + (SELECT count(*) FROM city_build_failure "
            "WHERE build = :b AND stage = :s AND unit = :u), :r) "
            # a unit another run of the engine finished too may be recorded already
            "ON CONFLICT (build, stage, unit) DO NOTHING"
        ),
        {
            "b": build,
            "s": unit.stage,
            "u": unit.unit,
            "t": seconds,
            "r": Jsonb(result or {}),
        },
    )


def record_failure(engine: Engine, build: str, unit: Unit, error: str) -> None:
    """Log a failed attempt in its own transaction (the task's own was rolled back)."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO city_build_failure (build, stage, unit, error) VALUES (:b, :s, :u, :e)"
            ),
            {"b": build, "s": unit.stage, "u": unit.unit, "e": error[:2000]},
        )


def failures(conn: Connection, build: str, since: object) -> list[tuple[str, str, str]]:
    """(stage, unit, error) of the attempts that failed in this build since ``since``."""
    rows = conn.execute(
        sa.text(
            "SELECT stage, unit, error FROM city_build_failure "
            "WHERE build = :b AND at >= :t ORDER BY id"
        ),
        {"b": build, "t": since},
    )
    return [(r[0], r[1], r[2]) for r in rows]
