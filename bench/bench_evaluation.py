"""``evaluation_month``: one month's evaluation (every kind: supervisors, teams, units, streets, communities) over
a district with a million cases and their event timelines, ours (``evaluation.queries.evaluate``: one aggregated
SQL pass per kind, then scores) against a pandas groupby computing the same counts from the raw rows it reads
(the month's events, the month's cases, the accept / close / report events of those cases, the supervisors'
assignments and the grid-to-team map), in the same run. The counts of every row must be identical
(``identical``).

The caseload is SYNTHETIC, made in SQL once into the benchmark's own database (``citygrid_bench_eval``, the
Chaoyang demo without its history) and kept for the next runs of the same size and month:
``BENCH_EVAL_CASES`` cases (default 1,000,000) spread evenly over the 24 local months before the current one,
each in a unit grid of Chaoyang's current version (its supervision grid, street and community with it), 60 %
reported by the supervisor of their supervision grid (a named person, assigned for the whole window) and the
rest by the hotline or citizens (then verified by that supervisor); 5 % rejected, 5 % handed back and
re-dispatched to another party, 15 % failing their first check (rework), the others checked and closed; public
reports get a callback (80 % satisfied). Deadlines and time limits are drawn so roughly half of the feedbacks,
verifications and checks are late. The evaluated month is the last of the 24.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bench.results import entry

DISTRICT = "110105"
DATABASE = "citygrid_bench_eval"
CASES = int(os.environ.get("BENCH_EVAL_CASES", "1000000"))
REPEAT = int(os.environ.get("BENCH_EVAL_REPEAT", "2"))
MONTHS = 24
PARTIES = 200
COUNTS = {
    "supervisors": ("reports", "valid_reports", "grid_cases", "missed_cases", "verifies_due", "verifies_timely",
                    "checks_due", "checks_timely"),
    "teams": ("reports", "valid_reports", "grid_cases", "missed_cases", "verifies_due", "verifies_timely",
              "checks_due", "checks_timely"),
    "units": ("dispatches", "hand_backs", "feed_backs_due", "feed_backs_on_time", "checks", "check_fails",
              "dispatched_cases", "closed_cases", "self_initiated_fixes"),
    "streets": ("caseload", "filed_cases", "closed_cases", "feed_backs_due", "feed_backs_on_time", "callbacks",
                "satisfied_callbacks"),
    "communities": ("caseload", "filed_cases", "closed_cases", "feed_backs_due", "feed_backs_on_time",
                    "callbacks", "satisfied_callbacks"),
}

# One row per possible event of a case's timeline; ``keep`` says which cases have it. Times from the case's
# report time t: fb = the first feedback, chk = the first check, fb2 / chk2 the rework's (15 % of cases).
_TIMELINE = """
INSERT INTO case_events (district_code, case_id, seq, at, action, from_status, to_status, actor, role, due_at,
                         party_code)
