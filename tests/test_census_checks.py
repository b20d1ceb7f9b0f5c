"""The census row checks one by one (``components_survey.checks``): each returns the rows it refuses and one
problem per row, judges only rows no earlier check refused, and copes with hostile values (control
characters, NUL, huge strings, numbers where text was expected). No database: frames and indexes built here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import shapely
from pyproj import CRS

from citygrid.components_survey import checks
from citygrid.components_survey.ids import SeenIds
from citygrid.components_survey.mapping import CensusMapping, map_values, standard_attributes, text_column
from citygrid.loaders.points import Points
from citygrid.spatial import crs
from citygrid.spatial.geocode import GridIndex

DISTRICT = "110105"
KEYS = {"line", "field", "reason", "severity", "obj_id", "geom_wkt"}


def rows(obj_ids, **columns) -> pd.DataFrame:
    """A checked-attribute frame as ``census._check_chunk`` builds it: Arrow-backed text, lines from 2."""
    n = len(obj_ids)
    data = pd.DataFrame({"ObjID": text_column(pd.Series(obj_ids, dtype=object), n)})
    for name in ("ClassCode", *checks.TEXT_FIELDS):
        data[name] = text_column(pd.Series(columns.get(name, [None] * n), dtype=object), n)
    data["line"] = np.arange(2, 2 + n)
    data["ClassCode"] = checks.class_codes(data)
    return data


def none(n: int) -> np.ndarray:
    return np.zeros(n, dtype=bool)


def shape(found) -> tuple[list[bool], list[tuple[int, str]]]:
    mask, problems = found
    assert all(set(p) == KEYS and p["severity"] == "error" for p in problems)
    return mask.tolist(), [(p["line"], p["field"]) for p in problems]


def test_encoding_check_refuses_the_lines_that_did_not_decode():
    data = rows(["a", "b", "c"])
    assert shape(checks.check_encoding(data, none(3), {3})) == ([False, True, False], [(3, "*")])
    assert shape(checks.check_encoding(data, none(3), set())) == ([False, False, False], [])
    # a row refused before is not judged again
    assert shape(checks.check_encoding(data, np.array([False, True, False]), {3})) == ([False] * 3, [])


def test_native_ids_are_required_and_bounded():
    data = rows([None, None, None])
    data["native_id"] = text_column(pd.Series(["a1", "  ", "x" * 501], dtype=object), 3)
    mask, problems = checks.check_native_ids(data, none(3), "asset")
    assert mask.tolist() == [False, True, True]
    assert [p["reason"] for p in problems] == ["no feature ID in asset (--id-field)",
                                               "the feature ID is longer than 500 characters"]
    assert {p["field"] for p in problems} == {"asset"} and problems[0]["obj_id"] is None


def test_geometry_and_placement_checks():
    pts = Points(np.array([5.0, np.nan, 50.0]), np.array([5.0, np.nan, 50.0]),
                 np.array(["", "empty geometry", ""], dtype=object))
    data = rows(["1", "2", "3"])
    mask, problems = checks.check_geometry(data, none(3), pts)
    assert mask.tolist() == [False, True, False] and problems[0]["reason"] == "empty geometry"
    identity = crs.transformer(CRS.from_epsg(4548), CRS.from_epsg(4548))
    sx, sy = checks.storage_xy(pts, ~mask, crs.InputCrs(None, CRS.from_epsg(4548)), identity)
    assert np.isnan(sx[1]) and sx[0] == pytest.approx(5.0)
    district = shapely.box(0, 0, 10, 10)
    near = district.buffer(1.0)
    shapely.prepare(near)
    mask2, problems2 = checks.check_inside(data, mask, sx, sy, near, district)
    assert mask2.tolist() == [False, False, True]
    assert problems2[0]["reason"] == "outside the district by 57 m"  # from (10, 10) to (50, 50)


def test_class_and_id_checks_read_the_class_from_the_objid():
    data = rows([f"{DISTRICT}0101000001", None, f"{DISTRICT}0999000001", "12345", f"{DISTRICT}0101000002"],
                ClassCode=[None, None, None, "0101", "0102"])
    assert data["ClassCode"][0] == "0101" and pd.isna(data["ClassCode"][1]) and data["ClassCode"][2] == "0999"
    mask, problems = checks.check_class_and_id(data, none(5), {"0101", "0102"}, DISTRICT)
    assert mask.tolist() == [False, True, True, True, True]
    assert [(p["line"], p["field"]) for p in problems] == [(3, "ClassCode"), (4, "ClassCode"), (5, "ObjID"),
                                                           (6, "ObjID")]
    assert problems[1]["reason"] == "unknown component class '0999'" and problems[1]["obj_id"] == \
        f"{DISTRICT}0999000001"
    assert "16 digits" in problems[2]["reason"] and "do not match the class" in problems[3]["reason"]


def test_dates_parse_in_the_usual_forms_and_implausible_ones_are_bad():
    raw = text_column(pd.Series(["2024-03-01", "2024/3/1", "2024.03.01", "20240301", "1899-12-31", "3000-01-01",
                                 "yesterday", None, "2024-02-30"], dtype=object), 9)
    iso, bad = checks.parse_dates(raw)
    assert iso.tolist()[:4] == ["2024-03-01"] * 4 and iso.isna().tolist()[4:] == [True] * 5
    assert bad.tolist() == [False] * 4 + [True, True, True, False, True]


def test_dates_and_text_check_hostile_values():
    n = 5
    data = rows([None] * n, Note=["fine", "x" * 501, "bad\x00byte", "\x07bell\u202e", "ok"])
    raw = {"ORDate": text_column(pd.Series(["2024-01-01", None, None, None, "soon"], dtype=object), n)}
    _, bad_or = checks.parse_dates(raw["ORDate"])
    others = checks.others_as_text(pd.DataFrame({"颜色": ["红", None, None, None, "红\x00"]}), ["颜色"])
    mask, problems = checks.check_dates_and_text(data, none(n), raw, {"ORDate": bad_or}, others)
    # a control character other than NUL is text PostgreSQL stores: not refused here
    assert mask.tolist() == [False, True, True, False, True]
    assert [(p["line"], p["field"]) for p in problems] == [(6, "ORDate"), (3, "*"), (4, "*")]
    assert problems[0]["reason"] == "bad date 'soon'"
    assert "longer than 500" in problems[1]["reason"] and "NUL" in problems[2]["reason"]


def test_duplicates_are_found_across_batches_and_the_first_stays():
    seen = SeenIds()
    first = rows([f"{DISTRICT}0101000001", f"{DISTRICT}0101000002"])
    assert shape(checks.check_duplicates(first, none(2), seen, DISTRICT)) == ([False, False], [])
    second = rows([f"{DISTRICT}0101000002", f"{DISTRICT}0101000003", None])
    second["line"] = np.arange(4, 7)
    mask, problems = checks.check_duplicates(second, none(3), seen, DISTRICT)
    assert mask.tolist() == [True, False, False] and problems[0]["reason"] == "duplicate ObjID (first at line 3)"
    # native IDs: one row per ID; a row refused before is not remembered
    native = checks.NativeIds("asset", SeenIds())
    third = rows([None, None, None])
    third["native_id"] = text_column(pd.Series(["a", "a", "b"], dtype=object), 3)
    mask, problems = checks.check_duplicates(third, np.array([False, False, True]), SeenIds(), DISTRICT, native)
    assert mask.tolist() == [False, True, False]
    assert problems[0]["field"] == "asset" and "duplicate feature ID 'a' (first at line 2)" in problems[0]["reason"]


def test_place_in_grids_and_bgid_warnings():
    grids = [shapely.box(0, 0, 10, 10), shapely.box(10, 0, 20, 10)]
    index = GridIndex(version=1, codes=np.array(["G1", "G2"], dtype=object),
                      supervision_codes=np.array(["S1", "S1"], dtype=object),
                      street_codes=np.array([None, None], dtype=object),
                      community_codes=np.array([None, None], dtype=object), tree=shapely.STRtree(grids))
    frame = rows(["a", "b", "c"], BGID=["G1", "G1", None])
    frame["x"], frame["y"] = [5.0, 15.0, 50.0], [5.0, 5.0, 5.0]
    warnings = checks.place_in_grids(frame, index)
    assert frame["unit_grid_code"].tolist()[:2] == ["G1", "G2"] and pd.isna(frame["unit_grid_code"][2])
    assert frame["supervision_code"].tolist()[:2] == ["S1", "S1"] and pd.isna(frame["supervision_code"][2])
    assert [(w["line"], w["field"], w["severity"], w["obj_id"]) for w in warnings] == [(3, "BGID", "warning", "b")]
    empty = GridIndex(version=None, codes=np.array([], dtype=object), supervision_codes=np.array([], dtype=object),
                      street_codes=np.array([], dtype=object), community_codes=np.array([], dtype=object),
                      tree=shapely.STRtree([]))
    assert checks.place_in_grids(frame, empty) == [] and frame["unit_grid_code"].isna().all()


def test_extra_attributes_and_points_of_bad_rows():
    attrs = pd.DataFrame({"颜色": ["红", None, "蓝"], "n": [1.0, 2.5, None]})
    good = np.array([True, False, True])
    assert checks.extra_attributes(attrs, good, ["颜色", "n"]) == ['{"颜色":"红","n":"1"}', '{"颜色":"蓝","n":null}']
    assert checks.extra_attributes(attrs, good, []) == "{}"
    problems = [{"line": 3, "geom_wkt": None}, {"line": 4, "geom_wkt": None}]
    out = checks.with_points(problems, np.array([False, True, True]), np.array([2, 3, 4]),
                             np.array([1.0, 2.0, np.nan]), np.array([1.0, 3.0, np.nan]))
    assert [p["geom_wkt"] for p in out] == ["POINT (2.0 3.0)", None]


def test_standard_attributes_apply_the_mapping_before_any_check():
    attrs = pd.DataFrame({"编号": [" 1 ", "", "\t"], "species": ["Hydrant", "hydrant", "OAK"],
                          "dbf_id": [1.0, 1e15, np.nan]})
    mapping = CensusMapping(columns={"ObjID": "编号", "ObjName": "species", "BGID": "dbf_id"},
                            constants={"ClassCode": "0113"}, values={"ObjName": {"Hydrant": "消火栓"}})
    data = standard_attributes(attrs, mapping.columns, mapping)
    assert data["ObjID"][0] == "1" and data["ObjID"][1:].isna().all()
    # numeric IDs read from a DBF as floats are written without '.0'
    assert data["BGID"][:2].tolist() == ["1", "1000000000000000"] and pd.isna(data["BGID"][2])
    assert data["ObjName"].tolist() == ["消火栓", "消火栓", "OAK"] and set(data["ClassCode"]) == {"0113"}
    assert data["Note"].isna().all()
    exact = map_values(text_column(pd.Series(["Hydrant", "hydrant"]), 2), {"Hydrant": "x"}, case_sensitive=True)
    assert exact.tolist() == ["x", "hydrant"]


def test_hostile_huge_values_stay_vectorised_and_reported_once():
    """A million-character value and an Arrow dictionary column: one problem for the row, not one per check."""
    n = 3
    huge = "界" * 1_000_000
    data = rows([None] * n, ObjName=[huge, "ok", "ok"], Note=[huge + "\x00", "ok", "ok"])
    mask, problems = checks.check_dates_and_text(data, none(n), {}, {}, [])
    assert mask.tolist() == [True, False, False] and len(problems) == 1
    dictionary = pa.array(["a", None, "b"]).dictionary_encode()
    assert text_column(pd.Series(pd.arrays.ArrowExtensionArray(dictionary)), 3).tolist()[::2] == ["a", "b"]
