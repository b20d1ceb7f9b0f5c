"""Accounts: add and disable users, passwords, API tokens and web sessions; who is calling (``Principal``).

Tokens and session ids are 256-bit random secrets handed out once and stored only as SHA-256 digests (a fast
digest suffices for high-entropy secrets; passwords get Argon2id). Disabling a user ends their sessions and makes
their tokens unusable at once: every request looks its credential up. A password change ends their sessions and
revokes their tokens.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from citygrid import codes
from citygrid.accounts import passwords, store
from citygrid.accounts.roles import ROLES
from citygrid.errors import Conflict, InvalidInput, NotFound, RateLimited, Unauthorized
from citygrid.responsibility import people

SESSION_HOURS = 12.0
TOKEN_PREFIX = "cg_"
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")


@dataclass(frozen=True)
class Principal:
    """Who is calling: a signed-in user (``via`` session or token)."""

    user_id: int
    username: str
    roles: tuple[str, ...]
    district_code: str | None
    team_code: str | None
    via: str
    csrf_token: str | None = None
    party_code: str | None = None  # a unit account's party (``parties.code`` in ``district_code``)

    def has_any(self, roles: tuple[str, ...]) -> bool:
        return "admin" in self.roles or any(r in roles for r in self.roles)

    @property
    def supervisor_only(self) -> bool:
        """A supervisor with no role that sees beyond their own grids (scoped to their team)."""
        return "supervisor" in self.roles and not set(self.roles) & {"admin", "dispatcher", "analyst", "planner",
                                                                     "acceptor", "calltaker", "lead"}

    @property
    def unit_only(self) -> bool:
        """A unit operator with no role that sees beyond their party's cases (scoped to their party)."""
        return "unit" in self.roles and not set(self.roles) & {"admin", "dispatcher", "analyst", "acceptor",
                                                               "calltaker", "lead"}


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _principal(row: dict[str, Any], via: str) -> Principal:
    return Principal(user_id=row["user_id"], username=row["username"], roles=tuple(row["roles"]),
                     district_code=row["district_code"], team_code=row["team_code"], via=via,
                     csrf_token=row.get("csrf_token"), party_code=row.get("party_code"))


def parse_roles(text: str | list[str]) -> list[str]:
    """Roles from ``"planner,gis"`` or a list; ``InvalidInput`` names an unknown one."""
    roles = [r.strip() for r in (text.split(",") if isinstance(text, str) else text) if r and r.strip()]
    if not roles:
        raise InvalidInput(f"give at least one role of {', '.join(ROLES)}", field="roles")
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise InvalidInput(f"unknown role {unknown[0]!r}; roles: {', '.join(ROLES)}", field="roles")
    return list(dict.fromkeys(roles))


def add_user(conn: Connection, username: str, roles: list[str], *, password: str | None = None,
             display_name: str = "", district: str | None = None, team: str | None = None,
             party: str | None = None) -> dict[str, Any]:
    """Create a user. A supervisor needs their supervision ``team`` (their own grids), a unit operator the
    ``party`` (``parties.code``) whose dispatched cases are theirs, in ``district`` (default: the one district
    that has a party of that code); ``Conflict`` when the name is taken."""
    if not _USERNAME.match(username or ""):
        raise InvalidInput("a username is 2–63 lower-case letters, digits, '.', '_' or '-'", field="username")
    roles = parse_roles(roles)
    if len(display_name) > 200:
        raise InvalidInput("display name longer than 200 characters", field="display_name")
    scheme = codes.deployment_scheme(conn)
    if district is not None and (not scheme.matches("district", district)
                                 or not store.district_exists(conn, district)):
        raise InvalidInput(f"no district {codes.show(district)}", field="district")
    if team is not None and (not scheme.matches("team", team) or not store.team_exists(conn, team)):
        raise InvalidInput(f"no supervision team {codes.show(team)}", field="team")
    if "supervisor" in roles and team is None:
        raise InvalidInput("a supervisor needs --team (the supervision team whose grids are theirs)", field="team")
    if store.user_by_name(conn, username) is not None:
        raise Conflict(f"user {username!r} exists")
    people.check_account_roles(conn, username, roles)  # 监管分离: not both supervisor and unit
    if team is not None and district is None:
        district = scheme.district_of("team", team)
    if "unit" in roles or party is not None:
        district = _check_party(conn, roles, party, district)
    return store.insert_user(conn, username=username, display_name=display_name, roles=roles, district=district,
                             team=team, party=party,
                             password_hash=passwords.hash_password(password) if password else None)


def _check_party(conn: Connection, roles: list[str], party: str | None, district: str | None) -> str:
    """The district of a unit account's ``party``; ``InvalidInput`` when the party is missing, malformed, not in
    ``district``, or (``district`` None) found in several districts, or when the account is no unit."""
    if "unit" not in roles:
        raise InvalidInput("--party is for unit accounts (the party whose dispatched cases they handle)", field="party")
    if party is None:
        raise InvalidInput("a unit account needs --party (the code of the party whose dispatched cases are theirs)",
                           field="party")
    if not 0 < len(party) <= 100 or not party.isprintable():
        raise InvalidInput("a party code is 1–100 printable characters", field="party")
    districts = store.party_districts(conn, party)
    if district is not None:
        if district not in districts:
            raise InvalidInput(f"no party {party!r} in district {district}", field="party")
        return district
    if not districts:
        raise InvalidInput(f"no party {party!r} in any district", field="party")
    if len(districts) > 1:
        raise InvalidInput(f"party {party!r} exists in districts {', '.join(districts)}: give --district",
                           field="district")
    return districts[0]


