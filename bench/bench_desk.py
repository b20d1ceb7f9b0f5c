"""``desk_queue``: p95 latency of each role's work queue (``GET /api/v1/desk/<queue>``: the first page with its
counts) on a district with 200,000 cases of which 20,000 are open, against the same list through the case API's
filters (``GET /api/v1/cases?status=…``, same account, same page size) in the same run.

The caseload is SYNTHETIC and made in SQL inside a transaction that is rolled back (the benchmark leaves no
trace): the demo's own (synthetic) cases of the district, topped up to that size (``_top_up``) with seeded
random points in Chaoyang placed in their unit grids, closed history over a year with its close and callback
events, open cases over the last fortnight spread over the open statuses, public sources (hotline, citizen,
Open311) for 40 % of them, dispatched cases sent to their grid's management party. Each queue is asked for by an
account of its role (the unit of the busiest party, the supervisor of the busiest team, asking nearest first
from a point in Chaoyang), through the app in-process (Flask test client, no network).

``BENCH_DESK_CASES`` / ``BENCH_DESK_OPEN`` / ``BENCH_DESK_REQUESTS`` change the sizes (a smoke run:
``tests/test_bench.py`` runs it on 2,000 cases).
"""

from __future__ import annotations

import gc
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bench.results import entry

DISTRICT = "110105"
CASES = int(os.environ.get("BENCH_DESK_CASES", "200000"))
OPEN = int(os.environ.get("BENCH_DESK_OPEN", "20000"))
REQUESTS = int(os.environ.get("BENCH_DESK_REQUESTS", "200"))
NEAR = (116.48, 39.93)  # lon, lat in Chaoyang: where the supervisor stands
PAGE = 20  # the queues' first page (desk.queries.DeskFilter's default, what the desk page asks for)
# Open statuses and their shares of the open cases (investigating only where the workflow has it).
OPEN_MIX = (("reported", 0.15), ("verified", 0.05), ("accepted", 0.10), ("dispatched", 0.45), ("fed_back", 0.20),
            ("checked", 0.03), ("investigating", 0.02))
DESK_DUE_INDEXES = (
    "CREATE INDEX IF NOT EXISTS cases_desk_verify_due ON cases (district_code, verify_due_at) "
    "WHERE status IN ('reported', 'verified') AND verify_due_at IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS cases_desk_check_due ON cases (district_code, check_due_at) "
    "WHERE status = 'fed_back'",
    "CREATE INDEX IF NOT EXISTS cases_desk_verify_grid ON cases (district_code, supervision_code) "
    "WHERE status = 'reported' AND verify_due_at IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS cases_desk_check_grid ON cases (district_code, supervision_code) "
    "WHERE status = 'fed_back'")
CLASSES = ("0102", "0201", "0505", "0501", "0504", "0104", "0103", "0506", "0101")


