"""Importing the real OSM extracts: counts checked against independent readers of the file."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import osmium
import pyogrio
import pytest
import sqlalchemy as sa
from pyproj import Geod

from gis.io.network import is_walkable
from gis.io.pipeline import import_file
from tests.conftest import NANJING, PORTO, SHANGHAI

GEOD = Geod(ellps="WGS84")


def _relation_outer_ways(path: Path) -> tuple[set[int], set[int]]:
    """Ways that are outer members of (building, non-building) multipolygon relations."""
    building, other = set(), set()
    for rel in osmium.FileProcessor(str(path), osmium.osm.RELATION):
        if rel.tags.get("type") != "multipolygon":
            continue
        target = building if "building" in rel.tags else other
        target.update(m.ref for m in rel.members if m.type == "w" and m.role in ("outer", ""))
    return building, other


def expected_building_ids(path: Path) -> set[str]:
    """Building ids in the file as GDAL (pyogrio) reads them, with our two documented rules.

    1. GDAL's OSM driver leaves out some closed building ways that are outer members of a
       multipolygon relation. Where the relation is not a building (school grounds, a
       pedestrian area) that way is a building of its own: we keep it.
    2. Where the relation is itself a building, the relation is the footprint and its outer
       way is not counted again (its households would be counted twice).
    """
    df = pyogrio.read_dataframe(
        path,
        layer="multipolygons",
        columns=["building", "osm_id", "osm_way_id"],
        read_geometry=False,
    )
    df = df[df["building"].notna() & (df["building"] != "no")]
    gdal = {f"r{i}" for i in df["osm_id"].dropna()} | {f"w{i}" for i in df["osm_way_id"].dropna()}
    building_outer, other_outer = _relation_outer_ways(path)
    closed = set()
    for way in osmium.FileProcessor(str(path), osmium.osm.WAY):
        if (
            "building" in way.tags
            and way.tags["building"] != "no"
            and len(way.nodes) >= 4
            and way.nodes[0].ref == way.nodes[-1].ref
        ):
            closed.add(way.id)
    kept_by_rule_1 = {f"w{i}" for i in (closed & other_outer) - building_outer}
    dropped_by_rule_2 = {f"w{i}" for i in building_outer}
    return (gdal | kept_by_rule_1) - dropped_by_rule_2


def _tagged_in_file(path: Path, key: str, value: str) -> int:
    """Nodes, ways and relations carrying key=value, counted with pyosmium directly."""
    n = 0
    for obj in osmium.FileProcessor(str(path)):
        if obj.tags.get(key) == value:
            n += 1
    return n


@pytest.mark.parametrize("path", [NANJING, SHANGHAI, PORTO], ids=lambda p: p.name)
def test_building_count_matches_independent_count(engine, path: Path) -> None:
    report = import_file(engine, path)
    with engine.connect() as conn:
        stored = set(conn.execute(sa.text("SELECT source_id FROM building")).scalars())
        invalid = conn.scalar(
            sa.text(
                "SELECT (SELECT count(*) FROM building WHERE NOT ST_IsValid(geom)) + "
                "(SELECT count(*) FROM facility WHERE NOT ST_IsValid(geom))"
            )
        )
    assert invalid == 0
    expected = expected_building_ids(path)
    assert stored == expected, (sorted(stored - expected)[:5], sorted(expected - stored)[:5])
    assert report.counts["building"].added == len(stored)


def test_nanjing_counts_from_plain_xml(engine) -> None:
    """An XML parse with no GIS library agrees on buildings and walkable ways."""
    tree = ET.parse(NANJING)
    ways = {}
    for w in tree.getroot().iter("way"):
        ways[w.get("id")] = (
            {t.get("k"): t.get("v") for t in w.iter("tag")},
            [nd.get("ref") for nd in w.iter("nd")],
        )
    closed_buildings = {
        i for i, (t, nds) in ways.items() if "building" in t and len(nds) >= 4 and nds[0] == nds[-1]
    }
    relation_buildings = [
        r
        for r in tree.getroot().iter("relation")
        if any(t.get("k") == "building" for t in r.iter("tag"))
    ]
    walkable = {i for i, (t, nds) in ways.items() if is_walkable(t) and len(nds) >= 2}
    import_file(engine, NANJING)
    with engine.connect() as conn:
        b = conn.execute(
            sa.text(
                "SELECT count(*) FILTER (WHERE source_id LIKE 'w%'), "
                "count(*) FILTER (WHERE source_id LIKE 'r%') FROM building"
            )
        ).one()
        edge_ways = set(
            conn.execute(
                sa.text("SELECT DISTINCT split_part(substr(source_id, 2), ':', 1) FROM walk_edge")
            ).scalars()
        )
    assert b[0] == len(closed_buildings)
    # one relation (7098215) has a broken ring and is reported, not imported
    assert b[1] == len(relation_buildings) - 1
    assert edge_ways == walkable


def test_reimport_is_idempotent(engine) -> None:
    first = import_file(engine, SHANGHAI)
    with engine.connect() as conn:
        before = conn.execute(
            sa.text(
                "SELECT (SELECT count(*) FROM building), (SELECT count(*) FROM dwelling_all), "
                "(SELECT count(*) FROM walk_edge), (SELECT count(*) FROM facility), "
                "(SELECT max(id) FROM building)"
            )
        ).one()
    second = import_file(engine, SHANGHAI)
    with engine.connect() as conn:
        after = conn.execute(
            sa.text(
                "SELECT (SELECT count(*) FROM building), (SELECT count(*) FROM dwelling_all), "
                "(SELECT count(*) FROM walk_edge), (SELECT count(*) FROM facility), "
                "(SELECT max(id) FROM building)"
            )
        ).one()
        runs = conn.scalar(sa.text("SELECT count(*) FROM import_run"))
    assert before == after
    assert runs == 2
    for table, c in second.counts.items():
        assert (c.added, c.updated, c.removed) == (0, 0, 0), table
        assert c.unchanged == first.counts[table].added, table


def test_reimport_of_edited_file_reports_each_change(engine, tmp_path: Path) -> None:
    import_file(engine, SHANGHAI, source="tongji")
    tree = ET.parse(SHANGHAI)
    root = tree.getroot()
    buildings = [
        w for w in root.iter("way") if any(t.get("k") == "building" for t in w.iter("tag"))
    ]
    removed_id = buildings[0].get("id")
    root.remove(buildings[0])
    edited = buildings[1]
    edited_id = edited.get("id")
    for t in list(edited.iter("tag")):
        if t.get("k") == "building:levels":
            edited.remove(t)
    ET.SubElement(edited, "tag", k="building:levels", v="18")
    path = tmp_path / "tongji-edited.osm"
    tree.write(path, encoding="utf-8", xml_declaration=True)
    report = import_file(engine, path, source="tongji")
    b = report.counts["building"]
    assert (b.added, b.updated, b.removed) == (0, 1, 1)
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT levels, levels_source, households FROM building WHERE source_id = :s"),
            {"s": f"w{edited_id}"},
        ).one()
        gone = conn.scalar(
            sa.text("SELECT count(*) FROM building WHERE source_id = :s"), {"s": f"w{removed_id}"}
        )
        dwellings = conn.scalar(
            sa.text(
                "SELECT count(*) FROM dwelling_all d JOIN building b ON b.id = d.building_id "
                "WHERE b.source_id = :s"
            ),
            {"s": f"w{edited_id}"},
        )
    assert row.levels == 18 and row.levels_source == "tag"
    assert gone == 0
    assert dwellings == row.households  # renumbered for the new height


def test_households_estimate_and_dwelling_numbers(nanjing_engine) -> None:
    with nanjing_engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT id, ST_AsBinary(geom) AS wkb, levels, area_m2, households, "
                "households_source, is_residential FROM building "
                "WHERE households_source = 'estimate' ORDER BY id LIMIT 200"
            )
        ).all()
        mismatched = conn.scalar(
            sa.text(
                "SELECT count(*) FROM building b WHERE households <> "
                "(SELECT coalesce(sum(households), 0) FROM dwelling_all d "
                "WHERE d.building_id = b.id)"
            )
        )
        numbered = conn.execute(
            sa.text(
                "SELECT b.levels, b.households, "
                "array_agg(d.room ORDER BY d.floor, length(d.room), d.room) FROM building b "
                "JOIN dwelling_all d ON d.building_id = b.id WHERE b.households BETWEEN 2 AND 99 "
                "GROUP BY b.id ORDER BY b.id LIMIT 50"
            )
        ).all()
    import shapely

    for r in rows:
        geom = shapely.from_wkb(r.wkb)
        geodesic_m2 = abs(GEOD.geometry_area_perimeter(geom)[0])
        assert r.area_m2 == pytest.approx(geodesic_m2, rel=2e-3)
        expected = max(round(r.area_m2 * r.levels * 0.75 / 70), 1) if r.area_m2 >= 30 else 0
        assert r.households == expected
    assert mismatched == 0
    assert len(numbered) == 50
    for levels, households, rooms in numbered:
        # filled floor by floor, the same number of rooms on each: 101, 102 … 201 …
        per_floor = math.ceil(households / levels)
        assert rooms == [f"{i // per_floor + 1}{i % per_floor + 1:02d}" for i in range(households)]


def test_walk_network_is_noded_at_intersections(nanjing_engine) -> None:
    with nanjing_engine.connect() as conn:
        stats = conn.execute(
            sa.text("""
            SELECT (SELECT count(*) FROM walk_edge e
                     WHERE NOT ST_Equals(ST_StartPoint(e.geom),
                                         (SELECT geom FROM walk_node WHERE id = e.source))
                        OR NOT ST_Equals(ST_EndPoint(e.geom),
                                         (SELECT geom FROM walk_node WHERE id = e.target)))
                       AS misplaced_ends,
                   (SELECT count(*) FROM (SELECT geom FROM walk_node GROUP BY geom
                                           HAVING count(*) > 1) d) AS duplicate_nodes,
                   (SELECT count(*) FROM walk_edge WHERE highway IN ('motorway', 'motorway_link'))
                       AS motorways,
                   (SELECT count(*) FROM walk_edge WHERE source = target AND length_m = 0)
                       AS loops_at_a_point,
                   (SELECT count(*) FROM walk_edge
                     WHERE length_m = 0 AND NOT ST_Equals(ST_StartPoint(geom), ST_EndPoint(geom)))
                       AS zero_but_apart
        """)
        ).one()
        lengths = conn.execute(
            sa.text("SELECT length_m, ST_Length(geom::geography) FROM walk_edge")
        ).all()
    assert stats.misplaced_ends == 0
    assert stats.duplicate_nodes == 0
    assert stats.motorways == 0
    assert stats.loops_at_a_point == 0  # a repeated node is never an edge
    assert stats.zero_but_apart == 0
    ours = np.array([r[0] for r in lengths])
    geodesic = np.array([r[1] for r in lengths])
    # UTM lengths agree with geodesic ones to the scale factor of the zone (< 0.1 %)
    assert np.allclose(ours, geodesic, rtol=1e-3)


def test_shared_osm_node_becomes_one_vertex(engine, tmp_path: Path) -> None:
    """Two ways crossing at a shared node give four edges meeting at one vertex."""
    osm = tmp_path / "cross.osm"
    lat0, lon0 = 32.04, 118.78
    d = 0.001
    osm.write_text(f"""<?xml version='1.0' encoding='UTF-8'?>
