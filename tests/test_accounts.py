"""Accounts, roles, sessions, CSRF and the audit log, end to end through the app (rolled-back database).

401 is for a caller who is not signed in (or whose credential is bad); 403 for one whose role does not allow
the request. Supervisors see and act on the cases of their own team's grids only."""

from __future__ import annotations

import io
import json

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from citygrid.accounts import passwords
from citygrid.accounts import service as accounts
from citygrid.cli import cli
from citygrid.errors import Conflict, InvalidInput, NotFound, Unauthorized
from citygrid.webmap.auth import access_of
from tests.conftest import assert_error, signed_in, user_token

LON, LAT = 116.48, 39.93  # Chaoyang, WGS84
PASSWORD = "correct horse battery"
UNKNOWN_TOKEN = "the bearer token is unknown, revoked or expired, or its user is disabled"


def report(client, lon=LON, lat=LAT, **extra):
    body = {"lon": lon, "lat": lat, "kind": "event", "class_code": "0102", "description": "暴露垃圾",
            "source": "supervisor", **extra}
    answer = client.post("/api/v1/cases", json=body)
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()["case"]


def team_of(bj, case_id: int) -> str:
    return bj.execute(sa.text(
        """SELECT s.team_code FROM cases c JOIN supervision_grids s ON s.district_code = c.district_code
              AND s.code = c.supervision_code
            WHERE c.case_id = :c ORDER BY s.version_id DESC LIMIT 1"""), {"c": case_id}).scalar_one()


def other_team(bj, team: str) -> str:
    return bj.execute(sa.text("SELECT code FROM supervision_teams WHERE code <> :t AND district_code = '110105' "
                              "ORDER BY code LIMIT 1"), {"t": team}).scalar_one()


def street_office(bj, other_than: str = "") -> str:
    """The code of a street office of Chaoyang (a party a unit account can be bound to)."""
    return bj.execute(sa.text("SELECT code FROM parties WHERE district_code = '110105' AND kind = 'street_office' "
                              "AND code <> :c ORDER BY code LIMIT 1"), {"c": other_than}).scalar_one()


def dispatched(client_as, bj, **where) -> dict:
    """A case reported, accepted and dispatched by a dispatcher; returns it with ``attrs.dispatched_to``."""
    dispatcher = client_as("dispatch-desk", ["dispatcher"])
    case = report(dispatcher, **where)
    url = f"/api/v1/cases/{case['case_id']}/transitions"
    assert dispatcher.post(url, json={"action": "accept"}).status_code == 200
    answer = dispatcher.post(url, json={"action": "dispatch"})
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


# ------------------------------------------------------------------------------------------ declarations
def test_every_endpoint_declares_who_may_call_it(client):
    app = client.application
    undeclared = [rule.rule for rule in app.url_map.iter_rules()
                  if not rule.endpoint.endswith("static") and access_of(app.view_functions[rule.endpoint]) is None]
    assert undeclared == []


def test_the_openapi_document_states_roles_and_security(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["paths"]["/api/v1/audit"]["get"]["x-roles"] == ["admin"]
    assert doc["paths"]["/open311/v2/requests.json"]["post"]["security"] == []
    assert "gis" in doc["paths"]["/api/v1/imports"]["post"]["x-roles"]
    assert "multipart/form-data" in doc["paths"]["/api/v1/imports"]["post"]["requestBody"]["content"]
    assert set(doc["components"]["securitySchemes"]) == {"bearer", "session", "basic"}


# ------------------------------------------------------------------------------------------ 401 / 403
@pytest.mark.parametrize("method, url", [("get", "/api/v1/districts"), ("get", "/api/v1/cases"),
                                         ("post", "/api/v1/cases"), ("get", "/tiles/unit_grids.json"),
                                         ("get", "/api/v1/audit"), ("post", "/api/v1/imports")])
def test_no_credential_is_401(anonymous_client, method, url):
    answer = getattr(anonymous_client, method)(url)
    assert answer.status_code == 401 and answer.get_json()["error"] == "unauthorized"
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("header", "reason"), [
    ("Bearer cg_not-a-token", UNKNOWN_TOKEN),
    ("Bearer ", "send the API token as 'Authorization: Bearer <token>'"),
    ("Basic dXNlcjpwYXNz", UNKNOWN_TOKEN),  # user:pass — a read takes Basic, its password must be an API token
    ("Basic dXNlcg==", "send Basic credentials as base64 of '<username>:<API token>'"),
    ("cg_token", "send the API token as 'Authorization: Bearer <token>'")])
