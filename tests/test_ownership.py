"""The four subjects from real lists (#22): ``citygrid ownership import`` (CSV grid → party, GIS areas by the
largest share), ``POST /api/v1/ownership/imports``, and ``GET /api/v1/grids/<code>/owners?date=``, with the
derived owners DOMAIN.md defines (community committees and street offices are management subjects).

Dates are local days of the deployment's zone; the tests take them relative to today there, so the closing
of a previous assignment is seen both ways (a later day sees the new owner, an earlier one the old)."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
import sqlalchemy as sa
from click.testing import CliRunner
from shapely.geometry import box
from sqlalchemy.engine import Connection

from citygrid import deploy
from citygrid.accounts import service as accounts
from citygrid.cli import cli
from citygrid.config import Settings
from citygrid.districts import import_district
from citygrid.errors import InvalidInput, NotFound
from citygrid.gridding import service as gridding
from citygrid.gridding.generate import GridParams
from citygrid.loaders.vector import read_vector
from citygrid.responsibility import queries
from citygrid.responsibility.ownership_import import ImportOptions, import_ownership, load_mapping, report_csv
from citygrid.spatial import db
from citygrid.spatial import queries as spatial_queries
from tests.conftest import RUN_ID, assert_error, database_fixtures, rolled_back_app, signed_in

BJ = "110105"


def today(conn: Connection) -> dt.date:
    return dt.datetime.now(db.deployment_zone(conn)).date()


def unit_grids(conn: Connection, district: str = BJ, n: int = 3, *, community: bool | None = None) -> list[str]:
    """The first ``n`` unit grids of the district's current (published) version, in code order."""
    where = "" if community is None else f" AND community_code IS {'NOT ' if community else ''}NULL"
    return list(conn.execute(sa.text(
        f"""SELECT code FROM unit_grids WHERE district_code = :d AND version_id = (
               SELECT max(version_id) FROM grid_versions WHERE district_code = :d AND status = 'published'){where}
            ORDER BY code LIMIT :n"""), {"d": district, "n": n}).scalars())


def write_csv(path: Path, rows: list[tuple[str, ...]], header: str = "grid_code,kind,code,name,contact") -> Path:
    path.write_text(header + "\n" + "".join(",".join(r) + "\n" for r in rows), encoding="utf-8")
    return path


def ownership_rows(conn: Connection, district: str = BJ) -> int:
    return conn.execute(sa.text("SELECT count(*) FROM grid_ownership WHERE district_code = :d"),
                        {"d": district}).scalar_one()


def owner(conn: Connection, grid: str, day: dt.date, role: str = "responsibility") -> dict | None:
    return queries.grid_owners(conn, grid, day)["owners"][role]["party"]


# ------------------------------------------------------------------------------------------ derived owners
def test_derived_owners_follow_the_domain(bj, client):
    """Management is the community committee where the grid has a community, else the street office; the
    responsibility subject defaults to the management party; every derived assignment says it is derived."""
    [grid] = unit_grids(bj, n=1, community=True)
    community = bj.execute(sa.text("SELECT community_code FROM unit_grids WHERE code = :c LIMIT 1"),
                           {"c": grid}).scalar_one()
    answer = client.get(f"/api/v1/grids/{grid}/owners").get_json()
    owners = answer["owners"]
    assert answer["grid"] == grid and answer["district"] == BJ and answer["zone"] == "Asia/Shanghai"
    assert owners["management"]["party"]["kind"] == "community" and owners["management"]["party"]["code"] == community
    assert owners["responsibility"]["party"] == owners["management"]["party"]
    assert owners["enforcement"]["party"]["kind"] == "team" and owners["supervision"]["party"]["kind"] == "team"
    assert all(o["derived"] is True and o["valid_to"] is None and o["people"] == [] for o in owners.values())
    assert "derived" in owners["management"]["party"]["contact"]
    streets_only = unit_grids(bj, n=1, community=False)
    for grid in streets_only:  # land with a street but no community answers to the street office
        assert owner(bj, grid, today(bj), "management")["kind"] == "street_office"


