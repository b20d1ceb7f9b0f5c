"""Importing districts, streets/communities and lines: the demo districts, and every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
import shapely.affinity
import sqlalchemy as sa

from citygrid.districts import import_areas, import_district, import_lines
from citygrid.errors import InvalidInput, NotFound
from citygrid.loaders.vector import VectorFile, read_vector
from citygrid.spatial import store
from citygrid.spatial.crs import parse_crs

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "data" / "demo"
OFFICIAL_CHAOYANG_KM2 = 470.8


def count(conn, sql: str, **params) -> int:
    return conn.execute(sa.text(sql), params).scalar_one()


# ------------------------------------------------------------------------------------------ demo districts
def test_chaoyang_area_within_3_percent_of_official(bj):
    area = store.district_row(bj, "110105")["area_m2"] / 1e6
    assert abs(area - OFFICIAL_CHAOYANG_KM2) / OFFICIAL_CHAOYANG_KM2 < 0.03


def test_chaoyang_streets_and_communities_with_and_without_points(bj):
    q = "SELECT count(*) FROM admin_areas WHERE district_code = '110105' AND level = :lvl"
    assert count(bj, q, lvl="street") == 43
    assert count(bj, q, lvl="community") == 598
    assert count(bj, q + " AND point IS NOT NULL", lvl="street") == 28
    assert count(bj, q + " AND point IS NOT NULL", lvl="community") == 298
    # No polygon is passed off as real: the only polygons are the gridding's derived ones, flagged as such.
    assert count(bj, "SELECT count(*) FROM admin_areas WHERE geom IS NOT NULL AND NOT geom_derived") == 0


def test_every_community_points_to_a_loaded_street(bj):
    orphans = count(bj, """SELECT count(*) FROM admin_areas c LEFT JOIN admin_areas s
                            ON s.district_code = c.district_code AND s.code = c.parent_code AND s.level = 'street'
                           WHERE c.level = 'community' AND s.code IS NULL""")
    assert orphans == 0


def test_chaoyang_points_inside_boundary_after_gcj_conversion(bj):
    outside = count(bj, """SELECT count(*) FROM admin_areas a JOIN districts d USING (district_code)
                           WHERE a.point IS NOT NULL AND NOT ST_DWithin(a.point, d.geom, 1)""")
    assert outside == 0


def test_guancheng_roads_clipped_and_attributed(zz):
    summary = store.district_summaries(zz)[0]
    assert summary["code"] == "410104" and summary["streets"] == 13 and summary["communities"] == 122
    assert 650 < summary["road_km"] < 780
    outside = count(zz, """SELECT count(*) FROM lines l JOIN districts d USING (district_code)
                           WHERE NOT ST_CoveredBy(l.geom, ST_Buffer(d.geom, 0.01))""")
    assert outside == 0
    licences = zz.execute(sa.text("SELECT DISTINCT licence FROM lines")).scalars().all()
    assert licences == ["ODbL 1.0 — © OpenStreetMap contributors"]


def test_reloading_the_demo_is_a_no_op(beijing_db):
    from citygrid import deploy

    assert deploy.load_demo(beijing_db, "chaoyang", history=False, census=False)["loaded"] is False


def test_imports_are_audited(bj):
    actions = bj.execute(sa.text("SELECT object_kind FROM audit_log WHERE district_code = '110105'")).scalars().all()
    assert {"district", "street_areas", "community_areas"} <= set(actions)


# ------------------------------------------------------------------------------------------ district: bad input
def gcj_boundary():
    return read_vector(DEMO / "chaoyang" / "chaoyang_110105.geojson", crs="gcj02")


@pytest.mark.parametrize(("code", "name", "field"), [("11010", "x", "code"), ("abcdef", "x", "code"),
                                                     ("110199", "  ", "name"), ("110199", "名" * 101, "name")])
def test_district_bad_code_or_name(bj, code, name, field):
    with pytest.raises(InvalidInput) as err:
        import_district(bj, gcj_boundary(), code=code, name=name)
    assert err.value.details[0]["field"] == field


def test_district_from_the_wrong_city_names_the_right_crs(bj):
    vf = read_vector(DEMO / "guancheng" / "guancheng_410104.geojson", crs="gcj02")
    with pytest.raises(InvalidInput, match="EPSG:4547"):
        import_district(bj, vf, code="410104", name="管城回族区")
    assert store.district_row(bj, "410104") is None


def test_district_picked_by_code_from_a_multi_district_file(bj):
    chaoyang = gcj_boundary().frame.geometry.iloc[0]
    frame = gpd.GeoDataFrame({"adcode": [110105, 110101]},
                             geometry=[chaoyang, shapely.affinity.translate(chaoyang, -0.3, 0)])
    vf = VectorFile(frame=frame, source_crs=parse_crs("gcj02"), crs_from="user")
    summary = import_district(bj, vf, code="110105", name="朝阳区")
    assert summary["features_used"] == 1
    with pytest.raises(InvalidInput, match="no feature with adcode = 120101"):
        import_district(bj, vf, code="120101", name="x")


def test_district_must_be_polygonal(bj, tmp_path):
    frame = gpd.GeoDataFrame({"n": [1]}, geometry=[shapely.Point(116.45, 39.92)], crs=4326)
    frame.to_file(tmp_path / "pt.geojson")
    with pytest.raises(InvalidInput, match="Polygon or MultiPolygon"):
        import_district(bj, read_vector(tmp_path / "pt.geojson"), code="110199", name="x")


def test_district_empty_file(bj, tmp_path):
    path = tmp_path / "empty.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    with pytest.raises(InvalidInput, match="no geometry"):
        import_district(bj, read_vector(path, crs="EPSG:4326"), code="110199", name="x")


def test_invalid_boundary_is_repaired_and_said(bj, tmp_path):
    bowtie = shapely.Polygon([(116.40, 39.90), (116.45, 39.95), (116.45, 39.90), (116.40, 39.95), (116.40, 39.90)])
    gpd.GeoDataFrame({"n": [1]}, geometry=[bowtie], crs=4326).to_file(tmp_path / "bow.geojson")
    summary = import_district(bj, read_vector(tmp_path / "bow.geojson"), code="110199", name="蝶形")
    assert summary["repaired"] and summary["area_km2"] > 0
    assert count(bj, "SELECT count(*) FROM districts WHERE district_code = '110199' AND ST_IsValid(geom)") == 1


def test_reimport_replaces_and_audits_before_after(bj):
    import_district(bj, gcj_boundary(), code="110105", name="朝阳区(新)", actor="tester")
    row = bj.execute(sa.text("SELECT before, after FROM audit_log WHERE actor = 'tester'")).mappings().one()
    assert row["before"]["name"] == "朝阳区" and row["after"]["name"] == "朝阳区(新)"


def test_database_refuses_invalid_geometry_directly(bj):
    with pytest.raises(sa.exc.IntegrityError, match="valid"), bj.begin_nested():
        bj.execute(sa.text("""INSERT INTO districts (district_code, name, geom) VALUES ('110198', 'bad',
                ST_SetSRID(ST_GeomFromText('MULTIPOLYGON(((0 0, 1 1, 1 0, 0 1, 0 0)))'), 4548))"""))


# ------------------------------------------------------------------------------------------ areas
def write_csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "areas.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_areas_unknown_district(bj, tmp_path):
    vf = read_vector(write_csv(tmp_path, "code,name\n110105999000,x\n"), crs="gcj02")
    with pytest.raises(NotFound, match="unknown district"):
        import_areas(bj, vf, district="110199", level="street")


def test_areas_every_bad_row_reported_and_nothing_written(bj, tmp_path):
    csv = write_csv(tmp_path, (
        "code,name,lon,lat\n"
        "110105901000,好街道,116.45,39.92\n"      # fine
        "12345,短码,116.45,39.92\n"               # bad code
        "120105901000,外区,116.45,39.92\n"        # another district's code
        "110105901000,重复,116.45,39.92\n"        # duplicate
        "110105902000,,116.45,39.92\n"            # empty name
        "110105903000,远处,117.5,39.92\n"         # far outside
    ))
    with pytest.raises(InvalidInput) as err:
        import_areas(bj, read_vector(csv, crs="gcj02"), district="110105", level="street")
    reasons = {d["line"]: d["reason"] for d in err.value.details}
    assert set(reasons) == {3, 4, 5, 6, 7}
    assert "9 or 12 digits" in reasons[3] and "district code" in reasons[4] and "duplicate" in reasons[5]
    assert "empty name" in reasons[6] and "outside the district" in reasons[7]
    # One RowProblem shape (citygrid.errors.problem): the column, the row's code as its key, an error.
    assert err.value.details[0] == {"line": 3, "field": "code", "reason": reasons[3], "severity": "error",
                                    "key": "12345"}
    assert {(d["line"], d["field"], d["key"]) for d in err.value.details[1:]} == {
        (4, "code", "120105901000"), (5, "code", "110105901000"), (6, "name", "110105902000"),
        (7, "geometry", "110105903000")}
    assert count(bj, "SELECT count(*) FROM admin_areas WHERE code LIKE '1101059%'") == 0


def test_community_needs_a_known_street(bj, tmp_path):
    csv = write_csv(tmp_path, "code,name,parent_code\n110105999001,孤儿社区,110105999000\n")
    with pytest.raises(InvalidInput, match="1 bad row") as err:
        import_areas(bj, read_vector(csv, crs="gcj02"), district="110105", level="community")
    assert "not loaded" in err.value.details[0]["reason"]


def test_rows_without_coordinates_kept_without_location(bj, tmp_path):
    csv = write_csv(tmp_path, "code,name,lon,lat\n110105901000,无坐标街道,,\n")
    summary = import_areas(bj, read_vector(csv, crs="gcj02"), district="110105", level="street")
    assert summary["without_location"] == 1
    assert count(bj, "SELECT count(*) FROM admin_areas WHERE code = '110105901000' AND point IS NULL") == 1


def test_polygon_areas_are_stored_with_a_point(bj, tmp_path):
    boundary = gcj_boundary().frame.geometry.iloc[0]
    inner = shapely.box(116.50, 39.95, 116.52, 39.97)
    assert boundary.contains(inner)
    gpd.GeoDataFrame({"code": ["110105901000"], "name": ["方块街道"]}, geometry=[inner], crs=4326).to_file(
        tmp_path / "poly.gpkg")
    summary = import_areas(bj, read_vector(tmp_path / "poly.gpkg", crs="gcj02"), district="110105",
                           level="street")
    assert summary["polygons"] == 1
    assert count(bj, "SELECT count(*) FROM admin_areas WHERE code = '110105901000' "
                     "AND ST_Contains(geom, point) AND NOT geom_derived") == 1


def test_areas_wrong_level_and_missing_columns(bj, tmp_path):
    vf = read_vector(write_csv(tmp_path, "code,name\n110105901000,x\n"), crs="gcj02")
    with pytest.raises(InvalidInput, match="street or community"):
        import_areas(bj, vf, district="110105", level="county")
    vf = read_vector(write_csv(tmp_path, "id,title\n110105901000,x\n"), crs="gcj02")
    with pytest.raises(InvalidInput, match="need code and name"):
        import_areas(bj, vf, district="110105", level="street")
    with pytest.raises(InvalidInput, match="no column 'kode'"):
        import_areas(bj, vf, district="110105", level="street", code_field="kode")


def test_area_line_geometry_rejected(bj, tmp_path):
    line = shapely.LineString([(116.50, 39.95), (116.52, 39.97)])
    gpd.GeoDataFrame({"code": ["110105901000"], "name": ["线"]}, geometry=[line], crs=4326).to_file(
        tmp_path / "line.gpkg")
    with pytest.raises(InvalidInput) as err:
        import_areas(bj, read_vector(tmp_path / "line.gpkg", crs="gcj02"), district="110105", level="street")
    assert "neither a point nor a polygon" in err.value.details[0]["reason"]


# ------------------------------------------------------------------------------------------ lines
def test_lines_reimport_replaces_same_source(zz):
    roads = read_vector(DEMO / "zhengzhou_osm_roads" / "zhengzhou_jingkai_roads_osm.geojson")
    before = count(zz, "SELECT count(*) FROM lines")
    source = zz.execute(sa.text("SELECT DISTINCT source FROM lines")).scalar_one()
    summary = import_lines(zz, roads, district="410104", kind="road", source=source)
    assert summary["replaced"] == before and count(zz, "SELECT count(*) FROM lines") == before
    assert summary["skipped"].get("outside district", 0) > 0


def test_lines_bad_kind_and_non_lines(zz, tmp_path):
    roads = read_vector(DEMO / "zhengzhou_osm_roads" / "zhengzhou_jingkai_roads_osm.geojson")
    with pytest.raises(InvalidInput, match="road, water or rail"):
        import_lines(zz, roads, district="410104", kind="canal")
    gpd.GeoDataFrame({"n": [1]}, geometry=[shapely.Point(113.75, 34.7)], crs=4326).to_file(tmp_path / "p.geojson")
    with pytest.raises(InvalidInput, match="no LineString"):
        import_lines(zz, read_vector(tmp_path / "p.geojson"), district="410104", kind="road")


def test_lines_mixed_file_skips_and_counts_non_lines(zz, tmp_path):
    frame = gpd.GeoDataFrame(
        {"highway": ["primary", "bus_stop"], "name": ["测试路", "站"]},
        geometry=[shapely.LineString([(113.70, 34.70), (113.72, 34.71)]), shapely.Point(113.71, 34.70)], crs=4326)
    frame.to_file(tmp_path / "mixed.geojson")
    summary = import_lines(zz, read_vector(tmp_path / "mixed.geojson"), district="410104", kind="road",
                           source="mixed")
    assert summary["lines_stored"] == 1 and summary["skipped"] == {"Point": 1}
    assert summary["classes"] == {"primary": 1}


def test_lines_unknown_class_field(zz):
    roads = read_vector(DEMO / "zhengzhou_osm_roads" / "zhengzhou_jingkai_roads_osm.geojson")
    with pytest.raises(InvalidInput, match="no column 'fclass_x'"):
        import_lines(zz, roads, district="410104", kind="road", class_field="fclass_x")
