"""Benchmark: walking reach (nearest facility of every category, every building) vs peers.

    .venv/bin/python bench/reach.py [--file PATH ...] [--max-walk-m 2000]

For each file: import it into a fresh database on the same server, build the attached walk
graph once, then run, on that same graph and for the same categories capped at the same
distance:

* ours — scipy ``dijkstra(min_only=True, limit=…)``, one multi-source search per category;
* networkx — ``multi_source_dijkstra_path_length`` with a cutoff, per category;
* pandana — ``Network`` + ``precompute`` + ``set_pois``/``nearest_pois`` per category;
* pgRouting — ``pgr_drivingDistance`` from all facilities of a category (equicost off),
  ``min`` per node, in SQL on a table holding the same graph;
* networkx ``ego_graph`` per facility, the OSMnx isochrone way (coverage only; on small
  files, where it finishes in reasonable time).

Every peer's distances are compared with ours at the buildings; the table shows the largest
difference. Times are single runs (set-up and compute apart), in the same process.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gis import db  # noqa: E402
from gis.io.pipeline import import_file  # noqa: E402
from gis.reach.compute import nearest_facilities  # noqa: E402
from gis.reach.service import (  # noqa: E402
    build_graph,
    load_inputs,
    reach_all,
    resolve_categories,
    store_reach,
)
from gis.settings import get_settings  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "osm"
DEFAULT_FILES = [ROOT / "data" / "osm" / "nanjing-central.osm", SHARED / "porto-central.osm.pbf"]
EGO_GRAPH_MAX_FACILITIES = 400
PGR_BATCH = 100


def _fresh_db(server: str) -> str:
    name = f"ga_bench_reach_{uuid.uuid4().hex[:8]}"
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    db.ensure_database(url)
    db.migrate(url)
    return url


def _drop(server: str, url: str) -> None:
    admin = db.create_engine(
        make_url(server).set(database="postgres").render_as_string(False),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.NullPool,
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


def _max_diff(ours: np.ndarray, theirs: np.ndarray, cap: float = 2000.0) -> float:
    """Largest difference where both found a facility (a disagreement on whether one was
    found within the cap counts as the distance found)."""
    theirs = np.where(theirs <= cap, theirs, np.inf)
    both = np.isfinite(ours) & np.isfinite(theirs)
    one = np.isfinite(ours) ^ np.isfinite(theirs)
    worst = float(np.abs(ours[both] - theirs[both]).max()) if both.any() else 0.0
    if one.any():
        found = np.where(np.isfinite(ours), ours, theirs)[one]
        worst = max(worst, float(found.max() if len(found) else 0.0))
    return worst


def time_what_if(inputs, graph, cats: list[str], n: int = 25) -> list[float]:
    """Milliseconds per what-if at random building points (baselines computed first)."""
    from gis.crs import metric_to_lonlat
    from gis.reach.model import ReachModel, what_if

    model = ReachModel(inputs=inputs, graph=graph)
    rng = np.random.default_rng(0)
    category = cats[0]
    model.baseline_m(category)
    out = []
    for i in rng.choice(len(inputs.building_ids), size=n, replace=False):
        lon, lat = metric_to_lonlat(*inputs.building_xy[i], inputs.epsg)
        t = time.perf_counter()
        what_if(model, lon, lat, category, 800)
        out.append((time.perf_counter() - t) * 1000)
    return out


def run_file(
    server: str,
    path: Path,
    max_walk_m: float,
    only_ours: bool = False,
    n_categories: int = 99,
    skip_pandana: bool = False,
) -> None:
    import networkx as nx
    import pandana
    import pandas as pd

    url = _fresh_db(server)
    eng = db.create_engine(url, poolclass=sa.NullPool)
    try:
        t_import = time.perf_counter()
        import_file(eng, path)
        print(f"\n{path.name}: imported in {time.perf_counter() - t_import:.1f} s (not counted)")
        cats = resolve_categories(None)[:n_categories]
        with eng.connect() as conn:
            t0 = time.perf_counter()
            inputs = load_inputs(conn)
            t1 = time.perf_counter()
            graph = build_graph(inputs)
            t2 = time.perf_counter()
        n_b = len(inputs.building_ids)
        f_points = n_b + np.arange(len(inputs.facility_ids))
        t3 = time.perf_counter()
        ours = reach_all(inputs, graph, cats, max_walk_m)
        t_ours = time.perf_counter() - t3
        # peers know nothing of "a facility inside a building is 0 m away": compare without
        raw = nearest_facilities(
            graph,
            np.arange(n_b),
            f_points,
            inputs.facility_ids,
            inputs.facility_categories,
            cats,
            max_walk_m,
        )
        used = [
            c
            for c in range(len(cats))
            if np.isfinite(ours.walk_m[c]).any() or (~np.isnan(ours.walk_m[c])).any()
        ]
        b_nodes = graph.point_node[:n_b]
        b_extra = graph.point_extra_m[:n_b]  # buildings are off the graph: node + stub
        f_nodes = graph.point_node[f_points]
        attached = graph.point_edge[f_points] >= 0
        sources = {
            c: np.unique(
                f_nodes[
                    attached & np.array([cats[c] in fc for fc in inputs.facility_categories], bool)
                ]
            )
            for c in used
        }
        ours_m = {c: np.where(np.isfinite(raw.walk_m[c]), raw.walk_m[c], np.inf) for c in used}
        print(
            f"\n{path.name}: {n_b:,} buildings, {len(inputs.facility_ids):,} facilities, "
            f"{graph.n_street:,} street nodes, graph of {graph.n_nodes:,} nodes / "
            f"{graph.matrix.nnz // 2:,} edges; {len(used)} categories with facilities; "
            f"cap {max_walk_m:.0f} m"
        )
        print(f"  ours: read from PostGIS {t1 - t0:.3f} s, attach + CSR {t2 - t1:.3f} s")
        with eng.begin() as conn:
            t4 = time.perf_counter()
            store_reach(conn, inputs, ours, 80.0)
            t_write = time.perf_counter() - t4
        peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
        print(
            f"  ours end to end: read {t1 - t0:.2f} s + attach {t2 - t1:.2f} s + compute "
            f"{t_ours:.2f} s + write (COPY) {t_write:.2f} s = "
            f"{t1 - t0 + t2 - t1 + t_ours + t_write:.2f} s; peak RSS {peak_gb:.2f} GB"
        )
        whatif_ms = time_what_if(inputs, graph, cats)
        print(
            f"  what-if (one new facility, 10 min): median {np.median(whatif_ms):.1f} ms, "
            f"max {np.max(whatif_ms):.1f} ms over {len(whatif_ms)} random points"
        )
        if only_ours:
            return
        rows = [("scipy multi-source (ours)", 0.0, t_ours, 0.0)]

        # networkx
        coo = graph.matrix.tocoo()
        keep = coo.row < coo.col
        t = time.perf_counter()
        g = nx.Graph()
        g.add_weighted_edges_from(
            zip(
                coo.row[keep].tolist(), coo.col[keep].tolist(), coo.data[keep].tolist(), strict=True
            )
        )
        setup = time.perf_counter() - t
        t = time.perf_counter()
        diff = 0.0
        results = {}
        for c in used:
            d = nx.multi_source_dijkstra_path_length(g, set(sources[c].tolist()), cutoff=max_walk_m)
            results[c] = np.array([d.get(int(n), np.inf) for n in b_nodes]) + b_extra
        elapsed = time.perf_counter() - t
        diff = max(_max_diff(ours_m[c], results[c], max_walk_m) for c in used)
        rows.append(("networkx multi-source", setup, elapsed, diff))

        if skip_pandana:
            print(
                "  pandana skipped (--skip-pandana); on the 1,000,000-building city its "
                "precompute at a 2 km cap passed 24 GB and was killed by the kernel"
            )
        else:
            # pandana
            t = time.perf_counter()
            xy = np.nan_to_num(graph.node_xy, nan=1e9)  # the "nowhere" node has no place
            nodes = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1]})
            edges = pd.DataFrame({"from": coo.row[keep], "to": coo.col[keep], "w": coo.data[keep]})
            net = pandana.Network(
                nodes["x"], nodes["y"], edges["from"], edges["to"], edges[["w"]], twoway=True
            )
            net.precompute(max_walk_m)
            setup = time.perf_counter() - t
            t = time.perf_counter()
            results = {}
            for c in used:
                src = sources[c]
                net.set_pois(f"c{c}", max_walk_m, 1, pd.Series(xy[src, 0]), pd.Series(xy[src, 1]))
                near = net.nearest_pois(max_walk_m, f"c{c}", num_pois=1)
                d = near[1].to_numpy()[b_nodes].astype(float)
                results[c] = np.where(d >= max_walk_m, np.inf, d + b_extra)
            elapsed = time.perf_counter() - t
            diff = max(_max_diff(ours_m[c], results[c], max_walk_m) for c in used)
            rows.append(("pandana nearest_pois", setup, elapsed, diff))

        # pgRouting, on the same graph in a table
        with eng.begin() as conn:
            t = time.perf_counter()
            conn.execute(
                sa.text(
                    "CREATE TABLE bench_graph (id bigint, source bigint, "
                    "target bigint, cost float8, reverse_cost float8)"
                )
            )
            raw = conn.connection.driver_connection
            with raw.cursor() as cur, cur.copy("COPY bench_graph FROM STDIN (FORMAT BINARY)") as cp:
                cp.set_types(["int8", "int8", "int8", "float8", "float8"])
                for k, (a, b, w) in enumerate(
                    zip(
                        coo.row[keep].tolist(),
                        coo.col[keep].tolist(),
                        coo.data[keep].tolist(),
                        strict=True,
                    )
                ):
                    cp.write_row((k + 1, a + 1, b + 1, w, w))
            setup = time.perf_counter() - t
            t = time.perf_counter()
            results = {}
            for c in used:
                dist = np.full(graph.n_nodes, np.inf)
                # in batches: all of Porto's shops at once exceed pgRouting's memory limit
                for k in range(0, len(sources[c]), PGR_BATCH):
                    got = conn.execute(
                        sa.text(
                            "SELECT node - 1, min(agg_cost) FROM pgr_drivingDistance("
                            "'SELECT id, source, target, cost, reverse_cost FROM bench_graph', "
                            "CAST(:src AS bigint[]), :cap, directed => false, equicost => false) "
                            "GROUP BY node"
                        ),
                        {"src": (sources[c][k : k + PGR_BATCH] + 1).tolist(), "cap": max_walk_m},
                    ).all()
                    if got:
                        idx, val = (np.array(v) for v in zip(*got, strict=True))
                        dist[idx] = np.minimum(dist[idx], val)
                results[c] = dist[b_nodes] + b_extra
            elapsed = time.perf_counter() - t
        diff = max(_max_diff(ours_m[c], results[c], max_walk_m) for c in used)
        rows.append(("pgRouting pgr_drivingDistance", setup, elapsed, diff))

        # ego_graph per facility (OSMnx isochrones): coverage within 800 m only
        n_fac = int(attached.sum())
        if n_fac <= EGO_GRAPH_MAX_FACILITIES:
            t = time.perf_counter()
            covered = {c: set() for c in used}
            for j in np.flatnonzero(attached):
                node = int(f_nodes[j])
                reach = set(nx.ego_graph(g, node, radius=800, distance="weight").nodes)
                for c in used:
                    if cats[c] in inputs.facility_categories[j]:
                        covered[c] |= reach
            elapsed = time.perf_counter() - t
            # ego_graph knows nodes, not stubs: compare on the buildings' street points
            mismatch = sum(
                int(((ours_m[c] - b_extra <= 800) != np.isin(b_nodes, list(covered[c]))).sum())
                for c in used
            )
            rows.append((f"networkx ego_graph x{n_fac} (800 m)", 0.0, elapsed, float(mismatch)))
        else:
            print(f"  ego_graph skipped: {n_fac:,} facilities (> {EGO_GRAPH_MAX_FACILITIES})")

        print(f"  {'method':<36}{'set-up s':>10}{'compute s':>11}{'vs ours':>10}{'max |Δ| m':>12}")
        for name, setup_s, compute_s, d in rows:
            ratio = compute_s / t_ours if t_ours else float("nan")
            diff_s = f"{int(d)} bldg" if name.startswith("networkx ego") else f"{d:.4f}"
            print(f"  {name:<36}{setup_s:>10.3f}{compute_s:>11.3f}{ratio:>9.1f}x{diff_s:>12}")
    finally:
        eng.dispose()
        _drop(server, url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, action="append")
    parser.add_argument("--max-walk-m", type=float, default=2000.0)
    parser.add_argument(
        "--only-ours", action="store_true", help="skip the peers (for the million-building city)"
    )
    parser.add_argument(
        "--categories", type=int, default=99, help="use the first N categories of the mapping"
    )
    parser.add_argument(
        "--skip-pandana",
        action="store_true",
        help="leave pandana out (its precompute does not fit in 24 GB at 1,000,000 buildings)",
    )
    parser.add_argument(
        "--synth",
        type=int,
        action="append",
        metavar="BUILDINGS",
        help="also a synthetic city of this many buildings (gridatlas synth)",
    )
    args = parser.parse_args()
    server = db.resolve_url(get_settings())
    files = list(args.file or ([] if args.synth else [p for p in DEFAULT_FILES if p.exists()]))
    for n in args.synth or []:
        from gis.synth import write_city

        out = ROOT / "var" / f"bench-synth-{n}.gpkg"
        out.parent.mkdir(exist_ok=True)
        print(write_city(out, buildings=n, seed=1))
        files.append(out)
    for path in files:
        run_file(server, path, args.max_walk_m, args.only_ours, args.categories, args.skip_pandana)


if __name__ == "__main__":
    main()
