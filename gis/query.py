"""Read queries for the map layers: GeoJSON pages by bbox, summary counts, import history."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis.errors import InvalidInput

# Public layer name -> (table, properties as SQL). Names are ours, never the caller's text.
LAYER_SQL: dict[str, tuple[str, str]] = {
    "buildings": (
        "building",
        "id, building_type, name, levels, area_m2, households, "
        "households_source, is_residential, source_id",
    ),
    "facilities": ("facility", "id, categories, kind, name, source_id"),
    "walk_edges": ("walk_edge", "id, source, target, highway, name, length_m"),
    "subdistricts": ("subdistrict", "id, code, name, households"),
    "communities": ("community", "id, code, name, households, subdistrict_id"),
    "grids": ("grid", "id, code, name, households, community_id"),
    "residents_groups": (
        "residents_group",
        "id, code, households, community_id, grid_id, flags",
    ),
    "building_clusters": ("building_cluster", "id, code, households, residents_group_id"),
    "units": ("unit", "id, code, households, building_cluster_id"),
    "building_cells": ("building_cell", "building_id AS id, block_hash"),
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
                "(longitude/latitude, e.g. 118.76,32.03,118.80,32.06)"
            ) from err
        if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
            raise InvalidInput(
                "bbox must have west < east within ±180 and south < north "
                "within ±90 (longitude/latitude in degrees)"
            )
        return cls(w, s, e, n)


def _layer(layer: str) -> tuple[str, str]:
    if layer not in LAYER_SQL:
        raise InvalidInput(f"unknown layer {layer!r}; choose from {', '.join(LAYER_SQL)}")
    return LAYER_SQL[layer]


def feature_page(
    conn: Connection, layer: str, *, bbox: BBox | None, limit: int, offset: int
) -> dict[str, Any]:
    """Return one page of ``layer`` as a GeoJSON FeatureCollection, ordered by id."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
    if offset < 0:
        raise InvalidInput("offset must be 0 or more")
    table, props = _layer(layer)
    key = "t.building_id" if table == "building_cell" else "t.id"  # cells are keyed by building
    where = ""
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if bbox is not None:
        where = "WHERE t.geom && ST_MakeEnvelope(:w, :s, :e, :n, 4326)"
        params.update(w=bbox.west, s=bbox.south, e=bbox.east, n=bbox.north)
    total = conn.scalar(sa.text(f"SELECT count(*) FROM {table} t {where}"), params)
    rows = (
        conn.execute(
            sa.text(f"""
        SELECT json_build_object(
                 'type', 'Feature', 'id', {key},
                 'geometry', ST_AsGeoJSON(t.geom, 7)::json,
                 'properties', to_jsonb(p) - 'id')::text
          FROM {table} t CROSS JOIN LATERAL (SELECT {props}) p
          {where}
         ORDER BY {key} LIMIT :limit OFFSET :offset"""),
            params,
        )
        .scalars()
        .all()
    )
    features = [json.loads(r) for r in rows]
    return {
        "type": "FeatureCollection",
        "features": features,
        "numberMatched": total,
        "numberReturned": len(features),
    }


def layer_frame(
    conn: Connection, layer: str, *, bbox: BBox | None = None, limit: int = 20_000
) -> gpd.GeoDataFrame:
    """Return ``layer`` as a GeoDataFrame (for drawing maps), at most ``limit`` rows."""
    table, props = _layer(layer)
    key = "t.building_id" if table == "building_cell" else "t.id"  # cells are keyed by building
    where = ""
    params: dict[str, Any] = {"limit": limit}
    if bbox is not None:
        where = "WHERE t.geom && ST_MakeEnvelope(:w, :s, :e, :n, 4326)"
        params.update(w=bbox.west, s=bbox.south, e=bbox.east, n=bbox.north)
    sql = (
        f"SELECT p.*, t.geom FROM {table} t CROSS JOIN LATERAL (SELECT {props}) p "
        f"{where} ORDER BY {key} LIMIT :limit"
    )
    return gpd.read_postgis(sa.text(sql), conn, geom_col="geom", params=params, crs=4326)


def summary(conn: Connection) -> dict[str, Any]:
    """Return counts of every table, households and the data's extent."""
    counts = (
        conn.execute(
            sa.text("""
        SELECT (SELECT count(*) FROM subdistrict) AS subdistricts,
               (SELECT count(*) FROM community) AS communities,
               (SELECT count(*) FROM grid) AS grids,
               (SELECT count(*) FROM building) AS buildings,
               (SELECT coalesce(sum(households), 0) FROM building) AS households,
               -- = count(*) FROM dwelling_all, without expanding the estimate row by row
               (SELECT count(*) FROM dwelling)
               + (SELECT coalesce(sum(b.households), 0) FROM building b WHERE b.households > 0
                    AND NOT EXISTS (SELECT 1 FROM dwelling d WHERE d.building_id = b.id))
                   AS dwellings,
               (SELECT count(*) FROM facility) AS facilities,
               (SELECT count(*) FROM walk_node) AS walk_nodes,
               (SELECT count(*) FROM walk_edge) AS walk_edges,
               (SELECT coalesce(sum(length_m), 0) FROM walk_edge) AS walk_length_m
    """)
        )
        .mappings()
        .one()
    )
    extent = conn.execute(
        sa.text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
            "FROM (SELECT ST_Extent(geom) AS e FROM building) x"
        )
    ).one()
    out = {k: (float(v) if k == "walk_length_m" else int(v)) for k, v in counts.items()}
    out["bbox"] = None if extent[0] is None else [float(v) for v in extent]
    return out


def import_runs(conn: Connection, limit: int = 50) -> list[dict[str, Any]]:
    """Return the latest import runs, newest first."""
    rows = (
        conn.execute(
            sa.text(
                "SELECT id, source_file, format, sha256, started_at, finished_at, report "
                "FROM import_run ORDER BY id DESC LIMIT :n"
            ),
            {"n": limit},
        )
        .mappings()
        .all()
    )
    return [dict(r) for r in rows]
