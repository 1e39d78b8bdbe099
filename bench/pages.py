"""Benchmark: the tablet pages in Chromium on loopback (issue "The tablet app", Goals).

    .venv/bin/python bench/pages.py [--runs 7] [--map-runs 3] [--only leaders|map] [--no-gzip]

1. ``/app/leaders`` of the bundled Nanjing community nearest 3,000 households (imported into a
   fresh database and delineated with ``gis.delineate.service.run``), logged in as a
   committee-staff user of that community made here. Cold: a fresh browser context per run
   (empty HTTP cache, no service worker). Warm: the same context loads the page again, once
   the first visit has settled (its levels read and offline.js done keeping: <html
   data-ga-offline>), so that the tablet's cache holds what one visit leaves in it.
   "Interactive" (the same every run, all in the page's ``performance.now()``, whose origin
   is the navigation start):

       interactive = drawn + tap
       drawn = the first frame after leaders.js has set body[data-leaders-ready] (the
               level shown first, the residents' groups, is drawn and its tap handlers are
               attached; the other levels are read after it, body[data-leaders-levels]),
               taken as requestAnimationFrame + setTimeout 0 after that attribute appears
       tap   = from the pointerdown of one touchscreen tap on a residents' group (its
               event.timeStamp, so any queueing behind busy main-thread work counts) until
               the panel is shown with the seat loaded (#ga-lead-current has content: the
               two API answers are in)

2. Bytes of the first load: Chromium's own count (CDP ``Network.loadingFinished``
   ``encodedDataLength``: what came over the socket, headers included) and decoded body
   sizes (``Network.dataReceived``), the tap's two API answers left out. The app sends
   nothing compressed; the same runs are repeated on a server that is the app plus
   Starlette's ``GZipMiddleware`` (:func:`gzip_app`, here only) to measure what it gives.

3. ``/map`` as an admin over porto-central (11,393 buildings, imported as
   bench/import_osm.py does): a scripted sequence of animated pans (``panBy``) and zooms
   (``setZoom``); long tasks from a ``PerformanceObserver({type: "longtask"})``. Measured as
   configured: above ``GRIDATLAS_VECTOR_TILES_ABOVE`` (3,000) buildings the page embeds
   neither buildings nor the walk network, both come as vector tiles (``/api/tiles``).

Chromium as tests/conftest.py runs it (Debian's, via Playwright, its flags, headless), a
1024x768 touch viewport. Every request not to 127.0.0.1 is blocked by Chromium itself
(CDP ``Network.setBlockedURLs``; Playwright's ``route`` would turn the HTTP cache off) and
any attempt is reported. Also printed: the server's answer alone (httpx, same cookie) and
where the server's time goes (cProfile of one request in process).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Without a configured key, a fixed one of the bench's own: these throw-away databases hold
# no person, but the app refuses to start without a key.
BENCH_KEY = "5b8d2f0e7a1c4e9b3d6f8a2c0e5b7d9f1a3c5e7b9d2f4a6c8e0b1d3f5a7c9e2b"
if not os.environ.get("GRIDATLAS_SECRET_KEY") and not (ROOT / "var" / "secret.key").exists():
    os.environ["GRIDATLAS_SECRET_KEY"] = BENCH_KEY

from bench.import_osm import _drop, _migrated_database  # noqa: E402
from gis import db, security  # noqa: E402
from gis.settings import get_settings  # noqa: E402

NANJING = ROOT / "data" / "osm" / "nanjing-central.osm"
PORTO = ROOT.parent / "shared" / "data" / "osm" / "porto-central.osm.pbf"
STAFF, STAFF_PW = "bench_pages_staff", "bench-pages-staff-2026"
ADMIN, ADMIN_PW = "bench_pages_admin", "bench-pages-admin-2026"
FLAGS = [  # tests/conftest.py CHROMIUM_FLAGS
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
VIEWPORT = {"width": 1024, "height": 768}
GOALS = {"cold_ms": 1500.0, "warm_ms": 500.0, "bytes": 1.5e6, "task_ms": 200.0}
TAP_PATHS = ("/api/leaders/",)  # the tap's answers, not part of "the first load"

# Installed before any script of the page: the marks the bench reads (page time, ms).
PAGE_PROBE = r"""
(() => {
  const b = window.__bench = {ready: null, drawn: null, tapAt: null, panelAt: null, levels: null,
    tasks: []};
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) b.tasks.push([e.startTime, e.duration]);
    }).observe({type: "longtask", buffered: true});
  } catch (e) { b.noLongtask = String(e); }
  const mark = () => {
    if (b.ready === null && document.body && document.body.dataset.leadersReady === "true") {
      b.ready = performance.now();
      requestAnimationFrame(() => setTimeout(() => { b.drawn = performance.now(); }, 0));
    }
    if (b.levels === null && document.body && document.body.dataset.leadersLevels) {
      b.levels = performance.now();
    }
    const cur = document.getElementById("ga-lead-current");
    if (b.tapAt !== null && b.panelAt === null && cur && cur.childElementCount > 0) {
      b.panelAt = performance.now();
    }
  };
  new MutationObserver(mark).observe(document, {subtree: true, childList: true,
    attributes: true, attributeFilter: ["data-leaders-ready", "data-leaders-levels"]});
  document.addEventListener("pointerdown", (e) => {
    if (b.tapAt === null && b.drawn !== null) b.tapAt = e.timeStamp;
  }, true);
})();
"""

# A point on screen that hits a residents' group's own SVG path (the largest one whose
# centre is on it), found after the measurement of "drawn" and before the tap.
TAP_TARGET = r"""
() => {
  const map = Object.values(window).find((v) => v instanceof L.Map);
  const box = map.getContainer().getBoundingClientRect();
  const found = [];
  for (const v of Object.values(window)) {
    if (!(v instanceof L.GeoJSON) || !map.hasLayer(v)) continue;
    v.eachLayer((f) => {
      const p = f.feature && f.feature.properties;
      if (p && p.level === "residents_group" && f._path) found.push(f);
    });
  }
  const hh = (f) => f.feature.properties.households || 0;
  found.sort((a, b) => hh(b) - hh(a));
  for (const f of found) {
    const c = map.latLngToContainerPoint(f.getCenter());
    const x = c.x + box.left, y = c.y + box.top;
    if (x < 0 || y < 0 || x > innerWidth || y > innerHeight) continue;
    if (document.elementFromPoint(x, y) === f._path) return [x, y];
  }
  return null;
}
"""

MAP_SEQUENCE = r"""
async () => {
  const map = Object.values(window).find((v) => v instanceof L.Map);
  const b = window.__bench;
  const once = (ev) => new Promise((r) => map.once(ev, r));
  const pause = (ms) => new Promise((r) => setTimeout(r, ms));
  const t0 = performance.now();
  const steps = [];
  const step = async (name, ev, act) => {
    const s = performance.now(); const done = once(ev); act(); await done; await pause(60);
    steps.push([name, performance.now() - s]);
  };
  for (const d of [[300, 0], [0, 200], [-300, 0], [0, -200], [450, 300], [-450, -300]]) {
    await step("pan", "moveend", () => map.panBy(d, {animate: true, duration: 0.25}));
  }
  for (const dz of [1, 1, -1, -1, -1, 1]) {
    await step("zoom", "zoomend", () => map.setZoom(map.getZoom() + dz, {animate: true}));
  }
  await pause(400);  // long-task entries arrive after the task
  return {t0, t1: performance.now(), steps, tasks: b.tasks};
}
"""


# --- the databases ------------------------------------------------------------------------


def _user(conn: sa.Connection, name: str, role: str, pw: str) -> int:
    return int(
        conn.scalar(
            sa.text(
                "INSERT INTO app_user (username, role, password_hash) VALUES (:u, :r, :p) "
                "RETURNING id"
            ),
            {"u": name, "r": role, "p": security.hash_password(pw)},
        )
    )


def prepare_nanjing(server: str) -> tuple[str, dict[str, Any]]:
    from gis.delineate.service import run
    from gis.io.pipeline import import_file

    url = _migrated_database(server)
    eng = db.create_engine(url, poolclass=sa.NullPool)
    try:
        import_file(eng, NANJING)
        run(eng)
        with eng.begin() as conn:
            comm = conn.execute(
                sa.text(
                    "SELECT id, code, households FROM community "
                    "ORDER BY abs(households - 3000), id LIMIT 1"
                )
            ).one()
            uid = _user(conn, STAFF, "committee_staff", STAFF_PW)
            conn.execute(
                sa.text("INSERT INTO app_user_scope VALUES (:u, 'community', :c)"),
                {"u": uid, "c": comm.id},
            )
            counts = conn.execute(
                sa.text(
                    "SELECT (SELECT count(*) FROM building_path WHERE community_id = :c), "
                    "(SELECT count(*) FROM residents_group WHERE community_id = :c)"
                ),
                {"c": comm.id},
            ).one()
            conn.execute(sa.text("ANALYZE"))
    finally:
        eng.dispose()
    info = {"id": comm.id, "code": comm.code, "households": comm.households,
            "buildings": counts[0], "groups": counts[1]}  # fmt: skip
    return url, info


def prepare_porto(server: str) -> tuple[str, int]:
    from gis.io.pipeline import import_file

    url = _migrated_database(server)
    eng = db.create_engine(url, poolclass=sa.NullPool)
    try:
        import_file(eng, PORTO)
        with eng.begin() as conn:
            _user(conn, ADMIN, "admin", ADMIN_PW)
            n = int(conn.scalar(sa.text("SELECT count(*) FROM building")))
            conn.execute(sa.text("ANALYZE"))
    finally:
        eng.dispose()
    return url, n


# --- the server ---------------------------------------------------------------------------


def gzip_app():  # noqa: ANN201 (a uvicorn factory)
    """The app with Starlette's GZipMiddleware outermost: what adding it would give."""
    from starlette.middleware.gzip import GZipMiddleware

    from api.app import create_app

    app = create_app()
    app.add_middleware(GZipMiddleware, minimum_size=500)
    return app


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(url: str, target: str = "api.app:create_app", **env: str):
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", target, "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--no-access-log"],
        cwd=ROOT, env={**os.environ, "GRIDATLAS_DATABASE_URL": url, **env},
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/api/health", timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{target} did not start")
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --- the browser --------------------------------------------------------------------------


