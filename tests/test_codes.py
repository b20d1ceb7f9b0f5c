"""Code schemes (#19, any city): the one table of code formats, a city outside China with its own
alphanumeric codes end to end, a district with no street or community data, islands and detached pieces.

The city is synthetic: a Brooklyn-sized corner of New York in UTM zone 18N (EPSG:32618) with an island, an
islet too small to be a grid, a piece touching the main land at one point, and a small piece doing the same.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
import sqlalchemy as sa
from click.testing import CliRunner
from pyproj import Transformer
from shapely.geometry import Point, Polygon, box
from sqlalchemy.engine import Connection

from citygrid import codes, deploy
from citygrid.cli import cli
from citygrid.config import Settings
from citygrid.districts import import_areas, import_district
from citygrid.errors import Conflict, InvalidInput
from citygrid.gridding import partition as part
from citygrid.gridding import service as gridding
from citygrid.gridding.codes import assign_codes, code_prefix, parse_code
from citygrid.gridding.generate import GridParams, generate_unit_grids
from citygrid.gridding.shapes import absorb_small
from citygrid.loaders.vector import read_vector
from citygrid.spatial import db
from tests.conftest import RUN_ID, city_client, database_fixtures

SRID = 32618  # WGS 84 / UTM zone 18N
X0, Y0 = 585_000.0, 4_500_000.0  # south-west corner of the main land, about 73.99 W 40.65 N
DISTRICT = "NYCBK"
TO_LONLAT = Transformer.from_crs(SRID, 4326, always_xy=True)

MAIN = Polygon([(X0, Y0), (X0 + 3000, Y0), (X0 + 3000, Y0 + 2000), (X0 + 1500, Y0 + 2300), (X0, Y0 + 2000)])
ISLAND = Point(X0 + 4200, Y0 + 1000).buffer(300)                   # 28 ha, 400 m off the coast
ISLET = box(X0 + 3600, Y0 - 600, X0 + 3650, Y0 - 560)              # 2,000 m²: smaller than any grid, alone
CORNER = box(X0 + 3000, Y0 + 2000, X0 + 3400, Y0 + 2400)           # 16 ha touching the main land at a point
NUB = box(X0 - 60, Y0 - 60, X0, Y0)                                # 3,600 m² touching it at a point too
BOUNDARY = shapely.union_all([MAIN, ISLAND, ISLET, CORNER, NUB])
MIN_AREA = GridParams().min_area_m2


def lonlat(x: float, y: float) -> tuple[float, float]:
    lon, lat = TO_LONLAT.transform(x, y)
    return float(lon), float(lat)


# ------------------------------------------------------------------------------------------ the table
@pytest.mark.parametrize(("scheme", "kind", "code"), [
    ("cn-admin", "district", "110105"), ("cn-admin", "street", "110105001"), ("cn-admin", "street", "110105001000"),
    ("cn-admin", "community", "110105001001"), ("cn-admin", "unit_grid", "110105001001042"),
    ("cn-admin", "supervision_grid", "110105S0017"), ("cn-admin", "team", "110105T03"),
    ("alnum", "district", "NYCBK"), ("alnum", "district", "NYC-BK"), ("alnum", "district", "110105"),
    ("alnum", "district", "A"), ("alnum", "district", "ABCDEFGHIJKL"), ("alnum", "street", "BK01"),
    ("alnum", "community", "BK01-A"), ("alnum", "unit_grid", "NYCBKU000042"),
    ("alnum", "supervision_grid", "NYCBKS0017"), ("alnum", "team", "NYC-BKT03"),
    ("cn-admin", "obj_id", "1101050101000001"), ("alnum", "obj_id", "NYCBK0101000001"),
    ("alnum", "obj_id", "NYC-BK0101000001"), ("alnum", "class", "PTHL"), ("cn-admin", "class", "0102"),
    ("cn-admin", "component_class", "0118"), ("alnum", "service_code", "311.10"),
    ("cn-admin", "packaged_service_code", "E0102"),
])
def test_well_formed_codes_of_each_scheme(scheme, kind, code):
    assert codes.scheme(scheme).problem(kind, code) is None
    assert codes.scheme(scheme).check(kind, code) == code


@pytest.mark.parametrize(("scheme", "kind", "code", "needle"), [
    ("cn-admin", "district", "NYCBK", "must be 6 digits"),
    ("cn-admin", "district", "11010", "must be 6 digits"),
    ("cn-admin", "district", "1101050", "at most 6"),
    ("cn-admin", "district", "110\x005", "control characters"),
    ("cn-admin", "street", "12345", "9 or 12 digits"),
    ("cn-admin", "community", "110105001", "12 digits"),
    ("cn-admin", "unit_grid", "NYCBKU000001", "15 digits"),
    ("alnum", "district", "nycbk", "upper case (NYCBK)"),
    ("alnum", "district", "NYC BK", "white space"),
    ("alnum", "district", " NYCBK", "white space"),
    ("alnum", "district", "NYCBK\n", "control characters"),
    ("alnum", "district", "NYC\u2028BK", "control characters"),
    ("alnum", "district", "NYCBROOKLYN01", "13 characters long; at most 12"),
    ("alnum", "district", "X" * 100_000, "100000 characters long"),
    ("alnum", "district", "-NYC", "upper-case letters"),
    ("alnum", "district", "NYC-", "upper-case letters"),
    ("alnum", "district", "NYC_BK", "upper-case letters"),
    ("alnum", "district", "ＮＹＣ", "upper-case letters"),  # full-width letters are not A–Z
    ("alnum", "district", "", "required"),
    ("alnum", "street", "bk01", "upper case"),
    ("alnum", "unit_grid", "NYCBK000001", "U + 6 digits"),
    ("alnum", "unit_grid", "110105001001042", "U + 6 digits"),
    ("alnum", "team", "NYCBKT1", "T + 2 to 4 digits"),
    ("cn-admin", "obj_id", "110105010100001", "16 digits (county 6 + class 4 + serial 6)"),
    ("cn-admin", "obj_id", "NYCBK0101000001", "16 digits"),
    ("alnum", "obj_id", "NYCBK010100001", "the district code + class 4 digits + serial 6 digits"),
    ("alnum", "class", "01';--", "1–16 letters, digits, _ or -"),
    ("alnum", "class", "_0102", "starting with a letter or digit"),
    ("alnum", "class", "A" * 17, "at most 16"),
    ("cn-admin", "component_class", "PTHL", "4 digits"),
    ("alnum", "service_code", "a b", "white space"),
    ("cn-admin", "packaged_service_code", "X0102", "E0102 (event) or C0101 (component)"),
])
def test_bad_codes_are_refused_with_the_reason(scheme, kind, code, needle):
    reason = codes.scheme(scheme).problem(kind, code)
    assert reason is not None and needle in reason
    assert len(reason) < 300  # a huge value is cut, not echoed
    with pytest.raises(InvalidInput) as err:
        codes.scheme(scheme).check(kind, code, field="code")
    assert err.value.details[0]["field"] == "code"


# Codes of any scheme: whether each is a code of its kind in some scheme (what the OpenAPI document, which
# does not depend on the deployment, must accept), one row per example.
ANY_SCHEME_EXAMPLES = [
    ("district", "110105", True), ("district", "NYC-BK", True), ("district", "nycbk", False),
    ("district", "-BK", False), ("district", "ABCDEFGHIJKLM", False), ("district", "", False),
    ("street", "110105001", True), ("street", "BK01", True), ("street", "BK 01", False),
    ("community", "110105001001", True), ("community", "BK01-A", True), ("community", "BK01-", False),
    ("unit_grid", "110105001001042", True), ("unit_grid", "NYCBKU000042", True), ("unit_grid", "NYCBK000042", False),
    ("supervision_grid", "110105S0017", True), ("supervision_grid", "NYCBKS0017", True),
    ("supervision_grid", "110105S17", False),
    ("team", "110105T03", True), ("team", "NYCBKT0003", True), ("team", "110105T3", False),
    ("obj_id", "1101050101000001", True), ("obj_id", "NYCBK0101000001", True), ("obj_id", "123", False),
    ("obj_id", "nycbk0101000001", False),
    ("class", "0102", True), ("class", "PTHL", True), ("class", "a_b-c", True), ("class", "01';--", False),
    ("class", "-01", False), ("class", "A" * 17, False),
    ("component_class", "0118", True), ("component_class", "118", False), ("component_class", "PTHL", False),
    ("service_code", "E0102", True), ("service_code", "311.10", True), ("service_code", "a b", False),
    ("service_code", ".x", False), ("service_code", "x" * 33, False),
    ("packaged_service_code", "E0102", True), ("packaged_service_code", "C0101", True),
    ("packaged_service_code", "X0102", False), ("packaged_service_code", "E102", False),
]


def test_every_format_of_the_table_has_examples_here_and_a_schema_in_the_openapi_document():
    from citygrid.webmap.openapi import document

    kinds = {*codes.KINDS, *codes.COMMON_KINDS}
    assert {kind for kind, _, _ in ANY_SCHEME_EXAMPLES} == kinds
    for kind, accepted in {(k, a) for k, _, a in ANY_SCHEME_EXAMPLES}:
        assert (kind, not accepted) in {(k, a) for k, _, a in ANY_SCHEME_EXAMPLES}, kind  # good and bad
    assert set(document()["components"]["schemas"]) == kinds


def test_the_openapi_parameters_use_the_tables_formats():
    """Each code parameter of the document carries its kind's pattern from the table."""
    from citygrid.webmap.openapi import document

    by_name = {"district": "district", "class_code": "class", "obj_id": "obj_id", "unit_grid": "unit_grid",
               "team": "team", "service_code": "service_code"}
    seen = set()
    for item in document()["paths"].values():
        for operation in item.values():
            for param in operation["parameters"]:
                kind = by_name.get(param["name"])
                if kind is not None and param["in"] == "query":
                    assert param["schema"]["pattern"] == codes.any_scheme_pattern(kind), param["name"]
                    seen.add(param["name"])
    assert seen == set(by_name) - {"obj_id"}  # the ObjID is a path parameter (below)
    component = document()["paths"]["/api/v1/components/{obj_id}"]["get"]["parameters"][0]
    assert component["schema"]["pattern"] == codes.any_scheme_pattern("obj_id")