# ------------------------------------------------------------------------------------------ CSV
def test_csv_import_dates_closes_and_is_idempotent(bj, tmp_path):
    g1, g2, g3 = unit_grids(bj)
    day1, day2 = today(bj) + dt.timedelta(days=10), today(bj) + dt.timedelta(days=40)
    derived = owner(bj, g1, today(bj))
    first = write_csv(tmp_path / "a.csv", [(g1, "unit", "U-1", "朝阳大悦城", "010-1"),
                                           (g2, "单位", "U-1", "朝阳大悦城", ""),
                                           (g3, "property_company", "P-9", "金地物业", "")])
    result = import_ownership(bj, first, ImportOptions(district=BJ, role="responsibility", valid_from=day1,
                                                       source="朝阳区城管委", licence="internal"))
    assert (result.state, result.rows, result.assigned, result.parties_created) == ("imported", 3, 3, 2)
    assert result.problems == []
    assert owner(bj, g1, day1)["code"] == "U-1" and owner(bj, g3, day1)["kind"] == "property_company"
    assert owner(bj, g1, day1 - dt.timedelta(days=1)) == derived  # the day before: the derived owner still
    answer = queries.grid_owners(bj, g1, day1)["owners"]["responsibility"]
    assert answer["derived"] is False and answer["import_id"] == result.import_id and answer["valid_to"] is None
    assert owner(bj, g1, day1, "management")["kind"] == "community"  # another role is not touched
    recorded = [(s["kind"], s["source"], s["licence"]) for s in spatial_queries.data_sources(bj)
                if s["district_code"] == BJ and s["kind"] == "ownership"]
    assert recorded == [("ownership", "朝阳区城管委", "internal")]  # named in the pages' footer

    rows = ownership_rows(bj)
    again = import_ownership(bj, first, ImportOptions(district=BJ, role="responsibility", valid_from=day1))
    assert (again.assigned, again.unchanged, ownership_rows(bj)) == (0, 3, rows)

    later = write_csv(tmp_path / "b.csv", [(g1, "unit", "U-2", "三里屯太古里", "")])
    moved = import_ownership(bj, later, ImportOptions(district=BJ, role="responsibility", valid_from=day2))
    assert moved.assigned == 1
    assert owner(bj, g1, day2)["code"] == "U-2" and owner(bj, g1, day2 - dt.timedelta(days=1))["code"] == "U-1"
    assert owner(bj, g2, day2)["code"] == "U-1"  # a grid the file does not mention keeps its owner
    closed = queries.grid_owners(bj, g1, day1)["owners"]["responsibility"]
    assert closed["valid_to"] is not None and closed["valid_to"].date() == day2

    same_day = write_csv(tmp_path / "c.csv", [(g1, "unit", "U-3", "国贸商城", "")])
    fixed = import_ownership(bj, same_day, ImportOptions(district=BJ, role="responsibility", valid_from=day2))
    assert (fixed.assigned, fixed.replaced) == (1, 1) and owner(bj, g1, day2)["code"] == "U-3"

    before = write_csv(tmp_path / "d.csv", [(g2, "unit", "U-4", "蓝色港湾", "")])  # an older list fills up to day1
    import_ownership(bj, before, ImportOptions(district=BJ, role="responsibility",
                                               valid_from=today(bj) + dt.timedelta(days=5)))
    assert owner(bj, g2, today(bj) + dt.timedelta(days=5))["code"] == "U-4" and owner(bj, g2, day1)["code"] == "U-1"


def test_csv_with_a_mapping_of_chinese_columns(bj, tmp_path):
    g1, g2, _ = unit_grids(bj)
    path = write_csv(tmp_path / "m.csv", [(g1, "街道执法一队", "T-1"), (g2, "街道执法一队", "T-1")],
                     header="网格,执法主体,主体代码")
    mapping = load_mapping("columns: {grid_code: 网格, name: 执法主体, code: 主体代码}\nset: {kind: 执法队}\n")
    result = import_ownership(bj, path, ImportOptions(district=BJ, role="enforcement",
                                                      valid_from=today(bj) + dt.timedelta(days=3), mapping=mapping))
    assert result.assigned == 2 and owner(bj, g1, today(bj) + dt.timedelta(days=3), "enforcement")["kind"] == "team"
    for bad, reason in [("columns: {grid: x}", "not one of"), ("colums: {}", "unknown key"),
                        ("values: {kind: {a: shop_keeper}}", "not one of"), ("a: &x [1]\nb: *x", "alias"),
                        ("columns: {grid_code: nowhere}", "not in the file")]:
        with pytest.raises(InvalidInput, match=reason):
            import_ownership(bj, path, ImportOptions(district=BJ, role="enforcement", mapping=load_mapping(bad)))


