"""The endpoints behind the map pages: search, the grid under a point, owners per role, components and their
history, case lists as GeoJSON with a supervisor's scope; the pages' HTML references nothing outside."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from citygrid.config import Settings
from citygrid.webmap.folium_pages import json_script
from tests.conftest import assert_error, other_party, other_team, team_of

LON, LAT = 116.48, 39.93


def add_component(conn, obj_id: str, lon: float = LON, lat: float = LAT, valid_from: str = "2025-06-01",
                  valid_to: str | None = None) -> None:
    conn.execute(sa.text(
        """INSERT INTO components (district_code, obj_id, valid_from, valid_to, scheme, class_code, obj_name, geom)
           VALUES ('110105', :o, :f, CAST(:t AS timestamptz), 'cjt214', '0118', '路灯',
                   ST_Transform(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 4548))"""
    ), {"o": obj_id, "f": valid_from, "t": valid_to, "lon": lon, "lat": lat})


def test_search_by_grid_case_component_and_address(client, bj):
    grid = bj.execute(sa.text("SELECT code FROM unit_grids ORDER BY code LIMIT 1")).scalar_one()
    hit = client.get(f"/api/v1/search?q={grid}").get_json()["results"][0]
    assert hit["kind"] == "unit_grid" and hit["geometry"]["type"] == "Polygon"
    case = client.post("/api/v1/cases", json={"lon": LON, "lat": LAT, "class_code": "0102",
                                              "description": "暴露垃圾", "source": "supervisor"}).get_json()["case"]
    found = client.get(f"/api/v1/search?q=%23{case['case_id']}").get_json()["results"][0]
    assert found["kind"] == "case" and abs(found["lon"] - LON) < 1e-6
    add_component(bj, "1101050118777001")
    component = client.get("/api/v1/search?q=1101050118777001").get_json()["results"][0]
    assert component["kind"] == "component" and component["current"] is True
    place = client.get("/api/v1/search?q=南郎家园小区").get_json()["results"][0]
    assert place["label"] == "南郎家园社区" and 0 < place["confidence"] <= 1
    assert client.get("/api/v1/search?q=火星上的地址").get_json()["results"] == []


def test_search_finds_a_case_only_for_those_who_may_read_it(client_as, bj):
    dispatcher = client_as("searcher-desk", ["dispatcher"])
    case = dispatcher.post("/api/v1/cases", json={"lon": LON, "lat": LAT, "class_code": "0102",
                                                  "description": "暴露垃圾", "source": "supervisor"}).get_json()["case"]
    url = f"/api/v1/cases/{case['case_id']}/transitions"
    assert dispatcher.post(url, json={"action": "accept"}).status_code == 200
    party = dispatcher.post(url, json={"action": "dispatch"}).get_json()["attrs"]["dispatched_to"]["code"]
    team = team_of(bj, case["supervision_code"])
    elsewhere_team, elsewhere_party = other_team(bj, team), other_party(bj, party)

    def cases_found(caller) -> list[int]:
        answer = caller.get(f"/api/v1/search?q=%23{case['case_id']}")
        assert answer.status_code == 200
        return [r["id"] for r in answer.get_json()["results"] if r["kind"] == "case"]

    for allowed in (dispatcher, client_as("searcher-analyst", ["analyst"]),
                    client_as("searcher-sup", ["supervisor"], team),
                    client_as("searcher-unit", ["unit"], party=party)):
        assert cases_found(allowed) == [case["case_id"]]
    for refused in (client_as("searcher-other-sup", ["supervisor"], elsewhere_team),
                    client_as("searcher-planner", ["planner"]), client_as("searcher-gis", ["gis"]),
                    client_as("searcher-other-unit", ["unit"], party=elsewhere_party)):
        assert cases_found(refused) == []
    missing = client_as("searcher-gis-2", ["gis"]).get("/api/v1/search?q=%23999999999").get_json()
    assert missing["results"] == []  # the same answer as for a case that exists


@pytest.mark.parametrize(("query", "field"), [("", "q"), ("q=" + "x" * 101, "q"), ("q=a&district=12", "district")])
def test_search_bad_requests(client, query, field):
    answer = client.get(f"/api/v1/search?{query}")
    assert answer.status_code == 400 and answer.get_json()["details"][0]["field"] == field


@pytest.mark.parametrize("payload", ["1' OR '1'='1", "110105'; DROP TABLE cases;--", "%' UNION SELECT 1--"])
def test_search_injection_payloads_find_nothing(client, payload):
    answer = client.get("/api/v1/search", query_string={"q": payload})
    assert answer.status_code == 200 and answer.get_json()["results"] == []


def test_grid_under_a_point(client):
    inside = client.get(f"/api/v1/grids/at?lon={LON}&lat={LAT}").get_json()
    # management (DOMAIN.md): the community committee where the grid has a community, else the street office
    expected = "community" if inside["card"]["community_code"] else "street_office"
    assert len(inside["code"]) == 15 and inside["card"]["owners"]["management"]["kind"] == expected
    outside = client.get("/api/v1/grids/at?lon=100&lat=30")
    assert outside.status_code == 200 and outside.get_json()["code"] is None
    for query, field, reason in (("lon=116.48", "lat", "lon and lat (WGS84) are required"),
                                 ("lon=abc&lat=39.9", "lon", "must be a number, not 'abc'"),
                                 ("lon=200&lat=39.9", "lon", "between -180 and 180"),
                                 ("lon=116.4&lat=NaN", "lat", "between -90 and 90")):
        assert_error(client.get(f"/api/v1/grids/at?{query}"), 400, "invalid_input", field=field, reason=reason)


def test_owners_per_role(client):
    enforcement = client.get("/api/v1/grids/owners?district=110105&role=enforcement").get_json()
    assert enforcement["owners"] and all(o["name"].endswith("综合执法队") for o in enforcement["owners"])
    total = sum(o["grids"] for o in enforcement["owners"])
    management = client.get("/api/v1/grids/owners?district=110105&role=management").get_json()
    assert sum(o["grids"] for o in management["owners"]) == total  # every grid has one owner per role
    assert_error(client.get("/api/v1/grids/owners?district=110105&role=king"), 400, "invalid_input", field="role",
                 reason="one of responsibility, management, enforcement, supervision")
    assert_error(client.get("/api/v1/grids/owners?district=999999"), 404, "not_found",
                 reason="district 999999 has no grid version")


def test_component_history_and_nearest(client, bj):
    add_component(bj, "1101050118777002", lon=LON + 0.0002, valid_from="2024-01-01", valid_to="2025-01-01")
    add_component(bj, "1101050118777002", lon=LON, valid_from="2025-01-01")
    reported = client.post("/api/v1/cases", json={"lon": LON, "lat": LAT, "class_code": "0118", "description": "灯不亮",
                                                   "source": "supervisor", "component_obj_id": "1101050118777002"})
    assert reported.status_code == 201, reported.get_json()
    doc = client.get("/api/v1/components/1101050118777002").get_json()
    assert len(doc["versions"]) == 2 and doc["current"]["valid_to"] is None
    assert doc["current"]["cases"] == 1  # cases.component_obj_id (default collation) = obj_id (C)
    assert doc["versions"][0]["valid_from"] > doc["versions"][1]["valid_from"]  # newest first
    near = client.get(f"/api/v1/components/near?lon={LON}&lat={LAT}&within_m=3").get_json()
    assert near["component"]["obj_id"] == "1101050118777002" and near["component"]["distance_m"] < 1
    far = client.get(f"/api/v1/components/near?lon={LON + 0.01}&lat={LAT}&within_m=3").get_json()
    assert far["component"] is None
    assert_error(client.get("/api/v1/components/123"), 400, "invalid_input", field="obj_id", reason="16 digits")
    assert_error(client.get("/api/v1/components/1101050118000999"), 404, "not_found", reason="1101050118000999")
    assert_error(client.get(f"/api/v1/components/near?lon={LON}&lat={LAT}&within_m=5000"), 400, "invalid_input",
                 field="within_m", reason="between 0.1 and 200")


def test_case_list_as_geojson_scoped_to_a_team(client, bj):
    made = client.post("/api/v1/cases", json={"lon": LON, "lat": LAT, "class_code": "0505",
                                              "description": "乱停车", "source": "supervisor"}).get_json()["case"]
    team = bj.execute(sa.text("SELECT team_code FROM supervision_grids WHERE code = :c"),
                      {"c": made["supervision_code"]}).scalar_one()
    other = bj.execute(sa.text("SELECT code FROM supervision_teams WHERE code <> :t LIMIT 1"), {"t": team}).scalar_one()
    own = client.get(f"/api/v1/cases?format=geojson&open=true&team={team}").get_json()
    assert made["case_id"] in {f["id"] for f in own["features"]}
    feature = next(f for f in own["features"] if f["id"] == made["case_id"])
    assert feature["geometry"]["type"] == "Point" and feature["properties"]["status"] == "reported"
    assert made["case_id"] not in {f["id"] for f in client.get(f"/api/v1/cases?format=geojson&team={other}")
                                   .get_json()["features"]}
    for query, field, reason in (
            ("team=T01", "team", "team code 'T01' must be the district code + T + 2 to 4 digits"),
            ("team=110105T01'--", "team", "12 characters long; at most 11"),
            ("unit_grid=12", "unit_grid", "must be 15 digits"),
            ("supervision_grid=110105X0001", "supervision_grid", "must be the district code + S + 4 digits"),
            ("open=maybe", "open", "one of true, false"), ("format=kml", "format", "one of json, geojson"),
            ("limit=5001&format=geojson", "limit", "between 1 and 5000")):
        assert_error(client.get(f"/api/v1/cases?{query}"), 400, "invalid_input", field=field, reason=reason)


@pytest.mark.parametrize(("path", "script"), [("/", "overview.js"), ("/caseload", "caseload.js"),
                                              ("/cases", "cases.js")])
def test_pages_reference_only_this_server(client, path, script):
    html = client.get(path).get_data(as_text=True)
    assert f'src="/static/{script}"' in html and 'id="cg-data"' in html  # the page's own script and its data
    references = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert references and all(r.startswith(("/", "data:")) for r in references), references
    assert "cdn" not in html.lower() and "jquery" not in html.lower()


def test_page_data_cannot_close_its_script_element():
    text = json_script("cg-data", {"name": "</script><script>alert(1)</script>"})
    assert text.count("</script>") == 1 and "\\u003c/script\\u003e" in text


def test_case_months_span_first_to_last_report_in_beijing_time(case_rules, bj):
    from citygrid.cases import service
    from citygrid.cases import store as case_store
    from citygrid.cases.intake import parse_report
    from citygrid.spatial.db import deployment_zone

    zone = deployment_zone(bj)  # Asia/Shanghai, derived from EPSG:4548
    assert case_store.case_months(bj, "110105", zone) == [] and case_store.has_synthetic(bj, "110105") is False
    for when, lon in (("2025-11-30T23:30:00+08:00", LON), ("2026-02-01T00:10:00+08:00", LON + 0.01)):
        service.submit(bj, case_rules, parse_report({"lon": lon, "lat": LAT, "class_code": "0102", "description": "x",
                                                     "source": "supervisor", "reported_at": when}))
    assert case_store.case_months(bj, "110105", zone) == ["2025-11", "2025-12", "2026-01", "2026-02"]


@pytest.mark.parametrize(("url", "ok"), [("", None), ("https://tiles.example/{z}/{x}/{y}.png", True),
                                         ("/tiles/base/{z}/{x}/{y}.png", True), ("ftp://x/{z}/{x}/{y}", False),
                                         ("https://tiles.example/tile.png", False)])
def test_optional_basemap_setting(monkeypatch, url, ok):
    monkeypatch.setenv("CITYGRID_BASEMAP_URL", url)
    monkeypatch.setenv("CITYGRID_BASEMAP_ATTRIBUTION", " © the city ")
    settings = Settings.from_env()  # the environment is read here, once
    monkeypatch.delenv("CITYGRID_BASEMAP_URL")
    if ok is None:
        assert settings.basemap is None
    elif ok:
        assert settings.basemap == {"url": url, "attribution": "© the city"}
    else:
        with pytest.raises(ValueError, match=r"\{z\}"):
            _ = settings.basemap
