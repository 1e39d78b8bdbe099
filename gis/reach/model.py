"""An in-memory reach model for interactive questions: what if a facility stood here?"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis import geojson
from gis.crs import lonlat_to_metric, to_wgs84
from gis.errors import InvalidInput, NotFound
from gis.reach.compute import distances_from_point, isochrone
from gis.reach.graph import WalkGraph
from gis.reach.service import Inputs, build_graph, load_inputs, reach_all, resolve_categories


@dataclass
class ReachModel:
    """Inputs and graph built once; baseline distances computed per category on demand."""

    inputs: Inputs
    graph: WalkGraph
    baseline: dict[str, np.ndarray] = field(default_factory=dict)
    isochrones: dict[tuple[int, float], dict] = field(default_factory=dict)

    def baseline_m(self, category: str) -> np.ndarray:
        """Return today's distance from every building to the category (inf/nan: none)."""
        if category not in self.baseline:
            r = reach_all(self.inputs, self.graph, [category])
            self.baseline[category] = r.walk_m[0]
        return self.baseline[category]


def data_version(conn: Connection) -> tuple:
    """Return a key that changes whenever imported data changes."""
    return tuple(
        conn.execute(
            sa.text(
                "SELECT (SELECT max(id) FROM import_run), (SELECT count(*) FROM facility), "
                "(SELECT max(imported_at) FROM facility)"
            )
        ).one()
    )


def load_model(conn: Connection, metric_epsg: int | None = None) -> ReachModel:
    """Read the data and build the attached graph."""
    inputs = load_inputs(conn, metric_epsg)
    return ReachModel(inputs=inputs, graph=build_graph(inputs))


def building_at(conn: Connection, lon: float, lat: float) -> int | None:
    """Return the id of the building whose footprint holds lon/lat, if any."""
    return conn.scalar(
        sa.text(
            "SELECT id FROM building WHERE ST_Contains(geom, ST_SetSRID(ST_MakePoint(:x, :y), "
            "4326)) ORDER BY id LIMIT 1"
        ),
        {"x": lon, "y": lat},
    )


def what_if(
    model: ReachModel,
    lon: float,
    lat: float,
    category: str,
    limit_m: float,
    inside_building_id: int | None = None,
    counted: np.ndarray | None = None,
) -> dict:
    """Households newly within ``limit_m`` if a facility of ``category`` stood at lon/lat.

    ``counted`` (a mask over the model's buildings) limits every figure to those buildings:
    the user's areas (gis.reach.scope); None counts the whole city.
    """
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise InvalidInput("lon/lat must be degrees (WGS 84)")
    (category,) = resolve_categories([category])
    t0 = time.perf_counter()
    before = model.baseline_m(category)
    xy = np.array(lonlat_to_metric(lon, lat, model.inputs.epsg))
    d = distances_from_point(model.graph, xy, limit_m)
    new = model.graph.point_distance(d, np.arange(len(model.inputs.building_ids)))
    if inside_building_id is not None:  # a facility in a building is at 0 m from it
        pos = int(np.searchsorted(model.inputs.building_ids, inside_building_id))
        if pos < len(new) and model.inputs.building_ids[pos] == inside_building_id:
            new[pos] = 0.0
    was_covered = before <= limit_m
    gained = (~was_covered) & (new <= limit_m)
    hh = model.inputs.households if counted is None else model.inputs.households * counted
    return {
        "category": category,
        "limit_m": limit_m,
        "area": "city" if counted is None else "scope",
        "households_in_area": int(hh.sum()),
        "households_gained": int(hh[gained].sum()),
        "buildings_gained": int((gained if counted is None else gained & counted).sum()),
        "households_covered_before": int(hh[was_covered].sum()),
        "households_covered_after": int(hh[was_covered | gained].sum()),
        "households_reached_from_here": int(hh[new <= limit_m].sum()),
        "compute_ms": round((time.perf_counter() - t0) * 1000, 2),
    }


def facility_isochrone(model: ReachModel, facility_id: int, limit_m: float) -> dict:
    """Return the walkable area around a facility as a GeoJSON Feature (WGS 84), cached."""
    key = (int(facility_id), round(limit_m, 1))
    if key in model.isochrones:
        return model.isochrones[key]
    pos = int(np.searchsorted(model.inputs.facility_ids, facility_id))
    if pos >= len(model.inputs.facility_ids) or model.inputs.facility_ids[pos] != facility_id:
        raise NotFound(f"no facility {facility_id}")
    n_b = len(model.inputs.building_ids)
    node = int(model.graph.point_node[n_b + pos])
    area = isochrone(model.graph, node, limit_m)
    geometry = None
    if area is not None:
        lonlat = to_wgs84(area, model.inputs.epsg)
        geometry = geojson.geometry(lonlat)
    feature = geojson.feature(
        int(facility_id),
        geometry,
        {
            "facility_id": int(facility_id),
            "limit_m": limit_m,
            "note": "for display; coverage uses network distances",
        },
    )
    model.isochrones[key] = feature
    return feature
