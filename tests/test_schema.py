"""The migrated schema: revision, typed geometry columns with GiST and validity checks, district keys,
versioned ownership, and the refusal to run on an unknown schema."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from citygrid import deploy
from citygrid.app import create_app
from citygrid.errors import InvalidInput, SchemaMismatch
from citygrid.spatial import db

from .conftest import RUN_ID, engine_on, fresh_database

LARGE_TABLES = ("admin_areas", "grid_versions", "unit_grids", "supervision_grids", "parties", "grid_ownership",
                "people", "person_assignments", "lines", "components", "cases", "case_events", "import_jobs",
                "import_row_reports")


def test_database_is_at_head(bj):
    assert db.current_revision(bj) == db.head_revision()


def test_every_geometry_column_is_typed_indexed_and_checked(bj):
    columns = bj.execute(sa.text(
        "SELECT f_table_name, f_geometry_column, type, srid FROM geometry_columns WHERE f_table_schema = 'public'"
    )).all()
    assert len(columns) >= 8
    for table, column, geom_type, srid in columns:
        assert srid == 4548 and geom_type != "GEOMETRY", (table, column)
        index = bj.execute(sa.text(
            "SELECT count(*) FROM pg_indexes WHERE tablename = :t AND indexdef ILIKE '%USING gist (' || :c || ')%'"
        ), {"t": table, "c": column}).scalar()
        assert index == 1, f"{table}.{column} has no GiST index"
        # Points may be checked for finite coordinates instead (what ST_IsValid decides for a point, cheaper).
        check = bj.execute(sa.text(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = CAST(:t AS regclass) AND contype = 'c' "
            "AND (pg_get_constraintdef(oid) ILIKE '%st_isvalid(' || :c || ')%' OR (:type = 'POINT' AND "
            "pg_get_constraintdef(oid) ILIKE '%st_x(' || :c || ')%' AND pg_get_constraintdef(oid) ILIKE "
            "'%st_y(' || :c || ')%'))"
        ), {"t": table, "c": column, "type": geom_type}).scalar()
        assert check == 1, f"{table}.{column} has no validity check"


@pytest.mark.parametrize("point", ["ST_MakePoint('NaN', 4420000)", "ST_MakePoint(450000, 'Infinity')",
                                   "ST_MakePoint('-Infinity', 4420000)"])
def test_a_component_point_with_a_coordinate_that_is_not_finite_is_refused(bj, point):
    with pytest.raises(sa.exc.IntegrityError, match="components_geom_finite"), bj.begin_nested():
        bj.execute(sa.text(
            f"""INSERT INTO components (district_code, obj_id, scheme, class_code, geom)
                SELECT '110105', '1101050101999999', scheme, code, ST_SetSRID({point}, 4548)
                  FROM taxonomy_classes WHERE kind = 'component' LIMIT 1"""))


def test_components_are_keyed_by_objid_first(bj):
    """An ObjID alone (the component history) uses the key; the partition column is in it, last."""
    key = bj.execute(sa.text("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                             "WHERE conrelid = CAST('components' AS regclass) AND contype = 'p'")).scalar_one()
    assert key == "PRIMARY KEY (obj_id, valid_from, district_code)"


@pytest.mark.parametrize("table", LARGE_TABLES)
def test_large_tables_key_on_district(bj, table):
    key = bj.execute(sa.text(
        """SELECT array_agg(a.attname) FROM pg_index i JOIN pg_attribute a
             ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
            WHERE i.indrelid = CAST(:t AS regclass) AND i.indisprimary"""
    ), {"t": table}).scalar()
    assert "district_code" in key


def test_wrong_geometry_type_refused(bj):
    with pytest.raises(sa.exc.DataError), bj.begin_nested():
        bj.execute(sa.text("""INSERT INTO lines (district_code, kind, geom)
                              VALUES ('110105', 'road', ST_SetSRID(ST_MakePoint(500000, 4400000), 4548))"""))


def test_wrong_srid_refused(bj):
    with pytest.raises(sa.exc.DataError), bj.begin_nested():
        bj.execute(sa.text("""INSERT INTO lines (district_code, kind, geom) VALUES ('110105', 'road',
                              ST_SetSRID(ST_MakeLine(ST_MakePoint(0, 0), ST_MakePoint(1, 1)), 4326))"""))


def test_ownership_ranges_cannot_overlap(bj):
    bj.execute(sa.text("INSERT INTO parties (district_code, kind, code, name) VALUES ('110105', 'unit', 'U1', '甲')"))
    party = bj.execute(sa.text("SELECT party_id FROM parties WHERE code = 'U1'")).scalar()
    insert = sa.text("""INSERT INTO grid_ownership (district_code, grid_kind, grid_code, role, party_id, valid)
                        VALUES ('110105', 'unit', 'G1', 'management', :p, tstzrange(:a, :b))""")
    bj.execute(insert, {"p": party, "a": "2025-01-01", "b": "2025-06-01"})
    bj.execute(insert, {"p": party, "a": "2025-06-01", "b": None})  # adjacent: fine
    with pytest.raises(sa.exc.IntegrityError), bj.begin_nested():
        bj.execute(insert, {"p": party, "a": "2025-03-01", "b": "2025-04-01"})


def test_srid_is_fixed_per_database(beijing_db):
    with pytest.raises(InvalidInput, match="already stores geometry in EPSG:4548"):
        deploy.init_deployment(beijing_db, 4547)


def test_init_rejects_geographic_srid(server_settings):
    with pytest.raises(InvalidInput, match="not projected"):
        deploy.init_deployment(server_settings, 4326)


def test_unknown_schema_revision_stops_start_up(server_settings):
    with (fresh_database(server_settings, f"citygrid_test_rev_{RUN_ID}", 4548) as settings,
          engine_on(settings) as engine):
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = 'ffff_future'"))
        with pytest.raises(SchemaMismatch, match="unknown"):
            create_app({"CITYGRID_SETTINGS": settings})
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM alembic_version"))
        with pytest.raises(SchemaMismatch, match="no citygrid schema"):
            db.check_schema(engine)


def test_migration_downgrade_and_upgrade_round_trip(server_settings):
    from alembic import command

    with (fresh_database(server_settings, f"citygrid_test_down_{RUN_ID}", 4547) as settings,
          engine_on(settings) as engine):
        with engine.begin() as conn:
            command.downgrade(db.alembic_config(conn), "base")
        with engine.connect() as conn:
            assert db.current_revision(conn) is None
        db.upgrade(engine, srid=4547, name="again")
        with engine.connect() as conn:
            assert db.deployment_srid(conn) == 4547 and db.current_revision(conn) == db.head_revision()
