"""Ledgers of people, users and their scopes, leaders, audit, and row-level security.

The API connects as ``gridatlas_app``: a role that owns no table and cannot bypass row-level
security. Every ledger table has a policy that shows a user only the rows of the buildings
in their scope (``ga_scope_buildings``), so even a raw ``SELECT * FROM resident`` run as
the app returns only rows in scope. The user of a transaction is ``ga.user_id``, set with
``SET LOCAL`` by the API after it has checked the login token.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

APP_ROLE = "gridatlas_app"
ROLES = ("admin", "planner", "committee_staff", "grid_worker", "building_leader")
SCOPE_LEVELS = (
    "subdistrict",
    "community",
    "grid",
    "residents_group",
    "building_cluster",
    "unit",
    "building",
)
RELATIONS = ("head", "spouse", "child", "parent", "grandchild", "sibling", "other")
STATUSES = ("registered", "living_here", "both", "migrant")
SPECIAL = (
    "elderly_alone",
    "disabled",
    "low_income",
    "extreme_poverty",
    "serious_illness",
    "left_behind_child",
    "other",
)
KEY_PERSON = (
    "community_correction",
    "released",
    "drug",
    "mental_disorder",
    "petitioner",
    "other",
)
BACKBONE = ("party_member", "volunteer", "building_leader", "unit_leader", "group_leader", "other")
ORG_KINDS = ("enterprise", "social_org", "public_institution", "shop", "school", "medical", "other")
LEADER_LEVELS = ("unit", "building_cluster", "residents_group", "building")
LEDGERS = ("resident", "organisation", "special_group", "key_person", "backbone")


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


VERSIONED = """
    version     integer NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    created_by  bigint REFERENCES app_user (id) ON DELETE SET NULL,
    updated_by  bigint REFERENCES app_user (id) ON DELETE SET NULL