class Tab:
    """A page of one context with Chromium's own network log and block list on it."""

    def __init__(self, context, base: str) -> None:
        self.base = base
        self.page = context.new_page()
        self.cdp = context.new_cdp_session(self.page)
        self.cdp.send("Network.enable")
        self.cdp.send(
            "Network.setBlockedURLs",
            {"urlPatterns": [{"urlPattern": f"{base}/*", "block": False},
                             {"urlPattern": "*://*/*", "block": True}]},
        )  # fmt: skip
        self.reqs: dict[str, dict[str, Any]] = {}
        self.outside: list[str] = []
        self.errors: list[str] = []
        self.cdp.on("Network.requestWillBeSent", self._sent)
        self.cdp.on("Network.responseReceived", self._response)
        self.cdp.on("Network.dataReceived", self._data)
        self.cdp.on("Network.loadingFinished", self._finished)
        # Chromium asks for /favicon.ico by itself; the app has none (a 404, not the page's)
        self.page.on(
            "console",
            lambda m: (
                self.errors.append(m.text)
                if m.type == "error" and "favicon" not in str(m.location)
                else 0
            ),
        )
        self.page.on(
            "pageerror",
            lambda e: self.errors.append(
                f"{e}"
                + (f" at {e.stack.splitlines()[1].strip()}" if e.stack and "\n" in e.stack else "")
            ),
        )
        self.page.add_init_script(PAGE_PROBE)

    def _sent(self, e: dict) -> None:
        url = e["request"]["url"]
        if not url.startswith((self.base + "/", "data:", "blob:")):
            self.outside.append(url)
        self.reqs.setdefault(e["requestId"], {"url": url, "body": 0, "wire": 0, "from": "net"})

    def _response(self, e: dict) -> None:
        r, rec = e["response"], self.reqs.setdefault(e["requestId"], {"body": 0, "wire": 0})
        rec.update(
            status=r["status"],
            url=r["url"],
            enc=r.get("headers", {}).get(
                "content-encoding", r.get("headers", {}).get("Content-Encoding", "")
            ),
        )
        if r.get("fromServiceWorker"):
            rec["from"] = "service worker"
        elif r.get("fromDiskCache"):
            rec["from"] = "disk cache"
        elif r.get("fromPrefetchCache"):
            rec["from"] = "prefetch"
        elif r["status"] == 304:
            rec["from"] = "304"

    def _data(self, e: dict) -> None:
        self.reqs.setdefault(e["requestId"], {"body": 0, "wire": 0})["body"] += e["dataLength"]

    def _finished(self, e: dict) -> None:
        self.reqs.setdefault(e["requestId"], {"body": 0, "wire": 0})["wire"] = e[
            "encodedDataLength"
        ]

    def network(self) -> dict[str, Any]:
        """Bytes and where each answer came from, the tap's answers left out."""
        self.page.wait_for_timeout(200)  # the last CDP events
        rows = [r for r in self.reqs.values()
                if not any(p in r.get("url", "") for p in TAP_PATHS)]  # fmt: skip
        by_from: dict[str, int] = {}
        for r in rows:
            by_from[r.get("from", "net")] = by_from.get(r.get("from", "net"), 0) + 1
        return {"wire": sum(r["wire"] for r in rows), "body": sum(r["body"] for r in rows),
                "requests": len(rows), "from": by_from, "rows": rows}  # fmt: skip

    def reset(self) -> None:
        self.reqs.clear()


