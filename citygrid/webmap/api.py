"""JSON/GeoJSON API, version 1: districts, administrative areas, taxonomy. Coordinates out are EPSG:4326."""

from __future__ import annotations

import re

from flask import Blueprint, jsonify, request

from citygrid.components_survey import store as survey_store
from citygrid.errors import InvalidInput, NotFound
from citygrid.spatial import store
from citygrid.webmap.context import connection

bp = Blueprint("api_v1", __name__, url_prefix="/api/v1")
_DISTRICT = re.compile(r"^[0-9]{6}$")


def _district_code(code: str) -> str:
    if not _DISTRICT.match(code):
        raise InvalidInput(f"district code {code!r} must be 6 digits", field="code")
    return code


def _float_arg(name: str, default: float, low: float, high: float) -> float:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a number, not {raw!r}", field=name) from None
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low:g} and {high:g}", field=name)
    return value


def _choice_arg(name: str, choices: tuple[str, ...]) -> str | None:
    raw = request.args.get(name)
    if raw in (None, ""):
        return None
    if raw not in choices:
        raise InvalidInput(f"{name} must be one of {', '.join(choices)}", field=name)
    return raw


@bp.get("/districts")
def list_districts():
    """All districts with counts (area in km² measured in the storage CRS)."""
    with connection() as conn:
        return jsonify({"districts": store.district_summaries(conn)})


@bp.get("/districts/<code>")
def get_district(code: str):
    """One district boundary as a GeoJSON Feature in EPSG:4326; ``?simplify=`` metres (0–1000)."""
    tolerance = _float_arg("simplify", 0.0, 0.0, 1000.0)
    with connection() as conn:
        feature = store.district_geojson(conn, _district_code(code), tolerance)
    if feature is None:
        raise NotFound(f"no district {code}")
    return jsonify(feature)


@bp.get("/districts/<code>/areas")
def get_areas(code: str):
    """Streets/communities as GeoJSON points (EPSG:4326); those with no location are listed in ``unlocated``."""
    level = _choice_arg("level", ("street", "community"))
    with connection() as conn:
        if store.district_row(conn, _district_code(code)) is None:
            raise NotFound(f"no district {code}")
        rows = store.areas(conn, code, level)
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
def get_lines(code: str):
    """Roads, water lines and railways of a district as GeoJSON (EPSG:4326); ``kind``, ``simplify`` metres."""
    kind = _choice_arg("kind", ("road", "water", "rail"))
    tolerance = _float_arg("simplify", 0.0, 0.0, 1000.0)
    with connection() as conn:
        if store.district_row(conn, _district_code(code)) is None:
            raise NotFound(f"no district {code}")
        return jsonify(store.lines_geojson(conn, code, kind, tolerance))


@bp.get("/taxonomy")
def get_taxonomy():
    """Component and event classes of every loaded scheme; filters ``kind`` and ``scheme``."""
    kind = _choice_arg("kind", ("component", "event"))
    scheme = request.args.get("scheme") or None
    with connection() as conn:
        rows = survey_store.taxonomy(conn, scheme=scheme, kind=kind)
    if scheme and not rows:
        raise NotFound(f"no taxonomy scheme {scheme!r}")
    schemes = {r["scheme"]: r["scheme_title"] for r in rows}
    classes = [{k: r[k] for k in ("scheme", "kind", "code", "major_code", "major_name", "name", "verified")}
               for r in rows]
    return jsonify({"schemes": [{"scheme": s, "title": t} for s, t in schemes.items()], "classes": classes})
