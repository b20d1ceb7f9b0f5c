"""``intake_http``: 50 concurrent clients posting reports over loopback for 60 s (``BENCH_INTAKE_SECONDS``)
to ``citygrid serve --prod`` on the bench database; throughput, p50/p95 latency, and acknowledged == stored.

Clients are paced (open loop, ``BENCH_INTAKE_RATE`` reports/s each, default 1) as real supervisors and hotline
operators are; the saturation figures come from the same clients closed-loop. The anchor is the paced load on
``GET /healthz`` (the server's floor) for a third of the time, same run.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
import uuid

import numpy as np
import sqlalchemy as sa

from bench.bench_census import DATABASE, _settings
from bench.common import bench_token, chaoyang_lonlats, prod_server, run_clients
from bench.results import entry
from citygrid.spatial import db

CLIENTS = 50
# Each of the 50 clients reports once a second on average: 50 reports/s, about 40 times Chaoyang's busiest hour
# (6.8 million cases a year is 0.2/s on average; DOMAIN.md).
RATE_PER_CLIENT = 1.0
CLASSES = ("0102", "0103", "0104", "0201", "0501", "0504", "0505", "0506")


def _load(port: int, seconds: float, make_request, rate_per_client: float | None = None
          ) -> tuple[list[float], list[int], list[dict]]:
    """Run ``CLIENTS`` clients for ``seconds``. Closed loop (each sends as soon as its last answer came) when
    ``rate_per_client`` is None; else open loop: each client sends on its own seeded Poisson schedule at that
    mean rate, and latency counts from the scheduled send time, so a server that falls behind is charged
    for the wait (no coordinated omission)."""
    latencies: list[float] = []
    statuses: list[int] = []
    bodies: list[dict] = []
    lock = threading.Lock()
    begin = time.perf_counter()
    stop = begin + seconds

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        gaps = np.random.default_rng(1000 + k)
        due = begin + (gaps.exponential(1 / rate_per_client) if rate_per_client else 0.0)
        i = 0
        while (now := time.perf_counter()) < stop:
            if rate_per_client:
                if due > now:
                    time.sleep(due - now)
                start = due
                due += gaps.exponential(1 / rate_per_client)
            else:
                start = now
            method, path, body, headers = make_request(k, i)
            for attempt in (1, 2):  # a kept-alive connection the server closed meanwhile is retried once,
                try:                # as HTTP clients do; the idempotency key makes that safe
                    conn.request(method, path, body=body, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                    elapsed = time.perf_counter() - start
                    with lock:
                        latencies.append(elapsed)
                        statuses.append(response.status)
                        if method == "POST" and response.status in (200, 201):
                            bodies.append(json.loads(data))
                    break
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    if attempt == 2:
                        with lock:
                            statuses.append(0)
            i += 1
        conn.close()

    run_clients(client, CLIENTS)
    return latencies, statuses, bodies


def run(wanted: set[str]) -> list[dict]:
    if "intake_http" not in wanted:
        return []
    seconds = float(os.environ.get("BENCH_INTAKE_SECONDS", "60"))
    rate = float(os.environ.get("BENCH_INTAKE_RATE", str(RATE_PER_CLIENT)))
    run_id = uuid.uuid4().hex[:8]
    lons, lats = chaoyang_lonlats(200_000, seed=2026)
    token = bench_token(DATABASE)
    with prod_server(DATABASE, "intake_server.log") as port:
        def reports(phase: str):
            def report(k: int, i: int):
                j = (k * 4000 + i) % len(lons)
                body = json.dumps({"lon": float(lons[j]), "lat": float(lats[j]), "kind": "event",
                                   "class_code": CLASSES[(k + i) % len(CLASSES)], "description": "基准测试上报",
                                   "source": "supervisor"})
                return "POST", "/api/v1/cases", body, {"Content-Type": "application/json",
                                                       "Authorization": f"Bearer {token}",
                                                       "Idempotency-Key": f"bench-{run_id}-{phase}-{k}-{i}"}
            return report

        floor, _, _ = _load(port, max(5.0, seconds / 3), lambda k, i: ("GET", "/healthz", None, {}), rate)
        latencies, statuses, bodies = _load(port, seconds, reports("paced"), rate)
        saturated, saturated_statuses, saturated_bodies = _load(port, max(5.0, seconds / 3), reports("closed"))
    created = {b["case"]["case_id"] for b in bodies + saturated_bodies if b["outcome"] == "created"}
    engine = db.make_engine(db.database_url(_settings()))
    with engine.begin() as conn:
        # keys are stored as '<caller>|<key>' (cases.intake.scoped_key)
        stored = conn.execute(sa.text("SELECT count(*) FROM cases WHERE idempotency_key LIKE :p"),
                              {"p": f"%|bench-{run_id}-%"}).scalar_one()
        conn.execute(sa.text("DELETE FROM cases WHERE idempotency_key LIKE :p"), {"p": f"%|bench-{run_id}-%"})
    engine.dispose()
    lat, closed = np.array(latencies), np.array(saturated)
    p95, floor_p95 = float(np.percentile(lat, 95)), float(np.percentile(np.array(floor), 95))
    all_statuses = statuses + saturated_statuses
    return [entry("intake_http", len(lat), p95, "GET /healthz p95 under the same paced 50 clients (server floor)",
                  floor_p95, f"ours_s is the p95 latency of POST /api/v1/cases over {seconds:g} s from {CLIENTS} "
                  f"clients each sending on a Poisson schedule of {rate:g} report/s (open loop, latency from the "
                  "scheduled time) to `citygrid serve --prod` (gunicorn, 2×cores+1 workers × 4 threads); "
                  "saturated_* is the same 50 clients closed-loop (each sends when its last answer came): maximum "
                  "throughput, and a p95 that by Little's law is clients / throughput",
                  rate_per_client_per_s=rate, throughput_per_s=round(len(lat) / seconds, 1),
                  p50_s=round(float(np.percentile(lat, 50)), 4), p95_s=round(p95, 4),
                  saturated_throughput_per_s=round(len(closed) / max(5.0, seconds / 3), 1),
                  saturated_p50_s=round(float(np.percentile(closed, 50)), 4),
                  saturated_p95_s=round(float(np.percentile(closed, 95)), 4),
                  status_counts={str(k): int(v) for k, v in zip(*np.unique(all_statuses, return_counts=True),
                                                                strict=True)},
                  errors=int(sum(1 for s in all_statuses if s not in (200, 201))),
                  acknowledged_created=len(created), stored=int(stored),
                  acknowledged_equals_stored=len(created) == int(stored), target_p95_s=0.05)]
