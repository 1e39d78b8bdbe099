"""Benchmark: our vector tiles (/api/tiles) next to tipg's, same database, same run.

    .venv/bin/python bench/tiles.py [--repeat 5] [--samples 200] [--only porto] [--keep]

For each data set (porto-central, nanjing-central) it imports the file into a fresh
database (as bench/import_osm.py does), adds an admin login, then serves on three loopback
ports: the app twice (uvicorn, one worker each, the app role and the scope function as for
any user), once with its tile cache off (``GRIDATLAS_TILE_CACHE_TILES=0``: every tile cut
again, "cut") and once with it on ("served": what a user gets while panning, a tile kept
until its data changes), and tipg (``tipg.main:app``, one worker, the database owner;
buildings and walk network, the same properties, MVT buffer 64 like ours; tipg has no
cache). Every building tile, then every walk-network tile, at zooms 14, 15 and 16 over the
buildings' bounds is fetched from the three in turn, tile by tile (one request at a time,
httpx keeping the connections), in shuffled passes: at least ``--repeat`` passes and
``--samples`` requests per zoom (z14 has only a few tiles). Before the passes, one pass
over the zoom's tiles fills the cache of "served" (its first requests are cuts, like
"cut"'s). No If-None-Match is sent: every answer carries the tile's bytes.
All answer gzip (httpx asks for it; ours at level 1, tipg through its compression
middleware, level 6). It prints p50/p95 per zoom for the three and the ratios to tipg.
Goal: p95 <= 30 ms.

What differs by design: ours leaves out features under a pixel at the tile's zoom (tipg
sends them), and reads the stored Web Mercator copy ``geom_3857`` (tipg transforms
``geom`` per row, as it would on any table); the bytes columns show the difference.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Without a configured key, a fixed one of the bench's own (as bench/ledger_import.py):
# these throw-away databases hold no person, but the app refuses to start without a key.
BENCH_KEY = "3c9e1a7f5b2d8e0c4a6f1b3d9e7c5a2f8b0d6e4c1a9f3b7d5e2c8a0f6b4d1e9c"
if not os.environ.get("GRIDATLAS_SECRET_KEY") and not (ROOT / "var" / "secret.key").exists():
    os.environ["GRIDATLAS_SECRET_KEY"] = BENCH_KEY

from bench.import_osm import _drop, _migrated_database  # noqa: E402
from gis import db, security  # noqa: E402
from gis.io.pipeline import import_file  # noqa: E402
from gis.settings import get_settings  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "osm"
FILES = {"porto": DATA / "porto-central.osm.pbf", "nanjing": DATA / "nanjing-central.osm"}
ZOOMS = (14, 15, 16)
# ours, tipg's collection, the properties both send
LAYERS = (
    ("buildings", "public.building", "id,households"),
    ("walk_edges", "public.walk_edge", "id,highway,name"),
)
USER, PASSWORD = "bench_admin", "bench-admin-password-2026"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tiles(bounds: tuple[float, float, float, float], z: int) -> list[tuple[int, int, int]]:
    west, south, east, north = bounds
    n = 2**z

    def xy(lon: float, lat: float) -> tuple[int, int]:
        y = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
        return int((lon + 180) / 360 * n), int(y)

    x0, y0 = xy(west, north)
    x1, y1 = xy(east, south)
    return [(z, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]


def prepare(server: str, path: Path) -> tuple[str, tuple[float, float, float, float], int]:
    """A fresh database holding ``path``, an admin login; its bounds and building count."""
    url = _migrated_database(server)
    eng = db.create_engine(url, poolclass=sa.NullPool)
    import_file(eng, path)
    with eng.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO app_user (username, role, password_hash) VALUES (:u, 'admin', :p)"
            ),
            {"u": USER, "p": security.hash_password(PASSWORD)},
        )
        row = conn.execute(
            sa.text(
                "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e), n FROM "
                "(SELECT ST_Extent(geom) e, count(*) n FROM building) q"
            )
        ).one()
        conn.execute(sa.text("ANALYZE"))
    eng.dispose()
    return url, (row[0], row[1], row[2], row[3]), int(row[4])


def _wait(port: int, path: str, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start")
        time.sleep(0.3)


def _uvicorn(target: str, port: int, env: dict[str, str], *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", target, *extra, "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--no-access-log"],
        cwd=ROOT, env={**os.environ, **env}, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def serve_ours(url: str, *, cache: bool) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    env = {"GRIDATLAS_DATABASE_URL": url, "GRIDATLAS_TILE_CACHE_TILES": "20000" if cache else "0"}
    proc = _uvicorn("api.app:create_app", port, env, "--factory")
    _wait(port, "/api/health", proc, "the app")
    return proc, port


def serve_tipg(url: str) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    u = db.make_url(url)
    env = {
        "DATABASE_URL": u.set(drivername="postgresql").render_as_string(hide_password=False),
        "TIPG_DB_SCHEMAS": '["public"]',
        "TIPG_DB_TABLES": '["public.building", "public.walk_edge"]',
        "TIPG_TILE_BUFFER": "64",
        "TIPG_TILE_RESOLUTION": "4096",
        "TIPG_DB_SPATIAL_EXTENT": "false",
        "TIPG_DB_DATETIME_EXTENT": "false",
    }
    proc = _uvicorn("tipg.main:app", port, env)
    _wait(port, "/collections", proc, "tipg")
    return proc, port


def _get(client: httpx.Client, path: str) -> tuple[float, int]:
    t = time.perf_counter()
    r = client.get(path)
    ms = (time.perf_counter() - t) * 1000
    if r.status_code != 200:
        raise SystemExit(f"{client.base_url}{path}: {r.status_code} {r.text[:200]}")
    return ms, len(r.content)


def measure(
    clients: list[httpx.Client], rows: list[tuple[str, ...]], passes: int
) -> tuple[list[list[float]], list[int]]:
    """Milliseconds per request for each server, and the bytes of one pass of each.

    The servers are asked in turn, tile by tile (who goes first rotates), so a burst of
    load from elsewhere on the machine falls on all alike. ``rows`` holds one path per
    server for each tile.
    """
    times: list[list[float]] = [[] for _ in clients]
    sizes = [0 for _ in clients]
    for row in rows[:5]:  # warm-up: plans, pools
        for client, path in zip(clients, row, strict=True):
            _get(client, path)
    for i in range(passes):
        order = list(rows)
        random.Random(i).shuffle(order)
        for k, row in enumerate(order):
            turn = (i + k) % len(clients)
            for j in (*range(turn, len(clients)), *range(turn)):
                ms, size = _get(clients[j], row[j])
                times[j].append(ms)
                if i == 0:
                    sizes[j] += size
    return times, sizes


def _p(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[q - 1]
        if len(values) > 1
        else values[0]
    )


def run(server: str, name: str, path: Path, repeat: int, samples: int, keep: bool) -> list[str]:
    t0 = time.perf_counter()
    url, bounds, n = prepare(server, path)
    print(f"{name}: {n:,} buildings, bounds {', '.join(f'{v:.4f}' for v in bounds)} "
          f"(imported in {time.perf_counter() - t0:.1f} s)")  # fmt: skip
    cut, cut_port = serve_ours(url, cache=False)
    served, served_port = serve_ours(url, cache=True)
    peer, peer_port = serve_tipg(url)
    lines = []
    try:
        token = httpx.post(
            f"http://127.0.0.1:{cut_port}/api/auth/login",
            json={"username": USER, "password": PASSWORD},
        ).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        for (layer, collection, props), z in ((lay, z) for lay in LAYERS for z in ZOOMS):
            tiles = _tiles(bounds, z)
            ours_paths = [f"/api/tiles/{layer}/{z}/{x}/{y}.mvt" for z, x, y in tiles]
            peer_paths = [
                f"/collections/{collection}/tiles/WebMercatorQuad/{z}/{x}/{y}?properties={props}"
                for z, x, y in tiles
            ]
            passes = max(repeat, math.ceil(samples / len(tiles)))
            base = "http://127.0.0.1:"
            with (
                httpx.Client(base_url=f"{base}{cut_port}", headers=auth, timeout=30) as c1,
                httpx.Client(base_url=f"{base}{served_port}", headers=auth, timeout=30) as c2,
                httpx.Client(base_url=f"{base}{peer_port}", timeout=30) as c3,
            ):
                for path in ours_paths:  # fill the cache of "served"
                    _get(c2, path)
                (mine, kept, theirs), (mine_b, _, theirs_b) = measure(
                    [c1, c2, c3], list(zip(ours_paths, ours_paths, peer_paths, strict=True)), passes
                )
            p95s = [_p(v, 95) for v in (mine, kept, theirs)]
            lines.append(
                f"{name:<8}{layer:<11}{z:>4}{len(tiles):>6}"
                + "".join(f"{_p(v, 50):>8.1f}{_p(v, 95):>8.1f}" for v in (mine, kept, theirs))
                + f"{p95s[0] / p95s[2]:>7.2f}x{p95s[1] / p95s[2]:>7.2f}x"
                f"{mine_b / 1024:>8.0f}{theirs_b / 1024:>8.0f}"
                "  " + " / ".join("met" if p <= 30 else "NOT met" for p in p95s[1::-1])
            )
            print("  " + lines[-1])
    finally:
        for proc in (cut, served, peer):
            proc.terminate()
            proc.wait(timeout=30)
        if not keep:
            _drop(server, url)
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5, help="passes over every tile (at least)")
    ap.add_argument("--samples", type=int, default=200, help="requests per zoom (at least)")
    ap.add_argument("--only", choices=sorted(FILES), action="append")
    ap.add_argument("--keep", action="store_true", help="keep the bench databases")
    args = ap.parse_args()
    server = db.resolve_url(get_settings())
    rows = []
    for name in args.only or ["porto", "nanjing"]:
        rows += run(server, name, FILES[name], args.repeat, args.samples, args.keep)
    print()
    print(
        f"at least {args.repeat} passes and {args.samples} requests per zoom and server, one at "
        "a time; ms on the client, loopback"
    )
    print(
        f"{'data':<8}{'layer':<11}{'z':>4}{'tiles':>6}{'cut p50':>8}{'p95':>8}"
        f"{'srv p50':>8}{'p95':>8}{'tipg p50':>8}{'p95':>8}{'cut/tp':>8}{'srv/tp':>8}"
        f"{'ours KiB':>8}{'tipg KiB':>8}  goal p95 <= 30 ms: served / cut"
    )
    print(
        "(cut: our tiles cut for every request; srv: served, from the cache while the data is "
        "unchanged; ratios of p95 to tipg's; KiB: one pass over the zoom's tiles)"
    )
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"load average at the end (1, 5, 15 min): {load} on {os.cpu_count()} cores")
    for line in rows:
        print(line)


if __name__ == "__main__":
    main()
