"""Case operations as every entry point calls them: submit a report, move a case through the workflow, read.

Each takes a connection inside the caller's transaction; a report is stored with its first workflow event
in that one transaction. The deployment's case rules (``cases.rules.CaseRules``: dispatch, deadlines,
calendar, escalation, classifier model) are passed in by the caller, which reads them once per app or
command run; nothing here reads the environment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
from sqlalchemy.engine import Connection

from citygrid.cases import store
from citygrid.cases.escalation import COUNTED_ACTIONS, EscalationRules, next_level
from citygrid.cases.intake import Report, report_digest, scoped_key
from citygrid.cases.rules import FALLBACK_ROLES, FRONTAGE_RULE, CaseRules, DispatchRules
from citygrid.cases.scope import CaseScope, action_scope
from citygrid.cases.workflow import (
    LEVELS,
    OPEN_STATES,
    TRANSITIONS,
    Transition,
    allowed_actions,
    callback_target,
    next_state,
    target_status,
)
from citygrid.errors import Conflict, Forbidden, InvalidInput, NotFound, problem
from citygrid.spatial import crs
from citygrid.spatial.db import deployment_srid, deployment_zone
from citygrid.spatial.gazetteer import Gazetteer
from citygrid.spatial.geocode import GridIndex
from citygrid.spatial.store import district_codes

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from citygrid.accounts.service import Principal

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
        joined = _join_duplicate(conn, duplicate, report, where.district, idem, actor=actor, role=role,
                                 account=account)
        return _keep_contact(conn, report, where.district, *joined)
    row = {**_case_fields(report, where, idem), **place(conn, where),
           "component": component["obj_id"] if component else None}
    row["attrs"] = _case_attrs(rules, report, where, classification, row.pop("grid_version"))
    row["verify_due_at"] = _verify_due_on_intake(conn, rules, report)
    unit = _frontage_party(conn, where.district, where.wkb, where.srid, report.reported_at)
    if unit is not None:  # 门前三包: the point's responsibility subject, the party frontage classes go to
        row["attrs"]["frontage_unit"] = unit
    stored = _store_case(conn, row, where.srid, idem, actor=actor, role=role, note=report.source, account=account)
    return _keep_contact(conn, report, where.district, *stored)


def _keep_contact(conn: Connection, report: Report, district: str, case: dict[str, Any],
                  outcome: str) -> tuple[dict[str, Any], str]:
    """Keep the report's complainant (``case_contacts``, in the caller's transaction) with the case it made or
    joined (a case keeps its first contact; a replay stores nothing); returns (case, outcome) unchanged."""
    if report.complainant and outcome in ("created", "duplicate"):
        store.insert_contact(conn, district, case["case_id"], report.complainant["name"], report.complainant["phone"])
    return case, outcome


def complainant(conn: Connection, case_id: int) -> dict[str, str] | None:
    """The complainant's ``{"name", "phone"}`` of case ``case_id`` (None when none was recorded). Only for the
    accounts that read contacts (``accounts.roles.CONTACT_READERS`` and admins): the caller checks."""
    return store.contact(conn, case_id)


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


def _verify_due_on_intake(conn: Connection, rules: CaseRules, report: Report) -> Any:
    """When the verification (核实) of a new report is due, for a source the filing rule has verified before
    filing (``rules.filing``): the ``tasks.verify`` limit counted from the report's time on the working
    calendar in the deployment's zone; None for any other source (the acceptor may still ``request_verify``)."""
    if not rules.filing.must_verify(report.source):
        return None
    calendar = rules.calendar.in_zone(deployment_zone(conn))
    return rules.deadlines.task_due("verify", report.reported_at or store.transaction_start(conn), calendar)


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
               class_code: str | None = None, account: str | None = None,
               duplicate_of: Any = None, satisfaction: str | None = None,
               party_code: str | None = None) -> dict[str, Any]:
    """Apply a workflow action: check it, prepare what the action changes, move the case, then what follows.

    Parameters
    ----------
    rules : the deployment's case rules. Dispatching assigns the responsible party (``rules.dispatch``) and
        starts the disposal deadline: the class's rule (working hours or days, ``rules.deadlines``) on the
        working calendar (``rules.calendar``), whose working hours are read in the deployment's time zone.
        A hand-back, failed check or reopening that reaches an escalation rule's count (``rules.escalation``)
        raises the case one level in the same transaction.
    kind, class_code : the new class, for ``reclassify``.
    duplicate_of : for ``mark_duplicate``, the open case of the same district this report duplicates.
    satisfaction : the complainant's answer to the ``callback`` (回访): satisfied, basic or unsatisfied.
    party_code : for ``dispatch``, a party of the case's district chosen instead of the rule's
        (``chosen_party``; recorded with ``rule: chosen by <actor>``).
    account : the signed-in account acting; its named person in the case's district is recorded on the event.
    note : free text; the reason, which the actions that need one (``Transition.needs``: reject, hand_back)
        refuse to do without.

    The filing rule (``rules.filing``) refuses ``accept`` of a report that must be verified first; the
    verification and check tasks get their time limits (``rules.deadlines.tasks``) when they begin
    (``request_verify``; ``feed_back``) and are cleared when done, the event that completes one recording when
    it was due (``due_at``).
    expected_version : the row version the caller saw; another change since is a ``Conflict``.

    Returns
    -------
    The case as ``case_view`` gives it after the action.

    Raises
    ------
    InvalidInput for a bad actor, note or class, a missing reason or ``duplicate_of``; NotFound for no such case
    (or no such original in the case's district); Forbidden when ``role`` does not do ``action``; Conflict
    (409) when the status or a rule (``refusal``) does not allow it, or another change won.
    """
    _check_actor_and_note(actor, note)
    case = store.get_case(conn, case_id)
    if case is None:
        raise NotFound(f"no case {case_id}")
    step = next_state(case["status"], action)
    if role not in step.roles:
        raise Forbidden(f"{action} is done by {', '.join(step.roles)}, not by {role or 'an unnamed role'}")
    if "note" in step.needs and not note.strip():
        raise InvalidInput(f"a reason is required: {action} needs a note saying why", field="note")
    reason = refusal(conn, rules, case, action)
    if reason is not None:
        raise Conflict(reason)
    change = _Change(actor, note, kind, class_code, role=role, account=account, duplicate_of=duplicate_of,
                     satisfaction=satisfaction, party_code=party_code)
    _check_body(step, change)
    target = _callback_target(case, change) if action == "callback" else target_status(step, case["status"])
    prepare = _PREPARE.get(action)
    if prepare is not None:
        note = prepare(conn, rules, case, change)
    version = store.apply_transition(conn, case_id, case["status"], target, expected_version)
    if version is None:
        raise Conflict(f"case {case_id} changed meanwhile (now version {store.get_case(conn, case_id)['row_version']});"
                       " reload it and try again")
    store.add_event(conn, case["district_code"], case_id, action=action, from_status=case["status"],
                    to_status=target, actor=actor, role=role, note=note, account=account,
                    due_at=case.get(_TASK_DUE.get(action, "")))
    _update_tasks(conn, rules, case, action, target)
    if action == "dispatch":
        _start_deadline(conn, rules, case)
    counted = "reopen" if (action, target) == ("callback", "accepted") else action  # 二次处理: as a reopening
    if counted in COUNTED_ACTIONS:
        _escalate_by_rule(conn, case_id, counted, rules.escalation)
    return case_view(conn, case_id)


