"""Cases: intake validation, geocoding to grids (boundary rule), idempotency, duplicates, workflow with 409s,
concurrency, Open311 GeoReport v2."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import shapely
import sqlalchemy as sa

from citygrid.cases import service
from citygrid.cases.escalation import EscalationRules
from citygrid.cases.intake import parse_report
from citygrid.cases.rules import DispatchRules
from citygrid.cases.workflow import TRANSITIONS, allowed_actions, next_state
from citygrid.errors import Conflict, InvalidInput
from citygrid.spatial import crs
from citygrid.spatial.geocode import GridIndex
from tests.conftest import assert_error

# A point well inside Chaoyang (WGS84) and the same place in GCJ-02.
LON, LAT = 116.48, 39.93
GCJ_LON, GCJ_LAT = (float(v[0]) for v in crs.wgs84_to_gcj02(np.array([LON]), np.array([LAT])))


def payload(**overrides):
    return {"lon": LON, "lat": LAT, "kind": "event", "class_code": "0102", "description": "暴露垃圾一堆",
            "source": "supervisor", **overrides}


# ------------------------------------------------------------------------------------------ intake validation
@pytest.mark.parametrize(("data", "field", "needle"), [
    ({"lon": None}, "lon", "required"),
    ({"lat": "abc"}, "lat", "number"),
    ({"lat": "NaN"}, "lat", "finite"),
    ({"lon": float("inf")}, "lon", "finite"),
    ({"lat": 95.0}, "lat", "outside -90"),
    ({"lon": 190.0}, "lon", "outside -180"),
    ({"lon": 39.93, "lat": 116.48}, "lat", "swapped"),
    ({"crs": "utm"}, "crs", "one of"),
    ({"kind": "thing"}, "kind", "component or event"),
    ({"class_code": "01';--"}, "class_code", "must be 1–16 letters, digits, _ or -"),
    ({"class_code": None, "description": ""}, "class_code", "required unless a description"),
    ({"description": "x" * 2001}, "description", "longer than"),
    ({"description": "", "source": "hotline"}, "description", "required"),
    ({"source": "pigeon"}, "source", "one of"),
    ({"photos": "a.jpg"}, "photos", "list"),
    ({"component_obj_id": "123"}, "component_obj_id", "16-digit"),
    ({"idempotency_key": "has space"}, "idempotency_key", "characters"),
    ({"reported_at": "yesterday"}, "reported_at", "ISO 8601"),
    ({"reported_at": "2999-01-01T00:00:00+08:00"}, "reported_at", "future"),
])
def test_bad_reports_name_field_and_reason(data, field, needle):
    with pytest.raises(InvalidInput) as err:
        parse_report(payload(**data))
    details = {d["field"]: d["reason"] for d in err.value.details}
    assert field in details and needle in details[field]


def test_all_problems_reported_at_once():
    with pytest.raises(InvalidInput) as err:
        parse_report({"lon": "x", "lat": None, "class_code": "1?", "kind": "?", "source": "pigeon",
                      "idempotency_key": "a b", "reported_at": "1900-01-01T00:00:00Z", "address": "x" * 301})
    details = err.value.details
    assert [d["field"] for d in details] == ["lon", "lat", "kind", "class_code", "source", "idempotency_key",
                                             "reported_at", "address"]
    # one shape for every problem (errors.problem): a request's field has no line
    assert all(d["line"] is None and d["severity"] == "error" and d["reason"] for d in details)
    assert err.value.message == "8 problem(s) with the report"


# ------------------------------------------------------------------------------------------ geocoding
def test_report_is_placed_in_grid_supervision_grid_street_community(case_rules, bj):
    case, outcome = service.submit(bj, case_rules, parse_report(payload()))
    assert outcome == "created" and case["status"] == "reported" and case["district_code"] == "110105"
    assert len(case["unit_grid_code"]) == 15 and case["supervision_code"].startswith("110105S")
    assert case["street_code"] and case["unit_grid_code"][6:9] == case["street_code"][6:9]
    covering = bj.execute(sa.text("""SELECT code FROM unit_grids WHERE district_code = '110105'
                                     AND ST_Covers(geom, ST_Transform(ST_SetSRID(ST_MakePoint(:x, :y), 4326), 4548))
                                     ORDER BY code LIMIT 1"""), {"x": LON, "y": LAT}).scalar()
    assert case["unit_grid_code"] == covering
    assert abs(case["lon"] - LON) < 1e-7 and abs(case["lat"] - LAT) < 1e-7
    assert [e["action"] for e in case["events"]] == ["report"]


def test_gcj02_report_lands_at_the_same_place(case_rules, bj):
    wgs, _ = service.submit(bj, case_rules, parse_report(payload()))
    gcj, _ = service.submit(bj, case_rules,
                            parse_report(payload(lon=GCJ_LON, lat=GCJ_LAT, crs="gcj02", class_code="0103")))
    assert abs(gcj["lon"] - LON) < 1e-6 and abs(gcj["lat"] - LAT) < 1e-6
    assert gcj["unit_grid_code"] == wgs["unit_grid_code"]


def test_point_outside_every_district_says_how_far(case_rules, bj):
    with pytest.raises(InvalidInput, match=r"m outside the nearest district") as err:
        service.submit(bj, case_rules, parse_report(payload(lon=116.2, lat=39.9)))
    assert err.value.details[0]["field"] == "lon"


def test_unknown_class_is_refused(case_rules, bj):
    with pytest.raises(InvalidInput, match="unknown event class 0999"):
        service.submit(bj, case_rules, parse_report(payload(class_code="0999")))


def test_boundary_rule_smallest_code_wins():
    left, right = shapely.box(0, 0, 10, 10), shapely.box(10, 0, 20, 10)
    index = GridIndex(version=1, codes=np.array(["A", "B"], dtype=object), supervision_codes=np.array(["S", "T"]),
                      street_codes=np.array(["s", "s"]), community_codes=np.array(["c", "c"]),
                      tree=shapely.STRtree([left, right]))
    hits = index.assign(np.array([10.0, 5.0, 15.0, 30.0]), np.array([5.0, 5.0, 5.0, 5.0]))
    assert hits.tolist() == [0, 0, 1, -1]


def test_grid_index_agrees_with_postgis_contains(bj):
    """The Python index (fast path) against PostGIS ST_Covers (exact path) on random points."""
    index = GridIndex.for_district(bj, "110105")
    rng = np.random.default_rng(3)
    x, y = rng.uniform(445_000, 470_000, 300), rng.uniform(4_405_000, 4_440_000, 300)
    ours = index.assign(x, y)
    exact = bj.execute(sa.text(
        """SELECT p.i, (SELECT min(u.code) FROM unit_grids u WHERE u.district_code = '110105'
                          AND u.version_id = :v AND ST_Covers(u.geom, ST_SetSRID(ST_MakePoint(p.x, p.y), 4548)))
             FROM unnest(CAST(:xs AS float8[]), CAST(:ys AS float8[])) WITH ORDINALITY AS p(x, y, i)
            ORDER BY p.i"""), {"xs": x.tolist(), "ys": y.tolist(), "v": index.version}).all()
    ours_codes = [index.codes[i] if i >= 0 else None for i in ours]
    assert ours_codes == [row[1] for row in exact]


# ------------------------------------------------------------------------------------------ idempotency, duplicates
def test_idempotency_key_never_creates_a_second_case(case_rules, bj):
    first, outcome1 = service.submit(bj, case_rules, parse_report(payload(idempotency_key="app-42:abc")))
    again, outcome2 = service.submit(bj, case_rules, parse_report(payload(idempotency_key="app-42:abc")))
    assert (outcome1, outcome2) == ("created", "existing") and first["case_id"] == again["case_id"]
    with pytest.raises(Conflict, match="different report"):  # the same key with another body is not a retry
        service.submit(bj, case_rules, parse_report(payload(idempotency_key="app-42:abc", description="重试")))


def test_a_retried_duplicate_report_is_linked_once(case_rules, bj):
    first, _ = service.submit(bj, case_rules, parse_report(payload(lon=LON + 0.011)))
    retry = payload(lon=LON + 0.0111, description="又一堆", idempotency_key="dup-retry-1")
    linked, outcome = service.submit(bj, case_rules, parse_report(retry))
    again, again_outcome = service.submit(bj, case_rules, parse_report(retry))
    assert (outcome, again_outcome) == ("duplicate", "existing")
    assert linked["case_id"] == again["case_id"] == first["case_id"]
    assert [e["action"] for e in again["events"]].count("duplicate_report") == 1


def test_same_class_nearby_is_linked_not_duplicated(case_rules, bj):
    first, _ = service.submit(bj, case_rules, parse_report(payload()))
    near, outcome = service.submit(bj, case_rules, parse_report(payload(lon=LON + 0.0002, description="又一堆")))
    assert outcome == "duplicate" and near["case_id"] == first["case_id"]
    assert [e["action"] for e in near["events"]] == ["report", "duplicate_report"]
    other_class, outcome = service.submit(bj, case_rules, parse_report(payload(class_code="0104")))
    far, outcome_far = service.submit(bj, case_rules, parse_report(payload(lon=LON + 0.01)))
    assert outcome == "created" and outcome_far == "created"
    assert len({first["case_id"], other_class["case_id"], far["case_id"]}) == 3


def test_component_report_links_the_component_named(case_rules, bj):
    with pytest.raises(InvalidInput, match="no current component"):
        service.submit(bj, case_rules, parse_report(payload(kind="component", class_code="0101",
                                                            component_obj_id="1101050101999999")))


# ------------------------------------------------------------------------------------------ workflow
def test_state_machine_tables():
    assert next_state("reported", "accept").target == "accepted"
    assert next_state("fed_back", "check_fail").target == "accepted"  # re-dispatched by the dispatcher (#21)
    assert set(allowed_actions("closed")) == {"evaluate", "reopen", "callback"}
    with pytest.raises(Conflict, match="'close' is not allowed on a reported case"):
        next_state("reported", "close")
    with pytest.raises(InvalidInput, match="unknown action"):
        next_state("reported", "teleport")
    assert all(t.sources for t in TRANSITIONS.values())


def test_full_loop_with_rework_and_reopen(case_rules, bj):
    case, _ = service.submit(bj, case_rules, parse_report(payload()))
    steps = [("accept", "acceptor"), ("dispatch", "dispatcher"), ("feed_back", "unit"), ("check_fail", "supervisor"),
             ("dispatch", "dispatcher"), ("feed_back", "unit"), ("check_pass", "supervisor"), ("close", "acceptor"),
             ("reopen", "acceptor")]
    for action, role in steps:
        case = service.transition(bj, case_rules, case["case_id"], action, actor=f"{role}-1", role=role, note=action)
    assert case["status"] == "accepted" and case["row_version"] == 1 + len(steps)
    events = case["events"]
    actions = ["report"] + [a for a, _ in steps]
    # the failed check and the reopening each raise the case a level (escalation.yaml after: 1 each)
    assert [e["action"] for e in events] == [*actions[:5], "escalate", *actions[5:], "escalate"]
    assert events[4]["from_status"] == "fed_back" and events[4]["to_status"] == "accepted"
    assert all(e["actor"] and e["at"] for e in events)


def test_invalid_transition_is_a_conflict_and_changes_nothing(case_rules, bj):
    case, _ = service.submit(bj, case_rules, parse_report(payload()))
    with pytest.raises(Conflict):
        service.transition(bj, case_rules, case["case_id"], "close", actor="a", role="acceptor")
    assert service.case_view(bj, case["case_id"])["status"] == "reported"


def test_stale_version_is_a_conflict(case_rules, bj):
    case, _ = service.submit(bj, case_rules, parse_report(payload()))
    service.transition(bj, case_rules, case["case_id"], "accept", actor="a", role="acceptor", expected_version=1)
    with pytest.raises(Conflict, match="changed meanwhile"):
        service.transition(bj, case_rules,
                           case["case_id"], "dispatch", actor="b", role="dispatcher", expected_version=1)


# ------------------------------------------------------------------------------------------ HTTP
def test_http_report_idempotent_and_errors(client):
    headers = {"Idempotency-Key": "k-1"}
    first = client.post("/api/v1/cases", json=payload(description="<script>alert(1)</script>"), headers=headers)
    again = client.post("/api/v1/cases", json=payload(description="<script>alert(1)</script>"), headers=headers)
    assert first.status_code == 201 and again.status_code == 200
    assert first.get_json()["case"]["case_id"] == again.get_json()["case"]["case_id"]
    assert_error(client.post("/api/v1/cases", data="{not json", content_type="application/json"), 400,
                 "invalid_input", field="body", reason="not valid JSON")
    assert_error(client.post("/api/v1/cases", data="lon=1", content_type="text/plain"), 400, "invalid_input",
                 field="Content-Type", reason="as JSON")
    assert_error(client.post("/api/v1/cases", json=[1, 2]), 400, "invalid_input", field="body",
                 reason="must be a JSON object")
    bad = client.post("/api/v1/cases", json=payload(lat="NaN"))
    assert bad.status_code == 400 and bad.get_json()["details"][0]["field"] == "lat"


def test_a_point_outside_the_projection_zone_is_a_400_not_a_500(client):
    """Found by schemathesis: lon 30 is 87° from the zone's meridian and PROJ answers infinity."""
    for path, body in (("/api/v1/cases", payload(lon=30.0, lat=0.1)),):
        answer = client.post(path, json=body)
        assert answer.status_code == 400 and answer.get_json()["details"][0]["field"] == "lon"
    form = {"service_code": "E0102", "lat": "0.1", "long": "30", "description": "x"}
    assert_error(client.post("/open311/v2/requests.json", data=form), 400, "invalid_input", field="lon",
                 reason="too far from this deployment's area")
    assert_error(client.get("/api/v1/grids/at?lon=30&lat=0.1"), 400, "invalid_input", field="lon",
                 reason="too far from this deployment's area")


