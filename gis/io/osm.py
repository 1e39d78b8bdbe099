"""Read OpenStreetMap XML or PBF: buildings, the walkable street network and facilities."""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import osmium
import pandas as pd
import shapely

from gis.categories import FACILITY_KEYS, categorise, load_categories
from gis.crs import metric_epsg_for
from gis.errors import InvalidInput
from gis.io.dataset import Dataset, Problem, finish_buildings, repair_polygons
from gis.io.network import WayRecord, build_network, is_walkable
from gis.settings import Settings

OSM_SUFFIXES = (".osm", ".pbf", ".osm.pbf", ".osm.bz2", ".osm.gz", ".o5m")
ADDR_STREET = ("addr:street", "addr:place")

Step = Callable[[str, float], None]


def _area_source_id(area: osmium.osm.Area) -> str:
    return ("w" if area.from_way() else "r") + str(area.orig_id())


def read_osm(path: Path, settings: Settings, layers: set[str], on_step: Step) -> Dataset:
    """Read ``layers`` (buildings, streets, facilities) of an OSM file into a Dataset.

    Broken building rings (unclosed, too few nodes, missing nodes) are skipped and listed
    in ``Dataset.problems``; invalid polygons are repaired or refused by id.
    """
    # The read allocates many small, long-lived objects (tag dicts, rows) and no cycles:
    # the cyclic collector would only rescan them again and again.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _read_osm(path, settings, layers, on_step)
    finally:
        if was_enabled:
            gc.enable()


@dataclass
class _Collector:
    """What one pass over the file keeps, by kind of object (filters run in C++ first)."""

    ds: Dataset
    want_b: bool
    want_s: bool
    want_f: bool
    wkb: osmium.geom.WKBFactory = field(default_factory=osmium.geom.WKBFactory)
    b_rows: list[tuple] = field(default_factory=list)
    f_rows: list[tuple] = field(default_factory=list)
    entrances: list[tuple] = field(default_factory=list)  # (node id, entrance=*, point WKB)
    ways: list[tuple] = field(default_factory=list)
    building_objects: set[str] = field(default_factory=set)  # ways, relations tagged building
    building_areas: set[str] = field(default_factory=set)
    # Closed building ways that are outer rings of a building multipolygon: the relation is
    # the building; keeping the way too would count its households twice.
    outer_of_building: set[str] = field(default_factory=set)

    def take(self, obj: object) -> None:
        if obj.is_area():
            self.area(obj)
        elif obj.is_way():
            self.way(obj)
        elif obj.is_relation():
            self.relation(obj)
        else:  # a node: the filter let through facility and entrance nodes only
            self.node(obj)

    def area(self, obj: osmium.osm.Area) -> None:
        tags = obj.tags
        has_b = "building" in tags
        is_b = self.want_b and has_b and tags["building"] != "no"
        # most buildings carry one tag: skip the facility test for them
        is_f = self.want_f and (
            not has_b or (len(tags) > 1 and any(k in tags for k in FACILITY_KEYS))
        )
        if not (is_b or is_f):
            return
        sid = _area_source_id(obj)
        try:
            geom = self.wkb.create_multipolygon(obj)
        except (RuntimeError, osmium.InvalidLocationError) as err:
            layer = "buildings" if is_b else "facilities"
            self.ds.problems.append(Problem(layer, sid, f"cannot build polygon: {err}"))
            return
        d = dict(tags)
        if is_b:
            self.building_areas.add(sid)
            self.b_rows.append((sid, d, geom))
        if is_f:
            self.f_rows.append((sid, d, geom, True))

    def way(self, obj: osmium.osm.Way) -> None:
        tags = obj.tags
        if self.want_b and "building" in tags and tags["building"] != "no":
            self.building_objects.add(f"w{obj.id}")
        if self.want_s and "highway" in tags:
            d = dict(tags)
            if is_walkable(d):
                rec = _way_record(obj, self.wkb, self.ds)
                if rec is not None:
                    self.ways.append((rec[0], d["highway"], d.get("name"), rec[1], rec[2]))

    def relation(self, obj: osmium.osm.Relation) -> None:
        tags = obj.tags
        if not (self.want_b and "building" in tags and tags["building"] != "no"):
            return
        if tags.get("type") not in ("multipolygon", "building"):
            return
        self.building_objects.add(f"r{obj.id}")
        self.outer_of_building.update(
            f"w{m.ref}" for m in obj.members if m.type == "w" and m.role in ("outer", "")
        )

    def node(self, obj: osmium.osm.Node) -> None:
        tags = obj.tags
        is_entrance = self.want_b and tags.get("entrance", "no") != "no"
        is_f = self.want_f and any(k in tags for k in FACILITY_KEYS)
        if not (is_entrance or is_f):
            return
        try:
            geom = self.wkb.create_point(obj)
        except osmium.InvalidLocationError:
            return
        if is_entrance:
            self.entrances.append((f"n{obj.id}", tags["entrance"], geom))
        if is_f:
            self.f_rows.append((f"n{obj.id}", dict(tags), geom, False))


