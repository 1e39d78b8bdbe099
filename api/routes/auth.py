"""Login, logout, who am I, and users with their roles and areas (admins)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api import models
from api.auth import COOKIE, Admin, User, token_of
from api.deps import AppSettings, Conn
from api.errors import request_lang
from api.shell import home_of
from gis import accounts, i18n, levels, permissions
from gis.permissions import ROLE_LABELS

router = APIRouter(prefix="/api/auth", tags=["auth"])
users = APIRouter(prefix="/api/users", tags=["auth"])

ScopeLevel = levels.literal(levels.TABLES)
Role = levels.literal(permissions.ROLES)


class Login(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)


@router.post("/login", summary="Log in: a token (and an HttpOnly cookie) for the next hours")
def login(
    body: Login, conn: Conn, request: Request, response: Response, settings: AppSettings
) -> Any:
    # "wrong" and "locked" are answered, not raised: the request's transaction must commit
    # the count of wrong passwords
    r = accounts.log_in(
        conn,
        body.username,
        body.password,
        settings.session_hours,
        addr=request.client.host if request.client else "unknown",
        key=request.app.state.login_key,
    )
    lang = request_lang(request)
    if r.outcome == "locked":
        return JSONResponse(
            {
                "detail": f"too many wrong passwords for this name or from this device: "
                f"try again in {r.locked_min} min (密码错误次数过多，请 {r.locked_min} 分钟后再试)",
                "error": "TooManyAttempts",
                "message": i18n.t("login.locked", lang, minutes=r.locked_min),
            },
            status_code=429,
            headers={"Retry-After": str(r.locked_min * 60)},
        )
    if r.outcome == "wrong":
        return JSONResponse(
            {
                "detail": "wrong user name or password (用户名或密码错误)",
                "error": "NotAuthenticated",
                "message": i18n.t("login.wrong", lang),
            },
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    response.set_cookie(
        COOKIE,
        r.token,
        max_age=int(settings.session_hours * 3600),
        httponly=True,
        samesite="strict",
        secure=settings.cookie_secure,
        path="/",
    )
    return {
        "token": r.token,
        "token_type": "bearer",
        "expires_at": r.expires.isoformat(),
        "role": r.role,
        "role_label": ROLE_LABELS[r.role],
        "home": home_of(r.role),
        "full_name": r.full_name,
    }


@router.post("/logout", status_code=204, summary="End this login")
def logout(request: Request, user: User, conn: Conn) -> Response:
    accounts.end_session(conn, token_of(request))
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/me", summary="The logged-in user, role and areas", response_model=models.Me)
def me(user: User, conn: Conn) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "full_name": user.full_name,
        "role": user.role,
        "role_label": ROLE_LABELS[user.role],
        "scopes": accounts.scopes(conn, user.id),
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


@users.post(
    "",
    status_code=201,
    summary="Create a user with a role and areas (admins)",
    response_model=models.NewUserOut,
)
def post_user(body: NewUser, _admin: Admin, conn: Conn) -> dict[str, Any]:
    uid = accounts.create_user(
        conn,
        body.username,
        body.password,
        body.role,
        body.full_name,
        [(s.level, s.area_id) for s in body.scopes],
    )
    return {
        "id": uid,
        "username": body.username,
        "role": body.role,
        "scopes": accounts.scopes(conn, uid),
    }


@users.get("", summary="Users (admins)", response_model=list[models.UserRow])
def list_users(_admin: Admin, conn: Conn) -> list[dict[str, Any]]:
    return accounts.list_users(conn)


@users.post(
    "/{user_id}/deactivate",
    summary="Disable a user and end their logins (admins)",
    response_model=models.Deactivated,
)
def deactivate(
    user_id: Annotated[int, Path(ge=1, le=2**62)], admin: Admin, conn: Conn
) -> dict[str, Any]:
    accounts.deactivate(conn, user_id, by=admin.id)
    return {"id": user_id, "is_active": False}
