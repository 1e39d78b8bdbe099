"""gis/schema.py describes exactly the tables the migrations create, and the check would see drift.

``compare_metadata`` reflects the migrated database and lists every difference from the
metadata: tables, columns (type, nullability, server default), primary, foreign and unique
keys, and indexes by name, columns and uniqueness. It ignores, here:

* relations owned by an extension (``pg_depend`` deptype ``e``): PostGIS's
  ``spatial_ref_sys`` (and topology's, tiger's or pgRouting's tables wherever those are
  installed) are not ours to describe. geoalchemy2's ``alembic_helpers.include_object``
  matches a fixed list of name prefixes instead, which covers ``spatial_ref_sys`` but not
  the others and would hide any table of ours named ``idx_…``;
* ``alembic_version``, which Alembic always leaves out itself.

Views are never reflected as tables, so they need no rule. Alembic does not look at how an
index is built (``USING gist``/``gin``), at a partial index's ``WHERE`` or at operator
classes; ``test_index_methods_predicates_and_opclasses_match`` compares those from the
inspector. CHECK constraints, policies, triggers and functions stay the migrations' alone.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from gis import schema

EXTENSION_RELATIONS = sa.text(
    "SELECT c.relname FROM pg_depend d JOIN pg_class c ON c.oid = d.objid "
    "WHERE d.classid = 'pg_class'::regclass AND d.deptype = 'e'"
)


def _diff(conn: Connection) -> list[Any]:
    """Return compare_metadata's differences between ``conn``'s database and the schema."""
    ignored = set(conn.execute(EXTENSION_RELATIONS).scalars())

    def include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
        return not (type_ == "table" and name in ignored)

    context = MigrationContext.configure(
        conn,
        opts={
            "compare_type": True,
            "compare_server_default": True,
            "include_name": include_name,
        },
    )
    return compare_metadata(context, schema.metadata)


def test_metadata_matches_the_migrated_database(engine) -> None:
    with engine.connect() as conn:
        ignored = set(conn.execute(EXTENSION_RELATIONS).scalars())
        diff = _diff(conn)
    assert "spatial_ref_sys" in ignored  # the rule is live: PostGIS's table is there
    assert diff == []


def _index_details(conn: Connection) -> list[str]:
    """Return the indexes whose method, predicate or operator classes differ from the schema."""
    inspector = sa.inspect(conn)
    found = {
        ix["name"]: ix.get("dialect_options", {})
        for table in schema.metadata.sorted_tables
        for ix in inspector.get_indexes(table.name)
    }
    wrong = []
    for table in schema.metadata.sorted_tables:
        for index in table.indexes:
            want = index.dialect_options["postgresql"]
            got = found.get(index.name, {})
            if (
                got.get("postgresql_using", "btree") != (want["using"] or "btree")
                or _normal(got.get("postgresql_where")) != _normal(want["where"])
                or got.get("postgresql_ops", {}) != (want["ops"] or {})
            ):
                wrong.append(index.name)
    return wrong


def _normal(clause: object) -> str | None:
    """An index predicate as comparable text: no parentheses, no case, single spaces."""
    if clause is None:
        return None
    text = str(clause).lower().replace("(", "").replace(")", "")
    return " ".join(text.split())


def test_index_methods_predicates_and_opclasses_match(engine) -> None:
    with engine.connect() as conn:
        assert _index_details(conn) == []


DRIFT = {
    "a column the schema lacks": (
        "ALTER TABLE building ADD COLUMN colour text",
        "remove_column",
    ),
    "a changed type": (
        "ALTER TABLE walk_edge ALTER COLUMN highway TYPE varchar(40)",
        "modify_type",
    ),
    "a changed geometry type": (
        "ALTER TABLE walk_node ALTER COLUMN geom TYPE geometry(MultiPoint, 4326) "
        "USING ST_Multi(geom)",
        "modify_type",
    ),
    "a dropped NOT NULL": (
        "ALTER TABLE facility ALTER COLUMN kind DROP NOT NULL",
        "modify_nullable",
    ),
    "a changed default": (
        "ALTER TABLE building ALTER COLUMN building_type SET DEFAULT 'house'",
        "modify_default",
    ),
    "a dropped index": ("DROP INDEX building_unit_id_idx", "add_index"),
    "a dropped foreign key": (
        "ALTER TABLE dwelling DROP CONSTRAINT dwelling_building_id_fkey",
        "add_fk",
    ),
    "a table the schema lacks": ("CREATE TABLE scratch (id int)", "remove_table"),
}


def _kinds(diff: list[Any]) -> set[str]:
    """Operation names in a diff; column changes come as lists of tuples."""
    out: set[str] = set()
    for item in diff:
        for op in item if isinstance(item, list) else [item]:
            out.add(op[0])
    return out


@pytest.mark.parametrize("case", DRIFT, ids=list(DRIFT))
def test_compare_reports_drift(engine, case: str) -> None:
    ddl, expected = DRIFT[case]
    with engine.connect() as conn:
        conn.execute(sa.text(ddl))  # rolled back when the connection closes
        diff = _diff(conn)
    assert _kinds(diff) == {expected}, diff


INDEX_DRIFT = {
    "gin rebuilt as btree": (
        "DROP INDEX facility_categories_gin; "
        "CREATE INDEX facility_categories_gin ON facility (categories)",
        "facility_categories_gin",
    ),
    "partial index made total": (
        "DROP INDEX leader_current_key; "
        "CREATE UNIQUE INDEX leader_current_key ON leader_assignment (level, area_id)",
        "leader_current_key",
    ),
    "operator class dropped": (
        "DROP INDEX resident_name_idx; CREATE INDEX resident_name_idx ON resident (name)",
        "resident_name_idx",
    ),
}


@pytest.mark.parametrize("case", INDEX_DRIFT, ids=list(INDEX_DRIFT))
def test_index_check_reports_drift_compare_cannot_see(engine, case: str) -> None:
    ddl, index = INDEX_DRIFT[case]
    with engine.connect() as conn:
        conn.execute(sa.text(ddl))
        assert _diff(conn) == []  # what compare_metadata alone would say
        assert _index_details(conn) == [index]