@dataclass(frozen=True)
class _Change:
    """What the caller of ``transition`` says besides the action: who, the note, and a new class."""

    actor: str
    note: str
    kind: str | None
    class_code: str | None
    role: str = ""
    account: str | None = None
    duplicate_of: Any = None
    satisfaction: str | None = None
    party_code: str | None = None


def _check_actor_and_note(actor: str, note: str) -> None:
    """``InvalidInput`` for an actor outside 1–100 characters or a note over 2000."""
    if not actor or len(actor) > 100:
        raise InvalidInput("actor must be 1–100 characters", field="actor")
    if len(note) > 2000:
        raise InvalidInput("note longer than 2000 characters", field="note")


def _check_body(step: Transition, change: _Change) -> None:
    """``InvalidInput`` naming the field when ``satisfaction`` or ``party_code`` is sent with an action that
    does not take it."""
    if change.satisfaction is not None and step.action != "callback":
        raise InvalidInput("satisfaction is only for the callback action", field="satisfaction")
    if change.party_code is not None and step.action != "dispatch":
        raise InvalidInput("party_code is only for the dispatch action", field="party_code")


def _callback_target(case: dict[str, Any], change: _Change) -> str:
    """The status a callback on ``case`` leads to (``workflow.callback_target``), from the satisfaction given
    and the dissatisfactions the case's satisfaction history (``attrs.satisfaction``) holds."""
    history = (case["attrs"] or {}).get("satisfaction") or []
    unsatisfied = sum(1 for entry in history if isinstance(entry, dict) and entry.get("satisfaction") == "unsatisfied")
    return callback_target(change.satisfaction or "", unsatisfied)


