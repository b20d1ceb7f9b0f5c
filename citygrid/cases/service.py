"""Case operations as every entry point calls them: submit a report, move a case through the workflow, read.

Each takes a connection inside the caller's transaction; a report is stored with its first workflow event
in that one transaction. The deployment's case rules (``cases.rules.CaseRules``: dispatch, deadlines,
calendar, escalation, classifier model) are passed in by the caller, which reads them once per app or
command run; nothing here reads the environment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import shapely
from sqlalchemy.engine import Connection

from citygrid.cases import store
from citygrid.cases.escalation import COUNTED_ACTIONS, EscalationRules, next_level
from citygrid.cases.intake import Report, report_digest, scoped_key
from citygrid.cases.rules import CaseRules, DispatchRules
from citygrid.cases.scope import CaseScope
from citygrid.cases.workflow import LEVELS, allowed_actions, next_state, target_status
from citygrid.errors import Conflict, Forbidden, InvalidInput, NotFound
from citygrid.spatial import crs
from citygrid.spatial.db import deployment_srid, deployment_zone
from citygrid.spatial.gazetteer import Gazetteer
from citygrid.spatial.geocode import GridIndex
from citygrid.spatial.store import district_codes

DUPLICATE_RADIUS_M = 50.0
DUPLICATE_HOURS = 24.0
COMPONENT_SEARCH_M = 30.0
COMPONENT_MATCH_M = 50.0
REVIEW_BELOW = 0.5


@dataclass(frozen=True)
class Location:
    """Where a report is: its point in the deployment CRS (EPSG ``srid``, e.g. 4548), as WKB too, the district
    that holds it and, for a report located by its address, how the gazetteer found it."""

    point: shapely.Point
    wkb: bytes
    srid: int
    district: str
    located_by: dict[str, Any] | None = None


@dataclass(frozen=True)
class Idempotency:
    """The caller's scoped idempotency key (``intake.scoped_key``) and the digest of the report sent under it;
    both None for a report without a key."""

    key: str | None = None
    digest: str | None = None

    @classmethod
    def of(cls, report: Report, key_scope: str) -> Idempotency:
        """The key of ``report`` in the caller's ``key_scope`` and what the report says (``report_digest``)."""
        if not report.idempotency_key:
            return cls()
        return cls(scoped_key(key_scope, report.idempotency_key), report_digest(report))


def submit(conn: Connection, rules: CaseRules, report: Report, *, actor: str = "anonymous", role: str = "citizen",
           key_scope: str = "cli", joins: Callable[[dict[str, Any]], bool] | None = None,
           account: str | None = None) -> tuple[dict[str, Any], str]:
    """Store a report as a case (or link it to an open duplicate): locate, classify, match the component,
    join a duplicate or place it in its grids, store it at its starting level.

    Parameters
    ----------
    conn : connection inside the caller's transaction.
    rules : the deployment's case rules (``CaseRules.load(settings.data_dir)``): the classifier model and the
        starting level of the class (``escalation.yaml``).
    report : a validated report (``intake.parse_report``); its point in WGS84, GCJ-02 or BD-09, or an address.
    actor, role : who reports, recorded on the first workflow event.
    account : the signed-in account reporting, whose named person (``responsibility.people``) in the case's
        district the event records; None (Open311, the CLI) records none.
    key_scope : whose idempotency key it is (``user:<id>``, ``open311:<client>``; ``cli`` for library and
        command-line callers), stored with the key, so another caller's identical key is a new key.
    joins : which open cases the report may join as a duplicate (default any); Open311 joins only published
        ones, so an anonymous reporter never learns that an internal case exists at a place.

    Returns
    -------
    (case, outcome): the case as ``case_view`` gives it; outcome ``created``, ``existing`` (same idempotency
    key) or ``duplicate`` (an open case of the same class nearby).

    Raises
    ------
    InvalidInput for a point outside every district (with the distance), an unknown class, or a named
    component that does not exist or lies too far from the point. Conflict when the key was used before for a
    different report (409), not a silent replay of the first.
    """
    idem = Idempotency.of(report, key_scope)
    if idem.key and (stored := store.case_by_key(conn, None, idem.key)):
        return _replay(conn, stored, idem), "existing"
    where = locate(conn, report)
    report, classification = classify_report(conn, rules, report)
    component = match_component(conn, report, where)
    duplicate = open_duplicate(conn, report, where, joins)
    if duplicate is not None:
        return _join_duplicate(conn, duplicate, report, where.district, idem, actor=actor, role=role,
                               account=account)
    row = {**_case_fields(report, where, idem), **place(conn, where),
           "component": component["obj_id"] if component else None}
    row["attrs"] = _case_attrs(rules, report, where, classification, row.pop("grid_version"))
    unit = _frontage_party(conn, where.district, where.wkb, where.srid, report.reported_at)
    if unit is not None:  # 门前三包: the point's responsibility subject, the party frontage classes go to
        row["attrs"]["frontage_unit"] = unit
    return _store_case(conn, row, where.srid, idem, actor=actor, role=role, note=report.source, account=account)


