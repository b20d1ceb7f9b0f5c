"""Escalation that re-routes (#21): the dispatch rule is evaluated for the case's level (community → the street
office's 城建科 → a district department; seed 000's 整改无效 path), the dispatcher may choose another party of the
district, and ``GET /api/v1/parties`` lists the parties to choose from."""

from __future__ import annotations

from dataclasses import replace

import pytest
import sqlalchemy as sa

from citygrid.accounts import service as accounts
from citygrid.cases import service
from citygrid.cases.intake import parse_report
from citygrid.cases.rules import DispatchRules
from citygrid.errors import Conflict, InvalidInput
from tests.conftest import assert_error, signed_in

LON, LAT = 116.48, 39.93


def report_body(**overrides):
    return {"lon": LON, "lat": LAT, "kind": "event", "class_code": "0102", "description": "暴露垃圾一堆",
            "source": "supervisor", **overrides}


def team_of(bj, supervision_code: str) -> str:
    return bj.execute(sa.text("SELECT team_code FROM supervision_grids WHERE code = :c"),
                      {"c": supervision_code}).scalar_one()


# ------------------------------------------------------------------------------------------ the rules file
def test_the_district_department_is_the_most_specific_key_with_the_district_put_in():
    rules = DispatchRules.from_mapping({"levels": {"street": {"section": "城建科"}, "district": {
        "default": "{district}-cgw", "event/04": "{district}-yjj", "event/0401": "roads-{district}"}}})
    assert rules.street_section == "城建科"
    assert rules.district_department("event", "0401", "110105") == ("event/0401", "roads-110105")
    assert rules.district_department("event", "0405", "110105") == ("event/04", "110105-yjj")
    assert rules.district_department("component", "0101", "410104") == ("default", "410104-cgw")
    assert DispatchRules.from_mapping({"rules": {"event": "management"}}).district_department("event", "01", "1") \
        is None


@pytest.mark.parametrize(("levels", "needle"), [
    ({"city": {}}, "levels: a mapping of street"),
    ("district", "levels: a mapping of street"),
    ({"street": {"section": 3}}, "levels.street"),
    ({"street": {"office": "x"}}, "levels.street"),
    ({"district": ["110105-cgw"]}, "levels.district: a mapping"),
    ({"district": {"event/0102'; --": "x"}}, "is not default"),
    ({"district": {"parcel": "x"}}, "is not default"),
    ({"district": {"default": 110105}}, "is not a party code"),
    ({"district": {"default": "x" * 101}}, "is not a party code"),
    ({"district": {"default": "a\x00b"}}, "is not a party code"),
])
def test_a_malformed_levels_section_is_refused_naming_the_file(levels, needle):
    with pytest.raises(InvalidInput, match=needle) as err:
        DispatchRules.from_mapping({"levels": levels})
    assert "dispatch.yaml levels" in err.value.message


@pytest.mark.parametrize(("rules", "needle"), [
    (["event", "management"], "rules: a mapping"),
    ({"event": None}, "is not one of"),
    ({"event": 1}, "is not one of"),
    ({"event": "department"}, "is not one of"),
    ({"event": ["management"]}, "is not one of"),
    ({"event/01": "management\x00"}, "is not one of"),
    ({"parcel": "management"}, "is not event, component"),
    ({"event/0102'; --": "management"}, "is not event, component"),
    ({1: "management"}, "is not event, component"),
])
def test_a_class_rule_nobody_can_follow_is_refused_naming_the_file(rules, needle):
    """A rule that names no grid role, component owner or frontage unit is refused when the file is read, not
    met by every dispatch and by the dispatcher's queue (whose rows read the roles the rules name)."""
    with pytest.raises(InvalidInput, match=needle) as err:
        DispatchRules.from_mapping({"rules": rules})
    assert "dispatch.yaml rules" in err.value.message and err.value.field == "dispatch"
    assert DispatchRules.from_mapping({"rules": {}}).rules == DispatchRules().rules  # empty: the default


