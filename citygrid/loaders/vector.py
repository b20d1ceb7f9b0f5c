"""Read any vector file GDAL reads (or a CSV with coordinate columns) into a GeoDataFrame, with its CRS.

No database here: loaders turn files into frames. The CRS is never guessed silently: it comes from the
user (``crs=``), else from the file; a file with none is refused with a message saying what to pass.
GeoJSON always claims EPSG:4326, so Chinese web-map data (GCJ-02) must be declared by the caller.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from citygrid.errors import InvalidInput
from citygrid.loaders import gdalsafe
from citygrid.loaders.archive import find_dataset, safe_extract
from citygrid.spatial.crs import InputCrs, parse_crs

X_COLUMNS = ("lon", "lng", "longitude", "x", "lon_gcj02", "lon_wgs84", "pointx", "经度", "x坐标")
Y_COLUMNS = ("lat", "latitude", "y", "lat_gcj02", "lat_wgs84", "pointy", "纬度", "y坐标")
CSV_ENCODINGS = ("utf-8-sig", "gb18030")


@dataclass
class VectorFile:
    """A file read into memory.

    Attributes
    ----------
    frame : GeoDataFrame with the file's attributes; geometry in ``source_crs`` (None where a row has none).
        Its own ``.crs`` is what the file claims and is not used: ``source_crs`` is authoritative.
    source_crs : the CRS the coordinates are in (may be the pseudo-CRS GCJ-02 or BD-09).
    crs_from : ``"user"`` or ``"file"``.
    warnings : things the reader noticed but accepted.
    """

    frame: gpd.GeoDataFrame
    source_crs: InputCrs
    crs_from: str
    warnings: list[str] = field(default_factory=list)


def _pick_column(columns: list[str], wanted: tuple[str, ...], given: str | None, what: str) -> str | None:
    if given:
        if given not in columns:
            raise InvalidInput(f"column {given!r} not in file (columns: {', '.join(columns)})", field=what)
        return given
    lower = {c.lower(): c for c in columns}
    for name in wanted:
        if name in lower:
            return lower[name]
    return None


def read_csv_table(path: Path, *, encoding: str | None = None) -> tuple[pd.DataFrame, str]:
    """A CSV as text columns (empty cells as ""), in ``encoding`` or else the first of ``CSV_ENCODINGS``
    that decodes it; returns the table and the encoding used. ``InvalidInput`` when it is not CSV text."""
    encodings = (encoding,) if encoding else CSV_ENCODINGS
    last_error: Exception | None = None
    for enc in encodings:
        try:
            return pd.read_csv(path, dtype=str, encoding=enc, keep_default_na=False), enc
        except UnicodeDecodeError as exc:
            last_error = exc
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise InvalidInput(f"{path.name}: not a readable CSV: {exc}", field="file") from exc
    raise InvalidInput(f"{path.name}: text is neither {' nor '.join(encodings)}: {last_error}", field="encoding")


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
    if x_col is None or y_col is None:
        geometry = np.full(len(table), None, dtype=object)
    else:
        x = pd.to_numeric(table[x_col].str.strip().replace("", np.nan), errors="coerce")
        y = pd.to_numeric(table[y_col].str.strip().replace("", np.nan), errors="coerce")
        bad = (x.isna() != table[x_col].str.strip().eq("")) | (y.isna() != table[y_col].str.strip().eq(""))
        if bad.any():
            line = int(np.flatnonzero(bad.to_numpy())[0]) + 2
            raise InvalidInput(
                f"{path.name} line {line}: coordinates {table[x_col].iloc[line - 2]!r}, "
                f"{table[y_col].iloc[line - 2]!r} are not numbers",
                field=x_col,
            )
        has = x.notna() & y.notna()
        geometry = np.full(len(table), None, dtype=object)
        geometry[has.to_numpy()] = shapely.points(x[has].to_numpy(), y[has].to_numpy())
    return gpd.GeoDataFrame(table, geometry=geometry), enc


# A district boundary has ~10^4 vertices; a feature with more than this is a digitising accident or an attack.
MAX_VERTICES_PER_FEATURE = 500_000
MAX_VERTICES_PER_FILE = 20_000_000


def _check_vertices(frame: pd.DataFrame, name: str) -> None:
    """``InvalidInput`` naming the first feature (1-based) over ``MAX_VERTICES_PER_FEATURE``, or a file over
    ``MAX_VERTICES_PER_FILE`` in all (geometry in any CRS)."""
    if "geometry" not in frame:
        return
    counts = shapely.get_num_coordinates(np.asarray(frame.geometry.values, dtype=object))
    over = np.flatnonzero(counts > MAX_VERTICES_PER_FEATURE)
    if over.size:
        raise InvalidInput(f"{name}: feature {int(over[0]) + 1} has {int(counts[over[0]]):,} vertices, more than "
                           f"the {MAX_VERTICES_PER_FEATURE:,} allowed; simplify it first", field="file")
    if int(counts.sum()) > MAX_VERTICES_PER_FILE:
        raise InvalidInput(f"{name}: {int(counts.sum()):,} vertices in all, more than the "
                           f"{MAX_VERTICES_PER_FILE:,} allowed in one file; split it", field="file")


def read_vector(
    path: str | Path,
    *,
    crs: str | None = None,
    layer: str | int | None = None,
    encoding: str | None = None,
    x_field: str | None = None,
    y_field: str | None = None,
) -> VectorFile:
    """Read ``path`` with pyogrio (Shapefile, GeoPackage, GeoJSON, …), as a CSV of points, or the one dataset
    inside a zip. GDAL opens it only with the driver its suffix names (``loaders.gdalsafe``).

    Parameters
    ----------
    path : the file.
    crs : the CRS the user declares (``EPSG:4547``, ``gcj02``, ``bd09``…); overrides the file's own.
    layer : layer name or index for multi-layer files.
    encoding : attribute encoding when the file does not say it.
    x_field, y_field : coordinate columns of a CSV (common names are recognised).

    Returns
    -------
    VectorFile with the frame in ``source_crs``.
    """
    path = Path(path)
    if not path.exists():
        raise InvalidInput(f"file not found: {path}", field="file")
    if path.is_dir() and not any(path.glob("*.shp")) and not path.suffix.lower() == ".gdb":
        raise InvalidInput(f"{path} is a directory with no Shapefile in it", field="file")
    if path.suffix.lower() == ".zip":
        with tempfile.TemporaryDirectory(prefix="citygrid-zip-") as tmp:
            return read_vector(find_dataset(safe_extract(path, Path(tmp))), crs=crs, layer=layer,
                               encoding=encoding, x_field=x_field, y_field=y_field)
    declared = parse_crs(crs) if crs else None
    warnings: list[str] = []
    if path.suffix.lower() in (".csv", ".txt"):
        frame, _ = read_csv_points(path, x_field=x_field, y_field=y_field, encoding=encoding)
        file_crs = None
    else:
        gdalsafe.safe_info(path, layer=layer, encoding=encoding)  # allowed driver, content and driver checked
        try:
            frame = pyogrio.read_dataframe(path, layer=layer, encoding=encoding)
        except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
            raise InvalidInput(f"{path.name}: GDAL cannot read it: {exc}", field="file") from exc
        file_crs = frame.crs
    _check_vertices(frame, path.name)
    if declared is not None:
        source, crs_from = declared, "user"
        if file_crs is not None and declared.pseudo is None and not file_crs.equals(declared.crs):
            warnings.append(f"file says {file_crs.to_string()}, using the declared {declared.label}")
    elif file_crs is not None:
        source, crs_from = InputCrs(None, file_crs), "file"
    else:
        raise InvalidInput(
            f"{path.name} does not say its CRS; pass one, e.g. --crs EPSG:4326 (lon/lat), the EPSG code of its "
            "projection (EPSG:32633, EPSG:4548 …), or --crs gcj02 for Chinese web-map data",
            field="crs",
        )
    return VectorFile(frame=frame, source_crs=source, crs_from=crs_from, warnings=warnings)
