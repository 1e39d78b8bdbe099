"""What part of the city an interactive reach question counts: the user's areas, or all.

A planner's what-if and siting suggestions count the households of the buildings their
scope holds (``ga_scope_buildings(ga_user())``, the same SQL as every other read), and
suggest sites inside the areas they hold. An admin (whole city) counts the whole city.
A facility outside the areas still covers the buildings inside them: the baseline is
always computed with every facility of the city.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis.crs import to_metric
from gis.levels import TABLES
from gis.reach.model import ReachModel

# Street nodes this close outside an area still count as in it: areas are often drawn
# along the middle of a street, and a facility opens onto the street either side.
EDGE_M = 30.0

# the union of the geometries of the user's scope rows; table names are ours (gis.levels)
_AREAS_SQL = " UNION ALL ".join(
    f"SELECT a.geom FROM app_user_scope s JOIN {table} a ON a.id = s.area_id "
    f"WHERE s.user_id = ga_user() AND s.level = '{table}'"
    for table in TABLES
)


@dataclass(frozen=True)
class ReachScope:
    """The buildings a question counts (a mask over the model's), and the areas they are in.

    ``buildings`` None means the whole city; ``area_m`` is the union of the user's areas in
    the model's metric CRS (None: the whole city, or no area with a geometry).
    """

    buildings: np.ndarray | None
    area_m: shapely.Geometry | None = None

    @property
    def is_whole_city(self) -> bool:
        return self.buildings is None

    def households(self, model: ReachModel) -> int:
        """The households of the buildings counted."""
        hh = model.inputs.households
        return int(hh.sum() if self.buildings is None else hh[self.buildings].sum())


WHOLE_CITY = ReachScope(None)


def load_scope(
    conn: Connection, model: ReachModel, *, is_whole_city: bool, with_area: bool = True
) -> ReachScope:
    """The user's scope (of the connection: ``ga_user()``) over ``model``'s buildings, and
    (``with_area``: for siting) the union of their areas."""
    if is_whole_city:
        return WHOLE_CITY
    ids = np.array(
        conn.execute(sa.text("SELECT ga_scope_buildings(ga_user())")).scalars().all(),
        dtype=np.int64,
    )
    mask = np.isin(model.inputs.building_ids, ids)
    if not with_area:
        return ReachScope(mask)
    wkb = conn.scalar(sa.text(f"SELECT ST_AsBinary(ST_Union(geom)) FROM ({_AREAS_SQL}) x"))
    area = None
    if wkb is not None:
        area = to_metric(shapely.from_wkb(bytes(wkb)), model.inputs.epsg)
    return ReachScope(mask, area)


def nodes_in_area(model: ReachModel, scope: ReachScope, nodes: np.ndarray) -> np.ndarray:
    """The graph ``nodes`` that stand in the scope's areas (all of them for the city)."""
    if scope.is_whole_city:
        return nodes
    if scope.area_m is None or scope.area_m.is_empty:
        return nodes[:0]
    xy = model.graph.node_xy[nodes]
    inside = shapely.contains_xy(shapely.buffer(scope.area_m, EDGE_M), xy[:, 0], xy[:, 1])
    return nodes[inside]