<osm version="0.6">
 <node id="1" lat="{lat0}" lon="{lon0 - d}"/><node id="2" lat="{lat0}" lon="{lon0}"/>
 <node id="3" lat="{lat0}" lon="{lon0 + d}"/><node id="4" lat="{lat0 - d}" lon="{lon0}"/>
 <node id="5" lat="{lat0 + d}" lon="{lon0}"/><node id="6" lat="{lat0 + d}" lon="{lon0 + d}"/>
 <way id="10"><nd ref="1"/><nd ref="2"/><nd ref="3"/><tag k="highway" v="residential"/></way>
 <way id="11"><nd ref="4"/><nd ref="2"/><nd ref="5"/><tag k="highway" v="footway"/></way>
 <way id="12"><nd ref="5"/><nd ref="6"/><tag k="highway" v="footway"/><tag k="foot" v="no"/></way>
 <way id="13"><nd ref="3"/><nd ref="6"/><tag k="highway" v="service"/>
  <tag k="access" v="private"/></way>
 <way id="14"><nd ref="1"/><nd ref="4"/><tag k="highway" v="motorway"/></way>
</osm>""")
    import_file(engine, osm)
    with engine.connect() as conn:
        degree = conn.execute(
            sa.text("""
            SELECT n.source_id, count(*) FROM walk_node n
              JOIN walk_edge e ON n.id IN (e.source, e.target) GROUP BY n.source_id""")
        ).all()
        total = conn.scalar(sa.text("SELECT sum(length_m) FROM walk_edge"))
    assert dict(degree) == {"n2": 4, "n1": 1, "n3": 1, "n4": 1, "n5": 1}
    # two perpendicular 2 x ~100 m ways (lon degrees shrink by cos(lat))
    expected = 2 * 111_320 * d * math.cos(math.radians(lat0)) + 2 * 110_860 * d
    assert total == pytest.approx(expected, rel=5e-3)


def test_facilities_get_categories_from_the_mapping(nanjing_engine) -> None:
    with nanjing_engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT kind, categories FROM facility")).all()
    assert all(len(c) >= 1 for _, c in rows)
    police = [set(c) for k, c in rows if k == "amenity=police"]
    assert len(police) == _tagged_in_file(NANJING, "amenity", "police") > 0
    assert all("police_room" in c for c in police)
    shops = [set(c) for k, c in rows if k.startswith("shop=")]
    assert shops and all("shopping" in c for c in shops)
    schools = [set(c) for k, c in rows if k == "amenity=school"]
    assert schools and all("education" in c for c in schools)


def test_distinct_nodes_at_one_position_stay_linked(engine, tmp_path: Path) -> None:
    """A footway glued to a road through two OSM nodes at the same spot is still connected."""
    osm = tmp_path / "glued.osm"
    lat0, lon0, d = 32.04, 118.78, 0.001
    osm.write_text(f"""<?xml version='1.0' encoding='UTF-8'?>
