"""Every operation of the published OpenAPI document, fuzzed by schemathesis (property-based requests that
follow the schema, and malformed ones): no answer may be a server error. Runs against the rolled-back test
database, so generated writes leave nothing behind."""

from __future__ import annotations

import re

import schemathesis
from hypothesis import HealthCheck, given, settings

EXAMPLES = 30


def test_the_document_is_served_and_names_every_blueprint_route(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.") and len(doc["paths"]) >= 30
    routes = {re.sub(r"<[^>]*>", "<>", str(rule)) for rule in client.application.url_map.iter_rules()}
    for path in doc["paths"]:
        assert re.sub(r"{[^}]*}", "<>", path) in routes, path


def test_no_request_gets_a_server_error(client):
    api = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", client.application)
    failures: list[str] = []
    operations = 0
    for result in api.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def probe(case) -> None:
            response = case.call()
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {case.query} -> {response.status_code}: "
                                f"{response.text[:200]}")

        probe()
    assert operations >= 30
    assert not failures, "\n".join(failures[:20])
