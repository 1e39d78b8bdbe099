"""Overdue problems escalated one level up (worker → committee → subdistrict).

* ``problem.escalation_level``: who answers for the problem now: ``worker`` (the grid's
  workers, as reported), ``committee`` (the residents' committee) or ``subdistrict``
  (街道); ``problem.escalated_at``: when it last went up. The scheduled job
  (``gis/patrol/escalate.py``) moves an overdue problem up one level per run.
* ``problem_event.escalated_to``: an escalation is an event too (from and to status are the
  problem's unchanged status). The job runs as the owner, for nobody, so such an event has
  no ``user_id``; every other event keeps one (a CHECK). The app role still writes events
  only as itself (0008's policy), so it cannot write a user-less one.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

LEVELS = ("worker", "committee", "subdistrict")


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def upgrade() -> None:
    op.execute(
        f"""
        ALTER TABLE problem
          ADD COLUMN escalation_level text NOT NULL DEFAULT 'worker'
              CHECK (escalation_level IN {_in(LEVELS)}),
          ADD COLUMN escalated_at timestamptz,
          ADD CONSTRAINT problem_escalated_at_check
              CHECK ((escalation_level = 'worker') = (escalated_at IS NULL))
        """
    )
    op.execute(
        f"""
        ALTER TABLE problem_event
          ADD COLUMN escalated_to text CHECK (escalated_to IN {_in(LEVELS[1:])}),
          ALTER COLUMN user_id DROP NOT NULL,
          ADD CONSTRAINT problem_event_user_check
              CHECK (user_id IS NOT NULL OR escalated_to IS NOT NULL)
        """
    )


def downgrade() -> None:
    op.execute("DELETE FROM problem_event WHERE user_id IS NULL")
    op.execute(
        "ALTER TABLE problem_event DROP CONSTRAINT problem_event_user_check, "
        "DROP COLUMN escalated_to, ALTER COLUMN user_id SET NOT NULL"
    )
    op.execute(
        "ALTER TABLE problem DROP CONSTRAINT problem_escalated_at_check, "
        "DROP COLUMN escalated_at, DROP COLUMN escalation_level"
    )
