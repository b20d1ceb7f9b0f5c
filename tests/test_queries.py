"""The packages' read functions (#20): what the API, Open311, the pages and the CLI call instead of a store.

Each front end validates its input and formats the answer; these tests hold the reads themselves to what the
routes promise: one filter object per list, access control inside the read, ``NotFound`` for what is not
there, lon/lat in EPSG:4326 out.
"""

from __future__ import annotations

import pytest

from citygrid.accounts.queries import AuditFilter, audit_entries
from citygrid.cases import queries as cases
from citygrid.cases.scope import CaseScope
from citygrid.errors import Forbidden, NotFound
from citygrid.gridding import queries as grids
from citygrid.spatial import queries as places
from citygrid.spatial.analysis.queries import CaseloadFilter, caseload

# A point well inside Chaoyang (WGS84), and one in the sea south of Japan.
LON, LAT = 116.48, 39.93
FAR_LON, FAR_LAT = 135.0, 20.0


@pytest.fixture
def reported(client) -> dict:
    """A case reported through the API in the Beijing test database (rolled back with the test)."""
    response = client.post("/api/v1/cases", json={"lon": LON, "lat": LAT, "kind": "event", "class_code": "0102",
                                                  "description": "暴露垃圾一堆", "source": "supervisor"})
    assert response.status_code == 201, response.get_data(as_text=True)[:300]
    return response.get_json()["case"]


def _team_of(bj, case: dict) -> str:
    card = grids.current_card(bj, "110105", case["unit_grid_code"])
    assert card is not None and card["supervision_code"] == case["supervision_code"]
    return card["team_code"]


def test_a_case_list_keeps_to_its_filter_and_scope(bj, reported) -> None:
    cid = reported["case_id"]
    team = _team_of(bj, reported)
    own = cases.CaseFilter(district="110105", supervision_grid=reported["supervision_code"], open_only=True,
                           bbox=(LON - 0.01, LAT - 0.01, LON + 0.01, LAT + 0.01), scope=CaseScope(team=team))
    rows = cases.list_cases(bj, own)
    assert cid in {r["case_id"] for r in rows}
    assert all(r["supervision_code"] == reported["supervision_code"] for r in rows)
    hit = next(r for r in rows if r["case_id"] == cid)
    assert hit["lon"] == pytest.approx(LON, abs=1e-6) and hit["lat"] == pytest.approx(LAT, abs=1e-6)
    # the box is tested in EPSG:4326; one beside the point holds no case of it
    beside = cases.CaseFilter(bbox=(LON + 0.001, LAT - 0.01, LON + 0.01, LAT + 0.01), scope=CaseScope(team=team))
    assert cid not in {r["case_id"] for r in cases.list_cases(bj, beside)}
    # another team's scope lists nothing of this team's grids; a closed-only list leaves the new case out
    other = cases.list_cases(bj, cases.CaseFilter(scope=CaseScope(team="110105T99"), limit=1000))
    assert cid not in {r["case_id"] for r in other}
    closed = cases.list_cases(bj, cases.CaseFilter(statuses=("closed",), limit=1000))
    assert cid not in {r["case_id"] for r in closed}


def test_access_control_is_inside_the_case_reads(bj, reported) -> None:
    """Every front end gets the same refusals: a scope that reads nothing, another team's grids."""
    team = _team_of(bj, reported)
    with pytest.raises(Forbidden, match="no supervision team"):
        cases.list_cases(bj, cases.CaseFilter(scope=CaseScope(readable=False, why_not="bound to no supervision "
                                                                                     "team")))
    with pytest.raises(Forbidden, match=f"your own team {team} only"):
        cases.list_cases(bj, cases.CaseFilter(team="110105T99", scope=CaseScope(team=team)))
    with pytest.raises(Forbidden, match="may not read cases"):
        cases.deadline_lists(bj, None, 4.0, 10, scope=CaseScope(readable=False))
    assert cases.get_case(bj, reported["case_id"], CaseScope(team="110105T99")) is None
    assert cases.get_case(bj, reported["case_id"], CaseScope(team=team))["case_id"] == reported["case_id"]
    # without a scope (the CLI, Open311's published lists) the team filter is a filter, not a refusal
    rows = cases.list_cases(bj, cases.CaseFilter(team=team, limit=1000))
    assert reported["case_id"] in {r["case_id"] for r in rows}