def test_the_shipped_rules_name_departments_the_demo_district_has(case_rules, bj):
    codes = {code.replace("{district}", "110105") for code in case_rules.dispatch.district.values()}
    assert codes and case_rules.dispatch.street_section == "城建科"
    rows = bj.execute(sa.text("SELECT code, name, contact FROM parties WHERE district_code = '110105' "
                              "AND kind = 'department' AND code = ANY(:c)"), {"c": sorted(codes)}).all()
    assert {r.code for r in rows} == codes
    assert all(r.name.endswith("（合成）") and "SYNTHETIC" in r.contact for r in rows)  # labelled as made up


# ------------------------------------------------------------------------------------------ the 整改无效 path
def test_failed_checks_re_route_community_street_district_end_to_end(account, bj):
    supervisor_team = None
    dispatcher, acceptor = account("disp", ["dispatcher"]), account("acc", ["acceptor"])
    made = account("rep", ["dispatcher"]).post("/api/v1/cases", json=report_body())
    case = made.get_json()["case"]
    url = f"/api/v1/cases/{case['case_id']}"
    supervisor_team = team_of(bj, case["supervision_code"])
    supervisor = account("sup", ["supervisor"], team=supervisor_team)
    assert acceptor.post(f"{url}/transitions", json={"action": "accept"}).status_code == 200
    parties, units = [], []
    for level in ("community", "street", "district"):
        sent = dispatcher.post(f"{url}/transitions", json={"action": "dispatch"})
        assert sent.status_code == 200, sent.get_json()
        party = sent.get_json()["attrs"]["dispatched_to"]
        assert party["level"] == level and sent.get_json()["attrs"]["level"] == level
        parties.append(party)
        units.append(account(f"unit-{level}", ["unit"], party=party["code"]))
        for earlier in units[:-1]:  # the parties that could not fix it no longer act on (or read) the case
            assert_error(earlier.post(f"{url}/transitions", json={"action": "feed_back"}), 403, "forbidden")
            assert_error(earlier.get(url), 403, "forbidden")
        assert units[-1].post(f"{url}/transitions", json={"action": "feed_back", "note": "整改完毕"}).status_code == 200
        if level == "district":
            break
        failed = supervisor.post(f"{url}/transitions", json={"action": "check_fail", "note": "整改无效"})
        assert failed.status_code == 200 and failed.get_json()["status"] == "accepted", failed.get_json()
        assert failed.get_json()["events"][-1]["action"] == "escalate"
    community, street, district = parties
    assert community["rule"] == "grid management" and community["code"] == case["community_code"]
    assert (street["kind"], street["code"], street["section"]) == ("street_office", case["street_code"], "城建科")
    assert (district["kind"], district["code"], district["rule"]) == ("department", "110105-cgw",
                                                                      "level district: default")
    passed = supervisor.post(f"{url}/transitions", json={"action": "check_pass"})
    assert passed.get_json()["status"] == "checked"
    assert_error(supervisor.post(f"{url}/transitions", json={"action": "check_fail", "note": "x"}), 409, "conflict")


def test_a_hand_back_needs_its_reason_and_goes_up_a_level(account, bj):
    made = account("rep2", ["dispatcher"]).post("/api/v1/cases", json=report_body())
    url = f"/api/v1/cases/{made.get_json()['case']['case_id']}/transitions"
    dispatcher = account("disp2", ["dispatcher"])
    assert dispatcher.post(url, json={"action": "accept"}).status_code == 200
    first = dispatcher.post(url, json={"action": "dispatch"}).get_json()["attrs"]["dispatched_to"]
    unit = account("unit2", ["unit"], party=first["code"])
    assert_error(unit.post(url, json={"action": "hand_back"}), 400, "invalid_input", field="note")
    assert_error(unit.post(url, json={"action": "hand_back", "note": " \t"}), 400, "invalid_input", field="note")
    back = unit.post(url, json={"action": "hand_back", "note": "不属本社区职责"})
    assert back.status_code == 200 and back.get_json()["status"] == "accepted"
    assert back.get_json()["attrs"]["level"] == "street"
    again = dispatcher.post(url, json={"action": "dispatch"}).get_json()["attrs"]["dispatched_to"]
    assert again["kind"] == "street_office" and again["code"] != first["code"]
    assert_error(unit.post(url, json={"action": "hand_back", "note": "x"}), 403, "forbidden")


