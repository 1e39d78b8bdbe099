"""Security hardening: an identity SQL cannot forge, logins and users written only through
narrow functions, login throttling by name and by address, organisations scoped like people,
and a count of recent lookups for rate limits.

Before this revision the transaction's user was ``ga.user_id``, which any session of the
app's role could set by hand; now it is ``ga.session``, the login token itself, and
``ga_user()`` (SECURITY DEFINER) answers only for a live session whose token hashes to a
row of ``auth_session`` — which the app's role can no longer read. Setting ``ga.user_id``
by hand shows nothing.

The app's role keeps no write on ``app_user``, ``app_user_scope`` or ``auth_session``: a
login opens a session through ``ga_login_record``, which needs a proof (an HMAC over the
outcome) made with a key the app holds and the database keeps in ``ga_secret`` — a table
only the owner reads — so that an SQL injection cannot open a session for anyone. Users are
created and disabled by ``ga_user_create`` / ``ga_user_deactivate``, for admins only.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

APP_ROLE = "gridatlas_app"
SCOPE_LEVELS = (
    "subdistrict",
    "community",
    "grid",
    "residents_group",
    "building_cluster",
    "unit",
    "building",
)
DEFINER = "SECURITY DEFINER SET search_path = public, pg_temp"
# The app's role is a member of APP_ROLE; a call from it must come from a logged-in admin.
# (Direct membership: a superuser is implicitly a member of every role.)
FROM_APP = (
    "EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member "
    f"JOIN pg_roles g ON g.oid = m.roleid WHERE r.rolname = session_user "
    f"AND g.rolname = '{APP_ROLE}')"
)

FUNCTIONS = (
    "ga_session_user(text)",
    "ga_login_lookup(text, text)",
    "ga_login_record(text, text, bigint, boolean, bytea, bigint, bytea)",
    "ga_logout(text)",
    "ga_user_create(text, text, text, text, text[], bigint[])",
    "ga_user_deactivate(bigint)",
    "ga_recent_actions(text, integer)",
    "ga_holds_community(bigint)",
)


def upgrade() -> None:
    op.execute("CREATE TABLE ga_secret (name text PRIMARY KEY, value bytea NOT NULL)")
    op.execute(
        """
        CREATE TABLE login_failure (
            key text NOT NULL,
            at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX login_failure_key_at_idx ON login_failure (key, at)")

    # --- the identity -----------------------------------------------------------------
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION ga_user() RETURNS bigint LANGUAGE sql STABLE {DEFINER} AS $$
          SELECT s.user_id FROM auth_session s JOIN app_user u ON u.id = s.user_id
           WHERE s.token_hash = sha256(convert_to(
                   coalesce(nullif(current_setting('ga.session', true), ''), '-'), 'UTF8'))
             AND s.expires_at > now() AND u.is_active
        $$
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION ga_session_user(token text)
        RETURNS TABLE (id bigint, username text, role text, full_name text)
        LANGUAGE sql STABLE {DEFINER} AS $$
          SELECT u.id, u.username, u.role, u.full_name FROM auth_session s
            JOIN app_user u ON u.id = s.user_id
           WHERE s.token_hash = sha256(convert_to(token, 'UTF8')) AND s.expires_at > now()
             AND u.is_active
        $$
        """
    )
    # The history trigger records the verified user, not a setting anyone can write.
    op.execute(
        """
        CREATE OR REPLACE FUNCTION ga_ledger_history() RETURNS trigger
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
          VALUES (ga_user(), TG_TABLE_NAME,
                  coalesce((n ->> 'id')::bigint, (o ->> 'id')::bigint), rid, cid,
                  lower(TG_OP), o, n);
          RETURN NULL;
        END $$
        """
    )

    # --- logins -----------------------------------------------------------------------
    # Failures are counted by user name (known or not, so a lock tells nothing about which
    # names exist) and by client address.
    op.execute(
        f"""
        CREATE FUNCTION ga_login_lookup(uname text, addr text)
        RETURNS TABLE (id bigint, password_hash text, role text, full_name text,
                       name_locked_min integer, addr_locked_min integer)
        LANGUAGE sql VOLATILE {DEFINER} AS $$
          WITH f AS (
            SELECT count(*) FILTER (WHERE key = 'user:' || lower(uname)) AS n_user,
                   max(at) FILTER (WHERE key = 'user:' || lower(uname)) AS last_user,
                   count(*) FILTER (WHERE key = 'addr:' || addr) AS n_addr,
                   max(at) FILTER (WHERE key = 'addr:' || addr) AS last_addr
              FROM login_failure
             WHERE key IN ('user:' || lower(uname), 'addr:' || addr)
               AND at > now() - interval '15 minutes')
          SELECT u.id, u.password_hash, u.role, u.full_name,
                 CASE WHEN f.n_user >= 5 THEN greatest(1, ceil(extract(epoch FROM
                   f.last_user + interval '15 minutes' - now()) / 60))::int ELSE 0 END,
                 CASE WHEN f.n_addr >= 20 THEN greatest(1, ceil(extract(epoch FROM
                   f.last_addr + interval '15 minutes' - now()) / 60))::int ELSE 0 END
            FROM f LEFT JOIN app_user u ON u.username = uname AND u.is_active
        $$
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION ga_login_record(uname text, addr text, uid bigint, ok boolean,
                                        th bytea, expires_epoch bigint, proof bytea)
        RETURNS void LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        DECLARE
          k bytea := (SELECT value FROM ga_secret WHERE name = 'login');
          msg text := concat_ws('|', uname, addr, coalesce(uid::text, ''), ok::text,
                                coalesce(encode(th, 'hex'), ''),
                                coalesce(expires_epoch::text, ''));
        BEGIN
          IF k IS NULL OR proof IS NULL
             OR hmac(convert_to(msg, 'UTF8'), k, 'sha256') <> proof THEN
            RAISE EXCEPTION 'login not proven' USING ERRCODE = '28000';
          END IF;
          IF ok THEN
            INSERT INTO auth_session (token_hash, user_id, expires_at)
            VALUES (th, uid, to_timestamp(expires_epoch));
            DELETE FROM auth_session WHERE user_id = uid AND expires_at < now();
            DELETE FROM login_failure WHERE key = 'user:' || lower(uname);
          ELSE
            INSERT INTO login_failure (key) VALUES ('user:' || lower(uname)), ('addr:' || addr);
            DELETE FROM login_failure WHERE at < now() - interval '1 day';
          END IF;
        END $$
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION ga_logout(token text) RETURNS void LANGUAGE sql VOLATILE {DEFINER} AS $$
          DELETE FROM auth_session WHERE token_hash = sha256(convert_to(token, 'UTF8'))
        $$
        """
    )

    # --- users: admins only (or the owner, e.g. `gridatlas user add`) -----------------------
    op.execute(
        f"""
        CREATE FUNCTION ga_user_create(uname text, fname text, urole text, phash text,
                                       levels text[], area_ids bigint[])
        RETURNS bigint LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        DECLARE
          uid bigint;
        BEGIN
          IF {FROM_APP} AND coalesce(ga_role(), '') <> 'admin' THEN
            RAISE EXCEPTION 'only admins create users' USING ERRCODE = '42501';
          END IF;
          IF coalesce(array_length(levels, 1), 0) <> coalesce(array_length(area_ids, 1), 0) THEN
            RAISE EXCEPTION 'levels and areas differ in length' USING ERRCODE = '22023';
          END IF;
          INSERT INTO app_user (username, full_name, role, password_hash)
          VALUES (uname, fname, urole, phash) RETURNING id INTO uid;
          INSERT INTO app_user_scope (user_id, level, area_id)
          SELECT uid, l, a FROM unnest(levels, area_ids) AS t (l, a)
          ON CONFLICT DO NOTHING;
          RETURN uid;
        END $$
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION ga_user_deactivate(uid bigint) RETURNS boolean
        LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        BEGIN
          IF {FROM_APP} AND coalesce(ga_role(), '') <> 'admin' THEN
            RAISE EXCEPTION 'only admins disable users' USING ERRCODE = '42501';
          END IF;
          UPDATE app_user SET is_active = false WHERE id = uid;
          IF NOT FOUND THEN
            RETURN false;
          END IF;
          DELETE FROM auth_session WHERE user_id = uid;
          RETURN true;
        END $$
        """
    )

    # --- rate limits: how often the caller did something lately (their own rows only) -----
    op.execute(
        f"""
        CREATE FUNCTION ga_recent_actions(act text, minutes integer) RETURNS bigint
        LANGUAGE sql STABLE {DEFINER} AS $$
          SELECT count(*) FROM audit_log
           WHERE user_id = ga_user() AND action = act
             AND at > now() - make_interval(mins => minutes)
        $$
        """
    )
    op.execute("CREATE INDEX audit_log_user_action_at_idx ON audit_log (user_id, action, at)")

    # --- organisations: by their building, or the whole community for those who hold it ----
    op.execute(
        f"""
        CREATE FUNCTION ga_holds_community(cid bigint) RETURNS boolean
        LANGUAGE sql STABLE {DEFINER} AS $$
          SELECT EXISTS (
            SELECT 1 FROM app_user a LEFT JOIN app_user_scope s ON s.user_id = a.id
              LEFT JOIN community c ON c.id = cid
             WHERE a.id = ga_user() AND a.is_active AND (a.role = 'admin'
                OR (s.level = 'community' AND s.area_id = cid)
                OR (s.level = 'subdistrict' AND s.area_id = c.subdistrict_id)))
        $$
        """
    )
    org = (
        "coalesce((SELECT ga_role()), 'planner') <> 'planner' AND ("
        "building_id IN (SELECT ga_people_buildings()) OR ga_holds_community(community_id))"
    )
    op.execute("DROP POLICY organisation_scope ON organisation")
    op.execute(f"CREATE POLICY organisation_scope ON organisation USING ({org}) WITH CHECK ({org})")

    # --- the app's role: no writes on logins and users, no password hashes ----------------
    op.execute(f"REVOKE ALL ON ga_secret, login_failure FROM {APP_ROLE}, PUBLIC")
    op.execute(f"REVOKE ALL ON auth_session FROM {APP_ROLE}")
    op.execute(f"REVOKE ALL ON app_user FROM {APP_ROLE}")
    op.execute(f"GRANT SELECT (id, username, full_name, role, is_active, created_at) "
               f"ON app_user TO {APP_ROLE}")  # fmt: skip
    op.execute(f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON app_user_scope FROM {APP_ROLE}")
    op.execute(f"REVOKE USAGE ON SEQUENCE app_user_id_seq FROM {APP_ROLE}")
    for fn in FUNCTIONS:
        op.execute(f"REVOKE ALL ON FUNCTION {fn} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {fn} TO {APP_ROLE}")
    # Connections: only each database's own login role (see gis/db.py), never the group.
    op.execute(
        f"""
        DO $$ BEGIN
          EXECUTE format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM {APP_ROLE}',
                         current_database());
        END $$
        """
    )


def downgrade() -> None:
    op.execute(
        f"""
        DO $$ BEGIN
          EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO {APP_ROLE}',
                         current_database());
        END $$
        """
    )
    op.execute("DROP POLICY organisation_scope ON organisation")
    op.execute(
        "CREATE POLICY organisation_scope ON organisation USING ("
        "coalesce((SELECT ga_role()), 'planner') <> 'planner' AND community_id IN "
        "(SELECT p.community_id FROM building_path p "
        "WHERE p.building_id IN (SELECT ga_people_buildings()))) WITH CHECK ("
        "coalesce((SELECT ga_role()), 'planner') <> 'planner' AND community_id IN "
        "(SELECT p.community_id FROM building_path p "
        "WHERE p.building_id IN (SELECT ga_people_buildings())))"
    )
    for fn in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {fn}")
    op.execute("DROP INDEX IF EXISTS audit_log_user_action_at_idx")
    op.execute(
        """
        CREATE OR REPLACE FUNCTION ga_user() RETURNS bigint LANGUAGE sql STABLE AS $$
          SELECT nullif(current_setting('ga.user_id', true), '')::bigint
        $$
        """
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON app_user, app_user_scope, auth_session "
               f"TO {APP_ROLE}")  # fmt: skip
    op.execute(f"GRANT USAGE, SELECT ON SEQUENCE app_user_id_seq TO {APP_ROLE}")
    op.execute("DROP TABLE IF EXISTS login_failure")
    op.execute("DROP TABLE IF EXISTS ga_secret")
