"""SYNTHETIC event timelines for the demo's case history, and the patterns planted in it (#24).

The demo history (``cases.synthetic``) gives each case a class, a place, a report time and a final status. This
module adds what happened in between, so the desk, recurrence, hot-spot and evaluation views have a closed loop
to read: every synthetic case gets the events of the workflow (``cases.workflow``) that lead to its status —
report, verification of public reports, filing (accept) or rejection, dispatch to the party the dispatch rule
chooses (``service.dispatch_previews``, and the street office or district department after an escalation),
feedback, failed and passed checks, hand-backs, closing, the callback (回访) with the complainant's satisfaction,
and evaluation — with delays on the working calendar (``data/calendar.yaml``) and each completing event's
``due_at`` (the verification, check and disposal limits of ``data/deadlines.yaml``), some of them late. Events
are written in bulk (``timeline_store``); the transition API is not called per event.

Actors are labels that say they are synthetic: ``synthetic-supervisor-<supervision grid>`` (one stand-in
supervisor per supervision grid), ``synthetic-acceptor``, ``synthetic-dispatcher``, ``synthetic-calltaker``,
``synthetic-unit-<party code>`` and ``system`` for escalations. No event names a real account or person.

``PLANTED`` documents the patterns added on top of the random history, per demo district (positions in
EPSG:4326): chronic components (many cases at one component within a year), recurring places (one event class
repeated at one place over months, no component) and an emerging hot spot (a cluster of unit grids whose monthly
counts rise over the last six months). Their cases carry the idempotency key prefix
``synthetic-planted-<district>-<id>-`` and ``attrs.planted = <id>``, so tests and analysts can find them.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from sqlalchemy.engine import Connection

from citygrid.cases import store as case_store
from citygrid.cases import timeline_store as store
from citygrid.cases.calendar import DeadlineTable, WorkingCalendar
from citygrid.cases.escalation import next_level
from citygrid.cases.history import insert_reports
from citygrid.cases.rules import CaseRules
from citygrid.cases.workflow import LEVELS
from citygrid.spatial import crs
from citygrid.spatial import store as spatial_store
from citygrid.spatial.db import deployment_srid, deployment_zone
from citygrid.spatial.timezones import localize

# The synthetic history ends here (``cases.synthetic``'s default end): no generated event is later.
HISTORY_END = dt.datetime(2026, 11, 1)
# ... and starts here: two years of 365 days (``ensure_demo_timelines``: the year before the last one). The demo's
# grids, and so their derived owners, take effect then (``deploy.ensure_demo_grids``), so every synthetic case
# has the owners of its grid at its report time, which dispatch asks for (no case of the history is
# otherwise dispatchable without naming a party).
HISTORY_START = HISTORY_END - dt.timedelta(days=2 * 365)
PUBLIC_SOURCES = ("hotline", "citizen")

PLANTED: dict[str, dict[str, Any]] = {
    # Chaoyang (EPSG:4548 storage). Components are of the demo's synthetic census (same seed, same ObjIDs); a
    # database without that component takes the nearest current one of the class.
    "110105": {
        "chronic_components": (
            {"id": "chronic-1", "obj_id": "1101050101000389", "class_code": "0101", "lon": 116.447124,
             "lat": 39.872066, "cases": 9},
            {"id": "chronic-2", "obj_id": "1101050118004676", "class_code": "0118", "lon": 116.452007,
             "lat": 39.993335, "cases": 8},
            {"id": "chronic-3", "obj_id": "1101050305001572", "class_code": "0305", "lon": 116.463050,
             "lat": 39.927678, "cases": 12},
            {"id": "chronic-4", "obj_id": "1101050104005534", "class_code": "0104", "lon": 116.478799,
             "lat": 39.925980, "cases": 7},
        ),
        "recurring_places": (
            {"id": "place-1", "class_code": "0102", "lon": 116.445384, "lat": 39.871411, "radius_m": 25,
             "cases": 12, "every_days": 14},
            {"id": "place-2", "class_code": "0201", "lon": 116.452238, "lat": 39.994825, "radius_m": 25,
             "cases": 10, "every_days": 18},
            {"id": "place-3", "class_code": "0506", "lon": 116.467622, "lat": 39.874306, "radius_m": 25,
             "cases": 9, "every_days": 10},
        ),
        "emerging_hotspot": {"id": "emerging-1", "lon": 116.501416, "lat": 39.854305, "radius_m": 350,
                             "cases_per_month": (6, 12, 20, 30, 42, 56)},
    },
    # Guancheng (EPSG:4547 storage), on the components of its synthetic census along the OSM roads.
    "410104": {
        "chronic_components": (
            {"id": "chronic-1", "obj_id": "4101040101000957", "class_code": "0101", "lon": 113.666188,
             "lat": 34.741548, "cases": 9},
            {"id": "chronic-2", "obj_id": "4101040118009434", "class_code": "0118", "lon": 113.665186,
             "lat": 34.741793, "cases": 8},
            {"id": "chronic-3", "obj_id": "4101040305002433", "class_code": "0305", "lon": 113.688866,
             "lat": 34.740346, "cases": 12},
            {"id": "chronic-4", "obj_id": "4101040104006147", "class_code": "0104", "lon": 113.671375,
             "lat": 34.740848, "cases": 7},
        ),
        "recurring_places": (
            {"id": "place-1", "class_code": "0102", "lon": 113.667719, "lat": 34.754932, "radius_m": 25,
             "cases": 12, "every_days": 14},
            {"id": "place-2", "class_code": "0201", "lon": 113.672604, "lat": 34.752167, "radius_m": 25,
             "cases": 10, "every_days": 18},
            {"id": "place-3", "class_code": "0506", "lon": 113.688545, "lat": 34.743877, "radius_m": 25,
             "cases": 9, "every_days": 10},
        ),
        "emerging_hotspot": {"id": "emerging-1", "lon": 113.668170, "lat": 34.750156, "radius_m": 300,
                             "cases_per_month": (5, 10, 16, 24, 34, 45)},
    },
}
# Event classes of the emerging hot spot's cases (a street-order and cleanliness mix).
EMERGING_CLASSES = ("0102", "0104", "0504", "0505", "0506")


def planted_key_prefix(district: str, planted_id: str) -> str:
    """The idempotency key prefix of the cases planted as pattern ``planted_id`` in ``district``."""
    return f"synthetic-planted-{district}-{planted_id}-"


# ----------------------------------------------------------------------------------------------- the demo step
def ensure_demo_timelines(conn: Connection, district: str, per_year: int, rules: CaseRules, *, seed: int = 2026,
                          end: dt.datetime | None = None) -> dict[str, Any] | None:
    """Give the demo district's SYNTHETIC history two years, the planted patterns and timelines, once.

    Does nothing (returns None) when the district's synthetic cases have timelines already. Otherwise, in the
    caller's transaction: the year before the last one (``cases.synthetic.generate`` with ``per_year`` cases and
    seed ``seed + 1``; the last year is the demo's existing history, made with ``seed``), the ``PLANTED``
    patterns of the district (``plant``), the component cases linked to a component of their class nearby, and
    a timeline for every synthetic case that has only its import event (``add_timelines``).

    Returns a summary: cases added, planted cases per pattern, linked component cases, timelines and events.
    """
    from citygrid.cases import synthetic

    if store.has_timelines(conn, district):
        return None
    end = localize(end or HISTORY_END, deployment_zone(conn))
    older = synthetic.generate(conn, district, per_year, seed=seed + 1, end=end - dt.timedelta(days=365))
    planted = plant(conn, district, seed=seed, end=end)
    linked = store.link_nearest_components(conn, district, COMPONENT_LINK_M)
    made = add_timelines(conn, district, rules, seed=seed, end=end)
    return {"older_year_cases": older.imported, "planted": planted, "linked_component_cases": linked, **made}


COMPONENT_LINK_M = 100.0


# ----------------------------------------------------------------------------------------------- planting
def plant(conn: Connection, district: str, *, seed: int = 2026, end: dt.datetime | None = None) -> dict[str, int]:
    """Store the ``PLANTED`` patterns of ``district`` (none for a district without any) as SYNTHETIC cases
    through the bulk intake (``history.insert_reports``), link the chronic ones to their component and mark
    each case ``attrs.planted``. Idempotent (keys). Returns the cases stored per pattern id."""
    spec = PLANTED.get(district)
    if spec is None:
        return {}
    rng = np.random.default_rng(seed + 7)
    end = localize(end or HISTORY_END, deployment_zone(conn))
    srid = deployment_srid(conn)
    records: list[dict[str, Any]] = []
    links: list[tuple[str, str]] = []
    for item in spec["chronic_components"]:
        made, linked = _chronic_records(conn, district, item, rng, end, srid)
        records += made
        links += linked
    for item in spec["recurring_places"]:
        records += _place_records(district, item, rng, end, srid)
    records += _emerging_records(district, spec["emerging_hotspot"], rng, end, srid)
    result = insert_reports(conn, records, max_bad_ratio=0.05, synthetic=True)
    store.link_components(conn, district, links)
    counts = {}
    for item in (*spec["chronic_components"], *spec["recurring_places"], spec["emerging_hotspot"]):
        counts[item["id"]] = store.mark_planted(conn, district, planted_key_prefix(district, item["id"]), item["id"])
    counts["stored"] = result.imported
    return counts


def _to_lonlat(x: np.ndarray, y: np.ndarray, srid: int) -> tuple[np.ndarray, np.ndarray]:
    """lon, lat (EPSG:4326) of points x, y in EPSG:``srid``."""
    points = crs.to_lonlat(shapely.points(x, y), srid)
    return shapely.get_x(points), shapely.get_y(points)


def _to_xy(lon: float, lat: float, srid: int) -> tuple[float, float]:
    """x, y in EPSG:``srid`` of one EPSG:4326 point."""
    point = crs.storage_point(lon, lat, crs.parse_crs("EPSG:4326"), srid)
    return point.x, point.y


def _record(district: str, planted_id: str, i: int, lon: float, lat: float, kind: str, code: str,
            at: dt.datetime, status: str, what: str) -> dict[str, Any]:
    return {"lon": float(lon), "lat": float(lat), "kind": kind, "class_code": code,
            "description": f"{what}（合成）", "reported_at": at.isoformat(), "status": status,
            "source": "supervisor", "idempotency_key": f"{planted_key_prefix(district, planted_id)}{i}"}


def _final_status(rng: np.random.Generator, at: dt.datetime, end: dt.datetime) -> str:
    """A planted case's status: closed or evaluated when older than a fortnight, else still dispatched."""
    if (end - at).days > 14:
        return str(rng.choice(["closed", "evaluated"], p=[0.5, 0.5]))
    return "dispatched"


