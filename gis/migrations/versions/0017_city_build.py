"""The city build's record of finished work and the per-community report figures (issue 17).

``gridatlas city build`` (gis/city/) runs its stages as units of work on Dask workers; each
unit writes its data and its ``city_build_unit`` row in one transaction, so a unit is on
record exactly when its data is stored, and a re-run after a crash skips it.
``city_build_failure`` keeps every failed attempt (retried or not). ``community_figures``
holds the report figures of each community as the build computed them.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

STAGES = ("import", "cells", "delineate", "reach", "reports")


def upgrade() -> None:
    stages = ", ".join(f"'{s}'" for s in STAGES)
    op.execute(
        f"""
        CREATE TABLE city_build_unit (
          build text NOT NULL,
          stage text NOT NULL CHECK (stage IN ({stages})),
          unit text NOT NULL,
          finished_at timestamptz NOT NULL DEFAULT clock_timestamp(),
          seconds real NOT NULL,
          attempt integer NOT NULL DEFAULT 1,
          result jsonb NOT NULL DEFAULT '{{}}'::jsonb,
          PRIMARY KEY (build, stage, unit)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE city_build_failure (
          id bigserial PRIMARY KEY,
          build text NOT NULL,
          stage text NOT NULL,
          unit text NOT NULL,
          error text NOT NULL,
          at timestamptz NOT NULL DEFAULT clock_timestamp()
        )
        """
    )
    op.execute(
        "CREATE INDEX city_build_failure_unit_idx ON city_build_failure (build, stage, unit)"
    )
    op.execute(
        """
        CREATE TABLE community_figures (
          community_id bigint PRIMARY KEY REFERENCES community (id) ON DELETE CASCADE,
          figures jsonb NOT NULL,
          computed_at timestamptz NOT NULL DEFAULT clock_timestamp()
        )
        """
    )


def downgrade() -> None:
    for table in ("community_figures", "city_build_failure", "city_build_unit"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