def _processor(path: Path) -> osmium.FileProcessor:
    """The file's objects that some layer can use: facility and entrance nodes, building
    or highway ways, building relations, building or facility areas (the area assembler
    still sees every multipolygon relation)."""
    return (
        osmium.FileProcessor(str(path))
        .with_locations()
        .with_areas()
        .with_filter(osmium.filter.EmptyTagFilter())
        .with_filter(
            osmium.filter.KeyFilter(*FACILITY_KEYS, "entrance").enable_for(osmium.osm.NODE)
        )
        .with_filter(osmium.filter.KeyFilter("building", "highway").enable_for(osmium.osm.WAY))
        .with_filter(osmium.filter.KeyFilter("building").enable_for(osmium.osm.RELATION))
        .with_filter(
            osmium.filter.KeyFilter("building", *FACILITY_KEYS).enable_for(osmium.osm.AREA)
        )
    )


def _read_osm(path: Path, settings: Settings, layers: set[str], on_step: Step) -> Dataset:
    ds = Dataset()
    categories = load_categories()
    c = _Collector(ds, "buildings" in layers, "streets" in layers, "facilities" in layers)
    on_step("reading OSM", 0.05)
    try:
        for obj in _processor(path):
            c.take(obj)
    except RuntimeError as err:
        raise InvalidInput(
            f"{path.name} is not a readable OSM file: {str(err).strip().splitlines()[0]}"
        ) from err
    want_b, want_s, want_f = c.want_b, c.want_s, c.want_f
    b_rows, f_rows, entrances, ways = c.b_rows, c.f_rows, c.entrances, c.ways
    building_objects, building_areas = c.building_objects, c.building_areas
    outer_of_building = c.outer_of_building
    for sid in sorted(building_objects - building_areas):
        ds.problems.append(
            Problem(
                "buildings", sid, "broken ring (unclosed, too few nodes or nodes missing): skipped"
            )
        )
    on_step("buildings and households", 0.35)
    if want_b:
        dropped = outer_of_building & building_areas
        b_rows = [r for r in b_rows if r[0] not in dropped]
        ds.buildings = finish_buildings(_building_frame(b_rows), ds, settings)
        ds.entrances = entrances_of(ds.buildings, entrances)
    if want_f:
        ds.facilities = _facility_frame(f_rows, categories, ds)
    if want_s:
        on_step("noding the walk network", 0.45)
        geoms = ds.buildings["geom"].to_numpy() if ds.buildings is not None else np.array([])
        sample = geoms if len(geoms) else shapely.from_wkb([w[4] for w in ways[:100]])
        ds.metric_epsg = ds.metric_epsg or settings.metric_epsg or metric_epsg_for(sample)
        ds.walk_nodes, ds.walk_edges = build_network(
            _way_records(ways), ds.metric_epsg, lambda k: f"n{k}"
        )
    return ds


# entrance=main first: where a building has several, the main door is the one used
ENTRANCE_RANK = {"main": 0, "yes": 1, "staircase": 2, "home": 2, "service": 4, "emergency": 5}


