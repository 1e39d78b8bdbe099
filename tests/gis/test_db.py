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
    # The one exception: Web Mercator copies for vector tiles (migration 0011), which the
    # database derives from geom itself (generated columns), so they can never disagree.
    mercator = {(t, c) for t, c, srid in columns if c == "geom_3857" and srid == 3857}
    assert mercator == {("building", "geom_3857"), ("walk_edge", "geom_3857")}
    assert all(c == "geom" and srid == 4326 for t, c, srid in columns if (t, c) not in mercator)
    assert tables <= indexed
    with engine.connect() as conn:
        generated = {
            (t, c): expr
            for t, c, expr in conn.execute(
                sa.text(
                    "SELECT c.relname, a.attname, pg_get_expr(d.adbin, d.adrelid) "
                    "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                    "JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
                    "WHERE a.attgenerated = 's' AND a.attname = 'geom_3857'"
                )
            )
        }
    assert set(generated) == mercator
    assert all("st_transform(geom, 3857)" in e.lower() for e in generated.values())


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


def test_app_role_set_up_by_several_workers_at_once(db_url) -> None:
    """uvicorn --workers 2 starts two apps at once; both must get the role's URL."""
    import threading

    from gis.security import Keys
    from gis.settings import Settings

    password = Keys.from_settings(Settings()).db_password()
    db.app_role_url(db_url, password)
    role = db.app_login_role(sa.engine.make_url(db_url).database)
    admin = db.create_engine(db_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f"ALTER ROLE {role} WITH NOLOGIN"))
    admin.dispose()
    results: list = []

    def start() -> None:
        try:
            results.append(db.app_role_url(db_url, password))
        except Exception as err:  # noqa: BLE001 - the test reports any failure
            results.append(err)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(isinstance(r, str) for r in results), results
    eng = db.create_engine(results[0], poolclass=sa.NullPool)
    with eng.connect() as conn:
        assert conn.scalar(sa.text("SELECT current_user")) == role
    eng.dispose()
