"""Exports of every collection (#25): ``citygrid export`` and ``GET /api/v1/exports/<kind>``, read back with GDAL
(``ogrinfo`` of gdal-bin, and pyogrio) — counts equal to the database's, Shapefile field names within 10
characters and mapped, the ``.cpg``, a GBK round trip and a GBK refusal that leaves nothing behind, the
GeoPackage's ``layer_styles``, the output CRS, and who may export what over HTTP."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pyogrio
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from citygrid.cli import cli
from citygrid.errors import Forbidden, InvalidInput
from citygrid.interop import exports, queries
from citygrid.interop.collections import KINDS
from tests.conftest import assert_error, submitted_case, team_of

LON, LAT = 116.48, 39.93
DISTRICT = "110105"


def add_component(bj, obj_id: str, name: str, lon: float = LON, lat: float = LAT,
                  valid_from: str = "2025-06-01", valid_to: str | None = None) -> None:
    bj.execute(sa.text(
        """INSERT INTO components (district_code, obj_id, valid_from, valid_to, scheme, class_code, obj_name, geom)
           VALUES ('110105', :o, :f, CAST(:t AS timestamptz), 'cjt214', '0118', :n,
                   ST_Transform(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 4548))"""),
        {"o": obj_id, "n": name, "f": valid_from, "t": valid_to, "lon": lon, "lat": lat})


def census(bj, names: list[str]) -> None:
    """Components named ``names`` in a row east of the test point (ObjIDs 1101050118880001…)."""
    for i, name in enumerate(names):
        add_component(bj, f"110105011888{i + 1:04d}", name, lon=LON + i * 0.0003)


def db_count(bj, kind: str) -> int:
    """The database's own count of what an export of ``kind`` in 110105 holds (current version / census)."""
    sql = {"unit-grids": "SELECT count(*) FROM unit_grids WHERE district_code = '110105' AND version_id = :v",
           "supervision-grids": "SELECT count(*) FROM supervision_grids WHERE district_code = '110105' "
                                "AND version_id = :v",
           "components": "SELECT count(*) FROM components WHERE district_code = '110105' AND valid_to IS NULL",
           "cases": "SELECT count(*) FROM cases WHERE district_code = '110105'"}[kind]
    from citygrid.gridding.queries import version

    return bj.execute(sa.text(sql), {"v": version(bj, DISTRICT)["version_id"]}).scalar_one()


def run_export(bj, tmp_path: Path, kind: str, fmt: str, name: str | None = None, reader=queries.OPERATOR,
               **options) -> tuple[dict, Path]:
    path = tmp_path / (name or f"{kind}.{fmt}")
    summary = exports.export(bj, exports.ExportRequest(kind=kind, district=DISTRICT, fmt=fmt, **options), path,
                             reader, batch_rows=500)
    return summary, path


