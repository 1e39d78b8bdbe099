"""The quality report's gap and overlap figures, on hand-made areas whose answer is known.

The report takes a quick path when a community's areas form a valid coverage; these
cases check that an overlap, a duplicate, a hole or a nested area still shows, whichever
path is taken.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from shapely import box

from gis.delineate.quality import _tiling

COMMUNITY = box(0, 0, 200, 100)  # metres


def report(*areas):
    geom = np.array(list(areas), dtype=object)
    r = SimpleNamespace(
        groups=SimpleNamespace(geom=geom, parent=np.zeros(len(geom), dtype=np.int64)),
        group_plan=None,
        frozen_geom=np.array([], dtype=object),
        frozen_comm=np.array([], dtype=np.int64),
        communities=SimpleNamespace(code=["P01"], geom=np.array([COMMUNITY], dtype=object)),
    )
    return _tiling(r)


def test_a_tiling_has_no_gap_and_no_overlap():
    assert report(box(0, 0, 100, 100), box(100, 0, 200, 100)) == {"gap_m2": 0.0, "overlap_m2": 0.0}


@pytest.mark.parametrize(
    ("areas", "gap", "overlap"),
    [
        ((box(0, 0, 110, 100), box(100, 0, 200, 100)), 0.0, 1000.0),  # 10 m x 100 m twice
        ((box(0, 0, 100, 100), box(0, 0, 100, 100), box(100, 0, 200, 100)), 0.0, 10000.0),
        ((box(0, 0, 200, 100), box(50, 25, 100, 75)), 0.0, 2500.0),  # one inside another
        ((box(0, 0, 90, 100), box(100, 0, 200, 100)), 1000.0, 0.0),  # a strip left out
    ],
)
def test_a_gap_or_an_overlap_is_measured(areas, gap, overlap):
    q = report(*areas)
    assert q["gap_m2"] == pytest.approx(gap, abs=0.01)
    assert q["overlap_m2"] == pytest.approx(overlap, abs=0.01)
