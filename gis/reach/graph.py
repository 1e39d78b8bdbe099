"""The walk graph for reach: streets as a CSR matrix, with buildings and facilities attached.

Every building (at a point on its footprint) and every facility is attached to its nearest
street edge by projection: the edge is split at the projected point (an access node) and a
straight stub joins the point to it. Several points on one edge are chained along it in
order, so two neighbours on the same street reach each other along the street, not via its
ends. Distances are metres in a metric CRS, so no path is shorter than the straight line.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyproj
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
    """The attached graph: street nodes, then access nodes, then one leaf per point."""

    matrix: sparse.csr_matrix
    n_street: int
    point_node: np.ndarray  # graph node of each attached point
    point_edge: np.ndarray  # street edge each point is attached to (-1: none)
    point_offset_m: np.ndarray  # straight stub from the point to the street
    component: np.ndarray  # connected component of every graph node

    @property
    def n_nodes(self) -> int:
        return int(self.matrix.shape[0])


def project(transformer: pyproj.Transformer, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Return (n, 2) metric coordinates of lon/lat arrays."""
    x, y = transformer.transform(np.asarray(lon, float), np.asarray(lat, float))
    return np.column_stack([x, y])


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


def attach_points(net: Network, points_xy: np.ndarray, *, max_snap_m: float = 1_000.0) -> WalkGraph:
    """Build the graph with ``points_xy`` attached to their nearest street edges.

    Points farther than ``max_snap_m`` from any street are left unattached (a leaf node
    with no edge), so they reach nothing rather than something absurdly far.
    """
    n_street = len(net.xy)
    n_pts = len(points_xy)
    lengths = shapely.length(net.edge_geoms)
    pts = shapely.points(points_xy)
    if len(net.edge_geoms) and n_pts:
        tree = shapely.STRtree(net.edge_geoms)
        idx_pts, idx_edges = tree.query_nearest(pts, all_matches=False, max_distance=max_snap_m)
    else:
        idx_pts = idx_edges = np.array([], dtype=np.int64)
    point_edge = np.full(n_pts, -1, dtype=np.int64)
    point_edge[idx_pts] = idx_edges
    attached = np.flatnonzero(point_edge >= 0)
    edges_of = point_edge[attached]
    along = shapely.line_locate_point(net.edge_geoms[edges_of], pts[attached])
    offset = np.full(n_pts, np.inf)
    offset[attached] = shapely.distance(pts[attached], net.edge_geoms[edges_of])

    # access nodes: one per attached point, numbered after the street nodes
    access = n_street + np.arange(len(attached))
    leaf = n_street + len(attached) + np.arange(n_pts)
    n_nodes = n_street + len(attached) + n_pts

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
    # stubs: point leaf to its access node
    u_parts.append(leaf[attached])
    v_parts.append(access)
    w_parts.append(offset[attached])
    matrix = _undirected_csr(
        np.concatenate(u_parts), np.concatenate(v_parts), np.concatenate(w_parts), n_nodes
    )
    _, component = csgraph.connected_components(matrix, directed=False)
    return WalkGraph(
        matrix=matrix,
        n_street=n_street,
        point_node=leaf,
        point_edge=point_edge,
        point_offset_m=offset,
        component=component,
    )
