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
from citygrid.errors import Conflict, InvalidInput, Unauthorized
from citygrid.webmap.auth import access_of
from tests.conftest import signed_in, user_token

LON, LAT = 116.48, 39.93  # Chaoyang, WGS84
PASSWORD = "correct horse battery"


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
    assert set(doc["components"]["securitySchemes"]) == {"bearer", "session"}


# ------------------------------------------------------------------------------------------ 401 / 403
@pytest.mark.parametrize("method, url", [("get", "/api/v1/districts"), ("get", "/api/v1/cases"),
                                         ("post", "/api/v1/cases"), ("get", "/tiles/unit_grids.json"),
                                         ("get", "/api/v1/audit"), ("post", "/api/v1/imports")])
def test_no_credential_is_401(anonymous_client, method, url):
    answer = getattr(anonymous_client, method)(url)
    assert answer.status_code == 401 and answer.get_json()["error"] == "unauthorized"
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer cg_not-a-token", "Bearer ", "Basic dXNlcjpwYXNz", "cg_token"])
def test_a_bad_credential_is_401(anonymous_client, header):
    answer = anonymous_client.get("/api/v1/districts", headers={"Authorization": header})
    assert answer.status_code == 401


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


def test_reads_are_open_to_every_role(client_as):
    for role in ("planner", "analyst", "gis", "unit"):
        assert client_as(f"reader-{role}", [role]).get("/api/v1/districts").status_code == 200


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
    unit = client_as("unit-1", ["unit"])
    assert unit.post(url, json={"action": "dispatch"}).status_code == 403  # units do not dispatch
    assert dispatcher.post(url, json={"action": "dispatch"}).status_code == 200
    assert unit.post(url, json={"action": "feed_back", "note": "已清理"}).status_code == 200


def test_service_refuses_a_role_the_step_does_not_allow(bj):
    from citygrid.cases import service
    from citygrid.cases.intake import parse_report
    from citygrid.errors import Forbidden

    case, _ = service.submit(bj, parse_report({"lon": LON, "lat": LAT, "kind": "event", "class_code": "0102",
                                               "description": "垃圾", "source": "hotline"}))
    with pytest.raises(Forbidden, match="acceptor"):
        service.transition(bj, case["case_id"], "accept", actor="x", role="supervisor")


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
    assert theirs.get(f"/api/v1/cases?team={own_team}").status_code == 403
    url = f"/api/v1/cases/{case['case_id']}/transitions"
    assert theirs.post(url, json={"action": "verify"}).status_code == 403
    assert mine.post(url, json={"action": "accept"}).status_code == 403  # acceptors accept, not supervisors
    assert mine.post(url, json={"action": "verify"}).status_code == 200


def test_a_supervisor_needs_a_team(bj):
    with pytest.raises(InvalidInput, match="team"):
        accounts.add_user(bj, "no-team", ["supervisor"], password=PASSWORD)
    with pytest.raises(InvalidInput, match="no supervision team"):
        accounts.add_user(bj, "bad-team", ["supervisor"], password=PASSWORD, team="110105T99")


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
    assert caller.get("/api/v1/districts").status_code == 401
    second = accounts.issue_token(bj, "tok-user", days=1)["token"]
    assert signed_in(anonymous_client, second).get("/api/v1/districts").status_code == 200
    bj.execute(sa.text("UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE user_id = "
                       "(SELECT user_id FROM users WHERE username = 'tok-user')"))
    assert signed_in(anonymous_client, second).get("/api/v1/districts").status_code == 401
    third = accounts.issue_token(bj, "tok-user")["token"]
    accounts.set_disabled(bj, "tok-user")
    assert signed_in(anonymous_client, third).get("/api/v1/districts").status_code == 401
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
    assert c.post("/api/v1/cases", json=body, headers={"X-CSRF-Token": "forged"}).status_code == 403
    made = c.post("/api/v1/cases", json=body, headers={"X-CSRF-Token": me["csrf_token"]})
    assert made.status_code == 201
    assert c.post("/logout").status_code == 403  # logging out is an unsafe request too
    assert c.post("/logout", data={"csrf_token": me["csrf_token"]}).status_code == 302
    c.set_cookie("citygrid_session", cookie.value)  # the old cookie is dead on the server
    assert c.get("/api/v1/me").status_code == 401


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
    assert anonymous_client.get("/api/v1/me").status_code == 401
    assert anonymous_client.post("/login", json={"username": "leaving", "password": PASSWORD}).status_code == 401


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
    assert admin.get("/api/v1/audit?start=yesterday").status_code == 400
    assert client_as("not-admin", ["analyst"]).get("/api/v1/audit").status_code == 403


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
        token = json.loads(run.invoke(cli, [*base, "token", "cli-user", "--label", "laptop"]).output)["token"]
        assert token.startswith("cg_")
        listed = json.loads(run.invoke(cli, [*base, "list"]).output)
        assert next(u for u in listed if u["username"] == "cli-user")["active_tokens"] == 1
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
    assert supervisor.get("/caseload").status_code == 403
    assert supervisor.get("/cases").status_code == 200
    analyst = client_as("page-analyst", ["analyst"]).get("/").get_data(as_text=True)
    assert 'href="/caseload"' in analyst and 'href="/cases"' in analyst
