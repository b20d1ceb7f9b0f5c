"""Responsibility endpoints (#22): ownership imports and a grid's owners per role, frontage units, people,
rotation plans. Validation and formatting only; the work is the ``citygrid.responsibility`` functions'."""

from __future__ import annotations

import re

from flask import Blueprint, jsonify

from citygrid.errors import Forbidden, InvalidInput
from citygrid.responsibility import queries as responsibility
from citygrid.webmap.auth import allow, require_principal
from citygrid.webmap.context import connection
from citygrid.webmap.params import choice_arg

bp = Blueprint("responsibility_v1", __name__, url_prefix="/api/v1")

# --- ownership ---


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
