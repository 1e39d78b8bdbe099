"""Building parts as areas: a divided building's dwellings belong to the areas of their part.

Before this revision a building found its unit, cluster, group and grid through
``building.unit_id`` alone (``building_path``), so the floors of a tower that the
delineation gave to another group (``building_part``, 0010) were in no area of theirs: a
grid worker of that group's grid did not see them, their residents were not "inside" it
as leader candidates, and coverage counted the whole tower in one group.

* ``part_path``: where each undivided building, and each part of a divided one, sits
  (one row per building or per part, with the part's households and rooms). Aggregates
  per unit, cluster, group or grid read it instead of ``building_path``.
* ``ga_area_members(level, area)``: the buildings and parts of one area, as rows of
  "these rooms of the building" (a part) or "the building but these rooms" (a whole
  building: none excluded; the part a divided building hangs from, ``building.unit_id``,
  also takes the rooms no part names, so that no resident is left outside every area).
* ``ga_scope_units(uid)``: the units inside a user's unit, cluster, group and grid
  scopes. ``ga_scope_buildings`` now also gives the buildings of which such a unit holds
  a part, and ``ga_scope_parts_out(uid)`` the parts of those buildings the scope does not
  hold: a worker of one part's grid sees the building, and, through the residents'
  policy, the residents of their part's dwellings only.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

APP_ROLE = "gridatlas_app"
FUNCTIONS = (
    "ga_scope_units(bigint)",
    "ga_scope_parts_out(bigint)",
    "ga_people_rooms_out()",
    "ga_area_members(text, bigint)",
)

PART_PATH = """
    CREATE VIEW part_path AS
    SELECT b.id AS building_id, p.id AS part_id, p.part_no, p.floor_min, p.floor_max,
           p.rooms, coalesce(p.households, b.households) AS households,
           coalesce(p.unit_id, b.unit_id) AS unit_id, u.building_cluster_id,
           c.residents_group_id, g.grid_id, coalesce(g.community_id, b.community_id)
           AS community_id, cm.subdistrict_id
      FROM building b
      LEFT JOIN building_part p ON p.building_id = b.id AND p.unit_id IS NOT NULL
      LEFT JOIN unit u ON u.id = coalesce(p.unit_id, b.unit_id)
      LEFT JOIN building_cluster c ON c.id = u.building_cluster_id
      LEFT JOIN residents_group g ON g.id = c.residents_group_id
      LEFT JOIN community cm ON cm.id = coalesce(g.community_id, b.community_id)
"""

SCOPE_UNITS = """
    CREATE FUNCTION ga_scope_units(uid bigint) RETURNS SETOF bigint
    LANGUAGE plpgsql STABLE AS $$
    BEGIN
      RETURN QUERY
      WITH s AS (SELECT s.level, s.area_id FROM app_user a
                   JOIN app_user_scope s ON s.user_id = a.id
                  WHERE a.id = uid AND a.is_active AND a.role <> 'admin'
                    AND s.level IN ('unit', 'building_cluster', 'residents_group', 'grid'))
      SELECT s.area_id FROM s WHERE s.level = 'unit'
      UNION ALL
      SELECT u.id FROM s JOIN unit u ON u.building_cluster_id = s.area_id
       WHERE s.level = 'building_cluster'
      UNION ALL
      SELECT u.id FROM s JOIN building_cluster c ON c.residents_group_id = s.area_id
             JOIN unit u ON u.building_cluster_id = c.id WHERE s.level = 'residents_group'
      UNION ALL
      SELECT u.id FROM s JOIN residents_group g ON g.grid_id = s.area_id
             JOIN building_cluster c ON c.residents_group_id = g.id
             JOIN unit u ON u.building_cluster_id = c.id WHERE s.level = 'grid';
    END $$
