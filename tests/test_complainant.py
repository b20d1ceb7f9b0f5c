"""The complainant's loop (#21): the caller's name and phone kept apart from the case and read only by those who
call back; the callback (回访) with its satisfaction, the second handling (二次处理) and the investigation (调研)."""

from __future__ import annotations

import json
import math

import pytest
import sqlalchemy as sa

from citygrid.cases import service
from tests.conftest import assert_error

LON, LAT = 116.48, 39.93
NAME, PHONE = "投诉人甲乙", "+86 139-0011-2233"
CONTACT = {"name": NAME, "phone": PHONE}


def hotline_report(**overrides):
    return {"lon": LON, "lat": LAT, "kind": "event", "class_code": "0505", "description": "门口乱停车堵路",
            **overrides}


def leaks(response) -> bool:
    """Whether a response's body holds the complainant's name or phone (as UTF-8 or JSON-escaped)."""
    body = response.get_data()
    escaped = NAME.encode("unicode_escape").decode().replace("\\u", "\\\\u").encode()
    return any(text in body for text in (NAME.encode(), PHONE.encode(), b"139-0011", escaped))


def team_of(bj, supervision_code: str) -> str:
    return bj.execute(sa.text("SELECT team_code FROM supervision_grids WHERE code = :c"),
                      {"c": supervision_code}).scalar_one()


# ------------------------------------------------------------------------------------------ intake
def test_a_calltakers_report_keeps_the_contact_apart_and_defaults_to_hotline(account, bj):
    calltaker = account("ct", ["calltaker"])
    made = calltaker.post("/api/v1/cases", json=hotline_report(complainant=CONTACT))
    assert made.status_code == 201, made.get_json()
    case = made.get_json()["case"]
    assert case["source"] == "hotline" and "complainant" not in case and not leaks(made)
    stored = bj.execute(sa.text("SELECT name, phone FROM case_contacts WHERE case_id = :c"),
                        {"c": case["case_id"]}).one()
    assert tuple(stored) == (NAME, PHONE)
    row = bj.execute(sa.text("SELECT CAST(c AS text) FROM cases c WHERE case_id = :c"), {"c": case["case_id"]}).scalar()
    assert NAME not in row and "139-0011" not in row  # not in the case row (attrs, digest) nor its events
    notes = bj.execute(sa.text("SELECT string_agg(note, ' ') FROM case_events WHERE case_id = :c"),
                       {"c": case["case_id"]}).scalar()
    assert NAME not in notes
    supervisor = account("sup0", ["supervisor"], team=team_of(bj, case["supervision_code"]))
    own = supervisor.post("/api/v1/cases", json=hotline_report(class_code="0103", description="渣土"))
    assert own.status_code == 201 and own.get_json()["case"]["source"] == "supervisor"


@pytest.mark.parametrize("roles", [["supervisor"], ["analyst"]])
def test_only_contact_writers_may_send_a_complainant(account, roles):
    caller = account("w-" + roles[0], roles, team="110105T01" if roles == ["supervisor"] else None)
    answer = caller.post("/api/v1/cases", json=hotline_report(complainant=CONTACT))
    if roles == ["analyst"]:
        assert_error(answer, 403, "forbidden")  # analysts do not report at all
    else:
        assert_error(answer, 403, "forbidden", field="complainant", reason="may not record a complainant")


@pytest.mark.parametrize(("complainant", "field", "reason"), [
    ({"name": "a\x00b"}, "complainant.name", "control character"),
    ({"phone": "139\n0011"}, "complainant.phone", "control character"),
    ({"name": "x" * 101}, "complainant.name", "longer than 100"),
    ({"phone": "1" * 41}, "complainant.phone", "longer than 40"),
    ({"phone": "call me maybe"}, "complainant.phone", "digits"),
    ({"phone": "((--))"}, "complainant.phone", "digits"),
    ({"phone": "13900112233; DROP TABLE cases"}, "complainant.phone", "digits"),
    ({"name": ["a"]}, "complainant.name", "must be text"),
    ({"name": {"first": "a"}}, "complainant.name", "must be text"),
    ({"phone": 13900112233}, "complainant.phone", "must be text"),
    ({}, "complainant", "give the name or the phone"),
    ({"name": "a", "email": "a@b.c"}, "complainant", "nothing else"),
    ("张三 13900112233", "complainant", "must be an object"),
    ([{"name": "a"}], "complainant", "must be an object"),
])
def test_bad_contacts_are_refused_with_the_field(account, complainant, field, reason):
    answer = account("ct-bad", ["calltaker"]).post("/api/v1/cases", json=hotline_report(complainant=complainant))
    assert_error(answer, 400, "invalid_input", field=field, reason=reason)