def test_a_bad_credential_is_401(anonymous_client, header, reason):
    answer = anonymous_client.get("/api/v1/districts", headers={"Authorization": header})
    assert_error(answer, 401, "unauthorized", reason=reason)
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_public_endpoints_need_no_credential(anonymous_client):
    assert anonymous_client.get("/healthz").status_code == 200
    assert anonymous_client.get("/api/v1/openapi.json").status_code == 200
    assert anonymous_client.get("/open311/v2/services.json").status_code == 200
    assert anonymous_client.get("/login").status_code == 200


def test_pages_redirect_to_the_login_form(anonymous_client):
    answer = anonymous_client.get("/caseload?district=110105")
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/login?next=")
    assert "caseload" in answer.headers["Location"]


@pytest.mark.parametrize("roles, method, url, body", [
    (["analyst"], "post", "/api/v1/cases", {"lon": LON, "lat": LAT, "class_code": "0102"}),
    (["planner"], "get", "/api/v1/cases", None),
    (["supervisor"], "get", "/api/v1/audit", None),
    (["dispatcher"], "get", "/api/v1/users", None),
    (["analyst"], "post", "/api/v1/imports", None),
    (["gis"], "get", "/api/v1/caseload?district=110105", None),
])
def test_a_role_that_may_not_is_403(client_as, bj, roles, method, url, body):
    team = "110105T01" if "supervisor" in roles else None
    caller = client_as("someone", roles, team)
    answer = getattr(caller, method)(url, **({"json": body} if body else {}))
    assert answer.status_code == 403 and answer.get_json()["error"] == "forbidden"


def test_reads_are_open_to_every_role(client_as, bj):
    party = street_office(bj)
    for role in ("planner", "analyst", "gis", "unit"):
        caller = client_as(f"reader-{role}", [role], party=party if role == "unit" else None)
        assert caller.get("/api/v1/districts").status_code == 200


# ------------------------------------------------------------------------------------------ workflow roles
def test_the_actor_and_role_come_from_the_account_not_the_body(client_as, bj):
    supervisor_case = report(client_as("lee", ["dispatcher"]))
    dispatcher = client_as("wang", ["dispatcher"])
    url = f"/api/v1/cases/{supervisor_case['case_id']}/transitions"
    accepted = dispatcher.post(url, json={"action": "accept", "actor": "someone-else", "role": "admin"})
    assert accepted.status_code == 200
    event = bj.execute(sa.text("SELECT actor, role FROM case_events WHERE case_id = :c ORDER BY seq DESC LIMIT 1"),
                       {"c": supervisor_case["case_id"]}).one()
    assert tuple(event) == ("wang", "acceptor")
    unit = client_as("unit-1", ["unit"], party=supervisor_case["owners"]["management"]["code"])
    assert_error(unit.post(url, json={"action": "dispatch"}), 403, "forbidden",  # units do not dispatch
                 reason="unit-1 (unit) may not dispatch: it is done by dispatcher, admin")
    assert dispatcher.post(url, json={"action": "dispatch"}).status_code == 200
    assert unit.post(url, json={"action": "feed_back", "note": "已清理"}).status_code == 200


def test_service_refuses_a_role_the_step_does_not_allow(case_rules, bj):
    from citygrid.cases import service
    from citygrid.cases.intake import parse_report
    from citygrid.errors import Forbidden

    case, _ = service.submit(bj, case_rules,
                             parse_report({"lon": LON, "lat": LAT, "kind": "event", "class_code": "0102",
                                           "description": "垃圾", "source": "hotline"}))
    with pytest.raises(Forbidden, match="acceptor"):
        service.transition(bj, case_rules, case["case_id"], "accept", actor="x", role="supervisor")


