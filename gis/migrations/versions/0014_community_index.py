"""Drop the second index on community.subdistrict_id.

0005 created ``community_subdistrict_id_idx2`` on the column 0001 had already indexed as
``community_subdistrict_id_idx`` (same column, same method, no predicate): every write to
``community`` kept two identical b-trees and the planner had two names for one path.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS community_subdistrict_id_idx2")


def downgrade() -> None:
    op.execute(
        "CREATE INDEX IF NOT EXISTS community_subdistrict_id_idx2 ON community (subdistrict_id)"
    )
