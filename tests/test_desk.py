"""The desk's work queues (#21): who sees which queue, what each holds and in what order, the counts, the
filters of the case map, polling with ETags, and hostile requests (other teams, parties and users, bad points,
huge pages, replayed tags)."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from citygrid.accounts.roles import ROLES
from citygrid.cases import service
from citygrid.cases.intake import parse_report
from citygrid.cases.workflow import STATES
from citygrid.desk import store as desk_store
from citygrid.desk.queues import QUEUES, visible_queues
from tests.conftest import assert_error, rolled_back_app, signed_in, user_token

LON, LAT = 116.48, 39.93
FAR = (116.55, 39.98)  # another place inside Chaoyang, some 8 km away


def report(bj, case_rules, *, lon=LON, lat=LAT, source="supervisor", class_code="0102", at=None):
    """A new case (through intake) at a point (WGS84); a different class each time avoids duplicate joins."""
    body = {"lon": lon, "lat": lat, "kind": "event", "class_code": class_code, "description": "desk test 垃圾",
            "source": source}
    if at:
        body["reported_at"] = at
    case, outcome = service.submit(bj, case_rules, parse_report(body))
    assert outcome == "created"
    return case


def set_case(bj, case_id, **values):
    """Put a case straight into a state (tests of the queues, not of the workflow's transitions)."""
    sets = ", ".join(f"{k} = CAST(:{k} AS {t})" for k, t in (
        ("status", "text"), ("verify_due_at", "timestamptz"), ("check_due_at", "timestamptz"),
        ("deadline_at", "timestamptz"), ("attrs", "jsonb")) if k in values)
    if "attrs" in values:
        sets = sets.replace("attrs = CAST(:attrs AS jsonb)", "attrs = attrs || CAST(:attrs AS jsonb)")
    bj.execute(sa.text(f"UPDATE cases SET {sets}, row_version = row_version + 1 WHERE case_id = :id"),
               {**values, "id": case_id})


def event(bj, case_id, action, at="now()"):
    bj.execute(sa.text(
        f"""INSERT INTO case_events (district_code, case_id, seq, action, from_status, to_status, actor, role, at)
            SELECT district_code, case_id, (SELECT coalesce(max(seq), 0) + 1 FROM case_events e
                                              WHERE e.case_id = c.case_id), :a, status, status, 't', 't', {at}
              FROM cases c WHERE case_id = :id"""), {"id": case_id, "a": action})


def team_of(bj, case):
    return bj.execute(sa.text("SELECT team_code FROM supervision_grids WHERE code = :c"),
                      {"c": case["supervision_code"]}).scalar_one()


@pytest.fixture
def app(bj, beijing_db):
    return rolled_back_app(bj, beijing_db)


@pytest.fixture
def parties(bj):
    """Two parties of Chaoyang (units' accounts must name a real one)."""
    return list(bj.execute(sa.text("SELECT code FROM parties WHERE district_code = '110105' ORDER BY code LIMIT 2"))
                .scalars())


@pytest.fixture
def as_user(app, bj, parties):
    """A signed-in test client of a new account; ``party=None`` for a unit: an account left bound to no party
    (as one made before units had parties), which reads nothing."""
    def make(username, roles, team=None, party=None):
        unbound = "unit" in roles and party is None
        token = user_token(bj, username, list(roles), team, parties[0] if unbound else party)
        if unbound:
            bj.execute(sa.text("UPDATE users SET party_code = NULL WHERE username = :u"), {"u": username})
        return signed_in(app.test_client(), token)
    return make


def ids(resp):
    assert resp.status_code == 200, resp.get_data(as_text=True)[:400]
    return [c["case_id"] for c in resp.get_json()["cases"]]


# ------------------------------------------------------------------------------------------ the queues as data
def test_queue_table_is_consistent():
    for q in QUEUES.values():
        assert set(q.roles) <= set(ROLES) and set(q.statuses) <= set(STATES), q.name
        assert q.order in desk_store.ORDERS and (q.condition is None or q.condition in desk_store.CONDITIONS)
        assert q.due in (None, "deadline_at", "verify_due_at", "check_due_at")
    assert [q.name for q in visible_queues(("admin",))] == list(QUEUES)
    assert [q.name for q in visible_queues(("supervisor",))] == ["verify", "check"]
    assert visible_queues(("analyst", "planner", "gis")) == []


def test_desk_lists_each_accounts_queues_with_counts(as_user, bj, case_rules):
    case = report(bj, case_rules)
    listed = as_user("acc", ["acceptor"]).get("/api/v1/desk?district=110105")
    assert listed.status_code == 200 and "private" in listed.headers["Cache-Control"]
    queues = {q["queue"]: q for q in listed.get_json()["queues"]}
    assert list(queues) == ["accept", "callback"]
    assert queues["accept"]["total"] >= 1 and set(queues["accept"]) == {"queue", "label", "total", "overdue"}
    assert [q["queue"] for q in as_user("ct", ["calltaker"]).get("/api/v1/desk").get_json()["queues"]] == ["callback"]
    assert as_user("an", ["analyst"]).get("/api/v1/desk").get_json()["queues"] == []
    assert len(as_user("ad", ["admin"]).get("/api/v1/desk").get_json()["queues"]) == len(QUEUES)
    # a unit bound to no party: its queue is listed as unavailable, saying why
    nobody = {q["queue"]: q for q in as_user("u0", ["unit"]).get("/api/v1/desk").get_json()["queues"]}
    assert "no party" in nobody["dispose"]["unavailable"]
    set_case(bj, case["case_id"], verify_due_at="2020-01-01T00:00:00Z")
    again = {q["queue"]: q for q in as_user("acc2", ["acceptor"]).get("/api/v1/desk").get_json()["queues"]}
    assert again["accept"]["overdue"] >= 1


# ------------------------------------------------------------------------------------------ each queue
def test_accept_queue_oldest_first_with_source_class_top_three_and_the_filing_rule(as_user, bj, case_rules):
    new = report(bj, case_rules, class_code="0103", at="2026-11-02T09:00:00+08:00")
    old = report(bj, case_rules, source="hotline", lon=FAR[0], lat=FAR[1], class_code="0104",
                 at="2026-11-01T09:00:00+08:00")
    set_case(bj, old["case_id"], verify_due_at="2030-01-01T00:00:00Z")
    verified = report(bj, case_rules, class_code="0201", at="2026-11-03T09:00:00+08:00")
    set_case(bj, verified["case_id"], status="verified")
    resp = as_user("acc", ["acceptor"]).get("/api/v1/desk/accept?district=110105&start=2026-11-01&end=2026-11-03")
    body = resp.get_json()
    assert ids(resp) == [old["case_id"], new["case_id"], verified["case_id"]] and body["counts"]["total"] == 3
    rows = {r["case_id"]: r for r in body["cases"]}
    hot = rows[old["case_id"]]
    assert hot["source"] == "hotline" and hot["class_code"] == "0104" and hot["class_name"]
    assert hot["verification"]["required"] and hot["verification"]["pending"]
    assert "verify_before_filing" in hot["verification"]["accept_refused"]
    assert rows[new["case_id"]]["verification"] == {"required": False, "pending": False, "verified": False,
                                                     "accept_refused": None}
    assert rows[verified["case_id"]]["verification"]["verified"]
    assert {"classification", "needs_review", "verify_due_at"} <= set(hot)
    assert body["counts"]["due_soon"] == 0 and body["counts"]["overdue"] == 0
    # a case accepted meanwhile leaves the queue
    set_case(bj, new["case_id"], status="accepted")
    assert new["case_id"] not in ids(as_user("acc3", ["acceptor"]).get("/api/v1/desk/accept?district=110105"))


def test_accept_queue_shows_the_classifiers_top_three(as_user, bj, case_rules):
    case, _ = service.submit(bj, case_rules, parse_report({"lon": LON, "lat": LAT, "description": "路边有暴露垃圾堆放",
                                                           "source": "supervisor"}))
    rows = {r["case_id"]: r for r in as_user("acc", ["acceptor"]).get(
        "/api/v1/desk/accept?limit=200").get_json()["cases"]}
    row = rows[case["case_id"]]
    assert row["classification"]["top"] and len(row["classification"]["top"]) <= 3
    assert isinstance(row["needs_review"], bool)


def test_dispatch_queue_suggests_party_level_deadline_and_survives_a_case_without_party(as_user, bj, case_rules):
    good = report(bj, case_rules, class_code="0501")
    orphan = report(bj, case_rules, lon=FAR[0], lat=FAR[1], class_code="0505")
    for case in (good, orphan):
        set_case(bj, case["case_id"], status="accepted")
    bj.execute(sa.text("UPDATE cases SET unit_grid_code = NULL WHERE case_id = :c"), {"c": orphan["case_id"]})
    resp = as_user("disp", ["dispatcher"]).get("/api/v1/desk/dispatch?district=110105")
    rows = {r["case_id"]: r for r in resp.get_json()["cases"]}
    manager = good["community_code"] or good["street_code"]
    suggestion = rows[good["case_id"]]["suggestion"]
    assert suggestion["party"]["code"] == manager and suggestion["level"] == "community"
    assert suggestion["deadline_at"] and rows[good["case_id"]]["level"] == "community"
    assert rows[orphan["case_id"]]["suggestion"]["party"] is None
    assert "ownership" in rows[orphan["case_id"]]["suggestion"]["problem"]
    assert_error(as_user("acc", ["acceptor"]).get("/api/v1/desk/dispatch"), 403, "forbidden", reason="dispatcher")


def test_dispose_queue_holds_only_the_units_party_overdue_first(as_user, bj, case_rules, parties):
    mine_late = report(bj, case_rules, class_code="0501")
    mine_soon = report(bj, case_rules, lon=FAR[0], lat=FAR[1], class_code="0505")
    theirs = report(bj, case_rules, class_code="0506")
    mine, other_party = parties
    for case, party, due in ((mine_late, mine, "2020-01-01T00:00:00Z"), (mine_soon, mine, None),
                             (theirs, other_party, "2020-01-01T00:00:00Z")):
        set_case(bj, case["case_id"], status="dispatched",
                 attrs=json.dumps({"dispatched_to": {"code": party, "name": "x", "kind": "unit"}}))
        if due is None:
            bj.execute(sa.text("UPDATE cases SET deadline_at = now() + interval '1 hour' WHERE case_id = :c"),
                       {"c": case["case_id"]})
        else:
            set_case(bj, case["case_id"], deadline_at=due)
    unit = as_user("unit-mine", ["unit"], party=mine)
    resp = unit.get("/api/v1/desk/dispose")
    assert ids(resp) == [mine_late["case_id"], mine_soon["case_id"]]
    body = resp.get_json()
    assert body["counts"] == {"total": 2, "overdue": 1, "due_soon": 1}
    late, soon = body["cases"]
    assert late["seconds_left"] < 0 < soon["seconds_left"] <= 3600 and late["dispatched_to"]["code"] == mine
    # another party's id in the filters changes nothing: the scope still holds
    other = unit.get(f"/api/v1/desk/dispose?supervision_grid={theirs['supervision_code']}")
    assert theirs["case_id"] not in ids(other)
    admin = as_user("adm", ["admin"]).get("/api/v1/desk/dispose?limit=200")
    assert {mine_late["case_id"], theirs["case_id"]} <= set(ids(admin))
    assert_error(as_user("u0", ["unit"]).get("/api/v1/desk/dispose"), 403, "forbidden", reason="no party")


def test_verify_and_check_queues_keep_to_the_team_nearest_first_with_photos(as_user, bj, case_rules):
    near = report(bj, case_rules, source="hotline", class_code="0501")
    far = report(bj, case_rules, source="hotline", lon=LON + 0.004, lat=LAT, class_code="0505")
    team = team_of(bj, near)
    assert team_of(bj, far) == team  # ~340 m east, the same team's grids
    for case in (near, far):
        set_case(bj, case["case_id"], verify_due_at="2030-01-01T00:00:00Z")
    fed = report(bj, case_rules, class_code="0506")
    set_case(bj, fed["case_id"], status="fed_back", check_due_at="2030-01-01T00:00:00Z")
    sup = as_user("sup", ["supervisor"], team=team)
    by_distance = sup.get(f"/api/v1/desk/verify?near={LON + 0.005},{LAT}")
    assert ids(by_distance)[:2] == [far["case_id"], near["case_id"]]
    first = by_distance.get_json()["cases"][0]
    assert 50 < first["distance_m"] < 150 and first["photo_count"] == 0 and first["thumb_url"] is None
    assert ids(sup.get("/api/v1/desk/check")) == [fed["case_id"]]
    other_team = bj.execute(sa.text("SELECT min(team_code) FROM supervision_grids WHERE district_code = '110105' "
                                    "AND team_code <> :t"), {"t": team}).scalar_one()
    stranger = as_user("sup-other", ["supervisor"], team=other_team)
    assert ids(stranger.get("/api/v1/desk/verify")) == [] and ids(stranger.get("/api/v1/desk/check")) == []
    assert_error(stranger.get(f"/api/v1/desk/verify?team={team}"), 403, "forbidden", reason="own team")
    # a photo of the case shows in its row, and changes the queue's tag
    tag = sup.get("/api/v1/desk/check").headers["ETag"]
    bj.execute(sa.text(
        """INSERT INTO case_photos (district_code, case_id, event_seq, sha256, thumb_sha256, content_type, width,
                                    height, bytes) VALUES ('110105', :c, 1, repeat('a', 64), repeat('b', 64),
                                    'image/jpeg', 10, 10, 100)"""), {"c": fed["case_id"]})
    photo = sup.get("/api/v1/desk/check", headers={"If-None-Match": tag})
    assert photo.status_code == 200 and photo.headers["ETag"] != tag
    row = photo.get_json()["cases"][0]
    assert row["photo_count"] == 1 and row["thumb_url"].startswith(f"/api/v1/cases/{fed['case_id']}/photos/")
    assert_error(as_user("disp", ["dispatcher"]).get("/api/v1/desk/verify"), 403, "forbidden", reason="supervisor")


def test_callback_queue_public_closed_cases_without_callback_latest_closed_first(as_user, bj, case_rules):
    first = report(bj, case_rules, source="hotline", class_code="0501")
    second = report(bj, case_rules, source="citizen", lon=FAR[0], lat=FAR[1], class_code="0505")
    own = report(bj, case_rules, class_code="0506")  # a supervisor's report: nobody to call back
    for case, at in ((first, "now() - interval '2 days'"), (second, "now() - interval '1 day'"), (own, "now()")):
        set_case(bj, case["case_id"], status="closed")
        event(bj, case["case_id"], "close", at)
    calltaker = as_user("ct", ["calltaker"])
    listed = ids(calltaker.get("/api/v1/desk/callback?district=110105"))
    assert listed[:2] == [second["case_id"], first["case_id"]] and own["case_id"] not in listed
    row = calltaker.get("/api/v1/desk/callback").get_json()["cases"][0]
    assert row["closed_at"] and row["source"] == "citizen" and "complainant" not in row
    # the callback moves the case on (here: satisfied, evaluated); closed again after a second handling, it
    # awaits a callback again
    event(bj, second["case_id"], "callback")
    set_case(bj, second["case_id"], status="evaluated")
    assert second["case_id"] not in ids(as_user("ct2", ["calltaker"]).get("/api/v1/desk/callback"))
    set_case(bj, first["case_id"], status="accepted")
    event(bj, first["case_id"], "callback", "now() - interval '36 hours'")
    set_case(bj, first["case_id"], status="closed")
    event(bj, first["case_id"], "close")
    again = calltaker.get("/api/v1/desk/callback").get_json()["cases"]
    assert again[0]["case_id"] == first["case_id"] and len([r for r in again if r["case_id"] == first["case_id"]]) == 1


def test_investigate_queue_is_the_leads(as_user, bj, case_rules):
    case = report(bj, case_rules, class_code="0501")
    set_case(bj, case["case_id"], status="investigating")
    assert case["case_id"] in ids(as_user("lead", ["lead"]).get("/api/v1/desk/investigate"))
    assert_error(as_user("acc", ["acceptor"]).get("/api/v1/desk/investigate"), 403, "forbidden", reason="lead")


# ------------------------------------------------------------------------------------------ polling
def test_etag_304_until_the_queue_changes_and_never_across_users(as_user, bj, case_rules, parties):
    case = report(bj, case_rules, class_code="0501")
    acceptor = as_user("acc", ["acceptor"])
    first = acceptor.get("/api/v1/desk/accept")
    tag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "private, no-cache" and "Authorization" in first.headers["Vary"]
    same = acceptor.get("/api/v1/desk/accept", headers={"If-None-Match": tag})
    assert same.status_code == 304 and same.data == b"" and same.headers["ETag"] == tag
    assert acceptor.get("/api/v1/desk/accept", headers={"If-None-Match": f"W/{tag}, \"x\""}).status_code == 304
    # another filter or page is another answer
    assert acceptor.get("/api/v1/desk/accept?limit=10", headers={"If-None-Match": tag}).status_code == 200
    # another user with the very same data and scope never gets a 304 for the first user's tag
    other = as_user("acc-2", ["acceptor"]).get("/api/v1/desk/accept", headers={"If-None-Match": tag})
    assert other.status_code == 200 and other.get_json()["cases"]
    # a change of any case in the queue changes the tag
    service.transition(bj, case_rules, case["case_id"], "reclassify", actor="a", role="acceptor", kind="event",
                       class_code="0502")
    changed = acceptor.get("/api/v1/desk/accept", headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["ETag"] != tag
    # two units whose queues are both empty: the same (empty) data, yet one's tag never answers for the other
    first_unit = as_user("unit-1", ["unit"], party=parties[0]).get("/api/v1/desk/dispose?district=110101")
    assert first_unit.get_json()["cases"] == []
    second_unit = as_user("unit-2", ["unit"], party=parties[1]).get(
        "/api/v1/desk/dispose?district=110101", headers={"If-None-Match": first_unit.headers["ETag"]})
    assert second_unit.status_code == 200 and second_unit.get_json()["counts"]["total"] == 0


def test_dispatch_queue_tag_changes_when_the_suggested_party_does(as_user, bj, case_rules):
    """A dispatcher polling with the queue's tag gets the new suggestion, not a 304, once an ownership change
    (an import, a rename of the party) changes the party a row suggests, though no case changed."""
    case = report(bj, case_rules, class_code="0501")
    set_case(bj, case["case_id"], status="accepted")
    dispatcher = as_user("disp-tag", ["dispatcher"])
    first = dispatcher.get("/api/v1/desk/dispatch?district=110105&limit=200")
    tag = first.headers["ETag"]
    (row,) = [r for r in first.get_json()["cases"] if r["case_id"] == case["case_id"]]
    party = row["suggestion"]["party"]
    assert dispatcher.get("/api/v1/desk/dispatch?district=110105&limit=200",
                          headers={"If-None-Match": tag}).status_code == 304
    bj.execute(sa.text("UPDATE parties SET name = name || '（改）' WHERE district_code = '110105' AND code = :c "
                       "AND kind = :k"), {"c": party["code"], "k": party["kind"]})
    renamed = dispatcher.get("/api/v1/desk/dispatch?district=110105&limit=200", headers={"If-None-Match": tag})
    assert renamed.status_code == 200 and renamed.headers["ETag"] != tag
    (row,) = [r for r in renamed.get_json()["cases"] if r["case_id"] == case["case_id"]]
    assert row["suggestion"]["party"]["name"] == party["name"] + "（改）"


def test_not_signed_in_gets_401_even_with_a_tag(app):
    resp = app.test_client().get("/api/v1/desk/accept", headers={"If-None-Match": "*"})
    assert resp.status_code == 401


# ------------------------------------------------------------------------------------------ hostile input
@pytest.mark.parametrize(("query", "field"), [
    ("near=nan,nan", "near"), ("near=1e400,39.9", "near"), ("near=116.4,95", "near"), ("near=200,39", "near"),
    ("near=116.4", "near"), ("near=1,2,3", "near"), ("near=abc,def", "near"), ("near=inf,0", "near"),
    ("limit=201", "limit"), ("limit=0", "limit"), ("limit=-1", "limit"), ("offset=-1", "offset"),
    ("offset=99999999999", "offset"), ("district=110105%00", "district"), ("district=11%0A0105", "district"),
    ("class_code=01';--", "class_code"), ("kind=thing", "kind"), ("team=T1%20OR%201=1", "team"),
    ("unit_grid=" + "9" * 500, "unit_grid"), ("start=yesterday", "start"), ("bbox=1,2,3", "bbox"),
    ("bbox=116,39,119,42", "bbox"),
])
def test_bad_queue_parameters_are_400_naming_the_field(as_user, query, field):
    resp = as_user("acc", ["acceptor"]).get(f"/api/v1/desk/accept?{query}")
    assert resp.status_code == 400, (query, resp.get_data(as_text=True)[:300])
    body = resp.get_json()
    assert any(d.get("field") == field for d in body["details"]) or field in body["message"], body


def test_unknown_queue_is_404_naming_the_queues(as_user):
    body = assert_error(as_user("acc", ["acceptor"]).get("/api/v1/desk/nope"), 404, "not_found")
    assert all(name in body["message"] for name in QUEUES)
    long = as_user("acc2", ["acceptor"]).get("/api/v1/desk/" + "x" * 5000)
    assert long.status_code in (404, 414) and len(long.data) < 2000


def test_huge_offset_is_an_empty_page_with_the_counts(as_user, bj, case_rules):
    report(bj, case_rules)
    body = as_user("acc", ["acceptor"]).get("/api/v1/desk/accept?offset=10000000").get_json()
    assert body["cases"] == [] and body["counts"]["total"] >= 1 and body["offset"] == 10_000_000


def test_roles_without_a_queue_get_403_naming_who_works_it(as_user):
    body = assert_error(as_user("an", ["analyst"]).get("/api/v1/desk/accept"), 403, "forbidden")
    assert "acceptor" in body["message"] and "dispatcher" in body["message"]
    assert_error(as_user("ct", ["calltaker"]).get("/api/v1/desk/dispose"), 403, "forbidden", reason="unit")


def test_the_demo_grids_and_owners_cover_its_synthetic_history(bj, case_rules):
    """load-demo publishes the demo's grids in effect from the first day of its SYNTHETIC history, so a history
    case has its grid's owners at its report time and the dispatcher's queue suggests a party for it (with the
    grids in effect from the load, every history case was 'no responsible party')."""
    import datetime as dt

    from citygrid.cases import store as case_store
    from citygrid.cases.synthetic_events import HISTORY_END, HISTORY_START
    from citygrid.spatial.db import deployment_zone
    from citygrid.spatial.timezones import day_start

    zone = deployment_zone(bj)
    start = bj.execute(sa.text("SELECT effective_from FROM grid_versions WHERE district_code = '110105' "
                               "AND status = 'published'")).scalar_one()
    assert start == day_start(HISTORY_START.date(), zone) and dt.timedelta(days=730) == HISTORY_END - HISTORY_START
    case = report(bj, case_rules)
    early = day_start(HISTORY_START.date(), zone) + dt.timedelta(hours=9)
    bj.execute(sa.text("UPDATE cases SET status = 'accepted', reported_at = :at WHERE case_id = :c"),
               {"at": early, "c": case["case_id"]})
    owners = case_store.owners_at(bj, "110105", case["unit_grid_code"], early)
    assert {"management", "responsibility", "enforcement", "supervision"} <= set(owners)
    preview = service.dispatch_preview(bj, case_rules, case_store.get_case(bj, case["case_id"]))
    assert preview["party"] and preview["party"]["rule"].startswith("grid ")
