"""The FastAPI application: lifespan-owned engine, routes, local static assets."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import sqlalchemy as sa
from anyio import to_thread
from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.gzip import GZipMiddleware

from api import deps, errors, headers, openapi_links, reads, shell
from api.params import refuse_unknown_query
from api.routes import auth as auth_routes
from api.routes import delineation as delineation_routes
from api.routes import docs as docs_routes
from api.routes import facilities as facility_routes
from api.routes import grid_page as grid_page_routes
from api.routes import hierarchy as hierarchy_routes
from api.routes import layers as layer_routes
from api.routes import leaders_page as leaders_page_routes
from api.routes import ledgers as ledger_routes
from api.routes import ledgers_page as ledgers_page_routes
from api.routes import offline as offline_routes
from api.routes import open311 as open311_routes
from api.routes import pages
from api.routes import patrol as patrol_routes
from api.routes import patrol_page as patrol_page_routes
from api.routes import problem_photos as problem_photo_routes
from api.routes import reach as reach_routes
from api.routes import reach_page as reach_page_routes
from api.routes import reports as report_routes
from api.routes import reports_dashboard as report_dashboard_routes
from api.routes import reports_public as report_public_routes
from api.routes import reports_staff as report_staff_routes
from api.routes import sheets as sheet_routes
from api.routes import subject as subject_routes
from api.routes import tiles as tile_routes
from gis import db, replica, scheduler
from gis.errors import DatabaseUnavailable
from gis.pgcluster import LocalCluster
from gis.security import Keys
from gis.settings import PROJECT_ROOT, Settings, get_settings
from layers.assets import APP_PREFIX, VENDOR_PACKAGES, VENDOR_PREFIX

NODE_MODULES = PROJECT_ROOT / "node_modules"
THREADS = 32  # concurrent sync handlers (and database connections) per process
WEB_STATIC = PROJECT_ROOT / "web" / "static"


def _mount_assets(app: FastAPI) -> None:
    for prefix, package in VENDOR_PACKAGES.items():
        directory = NODE_MODULES / package
        if not directory.is_dir():
            raise DatabaseUnavailable(
                f"web asset {package} is missing from node_modules; "
                "run scripts/bootstrap.sh (npm ci)"
            )
        app.mount(
            f"{VENDOR_PREFIX}/{prefix}", StaticFiles(directory=directory), name=f"vendor-{prefix}"
        )
    app.mount(APP_PREFIX, StaticFiles(directory=WEB_STATIC / "app"), name="app-static")


def _app_role_url(settings: Settings, keys: Keys) -> str:
    """The app role's URL; with the database down, the same URL without the set-up (the
    password is derived from the key, so a role set up before works when it comes back)."""
    owner = db.resolve_url(settings, start_local=False)
    try:
        return db.app_role_url(owner, keys.db_password())
    except sa.exc.OperationalError as err:
        logging.getLogger("gridatlas.api").warning(
            "database not reachable at start-up (%s); requests answer 503 until it is",
            str(err.orig).splitlines()[0],
        )
        return db.app_role_url_unchecked(owner, keys.db_password())


def _read_engine(settings: Settings, keys: Keys) -> sa.Engine | None:
    """The replica's engine, as the app's role (replicated from the primary), or None."""
    owner = replica.resolve_replica_url(settings)
    if owner is None:
        return None
    url = db.app_role_url_unchecked(owner, keys.db_password())
    return db.create_engine(url, pool_size=THREADS // 2, max_overflow=8, pool_timeout=5)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the database engine is created at start-up, not at import."""
    settings = settings or get_settings()
    keys = Keys.from_settings(settings)  # refuses a missing or placeholder key, up front

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Requests run as the app's role, which owns no table and cannot bypass row-level
        # security; the owner's URL is used only here, to let that role log in.
        url = settings.app_database_url or _app_role_url(settings, app.state.keys)
        # The key that proves a login to the database (ga_login_record), per database.
        app.state.login_key = db.login_secret(
            app.state.keys.db_password(), db.make_url(url).database or "postgres"
        )
        # Every sync handler holds one connection while it runs in the thread pool: the pool
        # is larger than the thread limit, so a request never waits for a connection held
        # by a request that is itself waiting for a thread.
        to_thread.current_default_thread_limiter().total_tokens = THREADS
        app.state.db_slots = anyio.Semaphore(deps.DB_SLOTS)  # on this event loop
        app.state.engine = db.create_engine(
            url, pool_size=THREADS // 2, max_overflow=THREADS // 2 + 8, pool_timeout=10
        )
        if not (settings.app_database_url or settings.database_url):
            db.follow_local_cluster(app.state.engine, LocalCluster(settings.pg_dir))
        app.state.read_engine = _read_engine(settings, app.state.keys)
        app.state.scheduler = scheduler.start_for(settings)  # None when jobs_every_min is 0
        try:
            yield
        finally:
            if app.state.scheduler is not None:
                await to_thread.run_sync(app.state.scheduler.stop)  # after a pass in progress
            app.state.engine.dispose()
            if app.state.read_engine is not None:
                app.state.read_engine.dispose()

    app = FastAPI(
        title="Grid Atlas",
        version="0.1.0",
        lifespan=lifespan,
        description="Community grid management (网格化管理) on PostGIS.",
        dependencies=[Depends(refuse_unknown_query)],
        docs_url=None,  # served by api/routes/docs.py from our own assets, with the nonce
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.keys = keys
    errors.install(app)
    openapi_links.install(app)
    shell.install(app)
    headers.install(app)
    reads.install(app)
    # Compressed answers: a cold tablet page goes from 0.86 to 0.21 MB (bench/pages.py).
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=6)
    app.include_router(layer_routes.router)
    app.include_router(reach_routes.router)
    app.include_router(facility_routes.router)
    app.include_router(delineation_routes.router)
    app.include_router(auth_routes.router)
    app.include_router(auth_routes.users)
    app.include_router(hierarchy_routes.router)
    app.include_router(sheet_routes.router)  # before /ledgers/{ledger}/{id}
    app.include_router(subject_routes.router)  # before /residents/{id}
    app.include_router(ledger_routes.router)
    app.include_router(pages.router)
    app.include_router(offline_routes.router)
    app.include_router(open311_routes.router)
    app.include_router(problem_photo_routes.router)
    app.include_router(patrol_page_routes.router)
    app.include_router(patrol_routes.router)
    app.include_router(grid_page_routes.router)
    app.include_router(reach_page_routes.router)
    app.include_router(leaders_page_routes.router)
    app.include_router(tile_routes.router)
    app.include_router(report_staff_routes.router)
    app.include_router(report_public_routes.router)
    app.include_router(report_dashboard_routes.router)
    app.include_router(ledgers_page_routes.router)
    app.include_router(report_routes.router)
    app.include_router(docs_routes.router)
    _mount_assets(app)
    return app
