"""Supervisor rotation (seed 001, 轮岗): who patrols which supervision grid in each two-month period.

The rules, from seed 001 and #22: supervisors swap grids **within their team every two months** (小交流) and
swap **teams once a year** (大交流); **team leaders** change yearly. On top of those:

- every supervision grid is staffed in every period by its required number of supervisors (data per grid,
  ``supervision_grids.supervisors_required``; by default the roster spread evenly, the remainder to the
  grids of highest workload);
- nobody returns to a grid held within the last ``min_gap`` periods (so everyone moves every period);
- each supervisor's yearly workload — the sum over the year's periods of the held grid's workload measure
  (the partition's, ``supervision_grids.workload``) — is kept within ±10 % of the mean where the data allows;
  the achieved spread (max/mean − 1) is reported.

How it is solved (OR-Tools CP-SAT, fixed seed, at most two workers, a time limit): once the yearly team move is
fixed, teams are independent — a supervisor only ever holds the grids of their team — so the model splits
exactly into one small model per team and plan year (Chaoyang: 35 of about 44 supervisors × 7 grids × 6
periods ≈ 1,850 booleans each), plus one assignment model for each yearly move (1,547 × 34 booleans). Minimising
the largest deviation from the mean splits the same way (the maximum over teams of each team's minimum), so
nothing is lost by the split. The monolithic model has 1,547 × 237 × 6 ≈ 2.2 M booleans: merely creating them
took 2.7 s per 150 supervisors on this machine (≈ 28 s for all, before one constraint; the gap rule alone would
add 2.2 M more), where the split solves the whole Chaoyang year in 4–25 s (measured 2026-12-07, 2 cores shared).

The yearly move happens at the start of the plan's second year (period 6, 12, …), or also at the start when
the request says so (``team_move_at_start``). At a move everyone goes to another team, team sizes follow the
team's grids' staffing, each team gets exactly one leader from the leader pool (a leader moves like everyone,
so every team's leader is new), and people of one old team are spread over the new teams as evenly as the
solver manages. Between moves, teams and their leaders stay.

Pure functions over plain data: no database (the roster and the grids come from ``roster`` and the store),
no Flask. Dates are local days of the deployment's time zone.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from citygrid.errors import InvalidInput
from citygrid.responsibility.roster import Supervisor

PERIOD_MONTHS = 2
PERIODS_PER_YEAR = 12 // PERIOD_MONTHS
MAX_MONTHS = 36
TOLERANCE = 0.10
SCALE = 1000  # workload shares are scaled to integers for CP-SAT: the largest share is SCALE


@dataclass(frozen=True)
class Grid:
    """A supervision grid as the plan sees it: ``team`` code, ``workload`` (the partition's measure, ≥ 0) and
    the number of supervisors it ``required`` in each period."""

    code: str
    team: str
    workload: float
    required: int


@dataclass(frozen=True)
class Request:
    """What to plan: ``months`` (a multiple of 2, at most 36) from the local day ``start``; ``min_gap``
    periods before anyone returns to a grid; ``team_move_at_start`` moves everyone to another team in the first
    period (else only at the start of each later plan year); the solver's ``time_limit_s`` (for the whole plan),
    ``seed`` and ``workers`` (at most 2)."""

    start: dt.date
    months: int = 12
    min_gap: int = 3
    team_move_at_start: bool = False
    time_limit_s: float = 60.0
    seed: int = 2026
    workers: int = 2

    def __post_init__(self) -> None:
        if not isinstance(self.months, int) or not PERIOD_MONTHS <= self.months <= MAX_MONTHS \
                or self.months % PERIOD_MONTHS:
            raise InvalidInput(f"months must be a multiple of {PERIOD_MONTHS} from {PERIOD_MONTHS} to {MAX_MONTHS} "
                               f"(periods are {PERIOD_MONTHS} months)", field="months")
        if not isinstance(self.min_gap, int) or not 1 <= self.min_gap <= 12:
            raise InvalidInput("min_gap must be a whole number of periods from 1 to 12 (everyone moves to another "
                               "grid each period, so at least 1)", field="min_gap")
        if not 1 <= self.workers <= 2:
            raise InvalidInput("workers must be 1 or 2", field="workers")
        if not 0.1 <= self.time_limit_s <= 3600:
            raise InvalidInput("time_limit_s must be from 0.1 to 3600 seconds", field="time_limit_s")

    @property
    def periods(self) -> int:
        return self.months // PERIOD_MONTHS

    def move_periods(self) -> list[int]:
        """Periods at whose start everyone changes team."""
        moves = list(range(PERIODS_PER_YEAR, self.periods, PERIODS_PER_YEAR))
        return [0, *moves] if self.team_move_at_start else moves


@dataclass(frozen=True)
class Row:
    """One supervisor in one period: their ``team``, the ``grid`` they patrol, whether they lead the team."""

    period: int
    person_id: int
    name: str
    team: str
    grid: str
    leader: bool


@dataclass
class Plan:
    """A solved plan: its request, the periods' (first day, first day after), the rows and a summary
    (``workload_spread``, ``violations``, solver figures)."""

    request: Request
    periods: list[tuple[dt.date, dt.date]]
    rows: list[Row]
    summary: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"start": self.request.start.isoformat(), "months": self.request.months,
                "min_gap": self.request.min_gap, "team_move_at_start": self.request.team_move_at_start,
                "periods": [{"period": i, "from": a.isoformat(), "until": b.isoformat()}
                            for i, (a, b) in enumerate(self.periods)],
                "summary": self.summary, "rows": [asdict(r) for r in self.rows]}


def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` plus ``months`` calendar months, clamped to the month's last day (31 Jan + 1 month = 28/29 Feb).

    >>> add_months(dt.date(2027, 1, 31), 1)
    datetime.date(2027, 2, 28)
    """
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def period_bounds(request: Request) -> list[tuple[dt.date, dt.date]]:
    """(first local day, first local day of the next period) of each period of the plan."""
    return [(add_months(request.start, p * PERIOD_MONTHS), add_months(request.start, (p + 1) * PERIOD_MONTHS))
            for p in range(request.periods)]


def default_staffing(workloads: dict[str, float], supervisors: int) -> dict[str, int]:
    """The roster spread evenly over the grids: each gets ``supervisors // len(grids)``, and the remainder goes
    one each to the grids of highest workload (ties by code).

    >>> default_staffing({"A": 1.0, "B": 3.0, "C": 2.0}, 8)
    {'A': 2, 'B': 3, 'C': 3}
    """
    if not workloads:
        return {}
    base, extra = divmod(supervisors, len(workloads))
    heaviest = sorted(workloads, key=lambda c: (-workloads[c], c))[:extra]
    return {code: base + (code in heaviest) for code in sorted(workloads)}


# ---------------------------------------------------------------------------------------------------------------
# checks before solving: each names the constraint that cannot be met


def check_request(grids: Sequence[Grid], roster: Sequence[Supervisor], request: Request) -> None:
    """Refuse (``InvalidInput`` naming the constraint) a request that cannot be met, before any solving."""
    if not grids:
        raise InvalidInput("the district has no supervision grids in its current grid version", field="district")
    if not roster:
        raise InvalidInput("the district has no supervisors to rotate (add people with role supervisor)",
                           field="district")
    by_team = _grids_by_team(grids)
    needed = sum(g.required for g in grids)
    if needed != len(roster):
        raise InvalidInput(f"staffing: the supervision grids require {needed} supervisors in every period but the "
                           f"roster has {len(roster)}; change the grids' required numbers or the roster",
                           field="staffing")
    unknown = sorted({s.team for s in roster} - set(by_team))
    if unknown and not request.team_move_at_start:
        raise InvalidInput(f"supervisors belong to team(s) with no grid in the current version: "
                           f"{', '.join(unknown[:5])}; plan with the yearly team move at the start", field="roster")
    _check_gap(by_team, request)
    if not request.team_move_at_start:
        _check_current_teams(by_team, roster)
    if request.move_periods():
        _check_moves(by_team, roster)


def _check_gap(by_team: dict[str, list[Grid]], request: Request) -> None:
    window = min(request.min_gap + 1, request.periods)
    for team, team_grids in by_team.items():
        if len(team_grids) < window:
            raise InvalidInput(f"min_gap: team {team} has {len(team_grids)} supervision grid(s); --min-gap "
                               f"{request.min_gap} needs at least {request.min_gap + 1} grids in every team (everyone "
                               f"moves each period and may not return to a grid for {request.min_gap} periods)",
                               field="min_gap")
        staff = sum(g.required for g in team_grids)
        for g in team_grids:
            if g.required * window > staff:
                raise InvalidInput(f"min_gap: grid {g.code} needs {g.required} supervisors every period, but each of "
                                   f"team {team}'s {staff} supervisors may hold it only once in {window} periods "
                                   f"(--min-gap {request.min_gap}), so at most {staff // window} can",
                                   field="min_gap")


def _check_current_teams(by_team: dict[str, list[Grid]], roster: Sequence[Supervisor]) -> None:
    members: dict[str, list[Supervisor]] = defaultdict(list)
    for s in roster:
        members[s.team].append(s)
    for team, team_grids in by_team.items():
        staff = sum(g.required for g in team_grids)
        if len(members[team]) != staff:
            raise InvalidInput(f"staffing: team {team} has {len(members[team])} supervisors but its grids require "
                               f"{staff}; plan with the yearly team move at the start (which sizes the teams) or "
                               f"change the roster", field="staffing")
        leaders = [s for s in members[team] if s.leader]
        if len(leaders) != 1:
            raise InvalidInput(f"leaders: team {team} has {len(leaders)} leaders; every team needs exactly one",
                               field="roster")


def _check_moves(by_team: dict[str, list[Grid]], roster: Sequence[Supervisor]) -> None:
    if len(by_team) < 2:
        raise InvalidInput("team move: the district has one team, so nobody can move to another team once a "
                           "year; plan at most 12 months without the move at the start", field="months")
    leaders = sum(s.leader for s in roster)
    if leaders != len(by_team):
        raise InvalidInput(f"leaders: the yearly move gives each of the {len(by_team)} teams a new leader, but "
                           f"the roster has {leaders} team leaders", field="roster")
    current: dict[str, int] = defaultdict(int)
    for s in roster:
        current[s.team] += 1
    for team, team_grids in by_team.items():
        staff = sum(g.required for g in team_grids)
        if len(roster) - current[team] < staff:
            raise InvalidInput(f"team move: team {team} needs {staff} supervisors from other teams but only "
                               f"{len(roster) - current[team]} are in other teams", field="staffing")


def _grids_by_team(grids: Iterable[Grid]) -> dict[str, list[Grid]]:
    by_team: dict[str, list[Grid]] = defaultdict(list)
    for g in sorted(grids, key=lambda g: g.code):
        by_team[g.team].append(g)
    return dict(sorted(by_team.items()))


# ---------------------------------------------------------------------------------------------------------------
# solving


def solve(grids: Sequence[Grid], roster: Sequence[Supervisor], request: Request) -> Plan:
    """The rotation plan for ``roster`` over ``grids`` (see the module's docstring for the rules).

    Raises
    ------
    InvalidInput : a rule that cannot be met, named (checked before solving, or found infeasible by the solver
        for one team and year), or a time limit too short to find any schedule.
    """
    check_request(grids, roster, request)
    by_team = _grids_by_team(grids)
    shares = _shares(grids)
    periods = request.periods
    moves = set(request.move_periods())
    deadline_share = request.time_limit_s / (len(by_team) * math.ceil(periods / PERIODS_PER_YEAR) + len(moves))
    team_of = {s.person_id: s.team for s in roster}
    leader_of = {t: next((s.person_id for s in roster if s.team == t and s.leader), None) for t in by_team}
    recent = {s.person_id: tuple(s.recent) for s in roster}
    names = {s.person_id: s.name for s in roster}
    rows: list[Row] = []
    stats = {"subproblems": 0, "wall_s": 0.0, "statuses": defaultdict(int)}
    for first in range(0, periods, PERIODS_PER_YEAR):
        if first in moves:
            team_of, leader_of = _move_teams(roster, team_of, by_team, request, deadline_share, stats)
            recent = {}
        span = list(range(first, min(first + PERIODS_PER_YEAR, periods)))
        for team, team_grids in by_team.items():
            members = sorted(p for p, t in team_of.items() if t == team)
            held = _team_year(members, team_grids, span, recent, shares, request, deadline_share, stats)
            rows += [Row(p, pid, names[pid], team, grid, pid == leader_of[team]) for (pid, p), grid in held.items()]
            for pid in members:
                recent[pid] = tuple(held[(pid, p)] for p in span)
    rows.sort(key=lambda r: (r.period, r.team, r.grid, r.person_id))
    plan = Plan(request, period_bounds(request), rows)
    plan.summary = {**evaluate(plan, grids, roster), "subproblems": stats["subproblems"],
                    "solve_s": round(stats["wall_s"], 2), "walls": stats.get("walls"),
                    "statuses": dict(stats["statuses"]),
                    "solver": "OR-Tools CP-SAT", "seed": request.seed, "workers": request.workers}
    return plan


def _shares(grids: Sequence[Grid]) -> dict[str, float]:
    """What holding a grid for one period adds to a supervisor's workload: the grid's workload measure (as #22
    defines it; not divided among the grid's supervisors — staffing spreads the roster evenly, so dividing
    would make a grid of six weigh more per head than one of seven, whatever the partition balanced)."""
    return {g.code: max(g.workload, 0.0) for g in grids}


def _solve(model: Any, request: Request, seconds: float, stats: dict[str, Any]) -> tuple[Any, int]:
    """Solve one subproblem with the request's seed and workers within ``seconds``, counting it in ``stats``
    (subproblems, wall time per solve, statuses). Returns the solver (to read values from) and its status."""
    from ortools.sat.python import cp_model

    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(seconds, 0.2)
    solver.parameters.num_workers = request.workers
    solver.parameters.random_seed = request.seed
    status = solver.solve(model)
    stats["subproblems"] += 1
    stats["wall_s"] += solver.wall_time
    stats.setdefault("walls", []).append(round(solver.wall_time, 2))
    stats["statuses"][solver.status_name(status)] += 1
    return solver, status


def _team_year(members: list[int], team_grids: list[Grid], span: list[int], recent: dict[int, tuple[str, ...]],
               shares: dict[str, float], request: Request, seconds: float,
               stats: dict[str, Any]) -> dict[tuple[int, int], str]:
    """One team's grids for its ``members`` over the periods ``span``: (person, period) -> grid code.

    ``recent`` holds the grids each member held in the periods just before ``span`` (most recent last), which
    the gap rule counts."""
    from ortools.sat.python import cp_model

    model = cp_model.CpModel()
    codes = [g.code for g in team_grids]
    top = max(shares.values()) or 1.0
    weight = {c: round(shares[c] * SCALE / top) for c in codes}
    x = {(s, c, p): model.new_bool_var(f"x{s}_{c}_{p}") for s in members for c in codes for p in span}
    for p in span:
        for s in members:
            model.add_exactly_one(x[s, c, p] for c in codes)
        for g in team_grids:
            model.add(sum(x[s, g.code, p] for s in members) == g.required)
    gap = request.min_gap
    for s in members:
        before = recent.get(s, ())[-gap:]
        for c in codes:
            for i in range(len(span)):  # any gap + 1 consecutive periods hold a grid at most once
                model.add_at_most_one(x[s, c, p] for p in span[i:i + gap + 1])
            for back, held in enumerate(reversed(before), start=1):  # held ``back`` periods before the span
                if held == c:
                    for p in span[:max(gap + 1 - back, 0)]:
                        model.add(x[s, c, p] == 0)
    # Loads are kept around the team's own mean (the plan-wide mean is out of reach where a team's grids carry
    # more or less than others'; that gap is the partition's, not the rotation's). A deviation of 0.5 % of the mean
    # counts as perfect, so a solver that finds one stops there instead of proving a tighter optimum (Chaoyang's
    # teams: 0.1–1.7 s each; the time limit is shared out among the teams).
    goal = round(sum(weight[g.code] * g.required for g in team_grids) * len(span) / max(len(members), 1))
    worst = sum(max(weight.values()) for _ in span)
    deviation = model.new_int_var(min(max(goal // 200, 1), worst), worst, "deviation")
    for s in members:
        load = sum(weight[c] * x[s, c, p] for c in codes for p in span)
        model.add(load <= goal + deviation)
        model.add(load >= goal - deviation)
    model.minimize(deviation)
    _hint_round_robin(model, x, members, team_grids, span)
    solver, status = _solve(model, request, seconds, stats)
    if status == cp_model.INFEASIBLE:
        raise InvalidInput(f"min_gap: no schedule for team {team_grids[0].team} in periods {span[0]}–{span[-1]} "
                           f"staffs every grid while nobody returns to a grid within {gap} periods (counting "
                           f"the grids held before the plan)", field="min_gap")
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise InvalidInput(f"time_limit: no schedule found for team {team_grids[0].team} within the time limit; "
                           f"give the solver more time", field="time_limit")
    return {(s, p): c for (s, c, p), var in x.items() if solver.boolean_value(var)}


def _hint_round_robin(model: Any, x: dict[tuple[int, str, int], Any], members: list[int], team_grids: list[Grid],
                      span: list[int]) -> None:
    """Start the solver from the round-robin walk (each member steps through the team's staffing slots), which
    spreads heavy and light grids evenly; the solver repairs what it breaks (gap, history) and improves the
    balance."""
    slots = [g.code for g in team_grids for _ in range(g.required)]
    step = max(g.required for g in team_grids)
    for i, s in enumerate(members):
        for k, p in enumerate(span):
            walked = slots[(i + k * step) % len(slots)]
            for g in team_grids:
                model.add_hint(x[s, g.code, p], g.code == walked)


def _move_teams(roster: Sequence[Supervisor], team_of: dict[int, str], by_team: dict[str, list[Grid]],
                request: Request, seconds: float, stats: dict[str, Any]) -> tuple[dict[int, str], dict[str, int]]:
    """The yearly move: everyone to another team, teams sized by their grids' staffing, one leader (from the
    leader pool) per team; people of one old team spread over the new teams. Returns the new team of each
    person and each team's leader.

    The model decides counts, not people: how many of old team ``a`` go to new team ``t`` (zero for ``a = t``),
    and which new team each old team's leader leads (a derangement of the teams). Members of one old team are
    interchangeable here (the move is workload-neutral: the year's grids are planned afterwards), so the people
    are then dealt out by those counts in a seeded order. Chaoyang: 35 × 35 counts, solved in well under a
    second, where one boolean per person and team (1,547 × 34) did not finish in 2 s."""
    from ortools.sat.python import cp_model

    model = cp_model.CpModel()
    teams = list(by_team)
    members: dict[str, list[Supervisor]] = defaultdict(list)
    for s in sorted(roster, key=lambda s: s.person_id):
        members[team_of[s.person_id]].append(s)
    old = sorted(members)
    size = {t: sum(g.required for g in by_team[t]) for t in teams}
    n = {(a, t): model.new_int_var(0, 0 if a == t else min(len(members[a]), size[t]), f"n{a}_{t}")
         for a in old for t in teams}
    lead = {(a, t): model.new_bool_var(f"l{a}_{t}") for a in old for t in teams if a != t}
    leaders = {a: [s for s in members[a] if s.leader] for a in old}
    for a in old:
        model.add(sum(n[a, t] for t in teams) == len(members[a]))
        model.add(sum(lead[a, t] for t in teams if t != a) == len(leaders[a]))
        for t in teams:
            if t != a:
                model.add(n[a, t] >= lead[a, t])
    for t in teams:
        model.add(sum(n[a, t] for a in old) == size[t])
        model.add(sum(lead[a, t] for a in old if a != t) == 1)
    crowd = model.new_int_var(0, len(roster), "crowd")  # most people of one old team in one new team
    for key in n:
        model.add(n[key] <= crowd)
    model.minimize(crowd)
    solver, status = _solve(model, request, seconds, stats)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise InvalidInput("team move: no way found to move everyone to another team with every team staffed and "
                           "one leader each" + (" (infeasible)" if status == cp_model.INFEASIBLE else
                                                " within the time limit"), field="roster")
    rng = np.random.default_rng(request.seed)
    new_team: dict[int, str] = {}
    new_leader: dict[str, int] = {}
    for a in old:
        led = [t for t in teams if t != a and solver.boolean_value(lead[a, t])]
        for person, t in zip(leaders[a], led, strict=True):
            new_team[person.person_id], new_leader[t] = t, person.person_id
        seats = [t for t in teams for _ in range(solver.value(n[a, t]) - led.count(t))]
        rest = [s for s in members[a] if not s.leader]
        for person, i in zip(rest, rng.permutation(len(rest)), strict=True):
            new_team[person.person_id] = seats[i]
    return new_team, new_leader


# ---------------------------------------------------------------------------------------------------------------
# checking a plan (independently of how it was made) and the round-robin baseline


def evaluate(plan: Plan, grids: Sequence[Grid], roster: Sequence[Supervisor]) -> dict[str, Any]:
    """``violations`` (a list of the broken rules, empty for a good plan), ``violation_count`` and the
    achieved ``workload_spread`` (max/mean − 1 over supervisors and plan years, the worst year)."""
    problems = violations(plan, grids, roster)
    spread = workload_spread(plan, grids)
    return {"violations": problems[:50], "violation_count": len(problems), "workload_spread": round(spread, 4),
            "within_tolerance": spread <= TOLERANCE, "supervisors": len(roster), "grids": len(grids),
            "teams": len({g.team for g in grids}), "periods": plan.request.periods}


def workload_spread(plan: Plan, grids: Sequence[Grid]) -> float:
    """max/mean − 1 of the supervisors' yearly workloads (each plan year on its own; the worst year)."""
    shares = _shares(grids)
    load: dict[tuple[int, int], float] = defaultdict(float)
    for r in plan.rows:
        load[(r.period // PERIODS_PER_YEAR, r.person_id)] += shares.get(r.grid, 0.0)
    worst = 0.0
    for year in {y for y, _ in load}:
        values = [v for (y, _), v in load.items() if y == year]
        mean = sum(values) / len(values)
        if mean > 0:
            worst = max(worst, max(values) / mean - 1)
    return worst


def violations(plan: Plan, grids: Sequence[Grid], roster: Sequence[Supervisor]) -> list[str]:
    """Every rule the plan breaks, one line each (empty when it keeps them all)."""
    request = plan.request
    team_of_grid = {g.code: g.team for g in grids}
    required = {g.code: g.required for g in grids}
    by_period: dict[int, list[Row]] = defaultdict(list)
    for r in plan.rows:
        by_period[r.period].append(r)
    found = []
    start_team = {s.person_id: s.team for s in roster}
    for p in range(request.periods):
        rows = by_period[p]
        found += _period_violations(p, rows, roster, team_of_grid, required)
    found += _history_violations(plan, roster, start_team)
    return found


def _period_violations(p: int, rows: list[Row], roster: Sequence[Supervisor], team_of_grid: dict[str, str],
                       required: dict[str, int]) -> list[str]:
    found = []
    seen = defaultdict(int)
    for r in rows:
        seen[r.person_id] += 1
        if team_of_grid.get(r.grid) != r.team:
            found.append(f"period {p}: {r.person_id} holds {r.grid} outside their team {r.team}")
    found += [f"period {p}: supervisor {s.person_id} has {seen[s.person_id]} grids" for s in roster
              if seen[s.person_id] != 1]
    staffed = defaultdict(int)
    for r in rows:
        staffed[r.grid] += 1
    found += [f"period {p}: grid {c} has {staffed[c]} supervisors, needs {n}" for c, n in required.items()
              if staffed[c] != n]
    leaders = defaultdict(int)
    for r in rows:
        leaders[r.team] += r.leader
    found += [f"period {p}: team {t} has {n} leaders" for t, n in leaders.items() if n != 1]
    return found


def _history_violations(plan: Plan, roster: Sequence[Supervisor], start_team: dict[int, str]) -> list[str]:
    request = plan.request
    moves = set(request.move_periods())
    rows_of: dict[int, dict[int, Row]] = defaultdict(dict)
    for r in plan.rows:
        rows_of[r.person_id][r.period] = r
    found = []
    for s in roster:
        own = rows_of[s.person_id]
        history = list(s.recent) if 0 not in moves else []
        team = s.team
        for p in range(request.periods):
            r = own.get(p)
            if r is None:
                continue
            if p in moves and r.team == team:
                found.append(f"period {p}: {s.person_id} stays in team {team} at the yearly move")
            if p not in moves and r.team != team:
                found.append(f"period {p}: {s.person_id} changes team outside a yearly move")
            if p in moves:
                history = []
            if r.grid in history[-request.min_gap:]:
                found.append(f"period {p}: {s.person_id} returns to {r.grid} within {request.min_gap} periods")
            history.append(r.grid)
            team = r.team
        if 0 not in moves and own.get(0) is not None and own[0].leader != s.leader:
            found.append(f"period 0: {s.person_id}'s leadership changes outside a yearly move")
    found += _leader_violations(plan, moves)
    return found


def _leader_violations(plan: Plan, moves: set[int]) -> list[str]:
    leader = {(r.period, r.team): r.person_id for r in plan.rows if r.leader}
    found = []
    for (p, team), person in sorted(leader.items()):
        before = leader.get((p - 1, team))
        if p in moves and before == person:
            found.append(f"period {p}: team {team} keeps its leader at the yearly move")
        if p not in moves and before is not None and before != person:
            found.append(f"period {p}: team {team} changes leader outside a yearly move")
    return found


def round_robin(grids: Sequence[Grid], roster: Sequence[Supervisor], request: Request) -> Plan:
    """The greedy baseline: teams as they are (no moves), each team's supervisors in a fixed order walk the
    team's staffing slots round-robin (slot = (i + period × largest staffing) mod team size). No solver and
    no workload balancing: the anchor ``make bench`` compares the plan's spread with."""
    by_team = _grids_by_team(grids)
    rows = []
    for team, team_grids in by_team.items():
        slots = [g.code for g in team_grids for _ in range(g.required)]
        members = sorted((s for s in roster if s.team == team), key=lambda s: s.person_id)
        step = max(g.required for g in team_grids)
        for p in range(request.periods):
            for i, s in enumerate(members):
                rows.append(Row(p, s.person_id, s.name, team, slots[(i + p * step) % len(slots)] if slots else "",
                                s.leader))
    return Plan(request, period_bounds(request), rows)