"""


def upgrade() -> None:
    op.execute(
        f"""
        DO $$ BEGIN
          IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
            CREATE ROLE {APP_ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
          END IF;
        END $$
        """
    )
    op.execute(
        f"""
        CREATE TABLE app_user (
            id            bigserial PRIMARY KEY,
            username      text NOT NULL UNIQUE CHECK (username ~ '^[A-Za-z0-9_.-]{{3,64}}$'),
            full_name     text,
            role          text NOT NULL CHECK (role IN {_in(ROLES)}),
            password_hash text NOT NULL,
            is_active     boolean NOT NULL DEFAULT true,
            failed_logins integer NOT NULL DEFAULT 0,
            locked_until  timestamptz,
            created_at    timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        f"""
        CREATE TABLE app_user_scope (
            user_id bigint NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
            level   text NOT NULL CHECK (level IN {_in(SCOPE_LEVELS)}),
            area_id bigint NOT NULL,
            PRIMARY KEY (user_id, level, area_id)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE auth_session (
            token_hash bytea PRIMARY KEY,
            user_id    bigint NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX auth_session_user_idx ON auth_session (user_id)")
    # Where each building sits in the hierarchy, one row per building: scopes, paths and
    # aggregates all read it.
    op.execute(
        """
        CREATE VIEW building_path AS
        SELECT b.id AS building_id, b.unit_id, u.building_cluster_id, c.residents_group_id,
               g.grid_id, coalesce(g.community_id, b.community_id) AS community_id,
               cm.subdistrict_id
          FROM building b
          LEFT JOIN unit u ON u.id = b.unit_id
          LEFT JOIN building_cluster c ON c.id = u.building_cluster_id
          LEFT JOIN residents_group g ON g.id = c.residents_group_id
          LEFT JOIN community cm ON cm.id = coalesce(g.community_id, b.community_id)
        """
    )
    # Parsed address keys of a building (gis/search.py), most specific first: search by
    # address matches keys, not raw strings.
    op.execute("ALTER TABLE building ADD COLUMN address_keys text[]")
    op.execute("CREATE INDEX building_address_keys_gin ON building USING gin (address_keys)")
    op.execute("CREATE INDEX residents_group_grid_id_idx ON residents_group (grid_id)")
    op.execute("CREATE INDEX community_subdistrict_id_idx2 ON community (subdistrict_id)")
    # The transaction's user, role and buildings in scope. An unset user sees nothing.
    op.execute(
        """
        CREATE FUNCTION ga_user() RETURNS bigint LANGUAGE sql STABLE AS $$
          SELECT nullif(current_setting('ga.user_id', true), '')::bigint
        $$
        """
    )
    op.execute(
        """
        CREATE FUNCTION ga_role() RETURNS text LANGUAGE sql STABLE AS $$
          SELECT role FROM app_user WHERE id = ga_user() AND is_active
        $$
        """
    )
    # One index-driven branch per level (a single OR-join over building_path costs a scan
    # of every building per call; this is a few index lookups for a community). PL/pgSQL,
    # not SQL: its plan is cached per connection, where an SQL function that cannot be
    # inlined is planned again in every query that calls it (3 ms each here).
    op.execute(
        """
        CREATE FUNCTION ga_scope_buildings(uid bigint) RETURNS SETOF bigint
        LANGUAGE plpgsql STABLE AS $$
        BEGIN
          RETURN QUERY
          WITH s AS (SELECT s.level, s.area_id, a.role FROM app_user a
                       LEFT JOIN app_user_scope s ON s.user_id = a.id
                      WHERE a.id = uid AND a.is_active)
          SELECT b.id FROM building b WHERE EXISTS (SELECT 1 FROM s WHERE role = 'admin')
          UNION ALL
          SELECT s.area_id FROM s WHERE s.level = 'building'
          UNION ALL
          SELECT b.id FROM s JOIN building b ON b.unit_id = s.area_id WHERE s.level = 'unit'
          UNION ALL
          SELECT b.id FROM s JOIN unit u ON u.building_cluster_id = s.area_id
                 JOIN building b ON b.unit_id = u.id WHERE s.level = 'building_cluster'
          UNION ALL
          SELECT b.id FROM s JOIN building_cluster c ON c.residents_group_id = s.area_id
                 JOIN unit u ON u.building_cluster_id = c.id
                 JOIN building b ON b.unit_id = u.id WHERE s.level = 'residents_group'
          UNION ALL
          SELECT b.id FROM s JOIN residents_group g ON g.grid_id = s.area_id
                 JOIN building_cluster c ON c.residents_group_id = g.id
                 JOIN unit u ON u.building_cluster_id = c.id
                 JOIN building b ON b.unit_id = u.id WHERE s.level = 'grid'
          UNION ALL
          SELECT b.id FROM s JOIN building b ON b.community_id = s.area_id
           WHERE s.level = 'community'
          UNION ALL
          SELECT b.id FROM s JOIN community cm ON cm.subdistrict_id = s.area_id
                 JOIN building b ON b.community_id = cm.id WHERE s.level = 'subdistrict';
        END $$
        """
    )
    # Personal rows are visible to every role but planners (aggregates only).
    op.execute(
        """
        CREATE FUNCTION ga_people_buildings() RETURNS SETOF bigint
        LANGUAGE plpgsql STABLE AS $$
        BEGIN
          IF coalesce(ga_role(), 'planner') <> 'planner' THEN
            RETURN QUERY SELECT ga_scope_buildings(ga_user());
          END IF;
        END $$
        """
    )

    op.execute(
        f"""
        CREATE TABLE resident (
            id               bigserial PRIMARY KEY,
            name             text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 100),
            gender           text CHECK (gender IN ('男', '女')),
            birth_date       date,
            id_number_enc    bytea NOT NULL,
            id_number_hmac   bytea NOT NULL UNIQUE,
            id_number_masked text NOT NULL,
            phone_enc        bytea,
            phone_hmac       bytea,
            phone_masked     text,
            building_id      bigint NOT NULL REFERENCES building (id) ON DELETE RESTRICT,
            room             text NOT NULL CHECK (length(btrim(room)) BETWEEN 1 AND 40),
            relation         text CHECK (relation IN {_in(RELATIONS)}),
            status           text NOT NULL DEFAULT 'both' CHECK (status IN {_in(STATUSES)}),
            notes            text CHECK (length(notes) <= 2000),
            is_synthetic     boolean NOT NULL DEFAULT false,
            {VERSIONED},
            CHECK ((phone_enc IS NULL) = (phone_hmac IS NULL))
        )
        """
    )
    # One person, one record: a duplicate ID number is refused even when the record lies
    # outside the user's scope; the answer is only yes or no.
    op.execute(
        """
        CREATE FUNCTION ga_id_number_taken(h bytea, own bigint) RETURNS SETOF integer
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
          SELECT 1 FROM resident WHERE id_number_hmac = h AND id <> own
        $$
        """
    )
    op.execute("CREATE INDEX resident_building_idx ON resident (building_id, room)")
    op.execute("CREATE INDEX resident_phone_hmac_idx ON resident (phone_hmac)")
    op.execute("CREATE INDEX resident_name_idx ON resident (name text_pattern_ops)")
    op.execute(
        f"""
        CREATE TABLE organisation (
            id           bigserial PRIMARY KEY,
            name         text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
            kind         text NOT NULL CHECK (kind IN {_in(ORG_KINDS)}),
            contact_name text CHECK (length(contact_name) <= 100),
            phone_enc    bytea,
            phone_hmac   bytea,
            phone_masked text,
            address      text CHECK (length(address) <= 300),
            building_id  bigint REFERENCES building (id) ON DELETE SET NULL,
            community_id bigint NOT NULL REFERENCES community (id) ON DELETE RESTRICT,
            notes        text CHECK (length(notes) <= 2000),
            is_synthetic boolean NOT NULL DEFAULT false,
            {VERSIONED}
        )
        """
    )
    for table, column, values, extra in (
        ("special_group", "category", SPECIAL, ""),
        ("key_person", "category", KEY_PERSON, "handling text CHECK (length(handling) <= 2000),"),
        ("backbone", "role", BACKBONE, ""),
    ):
        op.execute(
            f"""
            CREATE TABLE {table} (
                id          bigserial PRIMARY KEY,
                resident_id bigint NOT NULL REFERENCES resident (id) ON DELETE CASCADE,
                {column}    text NOT NULL CHECK ({column} IN {_in(values)}),
                {extra}
                notes       text CHECK (length(notes) <= 2000),
                {VERSIONED},
                UNIQUE (resident_id, {column})
            )
            """
        )
        op.execute(f"CREATE INDEX {table}_{column}_idx ON {table} ({column})")

    # Exactly one current leader per area: the partial unique index makes two people who
    # assign at once get one winner and one unique violation (a clear 409).
    op.execute(
        f"""
        CREATE TABLE leader_assignment (
            id          bigserial PRIMARY KEY,
            level       text NOT NULL CHECK (level IN {_in(LEADER_LEVELS)}),
            area_id     bigint NOT NULL,
            resident_id bigint NOT NULL REFERENCES resident (id) ON DELETE CASCADE,
            assigned_by bigint REFERENCES app_user (id) ON DELETE SET NULL,
            started_at  timestamptz NOT NULL DEFAULT now(),
            ended_at    timestamptz,
            ended_by    bigint REFERENCES app_user (id) ON DELETE SET NULL,
            lives_inside boolean NOT NULL,
            CHECK (ended_at IS NULL OR ended_at >= started_at)
        )
        """
    )
    op.execute(
        "CREATE UNIQUE INDEX leader_current_key ON leader_assignment (level, area_id) "
        "WHERE ended_at IS NULL"
    )
    op.execute("CREATE INDEX leader_resident_idx ON leader_assignment (resident_id)")

    # History of every ledger change (who, when, what). Written by a trigger that runs as
    # the owner, so the app can neither skip nor edit it. Secrets appear as their masks.
    op.execute(
        """
        CREATE TABLE ledger_history (
            id          bigserial PRIMARY KEY,
            at          timestamptz NOT NULL DEFAULT now(),
            user_id     bigint,
            ledger      text NOT NULL,
            row_id      bigint NOT NULL,
            resident_id bigint,
            community_id bigint,
            action      text NOT NULL CHECK (action IN ('insert', 'update', 'delete')),
            old         jsonb,
            new         jsonb
        )
        """
    )
    op.execute("CREATE INDEX ledger_history_row_idx ON ledger_history (ledger, row_id)")
    op.execute(
        """
        CREATE FUNCTION ga_ledger_history() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
        DECLARE
          o jsonb := CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END;
          n jsonb := CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END;
          rid bigint;
          cid bigint;
          secret text[] := ARRAY['id_number_enc', 'id_number_hmac', 'phone_enc', 'phone_hmac'];
        BEGIN
          o := o - secret;
          n := n - secret;
          IF TG_TABLE_NAME = 'resident' THEN
            rid := coalesce(NEW.id, OLD.id);
          ELSIF TG_TABLE_NAME = 'organisation' THEN
            cid := coalesce((n ->> 'community_id')::bigint, (o ->> 'community_id')::bigint);
          ELSE
            rid := coalesce((n ->> 'resident_id')::bigint, (o ->> 'resident_id')::bigint);
          END IF;
          INSERT INTO ledger_history (user_id, ledger, row_id, resident_id, community_id,
                                      action, old, new)
          VALUES (nullif(current_setting('ga.user_id', true), '')::bigint, TG_TABLE_NAME,
                  coalesce((n ->> 'id')::bigint, (o ->> 'id')::bigint), rid, cid,
                  lower(TG_OP), o, n);
          RETURN NULL;
        END $$
        """
    )
    for table in LEDGERS:
        op.execute(
            f"CREATE TRIGGER {table}_history AFTER INSERT OR UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION ga_ledger_history()"
        )

    # Reads and searches of personal data, one row each, in the reading transaction.
    op.execute(
        """
        CREATE TABLE audit_log (
            id          bigserial PRIMARY KEY,
            at          timestamptz NOT NULL DEFAULT now(),
            user_id     bigint NOT NULL,
            action      text NOT NULL,
            subject     text NOT NULL,
            subject_ids bigint[] NOT NULL DEFAULT '{}',
            detail      jsonb NOT NULL DEFAULT '{}'::jsonb
        )
        """
    )
    op.execute("CREATE INDEX audit_log_user_at_idx ON audit_log (user_id, at)")
    op.execute(
        """
        CREATE FUNCTION ga_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          RAISE EXCEPTION 'audit rows are never changed or removed';
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION ga_audit_append_only()"
    )

    # Creating POSTs with an Idempotency-Key: the first response, kept for a day.
    op.execute(
        """
        CREATE TABLE idempotency_key (
            user_id      bigint NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
            key          text NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
            request_hash text NOT NULL,
            status_code  integer,
            response     jsonb,
            created_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (user_id, key)
        )
        """
    )

    # Counts for aggregates (planners): per building in the user's scope, whatever the
    # role; the API sums them up to areas and suppresses small counts.
    op.execute(
        """
        CREATE FUNCTION ga_people_counts() RETURNS TABLE (building_id bigint, what text, n bigint)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
          WITH scope AS (SELECT ga_scope_buildings(ga_user()) AS b)
          SELECT r.building_id, 'residents', count(*) FROM resident r
           WHERE r.building_id IN (SELECT b FROM scope) GROUP BY 1
          UNION ALL
          SELECT r.building_id, 'special_group:' || s.category, count(*)
            FROM special_group s JOIN resident r ON r.id = s.resident_id
           WHERE r.building_id IN (SELECT b FROM scope) GROUP BY 1, 2
          UNION ALL
          SELECT r.building_id, 'key_persons', count(*)
            FROM key_person k JOIN resident r ON r.id = k.resident_id
           WHERE r.building_id IN (SELECT b FROM scope)
             AND ga_role() IN ('admin', 'committee_staff', 'grid_worker', 'planner')
           GROUP BY 1
          UNION ALL
          SELECT r.building_id, 'backbone:' || k.role, count(*)
            FROM backbone k JOIN resident r ON r.id = k.resident_id
           WHERE r.building_id IN (SELECT b FROM scope) GROUP BY 1, 2
        $$
        """
    )

    # --- row-level security -----------------------------------------------------------
    people = "building_id IN (SELECT ga_people_buildings())"
    via_resident = "EXISTS (SELECT 1 FROM resident r WHERE r.id = resident_id)"
    policies = {
        "resident": people,
        "organisation": "coalesce((SELECT ga_role()), 'planner') <> 'planner' AND community_id IN "
        "(SELECT p.community_id FROM building_path p "
        "WHERE p.building_id IN (SELECT ga_people_buildings()))",
        "special_group": via_resident,
        # key persons: not for building leaders
        "key_person": "(SELECT ga_role()) IN ('admin', 'committee_staff', 'grid_worker') "
        f"AND {via_resident}",
        "backbone": via_resident,
        "leader_assignment": via_resident,
    }
    for table, using in policies.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {table}_scope ON {table} USING ({using}) WITH CHECK ({using})")
    op.execute("ALTER TABLE ledger_history ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY ledger_history_scope ON ledger_history FOR SELECT USING ("
        "(SELECT ga_role()) = 'admin' OR ((SELECT ga_role()) = 'committee_staff' AND ("
        "resident_id IN (SELECT id FROM resident) OR community_id IN "
        "(SELECT community_id FROM organisation))))"
    )
    op.execute("ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY audit_log_insert ON audit_log FOR INSERT WITH CHECK (user_id = ga_user())"
    )
    op.execute(
        "CREATE POLICY audit_log_read ON audit_log FOR SELECT USING ((SELECT ga_role()) = 'admin')"
    )
    op.execute("ALTER TABLE idempotency_key ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY idempotency_own ON idempotency_key "
        "USING (user_id = (SELECT ga_user())) WITH CHECK (user_id = (SELECT ga_user()))"
    )

    # --- the app's role ---------------------------------------------------------------
    op.execute(
        f"""
        DO $$ BEGIN
          EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO {APP_ROLE}',
                         current_database());
        END $$
        """
    )
    op.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE}")
    op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}")
    op.execute(f"REVOKE ALL ON alembic_version FROM {APP_ROLE}")
    op.execute(f"GRANT SELECT ON alembic_version TO {APP_ROLE}")
    op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON audit_log, ledger_history FROM {APP_ROLE}")
    op.execute(f"REVOKE INSERT ON ledger_history FROM {APP_ROLE}")


def downgrade() -> None:
    for table in (
        "idempotency_key",
        "audit_log",
        "ledger_history",
        "leader_assignment",
        "backbone",
        "key_person",
        "special_group",
        "organisation",
        "resident",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    for fn in (
        "ga_audit_append_only()",
        "ga_id_number_taken(bytea, bigint)",
        "ga_people_counts()",
        "ga_ledger_history()",
        "ga_people_buildings()",
        "ga_scope_buildings(bigint)",
        "ga_role()",
        "ga_user()",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {fn}")
    op.execute("DROP VIEW IF EXISTS building_path")
    op.execute("ALTER TABLE building DROP COLUMN IF EXISTS address_keys")
    op.execute("DROP INDEX IF EXISTS residents_group_grid_id_idx")
    op.execute("DROP INDEX IF EXISTS community_subdistrict_id_idx2")
    for table in ("auth_session", "app_user_scope", "app_user"):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    op.execute(
        f"""
        DO $$ BEGIN
          EXECUTE format('REVOKE ALL ON DATABASE %I FROM {APP_ROLE}', current_database());
        END $$
        """
    )
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {APP_ROLE}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {APP_ROLE}")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {APP_ROLE}")
