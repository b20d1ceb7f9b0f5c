"""Grid versions over time (#23): a draft's impact preview, publishing a draft (then warming its tiles in the
background), and the difference between two versions. The as-of look-up extends ``GET /api/v1/grids/at``
(``grids_api``).

Drafts are read and written by planners and admins only; an account scoped to a district acts only in it.
Published (and retired) versions are readable by every role, so a diff of two of them is too.
"""

from __future__ import annotations

import datetime as dt
import re

from flask import Blueprint, jsonify

from citygrid.accounts.roles import ANY_ROLE
from citygrid.errors import Forbidden, InvalidInput
from citygrid.gridding import history, impact
from citygrid.gridding import queries as grids
from citygrid.gridding import service as gridding
from citygrid.spatial import tilewarm
from citygrid.webmap.auth import allow, home_district_arg, require_principal
from citygrid.webmap.cases_api import json_body
from citygrid.webmap.context import backend, connection

bp = Blueprint("grid_history_v1", __name__, url_prefix="/api/v1/grids/versions")
DRAFT_ROLES = ("planner",)  # and admin, who may do everything
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
                       r"(Z|[+-][0-9]{2}:[0-9]{2})?")
MAX_VERSION = 1_000_000


def _may_read_drafts() -> bool:
    roles = require_principal().roles
    return "admin" in roles or any(r in roles for r in DRAFT_ROLES)


def _version_id(value: int, field: str) -> int:
    if not 1 <= value <= MAX_VERSION:
        raise InvalidInput(f"{field} must be a version number from 1 to {MAX_VERSION}", field=field)
    return value


@bp.get("/<int:version>/impact")
@allow(*DRAFT_ROLES)
def get_impact(version: int):
    """``?district=`` — what publishing draft ``version_id`` now would change (``gridding.impact.of_draft``)."""
    district = home_district_arg()
    with connection() as conn:
        return jsonify(impact.of_draft(conn, district, _version_id(version, "version")))


def _effective_from(data: dict) -> dt.date | dt.datetime:
    """The body's ``effective_from``: a local day (YYYY-MM-DD) or an ISO 8601 date-time (with or without an
    offset; without one, wall-clock time of the deployment's zone)."""
    raw = data.get("effective_from")
    if raw is None:
        raise InvalidInput("effective_from is required: the day (YYYY-MM-DD) or ISO date-time the version takes "
                           "effect", field="effective_from")
    if not isinstance(raw, str) or len(raw) > 40:
        raise InvalidInput("effective_from must be a date (YYYY-MM-DD) or an ISO 8601 date-time",
                           field="effective_from")
    text = raw.strip()
    try:
        if _DAY.fullmatch(text):
            return dt.date.fromisoformat(text)
        if _DATETIME.fullmatch(text):
            return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        pass
    raise InvalidInput(f"effective_from must be a date (YYYY-MM-DD) or an ISO 8601 date-time, not {text[:40]!r}",
                       field="effective_from")


@bp.post("/<int:version>/publish")
@allow(*DRAFT_ROLES)
def post_publish(version: int):
    """``?district=`` with ``{"effective_from": "YYYY-MM-DD" | ISO date-time}`` — publish draft ``version``
    (``gridding.service.publish``: cases already placed keep their grids), then warm its grid tiles z10–z15 in
    the background once the publish committed (``spatial.tilewarm``); the answer does not wait for the warm and
    says what it will make (``tile_warming``)."""
    district = home_district_arg()
    version_id = _version_id(version, "version")
    data = json_body()
    unknown = sorted(set(data) - {"effective_from"})
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r}; the body takes effective_from", field=unknown[0])
    start = _effective_from(data)
    who = require_principal()
    with connection() as conn:
        published = gridding.publish(conn, district, version_id, start, author=who.username)
        plan = tilewarm.plan(conn, district)
    engine = backend().engine
    warming = {**plan.summary(), "started": engine is not None}
    if engine is not None:
        tilewarm.start_in_background(engine, plan, database=backend().database)
    else:
        warming["reason"] = "this server has no database engine of its own to warm tiles with"
    return jsonify({**published, "tile_warming": warming})


@bp.get("/<int:a>/diff/<int:b>")
@allow(*ANY_ROLE)
def get_diff(a: int, b: int):
    """``?district=`` — the unit grids added, removed, changed or reassigned from version a to b, as GeoJSON
    (EPSG:4326) with area deltas (``gridding.history.diff``). A draft on either side: planners and admins
    only."""
    district = home_district_arg()
    a, b = _version_id(a, "a"), _version_id(b, "b")
    with connection() as conn:
        statuses = {grids.version(conn, district, v)["status"] for v in (a, b)}
        if "draft" in statuses and not _may_read_drafts():
            raise Forbidden("drafts are read by planners and admins only")
        return jsonify(history.diff(conn, district, a, b))
