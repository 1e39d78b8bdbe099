"""What a delineation reads from PostGIS: buildings and streets as ``Inputs`` (metres), the
stored cells per block, and one community on its own (``service.run_community``)."""

from __future__ import annotations

import numpy as np
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis.crs import metric_epsg_for, to_metric
from gis.delineate import cells as C
from gis.delineate import part_store
from gis.delineate.model import Inputs
from gis.errors import InvalidInput, NotFound


def inputs_of(
    conn: Connection, rows: list, streets: list, epsg: int, communities, is_part: bool = False
) -> Inputs:
    """Inputs (metres) of building rows (id, households, WKB) and street rows (highway, WKB);
    ``is_part``: the rows are some of the city's buildings (one community's)."""
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    lines = shapely.from_wkb([bytes(r[1]) for r in streets]) if streets else np.array([])
    return Inputs(
        building_ids=ids,
        households=np.array([r[1] for r in rows], dtype=float),
        footprints=to_metric(shapely.from_wkb([bytes(r[2]) for r in rows]), epsg),
        street_lines=to_metric(lines, epsg) if len(lines) else np.array([]),
        highways=np.array([r[0] for r in streets], dtype=object),
        communities=communities,
        dwellings=part_store.load_registers(conn, ids, only_these=is_part),
        doors=part_store.load_doors(conn, ids, only_these=is_part),
    )


def block_cells(conn: Connection, epsg: int, ids: np.ndarray | None = None) -> dict:
    """Stored cells per block hash (in building id order), of ``ids`` only when given."""
    where = "" if ids is None else "WHERE building_id = ANY(:ids) "
    reuse: dict = {}
    for block_hash, e, raws in conn.execute(
        sa.text(
            "SELECT block_hash, min(epsg), array_agg(raw_wkb ORDER BY building_id) "
            f"FROM building_cell {where}GROUP BY block_hash"
        ),
        {} if ids is None else {"ids": ids.tolist()},
    ):
        if e == epsg:
            reuse[block_hash] = list(shapely.from_wkb([bytes(b) for b in raws]))
    return reuse


STREET_MARGIN_M = 50.0  # streets this near a community's outline are read with it
# who holds a building lying in several communities: the one with most of its footprint,
# ties to the lowest code (shares compared in lon/lat: a ratio at one place, not a measure)
COMMUNITY_BUILDINGS = sa.text(
    """
    WITH me AS (SELECT id, geom FROM community WHERE id = :c),
    cand AS (SELECT b.id, b.households, b.geom, ST_CoveredBy(b.geom, me.geom) AS is_inside
               FROM building b, me WHERE ST_Intersects(b.geom, me.geom)),
    owner AS (SELECT DISTINCT ON (cand.id) cand.id, o.id AS cid
                FROM cand JOIN community o ON ST_Intersects(cand.geom, o.geom)
               WHERE NOT cand.is_inside
               ORDER BY cand.id, ST_Area(ST_Intersection(cand.geom, o.geom)) DESC, o.code)
    SELECT cand.id, cand.households, ST_AsBinary(cand.geom) FROM cand
     WHERE cand.is_inside OR cand.id IN (SELECT id FROM owner WHERE cid = :c)
     ORDER BY cand.id
    """
)
COMMUNITY_STREETS = sa.text(
    "WITH near AS MATERIALIZED (SELECT ST_Transform(ST_Buffer(ST_Transform(geom, :e), :m), "
    "4326) AS g FROM community WHERE id = :c) "
    "SELECT w.highway, ST_AsBinary(w.geom) FROM walk_edge w, near "
    "WHERE ST_Intersects(w.geom, near.g) ORDER BY w.id"
)


def load_community(conn: Connection, code: str) -> tuple[Inputs, int, dict, int]:
    """Read one community: its outline, buildings and nearby streets (metres), and cells.

    The metric CRS is the whole city's (the centre of every building's bounds, as ``_load``
    takes it), so that stored cells are reused and stored ones stay comparable.
    """
    row = conn.execute(
        sa.text("SELECT id, ST_AsBinary(geom) FROM community WHERE code = :c"), {"c": code}
    ).first()
    if row is None:
        raise NotFound(
            f"no community {code!r}; run without --community first to propose them, "
            "or import community boundaries"
        )
    bounds = conn.execute(
        sa.text("SELECT ST_AsBinary(ST_Extent(geom)::geometry) FROM building")
    ).scalar()
    if bounds is None:
        raise InvalidInput("no buildings yet: import a map first (gridatlas import FILE)")
    epsg = metric_epsg_for(np.array([shapely.from_wkb(bytes(bounds))]))
    comm_id = int(row[0])
    rows = conn.execute(COMMUNITY_BUILDINGS, {"c": comm_id}).all()
    streets = conn.execute(COMMUNITY_STREETS, {"c": comm_id, "e": epsg, "m": STREET_MARGIN_M}).all()
    # the outline cuts the blocks like a street and is the study area (``pieces.tessellate``)
    outline = to_metric(shapely.from_wkb(bytes(row[1])), epsg)
    inputs = inputs_of(conn, rows, streets, epsg, None, is_part=True)
    inputs.communities = [(code, _snapped_outline(conn, comm_id, outline, inputs, epsg))]
    # no earlier coverage: a community's pieces are noded on their own (see ``service._load_reuse``)
    return inputs, epsg, block_cells(conn, epsg, inputs.building_ids), comm_id


def _snapped_outline(conn: Connection, comm_id: int, outline, inputs: Inputs, epsg: int):
    """The outline with the street and neighbouring outline vertices that lie on it.

    A whole-city run nodes every street and outline together, so a street ending on a road
    that runs along the outline ends on a node. Drawn alone, the outline is the edge of the
    study area: the road along it is clipped away (it only touches the area) and the street
    ending on it would dangle a float's width short of the edge, leaving its block uncut.
    Snapping the outline to those vertices (within the 1 cm grid) puts the nodes back.
    """
    bounding = np.isin(inputs.highways, list(C.BOUNDING_HIGHWAYS))
    near = conn.execute(
        sa.text(
            "SELECT ST_AsBinary(o.geom) FROM community o, community c WHERE c.id = :c "
            "AND o.id <> c.id AND ST_Intersects(o.geom, c.geom)"
        ),
        {"c": comm_id},
    ).scalars()
    others = [to_metric(shapely.from_wkb(bytes(g)), epsg) for g in near]
    xy = [shapely.get_coordinates(inputs.street_lines[bounding])]
    xy += [shapely.get_coordinates(np.array(others, dtype=object))] if others else []
    snapped = shapely.snap(outline, shapely.multipoints(np.concatenate(xy)), C.GRID_M)
    return snapped if shapely.is_valid(snapped) else outline
