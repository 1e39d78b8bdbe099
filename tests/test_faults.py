"""The fault test in short (bench/faults.py: 3 kills under load, 1 during an import).

It runs on a cluster of its own in a temporary var dir; the shared cluster the other tests
use must keep running, untouched. Speed is not asserted here (the bench prints the
seconds back); the wait for the API after each restart is generous, so a kill that is not
survived means the API did not come back at all.
"""

from __future__ import annotations

import json
import subprocess
import sys

from gis import pgcluster
from gis.settings import PROJECT_ROOT, Settings


def _shared_postmaster() -> int | None:
    cluster = pgcluster.LocalCluster(Settings().pg_dir)
    pid_file = cluster.data_dir / "postmaster.pid"
    return int(pid_file.read_text().splitlines()[0]) if pid_file.exists() else None


def test_no_acknowledged_write_is_lost_when_postgresql_is_killed(tmp_path, server_url) -> None:
    before = _shared_postmaster()
    out = tmp_path / "faults.json"
    proc = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "bench" / "faults.py"), "--kills", "3",
         "--import-kills", "1", "--import-buildings", "3000", "--back-wait", "120",
         "--json", str(out)],
        capture_output=True, text=True, timeout=900, cwd=PROJECT_ROOT,
    )  # fmt: skip
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(out.read_text())
    shown = proc.stdout[-2500:]
    assert r["kills"] == 3 and r["kills_survived"] == 3, shown
    assert r["import_kills"] == 1 and r["import_kills_survived"] == 1, shown
    assert r["acknowledged"] > 0 and set(r["acknowledged_by_kind"]) >= {"checkin", "organisation"}
    assert r["lost"] == 0, shown
    assert r["duplicated"] == 0, shown
    assert r["partial_imports"] == 0 and r["reruns_complete"], shown
    assert r["import_crashes"] == 0, shown  # a one-line reason, exit 2, never a traceback
    assert r["answers_503"] > 0  # the database was down while clients asked
    assert r["answers_503_without_retry_after"] == 0, shown
    assert r["other_5xx"] == 0, r["unexpected"]
    assert r["hangs"] == 0 and r["transport_errors"] == 0, shown
    assert _shared_postmaster() == before  # the shared cluster was never touched