def build_caseload(conn: Connection, district: str, n: int, n_open: int, seed: float = 0.2026) -> dict[str, int]:
    """Replace the district's cases (in the caller's transaction) by ``n`` SYNTHETIC ones, ``n_open`` of them
    open; returns the count per status."""
    from citygrid.cases.workflow import STATES
    from citygrid.spatial.db import quiet_row_audit
    from citygrid.spatial.store import current_version_sql

    current = current_version_sql(":d")

    quiet_row_audit(conn, True)
    # A database migrated to 0014 before these indexes joined its desk section lacks them: made here
    # (same DDL as the migration, rolled back with the rest) so the bench measures what a migrated database has.
    for ddl in DESK_DUE_INDEXES:
        conn.execute(sa.text(ddl))
    n, n_open = _top_up(conn, district, n, n_open)
    mix = [(s, w) for s, w in OPEN_MIX if s in STATES]
    shares = np.array([w for _, w in mix]) / sum(w for _, w in mix)
    bounds = np.cumsum(np.round(shares * n_open)).astype(int).tolist()
    conn.execute(sa.text("SELECT setseed(:s)"), {"s": seed})
    conn.execute(sa.text(
        f"""WITH pts AS (SELECT row_number() OVER () AS i, p.geom
                          FROM (SELECT (ST_Dump(ST_GeneratePoints(geom, :n, 2026))).geom AS geom FROM districts
                                 WHERE district_code = :d) p),
                placed AS (SELECT p.i, p.geom, g.code, g.supervision_code, g.community_code, g.street_code,
                                  CASE WHEN p.i <= :n_open THEN (SELECT s FROM unnest(CAST(:statuses AS text[]),
                                       CAST(:bounds AS int[])) AS b(s, upto) WHERE p.i <= b.upto ORDER BY b.upto
                                       LIMIT 1)
                                       WHEN p.i % 20 = 0 THEN 'rejected' WHEN p.i % 2 = 0 THEN 'closed'
                                       ELSE 'evaluated' END AS status,
                                  (ARRAY['supervisor', 'supervisor', 'supervisor', 'hotline', 'hotline', 'citizen',
                                         'supervisor', 'supervisor', 'hotline', 'open311'])[1 + p.i % 10] AS source,
                                  CASE WHEN p.i <= :n_open THEN now() - random() * interval '14 days'
                                       ELSE now() - interval '14 days' - random() * interval '351 days' END AS at
                             FROM pts p
                             LEFT JOIN LATERAL (SELECT u.code, u.supervision_code, u.community_code, u.street_code
                                                  FROM unit_grids u
                                                 WHERE u.district_code = :d AND ST_Contains(u.geom, p.geom)
                                                   AND u.version_id = {current}
                                                 LIMIT 1) g ON true),
                owned AS (SELECT pl.*, (SELECT jsonb_build_object('code', pa.code, 'name', pa.name, 'kind', pa.kind)
                                          FROM grid_ownership o JOIN parties pa ON pa.district_code = o.district_code
                                                                             AND pa.party_id = o.party_id
                                         WHERE o.district_code = :d AND o.grid_kind = 'unit' AND o.grid_code = pl.code
                                           AND o.role = 'management' AND o.valid @> now() LIMIT 1) AS party
                            FROM placed pl)
           INSERT INTO cases (district_code, idempotency_key, kind, scheme, class_code, description, source,
                              reported_at, status, unit_grid_code, supervision_code, community_code, street_code,
                              deadline_at, verify_due_at, check_due_at, synthetic, attrs, geom)
           SELECT :d, 'bench-desk-' || i, 'event', 'cjt214', (CAST(:classes AS text[]))[1 + i % :nclasses],
                  '基准测试案件（合成）', source, at, status, code, supervision_code, community_code, street_code,
                  CASE WHEN status IN ('dispatched', 'fed_back', 'checked') THEN at + random() * interval '6 days' END,
                  CASE WHEN status = 'reported' AND source <> 'supervisor' THEN at + interval '1 day' END,
                  CASE WHEN status = 'fed_back' THEN now() + (random() - 0.5) * interval '2 days' END,
                  true,
                  jsonb_build_object('level', 'community')
                  || CASE WHEN status NOT IN ('reported', 'verified', 'accepted', 'rejected') AND party IS NOT NULL
                          THEN jsonb_build_object('dispatched_to', party) ELSE '{{}}' END,
                  geom
             FROM owned"""
    ), {"d": district, "n": n, "n_open": n_open, "statuses": [s for s, _ in mix], "bounds": bounds,
        "classes": list(CLASSES), "nclasses": len(CLASSES)})
    conn.execute(sa.text("ANALYZE cases"))  # the statistics of the new caseload, before reading it back
    # The history's close events (what the callback queue sorts by) and the callbacks of evaluated cases.
    conn.execute(sa.text(
        """INSERT INTO case_events (district_code, case_id, seq, at, action, from_status, to_status, actor, role)
           SELECT district_code, case_id, 1, reported_at + interval '3 days', 'close', 'checked', 'closed', 'bench',
                  'acceptor' FROM cases WHERE district_code = :d AND status IN ('closed', 'evaluated')
                                          AND idempotency_key LIKE 'bench-desk-%'
           UNION ALL
           SELECT district_code, case_id, 2, reported_at + interval '4 days', 'callback', 'closed', 'evaluated',
                  'bench', 'calltaker' FROM cases WHERE district_code = :d AND status = 'evaluated'
                                                    AND source <> 'supervisor'
                                                    AND idempotency_key LIKE 'bench-desk-%'"""), {"d": district})
    conn.execute(sa.text("ANALYZE cases"))
    conn.execute(sa.text("ANALYZE case_events"))
    return dict(conn.execute(sa.text("SELECT status, count(*) FROM cases WHERE district_code = :d GROUP BY 1"),
                             {"d": district}).all())


