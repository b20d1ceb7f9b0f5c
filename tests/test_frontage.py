"""Frontage units (门前三包) and property companies (#22): the credit-code check, the import (happy path and hostile
files), the API, geocoding, dispatch to the unit, the tile layer and the grid card."""

from __future__ import annotations

import json
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from citygrid.errors import InvalidInput, NotFound
from citygrid.loaders.vector import VectorFile
from citygrid.responsibility import frontage
from citygrid.responsibility.frontage_import import FrontageFile, import_frontage, read_frontage_file
from citygrid.spatial import crs
from tests.conftest import assert_error, rolled_back_app, signed_in, user_token

GUANCHENG = "410104"
# Real codes as published by the companies (Tencent Shenzhen, Alibaba China, Huawei, Baidu Beijing, Xiaomi
# Beijing): each one's check character is what GB 32100-2015 computes from its first 17.
REAL_CODES = ("91440300708461136T", "91330100716105852F", "914403001922038216", "91110000802100433B",
              "91110108551385082Q")


def make_code(first17: str) -> str:
    return first17 + frontage.credit_check_character(first17)


# ------------------------------------------------------------------------------------------ credit codes
@pytest.mark.parametrize("code", REAL_CODES)
def test_real_credit_codes_pass_the_check(code: str) -> None:
    assert frontage.credit_code_problem(code) is None
    assert frontage.credit_check_character(code[:17]) == code[17]


@pytest.mark.parametrize(("code", "reason"), [
    ("91440300708461136A", "check character is A, the code computes T"),
    ("914403001922038217", "check character is 7, the code computes 6"),
    ("9144030070846113", "18 characters, not 16"),
    ("91440300708461136TX", "18 characters, not 19"),
    ("91440300708461I36T", "character 15 ('I')"),   # I, O, S, V, Z are not in the standard's set
    ("91440300708461O36T", "character 15 ('O')"),
    ("91440300708461136t", "character 18 ('t')"),
    ("９1440300708461136T", "character 1"),          # a full-width digit
])
def test_wrong_credit_codes_say_why(code: str, reason: str) -> None:
    assert reason in (frontage.credit_code_problem(code) or "")


def test_check_character_zero_when_the_sum_is_a_multiple_of_31() -> None:
    # Find a first17 whose weighted sum is 0 mod 31 and check the standard's "31 is written 0".
    first17 = "0" * 17
    assert frontage.credit_check_character(first17) == "0"


# ------------------------------------------------------------------------------------------ import
def spot(conn: Connection, n: int = 0) -> tuple[float, float]:
    """A point (EPSG:4547) inside the n-th unit grid of Guancheng's current version."""
    row = conn.execute(sa.text(
        """SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) AS p FROM unit_grids u
             WHERE district_code = :d AND version_id = (SELECT max(version_id) FROM grid_versions
                                                         WHERE district_code = :d AND status = 'published')
             ORDER BY code OFFSET :n LIMIT 1) s"""), {"d": GUANCHENG, "n": n}).one()
    return float(row[0]), float(row[1])


def square(x: float, y: float, half: float = 4.0) -> shapely.Polygon:
    return shapely.box(x - half, y - half, x + half, y + half)


def write_csv(path: Path, rows: list[dict[str, str]], encoding: str = "utf-8") -> Path:
    header = list(rows[0])
    lines = [",".join(header)] + [",".join(f'"{r[h]}"' for h in header) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding=encoding)
    return path


def unit_row(code: str, name: str, geom: shapely.Geometry, **more: str) -> dict[str, str]:
    return {"name": name, "kind": more.pop("kind", "shop"), "credit_code": code, "contact_person": "王经理",
            "contact_phone": "0371-12345678", "wkt": geom.wkt, **more}


