"""Case endpoints: report (idempotent), read, list with filters, workflow transitions."""

from __future__ import annotations

import datetime as dt
import re

from flask import Blueprint, jsonify, request

from citygrid.cases import service
from citygrid.cases import store as case_store
from citygrid.cases.intake import parse_report
from citygrid.cases.workflow import STATES
from citygrid.errors import InvalidInput
from citygrid.spatial.db import deployment_srid
from citygrid.webmap.context import connection
from citygrid.webmap.params import bbox_arg, choice_arg, int_arg

bp = Blueprint("cases_v1", __name__, url_prefix="/api/v1/cases")
MAX_PAGE = 1000
MAX_GEOJSON = 5000
_TEAM = re.compile(r"^[0-9]{6}T[0-9]{2,4}$")
_UNIT = re.compile(r"^[0-9]{15}$")
_SUPERVISION = re.compile(r"^[0-9]{6}S[0-9]{4}$")
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


def _date_arg(name: str) -> str | None:
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        return dt.datetime.fromisoformat(raw.replace("Z", "+00:00")).isoformat()
    except ValueError:
        raise InvalidInput(f"{name} must be an ISO 8601 date or date-time", field=name) from None


@bp.post("")
def report():
    """Create a case from a report; ``Idempotency-Key`` header (or ``idempotency_key``) makes retries safe.
    201 created, 200 when the key was seen before or the report joined an open duplicate."""
    data = json_body()
    if request.headers.get("Idempotency-Key"):
        data = {**data, "idempotency_key": request.headers["Idempotency-Key"]}
    parsed = parse_report(data)
    with connection() as conn:
        case, outcome = service.submit(conn, parsed, actor=str(data.get("actor") or "anonymous")[:100],
                                       role=parsed.source)
    return jsonify({"outcome": outcome, "case": case}), 201 if outcome == "created" else 200


@bp.get("/deadlines")
def deadlines():
    """Overdue dispatched cases and those due within ``within_hours`` (default 4)."""
    district = request.args.get("district") or None
    if district is not None and not (len(district) == 6 and district.isdigit()):
        raise InvalidInput("district must be 6 digits", field="district")
    from citygrid.webmap.params import float_arg

    within = float_arg("within_hours", 4.0, 0.0, 24.0 * 30)
    with connection() as conn:
        lists = case_store.deadline_lists(conn, district, within, int_arg("limit", 200, 1, MAX_PAGE))
    return jsonify({**lists, "within_hours": within})


@bp.get("/<int:case_id>")
def get_case(case_id: int):
    with connection() as conn:
        return jsonify(service.case_view(conn, case_id))


@bp.get("")
def list_cases():
    """Filters: district, status, open (true: not rejected/closed/evaluated), kind, class_code, start, end (ISO),
    bbox, unit_grid, supervision_grid, team (a supervision team's own grids); ``limit`` ≤ 1000 (≤ 5000 as
    GeoJSON), ``offset``; ``format`` json (full cases) or geojson (points with what a map popup shows)."""
    district = request.args.get("district") or None
    if district is not None and not (len(district) == 6 and district.isdigit()):
        raise InvalidInput("district must be 6 digits", field="district")
    class_code = request.args.get("class_code") or None
    if class_code is not None and not (len(class_code) == 4 and class_code.isdigit()):
        raise InvalidInput("class_code must be 4 digits", field="class_code")
    team = request.args.get("team") or None
    if team is not None and not _TEAM.match(team):
        raise InvalidInput("team must be a supervision team code such as 110105T01", field="team")
    codes = {name: request.args.get(name) or None for name in ("unit_grid", "supervision_grid")}
    for name, pattern in (("unit_grid", _UNIT), ("supervision_grid", _SUPERVISION)):
        if codes[name] is not None and not pattern.match(codes[name]):
            raise InvalidInput(f"{name} {codes[name]!r} is not a grid code", field=name)
    fmt = choice_arg("format", ("json", "geojson"), "json")
    with connection() as conn:
        rows = case_store.list_cases(
            conn, district=district, status=choice_arg("status", STATES),
            kind=choice_arg("kind", ("component", "event")),
            class_code=class_code, start=_date_arg("start"), end=_date_arg("end"), bbox=bbox_arg(),
            unit_grid=codes["unit_grid"], supervision_grid=codes["supervision_grid"], srid=deployment_srid(conn),
            limit=int_arg("limit", 100, 1, MAX_GEOJSON if fmt == "geojson" else MAX_PAGE),
            offset=int_arg("offset", 0, 0, 10_000_000), team=team,
            open_only=choice_arg("open", ("true", "false"), "false") == "true")
    if fmt == "geojson":
        features = [{"type": "Feature", "id": r["case_id"],
                     "geometry": {"type": "Point", "coordinates": [r["lon"], r["lat"]]},
                     "properties": {k: r[k] for k in _MAP_FIELDS}} for r in rows if r["lon"] is not None]
        return jsonify({"type": "FeatureCollection", "features": features, "count": len(features)})
    return jsonify({"cases": rows, "count": len(rows)})


@bp.post("/<int:case_id>/transitions")
def transition(case_id: int):
    """``{"action", "actor", "role", "note", "expected_version"}`` (``reclassify`` also takes ``kind`` and
    ``class_code``) — 409 when the status does not allow the
    action or the case changed since ``expected_version``."""
    data = json_body()
    version = data.get("expected_version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise InvalidInput("expected_version must be an integer", field="expected_version")
    with connection() as conn:
        case = service.transition(conn, case_id, str(data.get("action") or ""), actor=str(data.get("actor") or ""),
                                  role=str(data.get("role") or "")[:50], note=str(data.get("note") or ""),
                                  expected_version=version, kind=data.get("kind") or None,
                                  class_code=str(data.get("class_code") or ""))
    return jsonify(case)


classify_bp = Blueprint("classify_v1", __name__, url_prefix="/api/v1")


@classify_bp.post("/classify")
def classify():
    """``{"text": "…", "kind": "event"|"component"?, "scheme"?}`` → the top three classes with probabilities."""
    from dataclasses import asdict

    from flask import current_app

    from citygrid.cases.classify import classifier_for
    from citygrid.components_survey import store as survey_store
    from citygrid.config import Settings

    data = json_body()
    kind = data.get("kind")
    if kind not in (None, "event", "component"):
        raise InvalidInput("kind must be event or component", field="kind")
    scheme = str(data.get("scheme") or "cjt214")
    settings = current_app.config.get("CITYGRID_SETTINGS") or Settings.from_env()
    with connection() as conn:
        classes = survey_store.taxonomy(conn, scheme=scheme, kind=kind)
    model = None if kind else settings.data_dir / "models" / f"{scheme}.joblib"
    classifier = classifier_for(classes, model)
    return jsonify({"trained": classifier.trained,
                    "top": [asdict(p) for p in classifier.top(str(data.get("text") or ""))]})
