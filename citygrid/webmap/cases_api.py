"""Case endpoints: report (idempotent), read, list with filters, workflow transitions."""

from __future__ import annotations

from dataclasses import replace

from flask import Blueprint, jsonify, request

from citygrid.accounts.roles import CASE_READERS, CONTACT_READERS, workflow_role
from citygrid.cases import queries, service
from citygrid.cases.intake import parse_report
from citygrid.cases.scope import action_scope, read_scope
from citygrid.cases.workflow import STATES, TRANSITIONS
from citygrid.errors import Forbidden, InvalidInput, problem
from citygrid.webmap import photos_api
from citygrid.webmap.auth import allow, require_principal
from citygrid.webmap.context import case_rules, connection, storage_srid, zone
from citygrid.webmap.params import (
    case_map_filter_args,
    choice_arg,
    int_arg,
    optional_district_arg,
)

bp = Blueprint("cases_v1", __name__, url_prefix="/api/v1/cases")
MAX_PAGE = 1000
MAX_GEOJSON = 5000
_MAP_FIELDS = ("case_id", "kind", "class_code", "class_name", "status", "source", "reported_at", "deadline_at",
               "unit_grid_code", "supervision_code", "street_code", "community_code", "synthetic", "description")


def json_body() -> dict:
    """The request's JSON object, or a 400/415 that says what was wrong with it."""
    if not request.is_json:
        raise InvalidInput("send the body as JSON (Content-Type: application/json)", field="Content-Type")
    data = request.get_json(silent=True)
    if data is None:
        raise InvalidInput("the body is not valid JSON", field="body")
    if not isinstance(data, dict):
        raise InvalidInput("the body must be a JSON object", field="body")
    return data


def _body_and_photos(part: str) -> tuple[dict, list]:
    """The JSON body; or, sent as multipart/form-data, the JSON object in the part named ``part`` and the
    ``photo`` parts, each checked by its content before anything is stored (``photos_api``)."""
    if photos_api.is_multipart():
        return photos_api.json_part(part), photos_api.uploaded_photos()
    return json_body(), []


# The account roles that may record a complainant's contact with a report (admins always may).
CONTACT_WRITERS = ("calltaker", "acceptor", "dispatcher")


@bp.post("")
@allow("supervisor", "dispatcher", "calltaker", "acceptor")
def report():
    """Create a case from a report; ``Idempotency-Key`` header (or ``idempotency_key``) makes retries safe.
    201 created, 200 when the key was seen before or the report joined an open duplicate; 409 when the key
    was used before for a different report. Keys are the caller's own (another account's identical key is a
    new key), and a case the caller may not read (an open duplicate outside their team's grids) comes back
    as its number and status only. As multipart/form-data: a ``report`` part (the JSON) and 0–10 ``photo``
    parts, attached to the report's event in the same transaction (a retry with the key stores none again)."""
    data, photos = _body_and_photos("report")
    if request.headers.get("Idempotency-Key"):
        data = {**data, "idempotency_key": request.headers["Idempotency-Key"]}
    who = require_principal()
    parsed = parse_report(data, zone=zone(), default_source=_default_source(who.roles))
    if photos:  # the photos are part of what a retry under the same key must send again
        parsed = replace(parsed, uploads=tuple(p.sha256 for p in photos))
    if parsed.complainant is not None and not who.has_any(CONTACT_WRITERS):
        message = (f"{who.username} ({', '.join(who.roles)}) may not record a complainant; that needs one of: "
                   f"{', '.join(CONTACT_WRITERS)}")
        raise Forbidden(message, details=[problem("complainant", message)])
    with connection() as conn:
        case, outcome = service.submit(conn, case_rules(), parsed, actor=who.username, role=parsed.source,
                                       key_scope=f"user:{who.user_id}", account=who.username)
        if photos and outcome != "existing":
            photos_api.attach(conn, case["case_id"], "report" if outcome == "created" else "duplicate_report",
                              photos, who)
        if not queries.in_scope(conn, case["case_id"], read_scope(who)):
            case = {"case_id": case["case_id"], "status": case["status"]}
        else:
            case = photos_api.with_photos(conn, case)
    return jsonify({"outcome": outcome, "case": case}), 201 if outcome == "created" else 200


def _default_source(roles: tuple[str, ...]) -> str:
    """The source of a report that names none: ``hotline`` for a call-taker (not also a supervisor), else
    ``supervisor``."""
    return "hotline" if "calltaker" in roles and "supervisor" not in roles else "supervisor"


@bp.get("/deadlines")
@allow("dispatcher", "unit")
def deadlines():
    """Overdue dispatched cases and those due within ``within_hours`` (default 4); a unit sees only the cases
    dispatched to its party."""
    district = optional_district_arg()
    from citygrid.webmap.params import float_arg

    within = float_arg("within_hours", 4.0, 0.0, 24.0 * 30)
    scope = read_scope(require_principal())
    with connection() as conn:
        lists = queries.deadline_lists(conn, district, within, int_arg("limit", 200, 1, MAX_PAGE), scope=scope)
    return jsonify({**lists, "within_hours": within})


@bp.get("/<int:case_id>")
@allow(*CASE_READERS)
def get_case(case_id: int):
    """One case with its events; a supervisor sees only the cases of their own team's grids, a unit only those
    dispatched to its party (``cases.scope``). ``my_actions``: what the caller may do now
    (``service.actions_for``: exactly what the transition endpoint then accepts)."""
    who = require_principal()
    with connection() as conn:
        view = service.case_view(conn, case_id)
        service.check_scope(conn, case_id, read_scope(who))
        view["my_actions"] = service.actions_for(conn, case_rules(), view, who)
        if who.has_any(CONTACT_READERS):  # the complainant's name and phone: only for those who call back
            view["complainant"] = service.complainant(conn, case_id)
        return jsonify(photos_api.with_photos(conn, view))