def test_import_csv_with_wkt_then_reimport_updates_and_keeps_the_others(zz: Connection, tmp_path: Path) -> None:
    x, y = spot(zz)
    a, b = make_code("91410104MA0000001"), make_code("91410104MA0000002")
    first = write_csv(tmp_path / "units.csv", [
        unit_row(a, "老王烩面馆", square(x, y)),
        unit_row(a, "老王烩面馆", square(x + 20, y)),             # a second frontage of the same unit
        unit_row(b, "管城物业", square(x, y + 30), kind="物业公司"),
    ])
    summary = import_frontage(zz, read_frontage_file(first, crs_text="EPSG:4547"), district=GUANCHENG,
                              source="街道门前三包台账", licence="internal")
    assert (summary["units"], summary["created"], summary["updated"], summary["polygons"]) == (2, 2, 0, 3)
    rows = {r["credit_code"]: r for r in zz.execute(sa.text(
        """SELECT f.credit_code, f.name, f.kind, p.kind AS party_kind, p.code, ST_NumGeometries(f.geom) AS parts,
                  ST_SRID(f.geom) AS srid FROM frontage_units f JOIN parties p USING (district_code, party_id)
            WHERE f.district_code = :d AND f.credit_code IN (:a, :b)"""), {"d": GUANCHENG, "a": a, "b": b}).mappings()}
    assert rows[a]["parts"] == 2 and rows[a]["party_kind"] == "frontage_unit" and rows[a]["code"] == a
    assert rows[b]["kind"] == "property_company" and rows[b]["party_kind"] == "property_company"
    assert rows[a]["srid"] == 4547
    # Re-import naming only b: b is updated, a stays as it was.
    second = write_csv(tmp_path / "again.csv", [unit_row(b, "管城物业服务有限公司", square(x, y + 40),
                                                          kind="property_company")])
    summary = import_frontage(zz, read_frontage_file(second, crs_text="EPSG:4547"), district=GUANCHENG, source="s")
    assert (summary["created"], summary["updated"]) == (0, 1)
    names = dict(zz.execute(sa.text("SELECT credit_code, name FROM frontage_units WHERE credit_code IN (:a, :b)"),
                            {"a": a, "b": b}).all())
    assert names == {a: "老王烩面馆", b: "管城物业服务有限公司"}
    assert zz.execute(sa.text("SELECT count(*) FROM data_sources WHERE district_code = :d AND kind = 'frontage' "
                              "AND source = '街道门前三包台账'"), {"d": GUANCHENG}).scalar_one() == 1


def test_import_geojson_in_lonlat_and_a_registry_id_outside_china(zz: Connection, tmp_path: Path) -> None:
    x, y = spot(zz, 3)
    lonlat = crs.to_lonlat(np.array([square(x, y)], dtype=object), 4547)[0]
    path = tmp_path / "units.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "geometry": shapely.geometry.mapping(lonlat),
        "properties": {"name": "Corner Deli", "kind": "shop", "registry_id": "NYC-DCA 1234567"}}]}))
    summary = import_frontage(zz, read_frontage_file(path), district=GUANCHENG, source="test")
    assert summary["created"] == 1
    row = zz.execute(sa.text("SELECT credit_code, registry_id, ST_Area(geom) FROM frontage_units "
                             "WHERE registry_id = 'NYC-DCA 1234567'")).one()
    assert row[0] is None and row[2] == pytest.approx(64, rel=0.01)


def test_a_file_with_bad_rows_imports_nothing_and_names_each_row(zz: Connection, tmp_path: Path) -> None:
    x, y = spot(zz)
    bowtie = shapely.Polygon([(x, y), (x + 10, y + 10), (x + 10, y), (x, y + 10)])
    path = write_csv(tmp_path / "bad.csv", [
        unit_row(make_code("91410104MA0000003"), "好店", square(x, y)),
        unit_row("91410104MA00000030", "错码店", square(x, y)),                        # wrong check character
        unit_row(make_code("91410104MA0000004"), "蝴蝶店", bowtie),                      # self-intersecting
        unit_row(make_code("91410104MA0000005"), "点店", shapely.Point(x, y)),          # not a polygon
        unit_row(make_code("91410104MA0000006"), "控制\x07店", square(x, y)),            # control character
        unit_row(make_code("91410104MA0000007"), "远店", square(x + 900_000, y)),        # outside the district
        unit_row(make_code("91410104MA0000008"), "大店", square(x, y, 500)),             # a whole block
        {**unit_row(make_code("91410104MA0000009"), "坏文本店", square(x, y)), "wkt": "POLYGON((1 2, 3"},
        {**unit_row("", "无码店", square(x, y))},                                        # neither code nor id
    ])
    before = zz.execute(sa.text("SELECT count(*) FROM frontage_units")).scalar_one()
    with pytest.raises(InvalidInput) as err:
        import_frontage(zz, read_frontage_file(path, crs_text="EPSG:4547"), district=GUANCHENG, source="s")
    by_line = {}
    for p in err.value.details:
        by_line.setdefault(p["line"], []).append((p["field"], p["reason"]))
    assert sorted(by_line) == [3, 4, 5, 6, 7, 8, 9, 10], by_line
    assert "check character" in by_line[3][0][1]
    assert by_line[4][0][0] == "geometry" and "Self-intersection" in by_line[4][0][1]
    assert "not a Point" in by_line[5][0][1]
    assert by_line[6][0][0] == "name" and "U+0007" in by_line[6][0][1]
    assert "outside the district" in by_line[7][0][1]
    assert "m²" in by_line[8][0][1]
    assert by_line[9][0][0] == "wkt"
    assert by_line[10][0][0] == "credit_code"
    assert zz.execute(sa.text("SELECT count(*) FROM frontage_units")).scalar_one() == before


