"""Vector tiles (Mapbox Vector Tile) of buildings and the hierarchy's areas, from PostGIS.

One query per tile: the tile's Web Mercator envelope (``ST_TileEnvelope``), the rows whose
``geom`` meets it (GiST index, in 4326), clipped and quantised by ``ST_AsMVTGeom`` and
encoded by ``ST_AsMVT``, in id order (the same bytes whatever the plan: the ETag is their
hash). A feature that ``ST_AsMVTGeom`` reduces to nothing is NULL, which ``ST_AsMVT``
skips: filtering on it would run ``ST_AsMVTGeom`` twice per row (the filter is pushed into
the scan and the projection computes it again).

What a user gets is what the API shows them elsewhere: the buildings of their scope
(``ga_scope_buildings(ga_user())``) and the areas holding one of them
(``gis.areas.visible_sql``); admins everything. Tiles carry no person, only ids,
codes, names and household counts.

For a Gaode basemap (GCJ-02) each feature is moved by the GCJ-02 offset at its centroid
(``gcj02=True``), computed in SQL with the formulas of ``gis.gcj02``. The offset changes by
about 1.5 m per km, so a building (tens of metres) lands within centimetres of its exact
shifted position and a community of 1–2 km within 1–3 m at its edges: below a pixel at the
zooms where such an area fills the screen.

Made tiles are kept in ``tile_cache`` (migration 0016) per layer, address, GCJ-02 or not,
and scope key (admins one key; others their role and scope rows), with the *generation* of
the data they were cut from: a statement-level trigger on every source table adds to the
generation, and an entry is served only while its generation is the current one, so an
edit, an import or a re-run delineation is on the map at the next request. The migration
explains why no change can be missed. A transaction that has written itself bypasses the
cache.
"""

from __future__ import annotations

import gzip
import hashlib
import math
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis import levels
from gis.areas import visible_sql
from gis.errors import InvalidInput, NotFound

EXTENT = 4096  # tile coordinate units, the MVT default
BUFFER = 64  # units beyond the edge kept, so strokes do not stop at tile seams
MAX_ZOOM = 22
TILE_PX = 256  # CSS pixels a tile is drawn in (Leaflet's tile size)
WORLD_3857 = 2 * math.pi * 6378137.0  # Web Mercator's width in its units
AROUND_DEG = 0.003  # streets around a scope's buildings: about 300 m (the map's margin)

# Walkable highway classes shown while zoomed out: from zoom 14 every edge, below it the
# streets a car can use, below 12 the main roads only (OSM's own ranking of highway=*).
STREETS = ("residential", "living_street", "unclassified", "road")
MAIN_ROADS = tuple(
    f"{c}{link}" for c in ("trunk", "primary", "secondary", "tertiary") for link in ("", "_link")
)


@dataclass(frozen=True)
class TileLayer:
    """A tiled layer: a table, its properties (SQL on t) and which of its rows a user gets.

    ``scope`` is ``"level"`` (the areas or buildings of the user's scope, by the table's
    level) or ``"around"`` (rows within ``AROUND_DEG`` of the scope's buildings; admins
    everything: how the city map scopes the walk network). ``classes`` lists, from low to
    high zooms, (zoom below which, highway classes kept): zoomed out, only bigger roads.
    """

    table: str
    properties: dict[str, str]
    min_zoom: int = 0  # below it the tile is empty: too many features to be of use
    scope: str = "level"
    has_3857: bool = False  # has the stored Web Mercator copy geom_3857 (0011)
    classes: tuple[tuple[int, tuple[str, ...]], ...] = ()

    def classes_at(self, z: int) -> list[str] | None:
        """The highway classes drawn at zoom ``z``; None: every row."""
        return next((list(c) for below, c in self.classes if z < below), None)


# Names and columns are ours, never the caller's text (the route allows these names only).
TILE_LAYERS: dict[str, TileLayer] = {
    "buildings": TileLayer(
        "building", {"id": "t.id", "households": "t.households"}, 13, has_3857=True
    ),
    "walk_edges": TileLayer(
        "walk_edge",
        {"id": "t.id", "highway": "t.highway", "name": "t.name"},
        10,
        scope="around",
        has_3857=True,
        classes=((12, MAIN_ROADS), (14, MAIN_ROADS + STREETS)),
    ),
    "communities": TileLayer(
        "community",
        {"id": "t.id", "code": "t.code", "name": "t.name", "households": "t.households"},
    ),
    "grids": TileLayer(
        "grid",
        {
            "id": "t.id",
            "code": "t.code",
            "name": "t.name",
            "households": "t.households",
            "community_id": "t.community_id",
        },
    ),
    "residents_groups": TileLayer(
        "residents_group",
        {
            "id": "t.id",
            "code": "t.code",
            "households": "t.households",
            "community_id": "t.community_id",
        },
        11,
    ),
}
MEDIA_TYPE = "application/vnd.mapbox-vector-tile"

