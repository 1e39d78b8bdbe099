"""Key rotation in the database: count sealed fields by key version, re-encrypt, retire.

Re-encryption runs while the app keeps working: rows are taken in id order, ``batch_size``
at a time, each batch its own short transaction with ``FOR UPDATE SKIP LOCKED`` (a row an
edit holds is left for a later pass, never waited on). Only the sealed columns change: no
``version``, ``updated_at`` or ``updated_by``, so nobody's edit goes stale. Where the role
may set ``session_replication_role`` (a superuser, or ``GRANT SET ON PARAMETER``), the
ledger-history trigger is off in those transactions, so a re-encryption is not recorded as
an edit; otherwise it records an ``update`` whose old and new rows are equal (secrets are
stripped from history), and the report counts them.

The work is its own progress record: a field still sealed with an older key is work left.
Interrupted at any point, the next run finds exactly those fields and continues.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from gis.errors import Conflict, InsecureConfiguration
from gis.keyring import ENV_NAME, KeyRing, new_master, read_ring_file, replace_ring_file
from gis.security import Keys


@dataclass(frozen=True)
class SealedColumn:
    table: str
    column: str
    aad: str  # the associated data it is sealed with


# Every sealed column (names are ours, never the caller's text). A new one goes here.
SEALED = (
    SealedColumn("resident", "id_number_enc", "resident.id_number"),
    SealedColumn("resident", "phone_enc", "resident.phone"),
    SealedColumn("organisation", "phone_enc", "organisation.phone"),
)
_LOCK_ID = 0x6761_6B65  # "gake": one key operation at a time per database
_BUSY_RETRIES = 5


@dataclass
class RotationReport:
    """What a run did: fields re-encrypted, left behind, and history rows written."""

    version: int
    added: bool = False  # False: an unfinished rotation was resumed (or nothing to do)
    reencrypted: int = 0
    busy: int = 0  # held by edits through every pass: the next run takes them
    unreadable: list[str] = field(default_factory=list)  # "table.column id N"
    history_rows: int = 0
    seconds: float = 0.0


def _tables() -> dict[str, list[SealedColumn]]:
    out: dict[str, list[SealedColumn]] = {}
    for c in SEALED:
        out.setdefault(c.table, []).append(c)
    return out


def count_by_version(conn: Connection) -> dict[str, dict[int, int]]:
    """``{"resident.id_number": {version: fields}}`` for every sealed column."""
    out: dict[str, dict[int, int]] = {}
    for c in SEALED:
        rows = conn.execute(
            sa.text(
                f"SELECT get_byte({c.column}, 0), count(*) FROM {c.table} "
                f"WHERE octet_length({c.column}) > 0 GROUP BY 1 ORDER BY 1"
            )
        ).all()
        out[c.aad] = {int(v): int(n) for v, n in rows}
    return out


def totals(counts: dict[str, dict[int, int]]) -> dict[int, int]:
    """Fields per key version over every column."""
    out: dict[int, int] = {}
    for per_version in counts.values():
        for v, n in per_version.items():
            out[v] = out.get(v, 0) + n
    return out


@contextmanager
def exclusive(engine: Engine) -> Iterator[None]:
    """Hold the database's key-operation lock (released if the process dies)."""
    with engine.connect() as conn:
        got = conn.scalar(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": _LOCK_ID})
        conn.commit()
        if not got:
            raise Conflict(
                "another `gridatlas keys` command is working on this database; wait for it"
            )
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_ID})
            conn.commit()


def _may_skip_history(engine: Engine) -> bool:
    with engine.connect() as conn:
        try:
            conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        except DBAPIError:
            return False
        finally:
            conn.rollback()
    return True


def _pending_sql(cols: list[SealedColumn]) -> str:
    return " OR ".join(f"get_byte({c.column}, 0) <> :v" for c in cols)


def pending(conn: Connection, version: int) -> int:
    """Fields not sealed with key ``version``."""
    return sum(n for v, n in totals(count_by_version(conn)).items() if v != version)


def reencrypt(
    engine: Engine,
    keys: Keys,
    *,
    batch_size: int = 1000,
    pause_s: float = 0.0,
    on_step: Callable[[str, float], None] | None = None,
) -> RotationReport:
    """Re-seal with ``keys``' newest key every field sealed with an older one.

    Each batch commits on its own (this function is the edge of those transactions), so an
    interrupted run keeps what it did. ``pause_s`` between batches eases the load on a busy
    server.
    """
    step = on_step or (lambda _n, _f: None)
    started = time.monotonic()
    report = RotationReport(keys.version)
    quiet = _may_skip_history(engine)
    with engine.connect() as conn:
        total = pending(conn, keys.version)
        history_before = conn.scalar(sa.text("SELECT coalesce(max(id), 0) FROM ledger_history"))
    step(f"re-encrypting to key v{keys.version}", 0.0)
    bad: dict[str, list[int]] = {}
    for table, cols in _tables().items():
        bad[table] = [0]  # never a real id: keeps the array typed and non-empty
        retries = 0
        while True:
            done_before = report.reencrypted
            after = 0
            skip = bad[table]
            while True:
                got = _batch(engine, keys, table, cols, after, batch_size, skip, quiet, report)
                if got is None:
                    break
                after = got
                step(f"re-encrypting to key v{keys.version}", report.reencrypted / max(total, 1))
                if pause_s:
                    time.sleep(pause_s)
            with engine.connect() as conn:
                left = conn.scalar(
                    sa.text(
                        f"SELECT count(*) FROM {table} WHERE ({_pending_sql(cols)}) "
                        "AND id <> ALL(:bad)"
                    ),
                    {"v": keys.version, "bad": bad[table]},
                )
            if not left:
                break
            retries = 0 if report.reencrypted > done_before else retries + 1
            if retries >= _BUSY_RETRIES:  # rows held by long edits: leave them for next time
                report.busy += int(left)
                break
            time.sleep(0.2 * retries)
    with engine.connect() as conn:
        report.history_rows = int(
            conn.scalar(
                # an edit always changes something (its version): old = new is ours
                sa.text(
                    "SELECT count(*) FROM ledger_history WHERE id > :i AND action = 'update' "
                    "AND old = new"
                ),
                {"i": history_before},
            )
        )
    report.seconds = time.monotonic() - started
    return report


