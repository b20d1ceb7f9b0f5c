"""Working calendar and disposal deadlines; the deadline set on dispatch; overdue lists."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from citygrid.cases import service
from citygrid.cases.calendar import DeadlineRule, DeadlineTable, WorkingCalendar
from citygrid.cases.intake import parse_report
from citygrid.cases.rules import CaseRules
from citygrid.errors import InvalidInput
from tests.conftest import assert_error

REPO = Path(__file__).resolve().parent.parent
TZ = ZoneInfo("Asia/Shanghai")
CAL = WorkingCalendar(holidays=frozenset({dt.date(2026, 10, 1), dt.date(2026, 10, 2)}),
                      makeup_workdays=frozenset({dt.date(2026, 10, 10)}), zone=TZ)  # a Saturday worked


def at(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=TZ)


def test_working_hours_skip_lunch_night_and_weekend():
    # Friday 16:30 + 4 working hours: 1 h on Friday, Monday 08:30–11:30.
    assert CAL.add_working_hours(at(2026, 11, 20, 16, 30), 4) == at(2026, 11, 23, 11, 30)
    # 11:00 + 2 h crosses lunch: 1 h before, 1 h after 13:30.
    assert CAL.add_working_hours(at(2026, 11, 23, 11, 0), 2) == at(2026, 11, 23, 14, 30)
    # Reported at night: the clock starts next morning.
    assert CAL.add_working_hours(at(2026, 11, 23, 22, 0), 1) == at(2026, 11, 24, 9, 30)


def test_working_days_end_at_the_offset_of_their_own_day_across_the_clock_changes():
    # A city with summer time (Berlin). Working hours across the changes: tests/test_timezones.py (New York).
    # A working day ends at the last period's end in that day's offset: summer time (+02:00) after the spring
    # change, standard time (+01:00) after the autumn one.
    berlin = ZoneInfo("Europe/Berlin")
    office = WorkingCalendar(zone=berlin)
    friday = dt.datetime(2026, 3, 27, 10, tzinfo=berlin)
    assert office.add_working_days(friday, 1).utcoffset() == dt.timedelta(hours=2)
    assert office.add_working_days(friday, 1) == dt.datetime(2026, 3, 30, 15, 30, tzinfo=dt.UTC)
    assert office.add_working_days(dt.datetime(2026, 10, 23, 10, tzinfo=berlin), 1) == dt.datetime(
        2026, 10, 26, 16, 30, tzinfo=dt.UTC)


def test_holidays_and_makeup_days():
    # Wednesday 30 Sep 17:00 + 1 h: 1 and 2 Oct are holidays, 3–4 Oct weekend, Monday 5 Oct 09:00.
    assert CAL.add_working_hours(at(2026, 9, 30, 17, 0), 1) == at(2026, 10, 5, 9, 0)
    assert CAL.is_working_day(dt.date(2026, 10, 10)) and not CAL.is_working_day(dt.date(2026, 10, 11))
    # Friday 9 Oct + 1 working day = the make-up Saturday 10 Oct, end of day.
    assert CAL.add_working_days(at(2026, 10, 9, 10, 0), 1) == at(2026, 10, 10, 17, 30)


@pytest.mark.parametrize(("call", "needle"), [
    (lambda: CAL.add_working_hours(at(2026, 1, 1), -1), "≥ 0"),
    (lambda: CAL.add_working_days(at(2026, 1, 1), 0), "≥ 1"),
    (lambda: WorkingCalendar(weekend=frozenset(range(7)), zone=TZ).add_working_days(at(2026, 1, 1), 1),
     "ten years"),
])
def test_bad_calendar_requests(call, needle):
    with pytest.raises(InvalidInput, match=needle):
        call()


def test_shipped_rules_load(tmp_path):
    rules = CaseRules.load(REPO / "data")
    table, calendar = rules.deadlines, rules.calendar
    assert table.rule_for("event", "0102").working_hours == 4
    assert table.rule_for("event", "0599").working_days == 5
    assert calendar.is_working_day(dt.date(2026, 11, 23))
    (tmp_path / "deadlines.yaml").write_text("defaults:\n  event: {working_hours: 1, working_days: 2}\n")
    with pytest.raises(InvalidInput, match="exactly one"):
        DeadlineTable.from_yaml(tmp_path / "deadlines.yaml")
    (tmp_path / "calendar.yaml").write_text("periods: [['12:00', '08:00']]\n")
    with pytest.raises(InvalidInput, match="start before"):
        WorkingCalendar.from_yaml(tmp_path / "calendar.yaml")


def test_dispatch_sets_the_deadline_and_overdue_lists(case_rules, bj, client):
    four_hours = DeadlineTable(defaults={}, classes={"event/0102": DeadlineRule(working_hours=4)})
    rules = replace(case_rules, deadlines=four_hours, calendar=WorkingCalendar())
    case, _ = service.submit(bj, case_rules,
                             parse_report({"lon": 116.47, "lat": 39.95, "kind": "event", "class_code": "0102",
                                           "description": "暴露垃圾"}))
    case = service.transition(bj, case_rules, case["case_id"], "accept", actor="a", role="acceptor")
    case = service.transition(bj, rules, case["case_id"], "dispatch", actor="d", role="dispatcher")
    now = bj.execute(sa.text("SELECT now()")).scalar_one()
    assert case["deadline_at"] == WorkingCalendar(zone=TZ).add_working_hours(now, 4)
    bj.execute(sa.text("UPDATE cases SET deadline_at = now() - interval '1 hour' WHERE case_id = :c"),
               {"c": case["case_id"]})
    lists = client.get("/api/v1/cases/deadlines?district=110105").get_json()
    assert case["case_id"] in [c["case_id"] for c in lists["overdue"]]
    bj.execute(sa.text("UPDATE cases SET deadline_at = now() + interval '2 hours' WHERE case_id = :c"),
               {"c": case["case_id"]})
    lists = client.get("/api/v1/cases/deadlines?within_hours=3").get_json()
    assert case["case_id"] in [c["case_id"] for c in lists["due_soon"]]
    assert_error(client.get("/api/v1/cases/deadlines?within_hours=-1"), 400, "invalid_input", field="within_hours",
                 reason="between 0 and 720")
    assert_error(client.get("/api/v1/cases/deadlines?district=x"), 400, "invalid_input", field="district",
                 reason="district code 'x' must be 6 digits")
