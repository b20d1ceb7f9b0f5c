"""The demo's SYNTHETIC event timelines and planted patterns (#24, ``cases.synthetic_events``): every case reaches
its status through allowed workflow steps with due times on the working calendar, and the planted chronic
components, recurring places and emerging hot spot lie where ``PLANTED`` says."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from citygrid.cases import synthetic, synthetic_events
from citygrid.cases.synthetic_events import HISTORY_END, PLANTED, planted_key_prefix
from citygrid.cases.workflow import TRANSITIONS
from citygrid.spatial.timezones import localize

DISTRICT = "110105"


def insert_planted_components(conn: Connection, district: str = DISTRICT) -> None:
    """The census components ``PLANTED`` names (the test database has no census), each with an owner."""
    for item in PLANTED[district]["chronic_components"]:
        conn.execute(sa.text(
            """INSERT INTO components (district_code, obj_id, valid_from, scheme, class_code, obj_name, dept_code1,
                                       dept_name1, synthetic, geom)
               VALUES (:d, :o, '2020-01-01', 'cjt214', :c, :name, 'D01', '测试养护所（合成）', true,
                       ST_Transform(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 4548))"""),
            {"d": district, "o": item["obj_id"], "c": item["class_code"], "lon": item["lon"], "lat": item["lat"],
             "name": f"=planted {item['id']}"})


def remove_synthetic(conn: Connection, district: str = DISTRICT) -> None:
    conn.execute(sa.text("DELETE FROM cases WHERE district_code = :d AND synthetic"), {"d": district})
    conn.execute(sa.text("DELETE FROM components WHERE district_code = :d AND obj_id = ANY(:o)"),
                 {"d": district, "o": [i["obj_id"] for i in PLANTED[district]["chronic_components"]]})


@pytest.fixture(scope="module")
def demo_history(beijing_engine, case_rules):
    """A small two-year demo history with planted patterns and timelines, committed (removed after)."""
    with beijing_engine.begin() as conn:
        insert_planted_components(conn)
        synthetic.generate(conn, DISTRICT, 500, seed=3)
        summary = synthetic_events.ensure_demo_timelines(conn, DISTRICT, 300, case_rules, seed=3)
    yield summary
    with beijing_engine.begin() as conn:
        remove_synthetic(conn)


def _timelines(bj: Connection) -> dict[int, list[dict]]:
    rows = bj.execute(sa.text(
        """SELECT e.case_id, e.seq, e.action, e.from_status, e.to_status, e.actor, e.role, e.at, e.due_at, e.party_code
             FROM case_events e JOIN cases c USING (district_code, case_id)
            WHERE c.district_code = :d AND c.synthetic ORDER BY e.case_id, e.seq"""), {"d": DISTRICT}).mappings()
    found: dict[int, list[dict]] = {}
    for r in rows:
        found.setdefault(r["case_id"], []).append(dict(r))
    return found


def _cases(bj: Connection) -> dict[int, dict]:
    rows = bj.execute(sa.text(
        """SELECT case_id, status, source, reported_at, deadline_at, verify_due_at, check_due_at, attrs,
                  idempotency_key, component_obj_id, row_version
             FROM cases WHERE district_code = :d AND synthetic"""), {"d": DISTRICT}).mappings()
    return {r["case_id"]: dict(r) for r in rows}


def test_every_case_reaches_its_status_through_allowed_steps(demo_history, bj):
    cases, timelines = _cases(bj), _timelines(bj)
    assert demo_history["timelines"] == len(cases) == len(timelines) > 800
    end = localize(HISTORY_END, ZoneInfo("Asia/Shanghai")) + dt.timedelta(days=2)
    for case_id, events in timelines.items():
        case = cases[case_id]
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert (events[0]["action"], events[0]["from_status"], events[0]["to_status"]) == ("report", None, "reported")
        for before, event in pairwise(events):
            assert event["from_status"] == before["to_status"], events
            assert event["at"] >= before["at"], events
            step = TRANSITIONS[event["action"]]
            assert event["from_status"] in step.sources and event["to_status"] == (step.target or
                                                                                   event["to_status"]), event
            if step.target == "":
                assert event["action"] == "callback" or event["to_status"] == event["from_status"], event
        assert events[-1]["to_status"] == case["status"] or events[-1]["action"] == "escalate"
        assert all(e["actor"].startswith("synthetic-") or e["actor"] == "system" for e in events)
        assert events[0]["at"] == case["reported_at"] and events[-1]["at"] < end
        assert case["row_version"] == 1 + sum(e["from_status"] != e["to_status"] for e in events[1:])


def test_timelines_have_due_times_detours_and_two_years(demo_history, bj):
    cases, timelines = _cases(bj), _timelines(bj)
    events = [e for line in timelines.values() for e in line]
    actions = Counter(e["action"] for e in events)
    for action in ("verify", "accept", "reject", "dispatch", "hand_back", "feed_back", "check_fail", "check_pass",
                   "close", "evaluate", "callback", "escalate"):
        assert actions[action] > 0, (action, actions)
    completing = [e for e in events if e["action"] in ("verify", "feed_back", "check_pass", "check_fail")]
    assert all(e["due_at"] is not None for e in completing)
    late = sum(e["at"] > e["due_at"] for e in completing) / len(completing)
    assert 0.03 < late < 0.3, late  # mostly on time, some overdue
    # Public reports are verified before they are filed; supervisors' own reports are not.
    for case_id, line in timelines.items():
        steps = [e["action"] for e in line]
        if cases[case_id]["source"] in ("hotline", "citizen") and "accept" in steps:
            assert steps.index("verify") < steps.index("accept")
        if cases[case_id]["source"] == "supervisor":
            assert "verify" not in steps and "callback" not in steps
    dispatched = [c for c in cases.values() if any(e["action"] == "dispatch" for e in timelines[c["case_id"]])]
    assert dispatched and all(c["deadline_at"] and c["attrs"]["dispatched_to"]["name"] for c in dispatched)
    open_overdue = [c for c in dispatched if c["status"] == "dispatched" and c["deadline_at"] < dt.datetime.now(dt.UTC)]
    assert open_overdue  # the history's open dispatched cases are overdue now
    assert any(c["attrs"].get("satisfaction") for c in cases.values())
    reported = sorted(c["reported_at"] for c in cases.values())
    assert (reported[-1] - reported[0]).days > 700  # two years


def test_dispatch_follows_the_rules_and_levels(demo_history, bj, case_rules):
    from citygrid.cases import service, store

    cases, timelines = _cases(bj), _timelines(bj)
    checked = 0
    for case_id, line in timelines.items():
        to = cases[case_id]["attrs"].get("dispatched_to")
        escalations = sum(e["action"] == "escalate" for e in line)
        if to is None:
            continue
        assert to["level"] == cases[case_id]["attrs"]["level"]
        if to["level"] == "community" and escalations == 0 and checked < 30:
            case = {**store.get_case(bj, case_id), "reported_at": None, "attrs": {}}
            assert service.dispatch_preview(bj, case_rules, case)["party"]["code"] == to["code"]
            checked += 1
        if to["level"] == "street":
            assert to["kind"] == "street_office"
        disposal = [e for e in line if e["action"] in synthetic_events.DISPOSAL_ACTIONS]
        if sum(e["action"] == "dispatch" for e in line) == 1 and to["code"]:
            # The party each disposal event recorded (what the evaluation counts per unit) is the case's.
            assert {e["party_code"] for e in disposal} == {to["code"]}, line
    assert checked == 30


def test_planted_patterns_lie_where_documented(demo_history, bj):
    spec = PLANTED[DISTRICT]
    for item in spec["chronic_components"]:
        rows = bj.execute(sa.text(
            """SELECT component_obj_id, kind, class_code, attrs ->> 'planted' FROM cases
                WHERE district_code = :d AND idempotency_key LIKE :k"""),
            {"d": DISTRICT, "k": planted_key_prefix(DISTRICT, item["id"]) + "%"}).all()
        assert len(rows) == item["cases"] >= 6
        assert set(rows) == {(item["obj_id"], "component", item["class_code"], item["id"])}
    for item in spec["recurring_places"]:
        rows = bj.execute(sa.text(
            """SELECT class_code, ST_Distance(geom, ST_Transform(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 4548)),
                      reported_at FROM cases WHERE district_code = :d AND idempotency_key LIKE :k
                ORDER BY reported_at"""),
            {"d": DISTRICT, "k": planted_key_prefix(DISTRICT, item["id"]) + "%", "lon": item["lon"],
             "lat": item["lat"]}).all()
        assert len(rows) == item["cases"] and all(r[0] == item["class_code"] and r[1] <= item["radius_m"] + 0.5
                                                   for r in rows)
        assert (rows[-1][2] - rows[0][2]).days > 60  # repeated over months
    hot = spec["emerging_hotspot"]
    months = bj.execute(sa.text(
        """SELECT date_trunc('month', reported_at AT TIME ZONE 'Asia/Shanghai') AS m, count(*) FROM cases
            WHERE district_code = :d AND idempotency_key LIKE :k
              AND ST_DWithin(geom, ST_Transform(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 4548), :r)
            GROUP BY 1 ORDER BY 1"""),
        {"d": DISTRICT, "k": planted_key_prefix(DISTRICT, hot["id"]) + "%", "lon": hot["lon"], "lat": hot["lat"],
         "r": hot["radius_m"] + 0.5}).all()
    counts = [n for _, n in months]
    assert sum(counts) == sum(hot["cases_per_month"]) and counts[-1] > 3 * counts[0]
    assert demo_history["planted"]["stored"] == (sum(i["cases"] for i in spec["chronic_components"])
                                                 + sum(i["cases"] for i in spec["recurring_places"])
                                                 + sum(hot["cases_per_month"]))


def test_timelines_are_added_once(demo_history, bj, case_rules):
    before = bj.execute(sa.text("SELECT count(*) FROM case_events WHERE district_code = :d"), {"d": DISTRICT}).scalar()
    assert synthetic_events.ensure_demo_timelines(bj, DISTRICT, 300, case_rules, seed=3) is None
    assert synthetic_events.add_timelines(bj, DISTRICT, case_rules) == {"timelines": 0, "events": 0}
    after = bj.execute(sa.text("SELECT count(*) FROM case_events WHERE district_code = :d"), {"d": DISTRICT}).scalar()
    assert before == after


def test_a_case_without_a_timeline_gets_one_and_keeps_its_status(demo_history, bj, case_rules):
    """A synthetic case added later (an older demo's history, imported without steps) gets its timeline on the
    next run, and the cases that had one keep theirs."""
    made = synthetic.generate(bj, DISTRICT, 20, seed=99)
    assert made.imported == 20
    assert synthetic_events.add_timelines(bj, DISTRICT, case_rules)["timelines"] == 20
    cases, timelines = _cases(bj), _timelines(bj)
    new = [c for c in cases.values() if c["idempotency_key"].startswith(f"synthetic-{DISTRICT}-99-")]
    assert len(new) == 20 and all(timelines[c["case_id"]][-1]["to_status"] in (c["status"],) or
                                  timelines[c["case_id"]][-1]["action"] == "escalate" for c in new)


def test_a_month_of_timelines_scores_every_supervisor_indicator(demo_history, bj):
    """The timelines' stand-in supervisors (one per supervision grid) are evaluable on all four indicators: their
    reports, verifications and checks are theirs, and the cases reported in their own grid are the ground of the
    missed report rate (before, no stand-in had grids, so that rate was None for every supervisor)."""
    from citygrid.evaluation import queries
    from citygrid.evaluation.scores import EvaluationRules
    from citygrid.evaluation.store import SYNTHETIC_SUPERVISOR

    answer = queries.evaluate(bj, EvaluationRules(), DISTRICT, "2026-10", "supervisors",
                              now=dt.datetime(2026, 12, 1, tzinfo=ZoneInfo("UTC")))
    rows = answer["rows"]
    assert answer["synthetic"] is True and len(rows) >= 10
    assert all(r["code"].startswith(SYNTHETIC_SUPERVISOR) for r in rows)
    names = ("valid_report_rate", "missed_report_rate", "timely_verification_rate", "timely_check_rate")
    filled = {n: sum(r[n] is not None for r in rows) for n in names}
    reporters = [r for r in rows if r["reports"]]
    # Every stand-in that reported in the month has its grid's cases of the month (its own among them).
    assert reporters and all(r["missed_report_rate"] is not None and r["grid_cases"] >= r["reports"]
                             for r in reporters)
    assert filled["valid_report_rate"] >= 0.75 * len(rows) and filled["missed_report_rate"] >= 0.75 * len(rows)
    # Verifications (of public reports) and checks are the stand-in's of the case's grid, each with its time limit.
    assert filled["timely_verification_rate"] == sum(1 for r in rows if r["verifies_due"]) > 0
    assert filled["timely_check_rate"] == sum(1 for r in rows if r["checks_due"]) > 0