def test_http_transitions_and_409(client):
    case = client.post("/api/v1/cases", json=payload()).get_json()["case"]
    url = f"/api/v1/cases/{case['case_id']}/transitions"
    assert_error(client.post(url, json={"action": "close", "actor": "x", "role": "acceptor"}), 409, "conflict",
                 reason="action 'close' is not allowed on a reported case")
    ok = client.post(url, json={"action": "accept", "actor": "x", "role": "acceptor", "expected_version": 1})
    assert ok.status_code == 200 and ok.get_json()["status"] == "accepted"
    stale = client.post(url, json={"action": "dispatch", "actor": "x", "role": "dispatcher", "expected_version": 1})
    assert_error(stale, 409, "conflict", reason="changed meanwhile (now version 2)")
    assert_error(client.post(url, json={"action": "teleport"}), 400, "invalid_input", field="action",
                 reason="unknown action 'teleport'")
    missing = client.post("/api/v1/cases/999999999/transitions", json={"action": "accept", "actor": "x"})
    assert_error(missing, 404, "not_found", reason="no case 999999999")


@pytest.mark.parametrize(("query", "field", "reason"), [
    ("status=lost", "status", "status must be one of reported"), ("kind=x", "kind", "one of component, event"),
    ("class_code=a%3Cb", "class_code", "class code 'a<b' must be 1–16 letters"),
    ("class_code=-lead", "class_code", "starting with a letter or digit"),
    ("district=1", "district", "district code '1' must be 6 digits"),
    ("start=yesterday", "start", "ISO 8601 date or date-time"),
    ("limit=0", "limit", "between 1 and 1000"), ("limit=5000", "limit", "between 1 and 1000"),
    ("bbox=1,2", "bbox", "four numbers"), ("status=open'--", "status", "status must be one of reported"),
])
def test_http_case_filters_are_validated(client, query, field, reason):
    assert_error(client.get(f"/api/v1/cases?{query}"), 400, "invalid_input", field=field, reason=reason)