def test_a_csv_without_crs_is_refused_never_guessed(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "nocrs.csv", [unit_row(REAL_CODES[0], "x", shapely.box(0, 0, 1, 1))])
    with pytest.raises(InvalidInput) as err:
        read_frontage_file(path)
    assert err.value.details[0]["field"] == "crs" and "never guessed" in err.value.message


def test_a_file_whose_content_lies_about_its_type_is_refused(tmp_path: Path) -> None:
    vrt = tmp_path / "units.geojson"
    vrt.write_text('<OGRVRTDataSource><OGRVRTLayer name="x"><SrcDataSource>CSV:/etc/passwd</SrcDataSource>'
                   '</OGRVRTLayer></OGRVRTDataSource>')
    with pytest.raises(InvalidInput):
        read_frontage_file(vrt)
    shp = tmp_path / "units.shp"
    shp.write_bytes(b"PK\x03\x04 not a shapefile at all")
    with pytest.raises(InvalidInput):
        read_frontage_file(shp, crs_text="EPSG:4547")


def test_a_csv_in_gbk_is_read(zz: Connection, tmp_path: Path) -> None:
    x, y = spot(zz, 5)
    path = write_csv(tmp_path / "gbk.csv", [unit_row(make_code("91410104MA000000A"), "郑州市管城区测试商店",
                                                      square(x, y))], encoding="gb18030")
    summary = import_frontage(zz, read_frontage_file(path, crs_text="EPSG:4547"), district=GUANCHENG, source="s")
    assert summary["created"] == 1


def test_unknown_district_is_not_found(zz: Connection, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "u.csv", [unit_row(REAL_CODES[0], "x", shapely.box(0, 0, 1, 1))])
    with pytest.raises(NotFound):
        import_frontage(zz, read_frontage_file(path, crs_text="EPSG:4547"), district="999999", source="s")


# ------------------------------------------------------------------------------------------ one unit in place
def lonlat(x: float, y: float) -> tuple[float, float]:
    point = crs.to_lonlat(np.array([shapely.Point(x, y)], dtype=object), 4547)[0]
    return point.x, point.y


def feature(geom: shapely.Geometry, **props: object) -> dict:
    """A GeoJSON Feature of ``geom`` (EPSG:4547) moved to EPSG:4326."""
    moved = crs.to_lonlat(np.array([geom], dtype=object), 4547)[0]
    return {"type": "Feature", "geometry": shapely.geometry.mapping(moved), "properties": props}


@pytest.fixture
def zz_client(zz: Connection, zhengzhou_db):
    def make(username: str, roles: tuple[str, ...] = ("admin",), party: str | None = None):
        return signed_in(rolled_back_app(zz, zhengzhou_db).test_client(),
                         user_token(zz, username, list(roles), party=party))
    return make


@pytest.fixture
def placed_unit(zz: Connection) -> dict:
    """A shop whose 8 m × 8 m frontage lies inside a grid of Guancheng, imported; its centre in lon/lat."""
    x, y = spot(zz, 7)
    code = make_code("91410104MA00000F1")
    frame = gpd.GeoDataFrame(
        {"name": ["测试门店"], "kind": ["shop"], "credit_code": [code], "contact_phone": ["0371-12345678"]},
        geometry=[square(x, y)])
    vf = VectorFile(frame=frame, source_crs=crs.parse_crs("EPSG:4547"), crs_from="user")
    import_frontage(zz, FrontageFile(vf), district=GUANCHENG, source="test")
    unit_id = zz.execute(sa.text("SELECT unit_id FROM frontage_units WHERE credit_code = :c"), {"c": code}).scalar()
    lon, lat = lonlat(x, y)
    return {"unit_id": unit_id, "code": code, "x": x, "y": y, "lon": lon, "lat": lat}


