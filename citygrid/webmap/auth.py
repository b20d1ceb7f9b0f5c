"""Who may call what: every endpoint declares its roles (``allow``) or that it is ``public``; a request hook
authenticates (bearer token — or, on reads, HTTP Basic with an API token as the password, for desktop GIS
clients such as QGIS 3.22 that store only a user and a password —, else session cookie), answers 401 (not
signed in / bad credential) or 403 (signed in, role not allowed; or a session's unsafe request without its CSRF
token), and keeps the caller in ``g``.

An endpoint that declares nothing is refused to everyone but admins (deny by default; a test checks that every
endpoint declares). Pages redirect to ``/login`` instead of answering 401.

CSRF: bearer tokens are never sent by a browser on its own, so only cookie sessions need it. Every unsafe
request in a session must carry the session's token in ``X-CSRF-Token`` or a ``csrf_token`` form field; the
cookie is ``SameSite=Lax`` and ``HttpOnly`` besides. The login form uses a double-submit token (cookie + field).
"""

from __future__ import annotations

import base64
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlparse

from flask import Blueprint, Flask, Response, current_app, g, jsonify, redirect, render_template, request, url_for

from citygrid.accounts import service
from citygrid.accounts.roles import ANY_ROLE
from citygrid.accounts.service import Principal
from citygrid.errors import Forbidden, InvalidInput, RateLimited, Unauthorized
from citygrid.webmap.context import connection
from citygrid.webmap.headers import came_over_https, trusted_proxy
from citygrid.webmap.ratelimit import TokenBuckets, client_address

SESSION_COOKIE = "citygrid_session"
LOGIN_CSRF_COOKIE = "citygrid_login_csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOGIN_PER_MINUTE, LOGIN_BURST = 10.0, 10.0
LOGIN_ACCOUNT_PER_MINUTE, LOGIN_ACCOUNT_BURST = 3.0, 10.0  # failed sign-ins per account, from any address
_ACCESS = "citygrid_access"
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Access:
    roles: tuple[str, ...]
    public: bool = False
    page: bool = False


def allow(*roles: str, page: bool = False) -> Callable[[F], F]:
    """Declare the roles that may call a view (admins always may); ``page``: redirect to the login form."""
    unknown = set(roles) - set(ANY_ROLE)
    if unknown:
        raise ValueError(f"unknown roles {unknown}")

    def mark(view: F) -> F:
        setattr(view, _ACCESS, Access(roles=tuple(roles), page=page))
        return view
    return mark


def public(view: F) -> F:
    """Declare a view open to anyone (health, the OpenAPI document, the public Open311 intake, login)."""
    setattr(view, _ACCESS, Access(roles=(), public=True))
    return view


def access_of(view: Callable[..., Any] | None) -> Access | None:
    return getattr(view, _ACCESS, None)


def principal() -> Principal | None:
    """The signed-in caller of this request, if any."""
    return g.get("citygrid_principal")


def require_principal() -> Principal:
    who = principal()
    if who is None:
        raise Unauthorized("sign in first")
    return who


def require_home_district(district: str) -> Principal:
    """The signed-in caller, when it may act in ``district``: an admin, or an account not bound to another
    district (``district_code``); ``Forbidden`` otherwise. Every route that names a district asks this one
    question, so "an account that works in one district reads only that one" holds through every route."""
    who = require_principal()
    if "admin" not in who.roles and who.district_code is not None and who.district_code != district:
        raise Forbidden(f"{who.username} works in district {who.district_code}, not {district}")
    return who


def home_district_arg() -> str:
    """The required ``district`` query argument, refused (403) when the caller works in another district."""
    from citygrid.webmap.params import district_code

    district = district_code(request.args.get("district"))
    require_home_district(district)
    return district


def _basic_token(value: str) -> tuple[str, str]:
    """(username, API token) of HTTP Basic credentials whose password is one of the user's API tokens: how a
    desktop GIS client that stores only a user and a password signs in (QGIS 3.22's OAPIF provider sends no
    other header: its "Basic" authentication configuration). ``Unauthorized`` when malformed."""
    try:
        username, colon, token = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        username, colon, token = "", "", ""
    if not colon or not username or not token:
        raise Unauthorized("send Basic credentials as base64 of '<username>:<API token>'")
    return username, token


