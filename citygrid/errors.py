"""Typed errors raised by domain code; the web layer and the CLI map them to a status and a message.

Domain code never formats an HTTP response or prints: it raises one of these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class CitygridError(Exception):
    """Base class: a machine-readable ``code``, a human ``message`` and optional ``details``."""

    message: str
    details: list[dict[str, Any]] = field(default_factory=list)
    code: str = "error"

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


@dataclass
class InvalidInput(CitygridError):
    """The caller gave something unusable; ``field`` names it and ``reason`` says why."""

    field: str | None = None
    code: str = "invalid_input"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.field and not any(d.get("field") == self.field for d in self.details):
            self.details = [{"field": self.field, "reason": self.message}, *self.details]


@dataclass
class NotFound(CitygridError):
    """A code or identifier that does not exist."""

    code: str = "not_found"


@dataclass
class Conflict(CitygridError):
    """The request clashes with the stored state (stale version, duplicate, invalid transition)."""

    code: str = "conflict"


@dataclass
class Unauthorized(CitygridError):
    """The caller is not signed in, or its credential is unknown, expired or revoked."""

    code: str = "unauthorized"


@dataclass
class Forbidden(CitygridError):
    """The caller is known but its role does not allow this."""

    code: str = "forbidden"


@dataclass
class RateLimited(CitygridError):
    """The client sent more requests than its limit allows; ``retry_after_s`` says when to try again."""

    code: str = "rate_limited"
    retry_after_s: float = 1.0


@dataclass
class Unavailable(CitygridError):
    """A dependency (the database) cannot be reached right now."""

    code: str = "unavailable"


@dataclass
class Overloaded(Unavailable):
    """The server is at its bound of concurrent heavy requests; ``retry_after_s`` says when to try again."""

    code: str = "overloaded"
    retry_after_s: float = 2.0


@dataclass
class SchemaMismatch(CitygridError):
    """The database schema revision is one this code does not know."""

    code: str = "schema_mismatch"
