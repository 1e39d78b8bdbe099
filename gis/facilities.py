"""Facilities added, moved, renamed or removed by hand (planners), with optimistic locking.

Edits to imported facilities outlive re-imports of their source: an edited row keeps the
planner's values (``edited_at``), a removed one is remembered (``facility_withdrawn``) so
the next import does not bring it back.

Each row's version is PostgreSQL's ``xmin`` (the transaction that last wrote it): an edit
must name the version it was based on, so two planners editing the same facility cannot
silently overwrite each other.

Every change is made on behalf of an editor and only inside the editor's area: a community
they hold (it, or its subdistrict; an admin holds the city). A facility outside is
answered as if it did not exist, so its existence is not revealed; a new position outside
is refused before anything is written.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis.categories import category_codes
from gis.errors import Forbidden, InvalidInput, NotFound, StaleVersion, VersionRequired

SOURCE = "api"
COLUMNS = (
    "SELECT id, categories, kind, name, source_file, source_id, xmin::text AS version, "
    "ST_X(ST_PointOnSurface(geom)) AS lon, ST_Y(ST_PointOnSurface(geom)) AS lat, "
    "GeometryType(geom) AS geometry_type FROM facility"
)


# SQL: the point ``{p}`` lies in a community the user ``:uid`` holds (it, or its
# subdistrict); a GiST lookup on community.geom. Both ends of a scope row are ours.
_HELD_POINT = (
    "EXISTS (SELECT 1 FROM app_user_scope s JOIN community c ON "
    "(s.level = 'community' AND c.id = s.area_id) OR "
    "(s.level = 'subdistrict' AND c.subdistrict_id = s.area_id) "
    "WHERE s.user_id = :uid AND ST_Covers(c.geom, {p}))"
)
_NEW_POINT = "ST_SetSRID(ST_MakePoint(:x, :y), 4326)"

# Facilities are public map data (OpenStreetMap and planners' edits), not personal data;
# but what a user is sent is cut to their areas: the facilities within this distance of one
# of the user's buildings (those a resident of them would walk to); the city for an admin.
AROUND_M = 300.0
_M_PER_DEGREE = 111_320.0  # of latitude; a degree of longitude is this × cos(latitude)


def visible_sql(alias: str = "f", scope: str = "SELECT ga_scope_buildings(ga_user())") -> str:
    """SQL: the facility ``alias`` stands within ``AROUND_M`` of a building of the user's
    scope (``scope``: a subquery of building ids); admins: every facility."""
    # the box test uses building's GiST index; the distance itself is on the spheroid
    deg = f"{AROUND_M:g} / {_M_PER_DEGREE:g} / greatest(cos(radians(ST_Y({alias}.geom))), 0.01)"
    return (
        f"((SELECT ga_role()) = 'admin' OR EXISTS (SELECT 1 FROM building nb "
        f"WHERE nb.geom && ST_Expand(ST_Envelope({alias}.geom), {deg}) "
        f"AND nb.id IN ({scope}) "
        f"AND ST_DWithin(nb.geom::geography, {alias}.geom::geography, {AROUND_M:g})))"
    )


@dataclass(frozen=True)
class EditorScope:
    """Who edits: an admin edits anywhere, anybody else inside the communities they hold."""

    user_id: int
    is_admin: bool


def _check_categories(categories: list[str]) -> list[str]:
    known = category_codes()
    if not categories:
        raise InvalidInput("give at least one category")
    unknown = [c for c in categories if c not in known]
    if unknown:
        raise InvalidInput(
            f"unknown category {unknown[0]!r}; choose from {', '.join(sorted(known))}"
        )
    return list(dict.fromkeys(categories))


def _check_point(lon: float, lat: float) -> None:
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise InvalidInput("lon/lat must be WGS 84 degrees")


def holds_point(conn: Connection, editor: EditorScope, lon: float, lat: float) -> bool:
    """Whether the point lies in the editor's area (a community they hold; admins: all)."""
    if editor.is_admin:
        return True
    return bool(
        conn.scalar(
            sa.text(f"SELECT {_HELD_POINT.format(p=_NEW_POINT)}"),
            {"uid": editor.user_id, "x": lon, "y": lat},
        )
    )


