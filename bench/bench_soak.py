"""``intake_soak``: 10,000 reports over loopback from 50 concurrent clients to ``citygrid serve --prod`` on the
bench database; once 40 % are acknowledged the whole server (master and workers) is killed with SIGKILL and
started again. Clients retry every request that got no answer (connection refused or reset, 5xx) with the same
idempotency key until it is acknowledged. Afterwards every acknowledged report must be stored exactly once,
and nothing unacknowledged may be stored twice. Reports throughput, p95 (including retries) and the counts.
The anchor is the same run without the kill (same clients, same reports, same server).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import time
import uuid

import numpy as np
import sqlalchemy as sa

from bench.bench_census import DATABASE, _settings
from bench.bench_intake import CLASSES, CLIENTS
from bench.common import bench_token, chaoyang_lonlats, free_port, run_clients, start_prod_server
from bench.results import entry
from citygrid.spatial import db

REPORTS = 10_000
KILL_AT = 0.4
GIVE_UP_S = 120.0


def _soak(port: int, keys: list[str], bodies: list[bytes], kill=None, token: str = "") -> dict:
    """Send every report (client k takes every CLIENTS-th), retrying with its key; ``kill`` is called once
    when KILL_AT of them are acknowledged. Returns latencies, acknowledgements and retry counts."""
    acknowledged: dict[str, int] = {}
    latencies: list[float] = []
    retries = [0]
    lock = threading.Lock()
    killed = threading.Event()

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for i in range(k, len(keys), CLIENTS):
            start = time.perf_counter()
            while True:
                try:
                    conn.request("POST", "/api/v1/cases", body=bodies[i],
                                 headers={"Content-Type": "application/json", "Idempotency-Key": keys[i],
                                          "Authorization": f"Bearer {token}"})
                    response = conn.getresponse()
                    data = response.read()
                    if response.status in (200, 201):
                        break
                    if response.status < 500:
                        raise RuntimeError(f"report {keys[i]} refused: {response.status} {data[:200]!r}")
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                with lock:
                    retries[0] += 1
                if time.perf_counter() - start > GIVE_UP_S:
                    raise RuntimeError(f"report {keys[i]} not acknowledged in {GIVE_UP_S:g} s")
                time.sleep(0.05)
            with lock:
                acknowledged[keys[i]] = json.loads(data)["case"]["case_id"]
                latencies.append(time.perf_counter() - start)
                due = kill is not None and not killed.is_set() and len(acknowledged) >= KILL_AT * len(keys)
                if due:
                    killed.set()
            if due:
                kill()
        conn.close()

    seconds = run_clients(client, CLIENTS)
    return {"seconds": seconds, "acknowledged": acknowledged, "latencies": latencies,
            "retries": retries[0], "killed": killed.is_set()}


def _stored(engine, prefix: str) -> dict[str, int]:
    with engine.connect() as conn:
        # a report is stored as a case, or as a duplicate_report event on an open case nearby
        rows = conn.execute(sa.text(
            """SELECT split_part(key, '|', 2), count(*) FROM (
                   SELECT idempotency_key AS key FROM cases WHERE idempotency_key LIKE :p
                   UNION ALL
                   SELECT idempotency_key FROM case_events WHERE idempotency_key LIKE :p) stored
                GROUP BY 1"""), {"p": f"%|{prefix}%"}).all()  # keys are stored as '<caller>|<key>'
    return {key: int(n) for key, n in rows}


def run(wanted: set[str]) -> list[dict]:
    if "intake_soak" not in wanted:
        return []
    n = int(os.environ.get("BENCH_SOAK_REPORTS", str(REPORTS)))
    lons, lats = chaoyang_lonlats(n, seed=7)
    engine = db.make_engine(db.database_url(_settings()))
    bodies = [json.dumps({"lon": float(lons[i]), "lat": float(lats[i]), "kind": "event",
                          "class_code": CLASSES[i % len(CLASSES)], "description": "压力测试上报",
                          "source": "supervisor"}).encode() for i in range(n)]
    token = bench_token(DATABASE)
    results = {}
    downtime = [0.0]
    for phase in ("anchor", "kill"):
        prefix = f"soak-{uuid.uuid4().hex[:8]}-{phase}-"
        keys = [f"{prefix}{i}" for i in range(n)]
        port = free_port()
        server = [start_prod_server(DATABASE, port, "soak_server.log")]

        def kill_and_restart(server: list = server, port: int = port) -> None:
            t0 = time.perf_counter()
            os.killpg(server[0].pid, signal.SIGKILL)  # master and every worker, no goodbye
            server[0].wait()
            server[0] = start_prod_server(DATABASE, port, "soak_server.log")
            downtime[0] = time.perf_counter() - t0

        try:
            outcome = _soak(port, keys, bodies, kill_and_restart if phase == "kill" else None, token=token)
        finally:
            server[0].terminate()
            server[0].wait(timeout=30)
        stored = _stored(engine, prefix)
        outcome["stored"] = stored
        results[phase] = outcome
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM case_events WHERE idempotency_key LIKE :p"), {"p": f"%|{prefix}%"})
            conn.execute(sa.text("DELETE FROM cases WHERE idempotency_key LIKE :p"), {"p": f"%|{prefix}%"})
    engine.dispose()
    kill = results["kill"]
    acked, stored = kill["acknowledged"], kill["stored"]
    lost = sorted(k for k in acked if stored.get(k, 0) == 0)
    twice = sorted(k for k, count in stored.items() if count > 1)
    unacknowledged_stored = sorted(k for k in stored if k not in acked)
    latencies = np.array(kill["latencies"])
    return [entry(
        "intake_soak", n, kill["seconds"], "the same 10,000 reports without the kill", results["anchor"]["seconds"],
        f"{n} reports from {CLIENTS} closed-loop clients to `serve --prod`; the server (master and workers) was "
        f"SIGKILLed once {KILL_AT:.0%} were acknowledged and restarted; clients retried unanswered requests with "
        "their idempotency keys; ours_s and anchor_s are the wall times of the whole run",
        killed=kill["killed"], downtime_s=round(downtime[0], 2), retries=kill["retries"],
        throughput_per_s=round(n / kill["seconds"], 1), p50_s=round(float(np.percentile(latencies, 50)), 4),
        p95_s=round(float(np.percentile(latencies, 95)), 4), acknowledged=len(acked), stored=len(stored),
        lost=len(lost), stored_twice=len(twice), stored_unacknowledged=len(unacknowledged_stored),
        every_acknowledged_stored_once=not lost and not twice and len(acked) == n,
        anchor_throughput_per_s=round(n / results["anchor"]["seconds"], 1))]
