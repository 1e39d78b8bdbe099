"""Delineation of the bundled Nanjing data meets the published quality figures.

bench/README.md (measured 2026-12-01) gives for Nanjing: 91.5 % of groups within 80–120
households and a CV of 0.1183, towers (oversize single buildings) apart; no group in more
than one piece; no gap or overlap. The figures checked here are the quality report the run
itself returns (docs/delineation.md, "Quality report"), with a little tolerance, and the
stored groups are checked against the 80–120 band written out here.

The band is a target, not a cap: 8.5 % of the published groups are outside it, a few of
them above 120 households without being a tower (up to 138 on 2026-12-01).
"""

from __future__ import annotations

import sqlalchemy as sa

from gis.delineate.service import run
from gis.io.pipeline import import_file
from tests.conftest import NANJING

BAND = (80.0, 120.0)  # docs/delineation.md: ~100 households, band 80–120
MIN_SHARE_IN_BAND = 0.90  # published 0.915
MAX_CV = 0.125  # published 0.1183
# Outside the band a household costs the partition 30× more: no group but a tower ends far
# above it (138 households at most on 2026-12-01; 144 when the partition's upper bound was
# moved to 140, with the share in band and the CV still within the figures above).
MAX_NON_TOWER = 140


def test_nanjing_delineation_meets_the_published_quality(engine) -> None:
    import_file(engine, NANJING)
    q = run(engine).quality
    assert q["band"] == list(BAND)
    assert q["share_in_band"] >= MIN_SHARE_IN_BAND, q
    assert q["group_households"]["cv"] <= MAX_CV, q
    assert q["group_households"]["max"] <= MAX_NON_TOWER, q  # towers apart
    assert q["non_contiguous_groups"] == 0, q
    assert q["groups_crossing_major_roads"] == 0, q
    assert q["gap_m2"] < 1.0 and q["overlap_m2"] < 1.0, q
    with engine.connect() as conn:
        groups = conn.execute(
            sa.text(
                "SELECT g.code, g.households, g.flags, count(DISTINCT u.id) AS units, "
                "max(u.households) AS unit_max, ST_NumGeometries(g.geom) AS parts "
                "FROM residents_group g "
                "JOIN building_cluster c ON c.residents_group_id = g.id "
                "JOIN unit u ON u.building_cluster_id = c.id "
                "JOIN building b ON b.unit_id = u.id GROUP BY g.id"
            )
        ).all()
    assert len(groups) == q["groups"]
    # a unit above the band (a tower) is a group of its own, flagged oversize; no other group
    oversize = [g for g in groups if "oversize" in g.flags]
    assert len(oversize) == q["oversize_groups"] > 0
    assert all(g.units == 1 and g.unit_max > BAND[1] for g in oversize), oversize
    assert all(g.unit_max <= BAND[1] for g in groups if "oversize" not in g.flags)
    assert all(g.parts == 1 for g in groups)
    housing = [g for g in groups if g.households > 0 and "oversize" not in g.flags]
    in_band = sum(BAND[0] <= g.households <= BAND[1] for g in housing) / len(housing)
    assert in_band == q["share_in_band"]
