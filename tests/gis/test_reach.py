"""Walking reach checked against an independent networkx computation on real data."""

from __future__ import annotations

import math
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import shapely
import sqlalchemy as sa

from gis.errors import InvalidInput
from gis.io.pipeline import import_file
from gis.reach.coverage import coverage
from gis.reach.service import compute_and_store, load_inputs
from tests.conftest import NANJING, SHANGHAI


def independent_graph(inputs) -> tuple[nx.Graph, list, list]:
    """Build the attached graph again, plainly: brute-force nearest edge, split, stubs.

    Points attach to street pieces holding at least 5 % of the largest piece's nodes.
    """
    net = inputs.network
    streets = nx.Graph()
    streets.add_edges_from(zip(net.edge_u.tolist(), net.edge_v.tolist(), strict=True))
    pieces = list(nx.connected_components(streets))
    biggest = max(len(p) for p in pieces)
    big_nodes = set().union(*(p for p in pieces if len(p) >= max(2, 0.05 * biggest)))
    usable = np.array([u in big_nodes for u in net.edge_u.tolist()])
    g = nx.Graph()

    def add(a, b, w):
        w = max(w, 1e-6)
        if not g.has_edge(a, b) or g[a][b]["weight"] > w:
            g.add_edge(a, b, weight=w)

    points = list(inputs.building_xy) + list(inputs.facility_xy)
    on_edge: dict[int, list[tuple[float, str]]] = {}
    leaves = []
    for k, xy in enumerate(points):
        p = shapely.Point(xy)
        d = np.where(usable, shapely.distance(p, net.edge_geoms), np.inf)
        e = int(np.argmin(d))
        if d[e] > 1000:
            leaves.append(None)
            continue
        t = net.edge_geoms[e].project(p)
        on_edge.setdefault(e, []).append((t, f"a{k}"))
        add(f"p{k}", f"a{k}", float(d[e]))
        leaves.append(f"p{k}")
    for e in range(len(net.edge_geoms)):
        u, v = f"n{net.edge_u[e]}", f"n{net.edge_v[e]}"
        length = net.edge_geoms[e].length
        stops = sorted(on_edge.get(e, []))
        chain = [(0.0, u), *stops, (length, v)]
        for (t0, a), (t1, b) in zip(chain, chain[1:], strict=False):
            add(a, b, t1 - t0)
    n_b = len(inputs.building_xy)
    return g, leaves[:n_b], leaves[n_b:]


