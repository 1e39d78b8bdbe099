"""Reports: the people figures of a community for those who read no personal rows (issue 15).

Planners read no resident, backbone, leader or problem row (row-level security), so the
report's people figures were empty for them. ``ga_report_counts`` counts them without
showing a row: for a community the caller holds whole (``ga_holds_community``: admins,
logins scoped to the community or its subdistrict; else no row at all), one row of

* ``backbone_people``: distinct residents with a backbone entry in its buildings;
* ``leaders``: units, clusters, residents' groups and residential buildings of it with a
  current leader;
* ``problems_reported``, ``problems_closed``, ``problems_overdue`` (at ``asof``);
* ``median_days_to_close``: from the report to the first closing event.

A count from 1 to 4 is withheld (NULL), as everywhere (``gis.suppression.SMALL``); zero is
shown. The median is withheld unless at least 5 problems were closed: a median of a few is
nearly their values. The overdue rule is ``gis.patrol.overdue.overdue_sql`` as of this
revision (written out: a migration does not change when the code does); a test compares
the two, so a change of the rule shows up as a failing test and needs a new revision.

No table changes: ``gis/schema.py`` has nothing to mirror.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

APP_ROLE = "gridatlas_app"
DEFINER = "SECURITY DEFINER SET search_path = public, pg_temp"
SMALL = 5
SIGNATURE = "ga_report_counts(bigint, timestamptz)"
# gis.patrol.overdue.overdue_sql(":asof") at this revision
OVERDUE = (
    "coalesce(p.deadline < asof AND (p.status IN ('reported', 'accepted', 'in_progress') "
    "OR (p.status = 'resolved' AND (SELECT max(pe.at) FROM problem_event pe "
    "WHERE pe.problem_id = p.id AND pe.to_status = 'resolved' AND pe.escalated_to IS NULL "
    "AND pe.at <= asof) > p.deadline)), false)"
)


def _shown(expr: str) -> str:
    return f"CASE WHEN {expr} > 0 AND {expr} < {SMALL} THEN NULL ELSE {expr} END"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE FUNCTION ga_report_counts(cid bigint, asof timestamptz)
        RETURNS TABLE (backbone_people bigint, leaders bigint, problems_reported bigint,
                       problems_closed bigint, problems_overdue bigint,
                       median_days_to_close double precision)
        LANGUAGE sql STABLE {DEFINER} AS $$
          WITH b AS (SELECT id, households FROM building WHERE community_id = cid),
          areas AS (
            SELECT 'residents_group' AS level, g.id FROM residents_group g
             WHERE g.community_id = cid
            UNION ALL
            SELECT 'building_cluster', c.id FROM building_cluster c
              JOIN residents_group g ON g.id = c.residents_group_id WHERE g.community_id = cid
            UNION ALL
            SELECT 'unit', u.id FROM unit u
              JOIN building_cluster c ON c.id = u.building_cluster_id
              JOIN residents_group g ON g.id = c.residents_group_id WHERE g.community_id = cid
            UNION ALL
            SELECT 'building', id FROM b WHERE households > 0
          ),
          p AS (
            SELECT p.status, {OVERDUE} AS is_overdue,
                   (SELECT min(e.at) FROM problem_event e WHERE e.problem_id = p.id
                       AND e.to_status = 'closed') - p.reported_at AS to_close
              FROM problem p WHERE p.building_id IN (SELECT id FROM b)
          ),
          n AS (
            SELECT (SELECT count(DISTINCT k.resident_id) FROM backbone k
                      JOIN resident r ON r.id = k.resident_id
                     WHERE r.building_id IN (SELECT id FROM b)) AS backbone_people,
                   (SELECT count(*) FROM areas a WHERE EXISTS (
                      SELECT 1 FROM leader_assignment la WHERE la.level = a.level
                         AND la.area_id = a.id AND la.ended_at IS NULL)) AS leaders,
                   (SELECT count(*) FROM p) AS reported,
                   (SELECT count(*) FROM p WHERE status = 'closed') AS closed,
                   (SELECT count(*) FROM p WHERE is_overdue) AS overdue,
                   (SELECT count(*) FROM p WHERE status = 'closed' AND to_close IS NOT NULL)
                     AS timed,
                   (SELECT percentile_cont(0.5) WITHIN GROUP (
                             ORDER BY extract(epoch FROM to_close) / 86400)
                      FROM p WHERE status = 'closed' AND to_close IS NOT NULL) AS median_days
          )
          SELECT {_shown("n.backbone_people")}, {_shown("n.leaders")}, {_shown("n.reported")},
                 {_shown("n.closed")}, {_shown("n.overdue")},
                 CASE WHEN n.timed >= {SMALL} THEN n.median_days END
            FROM n WHERE ga_holds_community(cid)
        $$
        """
    )
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO {APP_ROLE}")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS {SIGNATURE}")
