"""Open311 GeoReport v2 (https://wiki.open311.org/GeoReport_v2) over the case workflow.

Services are the taxonomy's classes (``service_code`` = ``E0102`` for event 0102, ``C0101`` for component
0101). Coordinates are WGS84 lat/long as the spec says. Extension fields on requests: ``unit_grid_code``,
``supervision_grid_code``, ``owner``.
"""

from __future__ import annotations

import re

from flask import Blueprint, current_app, g, jsonify, request

from citygrid.cases import service
from citygrid.cases import store as case_store
from citygrid.cases.intake import parse_report
from citygrid.cases.workflow import CLOSED_STATES
from citygrid.components_survey import store as survey_store
from citygrid.errors import InvalidInput, NotFound
from citygrid.spatial.db import deployment_srid
from citygrid.webmap import ratelimit
from citygrid.webmap.auth import public
from citygrid.webmap.context import connection
from citygrid.webmap.params import bbox_arg, int_arg

bp = Blueprint("open311", __name__, url_prefix="/open311/v2")
_SERVICE = re.compile(r"^([CE])([0-9]{4})$")


def _service_code(kind: str, code: str) -> str:
    return ("C" if kind == "component" else "E") + code


def _parse_service(code: str | None) -> tuple[str, str]:
    match = _SERVICE.match(code or "")
    if not match:
        raise InvalidInput("service_code must look like E0102 (event) or C0101 (component)", field="service_code")
    return ("component" if match.group(1) == "C" else "event"), match.group(2)


def _service(row: dict) -> dict:
    return {"service_code": _service_code(row["kind"], row["code"]), "service_name": row["name"],
            "description": f"{row['major_name']} / {row['name']}", "metadata": False, "type": "realtime",
            "keywords": row["major_name"], "group": row["major_name"]}


@bp.get("/services.json")
@public
def services():
    with connection() as conn:
        return jsonify([_service(r) for r in survey_store.taxonomy(conn)])


@bp.get("/services/<code>.json")
@public
def service_definition(code: str):
    kind, class_code = _parse_service(code)
    with connection() as conn:
        rows = [r for r in survey_store.taxonomy(conn, kind=kind) if r["code"] == class_code]
    if not rows:
        raise NotFound(f"no service {code}")
    return jsonify({"service_code": code, "attributes": []})


def _request_view(case: dict) -> dict:
    owner = (case.get("owners") or {}).get("responsibility") or (case.get("owners") or {}).get("management")
    return {
        "service_request_id": str(case["case_id"]),
        "status": "closed" if case["status"] in CLOSED_STATES else "open",
        "status_notes": case["status"],
        "service_name": case.get("class_name"), "service_code": _service_code(case["kind"], case["class_code"]),
        "description": case["description"], "requested_datetime": case["reported_at"].isoformat(),
        "updated_datetime": case["reported_at"].isoformat(), "address": (case.get("attrs") or {}).get("address"),
        "lat": case["lat"], "long": case["lon"],
        "unit_grid_code": case["unit_grid_code"], "supervision_grid_code": case["supervision_code"],
        "owner": owner["name"] if owner else None,
    }


@bp.post("/requests.json")
@public
def create_request():
    """Form-encoded (as the spec) or JSON: service_code, lat, long, description, address_string, api_key, …
    Rate-limited per client (``webmap.ratelimit``): 429 with ``Retry-After`` over the limit."""
    form = request.form if request.form else (request.get_json(silent=True) or {})
    if not isinstance(form, dict) and not hasattr(form, "get"):
        raise InvalidInput("send the request form-encoded or as a JSON object", field="body")
    client = ratelimit.check_intake(request.remote_addr, request.headers.get("X-Forwarded-For"),
                                    str(form.get("api_key") or request.args.get("api_key") or "") or None,
                                    buckets=current_app.extensions["citygrid_intake_buckets"])
    g.citygrid_actor = f"open311:{client}"
    kind, class_code = _parse_service(form.get("service_code"))
    data = {"lon": form.get("long"), "lat": form.get("lat"), "kind": kind, "class_code": class_code,
            "description": form.get("description") or "", "address": form.get("address_string"),
            "source": "open311", "crs": form.get("crs") or "wgs84",
            "idempotency_key": request.headers.get("Idempotency-Key") or form.get("idempotency_key")}
    parsed = parse_report(data, default_source="open311")
    with connection() as conn:
        case, outcome = service.submit(conn, parsed, actor=g.citygrid_actor, role="citizen")
    return jsonify([{"service_request_id": str(case["case_id"]), "service_notice": outcome,
                     "unit_grid_code": case["unit_grid_code"],
                     "supervision_grid_code": case["supervision_code"]}]), 201 if outcome == "created" else 200


@bp.get("/requests/<int:request_id>.json")
@public
def get_request(request_id: int):
    with connection() as conn:
        return jsonify([_request_view(service.case_view(conn, request_id))])


@bp.get("/requests.json")
@public
def list_requests():
    """Filters: service_code, status (open|closed), start_date, end_date, bbox, unit_grid, supervision_grid."""
    kind = class_code = None
    if request.args.get("service_code"):
        kind, class_code = _parse_service(request.args["service_code"])
    status = request.args.get("status") or None
    if status not in (None, "open", "closed"):
        raise InvalidInput("status must be open or closed", field="status")
    start, end = request.args.get("start_date"), request.args.get("end_date")
    for name, value in (("start_date", start), ("end_date", end)):
        if value and not re.match(r"^\d{4}-\d{2}-\d{2}", value):
            raise InvalidInput(f"{name} must be an ISO 8601 date", field=name)
    with connection() as conn:
        rows = case_store.list_cases(
            conn, district=None, status=None, kind=kind, class_code=class_code, start=start or None,
            end=end or None, bbox=bbox_arg(), unit_grid=request.args.get("unit_grid") or None,
            supervision_grid=request.args.get("supervision_grid") or None, srid=deployment_srid(conn),
            limit=int_arg("limit", 100, 1, 1000), offset=0)
        views = [_request_view({**r, "owners": case_store.owners_at(conn, r["district_code"], r["unit_grid_code"],
                                                                    r["reported_at"])}) for r in rows]
    if status:
        views = [v for v in views if v["status"] == status]
    return jsonify(views)
