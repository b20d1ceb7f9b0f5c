"""Typed errors raised by domain code; the web layer and the CLI map them to a status and a message.

Domain code never formats an HTTP response or prints: it raises one of these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, NotRequired, TypedDict


class RowProblem(TypedDict):
    """One problem with one input row or field: the one shape every import and intake reports.

    ``line`` is the 1-based line (or feature number) in the file, ``None`` for a single request's field;
    ``field`` the column or parameter; ``reason`` a sentence a user can act on; ``severity`` ``error`` (the row
    is not taken) or ``warning`` (taken, but look at it). ``key`` identifies the row by its own ID where it has
    one (a census ObjID, an area code, a case's key); ``wkt`` its geometry where showing it helps.
    """

    line: int | None
    field: str | None
    reason: str
    severity: Literal["error", "warning"]
    key: NotRequired[str | None]
    wkt: NotRequired[str | None]


def problem(field: str | None, reason: str, *, line: int | None = None, severity: Literal["error", "warning"] = "error",
            **context: Any) -> RowProblem:
    """A ``RowProblem``; ``context`` adds the row's identifying values (``key``, ``wkt``, or import-specific ones).

    Examples
    --------
    >>> problem("lon", "longitude 200 is outside -180…180", line=7)
    {'line': 7, 'field': 'lon', 'reason': 'longitude 200 is outside -180…180', 'severity': 'error'}
    """
    return {"line": None if line is None else int(line), "field": field, "reason": reason,  # type: ignore[typeddict-item]
            "severity": severity, **context}


@dataclass
class CitygridError(Exception):
    """Base class: a machine-readable ``code``, a human ``message`` and optional ``details``.

    ``code`` belongs to the class (each subclass names its own), so a subclass that adds no field is just its
    docstring and its code; the web layer's table maps the class to an HTTP status.
    """

    message: str
    details: list[dict[str, Any]] = field(default_factory=list)  # RowProblem where about rows or fields
    # Named members of the error body besides error/message/details (e.g. a rejected edit's ``geometry``, a
    # stale edit's ``edits_since``); JSON-ready values only.
    extra: dict[str, Any] = field(default_factory=dict)
    code: ClassVar[str] = "error"

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


@dataclass
class InvalidInput(CitygridError):
    """The caller gave something unusable; ``field`` names it and ``reason`` says why."""

    field: str | None = None
    code: ClassVar[str] = "invalid_input"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.field and not any(d.get("field") == self.field for d in self.details):
            self.details = [problem(self.field, self.message), *self.details]


@dataclass
class TooLarge(InvalidInput):
    """Something the caller sent is over a size limit (HTTP 413); ``field`` names it and the message says the
    limit."""

    code: ClassVar[str] = "request_entity_too_large"


class NotFound(CitygridError):
    """A code or identifier that does not exist."""

    code = "not_found"


class Conflict(CitygridError):
    """The request clashes with the stored state (stale version, duplicate, invalid transition)."""

    code = "conflict"


class Rejected(CitygridError):
    """A well-formed request whose result would break an invariant of the stored data (HTTP 422), such as a grid
    edit that would leave a gap; the message says which, and ``extra["geometry"]`` may hold the offending
    geometry as GeoJSON in EPSG:4326."""

    code = "rejected"


class Unauthorized(CitygridError):
    """The caller is not signed in, or its credential is unknown, expired or revoked."""

    code = "unauthorized"


class Forbidden(CitygridError):
    """The caller is known but its role does not allow this."""

    code = "forbidden"


@dataclass
class RetryLater(CitygridError):
    """Refused for now, not for good: ``retry_after_s`` says when to try again (the web layer's ``Retry-After``)."""

    retry_after_s: float = 1.0


class RateLimited(RetryLater):
    """The client sent more requests than its limit allows."""

    code = "rate_limited"


class Unavailable(CitygridError):
    """A dependency (the database) cannot be reached right now."""

    code = "unavailable"


@dataclass
class Overloaded(Unavailable, RetryLater):
    """The server is at its bound of concurrent heavy requests (a 503, as ``Unavailable``)."""

    retry_after_s: float = 2.0
    code: ClassVar[str] = "overloaded"


class SchemaMismatch(CitygridError):
    """The database schema revision is one this code does not know."""

    code = "schema_mismatch"
