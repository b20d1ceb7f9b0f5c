"""The evaluation's indicators, each a numerator over a denominator counted from case events only (seed 002:
objective system data, no subjective points), for one local month of the deployment's zone.

A month ``2026-11`` runs from midnight of 1 November to midnight of 1 December in the deployment's time zone
(``spatial.db.deployment_zone``); "in the month" means an event's ``at`` (or a case's ``reported_at``) in that
range. Rates whose denominator is zero are ``None`` (not scored: nothing to judge), never 0 or 1.

Supervisors (key: the account name the events record as ``actor``, role ``supervisor``)
    valid_report_rate = reports of the month (``report`` events by the supervisor) whose case was ever accepted
        (立案: an ``accept`` event) / all the supervisor's reports of the month.
    missed_report_rate = cases reported in the month in the supervisor's grids (``person_assignments``: the
        supervision grids the supervisor's named person held when each case was reported) whose report was
        not the supervisor's (another source — hotline, citizen, camera … — or another supervisor) / all cases
        reported in the month in those grids. Scored as 1 − rate. Needs the named person (``people.username``);
        an account with no person has no grids, so the rate is None. The SYNTHETIC demo timelines' stand-in
        ``synthetic-supervisor-<grid>`` (no account, no person) holds that supervision grid for synthetic cases.
    timely_verification_rate = ``verify`` events of the month by the supervisor at or before their ``due_at``
        / the supervisor's ``verify`` events of the month that had a time limit (``due_at`` set).
    timely_check_rate = ``check_pass`` / ``check_fail`` events likewise.
Teams (key: team code; a case belongs to the team of its supervision grid in the newest grid version in force
    by the month's end): the four rates above over the cases of the team's grids, with "missed" meaning first
    reported by a source other than a supervisor.
Units / departments (key: party code; each disposal event records the party the case was with, the
    ``case_events.party_code`` of migration 0015)
    on_time_disposal_rate = ``feed_back`` events of the month at or before the disposal deadline (``due_at``)
        / ``feed_back`` events of the month with a deadline.
    rework_rate = ``check_fail`` / (``check_pass`` + ``check_fail``) events of the month on the party's
        feedback (返工). Scored as 1 − rate.
    hand_back_rate = ``hand_back`` events / ``dispatch`` events of the month to the party (退回). Scored as
        1 − rate.
    closure_rate = cases dispatched to the party in the month with a ``close`` event by the month's end /
        cases dispatched to the party in the month.
    self_initiated_fixes = cases closed in the month by the party whose report was made by an account of that
        same party (``users.party_code``): a unit that found and fixed its own problem. Shown, not scored.
Streets and communities (key: the case's street / community code at report time)
    caseload = cases reported in the month; cases_per_km2 over the area's polygon (or its unit grids' area
        where it has none); cases_per_10k_components over the components currently in its unit grids. Context,
        not scored.
    closure_rate = cases reported in the month that were filed (``accept``) and closed (``close``) by the
        month's end / cases reported in the month that were filed by the month's end.
    on_time_rate = ``feed_back`` events of the month on its cases at or before the deadline / such events with
        a deadline.
    satisfaction_rate = ``callback`` (回访) events of the month answered satisfied or basically satisfied (the
        callback closes the case as evaluated) / all callback events of the month. None where none is recorded.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from citygrid.errors import InvalidInput

KINDS = ("supervisors", "teams", "units", "streets", "communities")
PUBLIC_KINDS = ("units", "streets")
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")
FIRST_YEAR = 2000  # gridded management began in 2004; earlier months hold no cases


@dataclass(frozen=True)
class Indicator:
    """One rate: ``numerator`` / ``denominator`` (count fields of a store row); ``better`` says which way is
    good (``lower``: scored as 1 − rate)."""

    name: str
    label: str
    numerator: str
    denominator: str
    better: str
    definition: str

    def value(self, row: dict[str, Any]) -> float | None:
        """The rate for ``row`` (0–1), or None when the denominator is zero."""
        den = row.get(self.denominator) or 0
        return None if den == 0 else (row.get(self.numerator) or 0) / den

    def describe(self) -> dict[str, str]:
        return {"label": self.label, "numerator": self.numerator, "denominator": self.denominator,
                "better": self.better, "definition": self.definition}


_SUPERVISOR = (
    Indicator("valid_report_rate", "有效上报率", "valid_reports", "reports", "higher",
              "reports of the month later accepted (立案) / all reports of the month"),
    Indicator("missed_report_rate", "漏报率", "missed_cases", "grid_cases", "lower",
              "cases reported in the month in the supervisor's grids first reported by others / all cases "
              "reported in the month in those grids"),
    Indicator("timely_verification_rate", "及时核实率", "verifies_timely", "verifies_due", "higher",
              "verify events of the month at or before due_at / verify events of the month with a due_at"),
    Indicator("timely_check_rate", "及时核查率", "checks_timely", "checks_due", "higher",
              "check_pass and check_fail events of the month at or before due_at / such events with a due_at"),
)
_TEAM_MISSED = Indicator("missed_report_rate", "漏报率", "missed_cases", "grid_cases", "lower",
                         "cases reported in the month in the team's grids by a source other than a supervisor "
                         "/ all cases reported in the month in those grids")
_UNIT = (
    Indicator("on_time_disposal_rate", "按期处置率", "feed_backs_on_time", "feed_backs_due", "higher",
              "feed_back events of the month at or before the deadline / feed_back events of the month with one"),
    Indicator("rework_rate", "返工率", "check_fails", "checks", "lower",
              "check_fail events / check_pass + check_fail events of the month on the party's feedback"),
    Indicator("hand_back_rate", "退回率", "hand_backs", "dispatches", "lower",
              "hand_back events / dispatch events of the month to the party"),
    Indicator("closure_rate", "结案率", "closed_cases", "dispatched_cases", "higher",
              "cases dispatched to the party in the month and closed by its end / cases dispatched to it in "
              "the month"),
)
_AREA = (
    Indicator("closure_rate", "结案率", "closed_cases", "filed_cases", "higher",
              "cases reported in the month, filed and closed by its end / cases reported in the month and "
              "filed by its end"),
    Indicator("on_time_rate", "按期处置率", "feed_backs_on_time", "feed_backs_due", "higher",
              "feed_back events of the month on the area's cases at or before the deadline / such events with "
              "a deadline"),
    Indicator("satisfaction_rate", "满意率", "satisfied_callbacks", "callbacks", "higher",
              "callback events of the month answered satisfied or basically satisfied / all callback events of "
              "the month"),
)
INDICATORS: dict[str, tuple[Indicator, ...]] = {
    "supervisors": _SUPERVISOR,
    "teams": (_SUPERVISOR[0], _TEAM_MISSED, *_SUPERVISOR[2:]),
    "units": _UNIT,
    "streets": _AREA,
    "communities": _AREA,
}
# Counts shown beside the rates (context, not scored).
CONTEXT: dict[str, tuple[str, ...]] = {
    "supervisors": ("reports", "valid_reports", "grid_cases", "missed_cases", "verifies_due", "verifies_timely",
                    "checks_due", "checks_timely"),
    "teams": ("reports", "valid_reports", "grid_cases", "missed_cases", "verifies_due", "verifies_timely",
              "checks_due", "checks_timely"),
    "units": ("dispatches", "dispatched_cases", "closed_cases", "hand_backs", "feed_backs_due",
              "feed_backs_on_time", "checks", "check_fails", "self_initiated_fixes"),
    "streets": ("caseload", "area_km2", "cases_per_km2", "components", "cases_per_10k_components",
                "filed_cases", "closed_cases", "feed_backs_due", "feed_backs_on_time", "callbacks",
                "satisfied_callbacks"),
    "communities": ("caseload", "area_km2", "cases_per_km2", "components", "cases_per_10k_components",
                    "filed_cases", "closed_cases", "feed_backs_due", "feed_backs_on_time", "callbacks",
                    "satisfied_callbacks"),
}
LABELS = {"supervisors": "监督员 Supervisors", "teams": "监督分队 Teams", "units": "责任单位 Units and departments",
          "streets": "街道 Streets", "communities": "社区 Communities"}


def check_kind(kind: str) -> str:
    """``kind`` if it is one of ``KINDS``; ``InvalidInput`` (field ``kind``) otherwise."""
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}", field="kind")
    return kind


def month_bounds(month: str | None, zone: ZoneInfo, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """(start, exclusive end) of the local month ``YYYY-MM`` in ``zone``, as aware datetimes.

    Raises ``InvalidInput`` (field ``month``) for anything but ``YYYY-MM`` with a month 01–12, a year before
    ``FIRST_YEAR``, or a month that has not begun at ``now``.

    >>> from zoneinfo import ZoneInfo
    >>> now = dt.datetime(2026, 12, 7, tzinfo=ZoneInfo("UTC"))
    >>> [t.isoformat() for t in month_bounds("2026-11", ZoneInfo("Asia/Shanghai"), now)]
    ['2026-11-01T00:00:00+08:00', '2026-12-01T00:00:00+08:00']
    """
    found = _MONTH.fullmatch(month or "")
    if found is None:
        raise InvalidInput("month must be YYYY-MM, e.g. 2026-11", field="month")
    year, number = int(found.group(1)), int(found.group(2))
    if not 1 <= number <= 12:
        raise InvalidInput(f"month {number:02d} does not exist: months are 01–12", field="month")
    start = dt.datetime(year, number, 1, tzinfo=zone)
    if year < FIRST_YEAR or start > now:
        raise InvalidInput(f"month must be between {FIRST_YEAR}-01 and the current month", field="month")
    end = dt.datetime(year + number // 12, number % 12 + 1, 1, tzinfo=zone)
    return start, end


def rates(kind: str, row: dict[str, Any]) -> dict[str, float | None]:
    """Each indicator of ``kind`` for a store row (name → rate 0–1 or None)."""
    return {i.name: i.value(row) for i in INDICATORS[kind]}


def definitions(kind: str) -> dict[str, dict[str, str]]:
    """Each indicator of ``kind`` with its numerator, denominator, direction and definition (for the answer)."""
    return {i.name: i.describe() for i in INDICATORS[kind]}