def test_row_problems_and_the_bad_row_ratio(bj, zz, tmp_path):
    """Unknown grid codes, another district's grid, a code of no format, a duplicate grid row, an ambiguous party
    (one code, two names) and an unknown one (a code only): each a problem on its line; above the ratio the
    whole file is refused and nothing is written."""
    g1, g2, g3, g4 = unit_grids(bj, n=4)
    other = "410104001001001"  # a Guancheng code: well formed, another district
    unknown = BJ + "999999999"
    rows = [(g1, "unit", "U-7", "甲", ""), (unknown, "unit", "U-7", "甲", ""), (other, "unit", "U-7", "甲", ""),
            ("G-1", "unit", "U-7", "甲", ""), (g1, "unit", "U-8", "乙", ""), (g2, "unit", "U-9", "丙", ""),
            (g3, "unit", "U-9", "丁", ""), (g4, "unit", "NOPE", "", "")]
    path = write_csv(tmp_path / "bad.csv", rows)
    rows_before = ownership_rows(bj)
    refused = import_ownership(bj, path, ImportOptions(district=BJ, role="responsibility"))
    assert refused.state == "rejected" and refused.import_id is None and ownership_rows(bj) == rows_before
    assert "nothing was imported" in refused.problems[0]["reason"]
    found = {(p["line"], p["field"]): p["reason"] for p in refused.problems if p["line"]}
    assert "not in the current grid version" in found[(3, "grid_code")]
    assert "is in district 410104, not 110105" in found[(4, "grid_code")]
    assert "15 digits" in found[(5, "grid_code")]
    assert "listed already on line 2" in found[(6, "grid_code")]
    assert "named '丁' and '丙'" in found[(7, "name")] or "named '丙' and '丁'" in found[(7, "name")]
    assert (8, "name") in found and "unknown party unit 'NOPE'" in found[(9, "code")]
    partial = import_ownership(bj, path, ImportOptions(district=BJ, role="responsibility", max_bad_ratio=1.0))
    assert partial.state == "imported" and partial.assigned == 1  # only g1 from line 2
    with pytest.raises(NotFound):
        import_ownership(bj, path, ImportOptions(district="110106", role="responsibility"))
    with pytest.raises(InvalidInput, match="role"):
        import_ownership(bj, path, ImportOptions(district=BJ, role="owner"))


def test_hostile_csv_files(bj, tmp_path):
    [g1] = unit_grids(bj, n=1)
    path = write_csv(tmp_path / "h.csv", [(g1, "unit", "U-1", "=HYPERLINK(\"http://x\")", "+1-cmd|calc"),
                                          (g1.replace("0", "1", 1), "unit", "U\x01X", "控制", ""),
                                          (g1, "unit", "U-2", "长" * 5000, ""), (g1, "unit", "U-3", "n", "@SUM(A1)")])
    result = import_ownership(bj, path, ImportOptions(district=BJ, role="management", max_bad_ratio=1.0))
    found = {(p["line"], p["field"]): p["reason"] for p in result.problems}
    assert "control character (U+0001" in found[(3, "code")]
    assert "5,000 characters, more than the 200 allowed" in found[(4, "name")]
    assert "listed already on line 2" in found[(5, "grid_code")]
    assert owner(bj, g1, today(bj), "management")["name"] == "=HYPERLINK(\"http://x\")"  # stored as the text it is
    report = report_csv([*result.problems, {"line": 9, "field": "name", "reason": "=cmd|' /C calc'!A0",
                                            "severity": "error", "key": "@x"}])
    assert "'=cmd" in report and "'@x" in report and "\n=" not in report and ",=" not in report

    zipped = tmp_path / "list.csv"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("list.csv", f"grid_code,kind,code,name\n{g1},unit,U,n\n")
    with pytest.raises(InvalidInput, match="the content is a zip archive"):
        import_ownership(bj, zipped, ImportOptions(district=BJ, role="management"))
    latin = tmp_path / "latin.csv"
    latin.write_bytes(f"grid_code,kind,code,name\n{g1},unit,U,Caf\xe9 M\xfcller\n".encode("latin-1"))
    with pytest.raises(InvalidInput, match=r"encoding|not UTF-8|give its encoding") as err:
        import_ownership(bj, latin, ImportOptions(district=BJ, role="management"))
    assert err.value.details[0]["field"] == "encoding"
    ok = import_ownership(bj, latin, ImportOptions(district=BJ, role="management", encoding="latin-1",
                                                   valid_from=today(bj) + dt.timedelta(days=1)))
    assert ok.assigned == 1 and owner(bj, g1, today(bj) + dt.timedelta(days=1), "management")["name"] == "Café Müller"
    empty = write_csv(tmp_path / "empty.csv", [])
    with pytest.raises(InvalidInput, match="no rows"):
        import_ownership(bj, empty, ImportOptions(district=BJ, role="management"))
    no_grid = write_csv(tmp_path / "nogrid.csv", [("x", "unit", "U")], header="where,kind,code")
    with pytest.raises(InvalidInput, match="no grid_code column"):
        import_ownership(bj, no_grid, ImportOptions(district=BJ, role="management"))