SELECT d.district_code, d.case_id, e.seq, e.at, e.action, '', e.to_status, e.actor, e.role, e.due, e.party
  FROM bench_eval_draws d
 CROSS JOIN LATERAL (VALUES
    (1, d.t, 'report', 'reported', d.reporter, d.source, NULL::timestamptz, NULL, true),
    (2, d.t + d.r1 * interval '8 hours', 'verify', 'verified', d.sup, 'supervisor', d.t + interval '4 hours',
        NULL, d.source <> 'supervisor'),
    (3, d.t + interval '10 hours', 'reject', 'rejected', 'bench-acceptor', 'acceptor', NULL, NULL, d.r2 < 0.05),
    (4, d.t + interval '10 hours', 'accept', 'accepted', 'bench-acceptor', 'acceptor', NULL, NULL, d.r2 >= 0.05),
    (5, d.t + interval '11 hours', 'dispatch', 'dispatched', 'bench-dispatcher', 'dispatcher', NULL, d.party,
        d.r2 >= 0.05),
    (6, d.t + interval '20 hours', 'hand_back', 'accepted', 'bench-unit', 'unit', NULL, d.party,
        d.r2 >= 0.05 AND d.r2 < 0.10),
    (7, d.t + interval '22 hours', 'dispatch', 'dispatched', 'bench-dispatcher', 'dispatcher', NULL, d.party2,
        d.r2 >= 0.05 AND d.r2 < 0.10),
    (8, d.fb, 'feed_back', 'fed_back', 'bench-unit', 'unit', d.t + interval '3 days', d.final_party, d.r2 >= 0.05),
    (9, d.chk, 'check_fail', 'accepted', d.sup, 'supervisor', d.fb + interval '12 hours', d.final_party,
        d.r2 >= 0.05 AND d.r5 < 0.15),
    (10, d.chk + interval '2 hours', 'dispatch', 'dispatched', 'bench-dispatcher', 'dispatcher', NULL,
         d.final_party, d.r2 >= 0.05 AND d.r5 < 0.15),
    (11, d.fb2, 'feed_back', 'fed_back', 'bench-unit', 'unit', d.chk + interval '2 days', d.final_party,
         d.r2 >= 0.05 AND d.r5 < 0.15),
    (12, d.chk2, 'check_pass', 'checked', d.sup, 'supervisor', d.fb2 + interval '12 hours', d.final_party,
         d.r2 >= 0.05 AND d.r5 < 0.15),
    (13, d.chk, 'check_pass', 'checked', d.sup, 'supervisor', d.fb + interval '12 hours', d.final_party,
         d.r2 >= 0.05 AND d.r5 >= 0.15),
    (14, d.done, 'close', 'closed', 'bench-acceptor', 'acceptor', NULL, d.final_party, d.r2 >= 0.05),
    (15, d.done + interval '1 day', 'callback', CASE WHEN d.r6 < 0.8 THEN 'evaluated' ELSE 'accepted' END,
         'bench-calltaker', 'calltaker', NULL, NULL, d.r2 >= 0.05 AND d.source <> 'supervisor')
 ) AS e(seq, at, action, to_status, actor, role, due, party, keep)
 WHERE e.keep"""


def _window(zone: Any, now: dt.datetime) -> tuple[dt.datetime, dt.datetime, str]:
    """(start of the first month, start of the current month, the evaluated month YYYY-MM) in ``zone``."""
    local = now.astimezone(zone)
    end = dt.datetime(local.year, local.month, 1, tzinfo=zone)
    month = (end - dt.timedelta(days=1)).replace(day=1)
    start_index = end.year * 12 + end.month - 1 - MONTHS
    start = dt.datetime(start_index // 12, start_index % 12 + 1, 1, tzinfo=zone)
    return start, end, month.strftime("%Y-%m")


def month_of(end: dt.datetime) -> str:
    """The evaluated month (the last before ``end``), YYYY-MM."""
    return (end - dt.timedelta(days=1)).strftime("%Y-%m")


def ready(conn: Connection, n: int, end: dt.datetime) -> bool:
    """Whether the database holds this size's caseload for this window already (made by an earlier run)."""
    return bool(conn.execute(sa.text(
        """SELECT count(*) = :n AND bool_or(idempotency_key = :last) FROM cases WHERE district_code = :d"""),
        {"n": n, "d": DISTRICT, "last": f"bench-eval-{month_of(end)}-{n}"}).scalar())


def _replica(conn: Connection, on: bool) -> bool:
    """Skip (``on``) or apply again the per-row trigger and foreign-key checks for this transaction; False when
    the account may not (a server's non-superuser account: the rows are then checked, only slower)."""
    try:
        with conn.begin_nested():
            conn.execute(sa.text(f"SET LOCAL session_replication_role = {'replica' if on else 'origin'}"))
        return True
    except sa.exc.DBAPIError:
        return False