@pytest.mark.parametrize(("kind", "code", "accepted"), ANY_SCHEME_EXAMPLES)
def test_the_openapi_document_and_the_python_check_agree(kind, code, accepted):
    """The document's pattern (as JSON Schema applies it: a search, with ``maxLength``) accepts exactly what
    the Python check of some scheme accepts."""
    from citygrid.webmap.openapi import document

    schema = document()["components"]["schemas"][kind]
    by_document = re.search(schema["pattern"], code) is not None and len(code) <= schema["maxLength"]
    by_python = any(scheme.problem(kind, code) is None for scheme in codes.SCHEMES.values())
    assert by_document == by_python == accepted
    assert (codes.problem(kind, code) is None) == accepted  # the any-scheme check used without a deployment


def test_unknown_scheme_names_the_known_ones():
    with pytest.raises(InvalidInput, match="cn-admin, alnum"):
        codes.scheme("us-fips")


def test_grid_and_team_codes_name_their_district():
    cn, alnum = codes.scheme("cn-admin"), codes.scheme("alnum")
    assert cn.district_of("unit_grid", "110105001001042") == "110105"
    assert cn.district_of("team", "110105T03") == "110105"
    assert alnum.district_of("unit_grid", "NYCBKU000042") == "NYCBK"
    assert alnum.district_of("unit_grid", "BKUU000042") == "BKU"  # the fixed tail decides
    assert alnum.district_of("supervision_grid", "NYC-BKS0001") == "NYC-BK"
    assert alnum.district_of("team", "NYCBKT0003") == "NYCBK"
    assert alnum.district_of("obj_id", "BK010101000001") == "BK01" and cn.district_of("obj_id", "1101050101000001") \
        == "110105"
    assert cn.supervision_code("NYCBK", 7) == "NYCBKS0007" and cn.team_code("NYCBK", 3) == "NYCBKT03"
    with pytest.raises(InvalidInput):
        alnum.district_of("unit_grid", "NYCBK")