<osm version="0.6">
 <node id="1" lat="{lat0}" lon="{lon0}"/><node id="2" lat="{lat0}" lon="{lon0 + d}"/>
 <node id="3" lat="{lat0}" lon="{lon0 + d}"/><node id="4" lat="{lat0}" lon="{lon0 + 2 * d}"/>
 <way id="10"><nd ref="1"/><nd ref="2"/><tag k="highway" v="residential"/></way>
 <way id="11"><nd ref="2"/><nd ref="3"/><tag k="highway" v="footway"/></way>
 <way id="12"><nd ref="3"/><nd ref="4"/><tag k="highway" v="footway"/></way>
</osm>""")
    import_file(engine, osm)
    with engine.connect() as conn:
        edges = conn.execute(
            sa.text("SELECT e.source_id, e.length_m FROM walk_edge e ORDER BY e.source_id")
        ).all()
        components = conn.scalar(
            sa.text(
                "SELECT count(DISTINCT component) FROM pgr_connectedComponents("
                "'SELECT id, source, target, 1 AS cost, 1 AS reverse_cost FROM walk_edge')"
            )
        )
    assert [e[0] for e in edges] == ["w10:0", "w11:0", "w12:0"]
    assert dict(edges)["w11:0"] == 0
    assert components == 1
