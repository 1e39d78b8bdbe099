"""The second stage: which community each piece lies in (imported, or proposed here).

Proposed communities are contiguous major-road blocks of about ``community_households``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from gis.delineate import cells as C
from gis.delineate.graph import aggregate
from gis.delineate.model import Inputs, Params
from gis.delineate.partition import repair, split
from gis.delineate.pieces import Pieces

COMMUNITY_MAX = 1.6  # x community_households: 4,000 for 2,500, the seed's upper band
LIGHT_ROUNDS = 2  # clusters, grids, communities: balance matters less than for groups


@dataclass
class Communities:
    """Per piece its community; codes of imported communities ([] until proposed are drawn)."""

    of_piece: np.ndarray
    codes: list[str]
    n: int
    is_imported: bool


def find_communities(inputs: Inputs, params: Params, pieces: Pieces) -> Communities:
    """Return the community of every piece: imported outlines, else proposed ones."""
    if inputs.communities:
        codes = [c for c, _ in inputs.communities]
        polys = np.array([g for _, g in inputs.communities], dtype=object)
        return Communities(C.assign_to_blocks(pieces.raw, polys), codes, len(codes), True)
    of_piece = _propose(params, pieces)
    return Communities(of_piece, [], int(of_piece.max()) + 1, False)


def _propose(params: Params, pieces: Pieces) -> np.ndarray:
    """Contiguous major-road blocks of about a community each; per piece, its community."""
    node_of_block = _community_nodes(params, pieces)
    n_nodes = int(node_of_block.max()) + 1 if len(node_of_block) else 0
    n_nodes = max(n_nodes, len(pieces.majors))
    block_hh = _block_households(pieces)
    block_xy = shapely.get_coordinates(shapely.point_on_surface(pieces.tess.blocks))
    node_of_piece = node_of_block[pieces.block]
    node_hh = np.bincount(node_of_block, weights=block_hh, minlength=n_nodes)
    node_adj = aggregate(pieces.adj, node_of_piece, n_nodes)
    node_n = np.bincount(node_of_block, minlength=n_nodes)
    node_xy = np.zeros((n_nodes, 2))
    np.add.at(node_xy, node_of_block, block_xy)
    node_xy /= np.maximum(node_n, 1)[:, None]
    parts = split(
        np.flatnonzero(node_n > 0).tolist(),
        node_hh,
        node_xy,
        node_adj,
        params.community_households,
        params.band,
        rounds=LIGHT_ROUNDS,
    )
    comm_of_node = np.full(n_nodes, -1)
    for ci, members in enumerate(parts):
        comm_of_node[members] = ci
    # a sliver of a block that the major-road outline put on the wrong side is not next to
    # the rest of its community: it joins the community it touches most
    lab = comm_of_node[node_of_piece].tolist()
    repair(lab, pieces.households.tolist(), pieces.adj)
    return np.unique(np.asarray(lab), return_inverse=True)[1]


def _block_households(pieces: Pieces) -> np.ndarray:
    n_blocks = len(pieces.tess.blocks)
    return np.bincount(pieces.block, weights=pieces.households, minlength=n_blocks)


def _community_nodes(params: Params, pieces: Pieces) -> np.ndarray:
    """Return per street block its node: its major-road block, or a part of one.

    A major-road block holding more than a community's upper bound (a historic centre
    without major roads through it) is cut into contiguous sets of its street blocks of
    about a community each.
    """
    n_major = len(pieces.majors)
    block_hh = _block_households(pieces)
    major_hh = np.bincount(pieces.block_major, weights=block_hh, minlength=n_major)
    node_of_block = pieces.block_major.astype(np.int64).copy()
    too_big = major_hh > params.community_households * COMMUNITY_MAX
    if not too_big.any():
        return node_of_block
    block_xy = shapely.get_coordinates(shapely.point_on_surface(pieces.tess.blocks))
    block_adj = aggregate(pieces.adj, pieces.block, len(pieces.tess.blocks))
    n_nodes = n_major
    for m in np.flatnonzero(too_big).tolist():
        blocks = np.flatnonzero(pieces.block_major == m).tolist()
        for part in split(
            blocks,
            block_hh,
            block_xy,
            block_adj,
            params.community_households,
            params.band,
            rounds=LIGHT_ROUNDS,
        ):
            node_of_block[part] = n_nodes
            n_nodes += 1
    return node_of_block