"""

# As 0005's, plus the buildings a unit of the scope holds a part of.
SCOPE_BUILDINGS = """
    CREATE OR REPLACE FUNCTION ga_scope_buildings(uid bigint) RETURNS SETOF bigint
    LANGUAGE plpgsql STABLE AS $$
    BEGIN
      RETURN QUERY
      WITH s AS (SELECT s.level, s.area_id, a.role FROM app_user a
                   LEFT JOIN app_user_scope s ON s.user_id = a.id
                  WHERE a.id = uid AND a.is_active),
           u AS MATERIALIZED (SELECT ga_scope_units(uid) AS id)
      SELECT b.id FROM building b WHERE EXISTS (SELECT 1 FROM s WHERE role = 'admin')
      UNION ALL
      SELECT s.area_id FROM s WHERE s.level = 'building'
      UNION ALL
      SELECT b.id FROM u JOIN building b ON b.unit_id = u.id
      UNION ALL
      SELECT p.building_id FROM u JOIN building_part p ON p.unit_id = u.id
      UNION ALL
      SELECT b.id FROM s JOIN building b ON b.community_id = s.area_id
       WHERE s.level = 'community'
      UNION ALL
      SELECT b.id FROM s JOIN community cm ON cm.subdistrict_id = s.area_id
             JOIN building b ON b.community_id = cm.id WHERE s.level = 'subdistrict';
    END $$
"""

SCOPE_BUILDINGS_0005 = """
    CREATE OR REPLACE FUNCTION ga_scope_buildings(uid bigint) RETURNS SETOF bigint
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

# The parts of buildings the scope reaches through another part that no scope of the user
# holds, unless a building, community or subdistrict scope holds the whole building.
SCOPE_PARTS_OUT = """
    CREATE FUNCTION ga_scope_parts_out(uid bigint)
    RETURNS TABLE (building_id bigint, unit_id bigint, rooms text[])
    LANGUAGE plpgsql STABLE ROWS 20 AS $$
    BEGIN
      -- most users (admins, staff of a community) hold whole buildings only: nothing out
      IF NOT EXISTS (SELECT 1 FROM app_user_scope s WHERE s.user_id = uid
                        AND s.level IN ('unit', 'building_cluster', 'residents_group', 'grid'))
      THEN
        RETURN;
      END IF;
      RETURN QUERY
      WITH u AS MATERIALIZED (SELECT ga_scope_units(uid) AS id),
           s AS (SELECT s.level, s.area_id FROM app_user_scope s WHERE s.user_id = uid
                    AND s.level IN ('building', 'community', 'subdistrict')),
           touched AS (SELECT DISTINCT p.building_id FROM building_part p
                        WHERE p.unit_id IN (SELECT id FROM u))
      SELECT p.building_id, p.unit_id, p.rooms FROM building_part p
       WHERE p.building_id IN (SELECT t.building_id FROM touched t)
         AND (p.unit_id IS NULL OR p.unit_id NOT IN (SELECT id FROM u))
         AND NOT EXISTS (SELECT 1 FROM s WHERE s.level = 'building'
                            AND s.area_id = p.building_id)
         AND NOT EXISTS (SELECT 1 FROM s JOIN building b ON b.id = p.building_id
                          LEFT JOIN community cm ON cm.id = b.community_id
                          WHERE (s.level = 'community' AND s.area_id = b.community_id)
                             OR (s.level = 'subdistrict' AND s.area_id = cm.subdistrict_id));
    END $$
"""

# The dwellings (building, room) the user's scope does not hold although it holds their
# building: the residents' policy hides their residents. Empty for most users.
PEOPLE_ROOMS_OUT = """
    CREATE FUNCTION ga_people_rooms_out() RETURNS TABLE (building_id bigint, room text)
    LANGUAGE plpgsql STABLE ROWS 100 AS $$
    BEGIN
      RETURN QUERY SELECT o.building_id, x.room
                     FROM ga_scope_parts_out(ga_user()) o
                     CROSS JOIN LATERAL unnest(o.rooms) AS x(room);
    END $$
"""

