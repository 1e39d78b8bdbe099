"""Read queries for the map layers: GeoJSON pages by bbox, summary counts, import history.

Tables and columns come from ``gis.schema``: a layer names columns that exist there (checked
at import), never the caller's text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis import geojson, schema
from gis.errors import InvalidInput


@dataclass(frozen=True)
class Layer:
    """A public layer: a table's rows keyed by ``key``, with ``properties`` and ``geom``."""

    table: sa.Table
    key: sa.Column
    properties: tuple[sa.Column, ...]


def _layer(table: sa.Table, *properties: str, key: str = "id") -> Layer:
    return Layer(table, table.c[key], tuple(table.c[name] for name in properties))


LAYERS: dict[str, Layer] = {
    "buildings": _layer(
        schema.building,
        "building_type",
        "name",
        "levels",
        "area_m2",
        "households",
        "households_source",
        "is_residential",
        "source_id",
    ),
    "facilities": _layer(schema.facility, "categories", "kind", "name", "source_id"),
    "walk_edges": _layer(schema.walk_edge, "source", "target", "highway", "name", "length_m"),
    "subdistricts": _layer(schema.subdistrict, "code", "name", "households"),
    "communities": _layer(schema.community, "code", "name", "households", "subdistrict_id"),
    "grids": _layer(schema.grid, "code", "name", "households", "community_id"),
    "residents_groups": _layer(
        schema.residents_group, "code", "households", "community_id", "grid_id", "flags"
    ),
    "building_clusters": _layer(
        schema.building_cluster, "code", "households", "residents_group_id"
    ),
    "units": _layer(schema.unit, "code", "households", "building_cluster_id"),
    # cells are keyed by their building
    "building_cells": _layer(schema.building_cell, "block_hash", key="building_id"),
}
MAX_PAGE = 10_000


@dataclass(frozen=True)
class BBox:
    """A lon/lat box: west, south, east, north."""

    west: float
    south: float
    east: float
    north: float

    @classmethod
    def parse(cls, text: str) -> BBox:
        """Parse "west,south,east,north" in degrees, refusing anything else clearly."""
        try:
            w, s, e, n = (float(v) for v in text.split(","))
        except ValueError as err:
            raise InvalidInput(
                "bbox must be four numbers: west,south,east,north "
                "(longitude/latitude, e.g. 118.76,32.03,118.80,32.06)",
                key="refusal.bbox_numbers",
            ) from err
        if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
            raise InvalidInput(
                "bbox must have west < east within ±180 and south < north "
                "within ±90 (longitude/latitude in degrees)",
                key="refusal.bbox_order",
            )
        return cls(w, s, e, n)


def _get_layer(layer: str) -> Layer:
    if layer not in LAYERS:
        raise InvalidInput(f"unknown layer {layer!r}; choose from {', '.join(LAYERS)}")
    return LAYERS[layer]


def _in_bbox(layer: Layer, bbox: BBox | None) -> list[sa.ColumnElement[bool]]:
    if bbox is None:
        return []
    envelope = sa.func.ST_MakeEnvelope(bbox.west, bbox.south, bbox.east, bbox.north, schema.SRID)
    return [layer.table.c.geom.intersects(envelope)]  # &&: bounding boxes touch


def feature_page(
    conn: Connection, layer: str, *, bbox: BBox | None, limit: int, offset: int
) -> dict[str, Any]:
    """Return one page of ``layer`` as a GeoJSON FeatureCollection, ordered by id."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
    if offset < 0:
        raise InvalidInput("offset must be 0 or more")
    spec = _get_layer(layer)
    where = _in_bbox(spec, bbox)
    total = conn.scalar(sa.select(sa.func.count()).select_from(spec.table).where(*where))
    # PostGIS writes each feature's JSON: no geometry is parsed in Python.
    feature = geojson.feature_expr(spec.key, spec.table.c.geom, spec.properties)
    stmt = sa.select(feature).where(*where).order_by(spec.key).limit(limit).offset(offset)
    return geojson.collection(conn.scalars(stmt), matched=total)


SCOPE_BUILDINGS = sa.select(sa.literal_column("ga_scope_buildings(ga_user())"))


def layer_frame(
    conn: Connection,
    layer: str,
    *,
    bbox: BBox | None = None,
    limit: int = 20_000,
    scoped: bool = False,
) -> gpd.GeoDataFrame:
    """Return ``layer`` as a GeoDataFrame (for drawing maps), at most ``limit`` rows;
    ``scoped`` (buildings): only the buildings of the user's scope."""
    spec = _get_layer(layer)
    # The raw column (hex EWKB) for geopandas to parse, not geoalchemy2's WKBElement.
    geom = sa.type_coerce(spec.table.c.geom, sa.types.NullType()).label("geom")
    where = list(_in_bbox(spec, bbox))
    if scoped and spec.table is schema.building:
        where.append(spec.key.in_(SCOPE_BUILDINGS))
    stmt = (
        sa.select(spec.key.label("id"), *spec.properties, geom)
        .where(*where)
        .order_by(spec.key)
        .limit(limit)
    )
    return gpd.read_postgis(stmt, conn, geom_col="geom", crs=4326)


def _count(table: sa.Table) -> sa.ScalarSelect[int]:
    return sa.select(sa.func.count()).select_from(table).scalar_subquery()


def _total(column: sa.Column) -> sa.ScalarSelect[Any]:
    return sa.select(sa.func.coalesce(sa.func.sum(column), 0)).scalar_subquery()


def summary(conn: Connection) -> dict[str, Any]:
    """Return counts of every table, households and the data's extent."""
    b, d = schema.building, schema.dwelling
    # = count(*) FROM dwelling_all, without expanding the estimate row by row
    estimated = (
        sa.select(sa.func.coalesce(sa.func.sum(b.c.households), 0))
        .where(b.c.households > 0, ~sa.exists().where(d.c.building_id == b.c.id))
        .scalar_subquery()
    )
    counts = (
        conn.execute(
            sa.select(
                _count(schema.subdistrict).label("subdistricts"),
                _count(schema.community).label("communities"),
                _count(schema.grid).label("grids"),
                _count(b).label("buildings"),
                _total(b.c.households).label("households"),
                (_count(d) + estimated).label("dwellings"),
                _count(schema.facility).label("facilities"),
                _count(schema.walk_node).label("walk_nodes"),
                _count(schema.walk_edge).label("walk_edges"),
                _total(schema.walk_edge.c.length_m).label("walk_length_m"),
            )
        )
        .mappings()
        .one()
    )
    box = sa.select(sa.func.ST_Extent(b.c.geom).label("e")).subquery("x")
    extent = conn.execute(
        sa.select(
            sa.func.ST_XMin(box.c.e),
            sa.func.ST_YMin(box.c.e),
            sa.func.ST_XMax(box.c.e),
            sa.func.ST_YMax(box.c.e),
        )
    ).one()
    out = {k: (float(v) if k == "walk_length_m" else int(v)) for k, v in counts.items()}
    out["bbox"] = None if extent[0] is None else [float(v) for v in extent]
    return out


def import_runs(conn: Connection, limit: int = 50) -> list[dict[str, Any]]:
    """Return the latest import runs, newest first."""
    r = schema.import_run.c
    stmt = (
        sa.select(r.id, r.source_file, r.format, r.sha256, r.started_at, r.finished_at, r.report)
        .order_by(r.id.desc())
        .limit(limit)
    )
    return [dict(row) for row in conn.execute(stmt).mappings()]