def locate(conn: Connection, report: Report) -> Location:
    """The report's point in the deployment CRS and its district.

    Parameters
    ----------
    report : with ``lon``/``lat`` in ``report.crs`` (wgs84 | gcj02 | bd09), or an ``address`` (both None).

    Returns
    -------
    Location in the deployment CRS (``db.deployment_srid``).

    Raises
    ------
    InvalidInput (field ``lon``) for a point outside every district, with its distance to the nearest one;
    (field ``address``) for an address the gazetteer does not place.
    """
    srid = deployment_srid(conn)
    located_by = None
    if report.lon is None:
        point, located_by = _locate_address(conn, report.address or "")
    else:
        source = crs.parse_crs({"wgs84": "EPSG:4326"}.get(report.crs, report.crs))
        point = crs.storage_point(report.lon, report.lat, source, srid)
    wkb = shapely.to_wkb(point)
    district, distance = store.district_at(conn, wkb, srid)
    if district is None:
        where = f"{distance:.0f} m outside the nearest district" if distance is not None else "no district loaded"
        raise InvalidInput(f"the point is {where}", field="lon")
    return Location(point, wkb, srid, district, located_by)


def classify_report(conn: Connection, rules: CaseRules, report: Report) -> tuple[Report, dict[str, Any] | None]:
    """The report filed in the deployment's active class scheme (``citygrid taxonomy import --activate``),
    with the class of its description when it names none (``_classify``; then also how it was chosen).

    Raises ``InvalidInput`` (field ``class_code``) for a class the scheme does not have.
    """
    report = replace(report, scheme=active_scheme(conn))
    classification = None
    if not report.class_code:
        report, classification = _classify(conn, rules, report)
    if report.class_code and not store.class_exists(conn, report.scheme, report.kind, report.class_code):
        raise InvalidInput(f"unknown {report.kind} class {report.class_code} in scheme {report.scheme}",
                           field="class_code")
    return report, classification


def match_component(conn: Connection, report: Report, where: Location) -> dict[str, Any] | None:
    """The component the report is about: the one it names (which must lie within ``COMPONENT_MATCH_M`` of
    the point), else for a component report the nearest current one of its class within
    ``COMPONENT_SEARCH_M``; None when there is none. Distances are metres in the deployment CRS.

    Raises ``InvalidInput`` (field ``component_obj_id``) for a named component that is not current in the
    district or lies too far from the point.
    """
    if report.component_obj_id:
        component = store.component_near(conn, where.district, where.wkb, where.srid,
                                         obj_id=report.component_obj_id, class_code=None,
                                         within_m=COMPONENT_MATCH_M)
        if component is None:
            raise InvalidInput(f"no current component {report.component_obj_id} in district {where.district}",
                               field="component_obj_id")
        if component["distance_m"] > COMPONENT_MATCH_M:
            raise InvalidInput(f"component {report.component_obj_id} is {component['distance_m']:.0f} m from the "
                               f"reported point (at most {COMPONENT_MATCH_M:.0f} m)", field="component_obj_id")
        return component
    if report.kind == "component" and report.class_code:
        return store.component_near(conn, where.district, where.wkb, where.srid, obj_id=None,
                                    class_code=report.class_code, within_m=COMPONENT_SEARCH_M)
    return None


