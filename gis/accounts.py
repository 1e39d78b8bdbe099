"""Users, their areas and their logins: the SQL behind api/auth.py and `gridatlas user`."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis import levels, security
from gis.errors import Conflict, InvalidInput, NotFound
from gis.permissions import PERMISSIONS, ROLES

SCOPE_LEVELS = levels.TABLES  # a user's areas may be of any level
USERNAME = re.compile(r"^[A-Za-z0-9_.-]{3,64}$")
MIN_PASSWORD = 10
MAX_FAILURES = 5  # wrong passwords for one name (any address) in 15 min: locked (SQL: 0006)
MAX_ADDRESS_FAILURES = 20  # wrong passwords from one address in 15 min: locked
LOCK_MINUTES = 15


@dataclass(frozen=True)
class LoginResult:
    """``outcome`` is ok, wrong (user name or password) or locked (``locked_min`` more)."""

    outcome: str
    user_id: int | None = None
    role: str | None = None
    full_name: str | None = None
    token: str | None = None
    expires: dt.datetime | None = None
    locked_min: int = 0


def _proof(key: bytes, *parts: object) -> bytes:
    """HMAC over a login's outcome, as ``ga_login_record`` recomputes it in SQL."""
    text = "|".join("" if p is None else p.hex() if isinstance(p, bytes) else
                    ("true" if p is True else "false" if p is False else str(p))
                    for p in parts)  # fmt: skip
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def log_in(
    conn: Connection, username: str, password: str, hours: float, *, addr: str, key: bytes
) -> LoginResult:
    """Check a password and open a session; lock a name after five wrong passwords and an
    address after twenty, for 15 minutes.

    The database opens the session (or counts the failure) only with a proof made with
    ``key``: SQL alone cannot log anyone in. The count is written in the caller's
    transaction, so the caller must commit it also when it answers "wrong".
    """
    addr = (addr or "unknown")[:100]
    row = conn.execute(
        sa.text("SELECT * FROM ga_login_lookup(:u, :a)"), {"u": username, "a": addr}
    ).one()
    locked = max(row.name_locked_min, row.addr_locked_min)
    if locked > 0:
        # the same answer for a name that exists and one that does not
        return LoginResult("locked", locked_min=locked)
    record = sa.text("SELECT ga_login_record(:u, :a, :i, :ok, :h, :e, :p)")
    if row.id is None or not security.verify_password(password, row.password_hash):
        conn.execute(
            record,
            {"u": username, "a": addr, "i": None, "ok": False, "h": None, "e": None,
             "p": _proof(key, username, addr, None, False, None, None)},
        )  # fmt: skip
        return LoginResult("wrong")
    token, digest = security.new_token()
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)
    epoch = int(expires.timestamp())
    conn.execute(
        record,
        {"u": username, "a": addr, "i": row.id, "ok": True, "h": digest, "e": epoch,
         "p": _proof(key, username, addr, row.id, True, digest, epoch)},
    )  # fmt: skip
    expires = dt.datetime.fromtimestamp(epoch, dt.UTC)
    return LoginResult("ok", row.id, row.role, row.full_name, token, expires)


def session_user(conn: Connection, token: str) -> Any:
    """The active user holding ``token`` (id, username, role, full_name), or None.

    One round trip: the lookup also makes the token the transaction's identity
    (``ga.session``), which ``ga_user()`` checks against the live sessions for row-level
    security — a value set by hand that is no live token identifies nobody.
    """
    row = conn.execute(
        sa.text(
            "SELECT u.id, u.username, u.role, u.full_name, "
            "set_config('ga.session', :t, true) FROM ga_session_user(:t) u"
        ),
        {"t": token},
    ).first()
    if row is not None:
        conn.info["ga_session"] = token  # for audit rows written in their own transaction
    return row


def end_session(conn: Connection, token: str) -> None:
    conn.execute(sa.text("SELECT ga_logout(:t)"), {"t": token})


def scopes(conn: Connection, user_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.text(
            "SELECT level, area_id FROM app_user_scope WHERE user_id = :u ORDER BY level, area_id"
        ),
        {"u": user_id},
    )
    return [dict(r._mapping) for r in rows]


