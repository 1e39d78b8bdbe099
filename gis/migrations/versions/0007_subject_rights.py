"""A resident's own data (PIPL): the audit trail about one person, and erasure of history.

The app role may read ``audit_log`` only as an admin, and may never change ``ledger_history``
or another user's ``idempotency_key`` rows. Two narrow functions, running as their owner,
do what a subject's request needs and nothing more:

* ``ga_subject_audit(rid)``: the audit rows about one resident (reads of their record and of
  their ledger entries), with the reader's user name, only for admins and committee staff
  who may see that resident now. The owner is not bound by row-level security, so the
  scope is checked here, with the same ``ga_people_buildings()`` the policies use.
* ``ga_scrub_erased(rid)``: after the app deleted a resident in this very transaction, it
  replaces the old and new rows of their history with ``{"erased": true}`` (who, when and
  what action stay) and drops the stored answers of creating requests that hold them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

APP_ROLE = "gridatlas_app"
SUBJECT_ROLES = "('admin', 'committee_staff')"
ENTRY_LEDGERS = "('special_group', 'key_person', 'backbone')"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE FUNCTION ga_subject_audit(rid bigint)
        RETURNS TABLE (at timestamptz, username text, action text, subject text, detail jsonb)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
          -- every ledger entry the person ever had (rows since deleted included)
          WITH entries AS (
            SELECT DISTINCT h.ledger, h.row_id FROM ledger_history h
             WHERE h.resident_id = rid AND h.ledger IN {ENTRY_LEDGERS}
          )
          SELECT a.at, u.username, a.action, a.subject, a.detail
            FROM audit_log a LEFT JOIN app_user u ON u.id = a.user_id
           WHERE coalesce(ga_role(), '') IN {SUBJECT_ROLES}
             AND EXISTS (SELECT 1 FROM resident r WHERE r.id = rid
                          AND r.building_id IN (SELECT ga_people_buildings()))
             AND ((a.subject = 'resident' AND a.subject_ids @> ARRAY[rid])
                  OR EXISTS (SELECT 1 FROM entries e WHERE e.ledger = a.subject
                              AND e.row_id = ANY (a.subject_ids)))
           ORDER BY a.at, a.id
        $$
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION ga_scrub_erased(rid bigint)
        RETURNS TABLE (ledger text, removed integer, scrubbed integer)
        LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
        #variable_conflict use_column
        DECLARE
          marker constant jsonb := '{{"erased": true}}'::jsonb;
        BEGIN
          IF coalesce(ga_role(), '') NOT IN {SUBJECT_ROLES} THEN
            RAISE EXCEPTION 'only admins and committee staff erase residents'
              USING ERRCODE = '42501';
          END IF;
          -- Only the history of a person deleted in this very transaction (now() is its
          -- start, and the history trigger's default) from a building in the caller's area:
          -- the function cannot be used to rewrite the history of anyone else.
          IF EXISTS (SELECT 1 FROM resident r WHERE r.id = rid) OR NOT EXISTS (
               SELECT 1 FROM ledger_history h
                WHERE h.ledger = 'resident' AND h.row_id = rid AND h.action = 'delete'
                  AND h.at = now()
                  AND (h.old ->> 'building_id')::bigint IN (SELECT ga_people_buildings())) THEN
            RAISE EXCEPTION 'resident % was not removed in this transaction by you', rid
              USING ERRCODE = '42501';
          END IF;
          -- creating requests' stored answers hold the person (a resident, or an entry
          -- with the resident's name): a replay after erasure must not bring them back
          DELETE FROM idempotency_key i
           WHERE i.response ->> 'resident_id' = rid::text
              OR (i.response ? 'id_number' AND i.response ? 'room'
                  AND i.response ->> 'id' = rid::text);
          RETURN QUERY
          WITH s AS (
            UPDATE ledger_history h
               SET old = CASE WHEN h.old IS NULL THEN NULL ELSE marker END,
                   new = CASE WHEN h.new IS NULL THEN NULL ELSE marker END
             WHERE h.resident_id = rid
            RETURNING h.ledger, h.action, h.at
          )
          SELECT s.ledger,
                 (count(*) FILTER (WHERE s.action = 'delete' AND s.at = now()))::integer,
                 count(*)::integer
            FROM s GROUP BY s.ledger ORDER BY s.ledger;
        END $$
        """
    )
    for fn in ("ga_subject_audit(bigint)", "ga_scrub_erased(bigint)"):
        op.execute(f"REVOKE ALL ON FUNCTION {fn} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {fn} TO {APP_ROLE}")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS ga_scrub_erased(bigint)")
    op.execute("DROP FUNCTION IF EXISTS ga_subject_audit(bigint)")