def test_http_case_list_filters(client):
    client.post("/api/v1/cases", json=payload())
    listed = client.get("/api/v1/cases?district=110105&status=reported&class_code=0102").get_json()
    assert listed["count"] >= 1 and all(c["status"] == "reported" for c in listed["cases"])
    assert client.get("/api/v1/cases?status=closed&class_code=0102").get_json()["count"] == 0


# ------------------------------------------------------------------------------------------ Open311
def test_open311_services(client):
    services = client.get("/open311/v2/services.json").get_json()
    codes = {s["service_code"] for s in services}
    assert {"E0102", "C0101"} <= codes and len(services) == 139
    assert client.get("/open311/v2/services/E0102.json").get_json()["service_code"] == "E0102"
    assert_error(client.get("/open311/v2/services/E9999.json"), 404, "not_found", reason="no service E9999")
    assert_error(client.get("/open311/v2/services/X1.json"), 400, "invalid_input", field="service_code",
                 reason="must be E or C and a 4-digit class")


def test_open311_post_and_get_request_spec_example(client):
    # The spec's POST example, form-encoded, moved to Chaoyang.
    form = {"service_code": "E0102", "lat": str(LAT), "long": str(LON), "address_string": "朝阳区某路",
            "email": "smit222@sfgov.edu", "first_name": "John", "description": "A large pothole at the curb."}
    created = client.post("/open311/v2/requests.json", data=form)
    assert created.status_code == 201
    (token,) = created.get_json()
    assert token["service_request_id"] and len(token["unit_grid_code"]) == 15
    (request_view,) = client.get(f"/open311/v2/requests/{token['service_request_id']}.json").get_json()
    assert request_view["status"] == "open" and request_view["service_code"] == "E0102"
    assert request_view["description"] == "A large pothole at the curb." and request_view["address"] == "朝阳区某路"
    assert not {"supervision_grid_code", "unit_grid_code", "owner", "email", "first_name"} & set(request_view)
    listed = client.get("/open311/v2/requests.json?service_code=E0102&status=open").get_json()
    assert any(r["service_request_id"] == token["service_request_id"] for r in listed)
    boxed = client.get("/open311/v2/requests.json?bbox=116.47,39.92,116.49,39.94").get_json()
    assert any(r["service_request_id"] == token["service_request_id"] for r in boxed)


