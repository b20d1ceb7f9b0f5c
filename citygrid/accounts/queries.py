"""Reads of accounts for every front end: the audit log (``GET /api/v1/audit`` and ``citygrid audit``).

The log is asked for with one plain filter object, ``AuditFilter``, so the API and the CLI filter it the
same way; the accounts themselves are listed by ``accounts.service.list_users``.

Examples
--------
>>> AuditFilter(actor="demo", limit=10).offset
0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from citygrid.accounts import store

__all__ = ["AuditFilter", "audit_entries"]


@dataclass(frozen=True)
class AuditFilter:
    """Which audit entries to list: every field that is not None must hold.

    Attributes
    ----------
    object_kind : a table such as ``cases``, or an operation's kind such as ``grid_version``.
    object_id : the audited object's id, as text.
    actor : who acted (a user name, ``cli:<os user>``, ``open311:<address>`` …).
    district : district code.
    start, end : at or after ``start`` and before ``end`` (ISO 8601 instants, end exclusive).
    limit, offset : the page, newest first.
    """

    object_kind: str | None = None
    object_id: str | None = None
    actor: str | None = None
    district: str | None = None
    start: str | None = None
    end: str | None = None
    limit: int = 100
    offset: int = 0


def audit_entries(conn: Connection, f: AuditFilter) -> list[dict[str, Any]]:
    """The audit entries matching ``f``, newest first, each with its ``before`` and ``after`` row images."""
    return store.audit_entries(conn, object_kind=f.object_kind, object_id=f.object_id, actor=f.actor,
                               district=f.district, start=f.start, end=f.end, limit=f.limit, offset=f.offset)
