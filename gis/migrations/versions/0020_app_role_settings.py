"""Settings of the app role for the request path (issue 16): JIT off.

Every request runs as the database's login role (``gis.db.app_login_role``), under
row-level security. PostgreSQL compiles a query with LLVM when its estimated cost passes
``jit_above_cost`` (100,000), and it compiles again at every execution: nothing is kept
between queries. On the request path that is always a loss:

* the queries are index lookups on one user's scope that run in milliseconds; measured
  (EXPLAIN ANALYZE as the app role, a grid worker of Nanjing's largest grid, load average
  1.2 on 2 cores), the search box's query of areas and places took 1.8 ms; with JIT made
  to fire on it (``jit_above_cost = 10000``) it took 150 ms, of which 148 ms compiling
  360 functions (emission 128 ms);
* under row-level security the estimates that decide it are wrong: a policy's
  ``IN (SELECT ga_people_buildings())`` stays a hashed subplan over the whole table, and a
  PL/pgSQL scope function is counted at 1,000 rows whatever the scope, so the cost grows
  with the size of the city rather than the user's scope. On the Nanjing demo no request
  query reached the threshold (the highest estimate, today's reminders of the largest
  grid, 22,116); the search query above is at 12,687 for 1,277 buildings, and a city of
  ten thousand buildings takes it past 100,000 on every search.

Why this target. ``ALTER ROLE gridatlas_app SET jit = off`` would do nothing: the app
logs in as a member of that group, and PostgreSQL applies only the settings of the role
that logs in, never those of the roles it is a member of. ``ALTER DATABASE … SET jit =
off`` would also switch JIT off for the owner's batch work (imports, reach, delineation,
report figures over a whole city), where long scans can gain from it. So the setting is
put on the login role, which connects to this database alone and only serves requests:
``ga_app_role_settings(role)`` holds the settings, the migration applies them to the
login role if it already exists, and ``gis.db.app_role_url`` applies them at every start
of the app (a new database, a clone, a login role made later). Off rather than a higher
threshold: no threshold would tell a mis-estimated 2 ms lookup from real work, and a
request that needs seconds of CPU is a missing index to fix, not code to compile. A role
given through ``GRIDATLAS_APP_DATABASE_URL`` is not touched (it is not ours to alter).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02
"""

from alembic import op
from sqlalchemy import text

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

SETTINGS = """
    CREATE FUNCTION ga_app_role_settings(login_role text) RETURNS void
    LANGUAGE plpgsql AS $$
    BEGIN
      EXECUTE format('ALTER ROLE %I SET jit = off', login_role);
    END $$
"""


# This database's login roles (normally one): the members of gridatlas_app that
# gis.db.app_role_url granted CONNECT on it (none before the app's first start).
LOGIN_ROLES = """
    SELECT DISTINCT m.rolname FROM pg_database d CROSS JOIN LATERAL aclexplode(d.datacl) a
      JOIN pg_roles m ON m.oid = a.grantee
     WHERE d.datname = current_database() AND a.privilege_type = 'CONNECT'
       AND m.rolcanlogin AND NOT m.rolsuper AND m.oid <> d.datdba
       AND pg_has_role(m.oid, 'gridatlas_app', 'MEMBER')
"""


def _login_roles() -> list[str]:
    return list(op.get_bind().scalars(text(LOGIN_ROLES)))


def upgrade() -> None:
    op.execute(SETTINGS)
    # only the owner applies it (ALTER ROLE needs CREATEROLE anyway)
    op.execute("REVOKE ALL ON FUNCTION ga_app_role_settings(text) FROM PUBLIC")
    for role in _login_roles():
        op.get_bind().execute(text("SELECT ga_app_role_settings(:r)"), {"r": role})


def downgrade() -> None:
    for role in _login_roles():
        op.execute(f'ALTER ROLE "{role}" RESET jit')
    op.execute("DROP FUNCTION ga_app_role_settings(text)")
