"""The secret key: the app refuses to start without a real one; sub-keys keep purposes apart."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from api.app import create_app
from gis.errors import InsecureConfiguration
from gis.security import Keys, hash_password, load_key, verify_password, write_key_file
from gis.settings import Settings
from tests.conftest import cli


@pytest.mark.parametrize(
    "key, reason",
    [
        (None, "no secret key"),
        ("00" * 32, "placeholder"),
        (base64.b64encode(b"changeme" * 4).decode(), "placeholder"),
        ("ab" * 32, "placeholder"),  # 32 bytes, but one value repeated
        ("abcd" * 8, "at least 32"),  # 16 bytes of hex
        ("not a key at all", "at least 32"),
    ],
)
def test_start_up_refuses_a_missing_short_or_default_key(tmp_path: Path, key, reason) -> None:
    settings = Settings(secret_key=key, var_dir=tmp_path, database_url="postgresql://x@127.0.0.1/x")
    with pytest.raises(InsecureConfiguration, match=reason):
        create_app(settings)


def test_key_file_is_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    assert write_key_file(path) is True
    first = path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600
    assert write_key_file(path) is False and path.read_text() == first
    keys = Keys.from_settings(Settings(secret_key=None, var_dir=tmp_path))
    assert len(keys.encrypt) == 32 and len({keys.encrypt, keys.search, keys.db_role}) == 3
    assert load_key(Settings(secret_key=None, var_dir=tmp_path)).hex() == first.strip()


def test_ciphertexts_are_bound_to_their_column_and_random() -> None:
    keys = Keys.derive(bytes(range(32)))
    a, b = (
        keys.seal("11010519491231002X", "resident.id_number"),
        keys.seal("11010519491231002X", "resident.id_number"),
    )
    assert a != b  # a fresh nonce each time: equal numbers do not look equal at rest
    assert keys.open(a, "resident.id_number") == "11010519491231002X"
    with pytest.raises(InvalidTag):  # sealed for another column: refused, not misread
        keys.open(a, "resident.phone")
    assert keys.search_hash("x", "id_number") == keys.search_hash("x", "id_number")
    assert keys.search_hash("x", "id_number") != keys.search_hash("x", "phone")


def test_passwords() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$") and "correct" not in stored
    assert verify_password("correct horse", stored)
    assert not verify_password("correct horsf", stored)
    assert not verify_password("anything", None)
    assert not verify_password("anything", "md5$abc")


def test_serve_without_a_key_says_how_to_make_one(tmp_path: Path) -> None:
    out = cli("serve", GRIDATLAS_SECRET_KEY="", GRIDATLAS_VAR_DIR=str(tmp_path))
    assert out.returncode == 2, out.stderr
    assert "gridatlas keygen" in out.stderr + out.stdout
