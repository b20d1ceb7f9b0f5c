"""Exports of every collection (#25): unit grids, supervision grids, teams, communities, streets, components,
cases and frontage units of one district, to a GeoPackage, a Shapefile, GeoJSON or CSV.

Every export reads through ``queries.features`` (the same rows, rules and scopes as ``/ogc``), streamed from a
server-side cursor and written batch by batch: GeoPackage, Shapefile and GeoJSON through GDAL's Arrow writer
(``pyogrio.write_arrow`` over a ``RecordBatchReader`` fed by the cursor), CSV through the ``csv`` module. A
census of a million components is never held whole in memory.

- **Where**: a file is written in a temporary directory beside the destination and moved into place when it is
  complete; a failed export (a value GBK cannot encode, a refused reader, a dropped connection) leaves nothing.
- **CRS** (``output_srid``): ``deployment`` (the storage CRS; the default for GeoPackage and Shapefile),
  ``EPSG:4326`` (lon/lat; the default for GeoJSON and CSV) or ``EPSG:4490`` (CGCS2000 lon/lat); others are
  refused with the list.
- **Shapefile**: field names are the collection's ``Field.short`` (at most 10 characters; the mapping is in the
  README and beside the file as ``<name>.fields.csv``), a ``.cpg`` always (UTF-8, or GBK with
  ``encoding="GBK"``: GDAL's ENCODING layer option), date-times as ISO 8601 text with the deployment zone's
  offset (DBF has no time zone), text cut to the DBF's 254 bytes at a character boundary (counted in the
  summary's ``truncated``), text columns as wide as their longest value (GDAL's RESIZE). A ``.zip``
  destination gets the set zipped (what the HTTP export sends).
- **GeoPackage**: GeoPackage 1.2, geometry column ``geom``, date-times in UTC with milliseconds (the standard's
  form, which GDAL 3.6 of Debian 12's QGIS reads without a warning per row), and a
  ``layer_styles`` table (QGIS's convention) with the collection's style from ``styles.layer_styles_row``, so
  QGIS opens the layer styled.
- **CSV**: UTF-8 with a byte-order mark (spreadsheets then read Chinese right) or GBK; points as ``lon``/``lat``
  (``x``/``y`` in a projected CRS), other geometries as ``wkt``; cells that a spreadsheet would run as a
  formula get a leading apostrophe (``loaders.plaintext.spreadsheet_safe``).
- **--date**: a local day of the deployment's zone: the grid version or the census in force at that day's end
  (the latest to begin during it, as ``gridding.history.version_on``), the cases reported during it.

No Flask and no SQL here: the rows come from ``citygrid.interop.queries.features`` (one statement read whole
through its cursor instead of one page: ``max_limit``).
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from decimal import Decimal
from itertools import islice
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pyarrow as pa
import pyogrio
import shapely
from pyproj import CRS
from sqlalchemy.engine import Connection

from citygrid.errors import InvalidInput, TooLarge
from citygrid.interop import queries, styles
from citygrid.interop.collections import KINDS, Field, Kind, collection_id
from citygrid.loaders.plaintext import spreadsheet_safe
from citygrid.spatial.db import deployment_zone
from citygrid.spatial.timezones import day_start

FORMATS: dict[str, str] = {"gpkg": "GPKG", "shp": "ESRI Shapefile", "geojson": "GeoJSON", "csv": "CSV"}
ENCODINGS: tuple[str, ...] = ("UTF-8", "GBK")
LISTED_SRIDS: tuple[int, ...] = (4326, 4490)  # besides the deployment's storage CRS
GEOGRAPHIC_SRIDS = frozenset({4326, 4490})
BATCH_ROWS = 2_000
ALL_ROWS = 2**62  # the CLI's limit: every feature (the operator reads everything)
DBF_TEXT_BYTES = 254
GEOMETRY_COLUMN = "geom"
_ARROW_TYPES: dict[str, pa.DataType] = {"string": pa.string(), "integer": pa.int64(), "number": pa.float64(),
                                        "boolean": pa.bool_(), "date": pa.date32(),
                                        "date-time": pa.timestamp("us", tz="UTC")}
_SINGLE_TO_MULTI: dict[str, Callable[[Any], Any]] = {"MultiPolygon": shapely.multipolygons,
                                                      "MultiLineString": shapely.multilinestrings,
                                                      "MultiPoint": shapely.multipoints}


@dataclass(frozen=True)
class ExportRequest:
    """What to export.

    Parameters
    ----------
    kind : a key of ``collections.KINDS`` (``unit-grids``, ``components``, ``cases`` …).
    district : the district's code.
    fmt : a key of ``FORMATS``.
    version : a grid version of the district (grid kinds only; default the current one).
    day : a local day of the deployment's zone (see the module docstring); not with ``version``.
    crs : ``deployment``, ``EPSG:4326`` or ``EPSG:4490`` (``EPSG:<storage>`` is ``deployment``); None: the
        format's default.
    encoding : ``UTF-8`` or ``GBK`` (Shapefile and CSV only).
    """

    kind: str
    district: str
    fmt: str
    version: int | None = None
    day: dt.date | None = None
    crs: str | None = None
    encoding: str = "UTF-8"


@dataclass(frozen=True)
class _Column:
    """One written column: the collection's field under the name this format gives it."""

    field: Field
    name: str


