"""Key rotation: `gridatlas keys rotate|status|retire` as a user runs them, over real rows."""

from __future__ import annotations

import hashlib
import hmac
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import pytest
import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from shapely.geometry import box

from gis.errors import InsecureConfiguration
from gis.io.pipeline import import_file
from gis.keyring import new_master, parse_ring, read_ring_file, replace_ring_file, write_key_file
from gis.ledger.synth import generate
from gis.rotate import SEALED
from gis.security import Keys
from gis.settings import PROJECT_ROOT, Settings
from tests.conftest import cli

LON, LAT = 121.50, 31.28
PHONE = "13800138000"


def _settings(var: Path) -> Settings:
    return Settings(secret_key=None, var_dir=var)


def _env(var: Path) -> dict[str, str]:
    """Keys from ``var/secret.key``, not the test run's GRIDATLAS_SECRET_KEY."""
    return {"GRIDATLAS_SECRET_KEY": "", "GRIDATLAS_VAR_DIR": str(var)}


def _seed(engine, tmp_path: Path) -> Path:
    """Synthetic people and an organisation sealed with a v1 (old, one-line) key file."""
    var = tmp_path / "var"
    assert write_key_file(var / "secret.key")
    flats = {"building:flats": [12, 12, 12, 12]}
    gdf = gpd.GeoDataFrame(
        {"id": list("ABCD"), "building": ["apartments"] * 4, **flats},
        geometry=[
            box(LON + 0.0006 * i, LAT, LON + 0.0006 * i + 0.0003, LAT + 0.0003) for i in range(4)
        ],
        crs=4326,
    )
    path = tmp_path / "buildings.geojson"
    gdf.to_file(path)
    import_file(engine, path)
    keys = Keys.from_settings(_settings(var))
    with engine.begin() as conn:
        assert generate(conn, keys, seed=5)["residents"] > 60
        cid = conn.scalar(
            sa.text(
                "INSERT INTO community (code, name, geom) VALUES ('C01', '测试社区', "
                "ST_Multi(ST_MakeEnvelope(121.5, 31.28, 121.51, 31.29, 4326))) RETURNING id"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO organisation (name, kind, phone_enc, phone_hmac, phone_masked, "
                "community_id) VALUES ('小卖部', 'shop', :e, :h, '138****8000', :c)"
            ),
            {
                "e": keys.seal(PHONE, "organisation.phone"),
                "h": keys.search_hash(PHONE, "phone"),
                "c": cid,
            },
        )
    return var


def _blobs(engine) -> dict[tuple[str, str, int], bytes]:
    out = {}
    with engine.connect() as conn:
        for c in SEALED:
            for rid, blob in conn.execute(
                sa.text(f"SELECT id, {c.column} FROM {c.table} WHERE {c.column} IS NOT NULL")
            ):
                out[(c.table, c.aad, rid)] = bytes(blob)
    return out


def _plain(keys: Keys, blobs: dict) -> dict:
    return {k: keys.open(b, k[1]) for k, b in blobs.items()}


def _visible(engine) -> list[tuple]:
    """What users see of a row: versions, edit times, and the history table."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT 'r', id, version, updated_at, updated_by FROM resident UNION ALL "
                "SELECT 'o', id, version, updated_at, updated_by FROM organisation ORDER BY 1, 2"
            )
        ).all()
        history = conn.scalar(sa.text("SELECT count(*) FROM ledger_history"))
    return [*rows, ("history", history)]


def test_rotate_reseals_every_field_with_the_new_key(engine, db_url, tmp_path: Path) -> None:
    var = _seed(engine, tmp_path)
    old = Keys.from_settings(_settings(var))
    before_blobs = _blobs(engine)
    plain = _plain(old, before_blobs)
    assert {b[0] for b in before_blobs.values()} == {1}
    assert len({k[1] for k in plain}) == 3  # all three sealed columns have values
    seen = _visible(engine)

    out = cli("keys", "rotate", "-q", db_url=db_url, **_env(var))
    assert out.returncode == 0, out.stderr
    assert "added key v2" in out.stdout
    assert f"re-encrypted {len(plain):,} fields" in out.stdout

    ring = read_ring_file(var / "secret.key")
    assert ring.versions == (2, 1) and (var / "secret.key").stat().st_mode & 0o777 == 0o600
    new = Keys.from_settings(_settings(var))
    after = _blobs(engine)
    assert {b[0] for b in after.values()} == {2}
    assert _plain(new, after) == plain
    old = Keys.derive(old.ring.master(1))  # the old key alone, not re-read from the file
    for k, blob in after.items():  # it opens nothing, whatever the header says
        with pytest.raises(ValueError, match="v2"):
            old.open(blob, k[1])
        with pytest.raises(InvalidTag):
            AESGCM(old.encrypt).decrypt(blob[1:13], blob[13:], k[1].encode())
    # searches and the database login are unchanged; nothing users see moved
    assert new.search == old.search and new.db_password() == old.db_password()
    number = next(v for k, v in plain.items() if k[1] == "resident.id_number")
    with engine.connect() as conn:
        found = conn.scalars(
            sa.text("SELECT id FROM resident WHERE id_number_hmac = :h"),
            {"h": new.search_hash(number, "id_number")},
        ).all()
    assert [("resident", "resident.id_number", found[0])] == [
        k for k, v in plain.items() if v == number
    ]
    assert _visible(engine) == seen

    # retire drops v1; the file keeps the search and db-role sub-keys, not v1 itself
    out = cli("keys", "retire", db_url=db_url, **_env(var))
    assert out.returncode == 0, out.stderr
    assert "retired v1" in out.stdout
    ring = read_ring_file(var / "secret.key")
    assert ring.versions == (2,) and ring.master(1) is None
    retired = Keys.from_settings(_settings(var))
    assert retired.search == old.search and retired.db_password() == old.db_password()
    assert _plain(retired, after) == plain
    assert old.ring.master(1).hex() not in (var / "secret.key").read_text()


def test_a_killed_rotation_resumes_without_a_new_key(engine, db_url, tmp_path: Path) -> None:
    var = _seed(engine, tmp_path)
    plain = _plain(Keys.from_settings(_settings(var)), _blobs(engine))
    total = len(plain)
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("gridatlas")), "keys", "rotate", "-q"]
        + ["--batch-size", "5", "--pause", "0.1"],
        env={**os.environ, "GRIDATLAS_DATABASE_URL": db_url, **_env(var)},
        cwd=PROJECT_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            done = sum(1 for b in _blobs(engine).values() if b[0] == 2)
            if done >= 15:  # at least a few batches committed
                break
            assert proc.poll() is None, "the rotation ended before it could be interrupted"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    versions = [b[0] for b in _blobs(engine).values()]
    assert 0 < versions.count(2) < total and versions.count(1) > 0  # cut in the middle
    assert read_ring_file(var / "secret.key").versions == (2, 1)

    status = cli("keys", "status", db_url=db_url, **_env(var))
    assert status.returncode == 0, status.stderr
    lines = {line.split()[0]: line for line in status.stdout.splitlines()[2:]}
    assert lines["v2"].split()[1] == f"{versions.count(2):,}"
    assert lines["v1"].split()[1] == f"{versions.count(1):,}" and "rotate" in lines["v1"]
    out = cli("keys", "retire", db_url=db_url, **_env(var))  # v1 still in use: kept
    assert out.returncode == 0 and "nothing to retire" in out.stdout
    assert read_ring_file(var / "secret.key").versions == (2, 1)

    out = cli("keys", "rotate", "-q", "--batch-size", "7", db_url=db_url, **_env(var))
    assert out.returncode == 0, out.stderr
    assert "resumed the rotation to key v2 (no new key made)" in out.stdout
    assert f"re-encrypted {versions.count(1):,} fields" in out.stdout
    assert read_ring_file(var / "secret.key").versions == (2, 1)
    after = _blobs(engine)
    assert {b[0] for b in after.values()} == {2}
    assert _plain(Keys.from_settings(_settings(var)), after) == plain

    status = cli("keys", "status", db_url=db_url, **_env(var))
    lines = {line.split()[0]: line for line in status.stdout.splitlines()[2:]}
    assert lines["v2"].split()[1] == f"{total:,}" and lines["v1"].split()[1] == "0"
    assert "retire" in lines["v1"]


def test_keys_in_the_environment_are_not_rewritten(engine, db_url, tmp_path: Path) -> None:
    var = _seed(engine, tmp_path)
    single = (var / "secret.key").read_text().strip()
    env = {"GRIDATLAS_SECRET_KEY": single, "GRIDATLAS_VAR_DIR": str(tmp_path / "none")}
    out = cli("keys", "rotate", db_url=db_url, **env)
    assert out.returncode == 2
    assert "GRIDATLAS_SECRET_KEY" in out.stderr and "--print" in out.stderr
    assert not (tmp_path / "none").exists()
    printed = cli("keys", "rotate", "--print", db_url=db_url, **env)
    assert printed.returncode == 0, printed.stderr
    ring = parse_ring(printed.stdout, "test")
    assert ring.versions == (2, 1) and ring.master(1).hex() == single
    # the operator sets the printed value, restarts the app, then rotates: only re-encrypts
    env["GRIDATLAS_SECRET_KEY"] = printed.stdout.strip()
    out = cli("keys", "rotate", "-q", db_url=db_url, **env)
    assert out.returncode == 0, out.stderr
    assert "resumed the rotation to key v2" in out.stdout
    assert {b[0] for b in _blobs(engine).values()} == {2}


def test_old_one_line_key_files_read_as_version_one() -> None:
    master = bytes(range(1, 33))
    keys = Keys(parse_ring(master.hex() + "\n", "file"))
    assert keys.ring.versions == (1,)
    # a value sealed before rotation existed: sub-key HMAC(master, label), header byte 1
    enc = hmac.new(master, b"gridatlas/field-encryption", hashlib.sha256).digest()
    nonce = bytes(12)
    blob = b"\x01" + nonce + AESGCM(enc).encrypt(nonce, b"13800138000", b"resident.phone")
    assert keys.open(blob, "resident.phone") == "13800138000"
    role = hmac.new(master, b"gridatlas/database-role", hashlib.sha256).digest()
    assert keys.db_password() == role.hex()
    other = bytes(range(40, 72)).hex()
    with pytest.raises(InsecureConfiguration, match="version"):
        parse_ring(f"v2:{other} {master.hex()}", "file")
    with pytest.raises(InsecureConfiguration, match="no v1 key"):
        Keys(parse_ring(f"v2:{other}", "file"))


def test_a_running_app_picks_up_the_new_key_from_the_file(tmp_path: Path) -> None:
    var = tmp_path / "var"
    write_key_file(var / "secret.key")
    app_keys, other_app = Keys.from_settings(_settings(var)), Keys.from_settings(_settings(var))
    ring = read_ring_file(var / "secret.key")
    replace_ring_file(ring.with_new_key(new_master()))
    fresh = Keys.from_settings(_settings(var))
    blob = fresh.seal("x", "resident.phone")
    assert app_keys.open(blob, "resident.phone") == "x"  # an unknown version re-reads the file
    assert other_app.seal("y", "resident.phone")[0] == 2  # a changed file is re-read
