"""Supervisor rotation (#22, seed 001): plans checked rule by rule, infeasible requests named, stored plans,
publishing through the named people's assignments, the API (scoped, CSV) and the CLI, with hostile input.

The rules are checked here by the test's own code over the produced rows, not only by ``rotation.violations``
(which is itself checked to catch a broken plan)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import Counter, defaultdict
from dataclasses import replace

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from citygrid.cli import cli
from citygrid.errors import Conflict, InvalidInput, NotFound
from citygrid.responsibility import rotation, rotation_plans
from citygrid.responsibility.roster import SYNTHETIC_PREFIX, Supervisor, synthetic_roster
from citygrid.responsibility.rotation import Grid, Request
from tests.conftest import assert_error, city_client

START = dt.date(2027, 1, 1)


def small_district(grids: int = 12, teams: int = 3, per_grid: int = 3, seed: int = 7
                   ) -> tuple[list[Grid], list[Supervisor]]:
    """``grids`` supervision grids in ``teams`` teams (grid i in team i mod teams), workloads 0.8–1.2, each
    needing ``per_grid`` supervisors; the SYNTHETIC roster that staffs them."""
    import numpy as np

    rng = np.random.default_rng(seed)
    made = [Grid(f"S{i:02d}", f"T{i % teams}", float(rng.uniform(0.8, 1.2)), per_grid) for i in range(grids)]
    by_team: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for g in made:
        by_team[g.team].append((g.code, g.required))
    return made, synthetic_roster(by_team, seed=seed)


def check_rules(plan: rotation.Plan, grids: list[Grid], roster: list[Supervisor]) -> None:
    """Every rule of the rotation, checked from the rows."""
    request = plan.request
    team_of_grid = {g.code: g.team for g in grids}
    moves = set(request.move_periods())
    rows = defaultdict(dict)
    for r in plan.rows:
        assert r.person_id not in rows[r.period], "one grid per supervisor and period"
        rows[r.period][r.person_id] = r
    for p in range(request.periods):
        assert set(rows[p]) == {s.person_id for s in roster}, f"everyone placed in period {p}"
        staffed = Counter(r.grid for r in rows[p].values())
        assert staffed == Counter({g.code: g.required for g in grids}), f"staffing in period {p}"
        assert all(team_of_grid[r.grid] == r.team for r in rows[p].values()), "grids of one's own team"
        leaders = Counter(r.team for r in rows[p].values() if r.leader)
        assert leaders == Counter({t: 1 for t in team_of_grid.values()}), f"one leader per team in period {p}"
    for s in roster:
        history = [] if 0 in moves else list(s.recent)
        team, led = s.team, s.leader
        for p in range(request.periods):
            r = rows[p][s.person_id]
            if p in moves:
                assert r.team != team, f"{s.person_id} moves team at period {p}"
                history = []
            else:
                assert r.team == team, f"{s.person_id} keeps the team between moves"
                assert r.leader == led, "leaders change only at a yearly move"
            assert r.grid not in history[-request.min_gap:], f"{s.person_id} returns to {r.grid} too soon"
            history.append(r.grid)
            team, led = r.team, r.leader
    for p in moves:
        if p > 0:
            before = {r.team: r.person_id for r in rows[p - 1].values() if r.leader}
            after = {r.team: r.person_id for r in rows[p].values() if r.leader}
            assert all(before[t] != after[t] for t in after), "each team gets a new leader"


# ------------------------------------------------------------------------------------------ the solver
def test_a_year_in_a_small_district_keeps_every_rule():
    grids, roster = small_district()
    plan = rotation.solve(grids, roster, Request(START, 12, 3, time_limit_s=20))
    check_rules(plan, grids, roster)
    assert plan.summary["violations"] == [] and plan.summary["violation_count"] == 0
    assert plan.summary["workload_spread"] <= rotation.TOLERANCE
    assert rotation.workload_spread(plan, grids) == pytest.approx(plan.summary["workload_spread"], abs=1e-4)
    assert [p[0] for p in plan.periods] == [dt.date(2027, m, 1) for m in (1, 3, 5, 7, 9, 11)]


def test_the_issues_small_case_12_grids_3_teams_30_supervisors():
    """30 supervisors for 12 grids: grids need 2 or 3, so with --min-gap 2 (a grid of 3 needs 9 of the 10)."""
    import numpy as np

    rng = np.random.default_rng(3)
    workload = {f"S{i:02d}": float(rng.uniform(0.8, 1.2)) for i in range(12)}
    staffing = rotation.default_staffing(workload, 30)
    grids = [Grid(c, f"T{i % 3}", workload[c], staffing[c]) for i, c in enumerate(sorted(workload))]
    by_team = defaultdict(list)
    for g in grids:
        by_team[g.team].append((g.code, g.required))
    roster = synthetic_roster(by_team, seed=3)
    assert len(roster) == 30 and sum(staffing.values()) == 30
    plan = rotation.solve(grids, roster, Request(START, 12, 2, time_limit_s=20))
    check_rules(plan, grids, roster)
    assert plan.summary["workload_spread"] <= rotation.TOLERANCE


def test_two_years_with_the_move_at_the_start_and_a_year_in():
    grids, roster = small_district()
    request = Request(START, 24, 3, team_move_at_start=True, time_limit_s=30)
    assert request.move_periods() == [0, 6]
    plan = rotation.solve(grids, roster, request)
    check_rules(plan, grids, roster)
    assert plan.summary["violation_count"] == 0
    assert plan.summary["workload_spread"] <= rotation.TOLERANCE


def test_the_grids_held_before_the_plan_count_for_the_gap():
    """A second year planned after the first (no move at its start): the first year's last grids count."""
    grids, roster = small_district(seed=11)
    first = rotation.solve(grids, roster, Request(START, 12, 3, time_limit_s=20))
    held = defaultdict(list)
    for r in sorted(first.rows, key=lambda r: r.period):
        held[r.person_id].append(r.grid)
    after = [replace(s, recent=tuple(held[s.person_id])) for s in roster]
    second = rotation.solve(grids, after, Request(dt.date(2028, 1, 1), 12, 3, time_limit_s=20))
    check_rules(second, grids, after)
    assert all(r.grid not in held[r.person_id][-3 + r.period:] for r in second.rows if r.period < 3)