def build(conn: Connection, n: int, start: dt.datetime, end: dt.datetime) -> dict[str, int]:
    """Replace the district's cases (in the caller's transaction) by ``n`` SYNTHETIC ones with their timelines,
    and name one supervisor per supervision grid; returns the counts made."""
    from citygrid.spatial.db import quiet_row_audit
    from citygrid.spatial.store import current_version_sql

    quiet_row_audit(conn, True)
    params = {"d": DISTRICT, "n": n, "t0": start, "t1": end, "prefix": f"bench-eval-{month_of(end)}-"}
    conn.execute(sa.text("DELETE FROM case_events WHERE district_code = :d"), params)
    conn.execute(sa.text("DELETE FROM cases WHERE district_code = :d"), params)
    conn.execute(sa.text("DELETE FROM people WHERE district_code = :d AND username LIKE 'bench-sup-%'"), params)
    # The rows below are consistent by construction: their foreign-key and trigger checks (one per row, eight
    # million rows) are skipped for this transaction only, which makes the generation several times faster.
    replica = _replica(conn, True)
    conn.execute(sa.text("SELECT setseed(0.2026)"))
    parties = [r[0] for r in conn.execute(sa.text(
        "SELECT code FROM parties WHERE district_code = :d AND kind IN ('street_office', 'community', "
        "'department', 'unit') ORDER BY code LIMIT :k"), {**params, "k": PARTIES})]
    conn.execute(sa.text(f"""
WITH g AS (SELECT row_number() OVER (ORDER BY code) - 1 AS k, code, supervision_code, street_code, community_code
             FROM unit_grids WHERE district_code = :d AND version_id = {current_version_sql(':d')}),
     size AS (SELECT count(*) AS m FROM g),
     spot AS (SELECT ST_PointOnSurface(geom) AS geom FROM districts WHERE district_code = :d)
INSERT INTO cases (district_code, idempotency_key, kind, scheme, class_code, description, source, reported_at,
                   status, unit_grid_code, supervision_code, community_code, street_code, synthetic, geom)
SELECT :d, :prefix || i, 'event', 'cjt214', '0102', '考核基准（合成）',
       (ARRAY['supervisor', 'supervisor', 'hotline', 'supervisor', 'citizen', 'supervisor', 'hotline',
              'supervisor', 'supervisor', 'hotline'])[1 + (i * 7) % 10],
       :t0 + (i - random()) / :n * (CAST(:t1 AS timestamptz) - :t0), 'closed', g.code, g.supervision_code,
       g.community_code, g.street_code, true, spot.geom
  FROM generate_series(1, :n) AS i
  CROSS JOIN size CROSS JOIN spot
  JOIN g ON g.k = (CAST(i AS bigint) * 7919) % size.m"""), params)
    conn.execute(sa.text("""
CREATE TEMP TABLE bench_eval_draws ON COMMIT DROP AS
SELECT x.*, x.t + interval '1 day' + x.r3 * interval '3 days' AS fb,
       x.t + interval '1 day' + x.r3 * interval '3 days' + x.r4 * interval '1 day' AS chk,
       x.t + interval '2 days' + x.r3 * interval '3 days' + x.r4 * interval '1 day' AS fb2,
       x.t + interval '2 days' + x.r3 * interval '3 days' + x.r4 * interval '2 days' AS chk2,
       x.t + interval '2 days' + x.r3 * interval '3 days' + x.r4 * interval '2 days' + interval '2 hours' AS done,
       CASE WHEN x.r2 >= 0.05 AND x.r2 < 0.10 THEN x.party2 ELSE x.party END AS final_party
  FROM (SELECT c.district_code, c.case_id, c.reported_at AS t, c.source,
               'bench-sup-' || lower(c.supervision_code) AS sup,
               CASE WHEN c.source = 'supervisor' THEN 'bench-sup-' || lower(c.supervision_code)
                    ELSE 'bench-calltaker' END AS reporter,
               (CAST(:parties AS text[]))[1 + c.case_id % :np] AS party,
               (CAST(:parties AS text[]))[1 + (c.case_id + 1) % :np] AS party2,
               random() AS r1, random() AS r2, random() AS r3, random() AS r4, random() AS r5, random() AS r6
          FROM cases c WHERE c.district_code = :d) x"""), {**params, "parties": parties, "np": len(parties)})
    conn.execute(sa.text(_TIMELINE))
    conn.execute(sa.text(f"""
WITH sg AS (SELECT code FROM supervision_grids WHERE district_code = :d AND version_id = {current_version_sql(':d')}),
     made AS (INSERT INTO people (district_code, name, role, username, synthetic)
              SELECT :d, 'bench supervisor ' || code, 'supervisor', 'bench-sup-' || lower(code), true FROM sg
              RETURNING person_id, username)
INSERT INTO person_assignments (district_code, person_id, role, target_code, valid)
SELECT :d, m.person_id, 'supervisor', upper(substr(m.username, 11)), tstzrange(:t0, :t1) FROM made m"""), params)
    if replica:
        _replica(conn, False)
    for table in ("cases", "case_events", "people", "person_assignments"):
        conn.execute(sa.text(f"ANALYZE {table}"))
    return {"cases": n, "events": conn.execute(sa.text("SELECT count(*) FROM case_events WHERE district_code = :d"),
                                               params).scalar_one(), "parties": len(parties)}


