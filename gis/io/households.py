"""Households per building: ``building:flats`` where known, else an estimate from the footprint.

The estimate (documented in docs/households.md) is::

    households = round(footprint_m2 x levels x floor_efficiency / dwelling_m2)

with levels from ``building:levels``, else ``height`` / 3 m, else a default by building type.
Non-residential buildings have no households; a residential footprint under
``min_residential_m2`` (sheds, kiosks mapped as ``building=yes``) has none either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

# building=* values that are homes. ``yes`` (untyped) counts as residential unless the
# feature carries a shop/amenity/office tag: in Chinese city-centre extracts most untyped
# footprints are housing, and counting them is how "no household missed" starts.
RESIDENTIAL_TYPES = frozenset(
    {
        "yes",
        "residential",
        "apartments",
        "house",
        "detached",
        "semidetached_house",
        "terrace",
        "dormitory",
        "bungalow",
        "farm",
        "cabin",
        "houseboat",
        "static_caravan",
        "stilt_house",
    }
)
DEFAULT_LEVELS = {
    "apartments": 6,
    "residential": 6,
    "dormitory": 5,
    "yes": 5,
    "house": 2,
    "detached": 2,
    "semidetached_house": 2,
    "terrace": 3,
    "bungalow": 1,
    "farm": 2,
    "cabin": 1,
}
FALLBACK_LEVELS = 3
METRES_PER_LEVEL = 3.0
NON_RESIDENTIAL_KEYS = ("shop", "amenity", "office", "tourism", "craft", "healthcare")

_NUMBER = re.compile(r"^\s*(\d+(?:\.\d+)?)")
_WHOLE = re.compile(r"\d+(?:\.\d+)?")
_THOUSANDS = re.compile(r"^\s*\d{1,3}(?:,\d{3})+(?!\d)")
# No residential building holds more; a larger figure is a typo or a unit mix-up.
MAX_HOUSEHOLDS = 20_000
MAX_LEVELS = 200


@dataclass(frozen=True)
class EstimateParams:
    """Figures the estimate uses; defaults come from settings."""

    dwelling_m2: float = 70.0
    floor_efficiency: float = 0.75
    min_residential_m2: float = 30.0


def parse_number(value: str | None) -> float | None:
    """Return the leading number of an OSM value ("6", "6.5", "18 m", "12;14"), else None."""
    if value is None:
        return None
    text = str(value)
    if _THOUSANDS.match(text):  # "1,200": a thousands separator
        text = text.replace(",", "")
    m = _NUMBER.match(text.replace(",", "."))  # "6,5": a decimal comma
    return float(m.group(1)) if m else None


def parse_count(value: str | None, maximum: int) -> tuple[int | None, str | None]:
    """Return (a whole count from an OSM or table value, why it was refused).

    "12" and "12.0" are 12; "12.5" is refused (no half dwelling), as is anything above
    ``maximum`` or a value with no number. (None, None) means the value is absent.
    """
    if value is None or str(value).strip() == "":
        return None, None
    text = str(value).strip()
    if _THOUSANDS.fullmatch(text):
        text = text.replace(",", "")
    number = float(text) if _WHOLE.fullmatch(text) else None
    if number is None:
        return None, f"{value!r} is not a number"
    if number != int(number):
        return None, f"{value!r} is not a whole number"
    if number > maximum:
        return None, f"{value!r} is more than {maximum:,}"
    return int(number), None


def resolve_levels(
    building_type: str, levels_tag: str | None, height_tag: str | None
) -> tuple[int, str]:
    """Return (levels, how we know): from the tag, from the height, or a default by type."""
    levels = parse_number(levels_tag)
    if levels is not None and 1 <= levels <= MAX_LEVELS:
        return int(round(levels)), "tag"
    height = parse_number(height_tag)
    if height is not None and METRES_PER_LEVEL <= height <= MAX_LEVELS * METRES_PER_LEVEL:
        return max(1, int(round(height / METRES_PER_LEVEL))), "height"
    return DEFAULT_LEVELS.get(building_type, FALLBACK_LEVELS), "default"


# Lodging is not housing, whatever building=* says: a hotel's rooms are not households.
LODGING = frozenset({"hotel", "hostel", "motel", "guest_house", "apartment", "chalet"})
# Names of lodging (a hotel mapped as building=yes with only its name), in the languages of
# the extracts we serve; a serviced-apartment block (酒店式公寓) is housing and stays.
_LODGING_NAME = re.compile(
    r"酒店|饭店|宾馆|旅馆|旅社|招待所|客栈|青年旅舍|\b(?:hotel|hostel|motel|pousada)\b",
    re.IGNORECASE,
)
_HOUSING_NAME = re.compile(r"公寓|住宅|小区|宿舍|\bapartments?\b", re.IGNORECASE)


def is_lodging(tags: dict[str, str], name: str | None = None) -> bool:
    """A hotel, hostel or the like: by ``tourism=*`` or, for an untyped building, its name."""
    if tags.get("tourism") in LODGING:
        return True
    return bool(name and _LODGING_NAME.search(name) and not _HOUSING_NAME.search(name))


def is_residential(building_type: str, tags: dict[str, str], name: str | None = None) -> bool:
    """Return whether a building is housing (see RESIDENTIAL_TYPES; lodging never is)."""
    if building_type not in RESIDENTIAL_TYPES or tags.get("tourism") in LODGING:
        return False
    if building_type == "yes":
        return not (any(k in tags for k in NON_RESIDENTIAL_KEYS) or is_lodging(tags, name))
    return True


def estimate_households(
    area_m2: np.ndarray, levels: np.ndarray, residential: np.ndarray, params: EstimateParams
) -> np.ndarray:
    """Return estimated households per building (0 for non-residential or tiny footprints)."""
    raw = area_m2 * levels * params.floor_efficiency / params.dwelling_m2
    est = np.maximum(np.rint(raw), 1).astype(np.int64)
    keep = residential & (area_m2 >= params.min_residential_m2)
    return np.where(keep, est, 0)
