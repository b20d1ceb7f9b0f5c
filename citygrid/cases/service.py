"""Case operations as every entry point calls them: submit a report, move a case through the workflow, read.

Each takes a connection inside the caller's transaction; a report is stored with its first workflow event
in that one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import shapely
import yaml
from sqlalchemy import text
from sqlalchemy.engine import Connection

from citygrid.cases import store
from citygrid.cases.calendar import DeadlineTable, WorkingCalendar, load_rules
from citygrid.cases.escalation import COUNTED_ACTIONS, EscalationRules, load_escalation, next_level
from citygrid.cases.intake import Report, report_digest, scoped_key
from citygrid.cases.scope import CaseScope
from citygrid.cases.workflow import LEVELS, allowed_actions, next_state, target_status
from citygrid.config import Settings
from citygrid.errors import Conflict, Forbidden, InvalidInput, NotFound
from citygrid.spatial import crs
from citygrid.spatial.db import deployment_srid, deployment_zone
from citygrid.spatial.gazetteer import Gazetteer
from citygrid.spatial.geocode import GridIndex

DUPLICATE_RADIUS_M = 50.0
DUPLICATE_HOURS = 24.0
COMPONENT_SEARCH_M = 30.0
COMPONENT_MATCH_M = 50.0
REVIEW_BELOW = 0.5


def _storage_point(report: Report, srid: int) -> shapely.Point:
    source = crs.parse_crs({"wgs84": "EPSG:4326"}.get(report.crs, report.crs))
    return crs.storage_point(report.lon, report.lat, source, srid)


def submit(conn: Connection, report: Report, *, actor: str = "anonymous", role: str = "citizen",
           key_scope: str = "cli", joins: Callable[[dict[str, Any]], bool] | None = None
           ) -> tuple[dict[str, Any], str]:
    """Store a report as a case (or link it to an open duplicate); returns (case, outcome) where outcome is
    ``created``, ``existing`` (same idempotency key) or ``duplicate`` (an open case of the same class nearby).

    Idempotency keys are the caller's own: ``key_scope`` (``user:<id>``, ``open311:<client>``; ``cli`` for
    library and command-line callers) is stored with the key, so another caller's identical key is a new key.
    A key used again with a different report is a ``Conflict`` (409), not a silent replay of the first.
    ``joins``: which open cases the report may join as a duplicate (default any); Open311 joins only published
    ones, so an anonymous reporter never learns that an internal case exists at a place.

    Raises ``InvalidInput`` for a point outside every district (with the distance), an unknown class, or a
    named component that does not exist or lies too far from the point.
    """
    key = scoped_key(key_scope, report.idempotency_key) if report.idempotency_key else None
    digest = report_digest(report) if key else None
    if key and (stored := store.case_by_key(conn, None, key)):
        return _replay(conn, stored, key, digest), "existing"
    srid = deployment_srid(conn)
    located_by = None
    if report.lon is None:
        point, located_by = _locate_address(conn, report.address or "")
    else:
        point = _storage_point(report, srid)
    wkb = shapely.to_wkb(point)
    district, distance = store.district_at(conn, wkb, srid)
    if district is None:
        where = f"{distance:.0f} m outside the nearest district" if distance is not None else "no district loaded"
        raise InvalidInput(f"the point is {where}", field="lon")
    # A report is filed in the deployment's active class scheme (``citygrid taxonomy import --activate``).
    report = replace(report, scheme=active_scheme(conn))
    classification = None
    if not report.class_code:
        report, classification = _classify(conn, report)
    if report.class_code and not store.class_exists(conn, report.scheme, report.kind, report.class_code):
        raise InvalidInput(f"unknown {report.kind} class {report.class_code} in scheme {report.scheme}",
                           field="class_code")
    component = None
    if report.component_obj_id:
        component = store.component_near(conn, district, wkb, srid, obj_id=report.component_obj_id,
                                         class_code=None, within_m=COMPONENT_MATCH_M)
        if component is None:
            raise InvalidInput(f"no current component {report.component_obj_id} in district {district}",
                               field="component_obj_id")
        if component["distance_m"] > COMPONENT_MATCH_M:
            raise InvalidInput(f"component {report.component_obj_id} is {component['distance_m']:.0f} m from the "
                               f"reported point (at most {COMPONENT_MATCH_M:.0f} m)", field="component_obj_id")
    elif report.kind == "component" and report.class_code:
        component = store.component_near(conn, district, wkb, srid, obj_id=None, class_code=report.class_code,
                                         within_m=COMPONENT_SEARCH_M)
    at = report.reported_at
    candidates = [] if not report.class_code else store.open_duplicates(
        conn, district, report.kind, report.class_code, wkb, srid, at.isoformat() if at else None,
        DUPLICATE_RADIUS_M, DUPLICATE_HOURS)
    # The nearest the caller may learn of; past cases it may not, the report stands as a case of its own.
    duplicate = next((c for c in candidates if joins is None or joins(store.get_case(conn, c))), None)
    if duplicate is not None:
        added = store.add_event(conn, district, duplicate, action="duplicate_report", from_status=None,
                                to_status=store.get_case(conn, duplicate)["status"], actor=actor, role=role,
                                note=(report.description or "")[:500], idempotency_key=key,
                                idempotency_digest=digest)
        if not added:  # a concurrent retry linked it first
            return _replay(conn, store.case_by_key(conn, district, key or ""), key or "", digest), "existing"
        return case_view(conn, duplicate), "duplicate"
    index = GridIndex.cached(conn, district)
    hit = int(index.assign(np.array([point.x]), np.array([point.y]))[0])
    row = {
        "district": district, "key": key, "digest": digest, "kind": report.kind, "scheme": report.scheme,
        "class_code": report.class_code or None, "description": report.description, "source": report.source,
        "reported_at": at.isoformat() if at else None,
        "unit": index.codes[hit] if hit >= 0 else None,
        "supervision": index.supervision_codes[hit] if hit >= 0 else None,
        "community": index.community_codes[hit] if hit >= 0 else None,
        "street": index.street_codes[hit] if hit >= 0 else None,
        "component": component["obj_id"] if component else None, "synthetic": report.synthetic,
        "attrs": {"photos": list(report.photos), "address": report.address, "input_crs": report.crs,
                  "grid_version": index.version, "located_by": located_by,
                  "level": load_escalation(Settings.from_env().data_dir).initial_level(report.kind,
                                                                                       report.class_code or "")}
                 | ({"classification": classification} if classification else {}) | report.extra,
        "wkb": wkb,
    }
    case_id = store.insert_case(conn, row, srid)
    if case_id is None:  # a concurrent request with the same idempotency key stored it first
        return _replay(conn, store.case_by_key(conn, district, key or ""), key or "", digest), "existing"
    store.add_event(conn, district, case_id, action="report", from_status=None, to_status="reported",
                    actor=actor, role=role, note=report.source)
    return case_view(conn, case_id), "created"


def _replay(conn: Connection, stored: tuple[int, str | None] | None, key: str, digest: str | None
            ) -> dict[str, Any]:
    """The case (``stored``: ``store.case_by_key``) scoped ``key`` was first used for, when the report is the
    same one again; ``Conflict`` otherwise (or while a concurrent request holds the key)."""
    sent = key.partition("|")[2]
    if stored is None:
        raise Conflict(f"idempotency key {sent!r} is being used by a concurrent request; retry")
    case_id, first = stored
    if first is not None and first != digest:
        raise Conflict(f"idempotency key {sent!r} was used before for a different report; use a new key for a "
                       "new report, or send exactly the same report to retry")
    return case_view(conn, case_id)


def active_scheme(conn: Connection) -> str:
    """The deployment's active class scheme (the packaged one until another is activated)."""
    from citygrid.components_survey import store as survey_store
    from citygrid.components_survey.taxonomy import DEFAULT_SCHEME

    return survey_store.active_scheme(conn, DEFAULT_SCHEME)


