"""Files of rows, read as tables or in batches: CSV text tables, and point files streamed batch by batch.

Two readers with plain arguments, for every importer:

- ``read_csv_table``: a CSV as text columns, in the one encoding rule of ``loaders.encoding`` (case imports
  read their files this way; so does the census for a CSV).
- ``open_source`` then ``read_batches``: a file of points (Shapefile, loose or zipped, GeoPackage, GeoJSON …
  through ``loaders.gdalsafe``, or a CSV with x/y columns or a WKT/WKB column) as ``Batch`` es of attributes,
  point coordinates in the file's CRS and file line numbers. GDAL files are streamed through Arrow
  (``pyogrio.open_arrow``) so a million rows are never held as Python objects; ``paced`` cuts the first and
  the last batch smaller for a consumer that overlaps with a server (the census COPY).

Lines are numbered as in a CSV: the header is line 1, the first row line 2 (for a GDAL file, feature ``i``
(0-based) is line ``i + 2``). No database here.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS

from citygrid.errors import InvalidInput
from citygrid.loaders import gdalsafe, points
from citygrid.loaders.archive import find_dataset, safe_extract
from citygrid.loaders.encoding import blank_records, csv_encoding, shapefile_encoding

X_COLUMNS = ("lon", "lng", "longitude", "x", "lon_gcj02", "lon_wgs84", "pointx", "经度", "x坐标")
Y_COLUMNS = ("lat", "latitude", "y", "lat_gcj02", "lat_wgs84", "pointy", "纬度", "y坐标")
CSV_SUFFIXES = (".csv", ".txt")
BATCH_SIZE = 100_000
MAX_FILE_BYTES = 4 * 2**30
EDGE_PARTS = 4
FIRST_LINE = 2


# ------------------------------------------------------------------------------------------ CSV tables
def read_csv_table(path: Path, *, encoding: str | None = None) -> tuple[pd.DataFrame, str]:
    """A CSV as text columns (empty cells as ""), with the encoding it was read in.

    Parameters
    ----------
    path : the CSV file.
    encoding : its text encoding; None: ``loaders.encoding.csv_encoding`` decides (UTF-8, else plainly
        Chinese GB18030, else ``InvalidInput`` asking for it).

    Returns
    -------
    (table, encoding). ``InvalidInput`` for a missing file, text that is not in the encoding, a file that is
    no CSV, or a header naming one column twice (which one is meant is not guessed).
    """
    if not path.exists():
        raise InvalidInput(f"file not found: {path}", field="file")
    if not path.is_file():
        raise InvalidInput(f"{path.name} is not a file", field="file")
    encoding = csv_encoding(path, encoding)
    try:
        header = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding, header=None, nrows=1)
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)
    except UnicodeError as exc:  # UnicodeDecodeError, or a codec's own complaint (utf-16 without a BOM)
        where = f" (byte {exc.start})" if isinstance(exc, UnicodeDecodeError) else ""
        raise InvalidInput(f"{path.name}: not {encoding} text{where}: give its encoding",
                           field="encoding") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InvalidInput(f"{path.name}: not a readable CSV: {exc}", field="file") from exc
    _check_header(path, [str(name).strip() for name in header.iloc[0]] if len(header) else [])
    return table, encoding


def _check_header(path: Path, names: list[str]) -> None:
    """``InvalidInput`` when the header names one column twice (pandas would read the second as ``name.1``)."""
    repeated = next((name for i, name in enumerate(names) if name in names[:i]), None)
    if repeated is not None:
        raise InvalidInput(f"{path.name}: column {repeated[:80]!r} appears twice; which one is meant is not "
                           "guessed (rename one)", field="file")


def _pick_column(columns: list[str], wanted: tuple[str, ...], given: str | None, what: str) -> str | None:
    """``given`` (which must be a column), else the first of ``wanted`` among ``columns`` (any case)."""
    if given:
        if given not in columns:
            raise InvalidInput(f"column {given!r} not in file (columns: {', '.join(columns)})", field=what)
        return given
    lower = {c.lower(): c for c in columns}
    for name in wanted:
        if name in lower:
            return lower[name]
    return None


def read_csv_points(
    path: Path, *, x_field: str | None = None, y_field: str | None = None, encoding: str | None = None
) -> tuple[gpd.GeoDataFrame, str]:
    """Read a CSV whose rows carry x/y (or lon/lat) columns; rows with empty coordinates get no geometry.

    Returns the frame (geometry in the CSV's own coordinates, CRS unset) and the encoding used.
    Raises ``InvalidInput`` for undecodable text, missing coordinate columns or non-numeric coordinates.
    """
    table, enc = read_csv_table(path, encoding=encoding)
    columns = list(table.columns)
    x_col = _pick_column(columns, X_COLUMNS, x_field, "x_field")
    y_col = _pick_column(columns, Y_COLUMNS, y_field, "y_field")
    geometry = np.full(len(table), None, dtype=object)
    if x_col is None or y_col is None:
        return gpd.GeoDataFrame(table, geometry=geometry), enc
    x = pd.to_numeric(table[x_col].str.strip().replace("", np.nan), errors="coerce")
    y = pd.to_numeric(table[y_col].str.strip().replace("", np.nan), errors="coerce")
    bad = (x.isna() != table[x_col].str.strip().eq("")) | (y.isna() != table[y_col].str.strip().eq(""))
    if bad.any():
        line = int(np.flatnonzero(bad.to_numpy())[0]) + FIRST_LINE
        raise InvalidInput(
            f"{path.name} line {line}: coordinates {table[x_col].iloc[line - FIRST_LINE]!r}, "
            f"{table[y_col].iloc[line - FIRST_LINE]!r} are not numbers",
            field=x_col,
        )
    has = x.notna() & y.notna()
    geometry[has.to_numpy()] = shapely.points(x[has].to_numpy(), y[has].to_numpy())
    return gpd.GeoDataFrame(table, geometry=geometry), enc


# ------------------------------------------------------------------------------------------ point files in batches
@dataclass
class Batch:
    """Consecutive rows of a file.

    Attributes
    ----------
    attrs : the attributes (Arrow-backed columns for a GDAL file, text for a CSV), index 0 … n-1.
    points : per row x, y in ``crs`` (the file's own) and why a row's geometry is unusable.
    lines : int64 file line of each row (header = line 1).
    crs : the CRS the file declares, or None (a CSV never declares one).
    """

    attrs: pd.DataFrame
    points: points.Points
    lines: np.ndarray
    crs: CRS | None

    def __len__(self) -> int:
        return len(self.attrs)

    def part(self, start: int, stop: int) -> Batch:
        """Rows ``start`` to ``stop`` as a batch of their own (attributes re-indexed from 0)."""
        return Batch(self.attrs.iloc[start:stop].reset_index(drop=True), self.points.part(start, stop),
                     self.lines[start:stop], self.crs)


@dataclass
class Source:
    """A file opened for ``read_batches``.

    Attributes
    ----------
    path : the dataset itself (inside the work directory when it came zipped or had records blanked).
    kind : ``csv`` or ``ogr``.
    encoding : the attribute encoding (None: GDAL's own default for the format).
    encoding_source : ``user``, ``cpg``, ``detected`` or None.
    bad_encoding_lines : lines whose record does not decode (a DBF's; read with blank attributes).
    total : rows, when known before reading (GDAL's feature count), else 0.
    """

    path: Path
    kind: str
    encoding: str | None
    encoding_source: str | None
    bad_encoding_lines: set[int] = field(default_factory=set)
    total: int = 0


def open_source(path: Path, workdir: Path, *, layer: str | int | None = None, encoding: str | None = None
                ) -> Source:
    """Check ``path`` and make it readable: the one dataset of a zip extracted into ``workdir``, a CSV's
    encoding decided, a Shapefile's encoding decided with its undecodable records blanked (in a copy under
    ``workdir``), any other file's driver and content checked by ``gdalsafe``.

    Parameters
    ----------
    path : the file the user gave.
    workdir : an empty directory the caller removes afterwards.
    layer : layer name or index of a multi-layer file.
    encoding : the attribute encoding the user names (None: the file's own, else detected).
    """
    if not path.exists():
        raise InvalidInput(f"file not found: {path}", field="file")
    if path.is_file() and path.stat().st_size > MAX_FILE_BYTES:
        raise InvalidInput(f"{path.name} is larger than {MAX_FILE_BYTES // 2**30} GiB", field="file")
    if path.suffix.lower() == ".zip":
        path = find_dataset(safe_extract(path, workdir / "unzipped"))
    if path.suffix.lower() in CSV_SUFFIXES:
        return Source(path, "csv", encoding, "user" if encoding else None)
    source, bad = "user" if encoding else None, set()
    if path.suffix.lower() == ".shp":
        report = shapefile_encoding(path, encoding)
        encoding, source, bad = report.encoding, report.source, set(report.bad_lines)
        if bad:
            path = blank_records(path, report.bad_lines, workdir / "blanked")
    try:
        info = gdalsafe.safe_info(path, layer=layer, encoding=encoding)
    except UnicodeDecodeError as exc:
        raise undecodable(path, encoding, exc) from exc
    return Source(path, "ogr", encoding, source, bad, int(info.get("features") or 0))


def read_batches(src: Source, *, layer: str | int | None = None, x_field: str | None = None,
                 y_field: str | None = None, geometry: tuple[str, str] | None = None,
                 batch_size: int = BATCH_SIZE) -> Iterator[Batch]:
    """The rows of ``src`` in batches of ``batch_size`` (the last one shorter), in file order.

    Parameters
    ----------
    src : from ``open_source``; its ``encoding`` and ``total`` are filled in for a CSV once it is read.
    layer : layer name or index of a multi-layer GDAL file.
    x_field, y_field : a CSV's coordinate columns (common names are recognised when None).
    geometry : ``(fmt, column)``: a CSV's points are in one text column, ``wkt`` or hex ``wkb``
        (``points.from_text``); that column is not an attribute. ``InvalidInput`` for a file that is not a CSV.

    Yields
    ------
    ``Batch`` es, coordinates in the file's own CRS.
    """
    if geometry is not None and src.kind != "csv":
        raise InvalidInput(f"the mapping's geometry: {{{geometry[0]}: …}} reads a CSV column; {src.path.name} "
                           "has geometry of its own", field="mapping")
    if geometry is not None:
        yield from _text_geometry_batches(src, geometry, batch_size)
    elif src.kind == "csv":
        yield from _csv_batches(src, x_field, y_field, batch_size)
    else:
        yield from _ogr_batches(src, layer, batch_size)


def _slices(attrs: pd.DataFrame, pts: points.Points, batch_size: int) -> Iterator[Batch]:
    """A table held whole (a CSV) cut into batches."""
    for start in range(0, len(attrs), batch_size):
        stop = min(start + batch_size, len(attrs))
        yield Batch(attrs.iloc[start:stop].reset_index(drop=True), pts.part(start, stop),
                    np.arange(FIRST_LINE + start, FIRST_LINE + stop), None)


def _text_geometry_batches(src: Source, geometry: tuple[str, str], batch_size: int) -> Iterator[Batch]:
    """A CSV whose points are WKT or hex WKB in one column."""
    fmt, column = geometry
    table, src.encoding = read_csv_table(src.path, encoding=src.encoding)
    if column not in table.columns:
        raise InvalidInput(f"geometry column {column!r} not in the file (columns: {', '.join(table.columns)})",
                           field="mapping")
    src.total = len(table)
    pts = points.from_text(table[column].to_numpy(dtype=object), fmt)
    yield from _slices(table.drop(columns=[column]), pts, batch_size)


def _csv_batches(src: Source, x_field: str | None, y_field: str | None, batch_size: int) -> Iterator[Batch]:
    """A CSV with x/y (lon/lat) columns."""
    frame, src.encoding = read_csv_points(src.path, x_field=x_field, y_field=y_field, encoding=src.encoding)
    src.total = len(frame)
    pts = points.from_shapely(np.asarray(frame.geometry.values, dtype=object))
    yield from _slices(pd.DataFrame(frame.drop(columns=frame.geometry.name)), pts, batch_size)


def _ogr_batches(src: Source, layer: str | int | None, batch_size: int) -> Iterator[Batch]:
    """A GDAL file streamed as Arrow batches; attributes stay Arrow-backed (no Python object per value)."""
    line = FIRST_LINE
    try:
        with pyogrio.open_arrow(src.path, layer=layer, encoding=src.encoding, batch_size=batch_size,
                                use_pyarrow=True) as (meta, reader):
            file_crs = CRS.from_user_input(meta["crs"]) if meta.get("crs") else None
            geom_col = meta.get("geometry_name") or "wkb_geometry"
            for batch in reader:
                names = batch.schema.names
                if geom_col in names:
                    pts = points.from_wkb(batch.column(names.index(geom_col)))
                    batch = batch.drop_columns([geom_col])
                else:
                    pts = points.from_shapely(np.full(batch.num_rows, None, dtype=object))
                yield Batch(batch.to_pandas(types_mapper=pd.ArrowDtype), pts,
                            np.arange(line, line + batch.num_rows), file_crs)
                line += batch.num_rows
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise InvalidInput(f"{src.path.name}: GDAL cannot read it: {exc}", field="file") from exc
    except UnicodeDecodeError as exc:
        raise undecodable(src.path, src.encoding, exc) from exc


def paced(batches: Iterator[Batch], parts: int = EDGE_PARTS) -> Iterator[Batch]:
    """The batches, with the first and the last cut into ``parts`` pieces.

    For a consumer that hands each batch to a server working in parallel (the census COPY: the server parses
    one batch while Python checks the next): the server waits idle for the whole first batch and works on
    alone through the whole last one, so smaller pieces at both ends shorten both waits, while pieces
    throughout would cost more in per-batch overhead than they save. Reads one batch ahead to know the last,
    but not before the first is out.
    """

    def cut(batch: Batch) -> Iterator[Batch]:
        bounds = np.unique(np.linspace(0, len(batch), parts + 1).astype(int))
        for start, stop in itertools.pairwise(bounds.tolist()):
            yield batch.part(start, stop)

    current = next(batches, None)
    if current is None:
        return
    yield from cut(current)
    current = next(batches, None)
    while current is not None:
        ahead = next(batches, None)
        if ahead is None:
            yield from cut(current)
        else:
            yield current
        current = ahead


def undecodable(path: Path, encoding: str | None, exc: UnicodeDecodeError) -> InvalidInput:
    """The error for a file GDAL cannot decode in ``encoding`` (field names, or values)."""
    return InvalidInput(
        f"{path.name}: field names or values are not valid {encoding or 'UTF-8'} ({exc.reason} at byte "
        f"{exc.start}); a UTF-8 DBF cuts Chinese field names at 10 bytes — pass --encoding, or use a mapping",
        field="encoding")