def _record_callback(conn: Connection, rules: CaseRules, case: dict[str, Any], change: _Change) -> str:
    """Append the complainant's answer to ``attrs.satisfaction`` (satisfaction, when, by whom, the round it
    answers), so satisfaction rates can be computed; a first "not satisfied" starts the second handling
    (二次处理: ``attrs.round`` 2). Returns the note (the satisfaction when none is given)."""
    attrs = case["attrs"] or {}
    history = [e for e in (attrs.get("satisfaction") or []) if isinstance(e, dict)]
    at = store.transaction_start(conn).isoformat()
    entry = {"satisfaction": change.satisfaction, "at": at, "by": change.actor, "round": attrs.get("round", 1)}
    extra: dict[str, Any] = {"satisfaction": [*history, entry]}
    if _callback_target(case, change) == "accepted":
        extra["round"] = 2
    store.merge_attrs(conn, case["case_id"], extra)
    return change.note or f"satisfaction: {change.satisfaction}"


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
    party = (chosen_party(conn, case, change.party_code, change.actor) if change.party_code is not None
             else responsible_party(conn, rules.dispatch, case))
    store.merge_attrs(conn, case["case_id"], {"dispatched_to": party})
    return change.note


def _mark_duplicate(conn: Connection, rules: CaseRules, case: dict[str, Any], change: _Change) -> str:
    """Record that the case duplicates the open case ``change.duplicate_of`` of its district (``attrs``) and
    tell the original (a ``duplicate_report`` event naming this case, as intake's duplicate join does).
    Returns the note.

    Raises ``InvalidInput`` (field ``duplicate_of``) for a missing or non-positive number or the case itself;
    ``NotFound`` for no such case in this case's district (another district's case is not revealed);
    ``Conflict`` for an original that is closed, or itself a duplicate (point at the case it duplicates).
    """
    original_id = _case_number(change.duplicate_of)
    if original_id == case["case_id"]:
        raise InvalidInput("a case cannot be a duplicate of itself", field="duplicate_of")
    # Both rows locked before the original is read: another acceptor marking the original a duplicate of this
    # case meanwhile (each would see the other open and both would close), or a second duplicate of the same
    # original (both events would take its next number: a unique violation), waits for this one to end.
    store.lock_cases(conn, [case["case_id"], original_id])
    original = store.get_case(conn, original_id)
    if original is None or original["district_code"] != case["district_code"]:
        message = f"no case {original_id} in district {case['district_code']}"
        raise NotFound(message, details=[problem("duplicate_of", message)])
    first = (original["attrs"] or {}).get("duplicate_of")
    if original["status"] == "duplicate" or first is not None:
        raise Conflict(f"case {original_id} is itself a duplicate of case {first}: mark this one a duplicate of "
                       f"case {first}", details=[problem("duplicate_of", f"use {first}")])
    if original["status"] not in OPEN_STATES:
        raise Conflict(f"case {original_id} is {original['status']}: a report duplicates an open case only",
                       details=[problem("duplicate_of", f"case {original_id} is not open")])
    store.merge_attrs(conn, case["case_id"], {"duplicate_of": original_id})
    # No chains: the cases marked as duplicates of this one now name its original too.
    moved = store.repoint_duplicates(conn, case["district_code"], case["case_id"], original_id)
    also = f" (with its duplicates {', '.join(map(str, moved))})" if moved else ""
    store.add_event(conn, original["district_code"], original_id, action="duplicate_report", from_status=None,
                    to_status=original["status"], actor=change.actor, role=change.role,
                    note=f"case {case['case_id']}{also} marked as a duplicate of this case", account=change.account)
    return change.note or f"duplicate of case {original_id}"