@pytest.mark.parametrize(("form", "field", "reason"), [
    ({"service_code": "Z1", "lat": "39.9", "long": "116.4"}, "service_code", "must be E or C and a 4-digit class"),
    ({"service_code": "E0102", "lat": "", "long": "116.48", "description": "x"}, "lat", "required"),
    ({"service_code": "E0102", "lat": "39.93", "long": "116.48"}, "description", "required for public reports"),
    ({"service_code": "E0102", "address_string": "某路", "description": "x"}, "address",
     "no street, community or road of the district is named in '某路'; send lat and long"),
    ({"service_code": "E0102", "address_string": "北京市朝阳区建外街道", "description": "x"}, "address",
     "建外街道 is known but has no location in the gazetteer; send lat and long"),
])
def test_open311_bad_requests(client, form, field, reason):
    assert_error(client.post("/open311/v2/requests.json", data=form), 400, "invalid_input", field=field,
                 reason=reason)


@pytest.mark.parametrize(("query", "field", "reason"), [
    ("status=pending", "status", "one of open, closed"), ("start_date=last-week", "start_date", "ISO 8601"),
    ("service_code=nope", "service_code", "service code 'nope' must be E or C"),
    ("bbox=a,b,c,d", "bbox", "four numbers")])
def test_open311_bad_filters(client, query, field, reason):
    assert_error(client.get(f"/open311/v2/requests.json?{query}"), 400, "invalid_input", field=field, reason=reason)