def open_duplicate(conn: Connection, report: Report, where: Location,
                   joins: Callable[[dict[str, Any]], bool] | None) -> int | None:
    """The nearest open case of the same class within ``DUPLICATE_RADIUS_M`` and ``DUPLICATE_HOURS`` of the
    report that the caller may learn of (``joins``, default any); None for an unclassified report or when
    there is none: past cases it may not learn of, the report stands as a case of its own."""
    if not report.class_code:
        return None
    at = report.reported_at
    candidates = store.open_duplicates(conn, where.district, report.kind, report.class_code, where.wkb, where.srid,
                                       at.isoformat() if at else None, DUPLICATE_RADIUS_M, DUPLICATE_HOURS)
    return next((c for c in candidates if joins is None or joins(store.get_case(conn, c))), None)


def place(conn: Connection, where: Location) -> dict[str, Any]:
    """The unit grid, supervision grid, community and street holding the point in the district's current
    grid version (``GridIndex``, boundary rule included), and that version; codes None outside every grid."""
    index = GridIndex.cached(conn, where.district)
    hit = int(index.assign(np.array([where.point.x]), np.array([where.point.y]))[0])

    def code(codes: Any) -> str | None:
        return codes[hit] if hit >= 0 else None

    return {"unit": code(index.codes), "supervision": code(index.supervision_codes),
            "community": code(index.community_codes), "street": code(index.street_codes),
            "grid_version": index.version}


def _case_fields(report: Report, where: Location, idem: Idempotency) -> dict[str, Any]:
    """The columns of a new case that the report itself gives (``store.insert_case``)."""
    at = report.reported_at
    return {"district": where.district, "key": idem.key, "digest": idem.digest, "kind": report.kind,
            "scheme": report.scheme, "class_code": report.class_code or None, "description": report.description,
            "source": report.source, "reported_at": at.isoformat() if at else None, "synthetic": report.synthetic,
            "wkb": where.wkb}


def _case_attrs(rules: CaseRules, report: Report, where: Location, classification: dict[str, Any] | None,
                grid_version: Any) -> dict[str, Any]:
    """The attributes of a new case: photos, address, input CRS, grid version, how it was located and
    classified, and the level its class starts at (``escalation.yaml``'s ``initial_level``)."""
    level = rules.escalation.initial_level(report.kind, report.class_code or "")
    return ({"photos": list(report.photos), "address": report.address, "input_crs": report.crs,
             "grid_version": grid_version, "located_by": where.located_by, "level": level}
            | ({"classification": classification} if classification else {}) | report.extra)


def _join_duplicate(conn: Connection, duplicate: int, report: Report, district: str, idem: Idempotency, *,
                    actor: str, role: str, account: str | None = None) -> tuple[dict[str, Any], str]:
    """Link the report to open case ``duplicate`` (of ``district``) as a ``duplicate_report`` event;
    ``existing`` when a concurrent retry with the same key linked it first."""
    added = store.add_event(conn, district, duplicate, action="duplicate_report", from_status=None,
                            to_status=store.get_case(conn, duplicate)["status"], actor=actor, role=role,
                            note=(report.description or "")[:500], idempotency_key=idem.key,
                            idempotency_digest=idem.digest, account=account)
    if not added:
        return _replay(conn, store.case_by_key(conn, district, idem.key or ""), idem), "existing"
    return case_view(conn, duplicate), "duplicate"


def _store_case(conn: Connection, row: dict[str, Any], srid: int, idem: Idempotency, *, actor: str, role: str,
                note: str, account: str | None = None) -> tuple[dict[str, Any], str]:
    """Insert the case (``row``; its point WKB in EPSG ``srid``) with its ``report`` event; ``existing`` when
    a concurrent request with the same idempotency key stored it first."""
    case_id = store.insert_case(conn, row, srid)
    if case_id is None:
        return _replay(conn, store.case_by_key(conn, row["district"], idem.key or ""), idem), "existing"
    store.add_event(conn, row["district"], case_id, action="report", from_status=None, to_status="reported",
                    actor=actor, role=role, note=note, account=account)
    return case_view(conn, case_id), "created"