def test_the_checker_finds_a_broken_plan():
    grids, roster = small_district()
    plan = rotation.solve(grids, roster, Request(START, 12, 3, time_limit_s=20))
    first = plan.rows[0]
    same_again = next(r for r in plan.rows if r.person_id == first.person_id and r.period == 1)
    broken = [replace(r, grid=first.grid) if r is same_again else r for r in plan.rows]
    found = rotation.violations(rotation.Plan(plan.request, plan.periods, broken), grids, roster)
    assert any("returns to" in v for v in found) and any("needs" in v for v in found)


def test_the_round_robin_baseline_is_measured_too():
    grids, roster = small_district()
    base = rotation.round_robin(grids, roster, Request(START, 12))
    assert len(base.rows) == len(roster) * 6
    assert rotation.workload_spread(base, grids) >= 0


def test_default_staffing_spreads_the_roster_evenly():
    assert rotation.default_staffing({"A": 1, "B": 3, "C": 2}, 8) == {"A": 2, "B": 3, "C": 3}
    staffing = rotation.default_staffing({f"S{i:03d}": 1.0 + i / 1000 for i in range(237)}, 1547)
    assert sum(staffing.values()) == 1547 and set(staffing.values()) == {6, 7}


@pytest.mark.parametrize(("change", "field", "words"), [
    ("team_of_three", "min_gap", "team T0 has 3 supervision grid(s); --min-gap 3 needs at least 4"),
    ("crowded_grid", "min_gap", "grid S00 needs 9 supervisors every period"),
    ("short_roster", "staffing", "require 36 supervisors in every period but the roster has 35"),
    ("two_leaders", "roster", "team T0 has 2 leaders"),
    ("wrong_team_size", "staffing", "team T0 has 13 supervisors but its grids require 12"),
    ("no_grids", "district", "no supervision grids"),
    ("no_roster", "district", "no supervisors to rotate"),
])
def test_infeasible_requests_name_the_rule(change, field, words):
    grids, roster = small_district()
    request = Request(START, 12, 3, time_limit_s=5)
    if change == "team_of_three":
        grids = [replace(g, team="T1") if g.code == "S00" else g for g in grids]
        roster = [replace(s, team="T1", leader=False) if s.recent[-1] == "S00" else s for s in roster]
    elif change == "crowded_grid":
        grids = [replace(g, required=9) if g.code == "S00" else
                 replace(g, required=1) if g.team == "T0" else g for g in grids]
    elif change == "short_roster":
        roster = roster[1:]
    elif change == "two_leaders":
        second = next(s for s in roster if s.team == "T0" and not s.leader)
        roster = [replace(s, leader=True) if s is second else s for s in roster]
    elif change == "wrong_team_size":
        moved = next(s for s in roster if s.team == "T1" and not s.leader)
        roster = [replace(s, team="T0") if s is moved else s for s in roster]
    elif change == "no_grids":
        grids = []
    elif change == "no_roster":
        roster = []
    with pytest.raises(InvalidInput) as caught:
        rotation.solve(grids, roster, request)
    assert caught.value.field == field
    assert words in caught.value.message


