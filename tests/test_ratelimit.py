"""Per-client limits of the public intake: token buckets (with a fake clock), API keys, 429 with Retry-After."""

from __future__ import annotations

import pytest

from citygrid.errors import Forbidden, InvalidInput, RateLimited
from citygrid.webmap.ratelimit import ANONYMOUS_BURST, TokenBuckets, check_intake, parse_keys, proxy_warning
from tests.conftest import assert_error

KEY = "k" * 20


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_the_rate():
    clock = Clock()
    buckets = TokenBuckets(clock=clock)
    for _ in range(5):
        buckets.take("a", per_minute=60, burst=5)
    with pytest.raises(RateLimited) as refused:
        buckets.take("a", per_minute=60, burst=5)
    assert 0 < refused.value.retry_after_s <= 1.0
    buckets.take("b", per_minute=60, burst=5)  # another client is not affected
    clock.now += 1.0  # one token a second comes back
    buckets.take("a", per_minute=60, burst=5)
    with pytest.raises(RateLimited):
        buckets.take("a", per_minute=60, burst=5)


def test_forgotten_clients_are_bounded():
    buckets = TokenBuckets(max_clients=3)
    for name in "abcde":
        buckets.take(name, 60, 5)
    assert list(buckets._buckets) == ["c", "d", "e"]


def test_api_keys_get_their_own_limit_and_unknown_keys_are_refused():
    buckets = TokenBuckets(clock=Clock())
    keys = {KEY: 600.0}
    for _ in range(50):
        check_intake("10.0.0.1", None, KEY, buckets, keys)
    with pytest.raises(Forbidden):
        check_intake("10.0.0.1", None, "x" * 20, buckets, keys)
    for _ in range(int(ANONYMOUS_BURST)):
        check_intake("10.0.0.1", None, None, buckets, keys)
    with pytest.raises(RateLimited):
        check_intake("10.0.0.1", None, None, buckets, keys)


def test_forwarded_for_counts_only_behind_the_trusted_proxy():
    buckets = TokenBuckets(clock=Clock())
    for _ in range(int(ANONYMOUS_BURST)):
        check_intake("10.0.0.9", "1.2.3.4", None, buckets, {})
    with pytest.raises(RateLimited):  # not trusted: the header is ignored, the proxy address is the client
        check_intake("10.0.0.9", "5.6.7.8", None, buckets, {})
    with pytest.raises(RateLimited):  # another proxy trusted: still the peer's address
        check_intake("10.0.0.9", "5.6.7.8", None, buckets, {}, trusted_proxy="10.0.0.8")
    with pytest.raises(RateLimited):  # no proxy, said so (CITYGRID_TRUSTED_PROXY=none): the header is ignored
        check_intake("10.0.0.9", "5.6.7.8", None, buckets, {}, trusted_proxy="none")
    assert check_intake("10.0.0.9", "spoofed, 5.6.7.8", None, buckets, {}, trusted_proxy="10.0.0.9") == \
        "addr:5.6.7.8"


@pytest.mark.parametrize(("host", "proxy", "prod", "warned"), [
    ("127.0.0.1", None, False, False), ("::1", "", False, False), ("localhost", None, False, False),
    ("0.0.0.0", None, False, True), ("::", None, False, True), ("192.168.1.5", None, False, True),
    ("citygrid.example", None, False, True), ("127.0.0.1", None, True, True), ("0.0.0.0", "10.0.0.9", True, False),
    ("127.0.0.1", "none", True, False),  # make demo: no proxy, said so
])
def test_start_up_warns_that_clients_behind_an_unnamed_proxy_share_one_bucket(host, proxy, prod, warned):
    text = proxy_warning(host, proxy, prod=prod)
    assert (text is not None) == warned
    if warned:
        assert "CITYGRID_TRUSTED_PROXY" in text and "share one rate-limit bucket" in text


def test_serve_prints_the_proxy_warning(monkeypatch):
    from click.testing import CliRunner

    from citygrid import cli as cli_module

    monkeypatch.delenv("CITYGRID_TRUSTED_PROXY", raising=False)
    monkeypatch.setattr("citygrid.deploy.ensure_server", lambda settings: None)
    monkeypatch.setattr("citygrid.app.create_app", lambda config: type("App", (), {"run": lambda *a, **k: None})())
    # the app is a stand-in, so no database is read: neither is the list of demo accounts serve may offer
    monkeypatch.setattr("citygrid.deploy.demo_accounts", lambda settings: [])
    result = CliRunner().invoke(cli_module.cli, ["--database", "citygrid_nowhere", "serve", "--host", "0.0.0.0"])
    assert result.exit_code == 0, result.output
    assert "warning: CITYGRID_TRUSTED_PROXY is not set" in result.stderr
    monkeypatch.setenv("CITYGRID_TRUSTED_PROXY", "10.0.0.9")
    quiet = CliRunner().invoke(cli_module.cli, ["--database", "citygrid_nowhere", "serve", "--host", "0.0.0.0"])
    assert quiet.exit_code == 0 and "warning" not in quiet.stderr


@pytest.mark.parametrize("text", ["short:10", f"{KEY}:0", f"{KEY}:lots", f"{KEY}:1e9"])
def test_bad_key_configuration(text):
    with pytest.raises(InvalidInput):
        parse_keys(text)


def test_open311_post_answers_429_with_retry_after(client):
    form = {"service_code": "E0102", "lat": "39.93", "long": "116.48", "description": "垃圾"}
    answers = [client.post("/open311/v2/requests.json", data={**form, "lat": str(39.93 + i * 0.001)})
               for i in range(int(ANONYMOUS_BURST) + 1)]
    assert all(a.status_code in (200, 201) for a in answers[:-1])
    assert answers[-1].status_code == 429 and int(answers[-1].headers["Retry-After"]) >= 1
    assert answers[-1].get_json()["error"] == "rate_limited"
    unknown = client.post("/open311/v2/requests.json", data={**form, "api_key": "y" * 20})
    assert_error(unknown, 403, "forbidden", reason="unknown api_key")
