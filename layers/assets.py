"""Serve Folium's browser assets ourselves: no page may load a script or style from a CDN.

``VENDOR_PACKAGES`` says which npm packages the app serves under ``/static/vendor/<name>``;
``localise`` rewrites the CDN links Folium elements carry to those local paths and refuses
any it does not know, so a new Folium plugin cannot silently reach the internet.
"""

from __future__ import annotations

import re
from html import escape

import folium

from layers.page import Fragment, Page

VENDOR_PREFIX = "/static/vendor"
APP_PREFIX = "/static/app"
# URL prefix under /static/vendor -> npm package directory under node_modules
VENDOR_PACKAGES = {
    "leaflet": "leaflet",
    "jquery": "jquery",
    "bootstrap": "bootstrap",
    "awesome-markers": "drmonty-leaflet-awesome-markers",
    "fontawesome": "@fortawesome/fontawesome-free",
    "swagger-ui": "swagger-ui-dist",  # /docs
    "redoc": "redoc",  # /redoc
    "vectorgrid": "leaflet.vectorgrid",  # layers/tiles.py
    "locatecontrol": "leaflet.locatecontrol",  # layers/grid.py: locate-me
    "idb": "idb",  # web/static/app/patrol.js: the offline queue (IndexedDB)
    "workbox-sw": "workbox-sw",  # web/static/app/sw.js (its modules: api/routes/offline.py)
    "echarts": "echarts",  # web/static/app/reports_dashboard.js: the dashboard's charts
}
# Folium's resource names -> our local URL (None: not needed, dropped)
LOCAL_URLS: dict[str, str | None] = {
    "leaflet": f"{VENDOR_PREFIX}/leaflet/dist/leaflet.js",
    "leaflet_css": f"{VENDOR_PREFIX}/leaflet/dist/leaflet.css",
    "jquery": f"{VENDOR_PREFIX}/jquery/dist/jquery.min.js",
    "bootstrap": f"{VENDOR_PREFIX}/bootstrap/dist/js/bootstrap.bundle.min.js",
    "bootstrap_css": f"{VENDOR_PREFIX}/bootstrap/dist/css/bootstrap.min.css",
    "awesome_markers": f"{VENDOR_PREFIX}/awesome-markers/js/leaflet.awesome-markers.min.js",
    "awesome_markers_css": f"{VENDOR_PREFIX}/awesome-markers/css/leaflet.awesome-markers.css",
    "awesome_markers_font_css": f"{VENDOR_PREFIX}/fontawesome/css/all.min.css",
    "awesome_rotate_css": f"{APP_PREFIX}/awesome-rotate.css",
    "vectorGrid": f"{VENDOR_PREFIX}/vectorgrid/dist/Leaflet.VectorGrid.bundled.min.js",
    # Bootstrap 3 glyphicons are not published on npm at 3.0.0; our maps use Font Awesome.
    "glyphicons_css": None,
}
_EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["'](?:https?:)?//""", re.I)


class UnknownAsset(RuntimeError):
    """A Folium element wants a CDN resource that we do not serve ourselves."""


def _localise_list(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    out = []
    for name, url in pairs:
        if url.startswith("/"):
            out.append((name, url))
            continue
        if name not in LOCAL_URLS:
            raise UnknownAsset(
                f"Folium resource {name!r} ({url}) has no local copy; add it "
                "to package.json and layers/assets.py"
            )
        local = LOCAL_URLS[name]
        if local is not None:
            out.append((name, local))
    return out


def localise(root: folium.Map) -> folium.Map:
    """Point every Folium element under ``root`` at locally served assets."""
    stack = [root]
    while stack:
        el = stack.pop()
        if hasattr(el, "default_js"):
            el.default_js = _localise_list(list(el.default_js))
        if hasattr(el, "default_css"):
            el.default_css = _localise_list(list(el.default_css))
        stack.extend(getattr(el, "_children", {}).values())
    return root


def render_offline(m: folium.Map, nonce: str) -> str:
    """Render ``m`` to a full HTML page, checking that nothing is loaded from elsewhere.

    ``nonce`` is the response's Content-Security-Policy nonce: our inline scripts carry it.
    """
    root = m.get_root()
    if not isinstance(root, Page):
        raise TypeError("make the map with layers.page.Map: its scripts carry the CSP nonce")
    localise(m)
    html = root.render(nonce=nonce)
    hit = _EXTERNAL.search(html)
    if hit:
        start = max(hit.start() - 40, 0)
        raise UnknownAsset(f"page still links outside the app: {html[start : hit.end() + 60]!r}")
    return html


def add_stylesheet(m: folium.Map, href: str) -> None:
    """Add one of our own stylesheets to the page head."""
    m.get_root().header.add_child(Fragment(f'<link rel="stylesheet" href="{escape(href)}"/>'))
