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
from citygrid.loaders.tables import CSV_SUFFIXES, read_csv_points
from citygrid.spatial.crs import InputCrs, parse_crs


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
    if path.suffix.lower() in CSV_SUFFIXES:
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
