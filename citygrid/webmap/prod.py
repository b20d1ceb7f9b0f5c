"""``citygrid serve --prod``: gunicorn with settings for this machine, JSON access logs and graceful shutdown.

Workers: 2 × cores + 1 processes (``--workers`` overrides the count) with a few threads each (the request work
is part Python, part database waits), each warmed up (grid indexes built) before it takes requests. The worker
class is gthread's with request buffering (``citygrid.webmap.slowclients``): a thread takes a request only once
its head (and a body of up to 1 MiB) has arrived, so slow clients cannot hold the threads. SIGTERM lets
in-flight requests finish (``graceful_timeout``) before workers stop.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

from gunicorn.app.base import BaseApplication

ACCESS_FORMAT = json.dumps({"time": "%(t)s", "remote": "%(h)s", "method": "%(m)s", "path": "%(U)s",
                            "query": "%(q)s", "status": "%(s)s", "bytes": "%(B)s", "duration_us": "%(D)s",
                            "agent": "%(a)s"})


WORKER_CLASS = "citygrid.webmap.slowclients.BufferingThreadWorker"


def worker_settings(cores: int | None = None) -> dict[str, Any]:
    """gunicorn settings for a machine with ``cores`` cores (default: this one's).

    ``keepalive`` (5 s) is also the longest pause allowed between two bytes of a request that is arriving.
    """
    cores = cores or os.cpu_count() or 1
    return {"workers": 2 * cores + 1, "threads": 4, "worker_class": WORKER_CLASS, "timeout": 60,
            "graceful_timeout": 20, "keepalive": 5, "max_requests": 5000, "max_requests_jitter": 500}


class ProdServer(BaseApplication):
    """Runs ``create_app(settings)`` in each worker (nothing is shared across forks but code).

    ``overrides`` are gunicorn settings; one whose value is None (``--workers`` not given) keeps the computed one.
    """

    def __init__(self, app_factory, host: str, port: int, **overrides: Any) -> None:
        self._factory = app_factory
        self._options = {"bind": f"{host}:{port}", "accesslog": "-", "errorlog": "-",
                         "access_log_format": ACCESS_FORMAT, "loglevel": "info", "preload_app": False,
                         **worker_settings(), **{k: v for k, v in overrides.items() if v is not None}}
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key, value)

    def load(self):
        logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                            format='{"time": "%(asctime)s", "level": "%(levelname)s", "logger": "%(name)s", '
                                   '"message": %(message)r}')
        app = self._factory()
        warm_up(app, connections=self.cfg.threads)
        return app


def warm_up(app, connections: int = 4) -> None:
    """Make a new worker ready before it takes requests, so the first visitors after a start or a worker's
    recycling do not pay for it: each district's grid index built; ``connections`` pooled database sessions
    (one per worker thread) opened, each having made its first coordinate transformation (PostGIS sets PROJ up
    once per session: 50–70 ms measured on the first ``ST_Transform``); every page template compiled (13 ms on
    the first overview page). Failures are logged, not fatal: a worker without a database still serves
    ``/healthz`` with 503."""
    from contextlib import ExitStack

    from citygrid.spatial.db import warm_session
    from citygrid.spatial.geocode import GridIndex
    from citygrid.spatial.queries import district_codes
    from citygrid.webmap.context import connection

    for name in app.jinja_env.list_templates(filter_func=lambda n: n.endswith(".html")):
        app.jinja_env.get_template(name)
    try:
        with app.app_context(), ExitStack() as stack:
            sessions = [stack.enter_context(connection()) for _ in range(max(1, connections))]
            for conn in sessions:
                warm_session(conn)
            for district in district_codes(sessions[0]):
                GridIndex.cached(sessions[0], district)
    except Exception as error:  # a worker must start even when the database is down
        logging.getLogger("citygrid.prod").warning("warm-up skipped: %s", error)