def _classify(conn: Connection, report: Report) -> tuple[Report, dict[str, Any]]:
    """The report with the class of its description, and how it was chosen: the top three, the classifier
    (``trained`` model or ``taxonomy`` similarity) and ``needs_review`` when the best probability is below
    ``REVIEW_BELOW`` (the acceptor confirms with the ``reclassify`` action).

    A description the classifier cannot classify (``cases.classify``: no known vocabulary, out of scheme, low
    confidence) leaves the report without a class (``class_code`` empty; the kind the client gave, else
    event) and ``needs_review`` true with the ``reason``: never an unrelated class."""
    from citygrid.cases.classify import classifier_for
    from citygrid.components_survey import store as survey_store

    classes = survey_store.taxonomy(conn, scheme=report.scheme, kind=report.kind or None)
    model = None if report.kind else Settings.from_env().data_dir / "models" / f"{report.scheme}.joblib"
    classifier = classifier_for(classes, model)
    verdict = classifier.classify(report.description)
    how = {"by": "trained" if classifier.trained else "taxonomy",
           "top": [{"kind": p.kind, "code": p.code, "name": p.name, "probability": p.probability}
                   for p in verdict.top]}
    if verdict.best is None:
        return replace(report, kind=report.kind or "event", class_code=""), {
            **how, "needs_review": True, "unclassified": True, "reason": verdict.reason}
    best = verdict.best
    return replace(report, kind=best.kind, class_code=best.code), {
        **how, "needs_review": best.probability < REVIEW_BELOW}