def test_alnum_unit_codes_number_across_the_district():
    alnum = codes.scheme("alnum")
    assert code_prefix("NYCBK", "BK01", "BK01-A", alnum) == ("NYCBKU", 999_999)
    polys = [box(x, y, x + 100, y + 100) for y in (100, 0) for x in (0, 100)]
    made = assign_codes("NYCBK", polys, ["BK01", "BK02", "BK01", ""], ["BK01-A", None, None, None], [],
                        {"NYCBKU": 41}, band_m=100, scheme=alnum)
    assert made == ["NYCBKU000042", "NYCBKU000043", "NYCBKU000044", "NYCBKU000045"]
    assert parse_code("NYCBKU000045") == ("NYCBKU", 45)
    assert parse_code("110105001001042") == ("110105001001", 42)  # cn-admin unchanged
    with pytest.raises(Conflict, match="more than 999999"):
        assign_codes("NYCBK", polys[:1], [""], [None], [], {"NYCBKU": 999_999}, band_m=100, scheme=alnum)


# ------------------------------------------------------------------------------------------ geometry (no database)
def test_a_district_without_areas_is_split_alone_and_no_grid_is_below_the_minimum():
    """Before: 'no street or community of this district has a location' (a refusal); the islet and the nub
    became grids of 2,000 and 3,600 m²."""
    result = generate_unit_grids(BOUNDARY, [], GridParams())
    assert result.source == "derived" and "district alone" in result.notes[0]
    areas = np.array([p.area for p in result.polygons])
    assert areas.min() >= MIN_AREA
    assert all(p.geom_type == "Polygon" and p.is_valid for p in result.polygons)
    assert [round(p.area) for p in result.left_out] == [round(ISLET.area)]
    assert any("left out" in n for n in result.notes)
    covered = shapely.union_all(result.polygons + result.left_out)
    assert BOUNDARY.symmetric_difference(covered).area < 1.0  # the nub is inside a grid, nothing lost
    assert abs(areas.sum() + ISLET.area - BOUNDARY.area) < 1.0  # and nothing counted twice
    assert 100 <= len(result.polygons) <= 140  # 6.9 km² / 5.76 ha ≈ 120
    assert set(result.street_codes) == {""} and set(result.community_codes) == {None}


