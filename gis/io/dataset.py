"""What a reader hands to the loader: tables of rows ready for PostGIS, plus what went wrong."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import shapely

from gis.crs import metric_epsg_for, to_metric
from gis.io import households as hh
from gis.settings import Settings

LAYERS = ("buildings", "streets", "facilities", "subdistricts", "communities", "grids")


@dataclass(frozen=True)
class Problem:
    """A feature that was skipped or refused, and why."""

    layer: str
    source_id: str
    reason: str


@dataclass
class Dataset:
    """Rows read from one file, per layer, in WGS 84."""

    buildings: pd.DataFrame | None = None
    facilities: pd.DataFrame | None = None
    walk_nodes: pd.DataFrame | None = None
    walk_edges: pd.DataFrame | None = None
    entrances: pd.DataFrame | None = None  # building source id, node id, kind, point
    areas: dict[str, pd.DataFrame] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    repaired: Counter[str] = field(default_factory=Counter)
    metric_epsg: int | None = None

    def layers(self) -> list[str]:
        """Return the layers this dataset carries."""
        out = []
        if self.buildings is not None:
            out.append("buildings")
        if self.walk_edges is not None:
            out.append("streets")
        if self.facilities is not None:
            out.append("facilities")
        out.extend(self.areas)
        return out


def repair_polygons(
    geoms: np.ndarray, ids: np.ndarray, layer: str, ds: Dataset
) -> tuple[np.ndarray, np.ndarray]:
    """Make polygons valid; return (geometries, keep mask). Unrepairable ones are listed.

    ``make_valid`` can turn a bow-tie into two triangles plus a stray line; only the
    polygonal parts are kept. A geometry with no area left is refused.
    """
    geoms = np.array(geoms, dtype=object)  # a writable copy
    keep = ~shapely.is_missing(geoms)
    invalid = keep & ~shapely.is_valid(geoms)
    for i in np.flatnonzero(invalid):
        fixed = shapely.make_valid(geoms[i])
        parts = [
            p for p in shapely.get_parts(fixed) if shapely.get_type_id(p) in (3, 6)
        ]  # Polygon, MultiPolygon
        fixed = shapely.union_all(parts) if parts else None
        if fixed is None or fixed.is_empty or fixed.area == 0:
            keep[i] = False
            ds.problems.append(
                Problem(
                    layer,
                    str(ids[i]),
                    "invalid polygon, not repairable (no area left after make_valid)",
                )
            )
        else:
            geoms[i] = fixed
            ds.repaired[layer] += 1
    polygonal = np.isin(shapely.get_type_id(geoms), (3, 6))
    for i in np.flatnonzero(keep & ~polygonal):
        keep[i] = False
        ds.problems.append(
            Problem(layer, str(ids[i]), f"not a polygon ({shapely.get_type_id(geoms[i])})")
        )
    return geoms, keep


def finish_buildings(raw: pd.DataFrame, ds: Dataset, settings: Settings) -> pd.DataFrame:
    """Repair footprints and derive area, levels and households for raw building rows.

    ``raw`` has source_id, building_type, name, addr_street, addr_housenumber, levels_tag,
    height_tag, flats_tag, households_attr, tags (dict) and geom (lon/lat shapely).
    """
    geoms, keep = repair_polygons(
        raw["geom"].to_numpy(), raw["source_id"].to_numpy(), "buildings", ds
    )
    df = raw.loc[keep].copy()
    df["geom"] = geoms[keep]
    epsg = settings.metric_epsg or metric_epsg_for(df["geom"].to_numpy())
    if len(df):  # with no buildings the zone is a fallback: let the streets choose theirs
        ds.metric_epsg = epsg
    area = shapely.area(to_metric(df["geom"].to_numpy(), epsg))
    df["area_m2"] = np.round(area, 2)
    levels_info = [
        hh.resolve_levels(t, lv, ht)
        for t, lv, ht in zip(
            df["building_type"].tolist(),
            df["levels_tag"].tolist(),
            df["height_tag"].tolist(),
            strict=True,
        )
    ]
    df["levels"] = np.array([lv for lv, _ in levels_info], dtype=np.int64)
    df["levels_source"] = [src for _, src in levels_info]
    df["height_m"] = [hh.parse_number(h) for h in df["height_tag"].tolist()]
    df["is_residential"] = np.array(
        [
            hh.is_residential(t, tags, name if isinstance(name, str) else None)
            for t, tags, name in zip(
                df["building_type"].tolist(),
                df["tags"].tolist(),
                df["name"].tolist(),
                strict=True,
            )
        ],
        bool,
    )
    params = hh.EstimateParams(
        settings.dwelling_m2, settings.floor_efficiency, settings.min_residential_m2
    )
    est = hh.estimate_households(
        df["area_m2"].to_numpy(), df["levels"].to_numpy(), df["is_residential"].to_numpy(), params
    )
    ids = df["source_id"].tolist()
    flats = _counts(df["flats_tag"].tolist(), ids, "building:flats", ds)
    attr = _counts(df["households_attr"].tolist(), ids, "households", ds)
    df["flats"] = pd.array(np.where(np.isnan(flats), pd.NA, flats), dtype="Int64")
    households = est.astype(float)
    source = np.where(est > 0, "estimate", "none").astype(object)
    has_flats = ~np.isnan(flats)
    households[has_flats] = flats[has_flats]
    source[has_flats] = "flats"
    has_attr = ~np.isnan(attr)
    households[has_attr] = attr[has_attr]
    source[has_attr] = "attribute"
    df["households"] = households.astype(np.int64)
    df["households_source"] = source
    return df


def _counts(values: list, ids: list, what: str, ds: Dataset) -> np.ndarray:
    """Parse household counts; a bad value is ignored (the estimate stands) and listed."""
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        n, why = hh.parse_count(v, hh.MAX_HOUSEHOLDS)
        if why:
            ds.problems.append(Problem("buildings", str(ids[i]), f"{what} {why}: ignored"))
        elif n is not None:
            out[i] = n
    return out