def create_user(
    conn: Connection,
    username: str,
    password: str,
    role: str,
    full_name: str | None = None,
    areas: list[tuple[str, int]] | None = None,
) -> int:
    """Create a user with their areas ((level, id) pairs); every role but admin needs one."""
    areas = areas or []
    if not USERNAME.match(username):
        raise InvalidInput("user name: 3 to 64 letters, digits, '.', '_' or '-'")
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"password: at least {MIN_PASSWORD} characters")
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if role not in PERMISSIONS["whole_city"] and not areas:
        raise InvalidInput(f"a {role} needs at least one area (scopes)")
    for level, area_id in areas:
        if level not in SCOPE_LEVELS:
            raise InvalidInput(f"scope level must be one of {', '.join(SCOPE_LEVELS)}")
        if not conn.scalar(
            sa.text(f"SELECT EXISTS (SELECT 1 FROM {level} WHERE id = :i)"), {"i": area_id}
        ):
            raise NotFound(f"no {level} {area_id}")
    try:
        with conn.begin_nested():
            uid = conn.scalar(
                sa.text("SELECT ga_user_create(:u, :f, :r, :p, :levels, :areas)"),
                {
                    "u": username,
                    "f": full_name,
                    "r": role,
                    "p": security.hash_password(password),
                    "levels": [level for level, _ in areas],
                    "areas": [area for _, area in areas],
                },
            )
    except sa.exc.IntegrityError:
        raise Conflict(f"user name {username} is taken") from None
    return int(uid)


def find_area(conn: Connection, level: str, ref: str) -> int:
    """The id of the area of ``level`` whose code (a building: source id) or id is ``ref``."""
    if level not in SCOPE_LEVELS:
        raise InvalidInput(f"scope level must be one of {', '.join(SCOPE_LEVELS)}")
    column = "source_id" if level == "building" else "code"
    area = conn.scalar(
        sa.text(f"SELECT id FROM {level} WHERE {column} = :r OR id::text = :r ORDER BY id LIMIT 1"),
        {"r": ref},
    )
    if area is None:
        raise InvalidInput(f"no {level} with code or id {ref}")
    return int(area)


def list_users(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.text(
            "SELECT id, username, full_name, role, is_active FROM app_user ORDER BY id LIMIT 1000"
        )
    )
    return [dict(r._mapping) for r in rows]


def deactivate(conn: Connection, user_id: int, by: int | None = None) -> None:
    """Disable a user and end every login of theirs; ``by`` (the admin asking) may not
    disable themselves — the last admin would lock everyone out."""
    if by is not None and by == user_id:
        raise Conflict(
            "you cannot disable your own login; ask another admin (不能停用自己的账号)",
            key="refusal.own_login",
        )
    if not conn.scalar(sa.text("SELECT ga_user_deactivate(:i)"), {"i": user_id}):
        raise NotFound(f"no user {user_id}")


def holds_community(conn: Connection, user_id: int, code: str) -> bool:
    """Whether the user's scope holds the whole community ``code`` (it, or its subdistrict):
    what redrawing it needs — a grid's worker does not redraw the grid next door."""
    return bool(
        conn.scalar(
            sa.text(
                "SELECT EXISTS (SELECT 1 FROM community c JOIN app_user_scope s "
                "ON s.user_id = :u AND ((s.level = 'community' AND s.area_id = c.id) OR "
                "(s.level = 'subdistrict' AND s.area_id = c.subdistrict_id)) WHERE c.code = :c)"
            ),
            {"u": user_id, "c": code},
        )
    )


def scope_labels(conn: Connection, user_id: int) -> list[Any]:
    """The user's areas as (level, label) rows, at most four: what the shell shows."""
    return conn.execute(
        sa.text(
            "SELECT s.level, coalesce(c.name, g.name, sd.name, c.code, g.code, sd.code, "
            "rg.code, bc.code, u.code, b.name, b.source_id, s.area_id::text) AS label "
            "FROM app_user_scope s "
            "LEFT JOIN community c ON s.level = 'community' AND c.id = s.area_id "
            "LEFT JOIN grid g ON s.level = 'grid' AND g.id = s.area_id "
            "LEFT JOIN subdistrict sd ON s.level = 'subdistrict' AND sd.id = s.area_id "
            "LEFT JOIN residents_group rg ON s.level = 'residents_group' AND rg.id = s.area_id "
            "LEFT JOIN building_cluster bc ON s.level = 'building_cluster' "
            "AND bc.id = s.area_id "
            "LEFT JOIN unit u ON s.level = 'unit' AND u.id = s.area_id "
            "LEFT JOIN building b ON s.level = 'building' AND b.id = s.area_id "
            "WHERE s.user_id = :u ORDER BY s.level, s.area_id LIMIT 4"
        ),
        {"u": user_id},
    ).all()