def test_small_pieces_join_a_neighbour_even_through_a_point_or_a_hairline_gap():
    big = box(0, 0, 200, 200)
    touching = box(200, 200, 230, 230)          # meets ``big`` at one corner only
    hairline = box(-40, 0, -0.004, 50)           # 4 mm off ``big``'s west edge
    needle = Polygon([(0, 200), (200, 200), (100, 200 + 1e-12)])  # 1e-10 m²: floating-point debris
    far = box(1000, 1000, 1010, 1010)
    polys, labels, left_out = absorb_small([big, touching, hairline, needle, far], list("abcde"), 10_000)
    assert labels == ["a"] and len(polys) == 1 and polys[0].geom_type == "Polygon" and polys[0].is_valid
    assert polys[0].area == pytest.approx(big.area + touching.area + hairline.area, abs=1.0)
    assert [p.area for p in left_out] == [100.0]


def test_no_grid_below_the_minimum_with_roads_either():
    roads = np.array([shapely.LineString([(X0 + x, Y0 - 100), (X0 + x, Y0 + 2400)]) for x in (700, 1500, 2300)]
                     + [shapely.LineString([(X0 - 100, Y0 + y), (X0 + 3500, Y0 + y)]) for y in (600, 1300)],
                     dtype=object)
    result = generate_unit_grids(BOUNDARY, [], GridParams(), roads, np.array(["primary"] * len(roads)))
    assert result.source == "roads"
    assert min(p.area for p in result.polygons) >= MIN_AREA
    assert [round(p.area) for p in result.left_out] == [round(ISLET.area)]


# ------------------------------------------------------------------------------------------ a deployment in New York
@pytest.fixture(scope="module")
def nyc_db(server_settings: Settings) -> Iterator[Settings]:
    """A deployment in EPSG:32618 with the alnum code scheme (empty: each test adds what it needs)."""
    settings = replace(server_settings, database=f"citygrid_test_nyc_{RUN_ID}")
    db.drop_database(settings)
    made = deploy.init_deployment(settings, SRID, "New York test", code_scheme="alnum")
    assert made["code_scheme"] == "alnum"
    try:
        yield settings
    finally:
        db.drop_database(settings)


nyc_engine, nyc = database_fixtures("nyc_db", "nyc")


@pytest.fixture
def nyc_client(nyc: Connection, nyc_db: Settings):
    return city_client(nyc, nyc_db, "nyc-admin")


def district_file(tmp_path: Path) -> Path:
    path = tmp_path / "brooklyn.gpkg"
    gpd.GeoDataFrame({"name": ["Brooklyn"]}, geometry=[BOUNDARY], crs=SRID).to_file(path)
    return path


def import_brooklyn(conn: Connection, tmp_path: Path, with_areas: bool = False) -> None:
    import_district(conn, read_vector(district_file(tmp_path)), code=DISTRICT, name="Brooklyn")
    if not with_areas:
        return
    streets = tmp_path / "streets.csv"
    rows = [("BK01", "Bay Ridge", *lonlat(X0 + 700, Y0 + 1000)), ("BK02", "Park Slope", *lonlat(X0 + 2300, Y0 + 1000))]
    streets.write_text("code,name,lon,lat\n" + "".join(f"{c},{n},{x},{y}\n" for c, n, x, y in rows))
    import_areas(conn, read_vector(streets, crs="EPSG:4326"), district=DISTRICT, level="street")
    communities = tmp_path / "communities.csv"
    rows = [("BK01-A", "Fort Hamilton", "BK01", *lonlat(X0 + 400, Y0 + 500)),
            ("BK01-B", "Dyker Heights", "BK01", *lonlat(X0 + 900, Y0 + 1600)),
            ("BK02-A", "Gowanus", "BK02", *lonlat(X0 + 2400, Y0 + 900))]
    communities.write_text("code,name,parent_code,lon,lat\n"
                           + "".join(f"{c},{n},{p},{x},{y}\n" for c, n, p, x, y in rows))
    import_areas(conn, read_vector(communities, crs="EPSG:4326"), district=DISTRICT, level="community")