def test_a_move_needs_two_teams_and_one_leader_per_team():
    grids, roster = small_district(teams=1, grids=4, per_grid=3)
    with pytest.raises(InvalidInput, match="one team") as caught:
        rotation.solve(grids, roster, Request(START, 24, 3))
    assert caught.value.field == "months"
    grids, roster = small_district()
    roster = [replace(s, leader=False) if s.team == "T2" else s for s in roster]
    with pytest.raises(InvalidInput, match="3 teams a new leader, but the roster has 2") as caught:
        rotation.solve(grids, roster, Request(START, 12, 3, team_move_at_start=True))


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"months": 13}, "months"), ({"months": 0}, "months"), ({"months": 38}, "months"), ({"months": -2}, "months"),
    ({"min_gap": 0}, "min_gap"), ({"min_gap": 13}, "min_gap"), ({"workers": 3}, "workers"),
    ({"time_limit_s": 0}, "time_limit_s"), ({"time_limit_s": 1e9}, "time_limit_s"),
])
def test_bad_requests(kwargs, field):
    with pytest.raises(InvalidInput) as caught:
        Request(START, **kwargs)
    assert caught.value.field == field


@pytest.mark.parametrize("text", ["2027-13-01", "2027-02-30", "", "\x01", "27-01-01", "1999-12-31", "2200-01-01",
                                  "2027-01-01" * 1000, "2027-01-01\u202e"])
def test_bad_start_days(text):
    with pytest.raises(InvalidInput) as caught:
        rotation_plans.validate_start(text)
    assert caught.value.field == "start"


def test_months_are_calendar_months_clamped_to_the_month_end():
    request = Request(dt.date(2027, 8, 31), 6)
    assert rotation.period_bounds(request) == [(dt.date(2027, 8, 31), dt.date(2027, 10, 31)),
                                               (dt.date(2027, 10, 31), dt.date(2027, 12, 31)),
                                               (dt.date(2027, 12, 31), dt.date(2028, 2, 29))]


def test_the_synthetic_roster_says_so():
    roster = synthetic_roster({"T1": [("S1", 3)], "T2": [("S2", 2)]}, chinese=False)
    assert all(s.name.startswith(SYNTHETIC_PREFIX) for s in roster)
    assert synthetic_roster({"T1": [("S1", 3)]}, seed=5) == synthetic_roster({"T1": [("S1", 3)]}, seed=5)