# ------------------------------------------------------------------------------------------ GIS areas
def _cut(polygon, share: float, side: str):
    """The part of ``polygon`` west (``side`` 'w') or east of the vertical line leaving ``share`` of its area
    on that side (bisection; storage CRS)."""
    x0, y0, x1, y1 = polygon.bounds
    lo, hi = x0, x1
    for _ in range(60):
        mid = (lo + hi) / 2
        west = shapely.clip_by_rect(polygon, x0 - 1, y0 - 1, mid, y1 + 1).area / polygon.area
        lo, hi = (mid, hi) if west < share else (lo, mid)
    cut = (lo + hi) / 2
    return shapely.clip_by_rect(polygon, x0 - 1, y0 - 1, cut, y1 + 1) if side == "w" else \
        shapely.clip_by_rect(polygon, cut, y0 - 1, x1 + 1, y1 + 1)


def test_gis_areas_by_largest_share_with_ties_slivers_and_overlaps(bj, tmp_path):
    g1, g2, g3 = unit_grids(bj, community=True)
    shapes = {c: shapely.from_wkb(bytes(w)) for c, w in bj.execute(sa.text(
        "SELECT code, ST_AsBinary(geom) FROM unit_grids WHERE code = ANY(:c) AND version_id = (SELECT max(version_id) "
        "FROM grid_versions WHERE district_code = :d AND status = 'published')"), {"c": [g1, g2, g3], "d": BJ})}
    areas = [("金地物业", "property_company", "P-1", shapely.union_all([shapes[g1], _cut(shapes[g2], 0.6, "w")])),
             ("万科物业", "property_company", "P-2", shapely.union_all([_cut(shapes[g2], 0.6, "e"),
                                                                   _cut(shapes[g3], 0.503, "w")])),
             ("保利物业", "property_company", "P-3", _cut(shapes[g3], 0.503, "e")),
             ("小卖部", "unit", "U-5", _cut(shapes[g1], 0.03, "w"))]
    path = tmp_path / "areas.gpkg"
    gpd.GeoDataFrame({"name": [a[0] for a in areas], "kind": [a[1] for a in areas], "code": [a[2] for a in areas]},
                     geometry=[a[3] for a in areas], crs="EPSG:4548").to_file(path)
    day = today(bj) + dt.timedelta(days=2)
    result = import_ownership(bj, path, ImportOptions(district=BJ, role="responsibility", valid_from=day))
    assert result.state == "imported" and result.rows == 4
    assert owner(bj, g1, day)["code"] == "P-1" and owner(bj, g2, day)["code"] == "P-1"
    assert owner(bj, g3, day)["kind"] == "community"  # a tie: not assigned, the grid keeps its owner
    tie = [p for p in result.problems if p.get("key") == g3 and "tie" in p["reason"]]
    assert tie and "50.3%" in tie[0]["reason"] and "49.7%" in tie[0]["reason"] and tie[0]["severity"] == "error"
    sliver = [p for p in result.problems if p.get("key") == g1 and "sliver" in p["reason"]]
    assert sliver and sliver[0]["line"] == 5 and "3.0%" in sliver[0]["reason"] and "5%" in sliver[0]["reason"]
    overlap = [p for p in result.problems if "overlaps" in p["reason"]]
    assert [p["line"] for p in overlap] == [5] and "line 2" in overlap[0]["reason"]

    wgs = tmp_path / "areas_wgs84.geojson"  # the same areas in another CRS give the same answer
    gpd.GeoDataFrame({"name": ["金地物业"], "kind": ["property_company"], "code": ["P-1"]},
                     geometry=[areas[0][3]], crs="EPSG:4548").to_crs(4326).to_file(wgs, driver="GeoJSON")
    again = import_ownership(bj, wgs, ImportOptions(district=BJ, role="responsibility", valid_from=day))
    assert again.unchanged == 2 and again.assigned == 0

    no_crs = tmp_path / "nocrs.gpkg"
    gpd.GeoDataFrame({"name": ["x"], "kind": ["unit"], "code": ["X"]}, geometry=[shapes[g1]]).to_file(no_crs)
    with pytest.raises(InvalidInput, match="does not say its CRS"):
        import_ownership(bj, no_crs, ImportOptions(district=BJ, role="responsibility"))
    lying = tmp_path / "areas.geojson"
    lying.write_bytes(path.read_bytes())
    with pytest.raises(InvalidInput, match="the content is an SQLite"):
        import_ownership(bj, lying, ImportOptions(district=BJ, role="responsibility"))
    points = tmp_path / "points.gpkg"
    gpd.GeoDataFrame({"name": ["x"], "kind": ["unit"], "code": ["X"]}, geometry=[shapes[g1].centroid],
                     crs="EPSG:4548").to_file(points)
    refused = import_ownership(bj, points, ImportOptions(district=BJ, role="responsibility"))
    assert refused.state == "rejected" and "not an area" in refused.problems[1]["reason"]