def test_an_emergency_goes_straight_to_its_district_department(case_rules, bj):
    case, _ = service.submit(bj, case_rules, parse_report(report_body(class_code="0401", description="路面塌陷")))
    for action, role in (("accept", "acceptor"), ("dispatch", "dispatcher")):
        case = service.transition(bj, case_rules, case["case_id"], action, actor="a", role=role)
    party = case["attrs"]["dispatched_to"]
    assert (party["code"], party["level"], party["rule"]) == ("110105-yjj", "district", "level district: event/04")


def test_a_city_that_gives_a_level_a_second_try_sets_two(case_rules, bj):
    twice = replace(case_rules, escalation=replace(case_rules.escalation,
                                                   after={**case_rules.escalation.after, "check_fail": 2}))
    case, _ = service.submit(bj, twice, parse_report(report_body()))
    codes = []
    for action, role in (("accept", "acceptor"), ("dispatch", "dispatcher"), ("feed_back", "unit"),
                         ("check_fail", "supervisor"), ("dispatch", "dispatcher")):
        case = service.transition(bj, twice, case["case_id"], action, actor="a", role=role, note="n")
        if action == "dispatch":
            codes.append(case["attrs"]["dispatched_to"]["code"])
    assert case["attrs"]["level"] == "community" and codes[0] == codes[1]


def test_a_missing_department_or_street_office_is_a_conflict_that_says_which(case_rules, bj):
    case, _ = service.submit(bj, case_rules, parse_report(report_body()))
    service.transition(bj, case_rules, case["case_id"], "accept", actor="a", role="acceptor")
    bj.execute(sa.text("""UPDATE cases SET attrs = attrs || '{"level": "district"}' WHERE case_id = :c"""),
               {"c": case["case_id"]})
    wrong = replace(case_rules, dispatch=replace(case_rules.dispatch, district={"event/01": "{district}-nope"}))
    with pytest.raises(Conflict, match=r"dispatch.yaml levels.district\[event/01\] names party 110105-nope"):
        service.transition(bj, wrong, case["case_id"], "dispatch", actor="a", role="dispatcher")
    none = replace(case_rules, dispatch=replace(case_rules.dispatch, district={}))
    with pytest.raises(Conflict, match="names no department for event/0102"):
        service.transition(bj, none, case["case_id"], "dispatch", actor="a", role="dispatcher")
    bj.execute(sa.text("""UPDATE cases SET attrs = attrs || '{"level": "street"}', street_code = NULL
                           WHERE case_id = :c"""), {"c": case["case_id"]})
    with pytest.raises(Conflict, match="lies in no street"):
        service.transition(bj, case_rules, case["case_id"], "dispatch", actor="a", role="dispatcher")
    bj.execute(sa.text("UPDATE parties SET kind = 'unit' WHERE district_code = '110105' AND kind = 'street_office'"))
    with pytest.raises(Conflict, match="district 110105 has no street offices"):
        service.transition(bj, case_rules, case["case_id"], "dispatch", actor="a", role="dispatcher")
    assert service.case_view(bj, case["case_id"])["status"] == "accepted"