def test_csv_cells_cannot_start_a_formula():
    plan = {"periods": [{"period": 0, "from": "2027-01-01", "until": "2027-03-01"}],
            "rows": [{"period": 0, "team_code": "110105T01", "supervision_code": "110105S0001", "person_id": 1,
                      "person_name": "=HYPERLINK(\"http://x\")", "leader": True}]}
    rows = list(csv.reader(io.StringIO(rotation_plans.plan_csv(plan))))
    assert rows[0] == list(rotation_plans.CSV_COLUMNS)
    assert not rows[1][6].startswith("=") and rows[1][7] == "yes"


# ------------------------------------------------------------------------------------------ stored plans (Chaoyang)
@pytest.fixture
def chaoyang_roster(bj):
    """Chaoyang's SYNTHETIC roster (1,547 supervisors in 35 teams for 237 grids) from 2026-11-01, rolled back."""
    return rotation_plans.seed_synthetic_roster(bj, "110105", dt.date(2026, 11, 1))


def test_chaoyang_at_the_seeds_scale_plans_publishes_and_reads(bj, chaoyang_roster, beijing_db):
    assert chaoyang_roster["supervisors"] == 1547 and chaoyang_roster["teams"] == 35
    request = Request(START, 12, 3, team_move_at_start=True, time_limit_s=60)
    made = rotation_plans.make_plan(bj, "110105", request, created_by="test")
    assert made["summary"]["violation_count"] == 0
    assert made["summary"]["workload_spread"] <= rotation.TOLERANCE
    stored = rotation_plans.read_plan(bj, made["plan_id"])
    assert len(stored["rows"]) == 1547 * 6 and stored["published_at"] is None
    # the stored rows keep every rule, checked from the database's roster and grids
    _, grids, roster = rotation_plans.planning_inputs(bj, "110105", START)
    rows = [rotation.Row(r["period"], r["person_id"], r["person_name"], r["team_code"], r["supervision_code"],
                         r["leader"]) for r in stored["rows"]]
    check_rules(rotation.Plan(request, rotation.period_bounds(request), rows), grids, roster)

    published = rotation_plans.publish_plan(bj, made["plan_id"], by="test")
    assert published["assigned"] == 1547 * 6 and published["leaders"] == 35
    with pytest.raises(Conflict, match="was published"):
        rotation_plans.publish_plan(bj, made["plan_id"])
    # on the second period's first day, each person holds the grid the plan gave them
    held = dict(bj.execute(sa.text(
        """SELECT person_id, target_code FROM person_assignments WHERE district_code = '110105'
              AND role = 'supervisor' AND valid @> CAST('2027-03-01 12:00+08' AS timestamptz)""")).all())
    assert held == {r["person_id"]: r["supervision_code"] for r in stored["rows"] if r["period"] == 1}
    assert bj.execute(sa.text("SELECT count(*) FROM audit_log WHERE object_kind = 'rotation_plans' "
                              "AND object_id = :p"), {"p": str(made["plan_id"])}).scalar() == 2

    # the API: JSON and CSV for a planner of the district; a team's rows
    planner = city_client(bj, beijing_db, "rota-planner", ("planner",))
    bj.execute(sa.text("UPDATE users SET district_code = '110105' WHERE username = 'rota-planner'"))
    answer = planner.get(f"/api/v1/rotation/{made['plan_id']}")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    assert body["district"] == "110105" and len(body["periods"]) == 6 and len(body["rows"]) == 1547 * 6
    team = body["rows"][0]["team_code"]
    one_team = planner.get(f"/api/v1/rotation/{made['plan_id']}?team={team}").get_json()
    assert {r["team_code"] for r in one_team["rows"]} == {team}
    sheet = planner.get(f"/api/v1/rotation/{made['plan_id']}?format=csv")
    assert sheet.status_code == 200 and sheet.mimetype == "text/csv"
    lines = list(csv.reader(io.StringIO(sheet.get_data(as_text=True))))
    assert lines[0] == list(rotation_plans.CSV_COLUMNS) and len(lines) == 1547 * 6 + 1
    listed = planner.get("/api/v1/rotation").get_json()["plans"]
    assert listed[0]["plan_id"] == made["plan_id"] and listed[0]["published_at"]


