"""Backup and restore of a district: a round trip into a fresh database through the CLI compares every table;
restore over the district itself; damaged, foreign and mismatched files are refused and change nothing."""

from __future__ import annotations

import json
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from citygrid import backup
from citygrid.backup import store as backup_store
from citygrid.cases import service
from citygrid.cases.intake import parse_report
from citygrid.cli import cli
from citygrid.errors import Conflict, InvalidInput, SchemaMismatch
from citygrid.spatial import db
from tests.conftest import RUN_ID, fresh_database

DISTRICT = "410104"
LON, LAT = 113.69, 34.745  # inside Guancheng (WGS84)


def checksums(conn) -> dict[str, tuple[int, str]]:
    """Rows and checksum of the district's rows in every district table."""
    return {t: backup_store.checksum(conn, t, backup_store.stored_columns(conn, t), DISTRICT)
            for t in backup.district_tables(conn)}


def assert_restored(conn, before: dict[str, tuple[int, str]]) -> None:
    """Every table as ``before``, and the audit log as before plus the one row saying who restored it."""
    after = checksums(conn)
    assert {t: v for t, v in after.items() if t != "audit_log"} == {t: v for t, v in before.items()
                                                                     if t != "audit_log"}
    assert after["audit_log"][0] == before["audit_log"][0] + 1
    last = conn.execute(sa.text("SELECT action, object_kind, object_id, actor FROM audit_log WHERE district_code = :d "
                                "ORDER BY audit_id DESC LIMIT 1"), {"d": DISTRICT}).one()
    assert tuple(last)[:3] == ("restore", "district", DISTRICT) and last.actor


def add_activity(conn, case_rules) -> None:
    """Cases with events and a component, so every kind of row is in the backup."""
    for i, code in enumerate(("0102", "0505", "0201")):
        report = parse_report({"lon": LON + i * 0.003, "lat": LAT, "class_code": code,
                               "description": f"备份测试{i}", "source": "supervisor"})
        case, _ = service.submit(conn, case_rules, report)
        service.transition(conn, case_rules, case["case_id"], "accept", actor="a", role="acceptor")
    conn.execute(sa.text(
        """INSERT INTO components (district_code, obj_id, scheme, class_code, obj_name, attrs, geom)
           VALUES (:d, '4101040118000001', 'cjt214', '0118', '路灯 "东"', '{"k": [1, 2]}',
                   ST_Transform(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 4547))"""),
        {"d": DISTRICT, "lon": LON, "lat": LAT})


def test_restore_over_the_district_gives_back_every_row(case_rules, zz, tmp_path):
    add_activity(zz, case_rules)
    before = checksums(zz)
    assert before["cases"][0] == 3 and before["unit_grids"][0] > 3000 and before["components"][0] == 1
    manifest = backup.backup(zz, DISTRICT, tmp_path / "gc.zip")
    assert {t: (v["rows"], v["md5"]) for t, v in manifest["tables"].items()} == before
    zz.execute(sa.text("UPDATE cases SET description = 'changed' WHERE district_code = :d"), {"d": DISTRICT})
    zz.execute(sa.text("DELETE FROM components WHERE district_code = :d"), {"d": DISTRICT})
    with pytest.raises(Conflict, match="--replace"):
        backup.restore(zz, tmp_path / "gc.zip")
    result = backup.restore(zz, tmp_path / "gc.zip", replace=True)
    assert result["rows"] == sum(n for n, _ in before.values())
    assert_restored(zz, before)
    # identity values were kept and the sequences moved past them: a new case gets a new number
    biggest = zz.execute(sa.text("SELECT max(case_id) FROM cases")).scalar_one()
    case, _ = service.submit(zz, case_rules, parse_report({"lon": LON, "lat": LAT + 0.004, "class_code": "0103",
                                                           "description": "新案件", "source": "supervisor"}))
    assert case["case_id"] > biggest