@pytest.fixture(scope="module")
def nanjing_reach(server_url, template_url):
    """Nanjing imported and reach computed, in a database of this module's own."""
    from gis import db
    from tests.conftest import _admin_execute, _clone

    url = _clone(server_url, template_url, "reach")
    eng = db.create_engine(url, poolclass=sa.NullPool)
    import_file(eng, NANJING)
    with eng.begin() as conn:
        run = compute_and_store(conn)
    with eng.connect() as conn:
        inputs = load_inputs(conn)
    yield eng, run, inputs
    eng.dispose()
    _admin_execute(server_url, f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def test_distances_match_networkx_on_a_thousand_pairs(nanjing_reach) -> None:
    _eng, run, inputs = nanjing_reach
    g, b_leaf, f_leaf = independent_graph(inputs)
    rng = np.random.default_rng(7)
    cats = run.result.categories
    checked = 0
    for c, category in enumerate(cats):
        sources = [
            f_leaf[j]
            for j, fc in enumerate(inputs.facility_categories)
            if category in fc and f_leaf[j] is not None
        ]
        if not sources:
            assert np.isnan(run.result.walk_m[c]).all()
            continue
        dist = nx.multi_source_dijkstra_path_length(
            g, sources, cutoff=run.result.max_walk_m, weight="weight"
        )
        component_has = {n for s in sources for n in nx.node_connected_component(g, s)}
        sample = rng.choice(len(b_leaf), size=min(120, len(b_leaf)), replace=False)
        holders = {
            int(inputs.facility_building[j])
            for j, fc in enumerate(inputs.facility_categories)
            if category in fc and inputs.facility_building[j] >= 0
        }
        for i in sample:
            ours = run.result.walk_m[c, i]
            leaf = b_leaf[i]
            if i in holders:  # the facility is in this very building
                assert ours == 0.0, (category, i)
            elif leaf in dist:
                assert ours == pytest.approx(dist[leaf], abs=0.01), (category, i)
            elif leaf in component_has:
                assert ours == math.inf, (category, i)
            else:
                assert math.isnan(ours), (category, i)
            checked += 1
    assert checked >= 1000


def test_never_shorter_than_the_straight_line(nanjing_reach) -> None:
    _eng, run, inputs = nanjing_reach
    f_index = {int(f): k for k, f in enumerate(inputs.facility_ids)}
    for c in range(len(run.result.categories)):
        reached = np.flatnonzero(np.isfinite(run.result.walk_m[c]))
        for i in reached:
            f = f_index[int(run.result.facility[c, i])]
            if inputs.facility_building[f] == i:  # in the building itself: 0 m by rule
                assert run.result.walk_m[c, i] == 0.0
                continue
            crow = np.hypot(*(inputs.building_xy[i] - inputs.facility_xy[f]))
            assert run.result.walk_m[c, i] >= crow - 1e-6


def test_stored_rows_and_coverage_agree_with_the_result(nanjing_reach) -> None:
    eng, run, inputs = nanjing_reach
    with eng.connect() as conn:
        stored = conn.execute(
            sa.text(
                "SELECT building_id, category, walk_m, walk_s, facility_id "
                "FROM building_reach_latest WHERE category = 'shopping'"
            )
        ).all()
        cov = coverage(conn, limit_min=10)
    c = run.result.categories.index("shopping")
    by_id = {int(b): k for k, b in enumerate(inputs.building_ids)}
    assert len(stored) == len(inputs.building_ids)
    for bid, _cat, walk_m, walk_s, fac in stored:
        i = by_id[bid]
        if walk_m is None:  # NULL: no path to any shop
            assert math.isnan(run.result.walk_m[c, i])
            continue
        assert walk_m == pytest.approx(run.result.walk_m[c, i], rel=1e-6)  # stored as real
        if math.isfinite(walk_m):
            assert walk_s == pytest.approx(walk_m / 80 * 60, rel=1e-6)
            assert fac == run.result.facility[c, i]
    covered = int(inputs.households[run.result.walk_m[c] <= 800].sum())
    shop = next(x for x in cov["categories"] if x["category"] == "shopping")
    assert shop["households_covered"] == covered
    assert cov["households"] == int(inputs.households[inputs.households > 0].sum())


def test_building_on_an_island_is_unreachable_not_zero(engine, tmp_path: Path) -> None:
    lat, lon, d = 32.04, 118.78, 0.001
    osm = tmp_path / "island.osm"
    osm.write_text(f"""<?xml version='1.0' encoding='UTF-8'?>
<osm version="0.6">
 <node id="1" lat="{lat}" lon="{lon}"/><node id="2" lat="{lat}" lon="{lon + d}"/>
 <node id="3" lat="{lat + 3 * d}" lon="{lon}"/><node id="4" lat="{lat + 3 * d}" lon="{lon + d}"/>
 <node id="5" lat="{lat + 0.0001}" lon="{lon + 0.0004}">
  <tag k="shop" v="convenience"/></node>
 <way id="10"><nd ref="1"/><nd ref="2"/><tag k="highway" v="residential"/></way>
 <way id="11"><nd ref="3"/><nd ref="4"/><tag k="highway" v="footway"/></way>
 <node id="20" lat="{lat + 0.0002}" lon="{lon + 0.0002}"/>
 <node id="21" lat="{lat + 0.0002}" lon="{lon + 0.0004}"/>
 <node id="22" lat="{lat + 0.0004}" lon="{lon + 0.0004}"/>
 <node id="23" lat="{lat + 0.0004}" lon="{lon + 0.0002}"/>
 <way id="30"><nd ref="20"/><nd ref="21"/><nd ref="22"/><nd ref="23"/><nd ref="20"/>
  <tag k="building" v="apartments"/></way>
 <node id="40" lat="{lat + 3 * d - 0.0004}" lon="{lon + 0.0002}"/>
 <node id="41" lat="{lat + 3 * d - 0.0004}" lon="{lon + 0.0004}"/>
 <node id="42" lat="{lat + 3 * d - 0.0002}" lon="{lon + 0.0004}"/>
 <node id="43" lat="{lat + 3 * d - 0.0002}" lon="{lon + 0.0002}"/>
 <way id="31"><nd ref="40"/><nd ref="41"/><nd ref="42"/><nd ref="43"/><nd ref="40"/>
  <tag k="building" v="apartments"/></way>
</osm>""")
    import_file(engine, osm)
    with engine.begin() as conn:
        compute_and_store(conn, categories=["shopping"])
        rows = dict(
            conn.execute(
                sa.text(
                    "SELECT b.source_id, r.walk_m FROM building_reach_latest r "
                    "JOIN building b ON b.id = r.building_id"
                )
            ).all()
        )
    assert rows["w31"] is None  # on the island: no path at all
    assert 0 < rows["w30"] < 100  # beside the shop's street


def test_bad_parameters_are_refused(engine) -> None:
    import_file(engine, SHANGHAI)
    with engine.begin() as conn:
        with pytest.raises(InvalidInput, match="unknown category 'cinema'"):
            compute_and_store(conn, categories=["cinema"])
        with pytest.raises(InvalidInput, match="speed"):
            compute_and_store(conn, speed_m_per_min=0)


def test_what_if_equals_building_the_facility_and_recomputing(engine) -> None:
    from gis.reach.model import building_at, load_model, what_if

    import_file(engine, NANJING)
    with engine.connect() as conn:
        model = load_model(conn)
        # a point inside a building: that building's residents are at 0 m
        lon, lat = conn.execute(
            sa.text(
                "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM building "
                "WHERE households > 0 ORDER BY ST_Distance(geom, "
                "ST_SetSRID(ST_MakePoint(118.78, 32.043), 4326)) LIMIT 1) q"
            )
        ).one()
        inside = building_at(conn, lon, lat)
    assert inside is not None
    answer = what_if(model, lon, lat, "activity_room", 800, inside_building_id=inside)
    assert answer["households_gained"] > 0
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO facility (categories, kind, name, geom, source_file, source_id) "
                "VALUES ('{activity_room}', 'what-if', 'new', "
                "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 'test', 'x')"
            ),
            {"lon": lon, "lat": lat},
        )
        compute_and_store(conn, categories=["activity_room"])
        cov = coverage(conn, limit_min=10)
    after = cov["categories"][0]["households_covered"]
    assert after == answer["households_covered_after"]
    assert after - answer["households_covered_before"] == answer["households_gained"]


