"""Generate a deterministic synthetic Chinese city for scale benchmarks (``gridatlas synth``).

The city is laid out in metres in EPSG:32651 (UTM 51N) around lon 121.45, lat 31.23 and
written to a GeoPackage in EPSG:4326, in the layers and columns the vector importer reads:

* Arterial roads (primary/secondary) form a grid of ~560 m superblocks (each grid line is
  jittered by up to 30 m). Superblocks are taken ring by ring around the centre until the
  requested number of buildings is reached, so the city grows as a rough square.
* Minor streets (residential/tertiary) split each superblock into 2-4 gated compounds
  (2x1, 1x2, 3x1, 1x3 or 2x2 cells).
* A compound holds rows of 6-storey walk-up slabs (~70 %) or 18-33-storey point towers on
  both sides of a central service road (the spine). A footway runs south of every row,
  broken at each building's outer edge so that every building has a walk node beside it.
  The spine (or, for a side gate, the middle footway) runs out to the gate on a minor street.
* One-or-two-storey shops line the arterial frontage, outside the compound fences.
* Facilities of every category stand just inside compound gates.
* Communities are rectangles of whole compounds (aiming at 1,000-4,000 households) and
  subdistricts are tiles of 3x3 superblocks (one subdistrict for a small city).

Lines that meet share the very same vertex (crossings, T-junctions, gates) because the
importer nodes the walk network by identical coordinates. All randomness comes from one
``numpy.random.default_rng(seed)`` drawn in a fixed order, so a (buildings, seed) pair always
gives the same city. The surplus of the last ring is removed by dropping random buildings
across the whole city, so that no single community ends up thin.
"""

from __future__ import annotations

import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import shapely

from gis.crs import lonlat_to_metric
from gis.errors import InvalidInput

Table = dict[str, np.ndarray]
LAYERS = ("buildings", "streets", "facilities", "communities", "subdistricts")

METRIC_EPSG = 32651
CENTRE_LONLAT = (121.45, 31.23)
MAX_BUILDINGS = 3_000_000
BLOCK_M, LINE_JITTER_M = 560.0, 30.0
ARTERIAL_SETBACK_M = 35.0  # half carriageway + shop band + fence
MINOR_SETBACK_M = 10.0
SPINE_GAP_M = 8.0
LANE_MARGIN_M = 3.0
SHOP_BAND_M = (15.0, 27.0)  # shop depth, measured from the arterial centre line
SHOP_END_M = 45.0  # keeps shops out of the junction corners
SHOP_PITCH_M, SHOP_SHARE, SHOP_CLEAR_M = 20.0, 0.25, 8.0
WALKUP_SHARE, MAX_TOWERS, MAX_TOWER_COLUMNS = 0.7, 20, 3
DWELLING_M2, FLOOR_EFFICIENCY = 70.0, 0.75
FACILITIES_PER_BUILDING = 6 / 1000
SUBDISTRICT_TILE = 3
NCX, NCY = np.array([2, 1, 3, 1, 2]), np.array([1, 2, 1, 3, 2])
PATTERN_WEIGHTS = [0.25, 0.25, 0.1, 0.1, 0.3]
# Ways to group a superblock's compound cells (row-major) into rectangular communities.
# fmt: off
PARTITIONS = {
    2: ([[0, 1]], [[0], [1]]),
    3: ([[0, 1, 2]], [[0, 1], [2]], [[0], [1, 2]], [[0], [1], [2]]),
    4: ([[0, 1, 2, 3]], [[0, 1], [2, 3]], [[0, 2], [1, 3]], [[0, 1], [2], [3]],
        [[2, 3], [0], [1]], [[0, 2], [1], [3]], [[1, 3], [0], [2]], [[0], [1], [2], [3]]),
}
CATEGORIES = (
    ("committee_office", "居委会"), ("police_room", "警务室"), ("activity_room", "活动室"),
    ("library", "图书室"), ("convenience_service", "便民服务室"),
    ("family_planning", "计生服务站"), ("health_station", "卫生服务站"),
    ("rehabilitation", "康复站"), ("affairs_board", "居务公开栏"),
    ("science_board", "科普宣传栏"), ("residents_school", "居民学校"),
    ("outdoor_fitness", "健身点"), ("medical", "诊所"), ("shopping", "菜场"),
    ("employment", "就业服务站"), ("entertainment", "文化活动中心"),
    ("housekeeping", "家政服务点"), ("education", "幼儿园"), ("elderly_care", "养老院"),
)
AREA_STEMS = ("长寿", "曹杨", "宜川", "甘泉", "石泉", "真如", "长风", "桃浦", "江宁", "彭浦",
              "临汾", "大宁", "芷江", "田林", "枫林", "斜土", "康健", "凌云")