def _credential() -> Principal | None:
    header = request.headers.get("Authorization")
    if header:
        scheme, _, token = header.partition(" ")
        # Basic (the password an API token) only for reads: a browser may resend Basic credentials on its own.
        if scheme.lower() == "basic" and request.method in SAFE_METHODS:
            username, token = _basic_token(token)
            with connection() as conn:
                who = service.principal_for_token(conn, token)
            if who.username != username:
                raise Unauthorized("the API token sent as the Basic password is not that user's")
            return who
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("send the API token as 'Authorization: Bearer <token>' (reads also take Basic "
                               "credentials: your username and an API token as the password)")
        with connection() as conn:
            return service.principal_for_token(conn, token.strip())
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        with connection() as conn:
            return service.principal_for_session(conn, cookie)
    return None


def _check_csrf(who: Principal) -> None:
    sent = request.headers.get("X-CSRF-Token") or (request.form.get("csrf_token") if request.form else None)
    if not sent or not who.csrf_token or not hmac.compare_digest(sent, who.csrf_token):
        raise Forbidden("this request needs the session's CSRF token (X-CSRF-Token header or csrf_token field)")


def _authorize() -> Response | None:
    endpoint = request.endpoint
    if endpoint is None:
        return None  # Flask answers 404/405 itself
    if endpoint == "static" or endpoint.endswith(".static"):
        return None
    access = access_of(current_app.view_functions.get(endpoint)) or Access(roles=("admin",))
    if access.public:
        return None
    who = _credential()
    if who is None:
        if access.page:
            return redirect(url_for("auth.login_page", next=request.full_path.rstrip("?")))
        raise Unauthorized("sign in: send 'Authorization: Bearer <token>' (citygrid users token NAME) or log in "
                           "at /login")
    if not who.has_any(access.roles):
        needs = ', '.join(access.roles) or 'admin'
        if access.page and request.method in SAFE_METHODS:  # a page: the message page, as a refused case page
            return refused_page(f"{who.username} ({', '.join(who.roles)}) may not open this page; it is for: "
                                f"{needs}")
        raise Forbidden(f"{who.username} ({', '.join(who.roles)}) may not do this; it needs one of: {needs}")
    if who.via == "session" and request.method not in SAFE_METHODS:
        _check_csrf(who)
    g.citygrid_principal = who
    return None


def refused_page(message: str, status: int = 403, back: str = "/") -> Response:
    """A plain page (no map, no script) saying why a page is not shown to the signed-in account."""
    html = render_template("message.html", message=message, status=status, back=back)
    return Response(html, status=status, mimetype="text/html")


def actor_name() -> str | None:
    """The name the audit log and case events record for this request's writes."""
    who = principal()
    return who.username if who else None


bp = Blueprint("auth", __name__, template_folder="templates")


