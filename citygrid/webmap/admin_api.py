"""Admin endpoints: the audit log (by object, user and time, with before/after and the changed fields) and the
list of users. Admins only."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from citygrid.accounts import service as accounts
from citygrid.accounts.queries import AuditFilter, audit_entries
from citygrid.errors import InvalidInput
from citygrid.webmap.auth import allow
from citygrid.webmap.cases_api import json_body
from citygrid.webmap.context import connection
from citygrid.webmap.params import int_arg, optional_district_arg, period_args

bp = Blueprint("admin_v1", __name__, url_prefix="/api/v1")
MAX_PAGE = 1000


def _text_arg(name: str, max_length: int = 200) -> str | None:
    value = request.args.get(name) or None
    if value is not None and len(value) > max_length:
        raise InvalidInput(f"{name} longer than {max_length} characters", field=name)
    return value


def changed_fields(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[str]:
    """The fields whose value differs between two audited row images (all of them for an insert or delete)."""
    before, after = before or {}, after or {}
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


@bp.get("/audit")
@allow("admin")
def audit():
    """Audit entries, newest first: filters ``object_kind`` (a table such as ``cases``, or an operation's kind
    such as ``grid_version``), ``object_id``, ``actor``, ``district``, ``start``/``end`` (ISO 8601); ``limit`` ≤
    1000, ``offset``. Each entry has ``before``, ``after`` and ``changed``."""
    district = optional_district_arg()
    start, end = period_args()
    wanted = AuditFilter(object_kind=_text_arg("object_kind", 100), object_id=_text_arg("object_id"),
                         actor=_text_arg("actor"), district=district, start=start, end=end,
                         limit=int_arg("limit", 100, 1, MAX_PAGE), offset=int_arg("offset", 0, 0, 10_000_000))
    with connection() as conn:
        rows = audit_entries(conn, wanted)
    entries = [{**r, "changed": changed_fields(r["before"], r["after"])} for r in rows]
    return jsonify({"entries": entries, "count": len(entries)})


@bp.get("/users")
@allow("admin")
def users():
    """Every account with its roles, scope, state and number of live API tokens (never a secret)."""
    with connection() as conn:
        return jsonify({"users": accounts.list_users(conn)})


def _optional_text(data: dict[str, Any], name: str, max_length: int = 100) -> str | None:
    """A JSON body's optional one-line text field (None when absent, null or empty)."""
    value = data.get(name)
    if value in (None, ""):
        return None
    if not isinstance(value, str) or len(value) > max_length or not value.isprintable():
        raise InvalidInput(f"{name} must be text of at most {max_length} printable characters", field=name)
    return value


def _roles(data: dict[str, Any]) -> list[str]:
    roles = data.get("roles")
    if not isinstance(roles, list) or not roles or len(roles) > 20 or not all(isinstance(r, str) for r in roles):
        raise InvalidInput("roles must be a list of role names", field="roles")
    return accounts.parse_roles(roles)


@bp.post("/users")
@allow("admin")
def add_user():
    """``{"username", "roles": [...], "team", "party", "district", "display_name"}`` — a token-only account
    (a password is set with ``citygrid users password``). 409 for a taken name or roles that break 监管分离
    (one account cannot both supervise and dispose)."""
    data = json_body()
    username = _optional_text(data, "username", 63) or ""
    with connection() as conn:
        user = accounts.add_user(conn, username, _roles(data), team=_optional_text(data, "team"),
                                 party=_optional_text(data, "party"), district=_optional_text(data, "district", 12),
                                 display_name=_optional_text(data, "display_name", 200) or "")
    return jsonify(user), 201


@bp.put("/users/<username>/roles")
@allow("admin")
def set_roles(username: str):
    """``{"roles": [...], "team", "party"}`` — the account's roles from now on (team and party default to the
    ones it has). 409 when they would break 监管分离, 404 for no such user."""
    data = json_body()
    with connection() as conn:
        user = accounts.set_roles(conn, username[:63], _roles(data), team=_optional_text(data, "team"),
                                  party=_optional_text(data, "party"))
    return jsonify(user)
