"""Security headers (issue #18): a Content-Security-Policy on every response (map pages: their own files plus the
hashes of exactly the inline code Folium writes; JSON and the rest: ``default-src 'none'``), ``nosniff``, no
framing, a same-origin referrer, and ``Secure`` cookies whenever the request came over HTTPS."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import replace

import pytest
from bs4 import BeautifulSoup
from flask import Response

from citygrid.accounts import service as accounts
from citygrid.app import create_app
from citygrid.config import Settings
from citygrid.webmap.folium_pages import inline_hashes
from citygrid.webmap.headers import API_POLICY, add_security_headers, basemap_source, page_policy
from tests.conftest import rollback_backend, signed_in, user_token

PASSWORD = "correct horse battery"
PAGES = ("/", "/caseload", "/cases", "/editor", "/hotspots")
COMMON = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin"}


def directives(policy: str) -> dict[str, list[str]]:
    parsed = {}
    for part in filter(None, (p.strip() for p in policy.split(";"))):
        name, *sources = part.split()
        parsed[name] = sources
    return parsed


def sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def assert_common_headers(answer) -> None:
    for name, value in COMMON.items():
        assert answer.headers.get(name) == value, (answer.request.path, name)


@pytest.mark.parametrize("path", PAGES)
def test_each_page_allows_exactly_its_inline_code(client, path):
    answer = client.get(path)
    assert answer.status_code == 200 and answer.mimetype == "text/html"
    assert_common_headers(answer)
    policy = directives(answer.headers["Content-Security-Policy"])
    assert policy["frame-ancestors"] == ["'none'"] and policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"] and policy["form-action"] == ["'self'"]
    assert policy["connect-src"] == ["'self'"] and policy["default-src"] == ["'self'"]
    assert policy["img-src"] == ["'self'", "data:", "blob:"]  # no basemap configured
    for directive in ("script-src", "style-src"):
        assert policy[directive][0] == "'self'"
        assert not {"'unsafe-inline'", "'unsafe-eval'", "*", "data:"} & set(policy[directive])
    soup = BeautifulSoup(answer.get_data(as_text=True), "html.parser")
    scripts = [s for s in soup.find_all("script") if not s.get("src")
               and (s.get("type") or "text/javascript") == "text/javascript"]
    styles = soup.find_all("style")
    assert scripts and styles  # Folium's: without their hashes the map would not start
    assert {sha256_source(s.string or "") for s in scripts} == set(policy["script-src"][1:])
    assert {sha256_source(s.string or "") for s in styles} == set(policy["style-src"][1:])
    assert not soup.find_all(style=True)  # no style="" attribute (the policy allows none)
    assert soup.find("script", id="cg-data")["type"] == "application/json"  # data, not code: no hash needed
    # the hashes come from the map alone, not from the page with its stored text
    assert set(policy["script-src"][1:]) == set(inline_hashes()["scripts"])


def test_the_page_policy_names_the_configured_basemap(bj, beijing_db):
    """The basemap is the app's setting (read once, when the settings were made), not the environment's now."""
    settings = replace(Settings.from_env(), basemap_url="https://{s}.tiles.example.org/{z}/{x}/{y}.png")
    app = create_app({"CITYGRID_BACKEND": rollback_backend(bj, beijing_db.database or ""),
                      "CITYGRID_SETTINGS": settings, "TESTING": True})
    client = signed_in(app.test_client(), user_token(bj, "basemap-admin", ["admin"]))
    policy = directives(client.get("/").headers["Content-Security-Policy"])
    assert policy["img-src"] == ["'self'", "data:", "blob:", "https://*.tiles.example.org"]
    assert policy["connect-src"] == ["'self'"]


@pytest.mark.parametrize(("url", "source"), [
    (None, None), ("/tiles/base/{z}/{x}/{y}.png", None),
    ("https://tiles.example.org/{z}/{x}/{y}.png", "https://tiles.example.org"),
    ("http://10.1.2.3:8080/wmts/{z}/{x}/{y}", "http://10.1.2.3:8080"),
    ("https://{s}.tiles.example.org/{z}/{x}/{y}.png", "https://*.tiles.example.org"),
    ("https://t{s}.example.org/{z}/{x}/{y}.png", "https://*.example.org"),
    ("https://tiles.{s}.example.org/{z}/{x}/{y}.png", "https:"),
])
def test_basemap_source(url, source):
    assert basemap_source(url) == source


def test_api_and_other_responses_get_a_policy_that_allows_nothing(client, anonymous_client):
    for answer in (client.get("/api/v1/districts"), client.get("/healthz"), client.get("/api/v1/openapi.json"),
                   client.get("/api/v1/districts/999999"), anonymous_client.get("/api/v1/cases"),
                   client.get("/tiles/unit_grids/11/1686/775.mvt"), client.get("/static/common.js"),
                   client.post("/api/v1/cases", json={"lon": "x"})):
        assert answer.headers["Content-Security-Policy"] == API_POLICY, answer.request.path
        assert_common_headers(answer)
    assert directives(API_POLICY)["default-src"] == ["'none'"]
    assert directives(API_POLICY)["frame-ancestors"] == ["'none'"]


def test_the_login_form_and_redirects_allow_no_inline_code(anonymous_client):
    form = anonymous_client.get("/login")
    policy = directives(form.headers["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"] and policy["form-action"] == ["'self'"]
    soup = BeautifulSoup(form.get_data(as_text=True), "html.parser")
    assert not soup.find_all("script") and not soup.find_all("style") and not soup.find_all(style=True)
    assert soup.find("link", rel="stylesheet")["href"] == "/static/login.css"
    assert anonymous_client.get("/static/login.css").status_code == 200
    assert_common_headers(form)
    redirect = anonymous_client.get("/cases")
    assert redirect.status_code == 302 and "Content-Security-Policy" in redirect.headers
    assert_common_headers(redirect)


def cookies_of(answer) -> dict[str, str]:
    return {c.split("=", 1)[0]: c for c in answer.headers.getlist("Set-Cookie")}


def is_secure(cookie: str) -> bool:
    return any(part.strip().lower() == "secure" for part in cookie.split(";")[1:])


def _app_trusting(bj, beijing_db, proxy: str | None):
    """The app on the Beijing test database whose settings name ``proxy`` as the trusted one."""
    return create_app({"CITYGRID_BACKEND": rollback_backend(bj, beijing_db.database or ""), "TESTING": True,
                       "CITYGRID_SETTINGS": replace(beijing_db, trusted_proxy=proxy)})


def test_cookies_are_secure_over_https_only(bj, beijing_db, monkeypatch):
    # The app's settings, not the environment at request time, say which proxy is trusted.
    monkeypatch.setenv("CITYGRID_TRUSTED_PROXY", "10.9.9.9")
    app = _app_trusting(bj, beijing_db, None)
    accounts.add_user(bj, "cookie-user", ["analyst"], password=PASSWORD)
    body = {"username": "cookie-user", "password": PASSWORD}

    plain = app.test_client()
    assert not any(map(is_secure, cookies_of(plain.get("/login")).values()))
    assert not any(map(is_secure, cookies_of(plain.post("/login", json=body)).values()))

    https = app.test_client()
    form = cookies_of(https.get("/login", base_url="https://citygrid.example"))
    assert is_secure(form["citygrid_login_csrf"])
    signed_in = https.post("/login", json=body, base_url="https://citygrid.example")
    assert signed_in.status_code == 200 and is_secure(cookies_of(signed_in)["citygrid_session"])
    csrf = signed_in.get_json()["csrf_token"]
    out = https.post("/logout", json={}, headers={"X-CSRF-Token": csrf}, base_url="https://citygrid.example")
    assert out.status_code == 200 and is_secure(cookies_of(out)["citygrid_session"])

    untrusted = app.test_client().post("/login", json=body, environ_base={"REMOTE_ADDR": "10.9.9.9"},
                                       headers={"X-Forwarded-Proto": "https"})
    assert untrusted.status_code == 200 and not is_secure(cookies_of(untrusted)["citygrid_session"])

    # TLS ended at the trusted proxy: its X-Forwarded-Proto counts; anyone else's does not
    monkeypatch.delenv("CITYGRID_TRUSTED_PROXY")
    app = _app_trusting(bj, beijing_db, "10.9.9.9")
    proxied = app.test_client().post("/login", json=body, environ_base={"REMOTE_ADDR": "10.9.9.9"},
                                     headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"})
    assert is_secure(cookies_of(proxied)["citygrid_session"])
    spoofed = app.test_client().post("/login", json=body, environ_base={"REMOTE_ADDR": "192.0.2.8"},
                                     headers={"X-Forwarded-Proto": "https"})
    assert spoofed.status_code == 200 and not is_secure(cookies_of(spoofed)["citygrid_session"])


def test_any_cookie_set_over_https_is_made_secure(bj, beijing_db):
    app = create_app({"CITYGRID_BACKEND": rollback_backend(bj, beijing_db.database or ""), "TESTING": True})
    with app.test_request_context("/", base_url="https://citygrid.example"):
        response = Response("x")
        response.set_cookie("plain", "1")
        response.set_cookie("already", "2", secure=True)
        cookies = cookies_of(add_security_headers(response))
    assert is_secure(cookies["plain"]) and cookies["already"].lower().count("secure") == 1
    with app.test_request_context("/"):
        response = Response("x")
        response.set_cookie("plain", "1")
        assert not is_secure(cookies_of(add_security_headers(response))["plain"])


def test_page_policy_lists_each_hash_once():
    policy = directives(page_policy(scripts=["'sha256-b'", "'sha256-a'", "'sha256-a'"]))
    assert policy["script-src"] == ["'self'", "'sha256-a'", "'sha256-b'"] and policy["style-src"] == ["'self'"]
