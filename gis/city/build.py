"""A whole city in one run: import, cells, delineation, reach, report figures (resumable).

The stages run in order; each is a set of units of work (``gis.city.work``) handed to a
Dask cluster, one task per unit, with retries. A stage starts only when the one before is
complete; a stage that ends with failed units stops the build, which reports them (a
re-run resumes there). Units recorded by an earlier run (``gis.city.ledger``) are not
handed out again, so after a crash or ``kill -9`` a second run does only what is missing.

The import reads one local file and writes it in one transaction (``import_file``), so it
runs here, in the client; every other stage runs on the workers.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gis.city import ledger
from gis.city.work import CITY, Done, run_unit

WORKER_STAGES = ("cells", "delineate", "reach", "reports")
PER_COMMUNITY = frozenset({"delineate", "reports"})
DELINEATE_BY = ("community", "city")
DEFAULT_RETRIES = 2

Progress = Callable[[str, float, float], None]  # (stage, finished, total)


@dataclass
class StageReport:
    """What one stage did in this run."""

    stage: str
    units: int = 0
    recorded_before: int = 0  # finished by an earlier run: not redone
    done: int = 0
    already: int = 0  # found finished when its task started (another run's task did it)
    retried: list[str] = field(default_factory=list)  # failed at least once, then done
    failed: list[tuple[str, str]] = field(default_factory=list)  # (unit, last error)
    seconds: float = 0.0
    task_seconds: float = 0.0  # summed over the tasks (the work the workers did)


@dataclass
class BuildReport:
    """The stages of one run, in order (the last one shown is where a failed build stopped)."""

    build: str
    stages: list[StageReport] = field(default_factory=list)

    @property
    def is_complete(self) -> bool:
        return len(self.stages) == 1 + len(WORKER_STAGES) and not any(s.failed for s in self.stages)

    def as_dict(self) -> dict[str, Any]:
        return {"build": self.build, "is_complete": self.is_complete,
                "stages": [asdict(s) for s in self.stages]}  # fmt: skip


def build_key(path: Path, params: dict[str, Any]) -> str:
    """Name a build by the file's content and the delineation parameters."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    h.update(json.dumps(params, sort_keys=True).encode())
    return h.hexdigest()[:16]


def build_city(
    engine: Engine,
    db_url: str,
    path: Path,
    client: Any,
    *,
    delineate_by: str = "community",
    params: dict[str, Any] | None = None,
    retries: int = DEFAULT_RETRIES,
    on_progress: Progress | None = None,
) -> BuildReport:
    """Run every stage that is not finished yet for the city in ``path``.

    ``client`` is a ``distributed.Client``; ``db_url`` is what the workers connect with.
    ``params`` are the delineation's (``gis.delineate.hierarchy.Params`` fields).
    """
    from gis.io.pipeline import detect_format

    detect_format(Path(path))  # a missing, empty or unknown file: refused before any work
    progress = on_progress or (lambda _s, _d, _t: None)
    params = params or {}
    ledger.ensure_tables(engine)
    key = build_key(path, params)
    with engine.connect() as conn:
        started = conn.scalar(sa.text("SELECT clock_timestamp()"))
    report = BuildReport(key)
    report.stages.append(_import(engine, key, Path(path), progress))
    options = {"params": params, "delineate_by": delineate_by}
    for stage in WORKER_STAGES:
        units = plan_units(engine, stage)
        out = run_stage(engine, client, db_url, key, stage, units, options, retries, progress)
        report.stages.append(out)
        if out.failed:
            break
    _note_retries(engine, key, started, report)
    return report


def _import(engine: Engine, key: str, path: Path, progress: Progress) -> StageReport:
    """Import the file in the client (one transaction), unless this build did already."""
    from gis.io.pipeline import import_file

    out = StageReport("import", units=1)
    with engine.connect() as conn:
        if CITY in ledger.finished(conn, key, "import"):
            out.recorded_before = 1
            progress("import", 1.0, 1.0)
            return out
    t0 = time.perf_counter()
    report = import_file(engine, path, on_step=lambda _name, f: progress("import", f, 1.0))
    out.seconds = out.task_seconds = time.perf_counter() - t0
    # A kill between the import's commit and this record makes the next run import the
    # file again, which changes nothing (re-imports match features by id).
    with engine.begin() as conn:
        counts = {k: v.as_dict() for k, v in report.counts.items()}
        ledger.record(conn, key, ledger.Unit("import", CITY), out.seconds, {"counts": counts})
    out.done = 1
    progress("import", 1.0, 1.0)
    return out


def plan_units(engine: Engine, stage: str) -> list[str]:
    """The units of ``stage``: every community, or the whole city once."""
    if stage not in PER_COMMUNITY:
        return [CITY]
    with engine.connect() as conn:
        return list(conn.scalars(sa.text("SELECT code FROM community ORDER BY code")))


def run_stage(
    engine: Engine,
    client: Any,
    db_url: str,
    key: str,
    stage: str,
    units: list[str],
    options: dict[str, Any],
    retries: int,
    progress: Progress,
) -> StageReport:
    """Hand the stage's unfinished units to the cluster and wait for every one."""
    from distributed import as_completed

    t0 = time.perf_counter()
    with engine.connect() as conn:
        finished = ledger.finished(conn, key, stage)
    todo = [u for u in units if u not in finished]
    out = StageReport(stage, units=len(units), recorded_before=len(units) - len(todo))
    progress(stage, out.recorded_before, len(units))
    run = uuid.uuid4().hex[:8]
    futures = {
        client.submit(
            run_unit, db_url, key, stage, u, options,
            retries=retries, pure=False, key=f"city-{stage}-{u}-{run}",
        ): u
        for u in todo
    }  # fmt: skip
    for n, future in enumerate(as_completed(futures), start=1):
        unit = futures[future]
        if future.status == "error":
            out.failed.append((unit, str(future.exception())))
        else:
            _count(out, future.result())
        future.release()
        progress(stage, out.recorded_before + n, len(units))
    out.seconds = time.perf_counter() - t0
    return out


def _count(out: StageReport, done: Done) -> None:
    if done.status == "already":
        out.already += 1
    else:
        out.done += 1
        out.task_seconds += done.seconds


def _note_retries(engine: Engine, key: str, since: Any, report: BuildReport) -> None:
    """Name the units that failed in this run and were then done by a retry."""
    with engine.connect() as conn:
        failed = ledger.failures(conn, key, since)
    by_stage = {s.stage: s for s in report.stages}
    for stage, unit, _error in failed:
        s = by_stage.get(stage)
        if s is None or unit in s.retried or any(u == unit for u, _ in s.failed):
            continue
        s.retried.append(unit)