def ours(conn: Connection, month: str, now: dt.datetime) -> dict[str, list[dict[str, Any]]]:
    """Every kind's ranking through the evaluation's own queries (scores and ranks included)."""
    from citygrid.evaluation import queries
    from citygrid.evaluation.indicators import KINDS
    from citygrid.evaluation.scores import EvaluationRules

    rules = EvaluationRules()
    return {kind: queries.evaluate(conn, rules, DISTRICT, month, kind, now=now)["rows"] for kind in KINDS}


def _frames(conn: Connection, start: dt.datetime, end: dt.datetime) -> dict[str, pd.DataFrame]:
    """The raw rows the pandas reference reads (no aggregation in SQL)."""
    p = {"d": DISTRICT, "start": start, "end": end}
    read = lambda sql, **extra: pd.read_sql(sa.text(sql), conn, params={**p, **extra})  # noqa: E731
    events = read("""SELECT e.case_id, e.seq, e.action, e.actor, e.role, e.at, e.due_at, e.party_code, e.to_status,
                            c.source, c.supervision_code, c.street_code, c.community_code,
                            c.attrs -> 'dispatched_to' ->> 'code' AS case_party
                       FROM case_events e JOIN cases c ON c.district_code = e.district_code AND c.case_id = e.case_id
                      WHERE e.district_code = :d AND e.at >= :start AND e.at < :end""")
    cases = read("""SELECT case_id, source, supervision_code, street_code, community_code, reported_at FROM cases
                     WHERE district_code = :d AND reported_at >= :start AND reported_at < :end""")
    ids = sorted(set(cases.case_id) | set(events.case_id[events.action.isin(["report", "close"])]))
    steps = read("""SELECT case_id, seq, action, at, actor FROM case_events
                     WHERE district_code = :d AND case_id = ANY(:ids) AND action IN ('report', 'accept', 'close')""",
                 ids=[int(i) for i in ids])
    held = read("""SELECT p.username, a.target_code, lower(a.valid) AS lo, upper(a.valid) AS hi
                     FROM person_assignments a JOIN people p USING (district_code, person_id)
                    WHERE a.district_code = :d AND a.role = 'supervisor' AND p.username IS NOT NULL""")
    grids = read("""SELECT g.code, g.team_code, g.version_id, v.effective_from < :end AS in_force
                      FROM supervision_grids g JOIN grid_versions v USING (district_code, version_id)
                     WHERE g.district_code = :d AND v.effective_from IS NOT NULL AND g.team_code IS NOT NULL""")
    users = read("SELECT username, party_code FROM users WHERE party_code IS NOT NULL")
    areas = read("SELECT code, level FROM admin_areas WHERE district_code = :d")
    return {"events": events, "cases": cases, "steps": steps, "held": held, "grids": grids, "users": users,
            "areas": areas}


def _acts(ev: pd.DataFrame, accepted: set[int]) -> pd.DataFrame:
    """reports, valid_reports, verifies_*, checks_* per ``code`` of supervisor events."""
    check = ev.action.isin(["check_pass", "check_fail"])
    timely = ev["at"] <= ev.due_at
    flags = pd.DataFrame({
        "code": ev.code, "reports": ev.action == "report",
        "valid_reports": (ev.action == "report") & ev.case_id.isin(accepted),
        "verifies_due": (ev.action == "verify") & ev.due_at.notna(),
        "verifies_timely": (ev.action == "verify") & timely,
        "checks_due": check & ev.due_at.notna(), "checks_timely": check & timely})
    return flags.groupby("code").sum()


