"""The spatial hierarchy, facilities, the walk network and provenance.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Provenance carried by every imported row: which file, which id in it, when.
PROVENANCE = """
    source_file text,
    source_id   text,
    imported_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source_file, source_id)
"""

AREA_LEVELS = [
    # table, parent table, parent column, is the parent required
    ("subdistrict", None, None, False),
    ("community", "subdistrict", "subdistrict_id", False),
    ("grid", "community", "community_id", True),
]

GROUP_LEVELS = [
    ("residents_group", "community", "community_id"),
    ("building_cluster", "residents_group", "residents_group_id"),
    ("unit", "building_cluster", "building_cluster_id"),
]


def _gist(table: str) -> None:
    op.execute(f"CREATE INDEX {table}_geom_gist ON {table} USING gist (geom)")


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.execute(
        """
        CREATE TABLE import_run (
            id          bigserial PRIMARY KEY,
            source_file text NOT NULL,
            path        text NOT NULL,
            sha256      text NOT NULL,
            format      text NOT NULL,
            started_at  timestamptz NOT NULL DEFAULT now(),
            finished_at timestamptz,
            report      jsonb NOT NULL DEFAULT '{}'::jsonb
        )
        """
    )
    for table, parent, column, required in AREA_LEVELS:
        parent_sql = ""
        if parent:
            null = "NOT NULL" if required else ""
            parent_sql = f"{column} bigint {null} REFERENCES {parent} (id) ON DELETE RESTRICT,"
        op.execute(
            f"""
            CREATE TABLE {table} (
                id          bigserial PRIMARY KEY,
                {parent_sql}
                code        text NOT NULL,
                name        text,
                households  integer NOT NULL DEFAULT 0 CHECK (households >= 0),
                attrs       jsonb NOT NULL DEFAULT '{{}}'::jsonb,
                geom        geometry(MultiPolygon, 4326) NOT NULL CHECK (ST_IsValid(geom)),
                {PROVENANCE}
            )
            """
        )
        _gist(table)
        if parent:
            op.execute(f"CREATE INDEX {table}_{column}_idx ON {table} ({column})")
    op.execute("CREATE UNIQUE INDEX subdistrict_code_key ON subdistrict (code)")
    op.execute("CREATE UNIQUE INDEX community_code_key ON community (code)")
    op.execute("CREATE UNIQUE INDEX grid_code_key ON grid (community_id, code)")
    op.execute("ALTER TABLE community ADD COLUMN housing_type text")

    for table, parent, column in GROUP_LEVELS:
        extra = ""
        if table == "residents_group":
            extra = """
                grid_id   bigint REFERENCES grid (id) ON DELETE SET NULL,
                is_locked boolean NOT NULL DEFAULT false,
            """
        op.execute(
            f"""
            CREATE TABLE {table} (
                id          bigserial PRIMARY KEY,
                {column}    bigint NOT NULL REFERENCES {parent} (id) ON DELETE CASCADE,
                {extra}
                code        text NOT NULL,
                households  integer NOT NULL DEFAULT 0 CHECK (households >= 0),
                geom        geometry(MultiPolygon, 4326) NOT NULL,
                created_at  timestamptz NOT NULL DEFAULT now(),
                UNIQUE ({column}, code)
            )
            """
        )
        _gist(table)

    # Footprints and facilities are checked valid by the importer (GEOS, make_valid); a
    # per-row ST_IsValid CHECK would run GEOS a second time on every write of the largest
    # tables. The few, large area polygons above keep theirs.
    op.execute(
        f"""
        CREATE TABLE building (
            id              bigserial PRIMARY KEY,
            unit_id         bigint REFERENCES unit (id) ON DELETE SET NULL,
            community_id    bigint REFERENCES community (id) ON DELETE SET NULL,
            building_type   text NOT NULL DEFAULT 'yes',
            name            text,
            addr_street     text,
            addr_housenumber text,
            levels          integer CHECK (levels > 0),
            levels_source   text NOT NULL DEFAULT 'default'
                            CHECK (levels_source IN ('tag', 'height', 'default', 'attribute')),
            height_m        double precision,
            flats           integer CHECK (flats >= 0),
            area_m2         double precision NOT NULL CHECK (area_m2 >= 0),
            is_residential  boolean NOT NULL,
            households      integer NOT NULL DEFAULT 0 CHECK (households >= 0),
            households_source text NOT NULL DEFAULT 'none'
                            CHECK (households_source IN
                                   ('none', 'flats', 'estimate', 'attribute', 'csv', 'register')),
            tags            jsonb NOT NULL DEFAULT '{{}}'::jsonb,
            geom            geometry(MultiPolygon, 4326) NOT NULL,
            {PROVENANCE}
        )
        """
    )
    _gist("building")
    op.execute("CREATE INDEX building_unit_id_idx ON building (unit_id)")
    op.execute("CREATE INDEX building_community_id_idx ON building (community_id)")

    # Dwellings a house register lists (is_estimated = false). Buildings without a register
    # get estimated dwellings from their household count through the view below: derived
    # rows are never stored, so they can never disagree with the count they come from.
    op.execute(
        """
        CREATE TABLE dwelling (
            id           bigserial PRIMARY KEY,
            building_id  bigint NOT NULL REFERENCES building (id) ON DELETE CASCADE,
            floor        integer NOT NULL,
            room         text NOT NULL,
            households   integer NOT NULL DEFAULT 1 CHECK (households >= 0),
            is_estimated boolean NOT NULL DEFAULT false,
            source_file  text,
            imported_at  timestamptz NOT NULL DEFAULT now(),
            UNIQUE (building_id, room)
        )
        """
    )
    # Estimated dwellings, numbered as residents number them: floor then room, filling
    # floors in order with the same number of rooms each (101, 102 … 602); floors with more
    # than 99 rooms use three digits (1001).
    op.execute(
        """
        CREATE VIEW dwelling_estimate AS
        SELECT b.id AS building_id,
               g.i / pf.per_floor + 1 AS floor,
               ((g.i / pf.per_floor + 1) * CASE WHEN pf.per_floor > 99 THEN 1000 ELSE 100 END
                + g.i % pf.per_floor + 1)::text AS room,
               1 AS households
          FROM building b
          CROSS JOIN LATERAL (SELECT ceil(b.households::numeric
                                          / greatest(coalesce(b.levels, 1), 1))::int
                                     AS per_floor) pf
          CROSS JOIN LATERAL generate_series(0, b.households - 1) AS g(i)
         WHERE b.households > 0
           AND NOT EXISTS (SELECT 1 FROM dwelling d WHERE d.building_id = b.id)
        """
    )
    op.execute(
        """
        CREATE VIEW dwelling_all AS
        SELECT id, building_id, floor, room, households, is_estimated FROM dwelling
        UNION ALL
        SELECT NULL::bigint, building_id, floor, room, households, true FROM dwelling_estimate
        """
    )

    op.execute(
        f"""
        CREATE TABLE facility (
            id          bigserial PRIMARY KEY,
            categories  text[] NOT NULL CHECK (cardinality(categories) > 0),
            kind        text NOT NULL,
            name        text,
            tags        jsonb NOT NULL DEFAULT '{{}}'::jsonb,
            geom        geometry(Geometry, 4326) NOT NULL
                        CHECK (GeometryType(geom) IN ('POINT', 'MULTIPOLYGON')),
            {PROVENANCE}
        )
        """
    )
    _gist("facility")
    op.execute("CREATE INDEX facility_categories_gin ON facility USING gin (categories)")

    op.execute(
        f"""
        CREATE TABLE walk_node (
            id          bigserial PRIMARY KEY,
            geom        geometry(Point, 4326) NOT NULL,
            {PROVENANCE}
        )
        """
    )
    _gist("walk_node")
    op.execute(
        f"""
        CREATE TABLE walk_edge (
            id          bigserial PRIMARY KEY,
            source      bigint NOT NULL,
            target      bigint NOT NULL,
            highway     text NOT NULL,
            name        text,
            length_m    double precision NOT NULL CHECK (length_m >= 0),
            geom        geometry(LineString, 4326) NOT NULL,
            {PROVENANCE}
        )
        """
    )
    # No foreign keys on source/target: the network is derived data written by one code
    # path, which checks every edge's ends in one set-based query per import (gis/io/load.py);
    # two per-row key checks would cost a quarter of an import's write.
    _gist("walk_edge")
    op.execute("CREATE INDEX walk_edge_source_idx ON walk_edge (source)")
    op.execute("CREATE INDEX walk_edge_target_idx ON walk_edge (target)")


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS dwelling_all")
    op.execute("DROP VIEW IF EXISTS dwelling_estimate")
    for table in (
        "walk_edge",
        "walk_node",
        "facility",
        "dwelling",
        "building",
        "unit",
        "building_cluster",
        "residents_group",
        "grid",
        "community",
        "subdistrict",
        "import_run",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
