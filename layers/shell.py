"""The app's shell, shared by every page: who is logged in, the menu of their pages, the
language switch and logout — on Folium maps and on plain pages alike.

The shell is data in, markup out (no database): ``api/shell.py`` says who the user is and
which pages they may open; the page's scripts get their texts from the catalogue through
``<script type="application/json" id="ga-i18n">`` (data, not code: the CSP allows it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from layers.assets import APP_PREFIX, add_stylesheet
from layers.furniture import json_for_script
from layers.page import Fragment, Map

SHELL_CSS = f"{APP_PREFIX}/shell.css"
SHELL_JS = f"{APP_PREFIX}/shell.js"
OFFLINE_JS = f"{APP_PREFIX}/offline.js"  # after shell.js: the service worker, the 离线 badge


@dataclass(frozen=True)
class NavItem:
    href: str
    label: str
    active: bool = False


@dataclass(frozen=True)
class Shell:
    """What the shell shows. Every text is already in the user's language."""

    lang: str
    app_name: str
    user_name: str
    role_label: str
    area_label: str
    nav: tuple[NavItem, ...]
    texts: dict[str, str] = field(default_factory=dict)  # for the pages' scripts
    labels: dict[str, str] = field(default_factory=dict)  # the shell's own: logout, menu…


def bar_html(shell: Shell) -> str:
    """The shell's top bar: brand, menu, user, language switch, logout (all escaped)."""
    links = "".join(
        f'<a href="{escape(item.href)}"{" aria-current=page" if item.active else ""}>'
        f"{escape(item.label)}</a>"
        for item in shell.nav
    )
    lb = shell.labels
    return (
        f'<header class="ga-shell" id="ga-shell" data-lang="{escape(shell.lang)}">'
        f'<span class="ga-brand">{escape(shell.app_name)}</span>'
        f'<button type="button" class="ga-menu-button" id="ga-menu-button" '
        f'aria-controls="ga-nav" aria-expanded="false">{escape(lb.get("menu", "menu"))}</button>'
        f'<nav class="ga-nav" id="ga-nav">{links}</nav>'
        f'<span class="ga-user" id="ga-user"><b>{escape(shell.user_name)}</b> · '
        f"{escape(shell.role_label)}"
        f'{" · " + escape(shell.area_label) if shell.area_label else ""}</span>'
        f'<span class="ga-offline" id="ga-offline" hidden>{escape(lb.get("offline", ""))}</span>'
        f'<button type="button" class="ga-lang" id="ga-lang" '
        f'data-to="{"en" if shell.lang == "zh" else "zh"}">'
        f'{escape(lb.get("language", ""))}</button>'
        f'<button type="button" class="ga-logout" id="ga-logout">'
        f'{escape(lb.get("logout", ""))}</button>'
        "</header>"
        '<div class="ga-notice" id="ga-notice" role="alert" hidden></div>'
        f'<script type="application/json" id="ga-i18n">{json_for_script(shell.texts)}</script>'
    )


def add_shell(m: Map, shell: Shell) -> Map:
    """Put the shell on a Folium map page (its bar above the map, its script last)."""
    root = m.get_root()
    root.html.add_child(Fragment(bar_html(shell)), name="ga_shell", index=0)
    add_stylesheet(m, SHELL_CSS)
    root.html.add_child(Fragment(f'<script src="{SHELL_JS}"></script>'), name="ga_shell_js")
    root.html.add_child(Fragment(f'<script src="{OFFLINE_JS}"></script>'), name="ga_offline_js")
    root.html_lang = shell.lang  # type: ignore[attr-defined]
    return m


def plain_page(
    shell: Shell,
    title: str,
    body: str,
    *,
    scripts: tuple[str, ...] = (),
    styles: tuple[str, ...] = (),
) -> str:
    """A page without a map (forms, tables): the shell, ``body`` (ready markup) and our
    own scripts and styles (files under /static, no inline script)."""
    css = "".join(f'<link rel="stylesheet" href="{escape(s)}">'
                  for s in (f"{APP_PREFIX}/map.css", SHELL_CSS, *styles))  # fmt: skip
    js = "".join(f'<script src="{escape(s)}"></script>' for s in (SHELL_JS, OFFLINE_JS, *scripts))
    lang = "zh-CN" if shell.lang == "zh" else "en"
    return (
        f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title>{css}</head>"
        f'<body class="ga-plain">{bar_html(shell)}<main class="ga-main" id="ga-main">{body}'
        f"</main>{js}</body></html>"
    )