def _case_number(value: Any) -> int:
    """A case number given in a request body: a whole number from 1 to 2^63 − 1 (not a string, not a bool).

    Raises ``InvalidInput`` (field ``duplicate_of``)."""
    if value is None or value == "":
        raise InvalidInput("duplicate_of is required: the number of the open case this report duplicates",
                           field="duplicate_of")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        raise InvalidInput("duplicate_of must be a case number (a whole number above 0)", field="duplicate_of")
    return value


_PREPARE: dict[str, Callable[[Connection, CaseRules, dict[str, Any], _Change], str]] = {
    "escalate": _escalate, "reclassify": _reclassify, "dispatch": _assign_party, "mark_duplicate": _mark_duplicate,
    "callback": _record_callback}


def _verification_pending(conn: Connection, rules: CaseRules, case: dict[str, Any]) -> str | None:
    """Why ``request_verify`` would be refused: a verification of the case is pending already."""
    if case.get("verify_due_at") is None:
        return None
    return (f"a supervisor's verification of case {case['case_id']} is pending already (due "
            f"{case['verify_due_at'].isoformat()}); wait for it")


def _no_class(conn: Connection, rules: CaseRules, case: dict[str, Any]) -> str | None:
    """Why ``dispatch`` would be refused before any party is looked for: the case has no class."""
    if case["class_code"]:
        return None
    return (f"case {case['case_id']} has no class yet (its text could not be classified): reclassify it before "
            "dispatch")


def _at_top_level(conn: Connection, rules: CaseRules, case: dict[str, Any]) -> str | None:
    """Why ``escalate`` would be refused: the case is handled at the top level already."""
    level = (case["attrs"] or {}).get("level", LEVELS[0])
    return None if next_level(level) is not None else f"case {case['case_id']} is already handled at {level} level"


# What refuses an action the status allows, as the 409's message: checked by ``transition`` before it changes
# anything and by ``actions_for``, so what a page offers is what the API then accepts.
_REFUSALS: dict[str, Callable[[Connection, CaseRules, dict[str, Any]], str | None]] = {
    "accept": lambda conn, rules, case: rules.filing.refusal(case),
    "request_verify": _verification_pending,
    "dispatch": _no_class,
    "escalate": _at_top_level,
}


def refusal(conn: Connection, rules: CaseRules, case: dict[str, Any], action: str) -> str | None:
    """Why a rule refuses ``action`` on ``case`` (as ``store.get_case`` gives it) although its status allows it
    (the filing rule, a pending verification, no class, the top level), or None."""
    check = _REFUSALS.get(action)
    return None if check is None else check(conn, rules, case)


# The task an action completes -> the case column holding when it was due, recorded on the action's event.
_TASK_DUE = {"verify": "verify_due_at", "check_pass": "check_due_at", "check_fail": "check_due_at",
             "feed_back": "deadline_at"}


def _update_tasks(conn: Connection, rules: CaseRules, case: dict[str, Any], action: str, target: str) -> None:
    """Start or clear the supervisor's tasks after ``action`` moved ``case`` to ``target``: ``request_verify``
    starts a verification, ``feed_back`` a check (each its ``tasks`` limit from the transaction's start on the
    working calendar, in the deployment's zone); a case that leaves ``reported`` needs no verification and one
    that leaves ``fed_back`` no check any more."""
    verify, check = case.get("verify_due_at"), case.get("check_due_at")
    if action in ("request_verify", "feed_back"):
        calendar = rules.calendar.in_zone(deployment_zone(conn))
        due = rules.deadlines.task_due("verify" if action == "request_verify" else "check",
                                       store.transaction_start(conn), calendar)
        verify, check = (due, check) if action == "request_verify" else (verify, due)
    verify = verify if target == "reported" else None
    check = check if target == "fed_back" else None
    if (verify, check) != (case.get("verify_due_at"), case.get("check_due_at")):
        store.set_task_dues(conn, case["case_id"], verify, check)


