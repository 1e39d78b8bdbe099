"""The first stage: land cut into pieces (building cells, then empty blocks) and their graph.

Every level above is a set of pieces; this stage also says which street block, which
major-road block and which locked group each piece lies in.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import shapely
from shapely import STRtree

from gis.delineate import cells as C
from gis.delineate.graph import shared_edges, without_frozen
from gis.delineate.model import Inputs, Params

COVERAGE = "__coverage__"  # key in ``reuse`` for the noded pieces of an earlier run
# key in ``reuse`` for the street blocks of an earlier run (``cells.StreetBlocks``);
# ``tessellate`` leaves there the blocks this run used, for the caller to store
BLOCKS = "__street_blocks__"
# key in ``reuse`` for the codes of the communities an earlier run proposed: they are unions
# of that run's cells already, so the blocks are not cut along them (imported ones are)
PROPOSED = "__proposed__"


@dataclass
class Pieces:
    """Building cells (the first ``n_cells``) and empty blocks, as one exact coverage."""

    tess: C.Tessellation
    geom: np.ndarray  # noded pieces (what every level is a union of)
    raw: np.ndarray  # the same before noding
    inside: np.ndarray  # per cell piece, its building
    empty_blocks: np.ndarray  # per land piece, its block
    block: np.ndarray  # per piece, its street block
    major: np.ndarray  # per piece, its major-road block
    households: np.ndarray
    xy: np.ndarray  # a point inside each piece
    frozen: np.ndarray  # per piece, the locked group it lies in (-1: none)
    frozen_polys: np.ndarray
    frozen_pairs: np.ndarray  # (piece, locked group) for every piece within a locked group
    frozen_households: np.ndarray | None  # per locked group, as stored (None: from pieces)
    adj: list[dict[int, float]]  # neighbours and shared edge lengths
    free_adj: list[dict[int, float]]  # the same without locked land
    majors: np.ndarray  # major-road blocks
    block_major: np.ndarray  # per street block, its major-road block
    cover_key: str
    coverage_reused: bool

    @property
    def n_cells(self) -> int:
        return len(self.inside)


def coverage_key(block_hash: list[str], building_block: np.ndarray) -> str:
    """Hash of every block and of which building lies in which: equal keys, equal cells."""
    h = hashlib.blake2b(digest_size=16)
    for b in block_hash:
        h.update(b.encode())
    h.update(np.ascontiguousarray(building_block, dtype=np.int64).tobytes())
    return h.hexdigest()


def _stored_coverage(
    stored: tuple | None,
    key: str,
    inside: np.ndarray,
    block_hash: list[str],
    empty_blocks: np.ndarray,
) -> np.ndarray | None:
    """The noded pieces of an earlier run with the same key, in this run's order.

    ``stored`` is (key, cells per building index, {block hash: land piece}).
    """
    if stored is None or stored[0] != key:
        return None
    _key, cells, land = stored
    wanted = [block_hash[b] for b in empty_blocks.tolist()]
    if any(cells[i] is None for i in inside) or any(h not in land for h in wanted):
        return None
    return np.concatenate(
        [np.asarray(cells, dtype=object)[inside], np.array([land[h] for h in wanted], dtype=object)]
    )


def _major_of_blocks(blocks: np.ndarray, majors: np.ndarray) -> np.ndarray:
    """Return per street block the major-road block it lies in."""
    block_major = C.assign_to_blocks(shapely.point_on_surface(blocks), majors)
    lost = block_major < 0
    if lost.any():  # a point on an edge after snapping: the nearest major block
        block_major[lost] = STRtree(majors).nearest(shapely.point_on_surface(blocks[lost]))
    return block_major


def _frozen_of(raw: np.ndarray, frozen_polys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return per piece the locked group it lies within (-1: none), and every such pair.

    A divided building's cell lies within each locked group holding one of its parts.
    """
    out = np.full(len(raw), -1, dtype=np.int64)
    pairs = np.zeros((2, 0), dtype=np.int64)
    if len(frozen_polys):
        pairs = STRtree(frozen_polys).query(shapely.point_on_surface(raw), predicate="within")
        out[pairs[0]] = pairs[1]
    return out, pairs