def test_nyc_district_without_areas_generates_partitions_and_publishes(nyc, tmp_path):
    import_brooklyn(nyc, tmp_path)
    made = gridding.generate(nyc, DISTRICT, GridParams())
    assert made["area_m2"]["min"] >= MIN_AREA and made["source"] == "derived"
    assert len(made["left_out"]) == 1 and made["left_out"][0]["area_m2"] == pytest.approx(ISLET.area, abs=1)
    lon, lat = lonlat(*ISLET.centroid.coords[0])
    assert (made["left_out"][0]["lon"], made["left_out"][0]["lat"]) == pytest.approx((lon, lat), abs=1e-3)
    rows = nyc.execute(sa.text("SELECT code, ST_Area(geom) FROM unit_grids WHERE district_code = :d"),
                       {"d": DISTRICT}).all()
    assert all(codes.scheme("alnum").matches("unit_grid", c) and c.startswith("NYCBKU") for c, _ in rows)
    assert min(a for _, a in rows) >= MIN_AREA
    # Before: publishable as it was, with no supervision grid (cases would find no team).
    with pytest.raises(Conflict, match="grids partition"):
        gridding.publish(nyc, DISTRICT, made["version"])
    # Three detached pieces (main land, island, the corner square): the default team count (1 for ~120
    # grids) cannot cover them, so it is raised; the supervision-grid count the caller gives is kept.
    grouped = gridding.partition(nyc, DISTRICT, 5)
    assert grouped["pieces"] == 3 and grouped["teams"] == 3
    assert grouped["teams_chosen"] == "raised to cover the detached pieces"
    assert grouped["contiguous"] and grouped["teams_contiguous"]
    assert all(g["code"].startswith("NYCBKS") and g["team"].startswith("NYCBKT") for g in grouped["groups"])
    published = gridding.publish(nyc, DISTRICT, made["version"])
    assert published["status"] == "published"


@pytest.mark.parametrize(("groups", "teams", "field", "needle"), [
    (2, None, "supervision_grids", "--supervision-grids 3 or more"),
    (5, 2, "teams", "--teams 3 or more"),   # before: blamed supervision_grids
    (5, 6, "teams", "between 1 and supervision_grids"),
])
def test_partition_names_the_count_at_fault(nyc, tmp_path, groups, teams, field, needle):
    import_brooklyn(nyc, tmp_path)
    gridding.generate(nyc, DISTRICT, GridParams())
    with pytest.raises(InvalidInput) as err:
        gridding.partition(nyc, DISTRICT, groups, teams)
    assert err.value.details[0]["field"] == field and needle in err.value.message


def test_team_partition_errors_name_teams():
    graph = part.adjacency([box(0, 0, 1, 1), box(5, 5, 6, 6), box(9, 9, 10, 10)])
    with pytest.raises(InvalidInput) as err:
        part.partition(graph, np.ones(3), 2, field="teams")
    assert err.value.details[0]["field"] == "teams" and "--teams 3" in err.value.message


def test_alnum_codes_end_to_end_through_the_api(nyc, nyc_client, tmp_path):
    import_brooklyn(nyc, tmp_path, with_areas=True)
    made = gridding.generate(nyc, DISTRICT, GridParams())
    gridding.partition(nyc, DISTRICT, 5)
    gridding.publish(nyc, DISTRICT, made["version"])
    streets = dict(nyc.execute(sa.text("SELECT code, parent_code FROM admin_areas WHERE district_code = :d"),
                               {"d": DISTRICT}).all())
    assert streets == {"BK01": None, "BK02": None, "BK01-A": "BK01", "BK01-B": "BK01", "BK02-A": "BK02"}
    labelled = nyc.execute(sa.text("SELECT count(*) FROM unit_grids WHERE district_code = :d AND "
                                   "community_code = 'BK02-A'"), {"d": DISTRICT}).scalar_one()
    assert labelled > 0

    lon, lat = lonlat(X0 + 2400, Y0 + 900)
    answer = nyc_client.post("/api/v1/cases", json={"lon": lon, "lat": lat, "kind": "event", "class_code": "0102",
                                                    "description": "trash on the sidewalk", "source": "supervisor"})
    assert answer.status_code == 201, answer.get_json()
    case = answer.get_json()["case"]
    unit = case["unit_grid_code"]
    assert unit.startswith("NYCBKU") and case["supervision_code"].startswith("NYCBKS")
    assert case["community_code"] == "BK02-A" and case["street_code"] == "BK02"

    listed = nyc_client.get(f"/api/v1/cases?unit_grid={unit}&district={DISTRICT}").get_json()
    assert [c["case_id"] for c in listed["cases"]] == [case["case_id"]]
    by_group = nyc_client.get(f"/api/v1/cases?supervision_grid={case['supervision_code']}").get_json()
    assert case["case_id"] in [c["case_id"] for c in by_group["cases"]]
    grid = nyc_client.get(f"/api/v1/grids/{unit}").get_json()
    assert grid["properties"]["kind"] == "unit"
    card = nyc_client.get(f"/api/v1/grids/{unit}/card").get_json()
    assert card["code"] == unit and card["community_name"] == "Gowanus"
    found = nyc_client.get(f"/api/v1/search?q={unit}").get_json()["results"]
    assert found[0]["kind"] == "unit_grid"
    page = nyc_client.get(f"/api/v1/grids?district={DISTRICT}&kind=supervision").get_json()
    assert page["total"] == 5

    for url, field in [(f"/api/v1/cases?unit_grid={unit.lower()}", "unit_grid"),
                       ("/api/v1/cases?unit_grid=110105001001001", "unit_grid"),
                       ("/api/v1/cases?district=nycbk", "district"),
                       ("/api/v1/cases?district=NYC%00BK", "district"),
                       (f"/api/v1/cases?district={'X' * 5000}", "district"),
                       ("/api/v1/cases?team=NYCBK-T1", "team"),
                       ("/api/v1/grids?district=NYC%20BK", "district"),
                       ("/api/v1/grids/110105001001001/card", "code")]:
        bad = nyc_client.get(url)
        assert bad.status_code == 400, (url, bad.get_json())
        assert bad.get_json()["details"][0]["field"] == field
        assert len(bad.get_data()) < 2000


