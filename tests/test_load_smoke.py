"""bench/load.py, 10 seconds at a low rate: it runs end to end, no answer is a 5xx, and every
personal-data read the clients made wrote exactly one audit row (no timing is asserted:
speed goals are measured by the bench itself)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import sqlalchemy as sa

from gis import db
from gis.settings import PROJECT_ROOT


def test_load_bench_short_run(server_url: str, tmp_path: Path) -> None:
    name = f"ga_test_load_{uuid.uuid4().hex[:10]}"
    out = tmp_path / "load.json"
    try:
        proc = subprocess.run(
            [sys.executable, str(PROJECT_ROOT / "bench" / "load.py"), "--database", name,
             "--minutes", str(10 / 60), "--rate", "8", "--ramp", "2", "--workers", "1",
             "--grid-workers", "40", "--staff", "4", "--staff-share", "0.1", "--logins", "2",
             "--json", str(out)],
            capture_output=True, text=True, timeout=900, cwd=PROJECT_ROOT,
            env={**os.environ, "GRIDATLAS_DATABASE_URL": server_url},
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert out.exists(), proc.stdout + proc.stderr
        r = json.loads(out.read_text())
        assert "real logins through POST /api/auth/login: 2/2 ok" in proc.stdout
        assert r["measured_requests"] > 0
        assert r["status_5xx"] == 0, r["errors"]
        assert not r["errors"], r["errors"]  # no 4xx either: every request is a valid one
        # the staff's reads and the cards' residents pages are personal data: some were made
        assert r["personal_reads"] > 0
        assert r["audit_rows"] == r["personal_reads"]
        assert "audit rows written / personal-data reads" in proc.stdout
    finally:
        admin = db.create_engine(
            db.make_url(server_url).set(database="postgres").render_as_string(hide_password=False),
            isolation_level="AUTOCOMMIT",
            poolclass=sa.NullPool,
        )
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