def test_two_concurrent_changes_one_wins_one_conflicts(case_rules, beijing_engine):
    """Two transactions change the same case at once: exactly one succeeds, the other gets 409 (Conflict)."""
    import threading

    with beijing_engine.begin() as conn:
        case, _ = service.submit(conn, case_rules, parse_report(payload(lon=LON + 0.02, idempotency_key="race-1")))
    results: list[str] = []
    barrier = threading.Barrier(2)

    def attempt(action: str) -> None:
        try:
            with beijing_engine.begin() as conn:
                barrier.wait()
                service.transition(conn, case_rules, case["case_id"], action, actor=action, role="acceptor",
                                   note="重复")  # reject needs its reason
            results.append("ok")
        except Conflict:
            results.append("conflict")

    threads = [threading.Thread(target=attempt, args=(a,)) for a in ("accept", "reject")]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert sorted(results) == ["conflict", "ok"]
        with beijing_engine.connect() as conn:
            final = service.case_view(conn, case["case_id"])
        assert final["status"] in ("accepted", "rejected") and len(final["events"]) == 2
    finally:
        with beijing_engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM cases WHERE case_id = :c"), {"c": case["case_id"]})


def test_cell_table_fast_path_equals_exact_path(bj):
    """The cell lookup table (fast path) and the exact point-in-polygon path give the same grid for random
    points, for points on grid vertices and edges, and for points exactly on cell edges."""
    from citygrid.spatial.geocode import CellTable

    index = GridIndex.for_district(bj, "110105")
    index.cells = CellTable.build(index.tree.geometries, 25.0)
    rng = np.random.default_rng(11)
    geoms = index.tree.geometries[:300]
    vertices = shapely.get_coordinates(shapely.boundary(geoms))[::7]
    x0, y0, size = index.cells.x0, index.cells.y0, index.cells.size
    on_cell_edges = np.vstack([
        np.column_stack([x0 + size * rng.integers(0, 1000, 2000), rng.uniform(4.40e6, 4.44e6, 2000)]),
        np.column_stack([rng.uniform(445_000, 470_000, 2000), y0 + size * rng.integers(0, 1400, 2000)]),
    ])
    random = np.column_stack([rng.uniform(445_000, 470_000, 20_000), rng.uniform(4_405_000, 4_440_000, 20_000)])
    pts = np.vstack([vertices, on_cell_edges, random, [[np.nan, 1.0], [1e12, 1e12]]])
    fast = index.assign(pts[:, 0], pts[:, 1])  # table lookup, exact test in boundary cells
    assert np.array_equal(fast, index.assign_exact(pts[:, 0], pts[:, 1]))
    looked_up = index.cells.lookup(pts[:, 0], pts[:, 1])
    assert (looked_up == -2).any() and (looked_up >= 0).any()  # both paths were exercised


# ------------------------------------------------------------------------------------------ dispatch, escalation
def test_owners_at_report_time_and_dispatch_to_the_management_party(case_rules, bj):
    """The derived management party (DOMAIN.md) is the community committee, else the street office; the
    responsibility subject defaults to it."""
    case, _ = service.submit(bj, case_rules, parse_report(payload()))
    owners = case["owners"]
    manager = case["community_code"] or case["street_code"]
    assert owners["management"]["kind"] == ("community" if case["community_code"] else "street_office")
    assert owners["management"]["code"] == manager and owners["responsibility"]["code"] == manager
    service.transition(bj, case_rules, case["case_id"], "accept", actor="a", role="acceptor")
    dispatched = service.transition(bj, case_rules, case["case_id"], "dispatch", actor="d", role="dispatcher")
    assert dispatched["attrs"]["dispatched_to"]["code"] == manager
    assert dispatched["attrs"]["dispatched_to"]["rule"] == "grid management"