def actions_for(conn: Connection, rules: CaseRules, case: dict[str, Any], who: Principal) -> list[dict[str, Any]]:
    """The workflow actions ``who`` may take on ``case`` now, as the transition endpoint would accept them:
    allowed from the case's status (``workflow``), done by a workflow role ``who``'s account roles act in
    (``accounts.roles.workflow_role``), on a case in the scope of that role (``scope.action_scope``: a
    supervisor's team's grids, a unit's party's cases), and not refused by a rule (``refusal``: filing rule,
    pending verification, no class, top level).

    Parameters
    ----------
    case : as ``store.get_case`` or ``case_view`` gives it.
    who : the signed-in account (``accounts.service.Principal``).

    Returns
    -------
    ``[{"action", "label", "needs": [body fields the form must send], "optional": [fields it may send]}]`` in
    the workflow's order; ``party_code`` is needed for ``dispatch`` when no party can be suggested.
    """
    from citygrid.accounts.roles import workflow_role

    offered = []
    for action in allowed_actions(case["status"]):
        step = TRANSITIONS[action]
        role = workflow_role(who.roles, step.roles)
        if role is None or not _may_act_on(conn, case["case_id"], action_scope(who, role)):
            continue
        if refusal(conn, rules, case, action) is not None:
            continue
        needs, optional = list(step.needs), [f for f in step.optional if f not in step.needs]
        if action == "dispatch" and not _party_suggested(conn, rules, case):
            needs, optional = [*needs, "party_code"], [f for f in optional if f != "party_code"]
        offered.append({"action": action, "label": step.label, "needs": needs,
                        "optional": optional + ([] if "note" in needs else ["note"])})
    return offered


def _may_act_on(conn: Connection, case_id: int, scope: CaseScope) -> bool:
    """Whether ``scope`` (an action scope) holds case ``case_id``, as ``check_scope`` would let it pass."""
    return scope.readable and (scope.unrestricted or store.in_scope(conn, case_id, scope))


def _party_suggested(conn: Connection, rules: CaseRules, case: dict[str, Any]) -> bool:
    """Whether the dispatch rule finds a party for ``case`` (else the dispatcher must name one)."""
    try:
        responsible_party(conn, rules.dispatch, case)
    except Conflict:
        return False
    return True


def _start_deadline(conn: Connection, rules: CaseRules, case: dict[str, Any]) -> None:
    """Set the disposal deadline of a just dispatched case (``_disposal_deadline``)."""
    store.set_deadline(conn, case["case_id"], _disposal_deadline(conn, rules, case))


def _disposal_deadline(conn: Connection, rules: CaseRules, case: dict[str, Any]) -> Any:
    """The disposal deadline of ``case`` if dispatched now: its class's rule counted from the transaction's
    start on the working calendar, whose hours are the city's wall-clock hours (``deployment_zone``)."""
    calendar, started = rules.calendar.in_zone(deployment_zone(conn)), store.transaction_start(conn)
    return rules.deadlines.rule_for(case["kind"], case["class_code"]).deadline(started, calendar)


def _deadlines_from(rules: CaseRules, calendar: Any, started: Any) -> Callable[[dict[str, Any]], Any]:
    """``_disposal_deadline`` of a case for cases dispatched at ``started`` on ``calendar`` (the city's
    working calendar), each deadline rule counted once and each class's looked up once: a page of the dispatch
    queue holds a few classes, and most of them share their kind's default rule."""
    by_class: dict[tuple[str, str], Any] = {}
    by_rule: dict[Any, Any] = {}

    def deadline_of(case: dict[str, Any]) -> Any:
        key = (case["kind"], case["class_code"])
        if key not in by_class:
            rule = rules.deadlines.rule_for(*key)
            if rule not in by_rule:
                by_rule[rule] = rule.deadline(started, calendar)
            by_class[key] = by_rule[rule]
        return by_class[key]

    return deadline_of


