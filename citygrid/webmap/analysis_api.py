"""``GET /api/v1/caseload``: cases per unit grid, supervision grid, community or street for a period and
filters, as JSON, GeoJSON (EPSG:4326) or CSV."""

from __future__ import annotations

from dataclasses import asdict, replace

from flask import Blueprint, Response, jsonify, request

from citygrid.cases.workflow import STATES
from citygrid.errors import InvalidInput, NotFound
from citygrid.gridding.queries import version
from citygrid.spatial.analysis import queries as analysis
from citygrid.webmap.auth import allow, home_district_arg
from citygrid.webmap.context import connection
from citygrid.webmap.formats import table_response
from citygrid.webmap.heavy import heavy
from citygrid.webmap.params import choice_arg, optional_code_arg, period_args

bp = Blueprint("analysis_v1", __name__, url_prefix="/api/v1")
FIELDS = ("code", "name", "cases", "area_km2", "cases_per_km2", "components", "cases_per_100_components")


@bp.get("/caseload")
@allow("analyst", "planner", "dispatcher")
@heavy
def caseload():
    """``district`` (required), ``level`` unit|supervision|community|street, ``start``/``end`` (ISO),
    ``kind``, ``class_code``, ``source``, ``status``, ``synthetic`` true|false, ``format`` json|geojson|csv."""
    district = home_district_arg()
    level = choice_arg("level", analysis.LEVELS, "unit")
    fmt = choice_arg("format", ("json", "geojson", "csv"), "json")
    source = request.args.get("source") or None
    if source is not None and (len(source) > 30 or not source.isalnum()):
        raise InvalidInput("source must be a short word such as supervisor or hotline", field="source")
    filters = replace(_case_filters(), source=source)
    with connection() as conn:
        version_id = version(conn, district)["version_id"]
        rows = analysis.caseload(conn, district, version_id, level, filters, with_geometry=fmt == "geojson")
    meta = {"district": district, "level": level, "version": version_id, "start": filters.start,
            "end": filters.end}
    if fmt == "json":
        meta["total_cases"] = sum(r["cases"] for r in rows)
    return table_response(rows, fmt=fmt, fields=FIELDS, filename=f"caseload-{district}-{level}.csv", meta=meta)


def _case_filters() -> analysis.CaseloadFilter:
    """The case filters the caseload and the density share, from the query string."""
    class_code = optional_code_arg("class", "class_code")
    synthetic = choice_arg("synthetic", ("true", "false"))
    start, end = period_args()  # inclusive dates: start=end is one day
    return analysis.CaseloadFilter(start=start, end=end, kind=choice_arg("kind", ("event", "component")),
                                   class_code=class_code, status=choice_arg("status", STATES),
                                   synthetic=None if synthetic is None else synthetic == "true")


@bp.get("/density.<fmt>")
@allow("analyst", "planner", "dispatcher")
@heavy
def density(fmt: str):
    """Kernel density of the filtered cases: ``.png`` (overlay), ``.tif`` (GeoTIFF, deployment CRS) or
    ``.json`` (the overlay's EPSG:4326 bounds and the parameters). ``cell_m`` (10–1000, default 50),
    ``bandwidth_m`` (default 300), ``kernel`` gaussian|epanechnikov|quartic, plus the caseload filters.
    At most ``MAX_REQUEST_CELLS`` cells over the district and a bandwidth of ``MAX_BANDWIDTH_CELLS`` cells
    (400 naming the limit otherwise); one of the heavy requests whose concurrency is bounded (503 over it)."""
    import tempfile
    from pathlib import Path

    import numpy as np
    import shapely

    from citygrid.spatial.analysis.density import KERNELS, check_request_cost, kde, to_png, write_geotiff
    from citygrid.spatial.boundaries import district_boundary
    from citygrid.spatial.crs import to_lonlat
    from citygrid.spatial.db import deployment_srid
    from citygrid.webmap.params import float_arg

    if fmt not in ("png", "tif", "json"):
        raise NotFound(f"no density format {fmt!r} (png, tif, json)")
    district = home_district_arg()
    cell = float_arg("cell_m", 50.0, 10.0, 1000.0)
    bandwidth = float_arg("bandwidth_m", 300.0, cell, 5000.0)
    kernel = choice_arg("kernel", KERNELS, "gaussian")
    filters = _case_filters()
    with connection() as conn:
        boundary = district_boundary(conn, district)
        check_request_cost(boundary.bounds, cell, bandwidth)
        srid = deployment_srid(conn)
        x, y = analysis.case_points(conn, district, filters)
    raster = kde(x, y, boundary.bounds, cell_m=cell, bandwidth_m=bandwidth, kernel=kernel, epsg=srid)
    if fmt == "png":
        return Response(to_png(raster), mimetype="image/png")
    if fmt == "tif":
        with tempfile.TemporaryDirectory() as tmp:
            path = write_geotiff(raster, Path(tmp) / "density.tif", {"district": district, **{
                k: v for k, v in asdict(filters).items() if v is not None}})
            data = path.read_bytes()
        return Response(data, mimetype="image/tiff",
                        headers={"Content-Disposition": f"attachment; filename=density-{district}.tif"})
    x0, y0, x1, y1 = raster.bounds
    corners = to_lonlat(np.array([shapely.Point(x0, y0), shapely.Point(x1, y1)], dtype=object), srid)
    return jsonify({"district": district, "points": raster.points, "cell_m": cell, "bandwidth_m": bandwidth,
                    "kernel": kernel, "peak_per_km2": float(raster.values.max()) if raster.values.size else 0.0,
                    "bounds_lonlat": [[corners[0].y, corners[0].x], [corners[1].y, corners[1].x]],
                    "note": "the overlay is drawn between the corners' lon/lat; over one district the "
                            "Gauss–Krüger to lon/lat distortion is below a cell"})