def test_grid_reads_name_the_version_they_read(bj) -> None:
    current = grids.version(bj, "110105")
    assert current["status"] == "published"
    page = grids.grid_page(bj, grids.GridFilter(district="110105", kind="supervision", limit=3))
    assert page["version"] == current["version_id"] and page["version_status"] == "published"
    assert len(page["features"]) == 3 and page["total"] == current["supervision_grids"]
    with pytest.raises(NotFound, match="district 110105 has no grid version 999"):
        grids.grid_page(bj, grids.GridFilter(district="110105", version=999))
    with pytest.raises(NotFound, match=r"district 110199 has no grid version$"):
        grids.current_owners(bj, "110199", "management")
    version_id, owners = grids.current_owners(bj, "110105", "management")
    assert version_id == current["version_id"] and 0 < sum(o["grids"] for o in owners) <= current["unit_grids"]
    assert len(grids.current_teams(bj, "110105")) == current["teams"] and grids.current_teams(bj, "110199") == []


def test_the_grid_at_a_point_is_the_geocoders(bj) -> None:
    found = grids.grid_at(bj, LON, LAT)
    assert found is not None and found["district"] == "110105"
    assert found["card"]["code"] == found["code"] and found["card"]["version"] == grids.version(bj, "110105")[
        "version_id"]
    assert grids.find_grid(bj, found["code"])["properties"]["kind"] == "unit"
    assert grids.grid_at(bj, FAR_LON, FAR_LAT) is None
    assert cases.nearest_component(bj, FAR_LON, FAR_LAT, 200.0) is None  # outside every district


def test_district_reads_refuse_an_unknown_district(bj) -> None:
    assert "110105" in places.district_codes(bj)
    assert places.require_district(bj, "110105")["code"] == "110105"
    for read in (lambda: places.require_district(bj, "110199"), lambda: places.district_feature(bj, "110199"),
                 lambda: places.area_points(bj, "110199", "street"),
                 lambda: places.district_lines(bj, "110199", "road")):
        with pytest.raises(NotFound, match="no district 110199"):
            read()
    feature = places.district_feature(bj, "110105", 50.0)
    assert feature["properties"]["code"] == "110105" and feature["geometry"]["type"] in ("Polygon", "MultiPolygon")
    streets = places.area_points(bj, "110105", "street")
    assert streets and {s["level"] for s in streets} == {"street"}
    located = next(s for s in streets if s["lon"] is not None)
    assert 115.0 < located["lon"] < 118.0 and 39.0 < located["lat"] < 41.0  # EPSG:4326


def test_an_address_is_found_in_each_district_gazetteer(bj) -> None:
    street = next(s for s in places.area_points(bj, "110105", "street") if s["lon"] is not None)
    found = places.places_named(bj, street["name"])
    assert found and found[0]["district"] == "110105" and found[0]["id"] == street["code"]
    assert found[0]["lon"] == pytest.approx(street["lon"], abs=1e-6)
    assert places.places_named(bj, street["name"], "110105") == found


def test_audit_entries_take_one_filter(bj, reported) -> None:
    rows = audit_entries(bj, AuditFilter(object_kind="cases", object_id=str(reported["case_id"]), limit=5))
    assert rows and all(r["object_kind"] == "cases" and r["object_id"] == str(reported["case_id"]) for r in rows)
    assert audit_entries(bj, AuditFilter(actor="nobody-at-all")) == []


def test_the_caseload_counts_what_its_filter_names(bj, reported) -> None:
    version_id = grids.version(bj, "110105")["version_id"]
    counted = {r["code"]: r["cases"] for r in caseload(bj, "110105", version_id, "unit",
                                                       CaseloadFilter(kind="event", class_code="0102"))}
    assert counted[reported["unit_grid_code"]] >= 1
    none = {r["code"]: r["cases"] for r in caseload(bj, "110105", version_id, "unit",
                                                    CaseloadFilter(source="hotline", synthetic=True))}
    assert none[reported["unit_grid_code"]] == 0
