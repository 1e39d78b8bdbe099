"""Delineation: stored building cells, runs with their quality report, group flags;
building entrances for walking reach.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A building's cell: the land nearer to it than to any other building of its street
    # block. ``raw_wkb`` keeps the cell as computed (metres, ``epsg``) so that a later run
    # reuses every block whose hash (outline + footprints) is unchanged; ``cell_wkb`` is the
    # cell after noding with all others (metres): unions of those are exact, which is what
    # re-deriving polygons after a manual edit needs.
    op.execute(
        """
        CREATE TABLE building_cell (
            building_id bigint PRIMARY KEY REFERENCES building (id) ON DELETE CASCADE,
            block_hash  text NOT NULL,
            epsg        integer NOT NULL,
            raw_wkb     bytea NOT NULL,
            cell_wkb    bytea NOT NULL,
            geom        geometry(MultiPolygon, 4326) NOT NULL
        )
        """
    )
    # Land without buildings (a square, a park block) and the unit it was joined to.
    op.execute(
        """
        CREATE TABLE land_piece (
            id        bigserial PRIMARY KEY,
            unit_id   bigint NOT NULL REFERENCES unit (id) ON DELETE CASCADE,
            block_hash text NOT NULL,
            epsg      integer NOT NULL,
            cell_wkb  bytea NOT NULL,
            geom      geometry(MultiPolygon, 4326) NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX land_piece_unit_id_idx ON land_piece (unit_id)")
    op.execute("CREATE INDEX land_piece_geom_gist ON land_piece USING gist (geom)")
    op.execute("CREATE INDEX building_cell_block_hash_idx ON building_cell (block_hash)")
    op.execute("CREATE INDEX building_cell_geom_gist ON building_cell USING gist (geom)")
    op.execute(
        """
        CREATE TABLE delineation_run (
            id          bigserial PRIMARY KEY,
            created_at  timestamptz NOT NULL DEFAULT now(),
            params      jsonb NOT NULL,
            coverage_key text NOT NULL,
            quality     jsonb NOT NULL,
            timings     jsonb NOT NULL
        )
        """
    )
    op.execute("ALTER TABLE residents_group ADD COLUMN flags text[] NOT NULL DEFAULT '{}'")
    # Doors mapped as entrance=* nodes on a building's outline: walking starts there.
    op.execute(
        """
        CREATE TABLE building_entrance (
            id          bigserial PRIMARY KEY,
            building_id bigint NOT NULL REFERENCES building (id) ON DELETE CASCADE,
            source_id   text NOT NULL,
            kind        text NOT NULL,
            rank        integer NOT NULL,
            geom        geometry(Point, 4326) NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX building_entrance_building_idx ON building_entrance (building_id)")
    op.execute("CREATE INDEX building_entrance_geom_gist ON building_entrance USING gist (geom)")


def downgrade() -> None:
    op.execute("DROP TABLE building_entrance")
    op.execute("ALTER TABLE residents_group DROP COLUMN flags")
    op.execute("DROP TABLE delineation_run")
    op.execute("DROP TABLE land_piece")
    op.execute("DROP TABLE building_cell")