@dataclass(frozen=True)
class _Target:
    """How the rows of one export are written: the kind, its columns, the output CRS and text encoding."""

    kind: Kind
    layer: str
    columns: tuple[_Column, ...]
    srid: int
    encoding: str
    fmt: str
    zone: ZoneInfo


# ---------------------------------------------------------------------------------------------- the request
def check_format(fmt: str, encoding: str) -> tuple[str, str]:
    """(``fmt``, the encoding's canonical name) when both are offered together; ``InvalidInput`` otherwise.

    >>> check_format("shp", "gbk")
    ('shp', 'GBK')
    """
    if fmt not in FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(FORMATS)}", field="format")
    canonical = next((e for e in ENCODINGS if e.lower().replace("-", "") == encoding.lower().replace("-", "")), None)
    if canonical is None:
        raise InvalidInput(f"encoding must be one of {', '.join(ENCODINGS)}", field="encoding")
    if canonical != "UTF-8" and fmt not in ("shp", "csv"):
        raise InvalidInput(f"{fmt} files are UTF-8 by definition; encoding {canonical} is for shp and csv only",
                           field="encoding")
    return fmt, canonical


def output_srid(crs: str | None, fmt: str, storage_srid: int) -> int:
    """The EPSG code to write: ``crs`` (``deployment``, ``EPSG:N`` of the listed ones, case-insensitive), or
    the format's default (lon/lat EPSG:4326 for GeoJSON and CSV, the deployment's CRS otherwise).

    >>> output_srid("epsg:4490", "gpkg", 4548), output_srid(None, "geojson", 4548), output_srid(None, "shp", 4548)
    (4490, 4326, 4548)
    """
    if crs is None or crs == "":
        return 4326 if fmt in ("geojson", "csv") else storage_srid
    if crs.lower() == "deployment":
        return storage_srid
    match = re.fullmatch(r"(?i:epsg):([0-9]{1,6})", crs)
    srid = int(match.group(1)) if match else None
    if srid not in (storage_srid, *LISTED_SRIDS):
        listed = ", ".join(["deployment", f"EPSG:{storage_srid}", *(f"EPSG:{s}" for s in LISTED_SRIDS)])
        raise InvalidInput(f"crs must be one of {listed}", field="crs")
    return srid  # type: ignore[return-value]


def day_interval(day: dt.date, zone: ZoneInfo, temporal: str | None) -> tuple[dt.datetime, dt.datetime]:
    """The ``FeatureQuery.interval`` of local day ``day`` in ``zone`` for a kind whose ``datetime`` selects
    ``temporal``: the day's last instant for a version or a census (the one in force at its end), the whole
    day (both ends inside it) for cases reported then. ``InvalidInput`` for a kind without dates or a day at
    the ends of the calendar."""
    if temporal is None:
        raise InvalidInput("this collection has no dates: leave date out", field="date")
    if not dt.date(2, 1, 1) <= day < dt.date(9999, 1, 1):
        raise InvalidInput(f"date {day.isoformat()} is out of range (years 2 to 9998)", field="date")
    last = day_start(day + dt.timedelta(days=1), zone) - dt.timedelta(microseconds=1)
    return (day_start(day, zone), last) if temporal == "reported" else (last, last)