# ------------------------------------------------------------------------------------------ supervisor scope
def test_a_supervisor_sees_and_acts_on_their_own_grids_only(client_as, bj):
    admin = client_as("boss", ["admin"])
    case = report(admin)
    own_team = team_of(bj, case["case_id"])
    mine = client_as("sup-own", ["supervisor"], own_team)
    theirs = client_as("sup-other", ["supervisor"], other_team(bj, own_team))
    assert mine.get(f"/api/v1/cases/{case['case_id']}").status_code == 200
    denied = theirs.get(f"/api/v1/cases/{case['case_id']}")
    assert denied.status_code == 403 and "team" in denied.get_json()["message"]
    listed = theirs.get("/api/v1/cases?district=110105&limit=1000").get_json()["cases"]
    assert case["case_id"] not in {c["case_id"] for c in listed}
    assert case["case_id"] in {c["case_id"] for c in mine.get("/api/v1/cases?limit=1000").get_json()["cases"]}
    assert_error(theirs.get(f"/api/v1/cases?team={own_team}"), 403, "forbidden",
                 reason="you may list the cases of your own team")
    url = f"/api/v1/cases/{case['case_id']}/transitions"
    assert_error(theirs.post(url, json={"action": "verify"}), 403, "forbidden",
                 reason=f"case {case['case_id']} is not in the grids of your team")
    assert_error(mine.post(url, json={"action": "accept"}), 403, "forbidden",  # acceptors accept, not supervisors
                 reason="sup-own (supervisor) may not accept: it is done by acceptor, admin")
    assert mine.post(url, json={"action": "verify"}).status_code == 200


def test_a_supervisor_needs_a_team(bj):
    with pytest.raises(InvalidInput, match="team"):
        accounts.add_user(bj, "no-team", ["supervisor"], password=PASSWORD)
    with pytest.raises(InvalidInput, match="no supervision team"):
        accounts.add_user(bj, "bad-team", ["supervisor"], password=PASSWORD, team="110105T99")


# ------------------------------------------------------------------------------------------ unit scope
def test_a_unit_reads_lists_and_acts_on_its_partys_cases_only(client_as, bj):
    case = dispatched(client_as, bj)
    party = case["attrs"]["dispatched_to"]["code"]
    bj.execute(sa.text("UPDATE cases SET deadline_at = now() + interval '1 hour' WHERE case_id = :c"),
               {"c": case["case_id"]})
    other = street_office(bj, other_than=party)
    mine = client_as("unit-own", ["unit"], party=party)
    theirs = client_as("unit-other", ["unit"], party=other)
    url = f"/api/v1/cases/{case['case_id']}"
    assert mine.get(url).status_code == 200
    denied = theirs.get(url)
    assert denied.status_code == 403 and other in denied.get_json()["message"]
    assert case["case_id"] in {c["case_id"] for c in mine.get("/api/v1/cases?limit=1000").get_json()["cases"]}
    listed = theirs.get("/api/v1/cases?limit=1000&format=geojson").get_json()["features"]
    assert case["case_id"] not in {f["id"] for f in listed}
    due = mine.get("/api/v1/cases/deadlines").get_json()
    assert case["case_id"] in {c["case_id"] for c in due["due_soon"]}
    assert all(c["attrs"]["dispatched_to"]["code"] == party for c in due["due_soon"] + due["overdue"])
    due_elsewhere = theirs.get("/api/v1/cases/deadlines").get_json()
    assert case["case_id"] not in {c["case_id"] for c in due_elsewhere["due_soon"] + due_elsewhere["overdue"]}
    refused = theirs.post(f"{url}/transitions", json={"action": "feed_back", "note": "不是我们的"})
    assert refused.status_code == 403 and other in refused.get_json()["message"]
    assert_error(theirs.post(f"{url}/transitions", json={"action": "hand_back"}), 403, "forbidden",
                 reason=f"is not dispatched to your party {other}")
    assert mine.post(f"{url}/transitions", json={"action": "feed_back", "note": "已清理"}).status_code == 200
    undispatched = report(client_as("reporter", ["dispatcher"]), lon=LON + 0.002)
    assert_error(mine.get(f"/api/v1/cases/{undispatched['case_id']}"), 403, "forbidden",  # not (yet) theirs
                 reason=f"case {undispatched['case_id']} is not dispatched to your party {party}")


def test_a_unit_of_a_party_in_another_district_reads_nothing_here(client_as, bj):
    case = dispatched(client_as, bj)
    party = case["attrs"]["dispatched_to"]["code"]
    mine = client_as("unit-here", ["unit"], party=party)
    bj.execute(sa.text("UPDATE users SET district_code = '110101' WHERE username = 'unit-here'"))
    assert_error(mine.get(f"/api/v1/cases/{case['case_id']}"), 403, "forbidden", reason="your party")
    bj.execute(sa.text("UPDATE users SET district_code = '110105', party_code = NULL WHERE username = 'unit-here'"))
    unbound = mine.get("/api/v1/cases")  # an account stored before units were bound: no case at all
    assert unbound.status_code == 403 and "party" in unbound.get_json()["message"]