def test_a_phone_with_an_extension_and_a_name_alone_are_taken(account, bj):
    calltaker = account("ct-ext", ["calltaker"])
    for i, contact in enumerate(({"phone": "(010) 6512-3456 ext. 12"}, {"name": "王女士"})):
        made = calltaker.post("/api/v1/cases", json=hotline_report(complainant=contact, lon=LON + 0.01 * (i + 1)))
        assert made.status_code == 201, made.get_json()
        got = service.complainant(bj, made.get_json()["case"]["case_id"])
        assert got == {"name": "", "phone": "", **contact}


def test_the_multipart_report_part_carries_the_contact_under_the_same_rules(account, bj):
    """The phone form's one request (``report`` part + photos) takes the contact as the JSON body does."""
    def post(client, **report):
        return client.post("/api/v1/cases", data={"report": json.dumps(hotline_report(**report))},
                           content_type="multipart/form-data")

    made = post(account("ct-mp", ["calltaker"]), complainant=CONTACT)
    assert made.status_code == 201, made.get_json()
    assert service.complainant(bj, made.get_json()["case"]["case_id"]) == CONTACT and not leaks(made)
    supervisor = account("sup-mp", ["supervisor"], team="110105T01")
    assert_error(post(supervisor, complainant=CONTACT, lon=LON + 0.01), 403, "forbidden", field="complainant")
    assert_error(post(account("ct-mp2", ["calltaker"]), complainant={"phone": "x\u202e1"}), 400, "invalid_input",
                 field="complainant.phone")


# ------------------------------------------------------------------------------------------ who reads it
def test_only_contact_readers_see_the_complainant(account, bj, case_rules):
    made = account("ct-r", ["calltaker"]).post("/api/v1/cases", json=hotline_report(complainant=CONTACT))
    case = made.get_json()["case"]
    url = f"/api/v1/cases/{case['case_id']}"
    for name, roles in (("r-ct", ["calltaker"]), ("r-acc", ["acceptor"]), ("r-disp", ["dispatcher"]),
                        ("r-admin", ["admin"])):
        assert account(name, roles).get(url).get_json()["complainant"] == CONTACT, roles
    # the case reaches a unit: dispatched to its party, which then reads the case but not the caller
    for action, role in (("verify", "supervisor"), ("accept", "acceptor"), ("dispatch", "dispatcher")):
        case = service.transition(bj, case_rules, case["case_id"], action, actor="t", role=role)
    party = case["attrs"]["dispatched_to"]["code"]
    for name, roles, team, party_code in (("r-sup", ["supervisor"], team_of(bj, case["supervision_code"]), None),
                                          ("r-unit", ["unit"], None, party), ("r-an", ["analyst"], None, None),
                                          ("r-lead", ["lead"], None, None)):
        answer = account(name, roles, team=team, party=party_code).get(url)
        assert answer.status_code == 200 and "complainant" not in answer.get_json(), roles
        assert not leaks(answer), roles


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2 ** z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return x, y


def test_no_list_map_search_tile_open311_or_audit_carries_the_contact(account, bj, app_of):
    calltaker = account("ct-l", ["calltaker"])
    # an Open311-published case (source open311) with a contact: the public API must not show it either
    made = calltaker.post("/api/v1/cases", json=hotline_report(complainant=CONTACT, source="open311"))
    case_id = made.get_json()["case"]["case_id"]
    admin = account("l-admin", ["admin"])
    x, y = tile_of(LON, LAT, 16)
    anonymous = app_of.test_client()
    answers = {
        "list": admin.get("/api/v1/cases?district=110105&limit=1000"),
        "geojson": admin.get("/api/v1/cases?district=110105&format=geojson&limit=1000"),
        "search": admin.get(f"/api/v1/search?q=%23{case_id}"),
        "tile": admin.get(f"/tiles/cases/16/{x}/{y}.mvt"),
        "audit": admin.get(f"/api/v1/audit?object_kind=cases&object_id={case_id}&limit=1000"),
        "audit_all": admin.get("/api/v1/audit?actor=ct-l&limit=1000"),
        "deadlines": admin.get("/api/v1/cases/deadlines"),
        "open311_list": anonymous.get("/open311/v2/requests.json"),
        "open311_one": anonymous.get(f"/open311/v2/requests/{case_id}.json"),
    }
    assert answers["open311_one"].status_code == 200, answers["open311_one"].get_data()[:300]
    assert str(case_id) in answers["open311_list"].get_data(as_text=True)
    assert answers["tile"].status_code == 200 and answers["audit"].get_json()["entries"]
    for what, answer in answers.items():
        assert answer.status_code == 200, (what, answer.get_data()[:300])
        assert not leaks(answer), what


