"""Hostile requests (#18): anonymous Open311 reads, other callers' idempotency keys, replayed and altered
requests, control characters everywhere, a reporter setting the synthetic flag, deeply nested JSON, and
workflow actions on imported cases. Each of these answered with another caller's case or a 500 before."""

from __future__ import annotations

import datetime
import io
import json

import pytest

from citygrid.cases import history, service
from citygrid.cases.intake import parse_report
from citygrid.cases.publication import Publication, request_view
from citygrid.errors import Conflict, InvalidInput
from tests.conftest import assert_error
from tests.test_cases import LAT, LON, payload

OPEN311 = {"service_code": "E0102", "lat": str(LAT + 0.004), "long": str(LON + 0.004),
           "description": "路边垃圾", "address_string": "朝阳区某路"}


def _ids(answer) -> set[str]:
    return {r["service_request_id"] for r in answer.get_json()}


# ------------------------------------------------------------------------------------------ Open311 GET
def test_anonymous_open311_lists_only_published_requests(client, anonymous_client):
    internal = client.post("/api/v1/cases", json=payload(description="内部上报 secret note")).get_json()["case"]
    public = anonymous_client.post("/open311/v2/requests.json", data=OPEN311).get_json()[0]
    listed = anonymous_client.get("/open311/v2/requests.json")
    assert listed.status_code == 200
    assert public["service_request_id"] in _ids(listed) and str(internal["case_id"]) not in _ids(listed)
    assert "secret note" not in listed.get_data(as_text=True)
    assert_error(anonymous_client.get(f"/open311/v2/requests/{internal['case_id']}.json"), 404, "not_found",
                 reason=f"no service request {internal['case_id']}")
    (one,) = anonymous_client.get(f"/open311/v2/requests/{public['service_request_id']}.json").get_json()
    spec = {"service_request_id", "status", "status_notes", "service_name", "service_code", "description",
            "agency_responsible", "service_notice", "requested_datetime", "updated_datetime", "expected_datetime",
            "address", "address_id", "zipcode", "lat", "long", "media_url"}
    assert set(one) == spec and one["address"] == "朝阳区某路"


def test_open311_status_filter_applies_before_the_limit(client, anonymous_client):
    for i in range(3):
        anonymous_client.post("/open311/v2/requests.json", data={**OPEN311, "lat": str(LAT + 0.003 * i)})
    assert all(r["status"] == "open" for r in anonymous_client.get("/open311/v2/requests.json?status=open"
                                                                   "&limit=2").get_json())
    assert anonymous_client.get("/open311/v2/requests.json?status=closed&service_code=E0102").get_json() == []