# ------------------------------------------------------------------------------------------ HTTP
def other_district(conn: Connection, tmp_path: Path, code: str = "110106") -> str:
    """A second district in the Beijing test database (in the test's transaction): Chaoyang's boundary moved
    60 km east."""
    moved = conn.execute(sa.text("SELECT ST_AsBinary(ST_Translate(geom, 60000, 0)) FROM districts "
                                 "WHERE district_code = :d"), {"d": BJ}).scalar_one()
    path = tmp_path / f"{code}.gpkg"
    gpd.GeoDataFrame({"name": ["丰台区"]}, geometry=[shapely.from_wkb(bytes(moved))], crs="EPSG:4548").to_file(path)
    import_district(conn, read_vector(path), code=code, name="丰台区")
    return code


def _user(conn: Connection, username: str, roles: list[str], district: str | None) -> str:
    accounts.add_user(conn, username, roles, district=district, password="correct horse battery")
    return accounts.issue_token(conn, username, label="test")["token"]


def _upload(client, data: bytes, name: str, **form: str):
    return client.post("/api/v1/ownership/imports", data={"file": (io.BytesIO(data), name), **form},
                       content_type="multipart/form-data")


def test_upload_runs_the_import_for_the_districts_planners(bj, beijing_db, anonymous_client):
    g1, g2, _ = unit_grids(bj)
    app = rolled_back_app(bj, beijing_db)
    planner = signed_in(app.test_client(), _user(bj, "own-planner", ["planner"], BJ))
    day = (today(bj) + dt.timedelta(days=7)).isoformat()
    body = f"grid_code,kind,code,name\n{g1},unit,U-1,朝阳大悦城\n{g2},unit,U-1,朝阳大悦城\n".encode()
    answer = _upload(planner, body, "list.csv", district=BJ, role="responsibility", valid_from=day,
                     source="朝阳区城管委 2026", licence="内部")
    assert answer.status_code == 200, answer.get_json()
    result = answer.get_json()
    assert (result["state"], result["assigned"], result["valid_from"], result["problem_count"]) == \
        ("imported", 2, day, 0)
    owners = planner.get(f"/api/v1/grids/{g1}/owners?date={day}").get_json()["owners"]
    assert owners["responsibility"]["party"]["name"] == "朝阳大悦城" and owners["responsibility"]["derived"] is False
    stored = bj.execute(sa.text("SELECT source, licence, file_name, imported_by FROM ownership_imports "
                                "WHERE import_id = :i"), {"i": result["import_id"]}).one()
    assert tuple(stored) == ("朝阳区城管委 2026", "内部", "list.csv", "own-planner")

    mapping = "columns: {grid_code: 网格}\nset: {kind: unit}\n".encode()
    mapped = planner.post("/api/v1/ownership/imports", content_type="multipart/form-data", data={
        "file": (io.BytesIO(f"网格,code,name\n{g1},U-1,朝阳大悦城\n".encode()), "m.csv"),
        "mapping": (io.BytesIO(mapping), "m.yaml"), "district": BJ, "role": "responsibility", "valid_from": day})
    assert mapped.status_code == 200 and mapped.get_json()["unchanged"] == 1

    refused = _upload(planner, f"grid_code,kind,code,name\n{BJ}999999999,unit,U,n\n".encode(), "x.csv",
                      district=BJ, role="responsibility")
    body = assert_error(refused, 400, "invalid_input", reason="nothing was imported")
    assert any(d.get("line") == 2 and d["field"] == "grid_code" for d in body["details"])