def _top_up(conn: Connection, district: str, n: int, n_open: int) -> tuple[int, int]:
    """How many cases, and of them open ones, to add to the district's (the demo's SYNTHETIC history) so that it
    holds ``n`` cases of which ``n_open`` are open. The district's cases stay: deleted in this transaction (which
    is rolled back, never committed) they would stay in every index as entries no scan may skip or mark dead,
    and the oldest-first queues would walk past them all on every request, which no deployment does (its
    deletions commit and the first scan past them marks them dead). A district holding more cases than that
    (a small smoke run) has them deleted and made anew."""
    from citygrid.cases.workflow import CLOSED_STATES

    total, open_ = conn.execute(sa.text(
        "SELECT count(*), count(*) FILTER (WHERE status <> ALL(CAST(:closed AS text[]))) FROM cases "
        "WHERE district_code = :d"), {"d": district, "closed": list(CLOSED_STATES)}).one()
    if total <= n and open_ <= n_open and n - total >= n_open - open_:
        return n - total, n_open - open_
    conn.execute(sa.text("DELETE FROM cases WHERE district_code = :d"), {"d": district})
    return n, n_open


def _accounts(conn: Connection, district: str) -> tuple[dict[str, str], dict[str, str | None]]:
    """A token per queue's account, made in the caller's transaction, and the ``party`` and ``team`` of the unit
    and supervisor accounts: the busiest unit and supervision team."""
    from citygrid.accounts import service as accounts

    party = conn.execute(sa.text(
        """SELECT attrs -> 'dispatched_to' ->> 'code' FROM cases WHERE district_code = :d AND status = 'dispatched'
            GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"""), {"d": district}).scalar()
    team = conn.execute(sa.text(
        """SELECT s.team_code FROM cases c JOIN supervision_grids s ON s.district_code = c.district_code
                                              AND s.code = c.supervision_code
            WHERE c.district_code = :d AND c.status IN ('reported', 'fed_back') GROUP BY 1
            ORDER BY count(*) DESC, 1 LIMIT 1"""), {"d": district}).scalar()
    made = {}
    for name, roles, extra in (("acceptor", ["acceptor"], {}), ("dispatcher", ["dispatcher"], {}),
                               ("unit", ["unit"], {"party": party}), ("supervisor", ["supervisor"], {"team": team}),
                               ("calltaker", ["calltaker"], {}), ("lead", ["lead"], {"district": district})):
        username = f"bench-desk-{name}"
        accounts.add_user(conn, username, roles, password=None, **extra)
        made[name] = accounts.issue_token(conn, username, label="bench desk", days=1)["token"]
    return made, {"party": party, "team": team}


# queue -> (account, the same list through the case API's filters)
PLAN = {
    "accept": ("acceptor", "status=reported"),
    "dispatch": ("dispatcher", "status=accepted"),
    "dispose": ("unit", "status=dispatched"),
    "verify": ("supervisor", "status=reported"),
    "check": ("supervisor", "status=fed_back"),
    "callback": ("calltaker", "status=closed"),
    "investigate": ("lead", "status=investigating"),
}


# queue -> (its cases beyond the district, their order): the exact path a queue's answer is compared with,
# written plainly (every case read, no cap, no index-shaped trick): :party and :team are the bench accounts'.
_TEAM = ("c.supervision_code IN (SELECT s.code FROM supervision_grids s WHERE s.district_code = c.district_code "
         "AND s.team_code = :team AND s.version_id = {current})")
_LAST_CLOSED = ("(SELECT max(e.at) FROM case_events e WHERE e.district_code = c.district_code "
                "AND e.case_id = c.case_id AND e.to_status = 'closed')")
_NEAR = "ST_Transform(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), ST_SRID(c.geom))"
EXACT = {
    "accept": ("c.status IN ('reported', 'verified')", "c.verify_due_at", "c.reported_at, c.case_id"),
    "dispatch": ("c.status = 'accepted'", None, "c.reported_at, c.case_id"),
    "dispose": ("c.status = 'dispatched' AND c.attrs -> 'dispatched_to' ->> 'code' = :party", "c.deadline_at",
                "c.deadline_at NULLS LAST, c.case_id"),
    "verify": (f"c.status = 'reported' AND c.verify_due_at IS NOT NULL AND {_TEAM}", "c.verify_due_at",
               f"ST_Distance(c.geom, {_NEAR}), c.case_id"),
    "check": (f"c.status = 'fed_back' AND {_TEAM}", "c.check_due_at", f"ST_Distance(c.geom, {_NEAR}), c.case_id"),
    "callback": (f"c.status = 'closed' AND c.source IN ('hotline', 'citizen', 'open311') AND {_LAST_CLOSED} "
                 "IS NOT NULL", None, f"{_LAST_CLOSED} DESC, c.case_id DESC"),
    "investigate": ("c.status = 'investigating'", None, "c.reported_at, c.case_id"),
}


