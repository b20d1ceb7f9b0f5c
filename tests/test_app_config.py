"""The app's configuration (#20): read once, by ``Settings.from_env``, and passed in; an app built with settings
that differ from the environment uses its settings. And its JSON: text as it is, not ``\\u`` escapes."""

from __future__ import annotations

from dataclasses import replace

import pytest
import sqlalchemy as sa

from citygrid.app import create_app
from citygrid.config import Settings
from citygrid.errors import InvalidInput
from tests.conftest import rollback_backend, signed_in, user_token
from tests.test_cases import LAT, LON

KEY, OTHER_KEY = "settings-key-0123456789", "environment-key-0123456789"
OPEN311 = {"service_code": "E0102", "lat": str(LAT + 0.004), "long": str(LON + 0.004),
           "description": "路边垃圾", "address_string": "朝阳区某路"}


def app_with(bj, beijing_db: Settings, **settings):
    """The app on the Beijing test database (rolled back with the test) built with ``settings`` changed."""
    return create_app({"CITYGRID_BACKEND": rollback_backend(bj, beijing_db.database or ""), "TESTING": True,
                       "CITYGRID_SETTINGS": replace(beijing_db, **settings)})


def test_settings_are_read_from_the_environment_once(monkeypatch):
    monkeypatch.setenv("CITYGRID_TRUSTED_PROXY", "10.0.0.9")
    monkeypatch.setenv("CITYGRID_OPEN311_KEYS", f"{KEY}:60")
    monkeypatch.setenv("CITYGRID_UPLOAD_GRACE_S", "5")
    monkeypatch.setenv("CITYGRID_UPLOAD_MIN_BYTES_PER_S", "-1")  # not a positive number: the default
    settings = Settings.from_env()
    assert (settings.trusted_proxy, settings.open311_keys) == ("10.0.0.9", f"{KEY}:60")
    assert (settings.upload_grace_s, settings.upload_min_bytes_per_s) == (5.0, 64 * 1024.0)
    monkeypatch.delenv("CITYGRID_TRUSTED_PROXY")
    assert Settings.from_env().trusted_proxy is None


def test_the_app_keeps_the_settings_it_was_built_with(bj, beijing_db, monkeypatch):
    monkeypatch.setenv("CITYGRID_TRUSTED_PROXY", "10.0.0.9")
    app = app_with(bj, beijing_db, trusted_proxy="10.1.1.1")
    assert app.config["CITYGRID_SETTINGS"].trusted_proxy == "10.1.1.1"
    built_from_env = create_app({"CITYGRID_BACKEND": rollback_backend(bj, beijing_db.database or "")})
    assert built_from_env.config["CITYGRID_SETTINGS"].trusted_proxy == "10.0.0.9"


def test_open311_keys_come_from_the_apps_settings(bj, beijing_db, monkeypatch):
    monkeypatch.setenv("CITYGRID_OPEN311_KEYS", f"{OTHER_KEY}:600")
    client = app_with(bj, beijing_db, open311_keys=f"{KEY}:600").test_client()
    taken = client.post("/open311/v2/requests.json", data={**OPEN311, "api_key": KEY})
    assert taken.status_code == 201, taken.get_json()
    refused = client.post("/open311/v2/requests.json", data={**OPEN311, "api_key": OTHER_KEY})
    assert refused.status_code == 403 and refused.get_json()["error"] == "forbidden"


def test_malformed_open311_keys_stop_the_app_at_start(bj, beijing_db):
    with pytest.raises(InvalidInput) as err:
        app_with(bj, beijing_db, open311_keys="short:10")
    assert err.value.details[0]["field"] == "CITYGRID_OPEN311_KEYS"


def test_the_intake_limit_counts_forwarded_addresses_only_behind_the_settings_proxy(bj, beijing_db, monkeypatch):
    """Anonymous clients share nothing when the proxy is trusted: each forwarded address has its own bucket."""
    monkeypatch.delenv("CITYGRID_TRUSTED_PROXY", raising=False)
    trusting = app_with(bj, beijing_db, trusted_proxy="10.9.9.9")
    buckets = trusting.extensions["citygrid_intake_buckets"]
    answer = trusting.test_client().post("/open311/v2/requests.json", data=OPEN311,
                                         environ_base={"REMOTE_ADDR": "10.9.9.9"},
                                         headers={"X-Forwarded-For": "198.51.100.7"})
    assert answer.status_code == 201 and list(buckets._buckets) == ["addr:198.51.100.7"]
    untrusting = app_with(bj, beijing_db)
    untrusting.test_client().post("/open311/v2/requests.json", data=OPEN311, environ_base={"REMOTE_ADDR": "10.9.9.9"},
                                  headers={"X-Forwarded-For": "198.51.100.7"})
    assert list(untrusting.extensions["citygrid_intake_buckets"]._buckets) == ["addr:10.9.9.9"]


def test_json_is_served_with_chinese_text_unescaped(bj, beijing_db):
    client = signed_in(app_with(bj, beijing_db).test_client(), user_token(bj, "json-reader", ["analyst"]))
    answer = client.get("/api/v1/districts")
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    assert "朝阳区".encode() in answer.data and b"\\u" not in answer.data
    assert any(d["name"] == "朝阳区" for d in answer.get_json()["districts"])


def test_lists_and_tiles_use_the_storage_crs_read_once_not_a_read_per_request(bj, beijing_db):
    # The deployment's CRS never changes: the app reads it once; a case list, Open311's list and a tile ask no
    # more of it (each such read was a round trip of its own: 0.19 ms of a 2.8 ms list request).
    client = signed_in(app_with(bj, beijing_db).test_client(), user_token(bj, "list-reader", ["analyst"]))
    for path in ("/api/v1/cases?limit=5", "/open311/v2/requests.json", "/tiles/unit_grids/12/3373/1551.mvt"):
        assert client.get(path).status_code in (200, 204), path  # the first request reads the deployment once
        seen: list[str] = []

        def record(conn, cursor, statement, *rest, seen=seen):
            seen.append(statement)

        sa.event.listen(bj, "before_cursor_execute", record)
        try:
            assert client.get(path).status_code in (200, 204), path
        finally:
            sa.event.remove(bj, "before_cursor_execute", record)
        assert seen and not [s for s in seen if "FROM deployment" in s], path