@pytest.mark.parametrize(("roles", "district", "status", "code"), [
    (["analyst"], BJ, 403, "forbidden"), (["supervisor"], None, 403, "forbidden"),
    (["planner"], "110106", 403, "forbidden"), (["gis"], "110106", 403, "forbidden")])
def test_upload_refuses_other_roles_and_districts(bj, beijing_db, tmp_path, roles, district, status, code):
    other_district(bj, tmp_path)
    app = rolled_back_app(bj, beijing_db)
    team = bj.execute(sa.text("SELECT code FROM supervision_teams LIMIT 1")).scalar_one() if "supervisor" in roles \
        else None
    if team:
        accounts.add_user(bj, "own-caller", roles, team=team, password="correct horse battery")
        token = accounts.issue_token(bj, "own-caller", label="t")["token"]
    else:
        token = _user(bj, "own-caller", roles, district)
    caller = signed_in(app.test_client(), token)
    [g1] = unit_grids(bj, n=1)
    answer = _upload(caller, f"grid_code,kind,code,name\n{g1},unit,U,n\n".encode(), "a.csv", district=BJ,
                     role="management")
    assert_error(answer, status, code)
    assert bj.execute(sa.text("SELECT count(*) FROM ownership_imports")).scalar_one() == 0


def test_upload_and_owners_refuse_bad_and_hostile_input(bj, client, anonymous_client):
    [g1] = unit_grids(bj, n=1)
    csv = f"grid_code,kind,code,name\n{g1},unit,U,n\n".encode()
    assert_error(_upload(anonymous_client, csv, "a.csv", district=BJ, role="management"), 401, "unauthorized")
    cases = [
        (dict(district=BJ, role="owner"), csv, "a.csv", "role", "role must be one of"),
        (dict(district="11010X", role="management"), csv, "a.csv", "district", None),
        (dict(district=BJ, role="management", valid_from="2026-13-01"), csv, "a.csv", "valid_from", "YYYY-MM-DD"),
        (dict(district=BJ, role="management", valid_from="2026-W01-1"), csv, "a.csv", "valid_from", "YYYY-MM-DD"),
        (dict(district=BJ, role="management", max_bad_ratio="lots"), csv, "a.csv", "max_bad_ratio", None),
        (dict(district=BJ, role="management", max_bad_ratio="7"), csv, "a.csv", "max_bad_ratio", None),
        (dict(district=BJ, role="management", source="a\u202eb"), csv, "a.csv", "source", None),
        (dict(district=BJ, role="management", mapping="a: &x [1]\nb: *x"), csv, "a.csv", "mapping", "alias"),
        (dict(district=BJ, role="management", mapping="[" * 5000), csv, "a.csv", "mapping", None),
        (dict(district=BJ, role="management"), csv, "a.exe", "file", "not an accepted list"),
        (dict(district=BJ, role="management"), b"PK\x03\x04" + b"\x00" * 100, "a.csv", "file", "zip archive"),
        (dict(district=BJ, role="management"), b"PK\x03\x04junk", "a.zip", "file", None),
        (dict(district=BJ, role="management"), b"SQLite format 3\x00", "a.geojson", "file", "the content is"),
        (dict(district=BJ, role="management"), b'{"type": "FeatureCollection", "features": []}', "a.geojson",
         None, None),
    ]
    for form, data, name, field, reason in cases:
        answer = _upload(client, data, name, **form)
        assert answer.status_code == 400, (form, name, answer.get_json())
        assert_error(answer, 400, "invalid_input", field=field, reason=reason)
    assert bj.execute(sa.text("SELECT count(*) FROM ownership_imports")).scalar_one() == 0

    for url, status, field in [(f"/api/v1/grids/{g1}/owners?date=2026-02-30", 400, "date"),
                               (f"/api/v1/grids/{g1}/owners?date=tomorrow", 400, "date"),
                               (f"/api/v1/grids/{g1}/owners?date=2026-01-01%00", 400, None),
                               (f"/api/v1/grids/{g1}/owners?date=9999-12-31", 400, "date"),
                               (f"/api/v1/grids/{g1}/owners?date=0001-01-01", 400, "date"),
                               (f"/api/v1/grids/{g1[:-1]}X/owners", 400, "code"),
                               (f"/api/v1/grids/{BJ}999999999/owners", 404, None),
                               ("/api/v1/grids/410104001001001/owners", 404, None),
                               (f"/api/v1/grids/{'9' * 5000}/owners", 400, "code")]:
        answer = client.get(url)
        assert answer.status_code == status, (url, answer.get_json())
        if field:
            assert_error(answer, status, "invalid_input", field=field)
    assert_error(anonymous_client.get(f"/api/v1/grids/{g1}/owners"), 401, "unauthorized")