def uncovered(zz: Connection, x: float, y: float) -> bool:
    return not zz.execute(sa.text("SELECT EXISTS (SELECT 1 FROM frontage_units WHERE ST_Covers(geom, "
                                  "ST_SetSRID(ST_MakePoint(:x, :y), 4547)))"), {"x": x, "y": y}).scalar_one()


def test_geocoding_a_point_in_a_frontage_answers_the_unit_with_the_grid(zz_client, zz, placed_unit) -> None:
    client = zz_client("geo-reader", ("analyst",))
    answer = client.get(f"/api/v1/grids/at?lon={placed_unit['lon']:.8f}&lat={placed_unit['lat']:.8f}").get_json()
    assert answer["code"] and answer["frontage_unit"]["unit_id"] == placed_unit["unit_id"]
    assert answer["frontage_unit"]["code"] == placed_unit["code"] and answer["frontage_unit"]["kind"] == "shop"
    x, y = placed_unit["x"] + 6, placed_unit["y"]          # 2 m east of the frontage's edge
    assert uncovered(zz, x, y)
    lon, lat = lonlat(x, y)
    beside = client.get(f"/api/v1/grids/at?lon={lon:.8f}&lat={lat:.8f}").get_json()
    assert beside["code"] and beside["frontage_unit"] is None


def report_and_dispatch(client, lon: float, lat: float, class_code: str = "0102") -> dict:
    answer = client.post("/api/v1/cases", json={"lon": lon, "lat": lat, "kind": "event", "class_code": class_code,
                                                "description": "门前暴露垃圾", "source": "supervisor"})
    assert answer.status_code == 201, answer.get_json()
    url = f"/api/v1/cases/{answer.get_json()['case']['case_id']}/transitions"
    assert client.post(url, json={"action": "accept"}).status_code == 200
    dispatched = client.post(url, json={"action": "dispatch"})
    assert dispatched.status_code == 200, dispatched.get_json()
    return dispatched.get_json()


def test_a_frontage_class_is_dispatched_to_the_unit_whose_account_then_handles_it(zz_client, zz,
                                                                                 placed_unit) -> None:
    desk = zz_client("fr-desk", ("dispatcher",))
    case = report_and_dispatch(desk, placed_unit["lon"], placed_unit["lat"])
    to = case["attrs"]["dispatched_to"]
    assert case["attrs"]["frontage_unit"]["unit_id"] == placed_unit["unit_id"]  # recorded when it was reported
    assert (to["code"], to["kind"], to["rule"]) == (placed_unit["code"], "frontage_unit", "frontage_unit")
    assert to["frontage_unit"] == placed_unit["unit_id"]
    # The unit's own account (``users add --party <credit code>``) reads the case and feeds it back.
    shop = zz_client("shop-owner", ("unit",), party=placed_unit["code"])
    url = f"/api/v1/cases/{case['case_id']}"
    assert shop.get(url).status_code == 200
    assert shop.post(f"{url}/transitions", json={"action": "feed_back", "note": "已清理"}).status_code == 200
    other = zz_client("other-shop", ("unit",), party=zz.execute(sa.text(
        "SELECT code FROM parties WHERE district_code = :d AND kind = 'street_office' LIMIT 1"),
        {"d": GUANCHENG}).scalar_one())
    assert_error(other.get(url), 403, "forbidden")


def test_a_frontage_class_outside_every_frontage_goes_to_the_management_party(zz_client, zz, placed_unit) -> None:
    x, y = placed_unit["x"] + 6, placed_unit["y"]
    assert uncovered(zz, x, y)
    case = report_and_dispatch(zz_client("fr-desk2", ("dispatcher",)), *lonlat(x, y))
    assert case["attrs"]["dispatched_to"]["rule"] == "grid management" and "frontage_unit" not in case["attrs"]


def test_another_class_at_the_frontage_keeps_its_rule(zz_client, placed_unit) -> None:
    case = report_and_dispatch(zz_client("fr-desk3", ("dispatcher",)), placed_unit["lon"], placed_unit["lat"],
                               class_code="0505")   # 机动车乱停放: not a frontage class
    assert case["attrs"]["dispatched_to"]["rule"] != "frontage_unit"


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 1 << z
    lat_r = math.radians(lat)
    return int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(lat_r)) / math.pi) / 2 * n)


