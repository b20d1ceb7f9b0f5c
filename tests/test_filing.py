"""Filing (#21 part A1): the filing rule as data (``filing.yaml``), the acceptor's actions (request_verify,
mark_duplicate, reject with a reason), the time limits of verification and check, and ``my_actions``: what a
signed-in account may do now, which is exactly what the transition endpoint then accepts."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from citygrid.cases import service
from citygrid.cases.calendar import DeadlineRule, DeadlineTable
from citygrid.cases.intake import parse_report
from citygrid.cases.rules import CaseRules, FilingRules
from citygrid.cases.workflow import CLOSED_STATES, STATES, TRANSITIONS
from citygrid.errors import Conflict, InvalidInput, NotFound
from citygrid.spatial.db import deployment_zone
from tests.conftest import assert_error, other_party, other_team, team_of

REPO = Path(__file__).resolve().parent.parent
LON, LAT = 116.48, 39.93
SHANGHAI = ZoneInfo("Asia/Shanghai")


def report(bj, rules, class_code="0102", source="supervisor", lon=LON, **extra) -> dict:
    """A new case (asserted: not joined to another) of ``class_code`` from ``source`` at ``lon``, LAT."""
    case, outcome = service.submit(bj, rules, parse_report({
        "lon": lon, "lat": LAT, "kind": "event", "class_code": class_code, "description": "测试案件",
        "source": source, **extra}))
    assert outcome == "created"
    return case


def act(bj, rules, case_id, action, role, **extra) -> dict:
    return service.transition(bj, rules, case_id, action, actor=f"{role}-1", role=role, **extra)


# ------------------------------------------------------------------------------------------ the rule as data
def test_the_shipped_rule_and_the_default_agree():
    shipped = CaseRules.load(REPO / "data").filing
    assert shipped.verify_before_filing == ("hotline", "citizen", "open311") == FilingRules().verify_before_filing
    assert shipped.origin == "data/filing.yaml" and "seed 001" in (REPO / "data/filing.yaml").read_text("utf-8").lower()


def test_a_missing_file_means_the_default_and_a_file_changes_the_rule(tmp_path):
    assert CaseRules.load(tmp_path).filing == FilingRules()
    (tmp_path / "filing.yaml").write_text("verify_before_filing: [hotline, camera, hotline]\n", encoding="utf-8")
    rules = CaseRules.load(tmp_path).filing
    assert rules.verify_before_filing == ("hotline", "camera") and rules.must_verify("camera")
    assert not rules.must_verify("open311") and rules.origin == f"{tmp_path.name}/filing.yaml"
    (tmp_path / "filing.yaml").write_text("verify_before_filing: []\n", encoding="utf-8")
    assert CaseRules.load(tmp_path).filing.verify_before_filing == ()


@pytest.mark.parametrize(("text", "needle"), [
    ("verify_before_filing: [hotline, pigeon]\n", "unknown source 'pigeon'"),
    ("verify_before_filing: hotline\n", "must be a list"),
    ("verify_before_filing: {hotline: true}\n", "must be a list"),
    ("verify_before_filing: [[hotline]]\n", "unknown source"),
    ("- hotline\n", "must be a mapping"),
    ("verify_before_filling: [hotline]\n", "unknown key 'verify_before_filling'"),
    ("a: &x [hotline]\nverify_before_filing: *x\n", "anchors"),
    ("verify_before_filing: [" + "hotline, " * 40_000 + "]\n", "larger than"),
    ("verify_before_filing: [hotline\n", "not valid YAML"),
    ("verify_before_filing: ['hot\x07line']\n", "filing.yaml"),
])
def test_bad_filing_rules_are_refused_naming_the_file(tmp_path, text, needle):
    (tmp_path / "filing.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(InvalidInput, match=needle) as err:
        CaseRules.load(tmp_path)
    assert "filing.yaml" in err.value.message and err.value.details[0]["field"] == "filing.yaml"


def test_task_time_limits_are_data(tmp_path):
    shipped = DeadlineTable.from_yaml(REPO / "data/deadlines.yaml").tasks
    assert (shipped["verify"].working_hours, shipped["check"].working_hours) == (2, 4)
    assert DeadlineTable(defaults={}).tasks == {"verify": DeadlineRule(working_hours=2, source="citygrid default"),
                                                "check": DeadlineRule(working_hours=4, source="citygrid default")}
    path = tmp_path / "deadlines.yaml"
    path.write_text("defaults: {}\ntasks:\n  check: {working_days: 1}\n", encoding="utf-8")
    tasks = DeadlineTable.from_yaml(path).tasks
    assert tasks["check"].working_days == 1 and tasks["verify"].working_hours == 2  # left out: its default


@pytest.mark.parametrize(("tasks", "needle"), [
    ("[verify]", "must be a mapping"), ("{inspect: {working_hours: 1}}", "unknown task 'inspect'"),
    ("{verify: {working_hours: 1, working_days: 1}}", "exactly one"), ("{verify: 2}", "exactly one"),
    ("{verify: {working_hours: two}}", "number above 0"), ("{verify: {working_hours: 0}}", "number above 0"),
    ("{verify: {working_hours: .nan}}", "number above 0"), ("{check: {working_days: 1.5}}", "whole number"),
    ("{check: {working_days: true}}", "whole number"), ("{check: {working_hours: 1e9}}", "at most"),
])
def test_bad_task_limits_are_refused(tmp_path, tasks, needle):
    path = tmp_path / "deadlines.yaml"
    path.write_text(f"defaults: {{}}\ntasks: {tasks}\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match=needle):
        DeadlineTable.from_yaml(path)


# ------------------------------------------------------------------------------------------ filing check
def test_an_unverified_hotline_report_is_not_filed_until_a_supervisor_verified_it(case_rules, bj):
    case = report(bj, case_rules, source="hotline")
    with pytest.raises(Conflict, match=r"verify_before_filing in data/filing\.yaml") as err:
        act(bj, case_rules, case["case_id"], "accept", "acceptor")
    assert "request_verify" in err.value.message and "hotline" in err.value.message
    assert service.case_view(bj, case["case_id"])["status"] == "reported"
    act(bj, case_rules, case["case_id"], "verify", "supervisor")
    assert act(bj, case_rules, case["case_id"], "accept", "acceptor")["status"] == "accepted"
    # A supervisor's own report was seen on site: filed at once. Another rule file, another answer.
    own = report(bj, case_rules, class_code="0103")
    assert act(bj, case_rules, own["case_id"], "accept", "acceptor")["status"] == "accepted"
    lenient = replace(case_rules, filing=FilingRules(verify_before_filing=()))
    other = report(bj, case_rules, class_code="0104", source="citizen")
    assert act(bj, lenient, other["case_id"], "accept", "acceptor")["status"] == "accepted"


def test_the_api_refuses_an_acceptor_filing_an_unverified_hotline_report(client_as, bj):
    admin, acceptor = client_as("boss", ["admin"]), client_as("acc-1", ["acceptor"])
    made = admin.post("/api/v1/cases", json={"lon": LON, "lat": LAT, "kind": "event", "class_code": "0102",
                                              "description": "热线：暴露垃圾", "source": "hotline"})
    case = made.get_json()["case"]
    url = f"/api/v1/cases/{case['case_id']}/transitions"
    refused = assert_error(acceptor.post(url, json={"action": "accept"}), 409, "conflict",
                           reason="verify_before_filing in data/filing.yaml")
    assert "wait for their verify" in refused["message"]
    offered = {a["action"] for a in acceptor.get(f"/api/v1/cases/{case['case_id']}").get_json()["my_actions"]}
    assert "accept" not in offered and {"reject", "mark_duplicate", "reclassify"} <= offered


# ------------------------------------------------------------------------------------------ task time limits
def test_verification_and_check_tasks_get_their_time_limits_and_are_cleared_when_done(case_rules, bj):
    assert deployment_zone(bj) == SHANGHAI
    # Friday 16:30 + 2 working hours: 1 h on Friday, Monday 08:30-09:30.
    hotline = report(bj, case_rules, source="hotline", reported_at="2026-11-20T16:30:00+08:00")
    assert hotline["verify_due_at"] == dt.datetime(2026, 11, 23, 9, 30, tzinfo=SHANGHAI)
    own = report(bj, case_rules, class_code="0103")
    assert own["verify_due_at"] is None and own["check_due_at"] is None
    calendar = case_rules.calendar.in_zone(SHANGHAI)
    now = bj.execute(sa.text("SELECT now()")).scalar_one()
    requested = act(bj, case_rules, own["case_id"], "request_verify", "acceptor", note="请核实")
    assert requested["status"] == "reported" and requested["verify_due_at"] == case_rules.deadlines.task_due(
        "verify", now, calendar)
    with pytest.raises(Conflict, match="pending already"):  # one verification at a time
        act(bj, case_rules, own["case_id"], "request_verify", "acceptor")
    verified = act(bj, case_rules, hotline["case_id"], "verify", "supervisor")
    assert verified["verify_due_at"] is None
    assert verified["events"][-1]["due_at"] == dt.datetime(2026, 11, 23, 9, 30, tzinfo=SHANGHAI)
    accepted = act(bj, case_rules, own["case_id"], "accept", "acceptor")  # filed anyway: the task is moot
    assert accepted["verify_due_at"] is None and accepted["events"][-1]["due_at"] is None
    for action, role in (("dispatch", "dispatcher"), ("feed_back", "unit")):
        case = act(bj, case_rules, own["case_id"], action, role)
    assert case["check_due_at"] == case_rules.deadlines.task_due("check", now, calendar)
    assert case["events"][-1]["due_at"] == case["deadline_at"]  # the disposal deadline the feedback met
    checked = act(bj, case_rules, own["case_id"], "check_pass", "supervisor")
    assert checked["check_due_at"] is None and checked["events"][-1]["due_at"] == case["check_due_at"]
    stored = bj.execute(sa.text("SELECT action, due_at FROM case_events WHERE case_id = :c ORDER BY seq"),
                        {"c": own["case_id"]}).all()
    assert [a for a, due in stored if due is not None] == ["feed_back", "check_pass"]


def test_task_limits_follow_the_rules_passed_in(case_rules, bj):
    hours = replace(case_rules, deadlines=replace(case_rules.deadlines, tasks={
        "verify": DeadlineRule(working_hours=1), "check": DeadlineRule(working_hours=1)}))
    case = report(bj, hours, source="citizen", reported_at="2026-11-23T09:00:00+08:00")  # a Monday
    assert case["verify_due_at"] == dt.datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)


def test_request_verify_over_http(case_rules, bj, client_as):
    case = report(bj, case_rules)
    team = bj.execute(sa.text("SELECT team_code FROM supervision_grids WHERE code = :c"),
                      {"c": case["supervision_code"]}).scalar_one()
    acceptor, supervisor = client_as("acc-5", ["acceptor"]), client_as("sup-5", ["supervisor"], team)
    url = f"/api/v1/cases/{case['case_id']}/transitions"
    assert_error(acceptor.post(url, json={"action": "request_verify", "note": "\x1b[2J"}), 400, "invalid_input")
    assert_error(acceptor.post(url, json={"action": "request_verify", "note": "x" * 2001}), 400, "invalid_input",
                 field="note")
    assert_error(supervisor.post(url, json={"action": "request_verify"}), 403, "forbidden", reason="acceptor")
    sent = acceptor.post(url, json={"action": "request_verify", "note": "请到现场核实"})
    assert sent.status_code == 200 and sent.get_json()["status"] == "reported" and sent.get_json()["verify_due_at"]
    assert_error(acceptor.post(url, json={"action": "request_verify"}), 409, "conflict", reason="pending already")
    verified = supervisor.post(url, json={"action": "verify", "note": "属实"})
    assert verified.status_code == 200 and verified.get_json()["verify_due_at"] is None
    assert verified.get_json()["events"][-1]["due_at"] == sent.get_json()["verify_due_at"]


# ------------------------------------------------------------------------------------------ mark_duplicate
def test_mark_duplicate_closes_the_report_and_tells_the_original(case_rules, bj):
    original = report(bj, case_rules)
    again = report(bj, case_rules, class_code="0103", source="hotline")  # another class: not joined at intake
    marked = act(bj, case_rules, again["case_id"], "mark_duplicate", "acceptor", duplicate_of=original["case_id"])
    assert marked["status"] == "duplicate" and "duplicate" in CLOSED_STATES
    assert marked["attrs"]["duplicate_of"] == original["case_id"] and marked["verify_due_at"] is None
    assert marked["events"][-1]["note"] == f"duplicate of case {original['case_id']}"
    told = service.case_view(bj, original["case_id"])["events"][-1]
    assert (told["action"], told["actor"]) == ("duplicate_report", "acceptor-1")
    assert told["note"] == f"case {again['case_id']} marked as a duplicate of this case"
    third = report(bj, case_rules, class_code="0104")
    with pytest.raises(Conflict, match=f"itself a duplicate of case {original['case_id']}"):  # no chains
        act(bj, case_rules, third["case_id"], "mark_duplicate", "acceptor", duplicate_of=again["case_id"])
    with pytest.raises(Conflict, match="not allowed on a duplicate case"):
        act(bj, case_rules, again["case_id"], "accept", "acceptor")


def test_a_case_marked_duplicate_hands_its_own_duplicates_to_its_original(case_rules, bj):
    """A duplicates B; B is then found to duplicate C: A names C too (no chain A -> B -> C to follow)."""
    a = report(bj, case_rules, class_code="0103")
    b = report(bj, case_rules, class_code="0104")
    c = report(bj, case_rules, class_code="0201")
    act(bj, case_rules, a["case_id"], "mark_duplicate", "acceptor", duplicate_of=b["case_id"])
    act(bj, case_rules, b["case_id"], "mark_duplicate", "acceptor", duplicate_of=c["case_id"])
    assert service.case_view(bj, a["case_id"])["attrs"]["duplicate_of"] == c["case_id"]
    told = service.case_view(bj, c["case_id"])["events"][-1]
    assert told["note"] == (f"case {b['case_id']} (with its duplicates {a['case_id']}) "
                            "marked as a duplicate of this case")


@pytest.mark.parametrize(("value", "error", "needle"), [
    (None, InvalidInput, "duplicate_of is required"), ("12", InvalidInput, "a case number"),
    (True, InvalidInput, "a case number"), (1.5, InvalidInput, "a case number"), (0, InvalidInput, "a case number"),
    (2**63, InvalidInput, "a case number"), ("self", InvalidInput, "itself"), (999_999_999, NotFound, "no case"),
])
def test_mark_duplicate_needs_another_case(case_rules, bj, value, error, needle):
    case = report(bj, case_rules)
    with pytest.raises(error, match=needle) as err:
        act(bj, case_rules, case["case_id"], "mark_duplicate", "acceptor",
            duplicate_of=case["case_id"] if value == "self" else value)
    assert err.value.details[0]["field"] == "duplicate_of"
    assert service.case_view(bj, case["case_id"])["status"] == "reported"


def other_district_case(bj) -> int:
    """A case of another district (110101, added far from Chaoyang in the test's transaction)."""
    bj.execute(sa.text("""INSERT INTO districts (district_code, name, geom) VALUES ('110101', '东城区 test',
                          ST_Multi(ST_Buffer(ST_SetSRID(ST_MakePoint(520000, 4420000), 4548), 500)))"""))
    return bj.execute(sa.text("""INSERT INTO cases (district_code, kind, scheme, class_code, source, geom)
                                 VALUES ('110101', 'event', 'cjt214', '0102', 'supervisor',
                                         ST_SetSRID(ST_MakePoint(520000, 4420000), 4548)) RETURNING case_id""")
                      ).scalar_one()


def test_mark_duplicate_over_http(client_as, bj, case_rules):
    acceptor = client_as("acc-2", ["acceptor"])
    original, closed = report(bj, case_rules), report(bj, case_rules, class_code="0103")
    act(bj, case_rules, closed["case_id"], "reject", "acceptor", note="不属于城管")
    case = report(bj, case_rules, class_code="0104", source="open311")
    url = f"/api/v1/cases/{case['case_id']}/transitions"
    foreign = other_district_case(bj)
    hidden = assert_error(acceptor.post(url, json={"action": "mark_duplicate", "duplicate_of": foreign}), 404,
                          "not_found", field="duplicate_of", reason=f"no case {foreign} in district 110105")
    assert "110101" not in hidden["message"]
    for bad in ("7", [1], {"id": 1}, -3, 10**30, "\x00"):
        assert_error(acceptor.post(url, json={"action": "mark_duplicate", "duplicate_of": bad}), 400,
                     "invalid_input", field="duplicate_of")
    assert_error(acceptor.post(url, json={"action": "mark_duplicate"}), 400, "invalid_input", field="duplicate_of",
                 reason="required")
    assert_error(acceptor.post(url, json={"action": "mark_duplicate", "duplicate_of": closed["case_id"]}), 409,
                 "conflict", reason="is rejected")
    ok = acceptor.post(url, json={"action": "mark_duplicate", "duplicate_of": original["case_id"], "note": "同一堆"})
    assert ok.status_code == 200 and ok.get_json()["status"] == "duplicate"
    replay = acceptor.post(url, json={"action": "mark_duplicate", "duplicate_of": original["case_id"]})
    assert_error(replay, 409, "conflict", reason="not allowed on a duplicate case")
    # Open311 publishes the duplicate as closed; the open filters of the case list leave it out.
    (published,) = client_as("boss", ["admin"]).get(f"/open311/v2/requests/{case['case_id']}.json").get_json()
    assert published["status"] == "closed"
    listed = acceptor.get("/api/v1/cases?open=true&limit=1000").get_json()["cases"]
    assert case["case_id"] not in {c["case_id"] for c in listed}
    assert original["case_id"] in {c["case_id"] for c in listed}


# ------------------------------------------------------------------------------------------ reject needs a reason
def test_reject_needs_a_reason(case_rules, bj, client_as):
    case = report(bj, case_rules)
    with pytest.raises(InvalidInput, match="a reason is required"):
        act(bj, case_rules, case["case_id"], "reject", "acceptor")
    acceptor = client_as("acc-3", ["acceptor"])
    url = f"/api/v1/cases/{case['case_id']}/transitions"
    for note in (None, "", "   \t"):
        assert_error(acceptor.post(url, json={"action": "reject", **({} if note is None else {"note": note})}),
                     400, "invalid_input", field="note", reason="a reason is required")
    assert_error(acceptor.post(url, json={"action": "reject", "note": "x\x00"}), 400, "invalid_input")
    done = acceptor.post(url, json={"action": "reject", "note": "不属于城管范围"})
    assert done.status_code == 200 and done.get_json()["events"][-1]["note"] == "不属于城管范围"


# ------------------------------------------------------------------------------------------ my_actions
def cases_in_every_status(bj, rules) -> dict[str, dict]:
    """A case in each status the workflow reaches (same place, a class each, so none joins another)."""
    made = {"reported_hotline": report(bj, rules, "0101", "hotline"), "reported": report(bj, rules, "0103")}
    steps = {"verified": [("verify", "supervisor")], "accepted": [("accept", "acceptor")],
             "dispatched": [("accept", "acceptor"), ("dispatch", "dispatcher")],
             "fed_back": [("accept", "acceptor"), ("dispatch", "dispatcher"), ("feed_back", "unit")],
             "checked": [("accept", "acceptor"), ("dispatch", "dispatcher"), ("feed_back", "unit"),
                         ("check_pass", "supervisor")],
             "closed": [("accept", "acceptor"), ("dispatch", "dispatcher"), ("feed_back", "unit"),
                        ("check_pass", "supervisor"), ("close", "acceptor")]}
    for (name, path), code in zip(steps.items(), ("0105", "0106", "0107", "0108", "0109", "0110"), strict=True):
        case = report(bj, rules, code, "hotline" if name == "verified" else "supervisor")
        for action, role in path:
            case = act(bj, rules, case["case_id"], action, role, note="ok")
        made[name] = case
    if "investigating" in STATES:
        case = report(bj, rules, "0111", "hotline")
        bj.execute(sa.text("UPDATE cases SET status = 'investigating' WHERE case_id = :c"), {"c": case["case_id"]})
        made["investigating"] = service.case_view(bj, case["case_id"])
    return made


def body_for(action: str, original: int) -> dict:
    """A transition body with a note and the fields the action needs (``Transition.needs``), as its form sends."""
    values = {"duplicate_of": original, "kind": "event", "class_code": "0102", "satisfaction": "satisfied"}
    return {"action": action, "note": "测试原因", **{f: values[f] for f in TRANSITIONS[action].needs if f in values}}


def test_my_actions_is_exactly_what_the_transition_endpoint_accepts(case_rules, bj, client_as):
    """For every role and every status: each listed action succeeds (200), each other one is refused with 403
    or 409 — the guarantee that a button never offers what would get 403 or 409. Each attempt is rolled back."""
    cases = cases_in_every_status(bj, case_rules)
    original = report(bj, case_rules, "0112")["case_id"]  # what mark_duplicate points at
    dispatched = cases["dispatched"]
    party = dispatched["attrs"]["dispatched_to"]["code"]
    team = team_of(bj, dispatched["supervision_code"])
    accounts = {"supervisor": (["supervisor"], team, None),
                "supervisor-elsewhere": (["supervisor"], other_team(bj, team), None),
                "unit": (["unit"], None, party), "unit-elsewhere": (["unit"], None, other_party(bj, party)),
                "acceptor": (["acceptor"], None, None), "dispatcher": (["dispatcher"], None, None),
                "calltaker": (["calltaker"], None, None), "lead": (["lead"], None, None),
                "analyst": (["analyst"], None, None), "admin": (["admin"], None, None)}
    offered: dict[tuple[str, str], set[str]] = {}
    for who, (roles, team_code, party_code) in accounts.items():
        client = client_as(f"m-{who}", roles, team_code, party_code)
        for status, case in cases.items():
            cid = case["case_id"]
            read = client.get(f"/api/v1/cases/{cid}")
            listed = {a["action"]: a for a in read.get_json()["my_actions"]} if read.status_code == 200 else {}
            assert read.status_code in (200, 403), read.get_json()
            offered[who, status] = set(listed)
            for action in TRANSITIONS:
                savepoint = bj.begin_nested()
                try:
                    answer = client.post(f"/api/v1/cases/{cid}/transitions", json=body_for(action, original))
                finally:
                    savepoint.rollback()
                if action in listed:
                    assert answer.status_code == 200, (who, status, action, answer.get_json())
                else:
                    assert answer.status_code in (403, 409), (who, status, action, answer.get_json())
    # What each role is offered, spelled out for the main desks.
    assert offered["acceptor", "reported_hotline"] == {"reject", "mark_duplicate", "reclassify"}  # verify pending
    assert offered["acceptor", "reported"] == {"accept", "reject", "request_verify", "mark_duplicate", "reclassify"}
    assert offered["acceptor", "verified"] == {"accept", "reject", "mark_duplicate", "reclassify"}
    assert offered["dispatcher", "accepted"] == {"dispatch", "reclassify", "escalate"}
    assert offered["supervisor", "reported"] == {"verify"} and offered["supervisor-elsewhere", "reported"] == set()
    assert offered["supervisor", "fed_back"] == {"check_pass", "check_fail"}
    assert offered["unit", "dispatched"] == {"feed_back", "hand_back"}
    assert offered["unit-elsewhere", "dispatched"] == set()
    assert all(not offered["analyst", s] for s in cases) and offered["unit", "reported"] == set()
    assert offered["admin", "reported"] >= {"accept", "reject", "request_verify", "mark_duplicate", "reclassify"}


def test_my_actions_say_what_each_form_must_send(case_rules, bj, client_as):
    case = report(bj, case_rules)
    acceptor = client_as("acc-4", ["acceptor"])
    mine = {a["action"]: a for a in acceptor.get(f"/api/v1/cases/{case['case_id']}").get_json()["my_actions"]}
    assert mine["reject"] == {"action": "reject", "label": "不予立案", "needs": ["note"], "optional": []}
    assert mine["mark_duplicate"]["needs"] == ["duplicate_of"] and mine["accept"]["needs"] == []
    assert mine["reclassify"]["needs"] == ["kind", "class_code"] and "note" in mine["accept"]["optional"]
    act(bj, case_rules, case["case_id"], "accept", "acceptor")
    dispatcher = client_as("disp-4", ["dispatcher"])
    (dispatch,) = [a for a in dispatcher.get(f"/api/v1/cases/{case['case_id']}").get_json()["my_actions"]
                   if a["action"] == "dispatch"]
    assert dispatch["needs"] == [] and "party_code" in dispatch["optional"]
    # No party to suggest (no ownership for the grid): dispatch is offered only with a party the dispatcher names.
    bj.execute(sa.text("DELETE FROM grid_ownership WHERE grid_code = :g"), {"g": case["unit_grid_code"]})
    (dispatch,) = [a for a in dispatcher.get(f"/api/v1/cases/{case['case_id']}").get_json()["my_actions"]
                   if a["action"] == "dispatch"]
    assert dispatch["needs"] == ["party_code"] and "party_code" not in dispatch["optional"]
    url = f"/api/v1/cases/{case['case_id']}/transitions"
    assert_error(dispatcher.post(url, json={"action": "dispatch"}), 409, "conflict", reason="no responsible party")
    office = bj.execute(sa.text("SELECT code FROM parties WHERE district_code = '110105' AND kind = 'street_office' "
                                "ORDER BY code LIMIT 1")).scalar_one()
    sent = dispatcher.post(url, json={"action": "dispatch", "party_code": office})
    assert sent.status_code == 200 and sent.get_json()["attrs"]["dispatched_to"]["code"] == office
    bj.execute(sa.text("UPDATE cases SET status = 'accepted' WHERE case_id = :c"), {"c": case["case_id"]})
    # A case without a class is not offered for dispatch (409: reclassify first).
    bj.execute(sa.text("UPDATE cases SET class_code = NULL WHERE case_id = :c"), {"c": case["case_id"]})
    offered = {a["action"] for a in dispatcher.get(f"/api/v1/cases/{case['case_id']}").get_json()["my_actions"]}
    assert "dispatch" not in offered and "reclassify" in offered


def test_actions_for_is_a_domain_function(case_rules, bj):
    from citygrid.accounts.service import Principal

    case = report(bj, case_rules, source="hotline")
    acceptor = Principal(user_id=1, username="a", roles=("acceptor",), district_code=None, team_code=None, via="t")
    analyst = replace(acceptor, roles=("analyst",))
    assert [a["action"] for a in service.actions_for(bj, case_rules, case, acceptor)] == [
        "reject", "mark_duplicate", "reclassify"]
    assert service.actions_for(bj, case_rules, case, analyst) == []
    lenient = replace(case_rules, filing=FilingRules(verify_before_filing=()))
    assert "accept" in [a["action"] for a in service.actions_for(bj, lenient, case, acceptor)]
