"""Import frontage units (门前三包) from a file: any vector file GDAL reads through ``loaders.vector`` (Shapefile in
GBK, zip, GeoPackage, GeoJSON…), or a CSV whose polygons are WKT text (read by ``loaders.tables``).

``import_frontage`` reads as its steps: the columns to read, each row's geometry in the storage CRS, each row's
fields and frontage checked (``frontage.unit_fields``, ``frontage.frontage_geometry``), rows of one unit (same
credit code, else registry id) gathered into one MultiPolygon, then one write in the caller's transaction.
Every problem is reported in the one ``errors.problem`` shape and a file with one bad row imports nothing. A
re-import updates the units it names (by credit code, else registry id) and never removes a unit the file does
not mention.

A CSV's WKT says nothing about its CRS: ``crs`` must be given (never guessed); a GIS file's own CRS is used
unless ``crs`` overrides it (``loaders.vector``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy.engine import Connection

from citygrid.errors import InvalidInput, RowProblem, problem
from citygrid.loaders.tables import CSV_SUFFIXES, read_csv_table
from citygrid.loaders.vector import VectorFile, read_vector
from citygrid.responsibility import frontage
from citygrid.responsibility.queries import local_today
from citygrid.spatial import crs
from citygrid.spatial import store as spatial_store
from citygrid.spatial.boundaries import district_boundary
from citygrid.spatial.db import deployment_srid

FIRST_LINE = 2  # the header is line 1 (for a GIS file, feature i (0-based) is line i + 2)
MAX_ROWS = 50_000
MAX_WKT_CHARS = 1_000_000  # MAX_VERTICES vertices at up to ~40 characters each, with room
MAX_VERTICES = frontage.MAX_VERTICES
WKT_COLUMNS = ("wkt", "geometry", "geom", "the_geom", "几何")
COLUMNS: dict[str, tuple[str, ...]] = {
    "name": ("name", "unit_name", "名称", "单位名称", "责任单位"),
    "kind": ("kind", "type", "类型", "单位类型"),
    "credit_code": ("credit_code", "uscc", "统一社会信用代码", "信用代码"),
    "registry_id": ("registry_id", "registry", "登记号"),
    "contact_person": ("contact_person", "contact", "联系人", "负责人"),
    "contact_phone": ("contact_phone", "phone", "联系电话", "电话"),
    "address": ("address", "地址"),
    "valid_from": ("valid_from", "起始日期"),
    "valid_to": ("valid_to", "终止日期"),
}
# Kinds as Chinese lists write them.
KIND_WORDS = {"商铺": "shop", "门店": "shop", "商户": "shop", "单位": "institution", "机关": "institution",
              "物业": "property_company", "物业公司": "property_company", "市场": "market", "其他": "other"}


@dataclass
class FrontageFile:
    """A file read for a frontage import: the frame with its geometry in ``vf.source_crs``, and the problems
    found while reading (a CSV row whose WKT does not parse)."""

    vf: VectorFile
    problems: list[RowProblem] = field(default_factory=list)


def read_frontage_file(path: str | Path, *, crs_text: str | None = None, layer: str | None = None,
                       encoding: str | None = None, wkt_field: str | None = None) -> FrontageFile:
    """Read ``path``: a CSV with a WKT column (``wkt_field``, else ``wkt``/``geometry``/``geom``…), whose CRS
    must be given as ``crs_text``; any other file through ``loaders.vector.read_vector`` (the allowed driver
    of its suffix only, its content checked, its encoding and CRS handled there).

    Raises ``InvalidInput`` for a CSV without a WKT column or without ``crs_text``, and whatever the loaders
    refuse (a file whose content lies about its type, no CRS, undecodable text…).
    """
    path = Path(path)
    if path.suffix.lower() not in CSV_SUFFIXES:
        return FrontageFile(read_vector(path, crs=crs_text, layer=layer, encoding=encoding))
    table, _ = read_csv_table(path, encoding=encoding)
    columns = list(table.columns)
    lower = {str(c).lower(): c for c in columns}
    wkt_col = wkt_field if wkt_field in columns else next((lower[c] for c in WKT_COLUMNS if c in lower), None)
    if wkt_col is None:
        raise InvalidInput(f"{path.name}: no WKT column ({wkt_field or ', '.join(WKT_COLUMNS)}); columns: "
                           f"{', '.join(map(str, columns))[:300]}", field="wkt_field")
    if not crs_text:
        raise InvalidInput(f"{path.name}: WKT text does not say its CRS and it is never guessed; pass it, e.g. "
                           "--crs EPSG:4326 (lon/lat), EPSG:4547, or gcj02", field="crs")
    if len(table) > MAX_ROWS:
        raise InvalidInput(f"{path.name}: {len(table):,} rows, more than the {MAX_ROWS:,} of one import; split it",
                           field="file")
    geoms, problems = _parse_wkt(table[wkt_col].to_numpy(dtype=object), wkt_col)
    frame = gpd.GeoDataFrame(table.drop(columns=[wkt_col]), geometry=geoms)
    return FrontageFile(VectorFile(frame=frame, source_crs=crs.parse_crs(crs_text), crs_from="user"), problems)


def _parse_wkt(texts: np.ndarray, column: str) -> tuple[np.ndarray, list[RowProblem]]:
    """Each cell's geometry (None where empty or unreadable) and a problem per unreadable or oversized cell."""
    geoms = np.full(len(texts), None, dtype=object)
    problems: list[RowProblem] = []
    for i, text in enumerate(texts):
        text = str(text or "").strip()
        line = i + FIRST_LINE
        if not text:
            continue
        if len(text) > MAX_WKT_CHARS:
            problems.append(problem(column, f"the WKT is {len(text):,} characters long; at most {MAX_WKT_CHARS:,}",
                                    line=line))
            continue
        geom = shapely.from_wkt(text, on_invalid="ignore")
        if geom is None:
            problems.append(problem(column, f"not WKT: {text[:40]!r}", line=line))
        else:
            geoms[i] = geom
    return geoms, problems


