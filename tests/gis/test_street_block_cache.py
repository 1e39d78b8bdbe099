"""Street blocks cached by a hash of what cuts them (issue 14), on the real Nanjing extract.

A re-run whose streets (and study area) are unchanged takes the blocks from
``street_block_cache`` instead of polygonising the streets again, and gives the same cells
and codes as a run that computes everything; a changed street, or a moved building, is seen.
Each test works on its own copy of one delineated Nanjing database.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from gis.db import create_engine
from gis.delineate import cells
from gis.delineate.service import RunReport, run
from gis.io.pipeline import import_file
from tests.conftest import NANJING, _admin_execute, _clone

CODES = (
    "SELECT b.id, cm.code, g.code, c.code, u.code FROM building b "
    "JOIN unit u ON u.id = b.unit_id JOIN building_cluster c ON c.id = u.building_cluster_id "
    "JOIN residents_group g ON g.id = c.residents_group_id "
    "JOIN community cm ON cm.id = g.community_id ORDER BY b.id"
)
CACHE = "SELECT key, blocks, made_at FROM street_block_cache"
# per building its stored cell, as WKB on the 1 cm grid (the cells are noded on it)
CELLS = (
    "SELECT building_id, ST_AsBinary(ST_SnapToGrid(ST_Transform(geom, 32650), 0.01)) "
    "FROM building_cell ORDER BY building_id"
)


@pytest.fixture(scope="module")
def template(server_url: str, template_url: str) -> Iterator[str]:
    """Nanjing imported and delineated once: its proposed communities are stored, so a
    re-run reads them back (they must not change the blocks: they are unions of cells)."""
    url = _clone(server_url, template_url, "sbc_tpl")
    engine = create_engine(url, poolclass=sa.NullPool)
    import_file(engine, NANJING)
    first = run(engine)
    assert not first.street_blocks_reused  # nothing was stored before
    engine.dispose()
    try:
        yield url
    finally:
        _admin_execute(
            server_url, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'
        )


@pytest.fixture
def engine(server_url: str, template: str) -> Iterator[Engine]:
    url = _clone(server_url, template, "sbc")
    eng = create_engine(url, poolclass=sa.NullPool)
    try:
        yield eng
    finally:
        eng.dispose()
        _admin_execute(
            server_url, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'
        )


def _rows(engine: Engine, sql: str) -> list:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql)).all()]


def _spy_polygonise(monkeypatch) -> list[int]:
    """Record how many lines each polygonisation is given (the real one runs)."""
    calls: list[int] = []
    real = cells.polygonize_within

    def recording(lines, area):
        calls.append(len(lines))
        return real(lines, area)

    monkeypatch.setattr(cells, "polygonize_within", recording)
    return calls


def _bounding_edges(engine: Engine) -> int:
    highways = sorted(cells.BOUNDING_HIGHWAYS)
    with engine.connect() as conn:
        return conn.scalar(
            sa.text("SELECT count(*) FROM walk_edge WHERE highway = ANY(:h)"), {"h": highways}
        )


def test_a_rerun_takes_the_blocks_from_the_cache_and_keeps_every_code(
    engine: Engine, monkeypatch
) -> None:
    (key, blocks, made_at), *more = _rows(engine, CACHE)
    assert not more and blocks > 100
    codes, stored_cells = _rows(engine, CODES), _rows(engine, CELLS)
    calls = _spy_polygonise(monkeypatch)
    again: RunReport = run(engine)
    # the bounding streets were not polygonised (the major roads still are: a few lines)
    assert _bounding_edges(engine) not in calls and len(calls) == 1
    assert again.street_blocks_reused
    assert again.computed_blocks == 0 and again.coverage_reused
    assert again.households_changed_group == 0
    assert _rows(engine, CACHE) == [(key, blocks, made_at)]  # nothing to write again
    assert _rows(engine, CODES) == codes
    assert _rows(engine, CELLS) == stored_cells


def test_the_cache_gives_what_computing_everything_gives(engine: Engine) -> None:
    """A building moved: its footprint is placed again, the others' come from the cache;
    the cells and codes equal those of a run with an empty cache."""
    with engine.begin() as conn:
        moved = conn.scalar(
            sa.text(
                "UPDATE building SET geom = ST_Translate(geom, 0.00001, 0) WHERE id = "
                "(SELECT id FROM building WHERE households > 0 ORDER BY id LIMIT 1 OFFSET 100) "
                "RETURNING id"
            )
        )
    cached = run(engine)
    assert cached.street_blocks_reused and 0 < cached.computed_blocks < 5
    cached_cells, cached_codes = _rows(engine, CELLS), _rows(engine, CODES)
    assert moved in {r[0] for r in cached_cells}
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM street_block_cache"))
        conn.execute(sa.text("DELETE FROM building_cell"))  # every block computed again
    fresh = run(engine)
    assert not fresh.street_blocks_reused and fresh.reused_blocks == 0
    assert _rows(engine, CELLS) == cached_cells
    assert _rows(engine, CODES) == cached_codes
    assert fresh.quality == cached.quality


def test_a_changed_street_cuts_the_blocks_again(engine: Engine, monkeypatch) -> None:
    ((key, blocks, _),) = _rows(engine, CACHE)
    with engine.begin() as conn:
        # the longest residential street between two blocks of one proposed community
        # (one along a community's outline would leave that outline crossing a block)
        conn.execute(
            sa.text(
                "DELETE FROM walk_edge WHERE id = (SELECT e.id FROM walk_edge e "
                "WHERE e.highway = 'residential' AND NOT EXISTS (SELECT 1 FROM community c "
                "WHERE ST_DWithin(ST_Boundary(c.geom)::geography, e.geom::geography, 5)) "
                # cells of two blocks meet at its middle: it separates them
                "AND (SELECT count(DISTINCT bc.block_hash) FROM building_cell bc "
                "WHERE ST_DWithin(bc.geom::geography, "
                "ST_LineInterpolatePoint(e.geom, 0.5)::geography, 1)) >= 2 "
                "ORDER BY ST_Length(e.geom::geography) DESC, e.id LIMIT 1)"
            )
        )
    calls = _spy_polygonise(monkeypatch)
    report = run(engine)
    assert _bounding_edges(engine) in calls  # polygonised again, without that street
    assert not report.street_blocks_reused and report.computed_blocks > 0
    ((new_key, new_blocks, _),) = _rows(engine, CACHE)
    assert new_key != key and new_blocks < blocks
    assert report.quality["gap_m2"] == 0.0 and report.quality["overlap_m2"] == 0.0
    with engine.connect() as conn:
        homeless = conn.scalar(
            sa.text("SELECT count(*) FROM building WHERE households > 0 AND unit_id IS NULL")
        )
        stored = conn.execute(
            sa.text(
                "SELECT blocks, blocks_wkb, footprint_digests, footprint_blocks "
                "FROM street_block_cache"
            )
        ).one()
    assert homeless == 0
    # the row holds what the run used: one block per count, a block per footprint digest
    parts = shapely.get_parts(shapely.from_wkb(bytes(stored.blocks_wkb)))
    placed = np.frombuffer(bytes(stored.footprint_blocks), dtype="<i4")
    assert len(parts) == stored.blocks
    assert len(bytes(stored.footprint_digests)) == 16 * len(placed)
    assert placed.min() >= -1 and placed.max() < stored.blocks
