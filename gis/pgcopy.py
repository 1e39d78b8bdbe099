"""Bulk writes to PostGIS: binary COPY, and geometries encoded as PostGIS reads them.

Binary COPY needs no text formatting in Python and no parsing on the server. Geometries
travel as EWKB with SRID 4326, which PostGIS's binary input reads directly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely
from sqlalchemy.engine import Connection

# SQL column type -> the binary COPY type its values are sent as
BINARY_TYPES = {
    "geometry": "bytea",
    "bytea": "bytea",
    "double precision": "float8",
    "integer": "int4",
    "bigint": "int8",
    "boolean": "bool",
    "text": "text",
    "text[]": "text[]",
    "jsonb": "jsonb",
}

_SRID_FLAG = 0x20000000
_SRID_4326 = (4326).to_bytes(4, "little")
_POLYGON = 3


def ewkb_4326(geoms: np.ndarray) -> list[bytes]:
    """Return EWKB with SRID 4326 (what PostGIS's binary input wants) for lon/lat geometries.

    The SRID is spliced into little-endian WKB: ``shapely.set_srid`` would copy every
    geometry first, which costs more than the whole encoding.
    """
    out = []
    for b in shapely.to_wkb(geoms, byte_order=1):
        kind = int.from_bytes(b[1:5], "little") | _SRID_FLAG
        out.append(b[:1] + kind.to_bytes(4, "little") + _SRID_4326 + b[5:])
    return out


def to_multi(geoms: np.ndarray) -> np.ndarray:
    """Return polygons as one-part MultiPolygons (the column type), leaving the rest."""
    geoms = np.array(geoms, dtype=object)
    single = shapely.get_type_id(geoms) == _POLYGON
    if single.any():
        geoms[single] = shapely.multipolygons(geoms[single], indices=np.arange(single.sum()))
    return geoms


def copy_rows(
    conn: Connection,
    table: str,
    names: Sequence[str],
    sql_types: Sequence[str],
    data: Sequence[Sequence],
) -> None:
    """COPY columns ``data`` (one sequence per column, of SQL types ``sql_types``) into ``table``.

    ``table`` and ``names`` are identifiers from the code, never from a user.
    """
    raw = conn.connection.driver_connection
    sql = f"COPY {table} ({', '.join(names)}) FROM STDIN (FORMAT BINARY)"
    with raw.cursor() as cur, cur.copy(sql) as copy:
        copy.set_types([BINARY_TYPES[t] for t in sql_types])
        for row in zip(*data, strict=True):
            copy.write_row(row)
