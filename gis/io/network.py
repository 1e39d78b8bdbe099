"""The walkable street network: which ways a pedestrian may use, and noding them into a graph.

Ways are split at every node shared with another walkable way (or repeated within one) and
at their ends, so the graph has a vertex at each intersection and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from gis.crs import lonlat_to_metric

WALKABLE_HIGHWAYS = frozenset(
    {
        "trunk",
        "trunk_link",
        "primary",
        "primary_link",
        "secondary",
        "secondary_link",
        "tertiary",
        "tertiary_link",
        "unclassified",
        "residential",
        "living_street",
        "service",
        "pedestrian",
        "footway",
        "path",
        "steps",
        "track",
        "cycleway",
        "corridor",
        "bridleway",
        "road",
    }
)
FOOT_ALLOWED = frozenset({"yes", "designated", "permissive", "official"})
ACCESS_CLOSED = frozenset({"no", "private"})


def is_walkable(tags: dict[str, str]) -> bool:
    """Return whether a way with these tags is open to pedestrians.

    Foot-accessible highway classes only; ``foot=no`` excludes; ``access=private|no``
    excludes unless ``foot`` explicitly allows walking.
    """
    if tags.get("highway") not in WALKABLE_HIGHWAYS:
        return False
    foot = tags.get("foot")
    if foot in ("no", "private", "use_sidepath"):
        return False
    return not (tags.get("access") in ACCESS_CLOSED and foot not in FOOT_ALLOWED)


@dataclass
class WayRecord:
    """A walkable way before noding: its id, class, name and its nodes' keys and positions."""

    source_id: str
    highway: str
    name: str | None
    node_keys: np.ndarray  # int64, one per vertex
    lon: np.ndarray
    lat: np.ndarray


def build_network(
    ways: list[WayRecord], epsg: int, node_source_id: Callable[[int], str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Node ``ways`` into (walk_nodes, walk_edges) tables; lengths in metres.

    Edge ids are ``<way id>:<index of its first vertex>``, stable across re-imports of
    the same data; node ids come from ``node_source_id(key)``.
    """
    empty_nodes = pd.DataFrame({"source_id": [], "geom": []})
    empty_edges = pd.DataFrame(
        {
            "source_id": [],
            "source_key": [],
            "target_key": [],
            "highway": [],
            "name": [],
            "length_m": [],
            "geom": [],
        }
    )
    ways = [w for w in ways if len(w.node_keys) >= 2]
    if not ways:
        return empty_nodes, empty_edges
    sizes = np.array([len(w.node_keys) for w in ways])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    ends = starts + sizes - 1
    keys = np.concatenate([w.node_keys for w in ways]).astype(np.int64)
    lon = np.concatenate([w.lon for w in ways])
    lat = np.concatenate([w.lat for w in ways])

    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    is_split = counts[inverse] >= 2
    is_split[starts] = True
    is_split[ends] = True

    x, y = lonlat_to_metric(lon, lat, epsg)
    step = np.hypot(np.diff(x), np.diff(y))
    cum = np.concatenate([[0.0], np.cumsum(step)])

    # Consecutive split positions inside one way bound an edge.
    split_pos = np.flatnonzero(is_split)
    way_of = np.repeat(np.arange(len(ways)), sizes)
    same_way = way_of[split_pos[:-1]] == way_of[split_pos[1:]]
    e_start = split_pos[:-1][same_way]
    e_end = split_pos[1:][same_way]
    length = cum[e_end] - cum[e_start]
    # A repeated consecutive node is no edge; two distinct nodes that share a position (a
    # footway glued onto a road by a zero-length link) are, or the network would split there.
    keep = (length > 0) | (keys[e_start] != keys[e_end])
    e_start, e_end, length = e_start[keep], e_end[keep], length[keep]

    n_pts = e_end - e_start + 1
    offsets = np.repeat(e_start - np.concatenate([[0], np.cumsum(n_pts)[:-1]]), n_pts)
    pos = np.arange(n_pts.sum()) + offsets
    geoms = shapely.linestrings(
        np.column_stack([lon[pos], lat[pos]]), indices=np.repeat(np.arange(len(e_start)), n_pts)
    )
    w_idx = way_of[e_start]
    edges = pd.DataFrame(
        {
            "source_id": [
                f"{ways[w].source_id}:{p - starts[w]}" for w, p in zip(w_idx, e_start, strict=True)
            ],
            "source_key": [node_source_id(k) for k in keys[e_start]],
            "target_key": [node_source_id(k) for k in keys[e_end]],
            "highway": [ways[w].highway for w in w_idx],
            "name": [ways[w].name for w in w_idx],
            "length_m": np.round(length, 3),
            "geom": geoms,
        }
    )
    used = np.unique(np.concatenate([e_start, e_end]))
    node_keys, first = np.unique(keys[used], return_index=True)
    at = used[first]
    nodes = pd.DataFrame(
        {
            "source_id": [node_source_id(k) for k in node_keys],
            "geom": shapely.points(lon[at], lat[at]),
        }
    )
    return nodes, edges