def _frozen_households(frozen: list, piece_frozen: np.ndarray, raw: np.ndarray):
    """The locked groups' households when given as (code, outline, households)."""
    if not frozen or len(frozen[0]) < 3:
        return None
    return np.array([f[2] for f in frozen], dtype=float)


def imported_outlines(inputs: Inputs, reuse: dict | None) -> np.ndarray:
    """The outlines of the communities that were imported (not proposed by a run)."""
    proposed = (reuse or {}).get(PROPOSED, set())
    return np.array([g for c, g in inputs.communities or [] if c not in proposed], dtype=object)


def tessellate(inputs: Inputs, reuse: dict | None) -> tuple[C.Tessellation, object]:
    """Return the street blocks and building cells of the study area, and the area.

    Imported community outlines cut the blocks like streets, so that no cell crosses one
    and each community is a union of cells even where its boundary does not follow a
    street. When every community is imported the study area is their union (land outside
    every community belongs to no area); else it also takes in what they add to the convex
    hull of buildings and streets.
    """
    is_bounding = np.isin(inputs.highways, list(C.BOUNDING_HIGHWAYS))
    lines = inputs.street_lines[is_bounding]
    area = C.study_area(inputs.footprints, inputs.street_lines)
    outlines = imported_outlines(inputs, reuse)
    if len(outlines):
        union = shapely.union_all(outlines)
        every = len(outlines) == len(inputs.communities or [])
        area = union if every else shapely.union_all([area, union])
        lines = np.concatenate([lines, shapely.boundary(outlines)])
    stored = (reuse or {}).get(BLOCKS)
    tess = C.tessellate(inputs.footprints, lines, area, reuse, stored)
    if reuse is not None:
        reuse[BLOCKS] = tess.street_blocks
    return tess, area


def draw_pieces(
    inputs: Inputs,
    params: Params,
    cut: tuple[C.Tessellation, object],
    reuse: dict | None,
    frozen: list,
) -> Pieces:
    """Node the cells and empty blocks of ``cut`` (from ``tessellate``) and find neighbours."""
    tess, area = cut
    is_major = np.isin(inputs.highways, list(params.major_highways))
    inside = np.flatnonzero(tess.building_block >= 0)
    empty_blocks = np.setdiff1d(np.arange(len(tess.blocks)), tess.building_block[inside])
    raw = np.concatenate([tess.cells[inside], tess.blocks[empty_blocks]])
    cover_key = coverage_key(tess.block_hash, tess.building_block)
    stored = (reuse or {}).get(COVERAGE)
    geom = _stored_coverage(stored, cover_key, inside, tess.block_hash, empty_blocks)
    coverage_reused = geom is not None
    if geom is None:  # some block changed: node everything again
        geom = C.node_coverage(raw)
    hh = inputs.households.astype(float)
    piece_building = np.concatenate([inside, np.full(len(empty_blocks), -1)])
    block = np.concatenate([tess.building_block[inside], empty_blocks])
    majors = C.polygonize_within(inputs.street_lines[is_major], area)
    block_major = _major_of_blocks(tess.blocks, majors)
    adj = shared_edges(geom)
    frozen_polys = np.array([f[1] for f in frozen], dtype=object)
    piece_frozen, frozen_pairs = _frozen_of(raw, frozen_polys)
    return Pieces(
        tess=tess,
        geom=geom,
        raw=raw,
        inside=inside,
        empty_blocks=empty_blocks,
        block=block,
        major=block_major[block],
        households=np.where(piece_building >= 0, hh[np.maximum(piece_building, 0)], 0.0),
        xy=shapely.get_coordinates(shapely.point_on_surface(raw)),
        frozen=piece_frozen,
        frozen_polys=frozen_polys,
        frozen_pairs=frozen_pairs,
        frozen_households=_frozen_households(frozen, piece_frozen, raw),
        adj=adj,
        # the rest of the run does not see frozen land: it is nobody's neighbour
        free_adj=without_frozen(adj, piece_frozen) if len(frozen_polys) else adj,
        majors=majors,
        block_major=block_major,
        cover_key=cover_key,
        coverage_reused=coverage_reused,
    )
