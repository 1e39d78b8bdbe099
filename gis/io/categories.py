"""Moved to :mod:`gis.categories`; kept until the last callers follow (issue 11)."""

from gis.categories import *  # noqa: F403
from gis.categories import FACILITY_KEYS, categorise, category_codes, load_categories  # noqa: F401
