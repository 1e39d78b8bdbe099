"""Keys, field encryption, search hashes, passwords and login tokens.

The secret keys (a versioned ring, see :mod:`gis.keyring`) are stretched into separate
sub-keys with HMAC-SHA256, one per purpose, so that the key encrypting ID numbers is never
the one that hashes them for search. Encryption is AES-256-GCM with a random 96-bit nonce
per value and the column's name as associated data (a ciphertext copied into another column
does not decrypt). A sealed value is ``version byte + nonce + ciphertext``: the version
names the master key that sealed it, so :meth:`Keys.open` picks the key by the header and
:meth:`Keys.seal` always uses the newest. Values sealed before key rotation existed carry
version 1, which is what the old single-key file is read as.

Search hashes are HMAC-SHA256 of the normalised value: equal numbers match, and the table
alone reveals nothing. Their key and the database role's password stay the same across a
rotation (they come from the v1 master or the ring's pinned sub-keys).

A running app sees a rotation without a restart when its keys come from the key file: it
re-reads the file when it changes (checked before each seal) and when it meets a version
it does not know. Keys given in ``GRIDATLAS_SECRET_KEY`` need a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gis.errors import GridAtlasError
from gis.keyring import (
    MIN_KEY_BYTES,
    KeyRing,
    derive_sub_key,
    load_ring,
    new_key_text,
    read_ring_file,
    write_key_file,
)
from gis.settings import Settings

__all__ = [
    "MIN_KEY_BYTES",
    "Keys",
    "hash_password",
    "load_key",
    "new_key_text",
    "new_token",
    "token_hash",
    "verify_password",
    "write_key_file",
]

log = logging.getLogger(__name__)
NONCE_BYTES = 12

# scrypt (RFC 7914) in the standard library: 16 MiB and about 50 ms per hash here.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


def load_key(settings: Settings) -> bytes:
    """Return the newest secret key, refusing a missing, short or well-known one."""
    return load_ring(settings).masters[0][1]


def _file_stamp(path: Path | None) -> tuple[int, int, int] | None:
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


@dataclass(frozen=True)
class _Derived:
    """Everything a ring gives, computed once: swapped whole when the file changes."""

    ring: KeyRing
    encrypt: dict[int, bytes]
    search: bytes
    db_role: bytes
    stamp: tuple[int, int, int] | None

    @classmethod
    def of(cls, ring: KeyRing) -> _Derived:
        return cls(
            ring,
            {v: derive_sub_key(m, "field-encryption") for v, m in ring.masters},
            ring.stable_sub_key("search-hash"),
            ring.stable_sub_key("database-role"),
            _file_stamp(ring.path),
        )


class Keys:
    """Sub-keys of the key ring, one per purpose; encryption keys by version."""

    def __init__(self, ring: KeyRing) -> None:
        self._d = _Derived.of(ring)

    @classmethod
    def derive(cls, master: bytes) -> Keys:
        """Keys of one master key, as version 1."""
        return cls(KeyRing(((1, master),)))

    @classmethod
    def from_settings(cls, settings: Settings) -> Keys:
        return cls(load_ring(settings))

    @property
    def ring(self) -> KeyRing:
        return self._d.ring

    @property
    def version(self) -> int:
        """The newest key's version: the one :meth:`seal` uses."""
        return self._d.ring.newest

    @property
    def encrypt(self) -> bytes:
        return self._d.encrypt[self.version]

    @property
    def search(self) -> bytes:
        return self._d.search

    @property
    def db_role(self) -> bytes:
        return self._d.db_role

    def reload(self) -> bool:
        """Re-read the key file if it changed; return whether the keys changed.

        A file that no longer parses, or that would change the search key (every search and
        the UNIQUE ID-number hash would break), is ignored and logged: the keys in use stay.
        """
        d = self._d
        stamp = _file_stamp(d.ring.path)
        if d.ring.path is None or stamp == d.stamp:
            return False
        try:
            fresh = _Derived.of(read_ring_file(d.ring.path))
        except (OSError, GridAtlasError) as err:
            log.warning("key file %s changed but cannot be used: %s", d.ring.path, err)
            return False
        if (fresh.search, fresh.db_role) != (d.search, d.db_role):
            log.warning("key file %s changed its search or db-role key: ignored", d.ring.path)
            return False
        self._d = fresh
        return True

    def seal(self, value: str, column: str) -> bytes:
        """Encrypt ``value`` for ``column`` with the newest key: version, nonce, ciphertext."""
        self.reload()
        d = self._d
        nonce = os.urandom(NONCE_BYTES)
        body = AESGCM(d.encrypt[d.ring.newest]).encrypt(nonce, value.encode(), column.encode())
        return bytes([d.ring.newest]) + nonce + body

    def open(self, blob: bytes, column: str) -> str:
        """Decrypt what :meth:`seal` made for the same column, with the key its header names."""
        blob = bytes(blob)
        version = blob[0] if blob else 0
        key = self._d.encrypt.get(version)
        if key is None and self.reload():
            key = self._d.encrypt.get(version)
        if key is None:
            raise ValueError(
                f"ciphertext sealed with key v{version}, which {self._d.ring.where} lacks"
            )
        body = blob[1 + NONCE_BYTES :]
        return AESGCM(key).decrypt(blob[1 : 1 + NONCE_BYTES], body, column.encode()).decode()

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