def test_plan_access_by_role_and_district(bj, chaoyang_roster, beijing_db, client_as, anonymous_client):
    made = rotation_plans.make_plan(bj, "110105", Request(START, 2, 3, time_limit_s=20), created_by="test")
    url = f"/api/v1/rotation/{made['plan_id']}"
    assert client_as("rota-admin", ["admin"]).get(url).status_code == 200
    assert client_as("rota-dispatcher", ["dispatcher"]).get(url).status_code == 200
    party = bj.execute(sa.text("SELECT code FROM parties WHERE district_code = '110105' LIMIT 1")).scalar_one()
    for role, extra in (("supervisor", {"team": "110105T01"}), ("unit", {"party": party}), ("analyst", {}),
                        ("gis", {})):
        assert_error(client_as(f"rota-{role}", [role], **extra).get(url), 403, "forbidden")
    assert_error(anonymous_client.get(url), 401, "unauthorized")
    # a planner of another district does not learn that the plan exists
    elsewhere = client_as("rota-elsewhere", ["planner"])
    bj.execute(sa.text("UPDATE users SET district_code = '410104' WHERE username = 'rota-elsewhere'"))
    assert_error(elsewhere.get(url), 404, "not_found")
    assert_error(elsewhere.get("/api/v1/rotation?district=110105"), 403, "forbidden")
    assert elsewhere.get("/api/v1/rotation").get_json() == {"plans": []}


@pytest.mark.parametrize(("path", "status", "field"), [
    ("/api/v1/rotation/abc", 400, "plan"),
    ("/api/v1/rotation/0", 400, "plan"),
    ("/api/v1/rotation/-1", 400, "plan"),
    ("/api/v1/rotation/" + "9" * 40, 400, "plan"),
    ("/api/v1/rotation/1%01", 400, "path"),
    ("/api/v1/rotation/1?format=xlsx", 400, "format"),
    ("/api/v1/rotation/1?team=%00T01", 400, "team"),
    ("/api/v1/rotation/1?team=" + "T" * 5000, 400, "team"),
    ("/api/v1/rotation?district=%E2%80%AE110105", 400, "district"),
    ("/api/v1/rotation/999999999", 404, None),
])
def test_hostile_plan_requests(client, path, status, field):
    answer = client.get(path)
    assert_error(answer, status, "invalid_input" if status == 400 else "not_found", field=field)


def test_unknown_district_and_no_roster(bj):
    with pytest.raises(NotFound):
        rotation_plans.make_plan(bj, "110199", Request(START))
    with pytest.raises(InvalidInput, match="district") as caught:
        rotation_plans.make_plan(bj, "11010\x01", Request(START))
    assert caught.value.field == "district"
    with pytest.raises(InvalidInput, match="no supervisors to rotate"):
        rotation_plans.make_plan(bj, "110105", Request(START))


def test_publishing_refuses_a_plan_of_an_older_grid_version(bj, chaoyang_roster):
    made = rotation_plans.make_plan(bj, "110105", Request(START, 2, 3, time_limit_s=20), created_by="test")
    bj.execute(sa.text("UPDATE rotation_plans SET version_id = version_id - 1 WHERE plan_id = :p"),
               {"p": made["plan_id"]})
    with pytest.raises(Conflict, match="grid version"):
        rotation_plans.publish_plan(bj, made["plan_id"])
    with pytest.raises(NotFound):
        rotation_plans.publish_plan(bj, 10**15)


def test_required_staffing_is_data_per_grid(bj, chaoyang_roster):
    """A grid's own ``supervisors_required`` is kept; the rest of the roster is spread over the other grids."""
    version, rows = rotation_plans.store.rotation_grids(bj, "110105")
    first = rows[0]["code"]
    rotation_plans.store.set_supervisors_required(bj, "110105", version, {first: 9})
    _, grids, roster = rotation_plans.planning_inputs(bj, "110105", START)
    staffing = {g.code: g.required for g in grids}
    assert staffing[first] == 9 and sum(staffing.values()) == len(roster) == 1547


