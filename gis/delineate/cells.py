"""Building cells: the land around each building, bounded by streets.

Streets cut the study area into street blocks (enclosures). Inside a block, every point of
land goes to the nearest building wall: a Voronoi diagram of points sampled along the
footprints, dissolved per building and clipped to the block (the idea of momepy's enclosed
tessellation, computed here block by block with GEOS directly). A block with no building
stays an empty block; a block with one building is that building's cell.

Cells tile the study area: every delineation level is a union of cells, so it tiles too.
Everything here works in metres (a projected CRS chosen by the caller).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import shapely
from shapely import STRtree

# Streets that bound a block. Footways, paths and service roads run inside compounds; they
# do not cut a compound in two.
BOUNDING_HIGHWAYS = frozenset(
    {
        "motorway",
        "motorway_link",
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
        "pedestrian",
        "road",
    }
)
# Major roads: residents' groups never cross them (configurable).
MAJOR_HIGHWAYS = frozenset(
    {
        "motorway",
        "motorway_link",
        "trunk",
        "trunk_link",
        "primary",
        "primary_link",
        "secondary",
        "secondary_link",
        "tertiary",
        "tertiary_link",
    }
)
SAMPLE_STEP_M = 3.0  # spacing of the points sampled along footprint walls
JITTER_M = 0.0005
GRID_M = 0.01  # coordinates are snapped to 1 cm so that neighbouring cells share edges


# Part of every street-blocks key: change it when ``polygonize_within`` or
# ``assign_to_blocks`` change what they give, so that blocks cached before are not reused.
BLOCKS_METHOD = b"street-blocks/1 grid=0.01"


@dataclass
class StreetBlocks:
    """The street blocks of a study area under the key of what cut them, and which block
    each footprint lies in (by a digest of the footprint): what a later run can reuse."""

    key: str
    blocks: np.ndarray
    footprint_block: dict[bytes, int]  # footprint digest -> its block (-1: outside)
    reused: bool = False  # the blocks came from an earlier run (no polygonising)
    changed: bool = True  # differs from what the earlier run left: to be stored


@dataclass
class Tessellation:
    """Blocks and cells of a study area (metric coordinates)."""

    blocks: np.ndarray  # polygons: the street blocks, tiling the study area
    block_hash: list[str]  # per block: hash of its outline and its buildings
    building_block: np.ndarray  # per building: index of its block (-1: outside the area)
    cells: np.ndarray  # per building: its cell (None when outside the area)
    street_blocks: StreetBlocks | None = None  # the blocks with their key


def study_area(footprints: np.ndarray, street_lines: np.ndarray, margin_m: float = 30.0):
    """Return the area the cells tile: the convex hull of buildings and streets, plus a margin."""
    every = np.concatenate([footprints, street_lines])
    hull = shapely.convex_hull(shapely.geometrycollections(list(every)))
    return shapely.buffer(hull, margin_m, quad_segs=2)


def polygonize_within(lines: np.ndarray, area) -> np.ndarray:
    """Return the faces that ``lines`` cut ``area`` into; they tile ``area`` exactly."""
    clipped = shapely.intersection(lines, area) if len(lines) else np.array([], dtype=object)
    clipped = clipped[~shapely.is_empty(clipped)]
    noded = shapely.union_all(np.concatenate([clipped, [shapely.boundary(area)]]))
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    faces = _polygonal(shapely.set_precision(faces[shapely.area(faces) > 0], GRID_M))
    return faces[~shapely.is_empty(faces)]  # a sliver can vanish on the grid


def blocks_key(area, lines: np.ndarray) -> str:
    """Hash of what ``polygonize_within(lines, area)`` depends on: equal keys, equal blocks.

    The lines are hashed in a canonical order (normalised, sorted), so the same streets read
    in another order give the same key.
    """
    h = hashlib.blake2b(digest_size=16)
    h.update(BLOCKS_METHOD)
    h.update(_normalised_wkb(np.array([area], dtype=object))[0])
    for w in sorted(_normalised_wkb(lines) if len(lines) else []):
        h.update(w)
    return h.hexdigest()


def footprint_digests(footprint_wkb: list[bytes]) -> list[bytes]:
    """Per footprint a 16-byte digest of its normalised WKB (what its block is cached by)."""
    return [hashlib.blake2b(w, digest_size=16).digest() for w in footprint_wkb]


def _block_hash(block_wkb: bytes, footprint_wkbs: list[bytes]) -> str:
    """Hash of a block's outline and its footprints (normalised WKB)."""
    h = hashlib.blake2b(digest_size=12)
    h.update(block_wkb)
    for g in footprint_wkbs:
        h.update(g)
    return h.hexdigest()


