"""Attacks on what #22 added (ownership lists and owners, frontage units, rotation plans): what a hostile or
merely curious caller sends, and what each route must answer. Real PostGIS, no mocks."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tests.conftest import assert_error, rolled_back_app, signed_in, user_token
from tests.test_frontage import GUANCHENG, feature, make_code, spot, square
from tests.test_ownership import BJ, unit_grids, write_csv

PHONE = "0371-87654321"


def zz_as(zz: Connection, settings, username: str, roles: tuple[str, ...], party: str | None = None):
    team = "410104T01" if "supervisor" in roles else None
    return signed_in(rolled_back_app(zz, settings).test_client(),
                     user_token(zz, username, list(roles), team=team, party=party))


def created_unit(zz: Connection, zhengzhou_db) -> tuple[int, str]:
    x, y = spot(zz, 11)
    code = make_code("91410104MA00000A9")
    admin = zz_as(zz, zhengzhou_db, "atk-admin", ("admin",))
    body = {**feature(square(x, y), name="攻击测试店", kind="shop", credit_code=code, contact_person="赵六",
                      contact_phone=PHONE), "district": GUANCHENG}
    answer = admin.post("/api/v1/frontage-units", json=body)
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()["id"], code


# ------------------------------------------------------------------------------ phones
def test_frontage_api_hides_contact_phones_from_roles_that_may_not_read_phones(zz, zhengzhou_db) -> None:
    unit_id, _ = created_unit(zz, zhengzhou_db)
    for roles in (("analyst",), ("supervisor",), ("gis",)):
        reader = zz_as(zz, zhengzhou_db, f"atk-{roles[0]}", roles)
        one = reader.get(f"/api/v1/frontage-units/{unit_id}")
        assert one.status_code == 200 and PHONE not in one.get_data(as_text=True), roles
        listed = reader.get(f"/api/v1/frontage-units?district={GUANCHENG}&all=true&limit=2000")
        assert listed.status_code == 200 and PHONE not in listed.get_data(as_text=True), roles
    dispatcher = zz_as(zz, zhengzhou_db, "atk-dispatcher", ("dispatcher",))
    assert dispatcher.get(f"/api/v1/frontage-units/{unit_id}").get_json()["properties"]["contact_phone"] == PHONE


def test_owners_hide_the_partys_contact_phone_from_roles_that_may_not_read_phones(bj, client_as, tmp_path) -> None:
    from citygrid.responsibility.ownership_import import ImportOptions, import_ownership

    (g1,) = unit_grids(bj, n=1)
    path = write_csv(tmp_path / "o.csv", [(g1, "person", "P-1", "张三", "13800138000")])
    import_ownership(bj, path, ImportOptions(district=BJ, role="responsibility", source="test"))
    for roles in (["analyst"], ["supervisor"], ["gis"]):
        team = "110105T01" if roles == ["supervisor"] else None
        answer = client_as(f"atk-own-{roles[0]}", roles, team).get(f"/api/v1/grids/{g1}/owners")
        assert answer.status_code == 200 and "13800138000" not in answer.get_data(as_text=True), roles
    admin = client_as("atk-own-admin", ["admin"]).get(f"/api/v1/grids/{g1}/owners").get_json()
    assert admin["owners"]["responsibility"]["party"]["contact"] == "13800138000"


# ------------------------------------------------------------------------------ access
def test_anonymous_callers_read_and_write_nothing(anonymous_client, bj) -> None:
    (g1,) = unit_grids(bj, n=1)
    for answer in (anonymous_client.get(f"/api/v1/grids/{g1}/owners"),
                   anonymous_client.get("/api/v1/frontage-units"), anonymous_client.get("/api/v1/frontage-units/1"),
                   anonymous_client.post("/api/v1/frontage-units", json={}),
                   anonymous_client.patch("/api/v1/frontage-units/1", json={}),
                   anonymous_client.get("/api/v1/rotation"), anonymous_client.get("/api/v1/rotation/1?format=csv"),
                   anonymous_client.post("/api/v1/ownership/imports", data={})):
        assert answer.status_code == 401, answer.get_data(as_text=True)[:300]


def test_rotation_is_not_read_by_supervisors_analysts_units_or_gis(client_as) -> None:
    for roles, team in ((["supervisor"], "110105T01"), (["analyst"], None), (["gis"], None)):
        reader = client_as(f"atk-rot-{roles[0]}", roles, team)
        assert_error(reader.get("/api/v1/rotation"), 403, "forbidden")
        assert_error(reader.get("/api/v1/rotation/1?format=csv"), 403, "forbidden")


def test_ids_beyond_bigint_and_odd_plan_ids_are_refused_not_500(client_as, bj) -> None:
    admin = client_as("atk-ids", ["admin"])
    for path in ("/api/v1/frontage-units/99999999999999999999999", "/api/v1/frontage-units/9223372036854775808"):
        answer = admin.get(path)
        assert answer.status_code in (400, 404), (path, answer.get_data(as_text=True)[:300])
        answer = admin.patch(path, json={"name": "x"})
        assert answer.status_code in (400, 404), (path, answer.get_data(as_text=True)[:300])
    for plan in ("0", "-1", "1e3", "9" * 30, "%00", "１"):
        answer = admin.get(f"/api/v1/rotation/{plan}")
        assert answer.status_code in (400, 404), (plan, answer.get_data(as_text=True)[:300])
    assert_error(admin.get("/api/v1/rotation/999999999999999999"), 404, "not_found")


def test_owners_refuse_hostile_codes_and_dates(client_as, bj) -> None:
    reader = client_as("atk-own-codes", ["analyst"])
    (g1,) = unit_grids(bj, n=1)
    for query in ("date=99999-01-01", "date=0001-01-01", "date=2026-02-30", "date=2026-01-01%00"):
        answer = reader.get(f"/api/v1/grids/{g1}/owners?{query}")
        assert answer.status_code == 400, (query, answer.get_data(as_text=True)[:300])
    for code in ("110105%00001", "x" * 5000, "..%2F..%2Fetc"):
        answer = reader.get(f"/api/v1/grids/{code}/owners")
        assert answer.status_code in (400, 404), (code, answer.get_data(as_text=True)[:300])


def test_frontage_post_refuses_deep_json_huge_numbers_and_bad_geometry(zz, zhengzhou_db) -> None:
    planner = zz_as(zz, zhengzhou_db, "atk-fr-planner", ("planner",))
    x, y = spot(zz, 12)
    base = {**feature(square(x, y), name="坏店", kind="shop", credit_code=make_code("91410104MA00000B8")),
            "district": GUANCHENG}
    deep: object = 1
    for _ in range(5000):
        deep = [deep]
    bad_geoms = [
        {"type": "Polygon", "coordinates": [[[113.7, 34.7], [113.7001, 34.7001], [113.7, 34.7001],
                                             [113.7001, 34.7], [113.7, 34.7]]]},            # bow tie
        {"type": "Polygon", "coordinates": [[[float("nan"), 34.7], [113.7, 34.7], [113.7, 34.8],
                                             [float("nan"), 34.7]]]},
        {"type": "Polygon", "coordinates": [[[10 ** 400, 34.7], [113.7, 34.7], [113.7, 34.8], [10 ** 400, 34.7]]]},
        {"type": "Polygon", "coordinates": deep},
        {"type": "GeometryCollection", "geometries": []},
    ]
    for geom in bad_geoms:
        answer = planner.post("/api/v1/frontage-units", data=_dumps({**base, "geometry": geom}),
                              content_type="application/json")
        assert answer.status_code == 400, answer.get_data(as_text=True)[:300]
    for change in ({"district": 10 ** 30}, {"district": ["410104"]}, {"district": "../410104"},
                   {"valid_from": 10 ** 30}, {"name": "店\u202e名"}):
        answer = planner.post("/api/v1/frontage-units", data=_dumps({**base, **change}),
                              content_type="application/json")
        assert answer.status_code in (400, 403), (change, answer.get_data(as_text=True)[:300])
    assert zz.execute(sa.text("SELECT count(*) FROM frontage_units WHERE name = '坏店'")).scalar_one() == 0


def _dumps(value: object) -> str:
    import json
    import sys

    before = sys.getrecursionlimit()
    sys.setrecursionlimit(max(before, 20000))
    try:
        return json.dumps(value, allow_nan=True)
    finally:  # the interpreter's limit is global: left raised, it changed how later tests' parsers behave
        sys.setrecursionlimit(before)


def test_ownership_upload_with_lying_files_and_path_names(client_as, bj) -> None:
    import io
    import zipfile

    planner = client_as("atk-own-planner", ["planner"])
    (g1,) = unit_grids(bj, n=1)
    blob = io.BytesIO()
    with zipfile.ZipFile(blob, "w") as z:
        z.writestr("../../evil.csv", f"grid_code,kind,code,name,contact\n{g1},unit,U-9,坏,\n")
    cases = [("../../etc/passwd.csv", b"grid_code,kind,code,name,contact\n"),
             ("zip.csv", blob.getvalue()),
             ("evil.zip", blob.getvalue()),
             ("a.gpkg.geojson", b"SQLite format 3\x00" + b"\x00" * 200),
             ("x.csv\x00.zip", b"a")]
    for name, content in cases:
        answer = planner.post("/api/v1/ownership/imports", content_type="multipart/form-data",
                              data={"district": BJ, "role": "responsibility", "file": (io.BytesIO(content), name)})
        assert answer.status_code in (400, 200), (name, answer.get_data(as_text=True)[:300])
        if name == "../../etc/passwd.csv":
            assert answer.status_code == 400 or "passwd" in answer.get_data(as_text=True)
    mapping = "a: &x [1, 2]\nb: *x\n"
    answer = planner.post("/api/v1/ownership/imports", content_type="multipart/form-data",
                          data={"district": BJ, "role": "responsibility", "mapping": mapping,
                                "file": (io.BytesIO(b"grid_code,kind,code,name,contact\n"), "a.csv")})
    assert_error(answer, 400, "invalid_input")


def test_an_account_of_another_district_reads_none_of_this_districts_lists(client_as, bj) -> None:
    outsider = client_as("atk-outsider", ["planner"])
    bj.execute(sa.text("UPDATE users SET district_code = '410104' WHERE username = 'atk-outsider'"))
    (g1,) = unit_grids(bj, n=1)
    assert_error(outsider.get(f"/api/v1/grids/{g1}/owners"), 403, "forbidden")
    assert_error(outsider.get(f"/api/v1/rotation?district={BJ}"), 403, "forbidden")
    assert_error(outsider.get(f"/api/v1/frontage-units?district={BJ}"), 403, "forbidden")
    assert_error(outsider.get(f"/api/v1/people?district={BJ}"), 403, "forbidden")