def test_district_import_warns_when_it_lies_in_another_time_zone(nyc, tmp_path):
    """The zone db init derives for a UTM zone is the zone at (central meridian, 42°N): Europe/Rome for a
    Vienna deployment in EPSG:32633, Europe/Madrid (an hour off) for London in EPSG:32630. The first district
    shows where the city is: its import says when that is another zone, and how to set it (#19)."""
    summary = import_district(nyc, read_vector(district_file(tmp_path)), code=DISTRICT, name="Brooklyn")
    assert not [w for w in summary["warnings"] if "time zone" in w]
    db.set_deployment_zone(nyc, "America/Chicago")
    summary = import_district(nyc, read_vector(district_file(tmp_path)), code=DISTRICT, name="Brooklyn")
    [warning] = [w for w in summary["warnings"] if "time zone" in w]
    assert "America/Chicago" in warning and "--timezone America/New_York" in warning


def test_synthetic_history_says_why_it_cannot_seed(nyc, tmp_path):
    """`cases synthesize` in a Vienna trial with its own (German) scheme active printed 0 cases and 50 problems
    with exit 0; in a district with only its boundary it raised a ValueError (#19)."""
    from citygrid.cases import synthetic
    from citygrid.components_survey.schemes import activate_scheme, import_scheme

    import_brooklyn(nyc, tmp_path)
    with pytest.raises(InvalidInput, match="no street or community with a location"):
        synthetic.generate(nyc, DISTRICT, 10)
    import_brooklyn(nyc, tmp_path, with_areas=True)
    assert synthetic.generate(nyc, DISTRICT, 10).imported == 10
    (tmp_path / "nyc311.csv").write_text("code,name,kind\nPOTHOLE,Pothole,event\n", encoding="utf-8")
    import_scheme(nyc, tmp_path / "nyc311.csv", scheme="nyc311")
    activate_scheme(nyc, "nyc311")
    with pytest.raises(InvalidInput, match="taxonomy activate cjt214"):
        synthetic.generate(nyc, DISTRICT, 10)


