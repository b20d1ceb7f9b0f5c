"""``GET /api/v1/exports/<kind>``: a district's collection as a file to download (#25) — GeoPackage (styled for
QGIS), Shapefile (a .zip of .shp/.shx/.dbf/.prj/.cpg and the field-name mapping), GeoJSON or CSV.

The file is written by ``interop.exports.export`` (the same as ``citygrid export``) into a temporary directory
under a heavy-request slot, then sent from the open file (the directory is gone by then, the slot free): the
response is streamed, never built in memory. The caller reads what its account may read: the kind's roles, its
home district only, and for cases its ``CaseScope`` (a supervisor its team's grids, a unit its party's cases).
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import tempfile
from pathlib import Path

from flask import Blueprint, request, send_file

from citygrid.accounts.roles import ANY_ROLE
from citygrid.errors import InvalidInput, NotFound
from citygrid.interop import exports, queries
from citygrid.interop.collections import KINDS, collection_id
from citygrid.webmap.auth import allow, home_district_arg, require_principal
from citygrid.webmap.context import connection
from citygrid.webmap.heavy import heavy
from citygrid.webmap.params import choice_arg, int_arg

bp = Blueprint("exports_v1", __name__, url_prefix="/api/v1")
MAX_FEATURES = 2_000_000  # one download; the CLI's operator exports any number
SUFFIX = {"gpkg": "gpkg", "shp": "zip", "geojson": "geojson", "csv": "csv"}
MIMETYPES = {"gpkg": "application/geopackage+sqlite3", "shp": "application/zip",
             "geojson": "application/geo+json", "csv": "text/csv"}
_CRS = re.compile(r"(?i:deployment|epsg:[0-9]{1,6})")


@bp.get("/exports/<kind>")
@allow(*ANY_ROLE)
@heavy
def export(kind: str):
    """``district`` (required), ``format`` gpkg|shp|geojson|csv (default gpkg), ``version`` or ``date``
    (YYYY-MM-DD, a local day), ``crs`` deployment|EPSG:4326|EPSG:4490, ``encoding`` UTF-8|GBK (shp, csv),
    ``role`` (the owner role colouring unit grids in a GeoPackage's style). An attachment named
    ``<kind>-<district>[-v<version>][-<date>].<ext>``; ``X-Feature-Count`` says how many features it holds."""
    if kind not in KINDS:
        raise NotFound(f"no export of {kind[:40]!r}: kinds are {', '.join(KINDS)}")
    district = home_district_arg()
    fmt = choice_arg("format", tuple(exports.FORMATS), "gpkg")
    wanted = exports.ExportRequest(kind=kind, district=district, fmt=fmt,
                                   version=int_arg("version", None, 1, 2**31 - 1), day=_day_arg(),
                                   crs=_crs_arg(), encoding=request.args.get("encoding") or "UTF-8")
    role = choice_arg("role", _style_roles())
    reader = queries.Reader.of(require_principal())
    name = _filename(wanted)
    work = Path(tempfile.mkdtemp(prefix="citygrid-export-"))
    try:
        with connection() as conn:
            summary = exports.export(conn, wanted, work / name, reader, max_features=MAX_FEATURES,
                                     style_role=role)
        handle = (work / name).open("rb")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    response = send_file(handle, mimetype=MIMETYPES[fmt], as_attachment=True, download_name=name)
    response.headers["X-Feature-Count"] = str(summary["features"])
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _day_arg() -> dt.date | None:
    raw = request.args.get("date")
    if not raw:
        return None
    try:
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", raw):
            raise ValueError(raw)
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput("date must be a day YYYY-MM-DD (a local day of the deployment)", field="date") from None


def _crs_arg() -> str | None:
    raw = request.args.get("crs") or None
    if raw is not None and not _CRS.fullmatch(raw):
        raise InvalidInput("crs must be deployment, EPSG:4326 or EPSG:4490", field="crs")
    return raw


def _style_roles() -> tuple[str, ...]:
    from citygrid.responsibility.ownership import ROLES

    return tuple(ROLES)


def _filename(wanted: exports.ExportRequest) -> str:
    """``unit-grids-110105-v3-2026-12-01.gpkg``: made of checked codes only (nothing the caller typed freely)."""
    parts = [collection_id(wanted.kind, wanted.district)]
    if wanted.version is not None:
        parts.append(f"v{wanted.version}")
    if wanted.day is not None:
        parts.append(wanted.day.isoformat())
    return "-".join(parts) + "." + SUFFIX[wanted.fmt]