def test_the_tile_layer_has_the_unit_from_zoom_16(zz_client, placed_unit) -> None:
    client = zz_client("tile-reader", ("analyst",))
    x, y = tile_of(placed_unit["lon"], placed_unit["lat"], 16)
    at16 = client.get(f"/tiles/frontage_units/16/{x}/{y}.mvt")
    assert at16.status_code == 200 and "测试门店".encode() in at16.data
    x, y = tile_of(placed_unit["lon"], placed_unit["lat"], 15)
    assert client.get(f"/tiles/frontage_units/15/{x}/{y}.mvt").status_code == 204
    meta = client.get("/tiles/frontage_units.json").get_json()
    assert meta["minzoom"] == 16 and "synthetic" in meta["vector_layers"][0]["fields"]


# ------------------------------------------------------------------------------------------ the API
def scoped_to(zz: Connection, username: str, district: str) -> None:
    """Move an account to another district (accounts have no foreign key to districts)."""
    zz.execute(sa.text("UPDATE users SET district_code = :d WHERE username = :u"), {"d": district, "u": username})


def test_api_creates_reads_lists_and_edits_a_unit(zz_client, zz) -> None:
    x, y = spot(zz, 9)
    planner = zz_client("fr-planner", ("planner",))
    code = make_code("91410104MA00000P1")
    body = {**feature(square(x, y), name="管城菜市场", kind="market", credit_code=code, contact_person="李四",
                      contact_phone="+86 371 6666 8888", valid_from="2026-01-01"), "district": GUANCHENG}
    created = planner.post("/api/v1/frontage-units", json=body)
    assert created.status_code == 201, created.get_json()
    unit = created.get_json()
    unit_id = unit["id"]
    assert unit["properties"]["party_code"] == code and unit["properties"]["party_kind"] == "frontage_unit"
    assert unit["properties"]["valid_from"] == "2026-01-01" and unit["properties"]["area_m2"] == pytest.approx(64, 0.01)
    assert unit["geometry"]["type"] == "MultiPolygon" and 113 < unit["geometry"]["coordinates"][0][0][0][0] < 114
    assert_error(planner.post("/api/v1/frontage-units", json=body), 409, "conflict")
    reader = zz_client("fr-reader", ("analyst",))
    assert reader.get(f"/api/v1/frontage-units/{unit_id}").get_json()["properties"]["name"] == "管城菜市场"
    lon, lat = lonlat(x, y)
    listed = reader.get(f"/api/v1/frontage-units?district={GUANCHENG}&bbox={lon - 0.001},{lat - 0.001},"
                        f"{lon + 0.001},{lat + 0.001}").get_json()
    assert unit_id in [f["id"] for f in listed["features"]]
    moved = planner.patch(f"/api/v1/frontage-units/{unit_id}",
                          json={"name": "管城综合市场", "geometry": feature(square(x, y, 6))["geometry"]})
    assert moved.status_code == 200, moved.get_json()
    assert moved.get_json()["properties"]["name"] == "管城综合市场"
    assert moved.get_json()["properties"]["area_m2"] == pytest.approx(144, 0.01)
    assert zz.execute(sa.text("SELECT name FROM parties WHERE code = :c"), {"c": code}).scalar_one() == "管城综合市场"
    audit = zz.execute(sa.text("SELECT actor FROM audit_log WHERE object_kind = 'frontage_units' "
                               "AND object_id = :id ORDER BY audit_id DESC LIMIT 1"), {"id": str(unit_id)}).scalar()
    assert audit == "fr-planner"


@pytest.mark.parametrize(("change", "field", "reason"), [
    ({"name": "坏\x00名"}, "name", "U+0000"),
    ({"name": "x" * 201}, "name", "at most 200"),
    ({"kind": "casino"}, "kind", "not one of"),
    ({"credit_code": "91410104MA00000P1X"}, "credit_code", None),
    ({"contact_phone": "call me"}, "contact_phone", "phone"),
    ({"valid_from": "2026-13-01"}, "valid_from", "not a date"),
    ({"name": {"nested": {"deeper": [1]}}}, "name", "must be text"),
    ({"owner": "me"}, "owner", "no field"),
    ({"name": ""}, "name", "cannot be emptied"),
    ({"geometry": {"type": "Point", "coordinates": [113.7, 34.7]}}, "geometry", "Polygon"),
    ({"geometry": {"type": "Polygon", "coordinates": [[[1e308, 1], [2, 2], [3, 1], [1e308, 1]]]}}, "geometry",
     "lon/lat"),
    ({"geometry": {"type": "Polygon", "coordinates": "nope"}}, "geometry", "readable"),
    ({"geometry": {"type": "Polygon", "coordinates": [[[113.7 + i * 1e-7, 34.7 + (i % 2) * 1e-7]
                                                       for i in range(10_002)] + [[113.7, 34.7]]]}}, "geometry",
     "vertices"),
])
def test_api_refuses_hostile_edits_with_the_field_and_reason(zz_client, placed_unit, change, field, reason) -> None:
    client = zz_client("fr-gis", ("gis",))
    answer = client.patch(f"/api/v1/frontage-units/{placed_unit['unit_id']}", json=change)
    assert answer.status_code == 400, answer.get_json()
    body = answer.get_json()
    if reason and not any(reason in d.get("reason", "") for d in body["details"]) and reason not in body["message"]:
        raise AssertionError(body)
    assert field in {d.get("field") for d in body["details"]} or body["details"] == [], body


