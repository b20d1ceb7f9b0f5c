"""Open311 GeoReport v2 (https://wiki.open311.org/GeoReport_v2) over the case workflow.

Services are the classes of the deployment's active class scheme that it offers through Open311 (``citygrid
taxonomy import --activate``; the packaged scheme by default): ``service_code`` is the class's own code in an
imported scheme (its 311 service list), else ``E0102`` for event 0102, ``C0101`` for component 0101; a class
marked ``open311: false`` is not offered. Coordinates are WGS84 lat/long as the spec says. GET serves only what
the city publishes (``cases.publication``, ``data/open311.yaml``): by default the requests that came in through
Open311, with the spec's fields only. POST answers the new request's grid codes (``unit_grid_code``,
``supervision_grid_code``) as extension fields to the requester.
"""

from __future__ import annotations

import hashlib

from flask import Blueprint, current_app, g, jsonify, request

from citygrid import codes
from citygrid.cases import queries, service
from citygrid.cases.intake import parse_report
from citygrid.cases.publication import Publication, request_view
from citygrid.cases.workflow import CLOSED_STATES, OPEN_STATES
from citygrid.components_survey import queries as survey
from citygrid.errors import InvalidInput, NotFound
from citygrid.webmap import ratelimit
from citygrid.webmap.auth import public
from citygrid.webmap.context import case_rules, connection, storage_srid, zone
from citygrid.webmap.headers import trusted_proxy
from citygrid.webmap.params import bbox_arg, choice_arg, int_arg, period_args

bp = Blueprint("open311", __name__, url_prefix="/open311/v2")


def _find_service(conn, code: str | None) -> dict | None:
    """The active scheme's service with ``code`` (None when there is none); ``InvalidInput`` for a code that
    cannot be one (``citygrid.codes``): a scheme's own codes are ``service_code``s, the packaged scheme's look
    like E0102 (event) or C0101 (component)."""
    scheme = service.active_scheme(conn)
    kind = "service_code" if survey.has_own_service_codes(conn, scheme) else "packaged_service_code"
    reason = codes.problem(kind, code)
    if reason is not None:
        raise InvalidInput(f"{reason}; services.json lists the codes this city offers", field="service_code")
    found = survey.open311_services(conn, scheme, code)
    return found[0] if found else None


def _parse_service(conn, code: str | None) -> tuple[str, str]:
    """(kind, class code) of an offered service; ``InvalidInput`` naming the field when there is none."""
    found = _find_service(conn, code)
    if found is None:
        raise InvalidInput(f"no service {code}: services.json lists the services this city offers",
                           field="service_code")
    return found["kind"], found["code"]


def _service(row: dict) -> dict:
    group = row["major_name"] or None
    return {"service_code": row["service_code"], "service_name": row["name"],
            "description": row["description"] or " / ".join(p for p in (row["major_name"], row["name"]) if p),
            "metadata": False, "type": "realtime", "keywords": row["keywords"] or row["major_name"], "group": group}


@bp.get("/services.json")
@public
def services():
    """The services of the deployment's active class scheme offered through Open311."""
    with connection() as conn:
        return jsonify([_service(r) for r in survey.open311_services(conn, service.active_scheme(conn))])


@bp.get("/services/<code>.json")
@public
def service_definition(code: str):
    with connection() as conn:
        found = _find_service(conn, code)
    if found is None:
        raise NotFound(f"no service {code}")
    return jsonify({"service_code": code, "attributes": []})


def _rule() -> Publication:
    """The deployment's publication rule, loaded once by the app factory."""
    return current_app.extensions["citygrid_open311"]


def _key_scope(client: str, api_key: str | None) -> str:
    """Whose idempotency keys these are: the API key's holder (by a digest of the whole key), else the
    client's address."""
    if api_key:
        return "open311:key:" + hashlib.sha256(api_key.encode()).hexdigest()[:32]
    return f"open311:{client}"


@bp.post("/requests.json")
@public
def create_request():
    """Form-encoded (as the spec) or JSON: service_code, lat, long, description, address_string, api_key, …
    Rate-limited per client (``webmap.ratelimit``): 429 with ``Retry-After`` over the limit."""
    form = request.form if request.form else (request.get_json(silent=True) or {})
    if not isinstance(form, dict) and not hasattr(form, "get"):
        raise InvalidInput("send the request form-encoded or as a JSON object", field="body")
    api_key = str(form.get("api_key") or request.args.get("api_key") or "") or None
    client = ratelimit.check_intake(request.remote_addr, request.headers.get("X-Forwarded-For"), api_key,
                                    buckets=current_app.extensions["citygrid_intake_buckets"],
                                    keys=current_app.extensions["citygrid_open311_keys"], trusted_proxy=trusted_proxy())
    g.citygrid_actor = f"open311:{client}"
    with connection() as conn:
        kind, class_code = _parse_service(conn, form.get("service_code"))
    data = {"lon": form.get("long"), "lat": form.get("lat"), "kind": kind, "class_code": class_code,
            "description": form.get("description") or "", "address": form.get("address_string"),
            "source": "open311", "crs": form.get("crs") or "wgs84",
            "idempotency_key": request.headers.get("Idempotency-Key") or form.get("idempotency_key")}
    parsed = parse_report(data, default_source="open311", zone=zone())
    with connection() as conn:
        case, outcome = service.submit(conn, case_rules(), parsed, actor=g.citygrid_actor, role="citizen",
                                       key_scope=_key_scope(client, api_key), joins=_rule().publishes)
    return jsonify([{"service_request_id": str(case["case_id"]), "service_notice": outcome,
                     "unit_grid_code": case["unit_grid_code"],
                     "supervision_grid_code": case["supervision_code"]}]), 201 if outcome == "created" else 200


@bp.get("/requests/<int:request_id>.json")
@public
def get_request(request_id: int):
    """A published request (``cases.publication``); 404 for one that does not exist or is not published."""
    rule = _rule()
    with connection() as conn:
        case = queries.get_case(conn, request_id)
    if case is None or not rule.publishes(case):
        raise NotFound(f"no service request {request_id}")
    return jsonify([request_view(case, rule)])


@bp.get("/requests.json")
@public
def list_requests():
    """Published requests only (``data/open311.yaml``; by default those that came in through Open311), newest
    first. Filters: service_code, status (open|closed), start_date, end_date, bbox (EPSG:4326), limit."""
    kind = class_code = None
    status = choice_arg("status", ("open", "closed"))
    start, end = period_args("start_date", "end_date")  # a date end_date holds that whole day
    rule = _rule()
    with connection() as conn:
        if request.args.get("service_code"):
            kind, class_code = _parse_service(conn, request.args["service_code"])
        rows = queries.list_cases(conn, queries.CaseFilter(
            kind=kind, class_code=class_code, start=start, end=end, bbox=bbox_arg(),
            limit=int_arg("limit", 100, 1, 1000),
            statuses=None if status is None else (CLOSED_STATES if status == "closed" else OPEN_STATES),
            published=(rule.sources, rule.classes)), srid=storage_srid())
    return jsonify([request_view(r, rule) for r in rows])
