"""Dwellings behind each entrance: towers divided by 单元门 where the doors are known (issue 14).

* ``dwelling.entrance``: the door (单元门) a house register names for a room ("1", "2单元",
  "A"); NULL where it names none.
* ``building_entrance.door_no``: the doors to homes of a building numbered 1, 2, … along its
  long side, set by the import when a building has two or more of them (OSM
  ``entrance=staircase|home|residential``, else ``yes|main``; service, emergency, garage and
  other doors are never numbered). NULL for every other entrance.
* ``dwelling_estimate.entrance``: a building with numbered doors and no register has its
  estimated dwellings shared among the doors by their place on the floor (the first rooms
  of each floor behind door 1, the next behind door 2 …), as a stairwell serves the same
  flats on every floor; NULL where the doors are not known. ``dwelling_all`` carries it.

Both views only gain a last column, so ``CREATE OR REPLACE`` keeps everything that reads them.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02
"""

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_ESTIMATE = """
    CREATE OR REPLACE VIEW dwelling_estimate AS
    SELECT b.id AS building_id,
           g.i / pf.per_floor + 1 AS floor,
           ((g.i / pf.per_floor + 1) * CASE WHEN pf.per_floor > 99 THEN 1000 ELSE 100 END
            + g.i % pf.per_floor + 1)::text AS room,
           1 AS households{entrance}
      FROM building b
      CROSS JOIN LATERAL (SELECT ceil(b.households::numeric
                                      / greatest(coalesce(b.levels, 1), 1))::int
                                 AS per_floor) pf{doors}
      CROSS JOIN LATERAL generate_series(0, b.households - 1) AS g(i)
     WHERE b.households > 0
       AND NOT EXISTS (SELECT 1 FROM dwelling d WHERE d.building_id = b.id)
"""
_ENTRANCE = """,
           CASE WHEN dr.doors >= 2
                THEN ((g.i % pf.per_floor) * dr.doors / pf.per_floor + 1)::text END
               AS entrance"""
_DOORS = """
      CROSS JOIN LATERAL (SELECT count(*)::int AS doors FROM building_entrance e
                           WHERE e.building_id = b.id AND e.door_no IS NOT NULL) dr"""


def upgrade() -> None:
    op.execute("ALTER TABLE dwelling ADD COLUMN entrance text")
    op.execute("ALTER TABLE building_entrance ADD COLUMN door_no integer")
    op.execute(_ESTIMATE.format(entrance=_ENTRANCE, doors=_DOORS))
    op.execute(
        """
        CREATE OR REPLACE VIEW dwelling_all AS
        SELECT id, building_id, floor, room, households, is_estimated, entrance FROM dwelling
        UNION ALL
        SELECT NULL::bigint, building_id, floor, room, households, true, entrance
          FROM dwelling_estimate
        """
    )


def downgrade() -> None:
    # a view cannot lose a column in place: drop both and make them as 0001 did
    op.execute("DROP VIEW dwelling_all")
    op.execute("DROP VIEW dwelling_estimate")
    op.execute(_ESTIMATE.format(entrance="", doors=""))
    op.execute(
        """
        CREATE VIEW dwelling_all AS
        SELECT id, building_id, floor, room, households, is_estimated FROM dwelling
        UNION ALL
        SELECT NULL::bigint, building_id, floor, room, households, true FROM dwelling_estimate
        """
    )
    op.execute("ALTER TABLE building_entrance DROP COLUMN door_no")
    op.execute("ALTER TABLE dwelling DROP COLUMN entrance")