def _safe_next(target: str | None) -> str:
    """Only a path on this server (no scheme, no host, no '//' trick): no open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parsed = urlparse(target)
    return target if not parsed.scheme and not parsed.netloc else "/"


def _login_form(message: str = "", status: int = 200) -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    html = render_template("login.html", message=message, csrf_token=token,
                           next=_safe_next(request.values.get("next")))
    response = Response(html, status=status, mimetype="text/html")
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="Strict", secure=came_over_https(),
                        path="/login")
    return response


@bp.get("/login")
@public
def login_page():
    return _login_form()


@bp.post("/login")
@public
def login():
    """Form (``username``, ``password``, ``csrf_token``, ``next``) → session cookie and redirect; or JSON
    ``{"username", "password"}`` → ``{"user", "csrf_token"}`` with the cookie. 401 for a wrong password,
    429 (with ``Retry-After``) after too many failed attempts from one address or on one account."""
    buckets: TokenBuckets | DatabaseBuckets = current_app.extensions["citygrid_login_buckets"]
    address = client_address(request.remote_addr, request.headers.get("X-Forwarded-For"), trusted_proxy())
    as_json = request.is_json
    if as_json:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise InvalidInput("the body must be a JSON object with username and password", field="body")
    else:
        data = request.form
        sent, expected = data.get("csrf_token") or "", request.cookies.get(LOGIN_CSRF_COOKIE) or ""
        if not sent or not expected or not hmac.compare_digest(sent, expected):
            return _login_form("The form expired; please sign in again.", 403)
    username, password = str(data.get("username") or "").strip().lower(), str(data.get("password") or "")
    # Charged before the password is checked (and given back when it is right): concurrent attempts cannot
    # all pass an almost empty bucket during the 0.2 s of Argon2.
    _charge_login(buckets, address, username)
    try:
        with connection() as conn:
            secret, who = service.login(conn, username, password)
    except Unauthorized:
        if as_json:
            raise
        return _login_form("Wrong username or password.", 401)
    for key, burst in ((f"login:{address}", LOGIN_BURST), (_account_key(username), LOGIN_ACCOUNT_BURST)):
        buckets.give_back(key, burst)
    response = (jsonify({"user": _user_json(who), "csrf_token": who.csrf_token}) if as_json
                else redirect(_safe_next(data.get("next"))))
    response.set_cookie(SESSION_COOKIE, secret, httponly=True, samesite="Lax", secure=came_over_https(),
                        max_age=int(service.SESSION_HOURS * 3600))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login", secure=came_over_https(), httponly=True,
                           samesite="Strict")
    return response


def _account_key(username: str) -> str:
    return f"login-account:{username[:64]}"  # bounded: a huge name cannot bloat the buckets


def _charge_login(buckets: TokenBuckets | DatabaseBuckets, address: str, username: str) -> None:
    """Charge a sign-in attempt to its address (``LOGIN_BURST``, then ``LOGIN_PER_MINUTE``) and to the account
    it names (``LOGIN_ACCOUNT_BURST``, then ``LOGIN_ACCOUNT_PER_MINUTE``), so that many addresses cannot try
    many passwords on one account. Token buckets: an account under attack is refused for a minute or so, never
    for good; a successful sign-in is given its tokens back. ``RateLimited`` when either is empty (then the
    address is not charged either)."""
    buckets.take(f"login:{address}", LOGIN_PER_MINUTE, LOGIN_BURST)
    try:
        buckets.take(_account_key(username), LOGIN_ACCOUNT_PER_MINUTE, LOGIN_ACCOUNT_BURST)
    except RateLimited as exc:
        buckets.give_back(f"login:{address}", LOGIN_BURST)
        raise RateLimited(f"too many failed sign-ins to this account: at most {LOGIN_ACCOUNT_PER_MINUTE:g} a "
                          f"minute; try again in {exc.retry_after_s:.0f} s", retry_after_s=exc.retry_after_s) from None


class DatabaseBuckets:
    """The sign-in buckets kept in the database (``accounts.service.charge_login``), shared by every process
    of every server, each charge in a transaction of its own (it stands when the sign-in fails). The same
    ``take``/``give_back`` as ``ratelimit.TokenBuckets``, which tests put in its place to control the clock."""

    def take(self, client: str, per_minute: float, burst: float) -> None:
        with connection() as conn:
            service.charge_login(conn, client, per_minute, burst)

    def give_back(self, client: str, burst: float) -> None:
        with connection() as conn:
            service.refund_login(conn, client, burst)


@bp.post("/logout")
@allow(*ANY_ROLE)
def logout():
    """End this session (needs its CSRF token like every unsafe session request)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        with connection() as conn:
            service.logout(conn, cookie)
    response = redirect(url_for("auth.login_page")) if not request.is_json else jsonify({"signed_out": True})
    response.delete_cookie(SESSION_COOKIE, secure=came_over_https(), httponly=True, samesite="Lax")
    return response


def _user_json(who: Principal) -> dict[str, Any]:
    return {"username": who.username, "roles": list(who.roles), "district": who.district_code,
            "team": who.team_code, "via": who.via}


@bp.get("/api/v1/me")
@allow(*ANY_ROLE)
def me():
    """The signed-in user, and the session's CSRF token for pages that write."""
    who = require_principal()
    return jsonify({"user": _user_json(who), "csrf_token": who.csrf_token})


def install(app: Flask) -> None:
    """Register the login routes and the access check of every request."""
    app.extensions["citygrid_login_buckets"] = DatabaseBuckets()
    app.before_request(_authorize)
    app.register_blueprint(bp)