# One branch per level, index-driven from the area down (as ga_scope_buildings).
AREA_MEMBERS = """
    CREATE FUNCTION ga_area_members(lvl text, area bigint)
    RETURNS TABLE (building_id bigint, part_id bigint, rooms text[], other_rooms text[],
                   households integer)
    LANGUAGE plpgsql STABLE ROWS 50 AS $$
    BEGIN
      IF lvl IN ('building', 'community', 'subdistrict') THEN
        RETURN QUERY
        SELECT b.id, NULL::bigint, NULL::text[], '{}'::text[], b.households FROM building b
         WHERE (lvl = 'building' AND b.id = area)
            OR (lvl = 'community' AND b.community_id = area)
            OR (lvl = 'subdistrict' AND b.community_id IN
                  (SELECT cm.id FROM community cm WHERE cm.subdistrict_id = area));
        RETURN;
      END IF;
      RETURN QUERY
      WITH u AS MATERIALIZED (
          SELECT area AS id WHERE lvl = 'unit'
          UNION ALL
          SELECT x.id FROM unit x WHERE lvl = 'building_cluster'
             AND x.building_cluster_id = area
          UNION ALL
          SELECT x.id FROM building_cluster c JOIN unit x ON x.building_cluster_id = c.id
           WHERE lvl = 'residents_group' AND c.residents_group_id = area
          UNION ALL
          SELECT x.id FROM residents_group g
            JOIN building_cluster c ON c.residents_group_id = g.id
            JOIN unit x ON x.building_cluster_id = c.id WHERE lvl = 'grid' AND g.grid_id = area)
      SELECT b.id, NULL::bigint, NULL::text[], '{}'::text[], b.households
        FROM u JOIN building b ON b.unit_id = u.id
       WHERE NOT EXISTS (SELECT 1 FROM building_part p WHERE p.building_id = b.id
                            AND p.unit_id IS NOT NULL)
      UNION ALL
      -- a part: its rooms; the part its building hangs from also takes the rooms no part
      -- names (a resident's room that is no dwelling of the register)
      SELECT p.building_id, p.id,
             CASE WHEN p.unit_id = b.unit_id THEN NULL ELSE p.rooms END,
             CASE WHEN p.unit_id = b.unit_id THEN
               (SELECT coalesce(array_agg(r.room), '{}') FROM building_part q
                  CROSS JOIN LATERAL unnest(q.rooms) AS r(room)
                 WHERE q.building_id = p.building_id AND q.id <> p.id)
             END,
             p.households
        FROM u JOIN building_part p ON p.unit_id = u.id
        JOIN building b ON b.id = p.building_id;
    END $$
"""

RESIDENT_POLICY = (
    "building_id IN (SELECT ga_people_buildings()) AND (building_id, room) NOT IN "
    "(SELECT o.building_id, o.room FROM ga_people_rooms_out() o)"
)
RESIDENT_POLICY_0005 = "building_id IN (SELECT ga_people_buildings())"


def upgrade() -> None:
    op.execute(PART_PATH)
    op.execute(f"GRANT SELECT ON part_path TO {APP_ROLE}")
    op.execute(SCOPE_UNITS)
    op.execute(SCOPE_BUILDINGS)
    op.execute(SCOPE_PARTS_OUT)
    op.execute(PEOPLE_ROOMS_OUT)
    op.execute(AREA_MEMBERS)
    for fn in FUNCTIONS:
        op.execute(f"REVOKE ALL ON FUNCTION {fn} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {fn} TO {APP_ROLE}")
    op.execute("DROP POLICY resident_scope ON resident")
    op.execute(
        f"CREATE POLICY resident_scope ON resident USING ({RESIDENT_POLICY}) "
        f"WITH CHECK ({RESIDENT_POLICY})"
    )


def downgrade() -> None:
    op.execute("DROP POLICY resident_scope ON resident")
    op.execute(
        f"CREATE POLICY resident_scope ON resident USING ({RESIDENT_POLICY_0005}) "
        f"WITH CHECK ({RESIDENT_POLICY_0005})"
    )
    op.execute(SCOPE_BUILDINGS_0005)
    for fn in reversed(FUNCTIONS):
        op.execute(f"DROP FUNCTION IF EXISTS {fn}")
    op.execute("DROP VIEW IF EXISTS part_path")