@bp.get("")
@allow(*CASE_READERS)
def list_cases():
    """Filters: district, status, open (true: not rejected/closed/evaluated), kind, class_code, start, end (ISO),
    bbox, unit_grid, supervision_grid, team (a supervision team's own grids); ``limit`` ≤ 1000 (≤ 5000 as
    GeoJSON), ``offset``; ``format`` json (full cases) or geojson (points with what a map popup shows). Only
    the cases the caller may read (``cases.scope``): a supervisor's own grids, a unit's party's cases."""
    # The case map's filters (district, kind, class_code, start/end as inclusive dates, bbox, unit_grid,
    # supervision_grid, team), validated as the desk's queues validate them.
    filters = case_map_filter_args()
    scope = read_scope(require_principal())
    fmt = choice_arg("format", ("json", "geojson"), "json")
    wanted = queries.CaseFilter(
        **filters, status=choice_arg("status", STATES),
        open_only=choice_arg("open", ("true", "false"), "false") == "true", scope=scope,
        limit=int_arg("limit", 100, 1, MAX_GEOJSON if fmt == "geojson" else MAX_PAGE),
        offset=int_arg("offset", 0, 0, 10_000_000))
    with connection() as conn:
        rows = queries.list_cases(conn, wanted, srid=storage_srid())
    if fmt == "geojson":
        features = [{"type": "Feature", "id": r["case_id"],
                     "geometry": {"type": "Point", "coordinates": [r["lon"], r["lat"]]},
                     "properties": {k: r[k] for k in _MAP_FIELDS}} for r in rows if r["lon"] is not None]
        return jsonify({"type": "FeatureCollection", "features": features, "count": len(features)})
    return jsonify({"cases": rows, "count": len(rows)})


@bp.post("/<int:case_id>/transitions")
@allow("supervisor", "dispatcher", "unit", "acceptor", "calltaker", "lead")
def transition(case_id: int):
    """``{"action", "note", "expected_version"}`` (``reclassify`` also takes ``kind`` and ``class_code``,
    ``mark_duplicate`` the ``duplicate_of`` case number; ``reject`` and ``hand_back`` need the ``note``) — the
    actor is the signed-in user and the workflow role the one their account roles give for this action (403
    when none does, or when a supervisor acts outside their team's grids or a unit on another party's case);
    409 when the status does not allow the action or the case changed since ``expected_version``. As
    multipart/form-data: a ``data`` part (the JSON) and 0–10 ``photo`` parts, attached to the step's event."""
    data, photos = _body_and_photos("data")
    version = data.get("expected_version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)
                                or not 0 <= version < 2**31):
        raise InvalidInput("expected_version must be an integer between 0 and 2^31", field="expected_version")
    action = str(data.get("action") or "")
    who = require_principal()
    step = TRANSITIONS.get(action)
    if step is None:
        raise InvalidInput(f"unknown action {action!r}; actions: {', '.join(TRANSITIONS)}", field="action")
    role = workflow_role(who.roles, step.roles)
    if role is None:
        raise Forbidden(f"{who.username} ({', '.join(who.roles)}) may not {action}: it is done by "
                        f"{', '.join(r for r in step.roles if r != 'system')}")
    with connection() as conn:
        service.check_scope(conn, case_id, action_scope(who, role))
        case = service.transition(conn, case_rules(), case_id, action, actor=who.username, account=who.username,
                                  role=role, note=str(data.get("note") or ""),
                                  expected_version=version, kind=data.get("kind") or None,
                                  class_code=str(data.get("class_code") or ""),
                                  duplicate_of=data.get("duplicate_of"),
                                  satisfaction=_body_text(data, "satisfaction"),
                                  party_code=_body_text(data, "party_code"))
        if photos:
            photos_api.attach(conn, case_id, action, photos, who)
        case = photos_api.with_photos(conn, case)
    return jsonify(case)


def _body_text(data: dict, name: str) -> str | None:
    """Field ``name`` of a JSON body as text, None when absent or null; ``InvalidInput`` for another type."""
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"{name} must be text", field=name)
    return value


classify_bp = Blueprint("classify_v1", __name__, url_prefix="/api/v1")


@classify_bp.post("/classify")
@allow("supervisor", "dispatcher", "calltaker", "acceptor")  # those who report or (re)classify: the forms suggest
def classify():
    """``{"text": "…", "kind": "event"|"component"?, "scheme"?}`` → the class of the text in the scheme (default:
    the deployment's active scheme) and the top three, or ``classified: false`` with the ``reason`` when the
    text cannot be classified (``cases.classify``: no known vocabulary, out of scheme, low confidence)."""
    from citygrid.cases.classify import classifier_for
    from citygrid.components_survey.queries import taxonomy

    data = json_body()
    kind = data.get("kind")
    if kind not in (None, "event", "component"):
        raise InvalidInput("kind must be event or component", field="kind")
    with connection() as conn:
        scheme = str(data.get("scheme") or service.active_scheme(conn))
        classes = taxonomy(conn, scheme=scheme, kind=kind)
    if not classes:
        raise InvalidInput(f"no class scheme {scheme[:40]!r}" + (f" with {kind} classes" if kind else ""),
                           field="scheme")
    classifier = classifier_for(classes, case_rules().model_for(scheme, kind))
    verdict = classifier.classify(str(data.get("text") or ""))
    return jsonify({"trained": classifier.trained, "scheme": scheme, **verdict.as_dict()})
