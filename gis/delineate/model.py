"""The values a delineation takes and gives: targets, inputs, and each level's areas."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gis.delineate import cells as C

DEFAULT_BAND = 0.2  # a group within ±20 % of the target is "in band"


def band_of(target: float, band: float = DEFAULT_BAND) -> tuple[float, float]:
    """Return the (lowest, highest) households of a group in band around ``target``."""
    return target * (1 - band), target * (1 + band)


@dataclass(frozen=True)
class Params:
    """Targets of the delineation (households)."""

    group_households: int = 100
    band: float = DEFAULT_BAND
    cluster_households: int = 35
    unit_min_households: int = 5
    unit_cap: int = 60
    grid_households: int = 300
    community_households: int = 2500
    major_highways: frozenset[str] = C.MAJOR_HIGHWAYS

    @property
    def group_max(self) -> float:
        return band_of(self.group_households, self.band)[1]

    @property
    def group_min(self) -> float:
        return band_of(self.group_households, self.band)[0]


@dataclass
class Inputs:
    """Buildings and streets in a metric CRS; optional community outlines."""

    building_ids: np.ndarray
    households: np.ndarray
    footprints: np.ndarray
    street_lines: np.ndarray
    highways: np.ndarray
    communities: list[tuple[str, object]] | None = None  # (code, polygon) when imported
    # per building index with a house register, households per dwelling in floor order
    # (buildings not listed: one household per dwelling, as dwelling_estimate makes them)
    dwellings: dict[int, np.ndarray] | None = None
    # per building index whose dwellings are behind two or more known entrances (单元门),
    # households per dwelling by entrance then floor, and each one's entrance (0, 1, …)
    doors: dict[int, tuple[np.ndarray, np.ndarray]] | None = None


@dataclass
class Level:
    """One level's areas: members (indices of the level below), codes, households, polygons."""

    code: list[str]
    parent: np.ndarray  # index into the level above
    households: np.ndarray
    geom: np.ndarray
    flags: list[list[str]] = field(default_factory=list)


@dataclass
class Result:
    """A delineation: per building its unit; per level the areas; timing and quality."""

    building_unit: np.ndarray  # per building, index of its unit (-1: outside every community)
    units: Level
    clusters: Level
    groups: Level
    grids: Level
    communities: Level
    cells: np.ndarray  # per building, its cell (metric)
    block_hash: list[str]
    block_cells: dict[str, list]
    timings: dict[str, float]
    quality: dict
    raw_cells: np.ndarray  # per building, its cell before noding (what blocks reuse)
    building_block_hash: list[str]  # per building, the hash of its block ("" outside)
    group_grid: np.ndarray  # per group, index of its grid
    frozen_geom: np.ndarray  # locked groups' land, as found in this run's cells
    frozen_comm: np.ndarray  # and their community
    frozen_grid: np.ndarray  # and the grid they now belong to
    land_geom: np.ndarray  # land without buildings (metric), joined to …
    land_unit: np.ndarray  # … this unit (-1: inside a locked group)
    coverage: tuple  # (key, cells per building, land pieces): what ``reuse`` takes back
    land_hash: list[str]  # per land piece, the hash of its block
    coverage_reused: bool  # the noded pieces came from ``reuse``
    # per divided building (index in the inputs), its parts' (unit, households), floor order
    parts: dict[int, list[tuple[int, float]]] = field(default_factory=dict)
    group_plan: np.ndarray | None = None  # groups without cells they hold only a part of