def _chronic_records(conn: Connection, district: str, item: dict[str, Any], rng: np.random.Generator,
                     end: dt.datetime, srid: int) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """The cases of one chronic component: ``cases`` reports at the component (a few metres off) on random
    days of the last 330 days. None when the district has no component of the class."""
    x0, y0 = _to_xy(item["lon"], item["lat"], srid)
    component = store.component_at(conn, district, item.get("obj_id"), item["class_code"], x0, y0, srid)
    if component is None:
        return [], []
    n = item["cases"]
    days = np.sort(rng.choice(330, size=n, replace=False))[::-1]
    lon, lat = _to_lonlat(component["x"] + rng.normal(0, 2, n), component["y"] + rng.normal(0, 2, n), srid)
    records, links = [], []
    for i in range(n):
        at = end - dt.timedelta(days=int(days[i]) + 1, hours=float(rng.uniform(-6, 6)))
        records.append(_record(district, item["id"], i, lon[i], lat[i], "component", item["class_code"], at,
                               _final_status(rng, at, end), f"部件 {component['obj_id']} 再次损坏"))
        links.append((records[-1]["idempotency_key"], component["obj_id"]))
    return records, links


def _place_records(district: str, item: dict[str, Any], rng: np.random.Generator, end: dt.datetime,
                   srid: int) -> list[dict[str, Any]]:
    """The cases of one recurring place: ``cases`` reports of one event class within ``radius_m`` of the place,
    one every ``every_days`` (± 3 days), the last about three weeks before the end of the history."""
    x0, y0 = _to_xy(item["lon"], item["lat"], srid)
    n, radius = item["cases"], item["radius_m"]
    angle, dist = rng.uniform(0, 2 * math.pi, n), radius * np.sqrt(rng.uniform(0, 1, n))
    lon, lat = _to_lonlat(x0 + dist * np.cos(angle), y0 + dist * np.sin(angle), srid)
    records = []
    for i in range(n):
        days = 20 + (n - 1 - i) * item["every_days"] + float(rng.uniform(-3, 3))
        at = end - dt.timedelta(days=days)
        records.append(_record(district, item["id"], i, lon[i], lat[i], "event", item["class_code"], at,
                               _final_status(rng, at, end), "同一地点反复出现"))
    return records


