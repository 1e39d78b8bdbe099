"""Who is asking: login tokens, roles, and the database setting row-level security reads.

A request carries its token as ``Authorization: Bearer …`` or in the ``ga_session``
cookie (HttpOnly, SameSite=Strict). The token's SHA-256 is looked up in ``auth_session``;
the user's id then goes into ``ga.user_id`` for this transaction only (``set_config(…,
true)``), which every policy in migration 0005 reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from api.deps import Conn
from api.reads import ReadConn
from gis import accounts, permissions
from gis.errors import Forbidden, NotAuthenticated

COOKIE = "ga_session"


@dataclass(frozen=True)
class Principal:
    """The logged-in user of this request."""

    id: int
    username: str
    role: str
    full_name: str | None

    def may_reveal(self, field: str) -> bool:
        return permissions.may(self, f"reveal_{field}")


def token_of(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    return request.cookies.get(COOKIE) or None


SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
CSRF_HEADER = "x-requested-with"  # pages send "gridatlas"; a form on another site cannot


def current_user(request: Request, conn: Conn) -> Principal:
    """The request's user, set as the transaction's ``ga.user_id``; 401 without a login.

    (``current_reader`` is the same on a route's ``ReadConn``, see api/reads.py.)

    A change sent with the cookie alone must also carry ``X-Requested-With: gridatlas``: a
    page of another site (even a sibling subdomain, which SameSite does not stop) can post
    a form with the cookie but cannot add a header without our consent (CORS).
    """
    token = token_of(request)
    if (
        token
        and "authorization" not in request.headers
        and request.method not in SAFE_METHODS
        and request.headers.get(CSRF_HEADER) != "gridatlas"
    ):
        raise Forbidden("a change sent with the login cookie needs X-Requested-With: gridatlas")
    if not token or len(token) > 200:
        raise NotAuthenticated("log in first: POST /api/auth/login, then send the token")
    row = accounts.session_user(conn, token)
    if row is None:
        raise NotAuthenticated("the login has expired or was ended; log in again")
    return Principal(row.id, row.username, row.role, row.full_name)


User = Annotated[Principal, Depends(current_user)]


def current_reader(request: Request, conn: ReadConn) -> Principal:
    """``current_user`` on the connection of a route that only reads (maybe the replica)."""
    return current_user(request, conn)


ReadUser = Annotated[Principal, Depends(current_reader)]


def need(permission: str):
    """A dependency that lets only the roles holding ``permission`` through (403 otherwise)."""

    def check(user: User) -> Principal:
        permissions.require(user, permission)
        return user

    return check


PeopleUser = Annotated[Principal, Depends(need("see_people"))]
Editor = Annotated[Principal, Depends(need("edit_map"))]
Admin = Annotated[Principal, Depends(need("manage_users"))]
