"""Bulk import of historic cases (row report, mapping, threshold) and the seeded synthetic history."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from citygrid.cases import synthetic
from citygrid.cases.history import import_cases, load_mapping, report_csv
from citygrid.cli import cli
from citygrid.errors import InvalidInput

CSV = """案件编号,经度,纬度,小类代码,类型,问题描述,上报时间,状态
H-1,116.48,39.93,0102,event,暴露垃圾,2025-03-01T09:00:00+08:00,closed
H-2,116.47,39.95,0201,event,小广告,2025-03-02T10:00:00+08:00,evaluated
H-3,116.2,39.9,0102,event,区外,2025-03-02T10:00:00+08:00,closed
H-4,116.48,39.93,0999,event,未知类,2025-03-02T10:00:00+08:00,closed
H-5,abc,39.93,0102,event,坏坐标,2025-03-02T10:00:00+08:00,closed
H-6,116.48,39.93,0102,event,坏状态,2025-03-02T10:00:00+08:00,lost
H-7,116.48,39.93,,,没有类别的历史案件,2025-03-02T10:00:00+08:00,closed
"""


def write(tmp_path, text, name="h.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_import_reports_every_bad_row_by_line(bj, tmp_path):
    result = import_cases(bj, write(tmp_path, CSV, encoding="gb18030"), max_bad_ratio=1.0)
    assert result.imported == 2 and result.rows == 7
    reasons = {(p["line"], p["field"]): p["reason"] for p in result.problems}
    # How far outside, and which edge is nearest (Chaoyang's west edge runs near 116.38°E).
    assert reasons[(4, "lon")].startswith("the point lies 16,") and "outside district 110105" in reasons[(4, "lon")]
    assert "beyond its west edge" in reasons[(4, "lon")] and "nearest boundary point 116.3" in reasons[(4, "lon")]
    assert "unknown event class 0999" in reasons[(5, "class_code")]
    assert "number" in reasons[(6, "lon")]
    assert "'lost' is not one of ours" in reasons[(7, "status")]
    assert reasons[(8, "class_code")] == "required in a bulk import"
    stored = bj.execute(sa.text("SELECT status, unit_grid_code IS NOT NULL, reported_at::date::text FROM cases "
                                "WHERE idempotency_key = 'H-2'")).one()
    assert stored == ("evaluated", True, "2025-03-02")
    assert bj.execute(sa.text("SELECT count(*) FROM case_events e JOIN cases c USING (district_code, case_id) "
                              "WHERE c.idempotency_key IN ('H-1', 'H-2') AND e.action = 'import'")).scalar() == 2


def test_import_threshold_and_reimport(bj, tmp_path):
    assert import_cases(bj, write(tmp_path, CSV), max_bad_ratio=0.1).state == "rejected"
    assert bj.execute(sa.text("SELECT count(*) FROM cases WHERE idempotency_key LIKE 'H-%'")).scalar() == 0
    first = import_cases(bj, write(tmp_path, CSV), max_bad_ratio=1.0)
    again = import_cases(bj, write(tmp_path, CSV), max_bad_ratio=1.0)
    assert (first.imported, again.imported) == (2, 0)  # the case numbers are idempotency keys


def test_mapping_file(bj, tmp_path):
    text = "no,x,y,cls,what\nM-1,116.48,39.93,0102,垃圾\n"
    (tmp_path / "m.yaml").write_text("columns: {idempotency_key: 'no', lon: x, lat: y, class_code: cls, "
                                     "description: what}\n", encoding="utf-8")
    result = import_cases(bj, write(tmp_path, text), mapping=load_mapping(tmp_path / "m.yaml"))
    assert result.imported == 1
    (tmp_path / "bad.yaml").write_text("columns: {colour: x}\n")
    with pytest.raises(InvalidInput, match="mapping"):
        load_mapping(tmp_path / "bad.yaml")
    (tmp_path / "bool.yaml").write_text("columns: {idempotency_key: no}\n")
    with pytest.raises(InvalidInput, match="quote them"):
        load_mapping(tmp_path / "bool.yaml")
    with pytest.raises(InvalidInput, match="not in the file"):
        import_cases(bj, write(tmp_path, text), mapping={"lon": "nope"})


def test_synthetic_history_is_plausible_and_labelled(bj):
    result = synthetic.generate(bj, "110105", 600, seed=7)
    assert result.imported == 600 and not result.problems
    rows = bj.execute(sa.text("""SELECT synthetic, description, status, kind || '/' || class_code, unit_grid_code,
                                        extract(month FROM reported_at) FROM cases WHERE synthetic""")).all()
    assert len(rows) == 600 and all(r[0] and r[1].endswith("（合成）") and r[4] for r in rows)
    classes = [r[3] for r in rows]
    assert classes.count("event/0102") > classes.count("event/0101")  # exposed garbage is the most common
    again = synthetic.generate(bj, "110105", 600, seed=7)
    assert again.imported == 0  # same seed, same keys: nothing new


def test_cli_import_and_escalate_overdue(beijing_db, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["--database", beijing_db.database, "cases", "import", str(write(tmp_path, CSV)),
                                 "--max-bad-ratio", "0.1"])
    assert result.exit_code == 2 and json.loads(result.output)["state"] == "rejected"
    escalated = runner.invoke(cli, ["--database", beijing_db.database, "cases", "escalate-overdue"])
    assert escalated.exit_code == 0 and "escalated" in json.loads(escalated.output)


# ------------------------------------------------------------------------------------------ #19: Open311 after import
def test_open311_and_the_api_answer_objects_after_a_bulk_import(bj, client, anonymous_client, tmp_path):
    """Defect of #19: the bulk import stored ``attrs`` as a JSON string, and Open311 answered 500
    (``'str' object has no attribute 'get'``) for the imported requests."""
    text = ("case_no,lon,lat,class_code,description,reported_at,status,source,address\n"
            "O-1,116.48,39.93,0102,暴露垃圾,2025-03-01T09:00:00+08:00,closed,ONLINE,朝阳路1号\n"
            "O-2,116.47,39.95,0201,小广告,2025-03-02T10:00:00+08:00,Dispatched,Online,朝阳路2号\n")
    (tmp_path / "m.yaml").write_text("values: {source: {online: open311}}\n", encoding="utf-8")
    result = import_cases(bj, write(tmp_path, text), mapping=load_mapping(tmp_path / "m.yaml"))
    assert (result.imported, result.problems) == (2, [])
    ids = [r[0] for r in bj.execute(sa.text("SELECT case_id FROM cases WHERE idempotency_key IN ('O-1', 'O-2') "
                                            "ORDER BY idempotency_key"))]
    assert bj.execute(sa.text("SELECT array_agg(DISTINCT jsonb_typeof(attrs)) FROM cases "
                              "WHERE case_id = ANY(:ids)"), {"ids": ids}).scalar() == ["object"]
    listed = anonymous_client.get("/open311/v2/requests.json?limit=1000")
    assert listed.status_code == 200, listed.get_data(as_text=True)[:300]
    mine = {r["service_request_id"]: r for r in listed.get_json() if r["service_request_id"] in map(str, ids)}
    assert {r["address"] for r in mine.values()} == {"朝阳路1号", "朝阳路2号"}
    assert {r["status"] for r in mine.values()} == {"closed", "open"}
    for case_id in ids:
        one = anonymous_client.get(f"/open311/v2/requests/{case_id}.json")
        assert one.status_code == 200 and one.get_json()[0]["address"].startswith("朝阳路")
        view = client.get(f"/api/v1/cases/{case_id}").get_json()
        assert isinstance(view["attrs"], dict) and view["attrs"]["imported"] is True
    cases = client.get("/api/v1/cases?limit=1000").get_json()["cases"]
    assert all(isinstance(c["attrs"], dict) for c in cases if c["case_id"] in ids) and len(
        [c for c in cases if c["case_id"] in ids]) == 2


# ------------------------------------------------------------------------------------------ #19: values and columns
SOURCE_CSV = ("case_no,lon,lat,class_code,reported_at,status,source\n"
              "S-1,116.48,39.93,0102,2025-03-01T09:00:00+08:00,Closed,PHONE\n"
              "S-2,116.47,39.95,0201,2025-03-02T10:00:00+08:00,CLOSED,Mobile\n")


def test_a_source_column_of_channel_names_is_never_forced(bj, tmp_path):
    path = write(tmp_path, SOURCE_CSV)
    refused = import_cases(bj, path, max_bad_ratio=1.0)
    assert refused.imported == 0
    reasons = {(p["line"], p["field"]): p["reason"] for p in refused.problems}
    assert "'PHONE' is not one of ours" in reasons[(2, "source")]
    assert "values: source:" in reasons[(2, "source")] and "--ignore source" in reasons[(2, "source")]
    ignored = import_cases(bj, path, ignore=["source"])
    assert ignored.imported == 2
    assert bj.execute(sa.text("SELECT array_agg(DISTINCT source || '/' || status) FROM cases "
                              "WHERE idempotency_key LIKE 'S-%'")).scalar() == ["import/closed"]


def test_values_map_case_insensitively_by_default(bj, tmp_path):
    (tmp_path / "m.yaml").write_text("values:\n  source: {phone: hotline, MOBILE: citizen}\n", encoding="utf-8")
    result = import_cases(bj, write(tmp_path, SOURCE_CSV), mapping=load_mapping(tmp_path / "m.yaml"))
    assert (result.imported, result.problems) == (2, [])
    rows = dict(bj.execute(sa.text("SELECT idempotency_key, source || '/' || status FROM cases "
                                   "WHERE idempotency_key LIKE 'S-%'")).all())
    assert rows == {"S-1": "hotline/closed", "S-2": "citizen/closed"}  # Closed and CLOSED are closed


def test_case_sensitive_values_are_exact(bj, tmp_path):
    (tmp_path / "m.yaml").write_text("case_sensitive: true\nvalues: {source: {PHONE: hotline, Mobile: citizen},"
                                     " status: {Closed: closed}}\n", encoding="utf-8")
    result = import_cases(bj, write(tmp_path, SOURCE_CSV), mapping=load_mapping(tmp_path / "m.yaml"),
                          max_bad_ratio=1.0)
    assert result.imported == 1
    assert [(p["line"], p["field"]) for p in result.problems] == [(3, "status")]
    assert "'CLOSED' is not one of ours" in result.problems[0]["reason"]


def test_class_values_set_and_hostile_values(bj, tmp_path):
    text = ("no,lon,lat,type,when,status\n"
            "V-1,116.48,39.93,Dirty Condition,2025-03-01T09:00:00+08:00,closed\n"
            "V-2,116.48,39.93,Noise,2025-03-01T09:00:00+08:00,closed\n"
            "V-3,116.48,39.93,dirty condition,2025-03-01T09:00:00+08:00,clo\x07sed\n"
            "V-4,1e400,39.93,Dirty Condition,2025-03-01T09:00:00+08:00,closed\n"
            f"V-5,116.48,39.93,Dirty Condition,2025-03-01T09:00:00+08:00,{'x' * 100_000}\n")
    (tmp_path / "m.yaml").write_text(
        "columns: {idempotency_key: 'no', class_code: type, reported_at: when}\n"
        "values: {class_code: {Dirty Condition: '0102'}}\nset: {kind: event, source: hotline}\n", encoding="utf-8")
    result = import_cases(bj, write(tmp_path, text), mapping=load_mapping(tmp_path / "m.yaml"), max_bad_ratio=1.0)
    assert result.imported == 1
    reasons = {(p["line"], p["field"]): p["reason"] for p in result.problems}
    assert "unknown event class Noise" in reasons[(3, "class_code")]
    assert "values: class_code" in reasons[(3, "class_code")]
    assert "'clo\\x07sed'" in reasons[(4, "status")]  # shown escaped, never raw
    assert "finite" in reasons[(5, "lon")]
    assert len(reasons[(6, "status")]) < 400 and "x" * 100 not in reasons[(6, "status")]  # cut in the message
    assert bj.execute(sa.text("SELECT source || '/' || class_code FROM cases WHERE idempotency_key = 'V-1'")
                      ).scalar() == "hotline/0102"


@pytest.mark.parametrize(("yaml_text", "message"), [
    ("colums: {lon: x}\n", "unknown key(s) 'colums'; known keys: columns, values, set, ignore, case_sensitive, "
                           "time_format"),
    ("columns: {colour: x}\n", "known fields: lon, lat"),
    ("values: {status: {Closed: shut}}\n", "not one of reported"),
    ("values: {description: {a: b}}\n", "values can be mapped for status"),
    ("values: {status: {Closed: closed, CLOSED: rejected}}\n", "mapped twice"),
    ("set: {class_code: 0102}\n", "quote them"),
    ("columns: {source: src}\nignore: [source]\n", "both ignored and mapped"),
    ("ignore: [colour]\n", "'ignore' lists fields"),
    ("case_sensitive: maybe\n", "true or false"),
    ("time_format: '%Q'\n", "not a strptime format"),
    ("time_format: 'no percent'\n", "not a strptime format"),
    ("time_format: '%Y-%m-%d %H:%M %Z'\n", "%Z"),  # strptime reads only the machine's own zone names
    ("a: &x [1]\nb: *x\n", "aliases"),
    ("columns: {lon: \"x\\0\"}\n", "control character"),
    ("- just a list\n", "must be a mapping"),
])
def test_bad_mapping_files_say_what_is_wrong(tmp_path, yaml_text, message):
    (tmp_path / "m.yaml").write_text(yaml_text, encoding="utf-8")
    with pytest.raises(InvalidInput) as caught:
        load_mapping(tmp_path / "m.yaml")
    assert message in caught.value.message


# ------------------------------------------------------------------------------------------ #19: keys
def test_without_a_key_column_keys_come_from_the_rows(bj, tmp_path):
    text = ("lon,lat,class_code,reported_at\n"
            "116.48,39.93,0102,2025-03-01T09:00:00+08:00\n"
            "116.47,39.95,0201,2025-03-02T10:00:00+08:00\n")
    first = import_cases(bj, write(tmp_path, text))
    assert first.imported == 2 and first.key.startswith("derived from each row's content")
    again = import_cases(bj, write(tmp_path, text, name="renamed.csv"))
    assert (again.imported, again.already_stored) == (0, 2)  # the same rows add nothing
    changed = import_cases(bj, write(tmp_path, text.replace("116.47", "116.46")))
    assert changed.imported == 1
    keyed = import_cases(bj, write(tmp_path, "n,lon,lat,class_code\nK-9,116.48,39.93,0102\n,116.48,39.94,0102\n"),
                         key_field="n")
    assert keyed.imported == 2 and keyed.key == "column 'n'; derived from the row's content where empty (1 rows)"
    twice = import_cases(bj, write(tmp_path, "n,lon,lat,class_code\nK-7,116.48,39.93,0102\nK-7,116.47,39.93,0102\n"
                                             "K-7,116.48,39.93,0102\n"), key_field="n", max_bad_ratio=1.0)
    assert twice.imported == 1 and [(p["line"], p["field"]) for p in twice.problems] == [
        (3, "idempotency_key"), (4, "idempotency_key")] and "the key of line 2 too" in twice.problems[0]["reason"]
    repeated = import_cases(bj, write(tmp_path, text + text.splitlines(keepends=True)[1]))  # a repeated row
    assert (repeated.imported, repeated.already_stored, repeated.problems) == (0, 3, [])
    with pytest.raises(InvalidInput, match="'nope' not in the file; its columns are 'n', 'lon'"):
        import_cases(bj, write(tmp_path, "n,lon,lat,class_code\nK-9,116.48,39.93,0102\n"), key_field="nope")
    with pytest.raises(InvalidInput, match="--ignore 'colour'"):
        import_cases(bj, write(tmp_path, text), ignore=["colour"])


# ------------------------------------------------------------------------------------------ #19: history
def test_dated_steps_import_as_events(bj, tmp_path):
    text = ("case_no,lon,lat,class_code,reported_at,dispatched_at,closed_at\n"
            "E-1,116.48,39.93,0102,2025-03-01T09:00:00+08:00,2025-03-01T10:00:00+08:00,2025-03-02T09:00:00+08:00\n"
            "E-2,116.48,39.93,0102,2025-03-01T09:00:00+08:00,,2025-02-28T09:00:00+08:00\n"
            "E-3,116.48,39.93,0102,2025-03-01T09:00:00+08:00,2025-03-03T09:00:00+08:00,2025-03-02T09:00:00+08:00\n"
            "E-4,116.48,39.93,0102,2025-03-01T09:00:00+08:00,2125-03-01T09:00:00+08:00,\n"
            "E-5,116.48,39.93,0102,2025-03-01T09:00:00+08:00,yesterday,\n"
            "E-6,116.48,39.93,0102,,,2025-03-02T09:00:00+08:00\n"
            "E-7,116.48,39.93,0102,2025-03-01T09:00:00+08:00,2025-03-01T10:00:00+08:00,\n")
    result = import_cases(bj, write(tmp_path, text), max_bad_ratio=1.0)
    assert result.imported == 2 and result.events == 3
    reasons = {(p["line"], p["field"]): p["reason"] for p in result.problems}
    assert "is before the report (2025-03-01T09:00:00+08:00)" in reasons[(3, "closed_at")]
    assert "is before dispatched_at" in reasons[(4, "closed_at")]
    assert "in the future" in reasons[(5, "dispatched_at")]
    assert "'yesterday' is not a time in ISO 8601" in reasons[(6, "dispatched_at")]
    assert "needs the report time" in reasons[(7, "closed_at")]
    events = bj.execute(sa.text(
        """SELECT c.idempotency_key, c.status, e.seq, e.action, e.from_status, e.to_status,
                  to_char(e.at AT TIME ZONE 'UTC', 'MM-DD HH24:MI')
             FROM case_events e JOIN cases c USING (district_code, case_id)
            WHERE c.idempotency_key IN ('E-1', 'E-7') ORDER BY 1, 3""")).all()
    assert [tuple(e) for e in events] == [
        ("E-1", "closed", 1, "import", None, "reported", "03-01 01:00"),
        ("E-1", "closed", 2, "dispatch", "reported", "dispatched", "03-01 02:00"),
        ("E-1", "closed", 3, "close", "dispatched", "closed", "03-02 01:00"),
        ("E-7", "dispatched", 1, "import", None, "reported", "03-01 01:00"),  # no status: after the last step
        ("E-7", "dispatched", 2, "dispatch", "reported", "dispatched", "03-01 02:00"),
    ]


def test_report_csv_holds_every_problem(beijing_db, tmp_path):
    rows = "".join(f"B-{i},116.48,39.93,0999,2025-03-01T09:00:00+08:00\n" for i in range(150))
    path = write(tmp_path, "case_no,lon,lat,class_code,reported_at\n" + rows + "B-x,-73.9,40.7,0102,\n")
    report = tmp_path / "report.csv"
    result = CliRunner().invoke(cli, ["--database", beijing_db.database, "cases", "import", str(path),
                                      "--report", str(report)])
    assert result.exit_code == 2, result.output
    printed = json.loads(result.output)
    assert (printed["state"], printed["problem_count"], len(printed["problems"])) == ("rejected", 151, 100)
    assert printed["key"] == "column 'case_no'"
    with report.open(encoding="utf-8") as f:
        written = list(csv.DictReader(f))
    assert len(written) == 151 and written[0]["line"] == "2" and "unknown event class 0999" in written[0]["reason"]
    far = written[-1]
    assert far["line"] == "152" and float(far["outside_m"]) > 10_000_000 and far["district"] == "110105"
    assert far["nearest_edge"] in ("north", "north-east", "east", "south-east", "south", "south-west", "west",
                                   "north-west") and -180 <= float(far["nearest_lon"]) <= 180
    unwritable = CliRunner().invoke(cli, ["--database", beijing_db.database, "cases", "import", str(path),
                                          "--report", str(tmp_path / "no" / "such" / "dir.csv")])
    assert unwritable.exit_code == 2 and "error: --report" in unwritable.output


def test_cli_ignore_and_key_field_reach_the_import(beijing_db, tmp_path):
    path = write(tmp_path, SOURCE_CSV.replace("case_no", "number") + "S-3,116.48,39.93,0999,,closed,PHONE\n")
    run = CliRunner().invoke(cli, ["--database", beijing_db.database, "cases", "import", str(path), "--ignore",
                                   "source", "--key-field", "number", "--max-bad-ratio", "0"])
    printed = json.loads(run.output)
    assert run.exit_code == 2 and printed["key"] == "column 'number'"
    assert [(p["line"], p["field"]) for p in printed["problems"]] == [(4, "class_code")]  # no source problems
    bad = CliRunner().invoke(cli, ["--database", beijing_db.database, "cases", "import", str(path), "--ignore",
                                   "colour"])
    assert bad.exit_code == 2 and "error: --ignore 'colour'" in bad.output


def test_report_cells_never_run_as_formulas():
    text = report_csv([{"line": 2, "field": "x", "reason": "=HYPERLINK(\"http://evil\")"},
                       {"line": 3, "field": "lon", "reason": "ok", "nearest_lon": "-73.9"}])
    assert "'=HYPERLINK" in text and ",-73.9," in text


def test_help_documents_columns_values_and_mapping_keys():
    shown = CliRunner().invoke(cli, ["cases", "import", "--help"]).output
    for word in ("closed_at", "dispatched_at", "idempotency_key", "--key-field", "--report", "--ignore", "values:",
                 "set:", "ignore:", "case_sensitive:", "time_format:", "fed_back", "hotline"):
        assert word in shown, word


# ------------------------------------------------------------------------------------------ #19: a city outside China
NYC_311 = (  # NYC 311's own columns (Descriptor and Agency left out), times in its format, its vocabularies
    "Unique Key,Created Date,Closed Date,Complaint Type,Status,Open Channel Type,Incident Address,Latitude,Longitude\n"
    "59893911,01/15/2024 09:30:00 AM,01/16/2024 02:05:00 PM,Dirty Condition,Closed,PHONE,100 FLATBUSH AVENUE,"
    "40.6862,-73.9776\n"
    "59893912,07/04/2024 11:00:00 PM,,Illegal Posting,In Progress,ONLINE,200 ATLANTIC AVENUE,40.6880,-73.9900\n"
    "59893913,03/01/2024 08:00:00 AM,02/28/2024 08:00:00 AM,Dirty Condition,CLOSED,MOBILE,300 FULTON STREET,"
    "40.6900,-73.9800\n"
    "59893914,03/02/2024 08:00:00 AM,,Dirty Condition,Open,CHAT,400 COURT STREET,40.6800,-73.9950\n"
    "59893915,03/03/2024 08:00:00 AM,,Dirty Condition,Open,PHONE,1 MAIN STREET QUEENS,40.7600,-73.8300\n"
    "59893916,2024-03-03,,Dirty Condition,Open,PHONE,2 COURT STREET,40.6800,-73.9950\n"
)
NYC_MAPPING = """\
columns:
  idempotency_key: Unique Key
  reported_at: Created Date
  closed_at: Closed Date
  class_code: Complaint Type
  status: Status
  source: Open Channel Type
  address: Incident Address
