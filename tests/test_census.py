"""Census import: real file formats and encodings built here, CRS handling and diagnosis, every rejection
reason, the threshold, reconciliation and versions, zip safety, jobs, HTTP upload."""

from __future__ import annotations

import io
import threading
import time
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import sqlalchemy as sa

from citygrid.components_survey import census, jobs
from citygrid.components_survey import store as survey
from citygrid.components_survey.census import CensusOptions, import_file
from citygrid.errors import Conflict, InvalidInput
from citygrid.spatial import crs, db
from citygrid.spatial.boundaries import district_boundary
from tests.conftest import assert_error, signed_in

DISTRICT = "110105"


def scalar(conn, sql, **params):
    return conn.execute(sa.text(sql), params).scalar_one()


@pytest.fixture
def points(bj):
    """200 points inside Chaoyang (EPSG:4548), fixed seed."""
    boundary = district_boundary(bj, DISTRICT)
    rng = np.random.default_rng(42)
    minx, miny, maxx, maxy = boundary.bounds
    x, y = rng.uniform(minx, maxx, 2000), rng.uniform(miny, maxy, 2000)
    keep = shapely.contains_xy(boundary.buffer(-50), x, y)
    return x[keep][:200], y[keep][:200]


def census_frame(points, n=None, crs_code=4548, **overrides):
    x, y = points
    n = n or len(x)
    classes = np.array(["0101", "0102", "0103", "0201"])[np.arange(n) % 4]
    frame = gpd.GeoDataFrame({
        "标识码": [f"{DISTRICT}{c}{i + 1:06d}" for i, c in enumerate(classes)],
        "小类代码": classes,
        "部件名称": ["上水井盖"] * n,
        "主管部门": ["朝阳区水务局"] * n,
        "初始日期": ["2023-05-01"] * n,
        "备注": ["普查"] * n,
    }, geometry=shapely.points(x[:n], y[:n]), crs=crs_code)
    for column, values in overrides.items():
        frame[column] = values
    return frame


ENGLISH = {"标识码": "ObjID", "小类代码": "ClassCode", "部件名称": "ObjName", "主管部门": "DeptName1",
           "初始日期": "ORDate", "备注": "Note"}


def english(frame):
    """UTF-8 DBF field names are cut at 10 bytes (3 Chinese characters): use the standard names there."""
    return frame.rename(columns=ENGLISH)


def run(bj, path, **kwargs):
    return import_file(bj, Path(path), CensusOptions(district=DISTRICT, **kwargs))


def reasons(result):
    return {p["line"]: p["reason"] for p in result.problems if p["severity"] == "error"}


# ------------------------------------------------------------------------------------------ formats & encodings
def test_geopackage_commits_and_places_every_point(bj, points, tmp_path):
    census_frame(points).to_file(tmp_path / "c.gpkg")
    result = run(bj, tmp_path / "c.gpkg")
    assert result.state == "committed" and result.counts["new"] == 200 and result.counts["bad"] == 0
    placed = scalar(bj, """SELECT count(*) FROM components WHERE district_code = :d AND valid_to IS NULL
                           AND unit_grid_code IS NOT NULL AND supervision_code IS NOT NULL""", d=DISTRICT)
    assert placed == 200
    # The unit grid stored is the one that covers the point.
    wrong = scalar(bj, """SELECT count(*) FROM components c JOIN unit_grids u
                            ON u.district_code = c.district_code AND u.code = c.unit_grid_code
                         WHERE NOT ST_Covers(u.geom, c.geom)""")
    assert wrong == 0
    assert scalar(bj, "SELECT obj_name FROM components LIMIT 1") == "上水井盖"


@pytest.mark.parametrize(("name", "epsg"), [("c.geojson", 4326), ("c.fgb", 4548), ("c.gml", 4548)])
def test_other_formats_gdal_reads(bj, points, tmp_path, name, epsg):
    census_frame(points, n=25).to_crs(epsg).to_file(tmp_path / name)
    result = run(bj, tmp_path / name)
    assert result.state == "committed" and result.counts["new"] == 25 and result.counts["bad"] == 0
    owner = scalar(bj, "SELECT dept_name1 FROM components WHERE obj_id = :o", o=f"{DISTRICT}0101000001")
    assert owner == "朝阳区水务局"


def test_gbk_shapefile_without_cpg_is_detected(bj, points, tmp_path):
    census_frame(points).to_file(tmp_path / "gbk.shp", encoding="GBK")
    (tmp_path / "gbk.cpg").unlink(missing_ok=True)
    result = run(bj, tmp_path / "gbk.shp")
    assert result.encoding == "GB18030" and result.counts["bad"] == 0
    assert scalar(bj, "SELECT dept_name1 FROM components LIMIT 1") == "朝阳区水务局"


def test_cpg_is_honoured(bj, points, tmp_path):
    english(census_frame(points)).to_file(tmp_path / "u.shp", encoding="UTF-8")
    assert (tmp_path / "u.cpg").exists()
    result = run(bj, tmp_path / "u.shp")
    assert result.encoding == "UTF-8" and result.counts["bad"] == 0


def test_record_with_bad_encoding_is_reported(bj, points, tmp_path):
    frame = english(census_frame(points, n=20))
    frame.loc[3, "Note"] = "XXXXXX"
    frame.to_file(tmp_path / "mixed.shp", encoding="UTF-8")
    dbf = tmp_path / "mixed.dbf"
    data = dbf.read_bytes()
    dbf.write_bytes(data.replace(b"XXXXXX", "测试".encode("gbk") + b"  "))
    result = run(bj, tmp_path / "mixed.shp", max_bad_ratio=0.5)
    assert "bad encoding" in reasons(result)[5]  # row index 3 = line 5
    assert result.counts["bad"] == 1


def test_csv_with_gcj02_lonlat(bj, points, tmp_path):
    frame = census_frame(points, n=50).to_crs(4326)
    lon, lat = crs.wgs84_to_gcj02(frame.geometry.x.to_numpy(), frame.geometry.y.to_numpy())
    table = frame.drop(columns="geometry").assign(经度=lon, 纬度=lat)
    table.to_csv(tmp_path / "c.csv", index=False, encoding="gbk")
    result = run(bj, tmp_path / "c.csv", crs="gcj02")
    assert result.state == "committed" and result.counts["new"] == 50
    # Converted back to the true position: within centimetres of where the points were made.
    x, y = points
    stored = bj.execute(sa.text("SELECT ST_X(geom), ST_Y(geom) FROM components WHERE obj_id = :o"),
                        {"o": frame.iloc[0]["标识码"]}).one()
    assert abs(stored[0] - x[0]) < 0.05 and abs(stored[1] - y[0]) < 0.05


def test_csv_without_crs_is_refused(bj, points, tmp_path):
    census_frame(points, n=5).to_crs(4326).pipe(
        lambda f: f.drop(columns="geometry").assign(lon=f.geometry.x, lat=f.geometry.y)
    ).to_csv(tmp_path / "nocrs.csv", index=False)
    with pytest.raises(InvalidInput, match="does not say its CRS"):
        run(bj, tmp_path / "nocrs.csv")


# ------------------------------------------------------------------------------------------ coordinates
def test_zone_prefixed_gauss_kruger(bj, points, tmp_path):
    frame = census_frame(points, n=30).to_crs(4527)  # 3° zone 39 with the zone number prefixed
    assert frame.geometry.x.min() > 39_000_000
    frame.to_file(tmp_path / "z.gpkg")
    assert run(bj, tmp_path / "z.gpkg").counts["new"] == 30
    with pytest.raises(InvalidInput, match="EPSG:4527"):
        run(bj, tmp_path / "z.gpkg", crs="EPSG:4548")


def test_swapped_axes_are_diagnosed(bj, points, tmp_path):
    frame = census_frame(points, n=30)
    frame.geometry = shapely.points(frame.geometry.y, frame.geometry.x)
    frame.to_file(tmp_path / "s.gpkg")
    with pytest.raises(InvalidInput, match="swapped"):
        run(bj, tmp_path / "s.gpkg")


def test_degrees_declared_as_metres_are_diagnosed(bj, points, tmp_path):
    frame = census_frame(points, n=30).to_crs(4490).set_crs(4548, allow_override=True)
    frame.to_file(tmp_path / "d.gpkg")
    with pytest.raises(InvalidInput, match="degrees"):
        run(bj, tmp_path / "d.gpkg")


def test_wrong_zone_is_diagnosed(bj, points, tmp_path):
    frame = census_frame(points, n=30).to_crs(4547).set_crs(4548, allow_override=True)  # CM 114 read as 117
    frame.to_file(tmp_path / "w.gpkg")
    with pytest.raises(InvalidInput, match="EPSG:4547"):
        run(bj, tmp_path / "w.gpkg")


def test_beijing_1954_accepted_with_a_datum_warning(bj, points, tmp_path):
    census_frame(points, n=20).to_crs(2436).to_file(tmp_path / "b54.gpkg")
    result = run(bj, tmp_path / "b54.gpkg")
    assert result.counts["new"] == 20 and any("Beijing 1954" in w for w in result.warnings)


@pytest.mark.parametrize(("epsg", "legacy"), [
    (4490, False),   # CGCS2000 geographic
    (4326, False),   # WGS84
    (4498, False),   # CGCS2000 6° zone 20, zone number prefixed
    (4509, False),   # CGCS2000 6° CM 117E
    (2384, True),    # Xi'an 1980 3° CM 117E
    (4610, True),    # Xi'an 1980 geographic
])
def test_every_kind_of_coordinates_the_surveyors_send(bj, points, tmp_path, epsg, legacy):
    census_frame(points, n=20).to_crs(epsg).to_file(tmp_path / "c.gpkg")
    result = run(bj, tmp_path / "c.gpkg")
    assert result.state == "committed" and result.counts["new"] == 20 and result.counts["bad"] == 0
    warned = any("datum" in w.lower() and "1980" in w for w in result.warnings)
    assert warned == legacy
    if not legacy:  # the same datum (WGS84 within centimetres of CGCS2000): back where the points were made
        x, y = points
        stored = bj.execute(sa.text("SELECT ST_X(geom), ST_Y(geom) FROM components WHERE obj_id = :o"),
                            {"o": f"{DISTRICT}0101000001"}).one()
        assert abs(stored[0] - x[0]) < 0.05 and abs(stored[1] - y[0]) < 0.05