def dispatch_previews(conn: Connection, rules: CaseRules, cases: list[dict[str, Any]], *,
                      zone: ZoneInfo | None = None, read: PreviewInputs | None = None) -> list[dict[str, Any]]:
    """``dispatch_preview`` of each of ``cases`` (a page of the dispatch queue), with the working calendar, the
    transaction's start, the owners of the cases' grids and the frontage units of the cases whose class goes to
    one read once for the page rather than once per case; ``zone``: the deployment's time zone when the caller
    holds it (``deployment_zone``); ``read``: those inputs when the caller's statement read them with the page
    (the desk's dispatch queue: no further round trip)."""
    if read is None:
        read = PreviewInputs(
            started=store.transaction_start(conn),
            owners=store.owners_at_many(conn, [(c["district_code"], c["unit_grid_code"], c["reported_at"])
                                               for c in cases]),
            frontage=_frontage_units_of(conn, [c for c in cases if _wants_frontage(rules.dispatch, c)]))
    deadline_of = _deadlines_from(rules, rules.calendar.in_zone(zone or deployment_zone(conn)), read.started)
    return [dispatch_preview(conn, rules, case, deadline_of=deadline_of, owners=mine, frontage=read.frontage.get)
            for case, mine in zip(cases, read.owners, strict=True)]


@dataclass(frozen=True)
class PreviewInputs:
    """What ``dispatch_previews`` reads for a page of cases: the transaction's start (``started``, the instant
    a deadline is counted from), the owners of each case's unit grid at its report time (``owners``, in the
    page's order, as ``store.owners_at``, or only those in the roles the rules may choose:
    ``DispatchRules.roles_named``) and the frontage unit of each case by case number (``frontage``, as
    ``_frontage_unit_of``; a case not in it, or None for a case whose class has no key ruled ``frontage_unit``,
    has none looked up: ``DispatchRules.keys_ruled``)."""

    started: Any
    owners: list[dict[str, dict[str, Any]]]
    frontage: dict[int, dict[str, Any] | None]


def _wants_frontage(rules: DispatchRules, case: dict[str, Any]) -> bool:
    """Whether ``_community_party`` would look up the frontage unit of ``case`` (community level, no override,
    a ``frontage_unit`` class rule, none recorded on the case, a point)."""
    kind, code = case["kind"], case["class_code"]
    return (bool(code) and _level_of(case) == LEVELS[0] and not rules.overrides.get(f"{kind}/{code}")
            and rules.rule_for(kind, code) == FRONTAGE_RULE and case.get("lon") is not None
            and not (case.get("attrs") or {}).get("frontage_unit"))


def _frontage_units_of(conn: Connection, cases: list[dict[str, Any]]) -> dict[int, dict[str, Any] | None]:
    """``_frontage_unit_of`` of each of ``cases`` (with a point) by case number, in one query."""
    if not cases:
        return {}
    from citygrid.responsibility.queries import frontage_units_at_many

    srid, wgs84 = deployment_srid(conn), crs.parse_crs("EPSG:4326")
    points = [(c["district_code"], shapely.to_wkb(crs.storage_point(c["lon"], c["lat"], wgs84, srid)),
               c["reported_at"]) for c in cases]
    found = frontage_units_at_many(conn, points, srid)
    return {c["case_id"]: None if u is None else
            {"code": u["code"], "name": u["party_name"], "kind": u["party_kind"], "unit_id": u["unit_id"]}
            for c, u in zip(cases, found, strict=True)}


def dispatch_preview(conn: Connection, rules: CaseRules, case: dict[str, Any],
                     deadline_of: Callable[[dict[str, Any]], Any] | None = None,
                     owners: dict[str, dict[str, Any]] | None = None,
                     frontage: Callable[[int], dict[str, Any] | None] | None = None) -> dict[str, Any]:
    """Where ``case`` would go if dispatched now, for the dispatcher's queue: the party the rule of its level
    chooses (``responsible_party``), the ``level`` and the disposal ``deadline_at`` it would get.

    Parameters
    ----------
    case : as ``store.get_case`` or ``case_view`` gives it.
    deadline_of : the disposal deadline of a case dispatched now, when the caller counts them
        (``_deadlines_from``); ``_disposal_deadline`` otherwise.

    Returns
    -------
    ``{"party", "level", "deadline_at"}``; when no party can be chosen (no class yet, no ownership, a
    department the rules name that the district lacks) ``party`` is None and ``problem`` says why (the
    ``Conflict`` a dispatch would answer), so one such case does not break a queue.
    """
    level = _level_of(case)
    deadline = None
    if case["class_code"]:
        deadline = deadline_of(case) if deadline_of else _disposal_deadline(conn, rules, case)
    try:
        if not case["class_code"]:
            raise Conflict(f"case {case['case_id']} has no class yet: reclassify it before dispatch")
        party = _party_at(conn, rules.dispatch, case, level, owners, frontage)
    except Conflict as refused:
        return {"party": None, "level": level, "deadline_at": deadline, "problem": refused.message}
    return {"party": party, "level": level, "deadline_at": deadline}