def test_a_unit_needs_a_party_of_its_district(bj):
    party = street_office(bj)
    with pytest.raises(InvalidInput, match="--party"):
        accounts.add_user(bj, "no-party", ["unit"], password=PASSWORD)
    with pytest.raises(InvalidInput, match="no party 'nope'"):
        accounts.add_user(bj, "bad-party", ["unit"], password=PASSWORD, party="nope")
    with pytest.raises(InvalidInput, match="no party 'nope' in district 110105"):
        accounts.add_user(bj, "wrong-district", ["unit"], password=PASSWORD, party="nope", district="110105")
    with pytest.raises(InvalidInput, match="unit accounts"):
        accounts.add_user(bj, "not-a-unit", ["analyst"], password=PASSWORD, party=party)
    with pytest.raises(InvalidInput, match="printable"):
        accounts.add_user(bj, "nul-party", ["unit"], password=PASSWORD, party="a\x00b")
    user = accounts.add_user(bj, "good-unit", ["unit"], password=PASSWORD, party=party)
    assert user["party_code"] == party and user["district_code"] == "110105"
    token = accounts.issue_token(bj, "good-unit")["token"]
    assert accounts.principal_for_token(bj, token).party_code == party


def test_case_scope_of_each_kind_of_account():
    from citygrid.accounts.service import Principal
    from citygrid.cases.scope import CaseScope, action_scope, read_scope

    def who(*roles, team=None, party=None, district="110105"):
        return Principal(1, "x", roles, district, team, "token", party_code=party)

    assert read_scope(who("admin")) == read_scope(who("dispatcher", district=None)) == CaseScope()
    assert read_scope(who("analyst", district=None)).unrestricted
    # An account of one district reads that district's cases only; an admin reads every district's.
    assert read_scope(who("dispatcher")) == read_scope(who("analyst")) == CaseScope(home="110105")
    assert "not in your district 110105" in read_scope(who("acceptor")).refusal(3)
    assert read_scope(who("admin")).unrestricted and not read_scope(who("calltaker")).unrestricted
    assert not read_scope(who("planner")).readable and not read_scope(who("gis")).readable
    assert read_scope(who("supervisor", team="110105T01")) == CaseScope(team="110105T01", home="110105")
    assert read_scope(who("unit", party="P1")) == CaseScope(party="P1", district="110105", home="110105")
    both = read_scope(who("supervisor", "unit", team="110105T01", party="P1"))
    assert (both.team, both.party) == ("110105T01", "P1") and "neither" in both.refusal(3)
    assert read_scope(who("unit", "dispatcher", party="P1", district=None)).unrestricted
    assert read_scope(who("unit", "acceptor", party="P1")) == CaseScope(home="110105")  # the acceptor reads all
    assert action_scope(who("unit", "dispatcher", party="P1"), "unit").party == "P1"  # acting as the unit
    assert action_scope(who("supervisor", "dispatcher", team="110105T01"), "supervisor").team == "110105T01"
    assert not read_scope(who("unit")).readable  # bound to no party: reads nothing
    assert CaseScope(readable=False).bound() == {"scope_all": False, "scope_team": None, "scope_party": None,
                                                 "scope_district": None, "scope_home": None}


# ------------------------------------------------------------------------------------------ passwords, tokens
def test_passwords_are_argon2id_and_checked(bj):
    accounts.add_user(bj, "hash-me", ["analyst"], password=PASSWORD)
    stored = bj.execute(sa.text("SELECT password_hash FROM users WHERE username = 'hash-me'")).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert passwords.verify(stored, PASSWORD) and not passwords.verify(stored, PASSWORD + "x")
    for weak in ("short", "aaaaaaaaaaaa", "x" * 300):
        with pytest.raises(InvalidInput):
            passwords.hash_password(weak)
    with pytest.raises(Unauthorized):
        accounts.login(bj, "hash-me", "wrong password!")
    with pytest.raises(Unauthorized):
        accounts.login(bj, "nobody-here", PASSWORD)
    with pytest.raises(Conflict):
        accounts.add_user(bj, "hash-me", ["analyst"], password=PASSWORD)
    with pytest.raises(InvalidInput, match="unknown role"):
        accounts.add_user(bj, "x-user", ["mayor"], password=PASSWORD)
    with pytest.raises(InvalidInput, match="username"):
        accounts.add_user(bj, "Robert'); DROP TABLE users;--", ["analyst"], password=PASSWORD)


