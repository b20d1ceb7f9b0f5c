"""Named people (实名制, #22): dated slot assignments that close their predecessors, the supervisors a rotation
publishes, the person per role in a grid's owners answer and card, phones only for the roles that may read them,
the person on each case event, the CSV import with hostile rows, and 监管分离 (one account cannot both supervise
and dispose) on the CLI, the admin API and person assignments."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from citygrid.accounts import service as accounts
from citygrid.backup import district_tables
from citygrid.cli import cli
from citygrid.errors import Conflict, InvalidInput, NotFound
from citygrid.gridding import queries as grids
from citygrid.responsibility import people
from citygrid.responsibility.people import PersonInput
from citygrid.responsibility.queries import PeopleFilter, grid_people, list_people
from tests.conftest import assert_error

LON, LAT = 116.48, 39.93  # well inside Chaoyang
BEIJING = ZoneInfo("Asia/Shanghai")
DAY1, DAY2, DAY3 = dt.date(2027, 1, 1), dt.date(2027, 3, 1), dt.date(2027, 5, 1)


@pytest.fixture
def place(bj):
    """The unit grid at (LON, LAT) and its supervision grid, team, community and responsibility party."""
    found = grids.grid_at(bj, LON, LAT)
    card = found["card"]
    party = bj.execute(sa.text(
        """SELECT p.code FROM grid_ownership o JOIN parties p USING (district_code, party_id)
            WHERE o.district_code = '110105' AND o.grid_code = :g AND o.role = 'responsibility'
              AND o.valid @> now()"""), {"g": found["code"]}).scalar()
    return {"grid": found["code"], "supervision": card["supervision_code"], "team": card["team_code"],
            "community": card["community_code"], "party": party}


def person(bj, name, role="supervisor", phone="13800000000", username=None):
    return people.add_person(bj, "110105", PersonInput(name, role, phone, username))["person_id"]


def slots(bj, person_id):
    return bj.execute(sa.text(
        """SELECT role, target_code, position, lower(valid) AS start, upper(valid) AS end FROM person_assignments
            WHERE district_code = '110105' AND person_id = :p ORDER BY lower(valid)"""), {"p": person_id}).all()


# ------------------------------------------------------------------------------------------ assignments
def test_a_new_holder_of_a_slot_closes_the_previous_range(bj, place):
    lead1, lead2 = person(bj, "王一", "enforcement_officer", "1"), person(bj, "王二", "enforcement_officer", "2")
    helper = person(bj, "王三", "enforcement_officer", "3")
    people.assign(bj, "110105", lead1, "enforcement_officer", place["community"], position="lead", valid_from=DAY1)
    people.assign(bj, "110105", helper, "enforcement_officer", place["community"], position="assisting",
                  valid_from=DAY1)
    done = people.assign(bj, "110105", lead2, "enforcement_officer", place["community"], position="lead",
                         valid_from=DAY2)
    assert done == {"assigned": 1, "closed": 1, "replaced": 0}
    starts = dt.datetime(2027, 1, 1, tzinfo=BEIJING), dt.datetime(2027, 3, 1, tzinfo=BEIJING)
    assert [(r.start, r.end) for r in slots(bj, lead1)] == [starts]  # closed where the new lead starts
    assert [(r.start, r.end) for r in slots(bj, lead2)] == [(starts[1], None)]
    assert [r.end for r in slots(bj, helper)] == [None]  # the assisting slot is another slot: untouched
    # a slot is filled in date order: one starting before a recorded later one is refused, with the dates
    with pytest.raises(Conflict, match="already has an assignment from 2027-03-01"):
        people.assign(bj, "110105", lead1, "enforcement_officer", place["community"], position="lead",
                      valid_from=dt.date(2027, 2, 1))


@pytest.mark.parametrize(("role", "code", "position", "field", "needle"), [
    ("enforcement_officer", "community", "", "position", "lead or assisting"),
    ("enforcement_officer", "community", "boss", "position", "lead or assisting"),
    ("community_head", "community", "lead", "position", "none"),
    ("supervisor", "110105S9999", "", "code", "no supervision grid"),
    ("supervisor", "410104S0001", "", "code", "no supervision grid"),  # another district's grid
    ("unit_contact", "no-such-party", "", "code", "no party"),
    ("community_head", "x\x00y", "", "code", "printable"),
    ("janitor", "community", "", "role", "unknown assignment role"),
])
def test_a_bad_slot_is_refused_naming_the_field(bj, place, role, code, position, field, needle):
    officer = person(bj, "赵六", "enforcement_officer" if role == "enforcement_officer" else "community_head")
    with pytest.raises(InvalidInput) as err:
        people.assign(bj, "110105", officer, role, place.get(code, code), position=position, valid_from=DAY1)
    assert any(d["field"] == field and needle in d["reason"] for d in err.value.details), err.value.details


def test_a_slot_only_takes_a_person_of_its_role_and_of_the_district(bj, place):
    officer = person(bj, "孙七", "enforcement_officer")
    with pytest.raises(InvalidInput, match="held by a supervisor"):
        people.assign(bj, "110105", officer, "supervisor", place["supervision"], valid_from=DAY1)
    with pytest.raises(NotFound):
        people.assign(bj, "410104", officer, "enforcement_officer", place["community"], position="lead")


def test_assign_supervisors_is_what_a_rotation_publishes(bj, place):
    a, b, c = (person(bj, f"监督员{i}", phone=str(i)) for i in range(3))
    other = bj.execute(sa.text("""SELECT code FROM supervision_grids WHERE district_code = '110105' AND code <> :s
                                   ORDER BY code LIMIT 1"""), {"s": place["supervision"]}).scalar()
    first = people.assign_supervisors(bj, "110105", {place["supervision"]: [a, b], other: [c]}, DAY1)
    assert first == {"assigned": 3, "closed": 0, "replaced": 0}
    # two months later: a and c swap; b leaves the grid (its assignment closes: the grid's slot is rewritten)
    second = people.assign_supervisors(bj, "110105", {place["supervision"]: [c], other: [a]}, DAY2)
    assert second == {"assigned": 2, "closed": 3, "replaced": 0}
    assert [(r.target_code, r.end is None) for r in slots(bj, a)] == [(place["supervision"], False), (other, True)]
    assert [r.end for r in slots(bj, b)] == [dt.datetime(2027, 3, 1, tzinfo=BEIJING)]
    # the same plan published again replaces its later periods only when asked to
    with pytest.raises(Conflict):
        people.assign_supervisors(bj, "110105", {place["supervision"]: [a, b]}, DAY1)
    again = people.assign_supervisors(bj, "110105", {place["supervision"]: [a, b], other: [c]}, DAY1,
                                      replace_later=True)
    assert again["replaced"] == 5 and again["assigned"] == 3  # every assignment from DAY1 on, rewritten
    # bad input: every problem listed, nothing written
    officer = person(bj, "执法", "enforcement_officer")
    with pytest.raises(InvalidInput) as err:
        people.assign_supervisors(bj, "110105", {"110105S9999": [a], other: [a, officer, 10**12]}, DAY3)
    reasons = " | ".join(d["reason"] for d in err.value.details)
    assert "more than one grid" in reasons and "no supervision grid" in reasons
    assert "not a supervisor" in reasons and "no person 1000000000000" in reasons


def test_team_leaders_are_assigned_per_team(bj, place):
    leader = person(bj, "队长", phone="9")
    assert people.assign_team_leaders(bj, "110105", {place["team"]: leader}, DAY1)["assigned"] == 1
    with pytest.raises(InvalidInput, match="problem"):
        people.assign_team_leaders(bj, "110105", {"110105T99": leader}, DAY2)


def test_a_roster_of_synthetic_people_is_added_at_once_and_checked(bj):
    ids = people.add_people(bj, "110105", [PersonInput(f"SYNTHETIC 监督员 {i}", "supervisor") for i in range(5)],
                            source="synthetic roster", synthetic=True)
    assert len(set(ids)) == 5
    with pytest.raises(InvalidInput) as err:
        people.add_people(bj, "110105", [PersonInput("ok", "supervisor"), PersonInput("a\nb", "supervisor"),
                                         PersonInput("x" * 101, "janitor", "call me")], source="x")
    assert [(d["line"], d["field"]) for d in err.value.details] == [(2, "name"), (3, "name"), (3, "role"),
                                                                     (3, "phone")]


# ------------------------------------------------------------------------------------------ reads
def _staff(bj, place):
    """A supervisor, a community head and a unit contact for the grid at (LON, LAT), from DAY1; the supervisor
    replaced on DAY2."""
    first, second = person(bj, "甲监督", phone="111"), person(bj, "乙监督", phone="222")
    head = person(bj, "社区书记", "community_head", "333")
    people.assign_supervisors(bj, "110105", {place["supervision"]: [first]}, DAY1)
    people.assign_supervisors(bj, "110105", {place["supervision"]: [second]}, DAY2)
    people.assign(bj, "110105", head, "community_head", place["community"], valid_from=DAY1)
    if place["party"]:
        contact = person(bj, "门店负责人", "unit_contact", "444")
        people.assign(bj, "110105", contact, "unit_contact", place["party"], valid_from=DAY1)
    return first, second, head


def test_owners_on_a_date_give_the_person_valid_that_day(client, bj, place):
    _staff(bj, place)
    for day, expected in (("2027-02-28", "甲监督"), ("2027-03-01", "乙监督")):
        body = client.get(f"/api/v1/grids/{place['grid']}/owners?date={day}").get_json()
        supervision = body["owners"]["supervision"]["people"]
        assert [p["name"] for p in supervision] == [expected], body
        assert [p["name"] for p in body["owners"]["management"]["people"]] == ["社区书记"]
        assert supervision[0]["phone"] in ("111", "222")  # an admin reads phones
        if place["party"]:
            assert [p["name"] for p in body["owners"]["responsibility"]["people"]] == ["门店负责人"]
    before = client.get(f"/api/v1/grids/{place['grid']}/owners?date=2026-12-31").get_json()
    assert all(role["people"] == [] for role in before["owners"].values())


def test_the_grid_card_names_people_and_hides_phones_from_analysts(client_as, bj, place):
    _staff(bj, place)
    bj.execute(sa.text("UPDATE person_assignments SET valid = tstzrange(now() - interval '1 day', NULL) "
                       "WHERE district_code = '110105' AND upper_inf(valid)"))
    dispatcher = client_as("people-dispatcher", ["dispatcher"]).get(f"/api/v1/grids/{place['grid']}/card")
    analyst = client_as("people-analyst", ["analyst"]).get(f"/api/v1/grids/{place['grid']}/card")
    shown = {p["name"]: p["phone"] for p in dispatcher.get_json()["people"]}
    assert shown["乙监督"] == "222" and shown["社区书记"] == "333"
    hidden = {p["name"]: p["phone"] for p in analyst.get_json()["people"]}
    assert set(hidden) == set(shown) and set(hidden.values()) == {None}
    # the card of the grid under a clicked point says the same
    at = client_as("people-dispatcher-2", ["dispatcher"]).get(f"/api/v1/grids/at?lon={LON}&lat={LAT}").get_json()
    assert {p["name"]: p["phone"] for p in at["card"]["people"]} == shown
    at = client_as("people-analyst-2", ["analyst"]).get(f"/api/v1/grids/at?lon={LON}&lat={LAT}").get_json()
    assert {p["name"]: p["phone"] for p in at["card"]["people"]} == hidden


def test_people_list_phones_only_for_roles_that_may_read_them(client_as, anonymous_client, bj, place):
    _staff(bj, place)
    for roles, visible in ((["dispatcher"], True), (["planner"], True), (["admin"], True), (["analyst"], False),
                           (["supervisor"], False), (["gis"], False)):
        caller = client_as(f"reader-{roles[0]}", roles, team=place["team"] if roles == ["supervisor"] else None)
        body = caller.get("/api/v1/people?district=110105&role=community_head").get_json()
        assert [p["name"] for p in body["people"]] == ["社区书记"], body
        assert (body["people"][0]["phone"] == "333") is visible, roles
        assert body["people"][0]["assignments"] == [] or body["people"][0]["assignments"][0]["role"] == \
            "community_head"
    assert anonymous_client.get("/api/v1/people?district=110105").status_code == 401
    admin = client_as("people-admin", ["admin"])
    assert_error(admin.get("/api/v1/people?district=11010"), 400, "invalid_input", field="district")
    assert_error(admin.get("/api/v1/people?district=110105&role=boss"), 400, "invalid_input", field="role")
    assert_error(admin.get("/api/v1/people?district=110105%00"), 400, "invalid_input")
    assert_error(admin.get("/api/v1/people?district=110105&limit=100000"), 400, "invalid_input", field="limit")


def test_an_account_of_another_district_reads_no_people_of_this_one(client_as, bj):
    caller = client_as("zhengzhou-dispatcher", ["dispatcher"])
    bj.execute(sa.text("UPDATE users SET district_code = '410104' WHERE username = 'zhengzhou-dispatcher'"))
    assert_error(caller.get("/api/v1/people?district=110105"), 403, "forbidden", reason="410104")
    assert not people.phones_visible(["dispatcher"], "410104", "110105")


# ------------------------------------------------------------------------------------------ case events
def test_each_case_event_records_the_acting_accounts_person(client_as, bj, place):
    supervisor = person(bj, "巡查员小李", phone="555")
    accounts.add_user(bj, "li-supervisor", ["supervisor"], team=place["team"])
    people.add_person(bj, "110105", PersonInput("巡查员小李", "supervisor", "555", "li-supervisor"))
    token = accounts.issue_token(bj, "li-supervisor")["token"]
    caller = client_as("case-dispatcher", ["dispatcher"])  # an account with no person
    caller_li = caller.application.test_client()
    caller_li.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    report = {"lon": LON, "lat": LAT, "kind": "event", "class_code": "0102", "description": "暴露垃圾",
              "source": "supervisor"}
    created = caller_li.post("/api/v1/cases", json=report)
    assert created.status_code in (200, 201), created.get_json()
    case_id = created.get_json()["case"]["case_id"]
    caller.post(f"/api/v1/cases/{case_id}/transitions", json={"action": "accept"})
    timeline = caller_li.get(f"/api/v1/cases/{case_id}").get_json()["events"]
    assert (timeline[0]["person_id"], timeline[0]["person_name"]) == (supervisor, "巡查员小李")
    assert timeline[-1]["action"] == "accept" and timeline[-1]["person_id"] is None  # no person: NULL


# ------------------------------------------------------------------------------------------ import
def _table(rows: list[dict[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows).fillna("").astype(str)


def test_import_people_and_slots_with_history(bj, place):
    rows = [
        {"name": "周队", "role": "enforcement_officer", "phone": "010-1", "code": place["community"],
         "position": "lead", "valid_from": "2027-01-01"},
        {"name": "吴队", "role": "enforcement_officer", "phone": "010-2", "code": place["community"],
         "position": "lead", "valid_from": "2027-03-01"},
        {"name": "郑协", "role": "enforcement_officer", "phone": "010-3", "code": place["community"],
         "position": "ASSISTING", "valid_from": ""},
        {"name": "监督员甲", "role": "supervisor", "phone": "", "code": place["supervision"], "position": "",
         "valid_from": "2027-01-01"},
        {"name": "无岗位", "role": "community_head", "phone": "", "code": "", "position": "", "valid_from": ""},
    ]
    result = people.import_people(bj, "110105", _table(rows), valid_from=DAY1, source="名单.csv")
    assert (result["people_added"], result["assigned"], result["closed"]) == (5, 4, 1)
    listed = list_people(bj, PeopleFilter(district="110105", role="enforcement_officer", phones=True))["people"]
    assert {p["name"]: p["phone"] for p in listed} == {"周队": "010-1", "吴队": "010-2", "郑协": "010-3"}
    # importing the same file again changes nothing
    again = people.import_people(bj, "110105", _table(rows), valid_from=DAY1)
    assert (again["people_added"], again["assigned"], again["closed"]) == (0, 0, 0)


@pytest.mark.parametrize(("cells", "field", "needle"), [
    ({"name": "a\x07b"}, "name", "printable"),
    ({"name": "‮evil"}, "name", "printable"),  # a right-to-left override
    ({"name": "x" * 301}, "name", "longer than 300"),
    ({"name": ""}, "name", "1–100"),
    ({"role": "boss"}, "role", "unknown role"),
    ({"phone": "=cmd|' /C calc'!A0"}, "phone", "phone"),
    ({"account": "Robert'); DROP TABLE people;--"}, "account", "username"),
    ({"account": "nobody-here"}, "account", "no account"),
    ({"code": "410104001001"}, "code", "no community"),  # another district's community
    ({"position": "chief"}, "position", "lead or assisting"),
    ({"valid_from": "yesterday"}, "valid_from", "YYYY-MM-DD"),
    ({"valid_from": "99999-01-01"}, "valid_from", "YYYY-MM-DD"),
])
def test_import_reports_hostile_rows_and_imports_nothing(bj, place, cells, field, needle):
    good = {"name": "好人", "role": "enforcement_officer", "phone": "1", "account": "", "code": place["community"],
            "position": "lead", "valid_from": "2027-01-01"}
    bad = {**good, "name": "坏行", "phone": "2", "position": "assisting", **cells}
    before = bj.execute(sa.text("SELECT count(*) FROM people")).scalar()
    with pytest.raises(InvalidInput) as err:
        people.import_people(bj, "110105", _table([good, bad]))
    found = [d for d in err.value.details if d["severity"] == "error"]
    assert any(d["line"] == 3 and d["field"] == field and needle in d["reason"] for d in found), found
    assert bj.execute(sa.text("SELECT count(*) FROM people")).scalar() == before


def test_import_refuses_a_file_without_its_columns_or_too_big(bj):
    with pytest.raises(InvalidInput, match="no role column"):
        people.import_people(bj, "110105", _table([{"name": "x", "电话号码": "1"}]))
    with pytest.raises(InvalidInput, match="no district"):
        people.import_people(bj, "999999", _table([{"name": "x", "role": "supervisor"}]))
    with pytest.raises(InvalidInput, match="at most"):
        people.import_people(bj, "110105", pd.DataFrame({"name": ["x"] * (people.MAX_ROWS + 1),
                                                         "role": ["supervisor"] * (people.MAX_ROWS + 1)}))


def test_import_cli_reports_rows_and_exits_2(beijing_db, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text("name,role,phone,code,position\n张三,enforcement_officer,1,110105999999,lead\n"
                    "李四,boss,1,,\n", encoding="utf-8")
    report = tmp_path / "report.csv"
    result = CliRunner().invoke(cli, ["--database", beijing_db.database, "people", "import", str(path),
                                      "--district", "110105", "--report", str(report)])
    assert result.exit_code == 2, result.output
    assert "no community" in result.stderr and "line=2" in result.stderr
    assert "no community" in report.read_text(encoding="utf-8")
    listed = CliRunner().invoke(cli, ["--database", beijing_db.database, "people", "list", "--district", "110105"])
    assert listed.exit_code == 0 and json.loads(listed.stdout)["people"] == []  # nothing was imported


# ------------------------------------------------------------------------------------------ 监管分离
def test_an_account_cannot_both_supervise_and_dispose(bj, place):
    with pytest.raises(Conflict, match="监管分离"):
        accounts.add_user(bj, "both-roles", ["supervisor", "unit"], team=place["team"], party=place["party"])
    accounts.add_user(bj, "sup-only", ["supervisor"], team=place["team"])
    with pytest.raises(Conflict, match="监管分离"):
        accounts.set_roles(bj, "sup-only", ["supervisor", "unit"], party=place["party"])
    # a supervisor's account linked to a person who disposes (a unit's contact), and the other way round
    with pytest.raises(Conflict, match="监管分离"):
        people.add_person(bj, "110105", PersonInput("两面人", "unit_contact", "1", "sup-only"))
    people.add_person(bj, "110105", PersonInput("真监督", "supervisor", "2", "sup-only"))
    with pytest.raises(Conflict, match="监管分离"):
        accounts.set_roles(bj, "sup-only", ["unit"], party=place["party"])
    assert accounts.set_roles(bj, "sup-only", ["supervisor", "analyst"])["roles"] == ["supervisor", "analyst"]


def test_separation_on_the_admin_api(client, place):
    body = {"username": "api-both", "roles": ["supervisor", "unit"], "team": place["team"], "party": place["party"]}
    assert_error(client.post("/api/v1/users", json=body), 409, "conflict", reason="监管分离")
    created = client.post("/api/v1/users", json={**body, "roles": ["supervisor"], "party": None})
    assert created.status_code == 201 and created.get_json()["roles"] == ["supervisor"]
    assert_error(client.put("/api/v1/users/api-both/roles", json={"roles": ["unit", "supervisor"],
                                                                  "party": place["party"]}),
                 409, "conflict", reason="监管分离")
    assert_error(client.put("/api/v1/users/nobody/roles", json={"roles": ["analyst"]}), 404, "not_found")
    assert_error(client.put("/api/v1/users/api-both/roles", json={"roles": "admin"}), 400, "invalid_input",
                 field="roles")
    assert_error(client.put("/api/v1/users/api-both/roles", json={"roles": ["root"]}), 400, "invalid_input",
                 field="roles")
    assert_error(client.post("/api/v1/users", json={**body, "username": "a\x00b"}), 400, "invalid_input")


def test_separation_on_the_cli(beijing_db, bj, place):
    runner = CliRunner()
    both = runner.invoke(cli, ["--database", beijing_db.database, "users", "add", "cli-both", "--roles",
                               "supervisor,unit", "--team", place["team"], "--party", place["party"] or "x",
                               "--no-password"])
    assert both.exit_code == 4 and "监管分离" in both.stderr, both.output
    missing = runner.invoke(cli, ["--database", beijing_db.database, "users", "roles", "nobody", "--roles", "unit"])
    assert missing.exit_code == 3, missing.output


def test_no_demo_or_fixture_account_breaks_the_separation(bj):
    both = bj.execute(sa.text("SELECT username FROM users WHERE roles @> ARRAY['supervisor', 'unit']")).all()
    assert both == []


def test_backups_carry_people_and_their_assignments(bj):
    tables = district_tables(bj)
    assert tables.index("people") < tables.index("person_assignments")
    assert tables.index("people") < tables.index("case_events")
    assert "supervisor_assignments" not in tables


def test_grid_people_of_an_unknown_grid_is_empty(bj):
    assert grid_people(bj, "110105", "110105999999999") == []
