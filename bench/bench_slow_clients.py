"""``slow_clients``: p95 of ``GET /healthz`` and of a case report (``POST /api/v1/cases``) while 200 slow
clients hold connections to ``citygrid serve --prod`` on the bench database, over loopback.

Each slow client (slowloris-style) opens a connection, sends a request line and then one byte of a header that
never ends about once a second; when the server closes it (the head deadline, ``citygrid.webmap.slowclients``)
it connects again, so about 200 connections are held for the whole phase. They stop by themselves at the end of
the phase (``BENCH_SLOW_SECONDS``, default 30 s). Meanwhile ``PROBES`` paced probe clients each send a request
every ``1 / PROBE_RATE`` s on a new connection, alternating ``/healthz`` and an authenticated report; latency
counts from the scheduled send time (open loop) and a request that fails counts as the client timeout.
The anchor is the same probes on the same server in the same run with no slow clients (after a warm-up).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
import uuid

import numpy as np
import sqlalchemy as sa

from bench.bench_census import DATABASE, _settings
from bench.common import bench_token, chaoyang_lonlats, prod_server, run_clients
from bench.results import entry
from citygrid.spatial import db

SLOW_CLIENTS = 200
PROBES = 4
PROBE_RATE = 4.0  # requests per second per probe client
PROBE_TIMEOUT_S = 30.0
TARGET_P95_S = 0.2
WARM_UP_S = 5.0


def _slow_clients(port: int, count: int, until: float, held: list[int], stats: dict[str, int]) -> None:
    """Keep ``count`` trickling connections open until ``until`` (monotonic); one thread for all of them.
    ``held`` receives the number of open connections once a second; ``stats`` counts connects and closes."""
    socks: dict[int, socket.socket] = {}

    def connect(k: int) -> None:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.setblocking(False)
            s.send(f"GET /healthz?slow={k} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ".encode())
            socks[k] = s
            stats["connects"] += 1
        except OSError:
            socks.pop(k, None)
            stats["refused"] += 1

    for k in range(count):
        connect(k)
    while (now := time.monotonic()) < until:
        for k in range(count):
            s = socks.get(k)
            if s is None:
                connect(k)
                continue
            try:
                s.send(b"a")  # one more byte of a header line that never ends
                closed = False
                try:
                    s.recv(4096, socket.MSG_PEEK)  # an answer (408) or the end of the stream
                    closed = True
                except BlockingIOError:
                    pass
            except OSError:
                closed = True
            if closed:  # the server gave up on it: come back, as an attacker would
                s.close()
                stats["closed_by_server"] += 1
                connect(k)
        held.append(len(socks))
        time.sleep(max(0.0, 1.0 - (time.monotonic() - now)))
    for s in socks.values():
        s.close()


def _probe(port: int, seconds: float, report) -> dict[str, list[float]]:
    """``PROBES`` paced clients alternating ``/healthz`` and a report, each request on a new connection."""
    latencies: dict[str, list[float]] = {"healthz": [], "report": []}
    failures: list[str] = []
    lock = threading.Lock()
    begin = time.perf_counter()

    def client(k: int) -> None:
        due = begin + k / (PROBES * PROBE_RATE)
        i = 0
        while due < begin + seconds:
            if (wait := due - time.perf_counter()) > 0:
                time.sleep(wait)
            kind = "healthz" if (i + k) % 2 == 0 else "report"
            method, path, body, headers = ("GET", "/healthz", None, {}) if kind == "healthz" else report(k, i)
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=PROBE_TIMEOUT_S)
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                conn.close()
                ok = response.status in (200, 201)
                problem = f"{kind} {response.status}"
            except (OSError, http.client.HTTPException) as error:
                ok, problem = False, f"{kind} {type(error).__name__}"
            elapsed = time.perf_counter() - due if ok else PROBE_TIMEOUT_S
            with lock:
                latencies[kind].append(elapsed)
                if not ok:
                    failures.append(problem)
            due += 1 / PROBE_RATE
            i += 1

    run_clients(client, PROBES)
    return {**latencies, "failures": failures}


def _p95(values: list[float]) -> float:
    return float(np.percentile(np.array(values), 95)) if values else float("nan")


def run(wanted: set[str]) -> list[dict]:
    if "slow_clients" not in wanted:
        return []
    seconds = float(os.environ.get("BENCH_SLOW_SECONDS", "30"))
    count = int(os.environ.get("BENCH_SLOW_CLIENTS", str(SLOW_CLIENTS)))
    lons, lats = chaoyang_lonlats(2000, seed=18)
    token = bench_token(DATABASE)
    run_id = uuid.uuid4().hex[:8]

    def reports(phase: str):
        def report(k: int, i: int):
            j = (k * 500 + i) % len(lons)
            body = json.dumps({"lon": float(lons[j]), "lat": float(lats[j]), "kind": "event", "class_code": "0102",
                               "description": "慢速客户端基准测试上报", "source": "supervisor"})
            return "POST", "/api/v1/cases", body, {"Content-Type": "application/json",
                                                   "Authorization": f"Bearer {token}",
                                                   "Idempotency-Key": f"slow-{run_id}-{phase}-{k}-{i}"}
        return report

    held: list[int] = []
    stats = {"connects": 0, "refused": 0, "closed_by_server": 0}
    with prod_server(DATABASE, "slow_clients_server.log") as port:
        _probe(port, WARM_UP_S, reports("warm-up"))  # every worker past its first requests
        anchor = _probe(port, seconds, reports("anchor"))
        settle = 3.0
        attack = threading.Thread(target=_slow_clients,
                                  args=(port, count, time.monotonic() + settle + seconds + 1, held, stats))
        attack.start()
        time.sleep(settle)  # every slow client connected and trickling
        ours = _probe(port, seconds, reports("slow"))
        attack.join()
    engine = db.make_engine(db.database_url(_settings()))
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM case_events WHERE idempotency_key LIKE :p"), {"p": f"%|slow-{run_id}-%"})
        conn.execute(sa.text("DELETE FROM cases WHERE idempotency_key LIKE :p"), {"p": f"%|slow-{run_id}-%"})
    engine.dispose()
    ours_p95 = max(_p95(ours["healthz"]), _p95(ours["report"]))
    anchor_p95 = max(_p95(anchor["healthz"]), _p95(anchor["report"]))
    return [entry(
        "slow_clients", len(ours["healthz"]) + len(ours["report"]), ours_p95,
        "the same probes on the same server, same run, without slow clients", anchor_p95,
        f"ours_s is the worse of the p95 latencies of GET /healthz and POST /api/v1/cases (authenticated report) "
        f"from {PROBES} probe clients at {PROBE_RATE:g} requests/s each (open loop, new connection per request, "
        f"failures count as {PROBE_TIMEOUT_S:g} s) over {seconds:g} s while {count} slow clients trickle one "
        "header byte a second (reconnecting when closed) to `citygrid serve --prod`; anchor_s the same without them",
        slow_clients=count, held_connections_min=min(held[2:] or held or [0]),
        held_connections_median=int(np.median(held)) if held else 0, **stats,
        healthz_p95_s=round(_p95(ours["healthz"]), 4), report_p95_s=round(_p95(ours["report"]), 4),
        healthz_p50_s=round(float(np.percentile(ours["healthz"], 50)), 4),
        report_p50_s=round(float(np.percentile(ours["report"], 50)), 4),
        anchor_healthz_p95_s=round(_p95(anchor["healthz"]), 4), anchor_report_p95_s=round(_p95(anchor["report"]), 4),
        failures=len(ours["failures"]), anchor_failures=len(anchor["failures"]),
        failure_kinds=sorted(set(ours["failures"]))[:10], target_p95_s=TARGET_P95_S)]