def leaders_load(tab: Tab, url: str) -> dict[str, Any]:
    """One load of the leaders page and one tap; the marks in page time (ms)."""
    tab.reset()
    page = tab.page
    resp = page.goto(url, wait_until="commit")
    if resp is None or resp.status != 200:
        raise SystemExit(f"{url}: {resp and resp.status}")
    page.wait_for_function("() => window.__bench && window.__bench.drawn !== null", timeout=60000)
    xy = page.evaluate(TAP_TARGET)
    if xy is None:
        raise SystemExit("no residents' group to tap on screen")
    page.touchscreen.tap(xy[0], xy[1])
    page.wait_for_function("() => window.__bench.panelAt !== null", timeout=30000)
    b = page.evaluate(
        "() => { const n = performance.getEntriesByType('navigation')[0];"
        " return Object.assign({}, window.__bench, {ttfb: n.responseStart,"
        " html_end: n.responseEnd, dcl: n.domContentLoadedEventEnd, load: n.loadEventEnd,"
        " sw: !!navigator.serviceWorker.controller}); }"
    )
    tap = b["panelAt"] - b["tapAt"]
    net = tab.network()
    long_load = [d for s, d in b["tasks"] if s < b["drawn"]]
    return {
        "interactive": b["drawn"] + tap, "drawn": b["drawn"], "ready": b["ready"], "tap": tap,
        "ttfb": b["ttfb"], "html_end": b["html_end"], "dcl": b["dcl"], "sw": b["sw"],
        "load_tasks": long_load, **net,
    }  # fmt: skip