def test_store_queries_keep_to_a_case_scope(case_rules, bj):
    """One scope condition for get, list, deadlines and the scope check: a team's grids, a party's dispatched
    cases (in its district), their union, everything, or nothing."""
    from citygrid.cases import store
    from citygrid.cases.scope import CaseScope
    from citygrid.errors import Forbidden

    case, _ = service.submit(bj, case_rules, parse_report(payload()))
    cid = case["case_id"]
    service.transition(bj, case_rules, cid, "accept", actor="a", role="acceptor")
    party = service.transition(bj, case_rules,
                               cid, "dispatch", actor="d", role="dispatcher")["attrs"]["dispatched_to"]["code"]
    team = bj.execute(sa.text("SELECT team_code FROM supervision_grids WHERE code = :c"),
                      {"c": case["supervision_code"]}).scalar_one()
    own_team, own_party = CaseScope(team=team), CaseScope(party=party, district="110105")
    strangers = (CaseScope(team="110105T99"), CaseScope(party=party, district="110101"),
                 CaseScope(party="elsewhere", district="110105"), CaseScope(readable=False))
    for scope in (CaseScope(), own_team, own_party, CaseScope(team="110105T99", party=party, district="110105")):
        assert store.in_scope(bj, cid, scope) and store.get_case(bj, cid, scope)["case_id"] == cid
        service.check_scope(bj, cid, scope)
    for scope in strangers:
        assert not store.in_scope(bj, cid, scope) and store.get_case(bj, cid, scope) is None
    with pytest.raises(Forbidden, match="your party elsewhere"):
        service.check_scope(bj, cid, strangers[2])

    def listed(scope):
        rows = store.list_cases(bj, district=None, status=None, kind=None, class_code=None, start=None, end=None,
                                bbox=None, unit_grid=None, supervision_grid=None, srid=4548, limit=1000, offset=0,
                                scope=scope)
        return {r["case_id"] for r in rows}

    assert cid in listed(own_team) and cid in listed(own_party) and cid not in listed(strangers[2])
    assert listed(strangers[3]) == set()
    assert all(store.get_case(bj, c)["attrs"]["dispatched_to"]["code"] == party for c in listed(own_party))
    bj.execute(sa.text("UPDATE cases SET deadline_at = now() + interval '1 hour' WHERE case_id = :c"), {"c": cid})
    assert cid in {c["case_id"] for c in store.deadline_lists(bj, None, 4.0, 100, own_party)["due_soon"]}
    assert cid not in {c["case_id"] for c in store.deadline_lists(bj, None, 4.0, 100, strangers[2])["due_soon"]}


def test_dispatch_override_and_missing_owner(case_rules, bj):
    case, _ = service.submit(bj, case_rules, parse_report(payload()))
    service.transition(bj, case_rules, case["case_id"], "accept", actor="a", role="acceptor")
    rules = DispatchRules(rules={"event": "management"}, overrides={"event/0102": {"kind": "department", "code": "SW"}})
    with pytest.raises(Conflict, match="unknown party SW"):
        service.responsible_party(bj, rules, service.case_view(bj, case["case_id"]))
    bj.execute(sa.text("INSERT INTO parties (district_code, kind, code, name) VALUES ('110105', 'department', 'SW', "
                       "'环卫中心')"))
    assert service.responsible_party(bj, rules, service.case_view(bj, case["case_id"]))["name"] == "环卫中心"
    bj.execute(sa.text("DELETE FROM grid_ownership WHERE grid_code = :g"), {"g": case["unit_grid_code"]})
    with pytest.raises(Conflict, match="no responsible party"):
        service.responsible_party(bj, DispatchRules(rules={}), service.case_view(bj, case["case_id"]))


def test_escalation_climbs_levels_and_stops_at_district(case_rules, bj):
    case, _ = service.submit(bj, case_rules, parse_report(payload()))
    service.transition(bj, case_rules, case["case_id"], "accept", actor="a", role="acceptor")
    with pytest.raises(Conflict):
        service.transition(bj, case_rules, case["case_id"], "close", actor="a", role="acceptor")
    one = service.transition(bj, case_rules, case["case_id"], "escalate", actor="system", role="system")
    two = service.transition(bj, case_rules, case["case_id"], "escalate", actor="system", role="system")
    assert (one["attrs"]["level"], two["attrs"]["level"]) == ("street", "district")
    assert two["status"] == "accepted" and two["events"][-1]["note"] == "street -> district"
    with pytest.raises(Conflict, match="already handled at district"):
        service.transition(bj, case_rules, case["case_id"], "escalate", actor="system", role="system")


