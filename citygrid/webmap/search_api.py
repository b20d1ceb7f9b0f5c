"""Find things on the map: ``GET /api/v1/search?q=`` (grid code, case ID, component ID or an address) and
``GET /api/v1/components/<obj_id>`` (a component's attributes, history and cases). Places come back as
EPSG:4326 lon/lat."""

from __future__ import annotations

import re

import shapely
from flask import Blueprint, jsonify, request

from citygrid.accounts.roles import ANY_ROLE
from citygrid.cases import queries as cases
from citygrid.cases.scope import read_scope
from citygrid.components_survey import queries as survey
from citygrid.errors import InvalidInput, NotFound
from citygrid.gridding import queries as grids
from citygrid.spatial.queries import places_named
from citygrid.webmap.auth import allow, require_principal
from citygrid.webmap.context import code_scheme, connection
from citygrid.webmap.params import code_arg, district_code

bp = Blueprint("search_v1", __name__, url_prefix="/api/v1")
_CASE_ID = re.compile(r"^#?([0-9]{1,12})$")
MAX_QUERY = 100


@bp.get("/search")
@allow(*ANY_ROLE)
def search():
    """What ``q`` names: a unit/supervision grid code, a 16-digit component ObjID, a case ID (digits, or #n)
    or an address in ``district`` (default: every district). Returns ``results`` (kind, id, label, lon, lat,
    and for grids the GeoJSON geometry); empty when nothing matches. A case is found only by those who may read
    it (``cases.scope``); for anyone else its ID matches nothing, as if there were no such case."""
    query = (request.args.get("q") or "").strip()
    if not query:
        raise InvalidInput("q is required: a grid code, case ID, component ID or address", field="q")
    if len(query) > MAX_QUERY:
        raise InvalidInput(f"q is longer than {MAX_QUERY} characters", field="q")
    district = request.args.get("district")
    district = district_code(district) if district else None
    results = []
    scheme = code_scheme()
    is_grid = scheme.matches("unit_grid", query) or scheme.matches("supervision_grid", query)
    with connection() as conn:
        if is_grid and (grid := grids.find_grid(conn, query)):
            centre = shapely.geometry.shape(grid["geometry"]).representative_point()
            results.append({"kind": f"{grid['properties']['kind']}_grid", "id": query, "label": query,
                            "lon": centre.x, "lat": centre.y, "geometry": grid["geometry"]})
        elif scheme.matches("obj_id", query) and (versions := survey.component_history(conn, query)):
            newest = versions[0]
            results.append({"kind": "component", "id": query, "label": f"{newest['class_name'] or ''} {query}",
                            "lon": newest["lon"], "lat": newest["lat"], "current": newest["valid_to"] is None})
        elif (m := _CASE_ID.match(query)) and (case := cases.get_case(conn, int(m.group(1)),
                                                                        read_scope(require_principal()))):
            results.append({"kind": "case", "id": case["case_id"],
                            "label": f"#{case['case_id']} {case['class_name'] or ''} ({case['status']})",
                            "lon": case["lon"], "lat": case["lat"]})
        if not results:
            results = places_named(conn, query, district)
    results.sort(key=lambda r: -r.get("confidence", 1.0))
    return jsonify({"q": query, "results": results})


@bp.get("/components/near")
@allow(*ANY_ROLE)
def component_near():
    """``?lon=&lat=`` (WGS84) ``&within_m=`` (0.1–200, default 10) — ``{"component": …}``, the nearest current
    component with its distance in metres, or null when none is that close (the map's click on a drawn
    component; "nothing there" is an answer, not an error)."""
    from citygrid.webmap.params import float_arg, lonlat_args

    lon, lat = lonlat_args()
    within = float_arg("within_m", 10.0, 0.1, 200.0)
    with connection() as conn:
        found = cases.nearest_component(conn, lon, lat, within)
    return jsonify({"component": found, "within_m": within})


@bp.get("/components/<obj_id>")
@allow(*ANY_ROLE)
def component(obj_id: str):
    """A component by ObjID: its current (or last) version, every version (newest first) and its case count."""
    code_arg("obj_id", obj_id, "obj_id")
    with connection() as conn:
        versions = survey.component_history(conn, obj_id)
    if not versions:
        raise NotFound(f"no component {obj_id}")
    return jsonify({"obj_id": obj_id, "current": versions[0] if versions[0]["valid_to"] is None else None,
                    "versions": versions, "cases": versions[0]["cases"]})
