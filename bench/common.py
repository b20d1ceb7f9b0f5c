"""What the benchmarks share: the demo databases (prepared by ``make setup``) and a timer."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.engine import Connection

from citygrid.config import Settings
from citygrid.spatial import db


@contextmanager
def demo_connection(database: str) -> Iterator[Connection]:
    """A connection to a demo database inside a transaction that is rolled back: benchmarks leave no trace."""
    engine = db.make_engine(db.database_url(Settings.from_env(database)))
    try:
        with db.rolled_back(engine) as conn:
            yield conn
    finally:
        engine.dispose()


def timed(func: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """Best wall time of ``repeat`` runs, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - t0)
    return best, result