# ------------------------------------------------------------------------------------------ the import
def import_frontage(conn: Connection, file: FrontageFile, *, district: str, source: str = "", licence: str = "",
                    synthetic: bool = False, valid_from: dt.date | None = None) -> dict[str, Any]:
    """Store the frontage units of ``file`` in ``district`` (one transaction: the caller's).

    Parameters
    ----------
    file : as ``read_frontage_file`` gives it; geometry in ``file.vf.source_crs``, stored in the deployment's
        CRS (``deployment.srid``).
    valid_from : the first day of units whose row gives none (default: today, local).
    synthetic : the units are seeded, not real (the demo's).

    Returns
    -------
    Summary: ``rows``, ``units``, ``created``, ``updated``, ``polygons``, ``warnings``.

    Raises
    ------
    InvalidInput with one ``RowProblem`` per bad row (nothing is imported); NotFound for an unknown district.
    """
    boundary = district_boundary(conn, district)
    frame = file.vf.frame
    if len(frame) == 0:
        raise InvalidInput("the file holds no rows", field="file")
    if len(frame) > MAX_ROWS:
        raise InvalidInput(f"{len(frame):,} rows, more than the {MAX_ROWS:,} of one import; split it", field="file")
    projected = _storage_geometries(np.asarray(frame.geometry.values, dtype=object), file.vf, deployment_srid(conn))
    columns = _columns([str(c) for c in frame.columns if c != "geometry"])
    units, problems = _rows(frame, projected, columns, boundary)
    unread = {p["line"] for p in file.problems}  # a row whose WKT could not be read is not also "missing" one
    problems = sorted([*file.problems, *(p for p in problems if p["field"] != "geometry" or p["line"] not in unread)],
                      key=lambda p: (p["line"] or 0))
    if problems:
        raise InvalidInput(f"{len({p['line'] for p in problems})} bad row(s); nothing was imported",
                           details=list(problems))
    today = local_today(conn)
    counts = {"created": 0, "updated": 0}
    for unit in units:
        unit = frontage.UnitFields(**{**unit.__dict__, "valid_from": unit.valid_from or valid_from or today})
        _, outcome = frontage.save_unit(conn, district, unit, today=today, synthetic=synthetic, source=source,
                                        licence=licence)
        counts[outcome] += 1
    spatial_store.record_source(conn, district=district, kind="frontage", source=source, licence=licence,
                                synthetic=synthetic)
    return {"district": district, "rows": len(frame), "units": len(units), **counts,
            "polygons": int(sum(len(shapely.get_parts(u.geom)) for u in units)), "warnings": file.vf.warnings}


