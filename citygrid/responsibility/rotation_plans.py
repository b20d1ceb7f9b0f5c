"""Stored rotation plans: made from the district's roster and grids, kept, read, published, exported.

``make_plan`` reads the current published grid version's supervision grids and the supervisors holding them at
the plan's first day (``roster``), solves (``rotation.solve``) and stores the plan with its summary, in the
caller's transaction. ``publish_plan`` writes the plan's dated supervisor and team-leader assignments through
``people.assign_supervisors`` / ``people.assign_team_leaders`` (one call per period, in date order; its local
days are the deployment's zone), once. ``seed_synthetic_roster`` gives a district a SYNTHETIC roster at the
scale of its grids (the demo's). No Flask; configuration comes in as arguments.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection

from citygrid import codes
from citygrid.errors import Conflict, InvalidInput, NotFound
from citygrid.loaders.plaintext import spreadsheet_safe
from citygrid.responsibility import people, rotation, store
from citygrid.responsibility.roster import Supervisor, synthetic_roster
from citygrid.spatial.db import deployment_zone
from citygrid.spatial.store import district_codes
from citygrid.spatial.timezones import day_start

CSV_COLUMNS = ("period", "from", "until", "team", "supervision_grid", "person_id", "name", "leader")
SYNTHETIC_SOURCE = "SYNTHETIC roster (citygrid rotation demo, fixed seed)"


def known_district(conn: Connection, district: object) -> str:
    """``district`` if it is a district code of the deployment's scheme and an imported district; InvalidInput
    (malformed) or NotFound otherwise."""
    code = codes.deployment_scheme(conn).check("district", district, "district")
    if code not in district_codes(conn):
        raise NotFound(f"no district {code}")
    return code


def supervisors(conn: Connection, district: str) -> int:
    """How many people of role supervisor ``district`` has (held grids or not)."""
    return store.supervisor_count(conn, district)


def planning_inputs(conn: Connection, district: str, start: dt.date
                    ) -> tuple[int, list[rotation.Grid], list[Supervisor]]:
    """The current published grid version of ``district``, its supervision grids (staffing: the grid's
    ``supervisors_required``, else the default spread of the roster; workload: the partition's measure, 1 where
    it has none) and the roster: supervisors holding one of those grids at the first instant of the local day
    ``start`` (deployment's zone)."""
    version, rows = store.rotation_grids(conn, known_district(conn, district))
    if version is None or not rows:
        raise InvalidInput(f"district {district} has no published grid version with supervision grids; publish "
                           "one (citygrid grids publish) before planning a rotation", field="district")
    at = day_start(start, deployment_zone(conn))
    roster = [Supervisor(r["person_id"], r["name"], r["team_code"], bool(r["leader"]), tuple(reversed(r["recent"])))
              for r in store.rotation_roster(conn, district, version, at)]
    if not roster:
        raise InvalidInput(f"district {district} has no supervisors to rotate: no person of role supervisor holds "
                           f"one of its supervision grids on {start.isoformat()} (add them: citygrid people import)",
                           field="district")
    workload = {r["code"]: float(r["workload"]) if r["workload"] is not None else 1.0 for r in rows}
    default = rotation.default_staffing({r["code"]: workload[r["code"]] for r in rows
                                         if r["supervisors_required"] is None},
                                        len(roster) - sum(r["supervisors_required"] or 0 for r in rows))
    grids = [rotation.Grid(r["code"], r["team_code"] or "", workload[r["code"]],
                           r["supervisors_required"] or default.get(r["code"], 0)) for r in rows]
    missing = [g.code for g in grids if g.required < 1]
    if missing:
        raise InvalidInput(f"staffing: the roster of {len(roster)} supervisors cannot give grid(s) "
                           f"{', '.join(missing[:5])} a supervisor (every supervision grid needs at least one); "
                           f"{store.unplaced_supervisors(conn, district, version, at)} supervisor(s) of the district "
                           f"hold no grid on {start.isoformat()}", field="staffing")
    return version, grids, roster


def make_plan(conn: Connection, district: str, request: rotation.Request, *, created_by: str = "",
              synthetic: bool = False) -> dict[str, Any]:
    """Solve and store a plan for ``district``; returns its header (``plan_id``…) with the summary.

    Raises
    ------
    InvalidInput naming the rule that cannot be met (``rotation.check_request``), or no published grids.
    """
    version, grids, roster = planning_inputs(conn, district, request.start)
    plan = rotation.solve(grids, roster, request)
    summary = {k: v for k, v in plan.summary.items() if k != "walls"}
    params = {"team_move_at_start": request.team_move_at_start, "time_limit_s": request.time_limit_s,
              "seed": request.seed, "workers": request.workers,
              "staffing": {g.code: g.required for g in grids}}
    plan_id = store.insert_rotation_plan(conn, district, version_id=version, start=request.start,
                                         months=request.months, min_gap=request.min_gap, params=params,
                                         summary=summary, synthetic=synthetic, created_by=created_by[:100])
    store.insert_rotation_rows(conn, district, plan_id, [
        {"period": r.period, "person_id": r.person_id, "person_name": r.name, "team_code": r.team,
         "supervision_code": r.grid, "leader": r.leader} for r in plan.rows])
    return {"plan_id": plan_id, "district": district, "version_id": version, "start": request.start.isoformat(),
            "months": request.months, "min_gap": request.min_gap, "synthetic": synthetic, "summary": summary}


def plan_periods(header: dict[str, Any]) -> list[tuple[dt.date, dt.date]]:
    """(first day, first day after) of each period of a stored plan."""
    request = rotation.Request(header["start_date"], header["months"], header["min_gap"])
    return rotation.period_bounds(request)


def read_plan(conn: Connection, plan_id: int, districts: Sequence[str] | None = None,
              team: str | None = None) -> dict[str, Any]:
    """A stored plan with its periods and rows (only ``team``'s when given). ``districts`` limits the districts
    the caller may read (None: all); a plan outside them is ``NotFound``, as a plan that does not exist."""
    header = store.rotation_plan(conn, plan_id)
    if header is None or (districts is not None and header["district"] not in districts):
        raise NotFound(f"no rotation plan {plan_id}")
    bounds = plan_periods(header)
    rows = store.rotation_rows(conn, header["district"], plan_id, team)
    when = {k: header[k].isoformat() if header[k] is not None else None for k in ("created_at", "published_at")}
    return {**header, **when, "start_date": header["start_date"].isoformat(),
            "periods": [{"period": i, "from": a.isoformat(), "until": b.isoformat()}
                        for i, (a, b) in enumerate(bounds)],
            "rows": rows}


def plan_csv(plan: dict[str, Any]) -> str:
    """A plan read by ``read_plan`` as CSV (``CSV_COLUMNS``), every cell spreadsheet-safe."""
    periods = {p["period"]: p for p in plan["periods"]}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in plan["rows"]:
        span = periods[r["period"]]
        writer.writerow([spreadsheet_safe(v) for v in (r["period"], span["from"], span["until"], r["team_code"],
                                                        r["supervision_code"], r["person_id"], r["person_name"],
                                                        "yes" if r["leader"] else "")])
    return buffer.getvalue()


def publish_plan(conn: Connection, plan_id: int, *, by: str = "") -> dict[str, Any]:
    """Write plan ``plan_id``'s dated assignments: per period, each grid's supervisors from the period's first
    local day; the team leaders at the first period and at each yearly move. Once per plan.

    Raises
    ------
    NotFound : no such plan.
    Conflict : the plan was published already, or was made on a grid version that is no longer current, or
        the people's assignments have moved on past the plan's start (``people.assign_supervisors``).
    """
    plan = read_plan(conn, plan_id)
    district = plan["district"]
    if plan["published_at"] is not None:
        raise Conflict(f"rotation plan {plan_id} was published at {plan['published_at']}; "
                       "make a new plan to change it")
    version, _ = store.rotation_grids(conn, district)
    if version != plan["version_id"]:
        raise Conflict(f"rotation plan {plan_id} was made on grid version {plan['version_id']}, but version "
                       f"{version} is current now; make a new plan")
    grids: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    leaders: dict[int, dict[str, int]] = defaultdict(dict)
    for r in plan["rows"]:
        grids[r["period"]][r["supervision_code"]].append(r["person_id"])
        if r["leader"]:
            leaders[r["period"]][r["team_code"]] = r["person_id"]
    moves = rotation.Request(dt.date.fromisoformat(plan["start_date"]), plan["months"], plan["min_gap"],
                             bool(plan["params"].get("team_move_at_start"))).move_periods()
    counts = {"assigned": 0, "closed": 0, "leaders": 0}
    source = f"rotation:{plan_id}"
    for span in plan["periods"]:
        p, first = span["period"], dt.date.fromisoformat(span["from"])
        done = people.assign_supervisors(conn, district, {g: ids for g, ids in grids[p].items()}, first,
                                         source=source)
        counts["assigned"] += done["assigned"]
        counts["closed"] += done["closed"]
        if p == 0 or p in moves:
            counts["leaders"] += people.assign_team_leaders(conn, district, leaders[p], first,
                                                            source=source)["assigned"]
    store.mark_rotation_published(conn, district, plan_id, by[:100])
    return {"plan_id": plan_id, "district": district, "periods": len(plan["periods"]), **counts}


def seed_synthetic_roster(conn: Connection, district: str, valid_from: dt.date, *, seed: int = 2026,
                          chinese: bool = True) -> dict[str, Any]:
    """Give ``district`` a SYNTHETIC roster (``roster.synthetic_roster``) sized by its current supervision grids'
    staffing (``supervisors_required``, else 1547/237 per grid, Chaoyang's ratio, spread evenly): people of
    role supervisor marked synthetic, each holding a grid from ``valid_from``, one leader per team. Returns
    the counts."""
    version, rows = store.rotation_grids(conn, known_district(conn, district))
    if version is None or not rows:
        raise InvalidInput(f"district {district} has no published supervision grids", field="district")
    total = round(len(rows) * 1547 / 237)
    workload = {r["code"]: float(r["workload"] or 1.0) for r in rows}
    default = rotation.default_staffing(workload, total)
    by_team: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for r in rows:
        by_team[r["team_code"]].append((r["code"], r["supervisors_required"] or default[r["code"]]))
    roster = synthetic_roster(by_team, seed=seed, chinese=chinese)
    ids = people.add_people(conn, district, [people.PersonInput(s.name, "supervisor") for s in roster],
                            source=SYNTHETIC_SOURCE, synthetic=True)
    real = dict(zip((s.person_id for s in roster), ids, strict=True))
    held: dict[str, list[int]] = defaultdict(list)
    for s in roster:
        held[s.recent[-1]].append(real[s.person_id])
    people.assign_supervisors(conn, district, held, valid_from, source=SYNTHETIC_SOURCE)
    people.assign_team_leaders(conn, district, {s.team: real[s.person_id] for s in roster if s.leader}, valid_from,
                               source=SYNTHETIC_SOURCE)
    return {"district": district, "supervisors": len(roster), "teams": len(by_team), "grids": len(rows),
            "synthetic": True}


def validate_start(text: str, field: str = "start") -> dt.date:
    """A plan's first day from ``YYYY-MM-DD`` (a local day), between 2000 and 2199."""
    try:
        day = dt.date.fromisoformat(text.strip()) if isinstance(text, str) and len(text) <= 20 else None
    except ValueError:
        day = None
    if day is None or not 2000 <= day.year <= 2199:
        raise InvalidInput(f"{field} must be a day YYYY-MM-DD between 2000 and 2199", field=field)
    return day


def ensure_demo_rotation(conn: Connection, district: str, *, time_limit_s: float = 60.0) -> dict[str, Any]:
    """The demo's rotation, once: a SYNTHETIC roster holding the district's grids from the first day of this
    month, and a SYNTHETIC plan for the coming year (12 months from the first day of next month, the yearly
    team move at its start), published. Nothing is done when the district has supervisors already.

    Chaoyang (1,547 supervisors, 237 grids, 35 teams): about 20 s of solving on two cores, within the 60 s limit.
    """
    version, _ = store.rotation_grids(conn, known_district(conn, district))
    if version is None or supervisors(conn, district):
        return {"district": district, "made": False}
    today = dt.datetime.now(deployment_zone(conn)).date()
    this_month = today.replace(day=1)
    roster = seed_synthetic_roster(conn, district, this_month)
    request = rotation.Request(rotation.add_months(this_month, 1), 12, 3, team_move_at_start=True,
                               time_limit_s=time_limit_s)
    made = make_plan(conn, district, request, created_by="load-demo", synthetic=True)
    published = publish_plan(conn, made["plan_id"], by="load-demo")
    return {"district": district, "made": True, "roster": roster, "plan_id": made["plan_id"],
            "start": made["start"], "workload_spread": made["summary"]["workload_spread"],
            "violations": made["summary"]["violation_count"], "published": published["assigned"]}