def _locate_address(conn: Connection, address: str) -> tuple[shapely.Point, dict[str, Any]]:
    """Point (deployment CRS) of the best gazetteer match in any district, with how it was found."""
    best = None
    for district in store.district_codes(conn):
        match = Gazetteer.for_district(conn, district).locate(address)
        if match and (best is None or match.score > best.score):
            best = match
    if best is None:
        raise InvalidInput(f"no street, community or road of the district is named in {address!r}; "
                           "send lat and long", field="address")
    if best.ambiguous:
        raise InvalidInput(f"{best.place.name!r} names more than one place; add the street or send lat and long",
                           field="address")
    if best.place.x is None:
        raise InvalidInput(f"{best.place.name} is known but has no location in the gazetteer; send lat and long",
                           field="address")
    return shapely.Point(best.place.x, best.place.y), {"place": best.place.name, "kind": best.place.kind,
                                                       "code": best.place.code, "confidence": best.confidence}


def transition(conn: Connection, case_id: int, action: str, *, actor: str, role: str, note: str = "",
               expected_version: int | None = None,
               rules: tuple[DeadlineTable, WorkingCalendar] | None = None,
               escalation: EscalationRules | None = None, kind: str | None = None,
               class_code: str | None = None) -> dict[str, Any]:
    """Apply a workflow action. ``Conflict`` (409) when the status does not allow it or another change won.

    Dispatching starts the disposal deadline: the class's rule (working hours or days) on the working
    calendar (``rules``, default ``data/deadlines.yaml`` + ``data/calendar.yaml``), whose working hours are
    read in the deployment's time zone. A hand-back, failed check
    or reopening that reaches an escalation rule's count (``escalation``, default ``data/escalation.yaml``)
    raises the case one level in the same transaction. ``reclassify`` takes the new ``kind`` and
    ``class_code``."""
    if not actor or len(actor) > 100:
        raise InvalidInput("actor must be 1–100 characters", field="actor")
    if len(note) > 2000:
        raise InvalidInput("note longer than 2000 characters", field="note")
    case = store.get_case(conn, case_id)
    if case is None:
        raise NotFound(f"no case {case_id}")
    step = next_state(case["status"], action)
    if role not in step.roles:
        raise Forbidden(f"{action} is done by {', '.join(step.roles)}, not by {role or 'an unnamed role'}")
    target = target_status(step, case["status"])
    if action == "escalate":
        level = (case["attrs"] or {}).get("level", LEVELS[0])
        higher = next_level(level)
        if higher is None:
            raise Conflict(f"case {case_id} is already handled at {level} level")
        store.merge_attrs(conn, case_id, {"level": higher})
        note = note or f"{level} -> {higher}"
    if action == "reclassify":
        kind, class_code = kind or case["kind"], (class_code or "").strip()
        if kind not in ("event", "component"):
            raise InvalidInput("kind must be event or component", field="kind")
        if not store.class_exists(conn, case["scheme"], kind, class_code):
            raise InvalidInput(f"unknown {kind} class {class_code!r} in scheme {case['scheme']}", field="class_code")
        store.set_class(conn, case_id, kind, class_code)
        store.merge_attrs(conn, case_id, {"classification": {
            **((case["attrs"] or {}).get("classification") or {}), "needs_review": False, "confirmed_by": actor}})
        was = f"{case['kind']}/{case['class_code']}" if case["class_code"] else "unclassified"
        note = note or f"{was} -> {kind}/{class_code}"
        # The new class's starting level (an emergency's: district) applies as on intake; never lowered.
        level = (case["attrs"] or {}).get("level", LEVELS[0])
        start = (escalation or load_escalation(Settings.from_env().data_dir)).initial_level(kind, class_code)
        if level not in LEVELS or LEVELS.index(start) > LEVELS.index(level):
            store.merge_attrs(conn, case_id, {"level": start})
            note = f"{note}; level {level} -> {start}"
    if action == "dispatch":
        if not case["class_code"]:
            raise Conflict(f"case {case_id} has no class yet (its text could not be classified): reclassify it "
                           "before dispatch")
        store.merge_attrs(conn, case_id, {"dispatched_to": responsible_party(conn, case)})
    version = store.apply_transition(conn, case_id, case["status"], target, expected_version)
    if version is None:
        raise Conflict(f"case {case_id} changed meanwhile (now version {store.get_case(conn, case_id)['row_version']});"
                       " reload it and try again")
    store.add_event(conn, case["district_code"], case_id, action=action, from_status=case["status"],
                    to_status=target, actor=actor, role=role, note=note)
    if action == "dispatch":
        table, calendar = rules or load_rules(Settings.from_env().data_dir)
        calendar = calendar.in_zone(deployment_zone(conn))  # working hours are the city's wall-clock hours
        started = conn.execute(text("SELECT now()")).scalar_one()
        store.set_deadline(conn, case_id, table.rule_for(case["kind"], case["class_code"]).deadline(started, calendar))
    if action in COUNTED_ACTIONS:
        _escalate_by_rule(conn, case_id, action, escalation or load_escalation(Settings.from_env().data_dir))
    return case_view(conn, case_id)


