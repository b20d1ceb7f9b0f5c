"""A per-process bound on concurrent heavy requests: density rasters, caseload tables and exports, uploads.

Each such view is wrapped in ``@heavy``; it runs only with one of the process's ``CITYGRID_HEAVY_REQUESTS``
slots (app config, default ``HEAVY_REQUESTS`` = 2 of a gunicorn worker's 4 threads, so two threads always
remain for reports, pages and ``/healthz``). A request that finds every slot taken waits at most
``CITYGRID_HEAVY_WAIT_S`` (default 0.5 s; it holds its thread meanwhile, so the wait is short) and then gets
503 with ``Retry-After`` (``Overloaded``). With N gunicorn workers the server as a whole runs up to N times
the bound at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

from flask import current_app

from citygrid.errors import Overloaded

HEAVY_REQUESTS = 2
HEAVY_WAIT_S = 0.5
RETRY_AFTER_S = 2.0

F = TypeVar("F", bound=Callable[..., Any])


class HeavyLimiter:
    """At most ``slots`` holders at once (0 refuses every one); thread-safe.

    Parameters
    ----------
    slots : how many heavy requests may run at once in this process.
    wait_s : how long a request waits for a slot before ``Overloaded``.
    """

    def __init__(self, slots: int = HEAVY_REQUESTS, wait_s: float = HEAVY_WAIT_S) -> None:
        if slots < 0 or wait_s < 0:
            raise ValueError("slots and wait_s must not be negative")
        self.slots, self.wait_s = slots, wait_s
        self._semaphore = threading.BoundedSemaphore(slots) if slots else None

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold a slot for the block; ``Overloaded`` when none frees up within ``wait_s``."""
        if self._semaphore is None or not self._semaphore.acquire(timeout=self.wait_s):
            raise Overloaded(f"the server is busy with other heavy requests (at most {self.slots} at once per "
                             f"process); try again in {RETRY_AFTER_S:g} s", retry_after_s=RETRY_AFTER_S)
        try:
            yield
        finally:
            self._semaphore.release()


def install(app: Any) -> None:
    """Give ``app`` its limiter from ``CITYGRID_HEAVY_REQUESTS`` and ``CITYGRID_HEAVY_WAIT_S``."""
    app.extensions["citygrid_heavy"] = HeavyLimiter(int(app.config.get("CITYGRID_HEAVY_REQUESTS", HEAVY_REQUESTS)),
                                                    float(app.config.get("CITYGRID_HEAVY_WAIT_S", HEAVY_WAIT_S)))


def heavy(view: F) -> F:
    """Run ``view`` only with a heavy-request slot (put it under ``@allow``, so refused callers take none)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with current_app.extensions["citygrid_heavy"].slot():
            return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
