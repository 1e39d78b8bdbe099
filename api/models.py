"""What the API answers, as read models: /docs shows the fields, responses are checked.

The fields are exactly those gis/ returns (``gis.ledger.store._resident_out``,
``_entry_out``, ``gis.accounts``, ``gis.areas``, ``gis.search``); timestamps stay the ISO
text gis/ writes (re-encoding them would change the answer), masked numbers stay text.
Models ignore fields they do not name, so ``extra`` is ``allow``: a field gis/ adds is
passed on rather than silently dropped. GeoJSON is documented, not validated
(:data:`GEOJSON_PAGE`): pages of thousands of features are written by PostGIS.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

T = TypeVar("T")
Timestamp = Annotated[
    str, Field(description="ISO 8601 date and time", examples=["2026-12-01T08:00:00+00:00"])
]


class Read(BaseModel):
    """A read model: fields gis/ returns; any other field gis/ adds is kept."""

    model_config = ConfigDict(extra="allow")


class Page(Read, Generic[T]):
    """One page of a list: ``total`` rows match, ``limit`` at most from ``offset``."""

    total: int = Field(description="rows matching the filters, all pages")
    limit: int
    offset: int
    items: list[T]


# --- residents and the four ledgers -----------------------------------------------------


class Resident(Read):
    """A resident (居民); ID and phone numbers masked unless revealed (``reveal=``)."""

    id: int
    name: str = Field(description="姓名")
    gender: str | None = Field(description="性别, from the ID number")
    birth_date: str | None = Field(description="出生日期 (roles that may see ID numbers)")
    birth_year: int | None
    id_number: str = Field(description="身份证号, masked (e.g. 3201**********1234)")
    phone: str | None = Field(description="联系电话, masked")
    building_id: int
    building: str | None = Field(description="the building's name")
    address: str | None
    room: str = Field(description="室号")
    relation: str | None = Field(description="与户主关系")
    status: str = Field(description="居住状态")
    notes: str | None
    is_synthetic: bool
    version: int = Field(description="the ETag: send it back in If-Match to change the row")
    updated_at: Timestamp
    categories: dict[str, list[str]] = Field(
        description="special_groups, key_persons and backbone entries of the resident"
    )


class _AboutResident(Read):
    id: int
    resident_id: int
    resident_name: str


class SpecialGroupEntry(_AboutResident):
    """特殊人群 entry."""

    category: str
    notes: str | None
    version: int
    updated_at: Timestamp


class KeyPersonEntry(_AboutResident):
    """重点人员 entry."""

    category: str
    handling: str | None = Field(description="处置措施")
    notes: str | None
    version: int
    updated_at: Timestamp


class BackboneEntry(_AboutResident):
    """骨干 entry."""

    role: str
    notes: str | None
    version: int
    updated_at: Timestamp


class Organisation(Read):
    """辖区单位; the phone masked unless revealed."""

    id: int
    name: str
    kind: str
    contact_name: str | None
    phone: str | None = Field(description="masked")
    address: str | None
    building_id: int | None
    community_id: int
    notes: str | None
    version: int
    updated_at: Timestamp


def _ledger_of(entry: Any) -> str:
    """Which ledger an entry is from, by the fields only it has (a dict or a model)."""
    fields = entry if isinstance(entry, dict) else vars(entry)
    if "kind" in fields:
        return "organisations"
    if "role" in fields:
        return "backbone"
    if "handling" in fields:
        return "key_persons"
    return "special_groups"


Entry = Annotated[
    Annotated[SpecialGroupEntry, Tag("special_groups")]
    | Annotated[KeyPersonEntry, Tag("key_persons")]
    | Annotated[BackboneEntry, Tag("backbone")]
    | Annotated[Organisation, Tag("organisations")],
    Discriminator(_ledger_of),
]


class ResidentPage(Page[Resident]):
    """A page of residents."""


class EntryPage(Page[Entry]):
    """A page of one ledger's entries."""


class Change(Read):
    """One change of a ledger row: who, when, which fields, before and after."""

    at: Timestamp
    user: str | None
    action: str
    changed: list[str]
    old: dict[str, Any] | None
    new: dict[str, Any] | None


# --- users ---------------------------------------------------------------------------------


class AreaScope(Read):
    """An area of a user's scope."""

    level: str
    area_id: int


class UserRow(Read):
    id: int
    username: str
    full_name: str | None
    role: str
    is_active: bool


class NewUserOut(Read):
    id: int
    username: str
    role: str
    scopes: list[AreaScope]


class Me(Read):
    """The logged-in user."""

    id: int
    username: str
    full_name: str | None
    role: str
    role_label: str = Field(description="the role in Chinese, e.g. 网格员")
    scopes: list[AreaScope] = Field(description="the user's areas (none: admin)")


class Deactivated(Read):
    id: int
    is_active: bool


# --- leaders, search, stats --------------------------------------------------------------


class LeaderTerm(Read):
    id: int
    resident_id: int
    name: str
    started_at: Timestamp
    ended_at: Timestamp | None
    lives_inside: bool
    assigned_by: str | None


class Leaders(Read):
    level: str
    area_id: int
    current: LeaderTerm | None
    history: list[LeaderTerm] = Field(description="newest first, the current one included")


class LeaderChange(Leaders):
    assignment_id: int
    warnings: list[str]


class SearchHit(Read):
    """A building, area, facility or resident; fields a kind has not are left out."""

    kind: str = Field(description="building, community, grid, …, facility or resident")
    id: int
    label: str | None = None
    code: str | None = None
    match: str | None = Field(None, description="address, code, name, dwelling, …")
    households: int | None = None
    community_id: int | None = None
    lon: float | None = None
    lat: float | None = None
    building_id: int | None = None
    room: str | None = None
    facility_kind: str | None = None


class SearchResult(Read):
    q: str
    parsed: dict[str, Any] | None = Field(description="the address as parsed, if it is one")
    fallback: str | None = Field(description="the less specific address matched instead")
    results: list[SearchHit]


class AreaCounts(Read):
    id: int
    code: str | None
    name: str | None
    households: int | None
    counts: dict[str, int | str] = Field(description='a count, or "suppressed"')


class Stats(Read):
    level: str
    numberMatched: int  # noqa: N815 (GeoJSON's name)
    suppressed_below: int
    areas: list[AreaCounts]


# --- GeoJSON: documented, not validated ----------------------------------------------------


class Feature(BaseModel):
    type: str = "Feature"
    id: int | str | None
    geometry: dict[str, Any] | None
    properties: dict[str, Any]


class FeatureCollection(BaseModel):
    """A page of features; ``links`` holds the ``next`` page where there is one."""

    type: str = "FeatureCollection"
    numberMatched: int  # noqa: N815
    numberReturned: int  # noqa: N815
    links: list[dict[str, str]] | None = None
    features: list[Feature]


class GeoJSONResponse(JSONResponse):
    """GeoJSON: text PostGIS wrote is sent as it is, anything else encoded as JSON."""

    media_type = "application/geo+json"

    def render(self, content: Any) -> bytes:
        if isinstance(content, str):
            return content.encode("utf-8")
        return super().render(content)


def geojson_responses(model: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a GeoJSON route: the schema shown in /docs, the body not checked
    (the route also says ``response_model=None``)."""
    return {200: {"model": model}}


class GapsPage(FeatureCollection):
    """Buildings without the category within the limit, most households first."""

    category: str
    limit_m: float
    households_in_gaps: int


GEOJSON_PAGE = geojson_responses(FeatureCollection)
GEOJSON_FEATURE = geojson_responses(Feature)
