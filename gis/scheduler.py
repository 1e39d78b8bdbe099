"""Periodic jobs inside the app (定时任务): overdue escalation every few minutes.

The app's lifespan starts one ``Scheduler`` per process (``GRIDATLAS_JOBS_EVERY_MIN``; 0
turns it off, as tests and deployments that run ``gridatlas patrol escalate`` from cron
do). Each pass runs every job of ``JOBS`` in a transaction of its own, as the database's
owner (a job acts for nobody and must see every problem, which the app's role cannot).

Several API processes each run a scheduler, so a pass is guarded twice: a transaction-level
advisory lock per job (a process that finds it taken skips the pass), and, under that lock,
the time of the job's last recorded pass (a process that wakes just after another one's pass
skips it too). The jobs are idempotent anyway: escalation at the same clock moves nothing
twice. A pass that fails is rolled back, logged and recorded as failed; the next pass tries
again. Nothing a job raises stops the scheduler or the app.

Every pass is a row of ``audit_log`` (``user_id`` 0: nobody; ``action`` ``job``,
``subject`` the job's name, ``subject_ids`` what it changed, ``detail`` its counts, the
clock it ran at, its duration and the process), which admins read with ``GET
/api/patrol/jobs`` (``recent_runs``) or in SQL.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from gis import db, permissions, tiles
from gis.audit import Who
from gis.errors import InvalidInput
from gis.patrol.escalate import escalate_overdue
from gis.settings import Settings, get_settings

log = logging.getLogger("gridatlas.scheduler")

NOBODY = 0  # audit_log.user_id of the jobs (no login has id 0: ids start at 1)
ACTION = "job"
FIRST_PASS_AFTER_S = 30.0  # the first pass soon after start-up, not a whole interval later
MAX_RUNS = 500


@dataclass(frozen=True)
class JobResult:
    """What a job did: the rows it changed and its counts (recorded with the pass)."""

    changed_ids: list[int]
    counts: dict[str, int]


@dataclass(frozen=True)
class Job:
    name: str
    run: Callable[[Connection, dt.datetime], JobResult]


def _escalate(conn: Connection, now: dt.datetime) -> JobResult:
    result = escalate_overdue(conn, now)
    moved = result["escalated"]
    return JobResult(
        [e["problem_id"] for e in moved],
        {"overdue": result["overdue"], "escalated": len(moved)},
    )


def _compact_tiles(conn: Connection, now: dt.datetime) -> JobResult:
    """Keep the tile cache bounded: outdated entries out, the newest ``tile_cache_tiles``."""
    keep = get_settings().tile_cache_tiles
    return JobResult([], {"outdated_tiles_dropped": tiles.compact_cache(conn, keep)})


# Reminders, coverage and weekly summaries are computed when read: escalation is the only
# job that changes what people see; the tile cache's upkeep changes nothing visible.
JOBS: tuple[Job, ...] = (Job("escalate", _escalate), Job("tile_cache", _compact_tiles))

LOCK = sa.text("SELECT pg_try_advisory_xact_lock(hashtext('gridatlas.job.' || :job))")
RECENT = sa.text(
    "SELECT EXISTS (SELECT 1 FROM audit_log WHERE user_id = :nobody AND action = :action "
    "AND subject = :job AND at > now() - :gap AND detail ->> 'ok' = 'true')"
)
RECORD = sa.text(
    "INSERT INTO audit_log (user_id, action, subject, subject_ids, detail) "
    "VALUES (:nobody, :action, :job, :ids, CAST(:detail AS jsonb))"
)


def process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def record_pass(conn: Connection, job: str, ids: list[int], detail: dict[str, Any]) -> None:
    """Put one pass of ``job`` on record (in the caller's transaction; as the owner)."""
    conn.execute(
        RECORD,
        {
            "nobody": NOBODY,
            "action": ACTION,
            "job": job,
            "ids": ids,
            "detail": json.dumps(detail, ensure_ascii=False, default=str),
        },
    )


def run_job(
    engine: Engine, job: Job, now: dt.datetime, min_gap: dt.timedelta = dt.timedelta(0)
) -> dict[str, Any] | None:
    """One pass of ``job`` at ``now``, recorded; None when another process runs it or ran it
    less than ``min_gap`` ago. Raises what the job raised (after recording the failure)."""
    started = time.monotonic()
    base = {"clock": now.isoformat(), "process": process_name()}
    try:
        with engine.begin() as conn:
            if not conn.scalar(LOCK, {"job": job.name}):
                return None  # another process is in the middle of this pass
            recent = {"nobody": NOBODY, "action": ACTION, "job": job.name, "gap": min_gap}
            if min_gap > dt.timedelta(0) and conn.scalar(RECENT, recent):
                return None  # another process has just done it
            result = job.run(conn, now)
            detail = {**base, "ok": True, **result.counts,
                      "duration_ms": round((time.monotonic() - started) * 1000)}  # fmt: skip
            record_pass(conn, job.name, result.changed_ids, detail)
            return {"job": job.name, **detail, "changed_ids": result.changed_ids}
    except Exception as err:
        # the database's own words, not the statement and its parameters around them
        reason = (str(getattr(err, "orig", None) or err).splitlines() or [""])[0]
        failure = {**base, "ok": False, "error": f"{type(err).__name__}: {reason}"[:500]}
        try:
            with engine.begin() as conn:
                record_pass(conn, job.name, [], failure)
        except Exception:  # the database itself is away: the log has it
            log.warning("could not record the failed %s pass", job.name, exc_info=True)
        raise


def run_pass(
    engine: Engine,
    now: dt.datetime,
    jobs: tuple[Job, ...] = JOBS,
    min_gap: dt.timedelta = dt.timedelta(0),
) -> list[dict[str, Any]]:
    """Run every job once (each in its own transaction); the passes this process ran.

    A job that fails is logged and does not stop the others."""
    done = []
    for job in jobs:
        try:
            outcome = run_job(engine, job, now, min_gap)
        except Exception:
            log.exception("scheduled job %s failed; it runs again at the next pass", job.name)
            continue
        if outcome is not None:
            done.append(outcome)
            log.info("scheduled job %s: %s", job.name, outcome)
    return done


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Scheduler:
    """Runs ``run_pass`` every ``interval`` in a thread of its own until ``stop``.

    ``connect`` gives an engine for one pass (the owner's; made again each time, so a
    database that moved or came back is found, and disposed after the pass); ``clock`` the
    time each pass runs at.
    """

    def __init__(
        self,
        connect: Callable[[], Engine],
        interval: dt.timedelta,
        clock: Callable[[], dt.datetime] = utc_now,
        jobs: tuple[Job, ...] = JOBS,
        first_pass_after: dt.timedelta | None = None,
    ) -> None:
        if interval <= dt.timedelta(0):
            raise ValueError("the interval between passes must be positive")
        self.connect, self.interval, self.clock, self.jobs = connect, interval, clock, jobs
        self.first_pass_after = (
            min(interval, dt.timedelta(seconds=FIRST_PASS_AFTER_S))
            if first_pass_after is None
            else first_pass_after
        )
        self.passes = 0  # passes attempted by this scheduler (whatever they found to do)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.is_running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="gridatlas-jobs", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop after the pass in progress, if any (waits up to ``timeout_s``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("the scheduler's pass did not end within %.0f s", timeout_s)
            self._thread = None

    def run_once(self) -> list[dict[str, Any]]:
        """One pass now (what the thread runs each interval)."""
        self.passes += 1
        try:
            engine = self.connect()
        except Exception:
            log.exception("scheduled jobs: no database for this pass; trying again later")
            return []
        try:
            # half an interval: two processes waking a little apart still make one pass
            return run_pass(engine, self.clock(), self.jobs, self.interval / 2)
        finally:
            engine.dispose()

    def _loop(self) -> None:
        wait = self.first_pass_after
        while not self._stop.wait(wait.total_seconds()):
            try:
                self.run_once()
            except Exception:  # never let the thread die: the next pass tries again
                log.exception("scheduled pass failed")
            wait = self.interval


def recent_runs(conn: Connection, user: Who, limit: int = 50) -> list[dict[str, Any]]:
    """The latest passes of the scheduled jobs, newest first (admins)."""
    permissions.require(user, "see_job_runs", "see the scheduled jobs")
    if not 1 <= limit <= MAX_RUNS:
        raise InvalidInput(f"limit is 1 to {MAX_RUNS}")
    rows = conn.execute(
        sa.text(
            "SELECT id, at, subject AS job, subject_ids, detail FROM audit_log "
            "WHERE user_id = :nobody AND action = :action ORDER BY at DESC, id DESC LIMIT :n"
        ),
        {"nobody": NOBODY, "action": ACTION, "n": limit},
    )
    return [
        {
            "id": int(r.id),
            "at": r.at.isoformat(),
            "job": r.job,
            "is_ok": bool(r.detail.get("ok")),
            "changed_ids": [int(i) for i in r.subject_ids],
            **{k: v for k, v in r.detail.items() if k != "ok"},
        }
        for r in rows
    ]


def start_for(settings: Settings) -> Scheduler | None:
    """The app's scheduler, started (``settings.jobs_every_min``; None when 0: off)."""
    if not settings.jobs_every_min:
        return None

    def connect() -> Engine:
        # the owner's URL, resolved again each pass (a local cluster may have moved)
        return db.create_engine(db.resolve_url(settings, start_local=False), poolclass=sa.NullPool)

    scheduler = Scheduler(connect, dt.timedelta(minutes=settings.jobs_every_min))
    scheduler.start()
    return scheduler