def _kind(key: str) -> Kind:
    if key not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}", field="kind")
    return KINDS[key]


def _columns(kind: Kind, fmt: str) -> tuple[_Column, ...]:
    """The kind's fields under their names in ``fmt``: the DBF's ``short`` names in a Shapefile."""
    return tuple(_Column(f, f.short if fmt == "shp" else f.name) for f in kind.fields)


# ---------------------------------------------------------------------------------------------- the export
def export(conn: Connection, request: ExportRequest, path: Path, reader: queries.Reader, *,
           max_features: int | None = None, batch_rows: int = BATCH_ROWS,
           style_role: str | None = None) -> dict[str, Any]:
    """Write the collection ``request`` names, as ``reader`` may read it, to ``path``.

    Parameters
    ----------
    conn : a connection in a transaction (the rows are read through a server-side cursor).
    request : what to export (``ExportRequest``); checked here (``InvalidInput`` naming the field).
    path : the destination; for a Shapefile ``*.shp`` (the set beside it) or ``*.zip`` (the set zipped).
        Its directory must exist. Written only when the whole export succeeded.
    reader : who reads (``queries.Reader``: the CLI's operator reads everything; an account its scope).
    max_features : refuse (``TooLarge``, before writing anything) a collection with more features than this
        (exactly counted or, for a large one, the planner's estimate): the HTTP export's bound.
    style_role : the responsibility role whose owners colour the unit grids in a GeoPackage's style.

    Returns
    -------
    dict: ``path``, ``format``, ``collection``, ``features``, ``crs`` (``EPSG:N``), ``encoding``, ``truncated``
    (Shapefile text cells cut to 254 bytes).
    """
    kind = _kind(request.kind)
    fmt, encoding = check_format(request.fmt, request.encoding)
    style_role = styles.check_role(style_role) if fmt == "gpkg" else None  # refused before a row is read
    if request.version is not None and request.day is not None:
        raise InvalidInput("give version or date, not both", field="date")
    cid = collection_id(kind.key, request.district)
    info = queries.collection_info(conn, cid, reader)
    zone = deployment_zone(conn)
    srid = output_srid(request.crs, fmt, int(info["storage_srid"]))
    target = _Target(kind, _layer_name(cid), _columns(kind, fmt), srid, encoding, fmt, zone)
    interval = day_interval(request.day, zone, kind.temporal) if request.day else None
    query = queries.FeatureQuery(limit=queries.MAX_LIMIT, version=request.version, interval=interval,
                                 out_srid=target.srid)
    if max_features is not None:
        _check_size(conn, cid, query, reader, max_features)
    most = ALL_ROWS if max_features is None else max_features
    rows = queries.features(conn, cid, replace(query, limit=most), reader, max_limit=most)  # one cursor, no pages
    with staged_output(path) as staged:
        counts = _WRITERS[fmt](rows, target, staged, batch_rows)
        if fmt == "gpkg":
            _add_layer_styles(conn, cid, staged, target.layer, style_role)
    return {"path": str(path), "format": fmt, "collection": cid, "features": counts["features"],
            "crs": f"EPSG:{target.srid}", "encoding": encoding, "truncated": counts["truncated"],
            **({"version": request.version} if request.version is not None else {}),
            **({"date": request.day.isoformat()} if request.day else {})}


def _check_size(conn: Connection, cid: str, query: queries.FeatureQuery, reader: queries.Reader,
                most: int) -> None:
    count, exact = queries.number_matched(conn, cid, query, reader)
    if count > most:
        about = "" if exact else "about "
        raise TooLarge(f"{cid} holds {about}{count:,} features, more than the {most:,} one export may carry here: "
                       "export it with the command line (citygrid export)", field="kind")