def entrances_of(buildings: pd.DataFrame, entrances: list[tuple]) -> pd.DataFrame:
    """Entrance nodes on building outlines: (building source id, node id, kind, point)."""
    empty = pd.DataFrame({"building": [], "source_id": [], "kind": [], "rank": [], "geom": []})
    if not entrances or buildings is None or not len(buildings):
        return empty
    points = shapely.from_wkb([e[2] for e in entrances])
    tree = shapely.STRtree(buildings["geom"].to_numpy())
    # an entrance is a node of the outline: it touches it (1e-7° ≈ 1 cm for float noise)
    pi, bi = tree.query(points, predicate="dwithin", distance=1e-7)
    if not len(pi):
        return empty
    rows = pd.DataFrame(
        {
            "building": buildings["source_id"].to_numpy()[bi],
            "source_id": [entrances[i][0] for i in pi],
            "kind": [entrances[i][1] for i in pi],
            "geom": points[pi],
        }
    )
    rows["rank"] = rows["kind"].map(ENTRANCE_RANK).fillna(3).astype(int)
    return rows.sort_values(["building", "rank", "source_id"]).reset_index(drop=True)


def _way_record(
    way: osmium.osm.Way, wkb: osmium.geom.WKBFactory, ds: Dataset
) -> tuple[str, np.ndarray, str] | None:
    # Coordinates come from one WKB call in C++ (ALL keeps repeated nodes, so positions
    # line up with the node ids) and are parsed in one batch later; only the ids need a
    # Python loop here.
    try:
        line = wkb.create_linestring(way, use_nodes=osmium.geom.ALL)
    except (RuntimeError, osmium.InvalidLocationError):
        ds.problems.append(
            Problem("streets", f"w{way.id}", "nodes missing from the file: way skipped")
        )
        return None
    keys = np.fromiter((nd.ref for nd in way.nodes), dtype=np.int64, count=len(way.nodes))
    return f"w{way.id}", keys, line


def _way_records(raw: list[tuple]) -> list[WayRecord]:
    if not raw:
        return []
    xy, index = shapely.get_coordinates(shapely.from_wkb([r[4] for r in raw]), return_index=True)
    bounds = np.searchsorted(index, np.arange(len(raw) + 1))
    out = []
    for i, (sid, highway, name, keys, _line) in enumerate(raw):
        part = xy[bounds[i] : bounds[i + 1]]
        if len(part) == len(keys):
            out.append(WayRecord(sid, highway, name, keys, part[:, 0], part[:, 1]))
    return out


def _building_frame(rows: list[tuple]) -> pd.DataFrame:
    sids = [r[0] for r in rows]
    tags = [r[1] for r in rows]
    return pd.DataFrame(
        {
            "source_id": sids,
            "building_type": [t.get("building", "yes") for t in tags],
            "name": [t.get("name:zh") or t.get("name") for t in tags],
            "addr_street": [next((t[k] for k in ADDR_STREET if k in t), None) for t in tags],
            "addr_housenumber": [t.get("addr:housenumber") for t in tags],
            "levels_tag": [t.get("building:levels") for t in tags],
            "height_tag": [t.get("height") or t.get("building:height") for t in tags],
            "flats_tag": [t.get("building:flats") for t in tags],
            "households_attr": [None] * len(rows),
            "tags": tags,
            "geom": shapely.from_wkb([r[2] for r in rows]) if rows else np.array([], dtype=object),
        }
    )


def _facility_frame(rows: list[tuple], categories: tuple, ds: Dataset) -> pd.DataFrame:
    kept = []
    for sid, tags, geom, _is_area in rows:
        cats = categorise(tags, categories)
        if cats:
            kind = next((f"{k}={tags[k]}" for k in FACILITY_KEYS if k in tags), "other")
            kept.append((sid, cats, kind, tags.get("name:zh") or tags.get("name"), tags, geom))
    geoms = shapely.from_wkb([r[5] for r in kept]) if kept else np.array([], dtype=object)
    df = pd.DataFrame(
        {
            "source_id": [r[0] for r in kept],
            "categories": [r[1] for r in kept],
            "kind": [r[2] for r in kept],
            "name": [r[3] for r in kept],
            "tags": [r[4] for r in kept],
            "geom": geoms,
        }
    )
    if len(df):
        is_poly = shapely.get_type_id(df["geom"].to_numpy()) != 0
        if is_poly.any():
            fixed, keep = repair_polygons(
                df["geom"].to_numpy()[is_poly],
                df["source_id"].to_numpy()[is_poly],
                "facilities",
                ds,
            )
            g = df["geom"].to_numpy().copy()
            g[is_poly] = fixed
            df["geom"] = g
            mask = np.ones(len(df), bool)
            mask[np.flatnonzero(is_poly)[~keep]] = False
            df = df.loc[mask]
    return df.reset_index(drop=True)
