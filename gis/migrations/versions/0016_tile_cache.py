"""A server-side cache of vector tiles, invalidated by every change the tiles depend on.

A dense tile (5,000 footprints at zoom 14) takes tens of milliseconds to cut; the same tile
is asked for again and again while people pan. ``tile_cache`` keeps the bytes of a tile per
layer, address, coordinate system and *scope key* (admins share one key, other users the
key of their role and scope rows: two grid workers of the same grid share tiles, a worker
never gets another grid's).

Invalidation is by *generation*. Every statement that changes a table a tile is made from
(buildings, the walk network, the areas and building parts) inserts a
row into ``tile_invalidation`` (a statement-level trigger). The generation is the number of
such rows a snapshot sees, ``sum(n)`` (compaction folds rows into one without changing the
sum). Snapshots only ever see more committed transactions as time goes on, so two snapshots
with the same generation saw the same changes. A cached tile carries the generation read
*before* it was cut, in an earlier snapshot than the one that cut it: a change committed in
between makes the entry older than its content, never newer, and an entry is used only
while its generation is the current one. A transaction that has written anything itself
neither reads nor fills the cache (its own uncommitted changes may roll back).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

APP_ROLE = "gridatlas_app"
DEFINER = "SECURITY DEFINER SET search_path = public, pg_temp"
# every table a tile's rows, properties or scope are read from
SOURCES = (
    "subdistrict",
    "community",
    "grid",
    "residents_group",
    "building_cluster",
    "unit",
    "building",
    "building_part",
    "walk_edge",
)
# Users and their scopes are not sources: the scope key is made of the role and the scope
# rows themselves, so a changed scope is another key (and an inactive user has none).


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE tile_cache (
          layer text NOT NULL,
          z smallint NOT NULL,
          x integer NOT NULL,
          y integer NOT NULL,
          gcj02 boolean NOT NULL,
          scope_key text NOT NULL,
          generation bigint NOT NULL,
          data bytea NOT NULL,
          gz bytea,
          etag text NOT NULL,
          made_at timestamptz NOT NULL DEFAULT now(),
          PRIMARY KEY (layer, z, x, y, gcj02, scope_key)
        )
        """
    )
    # MVT and gzip bytes: TOAST's compression would only cost time
    op.execute("ALTER TABLE tile_cache ALTER COLUMN data SET STORAGE EXTERNAL")
    op.execute("ALTER TABLE tile_cache ALTER COLUMN gz SET STORAGE EXTERNAL")
    op.execute("CREATE INDEX tile_cache_made_at_idx ON tile_cache (made_at)")
    op.execute(
        "CREATE TABLE tile_invalidation (id bigserial PRIMARY KEY, "
        "n bigint NOT NULL DEFAULT 1, at timestamptz NOT NULL DEFAULT now())"
    )
    op.execute(
        f"""
        CREATE FUNCTION ga_tile_invalidate() RETURNS trigger LANGUAGE plpgsql {DEFINER} AS $$
        BEGIN
          INSERT INTO tile_invalidation DEFAULT VALUES;
          RETURN NULL;
        END $$
        """
    )
    for table in SOURCES:
        op.execute(
            f"CREATE TRIGGER {table}_tile_invalidate AFTER INSERT OR UPDATE OR DELETE "
            f"OR TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION ga_tile_invalidate()"
        )
    # The scope key and the generation, or a NULL key: no user, or this transaction has
    # written (an xid is assigned), so the cache is neither read nor filled. A replica
    # (in recovery) reads the cache the primary filled but cannot add to it.
    op.execute(
        f"""
        CREATE FUNCTION ga_tile_state(OUT scope_key text, OUT generation bigint,
                                      OUT can_store boolean)
        LANGUAGE sql STABLE {DEFINER} AS $$
          SELECT CASE
                   WHEN pg_current_xact_id_if_assigned() IS NOT NULL OR u.id IS NULL THEN NULL
                   WHEN u.role = 'admin' THEN 'admin'
                   ELSE u.role || ':' || md5(coalesce((
                          SELECT string_agg(s.level || '=' || s.area_id, ','
                                            ORDER BY s.level, s.area_id)
                            FROM app_user_scope s WHERE s.user_id = u.id), ''))
                 END,
                 (SELECT coalesce(sum(n), 0)::bigint FROM tile_invalidation),
                 NOT pg_is_in_recovery()
            FROM (SELECT 1) one
            LEFT JOIN app_user u ON u.id = ga_user() AND u.is_active
        $$
        """
    )
    # Fold the invalidation rows into one (same sum) and drop entries of old generations
    # and the oldest beyond ``keep``; run by the app's scheduler.
    op.execute(
        f"""
        CREATE FUNCTION ga_tile_compact(keep integer) RETURNS integer
        LANGUAGE plpgsql {DEFINER} AS $$
        DECLARE total bigint; dropped integer;
        BEGIN
          LOCK TABLE tile_invalidation IN EXCLUSIVE MODE;
          SELECT coalesce(sum(n), 0) INTO total FROM tile_invalidation;
          IF (SELECT count(*) FROM tile_invalidation) > 1 THEN
            DELETE FROM tile_invalidation;
            INSERT INTO tile_invalidation (n) VALUES (total);
          END IF;
          DELETE FROM tile_cache WHERE generation <> total;
          GET DIAGNOSTICS dropped = ROW_COUNT;
          DELETE FROM tile_cache WHERE ctid IN (
            SELECT ctid FROM tile_cache ORDER BY made_at DESC OFFSET greatest(keep, 0));
          RETURN dropped;
        END $$
        """
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON tile_cache TO {APP_ROLE}")
    op.execute(f"GRANT SELECT ON tile_invalidation TO {APP_ROLE}")
    op.execute("REVOKE ALL ON FUNCTION ga_tile_compact(integer) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION ga_tile_compact(integer) TO {APP_ROLE}")


def downgrade() -> None:
    for table in SOURCES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_tile_invalidate ON {table}")
    op.execute("DROP FUNCTION IF EXISTS ga_tile_compact(integer)")
    op.execute("DROP FUNCTION IF EXISTS ga_tile_state()")
    op.execute("DROP FUNCTION IF EXISTS ga_tile_invalidate()")
    op.execute("DROP TABLE IF EXISTS tile_invalidation")
    op.execute("DROP TABLE IF EXISTS tile_cache")