def test_csv_with_bd09_lonlat(bj, points, tmp_path):
    frame = census_frame(points, n=20).to_crs(4326)
    lon, lat = crs.gcj02_to_bd09(*crs.wgs84_to_gcj02(frame.geometry.x.to_numpy(), frame.geometry.y.to_numpy()))
    frame.drop(columns="geometry").assign(lng=lon, lat=lat).to_csv(tmp_path / "bd.csv", index=False)
    result = run(bj, tmp_path / "bd.csv", crs="bd09")
    assert result.state == "committed" and result.counts["new"] == 20
    x, y = points
    stored = bj.execute(sa.text("SELECT ST_X(geom), ST_Y(geom) FROM components WHERE obj_id = :o"),
                        {"o": f"{DISTRICT}0101000001"}).one()
    assert abs(stored[0] - x[0]) < 0.5 and abs(stored[1] - y[0]) < 0.5


# ------------------------------------------------------------------------------------------ every row reason
def test_every_row_reason(bj, points, tmp_path):
    frame = census_frame(points, n=40)
    ids = list(frame["标识码"])
    ids[1] = "12345"                                # format
    ids[2] = "120105" + ids[2][6:]                  # another county
    ids[3] = ids[3][:6] + "0101" + ids[3][10:]      # class digits differ from the class column (0201)
    ids[4] = ids[0]                                 # duplicate of line 2
    ids[5] = ids[5][:10] + "000000"                 # zero serial
    frame["标识码"] = ids
    frame.loc[6, "小类代码"] = "9999"                 # unknown class
    frame.loc[7, "初始日期"] = "2023-13-45"           # bad date
    frame.loc[8, "初始日期"] = "1066-10-14"           # implausible date
    frame.loc[9, "备注"] = "长" * 600                  # too long
    geoms = list(frame.geometry)
    geoms[10] = shapely.Point(400000, 4400000)      # ~ tens of km outside
    geoms[11] = shapely.LineString([(geoms[12].x, geoms[12].y), (geoms[12].x + 5, geoms[12].y)])
    geoms[13] = None
    frame = frame.set_geometry(gpd.GeoSeries(geoms, crs=4548))
    frame.loc[14, "BGID"] = "110105999999999"        # warning only
    frame.to_file(tmp_path / "bad.gpkg")
    result = run(bj, tmp_path / "bad.gpkg", max_bad_ratio=1.0)
    got = reasons(result)
    assert "16 digits" in got[3]
    assert "district code 110105" in got[4]
    assert "do not match the class" in got[5]
    assert "duplicate ObjID (first at line 2)" in got[6]
    assert "serial 000000" in got[7]
    assert "unknown component class '9999'" in got[8]
    assert "bad date '2023-13-45'" in got[9] and "bad date '1066-10-14'" in got[10]
    assert "longer than 500" in got[11]
    assert "outside the district by" in got[12] and " m" in got[12]
    assert "not a point (LineString)" in got[13]
    assert "empty geometry" in got[15]
    warnings = [p for p in result.problems if p["severity"] == "warning"]
    assert len(warnings) == 1 and "BGID 110105999999999" in warnings[0]["reason"] and warnings[0]["line"] == 16
    assert result.counts["bad"] == 12 and result.counts["good"] == 28
    assert census.report_csv(result.problems).splitlines()[0] == "line,obj_id,field,severity,reason"


def test_census_report_cells_never_run_as_formulas():
    """An ObjID or column name read from a hostile file reaches the report; a spreadsheet must show it, not run
    it (the case-import report already quoted such cells; the census report did not)."""
    import csv

    text = census.report_csv([
        {"line": 2, "obj_id": '=HYPERLINK("http://evil","x")', "field": "ObjID", "severity": "error",
         "reason": "ObjID must be 16 digits"},
        {"line": 3, "obj_id": "-1+cmd|' /C calc'!A0", "field": "@SUM(A1)", "severity": "error", "reason": "+bad"},
        {"line": 4, "obj_id": "-12.5", "field": "ObjID", "severity": "error", "reason": "ok"},
    ])
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["obj_id"] == "'=HYPERLINK(\"http://evil\",\"x\")"
    assert (rows[1]["obj_id"], rows[1]["field"], rows[1]["reason"]) == ("'-1+cmd|' /C calc'!A0", "'@SUM(A1)", "'+bad")
    assert rows[2]["obj_id"] == "-12.5"  # a number stays a number


def test_numeric_id_columns_and_small_chunks(bj, points, tmp_path):
    """ObjIDs stored as numbers (a DBF N(16,0) field read as float, or an integer column) import as their
    digits; a duplicate is found across chunk boundaries; a date column of real dates is accepted."""
    frame = census_frame(points, n=150)
    ids = [int(v) for v in frame["标识码"]]
    ids[120] = ids[4]                                 # duplicate of line 6 (same class), in the second chunk
    frame["标识码"] = np.array(ids, dtype=np.float64)
    frame["变更日期"] = pd.to_datetime(["2024-02-29"] * 150).date
    frame.to_file(tmp_path / "numeric.gpkg")
    result = run(bj, tmp_path / "numeric.gpkg", max_bad_ratio=1.0, chunk_size=100)
    assert result.counts["good"] == 149 and result.counts["bad"] == 1
    assert reasons(result)[122] == "duplicate ObjID (first at line 6)"
    row = bj.execute(sa.text("SELECT obj_id, ch_date FROM components WHERE district_code = :d AND valid_to IS NULL "
                             "ORDER BY obj_id LIMIT 1"), {"d": DISTRICT}).one()
    assert row.obj_id == f"{DISTRICT}0101000001" and str(row.ch_date) == "2024-02-29"
    frame["标识码"] = np.array(ids, dtype=np.int64)
    frame.to_file(tmp_path / "integer.gpkg")
    assert run(bj, tmp_path / "integer.gpkg", max_bad_ratio=1.0, dry_run=True).counts["unchanged"] == 149


def test_seen_ids_across_and_within_calls():
    from citygrid.components_survey.ids import SeenIds

    seen = SeenIds()
    first = seen.add(np.array([1101050101000001, 1101050101000002, 1101050101000001]), np.array([2, 3, 4]))
    assert list(first) == [0, 0, 2]
    assert list(seen.add(np.array([], dtype=np.int64), np.array([], dtype=np.int64))) == []
    again = seen.add(np.array([1101050101000002, 1101050101000009, 1101050101000009, 1101050101000009]),
                     np.array([5, 6, 7, 8]))
    assert list(again) == [3, 0, 6, 6]


def test_too_many_bad_rows_import_nothing(bj, points, tmp_path):
    frame = census_frame(points, n=20)
    frame.loc[:4, "小类代码"] = "9999"
    frame.to_file(tmp_path / "t.gpkg")
    result = run(bj, tmp_path / "t.gpkg", max_bad_ratio=0.1)
    assert result.state == "rejected" and "nothing was imported" in result.warnings[-1]
    assert survey.current_components(bj, DISTRICT) == 0
    accepted = run(bj, tmp_path / "t.gpkg", max_bad_ratio=0.3)
    assert accepted.state == "committed" and survey.current_components(bj, DISTRICT) == 15


def test_missing_ids_are_generated_after_the_highest_serial(bj, points, tmp_path):
    frame = census_frame(points, n=12)
    frame.loc[[1, 5], "标识码"] = None  # class 0102 rows; line 11 keeps ObjID …0102000010
    frame.to_file(tmp_path / "g.gpkg")
    result = run(bj, tmp_path / "g.gpkg")
    assert result.counts["generated_ids"] == 2
    ids = set(bj.execute(sa.text("SELECT obj_id FROM components WHERE class_code = '0102'")).scalars())
    assert ids == {f"{DISTRICT}0102000010", f"{DISTRICT}0102000011", f"{DISTRICT}0102000012"}


# ------------------------------------------------------------------------------------------ reconciliation
def test_dry_run_previews_and_writes_nothing(bj, points, tmp_path):
    census_frame(points, n=10).to_file(tmp_path / "p.gpkg")
    result = run(bj, tmp_path / "p.gpkg", dry_run=True)
    assert result.state == "preview" and result.reconciliation["counts"]["new"] == 10
    assert len(result.reconciliation["samples"]["new"]) == 10
    assert survey.current_components(bj, DISTRICT) == 0


def test_reconciliation_and_versions(bj, points, tmp_path):
    first = census_frame(points, n=10)
    first.to_file(tmp_path / "v1.gpkg")
    run(bj, tmp_path / "v1.gpkg")
    second = first.copy()
    second.loc[0, "geometry"] = shapely.Point(second.geometry[0].x + 20, second.geometry[0].y)   # moved
    second.loc[1, "geometry"] = shapely.Point(second.geometry[1].x + 2, second.geometry[1].y)    # within tolerance
    second.loc[2, "主管部门"] = "朝阳区城管委"                                                     # changed
    second = second.drop(index=3)                                                                 # retired
    extra = census_frame(points, n=12).iloc[[11]]                                                 # new
    second = gpd.GeoDataFrame(np.concatenate([second.values, extra.values]), columns=first.columns,
                              geometry="geometry", crs=4548)
    second.to_file(tmp_path / "v2.gpkg")
    preview = run(bj, tmp_path / "v2.gpkg", dry_run=True)
    assert preview.reconciliation["counts"] == {"new": 1, "moved": 1, "changed": 1, "unchanged": 7, "retired": 1}
    result = run(bj, tmp_path / "v2.gpkg")
    assert result.state == "committed"
    assert survey.current_components(bj, DISTRICT) == 10
    history = dict(bj.execute(sa.text("SELECT obj_id, count(*) FROM components GROUP BY 1")).all())
    assert history[first.iloc[0]["标识码"]] == 2 and history[first.iloc[2]["标识码"]] == 2
    assert history[first.iloc[1]["标识码"]] == 1
    retired = bj.execute(sa.text("SELECT valid_to IS NOT NULL FROM components WHERE obj_id = :o"),
                         {"o": first.iloc[3]["标识码"]}).scalar_one()
    assert retired
    old = bj.execute(sa.text("""SELECT dept_name1 FROM components WHERE obj_id = :o AND valid_to IS NOT NULL"""),
                     {"o": first.iloc[2]["标识码"]}).scalar_one()
    assert old == "朝阳区水务局"  # the old version is kept as it was


def test_partial_update_retires_nothing(bj, points, tmp_path):
    census_frame(points, n=10).to_file(tmp_path / "all.gpkg")
    run(bj, tmp_path / "all.gpkg")
    census_frame(points, n=3).to_file(tmp_path / "some.gpkg")
    result = run(bj, tmp_path / "some.gpkg", partial=True)
    assert result.reconciliation["counts"]["retired"] == 0 and survey.current_components(bj, DISTRICT) == 10


def _small_change_files(points, tmp_path):
    """A census of 40 and its update: one moved, one within tolerance, one changed, one retired, one new
    (4 changes over 40 current components)."""
    first = census_frame(points, n=40)
    first.to_file(tmp_path / "v1.gpkg")
    second = first.copy()
    second.loc[0, "geometry"] = shapely.Point(second.geometry[0].x + 20, second.geometry[0].y)
    second.loc[1, "geometry"] = shapely.Point(second.geometry[1].x + 2, second.geometry[1].y)
    second.loc[2, "主管部门"] = "朝阳区城管委"
    second = second.drop(index=3)
    extra = census_frame(points, n=41).iloc[[40]]
    gpd.GeoDataFrame(np.concatenate([second.values, extra.values]), columns=first.columns, geometry="geometry",
                     crs=4548).to_file(tmp_path / "v2.gpkg")
    return tmp_path / "v1.gpkg", tmp_path / "v2.gpkg"


