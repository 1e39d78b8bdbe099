"""What the browser tests of the tablet pages share: a tablet-shaped Chromium context logged
in through the login page, watching what the page does.

``open_page`` records every answer the page received (from the page itself on, the login
page's answers dropped), every request that tried to leave the server (aborted: the app
works offline, so none may), and every console error or uncaught exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.api.conftest import password

LOCAL = ("http://127.0.0.1", "data:", "blob:")


@dataclass
class Visit:
    """A logged-in tab and what it saw."""

    context: object
    page: object
    responses: list = field(default_factory=list)
    outside: list[str] = field(default_factory=list)  # requests that tried to leave
    errors: list[str] = field(default_factory=list)  # console errors, uncaught exceptions


def watch(context, page) -> Visit:
    """Record ``page``'s answers, errors and attempts to leave the server (aborted)."""
    visit = Visit(context, page)

    def guard(route) -> None:
        if route.request.url.startswith(LOCAL):
            route.continue_()
        else:
            visit.outside.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page.on("response", lambda r: visit.responses.append(r))
    page.on("console", lambda m: visit.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: visit.errors.append(str(e)))
    return visit


def open_page(
    browser, base: str, username: str, path: str, viewport=(1024, 768), **options
) -> Visit:
    """Log ``username`` in on a touch tablet of ``viewport`` (zh-CN) and open ``path``.

    ``options`` go to the browser context (geolocation, permissions…).
    """
    context = browser.new_context(
        **options,
        viewport={"width": viewport[0], "height": viewport[1]},
        has_touch=True,
        is_mobile=True,
        locale="zh-CN",
    )
    page = context.new_page()
    visit = watch(context, page)
    page.goto(f"{base}/login?next={path}", wait_until="networkidle")
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(password(username))
    page.locator("button[type=submit]").tap()
    page.wait_for_url(f"{base}{path}", timeout=15000)
    page.wait_for_load_state("networkidle")
    # the login page's answers are gone with it: the wire is read from the page on
    start = max(i for i, r in enumerate(visit.responses) if r.url.endswith(path))
    del visit.responses[:start]
    return visit


def follow(visit: Visit, page) -> object:
    """Watch another tab of the same context too (its answers, errors); return it."""
    page.on("response", lambda r: visit.responses.append(r))
    page.on("console", lambda m: visit.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: visit.errors.append(str(e)))
    return page
