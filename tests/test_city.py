"""``gridatlas city build`` on a real Dask cluster: a scheduler and a separate ``dask worker``
process on loopback, a small synthetic city, a fresh database per test.

What would be wrong if the pipeline were: a community left undelineated, households lost
or counted twice between buildings and groups, work redone on a second run, a failed task
dropped (or its half-written rows kept), rows duplicated after a ``kill -9`` and a re-run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyogrio
import pytest
import sqlalchemy as sa

from gis import db
from gis.settings import PROJECT_ROOT
from tests.conftest import cli, free_port

BUILDINGS = 300
DASK = Path(sys.executable).with_name("dask")


@pytest.fixture(scope="module")
def city_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from gis.synth import write_city

    out = tmp_path_factory.mktemp("city") / "city.gpkg"
    write_city(out, buildings=BUILDINGS, seed=1)
    return out


@pytest.fixture(scope="module")
def community_codes(city_file: Path) -> list[str]:
    frame = pyogrio.read_dataframe(city_file, layer="communities", read_geometry=False)
    column = "code" if "code" in frame.columns else frame.columns[0]
    return sorted(str(c) for c in frame[column])


def _wait_port(port: int, proc: subprocess.Popen, what: str) -> None:
    import socket

    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with {proc.returncode}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not listen within 60 s") from None
            time.sleep(0.2)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """A ``dask scheduler`` process on a free loopback port."""
    port = free_port()
    proc = subprocess.Popen(
        [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        cwd=PROJECT_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port, proc, "dask scheduler")
        yield f"tcp://127.0.0.1:{port}"
    finally:
        _stop(proc)


def _start_worker(address: str, **env: str) -> subprocess.Popen:
    """A separate ``dask worker`` process (one worker, one thread) of ``address``."""
    from distributed import Client

    port, nanny = free_port(), free_port()
    proc = subprocess.Popen(
        [str(DASK), "worker", address, "--host", "127.0.0.1", "--worker-port", str(port),
         "--nanny-port", str(nanny), "--nworkers", "1", "--nthreads", "1", "--no-dashboard"],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    with Client(address, timeout="30s") as client:
        client.wait_for_workers(1, timeout=60)
    return proc


@pytest.fixture
def worker(scheduler: str, tmp_path: Path) -> Iterator[Path]:
    """A worker whose fault folder (``GRIDATLAS_CITY_FAULTS``) is yielded."""
    faults = tmp_path / "faults"
    faults.mkdir()
    proc = _start_worker(scheduler, GRIDATLAS_CITY_FAULTS=str(faults))
    yield faults
    _stop(proc)


def _build(city: Path, scheduler: str, db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return cli(
        "city", "build", str(city), "--scheduler", scheduler, "--delineate-by", "community",
        "-q", *args, db_url=db_url,
    )  # fmt: skip


def _check_city(engine: sa.Engine, codes: list[str]) -> None:
    """Every community drawn, households adding up, nothing twice."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT c.code, "
                "(SELECT count(*) FROM residents_group g WHERE g.community_id = c.id), "
                "(SELECT coalesce(sum(g.households), 0) FROM residents_group g "
                " WHERE g.community_id = c.id), "
                "(SELECT coalesce(sum(b.households), 0) FROM building b "
                " WHERE b.community_id = c.id) "
                "FROM community c ORDER BY c.code"
            )
        ).all()
        assert [r[0] for r in rows] == codes
        for code, groups, group_hh, building_hh in rows:
            assert groups > 0, f"{code} has no residents' group"
            assert building_hh > 0
            assert group_hh == building_hh, f"{code}: groups {group_hh}, buildings {building_hh}"
        total = conn.scalar(sa.text("SELECT sum(households) FROM building"))
        assert sum(r[2] for r in rows) == total  # no building outside every community
        assert conn.scalar(sa.text("SELECT count(*) FROM building WHERE unit_id IS NULL")) == 0
        assert conn.scalar(
            sa.text(
                "SELECT count(*) FROM (SELECT community_id, code FROM residents_group "
                "GROUP BY 1, 2 HAVING count(*) > 1) d"
            )
        ) == 0  # fmt: skip
        cells = conn.execute(
            sa.text("SELECT count(*), count(DISTINCT building_id) FROM building_cell")
        ).one()
        assert cells[0] == cells[1] == conn.scalar(sa.text("SELECT count(*) FROM building"))
        figures = conn.execute(
            sa.text(
                "SELECT c.code, f.figures FROM community_figures f "
                "JOIN community c ON c.id = f.community_id ORDER BY c.code"
            )
        ).all()
        assert [f[0] for f in figures] == codes
        by_code = {r[0]: r[3] for r in rows}
        for code, fig in figures:
            assert fig["households"] == by_code[code]
            assert fig["figures"]["reach_coverage"]["value"]  # reach of every category
        assert conn.scalar(sa.text("SELECT count(*) FROM reach_run")) == 1
        recorded = conn.execute(
            sa.text("SELECT stage, count(*) FROM city_build_unit GROUP BY stage")
        ).all()
        n = len(codes)
        assert dict(recorded) == {"import": 1, "cells": 1, "delineate": n, "reach": 1, "reports": n}
        # one delineation run per community: none was drawn twice
        assert conn.scalar(sa.text("SELECT count(*) FROM delineation_run")) == n
        # the report figures' identity never outlives its savepoint
        assert not conn.scalar(
            sa.text("SELECT count(*) FROM app_user WHERE username LIKE 'city-build-%'")
        )