def _census_rows(conn):
    """Every version of the district's components, with import times replaced by their rank."""
    return conn.execute(sa.text(
        """WITH r AS (SELECT ts, dense_rank() OVER (ORDER BY ts) AS n
                        FROM (SELECT DISTINCT valid_from AS ts FROM components WHERE district_code = :d) t)
           SELECT c.obj_id, f.n AS version, t.n AS closed_at, c.class_code, c.obj_name, c.dept_name1,
                  c.unit_grid_code, c.supervision_code, ST_AsEWKT(c.geom), c.or_date, c.note, c.import_job_id
             FROM components c JOIN r f ON f.ts = c.valid_from LEFT JOIN r t ON t.ts = c.valid_to
            WHERE c.district_code = :d ORDER BY 1, 2"""), {"d": DISTRICT}).all()


def _load_tables(conn) -> set[str]:
    return set(conn.execute(sa.text("SELECT relname FROM pg_class WHERE relkind = 'r' AND starts_with(relname, :p)"),
                            {"p": survey.LOAD_PREFIX}).scalars())


def test_small_change_threshold(monkeypatch):
    counts = {"new": 1, "moved": 1, "changed": 1, "unchanged": 6, "retired": 1}  # 4 changes, 9 current
    assert not survey.small_change(counts)
    assert survey.small_change({**counts, "unchanged": 17})  # 4 of 20 current, at the share
    assert not survey.small_change({k: 0 for k in counts} | {"new": 5})  # nothing current: a first import
    monkeypatch.setattr(survey, "IN_PLACE_SHARE", 0.5)
    assert survey.small_change(counts)


def test_a_small_change_is_applied_in_place_with_the_same_result_as_a_swap(bj, points, tmp_path, monkeypatch):
    v1, v2 = _small_change_files(points, tmp_path)
    outcomes, default = {}, survey.IN_PLACE_SHARE
    for share in (default, 0.0):  # the default, then a swap forced
        monkeypatch.setattr(survey, "IN_PLACE_SHARE", share)
        bj.execute(sa.text("DELETE FROM components WHERE district_code = :d"), {"d": DISTRICT})
        assert run(bj, v1).reconciliation["applied"] == "swapped"  # nothing current: always swapped
        partition = scalar(bj, "SELECT CAST(to_regclass(:p) AS oid)", p=f"components_{DISTRICT}")
        loads = _load_tables(bj)
        result = run(bj, v2)
        assert _load_tables(bj) <= loads  # neither the load nor its list to close is left
        assert result.reconciliation["counts"] == {"new": 1, "moved": 1, "changed": 1, "unchanged": 37,
                                                   "retired": 1}
        same_table = scalar(bj, "SELECT CAST(to_regclass(:p) AS oid)", p=f"components_{DISTRICT}") == partition
        outcomes[share] = (result.reconciliation["applied"], same_table, _census_rows(bj))
    assert outcomes[default][:2] == ("in place", True) and outcomes[0.0][:2] == ("swapped", False)
    assert outcomes[default][2] == outcomes[0.0][2]
    assert len(outcomes[0.0][2]) == 43 and survey.current_components(bj, DISTRICT) == 40


def test_a_job_applies_a_small_change_in_place_and_cleans_up(job_engine, points, tmp_path):
    v1, v2 = _small_change_files(points, tmp_path)
    options = CensusOptions(district=DISTRICT)
    jobs.run_job(job_engine, jobs.new_job(job_engine, v1, options, created_by="t"), v1, options)
    with job_engine.connect() as conn:
        revision = scalar(conn, "SELECT revision FROM layer_revisions WHERE district_code = :d "
                                "AND layer = 'components'", d=DISTRICT)
    record = jobs.run_job(job_engine, jobs.new_job(job_engine, v2, options, created_by="t"), v2, options)
    assert record["state"] == "committed" and record["counts"]["new"] == 1 and record["counts"]["retired"] == 1
    with job_engine.connect() as conn:
        assert survey.current_components(conn, DISTRICT) == 40
        assert scalar(conn, "SELECT count(*) FROM components WHERE district_code = :d", d=DISTRICT) == 43
        assert scalar(conn, "SELECT revision FROM layer_revisions WHERE district_code = :d "
                            "AND layer = 'components'", d=DISTRICT) > revision
        moved = survey.component_history(conn, f"{DISTRICT}0101000001")
    assert [v["valid_to"] is None for v in moved] == [True, False] and moved[1]["valid_to"] == moved[0]["valid_from"]
    assert _tables(job_engine, survey.LOAD_PREFIX) == []


def test_a_job_failing_in_place_leaves_the_census_and_no_tables(job_engine, points, tmp_path, monkeypatch):
    v1, v2 = _small_change_files(points, tmp_path)
    options = CensusOptions(district=DISTRICT)
    jobs.run_job(job_engine, jobs.new_job(job_engine, v1, options, created_by="t"), v1, options)
    apply = survey.apply_in_place

    def crash_after(*args, **kwargs):
        apply(*args, **kwargs)
        raise RuntimeError("power cut")

    monkeypatch.setattr(survey, "apply_in_place", crash_after)
    job_id = jobs.new_job(job_engine, v2, options, created_by="t")
    with pytest.raises(RuntimeError):
        jobs.run_job(job_engine, job_id, v2, options)
    with job_engine.connect() as conn:
        assert scalar(conn, "SELECT count(*) FROM components WHERE district_code = :d", d=DISTRICT) == 40
        assert survey.current_components(conn, DISTRICT) == 40 and survey.job(conn, job_id)["state"] == "failed"
    assert _tables(job_engine, survey.LOAD_PREFIX) == []  # the load and its list to close, both committed apart


# ------------------------------------------------------------------------------------------ mapping
def test_mapping_file_and_its_errors(bj, points, tmp_path):
    from citygrid.components_survey.mapping import load_mapping_file

    frame = census_frame(points, n=5).rename(columns={"标识码": "编号X", "小类代码": "类"})
    frame.to_file(tmp_path / "m.gpkg")
    (tmp_path / "m.yaml").write_text("columns:\n  ObjID: 编号X\n  ClassCode: 类\n", encoding="utf-8")
    result = run(bj, tmp_path / "m.gpkg", mapping=load_mapping_file(tmp_path / "m.yaml"))
    assert result.counts["new"] == 5 and result.counts["generated_ids"] == 0
    (tmp_path / "bad.yaml").write_text("columns:\n  Colour: 颜色\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="unknown attributes Colour"):
        load_mapping_file(tmp_path / "bad.yaml")
    with pytest.raises(InvalidInput, match="not in the file"):
        run(bj, tmp_path / "m.gpkg", mapping={"ObjID": "nope"})
    (tmp_path / "broken.yaml").write_text("columns: [", encoding="utf-8")
    with pytest.raises(InvalidInput, match="not valid YAML"):
        load_mapping_file(tmp_path / "broken.yaml")


# ------------------------------------------------------------------------------------------ files & zips
def write_shapefile_zip(frame, tmp_path, name="c") -> Path:
    frame.to_file(tmp_path / f"{name}.shp", encoding="GBK")
    archive = tmp_path / f"{name}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for part in tmp_path.glob(f"{name}.*"):
            if part.suffix != ".zip":
                zf.write(part, f"census/{part.name}")
    return archive


def test_zipped_shapefile(bj, points, tmp_path):
    archive = write_shapefile_zip(census_frame(points, n=12), tmp_path)
    assert run(bj, archive).counts["new"] == 12


@pytest.mark.parametrize(("entries", "needle"), [
    ({"../evil.shp": b"x"}, "outside the archive"),
    ({"/etc/evil.shp": b"x"}, "outside the archive"),
    ({"bomb.csv": b"0" * 50_000_000}, "zip bomb"),
    ({"a.gpkg": b"x", "b.gpkg": b"y"}, "several datasets"),
    ({"readme.txt.md": b"x"}, "no vector file"),
])
def test_unsafe_or_unusable_zips(bj, tmp_path, entries, needle):
    archive = tmp_path / "x.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    with pytest.raises(InvalidInput, match=needle):
        run(bj, archive)


@pytest.mark.parametrize(("name", "content", "needle"), [
    ("fake.zip", b"not a zip", "not a zip"),
    ("broken.gpkg", b"SQLite format 3\x00garbage", "not a readable GeoPackage"),
    ("empty.geojson", b'{"type":"FeatureCollection","features":[]}', "no rows"),
])
def test_broken_files(bj, tmp_path, name, content, needle):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InvalidInput, match=needle):
        run(bj, tmp_path / name, crs="EPSG:4548")


def test_shapefile_without_dbf(bj, points, tmp_path):
    census_frame(points, n=3).to_file(tmp_path / "x.shp", encoding="GBK")
    (tmp_path / "x.dbf").unlink()
    with pytest.raises(InvalidInput, match=r"no \.dbf"):
        run(bj, tmp_path / "x.shp")


@pytest.mark.parametrize(("kwargs", "field"), [({"max_bad_ratio": 2}, "max_bad_ratio"),
                                               ({"move_tolerance_m": -1}, "move_tolerance_m"),
                                               ({"encoding": "klingon"}, "encoding")])
def test_bad_options(bj, points, tmp_path, kwargs, field):
    census_frame(points, n=3).to_file(tmp_path / "o.shp", encoding="GBK")
    with pytest.raises(InvalidInput) as err:
        run(bj, tmp_path / "o.shp", **kwargs)
    assert err.value.details[0]["field"] == field


# ------------------------------------------------------------------------------------------ jobs (committed)
@pytest.fixture
def job_engine(beijing_db):
    engine = db.make_engine(db.database_url(beijing_db))
    yield engine
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM components WHERE district_code = :d"), {"d": DISTRICT})
        conn.execute(sa.text("DELETE FROM import_jobs WHERE district_code = :d"), {"d": DISTRICT})
    engine.dispose()


