"""Grid editing endpoints (#23): drafts, edits, the edit log, undo. Validation and formatting only; the work is
``citygrid.gridding.drafts`` and ``citygrid.gridding.edits``.

Planners and admins write and read drafts; a planner with a district works in that district only. Every route
below ``/api/v1/grids/versions/<V>`` takes ``district`` as a required query parameter (version numbers are per
district). Geometry in and out is GeoJSON in EPSG:4326.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request

from citygrid.accounts.roles import ANY_ROLE
from citygrid.errors import Forbidden, InvalidInput
from citygrid.gridding import drafts, edits
from citygrid.webmap.auth import allow, require_home_district, require_principal
from citygrid.webmap.cases_api import json_body
from citygrid.webmap.context import code_scheme, connection
from citygrid.webmap.params import district_code, int_arg

bp = Blueprint("editing_v1", __name__, url_prefix="/api/v1/grids/versions")
MAX_VERSION = 1_000_000
MAX_REVISION = 1_000_000_000
_VERSION = f"<int(min=1, max={MAX_VERSION}):version>"


def may_read_drafts(district: str) -> bool:
    """Whether the caller may read ``district``'s drafts: an admin, or a planner of that district (or of none)."""
    who = require_principal()
    if "admin" in who.roles:
        return True
    return "planner" in who.roles and who.district_code in (None, district)


def _acting_in(district: str) -> str:
    """The caller's name, when it may write ``district``'s drafts (an admin, or a planner working there);
    ``Forbidden`` otherwise."""
    who = require_home_district(district)
    return who.username


def check_readable(district: str, status: str) -> None:
    """``Forbidden`` when the caller may not read a version of ``status`` in ``district`` (drafts are the
    planners')."""
    if status == "draft" and not may_read_drafts(district):
        who = require_principal()
        raise Forbidden(f"{who.username} may not read drafts of {district}: planners of the district and admins do")


def _revision(body: dict[str, Any], required: bool = True) -> int | None:
    """The body's ``expected_revision``: an integer 0…1,000,000,000."""
    value = body.get("expected_revision")
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput("expected_revision is required: the draft's revision the edit was made against (an "
                           "integer; GET the version for it)", field="expected_revision")
    if not 0 <= value <= MAX_REVISION:
        raise InvalidInput(f"expected_revision must be between 0 and {MAX_REVISION:,}", field="expected_revision")
    return value


@bp.post("")
@allow("planner")
def create_draft():
    """``{"district", "from"}``: a new draft copied from version ``from`` (default the published one) -> 201."""
    body = json_body()
    unknown = sorted(set(body) - {"district", "from", "note"})
    if unknown:
        raise InvalidInput(f"a draft takes district, from and note, not {unknown[0][:40]}", field=unknown[0][:40])
    district = district_code(body.get("district") if isinstance(body.get("district"), str) else None)
    base = body.get("from")
    if base is not None and (isinstance(base, bool) or not isinstance(base, int) or not 1 <= base <= MAX_VERSION):
        raise InvalidInput(f"from must be a version number 1…{MAX_VERSION:,}", field="from")
    note = body.get("note", "")
    if not isinstance(note, str) or len(note) > 500:
        raise InvalidInput("note must be text of at most 500 characters", field="note")
    author = _acting_in(district)
    with connection() as conn:
        made = drafts.create(conn, district, base, author=author, note=note,
                             max_open=current_app.config["CITYGRID_SETTINGS"].max_open_drafts)
    return jsonify(made), 201


@bp.get(f"/{_VERSION}")
@allow(*ANY_ROLE)
def get_version(version: int):
    """``?district=`` — one version: status, source, base_version, revision, counts (drafts: planners, admins)."""
    district = district_code(request.args.get("district"))
    with connection() as conn:
        found = drafts.summary(conn, district, version)
        check_readable(district, found["status"])
    return jsonify(found)


@bp.delete(f"/{_VERSION}")
@allow("planner")
def delete_draft(version: int):
    """``?district=`` — drop a draft (``drafts.drop``): its grids and edit log go, the codes it issued stay
    registered (never reused); 409 for a version that is not a draft or that another version was made from."""
    district = district_code(request.args.get("district"))
    author = _acting_in(district)
    with connection() as conn:
        return jsonify(drafts.drop(conn, district, version, author=author))


@bp.post(f"/{_VERSION}/edits")
@allow("planner")
def post_edit(version: int):
    """``?district=`` with ``{"op", …, "expected_revision"}``: one edit of a draft (see ``gridding.edits``)."""
    district = district_code(request.args.get("district"))
    body = json_body()
    expected = _revision(body)
    op = {k: v for k, v in body.items() if k != "expected_revision"}
    author = _acting_in(district)
    with connection() as conn:
        answer = edits.apply(conn, district, version, op, expected, author, scheme=code_scheme())
    return jsonify(answer)


@bp.get(f"/{_VERSION}/edits")
@allow("planner")
def get_edits(version: int):
    """``?district=&after=&limit=`` — a page of the version's edit log, oldest first: the edits after revision
    ``after`` (default 0), at most ``limit`` (1…``edits.LOG_PAGE_MAX``, default ``edits.LOG_PAGE``);
    ``next_after`` names the next page."""
    district = district_code(request.args.get("district"))
    after = int_arg("after", 0, 0, MAX_REVISION)
    limit = int_arg("limit", edits.LOG_PAGE, 1, edits.LOG_PAGE_MAX)
    _acting_in(district)
    with connection() as conn:
        return jsonify(edits.log(conn, district, version, after, limit))


@bp.post(f"/{_VERSION}/undo")
@allow("planner")
def post_undo(version: int):
    """``?district=`` with ``{"expected_revision"}``: undo the draft's newest edit not yet undone."""
    district = district_code(request.args.get("district"))
    body = json_body()
    unknown = sorted(set(body) - {"expected_revision"})
    if unknown:
        raise InvalidInput(f"an undo takes only expected_revision, not {unknown[0][:40]}", field=unknown[0][:40])
    expected = _revision(body)
    author = _acting_in(district)
    with connection() as conn:
        answer = edits.undo(conn, district, version, expected, author)
    return jsonify(answer)
