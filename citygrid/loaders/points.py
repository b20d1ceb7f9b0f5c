"""Point coordinates out of a batch of geometries, with the reason each unusable one is refused.

Census files hold one point per row. The common case, a column of 2-D little-endian WKB points (what GDAL
hands over for GeoPackage, Shapefile and GeoJSON points), is read by numpy straight from the Arrow buffers,
some twenty times faster than building shapely objects first. Anything else (multipoints of
one point, other types, Z/M, big-endian, missing or corrupt WKB) goes through shapely row by row in C. The two
paths agree (``tests/test_loaders.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import shapely

_POINT_WKB_BYTES = 21  # byte order (1) + type (4) + x (8) + y (8)


@dataclass
class Points:
    """Per row: ``x``, ``y`` in the source's CRS (NaN where there is no usable point) and ``problem``, the
    reason the row's geometry cannot be used ('' when it can)."""

    x: np.ndarray
    y: np.ndarray
    problem: np.ndarray  # object array of str

    def __len__(self) -> int:
        return len(self.x)

    @property
    def usable(self) -> np.ndarray:
        return self.problem == ""

    def part(self, start: int, stop: int) -> Points:
        """Rows ``start`` to ``stop`` (views, not copies)."""
        return Points(self.x[start:stop], self.y[start:stop], self.problem[start:stop])


def _finish(x: np.ndarray, y: np.ndarray, problem: np.ndarray) -> Points:
    """Flag points with NaN or infinite coordinates (both NaN is how WKB writes POINT EMPTY)."""
    looked = problem == ""
    empty = looked & np.isnan(x) & np.isnan(y)
    problem[empty] = "empty geometry"
    broken = looked & ~empty & ~(np.isfinite(x) & np.isfinite(y))
    problem[broken] = "invalid coordinates (NaN or infinite)"
    x[~looked | empty | broken] = np.nan
    y[~looked | empty | broken] = np.nan
    return Points(x, y, problem)


def from_shapely(geoms: np.ndarray) -> Points:
    """Points from an array of shapely geometries or None (coordinates in the geometries' own CRS). A
    MultiPoint of exactly one point counts as that point."""
    geoms = np.asarray(geoms, dtype=object)
    n = len(geoms)
    problem = np.full(n, "", dtype=object)
    type_id = shapely.get_type_id(geoms)
    empty = (type_id < 0) | shapely.is_empty(geoms)
    single = (type_id == 4) & ~empty & (shapely.get_num_geometries(geoms) == 1)
    problem[empty] = "empty geometry"
    for i in np.flatnonzero(~empty & (type_id != 0) & ~single):
        problem[i] = f"not a point ({geoms[i].geom_type})"
    points = np.where(single, shapely.get_geometry(geoms, 0), geoms)
    x, y = np.full(n, np.nan), np.full(n, np.nan)
    ok = problem == ""
    if ok.any():
        x[ok], y[ok] = shapely.get_x(points[ok]), shapely.get_y(points[ok])
    return _finish(x, y, problem)


def from_wkb(column: pa.Array | pa.ChunkedArray) -> Points:
    """Points from an Arrow column of WKB (binary or large binary; coordinates in the file's CRS)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    n = len(column)
    fast = _plain_points(column)
    if fast is not None:
        x, y = fast
        return _finish(x, y, np.full(n, "", dtype=object))
    return from_shapely(shapely.from_wkb(column.to_numpy(zero_copy_only=False), on_invalid="ignore"))


def _plain_points(column: pa.Array) -> tuple[np.ndarray, np.ndarray] | None:
    """(x, y) when every value is a 2-D little-endian WKB point, else None."""
    n = len(column)
    if n == 0 or column.null_count or not (pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type)):
        return None
    offset_type = np.int64 if pa.types.is_large_binary(column.type) else np.int32
    _, offsets_buffer, data_buffer = column.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=offset_type)[column.offset:column.offset + n + 1]
    if not (np.diff(offsets) == _POINT_WKB_BYTES).all():
        return None
    start = int(offsets[0])
    raw = np.frombuffer(data_buffer, dtype=np.uint8)[start:start + _POINT_WKB_BYTES * n].reshape(n, _POINT_WKB_BYTES)
    kind = np.ascontiguousarray(raw[:, 1:5]).view("<u4").ravel()
    if not ((raw[:, 0] == 1).all() and (kind == 1).all()):
        return None
    x = np.ascontiguousarray(raw[:, 5:13]).view("<f8").ravel().astype(float)
    y = np.ascontiguousarray(raw[:, 13:21]).view("<f8").ravel().astype(float)
    return x, y


GEOMETRY_TEXT_FORMATS = {"wkt": "WKT", "wkb": "hex WKB"}


def from_text(values: np.ndarray, fmt: str) -> Points:
    """Points from a text column of WKT (``fmt="wkt"``) or hex-encoded WKB (``"wkb"``), as a CSV holds them;
    coordinates in the column's own CRS. Parsed in C for the whole column; a value that does not parse is
    the row's problem ("not readable WKT: 'POINT (1'"), an empty one is "empty geometry"."""
    if fmt not in GEOMETRY_TEXT_FORMATS:
        raise ValueError(f"geometry text format must be one of {', '.join(GEOMETRY_TEXT_FORMATS)}: {fmt!r}")
    text = pd.Series(np.asarray(values, dtype=object), dtype=object).fillna("").astype(str).str.strip()
    present = (text != "").to_numpy(dtype=bool)
    geoms = np.full(len(text), None, dtype=object)
    raw = text.to_numpy(dtype=object)[present]
    geoms[present] = (shapely.from_wkt(raw, on_invalid="ignore") if fmt == "wkt"
                      else shapely.from_wkb(raw, on_invalid="ignore"))
    out = from_shapely(geoms)
    unreadable = present & shapely.is_missing(geoms)
    for i in np.flatnonzero(unreadable):
        out.problem[i] = f"not readable {GEOMETRY_TEXT_FORMATS[fmt]}: {raw_value(text.iat[i])!r}"
    return out


def raw_value(value: str, limit: int = 40) -> str:
    """A value as a report quotes it: at most ``limit`` characters."""
    return value if len(value) <= limit else value[:limit] + "…"
