"""The walk graph for reach: streets as a CSR matrix, with buildings and facilities attached.

Every building (at a point on its footprint) and every facility is attached to its nearest
street edge by projection: the edge is split at the projected point (an access node) and a
straight stub joins the point to it. Several points on one edge are chained along it in
order, so two neighbours on the same street reach each other along the street, not via its
ends. Distances are metres in a metric CRS, so no path is shorter than the straight line.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import shapely
from scipy import sparse
from scipy.sparse import csgraph

MIN_WEIGHT = 1e-6  # csgraph drops zero weights as non-edges; coincident points stay linked


@dataclass
class Network:
    """Street nodes and edges in metres."""

    node_ids: np.ndarray  # database ids of walk_node, one per row of xy
    xy: np.ndarray  # (n, 2)
    edge_u: np.ndarray  # positions in node arrays
    edge_v: np.ndarray
    edge_geoms: np.ndarray  # metric LineStrings, drawn from u to v


@dataclass
class WalkGraph:
    """The attached graph: street nodes, access nodes, leaves of leaf points, "nowhere"."""

    matrix: sparse.csr_matrix
    n_street: int
    point_node: np.ndarray  # graph node of each point: its leaf, else its access point
    point_extra_m: np.ndarray  # metres from that node to the point (0 for leaves)
    point_edge: np.ndarray  # street edge each point is attached to (-1: none)
    point_offset_m: np.ndarray  # straight stub from the point to the street
    component: np.ndarray  # connected component of every graph node
    node_xy: np.ndarray  # (n_nodes, 2) metres: street nodes, access points, points
    # Each street edge as the ordered chain of graph nodes along it, with distances from its
    # start: chain_nodes[chain_start[e]:chain_start[e + 1]] (ends included).
    chain_start: np.ndarray
    chain_nodes: np.ndarray
    chain_t: np.ndarray
    edge_geoms: np.ndarray  # metric street edges, for attaching new points later
    tree: shapely.STRtree | None  # over the usable edges only
    usable_edges: np.ndarray  # edge index of each tree item

    @property
    def n_nodes(self) -> int:
        return int(self.matrix.shape[0])

    def point_distance(self, node_dist: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Distances to ``points`` given distances to every graph node (last axis)."""
        return node_dist[..., self.point_node[points]] + self.point_extra_m[points]


