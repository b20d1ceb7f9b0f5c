"""JSON/GeoJSON API, version 1: districts, administrative areas, taxonomy. Coordinates out are EPSG:4326."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from citygrid.accounts.roles import ANY_ROLE
from citygrid.cases.service import active_scheme
from citygrid.components_survey.queries import taxonomy
from citygrid.errors import NotFound
from citygrid.spatial import queries as places
from citygrid.spatial.sources import attributions
from citygrid.webmap.auth import allow
from citygrid.webmap.context import connection
from citygrid.webmap.params import choice_arg, district_code, float_arg, optional_district_arg

bp = Blueprint("api_v1", __name__, url_prefix="/api/v1")


@bp.get("/districts")
@allow(*ANY_ROLE)
def list_districts():
    """All districts with counts (area in km² measured in the storage CRS)."""
    with connection() as conn:
        return jsonify({"districts": places.district_summaries(conn)})


@bp.get("/districts/<code>")
@allow(*ANY_ROLE)
def get_district(code: str):
    """One district boundary as a GeoJSON Feature in EPSG:4326; ``?simplify=`` metres (0–1000)."""
    tolerance = float_arg("simplify", 0.0, 0.0, 1000.0)
    with connection() as conn:
        feature = places.district_feature(conn, district_code(code, 'code'), tolerance)
    return jsonify(feature)


@bp.get("/districts/<code>/areas")
@allow(*ANY_ROLE)
def get_areas(code: str):
    """Streets/communities as GeoJSON points (EPSG:4326); those with no location are listed in ``unlocated``."""
    level = choice_arg("level", ("street", "community"))
    with connection() as conn:
        rows = places.area_points(conn, district_code(code, 'code'), level)
    features, unlocated = [], []
    for row in rows:
        props = {k: row[k] for k in ("code", "level", "parent_code", "name", "ur_code", "has_polygon")}
        if row["lon"] is None:
            unlocated.append(props)
        else:
            point = {"type": "Point", "coordinates": [round(row["lon"], 7), round(row["lat"], 7)]}
            features.append({"type": "Feature", "id": row["code"], "properties": props, "geometry": point})
    return jsonify({"type": "FeatureCollection", "features": features, "unlocated": unlocated})


@bp.get("/districts/<code>/lines")
@allow(*ANY_ROLE)
def get_lines(code: str):
    """Roads, water lines and railways of a district as GeoJSON (EPSG:4326); ``kind``, ``simplify`` metres."""
    kind = choice_arg("kind", ("road", "water", "rail"))
    tolerance = float_arg("simplify", 0.0, 0.0, 1000.0)
    with connection() as conn:
        lines = places.district_lines(conn, district_code(code, 'code'), kind, tolerance)
    return jsonify(lines)


@bp.get("/sources")
@allow(*ANY_ROLE)
def list_sources():
    """Where the deployment's data came from: ``sources`` as recorded per district (kind, source, licence,
    synthetic, recorded_at) and ``attributions``, the lines the page footer shows; ``?district=`` for one."""
    district = optional_district_arg()
    with connection() as conn:
        rows = places.data_sources(conn, district)
        n_districts = len(places.district_codes(conn)) if district is None else 1
    return jsonify({"sources": rows, "attributions": attributions(rows, n_districts=n_districts)})


@bp.get("/taxonomy")
@allow(*ANY_ROLE)
def get_taxonomy():
    """Component and event classes of every loaded scheme; filters ``kind`` and ``scheme``. The deployment's
    active scheme (``citygrid taxonomy activate``) is marked ``active``."""
    kind = choice_arg("kind", ("component", "event"))
    scheme = request.args.get("scheme") or None
    with connection() as conn:
        rows = taxonomy(conn, scheme=scheme, kind=kind)
        active = active_scheme(conn)
    if scheme and not rows:
        raise NotFound(f"no taxonomy scheme {scheme!r}")
    schemes = {r["scheme"]: r["scheme_title"] for r in rows}
    classes = [{k: r[k] for k in ("scheme", "kind", "code", "major_code", "major_name", "name", "verified")}
               for r in rows]
    return jsonify({"schemes": [{"scheme": s, "title": t, "active": s == active} for s, t in schemes.items()],
                    "classes": classes})