def _escalate_by_rule(conn: Connection, case_id: int, action: str, escalation: EscalationRules) -> None:
    """Raise the case one level when ``action`` has now happened as often as a rule says (event by system)."""
    case = store.get_case(conn, case_id)
    times = sum(1 for e in store.events(conn, case["district_code"], case_id) if e["action"] == action)
    reason = escalation.triggered(action, times)
    level = (case["attrs"] or {}).get("level", LEVELS[0])
    higher = next_level(level)
    if reason is None or higher is None or "escalate" not in allowed_actions(case["status"]):
        return
    store.merge_attrs(conn, case_id, {"level": higher})
    store.add_event(conn, case["district_code"], case_id, action="escalate", from_status=case["status"],
                    to_status=case["status"], actor="system", role="system", note=f"{level} -> {higher} ({reason})")


def dispatch_rules(data_dir: Path) -> dict[str, Any]:
    """``data/dispatch.yaml`` (rules by class, overrides), cached; the built-in default where missing."""
    key = str(data_dir)
    if key not in _DISPATCH:
        path = data_dir / "dispatch.yaml"
        data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {}
        _DISPATCH[key] = {"rules": (data or {}).get("rules") or {"event": "management", "component": "management"},
                          "overrides": (data or {}).get("overrides") or {}}
    return _DISPATCH[key]


_DISPATCH: dict[str, dict[str, Any]] = {}


def responsible_party(conn: Connection, case: dict[str, Any], rules: dict[str, Any] | None = None
                      ) -> dict[str, Any]:
    """The party a case goes to: an override for its class, else its class rule (a grid role at report time
    or the linked component's owner), falling back to the grid's management subject.

    Raises ``Conflict`` when nobody can be found (no ownership loaded for the grid)."""
    rules = rules or dispatch_rules(Settings.from_env().data_dir)
    kind, code = case["kind"], case["class_code"]
    override = rules["overrides"].get(f"{kind}/{code}")
    if override:
        party = store.party(conn, case["district_code"], override.get("kind", "department"), override["code"])
        if party is None:
            raise Conflict(f"dispatch override for {kind}/{code} names unknown party {override['code']}")
        return {**party, "rule": f"override {kind}/{code}"}
    rule = next((rules["rules"][k] for k in (f"{kind}/{code}", f"{kind}/{code[:2]}", kind) if k in rules["rules"]),
                "management")
    if rule == "component_owner" and case.get("component_obj_id"):
        owner = store.component_owner(conn, case["district_code"], case["component_obj_id"], case["reported_at"])
        if owner and (owner.get("code") or owner.get("name")):
            return {**owner, "kind": "department", "rule": "component_owner"}
    owners = store.owners_at(conn, case["district_code"], case["unit_grid_code"], case["reported_at"])
    for role in (rule, "management", "responsibility"):
        if role in owners:
            return {**owners[role], "role": role, "rule": f"grid {role}"}
    raise Conflict(f"no responsible party for grid {case['unit_grid_code']}: load its ownership first")


def case_view(conn: Connection, case_id: int) -> dict[str, Any]:
    """A case with its owners at report time, allowed actions and events (coordinates EPSG:4326)."""
    case = store.get_case(conn, case_id)
    if case is None:
        raise NotFound(f"no case {case_id}")
    case["owners"] = store.owners_at(conn, case["district_code"], case["unit_grid_code"], case["reported_at"])
    case["actions"] = allowed_actions(case["status"])
    case["events"] = store.events(conn, case["district_code"], case_id)
    return case


def check_scope(conn: Connection, case_id: int, scope: CaseScope) -> None:
    """``Forbidden`` with the reason (the caller's team or party) unless case ``case_id`` lies in ``scope``
    (``cases.scope.read_scope`` / ``action_scope`` of the caller). An unrestricted scope holds every case,
    even one that does not exist (the caller learns that from the operation itself, as ``NotFound``)."""
    if not scope.unrestricted and not store.in_scope(conn, case_id, scope):
        raise Forbidden(scope.refusal(case_id))
