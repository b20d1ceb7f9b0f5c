"""The OpenAPI 3.0 document of the HTTP API (``GET /api/v1/openapi.json``).

Written by hand from the endpoints' validation rules (one place; the tests fuzz every operation in it with
schemathesis and require that no request, however malformed, gets a 5xx other than 503 for a database that
is down). Coordinates are WGS84 lon/lat unless a parameter says otherwise.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify

from citygrid import __version__
from citygrid.cases.workflow import STATES
from citygrid.codes import COMMON_KINDS, KINDS, SCHEMES, any_scheme, any_scheme_pattern
from citygrid.desk.queues import QUEUES as DESK_QUEUES
from citygrid.webmap.auth import access_of, public

bp = Blueprint("openapi", __name__)


def code_schema(kind: str) -> dict[str, Any]:
    """The schema of a ``kind`` code of any code scheme, from the one table of formats (``citygrid.codes``);
    the deployment accepts those of its own scheme only (400 otherwise)."""
    fmt = any_scheme(kind)
    return {"type": "string", "pattern": any_scheme_pattern(kind), "maxLength": fmt.max_length,
            "description": f"a {fmt.label}: {fmt.text}"}


# Every format of the table, published as a named schema; the parameters below use them.
CODES = {kind: code_schema(kind) for kind in (*KINDS, *COMMON_KINDS)}
_SCHEMES = "code schemes: " + "; ".join(f"{s.name}: {s.title}" for s in SCHEMES.values())
DISTRICT = {**CODES["district"], "example": "110105", "description": _SCHEMES}
UNIT_GRID = CODES["unit_grid"]
GRID = {"type": "string", "pattern": "^(?:" + any_scheme_pattern("unit_grid")[1:-1] + "|"
        + any_scheme_pattern("supervision_grid")[1:-1] + ")$",
        "maxLength": max(any_scheme(k).max_length for k in ("unit_grid", "supervision_grid")),
        "description": "a unit-grid code, or a supervision-grid code (the district code + S + 4 digits)"}
TEAM = CODES["team"]
CLASS = CODES["class"]
OBJ_ID = CODES["obj_id"]
SERVICE = CODES["service_code"]  # a scheme's own; the packaged scheme's (E0102, C0101) are of this form too
STATUSES = list(STATES)
DATE = {"type": "string", "format": "date"}
ERROR = {"type": "object", "required": ["error", "message"],
         "properties": {"error": {"type": "string"}, "message": {"type": "string"},
                        "details": {"type": "array", "items": {"type": "object"}}}}


def _q(name: str, schema: dict[str, Any], required: bool = False, description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema,
            **({"description": description} if description else {})}


def _p(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _op(summary: str, params: list[dict[str, Any]] | None = None, body: dict[str, Any] | None = None,
        ok: tuple[str, ...] = ("200",), form: bool | str = False) -> dict[str, Any]:
    responses: dict[str, Any] = {code: {"description": "success"} for code in ok}
    for code, what in (("400", "invalid input (field and reason in details)"),
                       ("401", "not signed in, or the token is unknown, revoked or expired"),
                       ("403", "signed in, but the role does not allow this (or a session request without its "
                               "CSRF token)"),
                       ("404", "not found"), ("409", "conflict"),
                       ("503", "database unavailable, or too many heavy requests at once (Retry-After)")):
        responses[code] = {"description": what, "content": {"application/json": {"schema": ERROR}}}
    operation: dict[str, Any] = {"summary": summary, "parameters": params or [], "responses": responses}
    if body is not None:
        media = form if isinstance(form, str) else "application/x-www-form-urlencoded" if form else "application/json"
        operation["requestBody"] = {"required": True, "content": {media: {"schema": body}}}
    return operation


CASE_FILTERS = [_q("district", DISTRICT), _q("status", {"type": "string", "enum": STATUSES}),
                _q("kind", {"type": "string", "enum": ["event", "component"]}), _q("class_code", CLASS),
                _q("start", DATE), _q("end", DATE)]
REPORT = {"type": "object", "properties": {
    "lon": {"type": "number"}, "lat": {"type": "number"}, "crs": {"type": "string", "enum": ["wgs84", "gcj02", "bd09"]},
    "kind": {"type": "string", "enum": ["event", "component"]}, "class_code": CLASS,
    "description": {"type": "string", "maxLength": 2000}, "address": {"type": "string", "maxLength": 300},
    "source": {"type": "string", "enum": ["supervisor", "hotline", "citizen", "open311", "camera", "import"]},
    "photos": {"type": "array", "items": {"type": "string"}, "maxItems": 10},
    "component_obj_id": OBJ_ID, "reported_at": {"type": "string"},
    "idempotency_key": {"type": "string"},
    # the caller's contact: only from call-takers, acceptors, dispatchers and admins; read only by them
    "complainant": {"type": "object", "additionalProperties": False, "properties": {
        "name": {"type": "string", "maxLength": 100}, "phone": {"type": "string", "maxLength": 40}}}}}


OWNERSHIP_UPLOAD = {"type": "object", "required": ["district", "role", "file"], "properties": {
    "district": DISTRICT, "file": {"type": "string", "format": "binary",
                                   "description": "a CSV (grid_code, kind, code, name, contact), or a zip, "
                                                  "GeoPackage or GeoJSON of responsibility areas"},
    "role": {"type": "string", "enum": ["responsibility", "management", "enforcement", "supervision"]},
    "valid_from": DATE, "mapping": {"type": "string", "description": "YAML: columns, set, values (text or a file)"},
    "source": {"type": "string", "maxLength": 300}, "licence": {"type": "string", "maxLength": 300},
    "max_bad_ratio": {"type": "number", "minimum": 0, "maximum": 1}, "encoding": {"type": "string"}}}


PHOTO_PARTS = {"type": "array", "maxItems": 10, "items": {"type": "string", "format": "binary"},
               "description": "JPEG, PNG or WebP, checked by content; at most 10 MiB each (413 over it)"}
PHOTO_FORM = {"type": "object", "required": ["photo"], "properties": {
    "photo": PHOTO_PARTS, "note": {"type": "string", "maxLength": 2000}}}
CASE_ID = {"type": "integer", "minimum": 1}


def _with_photos(operation: dict[str, Any], part: str) -> dict[str, Any]:
    """``operation`` (a JSON body) accepting multipart/form-data as well: the JSON text in the part ``part`` and
    0-10 ``photo`` parts."""
    operation["requestBody"]["content"]["multipart/form-data"] = {"schema": {
        "type": "object", "required": [part], "properties": {
            part: {"type": "string", "description": "the JSON object the JSON form sends as its body"},
            "photo": PHOTO_PARTS}}}
    return operation


# The case map's filters as the desk's queues take them (GET /api/v1/cases's names and rules).
DESK_FILTERS = [_q("district", DISTRICT), _q("kind", {"type": "string", "enum": ["event", "component"]}),
                _q("class_code", CLASS), _q("start", DATE), _q("end", DATE), _q("bbox", {"type": "string"}),
                _q("unit_grid", UNIT_GRID), _q("supervision_grid", CODES["supervision_grid"]), _q("team", TEAM)]
TILE_LAYERS = ["unit_grids", "supervision_grids", "components", "cases", "frontage_units"]
FRONTAGE_UNIT = {"type": "object", "properties": {
    "type": {"type": "string", "enum": ["Feature"]}, "district": DISTRICT,
    "geometry": {"type": "object", "description": "GeoJSON Polygon or MultiPolygon, EPSG:4326"},
    "properties": {"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 200},
        "kind": {"type": "string", "enum": ["shop", "institution", "property_company", "market", "other"]},
        "credit_code": {"type": "string", "pattern": "^[0-9A-HJ-NPQRTUWXY]{18}$",
                        "description": "统一社会信用代码 (GB 32100-2015, check character verified)"},
        "registry_id": {"type": "string", "maxLength": 64}, "contact_person": {"type": "string"},
        "contact_phone": {"type": "string"}, "address": {"type": "string"}, "valid_from": DATE,
        "valid_to": DATE}}}}
UPLOAD = {"type": "object", "required": ["district", "file"], "properties": {
    "district": DISTRICT, "file": {"type": "string", "format": "binary",
                                   "description": "a zip, a Shapefile's parts, or a GeoPackage/GeoJSON/CSV"},
    "crs": {"type": "string"}, "encoding": {"type": "string"}, "layer": {"type": "string"},
    "mapping": {"type": "string", "description": "column mapping as JSON or YAML (text, or sent as a file)"},
    "x_field": {"type": "string"}, "y_field": {"type": "string"},
    "dry_run": {"type": "string", "enum": ["true", "false"]}, "partial": {"type": "string", "enum": ["true", "false"]},
    "max_bad_ratio": {"type": "number", "minimum": 0, "maximum": 1},
    "move_tolerance_m": {"type": "number", "minimum": 0},
    "id_field": {"type": "string", "description": "the column of the city's own feature IDs"},
    "scope": {"type": "string", "enum": ["classes", "all"]},
    "max_retire_ratio": {"type": "number", "minimum": 0, "maximum": 1},
    "allow_mass_retire": {"type": "string", "enum": ["true", "false"]}}}
SECURITY_SCHEMES = {"bearer": {"type": "http", "scheme": "bearer",
                               "description": "an API token from `citygrid users token NAME`"},
                    "session": {"type": "apiKey", "in": "cookie", "name": "citygrid_session",
                                "description": "the web session from POST /login; unsafe requests also need "
                                               "the X-CSRF-Token header"},
                    "basic": {"type": "http", "scheme": "basic",
                              "description": "username and API token as the password; read requests (GET, HEAD, "
                                             "OPTIONS) only, for desktop clients that can send nothing else "
                                             "(QGIS 3.22's OGC API provider)"}}


# --- grid editing (#23): drafts, edits, the edit log, undo ---
LONLAT = {"type": "array", "minItems": 2, "maxItems": 3, "items": {"type": "number"},
          "description": "a GeoJSON position [lon, lat] in EPSG:4326"}
EDIT = {"type": "object", "required": ["op", "expected_revision"], "properties": {
    "op": {"type": "string", "enum": ["split", "merge", "reshape", "move-vertex", "reassign", "set-team"]},
    "expected_revision": {"type": "integer", "minimum": 0, "description": "the draft's revision the edit was made "
                          "against; another answers 409 with the newest 20 edits made since (edits_since) "
                          "and how many there are (edits_since_count)"},
    "code": UNIT_GRID, "codes": {"type": "array", "items": UNIT_GRID, "maxItems": 1000},
    "line": {"type": "object", "description": "split: a GeoJSON LineString (EPSG:4326) crossing the grid"},
    "geometry": {"type": "object", "description": "reshape: the grid's new boundary, a GeoJSON Polygon (EPSG:4326)"},
    "from": LONLAT, "to": LONLAT, "supervision_code": CODES["supervision_grid"], "team_code": TEAM},
    "description": "split {code, line}, merge {codes}, reshape {code, geometry}, move-vertex {from, to}, reassign "
                   "{codes, supervision_code}, set-team {supervision_code, team_code}; at most 10,000 vertices"}
VERSION_PATH = _p("version", {"type": "integer", "minimum": 1, "maximum": 1_000_000})


def _rejectable(operation: dict[str, Any]) -> dict[str, Any]:
    """``operation`` documented with its 422: an edit refused with its reason and geometry."""
    operation["responses"]["422"] = {"description": "the edit would break the coverage: reason and geometry "
                                                    "(GeoJSON, EPSG:4326) in the body; nothing changed",
                                     "content": {"application/json": {"schema": ERROR}}}
    return operation


def _editing_paths(paths: dict[str, Any]) -> None:
    """The editing routes (planners and admins of the district; ``webmap.editing_api``), added to ``paths``."""
    district = _q("district", DISTRICT, True)
    revision = {"type": "object", "required": ["expected_revision"],
                "properties": {"expected_revision": EDIT["properties"]["expected_revision"]}}
    paths["/api/v1/grids/versions"]["post"] = _op(
        "make a draft copied from a version (default: the published one)", body={
            "type": "object", "required": ["district"], "properties": {
                "district": DISTRICT, "from": {"type": "integer", "minimum": 1},
                "note": {"type": "string", "maxLength": 500}}}, ok=("201",))
    paths["/api/v1/grids/versions/{version}"] = {
        "get": _op("one version: status, base_version, revision, counts (drafts: planners, admins)",
                   [VERSION_PATH, district]),
        "delete": _op("drop a draft: its grids and edit log go; the codes it issued stay registered, never reused "
                      "(planners, admins of the district; 409 for a version that is not a draft or is the base "
                      "of another)", [VERSION_PATH, district])}
    paths["/api/v1/grids/versions/{version}/edits"] = {
        "get": _op("a page of a version's edit log, oldest first: the edits after revision `after`, at most "
                   "`limit`; `next_after` names the next page, `total` counts them all", [
                       VERSION_PATH, district,
                       _q("after", {"type": "integer", "minimum": 0, "maximum": 1_000_000_000, "default": 0}),
                       _q("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 100})]),
        "post": _rejectable(_op("edit a draft: split, merge, reshape, move-vertex, reassign, set-team; answers the "
                                "new revision, the edit and the stored grids it added or changed (GeoJSON)",
                                [VERSION_PATH, district], body=EDIT))}
    paths["/api/v1/grids/versions/{version}/undo"] = {"post": _op(
        "undo the draft's newest edit not yet undone (exact geometry, codes never reused)", [VERSION_PATH, district],
        body=revision)}


def _history_paths(paths: dict[str, Any]) -> None:
    """Impact preview, publishing with tile warming, version diffs (#23; ``webmap.history_api``)."""
    district = _q("district", DISTRICT, True)
    version = {"type": "integer", "minimum": 1, "maximum": 1_000_000}
    paths["/api/v1/grids/versions/{version}/impact"] = {"get": _op(
        "what publishing the draft now would change: components, open and recent cases changing grid, owners, "
        "supervisors, teams, workloads before/after and the imbalance, area deltas (planners, admins)",
        [_p("version", version), district])}
    paths["/api/v1/grids/versions/{version}/publish"] = {"post": _op(
        "publish a draft from a day or instant (cases keep their grids); its grid tiles z10-z15 are warmed in "
        "the background (tile_warming)", [_p("version", version), district], body={
            "type": "object", "required": ["effective_from"], "properties": {"effective_from": {
                "type": "string", "maxLength": 40, "description": "YYYY-MM-DD (a local day) or an ISO 8601 "
                "date-time"}}})}
    paths["/api/v1/grids/versions/{a}/diff/{b}"] = {"get": _op(
        "unit grids added, removed, changed or reassigned from version a to b (GeoJSON, EPSG:4326, area deltas)",
        [_p("a", version), _p("b", version), district])}


def _hotspot_paths(paths: dict[str, Any]) -> None:
    """Gi* and emerging hot spots (#24; ``webmap.hotspots_api``)."""
    common = [_q("district", DISTRICT, True),
              _q("level", {"type": "string", "enum": ["unit", "supervision", "community", "street"]}),
              _q("format", {"type": "string", "enum": ["json", "geojson", "csv"]}), *CASE_FILTERS[1:],
              _q("synthetic", {"type": "string", "enum": ["true", "false"]}),
              _q("weights", {"type": "string", "enum": ["queen", "distance"]}),
              _q("distance_m", {"type": "number", "minimum": 10, "maximum": 20000}),
              _q("alpha", {"type": "number", "minimum": 0.001, "maximum": 0.2}),
              _q("fdr", {"type": "string", "enum": ["true", "false"]})]
    paths["/api/v1/hotspots"] = {"get": _op(
        "Getis-Ord Gi* per area for a period: z, conditional-permutation pseudo p, ArcGIS class (-3..3)", [
            *common, _q("permutations", {"type": "integer", "minimum": 0, "maximum": 9999}),
            _q("seed", {"type": "integer", "minimum": 0, "maximum": 2**31 - 1})])}
    paths["/api/v1/hotspots/emerging"] = {"get": _op(
        "emerging hot spots per area: space-time Gi* per local month or week, Mann-Kendall trend, the 17 ArcGIS "
        "categories", [*common, _q("bin", {"type": "string", "enum": ["month", "week"]}),
                       _q("k", {"type": "integer", "minimum": 0, "maximum": 12})])}


def _recurrence_paths(paths: dict[str, Any]) -> None:
    """Chronic components and recurring places (#24; ``webmap.recurrence_api``)."""
    common = [_q("district", DISTRICT, True), _q("format", {"type": "string", "enum": ["json", "geojson", "csv"]}),
              _q("kind", {"type": "string", "enum": ["event", "component"]}), _q("class_code", CLASS),
              _q("start", DATE), _q("end", DATE), _q("min_cases", {"type": "integer", "minimum": 2, "maximum": 1000}),
              _q("limit", {"type": "integer", "minimum": 1, "maximum": 5000})]
    paths["/api/v1/recurrence/components"] = {"get": _op(
        "chronic components: cases per component in the period (default the last 365 days), repeat intervals, "
        "those with at least min_cases (default 3) ranked, with class, owning department and point", common)}
    paths["/api/v1/recurrence/places"] = {"get": _op(
        "recurring places: ST-DBSCAN clusters of one class among cases without a component (neighbours within "
        "eps_m metres and window_days days), ranked by size and recency, with grids, cases and a polygon", [
            *common, _q("eps_m", {"type": "number", "minimum": 5, "maximum": 1000}),
            _q("window_days", {"type": "number", "minimum": 1, "maximum": 730})])}


def _export_paths(paths: dict[str, Any]) -> None:
    """Exports of every collection (#25; ``webmap.exports_api``)."""
    from citygrid.interop.collections import KINDS as COLLECTION_KINDS
    from citygrid.responsibility.ownership import ROLES as OWNER_ROLES

    paths["/api/v1/exports/{kind}"] = {"get": _op(
        "a district's collection as a download (attachment): gpkg (with a layer_styles table QGIS opens styled), "
        "shp (a .zip of .shp/.shx/.dbf/.prj/.cpg and <name>.fields.csv, field names of at most 10 characters), "
        "geojson or csv; the caller's roles, district and case scope apply; 413 over 2,000,000 features", [
            _p("kind", {"type": "string", "enum": list(COLLECTION_KINDS)}), _q("district", DISTRICT, True),
            _q("format", {"type": "string", "enum": ["gpkg", "shp", "geojson", "csv"], "default": "gpkg"}),
            _q("version", {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
               description="a grid version (grid kinds; default the current one)"),
            _q("date", DATE, description="a local day: the version or census in force at its end, the cases "
                                         "reported during it"),
            _q("crs", {"type": "string", "pattern": "^(deployment|EPSG:[0-9]{1,6})$"},
               description="deployment (default for gpkg/shp), EPSG:4326 (default for geojson/csv), EPSG:4490"),
            _q("encoding", {"type": "string", "enum": ["UTF-8", "GBK"]}, description="shp and csv only"),
            _q("role", {"type": "string", "enum": list(OWNER_ROLES)},
               description="the owner role colouring unit grids in a GeoPackage's style")],
        )}


def _evaluation_paths(paths: dict[str, Any]) -> None:
    """The monthly evaluation and the public ranking (#24; ``webmap.evaluation_api``)."""
    month = _q("month", {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$", "example": "2026-11"}, True,
               "local month of the deployment's zone, YYYY-MM (from 2000-01 to the current month)")
    paths["/api/v1/evaluation"] = {"get": _op(
        "one kind's monthly ranking: indicators from case events (definitions in the answer), score, grade and "
        "the score's inputs (analysts, leads, admins)", [
            _q("district", DISTRICT, True), month,
            _q("kind", {"type": "string", "enum": ["supervisors", "teams", "units", "streets", "communities"]}),
            _q("format", {"type": "string", "enum": ["json", "geojson", "csv"]})])}
    paths["/api/v1/evaluation/report"] = {"get": _op(
        "the printable monthly report (HTML, one A4 page per kind)", [_q("district", DISTRICT, True), month])}
    paths["/api/v1/public/rankings"] = {"get": _op(
        "the public ranking of units/departments and streets, persons anonymised (no sign-in; 429 past the "
        "per-client limit)", [_q("district", DISTRICT, True), month], ok=("200", "429"))}


def _openapi_path(rule: str) -> str:
    """``/a/<int:b>/c.<fmt>`` → ``/a/{b}/c.{fmt}``."""
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule)


def annotate_access(doc: dict[str, Any], app: Flask) -> dict[str, Any]:
    """Add each operation's roles (``x-roles``, from the view's ``allow``) and security (none for public ones),
    read from the code so the document cannot drift from what the server enforces."""
    for rule in app.url_map.iter_rules():
        access = access_of(app.view_functions.get(rule.endpoint))
        item = doc["paths"].get(_openapi_path(str(rule)))
        if access is None or item is None:
            continue
        for method in rule.methods or ():
            operation = item.get(method.lower())
            if operation is None:
                continue
            if access.public:
                operation["security"] = []
                operation["x-roles"] = ["public"]
            else:
                operation["x-roles"] = sorted({*access.roles, "admin"})
    return doc


def document() -> dict[str, Any]:
    """The OpenAPI document (a new dict each call)."""
    paths: dict[str, Any] = {
        "/healthz": {"get": _op("versions, schema revision, database reachable")},
        "/api/v1/districts": {"get": _op("districts with counts")},
        "/api/v1/districts/{code}": {"get": _op("a district boundary (GeoJSON Feature)", [
            _p("code", DISTRICT), _q("simplify", {"type": "number", "minimum": 0, "maximum": 1000})])},
        "/api/v1/districts/{code}/areas": {"get": _op("streets and communities", [
            _p("code", DISTRICT), _q("level", {"type": "string", "enum": ["street", "community"]})])},
        "/api/v1/districts/{code}/lines": {"get": _op("roads, water, rail", [
            _p("code", DISTRICT), _q("kind", {"type": "string", "enum": ["road", "water", "rail"]}),
            _q("simplify", {"type": "number", "minimum": 0, "maximum": 1000})])},
        "/api/v1/sources": {"get": _op("where the data came from: recorded sources, licences, attributions",
                                       [_q("district", DISTRICT)])},
        "/api/v1/taxonomy": {"get": _op("component and event classes", [
            _q("kind", {"type": "string", "enum": ["event", "component"]}), _q("scheme", {"type": "string"})])},
        "/api/v1/grids": {"get": _op("a page of grids (GeoJSON)", [
            _q("district", DISTRICT, True), _q("kind", {"type": "string", "enum": ["unit", "supervision"]}),
            _q("version", {"type": "integer", "minimum": 1}), _q("bbox", {"type": "string"}),
            _q("limit", {"type": "integer", "minimum": 1, "maximum": 5000}),
            _q("offset", {"type": "integer", "minimum": 0})])},
        "/api/v1/grids/{code}": {"get": _op("one grid", [_p("code", GRID)])},
        "/api/v1/grids/{code}/card": {"get": _op("a unit grid's card", [_p("code", UNIT_GRID)])},
        "/api/v1/grids/{code}/owners": {"get": _op("who answered for a unit grid per role on a local day: party, "
                                                   "derived or listed, valid range, people", [
            _p("code", UNIT_GRID), _q("date", DATE)])},
        "/api/v1/ownership/imports": {"post": _op(
            "import a list of the grids' parties in one role (planners, GIS staff, admins of the district): a CSV "
            "of grid code -> party or a vector file of responsibility areas", body=OWNERSHIP_UPLOAD,
            form="multipart/form-data")},
        "/api/v1/grids/versions": {"get": _op("version history", [_q("district", DISTRICT, True)])},
        "/api/v1/grids/stats": {"get": _op("version quality", [
            _q("district", DISTRICT, True), _q("version", {"type": "integer", "minimum": 1})])},
        "/api/v1/grids/owners": {"get": _op("owners per role", [
            _q("district", DISTRICT, True),
            _q("role", {"type": "string",
                        "enum": ["responsibility", "management", "enforcement", "supervision"]})])},
        "/api/v1/grids/at": {"get": _op("the unit grid under a point; with date, the grid, supervision grid, "
                                        "team and owners valid that local day (404 before the first version)", [
            _q("lon", {"type": "number"}, True), _q("lat", {"type": "number"}, True),
            _q("date", {"type": "string", "format": "date"})])},
        "/api/v1/cases": {
            "get": _op("cases by filters", [*CASE_FILTERS, _q("bbox", {"type": "string"}),
                                            _q("open", {"type": "string", "enum": ["true", "false"]}),
                                            _q("team", TEAM), _q("unit_grid", UNIT_GRID),
                                            _q("format", {"type": "string", "enum": ["json", "geojson"]}),
                                            _q("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
                                            _q("offset", {"type": "integer", "minimum": 0})]),
            "post": _with_photos(_op("report a case (idempotent with Idempotency-Key); as multipart/form-data "
                                     "with its photos", body=REPORT, ok=("200", "201")), "report")},
        "/api/v1/cases/{case_id}/photos": {
            "get": _op("the case's photos", [_p("case_id", CASE_ID)]),
            "post": _op("add 1-10 photos to a case as an add_photos event (no status change; 413 over 10 MiB)",
                        [_p("case_id", CASE_ID)], body=PHOTO_FORM, ok=("201",), form="multipart/form-data")},
        "/api/v1/cases/{case_id}/photos/{photo_id}": {"get": _op("a photo's file (re-encoded, no metadata)", [
            _p("case_id", CASE_ID), _p("photo_id", CASE_ID)], ok=("200", "304"))},
        "/api/v1/cases/{case_id}/photos/{photo_id}/thumb": {"get": _op("a photo's thumbnail (JPEG, <= 320 px)", [
            _p("case_id", CASE_ID), _p("photo_id", CASE_ID)], ok=("200", "304"))},
        "/api/v1/cases/{case_id}": {"get": _op("one case, with my_actions: the actions the caller may take now "
                                               "([{action, label, needs, optional}])",
                                               [_p("case_id", {"type": "integer", "minimum": 1})])},
        "/api/v1/cases/{case_id}/transitions": {"post": _op(
            "a workflow action (reject and hand_back need a note; accept of an unverified report from a source "
            "filing.yaml lists is 409)", [
                _p("case_id", {"type": "integer", "minimum": 1})], body={"type": "object", "properties": {
                    "action": {"type": "string"}, "note": {"type": "string"}, "expected_version": {"type": "integer"},
                    "kind": {"type": "string"}, "class_code": CLASS, "duplicate_of": CASE_ID,
                    "satisfaction": {"type": "string", "enum": ["satisfied", "basic", "unsatisfied"]},
                    "party_code": {"type": "string", "maxLength": 100}}})},
        "/api/v1/desk": {"get": _op("the signed-in account's work queues (#21) with their total and overdue "
                                    "counts", [_q("district", DISTRICT)])},
        "/api/v1/desk/{queue}": {"get": _op(
            "one page of a work queue with its counts (total, overdue, due_soon); ETag, If-None-Match -> 304; the "
            "case map's filters, near=lon,lat (WGS84) nearest first", [
                _p("queue", {"type": "string", "enum": list(DESK_QUEUES)}), *DESK_FILTERS,
                _q("near", {"type": "string", "pattern": r"^-?[0-9.]+,-?[0-9.]+$"},
                   description="lon,lat in WGS84: nearest first, distance in metres in the deployment CRS"),
                _q("limit", {"type": "integer", "minimum": 1, "maximum": 200}),
                _q("offset", {"type": "integer", "minimum": 0, "maximum": 10_000_000})], ok=("200", "304"))},
        "/api/v1/cases/deadlines": {"get": _op("overdue and soon-due cases", [
            _q("district", DISTRICT), _q("within_hours", {"type": "number", "minimum": 0, "maximum": 720}),
            _q("limit", {"type": "integer", "minimum": 1, "maximum": 1000})])},
        "/api/v1/classify": {"post": _op("top three classes for a text", body={"type": "object", "properties": {
            "text": {"type": "string"}, "kind": {"type": "string", "enum": ["event", "component"]}}})},
        "/api/v1/caseload": {"get": _op("cases per area", [
            _q("district", DISTRICT, True),
            _q("level", {"type": "string", "enum": ["unit", "supervision", "community", "street"]}),
            _q("format", {"type": "string", "enum": ["json", "geojson", "csv"]}), *CASE_FILTERS[1:],
            _q("source", {"type": "string"}), _q("synthetic", {"type": "string", "enum": ["true", "false"]})])},
        "/api/v1/density.{fmt}": {"get": _op("kernel density of cases (at most 1,000,000 cells over the district "
                                             "and a bandwidth of at most 100 cells)", [
            _p("fmt", {"type": "string", "enum": ["png", "tif", "json"]}), _q("district", DISTRICT, True),
            _q("cell_m", {"type": "number", "minimum": 10, "maximum": 1000}),
            _q("bandwidth_m", {"type": "number", "minimum": 10, "maximum": 5000}),
            _q("kernel", {"type": "string", "enum": ["gaussian", "epanechnikov", "quartic"]}),
            *CASE_FILTERS[1:]])},
        "/api/v1/frontage-units": {
            "get": _op("frontage units (门前三包) as GeoJSON, valid today unless all=true; the caller's district", [
                _q("district", DISTRICT), _q("bbox", {"type": "string"}),
                _q("all", {"type": "string", "enum": ["true", "false"]}),
                _q("limit", {"type": "integer", "minimum": 1, "maximum": 2000}),
                _q("offset", {"type": "integer", "minimum": 0})]),
            "post": _op("add a frontage unit (planners, GIS staff, admins of its district): a GeoJSON Feature in "
                        "EPSG:4326 with district", body=FRONTAGE_UNIT, ok=("201",))},
        "/api/v1/frontage-units/{unit_id}": {
            "get": _op("one frontage unit (GeoJSON Feature, EPSG:4326)", [
                _p("unit_id", {"type": "integer", "minimum": 1})]),
            "patch": _op("change a frontage unit's fields or frontage (its credit code stays)", [
                _p("unit_id", {"type": "integer", "minimum": 1})], body=FRONTAGE_UNIT)},
        "/api/v1/search": {"get": _op("grid, case, component or address", [
            _q("q", {"type": "string", "maxLength": 100}, True), _q("district", DISTRICT)])},
        "/api/v1/components/near": {"get": _op("the nearest component to a point", [
            _q("lon", {"type": "number"}, True), _q("lat", {"type": "number"}, True),
            _q("within_m", {"type": "number", "minimum": 0.1, "maximum": 200})])},
        "/api/v1/components/{obj_id}": {"get": _op("a component and its history", [
            _p("obj_id", OBJ_ID)])},
        "/tiles/{layer}/{z}/{x}/{y}.mvt": {"get": _op("a vector tile", [
            _p("layer", {"type": "string", "enum": TILE_LAYERS}),
            _p("z", {"type": "integer", "minimum": 0, "maximum": 22}), _p("x", {"type": "integer", "minimum": 0}),
            _p("y", {"type": "integer", "minimum": 0}), _q("status", {"type": "string", "enum": STATUSES}),
            _q("class_code", CLASS)], ok=("200", "204", "304"))},
        "/tiles/{layer}.json": {"get": _op("TileJSON of a layer", [
            _p("layer", {"type": "string", "enum": TILE_LAYERS})])},
        "/open311/v2/services.json": {"get": _op("Open311 services")},
        "/open311/v2/services/{code}.json": {"get": _op("one Open311 service", [_p("code", SERVICE)])},
        "/open311/v2/requests.json": {
            "get": _op("Open311 requests", [_q("service_code", SERVICE),
                                            _q("status", {"type": "string", "enum": ["open", "closed"]}),
                                            _q("start_date", {"type": "string"}), _q("end_date", {"type": "string"}),
                                            _q("bbox", {"type": "string"})]),
            "post": _op("create an Open311 request (rate-limited: 429)", body={"type": "object", "properties": {
                "service_code": SERVICE, "lat": {"type": "string"}, "long": {"type": "string"},
                "description": {"type": "string"}, "address_string": {"type": "string"}}},
                ok=("200", "201", "429"), form=True)},
        "/open311/v2/requests/{request_id}.json": {"get": _op("one Open311 request", [
            _p("request_id", {"type": "integer", "minimum": 1})])},
        "/api/v1/imports": {"post": _op("upload a component census (runs as a job; 413 over the size limit)",
                                        body=UPLOAD, ok=("202",), form="multipart/form-data")},
        "/api/v1/imports/{job_id}": {"get": _op("an import job", [_p("job_id", {"type": "string"})])},
        "/api/v1/imports/{job_id}/report.csv": {"get": _op("the row-by-row report of an import", [
            _p("job_id", {"type": "string"})])},
        "/api/v1/imports/{job_id}/bad.geojson": {"get": _op("the rejected rows with their geometry", [
            _p("job_id", {"type": "string"})])},
        "/api/v1/imports/{job_id}/commit": {"post": _op("commit a previewed (dry-run) import", [
            _p("job_id", {"type": "string"})], ok=("202",))},
        "/api/v1/me": {"get": _op("the signed-in user and the session's CSRF token")},
        "/api/v1/users": {"get": _op("every account (admins)"),
                          "post": _op("add a token-only account (admins); 409 for roles against 监管分离", body={
                              "type": "object", "required": ["username", "roles"], "properties": {
                                  "username": {"type": "string"}, "roles": {"type": "array", "items": {
                                      "type": "string"}}, "team": {"type": "string"}, "party": {"type": "string"},
                                  "district": {"type": "string"}, "display_name": {"type": "string"}}},
                              ok=("201",))},
        "/api/v1/users/{username}/roles": {"put": _op("change an account's roles (admins; 监管分离 checked)", [
            _p("username", {"type": "string"})], body={"type": "object", "required": ["roles"], "properties": {
                "roles": {"type": "array", "items": {"type": "string"}}, "team": {"type": "string"},
                "party": {"type": "string"}}})},
        "/api/v1/parties": {"get": _op("the district's parties to dispatch to (dispatchers, acceptors, admins)", [
            _q("district", DISTRICT, required=True), _q("q", {"type": "string", "maxLength": 100}),
            _q("kind", {"type": "string", "enum": ["department", "unit", "street_office", "community", "team",
                                                   "person", "frontage_unit", "property_company"]}),
            _q("limit", {"type": "integer", "minimum": 1, "maximum": 200})])},
        "/api/v1/people": {"get": _op("named people and their current slots; phones for dispatchers, planners, "
                                      "admins only", [
            _q("district", DISTRICT, required=True),
            _q("role", {"type": "string", "enum": ["supervisor", "enforcement_officer", "community_head",
                                                   "unit_contact"]}),
            _q("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
            _q("offset", {"type": "integer", "minimum": 0})])},
        "/api/v1/audit": {"get": _op("the audit log with before/after values (admins)", [
            _q("object_kind", {"type": "string", "maxLength": 100}), _q("object_id", {"type": "string"}),
            _q("actor", {"type": "string"}), _q("district", DISTRICT), _q("start", DATE), _q("end", DATE),
            _q("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
            _q("offset", {"type": "integer", "minimum": 0})])},
        "/api/v1/rotation": {"get": _op("stored supervisor rotation plans, newest first (planners, dispatchers of "
                                        "the district; admins)", [_q("district", DISTRICT)])},
        "/api/v1/rotation/{plan}": {"get": _op("one rotation plan: periods, who holds which supervision grid, "
                                               "team leaders; CSV with format=csv", [
            _p("plan", {"type": "string", "pattern": "^[1-9][0-9]{0,17}$"}), _q("team", TEAM),
            _q("format", {"type": "string", "enum": ["json", "csv"]})])},
        "/login": {"post": _op("open a session (JSON); answers the CSRF token for unsafe requests", body={
            "type": "object", "required": ["username", "password"],
            "properties": {"username": {"type": "string"}, "password": {"type": "string"}}}, ok=("200", "429"))},
    }
    _with_photos(paths["/api/v1/cases/{case_id}/transitions"]["post"], "data")  # a step's evidence with it
    _editing_paths(paths)
    _history_paths(paths)
    _hotspot_paths(paths)
    _recurrence_paths(paths)
    _evaluation_paths(paths)
    _export_paths(paths)
    return {"openapi": "3.0.3",
            "info": {"title": "citygrid", "version": __version__,
                     "description": "Gridded urban management on PostGIS: districts, grids, cases, components, "
                                    "caseload, tiles, Open311 GeoReport v2. Errors are JSON {error, message, "
                                    "details}."},
            "components": {"securitySchemes": SECURITY_SCHEMES,
                           "schemas": dict(CODES)},
            "security": [{"bearer": []}, {"session": []}, {"basic": []}],
            "paths": paths}


@bp.get("/api/v1/openapi.json")
@public
def openapi_json():
    return jsonify(annotate_access(document(), current_app))
