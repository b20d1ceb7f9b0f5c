"""Reading files: formats, CRS declaration, CSV coordinates and encodings, and the bad cases."""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyarrow as pa
import pytest
import shapely

from citygrid.errors import InvalidInput
from citygrid.loaders import points
from citygrid.loaders.demo import DEMOS, demo_district
from citygrid.loaders.tables import read_csv_points
from citygrid.loaders.vector import read_vector
from citygrid.spatial.wkb import point_ewkb_hex

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "data" / "demo"


def test_geojson_declared_gcj02_overrides_file_crs():
    vf = read_vector(DEMO / "chaoyang" / "chaoyang_110105.geojson", crs="gcj02")
    assert vf.source_crs.pseudo == "gcj02" and vf.crs_from == "user"
    assert len(vf.frame) == 1


def test_file_crs_used_when_not_declared():
    vf = read_vector(DEMO / "zhengzhou_osm_roads" / "zhengzhou_jingkai_roads_osm.geojson")
    assert vf.crs_from == "file" and vf.source_crs.crs.to_epsg() == 4326
    assert len(vf.frame) == 1085


def test_demo_csv_keeps_rows_without_coordinates():
    vf = read_vector(DEMO / "chaoyang" / "chaoyang_110105_admin_codes.csv", crs="gcj02")
    assert len(vf.frame) == 642
    assert vf.frame.geometry.notna().sum() == 327


def test_missing_file(tmp_path):
    with pytest.raises(InvalidInput, match="not found"):
        read_vector(tmp_path / "nope.gpkg", crs="EPSG:4326")


def test_garbage_file_is_refused(tmp_path):
    path = tmp_path / "broken.geojson"
    path.write_bytes(b"\x00\x01 not json at all {")
    with pytest.raises(InvalidInput, match="content is not a vector format citygrid reads; refused"):
        read_vector(path, crs="EPSG:4326")


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_shapefile_without_prj_needs_a_crs(tmp_path):
    frame = gpd.GeoDataFrame({"name": ["a"]}, geometry=[shapely.Point(500000, 4400000)])
    frame.to_file(tmp_path / "noprj.shp")
    (tmp_path / "noprj.prj").unlink(missing_ok=True)
    with pytest.raises(InvalidInput, match="does not say its CRS") as err:
        read_vector(tmp_path / "noprj.shp")
    assert err.value.details[0]["field"] == "crs"
    assert read_vector(tmp_path / "noprj.shp", crs="EPSG:4548").source_crs.crs.to_epsg() == 4548


def test_declared_crs_differs_from_file_is_warned(tmp_path):
    frame = gpd.GeoDataFrame({"n": [1]}, geometry=[shapely.Point(116.4, 39.9)], crs=4326)
    frame.to_file(tmp_path / "p.gpkg")
    vf = read_vector(tmp_path / "p.gpkg", crs="EPSG:4490")
    assert any("using the declared" in w for w in vf.warnings)


def test_unknown_declared_crs(tmp_path):
    with pytest.raises(InvalidInput, match="unknown CRS"):
        read_vector(DEMO / "chaoyang" / "chaoyang_110105.geojson", crs="EPSG:0")


def test_csv_in_gbk_is_detected(tmp_path):
    path = tmp_path / "gbk.csv"
    path.write_bytes("code,name,lon,lat\n110105001000,建外街道,116.45,39.91\n".encode("gbk"))
    frame, encoding = read_csv_points(path)
    assert encoding == "gb18030" and frame.loc[0, "name"] == "建外街道"
    assert frame.geometry.iloc[0].x == pytest.approx(116.45)


def test_csv_bad_encoding_named(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"code,name\n1,\xff\xfe\xfa\n")
    with pytest.raises(InvalidInput) as err:
        read_csv_points(path, encoding="utf-8")
    assert err.value.details[0]["field"] == "encoding"