def test_a_replay_or_a_duplicate_join_never_hands_the_contact_to_a_non_reader(account, bj):
    calltaker = account("ct-d", ["calltaker"])
    first = calltaker.post("/api/v1/cases", json=hotline_report(complainant=CONTACT), headers={"Idempotency-Key": "k1"})
    again = calltaker.post("/api/v1/cases", json=hotline_report(complainant=CONTACT), headers={"Idempotency-Key": "k1"})
    assert (first.status_code, again.status_code) == (201, 200) and not leaks(again)
    case_id = first.get_json()["case"]["case_id"]
    assert bj.execute(sa.text("SELECT count(*) FROM case_contacts WHERE case_id = :c"), {"c": case_id}).scalar() == 1
    team = team_of(bj, first.get_json()["case"]["supervision_code"])
    supervisor = account("sup-d", ["supervisor"], team=team)
    for _ in range(2):  # the same problem reported by a supervisor joins the hotline case; then replayed
        joined = supervisor.post("/api/v1/cases", json=hotline_report(source="supervisor"),
                                 headers={"Idempotency-Key": "s1"})
        assert joined.get_json()["case"]["case_id"] == case_id and not leaks(joined)
        assert "complainant" not in joined.get_json()["case"]
    # a second caller's report of the same problem joins it too; the case keeps its first caller
    second = calltaker.post("/api/v1/cases", json=hotline_report(complainant={"name": "乙", "phone": "110"}))
    assert second.get_json()["outcome"] == "duplicate"
    assert service.complainant(bj, case_id) == CONTACT


# ------------------------------------------------------------------------------------------ callback
def closed_case(account, bj, rules) -> tuple[int, object]:
    """A hotline case with a contact, moved to closed; returns its id and the call-taker's client."""
    calltaker = account("ct-cb", ["calltaker"])
    made = calltaker.post("/api/v1/cases", json=hotline_report(complainant=CONTACT, lon=LON + 0.002))
    case_id = made.get_json()["case"]["case_id"]
    close(bj, rules, case_id)
    return case_id, calltaker


def close(bj, rules, case_id: int) -> dict:
    """Move case ``case_id`` on to closed through the workflow (verified first where the filing rule says)."""
    case = service.case_view(bj, case_id)
    steps = [("verify", "supervisor")] if case["status"] == "reported" else []
    steps += [("accept", "acceptor")] if case["status"] in ("reported", "verified") else []
    steps += [("dispatch", "dispatcher"), ("feed_back", "unit"), ("check_pass", "supervisor"), ("close", "acceptor")]
    for action, role in steps:
        case = service.transition(bj, rules, case_id, action, actor="t", role=role, note="ok")
    assert case["status"] == "closed"
    return case


@pytest.mark.parametrize("satisfaction", ["satisfied", "basic"])
def test_a_satisfied_callback_evaluates_the_case(account, bj, case_rules, satisfaction):
    case_id, calltaker = closed_case(account, bj, case_rules)
    url = f"/api/v1/cases/{case_id}/transitions"
    done = calltaker.post(url, json={"action": "callback", "satisfaction": satisfaction, "note": "电话回访"})
    assert done.status_code == 200, done.get_json()
    case = done.get_json()
    assert case["status"] == "evaluated" and case["attrs"]["level"] == "community"
    (entry,) = case["attrs"]["satisfaction"]
    assert entry["satisfaction"] == satisfaction and entry["by"] == "ct-cb" and entry["round"] == 1 and entry["at"]
    assert case["events"][-1]["action"] == "callback" and case["events"][-1]["role"] == "calltaker"