def test_revoked_expired_and_disabled_credentials_stop_working(anonymous_client, bj):
    token = user_token(bj, "tok-user", ["analyst"])
    caller = signed_in(anonymous_client, token)
    assert caller.get("/api/v1/districts").status_code == 200
    token_id = bj.execute(sa.text("SELECT max(token_id) FROM api_tokens")).scalar_one()
    accounts.revoke_token(bj, token_id)
    assert_error(caller.get("/api/v1/districts"), 401, "unauthorized", reason=UNKNOWN_TOKEN)
    second = accounts.issue_token(bj, "tok-user", days=1)["token"]
    assert signed_in(anonymous_client, second).get("/api/v1/districts").status_code == 200
    bj.execute(sa.text("UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE user_id = "
                       "(SELECT user_id FROM users WHERE username = 'tok-user')"))
    assert_error(signed_in(anonymous_client, second).get("/api/v1/districts"), 401, "unauthorized",
                 reason=UNKNOWN_TOKEN)
    third = accounts.issue_token(bj, "tok-user")["token"]
    accounts.set_disabled(bj, "tok-user")
    assert_error(signed_in(anonymous_client, third).get("/api/v1/districts"), 401, "unauthorized",
                 reason=UNKNOWN_TOKEN)
    with pytest.raises(Conflict, match="disabled"):
        accounts.issue_token(bj, "tok-user")


# ------------------------------------------------------------------------------------------ sessions, CSRF
def login_form(client, username, password, next_url="/"):
    client.get("/login")
    csrf = client.get_cookie("citygrid_login_csrf", path="/login").value
    return client.post("/login", data={"username": username, "password": password, "csrf_token": csrf,
                                       "next": next_url})