def _check_new_point(
    conn: Connection, editor: EditorScope, lon: float, lat: float, what: str = "the position"
) -> None:
    _check_point(lon, lat)
    if not holds_point(conn, editor, lon, lat):
        raise Forbidden(
            f"{what} {lon:.6f}, {lat:.6f} is outside your area: you may place facilities "
            "only inside the communities you hold; ask an admin or that community's staff"
        )


def get_facility(conn: Connection, facility_id: int) -> dict[str, Any]:
    """Return one facility with its version."""
    row = conn.execute(sa.text(f"{COLUMNS} WHERE id = :id"), {"id": facility_id}).mappings().first()
    if row is None:
        raise NotFound(f"no facility {facility_id}")
    return dict(row)


def create_facility(
    conn: Connection,
    editor: EditorScope,
    *,
    lon: float,
    lat: float,
    categories: list[str],
    name: str | None,
) -> dict[str, Any]:
    """Add a facility at a point of the editor's area."""
    cats = _check_categories(categories)
    _check_new_point(conn, editor, lon, lat)
    new_id = conn.scalar(
        sa.text(
            "INSERT INTO facility (categories, kind, name, geom, source_file, source_id) "
            "VALUES (:c, 'manual', :n, ST_SetSRID(ST_MakePoint(:x, :y), 4326), :sf, :sid) "
            "RETURNING id"
        ),
        {"c": cats, "n": name, "x": lon, "y": lat, "sf": SOURCE, "sid": str(uuid.uuid4())},
    )
    return get_facility(conn, int(new_id))


def _lock_at_version(
    conn: Connection, editor: EditorScope, facility_id: int, version: str | None
) -> None:
    """Lock the facility if it is in the editor's area and still at ``version``."""
    if version is None:
        raise VersionRequired("say which version you edited: send If-Match with the ETag from GET")
    held = "true" if editor.is_admin else _HELD_POINT.format(p="ST_PointOnSurface(f.geom)")
    row = conn.execute(
        sa.text(f"SELECT xmin::text, {held} FROM facility f WHERE id = :id FOR UPDATE"),
        {"id": facility_id, "uid": editor.user_id},
    ).first()
    # outside the editor's area reads exactly like a facility that does not exist
    if row is None or not row[1]:
        raise NotFound(f"no facility {facility_id} in your area")
    current = row[0]
    if current != version:
        raise StaleVersion("the facility changed since you loaded it; reload and edit again")


def update_facility(
    conn: Connection,
    editor: EditorScope,
    facility_id: int,
    version: str | None,
    *,
    lon: float | None = None,
    lat: float | None = None,
    categories: list[str] | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """Move, rename or recategorise a facility edited from ``version``.

    Both the facility's position and the new one must lie in the editor's area.
    """
    _lock_at_version(conn, editor, facility_id, version)
    if (lon is None) != (lat is None):
        raise InvalidInput("move with both lon and lat")
    cats = None if categories is None else _check_categories(categories)
    if lon is not None and lat is not None:
        _check_new_point(conn, editor, lon, lat, "the new position")
        conn.execute(
            sa.text(
                "UPDATE facility SET geom = ST_SetSRID(ST_MakePoint(:x, :y), 4326) WHERE id = :id"
            ),
            {"x": lon, "y": lat, "id": facility_id},
        )
    if cats is not None:
        conn.execute(
            sa.text("UPDATE facility SET categories = :c WHERE id = :id"),
            {"c": cats, "id": facility_id},
        )
    if name is not None:
        conn.execute(
            sa.text("UPDATE facility SET name = :n WHERE id = :id"), {"n": name, "id": facility_id}
        )
    conn.execute(
        sa.text("UPDATE facility SET edited_at = now() WHERE id = :id"), {"id": facility_id}
    )
    return get_facility(conn, facility_id)


def delete_facility(
    conn: Connection, editor: EditorScope, facility_id: int, version: str | None
) -> None:
    """Remove a facility of the editor's area edited from ``version``."""
    _lock_at_version(conn, editor, facility_id, version)
    conn.execute(
        sa.text(
            "WITH gone AS (DELETE FROM facility WHERE id = :id RETURNING source_file, source_id) "
            "INSERT INTO facility_withdrawn (source_file, source_id) SELECT source_file, "
            "source_id FROM gone WHERE source_file <> :api ON CONFLICT DO NOTHING"
        ),
        {"id": facility_id, "api": SOURCE},
    )
