"""Walking reach: one run per computation, distances per building and category.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE reach_run (
            id              bigserial PRIMARY KEY,
            computed_at     timestamptz NOT NULL DEFAULT now(),
            speed_m_per_min double precision NOT NULL CHECK (speed_m_per_min > 0),
            max_walk_m      double precision NOT NULL CHECK (max_walk_m > 0),
            categories      text[] NOT NULL,
            report          jsonb NOT NULL DEFAULT '{}'::jsonb
        )
        """
    )
    # One row per building and run; arrays follow reach_run.categories. walk_m is the
    # network distance in metres; 'Infinity' when a facility is reachable but farther than
    # max_walk_m; 'NaN' when no path leads to any facility of the category (an island).
    # facility_id is -1 where none was reached. Fixed-width arrays without NULLs let the
    # writer encode a million rows in one go; the view below shows NULLs instead.
    # building_id has no foreign key: rows are derived and rewritten whole by each run, a
    # million per-row key checks would double the write, and readers join building anyway
    # (a building removed since the run simply drops out of every figure).
    op.execute(
        """
        CREATE TABLE building_reach (
            run_id      bigint NOT NULL REFERENCES reach_run (id) ON DELETE CASCADE,
            building_id bigint NOT NULL,
            walk_m      real[] NOT NULL,
            facility_id bigint[] NOT NULL,
            PRIMARY KEY (run_id, building_id)
        )
        """
    )
    op.execute(
        """
        CREATE VIEW building_reach_latest AS
        SELECT r.building_id, c.category,
               NULLIF(c.walk_m, 'NaN')::double precision AS walk_m,
               CASE WHEN c.walk_m = 'NaN' OR c.walk_m = 'Infinity' THEN NULL
                    ELSE c.walk_m / run.speed_m_per_min * 60 END AS walk_s,
               NULLIF(c.facility_id, -1) AS facility_id, run.id AS run_id,
               run.speed_m_per_min
          FROM reach_run run
          JOIN building_reach r ON r.run_id = run.id
          JOIN building b ON b.id = r.building_id
          CROSS JOIN LATERAL unnest(run.categories, r.walk_m, r.facility_id)
                AS c(category, walk_m, facility_id)
         WHERE run.id = (SELECT max(id) FROM reach_run)
        """
    )


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS building_reach_latest")
    op.execute("DROP TABLE IF EXISTS building_reach")
    op.execute("DROP TABLE IF EXISTS reach_run")