def test_derived_owners_in_all_four_roles(case_rules, bj):
    case, _ = service.submit(bj, case_rules, parse_report(payload()))
    owners = case["owners"]
    assert set(owners) == {"management", "responsibility", "enforcement", "supervision"}
    assert owners["enforcement"]["kind"] == "team" and owners["enforcement"]["name"].endswith("综合执法队")
    team = bj.execute(sa.text("SELECT t.name FROM supervision_grids s JOIN supervision_teams t USING "
                              "(district_code, version_id) WHERE t.code = s.team_code AND s.code = :c"),
                      {"c": case["supervision_code"]}).scalar_one()
    assert owners["supervision"]["name"] == team


def test_report_without_a_class_is_classified_and_flagged_for_review(case_rules, bj):
    case, outcome = service.submit(bj, case_rules, parse_report(payload(class_code=None, kind=None,
                                                                        description="路口有小贩摆摊卖水果")))
    assert outcome == "created" and (case["kind"], case["class_code"]) == ("event", "0501")
    classification = case["attrs"]["classification"]
    assert classification["by"] == "taxonomy" and len(classification["top"]) == 3
    assert classification["top"][0]["code"] == "0501"
    assert classification["needs_review"] == (classification["top"][0]["probability"] < service.REVIEW_BELOW)
    fixed = service.transition(bj, case_rules, case["case_id"], "reclassify", actor="a", role="acceptor", kind="event",
                               class_code="0504")
    assert (fixed["class_code"], fixed["status"]) == ("0504", "reported")
    assert fixed["attrs"]["classification"]["needs_review"] is False
    assert fixed["events"][-1]["note"] == "event/0501 -> event/0504"
    with pytest.raises(InvalidInput, match="unknown event class '9999'"):
        service.transition(bj, case_rules, case["case_id"], "reclassify", actor="a", role="acceptor", class_code="9999")
    with pytest.raises(InvalidInput, match="kind must be"):
        service.transition(bj, case_rules, case["case_id"], "reclassify", actor="a", role="acceptor", kind="x",
                           class_code="0102")


def test_component_kind_given_limits_classification(case_rules, bj):
    case, _ = service.submit(bj, case_rules, parse_report(payload(class_code=None, kind="component",
                                                                  description="井盖丢失了很危险")))
    assert (case["kind"], case["class_code"]) == ("component", "0101")


def test_reclassify_is_refused_after_dispatch(case_rules, bj):
    case, _ = service.submit(bj, case_rules, parse_report(payload()))
    for action, role in (("accept", "acceptor"), ("dispatch", "dispatcher")):
        service.transition(bj, case_rules, case["case_id"], action, actor="a", role=role)
    with pytest.raises(Conflict, match="'reclassify' is not allowed on a dispatched case"):
        service.transition(bj, case_rules, case["case_id"], "reclassify", actor="a", role="acceptor", class_code="0103")


def test_emergency_classes_start_at_district_level(case_rules, bj):
    emergency, _ = service.submit(bj, case_rules, parse_report(payload(class_code="0401", description="路面塌陷")))
    ordinary, _ = service.submit(bj, case_rules, parse_report(payload(class_code="0505", description="乱停车")))
    assert emergency["attrs"]["level"] == "district" and ordinary["attrs"]["level"] == "community"


def test_repeated_hand_backs_and_a_reopening_escalate_by_rule(case_rules, bj):
    case, _ = service.submit(bj, case_rules, parse_report(payload()))
    cid = case["case_id"]
    two_hand_backs = replace(case_rules, escalation=replace(case_rules.escalation,
                                                            after={**case_rules.escalation.after, "hand_back": 2}))
    steps = [("accept", "acceptor"), ("dispatch", "dispatcher"), ("hand_back", "unit"), ("dispatch", "dispatcher"),
             ("hand_back", "unit")]
    for action, role in steps:
        case = service.transition(bj, two_hand_backs, cid, action, actor="a", role=role, note="不属本单位职责")
    assert case["attrs"]["level"] == "street"
    last = case["events"][-1]
    assert (last["action"], last["actor"]) == ("escalate", "system") and "hand_back 2 time(s)" in last["note"]
    for action, role in (("dispatch", "dispatcher"), ("feed_back", "unit"), ("check_pass", "supervisor"),
                         ("close", "acceptor"), ("reopen", "acceptor")):
        case = service.transition(bj, two_hand_backs, cid, action, actor="a", role=role)
    assert case["attrs"]["level"] == "district" and case["status"] == "accepted"