# fmt: on
HOUSEHOLDS_OK, HOUSEHOLDS_AIM = (1000.0, 4000.0), 2500.0


def write_city(out: Path, *, buildings: int, seed: int) -> str:
    """Write a deterministic synthetic city to the GeoPackage ``out``; return a one-line summary.

    Parameters
    ----------
    out : Path
        GeoPackage to write; an existing file is replaced and missing directories are made.
    buildings : int
        Exact number of buildings (apartment blocks and shops), at least 1.
    seed : int
        Random seed (0 or more); the same ``(buildings, seed)`` always gives the same city.

    Returns
    -------
    str
        What was written: counts of buildings, households, street segments, facilities,
        communities and subdistricts, and the time taken.

    Raises
    ------
    InvalidInput
        If ``buildings`` or ``seed`` is out of range or ``out`` is a directory.
    """
    out = Path(out)
    if not isinstance(buildings, int | np.integer) or not 1 <= buildings <= MAX_BUILDINGS:
        raise InvalidInput(f"--buildings must be a whole number from 1 to {MAX_BUILDINGS:,}")
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise InvalidInput("--seed must be a whole number, 0 or more")
    if out.is_dir():
        raise InvalidInput(f"--out {out} is a directory; give a .gpkg file path")
    started = time.perf_counter()
    rng = np.random.default_rng(int(seed))
    blocks, comps, shops, grid = _plan_city(int(buildings), rng)
    gates = _locate_gates(comps, grid)
    bld, comp_hh = _make_buildings(comps, shops, int(buildings), rng)
    streets = _make_streets(blocks, comps, gates, grid)
    facilities = _make_facilities(gates, int(buildings), rng)
    communities, subdistricts = _make_areas(blocks, comps, comp_hh, grid)
    _write_layers(out, [bld, streets, facilities, communities, subdistricts])
    return (
        f"wrote {out}: {len(bld['id'])} buildings ({int(bld['households'].sum()):,} households),"
        f" {len(streets['id'])} street segments, {len(facilities['id'])} facilities,"
        f" {len(communities['code'])} communities, {len(subdistricts['code'])} subdistricts"
        f" in {time.perf_counter() - started:.1f} s"
    )