def test_census_without_crs_suggests_the_deployments_own_crs(nyc, tmp_path):
    """A Vienna trial's census CSV in EPSG:31256 without --crs was told to try EPSG:4548, a Chinese
    Gauss–Krüger zone (#19)."""
    from citygrid.components_survey.census import CensusOptions, import_file

    import_brooklyn(nyc, tmp_path)
    (tmp_path / "h.csv").write_text("x,y,class_code\n587000,4501000,0113\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="does not say its CRS") as err:
        import_file(nyc, tmp_path / "h.csv", CensusOptions(district=DISTRICT))
    assert "EPSG:32618" in err.value.message and "4548" not in err.value.message


def test_first_publish_gives_a_citys_grids_derived_owners(nyc, tmp_path):
    """Only load-demo derived grid owners, so a Vienna trial's first dispatch was a 409 'no responsible party
    for grid W02U000049: load its ownership first' with no command to load any (#19). The first publish now
    derives them as the demo's are, in the city's language of codes (no 综合执法队 in Brooklyn)."""
    import datetime as dt

    from citygrid.cases import store as case_store

    import_brooklyn(nyc, tmp_path, with_areas=True)
    made = gridding.generate(nyc, DISTRICT, GridParams())
    gridding.partition(nyc, DISTRICT, 5)
    published = gridding.publish(nyc, DISTRICT, made["version"])
    assert set(published["ownership"]) == {"responsibility", "management", "enforcement", "supervision"}
    grid = nyc.execute(sa.text("SELECT code FROM unit_grids WHERE district_code = :d AND version_id = :v "
                               "AND community_code = 'BK02-A' LIMIT 1"), {"d": DISTRICT, "v": made["version"]}
                       ).scalar_one()
    owners = case_store.owners_at(nyc, DISTRICT, grid, dt.datetime.now(dt.UTC))
    assert set(owners) == {"responsibility", "management", "enforcement", "supervision"}
    assert owners["responsibility"]["name"] == "Gowanus" and owners["enforcement"]["name"] == \
        "Park Slope enforcement team"


def test_alnum_teams_are_not_named_in_chinese(nyc, tmp_path):
    """A Vienna or New York deployment's teams were all named 第N分队, shown on its overview page (#19)."""
    import_brooklyn(nyc, tmp_path)
    made = gridding.generate(nyc, DISTRICT, GridParams())
    gridding.partition(nyc, DISTRICT, 5, n_teams=3)
    names = nyc.execute(sa.text("SELECT code, name FROM supervision_teams WHERE district_code = :d AND "
                                "version_id = :v ORDER BY code"), {"d": DISTRICT, "v": made["version"]}).all()
    assert [tuple(r) for r in names] == [("NYCBKT01", "Team 1"), ("NYCBKT02", "Team 2"), ("NYCBKT03", "Team 3")]


def test_alnum_imports_refuse_bad_codes_row_by_row(nyc, tmp_path):
    vf = read_vector(district_file(tmp_path))
    for code, needle in [("nycbk", "upper case"), ("NYC BK", "white space"), ("NYC\x07BK", "control"),
                         ("BROOKLYN-KINGS", "at most 12"), ("110105\n", "control")]:
        with pytest.raises(InvalidInput, match=needle) as err:
            import_district(nyc, vf, code=code, name="Brooklyn")
        assert err.value.details[0]["field"] == "code"
    import_brooklyn(nyc, tmp_path)
    lon, lat = lonlat(X0 + 700, Y0 + 1000)
    streets = tmp_path / "bad_streets.csv"
    streets.write_text("code,name,lon,lat\n"
                       f"BK01,Fine,{lon},{lat}\n"
                       f"bk02,Lower,{lon},{lat}\n"
                       f"BK 03,Spaced,{lon},{lat}\n"
                       f"BK-04-BAY-RIDGE,Long,{lon},{lat}\n"
                       f"BK_05,Underscore,{lon},{lat}\n")
    with pytest.raises(InvalidInput, match="4 bad row") as err:
        import_areas(nyc, read_vector(streets, crs="EPSG:4326"), district=DISTRICT, level="street")
    reasons = {d["line"]: d["reason"] for d in err.value.details}
    assert "upper case" in reasons[3] and "white space" in reasons[4] and "at most 12" in reasons[5]
    assert "upper-case letters" in reasons[6]
    assert nyc.execute(sa.text("SELECT count(*) FROM admin_areas WHERE district_code = :d"),
                       {"d": DISTRICT}).scalar_one() == 0
    # A community cannot name its street by its code in this scheme: the parent column is required.
    import_areas(nyc, read_vector(_one_street(tmp_path), crs="EPSG:4326"), district=DISTRICT, level="street")
    orphans = tmp_path / "orphans.csv"
    orphans.write_text(f"code,name,lon,lat\nBK01-A,Orphan,{lon},{lat}\n")
    with pytest.raises(InvalidInput) as err:
        import_areas(nyc, read_vector(orphans, crs="EPSG:4326"), district=DISTRICT, level="community")
    assert "parent_code" in err.value.details[0]["reason"]


def _one_street(tmp_path: Path) -> Path:
    lon, lat = lonlat(X0 + 700, Y0 + 1000)
    path = tmp_path / "one_street.csv"
    path.write_text(f"code,name,lon,lat\nBK01,Bay Ridge,{lon},{lat}\n")
    return path


def test_cn_admin_deployment_refuses_alnum_codes(nyc, nyc_client, tmp_path):
    codes.record_scheme(nyc, "cn-admin")  # the default scheme, as in every Chinese deployment
    vf = read_vector(district_file(tmp_path))
    with pytest.raises(InvalidInput, match="must be 6 digits") as err:
        import_district(nyc, vf, code="NYCBK", name="Brooklyn")
    assert err.value.details[0]["field"] == "code"
    for url in ("/api/v1/grids?district=NYCBK", "/api/v1/cases?unit_grid=NYCBKU000001",
                "/api/v1/grids/NYCBKU000001", "/api/v1/cases?team=NYCBKT01"):
        answer = nyc_client.get(url)
        assert answer.status_code == 400 and "cn-admin" in answer.get_json()["message"], url


def test_the_code_scheme_is_fixed_once_a_district_exists(nyc, nyc_db, tmp_path):
    assert codes.deployment_scheme(nyc).name == "alnum"
    assert codes.record_scheme(nyc, "cn-admin").name == "cn-admin"  # no district yet: allowed
    assert codes.record_scheme(nyc, "alnum").name == "alnum"
    import_brooklyn(nyc, tmp_path)
    with pytest.raises(InvalidInput, match="already holds districts") as err:
        codes.record_scheme(nyc, "cn-admin")
    assert err.value.details[0]["field"] == "code_scheme"
    assert codes.record_scheme(nyc, "alnum").name == "alnum"


def test_cli_db_init_code_scheme(nyc_db):
    ok = CliRunner().invoke(cli, ["--database", nyc_db.database, "db", "init", "--code-scheme", "alnum"])
    assert ok.exit_code == 0, ok.output + ok.stderr
    assert '"code_scheme": "alnum"' in ok.output
    bad = CliRunner().invoke(cli, ["--database", nyc_db.database, "db", "init", "--code-scheme", "us-fips"])
    assert bad.exit_code == 2 and "us-fips" in bad.stderr


def test_cli_partition_and_publish_exit_codes(nyc_engine, nyc_db, tmp_path):
    """Committed (the CLI runs its own transactions), then removed."""
    with nyc_engine.begin() as conn:
        import_brooklyn(conn, tmp_path)
    try:
        base = ["--database", nyc_db.database, "grids"]
        made = CliRunner().invoke(cli, [*base, "generate", "--district", DISTRICT])
        assert made.exit_code == 0, made.output + made.stderr
        assert json.loads(made.output)["area_m2"]["min"] >= MIN_AREA
        unpublishable = CliRunner().invoke(cli, [*base, "publish", "--district", DISTRICT])
        assert unpublishable.exit_code == 4 and "grids partition" in unpublishable.stderr
        few_teams = CliRunner().invoke(cli, [*base, "partition", "--district", DISTRICT, "--supervision-grids",
                                             "5", "--teams", "2"])
        assert few_teams.exit_code == 2 and "--teams 3 or more" in few_teams.stderr
        assert "field=teams" in few_teams.stderr
        grouped = CliRunner().invoke(cli, [*base, "partition", "--district", DISTRICT, "--supervision-grids", "5"])
        assert grouped.exit_code == 0, grouped.output + grouped.stderr
        assert json.loads(grouped.output)["teams"] == 3
        published = CliRunner().invoke(cli, [*base, "publish", "--district", DISTRICT])
        assert published.exit_code == 0, published.output + published.stderr
    finally:
        with nyc_engine.begin() as conn:  # the published version's derived owners go first (party foreign key)
            conn.execute(sa.text("DELETE FROM grid_ownership WHERE district_code = :d"), {"d": DISTRICT})
            conn.execute(sa.text("DELETE FROM districts WHERE district_code = :d"), {"d": DISTRICT})


def test_a_backup_restores_only_into_a_deployment_of_its_code_scheme(nyc, tmp_path):
    import zipfile

    from citygrid import backup

    import_brooklyn(nyc, tmp_path)
    good = tmp_path / "bk.zip"
    assert backup.backup(nyc, DISTRICT, good)["code_scheme"] == "alnum"

    def with_manifest(name: str, **fields) -> Path:
        target = tmp_path / name
        with zipfile.ZipFile(good) as src, zipfile.ZipFile(target, "w") as dst:
            for item in src.infolist():
                data = src.read(item.filename)
                if item.filename == "manifest.json":
                    manifest = {**json.loads(data), **fields}
                    data = json.dumps({k: v for k, v in manifest.items() if v is not None}).encode()
                dst.writestr(item.filename, data)
        return target

    for path, needle in [(with_manifest("cn.zip", code_scheme="cn-admin"), "cn-admin' code scheme"),
                         (with_manifest("old.zip", code_scheme=None, district="nyc'bk"), "not a district code"),
                         (with_manifest("nul.zip", district="NYC\x00BK"), "not a district code")]:
        savepoint = nyc.begin_nested()
        with pytest.raises(InvalidInput, match=needle):
            backup.restore(nyc, path, replace=True)
        savepoint.rollback()
    assert backup.restore(nyc, good, replace=True)["district"] == DISTRICT
