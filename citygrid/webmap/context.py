"""How a request gets its database connection: through the ``Backend`` the app factory installed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

from flask import current_app
from sqlalchemy.engine import Connection, Engine


@dataclass
class Backend:
    """The app's handle on the database.

    ``connect`` returns a context manager yielding a connection inside a transaction that commits on success
    and rolls back on error; tests replace it to run each test inside a rolled-back transaction.
    """

    engine: Engine | None
    connect: Callable[[], AbstractContextManager[Connection]]
    database: str


def backend() -> Backend:
    return current_app.extensions["citygrid"]


@contextmanager
def connection() -> Iterator[Connection]:
    """A transactional connection for the current request."""
    with backend().connect() as conn:
        yield conn