def test_owners_are_read_in_the_callers_district_only(bj, beijing_db, tmp_path):
    [g1] = unit_grids(bj, n=1)
    app = rolled_back_app(bj, beijing_db)
    elsewhere = signed_in(app.test_client(), _user(bj, "own-ft-analyst", ["analyst"], other_district(bj, tmp_path)))
    assert_error(elsewhere.get(f"/api/v1/grids/{g1}/owners"), 403, "forbidden", reason="110106")
    here = signed_in(app.test_client(), _user(bj, "own-bj-analyst", ["analyst"], BJ))
    assert here.get(f"/api/v1/grids/{g1}/owners").status_code == 200


def test_a_past_day_returns_the_old_owner_over_http(bj, client, tmp_path):
    [g1] = unit_grids(bj, n=1)
    day = today(bj) + dt.timedelta(days=20)
    import_ownership(bj, write_csv(tmp_path / "a.csv", [(g1, "department", "D-1", "朝阳区园林绿化局", "")]),
                     ImportOptions(district=BJ, role="enforcement", valid_from=day))
    new = client.get(f"/api/v1/grids/{g1}/owners?date={day.isoformat()}").get_json()["owners"]["enforcement"]
    old = client.get(f"/api/v1/grids/{g1}/owners?date={(day - dt.timedelta(days=1)).isoformat()}").get_json()
    assert new["party"]["code"] == "D-1" and new["valid_from"].startswith(day.isoformat())
    assert new["valid_from"].endswith("+08:00")  # the first instant of that local day in Asia/Shanghai
    assert old["owners"]["enforcement"]["party"]["kind"] == "team" and old["owners"]["enforcement"]["derived"]


def test_backups_hold_the_ownership_imports(bj):
    from citygrid.backup import district_tables

    tables = district_tables(bj)
    assert tables.index("ownership_imports") < tables.index("grid_ownership")


# ------------------------------------------------------------------------------------ a city with alnum codes in UTM
SRID, DISTRICT = 32618, "NYCQN"
X0, Y0 = 600_000.0, 4_510_000.0


