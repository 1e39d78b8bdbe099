"""Households of known Nanjing buildings, worked out by hand from docs/households.md.

The rule: households = round(footprint_m2 × levels × 0.75 ÷ 70), at least 1; levels from
``building:levels``, else ``height`` ÷ 3 m (rounded), else 6 for apartments/residential,
5 for untyped ``yes``, 2 for a house, 3 for other types; not housing → 0. Each expected
figure below is that sum done by hand on the footprint area (EPSG:32650, checked here against
an independent reading of the file), so a changed default, metres per level, efficiency or
dwelling size moves at least one of them.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pyproj
import pytest
import sqlalchemy as sa
from shapely.geometry import Polygon

from tests.conftest import NANJING

# OSM way id: (tags of the footprint that decide, area m², levels, where from, households)
PINNED = {
    # untyped, nothing else: 5 levels; 3100.08 × 5 × 0.75 / 70 = 166.08
    93689863: ({"building": "yes"}, 3100.08, 5, "default", 166),
    # height 15 m / 3 = 5 levels; 3591.50 × 5 × 0.75 / 70 = 192.41
    318198212: ({"building": "yes", "height": "15"}, 3591.50, 5, "height", 192),
    # height 80 m / 3 = 26.7 → 27 levels; 1470.52 × 27 × 0.75 / 70 = 425.40
    322659569: ({"building": "yes", "height": "80"}, 1470.52, 27, "height", 425),
    # height 135 m / 3 = 45 levels; 821.38 × 45 × 0.75 / 70 = 396.02
    322808459: ({"building": "apartments", "height": "135"}, 821.38, 45, "height", 396),
    # residential: 6 levels; 662.65 × 6 × 0.75 / 70 = 42.60
    265043743: ({"building": "residential"}, 662.65, 6, "default", 43),
    # apartments: 6 levels; 510.51 × 6 × 0.75 / 70 = 32.82
    192504824: ({"building": "apartments"}, 510.51, 6, "default", 33),
    # levels tagged: 1347.32 × 20 × 0.75 / 70 = 288.71
    147111958: ({"building": "yes", "building:levels": "20"}, 1347.32, 20, "tag", 289),
    # the tag wins over the height: 226.05 × 2 × 0.75 / 70 = 4.84
    322657254: ({"building": "yes", "building:levels": "2", "height": "6"}, 226.05, 2, "tag", 5),
    # a house: 2 levels; 393.81 × 2 × 0.75 / 70 = 8.44
    318345284: ({"building": "house"}, 393.81, 2, "default", 8),
    # untyped but a bank: not housing
    142741649: ({"building": "yes", "amenity": "bank"}, 1547.80, 5, "default", 0),
    # a school: not housing (3 levels, the fallback)
    88780396: ({"building": "school"}, 311.44, 3, "default", 0),
    # untyped, but its name says hotel (酒店): lodging, not housing (it would be 171)
    318198213: ({"building": "yes", "name": "南京金丝利喜来登酒店"}, 3185.76, 5, "default", 0),
}
# The whole bundled file, as the rules above give it (docs/households.md); 1,107 of its
# 1,277 buildings are housing.
NANJING_HOUSEHOLDS = 59_516
NANJING_HOUSING = 1_107


def _file_footprints() -> dict[int, tuple[dict[str, str], float]]:
    """Tags and EPSG:32650 area of the pinned ways, read from the XML with no GIS reader."""
    root = ET.parse(NANJING).getroot()
    nodes = {n.get("id"): (float(n.get("lon")), float(n.get("lat"))) for n in root.iter("node")}
    to_utm = pyproj.Transformer.from_crs(4326, 32650, always_xy=True)
    found = {}
    for way in root.iter("way"):
        wid = int(way.get("id"))
        if wid in PINNED:
            tags = {t.get("k"): t.get("v") for t in way.iter("tag")}
            ring = [to_utm.transform(*nodes[nd.get("ref")]) for nd in way.iter("nd")]
            found[wid] = (tags, Polygon(ring).area)
    return found


def test_pinned_buildings_have_the_hand_worked_households(nanjing_engine) -> None:
    footprints = _file_footprints()
    assert set(footprints) == set(PINNED)
    with nanjing_engine.connect() as conn:
        rows = {
            r.source_id: r
            for r in conn.execute(
                sa.text(
                    "SELECT source_id, area_m2, levels, levels_source, households, "
                    "households_source FROM building WHERE source_id = ANY(:ids)"
                ),
                {"ids": [f"w{i}" for i in PINNED]},
            )
        }
    for wid, (tags, area_m2, levels, levels_source, households) in PINNED.items():
        file_tags, file_area = footprints[wid]
        assert {k: file_tags.get(k) for k in tags} == tags, wid  # the file says what we say
        assert {"building:levels", "height", "building:flats"} & set(file_tags) <= set(tags), wid
        assert file_area == pytest.approx(area_m2, abs=0.01), wid
        row = rows[f"w{wid}"]
        assert row.area_m2 == pytest.approx(area_m2, rel=2e-3), wid
        assert (row.levels, row.levels_source) == (levels, levels_source), wid
        assert row.households == households, wid
        assert row.households_source == ("estimate" if households else "none"), wid


def test_nanjing_total_households(nanjing_engine) -> None:
    with nanjing_engine.connect() as conn:
        total, housing, buildings = conn.execute(
            sa.text(
                "SELECT sum(households), count(*) FILTER (WHERE households > 0), count(*) "
                "FROM building"
            )
        ).one()
    assert (total, housing, buildings) == (NANJING_HOUSEHOLDS, NANJING_HOUSING, 1_277)


@pytest.mark.parametrize(
    ("building", "tags", "name", "housing"),
    [
        ("yes", {}, "南京金丝利喜来登酒店", False),
        ("yes", {}, "锦江之星旅馆(同济大学店)", False),
        ("yes", {}, "Hotel Infante Sagres", False),
        ("yes", {}, "Porto Spot Hostel", False),
        ("apartments", {"tourism": "hotel"}, None, False),  # whatever building=* says
        ("residential", {"tourism": "guest_house"}, None, False),
        ("yes", {}, "锦绣酒店式公寓", True),  # serviced apartments are homes
        ("yes", {}, "Hotelaria Residences Apartments", True),
        ("yes", {}, "幸福小区3幢", True),
        ("apartments", {}, "Edifício Hotel", True),  # a typed building keeps its type
        ("yes", {}, "Shotel", True),  # a word, not a part of one
    ],
)
def test_lodging_is_not_housing(building, tags, name, housing) -> None:
    from gis.io.households import is_residential

    assert is_residential(building, tags, name) is housing