def _emerging_records(district: str, item: dict[str, Any], rng: np.random.Generator, end: dt.datetime,
                      srid: int) -> list[dict[str, Any]]:
    """The cases of the emerging hot spot: in each of the last six months (oldest first) ``cases_per_month``
    reports spread evenly over a disc of ``radius_m`` around the centre, of the ``EMERGING_CLASSES``."""
    x0, y0 = _to_xy(item["lon"], item["lat"], srid)
    records = []
    months = item["cases_per_month"]
    for m, count in enumerate(months):
        month_end = end - dt.timedelta(days=30.4 * (len(months) - 1 - m))
        angle, dist = rng.uniform(0, 2 * math.pi, count), item["radius_m"] * np.sqrt(rng.uniform(0, 1, count))
        lon, lat = _to_lonlat(x0 + dist * np.cos(angle), y0 + dist * np.sin(angle), srid)
        for i in range(count):
            at = month_end - dt.timedelta(days=float(rng.uniform(0.2, 30.2)))
            code = str(rng.choice(EMERGING_CLASSES))
            records.append(_record(district, item["id"], len(records), lon[i], lat[i], "event", code, at,
                                   _final_status(rng, at, end), "新近多发"))
    return records


# ----------------------------------------------------------------------------------------------- timelines
def add_timelines(conn: Connection, district: str, rules: CaseRules, *, seed: int = 2026,
                  end: dt.datetime | None = None) -> dict[str, int]:
    """Give every synthetic case of ``district`` that has only its import event a full timeline (``timeline``)
    ending in its stored status, in the caller's transaction; the parties come from the dispatch rules
    (``rules.dispatch``; community level through ``service.dispatch_previews``, a page of cases at a time).
    Returns ``{"timelines", "events"}``."""
    from citygrid.cases.service import dispatch_previews

    cases = store.cases_without_timeline(conn, district)
    if not cases:
        return {"timelines": 0, "events": 0}
    zone = deployment_zone(conn)
    # The history's last reports fall on its last day (after midnight): their steps end a few hours later.
    last = max(localize(end or HISTORY_END, zone), max(c["reported_at"] for c in cases))
    clock = Clock(rules.calendar.in_zone(zone), rules.deadlines, last + dt.timedelta(hours=6))
    community: list[dict[str, Any] | None] = []
    for start in range(0, len(cases), 2000):
        # Owners as recorded now: the demo's census and frontage units were made after its history began (its
        # grids and their owners are in effect from HISTORY_START, and would give the same parties).
        page = [{**c, "reported_at": None} for c in cases[start:start + 2000]]
        community += [p["party"] for p in dispatch_previews(conn, rules, page)]
    offices = store.street_offices(conn, district)
    departments: dict[tuple[str, str], dict[str, Any] | None] = {}

    def district_party(kind: str, code: str) -> dict[str, Any] | None:
        if (kind, code) not in departments:
            named = rules.dispatch.district_department(kind, code, district)
            found = case_store.party_by_code(conn, district, named[1]) if named else None
            departments[kind, code] = None if found is None else {**found, "rule": f"level district: {named[0]}"}
        return departments[kind, code]

    rng = np.random.default_rng(seed + 11)
    events: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for case, party in zip(cases, community, strict=True):
        def party_at(level: str, case: dict[str, Any] = case, party: dict[str, Any] | None = party):
            return _party_at(level, case, party, offices, district_party)

        made = timeline(rng, case, clock, party_at, rules.escalation.initial_level(case["kind"], case["class_code"]))
        events += [{"case_id": case["case_id"], **e} for e in made.events]
        updates.append({"case_id": case["case_id"], **made.columns()})
    case_store.bulk_audit_off(conn, True)
    store.replace_events(conn, district, [c["case_id"] for c in cases], events)
    store.update_cases(conn, district, updates)
    case_store.bulk_audit_off(conn, False)
    spatial_store.audit(conn, action="synthetic_timelines", object_kind="cases", object_id=district,
                        district=district, after={"cases": len(cases), "events": len(events)})
    return {"timelines": len(cases), "events": len(events)}