@pytest.fixture(scope="module")
def utm_db(server_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A New York deployment (EPSG:32618, alnum codes, America/New_York) with one district's grids published."""
    settings = replace(server_settings, database=f"citygrid_test_own_{RUN_ID}")
    db.drop_database(settings)
    deploy.init_deployment(settings, SRID, "New York ownership test", code_scheme="alnum")
    try:
        path = tmp_path_factory.mktemp("queens") / "queens.gpkg"
        gpd.GeoDataFrame({"name": ["Queens"]}, geometry=[box(X0, Y0, X0 + 1200, Y0 + 800)], crs=SRID).to_file(path)
        with db.make_engine(db.database_url(settings)).begin() as conn:
            import_district(conn, read_vector(path), code=DISTRICT, name="Queens")
            made = gridding.generate(conn, DISTRICT, GridParams())
            gridding.partition(conn, DISTRICT, 2)
            gridding.publish(conn, DISTRICT, made["version"])
        yield settings
    finally:
        db.drop_database(settings)


utm_engine, utm = database_fixtures("utm_db", "utm")


def test_an_alnum_city_in_utm_imports_its_lists(utm, utm_db, tmp_path):
    g1, g2 = unit_grids(utm, DISTRICT, 2)
    assert g1.startswith(DISTRICT + "U")
    assert db.deployment_zone(utm).key == "America/New_York"
    day = today(utm) + dt.timedelta(days=3)
    path = write_csv(tmp_path / "q.csv", [(g1, "department", "DSNY-QN", "Sanitation Queens", "311"),
                                          (g2, "department", "DSNY-QN", "Sanitation Queens", "311"),
                                          ("NYCBKU000001", "department", "X", "x", ""),
                                          ("110105001001001", "department", "X", "x", "")])
    result = import_ownership(utm, path, ImportOptions(district=DISTRICT, role="responsibility", valid_from=day,
                                                       max_bad_ratio=0.5))
    assert result.assigned == 2
    assert [p["reason"] for p in result.problems] == [
        "unit grid NYCBKU000001 is in district NYCBK, not NYCQN",
        "unit grid code '110105001001001' must be the district code + U + 6 digits (code scheme alnum)"]
    answer = signed_in(rolled_back_app(utm, utm_db).test_client(), _user(utm, "queens-admin", ["admin"], None)).get(
        f"/api/v1/grids/{g1}/owners?date={day.isoformat()}").get_json()
    assert answer["zone"] == "America/New_York" and answer["owners"]["responsibility"]["party"]["code"] == "DSNY-QN"
    assert answer["owners"]["responsibility"]["valid_from"] in (f"{day.isoformat()}T00:00:00-05:00",
                                                                f"{day.isoformat()}T00:00:00-04:00")
    derived = answer["owners"]["supervision"]
    assert derived["derived"] and derived["party"]["kind"] == "team"
    assert answer["owners"]["management"] == {"party": None, "derived": None, "valid_from": None, "valid_to": None,
                                              "import_id": None, "people": []}  # no streets, no communities


def test_cli_import_with_report_and_exit_codes(utm_engine, utm_db, tmp_path):
    with utm_engine.connect() as conn:
        g1, g2 = unit_grids(conn, DISTRICT, 2)
    day = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    good = write_csv(tmp_path / "ok.csv", [(g1, "unit", "QN-1", "Queens Center", ""),
                                           (g2, "unit", "QN-1", "Queens Center", "")])
    base = ["--database", utm_db.database, "ownership", "import"]
    ok = CliRunner().invoke(cli, [*base, str(good), "--district", DISTRICT, "--role", "management",
                                  "--valid-from", day, "--source", "NYC Open Data", "--licence", "public"])
    assert ok.exit_code == 0, ok.output
    assert '"assigned": 2' in ok.output
    bad = write_csv(tmp_path / "bad.csv", [(g1, "unit", "=cmd|calc", "", ""), ("NYCQNU999999", "unit", "Q", "q", "")])
    report = tmp_path / "report.csv"
    refused = CliRunner().invoke(cli, [*base, str(bad), "--district", DISTRICT, "--role", "management",
                                       "--report", str(report)])
    assert refused.exit_code == 2 and '"state": "rejected"' in refused.output
    text = report.read_text(encoding="utf-8")
    assert "line,field,severity,reason,key" in text and "'=cmd" in text and "NYCQNU999999" in text
    for args, reason in [(["--valid-from", "2026-02-30"], "not a date"), (["--valid-from", "soon"], "YYYY-MM-DD"),
                         (["--source", "a\x00b"], "source"), (["--role", "owner"], "owner")]:
        wrong = CliRunner().invoke(cli, [*base, str(good), "--district", DISTRICT, "--role", "management", *args])
        assert wrong.exit_code == 2 and reason in wrong.output, (args, wrong.output)
    missing = CliRunner().invoke(cli, [*base, str(good), "--district", "NYCXX", "--role", "management"])
    assert missing.exit_code == 3 and "no district NYCXX" in missing.output
    with utm_engine.begin() as conn:  # what the committed import left: cleaned for the other tests
        conn.execute(sa.text("DELETE FROM grid_ownership WHERE import_id IS NOT NULL"))
        conn.execute(sa.text("DELETE FROM ownership_imports"))