def leaders_runs(browser, base: str, runs: int) -> tuple[list[dict], list[dict], list[str]]:
    cold, warm, problems = [], [], []
    url = f"{base}/app/leaders"
    for _ in range(runs):
        ctx = browser.new_context(viewport=VIEWPORT, has_touch=True, is_mobile=True,
                                  locale="zh-CN")  # fmt: skip
        r = ctx.request.post(f"{base}/api/auth/login",
                             data={"username": STAFF, "password": STAFF_PW})  # fmt: skip
        if r.status != 200:
            raise SystemExit(f"login: {r.status} {r.text()[:200]}")
        tab = Tab(ctx, base)
        cold.append(leaders_load(tab, url))
        # the first visit settles: every level read, offline.js done keeping
        tab.page.wait_for_function(
            "() => window.__bench.levels !== null && document.documentElement.dataset.gaOffline",
            timeout=60000,
        )
        cold[-1]["levels"] = tab.page.evaluate("() => window.__bench.levels")
        page2 = leaders_load(tab, url)  # the same tablet again: its cache
        warm.append(page2)
        problems += [f"outside: {u}" for u in tab.outside] + [f"console: {e}" for e in tab.errors]
        ctx.close()
    return cold, warm, problems


def map_runs(browser, base: str, runs: int) -> list[dict]:
    out = []
    for _ in range(runs):
        ctx = browser.new_context(viewport=VIEWPORT, has_touch=True, is_mobile=True,
                                  locale="zh-CN")  # fmt: skip
        ctx.request.post(f"{base}/api/auth/login", data={"username": ADMIN, "password": ADMIN_PW})
        tab = Tab(ctx, base)
        t = time.perf_counter()
        resp = tab.page.goto(f"{base}/map", wait_until="load", timeout=120000)
        if resp is None or resp.status != 200:
            raise SystemExit(f"/map: {resp and resp.status}")
        tab.page.wait_for_function(
            "() => new Promise(r => requestAnimationFrame(() => setTimeout(() => r(true), 0)))"
        )
        loaded = (time.perf_counter() - t) * 1000
        info = tab.page.evaluate(
            "() => { const map = Object.values(window).find(v => v instanceof L.Map);"
            " let n = 0; for (const v of Object.values(window)) { if (!(v instanceof L.GeoJSON))"
            " continue; v.eachLayer(l => { if (l.feature && l.feature.geometry &&"
            " /Polygon/.test(l.feature.geometry.type)) n += 1; }); }"
            " return {polygons: n, zoom: map.getZoom(), canvas: !!document.querySelector("
            "'.leaflet-overlay-pane canvas')}; }"
        )
        res = tab.page.evaluate(MAP_SEQUENCE)
        during = [d for s, d in res["tasks"] if s >= res["t0"]]
        at_load = [d for s, d in res["tasks"] if s < res["t0"]]
        net = tab.network()
        tiles = sum(1 for r in net["rows"] if "/api/tiles/" in r.get("url", ""))
        out.append({"during": during, "at_load": at_load, "loaded_ms": loaded, "tiles": tiles,
                    "html": max((r["body"] for r in net["rows"] if r.get("url", "").endswith(
                        "/map")), default=0), "steps": res["steps"], **info,
                    "problems": tab.outside + tab.errors})  # fmt: skip
        ctx.close()
    return out


