"""Building parts: towers divided by entrance or floors (issue 14).

A building the delineation divides has one row per part here, in floor order (``part_no``
1 holds the lowest floors). A part is a set of whole dwellings (``rooms``, as
``dwelling_all`` names them) on a contiguous range of floors, and is a unit of its own;
the parts' households add up to the building's. The building's own ``unit_id`` points at
one of its parts' units (the one its land was joined to), so a path up from the building
still exists.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

APP_ROLE = "gridatlas_app"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE building_part (
            id          bigserial PRIMARY KEY,
            building_id bigint NOT NULL REFERENCES building (id) ON DELETE CASCADE,
            part_no     integer NOT NULL CHECK (part_no >= 1),
            unit_id     bigint REFERENCES unit (id) ON DELETE SET NULL,
            households  integer NOT NULL CHECK (households > 0),
            floor_min   integer NOT NULL,
            floor_max   integer NOT NULL,
            entrance    text,
            rooms       text[] NOT NULL CHECK (cardinality(rooms) > 0),
            created_at  timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT building_part_building_id_part_no_key UNIQUE (building_id, part_no),
            CONSTRAINT building_part_floors_check CHECK (floor_min <= floor_max)
        )
        """
    )
    op.execute("CREATE INDEX building_part_unit_id_idx ON building_part (unit_id)")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON building_part TO {APP_ROLE}")
    op.execute(f"GRANT USAGE, SELECT ON SEQUENCE building_part_id_seq TO {APP_ROLE}")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS building_part")
