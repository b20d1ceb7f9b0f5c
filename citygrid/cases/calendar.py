"""Working time: disposal deadlines (处置时限) in working hours or working days, on a configurable calendar.

A calendar is data (YAML): daily working periods, weekend days, public holidays and make-up working days
(调休上班). No holiday list ships by default — China's list is published each year and differs by place — so
the default calendar is "Monday–Friday, 08:30–12:00 and 13:30–17:30" and says so; a city adds its own file.
Deadline rules per class are data too (``data/deadlines.yaml``). Working periods are wall-clock times of the
deployment's time zone (``deployment.timezone``), which the calendar is given with ``in_zone``; deadlines are
aware datetimes in that zone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from citygrid.errors import InvalidInput

MAX_STEPS = 3650
# The supervisor's tasks that have a time limit of their own: verification (核实) of a report before filing and
# the check (核查) of a unit's feedback. No seed gives values (DOMAIN.md §12: only the indicators "timely
# verification rate" and "timely check rate" are named), so these defaults are this project's choice;
# ``data/deadlines.yaml`` (``tasks:``) sets a city's own.
TASKS = ("verify", "check")
MAX_TASK_HOURS = 24 * 365


def _time(text: str) -> dt.time:
    try:
        return dt.time.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"working period time {text!r} must be HH:MM", field="calendar") from None


def _read_yaml(path: Path, what: str) -> dict[str, Any]:
    """A YAML mapping from ``path``; ``InvalidInput`` naming ``what`` when it cannot be read or is not one."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInput(f"{what} {path}: {exc}", field=what) from exc
    if not isinstance(data, dict):
        raise InvalidInput(f"{what} {path} must be a mapping", field=what)
    return data


@dataclass(frozen=True)
class WorkingCalendar:
    """Working periods of a working day, weekend weekdays (0 = Monday), holidays and make-up working days."""

    periods: tuple[tuple[dt.time, dt.time], ...] = ((dt.time(8, 30), dt.time(12, 0)),
                                                    (dt.time(13, 30), dt.time(17, 30)))
    weekend: frozenset[int] = frozenset({5, 6})
    holidays: frozenset[dt.date] = frozenset()
    makeup_workdays: frozenset[dt.date] = frozenset()
    name: str = "default: Monday–Friday 08:30–12:00, 13:30–17:30, no public holidays configured"
    zone: ZoneInfo | None = None  # the deployment's; a calendar read from YAML has none until ``in_zone``

    def in_zone(self, zone: ZoneInfo) -> WorkingCalendar:
        """This calendar with its periods read as wall-clock times of ``zone`` (the deployment's)."""
        return replace(self, zone=zone)

    def _tz(self) -> ZoneInfo:
        if self.zone is None:
            raise ValueError("a working calendar needs the deployment's time zone: use calendar.in_zone(zone)")
        return self.zone

    @classmethod
    def from_yaml(cls, path: Path) -> WorkingCalendar:
        data = _read_yaml(path, "calendar")
        periods = tuple((_time(a), _time(b)) for a, b in data.get("periods", [["08:30", "12:00"], ["13:30", "17:30"]]))
        if any(a >= b for a, b in periods):
            raise InvalidInput("each working period must start before it ends", field="calendar")
        return cls(periods=periods, weekend=frozenset(data.get("weekend", [5, 6])),
                   holidays=frozenset(dt.date.fromisoformat(str(d)) for d in data.get("holidays", [])),
                   makeup_workdays=frozenset(dt.date.fromisoformat(str(d)) for d in data.get("makeup_workdays", [])),
                   name=str(data.get("name", path.stem)))

    def is_working_day(self, day: dt.date) -> bool:
        if day in self.makeup_workdays:
            return True
        return day.weekday() not in self.weekend and day not in self.holidays

    def _intervals(self, day: dt.date):
        for start, end in self.periods:
            yield dt.datetime.combine(day, start, self._tz()), dt.datetime.combine(day, end, self._tz())

    def add_working_hours(self, start: dt.datetime, hours: float) -> dt.datetime:
        """The moment ``hours`` of working time after ``start`` (aware datetime), in the calendar's zone.

        Periods are wall-clock times, but the hours in them are real: counted on UTC instants, since Python
        adds and subtracts datetimes of one zone by wall-clock time (a period 01:00–04:00 holds two hours on
        the night the clocks go forward and four when they go back)."""
        if hours < 0:
            raise InvalidInput("working hours must be ≥ 0", field="hours")
        remaining = dt.timedelta(hours=hours)
        moment = start.astimezone(dt.UTC)
        day = start.astimezone(self._tz()).date()
        for _ in range(MAX_STEPS):
            if self.is_working_day(day):
                for begin, end in self._intervals(day):
                    begin, end = begin.astimezone(dt.UTC), end.astimezone(dt.UTC)
                    if end <= moment:
                        continue
                    begin = max(begin, moment)
                    if begin + remaining <= end:
                        return (begin + remaining).astimezone(self._tz())
                    remaining -= end - begin
            day += dt.timedelta(days=1)
            moment = max(moment, dt.datetime.combine(day, dt.time(0), self._tz()).astimezone(dt.UTC))
        raise InvalidInput("no working time found within ten years: check the calendar", field="calendar")

    def add_working_days(self, start: dt.datetime, days: int) -> dt.datetime:
        """End of the ``days``-th working day after the local day of ``start`` (the day itself does not
        count), in the calendar's zone."""
        if days < 1:
            raise InvalidInput("working days must be ≥ 1", field="days")
        day = start.astimezone(self._tz()).date()
        counted = 0
        for _ in range(MAX_STEPS):
            day += dt.timedelta(days=1)
            if self.is_working_day(day):
                counted += 1
                if counted == days:
                    return dt.datetime.combine(day, self.periods[-1][1], self._tz())
        raise InvalidInput("no working day found within ten years: check the calendar", field="calendar")