def reference(conn: Connection, start: dt.datetime, end: dt.datetime) -> dict[str, dict[str, dict[str, int]]]:
    """The same counts as ``ours``, by pandas groupby over the raw rows of ``_frames``."""
    f = _frames(conn, start, end)
    ev, cs, steps = f["events"], f["cases"], f["steps"]
    accepted = set(steps.case_id[steps.action == "accept"])
    reporter = steps[steps.action == "report"].sort_values("seq").drop_duplicates("case_id").set_index(
        "case_id").actor
    sup_ev = ev[(ev.role == "supervisor") & ev.action.isin(["report", "verify", "check_pass", "check_fail"])]
    out: dict[str, dict[str, dict[str, int]]] = {}
    # supervisors
    acts = _acts(sup_ev.assign(code=sup_ev.actor), accepted)
    h = cs.merge(f["held"], left_on="supervision_code", right_on="target_code")
    h = h[(h.reported_at >= h.lo) & (h.hi.isna() | (h.reported_at < h.hi))]
    h = h.assign(missed=(h.source != "supervisor") | (h.case_id.map(reporter) != h.username))
    grid = pd.DataFrame({"grid_cases": h.groupby("username").case_id.nunique(),
                         "missed_cases": h[h.missed].groupby("username").case_id.nunique()})
    out["supervisors"] = _rows(acts.join(grid, how="outer"), "supervisors")
    # teams
    g = f["grids"].sort_values(["code", "in_force", "version_id"], ascending=[True, False, False]) \
        .drop_duplicates("code").set_index("code").team_code
    team_ev = sup_ev.assign(code=sup_ev.supervision_code.map(g)).dropna(subset=["code"])
    tc = cs.assign(code=cs.supervision_code.map(g)).dropna(subset=["code"])
    tgrid = pd.DataFrame({"grid_cases": tc.groupby("code").size(),
                          "missed_cases": (tc.source != "supervisor").groupby(tc.code).sum()})
    out["teams"] = _rows(_acts(team_ev, accepted).join(tgrid, how="outer"), "teams")
    out["units"] = _units(ev, steps, f["users"])
    for kind, level, col in (("streets", "street", "street_code"), ("communities", "community", "community_code")):
        known = set(f["areas"].code[f["areas"].level == level])
        out[kind] = _areas(ev, cs, steps, col, known, end)
    return out


def _units(ev: pd.DataFrame, steps: pd.DataFrame, users: pd.DataFrame) -> dict[str, dict[str, int]]:
    ev = ev.assign(party_code=ev.party_code.fillna(ev.case_party))  # as ours: the case's party where none
    u = ev[ev.party_code.notna() & ev.action.isin(["dispatch", "hand_back", "feed_back", "check_pass",
                                                   "check_fail", "close"])]
    a = u.action
    counts = pd.DataFrame({
        "code": u.party_code, "dispatches": a == "dispatch", "hand_backs": a == "hand_back",
        "feed_backs_due": (a == "feed_back") & u.due_at.notna(),
        "feed_backs_on_time": (a == "feed_back") & (u["at"] <= u.due_at),
        "checks": a.isin(["check_pass", "check_fail"]), "check_fails": a == "check_fail"}).groupby("code").sum()
    per_case = pd.DataFrame({"code": u.party_code, "case_id": u.case_id, "d": a == "dispatch", "c": a == "close"}) \
        .groupby(["code", "case_id"]).max()
    cases_of = pd.DataFrame({"dispatched_cases": per_case.d.groupby("code").sum(),
                             "closed_cases": (per_case.d & per_case.c).groupby("code").sum()})
    reports = steps[steps.action == "report"].merge(users, left_on="actor", right_on="username")
    closes = u[a == "close"].merge(reports[["case_id", "party_code"]], on=["case_id", "party_code"])
    own = closes.groupby("party_code").case_id.nunique().rename("self_initiated_fixes")
    return _rows(counts.join(cases_of).join(own), "units")