def exact_queue(conn: Connection, queue: str, district: str, party: str | None, team: str | None,
                cap: int, page: int) -> dict:
    """The queue's counts (each at most ``cap``) and the case numbers of its first ``page`` cases by the exact
    path (``EXACT``), the verify and check queues nearest first from ``NEAR`` (lon, lat in EPSG:4326)."""
    from citygrid.desk.queues import DUE_SOON_HOURS
    from citygrid.spatial.store import current_version_sql

    where, due, order = EXACT[queue]
    where = where.replace("{current}", current_version_sql("c.district_code"))
    params = {"d": district, "party": party, "team": team, "lon": NEAR[0], "lat": NEAR[1],
              "soon": DUE_SOON_HOURS * 3600}
    due = due or "CAST(NULL AS timestamptz)"
    counted = conn.execute(sa.text(
        f"""SELECT count(*) AS total, count(*) FILTER (WHERE {due} < now()) AS overdue,
                   count(*) FILTER (WHERE {due} >= now() AND {due} < now() + make_interval(secs => :soon)) AS due_soon
              FROM cases c WHERE c.district_code = :d AND {where}"""), params).mappings().one()
    ids = conn.execute(sa.text(f"SELECT c.case_id FROM cases c WHERE c.district_code = :d AND {where} "
                               f"ORDER BY {order} LIMIT :page"), {**params, "page": page}).scalars().all()
    return {"counts": {k: min(int(v), cap) for k, v in counted.items()}, "case_ids": list(ids)}


def _check_answer(conn: Connection, queue: str, body: dict, scope: dict[str, str | None]) -> None:
    """Fail unless the queue's answer (counts and first page) is what the exact path gives."""
    from citygrid.desk.queries import COUNT_CAP

    exact = exact_queue(conn, queue, DISTRICT, scope["party"], scope["team"], COUNT_CAP, PAGE)
    got = {"counts": body["counts"], "case_ids": [c["case_id"] for c in body["cases"]]}
    assert got == exact, (queue, got, exact)
    # Every dispatch preview finds its party, as in a deployment whose grids have owners: the demo's grids (and
    # their derived owners) are in effect from the start of its synthetic history, and a bench that measured
    # the "no responsible party" answer of every row (grids in effect from the load only) measured the wrong
    # path, skipping the owners it reads and the party it builds.
    unplaced = [c["case_id"] for c in body["cases"] if "suggestion" in c and not c["suggestion"]["party"]]
    assert not unplaced, (queue, "cases with no party to suggest (a bench database loaded before the demo's "
                                 "grids took effect at its history's start: drop citygrid_bench and rerun)", unplaced)


def _client(conn: Connection, database: str):
    """The app in-process, each request in a savepoint of ``conn``'s transaction, released when the request
    succeeds and rolled back when it fails, as the app's own transactions commit or roll back; the caller's
    transaction is rolled back at the end, which undoes all of them.

    (Rolled back after every request, psycopg forgets the connection's prepared statements at each rollback and
    deallocates them, so no statement of either side was ever prepared; in a deployment a request's
    transaction commits and the statements a worker's connection has prepared stay.)"""
    from citygrid.app import create_app
    from citygrid.webmap.context import Backend

    @contextmanager
    def connect() -> Iterator[Connection]:
        with conn.begin_nested():
            yield conn

    return create_app({"CITYGRID_BACKEND": Backend(engine=None, connect=connect, database=database),
                       "TESTING": True}).test_client()


def _timed_get(client, url: str, token: str) -> float:
    t0 = time.perf_counter()
    response = client.get(url, headers={"Authorization": f"Bearer {token}"})
    elapsed = time.perf_counter() - t0
    assert response.status_code == 200, (url, response.status_code, response.get_data(as_text=True)[:300])
    return elapsed


def _p95(values: list[float]) -> float:
    return float(np.percentile(np.array(values), 95))