def test_api_refuses_other_districts_and_readers_without_the_right_role(zz_client, zz, placed_unit) -> None:
    unit_id = placed_unit["unit_id"]
    outsider = zz_client("fr-outsider", ("planner",))
    scoped_to(zz, "fr-outsider", "410103")
    assert_error(outsider.get(f"/api/v1/frontage-units/{unit_id}"), 403, "forbidden", reason="410104")
    assert_error(outsider.patch(f"/api/v1/frontage-units/{unit_id}", json={"name": "改名"}), 403, "forbidden")
    assert_error(outsider.get(f"/api/v1/frontage-units?district={GUANCHENG}"), 403, "forbidden")
    body = {**feature(square(placed_unit["x"], placed_unit["y"] + 50), name="越界店",
                      credit_code=make_code("91410104MA00000X1")), "district": GUANCHENG}
    assert_error(outsider.post("/api/v1/frontage-units", json=body), 403, "forbidden")
    assert outsider.get("/api/v1/frontage-units").get_json()["features"] == []   # their own district has none
    analyst = zz_client("fr-analyst", ("analyst",))
    assert_error(analyst.post("/api/v1/frontage-units", json=body), 403, "forbidden")
    assert_error(analyst.patch(f"/api/v1/frontage-units/{unit_id}", json={"name": "改名"}), 403, "forbidden")
    assert_error(analyst.get("/api/v1/frontage-units/999999999"), 404, "not_found")
    name = zz.execute(sa.text("SELECT name FROM frontage_units WHERE unit_id = :u"), {"u": unit_id}).scalar()
    assert name == "测试门店"


def test_a_unit_account_reads_only_its_own_unit(zz_client, zz, placed_unit) -> None:
    own = zz_client("fr-shop", ("unit",), party=placed_unit["code"])
    listed = own.get("/api/v1/frontage-units?all=true").get_json()["features"]
    assert [f["id"] for f in listed] == [placed_unit["unit_id"]]
    other_id = zz.execute(sa.text("SELECT unit_id FROM frontage_units WHERE unit_id <> :u LIMIT 1"),
                          {"u": placed_unit["unit_id"]}).scalar()
    if other_id is not None:
        assert_error(own.get(f"/api/v1/frontage-units/{other_id}"), 403, "forbidden")


