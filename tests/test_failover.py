"""High availability in short: one failover of a pg_auto_failover formation under load.

bench/failover.py makes the formation (monitor, primary, secondary, synchronous
replication) in a temporary var dir, runs the fault bench's write clients over the API on
the multi-host URL, kills the primary's postmaster and keeper, and checks every write the
API acknowledged on the new primary. Speed is not asserted here (the bench prints the
failover seconds); the wait is generous, so a failover that is not seen means the API did
not follow the new primary at all.
"""

from __future__ import annotations

import json
import subprocess
import sys

from gis import db, pgcluster
from gis.settings import PROJECT_ROOT, Settings


def _shared_postmaster() -> int | None:
    cluster = pgcluster.LocalCluster(Settings().pg_dir)
    pid_file = cluster.data_dir / "postmaster.pid"
    return int(pid_file.read_text().splitlines()[0]) if pid_file.exists() else None


def test_multi_host_url_as_printed_by_db_ha_is_understood() -> None:
    url = "postgresql://o:pw@127.0.0.1:5001,127.0.0.1:5002/ga?target_session_attrs=read-write"
    u = db.make_url(url)
    assert u.database == "ga" and u.username == "o" and u.password == "pw"
    assert u.query["host"] == ("127.0.0.1:5001", "127.0.0.1:5002")
    engine = db.create_engine(url)
    try:
        _args, kwargs = engine.dialect.create_connect_args(engine.url)
    finally:
        engine.dispose()
    assert kwargs["host"] == "127.0.0.1,127.0.0.1" and kwargs["port"] == "5001,5002"
    assert kwargs["target_session_attrs"] == "read-write"
    # a one-host URL is left as it is
    assert db.make_url("postgresql://o:pw@127.0.0.1:5001/ga").port == 5001


def test_no_acknowledged_write_is_lost_when_the_primary_is_killed(tmp_path, server_url) -> None:
    before = _shared_postmaster()
    out = tmp_path / "failover.json"
    proc = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "bench" / "failover.py"), "--load-s", "4",
         "--after-s", "3", "--json", str(out)],
        capture_output=True, text=True, timeout=900, cwd=PROJECT_ROOT,
    )  # fmt: skip
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(out.read_text())
    shown = proc.stdout[-2500:]
    assert r["new_primary"] not in (None, r["old_primary"]), shown  # the secondary took over
    assert r["failover_s"] is not None, shown  # the API acknowledged writes again
    assert r["acknowledged_after_kill"] > 0, shown
    assert r["api_kept"], shown  # ... without being restarted
    assert r["lost"] == 0, shown
    assert r["duplicated"] == 0, shown
    assert r["answers_503"] > 0  # clients asked while no node accepted writes
    assert r["no_retry_after"] == 0, shown
    assert r["other_5xx"] == 0, r["samples"]
    assert r["hangs"] == 0, shown
    assert proc.returncode == 0, shown
    assert _shared_postmaster() == before  # the shared cluster was never touched