def test_isochrone_holds_the_reached_buildings(nanjing_reach) -> None:
    """Every building reached within 800 m meets the street inside the drawn area."""
    from gis.reach.compute import distances_from_point, isochrone
    from gis.reach.service import build_graph

    _eng, _run, inputs = nanjing_reach
    graph = build_graph(inputs)
    j = next(k for k, fc in enumerate(inputs.facility_categories) if "police_room" in fc)
    n_b = len(inputs.building_ids)
    area = isochrone(graph, int(graph.point_node[n_b + j]), 800, buffer_m=40)
    d = distances_from_point(graph, inputs.facility_xy[j], 800)
    buildings = np.arange(n_b)
    reached = np.flatnonzero(graph.point_distance(d, buildings) <= 800)
    assert len(reached) > 10
    # buildings are off the graph: their node is the access point on the street
    access = graph.point_node[reached]
    assert shapely.contains(area.buffer(0.01), shapely.points(graph.node_xy[access])).all()
    # and it is not the whole map: buildings over 1.6 km away by street are (nearly all)
    # outside; a few may sit by a reached street yet belong to a piece it doesn't join
    d2 = graph.point_distance(distances_from_point(graph, inputs.facility_xy[j], 5000), buildings)
    far = np.flatnonzero((d2 > 1600) & np.isfinite(d2))
    far_access = graph.point_node[far]
    assert len(far_access) > 100
    assert shapely.contains(area, shapely.points(graph.node_xy[far_access])).mean() < 0.01


def test_greedy_siting_is_near_the_exact_mclp_optimum(nanjing_reach) -> None:
    """On a small case the greedy choice is within (1 - 1/e) of spopt's exact MCLP, and
    never better than it (which would mean one of the two miscounts coverage)."""
    import pulp
    from spopt.locate import MCLP

    from gis.reach.model import load_model
    from gis.reach.siting import candidate_nodes, coverage_problem, greedy_cover

    eng, _run, _inputs = nanjing_reach
    with eng.connect() as conn:
        model = load_model(conn)
    nodes = candidate_nodes(model, "nodes")[::4]  # a small case: every fourth node
    problem = coverage_problem(model, "activity_room", 800, nodes)
    chosen, gains = greedy_cover(problem, 3)
    dense = np.where(problem.covers.toarray() > 0, problem.distances.toarray(), 1e9)
    mclp = MCLP.from_cost_matrix(
        dense.T, problem.weights, service_radius=800, p_facilities=3
    ).solve(pulp.PULP_CBC_CMD(msg=False))
    picked = [i for i, v in enumerate(mclp.fac_vars) if v.value() and v.value() > 0.5]
    covered = np.zeros(len(problem.weights), bool)
    for i in picked:
        covered[problem.covers[i].indices] = True
    optimum = problem.weights[covered].sum()
    greedy = sum(gains)
    # the greedy gains add up to what its sites really cover
    mine = np.zeros(len(problem.weights), bool)
    for i in chosen:
        mine[problem.covers[i].indices] = True
    assert greedy == problem.weights[mine].sum()
    assert (1 - 1 / math.e) * optimum <= greedy <= optimum