def test_damaged_and_foreign_files_are_refused_and_change_nothing(zz, tmp_path):
    good = tmp_path / "gc.zip"
    backup.backup(zz, DISTRICT, good)
    before = checksums(zz)

    def rewrite(name: str, change) -> Path:
        target = tmp_path / name
        with zipfile.ZipFile(good) as src, zipfile.ZipFile(target, "w") as dst:
            for item in src.infolist():
                dst.writestr(item.filename, change(item.filename, src.read(item.filename)))
        return target

    def manifest_with(**fields):
        return lambda name, data: json.dumps({**json.loads(data), **fields}).encode() if name == "manifest.json" \
            else data

    truncated = rewrite("truncated.zip", lambda name, data: data[: len(data) // 2].rsplit(b"\n", 1)[0] + b"\n"
                        if name == "unit_grids.copy" else data)
    cases = [
        (truncated, InvalidInput, "damaged"),
        (rewrite("old.zip", manifest_with(schema_revision="0001")), SchemaMismatch, "schema revision 0001"),
        (rewrite("srid.zip", manifest_with(srid=4548)), InvalidInput, "EPSG:4548"),
        (rewrite("format.zip", manifest_with(format="other/9")), InvalidInput, "unknown backup format"),
    ]
    not_zip = tmp_path / "not.zip"
    not_zip.write_text("hello")
    cases.append((not_zip, InvalidInput, "not a citygrid district backup"))
    for path, error, needle in cases:
        savepoint = zz.begin_nested()
        with pytest.raises(error, match=needle):
            backup.restore(zz, path, replace=True)
        savepoint.rollback()
        assert checksums(zz) == before, path.name


def test_cli_round_trip_into_a_fresh_database(case_rules, zhengzhou_db, server_settings, tmp_path):
    source_engine = db.make_engine(db.database_url(zhengzhou_db))
    try:
        with source_engine.begin() as conn:
            add_activity(conn, case_rules)
        file = tmp_path / "guancheng.zip"
        made = CliRunner().invoke(cli, ["--database", zhengzhou_db.database, "backup", DISTRICT, "-o", str(file)])
        assert made.exit_code == 0, made.output
        assert len(json.loads(made.output)["sha256"]) == 64
        again = CliRunner().invoke(cli, ["--database", zhengzhou_db.database, "backup", DISTRICT, "-o", str(file)])
        assert again.exit_code == 2 and "exists" in again.output  # never overwrites
        refused = CliRunner().invoke(cli, ["--database", zhengzhou_db.database, "restore", str(file)])
        assert refused.exit_code == 4 and "--replace" in refused.output
        with fresh_database(replace(server_settings, database=None), f"citygrid_test_restore_{RUN_ID}", 4547,
                            "restore test") as target:
            done = CliRunner().invoke(cli, ["--database", target.database, "restore", str(file)])
            assert done.exit_code == 0, done.output
            target_engine = db.make_engine(db.database_url(target))
            try:
                with source_engine.connect() as a, target_engine.connect() as b:
                    assert_restored(b, checksums(a))
            finally:
                target_engine.dispose()
            wrong = CliRunner().invoke(cli, ["--database", target.database, "restore", str(tmp_path / "none.zip")])
            assert wrong.exit_code == 2
    finally:
        with source_engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM cases WHERE district_code = :d"), {"d": DISTRICT})
            conn.execute(sa.text("DELETE FROM components WHERE district_code = :d"), {"d": DISTRICT})
        source_engine.dispose()


def test_scratch_tables_and_caches_stay_out_of_a_backup(zz):
    """A census import's leftover load table or replaced partition, and the stored cell tables, are not the
    district's record: a backup taken while one exists must still restore into a database without it."""
    from citygrid.components_survey.store import LOAD_PREFIX, RETIRED_PREFIX

    for prefix in (LOAD_PREFIX, RETIRED_PREFIX):
        zz.execute(sa.text(f"CREATE TABLE {prefix}00000000000000ff (district_code text)"))
    tables = backup.district_tables(zz)
    assert "components" in tables and "grid_cell_tables" not in tables
    assert not [t for t in tables if t.startswith((LOAD_PREFIX, RETIRED_PREFIX))]