def test_job_failure_leaves_the_census_as_it_was(job_engine, points, tmp_path, monkeypatch):
    census_frame(points, n=10).to_file(tmp_path / "a.gpkg")
    options = CensusOptions(district=DISTRICT)
    jobs.run_job(job_engine, jobs.new_job(job_engine, tmp_path / "a.gpkg", options, created_by="t"),
                 tmp_path / "a.gpkg", options)
    census_frame(points, n=20).to_file(tmp_path / "b.gpkg")

    def crash(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(survey, "swap_census", crash)
    job_id = jobs.new_job(job_engine, tmp_path / "b.gpkg", options, created_by="t")
    with pytest.raises(RuntimeError):
        jobs.run_job(job_engine, job_id, tmp_path / "b.gpkg", options)
    with job_engine.connect() as conn:
        assert survey.current_components(conn, DISTRICT) == 10
        record = survey.job(conn, job_id)
    assert record["state"] == "failed" and "disk on fire" in record["message"]
    assert _tables(job_engine, survey.LOAD_PREFIX) == []  # the staged rows, committed apart, were dropped


def test_a_job_whose_process_died_reads_as_failed(job_engine, points, tmp_path):
    census_frame(points, n=3).to_file(tmp_path / "s.gpkg")
    job_id = jobs.new_job(job_engine, tmp_path / "s.gpkg", CensusOptions(district=DISTRICT), created_by="t")
    with job_engine.begin() as conn:
        conn.execute(sa.text("UPDATE import_jobs SET state = 'running', heartbeat_at = now() - interval '1 hour'"
                             " WHERE job_id = CAST(:j AS uuid)"), {"j": job_id})
    with job_engine.connect() as conn:
        record = survey.job(conn, job_id)
    assert record["state"] == "failed" and "stopped without finishing" in record["message"]


def test_file_level_error_ends_the_job_failed(job_engine, tmp_path):
    (tmp_path / "x.gpkg").write_bytes(b"garbage")
    options = CensusOptions(district=DISTRICT, crs="EPSG:4548")
    job_id = jobs.new_job(job_engine, tmp_path / "x.gpkg", options, created_by="t")
    with pytest.raises(InvalidInput):
        jobs.run_job(job_engine, job_id, tmp_path / "x.gpkg", options)
    with job_engine.connect() as conn:
        assert survey.job(conn, job_id)["state"] == "failed"


def _tables(engine, prefix: str) -> list[str]:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT relname FROM pg_class WHERE relkind = 'r' AND starts_with(relname, :p)"),
                            {"p": prefix}).scalars().all()


def test_reimport_swaps_the_district_partition_and_drops_the_old_one(job_engine, tmp_path):
    # Not the ``points`` fixture: its open transaction (it read ``districts``) would keep the replaced
    # partition from being dropped, which is the point of the wait in ``drop_retired_partitions``.
    with job_engine.connect() as conn:
        boundary = district_boundary(conn, DISTRICT)
    rng = np.random.default_rng(42)
    x, y = rng.uniform(*boundary.bounds[::2], 2000), rng.uniform(*boundary.bounds[1::2], 2000)
    keep = shapely.contains_xy(boundary.buffer(-50), x, y)
    points = x[keep][:200], y[keep][:200]
    options = CensusOptions(district=DISTRICT)
    census_frame(points, n=10).to_file(tmp_path / "a.gpkg")
    jobs.run_job(job_engine, jobs.new_job(job_engine, tmp_path / "a.gpkg", options, created_by="t"),
                 tmp_path / "a.gpkg", options)
    moved = census_frame(points, n=12)
    moved.loc[0, "geometry"] = shapely.Point(points[0][1], points[1][1])  # line 2 moves onto another point
    moved.to_file(tmp_path / "b.gpkg")
    record = jobs.run_job(job_engine, jobs.new_job(job_engine, tmp_path / "b.gpkg", options, created_by="t"),
                          tmp_path / "b.gpkg", options)
    assert record["state"] == "committed"
    assert record["counts"]["new"] == 2 and record["counts"]["moved"] == 1 and record["counts"]["unchanged"] == 9
    with job_engine.connect() as conn:
        partition = conn.execute(sa.text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = CAST('components' AS regclass) AND pg_get_expr(c.relpartbound, c.oid) LIKE :b"
        ), {"b": f"%'{DISTRICT}'%"}).scalars().all()
        versions = conn.execute(sa.text("SELECT count(*) FROM components WHERE district_code = :d"),
                                {"d": DISTRICT}).scalar_one()
        in_default = conn.execute(sa.text("SELECT count(*) FROM components_default WHERE district_code = :d"),
                                  {"d": DISTRICT}).scalar_one()
        current = survey.current_components(conn, DISTRICT)
    assert partition == [f"components_{DISTRICT}"] and in_default == 0
    assert versions == 13 and current == 12  # 10 + 2 new + the moved one's new version
    assert _tables(job_engine, survey.RETIRED_PREFIX) == [] and _tables(job_engine, "components_load_") == []


def test_a_census_held_by_a_long_reader_fails_the_import_instead_of_hanging(job_engine, points, tmp_path,
                                                                             monkeypatch):
    options = CensusOptions(district=DISTRICT)
    census_frame(points, n=5).to_file(tmp_path / "a.gpkg")
    jobs.run_job(job_engine, jobs.new_job(job_engine, tmp_path / "a.gpkg", options, created_by="t"),
                 tmp_path / "a.gpkg", options)
    census_frame(points, n=8).to_file(tmp_path / "b.gpkg")
    monkeypatch.setattr(survey, "SWAP_LOCK_TIMEOUT_S", 1)
    with job_engine.connect() as reader:
        reader.begin()
        reader.execute(sa.text("SELECT count(*) FROM components WHERE district_code = :d"), {"d": DISTRICT})
        job_id = jobs.new_job(job_engine, tmp_path / "b.gpkg", options, created_by="t")
        with pytest.raises(Conflict, match="in use by another transaction"):
            jobs.run_job(job_engine, job_id, tmp_path / "b.gpkg", options)
        reader.rollback()
    with job_engine.connect() as conn:
        assert survey.current_components(conn, DISTRICT) == 5
        assert survey.job(conn, job_id)["state"] == "failed"
    assert _tables(job_engine, "components_load_") == []


def test_an_update_in_place_does_not_wait_for_a_long_reader(job_engine, points, tmp_path, monkeypatch):
    """Unlike a swap (above), closing and inserting versions takes no lock that a reader holds up."""
    v1, v2 = _small_change_files(points, tmp_path)
    options = CensusOptions(district=DISTRICT)
    jobs.run_job(job_engine, jobs.new_job(job_engine, v1, options, created_by="t"), v1, options)
    monkeypatch.setattr(survey, "SWAP_LOCK_TIMEOUT_S", 1)
    with job_engine.connect() as reader:
        reader.begin()
        reader.execute(sa.text("SELECT count(*) FROM components WHERE district_code = :d"), {"d": DISTRICT})
        record = jobs.run_job(job_engine, jobs.new_job(job_engine, v2, options, created_by="t"), v2, options)
        # the reader, still in its transaction, sees the import at its next statement (read committed)
        still = reader.execute(sa.text("SELECT count(*) FROM components WHERE district_code = :d"),
                               {"d": DISTRICT}).scalar_one()
        reader.rollback()
    assert record["state"] == "committed" and record["preview"]["reconciliation"]["applied"] == "in place"
    assert still == 43  # the 40 first versions (3 now closed) and the moved, changed and new components' versions


def test_census_imports_wait_for_each_other(job_engine, points, tmp_path):
    """A second import waits for the first to end (so it reconciles against what the first committed)."""
    census_frame(points, n=3).to_file(tmp_path / "w.gpkg")
    options = CensusOptions(district=DISTRICT)
    job_id = jobs.new_job(job_engine, tmp_path / "w.gpkg", options, created_by="t")
    with job_engine.connect() as holder:
        holder.begin()
        survey.lock_census(holder)  # as an import in progress holds it
        worker = threading.Thread(target=jobs.run_job, args=(job_engine, job_id, tmp_path / "w.gpkg", options))
        worker.start()
        worker.join(timeout=3)
        assert worker.is_alive()  # still waiting for the lock
        holder.rollback()
    worker.join(timeout=60)
    with job_engine.connect() as conn:
        assert survey.job(conn, job_id)["state"] == "committed" and survey.current_components(conn, DISTRICT) == 3


def test_a_preview_leaves_no_load_table(job_engine, points, tmp_path):
    census_frame(points, n=4).to_file(tmp_path / "p.gpkg")
    options = CensusOptions(district=DISTRICT, dry_run=True)
    record = jobs.run_job(job_engine, jobs.new_job(job_engine, tmp_path / "p.gpkg", options, created_by="t"),
                          tmp_path / "p.gpkg", options)
    assert record["state"] == "preview" and _tables(job_engine, "components_load_") == []
    with job_engine.connect() as conn:
        assert survey.current_components(conn, DISTRICT) == 0


# ------------------------------------------------------------------------------------------ HTTP
@pytest.fixture
def http(beijing_db, job_engine, tmp_path, beijing_admin_token):
    from citygrid.app import create_app

    app = create_app({"CITYGRID_SETTINGS": beijing_db, "CITYGRID_IMPORTS_DIR": tmp_path / "uploads",
                      "TESTING": True})
    return signed_in(app.test_client(), beijing_admin_token)