def _areas(ev: pd.DataFrame, cs: pd.DataFrame, steps: pd.DataFrame, col: str, known: set[str],
           end: dt.datetime) -> dict[str, dict[str, int]]:
    before = steps[steps["at"] < end]
    filed = set(before.case_id[before.action == "accept"])
    closed = set(before.case_id[before.action == "close"])
    c = cs[cs[col].notna()]
    f_ = c.case_id.isin(filed)
    load = pd.DataFrame({"caseload": c.groupby(col).size(), "filed_cases": f_.groupby(c[col]).sum(),
                         "closed_cases": (f_ & c.case_id.isin(closed)).groupby(c[col]).sum()})
    e = ev[ev[col].notna() & ev.action.isin(["feed_back", "callback"])]
    fb, cb = e.action == "feed_back", e.action == "callback"
    evc = pd.DataFrame({col: e[col], "feed_backs_due": fb & e.due_at.notna(),
                        "feed_backs_on_time": fb & (e["at"] <= e.due_at), "callbacks": cb,
                        "satisfied_callbacks": cb & (e.to_status == "evaluated")}).groupby(col).sum()
    table = load.join(evc, how="outer")
    return _rows(table[table.index.isin(known)], "streets")


def _rows(frame: pd.DataFrame, kind: str) -> dict[str, dict[str, int]]:
    frame = frame.reindex(columns=list(COUNTS[kind])).fillna(0).astype("int64")
    return {str(code): {k: int(v) for k, v in row.items()} for code, row in frame.iterrows()}


def identical(mine: dict[str, list[dict[str, Any]]], theirs: dict[str, dict[str, dict[str, int]]]) -> bool:
    """Whether every kind has the same rows with the same counts."""
    for kind, rows in mine.items():
        got = {str(r["code"]): {k: int(r[k]) for k in COUNTS[kind]} for r in rows}
        if got != theirs[kind]:
            return False
    return True


def measure(conn: Connection, n: int = CASES, repeat: int = REPEAT) -> dict:
    from citygrid.spatial.db import deployment_zone

    now = dt.datetime.now(dt.UTC)
    start_window, end_window, month = _window(deployment_zone(conn), now)
    began = time.perf_counter()
    built = not ready(conn, n, end_window)
    if built:
        build(conn, n, start_window, end_window)
        conn.commit()
    build_s = time.perf_counter() - began
    made = {"events": conn.execute(sa.text("SELECT count(*) FROM case_events WHERE district_code = :d"),
                                   {"d": DISTRICT}).scalar_one()}
    from citygrid.evaluation.indicators import month_bounds

    start, end = month_bounds(month, deployment_zone(conn), now)
    ours_times, ref_times = [], []
    mine: dict[str, list[dict[str, Any]]] = {}
    theirs: dict[str, dict[str, dict[str, int]]] = {}
    for _ in range(repeat):
        t = time.perf_counter()
        mine = ours(conn, month, now)
        ours_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        theirs = reference(conn, start, end)
        ref_times.append(time.perf_counter() - t)
    same = identical(mine, theirs)
    return entry(
        "evaluation_month", n, min(ours_times), "pandas groupby over the month's raw rows (same counts)",
        min(ref_times),
        f"one local month ({month}) of every kind's ranking (supervisors, teams, units, streets, communities) on "
        f"Chaoyang with {n:,} SYNTHETIC cases over {MONTHS} months and {made['events']:,} events, made once in "
        f"the bench's own database ({DATABASE}); ours: one aggregated SQL pass per kind plus scores; anchor: "
        "pandas reading the raw rows and grouping; best of the repeats, same database and run",
        identical=same, month=month, events=made["events"], rows={k: len(v) for k, v in mine.items()},
        build_s=round(build_s, 1), built_now=built, repeats=repeat, target_ratio=1.0)


def run(wanted: set[str]) -> list[dict]:
    if "evaluation_month" not in wanted:
        return []
    from citygrid import deploy
    from citygrid.config import Settings
    from citygrid.spatial import db

    settings = Settings.from_env(DATABASE)
    deploy.load_demo(settings, "chaoyang", history=False, roster=False)
    engine = db.make_engine(db.database_url(settings))
    try:
        with engine.connect() as conn:
            return [measure(conn)]
    finally:
        engine.dispose()
