"""Keys, field encryption, search hashes, passwords and login tokens.

One secret key (settings or ``var/secret.key``) is stretched into separate sub-keys with
HMAC-SHA256, one per purpose, so that the key encrypting ID numbers is never the one that
hashes them for search. Encryption is AES-256-GCM with a random 96-bit nonce per value and
the column's name as associated data (a ciphertext copied into another column does not
decrypt). Search hashes are HMAC-SHA256 of the normalised value: equal numbers match, and
the table alone reveals nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gis.errors import InsecureConfiguration
from gis.settings import Settings

MIN_KEY_BYTES = 32
# Keys that appear in examples and must never protect real data.
_DEFAULTS = {b"\0" * 32, b"changeme" * 4, b"change-me" * 4, b"secret" * 6}
FORMAT_VERSION = b"\x01"

# scrypt (RFC 7914) in the standard library: 16 MiB and about 50 ms per hash here.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


def _decode_key(text: str) -> bytes:
    text = text.strip()
    for decode in (bytes.fromhex, base64.b64decode, base64.urlsafe_b64decode):
        try:
            raw = decode(text)
        except (ValueError, binascii.Error):
            continue
        if len(raw) >= MIN_KEY_BYTES:
            return raw
    raise InsecureConfiguration(
        f"the secret key must be at least {MIN_KEY_BYTES} random bytes written as hex or "
        "base64; make one with `gridatlas keygen`"
    )


def load_key(settings: Settings) -> bytes:
    """Return the secret key, refusing a missing, short or well-known one."""
    if settings.secret_key is not None and settings.secret_key.get_secret_value().strip():
        text = settings.secret_key.get_secret_value()
        where = "GRIDATLAS_SECRET_KEY"
    elif settings.secret_key_file.is_file():
        text = settings.secret_key_file.read_text()
        where = str(settings.secret_key_file)
    else:
        raise InsecureConfiguration(
            "no secret key: residents' ID and phone numbers are encrypted with it. Set "
            "GRIDATLAS_SECRET_KEY, or run `gridatlas keygen` to write "
            f"{settings.secret_key_file}"
        )
    raw = _decode_key(text)
    if raw in _DEFAULTS or len(set(raw)) < 8:
        raise InsecureConfiguration(
            f"the secret key in {where} is a placeholder, not a random key; make one with "
            "`gridatlas keygen`"
        )
    return raw


def new_key_text() -> str:
    """A fresh random key, as the hex text the settings expect."""
    return secrets.token_hex(MIN_KEY_BYTES)


def write_key_file(path: Path) -> bool:
    """Write a new key to ``path`` (mode 0600) unless it exists; return whether written."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(new_key_text() + "\n")
    return True


@dataclass(frozen=True)
class Keys:
    """Sub-keys of the secret key, one per purpose."""

    encrypt: bytes
    search: bytes
    db_role: bytes

    @classmethod
    def derive(cls, master: bytes) -> Keys:
        def sub(label: str) -> bytes:
            return hmac.new(master, f"gridatlas/{label}".encode(), hashlib.sha256).digest()

        return cls(sub("field-encryption"), sub("search-hash"), sub("database-role"))

    @classmethod
    def from_settings(cls, settings: Settings) -> Keys:
        return cls.derive(load_key(settings))

    def seal(self, value: str, column: str) -> bytes:
        """Encrypt ``value`` for ``column``: version byte, nonce, ciphertext and tag."""
        nonce = os.urandom(12)
        body = AESGCM(self.encrypt).encrypt(nonce, value.encode(), column.encode())
        return FORMAT_VERSION + nonce + body

    def open(self, blob: bytes, column: str) -> str:
        """Decrypt what :meth:`seal` made for the same column."""
        blob = bytes(blob)
        if blob[:1] != FORMAT_VERSION:
            raise ValueError("unknown ciphertext format")
        return AESGCM(self.encrypt).decrypt(blob[1:13], blob[13:], column.encode()).decode()

    def search_hash(self, value: str, column: str) -> bytes:
        """HMAC of a normalised value: equal values, equal hashes (per column)."""
        return hmac.new(self.search, f"{column}\0{value}".encode(), hashlib.sha256).digest()

    def db_password(self) -> str:
        """Password of the app's database role (hex: safe to write into ALTER ROLE)."""
        return self.db_role.hex()


def hash_password(password: str) -> str:
    """Return ``scrypt$N$r$p$salt$hash`` for ``password``."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    )
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


_DUMMY_HASH = hash_password(secrets.token_hex(8))


def verify_password(password: str, stored: str | None) -> bool:
    """Check ``password`` against ``stored``; an unknown user costs the same time."""
    try:
        scheme, n, r, p, salt, digest = (stored or _DUMMY_HASH).split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(),
            salt=bytes.fromhex(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(digest) // 2,
        )
    except ValueError:
        return False
    return stored is not None and hmac.compare_digest(got.hex(), digest)


def new_token() -> tuple[str, bytes]:
    """A login token and the hash stored for it (the token itself is never stored)."""
    token = secrets.token_urlsafe(32)
    return token, token_hash(token)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
