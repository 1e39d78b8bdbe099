"""Login, logout, who am I, and users with their roles and areas (admins)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.auth import COOKIE, ROLE_LABELS, Admin, User
from api.deps import AppSettings, Conn
from gis import security
from gis.errors import Conflict, InvalidInput, NotFound

router = APIRouter(prefix="/api/auth", tags=["auth"])
users = APIRouter(prefix="/api/users", tags=["auth"])

ScopeLevel = Literal[
    "subdistrict", "community", "grid", "residents_group", "building_cluster", "unit", "building"
]
MAX_FAILURES = 5  # wrong passwords in a row before the login is locked
LOCK_MINUTES = 15
Role = Literal["admin", "planner", "committee_staff", "grid_worker", "building_leader"]


class Login(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)


@router.post("/login", summary="Log in: a token (and an HttpOnly cookie) for the next hours")
def login(body: Login, conn: Conn, response: Response, settings: AppSettings) -> Any:
    row = conn.execute(
        sa.text(
            "SELECT id, password_hash, role, full_name, "
            "ceil(extract(epoch FROM locked_until - now()) / 60)::int AS locked_min "
            "FROM app_user WHERE username = :u AND is_active FOR UPDATE"
        ),
        {"u": body.username},
    ).first()
    if row is not None and row.locked_min is not None and row.locked_min > 0:
        return JSONResponse(
            {
                "detail": f"too many wrong passwords: try again in {row.locked_min} min "
                f"(密码错误次数过多，请 {row.locked_min} 分钟后再试)",
                "error": "TooManyAttempts",
            },
            status_code=429,
            headers={"Retry-After": str(row.locked_min * 60)},
        )
    if not security.verify_password(body.password, row.password_hash if row else None):
        if row is not None:
            # counted and committed (this answer is not an exception, so the request's
            # transaction commits): MAX_FAILURES wrong passwords lock the login a while
            conn.execute(
                sa.text(
                    "UPDATE app_user SET failed_logins = CASE WHEN failed_logins + 1 >= :m "
                    "THEN 0 ELSE failed_logins + 1 END, locked_until = CASE WHEN "
                    "failed_logins + 1 >= :m THEN now() + make_interval(mins => :lock) "
                    "ELSE locked_until END WHERE id = :i"
                ),
                {"m": MAX_FAILURES, "lock": LOCK_MINUTES, "i": row.id},
            )
        return JSONResponse(
            {
                "detail": "wrong user name or password (用户名或密码错误)",
                "error": "NotAuthenticated",
            },
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    conn.execute(
        sa.text("UPDATE app_user SET failed_logins = 0, locked_until = NULL WHERE id = :i"),
        {"i": row.id},
    )
    token, digest = security.new_token()
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=settings.session_hours)
    conn.execute(
        sa.text("INSERT INTO auth_session (token_hash, user_id, expires_at) VALUES (:h, :u, :e)"),
        {"h": digest, "u": row.id, "e": expires},
    )
    conn.execute(
        sa.text("DELETE FROM auth_session WHERE user_id = :u AND expires_at < now()"), {"u": row.id}
    )
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(settings.session_hours * 3600),
        httponly=True,
        samesite="strict",
        secure=settings.cookie_secure,
        path="/",
    )
    return {
        "token": token,
        "token_type": "bearer",
        "expires_at": expires.isoformat(),
        "role": row.role,
        "role_label": ROLE_LABELS[row.role],
        "full_name": row.full_name,
    }


@router.post("/logout", status_code=204, summary="End this login")
def logout(request: Request, user: User, conn: Conn) -> Response:
    from api.auth import _token

    token = _token(request)
    conn.execute(
        sa.text("DELETE FROM auth_session WHERE token_hash = :h"), {"h": security.token_hash(token)}
    )
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/")
    return response


def _scopes(conn: Conn, user_id: int) -> list[dict[str, Any]]:
    return [
        dict(r._mapping)
        for r in conn.execute(
            sa.text(
                "SELECT level, area_id FROM app_user_scope WHERE user_id = :u "
                "ORDER BY level, area_id"
            ),
            {"u": user_id},
        )
    ]


@router.get("/me", summary="The logged-in user, role and areas")
def me(user: User, conn: Conn) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "full_name": user.full_name,
        "role": user.role,
        "role_label": ROLE_LABELS[user.role],
        "scopes": _scopes(conn, user.id),
    }


class Scope(BaseModel):
    level: ScopeLevel
    area_id: int = Field(ge=1, le=2**62)


class NewUser(BaseModel):
    username: str = Field(pattern=r"^[A-Za-z0-9_.-]{3,64}$")
    password: str = Field(min_length=10, max_length=200, description="at least 10 characters")
    role: Role
    full_name: str | None = Field(None, max_length=100)
    scopes: list[Scope] = Field(
        default_factory=list, max_length=500, description="areas; every role but admin needs one"
    )


def create_user(conn: Any, body: NewUser) -> int:
    """Create a user with scopes (shared by the API and the CLI)."""
    if body.role != "admin" and not body.scopes:
        raise InvalidInput(f"a {body.role} needs at least one area (scopes)")
    for s in body.scopes:
        table = s.level
        if not conn.scalar(
            sa.text(f"SELECT EXISTS (SELECT 1 FROM {table} WHERE id = :i)"), {"i": s.area_id}
        ):
            raise NotFound(f"no {s.level} {s.area_id}")
    try:
        with conn.begin_nested():
            uid = conn.scalar(
                sa.text(
                    "INSERT INTO app_user (username, full_name, role, password_hash) "
                    "VALUES (:u, :f, :r, :p) RETURNING id"
                ),
                {
                    "u": body.username,
                    "f": body.full_name,
                    "r": body.role,
                    "p": security.hash_password(body.password),
                },
            )
    except sa.exc.IntegrityError:
        raise Conflict(f"user name {body.username} is taken") from None
    for s in body.scopes:
        conn.execute(
            sa.text(
                "INSERT INTO app_user_scope (user_id, level, area_id) VALUES (:u, :l, :a) "
                "ON CONFLICT DO NOTHING"
            ),
            {"u": uid, "l": s.level, "a": s.area_id},
        )
    return int(uid)


@users.post("", status_code=201, summary="Create a user with a role and areas (admins)")
def post_user(body: NewUser, _admin: Admin, conn: Conn) -> dict[str, Any]:
    uid = create_user(conn, body)
    return {"id": uid, "username": body.username, "role": body.role, "scopes": _scopes(conn, uid)}


@users.get("", summary="Users (admins)")
def list_users(_admin: Admin, conn: Conn) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.text(
            "SELECT id, username, full_name, role, is_active FROM app_user ORDER BY id LIMIT 1000"
        )
    )
    return [dict(r._mapping) for r in rows]


@users.post("/{user_id}/deactivate", summary="Disable a user and end their logins (admins)")
def deactivate(
    user_id: Annotated[int, Path(ge=1, le=2**62)], _admin: Admin, conn: Conn
) -> dict[str, Any]:
    done = conn.scalar(
        sa.text("UPDATE app_user SET is_active = false WHERE id = :i RETURNING id"), {"i": user_id}
    )
    if done is None:
        raise NotFound(f"no user {user_id}")
    conn.execute(sa.text("DELETE FROM auth_session WHERE user_id = :i"), {"i": user_id})
    return {"id": user_id, "is_active": False}