def _batch(
    engine: Engine,
    keys: Keys,
    table: str,
    cols: list[SealedColumn],
    after: int,
    batch_size: int,
    bad: list[int],
    quiet: bool,
    report: RotationReport,
) -> int | None:
    """Re-seal one batch after id ``after``; return its last id, or None when none is left."""
    names = ", ".join(c.column for c in cols)
    with engine.begin() as conn:
        if quiet:
            conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        rows = conn.execute(
            sa.text(
                f"SELECT id, {names} FROM {table} WHERE id > :after AND ({_pending_sql(cols)}) "
                "AND id <> ALL(:bad) ORDER BY id LIMIT :n FOR UPDATE SKIP LOCKED"
            ),
            {"after": after, "v": keys.version, "bad": bad, "n": batch_size},
        ).all()
        if not rows:
            return None
        updates = []
        for row in rows:
            values: dict[str, object] = {"id": row.id}
            try:
                for c in cols:
                    blob = getattr(row, c.column)
                    values[c.column] = _reseal(keys, blob, c)
            except (ValueError, InvalidTag):
                bad.append(row.id)
                report.unreadable.append(f"{table} id {row.id}")
                continue
            report.reencrypted += sum(
                1 for c in cols if values[c.column] is not getattr(row, c.column)
            )
            updates.append(values)
        if updates:
            sets = ", ".join(f"{c.column} = :{c.column}" for c in cols)
            conn.execute(sa.text(f"UPDATE {table} SET {sets} WHERE id = :id"), updates)
    return int(rows[-1].id)


def _reseal(keys: Keys, blob: bytes | None, c: SealedColumn) -> bytes | None:
    """The blob sealed with the newest key (the same object when it already is)."""
    if blob is None or not blob or blob[0] == keys.version:
        return blob
    return keys.seal(keys.open(blob, c.aad), c.aad)


def _check_known(ring: KeyRing, counts: dict[int, int]) -> None:
    missing = sorted(set(counts) - set(ring.versions))
    if missing:
        lost = ", ".join(f"v{v} ({counts[v]:,} fields)" for v in missing)
        raise InsecureConfiguration(
            f"fields sealed with keys {ring.where} lacks: {lost}. Restore those keys from "
            "your backup of the key file before rotating"
        )


def rotate_keys(
    engine: Engine,
    ring: KeyRing,
    *,
    batch_size: int = 1000,
    pause_s: float = 0.0,
    on_step: Callable[[str, float], None] | None = None,
) -> RotationReport:
    """Add a new newest key to the key file and re-encrypt every field with it.

    When fields sealed with an older key remain while a newer key exists, a rotation was
    interrupted: no key is added and only the re-encryption runs, so running it again after
    a crash never makes yet another key.
    """
    with exclusive(engine):
        with engine.connect() as conn:
            counts = totals(count_by_version(conn))
        _check_known(ring, counts)
        added = not any(v != ring.newest for v in counts)
        if added:
            if ring.path is None:
                raise InsecureConfiguration(
                    f"the keys come from {ENV_NAME}, which this command cannot change. Run "
                    "`gridatlas keys rotate --print` for its new value (secret!), set it "
                    "wherever the app runs and restart the app, then run `gridatlas keys "
                    "rotate` again to re-encrypt"
                )
            # Written (atomically) before any field uses it, so no sealed value ever names a
            # key that is not on disk.
            replace_ring_file(ring.with_new_key(new_master(), at_least=max(counts, default=0)))
            ring = read_ring_file(ring.path)
        report = reencrypt(
            engine, Keys(ring), batch_size=batch_size, pause_s=pause_s, on_step=on_step
        )
    report.added = added
    return report


def new_ring_to_print(engine: Engine, ring: KeyRing) -> KeyRing:
    """The ring with a new key, for keys kept in the environment (nothing is written)."""
    with engine.connect() as conn:
        counts = totals(count_by_version(conn))
    _check_known(ring, counts)
    if any(v != ring.newest for v in counts):
        raise Conflict(
            "a rotation is unfinished: run `gridatlas keys rotate` without --print to finish "
            "re-encrypting before making another key"
        )
    return ring.with_new_key(new_master(), at_least=max(counts, default=0))


def retire_keys(engine: Engine, ring: KeyRing, *, write: bool = True) -> tuple[KeyRing, dict]:
    """Drop from the ring every older key no field uses; return it and the fields per key.

    ``write`` replaces the key file (keys from the environment: the caller shows the ring).
    """
    with exclusive(engine):
        with engine.connect() as conn:
            counts = totals(count_by_version(conn))
        _check_known(ring, counts)
        unused = {v for v in ring.versions if v != ring.newest and not counts.get(v)}
        after = ring.without(unused)
        if write and unused:
            replace_ring_file(after)
    return after, counts