def _party_at(level: str, case: dict[str, Any], community: dict[str, Any] | None,
              offices: dict[str, dict[str, Any]],
              district_party: Callable[[str, str], dict[str, Any] | None]) -> dict[str, Any] | None:
    """The party a dispatch of ``case`` at ``level`` goes to (as ``service.responsible_party`` chooses it)."""
    if level == "street":
        office = offices.get(case.get("street_code") or "")
        return None if office is None else {**office, "rule": "level street: street office"}
    if level == "district":
        return district_party(case["kind"], case["class_code"])
    return community


@dataclass(frozen=True)
class Clock:
    """The working calendar (in the deployment's zone), the time limits, and the end of the history."""

    calendar: WorkingCalendar
    deadlines: DeadlineTable
    end: dt.datetime


@dataclass
class Timeline:
    """A case's generated events and what they leave on the case row."""

    events: list[dict[str, Any]] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)
    deadline_at: dt.datetime | None = None
    verify_due_at: dt.datetime | None = None
    check_due_at: dt.datetime | None = None

    def columns(self) -> dict[str, Any]:
        """The case columns to store: attrs to merge, task due times, row version (one per status change)."""
        return {"attrs": self.attrs, "deadline_at": _iso(self.deadline_at), "verify_due_at": _iso(self.verify_due_at),
                "check_due_at": _iso(self.check_due_at),
                "row_version": 1 + sum(1 for e in self.events[1:] if e["from_status"] != e["to_status"])}