# The scope's buildings' extent, widened: where a non-admin gets streets (NULL, none, for
# an empty scope). An uncorrelated subquery: computed once per tile, not per row.
AROUND_SCOPE_SQL = (
    "((SELECT ga_role()) = 'admin' OR t.geom && (SELECT ST_SetSRID(ST_Expand("
    "ST_Extent(g.geom), :around)::geometry, 4326) FROM building g "
    "WHERE g.id IN (SELECT ga_scope_buildings(ga_user()))))"
)


def _gcj02_offset_sql(lon: str, lat: str) -> tuple[str, str]:
    """SQL for GCJ-02 minus WGS 84 (degrees) at ``lon``/``lat`` (SQL expressions of ours).

    The same published series as ``gis.gcj02.offset``; zero outside its China box.
    """
    x, y = f"({lon} - 105.0)", f"({lat} - 35.0)"
    common = f"(20.0 * sin(6.0 * pi() * {x}) + 20.0 * sin(2.0 * pi() * {x})) * 2.0 / 3.0"
    s_lat = (
        f"(-100.0 + 2.0 * {x} + 3.0 * {y} + 0.2 * {y} * {y} + 0.1 * {x} * {y} "
        f"+ 0.2 * sqrt(abs({x})) + {common} "
        f"+ (20.0 * sin(pi() * {y}) + 40.0 * sin(pi() * {y} / 3.0)) * 2.0 / 3.0 "
        f"+ (160.0 * sin(pi() * {y} / 12.0) + 320.0 * sin(pi() * {y} / 30.0)) * 2.0 / 3.0)"
    )
    s_lon = (
        f"(300.0 + {x} + 2.0 * {y} + 0.1 * {x} * {x} + 0.1 * {x} * {y} "
        f"+ 0.1 * sqrt(abs({x})) + {common} "
        f"+ (20.0 * sin(pi() * {x}) + 40.0 * sin(pi() * {x} / 3.0)) * 2.0 / 3.0 "
        f"+ (150.0 * sin(pi() * {x} / 12.0) + 300.0 * sin(pi() * {x} / 30.0)) * 2.0 / 3.0)"
    )
    magic = f"(1.0 - 0.00669342162296594323 * sin(radians({lat})) ^ 2)"
    d_lat = (
        f"({s_lat} * 180.0 / ((6378245.0 * (1.0 - 0.00669342162296594323)) "
        f"/ ({magic} * sqrt({magic})) * pi()))"
    )
    d_lon = f"({s_lon} * 180.0 / (6378245.0 / sqrt({magic}) * cos(radians({lat})) * pi()))"
    inside = f"({lon} BETWEEN 72.004 AND 137.8347 AND {lat} BETWEEN 0.8293 AND 55.8271)"
    return (
        f"CASE WHEN {inside} THEN {d_lon} ELSE 0 END",
        f"CASE WHEN {inside} THEN {d_lat} ELSE 0 END",
    )


def _scope_sql(spec: TileLayer) -> str:
    if spec.scope == "around":
        return AROUND_SCOPE_SQL
    return visible_sql(levels.BY_TABLE[spec.table])


def _tile_geom_sql(geom: str, *, is_inside_fast: bool) -> str:
    """SQL: ``geom`` (Web Mercator) in the tile's coordinates, clipped, or NULL if nothing.

    ``ST_AsMVTGeom`` clips, snaps to the tile's grid and, for polygons, rebuilds each one
    with Wagyu whether it needs clipping or not: three quarters of a dense tile's time.
    With ``is_inside_fast``, a feature wholly inside the tile and its buffer, which needs no
    clipping, is mapped to the same grid by ``ST_Affine`` and ``ST_SnapToGrid`` and its
    rings turned the way MVT wants (exterior clockwise on screen, as ``ST_AsMVTGeom``
    does), a third of the cost. Features under a pixel are already left out, so none
    collapses to a point; what snapping alone does not repair (a ring that touches itself
    after snapping: 1 footprint in 4,400 on Porto's densest tile) is drawn as is.
    """
    clipped = f"ST_AsMVTGeom({geom}, b.tile, {EXTENT}, {BUFFER}, true)"
    if not is_inside_fast:
        return clipped
    mapped = f"ST_Affine({geom}, b.k, 0, 0, -b.k, -b.x0 * b.k, b.y1 * b.k)"
    fast = f"ST_ForcePolygonCCW(ST_RemoveRepeatedPoints(ST_SnapToGrid({mapped}, 1)))"
    return f"CASE WHEN {geom} @ b.env THEN {fast} ELSE {clipped} END"


