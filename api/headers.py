"""Security headers on every answer, and the per-response nonce our pages' scripts carry.

- ``Content-Security-Policy``: scripts, styles, images, fonts and requests from this server
  only; an inline script runs only with this response's nonce, which only the templates in
  ``layers/page.py`` write, so a script smuggled in through data would not run. Styles
  allow ``'unsafe-inline'``: Folium's pages carry ``<style>`` blocks and its tooltips and
  our legends ``style=`` attributes (a nonce cannot cover those), and injected CSS cannot
  run code. No page may be framed (``frame-ancestors 'none'``, ``X-Frame-Options``).
- ``Cache-Control: no-store`` on every answer but the static assets: pages and the API
  carry personal data (reveals, exports, residents) that no cache may keep. The vector
  tiles (``/api/tiles/``) carry no person, only the user's scoped footprints: they keep
  the ``private`` caching their route sets (``api/routes/tiles.py``).
- ``img-src`` also allows the configured basemap's tile hosts (``api/basemap.py``), and
  only them; with no basemap (the default) it is this server only.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.basemap import image_hosts
from layers.assets import APP_PREFIX, VENDOR_PREFIX

NONCE = "csp_nonce"  # key in the request's state
STATIC_PREFIXES = (f"{VENDOR_PREFIX}/", f"{APP_PREFIX}/")
NO_STORE = "no-store"
TILES_PREFIX = "/api/tiles/"


def content_security_policy(nonce: str, img_hosts: tuple[str, ...] = ()) -> str:
    """Return the policy of one response whose inline scripts carry ``nonce``.

    ``img_hosts``: origins of the basemap's tiles (``https://host``), allowed as images only.
    """
    images = " ".join(("'self'", "data:", *img_hosts))
    return "; ".join(
        (
            "default-src 'self'",
            f"script-src 'self' 'nonce-{nonce}'",
            "style-src 'self' 'unsafe-inline'",
            f"img-src {images}",  # Leaflet's and Bootstrap's CSS use data: images
            "font-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


def is_static(path: str) -> bool:
    """Whether ``path`` is one of the static assets (no personal data; may be cached)."""
    return path.startswith(STATIC_PREFIXES)


class SecurityHeaders:
    """ASGI middleware adding the headers above; the nonce goes into the request's state."""

    def __init__(self, app: ASGIApp, img_hosts: tuple[str, ...] = ()) -> None:
        self.app = app
        self.img_hosts = img_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(18)
        scope.setdefault("state", {})[NONCE] = nonce
        cacheable = is_static(scope["path"])
        is_tile = scope["path"].startswith(TILES_PREFIX)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = content_security_policy(
                    nonce, self.img_hosts
                )
                headers["X-Content-Type-Options"] = "nosniff"
                headers["X-Frame-Options"] = "DENY"
                headers["Referrer-Policy"] = "no-referrer"
                kept = is_tile and "private" in headers.get("cache-control", "")
                if not cacheable and not kept:
                    headers["Cache-Control"] = NO_STORE
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install(app: FastAPI) -> None:
    """Add the security headers to every answer of ``app`` (its basemap's hosts in img-src)."""
    app.add_middleware(SecurityHeaders, img_hosts=image_hosts(app.state.settings))


def nonce_of(request: Request) -> str:
    """This response's script nonce (set by ``SecurityHeaders``)."""
    nonce = getattr(request.state, NONCE, None)
    if not nonce:
        raise RuntimeError("api.headers.install(app) was not called: pages need the CSP nonce")
    return str(nonce)


Nonce = Annotated[str, Depends(nonce_of)]
