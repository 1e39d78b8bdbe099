"""Web Mercator copies of building and walk-network geometries, for vector tiles (issue 12).

A tile is cut in Web Mercator (EPSG:3857): before this revision every tile query
transformed each footprint it drew (``ST_Transform`` per row, a fifth of a dense tile's
time). ``geom_3857`` is a stored generated column, ``ST_Transform(geom, 3857)``: the
database recomputes it whenever ``geom`` is written (imports, edits, delineation), so it
cannot drift from ``geom`` and no writer needs to know it exists.

No index on it: tiles are still found with ``geom``'s GiST index (a tile's 4326 box is
exactly its 3857 box, Mercator keeps meridians and parallels straight), so writes pay for
one index, not two.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

COLUMNS = {"building": "MultiPolygon", "walk_edge": "LineString"}


def upgrade() -> None:
    for table, kind in COLUMNS.items():
        op.execute(
            f"ALTER TABLE {table} ADD COLUMN geom_3857 geometry({kind}, 3857) "
            "GENERATED ALWAYS AS (ST_Transform(geom, 3857)) STORED"
        )


def downgrade() -> None:
    for table in COLUMNS:
        op.execute(f"ALTER TABLE {table} DROP COLUMN geom_3857")
