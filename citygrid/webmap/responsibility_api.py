"""Responsibility endpoints (#22): ownership imports and a grid's owners per role, frontage units, people,
rotation plans. Validation and formatting only; the work is the ``citygrid.responsibility`` functions'."""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from pathlib import Path

from flask import Blueprint, jsonify, request

from citygrid.accounts.roles import ANY_ROLE
from citygrid.errors import Forbidden, InvalidInput
from citygrid.loaders import gdalsafe, safeyaml
from citygrid.loaders.archive import check_archive
from citygrid.loaders.plaintext import control_character
from citygrid.responsibility import frontage, people
from citygrid.responsibility import queries as responsibility
from citygrid.responsibility.ownership import ROLES
from citygrid.responsibility.ownership_import import ImportOptions, import_ownership, load_mapping
from citygrid.spatial.sources import source_text
from citygrid.webmap.auth import allow, require_home_district, require_principal
from citygrid.webmap.context import code_scheme, connection
from citygrid.webmap.heavy import heavy
from citygrid.webmap.params import choice_arg, code_arg, district_code, int_arg

bp = Blueprint("responsibility_v1", __name__, url_prefix="/api/v1")

# --- ownership ---
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
OWNERSHIP_SUFFIXES = (".csv", ".txt", ".zip", ".gpkg", ".geojson", ".json", ".fgb", ".gml", ".kml")
OWNERSHIP_MAX_PROBLEMS = 1000  # in the answer; the CLI's --report has them all


def _form_day(name: str) -> dt.date | None:
    """A form or query field holding a date (YYYY-MM-DD), or None when empty; ``InvalidInput`` otherwise."""
    raw = (request.form.get(name) if request.method == "POST" else request.args.get(name)) or ""
    if not raw.strip():
        return None
    try:
        if not _DAY.fullmatch(raw.strip()):
            raise ValueError(raw)
        return dt.date.fromisoformat(raw.strip())
    except ValueError:
        raise InvalidInput(f"{name} must be a date, YYYY-MM-DD", field=name) from None


def _ownership_file(work_dir: Path) -> Path:
    """The one uploaded ``file`` part, kept under its base name in ``work_dir`` after its name and (for a zip
    or a GDAL format) its content are checked."""
    files = request.files.getlist("file")
    if len(files) != 1:
        raise InvalidInput("upload one file in the 'file' field (a CSV, a zip or one vector file)", field="file")
    name = Path(files[0].filename or "").name
    if not name or len(name) > 200 or _control(name) or Path(name).suffix.lower() not in OWNERSHIP_SUFFIXES:
        raise InvalidInput(f"file name {name[:200]!r} is not an accepted list ({', '.join(OWNERSHIP_SUFFIXES)})",
                           field="file")
    path = work_dir / name
    files[0].save(path)
    if path.suffix.lower() == ".zip":
        check_archive(path)
    elif path.suffix.lower() in gdalsafe.DRIVERS:
        gdalsafe.check_content(path)
    return path


def _control(name: str) -> bool:
    return name.startswith(".") or any(c in name for c in "\\/") or control_character(name, single_line=True) \
        is not None


@bp.post("/ownership/imports")
@allow("planner", "gis")
@heavy
def ownership_import():
    """Multipart form: ``file`` (a CSV of grid code → party, or a vector file or zip of responsibility areas),
    ``district``, ``role`` (responsibility|management|enforcement|supervision), optional ``valid_from``
    (YYYY-MM-DD, a local day; default today), ``mapping`` (YAML text or file), ``source``, ``licence``,
    ``max_bad_ratio`` (default 0.05), ``encoding``. Planners and GIS staff (and admins) of the district.
    Answers 200 with the counts and the problems (``ownership_import.ImportResult``); 400 when the file is
    refused (its problems in ``details``)."""
    district = district_code(request.form.get("district"))
    require_home_district(district)
    role = request.form.get("role") or ""
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}", field="role")
    for name in request.files:
        if name not in ("file", "mapping"):
            raise InvalidInput(f"{name[:40]!r} must be a form field, not a file", field=name[:40])
    mapping_parts = request.files.getlist("mapping")
    mapping_text = mapping_parts[0].stream.read(safeyaml.MAX_BYTES + 1) if mapping_parts \
        else request.form.get("mapping")
    raw_ratio = (request.form.get("max_bad_ratio") or "0.05").strip()
    try:
        ratio = float(raw_ratio)
    except ValueError:
        raise InvalidInput("max_bad_ratio must be a number between 0 and 1", field="max_bad_ratio") from None
    encoding = (request.form.get("encoding") or "").strip() or None
    with tempfile.TemporaryDirectory(prefix="citygrid-ownership-") as tmp:
        path = _ownership_file(Path(tmp))
        options = ImportOptions(
            district=district, role=role, valid_from=_form_day("valid_from"),
            mapping=load_mapping(mapping_text, "mapping"),
            source=source_text(request.form.get("source"), "source", required=False) or
            source_text(path.name, "source (the file name)"),
            licence=source_text(request.form.get("licence"), "licence", required=False),
            max_bad_ratio=ratio, encoding=encoding).validate()
        with connection() as conn:
            result = import_ownership(conn, path, options)
            if result.state == "rejected":
                raise InvalidInput(result.problems[0]["reason"], details=result.problems[:OWNERSHIP_MAX_PROBLEMS])
    return jsonify(result.as_dict(OWNERSHIP_MAX_PROBLEMS))