# ------------------------------------------------------------------------------------------ the demo's units
def test_the_demo_seeds_synthetic_units_along_guanchengs_roads_once(zz: Connection) -> None:
    from citygrid.responsibility import frontage_synthetic

    zz.execute(sa.text("DELETE FROM frontage_units WHERE district_code = :d"), {"d": GUANCHENG})
    made = frontage_synthetic.generate(zz, GUANCHENG, n=120)
    assert 100 <= made["created"] <= 120 and made["updated"] == 0
    stats = zz.execute(sa.text(
        """SELECT count(*), bool_and(f.synthetic), bool_and(f.name LIKE '%（合成）'),
                  bool_and(ST_Within(f.geom, d.geom)), max(ST_Area(f.geom)), count(DISTINCT f.kind),
                  (SELECT count(*) FROM frontage_units a JOIN frontage_units b ON a.unit_id < b.unit_id
                      AND a.district_code = b.district_code AND ST_Intersects(a.geom, b.geom)
                    WHERE a.district_code = :d),
                  (SELECT max(ST_Distance(f2.geom, l.geom)) FROM frontage_units f2 CROSS JOIN LATERAL (
                       SELECT geom FROM lines WHERE district_code = :d AND kind = 'road'
                        ORDER BY geom <-> f2.geom LIMIT 1) l WHERE f2.district_code = :d)
             FROM frontage_units f JOIN districts d USING (district_code) WHERE f.district_code = :d"""),
        {"d": GUANCHENG}).one()
    count, synthetic, labelled, inside, biggest, kinds, overlaps, farthest = stats
    assert count == made["created"] and synthetic and labelled and inside and overlaps == 0
    assert biggest <= 30 * 6 + 1 and kinds >= 4 and farthest <= 13
    assert all(frontage.credit_code_problem(c) is None for c in zz.execute(sa.text(
        "SELECT credit_code FROM frontage_units WHERE district_code = :d"), {"d": GUANCHENG}).scalars())
    assert zz.execute(sa.text("SELECT synthetic FROM data_sources WHERE district_code = :d AND kind = 'frontage'"),
                      {"d": GUANCHENG}).scalar() is True
    again = frontage_synthetic.generate(zz, GUANCHENG, n=120)
    assert "skipped" in again
    zz.execute(sa.text("DELETE FROM frontage_units WHERE district_code = :d"), {"d": GUANCHENG})
    assert frontage_synthetic.generate(zz, GUANCHENG, n=120)["created"] == made["created"]  # same seed, same units


def test_the_grid_card_lists_the_grids_units(zz_client, placed_unit) -> None:
    client = zz_client("card-reader", ("analyst",))
    at = client.get(f"/api/v1/grids/at?lon={placed_unit['lon']:.8f}&lat={placed_unit['lat']:.8f}").get_json()
    card = client.get(f"/api/v1/grids/{at['code']}/card").get_json()
    units = {u["unit_id"]: u for u in card["frontage_units"]}
    assert units[placed_unit["unit_id"]]["name"] == "测试门店" and units[placed_unit["unit_id"]]["synthetic"] is False
    assert units[placed_unit["unit_id"]]["party_code"] == placed_unit["code"]
    assert "contact_phone" not in units[placed_unit["unit_id"]]          # phones for dispatchers, planners, admins
    desk = zz_client("card-desk", ("dispatcher",)).get(f"/api/v1/grids/{at['code']}/card").get_json()
    mine = next(u for u in desk["frontage_units"] if u["unit_id"] == placed_unit["unit_id"])
    assert mine["contact_phone"] == "0371-12345678"


# ------------------------------------------------------------------------------------------ the command line
def test_the_command_imports_lists_and_refuses_with_exit_2(zhengzhou_db, zhengzhou_engine, zz, tmp_path) -> None:
    from click.testing import CliRunner

    from citygrid.cli import cli

    x, y = spot(zz, 11)
    code = make_code("91410104MA00000C1")
    database = ["--database", zhengzhou_db.database]
    good = write_csv(tmp_path / "cli.csv", [unit_row(code, "命令行门店", square(x, y))])
    try:
        done = CliRunner().invoke(cli, [*database, "frontage", "import", str(good), "--district", GUANCHENG,
                                        "--crs", "EPSG:4547", "--source", "CLI test", "--valid-from", "2026-03-01"])
        assert done.exit_code == 0, done.output
        assert json.loads(done.stdout)["created"] == 1
        listed = CliRunner().invoke(cli, [*database, "frontage", "list", "--district", GUANCHENG, "--limit", "100000"])
        props = [f["properties"] for f in json.loads(listed.stdout)["features"]
                 if f["properties"]["credit_code"] == code]
        assert props and props[0]["valid_from"] == "2026-03-01"
        no_crs = CliRunner().invoke(cli, [*database, "frontage", "import", str(good), "--district", GUANCHENG])
        assert no_crs.exit_code == 2 and "never guessed" in no_crs.stderr
        bad = write_csv(tmp_path / "bad.csv", [unit_row(code[:-1] + ("0" if code[-1] != "0" else "1"), "坏码",
                                                        square(x, y))])
        refused = CliRunner().invoke(cli, [*database, "frontage", "import", str(bad), "--district", GUANCHENG,
                                           "--crs", "EPSG:4547"])
        assert refused.exit_code == 2 and "line=2" in refused.stderr and "check character" in refused.stderr
    finally:
        with zhengzhou_engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM frontage_units WHERE credit_code = :c"), {"c": code})
            conn.execute(sa.text("DELETE FROM parties WHERE code = :c"), {"c": code})
            conn.execute(sa.text("DELETE FROM data_sources WHERE source = 'CLI test'"))