def test_no_rule_no_escalation(case_rules, bj):
    case, _ = service.submit(bj, case_rules, parse_report(payload()))
    for action, role in (("accept", "acceptor"), ("dispatch", "dispatcher"), ("hand_back", "unit")):
        case = service.transition(bj, replace(case_rules, escalation=EscalationRules()), case["case_id"], action,
                                  actor="a", role=role, note="不属本单位职责")
    assert case["attrs"]["level"] == "community"


@pytest.mark.parametrize(("data", "needle"), [
    ({"initial_level": {"event/04": "city"}}, "not one of community"),
    ({"after": {"teleport": 2}}, "not one of hand_back"),
    ({"after": {"hand_back": 0}}, "whole number"),
    ({"after": {"hand_back": "two"}}, "whole number"),
])
def test_bad_escalation_rules_are_refused(data, needle):
    with pytest.raises(InvalidInput, match=needle):
        EscalationRules.from_mapping(data)


def test_http_report_without_class_and_reclassify(client):
    made = client.post("/api/v1/cases", json=payload(class_code=None, kind=None, description="这里有人乱贴小广告"))
    assert made.status_code == 201
    case = made.get_json()["case"]
    assert case["class_code"] == "0201" and case["attrs"]["classification"]["top"][0]["code"] == "0201"
    url = f"/api/v1/cases/{case['case_id']}/transitions"
    bad = client.post(url, json={"action": "reclassify", "actor": "a", "role": "acceptor", "class_code": "x1"})
    assert bad.status_code == 400 and bad.get_json()["details"][0]["field"] == "class_code"
    ok = client.post(url, json={"action": "reclassify", "actor": "a", "role": "acceptor", "kind": "event",
                                "class_code": "0202"})
    assert ok.status_code == 200 and ok.get_json()["class_code"] == "0202"


# ------------------------------------------------------------------------------------------ addresses
@pytest.mark.parametrize(("address", "name", "located"), [
    ("朝阳区南郎家园小区门口", "南郎家园社区", True),     # core name inside a longer address
    ("北京市朝阳区建外街道", "建外街道", False),           # known, but the source has no point for it
    ("火星上", None, None),
    ("北京市朝阳区朝外", None, None),                      # too short to trust a fuzzy match
])
def test_gazetteer(bj, address, name, located):
    from citygrid.spatial.gazetteer import Gazetteer

    match = Gazetteer.for_district(bj, "110105").locate(address)
    if name is None:
        assert match is None
    else:
        assert match.place.name == name and (match.place.x is not None) == located and 0 < match.confidence <= 1


def test_duplicate_place_names_are_ambiguous(case_rules, bj):
    from citygrid.spatial.gazetteer import Gazetteer

    bj.execute(sa.text("UPDATE admin_areas SET point = ST_SetSRID(ST_MakePoint(460000, 4420000), 4548) "
                       "WHERE name = '楼梓庄村委会'"))
    match = Gazetteer.for_district(bj, "110105").locate("楼梓庄村口")
    assert match.ambiguous
    with pytest.raises(InvalidInput, match="more than one place"):
        service.submit(bj, case_rules,
                       parse_report({"address": "楼梓庄村口", "class_code": "0102", "description": "x"}))


def test_report_located_by_address(case_rules, bj):
    case, _ = service.submit(bj, case_rules, parse_report({"address": "朝阳区南郎家园小区门口", "class_code": "0102",
                                                           "description": "暴露垃圾", "source": "hotline"}))
    located = case["attrs"]["located_by"]
    assert located["place"] == "南郎家园社区" and located["confidence"] > 0.5
    assert case["community_code"] is not None and case["unit_grid_code"]


def test_bbox_is_applied_exactly_in_wgs84(client):
    """The box's extent in the storage CRS is larger than the box (Gauss–Krüger rotates it a third of a degree
    here): points 3 m outside each edge near the corners were listed before (#19)."""
    x0, y0, x1, y1 = 116.50, 39.95, 116.52, 39.97
    step = 3 / 111_320
    outside = [(x0 - step * 1.3, y1 - step), (x1 + step * 1.3, y0 + step), (x0 + step, y0 - step),
               (x1 - step, y1 + step), (x0 - step * 1.3, y0 + step), (x1 + step * 1.3, y1 - step)]
    ids = set()
    for i, (lon, lat) in enumerate(outside):
        ids.add(client.post("/api/v1/cases", json=payload(lon=lon, lat=lat, class_code=f"01{i + 10}"))
                .get_json()["case"]["case_id"])
    inside = client.post("/api/v1/cases", json=payload(lon=x0 + 0.01, lat=y0 + 0.01)).get_json()["case"]["case_id"]
    listed = {c["case_id"] for c in client.get(f"/api/v1/cases?bbox={x0},{y0},{x1},{y1}&limit=1000")
              .get_json()["cases"]}
    assert inside in listed and not ids & listed
