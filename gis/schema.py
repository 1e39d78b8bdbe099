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

# --- 0008: patrols, visits, problems (巡查, 走访, 挂牌销号) ------------------------------------

patrol_area = sa.Table(
    "patrol_area",
    metadata,
    _id(),
    sa.Column("grid_id", sa.BigInteger, _fk("grid", "CASCADE"), nullable=False),
    sa.Column("code", sa.Text, nullable=False),
    _households(),
    sa.Column("buildings", sa.Integer, nullable=False, server_default=ZERO),
    sa.Column("walk_m", DOUBLE_PRECISION, nullable=False, server_default=ZERO),
    _geom("MULTIPOLYGON"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.UniqueConstraint("grid_id", "code", name="patrol_area_grid_id_code_key"),
    _gist("patrol_area"),
)

patrol_area_building = sa.Table(
    "patrol_area_building",
    metadata,
    sa.Column(
        "building_id",
        sa.BigInteger,
        _fk("building", "CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    sa.Column("area_id", sa.BigInteger, _fk("patrol_area", "CASCADE"), nullable=False),
    sa.Index("patrol_area_building_area_idx", "area_id"),
)

patrol_assignment = sa.Table(
    "patrol_assignment",
    metadata,
    _id(),
    sa.Column("area_id", sa.BigInteger, _fk("patrol_area", "CASCADE"), nullable=False),
    sa.Column("user_id", sa.BigInteger, _fk("app_user", "CASCADE"), nullable=False),
    sa.Column("assigned_by", sa.BigInteger, _fk("app_user", "SET NULL")),
    sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("ends_at", sa.DateTime(timezone=True)),
    # one current worker per area
    sa.Index(
        "patrol_assignment_current_key",
        "area_id",
        unique=True,
        postgresql_where=sa.text("ends_at IS NULL"),
    ),
    sa.Index("patrol_assignment_user_idx", "user_id"),
)

patrol_checkin = sa.Table(
    "patrol_checkin",
    metadata,
    _id(),
    sa.Column("user_id", sa.BigInteger, _fk("app_user", "RESTRICT"), nullable=False),
    sa.Column("building_id", sa.BigInteger, _fk("building", "CASCADE"), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("method", sa.Text, nullable=False),
    sa.Column("lon", DOUBLE_PRECISION),
    sa.Column("lat", DOUBLE_PRECISION),
    sa.Column("accuracy_m", DOUBLE_PRECISION),
    sa.Column("distance_m", DOUBLE_PRECISION),
    sa.Index("patrol_checkin_building_at_idx", "building_id", "at"),
    sa.Index("patrol_checkin_user_at_idx", "user_id", "at"),
)

visit_frequency = sa.Table(
    "visit_frequency",
    metadata,
    sa.Column("category", sa.Text, primary_key=True),
    sa.Column("days", sa.Integer, nullable=False),
)

# note_enc: sealed with Keys.seal (column "visit.note"); notes name people
visit = sa.Table(
    "visit",
    metadata,
    _id(),
    sa.Column("resident_id", sa.BigInteger, _fk("resident", "CASCADE"), nullable=False),
    sa.Column("user_id", sa.BigInteger, _fk("app_user", "RESTRICT"), nullable=False),
    sa.Column(
        "category",
        sa.Text,
        sa.ForeignKey("visit_frequency.category", ondelete="RESTRICT"),
        nullable=False,
    ),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("note_enc", BYTEA),
    sa.Index("visit_resident_at_idx", "resident_id", "at"),
    sa.Index("visit_user_at_idx", "user_id", "at"),
)

problem = sa.Table(
    "problem",
    metadata,
    _id(),
    sa.Column("building_id", sa.BigInteger, _fk("building", "CASCADE"), nullable=False),
    sa.Column("category", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("handling", sa.Text, nullable=False),
    sa.Column("deadline", sa.DateTime(timezone=True)),
    sa.Column("status", sa.Text, nullable=False, server_default=sa.text("'reported'")),
    sa.Column("reported_by", sa.BigInteger, _fk("app_user", "RESTRICT"), nullable=False),
    sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("resolved_by", sa.BigInteger, _fk("app_user", "SET NULL")),
    sa.Column("verified_by", sa.BigInteger, _fk("app_user", "SET NULL")),
    sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    _geom("POINT"),
    # 0009: who answers for it now (worker, committee, subdistrict) and since when
    sa.Column("escalation_level", sa.Text, nullable=False, server_default=sa.text("'worker'")),
    sa.Column("escalated_at", sa.DateTime(timezone=True)),
    _gist("problem"),
    sa.Index("problem_building_idx", "building_id"),
    sa.Index(
        "problem_open_deadline_idx",
        "deadline",
        postgresql_where=sa.text("status <> 'closed'::text"),
    ),
)

# append-only for the app: every status change, who and when
problem_event = sa.Table(
    "problem_event",
    metadata,
    _id(),
    sa.Column("problem_id", sa.BigInteger, _fk("problem", "CASCADE"), nullable=False),
    # 0009: null only for an escalation by the scheduled job (escalated_to set)
    sa.Column("user_id", sa.BigInteger, _fk("app_user", "RESTRICT")),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("from_status", sa.Text),
    sa.Column("to_status", sa.Text, nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("escalated_to", sa.Text),  # 0009
    sa.Index("problem_event_problem_idx", "problem_id", "at"),
)

# path: a file outside any public path (never served by the static mounts)
problem_photo = sa.Table(
    "problem_photo",
    metadata,
    _id(),
    sa.Column("problem_id", sa.BigInteger, _fk("problem", "CASCADE"), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("media_type", sa.Text, nullable=False),
    sa.Column("bytes", sa.Integer, nullable=False),
    sa.Column("sha256", sa.Text, nullable=False),
    sa.Column("uploaded_by", sa.BigInteger, _fk("app_user", "RESTRICT"), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.UniqueConstraint("path", name="problem_photo_path_key"),
    sa.Index("problem_photo_problem_idx", "problem_id"),
)

# --- 0010: building parts (a tower divided by floors, each part a unit) ---------------------

building_part = sa.Table(
    "building_part",
    metadata,
    _id(),
    sa.Column("building_id", sa.BigInteger, _fk("building", "CASCADE"), nullable=False),
    sa.Column("part_no", sa.Integer, nullable=False),
    sa.Column("unit_id", sa.BigInteger, _fk("unit", "SET NULL")),
    sa.Column("households", sa.Integer, nullable=False),
    sa.Column("floor_min", sa.Integer, nullable=False),
    sa.Column("floor_max", sa.Integer, nullable=False),
    sa.Column("entrance", sa.Text),
    sa.Column("rooms", ARRAY(sa.Text), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.UniqueConstraint("building_id", "part_no", name="building_part_building_id_part_no_key"),
    sa.Index("building_part_unit_id_idx", "unit_id"),
)

# 0012: residents' voice and ratings (issue 15). Answers carry scores only, never a person.
survey_round = sa.Table(
    "survey_round",
    metadata,
    _id(),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("opens_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("closes_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.BigInteger, _fk("app_user", "SET NULL")),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
)

survey_sheet = sa.Table(
    "survey_sheet",
    metadata,
    _id(),
    sa.Column("round_id", sa.BigInteger, _fk("survey_round", "CASCADE"), nullable=False),
    sa.Column("building_id", sa.BigInteger, _fk("building", "CASCADE"), nullable=False),
    sa.Column("token", sa.Text, nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.UniqueConstraint("round_id", "building_id", name="survey_sheet_round_id_building_id_key"),
    sa.Index("survey_sheet_building_idx", "building_id"),
)

survey_code = sa.Table(
    "survey_code",
    metadata,
    _id(),
    sa.Column("sheet_id", sa.BigInteger, _fk("survey_sheet", "CASCADE"), nullable=False),
    sa.Column("code", sa.Text, nullable=False, unique=True),
    sa.Column("used_at", sa.DateTime(timezone=True)),
    sa.Index("survey_code_sheet_idx", "sheet_id"),
)

survey_answer = sa.Table(
    "survey_answer",
    metadata,
    sa.Column("code_id", sa.BigInteger, _fk("survey_code", "CASCADE"), primary_key=True),
    sa.Column("round_id", sa.BigInteger, _fk("survey_round", "CASCADE"), nullable=False),
    sa.Column("building_id", sa.BigInteger, _fk("building", "CASCADE"), nullable=False),
    sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("overall", sa.SmallInteger, nullable=False),
    sa.Column("service", sa.SmallInteger, nullable=False),
    sa.Column("environment", sa.SmallInteger, nullable=False),
    sa.Column("safety", sa.SmallInteger, nullable=False),
    sa.Index("survey_answer_round_building_idx", "round_id", "building_id"),
)

resident_problem = sa.Table(
    "resident_problem",
    metadata,
    sa.Column("problem_id", sa.BigInteger, _fk("problem", "CASCADE"), primary_key=True),
    sa.Column("sheet_id", sa.BigInteger, _fk("survey_sheet", "SET NULL")),
)

# no primary key: a log of recent public submissions, kept one day
public_throttle = sa.Table(
    "public_throttle",
    metadata,
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Index("public_throttle_key_at_idx", "key", "at"),
)

committee_rating = sa.Table(
    "committee_rating",
    metadata,
    _id(),
    sa.Column("community_id", sa.BigInteger, _fk("community", "CASCADE"), nullable=False),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("stars", sa.SmallInteger),
    sa.Column("score", DOUBLE_PRECISION),
    sa.Column("capped_by", ARRAY(sa.Text), nullable=False, server_default=EMPTY_ARRAY),
    sa.Column("detail", JSONB, nullable=False),
    sa.Column("computed_by", sa.BigInteger, _fk("app_user", "SET NULL")),
    sa.Index("committee_rating_community_idx", "community_id", "computed_at"),
)

# --- 0016: the vector tile cache (issue 12), invalidated by generation -------------------

tile_cache = sa.Table(
    "tile_cache",
    metadata,
    sa.Column("layer", sa.Text, primary_key=True),
    sa.Column("z", sa.SmallInteger, primary_key=True),
    sa.Column("x", sa.Integer, primary_key=True),
    sa.Column("y", sa.Integer, primary_key=True),
    sa.Column("gcj02", sa.Boolean, primary_key=True),
    sa.Column("scope_key", sa.Text, primary_key=True),
    sa.Column("generation", sa.BigInteger, nullable=False),
    sa.Column("data", BYTEA, nullable=False),
    sa.Column("gz", BYTEA),
    sa.Column("etag", sa.Text, nullable=False),
    sa.Column("made_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Index("tile_cache_made_at_idx", "made_at"),
)

tile_invalidation = sa.Table(
    "tile_invalidation",
    metadata,
    _id(),
    sa.Column("n", sa.BigInteger, nullable=False, server_default=sa.text("1")),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
)

# --- 0017: the city build's record and per-community figures (issue 17) -----------------

CLOCK = sa.text("clock_timestamp()")

city_build_unit = sa.Table(
    "city_build_unit",
    metadata,
    sa.Column("build", sa.Text, primary_key=True),
    sa.Column("stage", sa.Text, primary_key=True),
    sa.Column("unit", sa.Text, primary_key=True),
    sa.Column(
        "finished_at",
        sa.DateTime(timezone=True),
        nullable=False,
        server_default=CLOCK,
    ),
    sa.Column("seconds", REAL, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False, server_default=sa.text("1")),
    sa.Column("result", JSONB, nullable=False, server_default=EMPTY_JSON),
    sa.CheckConstraint(
        "stage IN ('import', 'cells', 'delineate', 'reach', 'reports')",
        name="city_build_unit_stage_check",
    ),
)

city_build_failure = sa.Table(
    "city_build_failure",
    metadata,
    _id(),
    sa.Column("build", sa.Text, nullable=False),
    sa.Column("stage", sa.Text, nullable=False),
    sa.Column("unit", sa.Text, nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=CLOCK),
    sa.Index("city_build_failure_unit_idx", "build", "stage", "unit"),
)

community_figures = sa.Table(
    "community_figures",
    metadata,
    sa.Column("community_id", sa.BigInteger, _fk("community", "CASCADE"), primary_key=True),
    sa.Column("figures", JSONB, nullable=False),
    sa.Column(
        "computed_at",
        sa.DateTime(timezone=True),
        nullable=False,
        server_default=CLOCK,
    ),
)
