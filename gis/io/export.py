"""Export a layer from PostGIS to GeoJSON, GeoPackage, Shapefile or CSV."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gis.errors import InvalidInput

# layer name -> (table, columns); geometry is always the table's ``geom``.
EXPORTS: dict[str, tuple[str, str]] = {
    "buildings": (
        "building",
        "id, source_file, source_id, building_type, name, addr_street, "
        "addr_housenumber, levels, levels_source, height_m, flats, "
        "area_m2, is_residential, households, households_source, "
        "unit_id, community_id",
    ),
    "facilities": (
        "facility",
        "id, source_file, source_id, array_to_string(categories, ';') AS category, kind, name",
    ),
    "walk_edges": ("walk_edge", "id, source, target, highway, name, length_m, source_id"),
    "walk_nodes": ("walk_node", "id, source_id"),
    "subdistricts": ("subdistrict", "id, code, name, households"),
    "communities": (
        "community",
        "id, code, name, households, housing_type, "
        "(SELECT code FROM subdistrict s WHERE s.id = subdistrict_id) "
        "AS subdistrict",
    ),
    "grids": (
        "grid",
        "id, code, name, households, "
        "(SELECT code FROM community c WHERE c.id = community_id) AS community",
    ),
}
DRIVERS = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG", ".shp": "ESRI Shapefile"}


def export_layer(engine: Engine, layer: str, path: Path) -> int:
    """Write ``layer`` to ``path`` (format from the suffix); return the feature count."""
    path = Path(path)
    suffix = path.suffix.lower()
    if layer == "dwellings":
        if suffix != ".csv":
            raise InvalidInput("dwellings have no geometry: export them to a .csv file")
        with engine.connect() as conn:
            df = pd.read_sql(
                sa.text(
                    "SELECT d.building_id, b.source_id AS building, d.floor, d.room, "
                    "d.households, d.is_estimated FROM dwelling_all d JOIN building b "
                    "ON b.id = d.building_id ORDER BY d.building_id, d.floor, d.room"
                ),
                conn,
            )
        df.to_csv(path, index=False)
        return len(df)
    if layer not in EXPORTS:
        raise InvalidInput(
            f"unknown layer {layer!r}; choose from {', '.join([*EXPORTS, 'dwellings'])}"
        )
    table, columns = EXPORTS[layer]
    with engine.connect() as conn:
        gdf = gpd.read_postgis(
            sa.text(f"SELECT {columns}, geom FROM {table} ORDER BY id"),
            conn,
            geom_col="geom",
            crs=4326,
        )
    if suffix == ".csv":
        gdf.assign(geom=gdf.geometry.to_wkt()).to_csv(path, index=False)
        return len(gdf)
    if suffix not in DRIVERS:
        raise InvalidInput(f"{path.name}: give a .geojson, .gpkg, .shp or .csv path")
    if not path.parent.exists():
        raise InvalidInput(f"folder {path.parent} does not exist")
    pyogrio.write_dataframe(gdf, path, driver=DRIVERS[suffix], layer=layer)
    return len(gdf)