# ------------------------------------------------------------------------------------------ the CLI
def run(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize(("args", "code", "words"), [
    (["--start", "2027-13-01"], 2, "start must be a day"),
    (["--start", "\x1b[31m"], 2, "start must be a day"),
    (["--start", "2027-01-01", "--months", "13"], 2, "months must be a multiple of 2"),
    (["--start", "2027-01-01", "--min-gap", "0"], 2, "min_gap must be"),
    (["--start", "2027-01-01", "--time-limit", "1e12"], 2, "time_limit_s"),
    (["--start", "2027-01-01", "--out", "plan.xlsx"], 2, "--out must name a .csv or .json"),
])
def test_cli_plan_bad_input(beijing_db, args, code, words):
    result = run("--database", beijing_db.database, "rotation", "plan", "--district", "110105", *args)
    assert result.exit_code == code, result.output
    assert words in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(("district", "code", "words"), [
    ("110199", 3, "no district 110199"), ("1101\x0005", 2, "error:"), ("110105", 2, "no supervisors to rotate")])
def test_cli_plan_district(beijing_db, district, code, words):
    result = run("--database", beijing_db.database, "rotation", "plan", "--district", district, "--start",
                 "2027-01-01")
    assert result.exit_code == code, result.output
    assert words in result.output


@pytest.mark.parametrize(("plan", "code"), [("999999999", 3), ("0", 2), ("abc", 2), ("1" * 40, 2)])
def test_cli_publish_and_show_bad_plans(beijing_db, plan, code):
    for command in ("publish", "show"):
        result = run("--database", beijing_db.database, "rotation", command, plan)
        assert result.exit_code == code, result.output


def test_cli_plan_show_and_publish(beijing_engine, beijing_db, tmp_path):
    """The whole command line on a committed roster (removed afterwards: the session's database is shared)."""
    with beijing_engine.begin() as conn:
        rotation_plans.seed_synthetic_roster(conn, "110105", dt.date(2026, 11, 1))
    try:
        out = tmp_path / "plan.csv"
        result = run("--database", beijing_db.database, "rotation", "plan", "--district", "110105", "--start",
                     "2027-01-01", "--months", "4", "--time-limit", "30", "--out", str(out))
        assert result.exit_code == 0, result.output
        made = json.loads(result.output)
        assert made["summary"]["violation_count"] == 0 and made["months"] == 4
        assert len(out.read_text(encoding="utf-8").splitlines()) == 1547 * 2 + 1
        shown = run("--database", beijing_db.database, "rotation", "show", str(made["plan_id"]), "--format", "csv")
        assert shown.exit_code == 0 and shown.output == out.read_text(encoding="utf-8")
        published = run("--database", beijing_db.database, "rotation", "publish", str(made["plan_id"]))
        assert published.exit_code == 0, published.output
        assert json.loads(published.output)["assigned"] == 1547 * 2
        again = run("--database", beijing_db.database, "rotation", "publish", str(made["plan_id"]))
        assert again.exit_code == 4 and "was published" in again.output
    finally:
        with beijing_engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM rotation_plans WHERE district_code = '110105'"))
            conn.execute(sa.text("DELETE FROM people WHERE district_code = '110105' AND synthetic"))


def test_plans_are_in_the_district_backup_and_restored(bj, chaoyang_roster, tmp_path):
    from citygrid import backup
    from citygrid.backup import store as backup_store

    made = rotation_plans.make_plan(bj, "110105", Request(START, 2, 3, time_limit_s=20), created_by="test")
    before = {t: backup_store.checksum(bj, t, backup_store.stored_columns(bj, t), "110105")
              for t in ("rotation_plans", "rotation_plan_rows")}
    manifest = backup.backup(bj, "110105", tmp_path / "cy.zip")
    assert manifest["tables"]["rotation_plan_rows"]["rows"] == 1547
    backup.restore(bj, tmp_path / "cy.zip", replace=True)
    after = {t: backup_store.checksum(bj, t, backup_store.stored_columns(bj, t), "110105") for t in before}
    assert after == before
    assert len(rotation_plans.read_plan(bj, made["plan_id"])["rows"]) == 1547