def _normalised_wkb(geoms: np.ndarray) -> list[bytes]:
    return list(shapely.to_wkb(shapely.normalize(np.asarray(geoms, dtype=object))))


def assign_to_blocks(footprints: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    """Return each footprint's block: the one holding most of it (-1 when none)."""
    out = np.full(len(footprints), -1, dtype=np.int64)
    if not len(blocks) or not len(footprints):
        return out
    # Most footprints lie wholly inside one block: a containment test against the block
    # (prepared) settles those; only the others need the areas of their intersections
    # (and so do footprints inside two overlapping outlines, as before).
    bi, fi = STRtree(footprints).query(blocks, predicate="contains")
    once = np.bincount(fi, minlength=len(footprints))[fi] == 1
    out[fi[once]] = bi[once]
    rest = np.flatnonzero(out < 0)
    out[rest] = _largest_share(footprints[rest], blocks)
    return out


def _largest_share(footprints: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    out = np.full(len(footprints), -1, dtype=np.int64)
    if not len(footprints):
        return out
    tree = STRtree(blocks)
    fi, bi = tree.query(footprints, predicate="intersects")
    if not len(fi):
        return out
    share = shapely.area(shapely.intersection(footprints[fi], blocks[bi]))
    order = np.lexsort((-share, fi))  # per footprint, the largest share first
    fi, bi = fi[order], bi[order]
    first = np.ones(len(fi), bool)
    first[1:] = fi[1:] != fi[:-1]
    out[fi[first]] = bi[first]
    return out


def _sample_points(geoms: np.ndarray, owners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rings = shapely.segmentize(shapely.boundary(geoms), SAMPLE_STEP_M)
    xy, idx = shapely.get_coordinates(rings, return_index=True)
    own = owners[idx]
    key = np.round(xy / GRID_M).astype(np.int64)
    _, first = np.unique(key, axis=0, return_index=True)  # GEOS drops repeated points
    first.sort()
    return xy[first], own[first]


def cells_of_block(block, footprints: np.ndarray) -> np.ndarray:
    """Return one cell per footprint; together they tile ``block``.

    The work is done around a local origin (whole metres, so the shift is exact both
    ways): GEOS's Voronoi diagram of many co-circular points (rows of identical buildings)
    at UTM magnitudes can come out self-intersecting, and near the origin it does not.
    """
    n = len(footprints)
    if n == 1:
        return np.array([block], dtype=object)  # blocks are already on the grid
    x0, y0, _x1, _y1 = shapely.bounds(block)
    origin = np.array([np.floor(x0), np.floor(y0)])
    local = _cells_near_origin(
        shapely.transform(block, lambda c: c - origin),
        shapely.transform(np.asarray(footprints, dtype=object), lambda c: c - origin),
    )
    return shapely.transform(local, lambda c: c + origin)


def _cells_near_origin(block, footprints: np.ndarray) -> np.ndarray:
    n = len(footprints)
    shapely.prepare(block)
    parts = np.array(footprints, dtype=object)
    crossing = ~shapely.contains(block, parts)  # most footprints lie inside their block
    parts[crossing] = shapely.intersection(parts[crossing], block)
    xy, owner = _sample_points(parts, np.arange(n))
    # Rows of identical buildings put many points on one circle, where GEOS's Voronoi
    # diagram can come out self-intersecting. A fixed sub-millimetre jitter breaks the tie
    # (and moves no cell edge by more than that).
    xy = xy + np.random.default_rng(len(xy)).uniform(-JITTER_M, JITTER_M, xy.shape)
    present = np.unique(owner)
    if len(present) < n:  # a footprint that lies only on the block's edge: give it a point
        missing = np.setdiff1d(np.arange(n), present)
        pts = shapely.get_coordinates(shapely.point_on_surface(footprints[missing]))
        xy, owner = np.vstack([xy, pts]), np.concatenate([owner, missing])
    vor = shapely.get_parts(
        shapely.voronoi_polygons(shapely.multipoints(xy), extend_to=block, ordered=True)
    )
    if len(vor) != len(xy):  # GEOS merged near-coincident points: match regions by position
        tree = STRtree(shapely.points(xy))
        region_owner = owner[tree.nearest(shapely.point_on_surface(vor))]
    else:
        region_owner = owner
    # Dissolve each footprint's Voronoi regions first (they form an exact coverage, so the
    # cheap coverage union applies), then clip one region per footprint to the block.
    order = np.argsort(region_owner, kind="stable")
    vor, region_owner = vor[order], region_owner[order]
    bounds = np.searchsorted(region_owner, np.arange(n + 1))
    regions = np.empty(n, dtype=object)
    for i in range(n):
        group = vor[bounds[i] : bounds[i + 1]]
        regions[i] = _dissolve(group)
    # Voronoi edges between sampled walls zigzag: simplify them as a coverage (neighbours
    # stay matched) to a tenth of the sampling step before clipping.
    regions = shapely.coverage_simplify(regions, SAMPLE_STEP_M / 4, simplify_boundary=False)
    return _polygonal(shapely.intersection(regions, block))


def _dissolve(regions: np.ndarray):
    """Union of one footprint's Voronoi regions.

    Usually an exact coverage (the fast coverage union applies); on regular layouts (rows of
    identical blocks) GEOS can emit regions whose shared edges are not noded alike, and the
    general union, slower but robust, takes over.
    """
    if not len(regions):
        return shapely.Polygon()
    try:
        return shapely.coverage_union_all(regions)
    except shapely.errors.GEOSException:
        pass
    try:
        return shapely.union_all(regions)
    except shapely.errors.GEOSException:  # snap-rounding overlay: robust on any input
        return shapely.union_all(regions, grid_size=GRID_M)


def node_coverage(pieces: np.ndarray) -> np.ndarray:
    """Return ``pieces`` (cells and empty blocks) rebuilt as one exact coverage.

    Each cell was clipped on its own, so neighbours along a street differ in their
    vertices by float noise. Noding all edges once (snap-rounded to the 1 cm grid) and
    rebuilding every piece from the faces gives pieces that share their edges exactly:
    unions of them are exact and cheap, with no slivers, gaps or overlaps.
    """
    lines = shapely.boundary(pieces)
    noded = shapely.union_all(lines, grid_size=GRID_M)
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    faces = faces[shapely.area(faces) > 0]
    inside = shapely.point_on_surface(faces)
    tree = STRtree(pieces)
    fi, pi = tree.query(inside, predicate="intersects")
    owner = np.full(len(faces), -1, dtype=np.int64)
    owner[fi[::-1]] = pi[::-1]  # the first piece that holds the face's inner point
    lost = owner < 0
    if lost.any():  # snapping dust between pieces: the nearest piece takes it
        owner[lost] = tree.nearest(inside[lost])
    order = np.argsort(owner, kind="stable")
    faces, owner = faces[order], owner[order]
    bounds = np.searchsorted(owner, np.arange(len(pieces) + 1))
    members: list[list] = [list(faces[bounds[i] : bounds[i + 1]]) for i in range(len(pieces))]
    out = np.array(
        [shapely.coverage_union_all(m) if m else shapely.Polygon() for m in members], dtype=object
    )
    for _ in range(4):  # a piece handed on can leave its new owner in pieces: repeat
        if not _give_away_detached_parts(out, members):
            break
    return out


def _largest_part(geom):
    parts = shapely.get_parts(geom)
    return parts[int(np.argmax(shapely.area(parts)))] if len(parts) else geom


def _give_away_detached_parts(out: np.ndarray, members: list[list]) -> bool:
    """A cell in several pieces (a Voronoi region wrapped round a corner of its block)
    keeps its largest piece; each other piece joins the neighbour it shares most edge with,
    so that every cell, and every union of touching cells, is one polygon."""
    multi = np.flatnonzero(shapely.get_num_geometries(out) > 1)
    if not len(multi):
        return False
    tree = STRtree(out)
    changed: set[int] = set()
    for i in multi.tolist():
        parts = shapely.get_parts(out[i])
        keep = int(np.argmax(shapely.area(parts)))
        for j, part in enumerate(parts):
            if j == keep:
                continue
            near = [n for n in tree.query(part, predicate="intersects").tolist() if n != i]
            if not near:
                continue
            # the neighbour's main body, not a stray piece of its own: handing a piece to a
            # neighbour through that neighbour's stray piece would only move the problem
            bodies = [_largest_part(out[n]) for n in near]
            shared = shapely.length(shapely.intersection(part, bodies))
            if shared.max() <= 0:
                continue
            target = near[int(np.argmax(shared))]
            inside = [f for f in members[i] if shapely.covers(part, shapely.point_on_surface(f))]
            members[i] = [f for f in members[i] if f not in inside]
            members[target].extend(inside)
            changed.update((i, target))
    for i in changed:
        out[i] = shapely.coverage_union_all(members[i]) if members[i] else shapely.Polygon()
    return bool(changed)


def _polygonal(geoms: np.ndarray) -> np.ndarray:
    """Keep only polygon parts (set_precision and intersections can leave stray lines)."""
    out = np.array(geoms, dtype=object)
    mixed = ~np.isin(shapely.get_type_id(out), (3, 6))
    for i in np.flatnonzero(mixed):
        parts = [p for p in shapely.get_parts(out[i]) if shapely.get_type_id(p) == 3]
        out[i] = shapely.multipolygons(parts) if parts else shapely.Polygon()
    return out


def tessellate(
    footprints: np.ndarray,
    street_lines: np.ndarray,
    area,
    reuse: dict[str, list] | None = None,
    stored: StreetBlocks | None = None,
) -> Tessellation:
    """Cut ``area`` into street blocks and every block into building cells.

    ``reuse`` maps a block hash to cells already computed for it (in the order of that
    block's footprints); those blocks are not computed again. ``stored`` holds the street
    blocks of an earlier run: when its key is this run's, the blocks are taken from it
    (not polygonised again) and so is the block of every footprint it already placed.
    """
    key = blocks_key(area, street_lines)
    footprint_wkb = _normalised_wkb(footprints)
    digests = footprint_digests(footprint_wkb)
    reused = stored is not None and stored.key == key
    if reused:
        blocks, known = stored.blocks, stored.footprint_block
    else:
        blocks, known = polygonize_within(street_lines, area), {}
    block_of = np.array([known.get(d, -2) for d in digests], dtype=np.int64)
    unknown = np.flatnonzero(block_of == -2)
    if len(unknown):
        block_of[unknown] = assign_to_blocks(footprints[unknown], blocks)
    placed = dict(zip(digests, block_of.tolist(), strict=True))
    street_blocks = StreetBlocks(key, blocks, placed, reused, not reused or placed != known)
    order = np.argsort(block_of, kind="stable")
    bounds = np.searchsorted(block_of[order], np.arange(-1, len(blocks) + 1))
    cells = np.full(len(footprints), None, dtype=object)
    hashes = []
    block_wkb = _normalised_wkb(blocks)
    for b in range(len(blocks)):
        members = order[bounds[b + 1] : bounds[b + 2]]
        h = _block_hash(block_wkb[b], [footprint_wkb[i] for i in members.tolist()])
        hashes.append(h)
        if not len(members):
            continue
        if reuse is not None and h in reuse and len(reuse[h]) == len(members):
            cells[members] = reuse[h]
        else:
            cells[members] = cells_of_block(blocks[b], footprints[members])
    return Tessellation(blocks, hashes, block_of, cells, street_blocks)
