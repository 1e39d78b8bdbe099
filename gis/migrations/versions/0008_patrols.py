"""Patrols, visits and problems: 巡查, 走访 and 挂牌销号.

* ``patrol_area`` / ``patrol_area_building``: the areas workers walk (a grid, or a contiguous
  part of one when several workers share it); every building of an area in exactly one.
* ``patrol_assignment``: who walks an area, from when to when; one current worker per area
  (a partial unique index: two staff assigning at once get one winner and a 409).
* ``patrol_checkin``: a worker was at a building (tapped, or by GPS with its accuracy and
  the distance to the footprint). Offline syncs are made idempotent by ``idempotency_key``.
* ``visit`` / ``visit_frequency``: visits to residents of special groups and key persons; the
  note names people, so it is stored sealed (``Keys.seal``), never in clear.
* ``problem`` / ``problem_event`` / ``problem_photo``: problems listed until verified and
  closed; every status change is an event (append-only for the app); photos are files
  outside any public path, known here by path, type, size and SHA-256.

Check-ins, visits and problems carry row-level security with the ledgers' scope
(``ga_people_buildings()``): a worker sees those of their own buildings only, and writes
only as themselves. Check-ins and visits are append-only for the app (no UPDATE or DELETE
policy); problems are updated by the service, which records each change as an event.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

APP_ROLE = "gridatlas_app"
METHODS = ("tap", "gps")
HANDLING = ("immediate", "joint", "time_limited")
STATUSES = ("reported", "accepted", "in_progress", "resolved", "verified", "closed")
PROBLEM_CATEGORIES = (
    "parking",
    "ebike_charging",
    "lift",
    "illegal_construction",
    "public_safety",
    "environment",
    "facilities",
    "other",
)
MEDIA_TYPES = ("image/jpeg", "image/png", "image/webp")
# Visit categories are the ledgers' own: 'special_group:<category>' or 'key_person:<category>'.
FREQUENCIES = {
    "special_group:elderly_alone": 7,
    "special_group:disabled": 14,
    "special_group:low_income": 30,
    "special_group:extreme_poverty": 14,
    "special_group:serious_illness": 14,
    "special_group:left_behind_child": 14,
    "special_group:other": 30,
    "key_person:community_correction": 7,
    "key_person:released": 30,
    "key_person:drug": 7,
    "key_person:mental_disorder": 7,
    "key_person:petitioner": 30,
    "key_person:other": 30,
}
TABLES = (
    "problem_photo",
    "problem_event",
    "problem",
    "visit",
    "visit_frequency",
    "patrol_checkin",
    "patrol_assignment",
    "patrol_area_building",
    "patrol_area",
)


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def _areas() -> None:
    op.execute(
        """
        CREATE TABLE patrol_area (
            id         bigserial PRIMARY KEY,
            grid_id    bigint NOT NULL REFERENCES grid (id) ON DELETE CASCADE,
            code       text NOT NULL CHECK (length(btrim(code)) BETWEEN 1 AND 40),
            households integer NOT NULL DEFAULT 0 CHECK (households >= 0),
            buildings  integer NOT NULL DEFAULT 0 CHECK (buildings >= 0),
            walk_m     double precision NOT NULL DEFAULT 0 CHECK (walk_m >= 0),
            geom       geometry(MultiPolygon, 4326) NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (grid_id, code)
        )
        """
    )
    op.execute("CREATE INDEX patrol_area_geom_gist ON patrol_area USING gist (geom)")
    # a building lies in one patrol area at most (the key)
    op.execute(
        """
        CREATE TABLE patrol_area_building (
            building_id bigint PRIMARY KEY REFERENCES building (id) ON DELETE CASCADE,
            area_id     bigint NOT NULL REFERENCES patrol_area (id) ON DELETE CASCADE
        )
        """
    )
    op.execute("CREATE INDEX patrol_area_building_area_idx ON patrol_area_building (area_id)")
    op.execute(
        """
        CREATE TABLE patrol_assignment (
            id          bigserial PRIMARY KEY,
            area_id     bigint NOT NULL REFERENCES patrol_area (id) ON DELETE CASCADE,
            user_id     bigint NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
            assigned_by bigint REFERENCES app_user (id) ON DELETE SET NULL,
            starts_at   timestamptz NOT NULL DEFAULT now(),
            ends_at     timestamptz,
            CHECK (ends_at IS NULL OR ends_at >= starts_at)
        )
        """
    )
    op.execute(
        "CREATE UNIQUE INDEX patrol_assignment_current_key ON patrol_assignment (area_id) "
        "WHERE ends_at IS NULL"
    )
    op.execute("CREATE INDEX patrol_assignment_user_idx ON patrol_assignment (user_id)")


def _checkins_and_visits() -> None:
    op.execute(
        f"""
        CREATE TABLE patrol_checkin (
            id          bigserial PRIMARY KEY,
            user_id     bigint NOT NULL REFERENCES app_user (id) ON DELETE RESTRICT,
            building_id bigint NOT NULL REFERENCES building (id) ON DELETE CASCADE,
            at          timestamptz NOT NULL,
            received_at timestamptz NOT NULL DEFAULT now(),
            method      text NOT NULL CHECK (method IN {_in(METHODS)}),
            lon         double precision CHECK (lon BETWEEN -180 AND 180),
            lat         double precision CHECK (lat BETWEEN -90 AND 90),
            accuracy_m  double precision CHECK (accuracy_m >= 0),
            distance_m  double precision CHECK (distance_m >= 0),
            CHECK (method = 'tap' OR (lon IS NOT NULL AND lat IS NOT NULL
                                      AND accuracy_m IS NOT NULL AND distance_m IS NOT NULL))
        )
        """
    )
    op.execute("CREATE INDEX patrol_checkin_building_at_idx ON patrol_checkin (building_id, at)")
    op.execute("CREATE INDEX patrol_checkin_user_at_idx ON patrol_checkin (user_id, at)")
    op.execute(
        """
        CREATE TABLE visit_frequency (
            category text PRIMARY KEY CHECK (category ~ '^(special_group|key_person):[a-z_]+$'),
            days     integer NOT NULL CHECK (days BETWEEN 1 AND 366)
        )
        """
    )
    values = ", ".join(f"('{c}', {d})" for c, d in FREQUENCIES.items())
    op.execute(f"INSERT INTO visit_frequency (category, days) VALUES {values}")
    op.execute(
        """
        CREATE TABLE visit (
            id          bigserial PRIMARY KEY,
            resident_id bigint NOT NULL REFERENCES resident (id) ON DELETE CASCADE,
            user_id     bigint NOT NULL REFERENCES app_user (id) ON DELETE RESTRICT,
            category    text NOT NULL REFERENCES visit_frequency (category) ON DELETE RESTRICT,
            at          timestamptz NOT NULL,
            received_at timestamptz NOT NULL DEFAULT now(),
            note_enc    bytea
        )
        """
    )
    op.execute("CREATE INDEX visit_resident_at_idx ON visit (resident_id, at)")
    op.execute("CREATE INDEX visit_user_at_idx ON visit (user_id, at)")


def _problems() -> None:
    op.execute(
        f"""
        CREATE TABLE problem (
            id          bigserial PRIMARY KEY,
            -- the building it was reported at, or the nearest one to its point: the scope
            building_id bigint NOT NULL REFERENCES building (id) ON DELETE CASCADE,
            category    text NOT NULL CHECK (category IN {_in(PROBLEM_CATEGORIES)}),
            description text NOT NULL CHECK (length(btrim(description)) BETWEEN 1 AND 2000),
            handling    text NOT NULL CHECK (handling IN {_in(HANDLING)}),
            deadline    timestamptz,
            status      text NOT NULL DEFAULT 'reported' CHECK (status IN {_in(STATUSES)}),
            reported_by bigint NOT NULL REFERENCES app_user (id) ON DELETE RESTRICT,
            reported_at timestamptz NOT NULL,
            resolved_by bigint REFERENCES app_user (id) ON DELETE SET NULL,
            verified_by bigint REFERENCES app_user (id) ON DELETE SET NULL,
            version     integer NOT NULL DEFAULT 1,
            updated_at  timestamptz NOT NULL DEFAULT now(),
            geom        geometry(Point, 4326) NOT NULL,
            CHECK ((handling = 'time_limited') = (deadline IS NOT NULL)),
            -- 挂牌销号: closed only once verified by someone other than the resolver
            CHECK (status NOT IN ('verified', 'closed')
                   OR (verified_by IS NOT NULL AND resolved_by IS NOT NULL
                       AND verified_by <> resolved_by))
        )
        """
    )
    op.execute("CREATE INDEX problem_geom_gist ON problem USING gist (geom)")
    op.execute("CREATE INDEX problem_building_idx ON problem (building_id)")
    op.execute(
        "CREATE INDEX problem_open_deadline_idx ON problem (deadline) WHERE status <> 'closed'"
    )
    op.execute(
        f"""
        CREATE TABLE problem_event (
            id          bigserial PRIMARY KEY,
            problem_id  bigint NOT NULL REFERENCES problem (id) ON DELETE CASCADE,
            user_id     bigint NOT NULL REFERENCES app_user (id) ON DELETE RESTRICT,
            at          timestamptz NOT NULL,
            from_status text CHECK (from_status IN {_in(STATUSES)}),
            to_status   text NOT NULL CHECK (to_status IN {_in(STATUSES)}),
            note        text CHECK (length(note) <= 2000)
        )
        """
    )
    op.execute("CREATE INDEX problem_event_problem_idx ON problem_event (problem_id, at)")
    op.execute(
        f"""
        CREATE TABLE problem_photo (
            id          bigserial PRIMARY KEY,
            problem_id  bigint NOT NULL REFERENCES problem (id) ON DELETE CASCADE,
            path        text NOT NULL UNIQUE,
            media_type  text NOT NULL CHECK (media_type IN {_in(MEDIA_TYPES)}),
            bytes       integer NOT NULL CHECK (bytes > 0),
            sha256      text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{{64}}$'),
            uploaded_by bigint NOT NULL REFERENCES app_user (id) ON DELETE RESTRICT,
            created_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX problem_photo_problem_idx ON problem_photo (problem_id)")


def _security() -> None:
    people = "building_id IN (SELECT ga_people_buildings())"
    me = "user_id = (SELECT ga_user())"
    via_resident = "EXISTS (SELECT 1 FROM resident r WHERE r.id = resident_id)"
    via_problem = "EXISTS (SELECT 1 FROM problem p WHERE p.id = problem_id)"
    for table in ("patrol_checkin", "visit", "problem", "problem_event", "problem_photo"):
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    # append-only logs: read in scope, written in scope as oneself, never changed
    op.execute(f"CREATE POLICY patrol_checkin_read ON patrol_checkin FOR SELECT USING ({people})")
    op.execute(
        f"CREATE POLICY patrol_checkin_write ON patrol_checkin FOR INSERT "
        f"WITH CHECK ({people} AND {me})"
    )
    op.execute(f"CREATE POLICY visit_read ON visit FOR SELECT USING ({via_resident})")
    op.execute(
        f"CREATE POLICY visit_write ON visit FOR INSERT WITH CHECK ({via_resident} AND {me})"
    )
    op.execute(
        f"CREATE POLICY problem_scope ON problem USING ({people}) WITH CHECK ({people})"
    )
    op.execute(
        f"CREATE POLICY problem_event_read ON problem_event FOR SELECT USING ({via_problem})"
    )
    op.execute(
        f"CREATE POLICY problem_event_write ON problem_event FOR INSERT "
        f"WITH CHECK ({via_problem} AND {me})"
    )
    op.execute(
        f"CREATE POLICY problem_photo_scope ON problem_photo USING ({via_problem}) "
        f"WITH CHECK ({via_problem})"
    )
    tables = ", ".join(TABLES)
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {tables} TO {APP_ROLE}")
    op.execute(
        f"GRANT USAGE, SELECT ON SEQUENCE patrol_area_id_seq, patrol_assignment_id_seq, "
        f"patrol_checkin_id_seq, visit_id_seq, problem_id_seq, problem_event_id_seq, "
        f"problem_photo_id_seq TO {APP_ROLE}"
    )
    op.execute(
        f"REVOKE UPDATE, DELETE, TRUNCATE ON patrol_checkin, visit, problem_event FROM {APP_ROLE}"
    )
    # frequencies are set (UPDATE) through the service, by staff; the categories are fixed
    op.execute(f"REVOKE INSERT, DELETE, TRUNCATE ON visit_frequency FROM {APP_ROLE}")


def upgrade() -> None:
    _areas()
    _checkins_and_visits()
    _problems()
    _security()


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
