"""Grid endpoints: pages of unit/supervision grids as GeoJSON (EPSG:4326), one grid by code, versions."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from citygrid.accounts.roles import ANY_ROLE
from citygrid.errors import InvalidInput, NotFound
from citygrid.gridding import service as gridding
from citygrid.gridding import store as grid_store
from citygrid.spatial.db import deployment_srid
from citygrid.webmap.auth import allow
from citygrid.webmap.context import code_scheme, connection
from citygrid.webmap.params import bbox_arg, choice_arg, code_arg, district_code, int_arg

bp = Blueprint("grids_v1", __name__, url_prefix="/api/v1/grids")
MAX_PAGE = 5000


@bp.get("")
@allow(*ANY_ROLE)
def list_grids():
    """``?district=&version=&kind=unit|supervision&bbox=&limit=&offset=``; version defaults to the current one."""
    district = district_code(request.args.get("district"))
    kind = choice_arg("kind", ("unit", "supervision"), "unit")
    version_id = int_arg("version", None, 1, 1_000_000)
    limit = int_arg("limit", 1000, 1, MAX_PAGE)
    offset = int_arg("offset", 0, 0, 10_000_000)
    bbox = bbox_arg()
    with connection() as conn:
        version = grid_store.version_row(conn, district, version_id)
        if version is None:
            raise NotFound(f"district {district} has no grid version" + (f" {version_id}" if version_id else ""))
        page = grid_store.grids_geojson(conn, district=district, version_id=version["version_id"], kind=kind,
                                        bbox=bbox, limit=limit, offset=offset, srid=deployment_srid(conn))
    page["version"] = version["version_id"]
    page["version_status"] = version["status"]
    return jsonify(page)


@bp.get("/<code>")
@allow(*ANY_ROLE)
def get_grid(code: str):
    """One unit grid or supervision grid (codes of the deployment's scheme) as a GeoJSON Feature."""
    scheme = code_scheme()
    if not (scheme.matches("unit_grid", code) or scheme.matches("supervision_grid", code)):
        raise InvalidInput(f"{scheme.problem('unit_grid', code)}; nor is it a supervision-grid code "
                           f"({scheme.formats['supervision_grid'].text})", field="code")
    with connection() as conn:
        feature = grid_store.find_grid(conn, code)
    if feature is None:
        raise NotFound(f"no grid {code}")
    return jsonify(feature)


@bp.get("/<code>/card")
@allow(*ANY_ROLE)
def get_card(code: str):
    """A unit grid's card in the current version: names, supervision grid and team, owners per role now,
    open and total cases, components."""
    code_arg("unit_grid", code, "code")
    district = code_scheme().district_of("unit_grid", code)
    with connection() as conn:
        version = grid_store.version_row(conn, district, None)
        card = grid_store.grid_card(conn, district, version["version_id"], code) if version else None
    if card is None:
        raise NotFound(f"no unit grid {code} in the current version")
    return jsonify(card)


@bp.get("/versions")
@allow(*ANY_ROLE)
def list_versions():
    """Dated history of a district's grid versions."""
    district = district_code(request.args.get("district"))
    with connection() as conn:
        rows = grid_store.versions(conn, district)
    return jsonify({"district": district, "versions": rows})


@bp.get("/stats")
@allow(*ANY_ROLE)
def get_stats():
    """Quality of a version (as ``citygrid grids stats``)."""
    district = district_code(request.args.get("district"))
    version_id = int_arg("version", None, 1, 1_000_000)
    with connection() as conn:
        return jsonify(gridding.stats(conn, district, version_id))


@bp.get("/owners")
@allow(*ANY_ROLE)
def list_owners():
    """``?district=&role=`` — the parties owning the current version's unit grids in a role now, with their
    grid counts (the map's legend when grids are coloured by owner)."""
    from citygrid.gridding.ownership import ROLES

    district = district_code(request.args.get("district"))
    role = choice_arg("role", ROLES, "management")
    with connection() as conn:
        version = grid_store.version_row(conn, district, None)
        if version is None:
            raise NotFound(f"district {district} has no grid version")
        owners = grid_store.owner_counts(conn, district, version["version_id"], role)
    return jsonify({"district": district, "role": role, "version": version["version_id"], "owners": owners})


@bp.get("/at")
@allow(*ANY_ROLE)
def grid_at():
    """``?lon=&lat=`` (WGS84) — the current unit grid covering the point (the boundary rule of the geocoder),
    with its card; ``code`` null outside every grid ("nothing there" is an answer, not an error)."""
    import numpy as np

    from citygrid.cases import store as case_store
    from citygrid.spatial import crs
    from citygrid.spatial.geocode import GridIndex
    from citygrid.webmap.params import lonlat_args

    lon, lat = lonlat_args()
    with connection() as conn:
        srid = deployment_srid(conn)
        point = crs.storage_point(lon, lat, crs.parse_crs("EPSG:4326"), srid)
        for district in case_store.district_codes(conn):
            index = GridIndex.cached(conn, district)
            hit = int(index.assign(np.array([point.x]), np.array([point.y]))[0])
            if hit >= 0:
                card = grid_store.grid_card(conn, district, index.version, index.codes[hit])
                return jsonify({"district": district, "code": index.codes[hit], "card": card})
    return jsonify({"district": None, "code": None, "card": None,
                    "message": f"no unit grid covers {lon:.6f}, {lat:.6f}"})
