"""The key ring: the secret keys in ``var/secret.key`` (or ``GRIDATLAS_SECRET_KEY``).

A ring holds one or more master keys, each with a version, newest first::

    v2:<64 hex digits>
    v1:<64 hex digits>
    search:<64 hex digits>
    db-role:<64 hex digits>

The old format, one bare key, is read as version 1. In ``GRIDATLAS_SECRET_KEY`` the same
entries are separated by spaces or commas. The newest master encrypts; older ones only open
what they sealed until ``gridatlas keys rotate`` has re-encrypted it and ``gridatlas keys
retire`` drops them.

Search hashes and the app database role's password must not change when the encryption
key does: ``resident.id_number_hmac`` is UNIQUE and searched, and every running app logs in
with the derived password. So they are derived from the version-1 master, and the first
rotation writes those two *derived* sub-keys into the file (``search:``, ``db-role:``).
Once v1 is retired they remain, but they cannot decrypt anything: a leaked copy of a
retired master is what rotation protects against, and that master is gone from the file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass, replace
from pathlib import Path

from gis.errors import InsecureConfiguration
from gis.settings import Settings

MIN_KEY_BYTES = 32
MAX_VERSION = 255  # the ciphertext header is one byte
ENV_NAME = "GRIDATLAS_SECRET_KEY"
# Keys that appear in examples and must never protect real data.
_DEFAULTS = {b"\0" * 32, b"changeme" * 4, b"change-me" * 4, b"secret" * 6}
_ENTRY = re.compile(r"^(v\d{1,3}|search|db-role):(.+)$")
HEADER = (
    "# Grid Atlas secret keys, newest first (see `gridatlas keys status`). Keep this file\n"
    "# private and backed up: without it the encrypted ID and phone numbers cannot be read.\n"
)


def derive_sub_key(master: bytes, label: str) -> bytes:
    """One purpose's sub-key of a master key (HMAC-SHA256 of a fixed label)."""
    return hmac.new(master, f"gridatlas/{label}".encode(), hashlib.sha256).digest()


@dataclass(frozen=True)
class KeyRing:
    """Master keys by version (newest first) and the pinned search and db-role sub-keys."""

    masters: tuple[tuple[int, bytes], ...]
    pinned_search: bytes | None = None
    pinned_db_role: bytes | None = None
    path: Path | None = None  # the key file, or None when read from the environment

    @property
    def newest(self) -> int:
        return self.masters[0][0]

    @property
    def versions(self) -> tuple[int, ...]:
        return tuple(v for v, _ in self.masters)

    @property
    def where(self) -> str:
        return str(self.path) if self.path is not None else ENV_NAME

    def master(self, version: int) -> bytes | None:
        return dict(self.masters).get(version)

    def stable_sub_key(self, label: str) -> bytes:
        """The search or db-role sub-key: pinned, else derived from the v1 master."""
        pinned = self.pinned_search if label == "search-hash" else self.pinned_db_role
        if pinned is not None:
            return pinned
        first = self.master(1)
        if first is None:
            raise InsecureConfiguration(
                f"{self.where} has no v1 key and no pinned {label} key: searches and the "
                "database login depend on it; restore the key file from your backup"
            )
        return derive_sub_key(first, label)

    def pinned(self) -> KeyRing:
        """The same ring with the search and db-role sub-keys written out."""
        return replace(
            self,
            pinned_search=self.stable_sub_key("search-hash"),
            pinned_db_role=self.stable_sub_key("database-role"),
        )

    def with_new_key(self, master: bytes, at_least: int = 0) -> KeyRing:
        """A new newest key, numbered past every version the ring or the data knows."""
        version = max(self.newest, at_least) + 1
        if version > MAX_VERSION:
            raise InsecureConfiguration(f"key versions are numbered 1 to {MAX_VERSION}")
        ring = self.pinned()
        return replace(ring, masters=((version, master), *ring.masters))

    def without(self, versions: set[int]) -> KeyRing:
        """The ring without ``versions`` (never the newest key)."""
        keep = tuple((v, k) for v, k in self.masters if v == self.newest or v not in versions)
        return replace(self.pinned(), masters=keep)

    def render(self, *, one_line: bool = False) -> str:
        """The ring as the key file's text (or one line for the environment variable)."""
        entries = [f"v{v}:{k.hex()}" for v, k in self.masters]
        if self.pinned_search is not None:
            entries.append(f"search:{self.pinned_search.hex()}")
        if self.pinned_db_role is not None:
            entries.append(f"db-role:{self.pinned_db_role.hex()}")
        return " ".join(entries) if one_line else HEADER + "\n".join(entries) + "\n"


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


