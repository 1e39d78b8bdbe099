"""Reports: community profiles, classification, norms, and the seed's reference tables.

Thin: parse, call ``gis.reports``, shape. Scope as everywhere (``gis.areas.visible_sql``):
a community outside the user's areas is a 404. Every figure names its source.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import Field

from api import models
from api.auth import User
from api.deps import Conn
from api.routes.patrol import Now  # one clock for patrol figures (overridden in tests)
from gis import permissions
from gis.reports import indicators, profiles, reference

router = APIRouter(prefix="/api/reports", tags=["reports"])

CommunityId = Annotated[int, Path(ge=1, le=2**62)]
Taxonomy = Annotated[
    str | None,
    Query(max_length=40, pattern=r"^[a-z_]+$",
          description="housing-type taxonomy: changshou (4 types) or changning (5 types)"),
]  # fmt: skip
Week = Annotated[
    str | None, Query(max_length=10, description="ISO week YYYY-Www (default: this week)")
]


class Figure(models.Read):
    """One figure: its value and the query or function it came from."""

    value: Any = Field(
        description='None when it cannot be computed, "suppressed" when withheld (see note)'
    )
    source: str = Field(description="the query (gis.reports.<module>.<NAME>) or function")
    unit: str | None = None
    note: str | None = None
    is_partial: bool = Field(description="counts only the rows you may see in this community")
    detail: dict[str, Any] | None = None


class Band(models.Read):
    code: str
    label_zh: str
    label_en: str
    lower: int = Field(description="households at least (inclusive)")
    upper: int | None = Field(description="households fewer than (exclusive); none: no bound")
    source: str


class HousingType(models.Read):
    taxonomy: str
    code: str | None = Field(description="None: undetermined (reason says why)")
    reason: str
    known_form_share: float = Field(description="households in buildings of known form")
    shares: dict[str, float | None]
    recorded: str | None = Field(description="community.housing_type as imported, if any")
    agrees_with_recorded: bool | None
    source: str


class Classification(models.Read):
    households_band: Band
    housing_type: HousingType


class AreaRef(models.Read):
    id: int | None
    code: str | None
    name: str | None


class Profile(models.Read):
    """A community's profile (社区概况)."""

    id: int
    code: str
    name: str | None
    subdistrict: AreaRef
    holds_community: bool = Field(description="your scope holds the whole community")
    figures: dict[str, Figure] = Field(
        description="households, buildings, grids, residents_groups, workers, backbone_people"
    )
    classification: Classification


class ProfilePage(models.Page[Profile]):
    taxonomy: str


class Norms(models.Read):
    """The norms of one community, each figure with its source."""

    community: AreaRef
    households: int
    holds_community: bool
    at: models.Timestamp
    figures: dict[str, Figure]


class ClassRow(models.Read):
    code: str | None
    count: int
    communities: list[str]


class ClassificationTable(models.Read):
    taxonomy: str
    communities: int
    is_complete: bool
    by_households: list[ClassRow]
    by_type: list[ClassRow]
    source: str


class ReferenceRow(models.Read):
    label: str
    stated_count: int = Field(description="the count the source prints")
    count: int = Field(description="the areas the data file lists under it")
    areas: list[str]


class ReferenceTables(models.Read):
    """Seed 000's tables of Changshou Road's residents' areas (names only)."""

    areas: int
    by_type: list[ReferenceRow]
    by_households: list[ReferenceRow]
    only_in_type_list: list[str]
    only_in_households_list: list[str]
    source: str


def _require(user: Any) -> None:
    permissions.require(user, "see_counts", "read reports")


@router.get(
    "/communities",
    summary="Profiles of the communities in your areas (paged)",
    response_model=ProfilePage,
)
def get_profiles(
    user: User,
    conn: Conn,
    taxonomy: Taxonomy = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    _require(user)
    return profiles.profiles(conn, user, taxonomy=taxonomy, limit=limit, offset=offset)


@router.get(
    "/communities/{community_id}",
    summary="One community's profile and classes",
    response_model=Profile,
)
def get_profile(
    community_id: CommunityId, user: User, conn: Conn, taxonomy: Taxonomy = None
) -> dict[str, Any]:
    _require(user)
    return profiles.profile(conn, user, community_id, taxonomy=taxonomy)


@router.get(
    "/communities/{community_id}/norms",
    summary="One community against the norms (staffing, backbone, leaders, facilities, …)",
    response_model=Norms,
)
def get_norms(
    community_id: CommunityId, user: User, conn: Conn, now: Now, week: Week = None
) -> dict[str, Any]:
    _require(user)
    return indicators.community_norms(conn, user, community_id, now, week=week)


@router.get(
    "/classification",
    summary="Your communities counted by households band and by housing type",
    response_model=ClassificationTable,
)
def get_classification(user: User, conn: Conn, taxonomy: Taxonomy = None) -> dict[str, Any]:
    _require(user)
    return profiles.classification_table(conn, user, taxonomy=taxonomy)


@router.get(
    "/reference/changshou-road",
    summary="Seed 000's tables: Changshou Road's 35 residents' areas by type and households",
    response_model=ReferenceTables,
)
def get_reference(user: User) -> dict[str, Any]:
    _require(user)
    return reference.tables(reference.load())