def _escalate_by_rule(conn: Connection, case_id: int, action: str, escalation: EscalationRules) -> None:
    """Raise the case one level when ``action`` has now happened as often as a rule says (event by system); a
    callback that started a second handling (to ``accepted``) counts as a ``reopen``."""
    case = store.get_case(conn, case_id)
    times = sum(1 for e in store.events(conn, case["district_code"], case_id)
                if e["action"] == action or (action, e["action"], e["to_status"]) == ("reopen", "callback", "accepted"))
    reason = escalation.triggered(action, times)
    level = (case["attrs"] or {}).get("level", LEVELS[0])
    higher = next_level(level)
    if reason is None or higher is None or "escalate" not in allowed_actions(case["status"]):
        return
    store.merge_attrs(conn, case_id, {"level": higher})
    store.add_event(conn, case["district_code"], case_id, action="escalate", from_status=case["status"],
                    to_status=case["status"], actor="system", role="system", note=f"{level} -> {higher} ({reason})")


def responsible_party(conn: Connection, rules: DispatchRules, case: dict[str, Any],
                      owners: dict[str, dict[str, Any]] | None = None,
                      frontage: Callable[[int], dict[str, Any] | None] | None = None) -> dict[str, Any]:
    """The party a case goes to at the level it is handled at (``attrs.level``; 三平台): community level by the
    class rules (``_community_party``), street level the street office of its street (``_street_party``),
    district level the department ``dispatch.yaml`` names for its class (``_district_party``). The party
    carries its ``level`` and the ``rule`` that chose it.

    Parameters
    ----------
    rules : the deployment's dispatch rules (``CaseRules.dispatch``, from ``dispatch.yaml``).
    case : as ``store.get_case`` or ``case_view`` gives it.
    owners : the owners of the case's unit grid at its report time (``store.owners_at``) when the caller read
        them already (``dispatch_previews``: a page's at once); None: read here.
    frontage : the case's frontage unit by case number (``_frontage_unit_of``: None where none covers it) when
        the caller looked them up already (``dispatch_previews``); None: looked up here when the rule asks.

    Raises ``Conflict`` when nobody can be found: no ownership loaded for the grid, an override or the district
    rule naming a party the district does not have, no street office for the case's street.
    """
    return _party_at(conn, rules, case, _level_of(case), owners, frontage)


def _party_at(conn: Connection, rules: DispatchRules, case: dict[str, Any], level: str,
              owners: dict[str, dict[str, Any]] | None, frontage: Callable[[int], dict[str, Any] | None] | None
              ) -> dict[str, Any]:
    """``responsible_party`` of ``case`` handled at ``level`` (``_level_of``)."""
    if level not in ("street", "district"):
        return {**_community_party(conn, rules, case, owners, frontage), "level": level}
    chooser = {"street": _street_party, "district": _district_party}[level]
    return {**chooser(conn, rules, case), "level": level}


def _level_of(case: dict[str, Any]) -> str:
    """The level ``case`` is handled at (``attrs.level``; community when unset or unknown)."""
    level = (case.get("attrs") or {}).get("level")
    return level if level in LEVELS else LEVELS[0]


def _street_party(conn: Connection, rules: DispatchRules, case: dict[str, Any]) -> dict[str, Any]:
    """The street office (街道办事处, party kind ``street_office`` coded as the street) of the case's street,
    with the section ``dispatch.yaml`` names (``levels.street.section``, e.g. 城建科).

    Raises ``Conflict`` when the case lies in no street or its street has no office party."""
    district, street = case["district_code"], case.get("street_code")
    office = store.party(conn, district, "street_office", street) if street else None
    if office is None:
        where = f"street {street} has no street office party" if street else "the case lies in no street"
        if not store.has_party_kind(conn, district, "street_office"):
            where = f"district {district} has no street offices"
        raise Conflict(f"case {case['case_id']} is handled at street level but {where}: load the district's "
                       "streets (their offices are derived from them) or dispatch with party_code")
    section = {"section": rules.street_section} if rules.street_section else {}
    return {**office, **section, "rule": "level street: street office"}