def _undirected_csr(u: np.ndarray, v: np.ndarray, w: np.ndarray, n: int) -> sparse.csr_matrix:
    """Symmetric CSR of edges u–v; parallel edges keep their shortest weight."""
    rows = np.concatenate([u, v])
    cols = np.concatenate([v, u])
    weights = np.maximum(np.concatenate([w, w]), MIN_WEIGHT)
    order = np.lexsort((weights, cols, rows))
    rows, cols, weights = rows[order], cols[order], weights[order]
    first = np.ones(len(rows), bool)
    first[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
    return sparse.csr_matrix((weights[first], (rows[first], cols[first])), shape=(n, n))


def snappable_edges(net: Network, min_component_share: float) -> np.ndarray:
    """Return the edges of street pieces big enough to attach points to.

    OSM's walkable ways fall into many pieces (a footway drawn inside a compound, not joined
    to the street). A building next to such a fragment is not cut off in reality: its
    residents walk out of the gate. So points attach only to pieces with at least
    ``min_component_share`` of the largest piece's nodes; true islands of that size stay
    islands, and their buildings are reported unreachable.
    """
    n = len(net.xy)
    if not len(net.edge_u):
        return np.array([], dtype=np.int64)
    street = _undirected_csr(net.edge_u, net.edge_v, np.ones(len(net.edge_u)), n)
    _, comp = csgraph.connected_components(street, directed=False)
    sizes = np.bincount(comp)
    big = sizes >= max(2, min_component_share * sizes.max())
    return np.flatnonzero(big[comp[net.edge_u]])


def _nearest_edges(
    tree: shapely.STRtree, usable: np.ndarray, pts: np.ndarray, max_snap_m: float
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest usable edge of each point within ``max_snap_m``: (point idx, edge idx).

    A small search radius first: the tree's cost grows with the candidates inside the
    radius, and nearly every building is within 100 m of a street. The rest are searched
    again with the full radius.
    """
    found_pts, found_edges = [], []
    todo = np.arange(len(pts))
    workers = max(1, min(4, os.cpu_count() or 1))
    for radius in sorted({min(r, max_snap_m) for r in (100.0, max_snap_m)}):
        if not len(todo):
            break
        # GEOS releases the GIL: one chunk per core
        chunks = [c for c in np.array_split(todo, workers) if len(c)]
        with ThreadPoolExecutor(len(chunks)) as pool:
            results = list(
                pool.map(
                    lambda c, r=radius: tree.query_nearest(
                        pts[c], all_matches=False, max_distance=r
                    ),
                    chunks,
                )
            )
        for chunk, (idx, hits) in zip(chunks, results, strict=True):
            found_pts.append(chunk[idx])
            found_edges.append(usable[hits])
        done = np.concatenate([chunk[idx] for chunk, (idx, _) in zip(chunks, results, strict=True)])
        todo = np.setdiff1d(todo, done, assume_unique=True)
    return np.concatenate(found_pts), np.concatenate(found_edges)


def attach_points(
    net: Network,
    points_xy: np.ndarray,
    *,
    max_snap_m: float = 1_000.0,
    min_component_share: float = 0.05,
    leaf_mask: np.ndarray | None = None,
) -> WalkGraph:
    """Build the graph with ``points_xy`` attached to their nearest street edges.

    Points in ``leaf_mask`` (default: all) get a leaf node joined to their access point by
    the stub: searches can start there (facilities). The others (buildings, a million of
    them) stay off the graph: their distance is their access point's plus the stub, which
    keeps the graph a third smaller. Points farther than ``max_snap_m`` from any usable
    street are left unattached, so they reach nothing rather than something absurdly far.
    """
    n_street = len(net.xy)
    n_pts = len(points_xy)
    lengths = shapely.length(net.edge_geoms)
    pts = shapely.points(points_xy)
    usable = snappable_edges(net, min_component_share)
    tree = shapely.STRtree(net.edge_geoms[usable]) if len(usable) else None
    if tree is not None and n_pts:
        idx_pts, idx_edges = _nearest_edges(tree, usable, pts, max_snap_m)
    else:
        idx_pts = idx_edges = np.array([], dtype=np.int64)
    point_edge = np.full(n_pts, -1, dtype=np.int64)
    point_edge[idx_pts] = idx_edges
    attached = np.flatnonzero(point_edge >= 0)
    edges_of = point_edge[attached]
    along = shapely.line_locate_point(net.edge_geoms[edges_of], pts[attached])
    offset = np.full(n_pts, np.inf)
    offset[attached] = shapely.distance(pts[attached], net.edge_geoms[edges_of])

    # access nodes: one per attached point, numbered after the street nodes; then a leaf
    # per point of leaf_mask; then one isolated node standing for "nowhere"
    access = n_street + np.arange(len(attached))
    is_leaf = np.ones(n_pts, bool) if leaf_mask is None else np.asarray(leaf_mask, bool)
    n_leaf = int(is_leaf.sum())
    nowhere = n_street + len(attached) + n_leaf
    n_nodes = nowhere + 1
    point_node = np.full(n_pts, nowhere, dtype=np.int64)
    point_node[attached] = access
    point_node[is_leaf] = n_street + len(attached) + np.arange(n_leaf)
    point_extra = np.where(is_leaf, 0.0, offset)  # stub still to walk from the node

    # chain the access nodes along each edge, in order of distance from u
    order = np.lexsort((along, edges_of))
    e_sorted, t_sorted, a_sorted = edges_of[order], along[order], access[order]
    starts = np.ones(len(order), bool)
    starts[1:] = e_sorted[1:] != e_sorted[:-1]
    ends = np.ones(len(order), bool)
    ends[:-1] = e_sorted[1:] != e_sorted[:-1]
    u_parts = [net.edge_u[e_sorted[starts]], a_sorted[~ends]]
    v_parts = [a_sorted[starts], a_sorted[1:][~ends[:-1]]]
    w_parts = [t_sorted[starts], np.diff(t_sorted)[~ends[:-1]]]
    u_parts.append(a_sorted[ends])
    v_parts.append(net.edge_v[e_sorted[ends]])
    w_parts.append(lengths[e_sorted[ends]] - t_sorted[ends])
    # untouched edges stay whole
    touched = np.zeros(len(lengths), bool)
    touched[edges_of] = True
    u_parts.append(net.edge_u[~touched])
    v_parts.append(net.edge_v[~touched])
    w_parts.append(lengths[~touched])
    # stubs: leaf to its access node
    stub = attached[is_leaf[attached]]
    u_parts.append(point_node[stub])
    v_parts.append(access[is_leaf[attached]])
    w_parts.append(offset[stub])
    matrix = _undirected_csr(
        np.concatenate(u_parts), np.concatenate(v_parts), np.concatenate(w_parts), n_nodes
    )
    _, component = csgraph.connected_components(matrix, directed=False)
    node_xy = np.vstack(
        [
            net.xy.reshape(-1, 2),
            shapely.get_coordinates(
                shapely.line_interpolate_point(net.edge_geoms[edges_of], along)
            ).reshape(-1, 2),
            points_xy.reshape(-1, 2)[is_leaf],
            np.full((1, 2), np.nan),
        ]
    )
    chain_start, chain_nodes, chain_t = _chains(net, lengths, e_sorted, t_sorted, a_sorted)
    return WalkGraph(
        matrix=matrix,
        n_street=n_street,
        point_node=point_node,
        point_extra_m=point_extra,
        point_edge=point_edge,
        point_offset_m=offset,
        component=component,
        node_xy=node_xy,
        chain_start=chain_start,
        chain_nodes=chain_nodes,
        chain_t=chain_t,
        edge_geoms=net.edge_geoms,
        tree=tree,
        usable_edges=usable,
    )


def _chains(
    net: Network,
    lengths: np.ndarray,
    e_sorted: np.ndarray,
    t_sorted: np.ndarray,
    a_sorted: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return every edge's ordered node chain u, access nodes…, v as flat arrays."""
    n_edges = len(lengths)
    edge = np.concatenate([np.arange(n_edges), e_sorted, np.arange(n_edges)])
    rank = np.concatenate([np.zeros(n_edges), np.ones(len(e_sorted)), np.full(n_edges, 2.0)])
    t = np.concatenate([np.zeros(n_edges), t_sorted, lengths])
    node = np.concatenate([net.edge_u, a_sorted, net.edge_v])
    order = np.lexsort((t, rank, edge))
    starts = np.searchsorted(edge[order], np.arange(n_edges + 1))
    return starts, node[order], t[order]
