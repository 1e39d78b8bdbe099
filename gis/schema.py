"""The database's tables as SQLAlchemy metadata: the one place query code takes names from.

The migrations (``gis/migrations/versions``) remain the source of the DDL: they create the
tables, and also what this module does not describe — CHECK constraints, views, functions,
triggers, row-level security policies and grants. This module follows them: every table a
migration creates is here with its columns (type, nullability, server default), keys,
unique constraints and indexes, under the names the migrations give them.
``tests/gis/test_schema.py`` migrates a fresh database and fails on any difference
(Alembic's ``compare_metadata``), so a migration that changes a table changes this file in
the same commit. Nothing here creates or alters a table; never call ``metadata.create_all``.

Views (``building_path``, ``dwelling_all``, ``dwelling_estimate``,
``building_reach_latest``) are not tables and are left out.
"""

from __future__ import annotations

import sqlalchemy as sa
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import ARRAY, BYTEA, DOUBLE_PRECISION, JSONB, REAL

metadata = sa.MetaData()

SRID = 4326
NOW = sa.text("now()")
EMPTY_JSON = sa.text("'{}'::jsonb")
EMPTY_ARRAY = sa.text("'{}'")
FALSE = sa.text("false")
TRUE = sa.text("true")
ZERO = sa.text("0")


def _id() -> sa.Column:
    return sa.Column("id", sa.BigInteger, primary_key=True)


def _geom(geometry_type: str) -> sa.Column:
    # spatial_index=True would make geoalchemy2 add an index of its own, idx_<table>_geom;
    # the migrations name theirs <table>_geom_gist, declared by _gist next to the column.
    geometry = Geometry(geometry_type, srid=SRID, spatial_index=False)
    return sa.Column("geom", geometry, nullable=False)


def _gist(table: str) -> sa.Index:
    return sa.Index(f"{table}_geom_gist", "geom", postgresql_using="gist")


def _fk(target: str, ondelete: str) -> sa.ForeignKey:
    return sa.ForeignKey(f"{target}.id", ondelete=ondelete)


def _provenance(table: str) -> list[sa.SchemaItem]:
    """Which file, which id in it, when: carried by every imported row (0001's PROVENANCE)."""
    return [
        sa.Column("source_file", sa.Text),
        sa.Column("source_id", sa.Text),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.UniqueConstraint("source_file", "source_id", name=f"{table}_source_file_source_id_key"),
    ]


def _versioned() -> list[sa.Column]:
    """Row version and who/when of the ledgers (0005's VERSIONED)."""
    return [
        sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("created_by", sa.BigInteger, _fk("app_user", "SET NULL")),
        sa.Column("updated_by", sa.BigInteger, _fk("app_user", "SET NULL")),
    ]


def _households() -> sa.Column:
    return sa.Column("households", sa.Integer, nullable=False, server_default=ZERO)


# --- 0001: provenance, the hierarchy, buildings, dwellings, facilities, the walk network ---

