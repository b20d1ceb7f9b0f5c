"""Security headers on every response: a Content-Security-Policy, ``nosniff``, no framing, a same-origin referrer,
and ``Secure`` on every cookie when the request came over HTTPS.

A map page runs only its own files (``script-src 'self'``) plus the inline scripts and styles Folium writes, each
allowed by its SHA-256 hash (``folium_pages.inline_hashes``: the hashes come from a render without any page data,
so stored text can never add one); the page sets that policy itself (``page_policy``). Any other HTML (the login
form, a redirect) gets the same policy with no inline code allowed; everything else (JSON, tiles, PNG, CSV) gets
``default-src 'none'``: nothing in it may run or load anything.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from html.parser import HTMLParser
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, request

CSP = "Content-Security-Policy"
API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
_JS_TYPES = frozenset({"", "text/javascript", "application/javascript", "module"})
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # for browsers without CSP frame-ancestors
    "Referrer-Policy": "same-origin",  # page paths (case ids, grid codes) stay on this server
}


def csp_hash(text: str) -> str:
    """The CSP source of an inline script or style: ``'sha256-<base64>'`` of its exact text (UTF-8)."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


class _Inline(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.found: dict[str, list[str]] = {"script": [], "style": []}
        self._open: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "style" or (tag == "script" and "src" not in named
                              and (named.get("type") or "").strip().lower() in _JS_TYPES):
            self._open, self._text = tag, []

    def handle_data(self, data: str) -> None:
        if self._open:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._open == tag:
            self.found[tag].append("".join(self._text))
            self._open = None


def inline_code(html: str) -> dict[str, list[str]]:
    """The text of each inline script that a browser would run (no ``src``, a JavaScript type) and of each
    ``<style>`` element of ``html``: ``{"script": [...], "style": [...]}``."""
    parser = _Inline()
    parser.feed(html)
    parser.close()
    return parser.found


def basemap_source(url: str | None) -> str | None:
    """The CSP source of an XYZ basemap template (``Settings.basemap['url']``): its origin, with a templated
    first host label (``{s}.tile.example.org``) as ``*``; None for a site-relative one ('self' covers it)."""
    if not url or url.startswith("/"):
        return None
    parts = urlsplit(url)
    host = parts.netloc
    first, dot, rest = host.partition(".")
    if "{" in first and dot:
        host = "*." + rest
    if "{" in host or "}" in host or not host:
        return f"{parts.scheme}:"  # a host templated elsewhere: the scheme is all a CSP source can name
    return f"{parts.scheme}://{host}"


def page_policy(scripts: Iterable[str] = (), styles: Iterable[str] = (), basemap_url: str | None = None) -> str:
    """The Content-Security-Policy of an HTML page.

    Parameters
    ----------
    scripts, styles : CSP hash sources (``csp_hash``) of the page's inline scripts and ``<style>`` elements.
    basemap_url : the configured XYZ basemap template, whose origin may then serve images.

    Returns
    -------
    The header value: own files and the hashed inline code only; images also from ``data:`` and ``blob:``
    (Leaflet's and VectorGrid's own); fetches to this server only; no plugins, no ``<base>``, forms to this
    server, never framed.
    """
    images = " ".join(filter(None, ("'self' data: blob:", basemap_source(basemap_url))))
    return "; ".join((
        "default-src 'self'",
        " ".join(("script-src 'self'", *sorted(set(scripts)))),
        # No 'unsafe-inline': Folium's <style> blocks are hashed, and Leaflet and the page scripts set styles
        # through the CSSOM (element.style), which style-src does not govern; no markup carries style="".
        " ".join(("style-src 'self'", *sorted(set(styles)))),
        f"img-src {images}",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ))


def trusted_proxy() -> str | None:
    """The address of the reverse proxy in front of this app, as its settings say (``Settings.trusted_proxy``,
    ``$CITYGRID_TRUSTED_PROXY`` when the app was built), or None."""
    return current_app.config["CITYGRID_SETTINGS"].trusted_proxy


def came_over_https() -> bool:
    """Whether this request reached us over HTTPS: directly, or through the trusted proxy (``trusted_proxy``)
    saying so in ``X-Forwarded-Proto``."""
    if request.is_secure:
        return True
    proxy = trusted_proxy()
    forwarded = (request.headers.get("X-Forwarded-Proto") or "").split(",")[-1].strip().lower()
    return bool(proxy) and request.remote_addr == proxy and forwarded == "https"


def _secure_cookies(response: Response) -> None:
    """Mark every cookie of the response ``Secure`` (whoever set it, and however)."""
    cookies = response.headers.getlist("Set-Cookie")
    if not cookies:
        return
    response.headers.remove("Set-Cookie")
    for cookie in cookies:
        secure = any(part.strip().lower() == "secure" for part in cookie.split(";")[1:])
        response.headers.add("Set-Cookie", cookie if secure else cookie + "; Secure")


def add_security_headers(response: Response) -> Response:
    """``after_request`` hook: the headers above, unless the view set its own policy (a map page does)."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if CSP not in response.headers:
        response.headers[CSP] = page_policy() if response.mimetype == "text/html" else API_POLICY
    if came_over_https():
        _secure_cookies(response)
    return response


def install(app: Flask) -> None:
    """Add the security headers to every response of ``app``."""
    app.after_request(add_security_headers)