def test_login_form_session_csrf_and_logout(anonymous_client, bj):
    accounts.add_user(bj, "web-user", ["dispatcher"], password=PASSWORD)
    c = anonymous_client
    wrong = login_form(c, "web-user", "not the password")
    assert wrong.status_code == 401 and "Wrong username or password" in wrong.get_data(as_text=True)
    no_csrf = c.post("/login", data={"username": "web-user", "password": PASSWORD})
    assert no_csrf.status_code == 403 and c.get_cookie("citygrid_session") is None
    done = login_form(c, "web-user", PASSWORD, "/cases")
    assert done.status_code == 302 and done.headers["Location"] == "/cases"
    cookie = c.get_cookie("citygrid_session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"
    page = c.get("/cases")
    assert page.status_code == 200 and "web-user" in page.get_data(as_text=True)
    me = c.get("/api/v1/me").get_json()
    assert me["user"]["username"] == "web-user" and me["user"]["via"] == "session"
    body = {"lon": LON, "lat": LAT, "kind": "event", "class_code": "0102", "description": "垃圾", "source": "hotline"}
    refused = c.post("/api/v1/cases", json=body)
    assert refused.status_code == 403 and "CSRF" in refused.get_json()["message"]
    assert_error(c.post("/api/v1/cases", json=body, headers={"X-CSRF-Token": "forged"}), 403, "forbidden",
                 reason="CSRF")
    made = c.post("/api/v1/cases", json=body, headers={"X-CSRF-Token": me["csrf_token"]})
    assert made.status_code == 201
    assert c.post("/logout").status_code == 403  # logging out is an unsafe request too
    assert c.post("/logout", data={"csrf_token": me["csrf_token"]}).status_code == 302
    c.set_cookie("citygrid_session", cookie.value)  # the old cookie is dead on the server
    assert_error(c.get("/api/v1/me"), 401, "unauthorized", reason="sign in")


def test_login_json_rate_limit_and_no_open_redirect(anonymous_client, bj):
    accounts.add_user(bj, "json-user", ["analyst"], password=PASSWORD)
    ok = anonymous_client.post("/login", json={"username": "json-user", "password": PASSWORD})
    assert ok.status_code == 200 and ok.get_json()["user"]["roles"] == ["analyst"] and ok.get_json()["csrf_token"]
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        away = login_form(anonymous_client, "json-user", PASSWORD, target)
        assert away.status_code == 302 and away.headers["Location"] == "/"
    statuses = [anonymous_client.post("/login", json={"username": "json-user", "password": "wrong password"}
                                      ).status_code for _ in range(12)]
    assert statuses[0] == 401 and statuses[-1] == 429


def test_disabling_a_user_ends_their_sessions(anonymous_client, bj):
    accounts.add_user(bj, "leaving", ["analyst"], password=PASSWORD)
    assert anonymous_client.post("/login", json={"username": "leaving", "password": PASSWORD}).status_code == 200
    assert anonymous_client.get("/api/v1/me").status_code == 200
    accounts.set_disabled(bj, "leaving")
    assert_error(anonymous_client.get("/api/v1/me"), 401, "unauthorized", reason="sign in")
    assert_error(anonymous_client.post("/login", json={"username": "leaving", "password": PASSWORD}), 401,
                 "unauthorized", reason="wrong username or password")


def test_a_password_change_ends_sessions_and_revokes_tokens(anonymous_client, bj):
    accounts.add_user(bj, "changing", ["analyst"], password=PASSWORD)
    browser = anonymous_client
    assert browser.post("/login", json={"username": "changing", "password": PASSWORD}).status_code == 200
    bearer = signed_in(anonymous_client.application.test_client(), accounts.issue_token(bj, "changing")["token"])
    assert browser.get("/api/v1/me").status_code == 200 and bearer.get("/api/v1/me").status_code == 200
    assert accounts.set_password(bj, "changing", "a brand new passphrase") == {"sessions_ended": 1,
                                                                                "tokens_revoked": 1}
    assert browser.get("/api/v1/me").status_code == 401 and bearer.get("/api/v1/me").status_code == 401
    assert_error(browser.post("/login", json={"username": "changing", "password": PASSWORD}), 401, "unauthorized",
                 reason="wrong username or password")
    assert browser.post("/login", json={"username": "changing", "password": "a brand new passphrase"}
                        ).status_code == 200
    with pytest.raises(NotFound):
        accounts.set_password(bj, "nobody-here", "a brand new passphrase")


def test_failed_logins_are_limited_per_account_from_any_address(anonymous_client, bj):
    from dataclasses import replace

    from citygrid.webmap.auth import LOGIN_ACCOUNT_BURST, LOGIN_ACCOUNT_PER_MINUTE
    from citygrid.webmap.ratelimit import TokenBuckets

    now = [1000.0]
    anonymous_client.application.extensions["citygrid_login_buckets"] = TokenBuckets(clock=lambda: now[0])
    settings = anonymous_client.application.config["CITYGRID_SETTINGS"]
    anonymous_client.application.config["CITYGRID_SETTINGS"] = replace(settings, trusted_proxy="10.9.9.9")
    accounts.add_user(bj, "targeted", ["analyst"], password=PASSWORD)
    accounts.add_user(bj, "bystander", ["analyst"], password=PASSWORD)
    # five addresses: three connect directly, two come through the trusted proxy
    senders = [({"REMOTE_ADDR": f"192.0.2.{i}"}, {}) for i in range(3)] + \
              [({"REMOTE_ADDR": "10.9.9.9"}, {"X-Forwarded-For": f"198.51.100.{i}"}) for i in range(2)]

    def attempt(username: str, password: str, i: int):
        environ, headers = senders[i % len(senders)]
        return anonymous_client.post("/login", json={"username": username, "password": password},
                                     environ_base=environ, headers=headers)

    answers = [attempt("targeted", "wrong password", i) for i in range(int(LOGIN_ACCOUNT_BURST) + 2)]
    assert [a.status_code for a in answers] == [401] * int(LOGIN_ACCOUNT_BURST) + [429, 429]
    assert int(answers[-1].headers["Retry-After"]) >= 1 and "account" in answers[-1].get_json()["message"]
    assert attempt(" Targeted ", PASSWORD, 0).status_code == 429  # the right password too: no oracle
    assert attempt("bystander", "wrong password", 1).status_code == 401  # no address is limited yet
    now[0] += 60.0 / LOGIN_ACCOUNT_PER_MINUTE  # a token bucket: the account opens again, never locked for good
    assert attempt("targeted", PASSWORD, 4).status_code == 200


def test_login_limits_are_shared_by_every_server_process(anonymous_client, bj, beijing_db):
    """Each gunicorn worker had buckets of its own: five workers let through five times the limit. The
    buckets live in the database now, so a second app (another worker) sees the failures of the first."""
    from citygrid.app import create_app
    from citygrid.webmap.auth import LOGIN_ACCOUNT_BURST
    from tests.conftest import rollback_backend

    other_worker = create_app({"CITYGRID_BACKEND": rollback_backend(bj, beijing_db.database or ""),
                               "TESTING": True}).test_client()
    accounts.add_user(bj, "shared-target", ["analyst"], password=PASSWORD)
    clients = [anonymous_client, other_worker]
    statuses = [clients[i % 2].post("/login", json={"username": "shared-target", "password": "nope"},
                                    environ_base={"REMOTE_ADDR": f"192.0.2.{i}"}).status_code
                for i in range(int(LOGIN_ACCOUNT_BURST) + 2)]
    assert statuses == [401] * int(LOGIN_ACCOUNT_BURST) + [429, 429]
    assert bj.execute(sa.text("SELECT tokens < 1 FROM login_limits WHERE key = 'login-account:shared-target'"
                              )).scalar() is True


def test_a_successful_login_costs_no_token(anonymous_client, bj):
    accounts.add_user(bj, "frequent", ["analyst"], password=PASSWORD)
    for _ in range(15):  # more than the burst
        assert anonymous_client.post("/login", json={"username": "frequent", "password": PASSWORD}).status_code == 200


# ------------------------------------------------------------------------------------------ audit
def test_every_case_write_is_audited_with_before_and_after(client_as, bj):
    reporter = client_as("auditee", ["dispatcher"])
    case = report(reporter)
    reporter.post(f"/api/v1/cases/{case['case_id']}/transitions", json={"action": "accept"})
    admin = client_as("auditor", ["admin"])
    entries = admin.get(f"/api/v1/audit?object_kind=cases&object_id={case['case_id']}").get_json()["entries"]
    assert [e["action"] for e in entries][-1] == "insert" and all(e["actor"] == "auditee" for e in entries)
    update = next(e for e in entries if e["action"] == "update" and "status" in e["changed"])
    assert update["before"]["status"] == "reported" and update["after"]["status"] == "accepted"
    by_actor = admin.get("/api/v1/audit?actor=auditee&limit=1000").get_json()["entries"]
    assert {e["object_kind"] for e in by_actor} >= {"cases"}
    later = admin.get("/api/v1/audit?actor=auditee&start=2999-01-01").get_json()
    assert later["count"] == 0
    assert_error(admin.get("/api/v1/audit?start=yesterday"), 400, "invalid_input", field="start",
                 reason="ISO 8601 date or date-time")
    assert_error(client_as("not-admin", ["analyst"]).get("/api/v1/audit"), 403, "forbidden",
                 reason="not-admin (analyst) may not do this; it needs one of: admin")


def test_open311_writes_name_the_public_client(anonymous_client, bj):
    anonymous_client.post("/open311/v2/requests.json", data={"service_code": "E0102", "lat": str(LAT),
                                                              "long": str(LON), "description": "垃圾"})
    actor = bj.execute(sa.text("SELECT actor FROM audit_log WHERE object_kind = 'cases' ORDER BY audit_id DESC "
                               "LIMIT 1")).scalar_one()
    assert actor.startswith("open311:addr:")


def test_secrets_never_reach_the_audit_log(bj):
    accounts.add_user(bj, "secretive", ["analyst"], password=PASSWORD)
    accounts.issue_token(bj, "secretive")
    rows = bj.execute(sa.text("SELECT before, after FROM audit_log WHERE object_kind IN ('users', 'api_tokens')")
                      ).all()
    text = json.dumps([list(r) for r in rows])
    assert rows and "password_hash" not in text and "token_hash" not in text and "argon2" not in text


# ------------------------------------------------------------------------------------------ CLI
def test_users_cli(beijing_db, beijing_engine):
    run = CliRunner()
    base = ["--database", beijing_db.database, "users"]
    try:
        added = run.invoke(cli, [*base, "add", "cli-user", "--roles", "gis,analyst", "--password-stdin"],
                           input=PASSWORD + "\n")
        assert added.exit_code == 0, added.output
        assert run.invoke(cli, [*base, "add", "cli-user", "--roles", "gis", "--no-password"]).exit_code == 4
        assert run.invoke(cli, [*base, "add", "cli-other", "--roles", "mayor", "--no-password"]).exit_code == 2
        weak = run.invoke(cli, [*base, "add", "cli-weak", "--roles", "gis", "--password-stdin"], input="abc\n")
        assert weak.exit_code == 2 and "password" in weak.output
        unbound = run.invoke(cli, [*base, "add", "cli-unit", "--roles", "unit", "--no-password"])
        assert unbound.exit_code == 2 and "--party" in unbound.output
        unknown = run.invoke(cli, [*base, "add", "cli-unit", "--roles", "unit", "--party", "nope", "--no-password"])
        assert unknown.exit_code == 2 and "no party 'nope'" in unknown.output
        with beijing_engine.connect() as conn:
            party = street_office(conn)
        unit = run.invoke(cli, [*base, "add", "cli-unit", "--roles", "unit", "--party", party, "--district", "110105",
                                "--no-password"])
        assert unit.exit_code == 0, unit.output
        assert json.loads(unit.output)["party_code"] == party
        token = json.loads(run.invoke(cli, [*base, "token", "cli-user", "--label", "laptop"]).output)["token"]
        assert token.startswith("cg_")
        listed = json.loads(run.invoke(cli, [*base, "list"]).output)
        assert next(u for u in listed if u["username"] == "cli-user")["active_tokens"] == 1
        changed = run.invoke(cli, [*base, "password", "cli-user", "--password-stdin"],
                             input="another long passphrase\n")
        assert changed.exit_code == 0 and json.loads(changed.output)["tokens_revoked"] == 1
        listed = json.loads(run.invoke(cli, [*base, "list"]).output)
        assert next(u for u in listed if u["username"] == "cli-user")["active_tokens"] == 0
        assert run.invoke(cli, [*base, "disable", "cli-user"]).exit_code == 0
        assert run.invoke(cli, [*base, "disable", "nobody-at-all"]).exit_code == 3
        audit = run.invoke(cli, ["--database", beijing_db.database, "audit", "--kind", "users", "--id", "cli-user"])
        entries = json.loads(audit.output)
        assert entries[0]["after"]["disabled_at"] and entries[0]["actor"].startswith("cli:")
        assert run.invoke(cli, ["--database", beijing_db.database, "audit", "--since", "soon"]).exit_code == 2
    finally:
        with beijing_engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM users WHERE username LIKE 'cli-%'"))


def test_bodies_over_the_limit_are_413_except_uploads(client):
    big = {"lon": LON, "lat": LAT, "class_code": "0102", "description": "x" * (1024 * 1024 + 10)}
    answer = client.post("/api/v1/cases", json=big)
    assert answer.status_code == 413 and answer.get_json()["error"] == "request_entity_too_large"
    form = {"service_code": "E0102", "lat": str(LAT), "long": str(LON), "description": "x" * (1024 * 1024 + 10)}
    assert client.post("/open311/v2/requests.json", data=form).status_code == 413
    # an upload may be larger (its own limit, MAX_CONTENT_LENGTH, is tested with the census)
    upload = client.post("/api/v1/imports", data={"district": "110105", "file": (io.BytesIO(b"0" * 1_200_000),
                                                                                   "a.exe")},
                         content_type="multipart/form-data")
    assert upload.status_code == 400 and "not an accepted" in upload.get_json()["message"]


def test_pages_and_their_links_follow_the_roles(client_as):
    supervisor = client_as("page-sup", ["supervisor"], "110105T01")
    overview = supervisor.get("/").get_data(as_text=True)
    assert 'href="/cases"' in overview and 'href="/caseload"' not in overview
    refused = supervisor.get("/caseload")  # a page refused: the message page saying why, no map, no script
    html = refused.get_data(as_text=True)
    assert refused.status_code == 403 and refused.mimetype == "text/html" and 'id="message"' in html
    assert "page-sup (supervisor) may not open this page" in html and "<script" not in html
    assert supervisor.get("/cases").status_code == 200
    analyst = client_as("page-analyst", ["analyst"]).get("/").get_data(as_text=True)
    assert 'href="/caseload"' in analyst and 'href="/cases"' in analyst