def test_dispatch_preview_gives_party_level_and_deadline_without_dispatching(case_rules, bj):
    case, _ = service.submit(bj, case_rules, parse_report(report_body()))
    case = service.transition(bj, case_rules, case["case_id"], "accept", actor="a", role="acceptor")
    preview = service.dispatch_preview(bj, case_rules, case)
    assert preview["level"] == "community" and preview["party"]["code"] == case["community_code"]
    assert preview["deadline_at"] is not None and "problem" not in preview
    dispatched = service.transition(bj, case_rules, case["case_id"], "dispatch", actor="a", role="dispatcher")
    assert dispatched["attrs"]["dispatched_to"] == preview["party"]
    assert dispatched["deadline_at"] == preview["deadline_at"]  # one transaction: the same start, the same rule
    case = service.transition(bj, case_rules, case["case_id"], "hand_back", actor="a", role="unit", note="不归我")
    preview = service.dispatch_preview(bj, case_rules, case)
    assert preview["level"] == "street" and preview["party"]["kind"] == "street_office"
    bad = service.dispatch_preview(bj, replace(case_rules, dispatch=DispatchRules()), {**case, "attrs": {
        **case["attrs"], "level": "district"}})
    assert bad["party"] is None and "names no department" in bad["problem"] and bad["level"] == "district"
    unclassified = service.dispatch_preview(bj, case_rules, {**case, "class_code": None})
    assert unclassified["party"] is None and "no class" in unclassified["problem"]


# ------------------------------------------------------------------------------------------ choosing another party
def test_the_dispatcher_may_choose_another_party_of_the_district(account, bj):
    made = account("rep3", ["dispatcher"]).post("/api/v1/cases", json=report_body())
    url = f"/api/v1/cases/{made.get_json()['case']['case_id']}/transitions"
    dispatcher = account("disp3", ["dispatcher"])
    dispatcher.post(url, json={"action": "accept"})
    for body, status, field, reason in (
            ({"party_code": "410104-cgw"}, 404, "party_code", "district 110105 has no party 410104-cgw"),
            ({"party_code": "no-such-party"}, 404, "party_code", "has no party"),
            ({"party_code": "110105-cgw\x00"}, 400, "party_code", "control character"),
            ({"party_code": "x" * 101}, 400, "party_code", "1–100"),
            ({"party_code": " 110105-cgw"}, 400, "party_code", "printable"),
            ({"party_code": ["110105-cgw"]}, 400, "party_code", "must be text"),
            ({"party_code": {"code": "110105-cgw"}}, 400, "party_code", "must be text"),
    ):
        answer = dispatcher.post(url, json={"action": "dispatch", **body})
        assert_error(answer, status, "not_found" if status == 404 else "invalid_input", field=field, reason=reason)
    assert_error(dispatcher.post(url, json={"action": "reclassify", "class_code": "0103", "party_code": "110105-cgw"}),
                 400, "invalid_input", field="party_code", reason="only for the dispatch action")
    sent = dispatcher.post(url, json={"action": "dispatch", "party_code": "110105-ylj", "note": "绿地内"})
    assert sent.status_code == 200, sent.get_json()
    party = sent.get_json()["attrs"]["dispatched_to"]
    assert (party["code"], party["kind"], party["rule"], party["level"]) == ("110105-ylj", "department",
                                                                            "chosen by disp3", "community")
    assert sent.get_json()["deadline_at"] is not None
    unit = account("unit3", ["unit"], party="110105-ylj")
    assert unit.post(url, json={"action": "feed_back", "note": "已清理"}).status_code == 200


# ------------------------------------------------------------------------------------------ GET /api/v1/parties
def test_parties_for_dispatchers_and_acceptors(account, bj):
    dispatcher = account("p-disp", ["dispatcher"])
    everything = dispatcher.get("/api/v1/parties?district=110105&limit=200").get_json()
    assert everything["count"] == len(everything["parties"]) == 200
    assert set(everything["parties"][0]) == {"code", "name", "kind"}
    departments = dispatcher.get("/api/v1/parties?district=110105&kind=department").get_json()["parties"]
    assert {p["code"] for p in departments} >= {"110105-cgw", "110105-yjj", "110105-ylj"}
    found = account("p-acc", ["acceptor"]).get("/api/v1/parties?district=110105&q=园林绿化部门").get_json()["parties"]
    assert [p["code"] for p in found] == ["110105-ylj"]
    by_code = dispatcher.get("/api/v1/parties?district=110105&q=105-YJ").get_json()["parties"]
    assert [p["code"] for p in by_code] == ["110105-yjj"]  # code too, any case
    for wildcard in ("%", "_", "\\", "%25"):  # taken literally: no party name holds them
        assert dispatcher.get("/api/v1/parties", query_string={"district": "110105", "q": wildcard}
                              ).get_json()["parties"] == [], wildcard
    assert account("p-admin", ["admin"]).get("/api/v1/parties?district=110105&limit=1").get_json()["count"] == 1


