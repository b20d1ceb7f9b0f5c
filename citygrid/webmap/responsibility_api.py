"""Responsibility endpoints (#22): ownership imports and a grid's owners per role, frontage units, people,
rotation plans. Validation and formatting only; the work is the ``citygrid.responsibility`` functions'."""

from __future__ import annotations

import re

from flask import Blueprint, jsonify, request

from citygrid.accounts.roles import ANY_ROLE
from citygrid.errors import Forbidden, InvalidInput
from citygrid.responsibility import frontage
from citygrid.responsibility import queries as responsibility
from citygrid.webmap.auth import allow, require_principal
from citygrid.webmap.context import connection
from citygrid.webmap.params import choice_arg, district_code, int_arg

bp = Blueprint("responsibility_v1", __name__, url_prefix="/api/v1")

# --- ownership ---


# --- frontage ---
FRONTAGE_WRITERS = ("planner", "gis", "admin")
FRONTAGE_MAX_PAGE = 2000


def _frontage_district(district: str) -> None:
    """``Forbidden`` when the caller's account is scoped to another district than ``district``."""
    who = require_principal()
    if who.district_code is not None and who.district_code != district:
        raise Forbidden(f"{who.username} works in district {who.district_code}, not {district}")


def _readable_unit(conn, unit_id: int) -> dict:
    """Unit ``unit_id`` as a Feature when the caller may read it: an account scoped to a district reads that
    district's units, a unit-only account its own party's; ``Forbidden`` with the reason otherwise."""
    who = require_principal()
    feature = responsibility.frontage_unit(conn, unit_id)
    props = feature["properties"]
    if who.district_code is not None and props["district_code"] != who.district_code:
        raise Forbidden(f"frontage unit {unit_id} is in district {props['district_code']}; {who.username} works in "
                        f"district {who.district_code}")
    if who.unit_only and props["party_code"] != who.party_code:
        raise Forbidden(f"frontage unit {unit_id} is not your party's ({who.party_code})")
    return feature


def _frontage_body() -> tuple[str, dict]:
    """(district, the unit's JSON) of a POST: ``district`` in the body, else the caller's own district."""
    from citygrid.webmap.cases_api import json_body

    data = dict(json_body())
    raw = data.pop("district", None) or require_principal().district_code
    if raw is None:
        raise InvalidInput("name the unit's district (\"district\": \"410104\")", field="district")
    if not isinstance(raw, str):
        raise InvalidInput("district must be a district code", field="district")
    district = district_code(raw)
    _frontage_district(district)
    return district, data


@bp.get("/frontage-units")
@allow(*ANY_ROLE)
def list_frontage_units():
    """``?district=&bbox=&all=true&limit=&offset=`` — frontage units (门前三包) as GeoJSON (EPSG:4326), valid today
    unless ``all``; within the caller's district (a unit-only account: its own party's unit)."""
    from citygrid.webmap.params import bbox_arg

    who = require_principal()
    district = district_code(request.args["district"]) if "district" in request.args else who.district_code
    if district is not None:
        _frontage_district(district)
    wanted = responsibility.FrontageFilter(
        districts=(district,) if district else None, bbox=bbox_arg(),
        current_only=choice_arg("all", ("true", "false"), "false") == "false",
        party=who.party_code if who.unit_only else None,
        limit=int_arg("limit", 500, 1, FRONTAGE_MAX_PAGE), offset=int_arg("offset", 0, 0, 10**7))
    with connection() as conn:
        return jsonify(responsibility.frontage_units(conn, wanted))


@bp.post("/frontage-units")
@allow(*FRONTAGE_WRITERS)
def create_frontage_unit():
    """Add a frontage unit: a GeoJSON Feature (or flat fields) with its frontage (Multi)Polygon in EPSG:4326 and
    ``district`` (default: the caller's). 201 with the stored Feature; 409 when the district has the credit
    code (or registry id) already."""
    district, data = _frontage_body()
    with connection() as conn:
        unit_id = frontage.create_unit(conn, district, data)
        return jsonify(responsibility.frontage_unit(conn, unit_id)), 201


@bp.get("/frontage-units/<int:unit_id>")
@allow(*ANY_ROLE)
def get_frontage_unit(unit_id: int):
    """One frontage unit as a GeoJSON Feature (EPSG:4326)."""
    with connection() as conn:
        return jsonify(_readable_unit(conn, unit_id))


@bp.patch("/frontage-units/<int:unit_id>")
@allow(*FRONTAGE_WRITERS)
def patch_frontage_unit(unit_id: int):
    """Change a unit's fields or frontage (GeoJSON in EPSG:4326); its credit code or registry id stay."""
    from citygrid.webmap.cases_api import json_body

    data = json_body()
    with connection() as conn:
        _frontage_district(_readable_unit(conn, unit_id)["properties"]["district_code"])
        frontage.change_unit(conn, unit_id, data)
        return jsonify(responsibility.frontage_unit(conn, unit_id))


# --- rotation ---
_PLAN_ID = re.compile(r"^[1-9][0-9]{0,17}$")


def _plan_id(raw: str) -> int:
    """A plan id from the URL: a positive whole number (at most 18 digits)."""
    if not _PLAN_ID.fullmatch(raw):
        raise InvalidInput("the rotation plan is named by its id, a positive whole number", field="plan")
    return int(raw)


@bp.get("/rotation")
@allow(*responsibility.ROTATION_READERS)
def list_rotation_plans():
    """Stored rotation plans (headers, newest first) of ``?district=`` or of every district the caller reads."""
    from citygrid.webmap.params import optional_district_arg

    who = require_principal()
    readable = responsibility.rotation_readable_districts(who.roles, who.district_code)
    wanted = optional_district_arg()
    if wanted is not None and readable is not None and wanted not in readable:
        raise Forbidden(f"you read the rotation plans of district {readable[0]} only")
    with connection() as conn:
        plans = responsibility.rotation_plan_list(conn, (wanted,) if wanted else readable)
    return jsonify({"plans": plans})


@bp.get("/rotation/<plan>")
@allow(*responsibility.ROTATION_READERS)
def get_rotation_plan(plan: str):
    """One rotation plan: periods and who holds which grid; ``?team=`` one team's rows; ``?format=csv`` a
    spreadsheet-safe CSV. Planners and dispatchers read their own district's plans (admins every plan)."""
    from flask import Response

    from citygrid.webmap.params import optional_code_arg

    plan_id = _plan_id(plan)
    fmt = choice_arg("format", ("json", "csv"), "json")
    team = optional_code_arg("team", "team")
    who = require_principal()
    wanted = responsibility.RotationFilter(plan_id, responsibility.rotation_readable_districts(
        who.roles, who.district_code), team)
    with connection() as conn:
        found = responsibility.rotation_plan(conn, wanted)
    if fmt == "csv":
        return Response(responsibility.rotation_plan_csv(found), mimetype="text/csv", headers={
            "Content-Disposition": f"attachment; filename=rotation-{found['district']}-{plan_id}.csv"})
    return jsonify(found)