def _layer_name(cid: str) -> str:
    """The layer's name in a GeoPackage: the collection id with underscores (``unit_grids_110105``), a plain
    SQL identifier in QGIS's and GDAL's SQL."""
    return cid.replace("-", "_")


@contextmanager
def staged_output(path: Path) -> Iterator[Path]:
    """A path in a new temporary directory beside ``path`` to write to; on success the file (or a Shapefile's
    set) is moved onto ``path`` (``os.replace``: whole or not at all per file), on failure all of it removed."""
    if not path.parent.is_dir():
        raise InvalidInput(f"the directory of {path} does not exist", field="output")
    # A short fixed prefix (the destination's own name, up to 255 bytes, made the folder's name too long) and
    # an unwritable folder (read-only, /proc) refused as bad input: both were a traceback (#25 attack).
    try:
        work = Path(tempfile.mkdtemp(prefix=".citygrid-export-", suffix=".part", dir=path.parent))
    except OSError as exc:
        raise InvalidInput(f"cannot write in {str(path.parent)[:200]}: {exc.strerror}", field="output") from None
    try:
        staged = work / path.name
        yield staged
        written = sorted(work.iterdir())
        # A folder in the way of one file of a Shapefile's set failed its os.replace after the others had
        # replaced theirs (half a set, and a traceback): refuse before any is moved (#25 attack).
        blocked = [w.name for w in written if (path.parent / w.name).is_dir()]
        if blocked:
            raise InvalidInput(f"{blocked[0]} is a folder in {str(path.parent)[:200]}: nothing was written",
                               field="output")
        for file in written:
            os.replace(file, path.parent / file.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- cells
def _check_text(text: str, column: _Column, fid: Any, target: _Target) -> str:
    """``text`` as it can be written: ``InvalidInput`` naming the field and the feature when the encoding
    cannot hold one of its characters."""
    if target.encoding == "UTF-8":
        return text
    try:
        text.encode(target.encoding)
    except UnicodeEncodeError as exc:
        bad = text[exc.start]
        raise InvalidInput(f"{column.field.name} ({column.name}) of feature {fid} holds {bad!r} (U+{ord(bad):04X}), "
                           f"which {target.encoding} cannot encode: export it in UTF-8 (the default)",
                           field=column.field.name) from None
    return text


def _dbf_text(text: str, encoding: str) -> tuple[str, bool]:
    """``text`` cut to the DBF's 254 bytes in ``encoding`` at a character boundary, and whether it was cut."""
    data = text.encode(encoding)
    if len(data) <= DBF_TEXT_BYTES:
        return text, False
    return data[:DBF_TEXT_BYTES].decode(encoding, errors="ignore"), True


def _instant(value: Any) -> dt.datetime:
    """A date-time cell as a tz-aware datetime (from the database, or ISO text with an offset)."""
    stamp = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    if stamp.tzinfo is None:
        raise ValueError(f"a date-time without an offset: {value!r}")
    return stamp


def _typed(value: Any, ftype: str) -> Any:
    """One cell as the Python value of its field ``ftype`` (None stays None)."""
    if value is None:
        return None
    if ftype == "string":
        return value if isinstance(value, str) else str(value)
    if ftype == "integer":
        return int(value)
    if ftype == "number":
        return float(value) if isinstance(value, int | float | Decimal) else float(str(value))
    if ftype == "boolean":
        return bool(value)
    if ftype == "date":
        return value if isinstance(value, dt.date) and not isinstance(value, dt.datetime) \
            else dt.date.fromisoformat(str(value)[:10])
    return _instant(value)


def _text_cell(value: Any, column: _Column, fid: Any, target: _Target) -> Any:
    """A cell of a Shapefile or CSV: date-times as ISO text with the deployment zone's offset, text checked
    against the encoding."""
    value = _typed(value, column.field.type)
    if isinstance(value, dt.datetime):
        value = value.astimezone(target.zone).isoformat()
    if isinstance(value, str):
        value = _check_text(value, column, fid, target)
    return value


# ---------------------------------------------------------------------------------------------- Arrow writers
def _arrow_schema(target: _Target) -> pa.Schema:
    """The layer's columns: date-times as text in a Shapefile, as UTC timestamps elsewhere; WKB geometry."""
    as_text = target.fmt == "shp"
    fields = [pa.field(c.name, pa.string() if as_text and c.field.type == "date-time"
                       else _ARROW_TYPES[c.field.type]) for c in target.columns]
    return pa.schema([*fields, pa.field(GEOMETRY_COLUMN, pa.binary())])


def _geometries(texts: list[str | None], declared: str) -> list[bytes | None]:
    """GeoJSON geometry texts (in the output CRS) as WKB, single parts made multi where ``declared`` is a
    multi type (a GeoPackage's and a Shapefile's layers have one geometry type)."""
    geoms = shapely.from_geojson(texts, on_invalid="raise")
    promote = _SINGLE_TO_MULTI.get(declared)
    if promote is not None:
        single = shapely.get_type_id(geoms) == {"MultiPolygon": 3, "MultiLineString": 1, "MultiPoint": 0}[declared]
        geoms[single] = [promote([g]) for g in geoms[single]]
    return list(shapely.to_wkb(geoms))


def _record_batch(rows: list[dict[str, Any]], target: _Target, schema: pa.Schema,
                  counts: dict[str, int]) -> pa.RecordBatch:
    """One batch of features (``queries.features``' dicts) as an Arrow record batch of ``schema``."""
    columns: list[pa.Array] = []
    for column, arrow_field in zip(target.columns, schema, strict=False):
        cells = []
        for row in rows:
            value = row["properties"].get(column.field.name)
            if target.fmt == "shp":
                value = _text_cell(value, column, row["id"], target)
                if isinstance(value, str):
                    value, cut = _dbf_text(value, target.encoding)
                    counts["truncated"] += cut
            else:
                value = _typed(value, column.field.type)
            cells.append(value)
        columns.append(pa.array(cells, type=arrow_field.type))
    wkb = _geometries([row["geometry"] for row in rows], target.kind.geometry_type)
    columns.append(pa.array(wkb, type=pa.binary()))
    counts["features"] += len(rows)
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _batches(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch


def _write_arrow(rows: Iterable[dict[str, Any]], target: _Target, path: Path, batch_rows: int, *,
                 layer: str, options: dict[str, Any]) -> dict[str, int]:
    """Stream ``rows`` into the GDAL file ``path`` (one layer) through a RecordBatchReader."""
    schema = _arrow_schema(target)
    counts = {"features": 0, "truncated": 0}
    failures: list[Exception] = []

    def produce() -> Iterator[pa.RecordBatch]:
        try:
            for batch in _batches(rows, batch_rows):
                yield _record_batch(batch, target, schema, counts)
        except Exception as exc:  # GDAL sees only "error while accessing batch": keep the reason
            failures.append(exc)
            raise

    try:
        pyogrio.write_arrow(pa.RecordBatchReader.from_batches(schema, produce()), str(path), layer=layer,
                            driver=FORMATS[target.fmt], geometry_name=GEOMETRY_COLUMN,
                            geometry_type=target.kind.geometry_type, crs=CRS.from_epsg(target.srid).to_wkt(),
                            **options)
    except Exception:
        if failures:
            raise failures[0] from None
        raise
    return counts


def _write_gpkg(rows: Iterable[dict[str, Any]], target: _Target, path: Path, batch_rows: int) -> dict[str, int]:
    return _write_arrow(rows, target, path, batch_rows, layer=target.layer,
                        options={"dataset_options": {"VERSION": "1.2"},
                                 "layer_options": {"GEOMETRY_NAME": GEOMETRY_COLUMN,
                                                   "DATETIME_PRECISION": "MILLISECOND"}})


def _write_geojson(rows: Iterable[dict[str, Any]], target: _Target, path: Path,
                   batch_rows: int) -> dict[str, int]:
    options = {"RFC7946": "YES"} if target.srid == 4326 else {}
    return _write_arrow(rows, target, path, batch_rows, layer=target.layer, options={"layer_options": options})


def _write_shp(rows: Iterable[dict[str, Any]], target: _Target, path: Path, batch_rows: int) -> dict[str, int]:
    """The Shapefile set (``.shp .shx .dbf .prj .cpg`` and the ``.fields.csv`` mapping) beside ``path``, or
    zipped into ``path`` when it ends in ``.zip``."""
    zipped = path.suffix.lower() == ".zip"
    stem = path.stem.removesuffix(".shp") if zipped else path.stem
    folder = path.parent / ".set" if zipped else path.parent
    folder.mkdir(exist_ok=True)
    counts = _write_arrow(rows, target, folder / f"{stem}.shp", batch_rows, layer=stem,
                          options={"encoding": target.encoding, "layer_options": {"RESIZE": "YES"}})
    _write_field_map(target, folder / f"{stem}.fields.csv")
    if zipped:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for member in sorted(folder.iterdir()):
                archive.write(member, member.name)
        shutil.rmtree(folder)
    return counts


def _write_field_map(target: _Target, path: Path) -> None:
    """The Shapefile's field names beside it: ``short,name,type,title`` per field (UTF-8)."""
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["short", "name", "type", "title"])
        for column in target.columns:
            writer.writerow([spreadsheet_safe(v) for v in (column.name, column.field.name, column.field.type,
                                                           column.field.title)])


# ---------------------------------------------------------------------------------------------- CSV
def _geometry_header(target: _Target) -> list[str]:
    if target.kind.geometry_type != "Point":
        return ["wkt"]
    return ["lon", "lat"] if target.srid in GEOGRAPHIC_SRIDS else ["x", "y"]


def _geometry_cells(text: str | None, target: _Target) -> list[Any]:
    """A feature's geometry as CSV cells: x/y (lon/lat) of a point, or WKT (7 decimals in degrees, 3 in
    metres)."""
    digits = 7 if target.srid in GEOGRAPHIC_SRIDS else 3
    if text is None:
        return [None, None] if target.kind.geometry_type == "Point" else [None]
    geom = shapely.from_geojson(text)
    if target.kind.geometry_type == "Point":
        return [round(geom.x, digits), round(geom.y, digits)] if not geom.is_empty else [None, None]
    return [shapely.to_wkt(geom, rounding_precision=digits, trim=True)]


def _csv_cell(value: Any, column: _Column, fid: Any, target: _Target) -> Any:
    value = _text_cell(value, column, fid, target)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date):
        return value.isoformat()
    return spreadsheet_safe(value)