def ogrinfo(path: Path | str, *args: str) -> str:
    """``ogrinfo`` of gdal-bin (the real client; a missing one fails the test)."""
    done = subprocess.run(["ogrinfo", "-ro", "-so", "-al", str(path), *args], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def feature_count(text: str) -> int:
    return sum(int(line.split(":")[1]) for line in text.splitlines() if line.startswith("Feature Count:"))


# ---------------------------------------------------------------------------------------------- formats
def test_a_geopackage_of_unit_grids_has_the_databases_count_its_crs_and_a_style_qgis_reads(bj, tmp_path):
    summary, path = run_export(bj, tmp_path, "unit-grids", "gpkg")
    expected = db_count(bj, "unit-grids")
    assert summary["features"] == expected > 100 and summary["crs"] == "EPSG:4548"
    info = ogrinfo(path, "unit_grids_110105")
    assert feature_count(info) == expected and 'ID["EPSG",4548]' in info and "Geometry Column = geom" in info
    fields = pyogrio.read_info(path, layer="unit_grids_110105")["fields"]
    assert list(fields) == [f.name for f in KINDS["unit-grids"].fields]
    styles = pyogrio.read_dataframe(path, layer="layer_styles")
    assert len(styles) == 1
    row = styles.iloc[0]
    assert row["f_table_name"] == "unit_grids_110105" and row["f_geometry_column"] == "geom"
    assert bool(row["useAsDefault"]) and row["f_table_schema"] == "" and row["f_table_catalog"] == ""
    qml = ET.fromstring(row["styleQML"].split("\n", 1)[1])  # after the DOCTYPE line
    assert qml.tag == "qgis" and qml.find("renderer-v2").get("attr") == "owner_responsibility"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging directory left


def test_geojson_and_csv_default_to_lonlat_and_csv_cells_cannot_run_as_formulas(bj, tmp_path):
    census(bj, ["=HYPERLINK(\"http://x\")", "路灯", "-1+cmd|' /C calc'!A0"])
    summary, path = run_export(bj, tmp_path, "components", "geojson")
    expected = db_count(bj, "components")
    assert summary["features"] == expected == 3 and summary["crs"] == "EPSG:4326"
    frame = pyogrio.read_dataframe(path)
    assert len(frame) == 3 and frame.crs.to_epsg() == 4326
    assert abs(frame.geometry.x.min() - LON) < 1e-6 and abs(frame.geometry.y.min() - LAT) < 1e-6  # lon/lat order
    summary, path = run_export(bj, tmp_path, "components", "csv")
    text = path.read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 3 and {"lon", "lat", "obj_name", "valid_from"} <= set(rows[0])
    names = sorted(r["obj_name"] for r in rows)
    assert names == ["'-1+cmd|' /C calc'!A0", "'=HYPERLINK(\"http://x\")", "路灯"]
    assert abs(float(rows[0]["lon"]) - LON) < 1e-6 and rows[0]["valid_from"].startswith("2025-06-01T00:00:00+08:00")


def test_csv_of_polygons_carries_wkt_in_the_deployment_crs(bj, tmp_path):
    summary, path = run_export(bj, tmp_path, "supervision-grids", "csv", crs="deployment")
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    assert len(rows) == summary["features"] == db_count(bj, "supervision-grids") > 0
    assert rows[0]["wkt"].startswith("MULTIPOLYGON") and float(rows[0]["wkt"].split("(")[3].split()[0]) > 400000


def test_a_shapefile_of_cases_has_short_mapped_fields_a_cpg_and_text_times_with_their_offset(bj, tmp_path,
                                                                                           case_rules):
    for i in range(3):
        submitted_case(bj, case_rules, lon=LON + i * 0.001, lat=LAT, description=f"export {i}")
    summary, path = run_export(bj, tmp_path, "cases", "shp", crs="EPSG:4490")
    expected = db_count(bj, "cases")
    assert summary["features"] == expected >= 3 and summary["crs"] == "EPSG:4490"
    for suffix in (".shp", ".shx", ".dbf", ".prj", ".cpg", ".fields.csv"):
        assert (tmp_path / f"cases{suffix}").exists(), suffix
    assert (tmp_path / "cases.cpg").read_text() == "UTF-8"
    info = ogrinfo(path)
    assert feature_count(info) == expected and 'ID["EPSG",4490]' in info
    fields = list(pyogrio.read_info(path)["fields"])
    kind = KINDS["cases"]
    assert fields == [f.short for f in kind.fields] and max(map(len, fields)) <= 10
    mapping = list(csv.DictReader((tmp_path / "cases.fields.csv").open(encoding="utf-8")))
    assert [(m["short"], m["name"]) for m in mapping] == [(f.short, f.name) for f in kind.fields]
    frame = pyogrio.read_dataframe(path)
    assert all(str(t).endswith("+08:00") for t in frame["reported"])  # the deployment zone's offset, as text
    assert frame.geometry.x.between(116, 117).all()  # lon/lat (x = longitude) in CGCS2000


def test_a_zipped_shapefile_in_gbk_round_trips_chinese_names(bj, tmp_path):
    census(bj, ["路灯", "井盖"])
    summary, path = run_export(bj, tmp_path, "components", "shp", name="census.zip", encoding="gbk")
    assert summary["encoding"] == "GBK" and summary["features"] == 2
    with zipfile.ZipFile(path) as archive:
        names = sorted(archive.namelist())
        assert names == sorted(f"census{s}" for s in (".cpg", ".dbf", ".fields.csv", ".prj", ".shp", ".shx"))
        assert archive.read("census.cpg") == b"GBK"
        dbf = archive.read("census.dbf")
    assert "路灯".encode("gbk") in dbf and "路灯".encode() not in dbf
    frame = pyogrio.read_dataframe(f"/vsizip/{path}/census.shp")
    assert sorted(frame["obj_name"]) == ["井盖", "路灯"] and frame.crs.to_epsg() == 4548


@pytest.mark.parametrize("encoding", ["utf-8", "gbk"])
def test_a_long_name_is_cut_to_254_bytes_on_a_character_boundary_and_counted(bj, tmp_path, encoding):
    """A DBF text cell holds 254 bytes: a longer name is cut where a character ends (never half of one) and the
    export says how many cells it cut."""
    long_name = "朝阳路灯" * 50  # 200 characters: 600 bytes in UTF-8, 400 in GBK
    census(bj, [long_name, "井盖"])
    summary, path = run_export(bj, tmp_path, "components", "shp", name=f"long-{encoding}.shp", encoding=encoding)
    assert summary["truncated"] == 1 and summary["features"] == 2
    frame = pyogrio.read_dataframe(path, encoding=encoding)
    cut = next(n for n in frame["obj_name"] if n != "井盖")
    width = 3 if encoding == "utf-8" else 2
    assert long_name.startswith(cut) and len(cut.encode(encoding)) == 254 // width * width
    assert "\ufffd" not in cut


def test_a_value_gbk_cannot_encode_is_refused_naming_it_and_nothing_is_left(bj, tmp_path):
    census(bj, ["路灯", "路障🚧"])
    (tmp_path / "keep.txt").write_text("mine")
    for fmt, name in (("shp", "c.shp"), ("shp", "c.zip"), ("csv", "c.csv")):
        with pytest.raises(InvalidInput) as refused:
            run_export(bj, tmp_path, "components", fmt, name=name, encoding="GBK")
        assert refused.value.field == "obj_name" and "1101050118880002" in refused.value.message
        assert "GBK" in refused.value.message
        assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"], fmt
    with pytest.raises(InvalidInput) as refused:
        run_export(bj, tmp_path, "components", "gpkg", encoding="GBK")
    assert refused.value.field == "encoding"


def test_date_reads_the_version_or_census_of_that_local_day(bj, tmp_path, case_rules):
    add_component(bj, "1101050118880001", "旧路灯", valid_from="2024-01-01", valid_to="2025-01-01")
    add_component(bj, "1101050118880002", "新路灯", lon=LON + 0.001, valid_from="2025-01-01")
    import datetime as dt

    then, _ = run_export(bj, tmp_path, "components", "geojson", name="then.geojson", day=dt.date(2024, 6, 1))
    now, _ = run_export(bj, tmp_path, "components", "geojson", name="now.geojson")
    assert then["features"] == 1 and now["features"] == 1 and then["date"] == "2024-06-01"
    names = {p: pyogrio.read_dataframe(tmp_path / p)["obj_name"].tolist() for p in ("then.geojson", "now.geojson")}
    assert names == {"then.geojson": ["旧路灯"], "now.geojson": ["新路灯"]}
    case = submitted_case(bj, case_rules, lon=LON, lat=LAT, description="today's")
    from citygrid.spatial.db import deployment_zone

    today = dt.datetime.fromisoformat(str(case["reported_at"])).astimezone(deployment_zone(bj)).date()
    on_day, _ = run_export(bj, tmp_path, "cases", "csv", name="day.csv", day=today)
    before, _ = run_export(bj, tmp_path, "cases", "csv", name="before.csv", day=today - dt.timedelta(days=1))
    assert on_day["features"] >= 1 and before["features"] == 0
    with pytest.raises(InvalidInput) as refused:
        run_export(bj, tmp_path, "streets", "csv", day=today)
    assert refused.value.field == "date"


@pytest.mark.parametrize(("options", "field"), [
    ({"crs": "EPSG:3857"}, "crs"), ({"crs": "EPSG:4547"}, "crs"), ({"crs": "../../etc/passwd"}, "crs"),
    ({"fmt": "kml"}, "format"), ({"encoding": "latin1"}, "encoding"), ({"kind": "users"}, "kind"),
    ({"version": 99_999}, "version"), ({"kind": "components", "version": 1}, "version")])
def test_bad_requests_are_refused_before_anything_is_written(bj, tmp_path, options, field):
    request = {"kind": "unit-grids", "fmt": "gpkg", **options}
    kind, fmt = request.pop("kind"), request.pop("fmt")
    with pytest.raises(InvalidInput) as refused:
        exports.export(bj, exports.ExportRequest(kind=kind, district=DISTRICT, fmt=fmt, **request),
                       tmp_path / "out.gpkg", queries.OPERATOR)
    assert refused.value.field == field, refused.value
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("role", ["bogus", "management\x00", "x" * 10_000])
def test_an_unknown_style_role_is_refused_before_a_row_is_read(bj, tmp_path, monkeypatch, role):
    """It was checked only when the finished GeoPackage got its style: a census streamed whole, then thrown away."""
    def no_rows(*args, **kwargs):
        raise AssertionError("rows were read before the style role was checked")

    monkeypatch.setattr(exports.queries, "features", no_rows)
    with pytest.raises(InvalidInput) as refused:
        exports.export(bj, exports.ExportRequest(kind="unit-grids", district=DISTRICT, fmt="gpkg"),
                       tmp_path / "out.gpkg", queries.OPERATOR, style_role=role)
    assert refused.value.field == "role" and list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------- CLI
def test_the_cli_exports_as_the_operator_and_refuses_bad_options_with_a_non_zero_exit(beijing_db, tmp_path):
    out = tmp_path / "grids.zip"
    result = CliRunner().invoke(cli, ["--database", beijing_db.database, "export", "unit-grids", "--district",
                                      DISTRICT, "--format", "shp", "-o", str(out), "--encoding", "gbk"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["features"] > 100 and summary["encoding"] == "GBK"
    assert feature_count(ogrinfo(f"/vsizip/{out}/grids.shp")) == summary["features"]
    for args, words in ((["--crs", "EPSG:3857"], "crs must be one of"), (["--date", "2026-13-01"], "--date"),
                        (["--version", "0"], "--version")):
        result = CliRunner().invoke(cli, ["--database", beijing_db.database, "export", "unit-grids",
                                          "--district", DISTRICT, "--format", "gpkg", "-o",
                                          str(tmp_path / "bad.gpkg"), *args])
        assert result.exit_code == 2 and words in result.output + result.stderr, result.output
    result = CliRunner().invoke(cli, ["--database", beijing_db.database, "export", "people", "--district",
                                      DISTRICT, "--format", "csv", "-o", str(tmp_path / "bad.csv")])
    assert result.exit_code == 2 and "kind must be one of" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grids.zip"]


# ---------------------------------------------------------------------------------------------- HTTP
def downloaded(response, tmp_path: Path, name: str) -> Path:
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.headers["Content-Disposition"].startswith("attachment;")
    path = tmp_path / name
    path.write_bytes(response.get_data())
    return path


def test_http_exports_are_attachments_a_gdal_reads(client, bj, tmp_path):
    census(bj, ["路灯", "井盖", "消防栓"])
    response = client.get(f"/api/v1/exports/components?district={DISTRICT}&format=shp&encoding=GBK")
    assert response.mimetype == "application/zip"
    assert "filename=components-110105.zip" in response.headers["Content-Disposition"]
    path = downloaded(response, tmp_path, "c.zip")
    assert feature_count(ogrinfo(f"/vsizip/{path}/components-110105.shp")) == 3
    assert response.headers["X-Feature-Count"] == "3"
    response = client.get(f"/api/v1/exports/unit-grids?district={DISTRICT}")  # gpkg by default
    assert response.mimetype == "application/geopackage+sqlite3"
    path = downloaded(response, tmp_path, "g.gpkg")
    assert pyogrio.read_info(path, layer="unit_grids_110105")["features"] == db_count(bj, "unit-grids")
    assert "layer_styles" in [name for name, _ in pyogrio.list_layers(path)]
    response = client.get(f"/api/v1/exports/supervision-grids?district={DISTRICT}&format=geojson&crs=EPSG:4490")
    assert response.mimetype == "application/geo+json"
    assert pyogrio.read_info(downloaded(response, tmp_path, "s.geojson"))["crs"] == "EPSG:4490"


def test_http_exports_follow_roles_districts_and_case_scopes(client_as, bj, case_rules, tmp_path):
    mine = submitted_case(bj, case_rules, lon=LON, lat=LAT, description="mine")
    theirs = submitted_case(bj, case_rules, lon=LON + 0.03, lat=LAT + 0.02, description="theirs")
    team = team_of(bj, mine["supervision_code"])
    assert team != team_of(bj, theirs["supervision_code"])
    supervisor = client_as("export-supervisor", ["supervisor"], team=team)
    path = downloaded(supervisor.get(f"/api/v1/exports/cases?district={DISTRICT}&format=csv"), tmp_path, "s.csv")
    ids = {int(r["case_id"]) for r in csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig")))}
    assert mine["case_id"] in ids and theirs["case_id"] not in ids
    planner = client_as("export-planner", ["planner"])
    assert_error(planner.get(f"/api/v1/exports/cases?district={DISTRICT}"), 403, "forbidden")
    assert planner.get(f"/api/v1/exports/teams?district={DISTRICT}&format=csv").status_code == 200
    outsider = client_as("export-outsider", ["analyst"])
    bj.execute(sa.text("UPDATE users SET district_code = '410104' WHERE username = 'export-outsider'"))
    assert_error(outsider.get(f"/api/v1/exports/unit-grids?district={DISTRICT}"), 403, "forbidden",
                 reason="410104")
    anonymous = client_as("unused", ["analyst"]).application.test_client()
    assert anonymous.get(f"/api/v1/exports/unit-grids?district={DISTRICT}").status_code == 401


@pytest.mark.parametrize(("query", "status", "field"), [
    ("format=kml", 400, "format"), ("crs=EPSG:3857", 400, "crs"), ("crs=../../x", 400, "crs"),
    ("crs=EPSG:99999999999", 400, "crs"), ("encoding=latin1", 400, "encoding"), ("encoding=GBK&format=gpkg", 400,
                                                                               "encoding"),
    ("version=-1", 400, "version"), ("version=99999999999", 400, "version"), ("version=NaN", 400, "version"),
    ("version=999999", 400, "version"), ("date=2026-13-01", 400, "date"), ("date=2026-1-1", 400, "date"),
    ("date=Infinity", 400, "date"), ("date=2026-01-01%00", 400, "date"), ("role=mayor", 400, "role"),
    ("district=..%2F..%2Fetc", 400, "district"), ("district=", 400, "district"),
    ("district=110105%0D%0AX-Evil:1", 400, "district")])
def test_hostile_http_parameters_are_refused_naming_the_field(client, query, status, field):
    if not query.startswith("district="):
        query = f"district={DISTRICT}&{query}"
    assert_error(client.get(f"/api/v1/exports/unit-grids?{query}"), status, "invalid_input", field=field)


def test_unknown_kinds_and_districts_are_not_found_and_a_failed_export_leaves_no_temporary_file(client, bj):
    import tempfile

    assert_error(client.get(f"/api/v1/exports/users?district={DISTRICT}"), 404, "not_found")
    assert_error(client.get(f"/api/v1/exports/{'x' * 5000}?district={DISTRICT}"), 404, "not_found")
    assert_error(client.get("/api/v1/exports/unit-grids?district=999999"), 404, "not_found")
    census(bj, ["路障🚧"])
    before = {p.name for p in Path(tempfile.gettempdir()).glob("citygrid-export-*")}
    assert_error(client.get(f"/api/v1/exports/components?district={DISTRICT}&format=shp&encoding=GBK"), 400,
                 "invalid_input", field="obj_name", reason="1101050118880001")
    assert {p.name for p in Path(tempfile.gettempdir()).glob("citygrid-export-*")} <= before


def test_an_export_over_the_http_bound_is_refused_before_any_work(client, monkeypatch):
    from citygrid.webmap import exports_api

    monkeypatch.setattr(exports_api, "MAX_FEATURES", 10)
    assert_error(client.get(f"/api/v1/exports/unit-grids?district={DISTRICT}"), 413, "request_entity_too_large",
                 reason="citygrid export")


def test_a_reader_without_cases_cannot_export_them_through_the_domain_either(bj, tmp_path):
    from citygrid.cases.scope import CaseScope

    reader = queries.Reader(role="planner", cases=CaseScope(readable=False, why_not="no"), roles=("planner",))
    with pytest.raises(Forbidden):
        run_export(bj, tmp_path, "cases", "csv", reader=reader)
    assert list(tmp_path.iterdir()) == []
