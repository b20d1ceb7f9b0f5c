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


def vacuum(database: str, *tables: str) -> None:
    """``VACUUM (ANALYZE)`` the demo database's ``tables``, as a deployment's autovacuum keeps them: a benchmark
    that writes in a rolled-back transaction leaves its rows behind as dead ones, and the next run's index scans
    would wade through them (2 million dead cases after a day of ``desk_queue`` runs, against 36,000 live)."""
    import sqlalchemy as sa

    engine = db.make_engine(db.database_url(Settings.from_env(database)))
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            for table in tables:
                if not table.isidentifier():
                    raise ValueError(f"not a table name: {table!r}")
                conn.execute(sa.text(f'VACUUM (ANALYZE) "{table}"'))
    finally:
        engine.dispose()


BENCH_USER, BENCH_PASSWORD = "bench", "benchmark password 2026"


def bench_token(database: str) -> str:
    """A new API token of the ``bench`` admin of a demo database (the user is made once, committed): the
    benchmarks call the API as a signed-in user, as clients would."""
    from citygrid.accounts import service as accounts

    engine = db.make_engine(db.database_url(Settings.from_env(database)))
    try:
        with engine.begin() as conn:
            if not any(u["username"] == BENCH_USER for u in accounts.list_users(conn)):
                accounts.add_user(conn, BENCH_USER, ["admin"], password=BENCH_PASSWORD,
                                  display_name="benchmarks (make bench)")
            return accounts.issue_token(conn, BENCH_USER, label="make bench", days=1)["token"]
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


def run_clients(client: Callable[[int], Any], n: int) -> float:
    """Run ``client(k)`` for k in 0..n-1, each on a thread of its own, all at once; the wall seconds until the
    last one returns (the HTTP benchmarks' concurrent clients)."""
    import threading

    threads = [threading.Thread(target=client, args=(k,)) for k in range(n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(port: int, seconds: float = 60.0, path: str = "/healthz") -> None:
    """Wait until ``GET path`` answers 200 on ``port``; RuntimeError after ``seconds``."""
    import http.client

    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            probe = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            probe.request("GET", path)
            if probe.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server on port {port} did not answer {path} in {seconds:g} s")


def start_prod_server(database: str, port: int, log_name: str):
    """``citygrid serve --prod`` on ``port`` in its own process group (so it can be killed whole), logging to
    ``bench/work/<log_name>``; returns the Popen once the server is healthy."""
    import subprocess
    import sys
    from pathlib import Path

    log_path = Path(__file__).parent / "work" / log_name
    log_path.parent.mkdir(exist_ok=True)
    with log_path.open("a") as log:
        server = subprocess.Popen([sys.executable, "-m", "citygrid.cli", "--database", database, "serve", "--prod",
                                   "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    wait_healthy(port)
    return server


@contextmanager
def prod_server(database: str, log_name: str) -> Iterator[int]:
    """A running ``serve --prod`` for the block; yields its port and stops it (SIGTERM) afterwards."""
    port = free_port()
    server = start_prod_server(database, port, log_name)
    try:
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


def chaoyang_lonlats(n: int, seed: int) -> tuple[Any, Any]:
    """``n`` seeded random report positions (EPSG:4326 lon and lat arrays) at least 100 m inside Chaoyang,
    loading the demo district first if it is not there (the HTTP benchmarks' reports)."""
    import numpy as np
    import shapely

    from bench.bench_census import _settings
    from bench.census_data import random_points_inside
    from citygrid import deploy
    from citygrid.spatial.boundaries import district_boundary
    from citygrid.spatial.crs import to_lonlat

    settings = _settings()
    deploy.load_demo(settings, "chaoyang")
    engine = db.make_engine(db.database_url(settings))
    try:
        with engine.connect() as conn:
            boundary = district_boundary(conn, "110105").buffer(-100)
    finally:
        engine.dispose()
    px, py = random_points_inside(boundary, n, np.random.default_rng(seed))
    lonlat = to_lonlat(shapely.points(px, py), 4548)
    return shapely.get_x(lonlat), shapely.get_y(lonlat)

