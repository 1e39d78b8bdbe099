"""Groups below the band (issue 14): only where the major roads leave nothing else.

A group may hold fewer than 80 households only when it holds every household of its piece
of a major-road block (``small_block``). On the real Nanjing and shanghai-tongji extracts,
in memory: every group below 80 is checked here with its own geometry — no other group
with households in the same major-road block shares an edge with it — and a group whose
major-road block piece holds more than 80 never falls below the band. Before the fix a
tower's top floors made a group of 69 on Nanjing (the balancing could not give them floors
of their own tower), and two groups next to a tower were flagged small blocks though the
tower's floors could have joined them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shapely

from gis.crs import metric_epsg_for, to_metric
from gis.delineate.cells import MAJOR_HIGHWAYS
from gis.delineate.hierarchy import Inputs, Result, delineate
from gis.io.osm import read_osm
from gis.settings import get_settings
from tests.conftest import NANJING, PORTO, SHANGHAI

BAND = (80.0, 120.0)  # docs/delineation.md


def _inputs(path: Path) -> Inputs:
    ds = read_osm(path, get_settings(), {"buildings", "streets"}, lambda a, b: None)
    epsg = metric_epsg_for(ds.buildings["geom"].to_numpy())
    e = ds.walk_edges
    return Inputs(
        np.arange(len(ds.buildings)),
        ds.buildings["households"].to_numpy(),
        to_metric(ds.buildings["geom"].to_numpy(), epsg),
        to_metric(e["geom"].to_numpy(), epsg),
        e["highway"].to_numpy(),
    )


@pytest.fixture(scope="module", params=[NANJING, SHANGHAI], ids=["nanjing", "shanghai"])
def drawn(request) -> tuple[Inputs, Result]:
    inputs = _inputs(request.param)
    return inputs, delineate(inputs)


def _group_of_building(r: Result) -> np.ndarray:
    unit_group = r.clusters.parent[r.units.parent]
    return np.where(r.building_unit >= 0, unit_group[np.maximum(r.building_unit, 0)], -1)


def _major_block_of(inputs: Inputs, points: np.ndarray) -> np.ndarray:
    """Per point, the face of the major roads it lies in (its own polygonisation)."""
    major = inputs.street_lines[np.isin(inputs.highways, list(MAJOR_HIGHWAYS))]
    area = shapely.buffer(
        shapely.convex_hull(shapely.union_all(np.concatenate([inputs.footprints, major]))), 50
    )
    noded = shapely.union_all(np.concatenate([major, [shapely.boundary(area)]]))
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    out = np.full(len(points), -1)
    for k, face in enumerate(faces):
        out[shapely.contains(face, points)] = k
    return out


def test_households_of_every_group_add_up_from_its_buildings_and_parts(drawn) -> None:
    inputs, r = drawn
    group = _group_of_building(r)
    divided = set(r.parts)
    hh = np.zeros(len(r.groups.code))
    for b in np.flatnonzero(group >= 0).tolist():
        if b not in divided:
            hh[group[b]] += inputs.households[b]
    unit_group = r.clusters.parent[r.units.parent]
    for b, parts in r.parts.items():
        assert sum(h for _, h in parts) == pytest.approx(inputs.households[b])
        for unit, households in parts:
            hh[unit_group[unit]] += households
    assert hh == pytest.approx(r.groups.households)


def test_a_group_falls_below_the_band_only_when_its_block_piece_does(drawn) -> None:
    inputs, r = drawn
    g = r.groups
    below = [i for i, h in enumerate(g.households.tolist()) if 0 < h < BAND[0]]
    if not below:
        assert r.quality["below_band_not_small_block"] == 0
        return
    # each group's major-road block, from a point inside its polygon (none crosses one)
    block = _major_block_of(inputs, shapely.point_on_surface(g.geom))
    housing = [j for j, h in enumerate(g.households.tolist()) if h > 0]
    for i in below:
        assert "small_block" in g.flags[i], (i, g.households[i], g.flags[i])
        for j in housing:
            if j == i or block[j] != block[i]:
                continue
            shared = shapely.length(shapely.intersection(g.geom[i], g.geom[j]))
            assert shared < 0.01, f"group {g.code[i]} of {g.households[i]} touches {g.code[j]}"
    assert r.quality["below_band_not_small_block"] == 0


def test_the_report_counts_what_the_groups_say(drawn) -> None:
    _inputs_, r = drawn
    g, q = r.groups, r.quality
    housing = (g.households > 0) & np.array(["no_households" not in f for f in g.flags])
    small = np.array(["small_block" in f for f in g.flags])
    hh = g.households[housing]
    in_band = ((hh >= BAND[0]) & (hh <= BAND[1])).mean()
    assert q["share_in_band"] == pytest.approx(in_band)
    assert q["group_households"]["cv"] == pytest.approx(hh.std() / hh.mean())
    assert q["small_block_groups"] == int(small.sum())
    # the floor of the CV with the small blocks as they are: never above the CV itself
    assert q["cv_floor_small_blocks"] <= q["group_households"]["cv"] + 1e-9
    assert q["cv_floor_pieces"] <= q["group_households"]["cv"] + 1e-9


def test_porto_groups_below_the_band_are_only_where_two_groups_could_not_be_cut() -> None:
    """Porto: a group below the band (not a small block) lies only in a piece under 240.

    Such a piece can be shared in band only by two groups; whether a contiguous cut into
    two exists depends on its shape (one on Porto has none: checked by exhaustive search,
    see docs/delineation.md). In a larger piece the groups around always have room: before
    ``groups._merge_walled_in`` and the wider rings of ``partition.mend_in_rings`` a group
    of 65 walled in by a divided building's land, and two of 74 and 72 side by side, were
    left below the band in pieces of 921 and 2,076 households.
    """
    inputs = _inputs(PORTO)
    r = delineate(inputs)
    g = r.groups
    hh = g.households.tolist()
    block = _major_block_of(inputs, shapely.point_on_surface(g.geom))
    housing = [j for j, h in enumerate(hh) if h > 0 and "no_households" not in g.flags[j]]
    tree = shapely.STRtree(g.geom)
    below = [i for i in housing if hh[i] < BAND[0] and "small_block" not in g.flags[i]]
    assert r.quality["below_band_not_small_block"] == len(below)
    for i in below:
        # its piece: the groups of its block reached through shared edges
        piece, todo = {i}, [i]
        while todo:
            a = todo.pop()
            for j in tree.query(g.geom[a]).tolist():
                if j in piece or block[j] != block[i] or j not in housing:
                    continue
                if shapely.length(shapely.intersection(g.geom[a], g.geom[j])) >= 0.01:
                    piece.add(j)
                    todo.append(j)
        total = sum(hh[j] for j in piece)
        assert total < 3 * BAND[0], (g.code[i], hh[i], total, len(piece))


def test_porto_has_no_group_below_the_band_outside_small_blocks() -> None:
    """Porto: the piece of 237 households (23 walk-ups, none of which may be divided) is
    two groups in band, not three with one of 76.

    Over its units as first drawn (small houses joined into units, land joined to the unit
    it shares most edge with) no two connected groups of 117-120 exist; over its buildings,
    with the land between them given to either side, they do. ``proofs`` finds such groups,
    the units of that piece are drawn again after them (``units.draw_units(regroup=...)``),
    and the exact search shares the piece out (``groups._solve_exactly``). Before, the group
    of 76 stayed, flagged as impossible: true of the units, not of the rules.
    """
    inputs = _inputs(PORTO)
    r = delineate(inputs)
    g, q = r.groups, r.quality
    hh = g.households
    housing = (hh > 0) & np.array(["no_households" not in f for f in g.flags])
    small = np.array(["small_block" in f for f in g.flags])
    below = housing & ~small & (hh < BAND[0])
    assert not below.any(), [(g.code[i], hh[i], g.flags[i]) for i in np.flatnonzero(below)]
    assert q["below_band_not_small_block"] == 0 and q["below_band_unexplained"] == 0
    assert q["non_contiguous_groups"] == 0 and q["groups_crossing_major_roads"] == 0
    assert q["gap_m2"] == 0 and q["overlap_m2"] == 0
    assert q["divided_walkups"] == 0


def test_no_group_in_band_carries_the_proof_flag(drawn) -> None:
    _inputs_, r = drawn
    g, q = r.groups, r.quality
    for i, f in enumerate(g.flags):
        if "no_contiguous_band_split" in f:
            assert g.households[i] < BAND[0] and "small_block" not in f, (g.code[i], f)
        in_band = BAND[0] <= g.households[i] <= BAND[1]
        assert not (in_band and "no_contiguous_band_split" in f), g.code[i]
    assert q["no_contiguous_split_groups"] == sum("no_contiguous_band_split" in f for f in g.flags)
    assert q["below_band_unexplained"] == 0
