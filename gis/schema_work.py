"""The tables of the work done on the map, on ``gis.schema``'s metadata.

Patrols, visits and problems (0008–0009), building parts (0010), residents' voice and
ratings (0012), the vector tile cache (0016) and the city build (0017). The rules are
``gis/schema.py``'s: every table a migration creates, as the migration makes it, checked by
``tests/gis/test_schema.py``. Import ``gis.schema`` (it imports this module).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, BYTEA, DOUBLE_PRECISION, JSONB, REAL

from gis.schema import (
    EMPTY_ARRAY,
    EMPTY_JSON,
    NOW,
    ZERO,
    _fk,
    _geom,
    _gist,
    _households,
    _id,
    metadata,
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

# --- 0019: street blocks cached by a hash of what cuts them (issue 14) -------------------

street_block_cache = sa.Table(
    "street_block_cache",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("epsg", sa.Integer, nullable=False),
    sa.Column("blocks", sa.Integer, nullable=False),
    sa.Column("blocks_wkb", BYTEA, nullable=False),
    sa.Column("footprint_digests", BYTEA, nullable=False),
    sa.Column("footprint_blocks", BYTEA, nullable=False),
    sa.Column("made_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.CheckConstraint("blocks >= 0", name="street_block_cache_blocks_check"),
)
