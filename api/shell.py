"""The pages' side of a login: who is looking, in which language, and which pages they may
open — the menu, each role's home page, and the redirect to /login for a visitor.

Every page registers itself in ``PAGES`` (path, catalogue key of its name, permission);
the menu of a user is the pages their role holds, in this order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.responses import RedirectResponse
from sqlalchemy.engine import Connection

from api.auth import Principal, current_user
from api.deps import Conn
from api.errors import request_lang
from gis import accounts, i18n, permissions
from gis.errors import NotAuthenticated
from layers.shell import NavItem, Shell


@dataclass(frozen=True)
class PageEntry:
    path: str
    key: str  # page.<key> in gis/messages.toml
    permission: str


PAGES: tuple[PageEntry, ...] = (
    PageEntry("/app/grid", "grid", "page_grid"),
    PageEntry("/app/reach", "reach", "page_reach"),
    PageEntry("/app/leaders", "leaders", "page_leaders"),
    PageEntry("/map/groups", "groups", "page_groups"),
    PageEntry("/app/ledgers", "ledgers", "page_ledgers"),
    PageEntry("/app/patrol", "patrol", "page_patrol"),
    PageEntry("/app/reports", "reports", "page_reports"),
    PageEntry("/map", "city", "page_city"),
    PageEntry("/docs", "docs", "page_docs"),
)
# The page each role lands on after logging in (the first of these it may open).
HOME_ORDER = {
    "grid_worker": ("/app/grid",),
    "building_leader": ("/app/grid",),
    "planner": ("/app/reach", "/map"),
    "committee_staff": ("/app/leaders", "/map/groups"),
    "admin": ("/app/leaders", "/map"),
}
AVAILABLE: set[str] = {"/map", "/map/groups", "/docs"}  # grows as the pages are built


def register(path: str) -> None:
    """Mark a page of ``PAGES`` as built (its module calls this at import)."""
    AVAILABLE.add(path)


def pages_for(role: str) -> list[PageEntry]:
    """The pages a role may open, in menu order."""
    holder = _Role(role)
    return [p for p in PAGES if p.path in AVAILABLE and permissions.may(holder, p.permission)]


def home_of(role: str) -> str:
    """Where a role lands after logging in."""
    mine = {p.path for p in pages_for(role)}
    for path in HOME_ORDER.get(role, ()):
        if path in mine:
            return path
    return next(iter(sorted(mine)), "/login")


@dataclass(frozen=True)
class _Role:
    role: str


class LoginRequired(NotAuthenticated):
    """A page asked for by a visitor: answered with a redirect to /login (api/errors.py)."""

    def __init__(self, next_path: str) -> None:
        super().__init__("log in first", key="login.needed")
        self.next_path = next_path


def page_user(request: Request, conn: Conn) -> Principal:
    """The logged-in user of a page; a visitor is sent to /login and back."""
    try:
        return current_user(request, conn)
    except NotAuthenticated:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target) from None


PageUser = Annotated[Principal, Depends(page_user)]


def login_redirect(err: LoginRequired) -> str:
    return f"/login?next={quote(err.next_path, safe='/')}"


def area_label(conn: Connection, user_id: int, lang: str) -> str:
    """The user's areas in words: "社区 P03 · 网格 P03-2" (at most three)."""
    rows = accounts.scope_labels(conn, user_id)
    if not rows:
        return i18n.t("app.whole_city", lang)
    parts = []
    for r in rows[:3]:
        level = i18n.t("level." + r.level, lang)
        # a name that says its level already ("P02 网格 G5") is not prefixed again
        parts.append(r.label if level in r.label else f"{level} {r.label}")
    return " · ".join(parts) + (" …" if len(rows) > 3 else "")


def shell_for(
    request: Request, conn: Connection, user: Principal, text_prefixes: tuple[str, ...] = ()
) -> Shell:
    """The shell of ``user``'s page at ``request``'s path, in their language."""
    lang = request_lang(request)
    here = request.url.path
    nav = tuple(
        NavItem(p.path, i18n.t(f"page.{p.key}", lang), p.path == here)
        for p in pages_for(user.role)
    )
    texts: dict[str, str] = {}
    for prefix in ("app.", "error.", "refusal.", "role.", "level.", *text_prefixes):
        texts.update(i18n.texts(lang, prefix))
    return Shell(
        lang=lang,
        app_name=i18n.t("app.name", lang),
        user_name=user.full_name or user.username,
        role_label=i18n.t(f"role.{user.role}", lang),
        area_label=area_label(conn, user.id, lang),
        nav=nav,
        texts=texts,
        labels={k: i18n.t(f"app.{k}", lang) for k in ("menu", "logout", "language", "offline")},
    )


def install(app: FastAPI) -> None:
    """A visitor asking for a page is sent to /login (and back after), not shown JSON."""

    @app.exception_handler(LoginRequired)
    async def _to_login(_request: Request, err: LoginRequired) -> RedirectResponse:
        return RedirectResponse(login_redirect(err), status_code=303)
