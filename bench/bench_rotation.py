"""Rotation benchmark on the Chaoyang demo (``rotation_plan``).

A 12-month plan for the seeds' scale (1,547 supervisors in 35 teams for 237 supervision grids; the demo's
SYNTHETIC roster, made inside the rolled-back transaction when the database has none), with the yearly team move
at the start: our CP-SAT plan (``rotation.solve``, 60 s limit, 2 workers) against a greedy round-robin within
each team in the same run. Fields: ``violations`` (rules our plan breaks: must be 0), ``workload_spread``
(max/mean − 1 of the supervisors' yearly workloads), ``anchor_workload_spread`` and ``anchor_violations`` (the
round-robin keeps no team move and no gap rule, so it breaks rules; it is the spread to beat).
"""

from __future__ import annotations

import datetime as dt

from bench.common import demo_connection, timed
from bench.results import entry
from citygrid.responsibility import rotation, rotation_plans

START = dt.date(2027, 1, 1)


def bench_rotation(database: str = "citygrid", district: str = "110105") -> dict:
    with demo_connection(database) as conn:
        if not rotation_plans.supervisors(conn, district):
            rotation_plans.seed_synthetic_roster(conn, district, START - dt.timedelta(days=61))
        _, grids, roster = rotation_plans.planning_inputs(conn, district, START)
    request = rotation.Request(START, 12, 3, team_move_at_start=True, time_limit_s=60)
    ours_s, plan = timed(lambda: rotation.solve(grids, roster, request))
    anchor_s, baseline = timed(lambda: rotation.round_robin(grids, roster, request))
    anchor = rotation.evaluate(baseline, grids, roster)
    return entry("rotation_plan", len(roster), ours_s, "greedy round-robin within each team (no solver)", anchor_s,
                 "12 months, team move at the start, --min-gap 3; spread = max/mean - 1 of yearly workload; "
                 "goal: violations 0, spread <= 0.10", violations=plan.summary["violation_count"],
                 workload_spread=plan.summary["workload_spread"], anchor_workload_spread=anchor["workload_spread"],
                 anchor_violations=anchor["violation_count"], grids=len(grids),
                 teams=len({g.team for g in grids}), target_s=60)


BENCHES = {"rotation_plan": bench_rotation}


def run(wanted: set[str]) -> list[dict]:
    return [bench() for name, bench in BENCHES.items() if name in wanted]