def test_publication_rule_as_data(tmp_path):
    assert Publication.from_data_dir(tmp_path) == Publication()
    (tmp_path / "open311.yaml").write_text("publish:\n  sources: [open311, hotline]\n  classes: [event/0102]\n"
                                           "  round_m: 100\n  description: false\n", encoding="utf-8")
    rule = Publication.from_data_dir(tmp_path)
    assert rule.sources == ("open311", "hotline") and rule.classes == ("event/0102",)
    case = {"case_id": 1, "source": "supervisor", "kind": "event", "class_code": "0102", "status": "closed",
            "description": "x", "reported_at": datetime.datetime(2026, 1, 1), "lon": LON,
            "lat": LAT, "attrs": {"address": "内部地址", "contact": "13800000000"}}
    assert rule.publishes(case) and not rule.publishes({**case, "class_code": "0103"})
    view = request_view(case, rule)
    assert view["description"] is None and view["address"] is None and "13800000000" not in json.dumps(view)
    assert abs(view["lat"] - LAT) < 0.001 and view["lat"] != LAT and view["status"] == "closed"
    (tmp_path / "open311.yaml").write_text("publish:\n  everything: true\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="unknown key 'everything'"):
        Publication.from_data_dir(tmp_path)
    (tmp_path / "open311.yaml").write_text("publish:\n  classes: ['0102']\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="event/0102"):
        Publication.from_data_dir(tmp_path)


def test_rounded_positions_stay_within_the_cell():
    rule = Publication(round_m=200)
    lon, lat = rule.position(LON, LAT)
    assert abs(lat - LAT) * 111_320 <= 100.1 and abs(lon - LON) * 111_320 * 0.77 <= 100.1
    assert rule.position(LON + 1e-6, LAT + 1e-6) == (lon, lat)


# ------------------------------------------------------------------------------------------ idempotency keys
def test_another_callers_key_is_a_new_key(client_as, bj):
    first = client_as("sup-a", ["supervisor"], team="110105T01")
    other = client_as("sup-b", ["supervisor"], team="110105T02")
    created = first.post("/api/v1/cases", json=payload(description="A 的上报"), headers={"Idempotency-Key": "k-7"})
    assert created.status_code in (200, 201)
    stolen = other.post("/api/v1/cases", json=payload(description="A 的上报"), headers={"Idempotency-Key": "k-7"})
    body = stolen.get_json()
    assert "events" not in body["case"] or body["case"]["case_id"] != created.get_json()["case"]["case_id"]
    assert "A 的上报" not in json.dumps(body.get("case", {}).get("events", []), ensure_ascii=False)


def test_replayed_request_is_the_same_case_and_changed_body_is_409(client):
    headers = {"Idempotency-Key": "replay-1"}
    first = client.post("/api/v1/cases", json=payload(), headers=headers)
    again = client.post("/api/v1/cases", json=payload(), headers=headers)
    changed = client.post("/api/v1/cases", json=payload(description="别的内容"), headers=headers)
    assert (first.status_code, again.status_code, changed.status_code) == (201, 200, 409)
    assert first.get_json()["case"]["case_id"] == again.get_json()["case"]["case_id"]
    assert "different report" in changed.get_json()["message"]


def test_keys_are_scoped_in_the_domain_too(case_rules, bj):
    case, outcome = service.submit(bj, case_rules, parse_report(payload(idempotency_key="same")), key_scope="user:1")
    other, other_outcome = service.submit(bj, case_rules, parse_report(payload(idempotency_key="same", lon=LON + 0.02)),
                                          key_scope="user:2")
    assert (outcome, other_outcome) == ("created", "created") and case["case_id"] != other["case_id"]
    with pytest.raises(Conflict):
        service.submit(bj, case_rules,
                       parse_report(payload(idempotency_key="same", description="改了")), key_scope="user:1")


def test_open311_keys_are_the_clients_own(anonymous_client):
    first = anonymous_client.post("/open311/v2/requests.json", data=OPEN311, headers={"Idempotency-Key": "o-1"})
    again = anonymous_client.post("/open311/v2/requests.json", data=OPEN311, headers={"Idempotency-Key": "o-1"})
    assert first.status_code == 201 and again.status_code == 200
    assert _ids(first) == _ids(again)
    elsewhere = anonymous_client.post("/open311/v2/requests.json", data=OPEN311, headers={"Idempotency-Key": "o-1"},
                                      environ_base={"REMOTE_ADDR": "192.0.2.77"})
    assert elsewhere.status_code in (200, 201) and elsewhere.get_json()[0]["service_notice"] != "existing"
    altered = anonymous_client.post("/open311/v2/requests.json", data={**OPEN311, "description": "改"},
                                    headers={"Idempotency-Key": "o-1"})
    assert_error(altered, 409, "conflict", reason="idempotency key 'o-1' was used before for a different report")


def test_a_duplicate_outside_the_callers_scope_comes_back_bare(client, client_as):
    base = client.post("/api/v1/cases", json=payload(lon=LON + 0.013, description="原报")).get_json()["case"]
    supervisor = client_as("sup-far", ["supervisor"], team="110105T35")
    joined = supervisor.post("/api/v1/cases", json=payload(lon=LON + 0.0131, description="重复"))
    body = joined.get_json()
    if body["outcome"] == "duplicate" and body["case"]["case_id"] == base["case_id"]:
        assert set(body["case"]) == {"case_id", "status"}


# ------------------------------------------------------------------------------------------ synthetic flag
@pytest.mark.parametrize(("value", "status"), [("false", 400), ("true", 400), (1, 400), (True, 400), (False, 201)])
def test_reporters_cannot_set_synthetic(client, bj, value, status):
    answer = client.post("/api/v1/cases", json=payload(synthetic=value, lon=LON + 0.007))
    assert answer.status_code == status, answer.get_json()
    if status == 201:
        assert answer.get_json()["case"]["synthetic"] is False
    else:
        assert answer.get_json()["details"][0]["field"] == "synthetic"


# ------------------------------------------------------------------------------------------ control characters
@pytest.mark.parametrize("url", ["/api/v1/cases?class_code=01%0002", "/api/v1/audit?actor=a%00b",
                                 "/api/v1/taxonomy?q=a%00b", "/open311/v2/requests.json?service_code=E%000102",
                                 "/api/v1/search?q=%23a%00", "/api/v1/districts?x%00=1"])
def test_nul_in_query_is_400_naming_the_field(client, url):
    answer = client.get(url)
    assert answer.status_code == 400 and "control character" in answer.get_json()["message"]


def test_nul_in_anonymous_open311_form_is_400(anonymous_client):
    answer = anonymous_client.post("/open311/v2/requests.json", data={**OPEN311, "description": "a\x00b"})
    assert answer.status_code == 400 and answer.get_json()["details"][0]["field"] == "description"


@pytest.mark.parametrize("field", ["description", "address", "class_code", "source", "idempotency_key"])
def test_control_characters_in_json_reports_are_400(client, field):
    answer = client.post("/api/v1/cases", json=payload(**{field: "a\x00b", "address": "x"} if field != "address"
                                                       else {field: "朝阳\x1b[31m"}))
    assert_error(answer, 400, "invalid_input", field=field, reason="control character")


def test_line_breaks_stay_allowed_in_descriptions(client):
    made = client.post("/api/v1/cases", json=payload(description="第一行\n第二行\t完"))
    assert made.status_code == 201 and made.get_json()["case"]["description"] == "第一行\n第二行\t完"


def test_deep_or_nested_json_is_400_not_500(client):
    deep = client.post("/api/v1/cases", data="[" * 50_000, content_type="application/json")
    assert deep.status_code == 400 and "nested" in deep.get_json()["message"]
    nested = client.post("/api/v1/cases", json=payload(photos=[[[[["x"]]]]] * 3))
    assert_error(nested, 400, "invalid_input", field="photos", reason="a list of at most 10 references")
    key = client.post("/api/v1/cases", json={**payload(), "a\x00": 1})
    assert_error(key, 400, "invalid_input", reason="contains a control character (U+0000 at position 1)")


def test_nul_in_a_transition_note_is_400(client):
    case = client.post("/api/v1/cases", json=payload(lon=LON + 0.005)).get_json()["case"]
    answer = client.post(f"/api/v1/cases/{case['case_id']}/transitions", json={"action": "accept", "note": "a\x00"})
    assert answer.status_code == 400 and answer.get_json()["error"] == "invalid_input"


def test_nul_in_a_login_is_400(anonymous_client):
    answer = anonymous_client.post("/login", json={"username": "demo\x00", "password": "x"})
    assert_error(answer, 400, "invalid_input", field="username", reason="control character (U+0000 at position 4)")


# ------------------------------------------------------------------------------------------ imported cases
@pytest.fixture
def imported(bj, tmp_path):
    """Three historic cases imported in bulk (the path that stored attrs as a JSON string)."""
    path = tmp_path / "history.csv"
    path.write_text("lon,lat,class_code,description,reported_at,status,idempotency_key\n"
                    f"{LON},{LAT + 0.01},0102,历史一,2025-03-01T09:00:00+08:00,accepted,h-1\n"
                    f"{LON + 0.001},{LAT + 0.01},0103,历史二,2025-03-02T09:00:00+08:00,dispatched,h-2\n"
                    f"{LON + 0.002},{LAT + 0.01},0104,历史三,2025-03-03T09:00:00+08:00,closed,h-3\n",
                    encoding="utf-8")
    result = history.import_cases(bj, path)
    assert result.imported == 3
    from sqlalchemy import text
    return [r[0] for r in bj.execute(text("SELECT case_id FROM cases WHERE idempotency_key LIKE 'h-%' "
                                          "ORDER BY case_id"))]


def test_imported_cases_store_attrs_as_objects(bj, imported):
    from sqlalchemy import text
    kinds = {r[0] for r in bj.execute(text("SELECT jsonb_typeof(attrs) FROM cases WHERE case_id = ANY(:ids)"),
                                      {"ids": imported})}
    assert kinds == {"object"}


def test_api_and_open311_after_a_bulk_import(client, anonymous_client, imported):
    for case_id in imported:
        view = client.get(f"/api/v1/cases/{case_id}")
        assert view.status_code == 200 and isinstance(view.get_json()["attrs"], dict)
        assert_error(anonymous_client.get(f"/open311/v2/requests/{case_id}.json"), 404, "not_found",  # internal
                     reason=f"no service request {case_id}")
    listed = client.get("/api/v1/cases?limit=1000").get_json()["cases"]
    assert all(isinstance(c["attrs"], dict) for c in listed)
    assert anonymous_client.get("/open311/v2/requests.json").status_code == 200


def test_every_action_on_imported_cases_is_never_a_500(client, imported):
    from citygrid.cases.workflow import TRANSITIONS
    for case_id in imported:
        for action in TRANSITIONS:
            answer = client.post(f"/api/v1/cases/{case_id}/transitions", json={"action": action, "note": "x"})
            assert answer.status_code < 500, (case_id, action, answer.get_data(as_text=True)[:300])


def test_migration_repairs_attrs_stored_as_strings(bj, imported):
    from sqlalchemy import text
    bj.execute(text("UPDATE cases SET attrs = to_jsonb(attrs::text) WHERE case_id = :id"), {"id": imported[0]})
    assert bj.execute(text("SELECT jsonb_typeof(attrs) FROM cases WHERE case_id = :id"),
                      {"id": imported[0]}).scalar() == "string"
    from pathlib import Path
    migration = (Path(__file__).resolve().parent.parent / "citygrid" / "spatial" / "migrations" / "versions"
                 / "0011_security.py").read_text(encoding="utf-8")
    repair = next(block.split('""")', 1)[0] for block in migration.split('op.execute("""')[1:]
                  if "UPDATE cases SET attrs" in block)
    bj.execute(text(repair))
    assert bj.execute(text("SELECT attrs->>'imported' FROM cases WHERE case_id = :id"),
                      {"id": imported[0]}).scalar() == "true"


def test_a_lone_surrogate_in_json_is_400(client):
    body = json.dumps(payload(), ensure_ascii=False).replace('"暴露垃圾一堆"', '"a\\ud800b"')
    answer = client.post("/api/v1/cases", data=body, content_type="application/json")
    assert_error(answer, 400, "invalid_input", field="description", reason="control character (U+D800")


def test_yaml_with_unprintable_characters_is_400(client):
    answer = client.post("/api/v1/imports", data={"district": "110105", "mapping": "a: \x07",
                                                  "file": (io.BytesIO(b"x"), "a.gpkg")},
                         content_type="multipart/form-data")
    assert_error(answer, 400, "invalid_input", field="mapping", reason="control character (U+0007")


# ------------------------------------------------------------------------------------------ found by attacking
def test_a_report_from_year_one_is_400_and_pages_survive(client):
    answer = client.post("/api/v1/cases", json=payload(reported_at="0001-01-01T00:00:00"))
    assert answer.status_code == 400 and answer.get_json()["details"][0]["field"] == "reported_at"


def test_an_expected_version_beyond_the_database_is_400(client):
    case = client.post("/api/v1/cases", json=payload(lon=LON + 0.006)).get_json()["case"]
    answer = client.post(f"/api/v1/cases/{case['case_id']}/transitions",
                         json={"action": "escalate", "expected_version": 2**70})
    assert answer.status_code == 400 and "expected_version" in answer.get_json()["message"]


def test_open311_never_joins_an_internal_case(client, anonymous_client):
    internal = client.post("/api/v1/cases", json=payload(lon=LON + 0.017, class_code="0501")).get_json()["case"]
    form = {**OPEN311, "service_code": "E0501", "long": str(LON + 0.017), "lat": str(LAT)}
    (answer,) = anonymous_client.post("/open311/v2/requests.json", data=form).get_json()
    assert answer["service_notice"] == "created" and answer["service_request_id"] != str(internal["case_id"])
    assert anonymous_client.get(f"/open311/v2/requests/{answer['service_request_id']}.json").status_code == 200
    again = anonymous_client.post("/open311/v2/requests.json", data={**form, "description": "又一处"}).get_json()
    assert again[0]["service_notice"] == "duplicate" and again[0]["service_request_id"] == answer["service_request_id"]


def test_open311_key_scopes_are_per_api_key_and_never_hold_the_key():
    from citygrid.webmap.open311 import _key_scope

    first, second = _key_scope("key:abcd…", "a" * 20), _key_scope("key:abcd…", "a" * 19 + "b")
    assert first != second and "a" * 20 not in first  # same 4-character prefix, two holders
    assert _key_scope("key:abcd…", "a" * 20) == first
    assert _key_scope("addr:192.0.2.1", None) != _key_scope("addr:192.0.2.2", None)


def test_a_lone_surrogate_in_a_json_key_is_400_with_an_encodable_message(client):
    answer = client.post("/api/v1/cases", data='{"lon": 116.48, "a\\ud800": 1}', content_type="application/json")
    assert answer.status_code == 400 and "U+D800" in answer.get_json()["message"]