def _iso(at: dt.datetime | None) -> str | None:
    return None if at is None else at.isoformat()


# Odds of the detours and late tasks (this project's choice; no seed gives rates): a unit hands a case back, a
# check fails, a complainant is not satisfied, a task is done after it was due.
P_HAND_BACK, P_CHECK_FAIL, P_UNSATISFIED, P_BASIC = 0.05, 0.08, 0.08, 0.22
P_LATE = {"verify": 0.12, "check": 0.10, "dispose": 0.12}
# The events of a case's disposal, which record the party the case is with (``case_events.party_code``, which
# the evaluation counts per party; given here since a re-dispatched case's attrs name only its last party).
DISPOSAL_ACTIONS = ("dispatch", "hand_back", "feed_back", "check_pass", "check_fail", "close")
# The stored statuses a timeline can lead to (the demo history's; others keep only their report event).
REACHABLE = ("reported", "verified", "accepted", "rejected", "dispatched", "fed_back", "checked", "closed",
             "evaluated")


class _Walk:
    """Steps of one case's timeline, each after the previous one (never after the end of the history)."""

    def __init__(self, rng: np.random.Generator, case: dict[str, Any], clock: Clock) -> None:
        self.rng, self.case, self.clock = rng, case, clock
        self.line = Timeline()
        self.at: dt.datetime = case["reported_at"]
        self.status: str | None = None

    def step(self, action: str, to: str, actor: str, role: str, at: dt.datetime, note: str = "",
             due_at: dt.datetime | None = None) -> None:
        """Record ``action`` at ``at`` (moved to just after the previous step if earlier, and between the previous
        step and the end of the history if later)."""
        at = max(at, self.at + dt.timedelta(seconds=1)) if self.line.events else at
        if at >= self.clock.end:
            at = self.at + (self.clock.end - self.at) / 2
        party = (self.line.attrs.get("dispatched_to") or {}).get("code") if action in DISPOSAL_ACTIONS else None
        self.line.events.append({"seq": len(self.line.events) + 1, "action": action, "from_status": self.status,
                                 "to_status": to, "actor": actor, "role": role, "note": note, "at": at.isoformat(),
                                 "due_at": _iso(due_at), "party_code": party or None})
        self.at, self.status = at, to

    def working(self, hours: float) -> dt.datetime:
        """``hours`` of working time after the last step."""
        return self.clock.calendar.add_working_hours(self.at, max(hours, 0.01))

    def task(self, due: dt.datetime, late: float) -> dt.datetime:
        """When a task begun at the last step and due at ``due`` is done: within its limit, or (with odds
        ``late``) up to 1.5 times the limit after it."""
        span = due - self.at
        share = self.rng.uniform(1.05, 2.5) if self.rng.random() < late else self.rng.uniform(0.15, 0.95)
        return self.at + span * float(share)