def measure(conn: Connection, database: str, n: int = CASES, n_open: int = OPEN, requests: int = REQUESTS) -> dict:
    """Build the caseload in ``conn``'s transaction and time every queue against its case-API list."""
    from citygrid.cases.workflow import STATES

    t0 = time.perf_counter()
    statuses = build_caseload(conn, DISTRICT, n, n_open)
    build_s = time.perf_counter() - t0
    tokens, scope = _accounts(conn, DISTRICT)
    client = _client(conn, database)
    ours: dict[str, list[float]] = {}
    anchors: dict[str, list[float]] = {}
    totals = {}
    capped: list[str] = []  # the queues whose total reached desk.queries.COUNT_CAP (they hold at least that many)
    for queue, (account, filters) in PLAN.items():
        if filters.removeprefix("status=") not in STATES:
            continue
        near = f"&near={NEAR[0]},{NEAR[1]}" if queue in ("verify", "check") else ""
        url = f"/api/v1/desk/{queue}?district={DISTRICT}{near}"
        anchor_url = f"/api/v1/cases?district={DISTRICT}&{filters}&limit={PAGE}"
        first = client.get(url, headers={"Authorization": f"Bearer {tokens[account]}"})  # warm-up, and the count
        body = first.get_json()
        _check_answer(conn, queue, body, scope)
        totals[queue] = body["counts"]["total"]
        if "total" in body["counts_at_least"]:
            capped.append(queue)
        _timed_get(client, anchor_url, tokens[account])
        # Interleaved, so both see the same machine, each first in every other pair; with the collector
        # paused, as timeit does, so that a collection of the whole process's garbage lands on neither side's
        # requests by chance (a p95 is the tenth-slowest of 200: one pause moves it).
        gc.collect()
        gc.disable()
        try:
            for i in range(requests):
                for side in ((ours, url), (anchors, anchor_url))[:: 1 if i % 2 else -1]:
                    side[0].setdefault(queue, []).append(_timed_get(client, side[1], tokens[account]))
        finally:
            gc.enable()
    # Ratios from the p95s as measured: rounded to 0.1 ms first, a 3 ms pair moved its ratio by up to 3 %.
    raw = {q: _p95(v) for q, v in ours.items()}
    raw_anchor = {q: _p95(v) for q, v in anchors.items()}
    per_queue = {q: round(v, 4) for q, v in raw.items()}
    per_anchor = {q: round(v, 4) for q, v in raw_anchor.items()}
    ratios = {q: round(raw[q] / raw_anchor[q], 3) for q in raw}
    # The row's ratio is the highest of the queues' own ratios (each queue against its own list), not the worst
    # queue's p95 against the worst list's: that one set one list against another (0.84 on a run where the
    # dispatch queue was 1.10 against its list).
    gating = max(ratios, key=ratios.__getitem__)
    worst = max(per_queue.values())
    return entry(
        "desk_queue", sum(len(v) for v in ours.values()), raw[gating],
        f"the same lists through GET /api/v1/cases?status=… (same accounts, first page of {PAGE}; no counts): the "
        "p95 of the list of the queue whose ratio is highest", raw_anchor[gating],
        f"ours_s is the p95 of the queue whose p95 is the highest against its own list's (ratio_queue), over "
        f"{requests} requests per queue of GET /api/v1/desk/<queue> (first page "
        f"of {PAGE} with total, overdue and due_soon counts, each exact below desk.queries.COUNT_CAP; the verify "
        "and check queues nearest first from a point; the dispatch queue with each case's suggested party, level and "
        "deadline, every one naming a party), "
        f"each by an account of its role, on Chaoyang with {n:,} SYNTHETIC cases of which {n_open:,} are open, made "
        "in a rolled-back transaction (the demo's own cases kept and topped up); in-process (Flask test client, no "
        "network), same database and run, requests interleaved with the garbage collector paused (as timeit does); "
        "p95_s is the slowest queue's p95",
        p95_s=round(worst, 4), ratio_queue=gating, queue_p95_s=per_queue,
        anchor_p95_s=round(max(per_anchor.values()), 4), anchor_queue_p95_s=per_anchor, queue_ratio=ratios,
        queue_ratio_geomean=round(math.exp(sum(math.log(r) for r in ratios.values()) / len(ratios)), 3),
        queue_totals=totals, queue_totals_at_least=capped, cases=n, open_cases=n_open, statuses=statuses,
        build_s=round(build_s, 1),
        target_p95_s=0.1, target_ratio=1.0)


def run(wanted: set[str]) -> list[dict]:
    if "desk_queue" not in wanted:
        return []
    from bench.bench_census import DATABASE, _settings
    from bench.common import demo_connection, vacuum
    from citygrid import deploy

    deploy.load_demo(_settings(), "chaoyang")
    vacuum(DATABASE, "cases", "case_events")
    with demo_connection(DATABASE) as conn:
        return [measure(conn, DATABASE)]