def test_unsatisfied_twice_opens_an_investigation_only_a_district_lead_closes(account, bj, case_rules):
    case_id, calltaker = closed_case(account, bj, case_rules)
    url = f"/api/v1/cases/{case_id}/transitions"
    first = calltaker.post(url, json={"action": "callback", "satisfaction": "unsatisfied", "note": "车还在"})
    case = first.get_json()
    assert first.status_code == 200 and case["status"] == "accepted" and case["attrs"]["round"] == 2, case
    # counted as a reopening (escalation.yaml reopen: 1): the second handling goes to the next level
    assert case["attrs"]["level"] == "street" and case["events"][-1]["action"] == "escalate"
    again = close(bj, case_rules, case_id)
    assert again["attrs"]["dispatched_to"]["kind"] == "street_office"
    second = calltaker.post(url, json={"action": "callback", "satisfaction": "unsatisfied"})
    case = second.get_json()
    assert second.status_code == 200 and case["status"] == "investigating", case
    assert [e["satisfaction"] for e in case["attrs"]["satisfaction"]] == ["unsatisfied", "unsatisfied"]
    assert [e["round"] for e in case["attrs"]["satisfaction"]] == [1, 2]
    for name, roles in (("i-ct", ["calltaker"]), ("i-acc", ["acceptor"]), ("i-disp", ["dispatcher"])):
        assert_error(account(name, roles).post(url, json={"action": "close_investigation", "note": "查明"}), 403,
                     "forbidden", reason="close_investigation")
    lead = account("i-lead", ["lead"])
    assert_error(lead.post(url, json={"action": "close_investigation"}), 400, "invalid_input", field="note")
    assert_error(lead.post(url, json={"action": "close_investigation", "note": "   "}), 400, "invalid_input",
                 field="note")
    closed = lead.post(url, json={"action": "close_investigation", "note": "调研后已彻底解决"})
    assert closed.status_code == 200 and closed.get_json()["status"] == "closed"
    assert closed.get_json()["events"][-1]["role"] == "district"


@pytest.mark.parametrize(("body", "status", "field", "reason"), [
    ({"action": "callback"}, 400, "satisfaction", "one of satisfied, basic, unsatisfied"),
    ({"action": "callback", "satisfaction": "meh"}, 400, "satisfaction", "one of"),
    ({"action": "callback", "satisfaction": ["satisfied"]}, 400, "satisfaction", "must be text"),
    ({"action": "callback", "satisfaction": "satisfied\x00"}, 400, "satisfaction", "control character"),
    ({"action": "close", "satisfaction": "satisfied"}, 409, None, "not allowed on a closed case"),
    ({"action": "evaluate", "satisfaction": "satisfied"}, 400, "satisfaction", "only for the callback"),
    ({"action": "close_investigation", "note": "x"}, 409, None, "not allowed on a closed case"),
])
def test_bad_callbacks_are_refused_and_change_nothing(account, bj, case_rules, body, status, field, reason):
    case_id, _ = closed_case(account, bj, case_rules)
    admin = account("cb-admin", ["admin"])
    answer = admin.post(f"/api/v1/cases/{case_id}/transitions", json=body)
    assert_error(answer, status, "conflict" if status == 409 else "invalid_input", field=field, reason=reason)
    case = service.case_view(bj, case_id)
    assert case["status"] == "closed" and "satisfaction" not in case["attrs"]


def test_callback_roles(account, bj, case_rules):
    case_id, _ = closed_case(account, bj, case_rules)
    url = f"/api/v1/cases/{case_id}/transitions"
    body = {"action": "callback", "satisfaction": "satisfied"}
    team = team_of(bj, service.case_view(bj, case_id)["supervision_code"])
    for name, roles, team_code in (("c-sup", ["supervisor"], team), ("c-lead", ["lead"], None)):
        assert_error(account(name, roles, team=team_code).post(url, json=body), 403, "forbidden", reason="callback")
    assert account("c-acc", ["acceptor"]).post(url, json=body).get_json()["status"] == "evaluated"


def test_open311_takes_no_contact_from_its_anonymous_reporters(app_of, bj):
    """Open311 builds its report from the spec's fields only: a JSON body naming a complainant stores none."""
    anonymous = app_of.test_client()
    made = anonymous.post("/open311/v2/requests.json", json={
        "service_code": "E0505", "lat": LAT + 0.004, "long": LON, "description": "门口乱停车",
        "complainant": CONTACT, "first_name": NAME, "phone": PHONE})
    assert made.status_code == 201, made.get_json()
    case_id = int(made.get_json()[0]["service_request_id"])
    assert service.complainant(bj, case_id) is None
    assert not leaks(anonymous.get(f"/open311/v2/requests/{case_id}.json"))
