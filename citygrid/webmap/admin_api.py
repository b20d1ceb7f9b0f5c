"""Admin endpoints: the audit log (by object, user and time, with before/after and the changed fields) and the
list of users. Admins only."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from citygrid.accounts import service as accounts
from citygrid.accounts.queries import AuditFilter, audit_entries
from citygrid.errors import InvalidInput
from citygrid.webmap.auth import allow
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
