"""An account that works in one district reads only that district's cases, through every route (#21): the case,
its list and GeoJSON, its tiles, the desk's queues, its photos, search and the complainant. Before, the case
scope ignored the account's district, so a dispatcher, acceptor or call-taker of one district read another's
cases and, with #21, their complainants' phones."""

from __future__ import annotations

import sqlalchemy as sa

from tests.conftest import assert_error, submitted_case

LON, LAT = 116.48, 39.93


def a_case(bj, case_rules) -> dict:
    return submitted_case(bj, case_rules, lon=LON, lat=LAT, description="scope test 垃圾")


def moved_to(bj, username: str, district: str) -> None:
    bj.execute(sa.text("UPDATE users SET district_code = :d WHERE username = :u"), {"d": district, "u": username})


def test_a_reader_of_another_district_reads_none_of_this_districts_cases(client_as, bj, case_rules) -> None:
    case = a_case(bj, case_rules)
    cid = case["case_id"]
    for role in ("dispatcher", "acceptor", "calltaker", "analyst", "lead"):
        outsider = client_as(f"scope-out-{role}", [role])
        moved_to(bj, f"scope-out-{role}", "410104")
        assert_error(outsider.get(f"/api/v1/cases/{cid}"), 403, "forbidden", reason="district")
        listed = outsider.get("/api/v1/cases?limit=1000").get_json()["cases"]
        assert cid not in {c["case_id"] for c in listed}, role
        features = outsider.get("/api/v1/cases?format=geojson&limit=5000").get_json()["features"]
        assert cid not in {f["id"] for f in features}, role
        assert outsider.get(f"/api/v1/cases/{cid}/photos").status_code in (403, 404), role
        assert outsider.post(f"/api/v1/cases/{cid}/transitions", json={"action": "accept"}).status_code in (403,)


def test_a_reader_of_this_district_still_reads_it(client_as, bj, case_rules) -> None:
    case = a_case(bj, case_rules)
    insider = client_as("scope-in-dispatcher", ["dispatcher"])
    moved_to(bj, "scope-in-dispatcher", case["district_code"])
    assert insider.get(f"/api/v1/cases/{case['case_id']}").status_code == 200
    listed = insider.get("/api/v1/cases?limit=1000").get_json()["cases"]
    assert case["case_id"] in {c["case_id"] for c in listed}


def test_the_desk_and_tiles_of_another_districts_reader_hold_none_of_these_cases(client_as, bj, case_rules) -> None:
    case = a_case(bj, case_rules)
    outsider = client_as("scope-out-desk", ["acceptor"])
    moved_to(bj, "scope-out-desk", "410104")
    queue = outsider.get("/api/v1/desk/accept?limit=200").get_json()
    assert case["case_id"] not in {c["case_id"] for c in queue["cases"]}
    assert queue["counts"]["total"] == 0
    admin = client_as("scope-admin", ["admin"])
    assert case["case_id"] in {c["case_id"] for c in admin.get("/api/v1/desk/accept?limit=200").get_json()["cases"]}
    # A case tile at zoom 14 over the case: the outsider's holds no feature, the admin's does.
    import math

    z = 14
    x = int((LON + 180) / 360 * 2 ** z)
    y = int((1 - math.asinh(math.tan(math.radians(LAT))) / math.pi) / 2 * 2 ** z)
    mine = admin.get(f"/tiles/cases/{z}/{x}/{y}.mvt")
    theirs = outsider.get(f"/tiles/cases/{z}/{x}/{y}.mvt")
    assert mine.status_code == 200 and len(mine.data) > 0
    assert theirs.status_code in (200, 204) and len(theirs.data) == 0
