"""Per-client rate limits for the public intake (Open311): a token bucket per client key.

A client is its API key when it sends a known one (``api_key``, as Open311 names it), else its address. Keys
and their limits come from the app's settings (``Settings.open311_keys``, ``$CITYGRID_OPEN311_KEYS``: ``key:per_minute``
pairs separated by commas, parsed once when the app is built); anonymous
clients get ``ANONYMOUS_PER_MINUTE`` with a burst of ``ANONYMOUS_BURST``. An unknown key is refused (403), so a
typo does not silently fall back to the anonymous limit.

The buckets live in each server process: with N gunicorn workers a client can get up to N times the limit in
the worst case. A deployment behind a reverse proxy should limit there too (the proxy sees every request);
the client address is the socket's peer unless the settings' trusted proxy (``$CITYGRID_TRUSTED_PROXY``) names
the proxy's address, in which case the last address of ``X-Forwarded-For`` is used.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from citygrid.errors import Forbidden, InvalidInput, RateLimited

ANONYMOUS_PER_MINUTE = 30.0
ANONYMOUS_BURST = 10.0
MAX_CLIENTS = 100_000


@dataclass
class Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """Buckets by client key: ``per_minute`` tokens a minute, at most ``burst`` saved; thread-safe; the least
    recently seen clients are forgotten beyond ``max_clients``. ``clock`` is injectable for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_clients: int = MAX_CLIENTS) -> None:
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, client: str, per_minute: float, burst: float, spend: bool = True) -> None:
        """Spend one token of ``client``'s bucket (``spend`` False: only check there is one); ``RateLimited``
        (with the wait) when it is empty."""
        now = self.clock()
        rate = per_minute / 60.0
        with self._lock:
            bucket = self._buckets.pop(client, None) or Bucket(tokens=burst, updated=now)
            bucket.tokens = min(burst, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            self._buckets[client] = bucket
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
            if bucket.tokens < 1.0:
                wait = (1.0 - bucket.tokens) / rate
                raise RateLimited(f"too many requests from this client: at most {per_minute:g} a minute; "
                                  f"try again in {wait:.0f} s", retry_after_s=wait)
            if spend:
                bucket.tokens -= 1.0


    def give_back(self, client: str, burst: float) -> None:
        """Return one token to ``client``'s bucket (at most ``burst``): a charged request that turned out free."""
        with self._lock:
            bucket = self._buckets.get(client)
            if bucket is not None:
                bucket.tokens = min(burst, bucket.tokens + 1.0)


def parse_keys(text: str) -> dict[str, float]:
    """``key:per_minute,key2:per_minute`` → {key: per_minute}; ``InvalidInput`` on a malformed entry."""
    keys: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, _, limit = item.partition(":")
        try:
            value = float(limit)
        except ValueError:
            value = -1.0
        if len(key) < 16 or not 0 < value <= 100_000:
            raise InvalidInput(f"CITYGRID_OPEN311_KEYS entry {item[:8]}…: a key of 16+ characters and a limit "
                               "per minute in (0, 100000] are required", field="CITYGRID_OPEN311_KEYS")
        keys[key] = value
    return keys


def client_address(remote_addr: str | None, forwarded_for: str | None, trusted_proxy: str | None) -> str:
    """The client's address: the socket peer, or the last ``X-Forwarded-For`` hop when the peer is
    ``trusted_proxy`` (``Settings.trusted_proxy``; None: no proxy is trusted)."""
    address = remote_addr or "unknown"
    if trusted_proxy and address == trusted_proxy and forwarded_for:
        address = forwarded_for.split(",")[-1].strip() or address
    return address


def proxy_warning(host: str, trusted_proxy: str | None, *, prod: bool = False) -> str | None:
    """The start-up warning for a server that may sit behind a proxy nobody named; None when it needs none.

    Parameters
    ----------
    host : the address the server listens on (``--host``).
    trusted_proxy : ``Settings.trusted_proxy`` (``$CITYGRID_TRUSTED_PROXY``; None or empty: not set;
        ``config.NO_PROXY``: said to be none, so clients connect directly and there is nothing to warn of).
    prod : ``serve --prod`` (a deployment: a proxy in front is likely even on a loopback address).

    Returns
    -------
    The text to log when ``trusted_proxy`` is unset and the server is for production or listens beyond
    loopback, else None.

    Examples
    --------
    >>> proxy_warning("127.0.0.1", None) is None
    True
    >>> "one rate-limit bucket" in proxy_warning("0.0.0.0", None)
    True
    """
    if trusted_proxy:
        return None
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if loopback and not prod:
        return None
    return ("CITYGRID_TRUSTED_PROXY is not set: behind a reverse proxy every client has the proxy's address, so "
            "all of them share one rate-limit bucket (sign-in attempts, the Open311 intake) and one client's "
            "failed sign-ins lock everyone out. Set it to the proxy's address (its X-Forwarded-For is then "
            "trusted), or ignore this when clients connect directly.")


def check_intake(remote_addr: str | None, forwarded_for: str | None, api_key: str | None,
                 buckets: TokenBuckets, keys: dict[str, float], trusted_proxy: str | None = None) -> str:
    """Charge one public intake request to its client; returns the client key. ``keys`` are the API keys and
    their limits per minute (``parse_keys``), ``trusted_proxy`` the proxy whose ``X-Forwarded-For`` counts.
    ``Forbidden`` for an unknown API key, ``RateLimited`` over the limit."""
    if api_key:
        if api_key not in keys:
            raise Forbidden("unknown api_key")
        buckets.take(f"key:{api_key}", keys[api_key], max(ANONYMOUS_BURST, keys[api_key] / 6))
        return f"key:{api_key[:4]}…"
    address = client_address(remote_addr, forwarded_for, trusted_proxy)
    buckets.take(f"addr:{address}", ANONYMOUS_PER_MINUTE, ANONYMOUS_BURST)
    return f"addr:{address}"
