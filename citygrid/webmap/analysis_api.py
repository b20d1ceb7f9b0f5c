"""``GET /api/v1/caseload``: cases per unit grid, supervision grid, community or street for a period and
filters, as JSON, GeoJSON (EPSG:4326) or CSV."""

from __future__ import annotations

import csv
import io

from flask import Blueprint, Response, jsonify, request

from citygrid.cases.workflow import STATES
from citygrid.errors import InvalidInput, NotFound
from citygrid.gridding import store as grid_store
from citygrid.spatial.analysis import store as analysis_store
from citygrid.webmap.cases_api import _date_arg
from citygrid.webmap.context import connection
from citygrid.webmap.params import choice_arg, district_code

bp = Blueprint("analysis_v1", __name__, url_prefix="/api/v1")
FIELDS = ("code", "name", "cases", "area_km2", "cases_per_km2", "components", "cases_per_100_components")


@bp.get("/caseload")
def caseload():
    """``district`` (required), ``level`` unit|supervision|community|street, ``start``/``end`` (ISO),
    ``kind``, ``class_code``, ``source``, ``status``, ``synthetic`` true|false, ``format`` json|geojson|csv."""
    district = district_code(request.args.get("district"))
    level = choice_arg("level", tuple(analysis_store.LEVELS), "unit")
    fmt = choice_arg("format", ("json", "geojson", "csv"), "json")
    class_code = request.args.get("class_code") or None
    if class_code is not None and not (len(class_code) == 4 and class_code.isdigit()):
        raise InvalidInput("class_code must be 4 digits", field="class_code")
    synthetic = choice_arg("synthetic", ("true", "false"))
    source = request.args.get("source") or None
    if source is not None and (len(source) > 30 or not source.isalnum()):
        raise InvalidInput("source must be a short word such as supervisor or hotline", field="source")
    start, end = _date_arg("start"), _date_arg("end")
    if start and end and start >= end:
        raise InvalidInput("start must be before end", field="start")
    with connection() as conn:
        version = grid_store.version_row(conn, district, None)
        if version is None:
            raise NotFound(f"district {district} has no grid version")
        rows = analysis_store.caseload(
            conn, district=district, version=version["version_id"], level=level, start=start, end=end,
            kind=choice_arg("kind", ("event", "component")), class_code=class_code, source=source,
            status=choice_arg("status", STATES), synthetic=None if synthetic is None else synthetic == "true",
            with_geometry=fmt == "geojson")
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        return Response(buffer.getvalue(), mimetype="text/csv",
                        headers={"Content-Disposition": f"attachment; filename=caseload-{district}-{level}.csv"})
    meta = {"district": district, "level": level, "version": version["version_id"], "start": start, "end": end}
    if fmt == "geojson":
        features = [{"type": "Feature", "id": r["code"], "geometry": r.pop("geometry"), "properties": r}
                    for r in rows]
        return jsonify({"type": "FeatureCollection", "features": features, **meta})
    return jsonify({**meta, "rows": rows, "total_cases": sum(r["cases"] for r in rows)})