@dataclass(frozen=True)
class DeadlineRule:
    working_hours: float | None = None
    working_days: int | None = None
    source: str = ""

    def deadline(self, start: dt.datetime, calendar: WorkingCalendar) -> dt.datetime:
        if self.working_hours is not None:
            return calendar.add_working_hours(start, self.working_hours)
        return calendar.add_working_days(start, self.working_days or 1)


DEFAULT_TASKS: dict[str, DeadlineRule] = {"verify": DeadlineRule(working_hours=2, source="citygrid default"),
                                          "check": DeadlineRule(working_hours=4, source="citygrid default")}


def _task_rules(data: Any) -> dict[str, DeadlineRule]:
    """The ``tasks:`` section of ``deadlines.yaml``: ``{verify: {working_hours: 2}, check: {...}}``, each a
    positive number of working hours or a whole number of working days; a task left out keeps its default.

    Raises ``InvalidInput`` (field ``deadlines``) for a section that is not a mapping, an unknown task or a bad
    limit."""
    if data is None:
        return dict(DEFAULT_TASKS)
    if not isinstance(data, dict):
        raise InvalidInput("deadlines.yaml: tasks must be a mapping of verify and check", field="deadlines")
    rules = dict(DEFAULT_TASKS)
    for name, value in data.items():
        if name not in TASKS:
            raise InvalidInput(f"deadlines.yaml: unknown task {str(name)[:40]!r}; tasks: {', '.join(TASKS)}",
                               field="deadlines")
        rules[name] = _task_rule(name, value)
    return rules


def _task_rule(name: str, value: Any) -> DeadlineRule:
    """One task's limit (see ``_task_rules``)."""
    hours, days = (value.get("working_hours"), value.get("working_days")) if isinstance(value, dict) else (None, None)
    if (hours is None) == (days is None):
        raise InvalidInput(f"deadlines.yaml: task {name} needs exactly one of working_hours / working_days",
                           field="deadlines")
    if hours is not None and (isinstance(hours, bool) or not isinstance(hours, int | float)
                              or not 0 < hours <= MAX_TASK_HOURS):
        raise InvalidInput(f"deadlines.yaml: task {name}: working_hours must be a number above 0 and at most "
                           f"{MAX_TASK_HOURS}", field="deadlines")
    if days is not None and (isinstance(days, bool) or not isinstance(days, int) or not 0 < days <= 365):
        raise InvalidInput(f"deadlines.yaml: task {name}: working_days must be a whole number from 1 to 365",
                           field="deadlines")
    return DeadlineRule(None if hours is None else float(hours), days, str(value.get("source", ""))[:300])


@dataclass(frozen=True)
class DeadlineTable:
    """Rule per ``kind/code`` with a default per kind, and the time limit of each supervisor task (``TASKS``)."""

    defaults: dict[str, DeadlineRule]
    classes: dict[str, DeadlineRule] = field(default_factory=dict)
    tasks: dict[str, DeadlineRule] = field(default_factory=lambda: dict(DEFAULT_TASKS))

    @classmethod
    def from_yaml(cls, path: Path) -> DeadlineTable:
        data = _read_yaml(path, "deadlines")

        def rule(value: dict[str, Any]) -> DeadlineRule:
            hours, days = value.get("working_hours"), value.get("working_days")
            if (hours is None) == (days is None):
                raise InvalidInput(f"each deadline needs exactly one of working_hours/working_days: {value}",
                                   field="deadlines")
            return DeadlineRule(hours, days, str(value.get("source", "")))

        return cls(defaults={k: rule(v) for k, v in data.get("defaults", {}).items()},
                   classes={k: rule(v) for k, v in (data.get("classes") or {}).items()},
                   tasks=_task_rules(data.get("tasks")))

    def rule_for(self, kind: str, code: str) -> DeadlineRule:
        return self.classes.get(f"{kind}/{code}") or self.defaults.get(kind) or DeadlineRule(working_days=5)

    def task_due(self, task: str, start: dt.datetime, calendar: WorkingCalendar) -> dt.datetime:
        """When supervisor task ``task`` (``verify`` or ``check``) begun at ``start`` is due: its limit counted
        on the working calendar (given ``in_zone``: the deployment's zone), in that zone."""
        return self.tasks.get(task, DEFAULT_TASKS[task]).deadline(start, calendar)


def load_rules(data_dir: Path) -> tuple[DeadlineTable, WorkingCalendar]:
    """``data/deadlines.yaml`` and ``data/calendar.yaml`` (the built-in defaults where a file is missing); read
    once per app or command run, by ``cases.rules.CaseRules.load``."""
    deadlines = data_dir / "deadlines.yaml"
    calendar = data_dir / "calendar.yaml"
    return (DeadlineTable.from_yaml(deadlines) if deadlines.exists() else DeadlineTable(defaults={}),
            WorkingCalendar.from_yaml(calendar) if calendar.exists() else WorkingCalendar())
