"""Benchmark: ``gridatlas city build`` stage by stage on a synthetic city (issue 17).

    .venv/bin/python bench/city.py [--buildings 20000] [--seed 1] [--sample 0] [--keep]

A city (``gis.synth.write_city``) is built into a fresh database on the local server, on a
local Dask cluster of 2 worker processes, with the delineation drawn by one engine run
(``--delineate-by city``; see below). Printed per stage: wall time, the work summed over
the tasks, and the peak memory (the summed RSS of the client and its worker processes,
sampled every 0.1 s; PostgreSQL's own processes are not counted).

Then the per-community stages on 1 and on 2 workers, as peers in the same run:

* delineation one task per community (``--delineate-by community``: each task draws its
  community alone, ``service.run_community``, in its own transaction) on ``--sample``
  communities (0, the default: every one), against the one-run figure; and before that
  one community's delineation in this process through the old entry point (``run_on``
  with a community: the whole city read and drawn) and the new one, rolled back;
* the report figures of ``--report-sample`` communities (no shared lock: the Dask side
  alone).

Each line shows the summed task time and the 1-minute load before and after each run: on a
shared machine a change of load between the two runs moves the ratio more than anything.

The machine is shared: the load (``uptime``) is printed before and after. Keep the size at
or under 50,000 buildings on a shared machine (the 100k/300k/1M runs need a quiet one).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gis import db  # noqa: E402
from gis.settings import get_settings  # noqa: E402

MAX_HERE = 50_000


class PeakMemory:
    """Peak RSS of this process and its children, per label (the stage running)."""

    def __init__(self) -> None:
        import psutil

        self._me = psutil.Process()
        self.label = "start"
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _rss(self) -> int:
        import psutil

        total = 0
        for p in [self._me, *self._me.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.Error:  # a worker that just exited
                continue
        return total

    def _sample(self) -> None:
        while not self._stop.is_set():
            rss = self._rss()
            self.peaks[self.label] = max(self.peaks.get(self.label, 0), rss)
            self._stop.wait(0.1)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _database(server: str) -> str:
    name = f"ga_bench_city_{uuid.uuid4().hex[:8]}"
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    db.ensure_database(url)
    db.migrate(url)
    return url


def _drop(server: str, url: str) -> None:
    admin = db.create_engine(
        make_url(server).set(database="postgres").render_as_string(hide_password=False),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.NullPool,
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


def _pipeline(engine, url: str, city: Path, mem: PeakMemory):
    from gis.city.build import build_city
    from gis.city.cluster import dask_client

    def progress(stage: str, _done: float, _total: float) -> None:
        mem.label = stage

    with dask_client(None, 2) as client:
        return build_city(engine, url, city, client, delineate_by="city", on_progress=progress)


def _load1() -> float:
    return os.getloadavg()[0]


def _stage_on(engine, url: str, workers: int, stage: str, units: list[str]) -> tuple:
    """(wall s, task s summed, load before, load after) of ``stage`` over ``units`` on a
    fresh local cluster of ``workers``. A task's time includes its wait for the engine's
    lock: summed task seconds near ``workers`` × wall with a wall that did not shrink
    means the tasks ran one after another."""
    from gis.city.build import run_stage
    from gis.city.cluster import dask_client

    key = f"bench-{stage}-{workers}w-{uuid.uuid4().hex[:6]}"  # nothing recorded: all redone
    options = {"params": {}, "delineate_by": "community"}
    with dask_client(None, workers) as client:
        client.wait_for_workers(workers)
        before = _load1()
        out = run_stage(engine, client, url, key, stage, units, options, 0, lambda *_: None)
    if out.failed:
        raise SystemExit(f"{stage} on {workers} workers failed: {out.failed}")
    return out.seconds, out.task_seconds, before, _load1()


def _print_pipeline(report, mem: PeakMemory) -> None:
    print(f"\n{'stage':<12}{'units':>8}{'wall s':>10}{'task s':>10}{'peak MB':>10}")
    for s in report.stages:
        peak = mem.peaks.get(s.stage, 0) / 1e6
        shown = f"{peak:>10.0f}" if peak else f"{'-':>10}"  # no task of its own: nothing ran
        print(f"{s.stage:<12}{s.units:>8,}{s.seconds:>10.1f}{s.task_seconds:>10.1f}{shown}")
    print(f"{'overall peak':<40}{max(mem.peaks.values()) / 1e6:>10.0f}")


def _peer_line(label: str, one: tuple, two: tuple) -> None:
    print(
        f"{label:<40}{one[0]:>9.1f}s{two[0]:>10.1f}s{one[0] / two[0]:>8.2f}×"
        f"{one[1]:>11.0f}s{two[1]:>7.0f}s   {one[2]:.1f}→{one[3]:.1f} / {two[2]:.1f}→{two[3]:.1f}"
    )


def _one_task(engine, code: str, whole_city: bool) -> tuple[float, float]:
    """(wall s, CPU s of this process) of one community's delineation, rolled back: the
    entry point before issue 17's (``run_on``: the whole city read and drawn, one community
    written) or now (``run_community``: the community alone)."""
    import time

    from gis.delineate.service import run_community, run_on

    with engine.connect() as conn:
        tx = conn.begin()
        w, c = time.perf_counter(), time.process_time()
        if whole_city:
            run_on(conn, None, code)
        else:
            run_community(conn, None, code)
        out = time.perf_counter() - w, time.process_time() - c
        tx.rollback()
    return out


def _print_task_costs(engine, code: str) -> None:
    before = _one_task(engine, code, whole_city=True)
    after = _one_task(engine, code, whole_city=False)
    print(
        f"\none community's delineation ({code}), in this process, rolled back:\n"
        f"{'':<40}{'wall s':>10}{'CPU s':>10}\n"
        f"{'before: run_on(…, community)':<40}{before[0]:>10.2f}{before[1]:>10.2f}\n"
        f"{'now: run_community':<40}{after[0]:>10.2f}{after[1]:>10.2f}\n"
        f"{'ratio':<40}{before[0] / after[0]:>9.1f}×{before[1] / max(after[1], 1e-9):>9.1f}×"
        f"   load {_load1():.1f}"
    )


def _print_peers(engine, url: str, sample: int, report_sample: int, cells_s: float) -> None:
    with engine.connect() as conn:
        codes = list(conn.scalars(sa.text("SELECT code FROM community ORDER BY code")))
    _print_task_costs(engine, codes[len(codes) // 2])
    picked, reported = codes[: sample or len(codes)], codes[: report_sample or len(codes)]
    print(f"\nper-community stages on 1 and 2 workers ({len(codes)} communities)")
    print(f"{'':<40}{'wall: 1 w':>10}{'2 w':>11}{'speedup':>9}{'tasks: 1 w':>12}{'2 w':>8}"
          "   load 1 w / 2 w")  # fmt: skip
    d1 = _stage_on(engine, url, 1, "delineate", picked)
    d2 = _stage_on(engine, url, 2, "delineate", picked)
    _peer_line(f"delineation, {len(picked)} communities", d1, d2)
    r1 = _stage_on(engine, url, 1, "reports", reported)
    r2 = _stage_on(engine, url, 2, "reports", reported)
    _peer_line(f"report figures, {len(reported)} communities", r1, r2)
    every = d1[0] / len(picked) * len(codes)
    print(
        f"\ndelineation of every community: one engine run (cells stage) {cells_s:.1f} s; "
        f"a task per community (run_community), from the sample on 1 worker: {every:.0f} s "
        f"on 1 worker, {d2[0] / len(picked) * len(codes):.0f} s on 2 "
        f"(mean task {d1[1] / len(picked):.2f} s on 1 worker)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--buildings", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--sample", type=int, default=0, help="communities delineated a task each (0: all)"
    )
    ap.add_argument(
        "--report-sample", type=int, default=40, help="communities whose figures are timed (0: all)"
    )
    ap.add_argument("--keep", action="store_true", help="keep the database")
    args = ap.parse_args()
    if args.buildings > MAX_HERE and not os.environ.get("GRIDATLAS_BENCH_QUIET_MACHINE"):
        raise SystemExit(
            f"more than {MAX_HERE:,} buildings: run it in a quiet window "
            "(set GRIDATLAS_BENCH_QUIET_MACHINE=1)"
        )
    from gis.synth import write_city

    print("load:", _load())
    server = db.resolve_url(get_settings())
    with tempfile.TemporaryDirectory() as tmp:
        city = Path(tmp) / "city.gpkg"
        print(write_city(city, buildings=args.buildings, seed=args.seed))
        url = _database(server)
        engine = db.create_engine(url, poolclass=sa.NullPool)
        try:
            with PeakMemory() as mem:
                report = _pipeline(engine, url, city, mem)
            _print_pipeline(report, mem)
            if not report.is_complete:
                raise SystemExit(f"the build did not complete: {report.as_dict()}")
            cells = next(s for s in report.stages if s.stage == "cells")
            _print_peers(engine, url, args.sample, args.report_sample, cells.seconds)
        finally:
            engine.dispose()
            if args.keep:
                print(f"kept {make_url(url).database}")
            else:
                _drop(server, url)
    print("load:", _load())


if __name__ == "__main__":
    main()