def timeline(rng: np.random.Generator, case: dict[str, Any], clock: Clock,
             party_at: Callable[[str], dict[str, Any] | None], level: str = LEVELS[0]) -> Timeline:
    """The events that take ``case`` from its report to its stored ``status``, in order.

    Parameters
    ----------
    case : ``case_id``, ``kind``, ``class_code``, ``source``, ``status`` (the final one), ``reported_at`` (aware),
        ``supervision_code``.
    party_at : the party a dispatch at a level goes to (None: nobody, the dispatcher's own fallback is used).
    level : the level the case starts at (``escalation.yaml`` ``initial_level``).

    A public report (hotline, citizen) is verified on site before it is filed; the loop dispatch → feed back →
    check repeats after a hand-back or a failed check, each raising the case one level (``escalation.yaml``: after
    1), as does a complainant's first dissatisfaction at the callback (二次处理). The walk stops when the case
    first reaches its stored status.
    """
    walk = _Walk(rng, case, clock)
    supervisor = f"synthetic-supervisor-{case.get('supervision_code') or 'none'}"
    public = case["source"] in PUBLIC_SOURCES
    if public:
        walk.step("report", "reported", "synthetic-calltaker", "calltaker", walk.at, case["source"])
        walk.line.verify_due_at = clock.deadlines.task_due("verify", walk.at, clock.calendar)
    else:
        walk.step("report", "reported", supervisor, "supervisor", walk.at, case["source"])
    final = case["status"]
    walk.line.attrs["level"] = level
    if final not in REACHABLE or final == "reported":
        return walk.line
    if public:
        due = walk.line.verify_due_at
        walk.step("verify", "verified", supervisor, "supervisor", walk.task(due, P_LATE["verify"]), due_at=due)
        walk.line.verify_due_at = None
    if final == "verified":
        return walk.line
    if final == "rejected":
        walk.step("reject", "rejected", "synthetic-acceptor", "acceptor", walk.working(rng.uniform(0.2, 2)),
                  "不符合立案标准（合成）")
        return walk.line
    walk.line.verify_due_at = None
    walk.step("accept", "accepted", "synthetic-acceptor", "acceptor", walk.working(rng.uniform(0.1, 1.5)))
    _handle(walk, supervisor, party_at, final)
    return walk.line