@pytest.mark.parametrize(("query", "field", "reason"), [
    ({}, "district", "required"),
    ({"district": "11010"}, "district", None),
    ({"district": "110105'--"}, "district", None),
    ({"district": "110105", "q": "a\x00b"}, "q", "control character"),
    ({"district": "110105", "q": "a\nb"}, "q", "control character"),
    ({"district": "110105", "q": "园" * 101}, "q", "longer than 100"),
    ({"district": "110105", "kind": "shop"}, "kind", None),
    ({"district": "110105", "limit": "201"}, "limit", None),
    ({"district": "110105", "limit": "-1"}, "limit", None),
    ({"district": "110105", "limit": "1e9"}, "limit", None),
])
def test_parties_refuse_bad_queries(account, query, field, reason):
    answer = account("p-bad", ["dispatcher"]).get("/api/v1/parties", query_string=query)
    assert_error(answer, 400, "invalid_input", field=field, reason=reason)


def test_parties_are_not_for_other_roles_or_other_districts(account, bj, app_of):
    for name, roles, extra in (("p-sup", ["supervisor"], {"team": "110105T01"}), ("p-unit", ["unit"],
                               {"party": "110105-cgw"}), ("p-an", ["analyst"], {}), ("p-ct", ["calltaker"], {}),
                               ("p-lead", ["lead"], {})):
        assert_error(account(name, roles, **extra).get("/api/v1/parties?district=110105"), 403, "forbidden")
    assert app_of.test_client().get("/api/v1/parties?district=110105").status_code == 401
    accounts.add_user(bj, "p-away", ["dispatcher"], district="110105", password="correct horse battery")
    away = signed_in(app_of.test_client(), accounts.issue_token(bj, "p-away", label="t")["token"])
    assert_error(away.get("/api/v1/parties?district=410104"), 403, "forbidden", reason="works in district 110105")
    assert away.get("/api/v1/parties?district=110105&limit=1").status_code == 200


def test_guancheng_routes_by_the_same_file_to_its_own_parties(case_rules, zz):
    """One dispatch.yaml for the deployment's districts: {district} makes Guancheng's codes its own."""
    lon, lat = zz.execute(sa.text(
        """SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_Transform(ST_PointOnSurface(geom), 4326) AS p FROM unit_grids
             WHERE district_code = '410104' AND street_code IS NOT NULL AND version_id = (
                   SELECT max(version_id) FROM grid_versions WHERE district_code = '410104' AND status = 'published')
             ORDER BY code LIMIT 1) s""")).one()
    parties = []
    for code, text in (("0401", "路面塌陷"), ("0301", "夜间施工噪声扰民")):  # district and street from the start
        case, _ = service.submit(zz, case_rules, parse_report(report_body(lon=lon, lat=lat, class_code=code,
                                                                          description=text)))
        for action, role in (("accept", "acceptor"), ("dispatch", "dispatcher")):
            case = service.transition(zz, case_rules, case["case_id"], action, actor="a", role=role)
        parties.append((case["attrs"]["dispatched_to"], case["street_code"]))
    (emergency, _), (construction, street) = parties
    assert (emergency["code"], emergency["kind"], emergency["level"]) == ("410104-yjj", "department", "district")
    assert emergency["name"] == "管城回族区应急管理部门（合成）"
    assert (construction["code"], construction["section"], construction["level"]) == (street, "城建科", "street")