def _replay(conn: Connection, stored: tuple[int, str | None] | None, idem: Idempotency) -> dict[str, Any]:
    """The case (``stored``: ``store.case_by_key``) the scoped key was first used for, when the report is the
    same one again; ``Conflict`` otherwise (or while a concurrent request holds the key)."""
    sent = (idem.key or "").partition("|")[2]
    if stored is None:
        raise Conflict(f"idempotency key {sent!r} is being used by a concurrent request; retry")
    case_id, first = stored
    if first is not None and first != idem.digest:
        raise Conflict(f"idempotency key {sent!r} was used before for a different report; use a new key for a "
                       "new report, or send exactly the same report to retry")
    return case_view(conn, case_id)


def active_scheme(conn: Connection) -> str:
    """The deployment's active class scheme (the packaged one until another is activated)."""
    from citygrid.components_survey import store as survey_store
    from citygrid.components_survey.taxonomy import DEFAULT_SCHEME

    return survey_store.active_scheme(conn, DEFAULT_SCHEME)


def _classify(conn: Connection, rules: CaseRules, report: Report) -> tuple[Report, dict[str, Any]]:
    """The report with the class of its description, and how it was chosen: the top three, the classifier
    (``trained`` model or ``taxonomy`` similarity) and ``needs_review`` when the best probability is below
    ``REVIEW_BELOW`` (the acceptor confirms with the ``reclassify`` action).

    A description the classifier cannot classify (``cases.classify``: no known vocabulary, out of scheme, low
    confidence) leaves the report without a class (``class_code`` empty; the kind the client gave, else
    event) and ``needs_review`` true with the ``reason``: never an unrelated class."""
    from citygrid.cases.classify import classifier_for
    from citygrid.components_survey import store as survey_store

    classes = survey_store.taxonomy(conn, scheme=report.scheme, kind=report.kind or None)
    classifier = classifier_for(classes, rules.model_for(report.scheme, report.kind))
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
    for district in district_codes(conn):
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


def transition(conn: Connection, rules: CaseRules, case_id: int, action: str, *, actor: str, role: str,
               note: str = "", expected_version: int | None = None, kind: str | None = None,
               class_code: str | None = None, account: str | None = None) -> dict[str, Any]:
    """Apply a workflow action: check it, prepare what the action changes, move the case, then what follows.

    Parameters
    ----------
    rules : the deployment's case rules. Dispatching assigns the responsible party (``rules.dispatch``) and
        starts the disposal deadline: the class's rule (working hours or days, ``rules.deadlines``) on the
        working calendar (``rules.calendar``), whose working hours are read in the deployment's time zone.
        A hand-back, failed check or reopening that reaches an escalation rule's count (``rules.escalation``)
        raises the case one level in the same transaction.
    kind, class_code : the new class, for ``reclassify``.
    account : the signed-in account acting; its named person in the case's district is recorded on the event.
    expected_version : the row version the caller saw; another change since is a ``Conflict``.

    Returns
    -------
    The case as ``case_view`` gives it after the action.

    Raises
    ------
    InvalidInput for a bad actor, note or class; NotFound for no such case; Forbidden when ``role`` does not
    do ``action``; Conflict (409) when the status does not allow it or another change won.
    """
    _check_actor_and_note(actor, note)
    case = store.get_case(conn, case_id)
    if case is None:
        raise NotFound(f"no case {case_id}")
    step = next_state(case["status"], action)
    if role not in step.roles:
        raise Forbidden(f"{action} is done by {', '.join(step.roles)}, not by {role or 'an unnamed role'}")
    prepare = _PREPARE.get(action)
    if prepare is not None:
        note = prepare(conn, rules, case, _Change(actor, note, kind, class_code))
    target = target_status(step, case["status"])
    version = store.apply_transition(conn, case_id, case["status"], target, expected_version)
    if version is None:
        raise Conflict(f"case {case_id} changed meanwhile (now version {store.get_case(conn, case_id)['row_version']});"
                       " reload it and try again")
    store.add_event(conn, case["district_code"], case_id, action=action, from_status=case["status"],
                    to_status=target, actor=actor, role=role, note=note, account=account)
    if action == "dispatch":
        _start_deadline(conn, rules, case)
    if action in COUNTED_ACTIONS:
        _escalate_by_rule(conn, case_id, action, rules.escalation)
    return case_view(conn, case_id)