def _handle(walk: _Walk, supervisor: str, party_at: Callable[[str], dict[str, Any] | None], final: str) -> None:
    """From ``accepted``: dispatch, dispose, check, close and evaluate (with the detours), until ``final``."""
    rng, attrs = walk.rng, walk.line.attrs
    while walk.status != final:
        if walk.status == "accepted":
            _dispatch(walk, party_at)
        elif walk.status == "dispatched":
            unit = f"synthetic-unit-{(attrs.get('dispatched_to') or {}).get('code') or 'none'}"
            if rng.random() < P_HAND_BACK and final not in ("dispatched",):
                walk.step("hand_back", "accepted", unit, "unit", walk.working(rng.uniform(0.5, 4)),
                          "不属于本单位职责（合成）")
                _escalate(walk, "hand_back")
                continue
            due = walk.line.deadline_at
            walk.step("feed_back", "fed_back", unit, "unit", walk.task(due, P_LATE["dispose"]), "已处置（合成）",
                      due_at=due)
            walk.line.check_due_at = walk.clock.deadlines.task_due("check", walk.at, walk.clock.calendar)
        elif walk.status == "fed_back":
            due, walk.line.check_due_at = walk.line.check_due_at, None
            at = walk.task(due, P_LATE["check"])
            if rng.random() < P_CHECK_FAIL and final != "fed_back":
                walk.step("check_fail", "accepted", supervisor, "supervisor", at, "现场仍未整改（合成）", due_at=due)
                _escalate(walk, "check_fail")
            else:
                walk.step("check_pass", "checked", supervisor, "supervisor", at, due_at=due)
        elif walk.status == "checked":
            walk.step("close", "closed", "synthetic-acceptor", "acceptor", walk.working(rng.uniform(0.2, 3)))
        elif walk.status == "closed":
            _after_closing(walk)
        else:
            return


def _dispatch(walk: _Walk, party_at: Callable[[str], dict[str, Any] | None]) -> None:
    """Dispatch to the party of the case's level, starting its disposal deadline from the dispatch."""
    level = walk.line.attrs["level"]
    party = party_at(level) or party_at(LEVELS[0]) or {"code": "", "name": "责任单位（合成）", "kind": "unit",
                                                         "rule": "synthetic"}
    walk.line.attrs["dispatched_to"] = {**party, "level": level}
    walk.step("dispatch", "dispatched", "synthetic-dispatcher", "dispatcher", walk.working(walk.rng.uniform(0.1, 2)))
    rule = walk.clock.deadlines.rule_for(walk.case["kind"], walk.case["class_code"])
    walk.line.deadline_at = rule.deadline(walk.at, walk.clock.calendar)


def _escalate(walk: _Walk, why: str) -> None:
    """One level up after a hand-back, failed check or reopening (a system event), unless at the top."""
    level = walk.line.attrs["level"]
    higher = next_level(level)
    if higher is None:
        return
    walk.line.attrs["level"] = higher
    walk.step("escalate", walk.status or "accepted", "system", "system", walk.at,
              f"{level} -> {higher} (rule: {why} 1 time(s))")


def _after_closing(walk: _Walk) -> None:
    """A public report's callback (回访): satisfied or basic → evaluated, a first dissatisfaction → accepted for a
    second handling (二次处理, one level up); any other case is evaluated by the acceptor."""
    rng, attrs = walk.rng, walk.line.attrs
    if walk.case["source"] not in PUBLIC_SOURCES:
        walk.step("evaluate", "evaluated", "synthetic-acceptor", "acceptor", walk.working(rng.uniform(2, 24)))
        return
    draw = rng.random()
    history = attrs.setdefault("satisfaction", [])
    first_round = not any(h["satisfaction"] == "unsatisfied" for h in history)
    answer = "unsatisfied" if draw < P_UNSATISFIED and first_round else ("basic" if draw < P_BASIC else "satisfied")
    to = "accepted" if answer == "unsatisfied" else "evaluated"
    walk.step("callback", to, "synthetic-calltaker", "calltaker", walk.working(rng.uniform(2, 16)),
              f"satisfaction: {answer}")
    history.append({"satisfaction": answer, "at": walk.at.isoformat(), "by": "synthetic-calltaker",
                    "round": attrs.get("round", 1)})
    if to == "accepted":
        attrs["round"] = 2
        _escalate(walk, "reopen")