def _district_party(conn: Connection, rules: DispatchRules, case: dict[str, Any]) -> dict[str, Any]:
    """The district department ``dispatch.yaml`` names for the case's class (``levels.district``).

    Raises ``Conflict`` naming the file, key and code when the file names none or the district lacks it."""
    district, kind, code = case["district_code"], case["kind"], case["class_code"] or ""
    named = rules.district_department(kind, code, district)
    if named is None:
        raise Conflict(f"case {case['case_id']} is handled at district level but dispatch.yaml levels.district "
                       f"names no department for {kind}/{code} (add a default)")
    key, party_code = named
    department = store.party_by_code(conn, district, party_code)
    if department is None:
        raise Conflict(f"dispatch.yaml levels.district[{key}] names party {party_code}, which district {district} "
                       "does not have: add it (citygrid ownership import) or correct the file")
    return {**department, "rule": f"level district: {key}"}


def chosen_party(conn: Connection, case: dict[str, Any], party_code: str, actor: str) -> dict[str, Any]:
    """The party ``party_code`` of the case's district, chosen by the dispatcher ``actor`` instead of the
    rule's (recorded as ``rule: chosen by <actor>``).

    Raises ``InvalidInput`` (field ``party_code``) for a malformed code, ``NotFound`` (field ``party_code``)
    for one the district does not have."""
    if not 0 < len(party_code) <= 100 or not party_code.isprintable() or party_code != party_code.strip():
        raise InvalidInput("party_code must be 1–100 printable characters", field="party_code")
    party = store.party_by_code(conn, case["district_code"], party_code)
    if party is None:
        message = f"district {case['district_code']} has no party {party_code}"
        raise NotFound(message, details=[problem("party_code", message)])
    return {**party, "level": _level_of(case), "rule": f"chosen by {actor}"}


def _community_party(conn: Connection, rules: DispatchRules, case: dict[str, Any],
                     owners: dict[str, dict[str, Any]] | None = None,
                     frontage: Callable[[int], dict[str, Any] | None] | None = None) -> dict[str, Any]:
    """The party a community-level case goes to: an override for its class, else its class rule (a grid role
    at report time, the linked component's owner, or ``frontage_unit``: the frontage unit whose frontage covers
    the point on the day it was reported), falling back to the grid's management subject; ``owners`` and
    ``frontage`` as ``responsible_party`` takes them.

    Raises ``Conflict`` when nobody can be found (no ownership loaded for the grid) or an override names an
    unknown party.
    """
    kind, code = case["kind"], case["class_code"]
    override = rules.overrides.get(f"{kind}/{code}") if rules.overrides else None
    if override:
        party = store.party(conn, case["district_code"], override.get("kind", "department"), override["code"])
        if party is None:
            raise Conflict(f"dispatch override for {kind}/{code} names unknown party {override['code']}")
        return {**party, "rule": f"override {kind}/{code}"}
    rule = rules.rule_for(kind, code)
    if rule == FRONTAGE_RULE:
        recorded = (case.get("attrs") or {}).get("frontage_unit")
        unit = recorded or (frontage(case["case_id"]) if frontage else _frontage_unit_of(conn, case))
        if unit is not None:
            return {"code": unit["code"], "name": unit["name"], "kind": unit["kind"],
                    "frontage_unit": unit["unit_id"], "rule": "frontage_unit"}
        rule = "management"  # no frontage covers the point: the grid's management party
    if rule == "component_owner" and case.get("component_obj_id"):
        owner = store.component_owner(conn, case["district_code"], case["component_obj_id"], case["reported_at"])
        if owner and (owner.get("code") or owner.get("name")):
            return {**owner, "kind": "department", "rule": "component_owner"}
    if owners is None:
        owners = store.owners_at(conn, case["district_code"], case["unit_grid_code"], case["reported_at"])
    for role in (rule, *FALLBACK_ROLES):
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