def set_roles(conn: Connection, username: str, roles: list[str], *, team: str | None = None,
              party: str | None = None) -> dict[str, Any]:
    """Give ``username`` the account ``roles`` (replacing its roles), with the supervision ``team`` a
    supervisor needs and the ``party`` a unit operator needs (default: the ones it has). Its credentials stay.

    Raises
    ------
    NotFound for no such user; InvalidInput for an unknown role, team or party; Conflict when the roles (or the
    people linked to the account) would both supervise and dispose (监管分离).
    """
    user = store.user_by_name(conn, username)
    if user is None:
        raise NotFound(f"no user {username!r}")
    roles = parse_roles(roles)
    people.check_account_roles(conn, username, roles)
    scheme = codes.deployment_scheme(conn)
    if team is not None and (not scheme.matches("team", team) or not store.team_exists(conn, team)):
        raise InvalidInput(f"no supervision team {codes.show(team)}", field="team")
    team = team if team is not None else user["team_code"] if "supervisor" in roles else None
    if "supervisor" in roles and team is None:
        raise InvalidInput("a supervisor needs --team (the supervision team whose grids are theirs)", field="team")
    district = user["district_code"] if team is None else scheme.district_of("team", team)
    if "unit" in roles or party is not None:
        party = party if party is not None else user["party_code"]
        district = _check_party(conn, roles, party, district)
    return store.update_roles(conn, user["user_id"], roles=roles, team=team,
                              party=party if "unit" in roles else None, district=district)


def list_users(conn: Connection) -> list[dict[str, Any]]:
    return store.list_users(conn)


def set_disabled(conn: Connection, username: str, disabled: bool = True) -> None:
    """Disable (or enable again) a user: their sessions end and their tokens stop working at once."""
    if not store.set_disabled(conn, username, disabled):
        raise NotFound(f"no user {username!r}")


def set_password(conn: Connection, username: str, password: str) -> dict[str, int]:
    """Set a user's password and, in the same transaction, end all their sessions and revoke all their API
    tokens (whoever held one may have known the old password).

    Returns
    -------
    ``{"sessions_ended": n, "tokens_revoked": m}``.
    """
    user = store.user_by_name(conn, username)
    if user is None:
        raise NotFound(f"no user {username!r}")
    store.set_password_hash(conn, user["user_id"], passwords.hash_password(password))
    return store.end_credentials(conn, user["user_id"])


def issue_token(conn: Connection, username: str, *, label: str = "", days: float | None = None
                ) -> dict[str, Any]:
    """A new API token for ``username`` (shown once: only its digest is kept); ``days`` until it expires."""
    user = store.user_by_name(conn, username)
    if user is None:
        raise NotFound(f"no user {username!r}")
    if user["disabled_at"] is not None:
        raise Conflict(f"user {username!r} is disabled")
    if days is not None and not 0 < days <= 3650:
        raise InvalidInput("a token lasts 0–3650 days", field="days")
    if len(label) > 200:
        raise InvalidInput("label longer than 200 characters", field="label")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=days) if days else None
    row = store.insert_token(conn, user["user_id"], _digest(token), label, expires)
    return {**row, "username": username, "token": token}


def revoke_token(conn: Connection, token_id: int) -> None:
    if not store.revoke_token(conn, token_id):
        raise NotFound(f"no active token {token_id}")


def principal_for_token(conn: Connection, token: str) -> Principal:
    """The caller behind a bearer token; ``Unauthorized`` for an unknown, revoked or expired one."""
    row = store.user_for_token(conn, _digest(token)) if token.startswith(TOKEN_PREFIX) else None
    if row is None:
        raise Unauthorized("the bearer token is unknown, revoked or expired, or its user is disabled")
    return _principal(row, "token")


def login(conn: Connection, username: str, password: str) -> tuple[str, Principal]:
    """Check a password and open a session; returns the session secret (for the cookie) and the principal.
    The same ``Unauthorized`` for an unknown user, a wrong password and a disabled account."""
    user = store.user_by_name(conn, username) if _USERNAME.match(username or "") else None
    ok = passwords.verify(user["password_hash"] if user else None, password or "")
    if not ok or user is None or user["disabled_at"] is not None:
        raise Unauthorized("wrong username or password")
    if passwords.needs_rehash(user["password_hash"]):
        store.set_password_hash(conn, user["user_id"], passwords.hash_password(password))
    secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    store.insert_session(conn, _digest(secret), user["user_id"], csrf, SESSION_HOURS)
    return secret, _principal({**user, "csrf_token": csrf}, "session")


def principal_for_session(conn: Connection, secret: str) -> Principal | None:
    """The user of a live session, or None (ended, expired, unknown, or the user disabled)."""
    row = store.user_for_session(conn, _digest(secret))
    return _principal(row, "session") if row else None


def logout(conn: Connection, secret: str) -> None:
    store.end_session(conn, _digest(secret))


def charge_login(conn: Connection, key: str, per_minute: float, burst: float, *, spend: bool = True) -> None:
    """Take a token from the shared sign-in bucket ``key`` (``store.take_login_token``); ``RateLimited`` with
    the wait when it is empty."""
    tokens = store.take_login_token(conn, key[:200], per_minute, burst, spend)
    if tokens < 1.0:
        wait = (1.0 - tokens) / (per_minute / 60.0)
        raise RateLimited(f"too many failed sign-ins: at most {per_minute:g} a minute; try again in {wait:.0f} s",
                          retry_after_s=wait)


def refund_login(conn: Connection, key: str, burst: float) -> None:
    """Give back the token a sign-in that succeeded was charged."""
    store.give_back_login_token(conn, key[:200], burst)
