"""Case endpoints: report (idempotent), read, list with filters, workflow transitions."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from citygrid.accounts.roles import CASE_READERS, workflow_role
from citygrid.cases import queries, service
from citygrid.cases.intake import parse_report
from citygrid.cases.scope import action_scope, read_scope
from citygrid.cases.workflow import STATES, TRANSITIONS
from citygrid.errors import Forbidden, InvalidInput
from citygrid.webmap.auth import allow, require_principal
from citygrid.webmap.context import case_rules, connection, zone
from citygrid.webmap.params import (
    bbox_arg,
    choice_arg,
    code_arg,
    int_arg,
    optional_code_arg,
    optional_district_arg,
    period_args,
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


@bp.post("")
@allow("supervisor", "dispatcher")
def report():
    """Create a case from a report; ``Idempotency-Key`` header (or ``idempotency_key``) makes retries safe.
    201 created, 200 when the key was seen before or the report joined an open duplicate; 409 when the key
    was used before for a different report. Keys are the caller's own (another account's identical key is a
    new key), and a case the caller may not read (an open duplicate outside their team's grids) comes back
    as its number and status only."""
    data = json_body()
    if request.headers.get("Idempotency-Key"):
        data = {**data, "idempotency_key": request.headers["Idempotency-Key"]}
    parsed = parse_report(data, zone=zone())
    who = require_principal()
    with connection() as conn:
        case, outcome = service.submit(conn, case_rules(), parsed, actor=who.username, role=parsed.source,
                                       key_scope=f"user:{who.user_id}", account=who.username)
        if not queries.in_scope(conn, case["case_id"], read_scope(who)):
            case = {"case_id": case["case_id"], "status": case["status"]}
    return jsonify({"outcome": outcome, "case": case}), 201 if outcome == "created" else 200


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
    dispatched to its party (``cases.scope``)."""
    with connection() as conn:
        view = service.case_view(conn, case_id)
        service.check_scope(conn, case_id, read_scope(require_principal()))
        return jsonify(view)


@bp.get("")
@allow(*CASE_READERS)
def list_cases():
    """Filters: district, status, open (true: not rejected/closed/evaluated), kind, class_code, start, end (ISO),
    bbox, unit_grid, supervision_grid, team (a supervision team's own grids); ``limit`` ≤ 1000 (≤ 5000 as
    GeoJSON), ``offset``; ``format`` json (full cases) or geojson (points with what a map popup shows). Only
    the cases the caller may read (``cases.scope``): a supervisor's own grids, a unit's party's cases."""
    district = optional_district_arg()
    class_code = optional_code_arg("class", "class_code")
    team = request.args.get("team") or None
    if team is not None:
        code_arg("team", team, "team")
    scope = read_scope(require_principal())
    codes = {name: request.args.get(name) or None for name in ("unit_grid", "supervision_grid")}
    for name in ("unit_grid", "supervision_grid"):
        if codes[name] is not None:
            code_arg(name, codes[name], name)
    fmt = choice_arg("format", ("json", "geojson"), "json")
    start, end = period_args()  # inclusive dates: end=2026-03-01 holds that whole day
    wanted = queries.CaseFilter(
        district=district, status=choice_arg("status", STATES), kind=choice_arg("kind", ("component", "event")),
        class_code=class_code, start=start, end=end, bbox=bbox_arg(),
        unit_grid=codes["unit_grid"], supervision_grid=codes["supervision_grid"], team=team,
        open_only=choice_arg("open", ("true", "false"), "false") == "true", scope=scope,
        limit=int_arg("limit", 100, 1, MAX_GEOJSON if fmt == "geojson" else MAX_PAGE),
        offset=int_arg("offset", 0, 0, 10_000_000))
    with connection() as conn:
        rows = queries.list_cases(conn, wanted)
    if fmt == "geojson":
        features = [{"type": "Feature", "id": r["case_id"],
                     "geometry": {"type": "Point", "coordinates": [r["lon"], r["lat"]]},
                     "properties": {k: r[k] for k in _MAP_FIELDS}} for r in rows if r["lon"] is not None]
        return jsonify({"type": "FeatureCollection", "features": features, "count": len(features)})
    return jsonify({"cases": rows, "count": len(rows)})


@bp.post("/<int:case_id>/transitions")
@allow("supervisor", "dispatcher", "unit")
def transition(case_id: int):
    """``{"action", "note", "expected_version"}`` (``reclassify`` also takes ``kind`` and ``class_code``) — the
    actor is the signed-in user and the workflow role the one their account roles give for this action (403
    when none does, or when a supervisor acts outside their team's grids or a unit on another party's case);
    409 when the status does not allow the action or the case changed since ``expected_version``."""
    data = json_body()
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
                                  class_code=str(data.get("class_code") or ""))
    return jsonify(case)


classify_bp = Blueprint("classify_v1", __name__, url_prefix="/api/v1")


@classify_bp.post("/classify")
@allow("supervisor", "dispatcher")
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