def _write_csv(rows: Iterable[dict[str, Any]], target: _Target, path: Path, batch_rows: int) -> dict[str, int]:
    """One line per feature, written as the rows arrive (``batch_rows`` is unused: nothing is batched)."""
    encoding = "utf-8-sig" if target.encoding == "UTF-8" else target.encoding.lower()
    count = 0
    with path.open("w", encoding=encoding, newline="") as out:
        writer = csv.writer(out)
        writer.writerow([c.name for c in target.columns] + _geometry_header(target))
        for row in rows:
            cells = [_csv_cell(row["properties"].get(c.field.name), c, row["id"], target) for c in target.columns]
            writer.writerow(cells + _geometry_cells(row["geometry"], target))
            count += 1
    return {"features": count, "truncated": 0}


_WRITERS: dict[str, Callable[[Iterable[dict[str, Any]], _Target, Path, int], dict[str, int]]] = {
    "gpkg": _write_gpkg, "shp": _write_shp, "geojson": _write_geojson, "csv": _write_csv}


# ---------------------------------------------------------------------------------------------- styles
def _add_layer_styles(conn: Connection, cid: str, path: Path, layer: str, role: str | None) -> None:
    """Add the ``layer_styles`` table QGIS reads a GeoPackage layer's default style from (its own layout: QGIS
    makes it through OGR the same way), with the row ``styles.layer_styles_row`` makes for the collection."""
    row = {"f_table_catalog": "", "f_table_schema": "",
           **styles.layer_styles_row(conn, cid, layer, GEOMETRY_COLUMN, role=role)}
    frame = pd.DataFrame([row])  # useAsDefault a bool, update_time an aware instant: pandas keeps both types
    pyogrio.write_dataframe(frame, str(path), layer="layer_styles", driver="GPKG",
                            layer_options={"FID": "id"})