# --- the server alone ---------------------------------------------------------------------


def server_answer(base: str, n: int = 5) -> dict[str, Any]:
    """/app/leaders from httpx: the first request after a fresh login, and a repeat."""
    first, again, body = [], [], b""
    for _ in range(n):
        with httpx.Client(base_url=base, timeout=60) as c:
            c.post("/api/auth/login", json={"username": STAFF, "password": STAFF_PW})
            for out in (first, again):
                t = time.perf_counter()
                r = c.get("/app/leaders")
                out.append((time.perf_counter() - t) * 1000)
                body = r.content
    return {"first": statistics.median(first), "again": statistics.median(again),
            "min": min(again), "bytes": len(body), "gzip": len(gzip.compress(body, 9)),
            "html": body.decode()}  # fmt: skip


def html_shares(html: str) -> list[tuple[str, int]]:
    """Bytes of the page's parts: each inline GeoJSON layer, the shell's texts, the rest."""
    parts: list[tuple[str, int]] = []
    rest = len(html.encode())
    for m in re.finditer(r"(geo_json_\w+)_add\((\{.*?\})\);\n", html, re.S):
        data = m.group(2)
        try:
            feats = json.loads(data).get("features", [])
        except ValueError:
            feats = []
        level = next((f["properties"].get("level") for f in feats if f.get("properties")), None)
        name = level or ("streets" if feats and "highway" in feats[0]["properties"] else "?")
        size = len(data.encode())
        parts.append((f"{name} ({len(feats)} features)", size))
        rest -= size
    parts.append(("everything else (markup, shell, Folium's script)", rest))
    return parts


