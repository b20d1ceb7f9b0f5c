"""How a request gets its database connection: through the ``Backend`` the app factory installed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from flask import current_app, g, has_request_context, request
from sqlalchemy.engine import Connection, Engine

from citygrid.cases.rules import CaseRules
from citygrid.codes import CodeScheme, deployment_scheme
from citygrid.spatial.db import deployment_srid, deployment_zone, set_actor


@dataclass
class Backend:
    """The app's handle on the database.

    ``connect`` returns a context manager yielding a connection inside a transaction that commits on success
    and rolls back on error; tests replace it to run each test inside a rolled-back transaction.
    """

    engine: Engine | None
    connect: Callable[[], AbstractContextManager[Connection]]
    database: str
    _zone: ZoneInfo | None = field(default=None, repr=False)
    _code_scheme: CodeScheme | None = field(default=None, repr=False)
    _srid: int | None = field(default=None, repr=False)

    def zone(self) -> ZoneInfo:
        """The deployment's time zone, read from the database once per backend (``db.deployment_zone``)."""
        if self._zone is None:
            with self.connect() as conn:
                self._zone = deployment_zone(conn)
        return self._zone

    def srid(self) -> int:
        """The EPSG code of the deployment's storage CRS, read once per backend (``db.deployment_srid``): it is
        fixed when the database is made."""
        if self._srid is None:
            with self.connect() as conn:
                self._srid = deployment_srid(conn)
        return self._srid

    def code_scheme(self) -> CodeScheme:
        """The deployment's code scheme, read once per backend: it cannot change once a district exists."""
        if self._code_scheme is None:
            with self.connect() as conn:
                self._code_scheme = deployment_scheme(conn)
        return self._code_scheme


def backend() -> Backend:
    return current_app.extensions["citygrid"]


def zone() -> ZoneInfo:
    """The deployment's time zone for this app: naive times in requests are read in it."""
    return backend().zone()


def storage_srid() -> int:
    """The EPSG code of the deployment's storage CRS for this app (read once)."""
    return backend().srid()


def code_scheme() -> CodeScheme:
    """The deployment's code scheme (``citygrid.codes``): what district, grid and team codes look like."""
    return backend().code_scheme()


def case_rules() -> CaseRules:
    """The case rules (dispatch, deadlines, calendar, escalation, classifier models) that ``create_app`` read
    from the configured data directory once: every case operation of this app applies them."""
    return current_app.extensions["citygrid_case_rules"]


def request_actor() -> str | None:
    """Who acts in this request's writes: the signed-in user's name, or what a public endpoint set in
    ``g.citygrid_actor`` (e.g. ``open311:<address>``); None for reads."""
    if not has_request_context() or request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    who = g.get("citygrid_principal")
    return who.username if who is not None else g.get("citygrid_actor")


@contextmanager
def connection() -> Iterator[Connection]:
    """A transactional connection for the current request; a write names its actor for the audit triggers."""
    with backend().connect() as conn:
        actor = request_actor()
        if actor:
            set_actor(conn, actor)
        yield conn