@dataclass(frozen=True)
class _Change:
    """What the caller of ``transition`` says besides the action: who, the note, and a new class."""

    actor: str
    note: str
    kind: str | None
    class_code: str | None


def _check_actor_and_note(actor: str, note: str) -> None:
    """``InvalidInput`` for an actor outside 1–100 characters or a note over 2000."""
    if not actor or len(actor) > 100:
        raise InvalidInput("actor must be 1–100 characters", field="actor")
    if len(note) > 2000:
        raise InvalidInput("note longer than 2000 characters", field="note")


def _escalate(conn: Connection, rules: CaseRules, case: dict[str, Any], change: _Change) -> str:
    """Raise the case one level (community -> street -> district); the note says which, unless given.

    Raises ``Conflict`` when it is already handled at the top level.
    """
    level = (case["attrs"] or {}).get("level", LEVELS[0])
    higher = next_level(level)
    if higher is None:
        raise Conflict(f"case {case['case_id']} is already handled at {level} level")
    store.merge_attrs(conn, case["case_id"], {"level": higher})
    return change.note or f"{level} -> {higher}"


def _reclassify(conn: Connection, rules: CaseRules, case: dict[str, Any], change: _Change) -> str:
    """Give the case the class ``change`` names (confirmed by its actor) and the level that class starts at
    when that is higher (an emergency's: district), as on intake; never lowered. Returns the note.

    Raises ``InvalidInput`` for a kind other than event or component, or a class the scheme does not have.
    """
    kind, class_code = change.kind or case["kind"], (change.class_code or "").strip()
    if kind not in ("event", "component"):
        raise InvalidInput("kind must be event or component", field="kind")
    if not store.class_exists(conn, case["scheme"], kind, class_code):
        raise InvalidInput(f"unknown {kind} class {class_code!r} in scheme {case['scheme']}", field="class_code")
    attrs = case["attrs"] or {}
    store.set_class(conn, case["case_id"], kind, class_code)
    store.merge_attrs(conn, case["case_id"], {"classification": {
        **(attrs.get("classification") or {}), "needs_review": False, "confirmed_by": change.actor}})
    was = f"{case['kind']}/{case['class_code']}" if case["class_code"] else "unclassified"
    note = change.note or f"{was} -> {kind}/{class_code}"
    level = attrs.get("level", LEVELS[0])
    start = rules.escalation.initial_level(kind, class_code)
    if level not in LEVELS or LEVELS.index(start) > LEVELS.index(level):
        store.merge_attrs(conn, case["case_id"], {"level": start})
        note = f"{note}; level {level} -> {start}"
    return note


def _assign_party(conn: Connection, rules: CaseRules, case: dict[str, Any], change: _Change) -> str:
    """Record the party the case is dispatched to (``responsible_party``). Returns the note unchanged.

    Raises ``Conflict`` for a case without a class (its text could not be classified) or without a party.
    """
    if not case["class_code"]:
        raise Conflict(f"case {case['case_id']} has no class yet (its text could not be classified): reclassify "
                       "it before dispatch")
    store.merge_attrs(conn, case["case_id"], {"dispatched_to": responsible_party(conn, rules.dispatch, case)})
    return change.note


_PREPARE: dict[str, Callable[[Connection, CaseRules, dict[str, Any], _Change], str]] = {
    "escalate": _escalate, "reclassify": _reclassify, "dispatch": _assign_party}