def test_csv_non_numeric_coordinates_name_the_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("code,name,lon,lat\n1,a,116.4,39.9\n2,b,east,39.9\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="line 3"):
        read_csv_points(path)


def test_csv_named_coordinate_column_must_exist(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("code,name,X,Y\n1,a,1,2\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="column 'east'"):
        read_csv_points(path, x_field="east")
    frame, _ = read_csv_points(path)
    assert frame.geometry.iloc[0].x == 1


def test_directory_without_shapefile(tmp_path):
    with pytest.raises(InvalidInput, match="directory"):
        read_vector(tmp_path, crs="EPSG:4326")


def test_demo_catalogue():
    assert demo_district("zhengzhou") is DEMOS["guancheng"]
    assert demo_district("110105") is DEMOS["chaoyang"]
    with pytest.raises(InvalidInput, match="unknown demo"):
        demo_district("shanghai")
    for demo in DEMOS.values():
        for rel in filter(None, (demo.boundary, demo.admin_codes, demo.roads)):
            assert demo.path(DEMO, rel).exists()


def test_features_with_too_many_vertices_are_refused(tmp_path, monkeypatch):
    from citygrid.loaders import vector

    monkeypatch.setattr(vector, "MAX_VERTICES_PER_FEATURE", 100)
    ring = [(116.4 + 0.01 * math.cos(a / 100 * math.tau), 39.9 + 0.01 * math.sin(a / 100 * math.tau))
            for a in range(150)]
    frame = gpd.GeoDataFrame({"name": ["small", "huge"]},
                             geometry=[shapely.Point(116.4, 39.9).buffer(0.01, 4), shapely.Polygon(ring)],
                             crs="EPSG:4326")
    frame.to_file(tmp_path / "big.geojson")
    with pytest.raises(InvalidInput, match="feature 2 has 151 vertices"):
        vector.read_vector(tmp_path / "big.geojson")
    monkeypatch.setattr(vector, "MAX_VERTICES_PER_FEATURE", 1000)
    monkeypatch.setattr(vector, "MAX_VERTICES_PER_FILE", 160)
    with pytest.raises(InvalidInput, match="vertices in all"):
        vector.read_vector(tmp_path / "big.geojson")


# ------------------------------------------------------------------------------------------ points and EWKB
def _wkb_column(geoms: list) -> pa.Array:
    return pa.array([None if g is None else shapely.to_wkb(g) for g in geoms], type=pa.binary())


def test_plain_wkb_points_read_without_shapely_agree_with_shapely():
    rng = np.random.default_rng(7)
    geoms = list(shapely.points(rng.uniform(4e5, 5e5, 500), rng.uniform(4.4e6, 4.5e6, 500)))
    geoms[3] = shapely.Point()                                  # POINT EMPTY is written as NaN, NaN
    geoms[4] = shapely.Point(float("nan"), 1.0)
    fast = points.from_wkb(_wkb_column(geoms))
    slow = points.from_shapely(np.array(geoms, dtype=object))
    assert points._plain_points(_wkb_column(geoms)) is not None  # the numpy path was the one taken
    np.testing.assert_array_equal(fast.x, slow.x)
    np.testing.assert_array_equal(fast.y, slow.y)
    assert list(fast.problem) == list(slow.problem)
    assert fast.problem[3] == "empty geometry" and "NaN" in fast.problem[4]
    assert fast.usable.sum() == 498


def test_other_geometries_fall_back_to_shapely_with_reasons():
    geoms = [shapely.Point(1, 2), shapely.MultiPoint([(3, 4)]), shapely.MultiPoint([(1, 1), (2, 2)]),
             shapely.LineString([(0, 0), (1, 1)]), None, shapely.Point(5, 6, 7)]
    column = pa.array([None if g is None else shapely.to_wkb(g) for g in geoms[:4]] + [None, b"\x01garbage"] +
                      [shapely.to_wkb(geoms[5])], type=pa.binary())
    got = points.from_wkb(column)
    assert (got.x[0], got.y[0]) == (1, 2) and (got.x[1], got.y[1]) == (3, 4)      # a multipoint of one point
    assert got.problem[2] == "not a point (MultiPoint)" and got.problem[3] == "not a point (LineString)"
    assert got.problem[4] == "empty geometry" and got.problem[5] == "empty geometry"  # missing, corrupt WKB
    assert (got.x[6], got.y[6]) == (5, 6)                                          # Z dropped, point kept


def test_point_ewkb_hex_matches_shapely():
    rng = np.random.default_rng(3)
    x, y = rng.uniform(-1e6, 1e6, 1000), rng.uniform(-1e7, 1e7, 1000)
    ours = point_ewkb_hex(x, y, 4548).astype(str)
    theirs = shapely.to_wkb(shapely.set_srid(shapely.points(x, y), 4548), hex=True, include_srid=True)
    assert list(ours) == list(theirs)


def test_a_part_of_the_points_is_a_view_of_its_rows():
    pts = points.Points(np.arange(5.0), np.arange(5.0) * 2, np.array(["", "empty geometry", "", "", ""], dtype=object))
    part = pts.part(1, 3)
    assert list(part.x) == [1.0, 2.0] and list(part.y) == [2.0, 4.0] and list(part.usable) == [False, True]
    assert np.shares_memory(part.x, pts.x)
