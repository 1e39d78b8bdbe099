"""Street blocks cached by a hash of the streets (issue 14).

Cutting the study area into street blocks (polygonising the bounding streets, and the
imported community outlines the cells are clipped to) and finding each building's block
cost about a second on Porto on every run, even when nothing changed. ``street_block_cache``
keeps the blocks of the latest run under ``key``, a hash of everything that determines
them (the study area, the cutting lines, the method's version): a run whose key matches
takes them from here. ``blocks_wkb`` is one GeometryCollection of the blocks in their order
(metres, ``epsg``); ``footprint_digests`` holds 16 bytes per footprint (a hash of its
normalised WKB) and ``footprint_blocks`` the block of each (int32, -1: outside the area), so
an unchanged footprint is not placed again. The delineation writes the row in its run's
transaction, replacing the previous one.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02
"""

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

APP_ROLE = "gridatlas_app"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE street_block_cache (
            key               text PRIMARY KEY,
            epsg              integer NOT NULL,
            blocks            integer NOT NULL CHECK (blocks >= 0),
            blocks_wkb        bytea NOT NULL,
            footprint_digests bytea NOT NULL,
            footprint_blocks  bytea NOT NULL,
            made_at           timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON street_block_cache TO {APP_ROLE}")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS street_block_cache")
