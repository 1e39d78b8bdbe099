"""The service worker that keeps the grid page usable without network (离线).

``/sw.js`` is served from the root so that its scope covers every page (a worker may only
control the paths under its own URL); its code is ``web/static/app/sw.js``. What it keeps is
decided there: the grid page and the API answers its building cards use, this user's only.

The worker loads Workbox with ``workbox-sw`` (``/static/vendor/workbox-sw``), which imports
each module from one folder. npm puts every module in a package of its own
(``node_modules/workbox-routing/build/…``), so that folder is this route: a fixed list of
module builds, read from ``node_modules`` as shipped (no bundler). Routes are matched before
the static mounts, so the path may sit under ``/static/vendor`` like the other libraries.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from gis.errors import NotFound
from gis.settings import PROJECT_ROOT

router = APIRouter(tags=["pages"], include_in_schema=False)

SERVICE_WORKER = PROJECT_ROOT / "web" / "static" / "app" / "sw.js"
NODE_MODULES = PROJECT_ROOT / "node_modules"
# the modules sw.js uses; names are ours, never the caller's text
WORKBOX_MODULES = frozenset(
    {"workbox-core", "workbox-routing", "workbox-strategies", "workbox-cacheable-response"}
)
JAVASCRIPT = "application/javascript"


@router.get("/sw.js")
def service_worker() -> FileResponse:
    """The service worker, with a scope of the whole site."""
    return FileResponse(
        SERVICE_WORKER, media_type=JAVASCRIPT, headers={"Service-Worker-Allowed": "/"}
    )


@router.get("/static/vendor/workbox/{module}.prod.js")
def workbox_module(module: str) -> FileResponse:
    """One Workbox module's browser build, as its npm package ships it."""
    path = NODE_MODULES / module / "build" / f"{module}.prod.js"
    if module not in WORKBOX_MODULES or not path.is_file():
        raise NotFound(f"no Workbox module {module!r} is served")
    return FileResponse(path, media_type=JAVASCRIPT)