def test_a_district_backup_carries_its_frontage_units(zz: Connection, placed_unit, tmp_path: Path) -> None:
    from citygrid import backup

    manifest = backup.backup(zz, GUANCHENG, tmp_path / "gc.zip")
    assert manifest["tables"]["frontage_units"]["rows"] >= 1
    zz.execute(sa.text("DELETE FROM frontage_units WHERE district_code = :d"), {"d": GUANCHENG})
    backup.restore(zz, tmp_path / "gc.zip", replace=True)
    row = zz.execute(sa.text("SELECT f.name, p.code, ST_Area(f.geom) FROM frontage_units f JOIN parties p "
                             "USING (district_code, party_id) WHERE f.unit_id = :u"),
                     {"u": placed_unit["unit_id"]}).one()
    assert row[0] == "测试门店" and row[1] == placed_unit["code"] and row[2] == pytest.approx(64, rel=0.01)


def test_an_edit_raises_the_layers_revision_so_no_stale_tile_is_served(zz_client, placed_unit) -> None:
    client = zz_client("tile-editor", ("gis",))
    x, y = tile_of(placed_unit["lon"], placed_unit["lat"], 17)
    url = f"/tiles/frontage_units/17/{x}/{y}.mvt"
    first = client.get(url)
    assert first.status_code == 200 and client.get(url).headers["X-Tile-Cache"] == "hit"
    renamed = client.patch(f"/api/v1/frontage-units/{placed_unit['unit_id']}", json={"name": "改名门店"})
    assert renamed.status_code == 200
    second = client.get(url)
    assert second.headers["ETag"] != first.headers["ETag"] and "改名门店".encode() in second.data


def test_binary_posing_as_csv_and_oversized_wkt_are_refused(zz: Connection, tmp_path: Path) -> None:
    fake = tmp_path / "units.csv"
    fake.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 40)
    with pytest.raises(InvalidInput) as err:
        read_frontage_file(fake, crs_text="EPSG:4547")
    assert err.value.details[0]["field"] in ("encoding", "file", "wkt_field")
    x, y = spot(zz)
    ring = [(x + 3 * np.cos(t), y + 3 * np.sin(t)) for t in np.linspace(0, 2 * np.pi, 12_000)]
    many = shapely.Polygon(ring)
    path = write_csv(tmp_path / "big.csv", [
        unit_row(make_code("91410104MA00000B1"), "多点店", many),
        {**unit_row(make_code("91410104MA00000B2"), "长文本店", square(x, y)), "wkt": "POLYGON((" + "1 2," * 300_000},
    ])
    with pytest.raises(InvalidInput) as err:
        import_frontage(zz, read_frontage_file(path, crs_text="EPSG:4547"), district=GUANCHENG, source="s")
    reasons = {p["line"]: p["reason"] for p in err.value.details}
    assert "vertices" in reasons[2] and "characters long" in reasons[3]
    assert [p["line"] for p in err.value.details] == [2, 3]  # one problem each, not also "needs a polygon"


def test_a_unit_added_after_the_report_but_valid_that_day_takes_the_case(zz_client, zz) -> None:
    x, y = spot(zz, 13)
    assert uncovered(zz, x, y)
    desk = zz_client("fr-desk4", ("dispatcher",))
    lon, lat = lonlat(x, y)
    reported = desk.post("/api/v1/cases", json={"lon": lon, "lat": lat, "kind": "event", "class_code": "0507",
                                                 "description": "乱堆物料", "source": "supervisor"}).get_json()["case"]
    assert "frontage_unit" not in reported["attrs"]
    code = make_code("91410104MA00000L1")
    frame = gpd.GeoDataFrame({"name": ["后补门店"], "credit_code": [code], "valid_from": ["2020-01-01"]},
                             geometry=[square(x, y)])
    import_frontage(zz, FrontageFile(VectorFile(frame=frame, source_crs=crs.parse_crs("EPSG:4547"),
                                                crs_from="user")), district=GUANCHENG, source="test")
    url = f"/api/v1/cases/{reported['case_id']}/transitions"
    assert desk.post(url, json={"action": "accept"}).status_code == 200
    to = desk.post(url, json={"action": "dispatch"}).get_json()["attrs"]["dispatched_to"]
    assert (to["code"], to["rule"]) == (code, "frontage_unit")