def wait_for(client, job_id, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        body = client.get(f"/api/v1/imports/{job_id}").get_json()
        if body["state"] not in ("queued", "running"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish")


def test_upload_progress_report_and_bad_rows(http, points, tmp_path):
    frame = census_frame(points, n=30)
    frame.loc[2, "小类代码"] = "9999"
    frame.to_file(tmp_path / "up.gpkg")
    with (tmp_path / "up.gpkg").open("rb") as fh:
        response = http.post("/api/v1/imports", data={"district": DISTRICT, "file": (fh, "普查.gpkg")},
                             content_type="multipart/form-data")
    assert response.status_code == 202
    job = wait_for(http, response.get_json()["job_id"])
    assert job["state"] == "committed" and job["percent"] == 100 and job["counts"]["bad"] == 1
    report = http.get(job["links"]["report"])
    assert report.mimetype == "text/csv" and "unknown component class" in report.get_data(as_text=True)
    bad = http.get(job["links"]["bad_rows"]).get_json()
    lon, lat = bad["features"][0]["geometry"]["coordinates"]
    assert 116.3 < lon < 116.7 and 39.7 < lat < 40.2


def test_upload_preview_then_commit(http, points, tmp_path):
    census_frame(points, n=6).to_file(tmp_path / "pv.gpkg")
    with (tmp_path / "pv.gpkg").open("rb") as fh:
        job_id = http.post("/api/v1/imports", data={"district": DISTRICT, "dry_run": "true", "file": (fh, "pv.gpkg")},
                           content_type="multipart/form-data").get_json()["job_id"]
    preview = wait_for(http, job_id)
    assert preview["state"] == "preview" and preview["preview"]["reconciliation"]["counts"]["new"] == 6
    committed = http.post(f"/api/v1/imports/{job_id}/commit")
    assert committed.status_code == 202
    assert wait_for(http, committed.get_json()["job_id"])["state"] == "committed"
    again = http.post(f"/api/v1/imports/{committed.get_json()['job_id']}/commit")
    assert_error(again, 409, "conflict", reason="is committed; only a preview can be committed")


def test_upload_shapefile_parts(http, points, tmp_path):
    census_frame(points, n=4).to_file(tmp_path / "parts.shp", encoding="GBK")
    files = [((tmp_path / f"parts{s}").open("rb"), f"parts{s}") for s in (".shp", ".shx", ".dbf", ".prj", ".cpg")]
    try:
        response = http.post("/api/v1/imports", data={"district": DISTRICT, "file": files},
                             content_type="multipart/form-data")
    finally:
        for fh, _ in files:
            fh.close()
    assert wait_for(http, response.get_json()["job_id"])["counts"]["new"] == 4


@pytest.mark.parametrize(("data", "status", "needle"), [
    ({}, 400, "district"),
    ({"district": DISTRICT}, 400, "at least one file"),
    ({"district": DISTRICT, "file": (io.BytesIO(b"x"), "../../etc/passwd")}, 400, "not an accepted"),
    ({"district": DISTRICT, "file": (io.BytesIO(b"x"), "virus.exe")}, 400, "not an accepted"),
    ({"district": DISTRICT, "max_bad_ratio": "lots", "file": (io.BytesIO(b"x"), "a.gpkg")}, 400, "number"),
    ({"district": DISTRICT, "dry_run": "maybe", "file": (io.BytesIO(b"x"), "a.gpkg")}, 400, "true or false"),
    ({"district": DISTRICT, "mapping": "[1, 2", "file": (io.BytesIO(b"x"), "a.gpkg")}, 400, "mapping"),
])
def test_bad_uploads(http, data, status, needle):
    response = http.post("/api/v1/imports", data=data, content_type="multipart/form-data")
    assert response.status_code == status and needle in response.get_json()["message"]


def test_oversized_upload_is_413(http):
    http.application.config["MAX_CONTENT_LENGTH"] = 1000
    response = http.post("/api/v1/imports", data={"district": DISTRICT, "file": (io.BytesIO(b"0" * 5000), "a.csv")},
                         content_type="multipart/form-data")
    assert response.status_code == 413 and response.get_json()["error"] == "request_entity_too_large"


@pytest.mark.parametrize(("url", "status", "code", "reason"), [
    ("/api/v1/imports/not-a-uuid", 400, "invalid_input", "'not-a-uuid' is not an import job id"),
    ("/api/v1/imports/00000000-0000-0000-0000-000000000000", 404, "not_found", "no import job 00000000-"),
    ("/api/v1/imports/00000000-0000-0000-0000-000000000000/report.csv", 404, "not_found", "no import job 00000000-")])
def test_unknown_jobs(http, url, status, code, reason):
    assert_error(http.get(url), status, code, field="job_id" if status == 400 else None, reason=reason)


# ------------------------------------------------------------------------------------------ synthetic demo census
def test_synthetic_census_spacing_and_sides():
    from citygrid.components_survey.synthetic import census_points

    frame = census_points([shapely.LineString([(0, 0), (1000, 0)])], seed=1)
    lamps = frame[frame["class_code"] == "0118"]
    assert len(lamps) == 25  # every 40 m
    ys = lamps.geometry.y.to_numpy()
    assert (abs(abs(ys) - 9) < 3).all() and (ys > 0).sum() in (12, 13)  # both sides of the road
    assert set(frame["class_code"]) >= {"0118", "0104", "0402", "0305"}
    assert frame["DeptName1"].str.endswith("（合成）").all()
    again = census_points([shapely.LineString([(0, 0), (1000, 0)])], seed=1)
    assert again.geometry.equals(frame.geometry)  # seeded


def test_synthetic_census_is_imported_along_the_roads_and_labelled(zz):
    from citygrid.components_survey import synthetic

    result = synthetic.generate(zz, "410104")
    assert result.state == "committed" and result.counts["bad"] == 0 and result.counts["good"] > 10_000
    stats = zz.execute(sa.text(
        """SELECT count(*) AS n, count(*) FILTER (WHERE synthetic) AS synthetic,
                  count(*) FILTER (WHERE unit_grid_code IS NOT NULL) AS gridded
             FROM components WHERE district_code = '410104' AND valid_to IS NULL""")).mappings().one()
    assert stats["n"] == stats["synthetic"] == result.counts["good"]
    assert stats["gridded"] > 0.95 * stats["n"]
    far = zz.execute(sa.text(
        """SELECT count(*) FROM (SELECT geom FROM components WHERE district_code = '410104' LIMIT 500) c
            WHERE NOT EXISTS (SELECT 1 FROM lines l WHERE l.district_code = '410104' AND l.kind = 'road'
                                AND ST_DWithin(l.geom, c.geom, 20))""")).scalar_one()
    assert far == 0


def restart_database(settings, engine) -> str:
    """Restart the embedded server (or, on a server named by DATABASE_URL, drop every other connection to the
    database, which is what a restart does to a client). Returns which it did."""
    from citygrid.spatial.cluster import EmbeddedCluster

    if not settings.database_url:
        cluster = EmbeddedCluster(settings)
        tcp = cluster.tcp_enabled()  # keep what the run started with (make test's second pass uses TCP)
        cluster.stop()
        cluster.start(tcp=tcp)
        return "restarted"
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
    return "terminated"


def test_database_restart_during_an_import_rolls_it_back_and_the_job_says_so(job_engine, beijing_db, tmp_path):
    # no connection of this test may be open across the restart: the points come from a short one
    with job_engine.connect() as conn:
        boundary = district_boundary(conn, DISTRICT).buffer(-50)
    rng = np.random.default_rng(7)
    x, y = rng.uniform(*boundary.bounds[::2], 4000), rng.uniform(*boundary.bounds[1::2], 4000)
    keep = shapely.contains_xy(boundary, x, y)
    points = x[keep][:200], y[keep][:200]
    census_frame(points, n=10).to_file(tmp_path / "a.gpkg")
    options = CensusOptions(district=DISTRICT)
    jobs.run_job(job_engine, jobs.new_job(job_engine, tmp_path / "a.gpkg", options, created_by="t"),
                 tmp_path / "a.gpkg", options)
    census_frame(points, n=200).to_file(tmp_path / "b.gpkg")
    small_chunks = CensusOptions(district=DISTRICT, chunk_size=100)
    job_id = jobs.new_job(job_engine, tmp_path / "b.gpkg", small_chunks, created_by="t")
    happened = []

    def restart_once(percent, counts):  # after the first chunk is staged, inside the import's transaction
        if not happened:
            happened.append(restart_database(beijing_db, job_engine))

    with pytest.raises(sa.exc.OperationalError):
        jobs.run_job(job_engine, job_id, tmp_path / "b.gpkg", small_chunks, progress=restart_once)
    assert happened
    with job_engine.connect() as conn:
        assert survey.current_components(conn, DISTRICT) == 10  # the census as it was
        record = survey.job(conn, job_id)
    assert record["state"] == "failed" and "connection was lost" in record["message"]
    # and the same file imports completely once the database is back
    again = jobs.new_job(job_engine, tmp_path / "b.gpkg", small_chunks, created_by="t")
    assert jobs.run_job(job_engine, again, tmp_path / "b.gpkg", small_chunks)["state"] == "committed"
    with job_engine.connect() as conn:
        assert survey.current_components(conn, DISTRICT) == 200


# ------------------------------------------------------------------------------------------ fast paths
def test_copy_text_round_trips_every_character_the_format_escapes(bj):
    """Rows written for COPY's text format come back exactly, whatever characters they hold."""
    import pyarrow as pa

    from citygrid.loaders.copytext import copy_text

    values = ["a\tb", "line\nbreak", "cr\rx", "back\\slash", 'quote"d', "\x01one", "\\N", "普查 中文", None, "",
              '{"k": "v\\"q"}', "x,y", "'s", "\\001", "end\\"]
    data = copy_text([pa.array(values), pa.array([str(i) for i in range(len(values))])], safe=frozenset({1}))
    bj.execute(sa.text("CREATE TEMP TABLE copy_probe (v text, i int) ON COMMIT DROP"))
    with bj.connection.dbapi_connection.cursor() as cursor, cursor.copy("COPY copy_probe (v, i) FROM STDIN") as copy:
        copy.write(data)
    assert bj.execute(sa.text("SELECT v FROM copy_probe ORDER BY i")).scalars().all() == values
    assert copy_text([pa.array([], type=pa.string())]) == b""


def test_the_cell_table_is_stored_read_back_and_rebuilt_when_unreadable(bj):
    from citygrid.spatial.geocode import GridIndex

    first = GridIndex.for_district(bj, DISTRICT).with_stored_table(bj)
    stored = bj.execute(sa.text("SELECT count(*) FROM grid_cell_tables WHERE district_code = :d "
                                "AND grids_digest = :g"), {"d": DISTRICT, "g": first.digest}).scalar_one()
    again = GridIndex.for_district(bj, DISTRICT)
    assert stored == 1 and again.digest == first.digest
    again.with_stored_table(bj)
    assert np.array_equal(again.cells.table, first.cells.table) and again.cells.x0 == first.cells.x0
    rng = np.random.default_rng(5)
    x0, y0, x1, y1 = shapely.total_bounds(again.tree.geometries)
    x, y = rng.uniform(x0, x1, 30_000), rng.uniform(y0, y1, 30_000)
    assert np.array_equal(again.assign(x, y), again.assign_exact(x, y))
    bj.execute(sa.text("UPDATE grid_cell_tables SET cells = 'not zlib' WHERE district_code = :d"), {"d": DISTRICT})
    rebuilt = GridIndex.for_district(bj, DISTRICT).with_stored_table(bj)
    assert np.array_equal(rebuilt.cells.table, first.cells.table)
    assert bj.execute(sa.text("SELECT cells <> 'not zlib' FROM grid_cell_tables WHERE district_code = :d "
                              "AND grids_digest = :g"), {"d": DISTRICT, "g": first.digest}).scalar_one()


def test_a_nul_character_is_a_bad_row(bj, points, tmp_path):
    x, y = points
    path = tmp_path / "nul.csv"
    path.write_text("标识码,小类代码,部件名称,备注,颜色,X,Y\n"
                    f"{DISTRICT}0101000001,0101,井盖,fine,红,{x[0]},{y[0]}\n"
                    f"{DISTRICT}0101000002,0101,井盖,bad\x00byte,红,{x[1]},{y[1]}\n"
                    f"{DISTRICT}0101000003,0101,井盖,fine,红\x00,{x[2]},{y[2]}\n", encoding="utf-8")
    result = run(bj, path, crs="EPSG:4548", x_field="X", y_field="Y")
    got = reasons(result)
    # in a standard attribute (Note) and in a column kept among the extra attributes (颜色)
    assert result.counts["good"] == 1 and "NUL character" in got[3] and "NUL character" in got[4]


def test_the_copy_connection_gets_a_wider_send_buffer():
    import socket

    left, right = socket.socketpair()
    with left, right:
        survey._widen_send_buffer(left.fileno(), 1 << 20)
        cap = int(Path("/proc/sys/net/core/wmem_max").read_text())
        # Linux doubles what it is asked for (bookkeeping), within the cap; the connection stays open
        assert left.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 2 * min(1 << 20, cap)
        left.sendall(b"still open")
        assert right.recv(16) == b"still open"


def test_objects_older_than_the_import_are_frozen_only_while_it_runs(bj, points, tmp_path):
    import gc

    census_frame(points, n=5).to_file(tmp_path / "f.gpkg")
    during = []
    import_file(bj, tmp_path / "f.gpkg", CensusOptions(district=DISTRICT),
                progress=lambda percent, counts: during.append(gc.get_freeze_count()))
    assert during and min(during) > 0 and gc.get_freeze_count() == 0  # (the rules: tests/test_gcpause.py)


def test_a_job_stages_the_load_apart_and_builds_its_indexes_before_the_swap(job_engine, points, tmp_path,
                                                                          monkeypatch):
    """A job's transaction has written nothing when the import starts, so the rows are staged by another
    connection and the indexes built by two more before the swap (the partition keeps their names)."""
    built, build = [], survey.build_load_indexes

    def recorded(engine, name):
        built.append(name)
        build(engine, name)

    monkeypatch.setattr(survey, "build_load_indexes", recorded)
    census_frame(points, n=6).to_file(tmp_path / "s.gpkg")
    options = CensusOptions(district=DISTRICT)
    record = jobs.run_job(job_engine, jobs.new_job(job_engine, tmp_path / "s.gpkg", options, created_by="t"),
                          tmp_path / "s.gpkg", options)
    assert record["state"] == "committed" and record["counts"]["new"] == 6 and len(built) == 1
    with job_engine.connect() as conn:
        indexes = conn.execute(sa.text("SELECT indexname FROM pg_indexes WHERE tablename = :t ORDER BY 1"),
                               {"t": f"components_{DISTRICT}"}).scalars().all()
        assert indexes == [f"{built[0]}_geom_gist", f"{built[0]}_pkey"]
        assert survey.current_components(conn, DISTRICT) == 6
        # The history of one of them resolves through the primary key, ObjID first.
        assert len(survey.component_history(conn, f"{DISTRICT}0101000001")) == 1


def test_an_orphaned_load_table_waits_while_an_import_runs_and_goes_after(job_engine):
    with job_engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {survey.LOAD_PREFIX}00000000000000aa (x int)"))
    with job_engine.connect() as holder:
        holder.begin()
        survey.lock_census(holder)
        assert survey.drop_orphan_loads(job_engine) == 0
        holder.rollback()
    assert survey.drop_orphan_loads(job_engine) == 1 and _tables(job_engine, survey.LOAD_PREFIX) == []


# ------------------------------------------------------------------------------------------ scope (#19)
def one_class(points, cls, n, start=0):
    """``n`` components of class ``cls`` (ObjIDs …``cls``000001 on) at the fixture's points from ``start``."""
    x, y = points
    return gpd.GeoDataFrame({"标识码": [f"{DISTRICT}{cls}{i + 1:06d}" for i in range(n)], "小类代码": [cls] * n,
                             "部件名称": ["部件"] * n},
                            geometry=shapely.points(x[start:start + n], y[start:start + n]), crs=4548)


def census_of_40(bj, points, tmp_path):
    """Commit a census of 40: classes 0101, 0102, 0103, 0201, ten each; returns the frame."""
    frame = census_frame(points, n=40)
    frame.to_file(tmp_path / "all.gpkg")
    assert run(bj, tmp_path / "all.gpkg").counts["new"] == 40
    return frame


@pytest.mark.parametrize("share", [survey.IN_PLACE_SHARE, 0.0], ids=["in-place", "swapped"])
def test_a_census_of_one_class_leaves_the_other_classes(bj, points, tmp_path, monkeypatch, share):
    monkeypatch.setattr(survey, "IN_PLACE_SHARE", share)
    frame = census_of_40(bj, points, tmp_path)
    one_class(points, "0113", 5, start=100).to_file(tmp_path / "hydrants.gpkg")  # a class of its own
    hydrants = run(bj, tmp_path / "hydrants.gpkg")
    assert hydrants.state == "committed" and hydrants.counts["new"] == 5 and hydrants.counts["retired"] == 0
    assert hydrants.reconciliation["scope"]["classes"] == ["0113"]
    assert survey.current_components(bj, DISTRICT) == 45
    # One class of those already there, one of its components moved: the other classes stay as they are.
    mains = frame[frame["小类代码"] == "0101"].copy()
    mains.loc[0, "geometry"] = shapely.Point(mains.geometry[0].x + 20, mains.geometry[0].y)
    mains.to_file(tmp_path / "0101.gpkg")
    result = run(bj, tmp_path / "0101.gpkg")
    assert result.reconciliation["counts"] == {"new": 0, "moved": 1, "changed": 0, "unchanged": 9, "retired": 0}
    assert result.reconciliation["applied"] == ("in place" if share else "swapped")
    assert result.reconciliation["current_in_scope"] == 10 and result.reconciliation["retire_ratio"] == 0
    assert survey.current_components(bj, DISTRICT) == 45
    closed = bj.execute(sa.text("SELECT obj_id FROM components WHERE district_code = :d AND valid_to IS NOT NULL"),
                        {"d": DISTRICT}).scalars().all()
    assert closed == [frame.iloc[0]["标识码"]]


def test_scope_all_and_mass_retire_are_refused_unless_allowed(bj, points, tmp_path):
    frame = census_of_40(bj, points, tmp_path)
    frame[frame["小类代码"] == "0101"].to_file(tmp_path / "0101.gpkg")
    preview = run(bj, tmp_path / "0101.gpkg", scope="all", dry_run=True)
    rec = preview.reconciliation
    assert preview.state == "preview" and rec["counts"]["retired"] == 30 and rec["current_in_scope"] == 40
    assert rec["scope"]["mode"] == "all" and rec["retire_ratio"] == 0.75 and rec["max_retire_ratio"] == 0.2
    assert rec["summary"].startswith("scope all (the whole census; 40 current components): retires 30 (75.0%")
    assert any("would be refused" in w for w in preview.warnings)
    refused = run(bj, tmp_path / "0101.gpkg", scope="all")
    assert refused.state == "rejected" and refused.reconciliation["refused"] == "mass_retire"
    assert "nothing was imported" in refused.warnings[-1] and "--allow-mass-retire" in refused.warnings[-1]
    assert survey.current_components(bj, DISTRICT) == 40
    relaxed = run(bj, tmp_path / "0101.gpkg", scope="all", max_retire_ratio=0.8, dry_run=True)
    assert relaxed.reconciliation["refused"] is None and not relaxed.warnings
    # Within the default scope too: half the class missing is a mass retire.
    frame[frame["小类代码"] == "0101"].iloc[:5].to_file(tmp_path / "half.gpkg")
    half = run(bj, tmp_path / "half.gpkg")
    assert half.state == "rejected" and half.reconciliation["counts"]["retired"] == 5
    assert half.reconciliation["summary"].startswith("scope classes (class 0101; 10 current components)")
    allowed = run(bj, tmp_path / "0101.gpkg", scope="all", allow_mass_retire=True)
    assert allowed.state == "committed" and allowed.counts["retired"] == 30
    assert survey.current_components(bj, DISTRICT) == 10


@pytest.mark.parametrize(("kwargs", "field"), [({"scope": "everything"}, "scope"),
                                               ({"max_retire_ratio": 1.5}, "max_retire_ratio"),
                                               ({"max_retire_ratio": float("nan")}, "max_retire_ratio"),
                                               ({"id_field": "asset\x00id"}, "id_field"),
                                               ({"id_field": "x" * 300}, "id_field")])
def test_bad_scope_options(kwargs, field):
    with pytest.raises(InvalidInput) as err:
        CensusOptions(district=DISTRICT, **kwargs).validate()
    assert err.value.details[0]["field"] == field


def test_upload_with_scope_all_is_rejected_until_mass_retire_is_allowed(http, points, tmp_path):
    census_frame(points, n=20).to_file(tmp_path / "all.gpkg")
    one_class(points, "0113", 3, start=50).to_file(tmp_path / "h.gpkg")

    def upload(name, **form):
        with (tmp_path / name).open("rb") as fh:
            response = http.post("/api/v1/imports", data={"district": DISTRICT, "file": (fh, name), **form},
                                 content_type="multipart/form-data")
        assert response.status_code == 202, response.get_json()
        return wait_for(http, response.get_json()["job_id"])

    assert upload("all.gpkg")["state"] == "committed"
    assert upload("h.gpkg")["counts"]["retired"] == 0  # scoped to its class
    job = upload("h.gpkg", scope="all")
    assert job["state"] == "rejected" and "max_retire_ratio" in job["message"]
    assert job["preview"]["reconciliation"]["refused"] == "mass_retire"
    preview = upload("h.gpkg", scope="all", dry_run="true")
    assert preview["state"] == "preview"
    assert_error(http.post(f"/api/v1/imports/{preview['job_id']}/commit", data={"allow_mass_retire": "maybe"}),
                 400, "invalid_input", field="allow_mass_retire")
    committed = http.post(f"/api/v1/imports/{preview['job_id']}/commit", data={"allow_mass_retire": "true"})
    done = wait_for(http, committed.get_json()["job_id"])
    assert done["state"] == "committed" and done["counts"]["retired"] == 20


@pytest.mark.parametrize(("form", "needle"), [({"scope": "everything"}, "scope"),
                                              ({"max_retire_ratio": "lots"}, "number"),
                                              ({"allow_mass_retire": "perhaps"}, "true or false"),
                                              ({"mapping": "colums: {ObjID: a}"}, "known: columns, set")])
def test_bad_scope_uploads(http, form, needle):
    response = http.post("/api/v1/imports", data={"district": DISTRICT, "file": (io.BytesIO(b"x"), "a.gpkg"),
                                                  **form}, content_type="multipart/form-data")
    assert response.status_code == 400 and needle in response.get_json()["message"]


def test_upload_takes_the_mapping_as_a_file_part_too(http, points, tmp_path):
    """``curl -F mapping=@m.yaml`` sends the mapping file as a file part, which the upload ignored: a Vienna
    trial's CSV with its WKT column named there came back as 19 rows of 'empty geometry' (#19)."""
    x, y = points
    rows = "".join(f"A{i},Hydrant,POINT ({x[i]} {y[i]})\n" for i in range(5))
    mapping = b"columns: {class_code: Art}\nvalues: {class_code: {Hydrant: '0113'}}\ngeometry: {wkt: Geometrie}\n"

    def upload(**parts):
        data = {"district": DISTRICT, "dry_run": "true", "crs": "EPSG:4548",
                "file": (io.BytesIO(("asset_id,Art,Geometrie\n" + rows).encode()), "h.csv"), **parts}
        return http.post("/api/v1/imports", data=data, content_type="multipart/form-data")

    answer = upload(mapping=(io.BytesIO(mapping), "m.yaml"))
    assert answer.status_code == 202, answer.get_json()
    job = wait_for(http, answer.get_json()["job_id"])
    assert job["state"] == "preview" and job["counts"]["bad"] == 0 and job["counts"]["good"] == 5
    for parts, needle in [({"mapping": (io.BytesIO(b"\xff\xfe\x00x"), "m.yaml")}, "UTF-8"),
                          ({"mapping": (io.BytesIO(b"a: " + b"x" * 300_000), "m.yaml")}, "KiB"),
                          ({"mapping": [(io.BytesIO(mapping), "m.yaml"), (io.BytesIO(mapping), "n.yaml")]}, "one"),
                          ({"source": (io.BytesIO(b"OSM"), "s.txt")}, "source")]:
        bad = upload(**parts)
        assert bad.status_code == 400 and needle in bad.get_json()["message"], (parts, bad.get_json())


# ------------------------------------------------------------------------------------------ mapping files (#19)
def mapping_file(tmp_path, text, name="m.yaml"):
    from citygrid.components_survey.mapping import load_mapping_file

    (tmp_path / name).write_text(text, encoding="utf-8")
    return load_mapping_file(tmp_path / name)


def test_mapping_sets_constants_and_maps_values(bj, points, tmp_path):
    x, y = points
    frame = gpd.GeoDataFrame({"树种": ["国槐", "银杏", "国槐", "松树"], "state": ["ok", "dead", "OK", "ok"]},
                             geometry=shapely.points(x[:4], y[:4]), crs=4548)
    frame.to_file(tmp_path / "trees.gpkg")
    mapping = mapping_file(tmp_path, """
columns: {ObjName: 树种, status: state}
values:
  class_code: {国槐: "0402", 银杏: "0402"}
  status: {ok: 完好, dead: 损坏}
set: {DeptName1: 朝阳区园林绿化局}
""")
    # The class comes from the species: set the column, then map its values (松树 stays unknown: a row problem).
    with pytest.raises(InvalidInput, match="both mapped to column"):
        mapping_file(tmp_path, "columns: {ClassCode: 树种}\nset: {class_code: '0402'}\n", "both.yaml")
    mapping["columns"]["ClassCode"] = "树种"
    result = run(bj, tmp_path / "trees.gpkg", mapping=mapping, max_bad_ratio=0.5)
    assert result.state == "committed" and result.counts["new"] == 3
    assert reasons(result) == {5: "unknown component class '松树'"}
    rows = bj.execute(sa.text("SELECT obj_name, class_code, obj_state, dept_name1 FROM components "
                              "WHERE district_code = :d ORDER BY obj_id"), {"d": DISTRICT}).all()
    assert rows == [("国槐", "0402", "完好", "朝阳区园林绿化局"), ("银杏", "0402", "损坏", "朝阳区园林绿化局"),
                    ("国槐", "0402", "完好", "朝阳区园林绿化局")]  # case is ignored by default: "OK" is "ok"
    constant = mapping_file(tmp_path, "set: {class_code: '0402'}\n", "c.yaml")
    assert run(bj, tmp_path / "trees.gpkg", mapping=constant, dry_run=True).counts["bad"] == 0


def test_census_value_maps_may_be_case_sensitive(bj, points, tmp_path):
    x, y = points
    frame = gpd.GeoDataFrame({"kind": ["OAK", "oak", "Oak"], "state": ["ok", "OK", "Ok"]},
                             geometry=shapely.points(x[:3], y[:3]), crs=4548)
    frame.to_file(tmp_path / "oaks.gpkg")
    exact = mapping_file(tmp_path, """
columns: {status: state}
values:
  class_code: {OAK: "0402", oak: "0402", Oak: "0402"}
  status: {ok: 完好, OK: 损坏}
case_sensitive: true
""")
    result = run(bj, tmp_path / "oaks.gpkg", mapping={**exact, "columns": {**exact["columns"], "ClassCode": "kind"}},
                 max_bad_ratio=0.5)
    assert result.state == "committed" and result.counts["new"] == 3
    states = bj.execute(sa.text("SELECT obj_state FROM components WHERE district_code = :d ORDER BY obj_id"),
                        {"d": DISTRICT}).scalars().all()
    assert states == ["完好", "损坏", "Ok"]  # exact: "Ok" is neither key
    # Without case_sensitive, keys that differ only in case must agree, or the mapping says how to keep both.
    with pytest.raises(InvalidInput, match=r"differ only in case.*case_sensitive: true"):
        mapping_file(tmp_path, "values:\n  status: {ok: 完好, OK: 损坏}\n", "clash.yaml")
    with pytest.raises(InvalidInput, match="case_sensitive must be true or false"):
        mapping_file(tmp_path, "case_sensitive: 'yes please'\n", "bad.yaml")


@pytest.mark.parametrize("fmt", ["wkt", "wkb"])
def test_csv_geometry_from_a_wkt_or_wkb_column(bj, points, tmp_path, fmt):
    x, y = points
    geoms = list(shapely.points(x[:5], y[:5]))
    text = (shapely.to_wkt(geoms) if fmt == "wkt" else shapely.to_wkb(geoms, hex=True)).tolist()
    text[1] = "POINT (1" if fmt == "wkt" else "0101000000FFFF"          # unreadable: a row problem
    text[2] = shapely.to_wkt(shapely.LineString([(x[2], y[2]), (x[3], y[3])])) if fmt == "wkt" else \
        shapely.to_wkb(shapely.LineString([(x[2], y[2]), (x[3], y[3])]), hex=True)
    text[3] = ""                                                         # no geometry
    pd.DataFrame({"asset": ["a1", "a2", "a3", "a4", "a5"], "shape": text}).to_csv(tmp_path / "g.csv", index=False)
    mapping = mapping_file(tmp_path, f"set: {{class_code: '0402'}}\ngeometry: {{{fmt}: shape}}\n")
    result = run(bj, tmp_path / "g.csv", crs="EPSG:4548", mapping=mapping, max_bad_ratio=0.9)
    assert result.state == "committed" and result.counts["new"] == 2 and result.counts["bad"] == 3
    found = reasons(result)
    assert found[3].startswith(f"not readable {'WKT' if fmt == 'wkt' else 'hex WKB'}: ")
    assert found[4] == "not a point (LineString)" and found[5] == "empty geometry"
    stored = bj.execute(sa.text("SELECT ST_X(geom), ST_Y(geom), attrs FROM components WHERE district_code = :d "
                                "ORDER BY obj_id"), {"d": DISTRICT}).all()
    assert abs(stored[0][0] - x[0]) < 1e-6 and abs(stored[1][1] - y[4]) < 1e-6
    assert stored[0][2] == {"asset": "a1"}  # the geometry column is not kept as an attribute


def test_bad_mapping_files(bj, points, tmp_path):
    with pytest.raises(InvalidInput, match=r"unknown keys colums; known: columns, set, values, case_sensitive, "
                                           r"geometry, id_field \(attributes: ObjID, ClassCode"):
        mapping_file(tmp_path, "colums: {ObjID: a}\n")
    with pytest.raises(InvalidInput, match="values names unknown attributes colour; known: ObjID"):
        mapping_file(tmp_path, "values: {colour: {red: rot}}\n")
    with pytest.raises(InvalidInput, match=r"set.class_code is int '258', not text.*quote it"):
        mapping_file(tmp_path, "set: {class_code: 0402}\n")  # YAML 1.1 octal
    with pytest.raises(InvalidInput, match="aliases"):
        mapping_file(tmp_path, "set: {class_code: &c '0402'}\nvalues: {class_code: {a: *c}}\n")
    with pytest.raises(InvalidInput, match="control character"):
        mapping_file(tmp_path, 'set: {note: "a\\x07b"}\n')
    with pytest.raises(InvalidInput, match="one ObjID"):
        mapping_file(tmp_path, "set: {obj_id: '1101050101000001'}\n")
    with pytest.raises(InvalidInput, match=r"geometry must be one of \{wkt: column\} or \{wkb: column\}"):
        mapping_file(tmp_path, "geometry: {geojson: g}\n")
    with pytest.raises(InvalidInput, match="is empty"):
        mapping_file(tmp_path, "")
    with pytest.raises(InvalidInput, match="longer than"):
        mapping_file(tmp_path, f"values: {{status: {{a: '{'x' * 600}'}}}}\n")
    census_frame(points, n=3).to_file(tmp_path / "c.gpkg")
    with pytest.raises(InvalidInput, match="reads a CSV column"):
        run(bj, tmp_path / "c.gpkg", mapping={"geometry": {"wkt": "shape"}})
    pd.DataFrame({"a": ["POINT (1 2)"]}).to_csv(tmp_path / "g.csv", index=False)
    with pytest.raises(InvalidInput, match="geometry column 'shape' not in the file"):
        run(bj, tmp_path / "g.csv", crs="EPSG:4548", mapping={"geometry": {"wkt": "shape"}})


# ------------------------------------------------------------------------------------------ a city's own IDs (#19)
NYC = "NYC-BK"


@pytest.fixture(scope="module")
def nyc_db(server_settings):
    """A New York deployment (UTM 18N, EPSG:26918, the alphanumeric code scheme) with a square of Brooklyn as
    district NYC-BK, no grids; made and used through the CLI."""
    from dataclasses import replace

    from click.testing import CliRunner

    from citygrid.cli import cli
    from tests.conftest import RUN_ID

    name = f"citygrid_test_nyc_{RUN_ID}"
    settings = replace(server_settings, database=name)
    db.drop_database(settings)
    runner = CliRunner()
    init = runner.invoke(cli, ["--database", name, "db", "init", "--srid", "26918", "--name", "New York",
                               "--code-scheme", "alnum"], catch_exceptions=False)
    assert init.exit_code == 0, init.output
    boundary = Path(__file__).resolve().parent / f"nyc_bk_{RUN_ID}.geojson"
    gpd.GeoDataFrame({"name": ["Brooklyn (part)"]}, geometry=[shapely.box(-73.97, 40.65, -73.92, 40.70)],
                     crs=4326).to_file(boundary)
    try:
        imported = runner.invoke(cli, ["--database", name, "districts", "import", str(boundary), "--code", NYC,
                                       "--name", "Brooklyn"], catch_exceptions=False)
        assert imported.exit_code == 0, imported.output
    finally:
        boundary.unlink(missing_ok=True)
    yield settings
    db.drop_database(settings)


def nyc_import(settings, path, *args):
    """``citygrid census import`` into NYC-BK; (exit code, the job record or None, stderr)."""
    import json

    from click.testing import CliRunner

    from citygrid.cli import cli

    result = CliRunner().invoke(cli, ["--database", settings.database, "census", "import", str(path), "--district", NYC,
                                      "--crs", "EPSG:4326", *args], catch_exceptions=False)
    out = result.stdout
    record = json.loads(out[out.index("{"):]) if "{" in out else None
    return result.exit_code, record, result.stderr


NYC_MAPPING = """
columns: {ObjName: kind, class_code: kind, status: condition, or_date: installed}
values:
  class_code: {Hydrant: "0113", Tree: "0402"}
  status: {GOOD: in service, POOR: needs repair}
"""


def nyc_assets(n=12):
    rng = np.random.default_rng(19)
    return pd.DataFrame({
        "asset_id": [f"BK-{i:05d}" for i in range(n)],
        "kind": ["Hydrant" if i % 3 == 0 else "Tree" for i in range(n)],
        "condition": ["GOOD" if i % 2 else "POOR" for i in range(n)],
        "installed": ["2019-04-01"] * n,
        "lon": rng.uniform(-73.96, -73.93, n), "lat": rng.uniform(40.66, 40.69, n),
    })


def test_a_citys_own_ids_key_the_reconciliation_and_keep_their_objids(nyc_db, tmp_path):
    (tmp_path / "m.yaml").write_text(NYC_MAPPING, encoding="utf-8")
    assets = nyc_assets()
    assets.to_csv(tmp_path / "assets.csv", index=False)
    args = ("--mapping", str(tmp_path / "m.yaml"), "--id-field", "asset_id")
    code, first, _ = nyc_import(nyc_db, tmp_path / "assets.csv", *args)
    assert code == 0 and first["state"] == "committed", first
    assert first["counts"]["new"] == 12 and first["counts"]["generated_ids"] == 12
    engine = db.make_engine(db.database_url(nyc_db))
    try:
        with engine.connect() as conn:
            ids = dict(conn.execute(sa.text("SELECT native_id, obj_id FROM components WHERE valid_to IS NULL")).all())
            row = conn.execute(sa.text("SELECT class_code, obj_name, obj_state, attrs FROM components "
                                       "WHERE native_id = 'BK-00000'")).one()
        assert ids["BK-00000"] == f"{NYC}0113000001" and ids["BK-00001"] == f"{NYC}0402000001"
        assert tuple(row) == ("0113", "Hydrant", "needs repair", {"lon": row[3]["lon"], "lat": row[3]["lat"]})
        # The same file again: all unchanged, every ObjID kept.
        code, again, _ = nyc_import(nyc_db, tmp_path / "assets.csv", *args)
        assert code == 0 and again["counts"]["unchanged"] == 12 and again["counts"]["new"] == 0
        assert again["counts"]["retired"] == 0 and again["counts"]["kept_ids"] == 12
        assert again["preview"]["reconciliation"]["scope"]["key"] == "native_id"
        # One moved (about 40 m): one moved, the rest unchanged, the same ObjID with two versions.
        assets.loc[4, "lon"] += 0.0005
        assets.to_csv(tmp_path / "moved.csv", index=False)
        code, moved, _ = nyc_import(nyc_db, tmp_path / "moved.csv", *args)
        assert code == 0 and moved["counts"]["moved"] == 1 and moved["counts"]["unchanged"] == 11
        assert moved["counts"]["new"] == 0 and moved["counts"]["retired"] == 0
        with engine.connect() as conn:
            versions = conn.execute(sa.text("SELECT obj_id, valid_to IS NULL FROM components "
                                            "WHERE native_id = :n ORDER BY valid_from"),
                                    {"n": "BK-00004"}).all()
            now = dict(conn.execute(sa.text("SELECT native_id, obj_id FROM components WHERE valid_to IS NULL")).all())
        assert [v[1] for v in versions] == [False, True] and versions[0][0] == versions[1][0]
        assert now == ids
        # Without --id-field the file has no ObjIDs to match: everything would be new and the rest retired,
        # which the retire ratio refuses (exit 4, nothing imported).
        code, blind, err = nyc_import(nyc_db, tmp_path / "moved.csv", "--mapping", str(tmp_path / "m.yaml"))
        assert code == 4 and blind["state"] == "rejected" and blind["counts"]["retired"] == 12
        assert "error: " in err and "--allow-mass-retire" in err
        with engine.connect() as conn:
            assert survey.current_components(conn, NYC) == 12
        # The component API and search take such ObjIDs (not only 16 digits).
        from citygrid.app import create_app
        from tests.conftest import user_token

        with engine.begin() as conn:
            token = user_token(conn, "nyc-gis", ["gis"])
        client = signed_in(create_app({"CITYGRID_SETTINGS": nyc_db, "TESTING": True}).test_client(), token)
        doc = client.get(f"/api/v1/components/{ids['BK-00004']}").get_json()
        assert len(doc["versions"]) == 2 and doc["current"]["valid_to"] is None
        found = client.get("/api/v1/search", query_string={"q": ids["BK-00004"]}).get_json()["results"]
        assert [r["kind"] for r in found] == ["component"] and -73.97 < found[0]["lon"] < -73.92
        assert_error(client.get("/api/v1/components/NYC-BK0113"), 400, "invalid_input", field="obj_id",
                     reason="component ObjID 'NYC-BK0113'")
    finally:
        engine.dispose()


def test_bad_native_ids_are_row_problems(nyc_db, tmp_path):
    (tmp_path / "m.yaml").write_text(NYC_MAPPING, encoding="utf-8")
    assets = nyc_assets(6)
    assets.loc[2, "asset_id"] = "BK-00001"   # a duplicate
    assets.loc[3, "asset_id"] = " "          # none
    assets.to_csv(tmp_path / "bad.csv", index=False)
    code, record, _ = nyc_import(nyc_db, tmp_path / "bad.csv", "--mapping", str(tmp_path / "m.yaml"),
                                 "--id-field", "asset_id", "--dry-run", "--max-bad-ratio", "0.5")
    assert code == 0 and record["state"] == "preview" and record["counts"]["bad"] == 2
    found = {p["line"]: p["reason"] for p in record["first_problems"]}
    assert found == {4: "duplicate feature ID 'BK-00001' (first at line 3)",
                     5: "no feature ID in asset_id (--id-field)"}
    code, _, err = nyc_import(nyc_db, tmp_path / "bad.csv", "--mapping", str(tmp_path / "m.yaml"),
                              "--id-field", "nope")
    assert code == 2 and "the feature ID column 'nope' (--id-field) is not in the file" in err


def test_geometry_text_that_lies_is_a_row_problem_not_a_crash():
    from citygrid.loaders.points import from_text

    wkb = from_text(np.array(["0102000000FFFFFF7F", "01070000009FFFFFFF", None, "  ",
                              shapely.to_wkb(shapely.Point(3, 4), hex=True)], dtype=object), "wkb")
    assert list(wkb.problem[:4]) == ["not readable hex WKB: '0102000000FFFFFF7F'",
                                     "not readable hex WKB: '01070000009FFFFFFF'", "empty geometry", "empty geometry"]
    assert wkb.problem[4] == "" and (wkb.x[4], wkb.y[4]) == (3.0, 4.0)
    with np.errstate(over="ignore"):
        wkt = from_text(np.array(["POINT (1e400 2)", "POINT EMPTY", "MULTIPOINT ((1 2))",
                                  "GEOMETRYCOLLECTION (" * 60 + ")" * 60, "POINT (1 2) garbage" + "x" * 100],
                                 dtype=object), "wkt")
    assert wkt.problem[0] == "invalid coordinates (NaN or infinite)" and wkt.problem[1] == "empty geometry"
    assert wkt.problem[2] == "" and wkt.problem[3].startswith("not readable WKT: 'GEOMETRYCOLLECTION")
    assert wkt.problem[4].endswith("…'") and len(wkt.problem[4]) < 70  # quoted, cut short
    with pytest.raises(ValueError):
        from_text(np.array(["POINT (1 2)"], dtype=object), "geojson")


def test_a_report_may_name_a_component_of_any_code_scheme():
    from citygrid.cases.intake import parse_report

    base = {"lon": -73.95, "lat": 40.67, "class_code": "0113", "description": "hydrant leaking"}
    assert parse_report({**base, "component_obj_id": "NYC-BK0113000001"}).component_obj_id == "NYC-BK0113000001"
    assert parse_report({**base, "component_obj_id": "1101050101000001"}).component_obj_id == "1101050101000001"
    for bad in ("123", "NYC-BK0113", "nyc-bk0113000001", "NYC-BK0113000001; DROP", "-NYC0113000001"):
        with pytest.raises(InvalidInput) as err:
            parse_report({**base, "component_obj_id": bad})
        assert err.value.details[0]["field"] == "component_obj_id"


def test_a_citys_own_ids_through_the_swapped_path(nyc_db, tmp_path, monkeypatch):
    monkeypatch.setattr(survey, "IN_PLACE_SHARE", 0.0)  # every re-import rebuilt and swapped
    (tmp_path / "m.yaml").write_text(NYC_MAPPING, encoding="utf-8")
    assets = nyc_assets()
    assets.to_csv(tmp_path / "a.csv", index=False)
    args = ("--mapping", str(tmp_path / "m.yaml"), "--id-field", "asset_id")
    assert nyc_import(nyc_db, tmp_path / "a.csv", *args)[0] == 0  # new, or back to this state
    code, again, _ = nyc_import(nyc_db, tmp_path / "a.csv", *args)
    assert code == 0 and again["counts"]["unchanged"] == 12 and again["counts"]["new"] == 0  # (nothing to swap)
    assets.loc[7, "lat"] += 0.0005
    assets.to_csv(tmp_path / "b.csv", index=False)
    code, moved, _ = nyc_import(nyc_db, tmp_path / "b.csv", *args)
    assert code == 0 and moved["counts"]["moved"] == 1 and moved["counts"]["unchanged"] == 11
    assert moved["preview"]["reconciliation"]["applied"] == "swapped"
    engine = db.make_engine(db.database_url(nyc_db))
    try:
        with engine.connect() as conn:
            current = dict(conn.execute(sa.text("SELECT native_id, obj_id FROM components "
                                                "WHERE valid_to IS NULL")).all())
            versions = conn.execute(sa.text("SELECT count(DISTINCT obj_id), count(*) FROM components "
                                            "WHERE native_id = 'BK-00007'")).one()
    finally:
        engine.dispose()
    assert len(current) == 12 and current["BK-00007"] == f"{NYC}0402000005"
    assert versions[0] == 1 and versions[1] >= 2  # one ObjID, its versions kept through the swap
