"""Every operation of the published OpenAPI document, fuzzed by schemathesis (property-based requests that
follow the schema, and malformed ones): no answer may be a server error. Runs against the rolled-back test
database, so generated writes leave nothing behind."""

from __future__ import annotations

import re

from tests.conftest import server_errors

EXAMPLES = 30


def test_the_document_is_served_and_names_every_blueprint_route(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.") and len(doc["paths"]) >= 30
    routes = {re.sub(r"<[^>]*>", "<>", str(rule)) for rule in client.application.url_map.iter_rules()}
    for path in doc["paths"]:
        assert re.sub(r"{[^}]*}", "<>", path) in routes, path
    # /ogc (#25) is documented by its own OpenAPI 3.0 document, GET /ogc/api (paths relative to /ogc)
    ogc = {re.sub(r"{[^}]*}", "<>", "/ogc" + path).rstrip("/") for path in client.get("/ogc/api").get_json()["paths"]}
    assert {r.rstrip("/") for r in routes if r.startswith("/ogc")} <= ogc


def test_no_request_gets_a_server_error(client, bj, tmp_path):
    """Signed in as an admin (every operation reachable), and once more with no credential at all; with
    cases imported in bulk among the data (their stored form once broke Open311 and escalation)."""
    from citygrid.cases import history

    rows = "".join(f"{116.47 + i * 0.002},39.94,0102,历史{i},2025-0{i + 1}-01T09:00:00+08:00,"
                   f"{('accepted', 'dispatched', 'closed')[i % 3]},fuzz-{i}\n" for i in range(6))
    (tmp_path / "h.csv").write_text("lon,lat,class_code,description,reported_at,status,idempotency_key\n" + rows,
                                    encoding="utf-8")
    assert history.import_cases(bj, tmp_path / "h.csv").imported == 6

    def no_runner(case, answer) -> bool:
        """A valid upload reaches the background job runner, which the rolled-back test backend has not got
        (no engine): its 503 says so; any other 5xx is a failure."""
        return (answer.status_code == 503 and case.formatted_path == "/api/v1/imports"
                and "background imports" in answer.text)

    operations, failures = server_errors(client.application, "/api/v1/openapi.json",
                                         client.environ_base["HTTP_AUTHORIZATION"], EXAMPLES, no_runner)
    assert operations >= 30
    assert not failures, "\n".join(failures[:20])


INJECTIONS = ("' OR '1'='1", "1; DROP TABLE cases; --", "x' UNION SELECT password_hash FROM users --")
VALID = {"district": "110105", "lon": "116.48", "lat": "39.93", "q": "朝阳", "code": "110105", "fmt": "json",
         "layer": "unit_grids", "z": "12", "x": "3373", "y": "1551", "case_id": "1", "obj_id": "1101050118000001",
         "request_id": "1", "job_id": "00000000-0000-0000-0000-000000000000"}
ROW_LISTS = ("cases", "features", "entries", "results", "classes", "users", "areas")


def _rows(body) -> int:
    """How many records an answer holds (0 for an empty result of any of the API's list shapes)."""
    if isinstance(body, list):
        return len(body)
    if not isinstance(body, dict):
        return 0
    if "total" in body and isinstance(body["total"], int):
        return body["total"]
    return sum(len(body[k]) for k in ROW_LISTS if isinstance(body.get(k), list))


def test_sql_injection_in_every_filter_gets_a_4xx_or_nothing(client):
    """Each query parameter of each GET operation, with the others valid: never a 5xx, and never more rows
    than the same request answers with a value that matches nothing."""
    doc = client.get("/api/v1/openapi.json").get_json()
    probed = 0
    for path, item in doc["paths"].items():
        operation = item.get("get")
        if operation is None:
            continue
        url = path
        for name, value in VALID.items():
            url = url.replace("{" + name + "}", value)
        required = {p["name"]: VALID.get(p["name"], "1") for p in operation["parameters"]
                    if p["in"] == "query" and p.get("required")}
        for param in (p for p in operation["parameters"] if p["in"] == "query"):
            for payload in INJECTIONS:
                answer = client.get(url, query_string={**required, param["name"]: payload})
                probed += 1
                where = f"GET {url}?{param['name']}={payload!r}"
                assert answer.status_code < 500, f"{where} -> {answer.status_code}"
                if answer.status_code == 200 and answer.is_json:
                    matches_nothing = client.get(url, query_string={**required, param["name"]: "zz-no-such"})
                    baseline = _rows(matches_nothing.get_json()) if matches_nothing.status_code == 200 else 0
                    assert _rows(answer.get_json()) <= baseline, where
    assert probed > 200


NUL = "a\x00b"


def _refusal_names(answer, name: str) -> bool:
    """Whether a 400 names ``name`` (a detail's field, or its message) as a refusal of a bad value does; other
    4xx answers (no such object, not allowed) name no field."""
    if answer.status_code != 400:
        return True
    body = answer.get_json()
    return any(d.get("field") == name for d in body["details"]) or name in body["message"]


def test_a_nul_byte_in_any_parameter_or_body_field_is_a_4xx(client):
    """Every query parameter of every GET, and every property of every JSON request body, sent with a NUL
    byte (the others valid): a 4xx naming the field, never a 5xx (PostgreSQL refuses NUL in text)."""
    doc = client.get("/api/v1/openapi.json").get_json()
    probed = 0
    for path, item in doc["paths"].items():
        url = path
        for name, value in VALID.items():
            url = url.replace("{" + name + "}", value)
        for method, operation in item.items():
            if method not in ("get", "post"):
                continue
            required = {p["name"]: VALID.get(p["name"], "1") for p in operation.get("parameters", [])
                        if p["in"] == "query" and p.get("required")}
            for param in (p for p in operation.get("parameters", []) if p["in"] == "query"):
                answer = client.open(url, method=method.upper(), query_string={**required, param["name"]: NUL})
                probed += 1
                assert 400 <= answer.status_code < 500, f"{method} {url}?{param['name']}=NUL -> {answer.status_code}"
                assert _refusal_names(answer, param["name"]), (url, param["name"], answer.get_json())
            schema = (operation.get("requestBody", {}).get("content", {}).get("application/json", {})
                      .get("schema", {}))
            for prop in schema.get("properties", {}):
                answer = client.open(url, method=method.upper(), json={prop: NUL}, query_string=required)
                probed += 1
                assert 400 <= answer.status_code < 500, f"{method} {url} {{{prop}: NUL}} -> {answer.status_code}"
                assert _refusal_names(answer, prop), (url, prop, answer.get_json())
    assert probed > 80