@bp.get("/grids/<code>/owners")
@allow(*ANY_ROLE)
def grid_owners(code: str):
    """``?date=YYYY-MM-DD`` (a local day of the deployment; default today): per role the party answering for
    unit grid ``code`` that day (kind, code, name, contact), whether it is ``derived``, its validity range, and
    ``people`` (the named people of that role). Accounts scoped to a district read their own district's grids."""
    code_arg("unit_grid", code, "code")
    day = _form_day("date")
    district = code_scheme().district_of("unit_grid", code)
    require_home_district(district)
    who = require_principal()
    with connection() as conn:
        answer = responsibility.grid_owners(conn, code, day,
                                            phones=people.phones_visible(who.roles, who.district_code, district))
    return jsonify(answer)


# --- people ---
@bp.get("/people")
@allow(*ANY_ROLE)
def list_people():
    """``?district=&role=&limit=&offset=`` — the district's named people (实名制) with the slots they hold
    now. Phones only for dispatchers, planners and admins of the district (``people.PHONE_READERS``): null
    for everyone else. Accounts scoped to a district read their own district's people."""
    district = district_code(request.args.get("district"))
    require_home_district(district)
    role = choice_arg("role", people.PERSON_ROLES)
    who = require_principal()
    wanted = responsibility.PeopleFilter(district=district, role=role,
                                         phones=people.phones_visible(who.roles, who.district_code, district),
                                         limit=int_arg("limit", 1000, 1, 1000), offset=int_arg("offset", 0, 0, 10**7))
    with connection() as conn:
        return jsonify(responsibility.list_people(conn, wanted))


# --- frontage ---
FRONTAGE_WRITERS = ("planner", "gis", "admin")
FRONTAGE_MAX_PAGE = 2000


def _readable_unit(conn, unit_id: int) -> dict:
    """Unit ``unit_id`` as a Feature when the caller may read it: an account scoped to a district reads that
    district's units, a unit-only account its own party's; ``Forbidden`` with the reason otherwise."""
    who = require_principal()
    feature = responsibility.frontage_unit(conn, unit_id, phones=_phones_of())
    props = feature["properties"]
    if who.district_code is not None and props["district_code"] != who.district_code:
        raise Forbidden(f"frontage unit {unit_id} is in district {props['district_code']}; {who.username} works in "
                        f"district {who.district_code}")
    if who.unit_only and props["party_code"] != who.party_code:
        raise Forbidden(f"frontage unit {unit_id} is not your party's ({who.party_code})")
    return feature


def _phones_of():
    """Whether the caller reads a district's contact phones: the people's rule (``people.phones_visible``)."""
    who = require_principal()
    return lambda district: people.phones_visible(who.roles, who.district_code, district)


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
    require_home_district(district)
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
        require_home_district(district)
    wanted = responsibility.FrontageFilter(
        districts=(district,) if district else None, bbox=bbox_arg(),
        current_only=choice_arg("all", ("true", "false"), "false") == "false",
        party=who.party_code if who.unit_only else None, phones=_phones_of(),
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
        return jsonify(responsibility.frontage_unit(conn, unit_id, phones=_phones_of())), 201


@bp.get("/frontage-units/<int:unit_id>")
@allow(*ANY_ROLE)
def get_frontage_unit(unit_id: int):
    """One frontage unit as a GeoJSON Feature (EPSG:4326); its ``contact_phone`` only for the callers who read
    the district's phones (dispatchers, planners, admins: ``people.PHONE_READERS``)."""
    with connection() as conn:
        return jsonify(_readable_unit(conn, unit_id))


@bp.patch("/frontage-units/<int:unit_id>")
@allow(*FRONTAGE_WRITERS)
def patch_frontage_unit(unit_id: int):
    """Change a unit's fields or frontage (GeoJSON in EPSG:4326); its credit code or registry id stay."""
    from citygrid.webmap.cases_api import json_body

    data = json_body()
    with connection() as conn:
        require_home_district(_readable_unit(conn, unit_id)["properties"]["district_code"])
        frontage.change_unit(conn, unit_id, data)
        return jsonify(responsibility.frontage_unit(conn, unit_id, phones=_phones_of()))


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


# --- parties ---
PARTY_READERS = ("dispatcher", "acceptor")
PARTY_KINDS = ("department", "unit", "street_office", "community", "team", "person", "frontage_unit",
               "property_company")


@bp.get("/parties")
@allow(*PARTY_READERS)
def list_parties():
    """``?district=&q=&kind=&limit=`` — the district's active parties (code, name, kind), for the dispatcher who
    sends a case to another party than the rule's (``party_code``); ``q`` matches part of the name or code
    (literally, any case; ≤ 100 characters, no control characters); ``limit`` ≤ 200 (default 50). Dispatchers
    and acceptors of the district, and admins."""
    district = district_code(request.args.get("district"))
    require_home_district(district)
    q = request.args.get("q") or None
    if q is not None and (what := control_character(q, single_line=True)) is not None:
        raise InvalidInput(f"q contains a control character ({what})", field="q")
    kind = choice_arg("kind", PARTY_KINDS)
    with connection() as conn:
        return jsonify(responsibility.list_parties(conn, district, q=q, kind=kind,
                                                   limit=int_arg("limit", 50, 1, 200)))