def tile_sql(layer: str, *, gcj02: bool = False) -> str:
    """The SQL of one tile of ``layer``.

    Bound parameters: ``:z``, ``:x``, ``:y``; ``:px``, a pixel in Web Mercator units at
    ``z`` (features smaller than it both ways are left out: they would not show);
    ``:classes`` (text[], or NULL for every row) and ``:around`` (degrees): see
    :func:`tile_params`.
    """
    spec = TILE_LAYERS[layer]
    props = ", ".join(f"{expr} AS {name}" for name, expr in spec.properties.items())
    # Stored in Web Mercator where the table has it (no ST_Transform per row).
    merc = "t.geom_3857" if spec.has_3857 else "ST_Transform(t.geom, 3857)"
    geom = _tile_geom_sql(merc, is_inside_fast=spec.has_3857)
    shift = ""
    if gcj02:
        # Search a little wider (the offset is under 0.01°), then move each feature by the
        # offset at its centroid.
        d_lon, d_lat = _gcj02_offset_sql("ST_X(c.pt)", "ST_Y(c.pt)")
        shift = (
            "CROSS JOIN LATERAL (SELECT ST_Centroid(t.geom) AS pt) c "
            f"CROSS JOIN LATERAL (SELECT {d_lon} AS dx, {d_lat} AS dy) o"
        )
        geom = _tile_geom_sql(
            "ST_Transform(ST_Translate(t.geom, o.dx, o.dy), 3857)", is_inside_fast=False
        )
    search = "ST_Expand(b.env4326, 0.01)" if gcj02 else "b.env4326"
    big_enough = (
        f"(ST_XMax({merc}) - ST_XMin({merc}) >= :px OR ST_YMax({merc}) - ST_YMin({merc}) >= :px)"
        if spec.has_3857
        else "true"
    )
    classes = "(CAST(:classes AS text[]) IS NULL OR t.highway = ANY(CAST(:classes AS text[])))"
    return f"""
        WITH b AS (
            SELECT e.env, ST_Transform(e.env, 4326) AS env4326, e.tile,
                   ST_XMin(e.tile) AS x0, ST_YMax(e.tile) AS y1,
                   {EXTENT} / (ST_XMax(e.tile) - ST_XMin(e.tile)) AS k
              FROM (SELECT ST_TileEnvelope(:z, :x, :y, margin => {BUFFER / EXTENT}) AS env,
                           ST_TileEnvelope(:z, :x, :y) AS tile) e
        ), f AS (
            SELECT {geom} AS geom, {props}
              FROM {spec.table} t CROSS JOIN b {shift}
             WHERE t.geom && {search} AND :z >= {spec.min_zoom} AND {big_enough}
               AND {classes if spec.classes else "true"} AND {_scope_sql(spec)}
             ORDER BY t.id  -- the same bytes whatever the plan: the ETag is their hash
        )
        SELECT ST_AsMVT(f, '{layer}', {EXTENT}, 'geom') FROM f
    """


def tile_params(layer: str, z: int, x: int, y: int) -> dict[str, object]:
    """The bound parameters of :func:`tile_sql` for one tile."""
    spec = TILE_LAYERS[layer]
    return {
        "z": z,
        "x": x,
        "y": y,
        "px": WORLD_3857 / 2**z / TILE_PX,
        "classes": spec.classes_at(z),
        "around": AROUND_DEG,
    }


def check_tile(z: int, x: int, y: int) -> None:
    """Refuse a tile address that does not exist (zoom 0–22, x and y within 2^z)."""
    if not 0 <= z <= MAX_ZOOM:
        raise InvalidInput(f"zoom must be between 0 and {MAX_ZOOM}")
    if not (0 <= x < 2**z and 0 <= y < 2**z):
        raise NotFound(f"no tile {z}/{x}/{y}: x and y run from 0 to {2**z - 1} at zoom {z}")


def get_layer(layer: str) -> TileLayer:
    if layer not in TILE_LAYERS:
        raise NotFound(f"no tiled layer {layer}: one of {', '.join(TILE_LAYERS)}")
    return TILE_LAYERS[layer]


def make_tile(
    conn: Connection, layer: str, z: int, x: int, y: int, *, gcj02: bool = False
) -> bytes:
    """One tile of ``layer`` as MVT bytes, cut now (empty when nothing visible lies in it)."""
    get_layer(layer)
    check_tile(z, x, y)
    # The planner prices ST_AsMVTGeom high enough to JIT-compile every tile query, which
    # costs more (about 7 ms) than it saves on a few thousand rows.
    conn.execute(sa.text("SET LOCAL jit = off"))
    data = conn.scalar(sa.text(tile_sql(layer, gcj02=gcj02)), tile_params(layer, z, x, y))
    return bytes(data or b"")


def etag_of(data: bytes) -> str:
    """A strong ETag of a tile: its content's hash (same bytes, same tag, for every user)."""
    return '"' + hashlib.blake2b(data, digest_size=16).hexdigest() + '"'