import_run = sa.Table(
    "import_run",
    metadata,
    _id(),
    sa.Column("source_file", sa.Text, nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("sha256", sa.Text, nullable=False),
    sa.Column("format", sa.Text, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("report", JSONB, nullable=False, server_default=EMPTY_JSON),
)


def _area(table: str, parent: sa.Column | None, *extra: sa.SchemaItem) -> sa.Table:
    """A level of the administrative hierarchy (0001's AREA_LEVELS)."""
    return sa.Table(
        table,
        metadata,
        _id(),
        *([] if parent is None else [parent]),
        sa.Column("code", sa.Text, nullable=False),
        sa.Column("name", sa.Text),
        _households(),
        sa.Column("attrs", JSONB, nullable=False, server_default=EMPTY_JSON),
        _geom("MULTIPOLYGON"),
        *_provenance(table),
        _gist(table),
        *extra,
    )


subdistrict = _area("subdistrict", None, sa.Index("subdistrict_code_key", "code", unique=True))
community = _area(
    "community",
    sa.Column("subdistrict_id", sa.BigInteger, _fk("subdistrict", "RESTRICT")),
    sa.Column("housing_type", sa.Text),
    sa.Index("community_subdistrict_id_idx", "subdistrict_id"),  # 0005's second one: gone (0014)
    sa.Index("community_code_key", "code", unique=True),
)
grid = _area(
    "grid",
    sa.Column("community_id", sa.BigInteger, _fk("community", "RESTRICT"), nullable=False),
    sa.Index("grid_community_id_idx", "community_id"),
    sa.Index("grid_code_key", "community_id", "code", unique=True),
)


def _group(table: str, parent: str, column: str, *extra: sa.SchemaItem) -> sa.Table:
    """A level of the residents' hierarchy (0001's GROUP_LEVELS)."""
    return sa.Table(
        table,
        metadata,
        _id(),
        sa.Column(column, sa.BigInteger, _fk(parent, "CASCADE"), nullable=False),
        *extra,
        sa.Column("code", sa.Text, nullable=False),
        _households(),
        _geom("MULTIPOLYGON"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.UniqueConstraint(column, "code", name=f"{table}_{column}_code_key"),
        _gist(table),
    )


residents_group = _group(
    "residents_group",
    "community",
    "community_id",
    sa.Column("grid_id", sa.BigInteger, _fk("grid", "SET NULL")),
    sa.Column("is_locked", sa.Boolean, nullable=False, server_default=FALSE),
    sa.Column("flags", ARRAY(sa.Text), nullable=False, server_default=EMPTY_ARRAY),  # 0004
    sa.Index("residents_group_grid_id_idx", "grid_id"),  # 0005
)
building_cluster = _group("building_cluster", "residents_group", "residents_group_id")
unit = _group("unit", "building_cluster", "building_cluster_id")

building = sa.Table(
    "building",
    metadata,
    _id(),
    sa.Column("unit_id", sa.BigInteger, _fk("unit", "SET NULL")),
    sa.Column("community_id", sa.BigInteger, _fk("community", "SET NULL")),
    sa.Column("building_type", sa.Text, nullable=False, server_default=sa.text("'yes'")),
    sa.Column("name", sa.Text),
    sa.Column("addr_street", sa.Text),
    sa.Column("addr_housenumber", sa.Text),
    sa.Column("levels", sa.Integer),
    sa.Column("levels_source", sa.Text, nullable=False, server_default=sa.text("'default'")),
    sa.Column("height_m", DOUBLE_PRECISION),
    sa.Column("flats", sa.Integer),
    sa.Column("area_m2", DOUBLE_PRECISION, nullable=False),
    sa.Column("is_residential", sa.Boolean, nullable=False),
    _households(),
    sa.Column("households_source", sa.Text, nullable=False, server_default=sa.text("'none'")),
    sa.Column("tags", JSONB, nullable=False, server_default=EMPTY_JSON),
    _geom("MULTIPOLYGON"),
    *_provenance("building"),
    sa.Column("address_keys", ARRAY(sa.Text)),  # 0005
    sa.Column(  # 0011: Web Mercator for tiles, generated by the database
        "geom_3857",
        Geometry("MULTIPOLYGON", srid=3857, spatial_index=False),
        sa.Computed("ST_Transform(geom, 3857)"),
    ),
    _gist("building"),
    sa.Index("building_unit_id_idx", "unit_id"),
    sa.Index("building_community_id_idx", "community_id"),
    sa.Index("building_address_keys_gin", "address_keys", postgresql_using="gin"),
)

# Dwellings a house register lists; the estimated ones are the view dwelling_estimate.
dwelling = sa.Table(
    "dwelling",
    metadata,
    _id(),
    sa.Column("building_id", sa.BigInteger, _fk("building", "CASCADE"), nullable=False),
    sa.Column("floor", sa.Integer, nullable=False),
    sa.Column("room", sa.Text, nullable=False),
    sa.Column("households", sa.Integer, nullable=False, server_default=sa.text("1")),
    sa.Column("is_estimated", sa.Boolean, nullable=False, server_default=FALSE),
    sa.Column("source_file", sa.Text),
    sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("entrance", sa.Text),  # 0018: the door (单元门) the register names
    sa.UniqueConstraint("building_id", "room", name="dwelling_building_id_room_key"),
)

facility = sa.Table(
    "facility",
    metadata,
    _id(),
    sa.Column("categories", ARRAY(sa.Text), nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("name", sa.Text),
    sa.Column("tags", JSONB, nullable=False, server_default=EMPTY_JSON),
    _geom("GEOMETRY"),  # points and multipolygons (a CHECK in 0001)
    *_provenance("facility"),
    sa.Column("edited_at", sa.DateTime(timezone=True)),  # 0003
    _gist("facility"),
    sa.Index("facility_categories_gin", "categories", postgresql_using="gin"),
)

walk_node = sa.Table(
    "walk_node",
    metadata,
    _id(),
    _geom("POINT"),
    *_provenance("walk_node"),
    _gist("walk_node"),
)

# source/target have no foreign keys on purpose (0001 says why).
walk_edge = sa.Table(
    "walk_edge",
    metadata,
    _id(),
    sa.Column("source", sa.BigInteger, nullable=False),
    sa.Column("target", sa.BigInteger, nullable=False),
    sa.Column("highway", sa.Text, nullable=False),
    sa.Column("name", sa.Text),
    sa.Column("length_m", DOUBLE_PRECISION, nullable=False),
    _geom("LINESTRING"),
    *_provenance("walk_edge"),
    sa.Column(  # 0011: Web Mercator for tiles, generated by the database
        "geom_3857",
        Geometry("LINESTRING", srid=3857, spatial_index=False),
        sa.Computed("ST_Transform(geom, 3857)"),
    ),
    _gist("walk_edge"),
    sa.Index("walk_edge_source_idx", "source"),
    sa.Index("walk_edge_target_idx", "target"),
)

# --- 0002: walking reach --------------------------------------------------------------------

reach_run = sa.Table(
    "reach_run",
    metadata,
    _id(),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("speed_m_per_min", DOUBLE_PRECISION, nullable=False),
    sa.Column("max_walk_m", DOUBLE_PRECISION, nullable=False),
    sa.Column("categories", ARRAY(sa.Text), nullable=False),
    sa.Column("report", JSONB, nullable=False, server_default=EMPTY_JSON),
)

# building_id has no foreign key on purpose (0002 says why).
building_reach = sa.Table(
    "building_reach",
    metadata,
    sa.Column("run_id", sa.BigInteger, _fk("reach_run", "CASCADE"), primary_key=True),
    sa.Column("building_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("walk_m", ARRAY(REAL), nullable=False),
    sa.Column("facility_id", ARRAY(sa.BigInteger), nullable=False),
)

# --- 0003: facility edits -------------------------------------------------------------------

facility_withdrawn = sa.Table(
    "facility_withdrawn",
    metadata,
    sa.Column("source_file", sa.Text, primary_key=True),
    sa.Column("source_id", sa.Text, primary_key=True),
    sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
)

# --- 0004: delineation and entrances --------------------------------------------------------

building_cell = sa.Table(
    "building_cell",
    metadata,
    sa.Column(
        "building_id",
        sa.BigInteger,
        _fk("building", "CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    sa.Column("block_hash", sa.Text, nullable=False),
    sa.Column("epsg", sa.Integer, nullable=False),
    sa.Column("raw_wkb", BYTEA, nullable=False),
    sa.Column("cell_wkb", BYTEA, nullable=False),
    _geom("MULTIPOLYGON"),
    sa.Index("building_cell_block_hash_idx", "block_hash"),
    _gist("building_cell"),
)

land_piece = sa.Table(
    "land_piece",
    metadata,
    _id(),
    sa.Column("unit_id", sa.BigInteger, _fk("unit", "CASCADE"), nullable=False),
    sa.Column("block_hash", sa.Text, nullable=False),
    sa.Column("epsg", sa.Integer, nullable=False),
    sa.Column("cell_wkb", BYTEA, nullable=False),
    _geom("MULTIPOLYGON"),
    sa.Index("land_piece_unit_id_idx", "unit_id"),
    _gist("land_piece"),
)

delineation_run = sa.Table(
    "delineation_run",
    metadata,
    _id(),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("params", JSONB, nullable=False),
    sa.Column("coverage_key", sa.Text, nullable=False),
    sa.Column("quality", JSONB, nullable=False),
    sa.Column("timings", JSONB, nullable=False),
)

building_entrance = sa.Table(
    "building_entrance",
    metadata,
    _id(),
    sa.Column("building_id", sa.BigInteger, _fk("building", "CASCADE"), nullable=False),
    sa.Column("source_id", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("rank", sa.Integer, nullable=False),
    _geom("POINT"),
    sa.Column("door_no", sa.Integer),  # 0018: doors to homes numbered along the long side
    sa.Index("building_entrance_building_idx", "building_id"),
    _gist("building_entrance"),
)

# --- 0005: users, ledgers, history, audit -----------------------------------------------------

app_user = sa.Table(
    "app_user",
    metadata,
    _id(),
    sa.Column("username", sa.Text, nullable=False),
    sa.Column("full_name", sa.Text),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("is_active", sa.Boolean, nullable=False, server_default=TRUE),
    sa.Column("failed_logins", sa.Integer, nullable=False, server_default=ZERO),
    sa.Column("locked_until", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.UniqueConstraint("username", name="app_user_username_key"),
)

app_user_scope = sa.Table(
    "app_user_scope",
    metadata,
    sa.Column("user_id", sa.BigInteger, _fk("app_user", "CASCADE"), primary_key=True),
    sa.Column("level", sa.Text, primary_key=True),
    sa.Column("area_id", sa.BigInteger, primary_key=True, autoincrement=False),
)

auth_session = sa.Table(
    "auth_session",
    metadata,
    sa.Column("token_hash", BYTEA, primary_key=True),
    sa.Column("user_id", sa.BigInteger, _fk("app_user", "CASCADE"), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("auth_session_user_idx", "user_id"),
)

resident = sa.Table(
    "resident",
    metadata,
    _id(),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("gender", sa.Text),
    sa.Column("birth_date", sa.Date),
    sa.Column("id_number_enc", BYTEA, nullable=False),
    sa.Column("id_number_hmac", BYTEA, nullable=False),
    sa.Column("id_number_masked", sa.Text, nullable=False),
    sa.Column("phone_enc", BYTEA),
    sa.Column("phone_hmac", BYTEA),
    sa.Column("phone_masked", sa.Text),
    sa.Column("building_id", sa.BigInteger, _fk("building", "RESTRICT"), nullable=False),
    sa.Column("room", sa.Text, nullable=False),
    sa.Column("relation", sa.Text),
    sa.Column("status", sa.Text, nullable=False, server_default=sa.text("'both'")),
    sa.Column("notes", sa.Text),
    sa.Column("is_synthetic", sa.Boolean, nullable=False, server_default=FALSE),
    *_versioned(),
    sa.UniqueConstraint("id_number_hmac", name="resident_id_number_hmac_key"),
    sa.Index("resident_building_idx", "building_id", "room"),
    sa.Index("resident_phone_hmac_idx", "phone_hmac"),
    # prefix search on names (LIKE 'x%') under any collation
    sa.Index("resident_name_idx", "name", postgresql_ops={"name": "text_pattern_ops"}),
)

organisation = sa.Table(
    "organisation",
    metadata,
    _id(),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("contact_name", sa.Text),
    sa.Column("phone_enc", BYTEA),
    sa.Column("phone_hmac", BYTEA),
    sa.Column("phone_masked", sa.Text),
    sa.Column("address", sa.Text),
    sa.Column("building_id", sa.BigInteger, _fk("building", "SET NULL")),
    sa.Column("community_id", sa.BigInteger, _fk("community", "RESTRICT"), nullable=False),
    sa.Column("notes", sa.Text),
    sa.Column("is_synthetic", sa.Boolean, nullable=False, server_default=FALSE),
    *_versioned(),
)


def _entry(table: str, column: str, *extra: sa.Column) -> sa.Table:
    """A ledger entry about one resident, at most one per value of ``column``."""
    return sa.Table(
        table,
        metadata,
        _id(),
        sa.Column("resident_id", sa.BigInteger, _fk("resident", "CASCADE"), nullable=False),
        sa.Column(column, sa.Text, nullable=False),
        *extra,
        sa.Column("notes", sa.Text),
        *_versioned(),
        sa.UniqueConstraint("resident_id", column, name=f"{table}_resident_id_{column}_key"),
        sa.Index(f"{table}_{column}_idx", column),
    )


special_group = _entry("special_group", "category")
key_person = _entry("key_person", "category", sa.Column("handling", sa.Text))
backbone = _entry("backbone", "role")

leader_assignment = sa.Table(
    "leader_assignment",
    metadata,
    _id(),
    sa.Column("level", sa.Text, nullable=False),
    sa.Column("area_id", sa.BigInteger, nullable=False),
    sa.Column("resident_id", sa.BigInteger, _fk("resident", "CASCADE"), nullable=False),
    sa.Column("assigned_by", sa.BigInteger, _fk("app_user", "SET NULL")),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("ended_at", sa.DateTime(timezone=True)),
    sa.Column("ended_by", sa.BigInteger, _fk("app_user", "SET NULL")),
    sa.Column("lives_inside", sa.Boolean, nullable=False),
    # exactly one current leader per area
    sa.Index(
        "leader_current_key",
        "level",
        "area_id",
        unique=True,
        postgresql_where=sa.text("ended_at IS NULL"),
    ),
    sa.Index("leader_resident_idx", "resident_id"),
)

# Written only by the ga_ledger_history trigger; user_id etc. are plain numbers so that the
# history outlives the rows it is about.
ledger_history = sa.Table(
    "ledger_history",
    metadata,
    _id(),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("user_id", sa.BigInteger),
    sa.Column("ledger", sa.Text, nullable=False),
    sa.Column("row_id", sa.BigInteger, nullable=False),
    sa.Column("resident_id", sa.BigInteger),
    sa.Column("community_id", sa.BigInteger),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("old", JSONB),
    sa.Column("new", JSONB),
    sa.Index("ledger_history_row_idx", "ledger", "row_id"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    _id(),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("subject_ids", ARRAY(sa.BigInteger), nullable=False, server_default=EMPTY_ARRAY),
    sa.Column("detail", JSONB, nullable=False, server_default=EMPTY_JSON),
    sa.Index("audit_log_user_at_idx", "user_id", "at"),
    sa.Index("audit_log_user_action_at_idx", "user_id", "action", "at"),  # 0006
)

idempotency_key = sa.Table(
    "idempotency_key",
    metadata,
    sa.Column("user_id", sa.BigInteger, _fk("app_user", "CASCADE"), primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("request_hash", sa.Text, nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("response", JSONB),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
)

# --- 0006: login secrets and throttling (the app's role can read neither) -------------------

ga_secret = sa.Table(
    "ga_secret",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("value", BYTEA, nullable=False),
)

# No primary key: an append-only log of failures, read by key and time.
login_failure = sa.Table(
    "login_failure",
    metadata,
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Index("login_failure_key_at_idx", "key", "at"),
)


# The tables of the work done on the map — patrols and problems (0008), building parts
# (0010), reports (0012), the tile cache (0016), the city build (0017) — are declared in
# gis/schema_work.py on this same metadata; imported here so that ``metadata`` is whole.
from gis import schema_work  # noqa: E402, F401