def _start_deadline(conn: Connection, rules: CaseRules, case: dict[str, Any]) -> None:
    """Set the disposal deadline of a just dispatched case: its class's rule counted from the transaction's
    start on the working calendar, whose hours are the city's wall-clock hours (``deployment_zone``)."""
    calendar = rules.calendar.in_zone(deployment_zone(conn))
    started = store.transaction_start(conn)
    store.set_deadline(conn, case["case_id"],
                       rules.deadlines.rule_for(case["kind"], case["class_code"]).deadline(started, calendar))


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


def responsible_party(conn: Connection, rules: DispatchRules, case: dict[str, Any]) -> dict[str, Any]:
    """The party a case goes to: an override for its class, else its class rule (a grid role at report time,
    the linked component's owner, or ``frontage_unit``: the frontage unit whose frontage covers the point on the
    day it was reported), falling back to the grid's management subject.

    Parameters
    ----------
    rules : the deployment's dispatch rules (``CaseRules.dispatch``, from ``dispatch.yaml``).
    case : as ``store.get_case`` or ``case_view`` gives it.

    Raises ``Conflict`` when nobody can be found (no ownership loaded for the grid) or an override names an
    unknown party.
    """
    kind, code = case["kind"], case["class_code"]
    override = rules.overrides.get(f"{kind}/{code}")
    if override:
        party = store.party(conn, case["district_code"], override.get("kind", "department"), override["code"])
        if party is None:
            raise Conflict(f"dispatch override for {kind}/{code} names unknown party {override['code']}")
        return {**party, "rule": f"override {kind}/{code}"}
    rule = rules.rule_for(kind, code)
    if rule == "frontage_unit":
        unit = (case.get("attrs") or {}).get("frontage_unit") or _frontage_unit_of(conn, case)
        if unit is not None:
            return {"code": unit["code"], "name": unit["name"], "kind": unit["kind"],
                    "frontage_unit": unit["unit_id"], "rule": "frontage_unit"}
        rule = "management"  # no frontage covers the point: the grid's management party
    if rule == "component_owner" and case.get("component_obj_id"):
        owner = store.component_owner(conn, case["district_code"], case["component_obj_id"], case["reported_at"])
        if owner and (owner.get("code") or owner.get("name")):
            return {**owner, "kind": "department", "rule": "component_owner"}
    owners = store.owners_at(conn, case["district_code"], case["unit_grid_code"], case["reported_at"])
    for role in (rule, "management", "responsibility"):
        if role in owners:
            return {**owners[role], "role": role, "rule": f"grid {role}"}
    raise Conflict(f"no responsible party for grid {case['unit_grid_code']}: load its ownership first")


def _frontage_party(conn: Connection, district: str, wkb: bytes, srid: int, at: Any) -> dict[str, Any] | None:
    """The frontage unit (门前三包) or property company whose frontage covers a point (WKB in EPSG ``srid``, the
    storage CRS) on the local day of instant ``at`` (None: now), as its party: ``code``, ``name``, ``kind`` and
    the ``unit_id`` (``responsibility.queries.frontage_unit_at``); None where no frontage covers it."""
    from citygrid.responsibility.queries import frontage_unit_at

    unit = frontage_unit_at(conn, district, wkb, srid, at)
    if unit is None:
        return None
    return {"code": unit["code"], "name": unit["party_name"], "kind": unit["party_kind"], "unit_id": unit["unit_id"]}


def _frontage_unit_of(conn: Connection, case: dict[str, Any]) -> dict[str, Any] | None:
    """``_frontage_party`` of a case recorded without one (imported, or reported before the unit was added):
    its point (moved from EPSG:4326 to the storage CRS) on the day it was reported."""
    if case.get("lon") is None:
        return None
    srid = deployment_srid(conn)
    point = crs.storage_point(case["lon"], case["lat"], crs.parse_crs("EPSG:4326"), srid)
    return _frontage_party(conn, case["district_code"], shapely.to_wkb(point), srid, case["reported_at"])


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