def _storage_geometries(geoms: np.ndarray, vf: VectorFile, srid: int) -> np.ndarray:
    """Each row's geometry moved from ``vf.source_crs`` to EPSG:``srid``; None where a row has none, and where
    it has more than ``MAX_VERTICES`` (reported by ``_rows``)."""
    present = np.array([g is not None and not g.is_empty for g in geoms], dtype=bool)
    projected = np.full(len(geoms), None, dtype=object)
    small = present & (shapely.get_num_coordinates(np.where(present, geoms, None)) <= MAX_VERTICES)
    if small.any():
        projected[small] = crs.to_storage(geoms[small], vf.source_crs, srid)
    projected[present & ~small] = "too many vertices"
    return projected


def _columns(names: list[str]) -> dict[str, str | None]:
    """Field → the file's column for it (the names of ``COLUMNS``, in any case), None where absent."""
    lower = {n.lower(): n for n in names}
    return {f: next((lower[c.lower()] for c in candidates if c.lower() in lower), None)
            for f, candidates in COLUMNS.items()}


def _record(row: dict[str, Any], columns: dict[str, str | None]) -> dict[str, Any]:
    """A row's cells by field name; empty cells None; Chinese kind words as kinds."""
    record: dict[str, Any] = {}
    for name, col in columns.items():
        value = row.get(col) if col else None
        if value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() == "":
            value = None
        record[name] = value
    if isinstance(record["kind"], str):
        record["kind"] = KIND_WORDS.get(record["kind"].strip(), record["kind"].strip().lower())
    return record


def _rows(frame: gpd.GeoDataFrame, projected: np.ndarray, columns: dict[str, str | None], boundary: BaseGeometry
          ) -> tuple[list[frontage.UnitFields], list[RowProblem]]:
    """The units of the file (rows of one credit code, else registry id, gathered: their polygons joined) and
    the problems of its rows."""
    problems: list[RowProblem] = []
    by_key: dict[str, tuple[frontage.UnitFields, list[BaseGeometry], int]] = {}
    records = frame.drop(columns="geometry").to_dict("records")
    for i, (row, geom) in enumerate(zip(records, projected, strict=True)):
        line = i + FIRST_LINE
        fields, row_problems = frontage.unit_fields(_record(row, columns), line=line)
        if isinstance(geom, str):
            shape, geom_problems = None, [problem("geometry", f"more than {MAX_VERTICES:,} vertices", line=line)]
        else:
            shape, geom_problems = frontage.frontage_geometry(geom, boundary, line=line)
        problems += row_problems + geom_problems
        if row_problems or geom_problems:
            continue
        key = fields.credit_code or fields.registry_id or ""
        if key in by_key and by_key[key][0].name != fields.name:
            problems.append(problem("name", f"{key} is named {by_key[key][0].name!r} on line {by_key[key][2]} and "
                                    f"{fields.name!r} here", line=line, key=key))
            continue
        by_key.setdefault(key, (fields, [], line))[1].append(shape)
    return [_joined(fields, shapes) for fields, shapes, _ in by_key.values()], problems


def _joined(fields: frontage.UnitFields, shapes: Sequence[BaseGeometry]) -> frontage.UnitFields:
    """``fields`` with ``shapes`` (storage CRS) joined into one MultiPolygon."""
    union = shapes[0] if len(shapes) == 1 else shapely.union_all(shapes)
    if union.geom_type == "Polygon":
        union = shapely.MultiPolygon([union])
    return frontage.UnitFields(**{**fields.__dict__, "geom": union})
