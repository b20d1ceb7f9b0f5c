"""Grid endpoints: pages of unit/supervision grids as GeoJSON (EPSG:4326), one grid by code, versions."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from citygrid.accounts.roles import ANY_ROLE
from citygrid.errors import InvalidInput, NotFound
from citygrid.gridding import queries as grids
from citygrid.gridding import service as gridding
from citygrid.responsibility import people
from citygrid.webmap.auth import allow, require_principal
from citygrid.webmap.context import code_scheme, connection
from citygrid.webmap.editing_api import check_readable
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
    wanted = grids.GridFilter(district=district, kind=kind, version=version_id, bbox=bbox_arg(), limit=limit,
                              offset=offset)
    with connection() as conn:
        if version_id is not None:  # a draft named by its number is the planners' (#23)
            check_readable(district, grids.version(conn, district, version_id)["status"])
        page = grids.grid_page(conn, wanted)
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
        feature = grids.find_grid(conn, code)
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
    who = require_principal()
    with connection() as conn:
        card = grids.current_card(conn, district, code,
                                  phones=people.phones_visible(who.roles, who.district_code, district))
    if card is None:
        raise NotFound(f"no unit grid {code} in the current version")
    return jsonify(card)


@bp.get("/versions")
@allow(*ANY_ROLE)
def list_versions():
    """Dated history of a district's grid versions."""
    district = district_code(request.args.get("district"))
    with connection() as conn:
        rows = grids.versions(conn, district)
    return jsonify({"district": district, "versions": rows})


@bp.get("/stats")
@allow(*ANY_ROLE)
def get_stats():
    """Quality of a version (as ``citygrid grids stats``)."""
    district = district_code(request.args.get("district"))
    version_id = int_arg("version", None, 1, 1_000_000)
    with connection() as conn:
        if version_id is not None:  # a draft named by its number is the planners' (#23)
            check_readable(district, grids.version(conn, district, version_id)["status"])
        return jsonify(gridding.stats(conn, district, version_id))


@bp.get("/owners")
@allow(*ANY_ROLE)
def list_owners():
    """``?district=&role=`` — the parties owning the current version's unit grids in a role now, with their
    grid counts (the map's legend when grids are coloured by owner)."""
    from citygrid.responsibility.ownership import ROLES

    district = district_code(request.args.get("district"))
    role = choice_arg("role", ROLES, "management")
    with connection() as conn:
        version_id, owners = grids.current_owners(conn, district, role)
    return jsonify({"district": district, "role": role, "version": version_id, "owners": owners})


@bp.get("/at")
@allow(*ANY_ROLE)
def grid_at():
    """``?lon=&lat=`` (WGS84) — the current unit grid covering the point (the boundary rule of the geocoder),
    with its card; ``code`` null outside every grid ("nothing there" is an answer, not an error).

    ``&date=YYYY-MM-DD`` (#23, a local day of the deployment): the unit grid, supervision grid, team and owners
    per role valid that day (``gridding.history.grid_at``); a day before the district's first version is a 404
    naming the day it took effect."""
    from citygrid.webmap.params import lonlat_args

    lon, lat = lonlat_args()
    who = require_principal()
    if request.args.get("date") is not None:
        return _grid_at_date(lon, lat, who)
    with connection() as conn:
        found = grids.grid_at(conn, lon, lat,
                              phones=lambda district: people.phones_visible(who.roles, who.district_code, district))
    if found is not None:
        return jsonify(found)
    return jsonify({"district": None, "code": None, "card": None,
                    "message": f"no unit grid covers {lon:.6f}, {lat:.6f}"})


def _grid_at_date(lon: float, lat: float, who):
    """``GET /at`` with ``date``: the grid and its owners as of that local day (see ``grid_at``)."""
    import datetime as dt
    import re

    from citygrid.gridding import history

    raw = request.args.get("date", "").strip()
    try:
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", raw):
            raise ValueError(raw)
        day = dt.date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput("date must be a day, YYYY-MM-DD", field="date") from None
    with connection() as conn:
        found = history.grid_at(conn, lon, lat, day,
                                phones=lambda district: people.phones_visible(who.roles, who.district_code, district))
    return jsonify(found)