def _recorded(engine: sa.Engine) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT stage, unit, finished_at, attempt FROM city_build_unit ORDER BY 1, 2")
        ).all()


def test_build_on_a_dask_worker_then_a_second_run_redoes_nothing(
    city_file: Path, community_codes: list[str], scheduler: str, worker: Path, db_url: str
) -> None:
    first = _build(city_file, scheduler, db_url)
    assert first.returncode == 0, first.stderr + first.stdout
    assert "complete" in first.stdout
    engine = db.create_engine(db_url, poolclass=sa.NullPool)
    try:
        _check_city(engine, community_codes)
        before = _recorded(engine)
        with engine.connect() as conn:
            runs = conn.execute(sa.text("SELECT id FROM delineation_run ORDER BY id")).all()
            reach = conn.scalar(sa.text("SELECT id FROM reach_run"))
        second = _build(city_file, scheduler, db_url)
        assert second.returncode == 0, second.stderr + second.stdout
        stages = ("import", "cells", "delineate", "reach", "reports")
        rows = [ln.split() for ln in second.stdout.splitlines() if ln.split()[:1]
                and ln.split()[0] in stages]  # fmt: skip
        assert len(rows) == 5
        for stage, units, before_n, done_now, *_ in rows:
            assert before_n == units and done_now == "0", f"{stage} was redone"
        assert _recorded(engine) == before
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT id FROM delineation_run ORDER BY id")).all() == runs
            assert conn.scalar(sa.text("SELECT id FROM reach_run")) == reach
    finally:
        engine.dispose()


def test_a_task_that_fails_once_is_retried_and_its_half_write_rolled_back(
    city_file: Path, community_codes: list[str], scheduler: str, worker: Path, db_url: str
) -> None:
    target = community_codes[2]  # not the first: that one is drawn with the cells
    (worker / f"delineate.{target}").touch()
    (worker / f"reports.{community_codes[0]}").touch()
    out = _build(city_file, scheduler, db_url)
    assert out.returncode == 0, out.stderr + out.stdout
    assert not list(worker.iterdir())  # both faults fired
    assert f"delineate {target}" in out.stdout and f"reports {community_codes[0]}" in out.stdout
    engine = db.create_engine(db_url, poolclass=sa.NullPool)
    try:
        _check_city(engine, community_codes)  # one delineation run per community: rolled back
        with engine.connect() as conn:
            attempts = dict(
                conn.execute(
                    sa.text("SELECT stage || ' ' || unit, attempt FROM city_build_unit")
                ).all()
            )
            failures = conn.execute(
                sa.text("SELECT stage, unit, error FROM city_build_failure ORDER BY id")
            ).all()
        assert attempts[f"delineate {target}"] == 2
        assert attempts[f"reports {community_codes[0]}"] == 2
        retried = {f"delineate {target}", f"reports {community_codes[0]}"}
        assert {a for s, a in attempts.items() if s not in retried} == {1}
        assert sorted((f[0], f[1]) for f in failures) == sorted(
            [("delineate", target), ("reports", community_codes[0])]
        )
        assert all("injected fault" in f[2] for f in failures)
    finally:
        engine.dispose()