values:
  class_code: {Dirty Condition: "0102", Illegal Posting: "0201"}
  status: {Open: accepted, In Progress: dispatched}
  source: {phone: hotline, online: open311, mobile: open311}
set: {kind: event}
time_format: "%m/%d/%Y %I:%M:%S %p"
"""


@pytest.fixture(scope="module")
def new_york(server_settings):
    """A Brooklyn deployment (EPSG:32618, America/New_York, alphanumeric codes) with a box for a district."""
    from dataclasses import replace

    from citygrid import deploy
    from citygrid.districts import import_district
    from citygrid.loaders.vector import read_vector
    from citygrid.spatial import db

    settings = replace(server_settings, database=f"citygrid_test_nyc_{os.getpid()}")
    db.drop_database(settings)
    deploy.init_deployment(settings, 32618, "New York test", code_scheme="alnum", timezone="America/New_York")
    engine = db.make_engine(db.database_url(settings))
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "brooklyn.geojson"
            path.write_text(json.dumps({"type": "FeatureCollection", "features": [{
                "type": "Feature", "properties": {},
                "geometry": {"type": "Polygon", "coordinates": [[[-74.04, 40.57], [-73.86, 40.57], [-73.86, 40.74],
                                                                 [-74.04, 40.74], [-74.04, 40.57]]]}}]}))
            with engine.begin() as conn:
                import_district(conn, read_vector(path), code="NYC-BK", name="Brooklyn")
        yield engine
    finally:
        engine.dispose()
        db.drop_database(settings)


def test_a_311_year_of_a_city_outside_china(new_york, tmp_path):
    from citygrid.spatial import db

    (tmp_path / "nyc.yaml").write_text(NYC_MAPPING, encoding="utf-8")
    mapping = load_mapping(tmp_path / "nyc.yaml")
    with db.rolled_back(new_york) as conn:
        result = import_cases(conn, write(tmp_path, NYC_311), mapping=mapping, max_bad_ratio=1.0)
        assert (result.imported, result.events) == (2, 1) and result.key == "column 'Unique Key'"
        reasons = {(p["line"], p["field"]): p["reason"] for p in result.problems}
        assert "is before the report (2024-03-01T08:00:00-05:00)" in reasons[(4, "closed_at")]
        assert "'CHAT' is not one of ours" in reasons[(5, "source")]
        outside = next(p for p in result.problems if p["line"] == 6)
        assert outside["district"] == "NYC-BK" and outside["nearest_edge"] == "north-east"
        assert 3_000 < outside["outside_m"] < 3_800 and "m outside district NYC-BK" in outside["reason"]
        assert "'2024-03-03' is not a time in the time_format" in reasons[(7, "reported_at")]
        rows = conn.execute(sa.text(
            """SELECT idempotency_key, status, source, class_code, unit_grid_code IS NULL,
                      to_char(reported_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), attrs->>'address'
                 FROM cases ORDER BY 1""")).all()
        assert [tuple(r) for r in rows] == [
            ("59893911", "closed", "hotline", "0102", True, "2024-01-15 14:30", "100 FLATBUSH AVENUE"),  # EST
            ("59893912", "dispatched", "open311", "0201", True, "2024-07-05 03:00", "200 ATLANTIC AVENUE"),  # EDT
        ]
        closed = conn.execute(sa.text(
            """SELECT e.action, to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') FROM case_events e
                 JOIN cases c USING (district_code, case_id) WHERE c.idempotency_key = '59893911'
                ORDER BY e.seq""")).all()
        assert [tuple(e) for e in closed] == [("import", "2024-01-15 14:30"), ("close", "2024-01-16 19:05")]
        again = import_cases(conn, write(tmp_path, NYC_311), mapping=mapping, max_bad_ratio=1.0)
        assert (again.imported, again.already_stored) == (0, 2)


def test_steps_in_the_repeated_hour_of_a_daylight_saving_change_compare_as_instants(new_york, tmp_path):
    """New York's clocks go back at 02:00 on 1 November 2026, so 01:00–01:59 happens twice. A naive time in it
    is read as the first (EDT, -04:00), a naive time in the spring gap (02:30 on 8 March) with the offset
    before the change (EST, -05:00: 07:30 UTC, shown as 03:30 EDT). A step at 01:10 EST comes 30 minutes after
    a report at 01:40 EDT: it used to be refused as 'before the report', because Python compares datetimes of
    one zone by their wall-clock times."""
    from citygrid.spatial import db

    text = ("Unique Key,Latitude,Longitude,class_code,Created Date,closed_at\n"
            "DST-1,40.65,-73.95,0102,2026-11-01T01:40:00,2026-11-01T01:10:00-05:00\n"
            "DST-2,40.66,-73.95,0102,2026-03-08T02:30:00,2026-03-08T03:40:00\n"
            "DST-3,40.67,-73.95,0102,2026-11-01T01:40:00-05:00,2026-11-01T01:50:00\n")
    with db.rolled_back(new_york) as conn:
        result = import_cases(conn, write(tmp_path, text), max_bad_ratio=1.0)
        reasons = {(p["line"], p["field"]): p["reason"] for p in result.problems}
        assert (result.imported, result.events) == (2, 2), result.problems
        assert "is before the report (2026-11-01T01:40:00-05:00)" in reasons[(4, "closed_at")]  # 01:50 EDT is
        rows = conn.execute(sa.text(  # earlier than 01:40 EST, though its wall-clock time is later
            """SELECT c.idempotency_key, to_char(c.reported_at AT TIME ZONE 'UTC', 'HH24:MI'),
                      to_char(e.at AT TIME ZONE 'UTC', 'HH24:MI')
                 FROM cases c JOIN case_events e USING (district_code, case_id)
                WHERE e.action = 'close' ORDER BY 1""")).all()
        assert [tuple(r) for r in rows] == [("DST-1", "05:40", "06:10"), ("DST-2", "07:30", "07:40")]


# ------------------------------------------------------------------------------------------ #19 review: hostile files
def test_a_european_export_is_read_in_the_encoding_given_never_guessed_as_chinese(bj, tmp_path):
    """A Latin-1/cp1252 export (Excel's default in western Europe) decodes as GB18030 wherever an accented
    letter precedes a letter: 'Müller Straße' became 'M黮ler Stra遝' without a word. --encoding reads it."""
    text = "case_no,lon,lat,class_code,description\nEU-1,116.48,39.93,0102,Müller Straße: Crème brûlée\n"
    path = write(tmp_path, text, encoding="cp1252")
    with pytest.raises(InvalidInput, match="--encoding") as refused:
        import_cases(bj, path)
    assert refused.value.field == "encoding"
    assert import_cases(bj, path, encoding="cp1252").imported == 1
    stored = bj.execute(sa.text("SELECT description FROM cases WHERE idempotency_key = 'EU-1'")).scalar()
    assert stored == "Müller Straße: Crème brûlée"
    assert import_cases(bj, write(tmp_path, CSV, encoding="gb18030"), max_bad_ratio=1.0).imported == 2  # still read
    for codec in ("klingon", "rot13", "zlib"):  # not text encodings: a LookupError traceback before
        with pytest.raises(InvalidInput, match=f"unknown encoding '{codec}'"):
            import_cases(bj, path, encoding=codec)
    for codec in ("utf-16", "punycode"):  # a codec's own UnicodeError (no BOM, a bad code point)
        with pytest.raises(InvalidInput, match=f"not {codec} text"):
            import_cases(bj, path, encoding=codec)
    result = CliRunner().invoke(cli, ["cases", "import", str(path), "--encoding", "cp1252", "--help"])
    assert "--encoding" in result.output


def test_files_whose_shape_lies_are_refused(bj, tmp_path):
    # Two columns of one name: pandas used to rename the second 'lon.1' and read the first silently.
    with pytest.raises(InvalidInput, match="column 'lon' appears twice"):
        import_cases(bj, write(tmp_path, "case_no,lon,lon,lat,class_code\nD-1,116.48,0,39.93,0102\n"))
    with pytest.raises(InvalidInput, match="not a file"):  # a folder was an IsADirectoryError traceback
        import_cases(bj, tmp_path)
    with pytest.raises(InvalidInput, match="is not UTF-8"):  # a zip named .csv
        import_cases(bj, write(tmp_path, "PK\x03\x04\x14\x00\x00\x00\x08\x00\xff\xfe\x00\x81", name="z.csv",
                               encoding="latin-1"))


def test_report_cells_starting_with_a_minus_are_quoted_unless_numbers():
    text = report_csv([{"line": 2, "field": "x", "reason": "-1+cmd|' /C calc'!A0"},
                       {"line": 3, "field": "lon", "reason": "-2e3", "nearest_lon": "-73.9"}])
    assert "'-1+cmd" in text and ",-2e3," in text and ",-73.9," in text


def test_a_time_format_may_carry_the_offset(new_york, tmp_path):
    """Exports that write the offset ('01/15/2024 09:30:00 AM -0500') need %z; it was refused as 'not a
    strptime format' because the format was tried on a time without a zone."""
    from citygrid.spatial import db

    (tmp_path / "m.yaml").write_text("time_format: '%m/%d/%Y %I:%M:%S %p %z'\n", encoding="utf-8")
    mapping = load_mapping(tmp_path / "m.yaml")
    text = ("Unique Key,Latitude,Longitude,class_code,Created Date\n"
            "Z-1,40.65,-73.95,0102,11/01/2026 01:30:00 AM -0500\n")
    with db.rolled_back(new_york) as conn:
        assert import_cases(conn, write(tmp_path, text), mapping=mapping).imported == 1
        stored = conn.execute(sa.text("SELECT to_char(reported_at AT TIME ZONE 'UTC', 'HH24:MI') FROM cases")).scalar()
        assert stored == "06:30"  # the second 01:30 of that night, as the offset says