def _enumerate_items(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (owner, local index) for ``counts[k]`` items owned by each k, in owner order."""
    counts = np.asarray(counts, dtype=np.int64)
    owner = np.repeat(np.arange(len(counts)), counts)
    return owner, np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts, counts)


def _number(prefix: str, count: int, width: int = 1, suffix: str = "") -> np.ndarray:
    """Return prefix + q (zero-padded to ``width``) + suffix for q = 1..count: ids and codes."""
    return np.array([f"{prefix}{q:0{width}d}{suffix}" for q in range(1, count + 1)], object)


def _take(table: Table, idx: np.ndarray) -> Table:
    """Return the rows ``idx`` (indices or mask) of every column of ``table``."""
    return {k: v[idx] for k, v in table.items()}


def _plan_city(n: int, rng: np.random.Generator) -> tuple[Table, Table, Table, Table]:
    """Lay out enough superblocks, taken in rings around the centre, to hold ``n`` buildings."""
    side = int(np.ceil(np.sqrt(n / 60))) + 2
    while True:
        blocks, grid = _draw_blocks(side, rng)
        comps, shops = _layout_compounds(blocks, rng), _place_shops(blocks, rng)
        apartments = comps["n_rows"] * 2 * comps["n_side"]
        per_block = np.bincount(comps["block"], apartments, len(blocks["i"]))
        per_block += np.bincount(shops["block"], minlength=len(blocks["i"]))
        di, dj = blocks["i"] - (side - 1) / 2, blocks["j"] - (side - 1) / 2
        order = np.lexsort((np.arctan2(dj, di), np.maximum(np.abs(di), np.abs(dj))))
        total = np.cumsum(per_block[order])
        if total[-1] >= n:
            break
        side = side * 3 // 2 + 1  # the guess of buildings per superblock was too high
    chosen = order[: int(np.searchsorted(total, n)) + 1]
    rank = np.full(len(blocks["i"]), -1)
    rank[chosen] = np.arange(len(chosen))
    return _take(blocks, chosen), _relabel(comps, rank), _relabel(shops, rank), grid


def _relabel(table: Table, rank: np.ndarray) -> Table:
    """Keep the rows of chosen blocks, renumbered by ``rank`` and sorted by their new block."""
    new = rank[table["block"]]
    keep = np.flatnonzero(new >= 0)
    keep = keep[np.argsort(new[keep], kind="stable")]
    return _take(table, keep) | {"block": new[keep]}


def _draw_blocks(side: int, rng: np.random.Generator) -> tuple[Table, Table]:
    """Draw a side x side grid of superblocks: bounds, split pattern and split positions."""
    cx, cy = lonlat_to_metric(*CENTRE_LONLAT, METRIC_EPSG)
    base = (np.arange(side + 1) - side / 2) * BLOCK_M
    xs = np.round(cx) + base + rng.uniform(-LINE_JITTER_M, LINE_JITTER_M, side + 1).round(1)
    ys = np.round(cy) + base + rng.uniform(-LINE_JITTER_M, LINE_JITTER_M, side + 1).round(1)
    i, j = np.tile(np.arange(side), side), np.repeat(np.arange(side), side)
    b = {"i": i, "j": j, "x0": xs[i], "x1": xs[i + 1], "y0": ys[j], "y1": ys[j + 1]}
    pattern = rng.choice(5, size=len(i), p=PATTERN_WEIGHTS)
    # A three-way split needs room for a compound between two minor streets.
    width = np.select([pattern == 2, pattern == 3], [b["x1"] - b["x0"], b["y1"] - b["y0"]], 1e9)
    pattern[width < 540] -= 2
    b |= {"pattern": pattern, "ncx": NCX[pattern], "ncy": NCY[pattern]}
    b["cb"] = _split_bounds(b["x0"], b["x1"], b["ncx"], rng)
    b["rb"] = _split_bounds(b["y0"], b["y1"], b["ncy"], rng)
    b["tertiary"] = rng.random((len(i), 4)) < 0.3
    return b, {
        "xs": xs,
        "ys": ys,
        "side": np.array(side),
        "minor_base": np.array(2 * side**2 + 2 * side),
    }


def _split_bounds(
    lo: np.ndarray, hi: np.ndarray, n: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Return (k, 4) cell boundaries lo, splits..., hi for ``n`` cells, padded with NaN."""
    w, u = hi - lo, 0.5 + rng.uniform(-0.06, 0.06, len(lo))
    out = np.full((len(lo), 4), np.nan)
    out[:, 0] = lo
    out[:, 1] = np.select([n == 1, n == 2], [hi, (lo + w * u).round(1)], (lo + w / 3).round(1))
    out[:, 2] = np.select([n == 2, n == 3], [hi, (lo + 2 * w / 3).round(1)], np.nan)
    out[:, 3] = np.where(n == 3, hi, np.nan)
    return out


def _layout_compounds(b: Table, rng: np.random.Generator) -> Table:
    """Split blocks into compounds and fit columns and rows of buildings into each."""
    blk, local = _enumerate_items(b["ncx"] * b["ncy"])
    a, r = local % b["ncx"][blk], local // b["ncx"][blk]
    c = {"block": blk, "a": a, "b": r, "cx0": b["cb"][blk, a], "cx1": b["cb"][blk, a + 1]}
    c |= {"cy0": b["rb"][blk, r], "cy1": b["rb"][blk, r + 1]}
    # Sides S, N, W, E facing a minor street (the others face an arterial).
    minor = np.column_stack([r > 0, r < b["ncy"][blk] - 1, a > 0, a < b["ncx"][blk] - 1])
    setback = np.where(minor, MINOR_SETBACK_M, ARTERIAL_SETBACK_M)
    ax0, ax1 = c["cx0"] + setback[:, 2], c["cx1"] - setback[:, 3]
    ay0, ay1 = c["cy0"] + setback[:, 0], c["cy1"] - setback[:, 1]
    c["gate"] = np.argmax(minor, axis=1)  # every compound faces at least one minor street
    tower = rng.random(len(blk)) >= WALKUP_SHARE
    size = np.where(tower, rng.integers(23, 28, len(blk)), rng.integers(54, 67, len(blk)))
    gap_x, gap_y = np.where(tower, 35.0, 10.0), np.where(tower, 45.0, 20.0)
    half = (ax1 - ax0 - SPINE_GAP_M) / 2
    bw = np.minimum(size.astype(float), half)
    bh = np.where(tower, bw, 12.0)
    n_side = np.floor((half + gap_x) / (bw + gap_x)).astype(np.int64)
    n_side = np.where(tower, np.minimum(n_side, MAX_TOWER_COLUMNS), n_side)
    y_first = ay0 + LANE_MARGIN_M
    n_rows = np.floor((ay1 - y_first - gap_y / 2 - bh) / (bh + gap_y)).astype(np.int64) + 1
    n_rows = np.where(tower, np.minimum(n_rows, np.maximum(1, MAX_TOWERS // (2 * n_side))), n_rows)
    c.update(tower=tower, bw=bw, bh=bh, px=bw + gap_x, py=bh + gap_y, gap_y=gap_y)
    return c | dict(x_sp=(ax0 + ax1) / 2, y_first=y_first, n_side=n_side, n_rows=n_rows)


def _place_shops(b: Table, rng: np.random.Generator) -> Table:
    """Line the four arterial fronts of every block with shops, clear of minor streets."""
    parts: list[Table] = []
    near, far = SHOP_BAND_M
    for side in range(4):  # S, N, W, E
        along_x = side < 2
        lo, hi = (b["x0"], b["x1"]) if along_x else (b["y0"], b["y1"])
        bounds, n_cells = (b["cb"], b["ncx"]) if along_x else (b["rb"], b["ncy"])
        splits = np.where(np.arange(2) < (n_cells - 1)[:, None], bounds[:, 1:3], np.nan)
        count = np.maximum(np.floor((hi - lo - 2 * SHOP_END_M) / SHOP_PITCH_M), 0)
        blk, m = _enumerate_items(count.astype(np.int64))
        start = lo[blk] + SHOP_END_M + m * SHOP_PITCH_M
        width = rng.uniform(10.0, 16.0, len(blk)).round(1)
        gap = np.abs(start[:, None] + width[:, None] / 2 - splits[blk])
        clear = np.where(np.isnan(gap), np.inf, gap).min(axis=1) - width / 2
        keep = (clear >= SHOP_CLEAR_M) & (rng.random(len(blk)) < SHOP_SHARE)
        levels = rng.integers(1, 3, len(blk))
        edge = [b["y0"], b["y1"], b["x0"], b["x1"]][side][blk]
        sign = 1.0 if side in (0, 2) else -1.0
        band = np.sort(np.column_stack([edge + sign * near, edge + sign * far]), axis=1)
        lo_a, hi_a = (start, start + width)
        x0, x1 = (lo_a, hi_a) if along_x else (band[:, 0], band[:, 1])
        y0, y1 = (band[:, 0], band[:, 1]) if along_x else (lo_a, hi_a)
        row = {"block": blk, "x0": x0, "y0": y0, "x1": x1, "y1": y1, "levels": levels}
        parts.append(_take(row, keep))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _compute_lane_y(c: Table, comp: np.ndarray, row: np.ndarray) -> np.ndarray:
    """Return the y of footway ``row`` of compounds ``comp`` (one formula, so vertices match)."""
    return c["y_first"][comp] + row * c["py"][comp]


def _compute_outer_x(c: Table, comp: np.ndarray, sign: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Return the outer x edge of building column ``m`` on side ``sign`` (-1 west, +1 east)."""
    return c["x_sp"][comp] + sign * (SPINE_GAP_M / 2 + m * c["px"][comp] + c["bw"][comp])


def _locate_gates(c: Table, grid: Table) -> Table:
    """Return each compound's gate: point, the minor street it opens onto, inward direction."""
    idx, gate = np.arange(len(c["block"])), c["gate"]
    y_mid = _compute_lane_y(c, idx, (c["n_rows"] - 1) // 2)
    x = np.select([gate == 2, gate == 3], [c["cx0"], c["cx1"]], c["x_sp"])
    y = np.select([gate == 0, gate == 1], [c["cy0"], c["cy1"]], y_mid)
    slot = np.choose(gate, [1 + c["b"], 2 + c["b"], c["a"] - 1, c["a"]])
    line = int(grid["minor_base"]) + 4 * c["block"] + slot
    dx, dy = np.choose(gate, [0, 0, 1, -1]), np.choose(gate, [1, -1, 0, 0])
    return {"x": x, "y": y, "line": line, "along": np.where(gate < 2, x, y), "dx": dx, "dy": dy}


def _enumerate_slots(c: Table) -> tuple[np.ndarray, ...]:
    """Return (compound, row, side sign, column from the spine) of every building slot."""
    comp, local = _enumerate_items(c["n_rows"] * 2 * c["n_side"])
    ns = c["n_side"][comp]
    row, col = local // (2 * ns), local % (2 * ns)
    return comp, row, np.where(col < ns, -1.0, 1.0), np.where(col < ns, col, col - ns)


def _make_buildings(
    c: Table, shops: Table, n: int, rng: np.random.Generator
) -> tuple[Table, np.ndarray]:
    """Build apartment and shop footprints, then drop random surplus down to exactly ``n``."""
    comp, row, sign, m = _enumerate_slots(c)
    inner = c["x_sp"][comp] + sign * (SPINE_GAP_M / 2 + m * c["px"][comp])
    outer = _compute_outer_x(c, comp, sign, m)
    yb = _compute_lane_y(c, comp, row) + c["gap_y"][comp] / 2
    apt = shapely.box(np.minimum(inner, outer), yb, np.maximum(inner, outer), yb + c["bh"][comp])
    levels = np.where(c["tower"][comp], rng.integers(18, 34, len(comp)), 6)
    area = c["bw"][comp] * c["bh"][comp]
    households = np.round(area * levels * FLOOR_EFFICIENCY / DWELLING_M2).astype(np.int64)
    n_apt, n_all = len(comp), len(comp) + len(shops["block"])
    keep = np.ones(n_all, bool)
    keep[rng.choice(n_all, n_all - n, replace=False)] = False
    comp_hh = np.bincount(comp[keep[:n_apt]], households[keep[:n_apt]], len(c["block"]))
    geoms = np.concatenate([apt, shapely.box(shops["x0"], shops["y0"], shops["x1"], shops["y1"])])
    kinds = np.repeat(np.array(["apartments", "retail"], dtype=object), [n_apt, n_all - n_apt])
    table = {
        "id": _number("b", n),
        "building": kinds[keep],
        "levels": np.concatenate([levels, shops["levels"]])[keep].astype(np.int64),
        "households": np.concatenate([households, np.zeros(n_all - n_apt, np.int64)])[keep],
        "name": np.full(n, None, dtype=object),
        "geometry": geoms[keep],
    }
    return table, comp_hh


def _make_streets(b: Table, c: Table, gates: Table, grid: Table) -> Table:
    """Build arterials, minor streets and compound paths, noded at every shared vertex."""
    side, xs, ys, mb = int(grid["side"]), grid["xs"], grid["ys"], int(grid["minor_base"])
    v_base = side * (side + 1)  # line ids: E-W arterial edges, N-S ones, then minor streets
    i, j, k = b["i"], b["j"], np.arange(len(b["i"]))
    pts: list[tuple] = []  # (line id, position along the line, x, y)
    edges = np.unique(
        np.concatenate(
            [j * side + i, (j + 1) * side + i, v_base + i * side + j, v_base + (i + 1) * side + j]
        )
    )
    horiz = edges < v_base
    ei = np.where(horiz, edges % side, (edges - v_base) // side)
    ej = np.where(horiz, edges // side, (edges - v_base) % side)
    for end in (0, 1):
        ex, ey = xs[ei + end * horiz], ys[ej + end * ~horiz]
        pts.append((edges, np.where(horiz, ex, ey), ex, ey))
    for s in (0, 1):
        kv = k[s < b["ncx"] - 1]  # vertical minor street s of these blocks
        x, y0, y1 = b["cb"][kv, 1 + s], b["y0"][kv], b["y1"][kv]
        pts += [(mb + 4 * kv + s, y0, x, y0), (mb + 4 * kv + s, y1, x, y1)]
        pts += [(j[kv] * side + i[kv], x, x, y0), ((j[kv] + 1) * side + i[kv], x, x, y1)]
        kh = k[s < b["ncy"] - 1]
        y, x0, x1 = b["rb"][kh, 1 + s], b["x0"][kh], b["x1"][kh]
        pts += [(mb + 4 * kh + 2 + s, x0, x0, y), (mb + 4 * kh + 2 + s, x1, x1, y)]
        pts += [(v_base + i[kh] * side + j[kh], y, x0, y)]
        pts += [(v_base + (i[kh] + 1) * side + j[kh], y, x1, y)]
    kc = k[b["pattern"] == 4]
    x, y = b["cb"][kc, 1], b["rb"][kc, 1]
    pts += [(mb + 4 * kc, y, x, y), (mb + 4 * kc + 2, x, x, y)]
    pts.append((gates["line"], gates["along"], gates["x"], gates["y"]))
    line, along, px, py = (np.concatenate(col) for col in zip(*pts, strict=True))
    order = np.lexsort((along, line))
    line, px, py = line[order], px[order], py[order]
    new = np.ones(len(line), bool)
    new[1:] = (line[1:] != line[:-1]) | (px[1:] != px[:-1]) | (py[1:] != py[:-1])
    line, px, py = line[new], px[new], py[new]
    ids, inv = np.unique(line, return_inverse=True)
    network = shapely.linestrings(px, py, indices=inv)
    hi, vi = ids < v_base, (ids >= v_base) & (ids < mb)
    num = np.where(hi, ids // side, (ids - v_base) // side)
    minor_k, minor_s = (ids - mb) // 4, (ids - mb) % 4
    tert = b["tertiary"][np.where(ids >= mb, minor_k, 0), minor_s]
    highway = np.where(
        hi | vi,
        np.where(num % 3 == 0, "primary", "secondary"),
        np.where(tert, "tertiary", "residential"),
    ).astype(object)
    road = np.where(hi, "纬", "经").astype(object) + (num + 1).astype(str).astype(object) + "路"
    names = np.where(hi | vi, road, None)
    paths, kinds = _make_paths(c, gates)
    geoms = np.concatenate([network, paths])
    return {
        "id": _number("s", len(geoms)),
        "highway": np.concatenate([highway, kinds]),
        "name": np.concatenate([names, np.full(len(paths), None)]),
        "geometry": geoms,
    }


def _make_paths(c: Table, gates: Table) -> tuple[np.ndarray, np.ndarray]:
    """Build each compound's spine, row footways (one piece per building) and gate link."""
    comp, row, sign, m = _enumerate_slots(c)
    x_from = np.where(m == 0, c["x_sp"][comp], _compute_outer_x(c, comp, sign, m - 1))
    lanes = _make_segments(
        x_from, _compute_outer_x(c, comp, sign, m), _compute_lane_y(c, comp, row)
    )
    # The spine runs through every footway row and, for a south/north gate, out to the gate.
    gate = c["gate"]
    n_pts = c["n_rows"] + (gate < 2)
    has = np.flatnonzero(n_pts >= 2)
    owner, p = _enumerate_items(n_pts[has])
    sc = has[owner]
    south = gate[sc] == 0
    at_gate = (south & (p == 0)) | ((gate[sc] == 1) & (p == n_pts[sc] - 1))
    sy = np.where(at_gate, gates["y"][sc], _compute_lane_y(c, sc, p - south))
    spines = shapely.linestrings(c["x_sp"][sc], sy, indices=owner)
    side_gate = np.flatnonzero(gate >= 2)
    end_sign = np.where(gate[side_gate] == 2, -1.0, 1.0)
    end_x = _compute_outer_x(c, side_gate, end_sign, c["n_side"][side_gate] - 1)
    links = _make_segments(gates["x"][side_gate], end_x, gates["y"][side_gate])
    kinds = np.repeat(
        np.array(["service", "footway", "service"], dtype=object),
        [len(spines), len(lanes), len(links)],
    )
    return np.concatenate([spines, lanes, links]), kinds


def _make_segments(x0: np.ndarray, x1: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Return east-west two-point lines from (x0, y) to (x1, y)."""
    return shapely.linestrings(np.stack([np.column_stack([x0, y]), np.column_stack([x1, y])], 1))


def _make_facilities(gates: Table, n: int, rng: np.random.Generator) -> Table:
    """Place every category at least once, ~6 per 1,000 buildings, just inside compound gates."""
    count = max(len(CATEGORIES), round(n * FACILITIES_PER_BUILDING))
    cat = np.concatenate([np.arange(len(CATEGORIES)), rng.integers(0, len(CATEGORIES), count)])
    cat = cat[:count]
    n_gates = len(gates["x"])
    at = rng.choice(n_gates, count, replace=count > n_gates)
    depth, lateral = rng.uniform(4.0, 9.0, count), rng.uniform(-3.5, 3.5, count)
    dx, dy = gates["dx"][at], gates["dy"][at]
    x = gates["x"][at] + dx * depth - dy * lateral
    y = gates["y"][at] + dy * depth + dx * lateral
    order = np.argsort(cat, kind="stable")
    nth = np.empty(count, np.int64)
    nth[order] = np.arange(count) - np.searchsorted(cat[order], cat[order])
    return {
        "id": _number("f", count),
        "category": np.array([CATEGORIES[q][0] for q in cat], dtype=object),
        "name": np.array(
            [f"第{r + 1}{CATEGORIES[q][1]}" for q, r in zip(cat, nth, strict=True)], dtype=object
        ),
        "geometry": shapely.points(x, y),
    }


def _make_areas(b: Table, c: Table, comp_hh: np.ndarray, grid: Table) -> tuple[Table, Table]:
    """Group compounds into rectangular communities and communities into subdistrict tiles."""
    first = np.searchsorted(c["block"], np.arange(len(b["i"])))
    parts = []
    for pattern in range(5):
        ks = np.flatnonzero(b["pattern"] == pattern)
        ncx, cells = NCX[pattern], NCX[pattern] * NCY[pattern]
        hh = comp_hh[first[ks][:, None] + np.arange(cells)]
        options = PARTITIONS[cells]
        cost = np.column_stack([_score_partition(hh, part) for part in options])
        best = np.argmin(cost, axis=1) if len(ks) else np.zeros(0, np.int64)
        for q, part in enumerate(options):
            for g, group in enumerate(part):
                col, row = [cell % ncx for cell in group], [cell // ncx for cell in group]
                sel = ks[best == q]
                span = (min(col), max(col) + 1, min(row), max(row) + 1)
                parts.append((sel, *(np.full(len(sel), v) for v in (g, *span))))
    blk, grp, a0, a1, r0, r1 = (np.concatenate(col) for col in zip(*parts, strict=True))
    order = np.lexsort((grp, blk))
    blk, a0, a1, r0, r1 = blk[order], a0[order], a1[order], r0[order], r1[order]
    boxes = shapely.box(b["cb"][blk, a0], b["rb"][blk, r0], b["cb"][blk, a1], b["rb"][blk, r1])
    n_comm = len(blk)
    half = int(grid["side"]) // 2 - 1  # centres a tile on the middle superblock
    tile = ((b["i"] - half) // SUBDISTRICT_TILE) * 100_000 + (b["j"] - half) // SUBDISTRICT_TILE
    tile = tile[blk] if n_comm > 30 else np.zeros(n_comm, np.int64)
    _, first_seen, inv = np.unique(tile, return_index=True, return_inverse=True)
    sub = np.argsort(np.argsort(first_seen))[inv]
    by_sub = np.argsort(sub, kind="stable")
    cuts = np.flatnonzero(np.diff(sub[by_sub])) + 1
    sub_geoms = np.array([shapely.union_all(boxes[g]) for g in np.split(by_sub, cuts)])
    n_sub = len(sub_geoms)
    sub_codes = _number("S", n_sub, max(2, len(str(n_sub))))
    stems = len(AREA_STEMS)
    sub_names = [
        AREA_STEMS[q % stems] + (str(q // stems + 1) if q >= stems else "") + "街道"
        for q in range(n_sub)
    ]
    communities = {
        "code": _number("C", n_comm, max(4, len(str(n_comm)))),
        "name": _number("第", n_comm, suffix="居民区"),
        "subdistrict": sub_codes[sub],
        "geometry": boxes,
    }
    return communities, {
        "code": sub_codes,
        "name": np.array(sub_names, object),
        "geometry": sub_geoms,
    }


def _score_partition(hh: np.ndarray, part: list[list[int]]) -> np.ndarray:
    """Return how far each block's communities under ``part`` are from the household aim."""
    lo, hi = HOUSEHOLDS_OK
    cost = np.zeros(len(hh))
    for group in part:
        total = hh[:, group].sum(axis=1)
        out = np.maximum(lo - total, 0) + np.maximum(total - hi, 0)
        cost += 10 * out + np.abs(total - HOUSEHOLDS_AIM)
    return cost


def _write_layers(out: Path, layers: list[Table]) -> None:
    """Write the tables as the LAYERS of a fresh GeoPackage, reprojected to WGS 84."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    for name, table in zip(LAYERS, layers, strict=True):
        attrs = {k: v for k, v in table.items() if k != "geometry"}
        gdf = gpd.GeoDataFrame(attrs, geometry=table["geometry"], crs=METRIC_EPSG)
        pyogrio.write_dataframe(gdf.to_crs(4326), out, layer=name, driver="GPKG")