def test_a_unit_that_keeps_failing_is_reported_and_the_build_stops(
    city_file: Path, community_codes: list[str], scheduler: str, worker: Path, db_url: str
) -> None:
    target = community_codes[1]
    (worker / f"delineate.{target}").touch()
    out = _build(city_file, scheduler, db_url, "--retries", "0")
    assert out.returncode == 1, out.stderr + out.stdout
    assert f"delineate {target}: UnitFailed" in out.stdout or f"delineate {target}:" in out.stdout
    assert "injected fault" in out.stdout
    engine = db.create_engine(db_url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            stages = dict(
                conn.execute(
                    sa.text("SELECT stage, count(*) FROM city_build_unit GROUP BY stage")
                ).all()
            )
        # the other communities are done, nothing after the failed stage was started
        assert stages == {"import": 1, "cells": 1, "delineate": len(community_codes) - 1}
        again = _build(city_file, scheduler, db_url)  # the fault fired: a re-run resumes
        assert again.returncode == 0, again.stderr + again.stdout
        _check_city(engine, community_codes)
    finally:
        engine.dispose()


def test_kill_9_mid_run_then_a_rerun_finishes_without_duplicates(
    city_file: Path, community_codes: list[str], scheduler: str, tmp_path: Path, db_url: str
) -> None:
    proc = _start_worker(scheduler, GRIDATLAS_CITY_TASK_DELAY_S="1.0")
    engine = db.create_engine(db_url, poolclass=sa.NullPool)
    try:
        exe = Path(sys.executable).with_name("gridatlas")
        build = subprocess.Popen(
            [
                str(exe),
                "city",
                "build",
                str(city_file),
                "--scheduler",
                scheduler,
                "--delineate-by",
                "community",
                "-q",
            ],  # fmt: skip
            cwd=PROJECT_ROOT,
            env={**os.environ, "GRIDATLAS_DATABASE_URL": db_url},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 240
        done = 0
        while done < 3:  # the cells and at least two communities are in
            assert build.poll() is None, "the build ended before it could be killed"
            assert time.monotonic() < deadline, "the build made no progress"
            time.sleep(0.1)
            with engine.connect() as conn:
                if conn.scalar(sa.text("SELECT to_regclass('city_build_unit') IS NOT NULL")):
                    done = conn.scalar(
                        sa.text("SELECT count(*) FROM city_build_unit WHERE stage = 'delineate'")
                    )
        os.kill(build.pid, signal.SIGKILL)
        build.wait(timeout=30)
        with engine.connect() as conn:
            at_kill = conn.scalar(
                sa.text("SELECT count(*) FROM city_build_unit WHERE stage = 'delineate'")
            )
        assert at_kill < len(community_codes)  # killed mid-run
        again = _build(city_file, scheduler, db_url)
        assert again.returncode == 0, again.stderr + again.stdout
        _check_city(engine, community_codes)
    finally:
        engine.dispose()
        _stop(proc)


def test_delineate_by_city_draws_every_community_in_one_task(
    city_file: Path, community_codes: list[str], scheduler: str, worker: Path, db_url: str
) -> None:
    out = cli(
        "city", "build", str(city_file), "--scheduler", scheduler, "--delineate-by", "city",
        "-q", db_url=db_url,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr + out.stdout
    engine = db.create_engine(db_url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            runs = conn.scalar(sa.text("SELECT count(*) FROM delineation_run"))
            drawn_with = set(
                conn.scalars(
                    sa.text(
                        "SELECT result ->> 'with' FROM city_build_unit WHERE stage = 'delineate'"
                    )
                )
            )
            groups = conn.scalar(
                sa.text(
                    "SELECT count(*) FROM community c WHERE NOT EXISTS "
                    "(SELECT 1 FROM residents_group g WHERE g.community_id = c.id)"
                )
            )
        assert runs == 1 and drawn_with == {"cells/city"} and groups == 0
    finally:
        engine.dispose()


def test_a_missing_file_or_an_unreachable_scheduler_is_refused_with_the_reason(
    city_file: Path, db_url: str, tmp_path: Path
) -> None:
    missing = cli("city", "build", str(tmp_path / "nowhere.gpkg"), db_url=db_url)
    assert missing.returncode == 2
    assert "no such file" in missing.stderr
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    out = cli("city", "build", str(city_file), "--scheduler", address, db_url=db_url)
    assert out.returncode == 2, out.stderr + out.stdout
    assert f"cannot reach the Dask scheduler at {address}" in out.stderr
    assert "Traceback" not in out.stderr