def profile_request(url: str, n: int = 5) -> list[tuple[str, float]]:
    """Median ms of the route's parts over ``n`` requests in process (timers wrapped around
    the functions the route calls; the handler runs in a worker thread, out of cProfile's
    reach). Nested: ``_community`` includes two of the feature_page calls."""
    from fastapi.testclient import TestClient

    import api.routes.leaders_page as route
    import gis.areas
    import gis.query
    from api.app import create_app
    from gis.settings import Settings

    spent: dict[str, list[float]] = {}

    def timed(owner: Any, name: str, label: str) -> None:
        inner = getattr(owner, name)

        def wrapper(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return inner(*a, **kw)
            finally:
                spent.setdefault(label, []).append(time.perf_counter() - t)

        setattr(owner, name, wrapper)
        undo.append((owner, name, inner))

    undo: list[tuple[Any, str, Any]] = []
    timed(gis.areas, "feature_page", "areas.feature_page (SQL + json.loads), all calls")
    timed(gis.query, "layer_frame", "query.layer_frame (walk network to GeoDataFrame)")
    timed(route, "_community", "_community (find the user's community)")
    timed(route, "leaders_map", "layers.leaders.leaders_map (Folium objects)")
    timed(route, "shell_for", "api.shell.shell_for")
    timed(route, "render_offline", "render_offline (Folium renders the HTML)")
    per_request: list[dict[str, float]] = []
    totals = []
    try:
        with TestClient(create_app(Settings(database_url=url))) as c:
            c.post("/api/auth/login", json={"username": STAFF, "password": STAFF_PW})
            c.get("/app/leaders")
            for _ in range(n):
                spent.clear()
                t = time.perf_counter()
                c.get("/app/leaders")
                totals.append(time.perf_counter() - t)
                per_request.append({k: sum(v) for k, v in spent.items()})
    finally:
        for owner, name, inner in undo:
            setattr(owner, name, inner)
    rows = [("whole request in process", statistics.median(totals))]
    for label in per_request[0]:
        rows.append((label, statistics.median(r.get(label, 0.0) for r in per_request)))
    return rows


TRACE_CATEGORIES = ["devtools.timeline", "v8.execute", "disabled-by-default-devtools.timeline"]


def trace_breakdown(browser, base: str) -> list[tuple[str, float]]:
    """One cold load under Chromium's tracer: main-thread time by kind of work until drawn."""
    ctx = browser.new_context(viewport=VIEWPORT, has_touch=True, is_mobile=True, locale="zh-CN")
    ctx.request.post(f"{base}/api/auth/login", data={"username": STAFF, "password": STAFF_PW})
    tab = Tab(ctx, base)
    browser.start_tracing(page=tab.page, categories=TRACE_CATEGORIES)
    tab.page.goto(f"{base}/app/leaders", wait_until="commit")
    tab.page.wait_for_function("() => window.__bench && window.__bench.drawn !== null")
    events = json.loads(browser.stop_tracing())
    ctx.close()
    events = events.get("traceEvents", events) if isinstance(events, dict) else events
    main = {
        (e["pid"], e["tid"])
        for e in events
        if e.get("name") == "thread_name" and e["args"].get("name") == "CrRendererMain"
    }
    kinds = {"EvaluateScript": "script: evaluate (compile + run top level)",
             "v8.compile": "script: compile", "FunctionCall": "script: callbacks (timers, events)",
             "ParseHTML": "parse HTML", "UpdateLayoutTree": "style", "Layout": "layout",
             "Paint": "paint", "PrePaint": "paint", "Layerize": "paint",
             "ParseAuthorStyleSheet": "parse CSS", "MajorGC": "GC", "MinorGC": "GC",
             "V8.GC_MARK_COMPACTOR": "GC", "RunMicrotasks": "script: microtasks"}  # fmt: skip
    out: dict[str, float] = {}
    by_url: dict[str, float] = {}
    top = [e for e in events if (e.get("pid"), e.get("tid")) in main and e.get("ph") == "X"
           and e.get("name") in kinds]  # fmt: skip
    # only outermost events of these kinds (a compile inside an evaluate is not counted twice)
    top.sort(key=lambda e: (e["ts"], -e.get("dur", 0)))
    end = 0
    for e in top:
        if e["ts"] < end:
            continue
        end = e["ts"] + e.get("dur", 0)
        k = kinds[e["name"]]
        out[k] = out.get(k, 0.0) + e.get("dur", 0) / 1000
        if k.startswith("script: evaluate"):
            u = (e["args"].get("data") or {}).get("url", "") or "inline"
            u = u.split("127.0.0.1", 1)[-1].split("/", 1)[-1]
            by_url[u] = by_url.get(u, 0.0) + e.get("dur", 0) / 1000
    rows = sorted(out.items(), key=lambda kv: -kv[1])
    worst = sorted(by_url.items(), key=lambda kv: -kv[1])[:6]
    rows += [(f"  evaluate {u[:60]}", ms) for u, ms in worst]
    return rows


# --- printing -----------------------------------------------------------------------------


def _q(values: list[float], q: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _ms(values: list[float]) -> str:
    return f"median {statistics.median(values):7.0f} ms, p95 {_q(values, 95):7.0f} ms"


def _mb(n: float) -> str:
    return f"{n / 1e6:.3f} MB"


def report_leaders(label: str, cold: list[dict], warm: list[dict]) -> None:
    print(f"\n/app/leaders — {label}: {len(cold)} cold runs (fresh context), {len(warm)} warm")
    for name, runs in (("cold", cold), ("warm", warm)):
        for key, what in (("interactive", "interactive = drawn + tap"),
                          ("ttfb", "  HTML first byte"), ("html_end", "  HTML last byte"),
                          ("dcl", "  DOMContentLoaded end"),
                          ("drawn", "  drawn (ready + a frame)"),
                          ("tap", "  tap -> panel with seat")):  # fmt: skip
            print(f"  {name:4} {what:28} {_ms([r[key] for r in runs])}")
        if all(r.get("levels") is not None for r in runs):
            print(f"  {name:4} {'  all levels in (after drawn)':28} "
                  f"{_ms([r['levels'] for r in runs])}")  # fmt: skip
        lt = [max(r["load_tasks"], default=0) for r in runs]
        print(f"  {name:4} {'  longest task before drawn':28} median {statistics.median(lt):7.0f}"
              f" ms; bytes on the wire {_mb(statistics.median([r['wire'] for r in runs]))}, "
              f"bodies {_mb(statistics.median([r['body'] for r in runs]))}, "
              f"{runs[0]['requests']} requests from {runs[0]['from']}, "
              f"service worker controls the page: {runs[-1]['sw']}")  # fmt: skip


def biggest(rows: list[dict], n: int = 6) -> None:
    for r in sorted(rows, key=lambda r: -r["wire"])[:n]:
        path = r.get("url", "?").split("127.0.0.1", 1)[-1].split("/", 1)[-1]
        enc = r.get("enc") or "identity"
        print(f"    {r['wire'] / 1e3:9.1f} kB wire {r['body'] / 1e3:9.1f} kB body  {enc:8} /{path}")


def verdict(goal: str, measured: str, ratio: float) -> str:
    return f"  {goal:58} {measured:>20} {ratio:6.2f}  {'met' if ratio <= 1 else 'NOT met'}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7, help="cold (and warm) loads of the page")
    ap.add_argument("--map-runs", type=int, default=3)
    ap.add_argument("--only", choices=("leaders", "map"))
    ap.add_argument("--no-gzip", action="store_true", help="skip the GZipMiddleware runs")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    server = db.resolve_url(get_settings())
    exe = shutil.which("chromium")
    if exe is None:
        raise SystemExit("chromium is not installed; run scripts/bootstrap.sh")
    table: list[str] = []
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, "
          f"{os.cpu_count()} cores")  # fmt: skip
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=FLAGS)
        print(f"Chromium {browser.version}, Playwright, flags {' '.join(FLAGS)}")
        if args.only in (None, "leaders"):
            table += bench_leaders(browser, server, args)
        if args.only in (None, "map"):
            table += bench_map(browser, server, args)
        browser.close()
    load = os.getloadavg()
    print(f"\nload average at end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(f"\n  {'goal':58} {'measured':>20} {'ratio':>6}")
    print("\n".join(table))


def bench_leaders(browser, server: str, args) -> list[str]:
    t = time.perf_counter()
    url, info = prepare_nanjing(server)
    print(f"\nNanjing: community {info['code']} (id {info['id']}), {info['households']:,} "
          f"households, {info['buildings']} buildings, {info['groups']} residents' groups "
          f"(imported and delineated in {time.perf_counter() - t:.1f} s)")  # fmt: skip
    try:
        with serve(url) as base:
            cold, warm, problems = leaders_runs(browser, base, args.runs)
            alone = server_answer(base)
            trace = trace_breakdown(browser, base)
        report_leaders("as the app is (no compression)", cold, warm)
        print("  largest answers of the first cold load:")
        biggest(cold[0]["rows"])
        print(
            f"  server alone (httpx, 5 fresh logins): /app/leaders first after login median "
            f"{alone['first']:.0f} ms, again {alone['again']:.0f} ms (min {alone['min']:.0f});"
            f" {alone['bytes'] / 1e3:.0f} kB HTML, {alone['gzip'] / 1e3:.0f} kB gzipped"
        )
        print("  the HTML's parts:")
        for name, size in html_shares(alone["html"]):
            print(f"    {size / 1e3:9.1f} kB  {name}")
        print("  where the server's time goes (one request in process, median of 5):")
        for name, sec in profile_request(url):
            print(f"    {sec * 1000:8.0f} ms  {name}")
        print("  main thread until drawn, one cold load (Chromium trace, outermost events):")
        for name, ms in trace:
            print(f"    {ms:8.0f} ms  {name}")
        gz = None
        if not args.no_gzip:
            with serve(url, "bench.pages:gzip_app") as base:
                gz_cold, gz_warm, gz_problems = leaders_runs(browser, base, args.runs)
            problems += gz_problems
            report_leaders("the app + GZipMiddleware (bench only)", gz_cold, gz_warm)
            biggest(gz_cold[0]["rows"], 4)
            gz = gz_cold
        print(f"  requests leaving 127.0.0.1 / console errors: {problems or 'none'}")
    finally:
        _drop(server, url)
    ci = [r["interactive"] for r in cold]
    wi = [r["interactive"] for r in warm]
    wire = statistics.median([r["wire"] for r in cold])
    src = warm[-1]["from"]
    how = "+".join(sorted(k for k in src if k != "net")) or "no cache"
    rows = [
        verdict("leaders interactive, cold, p95 <= 1.5 s", f"{_q(ci, 95):.0f} ms",
                _q(ci, 95) / GOALS["cold_ms"]),
        verdict(f"leaders interactive, warm ({how}), p95 <= 0.5 s",
                f"{_q(wi, 95):.0f} ms", _q(wi, 95) / GOALS["warm_ms"]),
        verdict("leaders first load <= 1.5 MB (wire, as is)", _mb(wire), wire / GOALS["bytes"]),
    ]  # fmt: skip
    if gz:
        gw = statistics.median([r["wire"] for r in gz])
        gi = [r["interactive"] for r in gz]
        rows.append(verdict("  same with GZipMiddleware (not in the app)", _mb(gw),
                            gw / GOALS["bytes"]))  # fmt: skip
        rows.append(verdict("  cold p95 with GZipMiddleware (not in the app)",
                            f"{_q(gi, 95):.0f} ms", _q(gi, 95) / GOALS["cold_ms"]))  # fmt: skip
    return rows


def bench_map(browser, server: str, args) -> list[str]:
    t = time.perf_counter()
    url, n = prepare_porto(server)
    print(f"\nPorto: {n:,} buildings (imported in {time.perf_counter() - t:.1f} s)")
    rows = []
    try:
        # Above GRIDATLAS_VECTOR_TILES_ABOVE (3,000) buildings, as here, the buildings and the
        # walk network come as vector tiles: what is embedded is counted from the page.
        for label, env in (("as configured (buildings and walk network as vector tiles)",
                            {}),):  # fmt: skip
            with serve(url, **env) as base:
                res = map_runs(browser, base, args.map_runs)
            during = [d for r in res for d in r["during"]]
            worst = max(during, default=0.0)
            r0 = res[0]
            embedded = f"{r0['polygons']:,}"
            print(f"\n/map — {label}: {args.map_runs} runs, {embedded} buildings "
                  f"embedded, canvas renderer: {r0['canvas']}, start zoom {r0['zoom']}, "
                  f"HTML {r0['html'] / 1e6:.1f} MB, vector tile requests: "
                  f"{r0['tiles']}")  # fmt: skip
            print(
                f"  load: {_ms([r['loaded_ms'] for r in res])} to 'load' + a frame; longest "
                f"task while loading {max(max(r['at_load'], default=0) for r in res):.0f} ms"
            )
            for i, r in enumerate(res):
                d = r["during"]
                steps = ", ".join(f"{s[0]} {s[1]:.0f}" for s in r["steps"])
                print(f"  run {i + 1}: {len(d)} long tasks, {sum(x > 200 for x in d)} over 200 ms,"
                      f" longest {max(d, default=0):.0f} ms; step ms: {steps}")  # fmt: skip
            over50 = statistics.median([sum(x > 50 for x in r["during"]) for r in res])
            over200 = statistics.median([sum(x > 200 for x in r["during"]) for r in res])
            print(f"  median per run: {over50:.0f} tasks over 50 ms, {over200:.0f} over 200 ms")
            problems = [p for r in res for p in r["problems"]]
            print(f"  requests leaving 127.0.0.1 / console errors: {problems or 'none'}")
            rows.append(verdict(f"/map pan+zoom, no task > 200 ms, {n:,} bldgs as tiles",
                                f"{worst:.0f} ms", worst / GOALS["task_ms"]))  # fmt: skip
    finally:
        _drop(server, url)
    return rows


if __name__ == "__main__":
    main()
