"""Schema bookkeeping and the project-local cluster's files."""

from __future__ import annotations

import sqlalchemy as sa

from gis import db


def test_schema_head_constant_matches_the_migrations(engine) -> None:
    assert db.head_revision() == db.SCHEMA_HEAD
    assert db.is_at_head(engine)
    with engine.connect() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'old'"))
        conn.commit()
    assert not db.is_at_head(engine)


def test_every_geometry_column_is_geom_4326_with_a_gist_index(engine) -> None:
    with engine.connect() as conn:
        columns = conn.execute(
            sa.text(
                "SELECT f_table_name, f_geometry_column, srid FROM geometry_columns "
                "WHERE f_table_schema = 'public'"
            )
        ).all()
        indexed = set(
            conn.execute(
                sa.text(
                    "SELECT t.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
                    "JOIN pg_class t ON t.oid = x.indrelid JOIN pg_am am ON am.oid = i.relam "
                    "WHERE am.amname = 'gist'"
                )
            ).scalars()
        )
    tables = {t for t, _, _ in columns}
    assert {
        "subdistrict",
        "community",
        "grid",
        "residents_group",
        "building_cluster",
        "unit",
        "building",
        "facility",
        "walk_node",
        "walk_edge",
    } <= tables
    assert all(col == "geom" and srid == 4326 for _, col, srid in columns)
    assert tables <= indexed


def test_nesting_is_enforced_by_foreign_keys(engine) -> None:
    with engine.connect() as conn:
        fks = set(
            conn.execute(
                sa.text(
                    "SELECT conrelid::regclass::text || '->' || confrelid::regclass::text "
                    "FROM pg_constraint WHERE contype = 'f'"
                )
            ).scalars()
        )
    assert {
        "community->subdistrict",
        "grid->community",
        "residents_group->community",
        "residents_group->grid",
        "building_cluster->residents_group",
        "unit->building_cluster",
        "building->unit",
        "dwelling->building",
    } <= fks


def test_import_refuses_a_network_edge_without_its_nodes(engine) -> None:
    """walk_edge has no per-row foreign keys; the loader's set-based check stands in."""
    import pytest

    from gis.errors import Conflict
    from gis.io.load import check_network_ends

    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO walk_edge (source, target, highway, length_m, geom, source_file, "
                "source_id) VALUES (1, 2, 'footway', 10, "
                "ST_GeomFromText('LINESTRING(118.78 32.04, 118.7801 32.04)', 4326), 'x', 'e')"
            )
        )
        with pytest.raises(Conflict, match="1 edge"):
            check_network_ends(conn, "x")
        check_network_ends(conn, "another source")  # other sources are not concerned
        conn.rollback()
