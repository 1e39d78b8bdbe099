"""Users, their areas and their logins: the SQL behind api/auth.py and `gridatlas user`."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis import security
from gis.errors import Conflict, InvalidInput, NotFound

ROLES = ("admin", "planner", "committee_staff", "grid_worker", "building_leader")
ROLE_LABELS = {
    "admin": "系统管理员",
    "planner": "街道规划人员",
    "committee_staff": "社区工作人员",
    "grid_worker": "网格员",
    "building_leader": "楼栋长",
}
PEOPLE_ROLES = ("admin", "committee_staff", "grid_worker", "building_leader")  # see people
# Who may see ID and phone numbers in clear (each reveal is audited).
REVEAL = {
    "id_number": {"admin", "committee_staff"},
    "phone": {"admin", "committee_staff", "grid_worker"},
}
SCOPE_LEVELS = (
    "subdistrict",
    "community",
    "grid",
    "residents_group",
    "building_cluster",
    "unit",
    "building",
)
USERNAME = re.compile(r"^[A-Za-z0-9_.-]{3,64}$")
MIN_PASSWORD = 10
MAX_FAILURES = 5  # wrong passwords in a row before the login is locked
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


def log_in(conn: Connection, username: str, password: str, hours: float) -> LoginResult:
    """Check a password and open a session; count wrong passwords and lock after five.

    The count is written in the caller's transaction, so the caller must commit it also
    when it answers "wrong" (answer, do not raise).
    """
    row = conn.execute(
        sa.text(
            "SELECT id, password_hash, role, full_name, "
            "ceil(extract(epoch FROM locked_until - now()) / 60)::int AS locked_min "
            "FROM app_user WHERE username = :u AND is_active FOR UPDATE"
        ),
        {"u": username},
    ).first()
    if row is not None and row.locked_min is not None and row.locked_min > 0:
        return LoginResult("locked", locked_min=row.locked_min)
    if not security.verify_password(password, row.password_hash if row else None):
        if row is not None:
            conn.execute(
                sa.text(
                    "UPDATE app_user SET failed_logins = CASE WHEN failed_logins + 1 >= :m "
                    "THEN 0 ELSE failed_logins + 1 END, locked_until = CASE WHEN "
                    "failed_logins + 1 >= :m THEN now() + make_interval(mins => :lock) "
                    "ELSE locked_until END WHERE id = :i"
                ),
                {"m": MAX_FAILURES, "lock": LOCK_MINUTES, "i": row.id},
            )
        return LoginResult("wrong")
    conn.execute(
        sa.text("UPDATE app_user SET failed_logins = 0, locked_until = NULL WHERE id = :i"),
        {"i": row.id},
    )
    token, digest = security.new_token()
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)
    conn.execute(
        sa.text("INSERT INTO auth_session (token_hash, user_id, expires_at) VALUES (:h, :u, :e)"),
        {"h": digest, "u": row.id, "e": expires},
    )
    conn.execute(
        sa.text("DELETE FROM auth_session WHERE user_id = :u AND expires_at < now()"), {"u": row.id}
    )
    return LoginResult("ok", row.id, row.role, row.full_name, token, expires)


def session_user(conn: Connection, token: str) -> Any:
    """The active user holding ``token`` (id, username, role, full_name), or None.

    One round trip: the lookup also sets the transaction's user for row-level security.
    """
    return conn.execute(
        sa.text(
            "SELECT u.id, u.username, u.role, u.full_name, "
            "set_config('ga.user_id', u.id::text, true) FROM auth_session s "
            "JOIN app_user u ON u.id = s.user_id "
            "WHERE s.token_hash = :h AND s.expires_at > now() AND u.is_active"
        ),
        {"h": security.token_hash(token)},
    ).first()


def end_session(conn: Connection, token: str) -> None:
    conn.execute(
        sa.text("DELETE FROM auth_session WHERE token_hash = :h"), {"h": security.token_hash(token)}
    )


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
    if role != "admin" and not areas:
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
                sa.text(
                    "INSERT INTO app_user (username, full_name, role, password_hash) "
                    "VALUES (:u, :f, :r, :p) RETURNING id"
                ),
                {
                    "u": username,
                    "f": full_name,
                    "r": role,
                    "p": security.hash_password(password),
                },
            )
    except sa.exc.IntegrityError:
        raise Conflict(f"user name {username} is taken") from None
    for level, area_id in areas:
        conn.execute(
            sa.text(
                "INSERT INTO app_user_scope (user_id, level, area_id) VALUES (:u, :l, :a) "
                "ON CONFLICT DO NOTHING"
            ),
            {"u": uid, "l": level, "a": area_id},
        )
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


def deactivate(conn: Connection, user_id: int) -> None:
    """Disable a user and end every login of theirs."""
    done = conn.scalar(
        sa.text("UPDATE app_user SET is_active = false WHERE id = :i RETURNING id"), {"i": user_id}
    )
    if done is None:
        raise NotFound(f"no user {user_id}")
    conn.execute(sa.text("DELETE FROM auth_session WHERE user_id = :i"), {"i": user_id})


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