def test_coverage_per_area_adds_up_and_gaps_are_the_rest(engine, tmp_path) -> None:
    from gis.reach.coverage import coverage_by_area, gaps
    from gis.synth import write_city

    city = tmp_path / "city.gpkg"
    write_city(city, buildings=1500, seed=5)
    import_file(engine, city)
    with engine.begin() as conn:
        compute_and_store(conn, categories=["shopping", "police_room"])
        total = coverage(conn, limit_min=10)
        areas = coverage_by_area(conn, "community", limit_min=10)
        gap = gaps(conn, "police_room", limit_min=10, limit=5000)
        subdistricts = coverage_by_area(conn, "subdistrict", limit_min=10)
    assert len(areas) > 10
    assert sum(a["households"] for a in areas) == total["households"]
    assert sum(a["households"] for a in subdistricts) == total["households"]
    for c in total["categories"]:
        assert sum(a["categories"].get(c["category"], 0) for a in areas) == c["households_covered"]
    assert (
        sum(a["households_with_every_category"] for a in areas)
        == total["households_with_every_category"]
    )
    police = next(c for c in total["categories"] if c["category"] == "police_room")
    assert gap["households_in_gaps"] == total["households"] - police["households_covered"]
    assert gap["numberMatched"] == gap["numberReturned"]
    assert sum(f["properties"]["households"] for f in gap["features"]) == gap["households_in_gaps"]
    hh = [f["properties"]["households"] for f in gap["features"]]
    assert hh == sorted(hh, reverse=True)


def _door_osm(tmp_path, with_entrance: bool):
    """A building 11 m from a south street and 33 m from a north one, its door facing north;
    the two streets are not connected, and a police room stands on the north one."""
    lat0, lon0 = 32.04, 118.78
    door = '<tag k="entrance" v="main"/>' if with_entrance else ""
    osm = tmp_path / ("door.osm" if with_entrance else "nodoor.osm")
    osm.write_text(f"""<?xml version='1.0' encoding='UTF-8'?>
<osm version="0.6">
 <node id="1" lat="{lat0}" lon="{lon0}"/><node id="2" lat="{lat0}" lon="{lon0 + 0.0004}"/>
 <node id="3" lat="{lat0 + 0.0003}" lon="{lon0 + 0.0004}"/>
 <node id="4" lat="{lat0 + 0.0003}" lon="{lon0 + 0.0002}">{door}</node>
 <node id="5" lat="{lat0 + 0.0003}" lon="{lon0}"/>
 <node id="10" lat="{lat0 - 0.0001}" lon="{lon0 - 0.001}"/>
 <node id="11" lat="{lat0 - 0.0001}" lon="{lon0 + 0.001}"/>
 <node id="20" lat="{lat0 + 0.0006}" lon="{lon0 - 0.001}"/>
 <node id="21" lat="{lat0 + 0.0006}" lon="{lon0 + 0.001}"/>
 <node id="30" lat="{lat0 + 0.00065}" lon="{lon0 + 0.0006}"><tag k="amenity" v="police"/></node>
 <way id="100"><nd ref="1"/><nd ref="2"/><nd ref="3"/><nd ref="4"/><nd ref="5"/><nd ref="1"/>
  <tag k="building" v="apartments"/></way>
 <way id="101"><nd ref="10"/><nd ref="11"/><tag k="highway" v="residential"/></way>
 <way id="102"><nd ref="20"/><nd ref="21"/><tag k="highway" v="residential"/></way>
</osm>""")
    return osm


@pytest.mark.parametrize("with_entrance", [True, False], ids=["door", "no-door"])
def test_walking_starts_at_the_mapped_entrance(engine, tmp_path, with_entrance) -> None:
    report = import_file(engine, _door_osm(tmp_path, with_entrance))
    assert report.counts["building_entrance"].added == (1 if with_entrance else 0)
    with engine.begin() as conn:
        compute_and_store(conn, categories=["police_room"])
        walk_m = conn.scalar(
            sa.text("SELECT walk_m[1] FROM building_reach ORDER BY run_id DESC LIMIT 1")
        )
    if with_entrance:
        # door → north street (33 m) → along it (38 m) → the police room's point (6 m)
        assert 70 < walk_m < 85
    else:
        assert math.isnan(walk_m)  # from inside, the south street: no path to the police


def test_every_category_has_an_english_label_and_one_is_required(tmp_path: Path) -> None:
    from gis.categories import category_labels, load_categories

    zh, en = category_labels("zh"), category_labels("en")
    assert zh.keys() == en.keys() and zh["health_station"] == "卫生服务站"
    assert en["health_station"] == "Health station"
    for label in en.values():  # a person reading English sees no Chinese
        assert label and not any("\u3400" <= ch <= "\u9fff" for ch in label), label
    mapping = tmp_path / "m.toml"
    mapping.write_text(
        '[categories.clinic]\nlabel_zh = "诊所"\ngroup = "services"\nmatch = ["amenity=clinic"]\n',
        encoding="utf-8",
    )
    with pytest.raises(InvalidInput, match="label_en"):
        load_categories(mapping)