def _check_random(raw: bytes, where: str) -> bytes:
    if raw in _DEFAULTS or len(set(raw)) < 8:
        raise InsecureConfiguration(
            f"the secret key in {where} is a placeholder, not a random key; make one with "
            "`gridatlas keygen`"
        )
    return raw


def parse_ring(text: str, where: str, path: Path | None = None) -> KeyRing:
    """Read a ring from the key file's text (or the environment variable's)."""
    body = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    tokens = [t for t in re.split(r"[\s,]+", body) if t]
    matches = [_ENTRY.match(t) for t in tokens]
    if not any(matches):  # the old format: one bare key, version 1
        return KeyRing(((1, _check_random(_decode_key(body), where)),), path=path)
    masters: dict[int, bytes] = {}
    pins: dict[str, bytes] = {}
    for match in matches:
        if match is None:
            raise InsecureConfiguration(
                f"{where}: with several keys each needs its version, like v1:<hex>"
            )
        name, value = match.groups()
        if name in pins or (name.startswith("v") and int(name[1:]) in masters):
            raise InsecureConfiguration(f"{where}: {name} appears twice")
        if name.startswith("v"):
            version = int(name[1:])
            if not 1 <= version <= MAX_VERSION:
                raise InsecureConfiguration(f"{where}: key versions are 1 to {MAX_VERSION}")
            masters[version] = _check_random(_decode_key(value), where)
        else:
            pins[name] = _decode_key(value)
    if not masters:
        raise InsecureConfiguration(f"no secret key in {where}: make one with `gridatlas keygen`")
    return KeyRing(
        tuple(sorted(masters.items(), reverse=True)),
        pins.get("search"),
        pins.get("db-role"),
        path,
    )


def load_ring(settings: Settings) -> KeyRing:
    """Return the key ring, refusing a missing, short or well-known key."""
    if settings.secret_key is not None and settings.secret_key.get_secret_value().strip():
        return parse_ring(settings.secret_key.get_secret_value(), ENV_NAME)
    path = settings.secret_key_file
    if not path.is_file():
        raise InsecureConfiguration(
            "no secret key: residents' ID and phone numbers are encrypted with it. Set "
            f"{ENV_NAME}, or run `gridatlas keygen` to write {path}"
        )
    return read_ring_file(path)


def read_ring_file(path: Path) -> KeyRing:
    return parse_ring(path.read_text(), str(path), path)


def new_key_text() -> str:
    """A fresh random key, as the hex text the settings expect."""
    return secrets.token_hex(MIN_KEY_BYTES)


def new_master() -> bytes:
    return secrets.token_bytes(MIN_KEY_BYTES)


def write_key_file(path: Path) -> bool:
    """Write a new key to ``path`` (mode 0600) unless it exists; return whether written."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(new_key_text() + "\n")
    return True


def replace_ring_file(ring: KeyRing) -> None:
    """Write ``ring`` over its key file atomically (mode 0600, fsynced, then renamed).

    A crash leaves either the old file or the new one, never half of either: losing a key
    would lose every value it sealed.
    """
    if ring.path is None:
        raise InsecureConfiguration(f"the keys come from {ENV_NAME}: there is no file to write")
    tmp = ring.path.with_name(f".{ring.path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(ring.render())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, ring.path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(ring.path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