# Level 1 gives within 5 % of level 6's size for MVT at a quarter of the time: on a dense
# tile (140 kB, 4,000 footprints) level 6 costs more than cutting the tile.
GZIP_LEVEL = 1
GZIP_ABOVE = 1024  # bytes: smaller tiles go as they are (GZipMiddleware's own threshold)


def gzipped(data: bytes) -> bytes | None:
    """The tile gzipped, or None when it is too small to be worth it."""
    if len(data) < GZIP_ABOVE:
        return None
    return gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)


@dataclass(frozen=True)
class Tile:
    """What to send of a tile: its bytes (gzipped or not), and the ETag of its plain bytes."""

    body: bytes
    etag: str
    is_gzipped: bool = False
    from_cache: bool = False

    @property
    def data(self) -> bytes:
        """The plain MVT bytes."""
        return gzip.decompress(self.body) if self.is_gzipped else self.body


_STATE = sa.text("SELECT scope_key, generation, can_store FROM ga_tile_state()")
_KEY = "layer = :layer AND z = :z AND x = :x AND y = :y AND gcj02 = :gcj02 AND scope_key = :key"
_FRESH = f"FROM tile_cache WHERE {_KEY} AND generation = :gen"
# only the bytes that will be sent: a dense tile is 100-200 kB, and bytea travels as hex
_LOOKUP_PLAIN = sa.text(f"SELECT data AS body, false AS is_gzipped, etag {_FRESH}")
_LOOKUP_GZIP = sa.text(
    f"SELECT coalesce(gz, data) AS body, gz IS NOT NULL AS is_gzipped, etag {_FRESH}"
)
_STORE = sa.text(
    "INSERT INTO tile_cache (layer, z, x, y, gcj02, scope_key, generation, data, gz, etag) "
    "VALUES (:layer, :z, :x, :y, :gcj02, :key, :gen, :data, :gz, :etag) "
    "ON CONFLICT (layer, z, x, y, gcj02, scope_key) DO UPDATE SET "
    "generation = excluded.generation, data = excluded.data, gz = excluded.gz, "
    "etag = excluded.etag, made_at = now() WHERE tile_cache.generation < excluded.generation"
)


def tile(
    conn: Connection,
    layer: str,
    z: int,
    x: int,
    y: int,
    *,
    gcj02: bool = False,
    cache: bool = True,
    accepts_gzip: bool = False,
) -> Tile:
    """One tile of ``layer`` for the user of ``conn``: from the cache while its data is
    unchanged, else cut (and, with ``cache``, kept; empty tiles are not kept). Gzipped
    when the client ``accepts_gzip`` and the tile is worth it.

    The generation is read before the tile is cut, in an earlier snapshot (see 0016).
    """
    get_layer(layer)
    check_tile(z, x, y)
    state = conn.execute(_STATE).one() if cache else None
    key = None
    if state is not None and state.scope_key is not None:
        key = {"layer": layer, "z": z, "x": x, "y": y, "gcj02": gcj02,
               "key": state.scope_key, "gen": state.generation}  # fmt: skip
        hit = conn.execute(_LOOKUP_GZIP if accepts_gzip else _LOOKUP_PLAIN, key).first()
        if hit is not None:
            return Tile(bytes(hit.body), hit.etag, hit.is_gzipped, from_cache=True)
    data = make_tile(conn, layer, z, x, y, gcj02=gcj02)
    etag, gz = etag_of(data), gzipped(data)
    if key is not None and data and state.can_store:
        conn.execute(_STORE, {**key, "data": data, "gz": gz, "etag": etag})
    if accepts_gzip and gz is not None:
        return Tile(gz, etag, is_gzipped=True)
    return Tile(data, etag)


def compact_cache(conn: Connection, keep: int) -> int:
    """Fold the invalidations, drop entries of past generations and the oldest beyond
    ``keep``; the number of outdated entries dropped (the scheduler runs it)."""
    return int(conn.scalar(sa.text("SELECT ga_tile_compact(:keep)"), {"keep": keep}) or 0)


def scope_buildings(conn: Connection) -> tuple[int, tuple[float, float, float, float] | None]:
    """How many buildings the user's scope holds, and their extent (west, south, east, north).

    The city map draws them as tiles above ``Settings.vector_tiles_above``.
    """
    row = conn.execute(
        sa.text(
            "SELECT q.n, ST_XMin(q.e) AS w, ST_YMin(q.e) AS s, ST_XMax(q.e) AS e, "
            "ST_YMax(q.e) AS nn FROM (SELECT count(*) AS n, ST_Extent(b.geom) AS e "
            "FROM building b WHERE b.id IN (SELECT ga_scope_buildings(ga_user()))) q"
        )
    ).one()
    if not row.n:
        return 0, None
    return int(row.n), (row.w, row.s, row.e, row.nn)
