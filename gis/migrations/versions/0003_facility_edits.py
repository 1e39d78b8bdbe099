"""Facility edits made through the API survive re-imports of the source they came from.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Set when a planner moves, renames or recategorises a facility: a re-import of its
    # source then keeps the planner's values (and the row, if the source drops it).
    op.execute("ALTER TABLE facility ADD COLUMN edited_at timestamptz")
    # Imported facilities a planner removed: a re-import of the source does not bring them back.
    op.execute(
        """
        CREATE TABLE facility_withdrawn (
            source_file  text NOT NULL,
            source_id    text NOT NULL,
            withdrawn_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (source_file, source_id)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE facility_withdrawn")
    op.execute("ALTER TABLE facility DROP COLUMN edited_at")
