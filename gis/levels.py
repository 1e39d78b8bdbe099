"""The hierarchy, once: every level's table, parent, code, labels and how a building finds it.

Every module that names levels reads them here, and the API's allowed values are generated
from this registry (``names()``), so a level is added or renamed in one place.

Top-down: subdistrict (街道) → community (社区) → grid (网格) → residents' group (居民小组)
→ building cluster (楼群) → unit (单元) → building (楼栋). A building finds each level
through ``building_path`` (the column ``path_column``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Level:
    """One level of the hierarchy."""

    table: str  # also the singular name used in scopes and leader assignments
    plural: str  # the URL name (/api/areas/{plural})
    parent: str | None  # the table of the level above (None at the top)
    parent_column: str | None  # the column of ``table`` that holds the parent's id
    path_column: str  # the column of the view building_path that holds this level's id
    code_column: str  # what users call an area by (a building: its source id)
    has_name: bool  # the table has a ``name`` column
    is_leader_level: bool  # areas that have a leader (楼栋长, 单元长, 楼群长, 小组长)
    label_zh: str
    label_en: str


LEVELS: tuple[Level, ...] = (
    Level("subdistrict", "subdistricts", None, None, "subdistrict_id", "code", True, False,
          "街道", "subdistrict"),
    Level("community", "communities", "subdistrict", "subdistrict_id", "community_id", "code",
          True, False, "社区", "community"),
    Level("grid", "grids", "community", "community_id", "grid_id", "code", True, False,
          "网格", "grid"),
    Level("residents_group", "residents_groups", "grid", "grid_id", "residents_group_id",
          "code", False, True, "居民小组", "residents' group"),
    Level("building_cluster", "building_clusters", "residents_group", "residents_group_id",
          "building_cluster_id", "code", False, True, "楼群", "building cluster"),
    Level("unit", "units", "building_cluster", "building_cluster_id", "unit_id", "code", False,
          True, "单元", "unit"),
    Level("building", "buildings", "unit", "unit_id", "building_id", "source_id", True, True,
          "楼栋", "building"),
)  # fmt: skip

BY_TABLE: dict[str, Level] = {lv.table: lv for lv in LEVELS}
BY_PLURAL: dict[str, Level] = {lv.plural: lv for lv in LEVELS}
TABLES: tuple[str, ...] = tuple(lv.table for lv in LEVELS)  # top-down
PLURALS: tuple[str, ...] = tuple(lv.plural for lv in LEVELS)
LEADER_TABLES: tuple[str, ...] = tuple(lv.table for lv in LEVELS if lv.is_leader_level)
# Levels drawn by hand or imported as polygons (the rest are drawn by the delineation).
DRAWN_BY_HAND: tuple[str, ...] = ("subdistrict", "community", "grid")


def level(table: str) -> Level:
    """The level of ``table`` (KeyError for a name that is not a level)."""
    return BY_TABLE[table]


def child_of(table: str) -> Level | None:
    """The level right below ``table``, or None for buildings."""
    i = TABLES.index(table)
    return LEVELS[i + 1] if i + 1 < len(LEVELS) else None


def literal(values: tuple[str, ...]) -> object:
    """``typing.Literal`` of ``values``: the allowed values of an API parameter."""
    return Literal[values]  # type: ignore[valid-type]
