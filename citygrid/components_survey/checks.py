"""Row checks of a census batch: each a small vectorised function returning (bad-row mask, problems).

The checks run in a fixed order over one batch (``census._check_chunk``), and each judges only the rows no
earlier check refused (``bad``): a bad row is reported once, with the first reason found. Every problem is
``errors.problem(field, reason, line=…, obj_id=…)``: the row's file line, its ObjID where it has one (the
census report's ``obj_id`` column) and, added by ``with_points``, ``geom_wkt``: where the row would have been
(deployment CRS), for the bad-rows GeoJSON.

Groups, in order: encoding, the city's own feature IDs, geometry, placement in the district, class and ID,
dates and text, duplicates within the file; ``place_in_grids`` then gives the good rows their grids (and a
warning where the file's BGID differs). Masks are numpy bool arrays as long as the batch; frames are indexed
0 … n-1. No database here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from pyproj import Transformer

from citygrid.components_survey.ids import SeenIds, as_mask, check_obj_ids, serial_keys
from citygrid.components_survey.mapping import MAX_VALUE, STRING, arrow_text, text_column
from citygrid.errors import RowProblem, problem
from citygrid.loaders import points
from citygrid.spatial import crs
from citygrid.spatial.geocode import GridIndex

TEXT_FIELDS = ("ObjName", "DeptCode1", "DeptName1", "DeptCode2", "DeptName2", "DeptCode3", "DeptName3",
               "BGID", "ObjState", "DataSource", "Note")
DATE_FIELDS = ("ORDate", "CHDate")
MAX_TEXT = MAX_VALUE
Found = tuple[np.ndarray, list[RowProblem]]
Reason = str | Callable[[int], str]


class _Flags:
    """The problems of one check: the first reason per row, for rows that ``bad`` does not refuse already.
    ``data`` holds the rows' ``line`` and ``ObjID``."""

    def __init__(self, data: pd.DataFrame, bad: np.ndarray) -> None:
        self.data, self.before = data, bad
        self.mask = np.zeros(len(data), dtype=bool)
        self.problems: list[RowProblem] = []

    def flag(self, mask: np.ndarray, field: str, reason: Reason, severity: str = "error") -> None:
        """Refuse the rows of ``mask`` not refused before, each with ``reason`` (text, or a function of the
        row's position)."""
        new = mask & ~self.before & ~self.mask
        for i in np.flatnonzero(new):
            self.problems.append(row_problem(self.data, i, field, reason(i) if callable(reason) else reason,
                                             severity))
        self.mask |= new

    @property
    def live(self) -> np.ndarray:
        """Rows refused neither before nor here."""
        return ~(self.before | self.mask)

    def found(self) -> Found:
        return self.mask, self.problems


def row_problem(data: pd.DataFrame, i: int, field: str, reason: str, severity: str = "error") -> RowProblem:
    """The problem of row ``i`` of ``data`` (its ``line`` and ``ObjID``: None where it has none)."""
    obj_id = data.at[i, "ObjID"]
    return problem(field, reason, line=int(data.at[i, "line"]), severity=severity,  # type: ignore[arg-type]
                   obj_id=None if pd.isna(obj_id) or obj_id == "" else obj_id, geom_wkt=None)


# ------------------------------------------------------------------------------------------ encoding, own IDs
def check_encoding(data: pd.DataFrame, bad: np.ndarray, bad_lines: set[int]) -> Found:
    """Rows whose record did not decode (``bad_lines``: a DBF's, read with blank attributes)."""
    flags = _Flags(data, bad)
    if bad_lines:
        flags.flag(np.isin(data["line"].to_numpy(), list(bad_lines)), "*",
                   "bad encoding: the record's text does not decode")
    return flags.found()


def check_native_ids(data: pd.DataFrame, bad: np.ndarray, field: str) -> Found:
    """With ``--id-field`` every row needs a feature ID of its own (``data["native_id"]``, trimmed text) of at
    most ``MAX_TEXT`` characters; ``field`` names the file's column in the report."""
    flags = _Flags(data, bad)
    flags.flag(~as_mask(data["native_id"].notna()), field, f"no feature ID in {field} (--id-field)")
    flags.flag(as_mask(data["native_id"].str.len() > MAX_TEXT), field,
               f"the feature ID is longer than {MAX_TEXT} characters")
    return flags.found()


# ------------------------------------------------------------------------------------------ geometry, placement
def check_geometry(data: pd.DataFrame, bad: np.ndarray, pts: points.Points) -> Found:
    """Rows without a usable point (empty, not a point, NaN or infinite: ``pts.problem`` says which)."""
    flags = _Flags(data, bad)
    flags.flag(~pts.usable, "geometry", lambda i: pts.problem[i])
    return flags.found()


def storage_xy(pts: points.Points, rows: np.ndarray, source: crs.InputCrs, transformer: Transformer
               ) -> tuple[np.ndarray, np.ndarray]:
    """x, y in the deployment CRS (``transformer``'s target) of the points of ``rows`` (a mask), which are in
    ``source`` (GCJ-02/BD-09 undone first); NaN elsewhere."""
    sx, sy = np.full(len(pts), np.nan), np.full(len(pts), np.nan)
    if rows.any():
        lx, ly = pts.x[rows], pts.y[rows]
        if source.pseudo:
            lx, ly = crs.pseudo_to_wgs84(source.pseudo, lx, ly)
        sx[rows], sy[rows] = transformer.transform(lx, ly)
    return sx, sy


def check_inside(data: pd.DataFrame, bad: np.ndarray, sx: np.ndarray, sy: np.ndarray, near: Any,
                 district: Any) -> Found:
    """Rows whose point (``sx``, ``sy``, deployment CRS) is outside ``near`` (the district, a metre wider,
    prepared), with how far outside ``district`` (same CRS) it is."""
    flags = _Flags(data, bad)
    outside = ~shapely.contains_xy(near, np.nan_to_num(sx), np.nan_to_num(sy))
    flags.flag(outside, "geometry",
               lambda i: f"outside the district by {district.distance(shapely.Point(sx[i], sy[i])):.0f} m")
    return flags.found()


# ------------------------------------------------------------------------------------------ class and ID
def class_codes(data: pd.DataFrame) -> pd.Series:
    """Each row's class: its ClassCode, else read from its ObjID (digits 7–10)."""
    return data["ClassCode"].where(data["ClassCode"].notna(), data["ObjID"].str.slice(6, 10))


def check_class_and_id(data: pd.DataFrame, bad: np.ndarray, known_classes: set[str], district_code: str
                       ) -> Found:
    """Rows without a class, of a class the scheme lacks (``known_classes``), or whose ObjID is not one of
    ``district_code`` and its class (``ids.check_obj_ids``). ``data["ClassCode"]`` is the rows' class
    (``class_codes``)."""
    flags = _Flags(data, bad)
    cls = data["ClassCode"]
    missing = cls.isna().to_numpy(dtype=bool)
    flags.flag(missing, "ClassCode", "no class code (and no ObjID to read it from)")
    flags.flag(~as_mask(cls.isin(known_classes)) & ~missing, "ClassCode",
               lambda i: f"unknown component class {cls[i]!r}")
    id_reasons = check_obj_ids(data["ObjID"], cls, district_code)
    flags.flag(id_reasons != "", "ObjID", lambda i: id_reasons[i])
    return flags.found()


# ------------------------------------------------------------------------------------------ dates and text
def _parse_dates(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(ISO date strings or None, mask of unparseable or implausible non-empty values) of text values."""
    present = raw.notna()
    parsed = pd.to_datetime(raw.where(present).str.replace("/", "-").str.replace(".", "-"),
                            errors="coerce", format="mixed")
    compact = raw.where(present & parsed.isna() & raw.fillna("").str.fullmatch(r"[0-9]{8}"))
    parsed = parsed.fillna(pd.to_datetime(compact, format="%Y%m%d", errors="coerce"))
    plausible = (parsed.dt.year >= 1900) & (parsed <= pd.Timestamp.now() + pd.Timedelta(days=366))
    bad = present & ~(parsed.notna() & plausible)
    return parsed.dt.strftime("%Y-%m-%d").where(~bad & present, None), bad


def parse_dates(raw: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Arrow-backed text dates (2024-03-01, 2024/3/1, 2024.03.01, 20240301 …) as (ISO dates, Arrow-backed,
    missing where empty or bad; mask of values that are no plausible date: unparseable, before 1900 or more
    than a year ahead). Each distinct value is parsed once (a census repeats a few thousand dates over a
    million rows)."""
    encoded = pc.dictionary_encode(pa.array(raw))
    distinct = pd.Series(encoded.dictionary.to_numpy(zero_copy_only=False), dtype=object)
    iso, bad = _parse_dates(distinct)
    index = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    iso_values = np.append(iso.to_numpy(dtype=object), None)
    bad_values = np.append(bad.to_numpy(dtype=bool), False)
    return (pd.Series(pa.array(iso_values[index], type=pa.string(), from_pandas=True), dtype=STRING),
            bad_values[index])


def check_dates_and_text(data: pd.DataFrame, bad: np.ndarray, raw_dates: dict[str, pd.Series],
                         bad_dates: dict[str, np.ndarray], others: list[pd.Series]) -> Found:
    """Rows with a bad date (``bad_dates`` per field, from ``parse_dates`` of ``raw_dates``), a standard text
    value longer than ``MAX_TEXT``, or a NUL character in any text (``TEXT_FIELDS`` and ``others``, the
    file's other columns as text): PostgreSQL text and jsonb cannot hold one."""
    flags = _Flags(data, bad)
    for name, mask in bad_dates.items():
        flags.flag(mask, name, lambda i, raw=raw_dates[name]: f"bad date {raw[i]!r}")
    too_long = np.zeros(len(data), dtype=bool)
    for name in TEXT_FIELDS:
        too_long |= as_mask(data[name].str.len() > MAX_TEXT)
    flags.flag(too_long, "*", f"a text value is longer than {MAX_TEXT} characters")
    nul = np.zeros(len(data), dtype=bool)
    for values in [*(data[name] for name in TEXT_FIELDS), *others]:
        nul |= as_mask(values.str.contains("\x00", regex=False))
    flags.flag(nul, "*", "a text value contains a NUL character (byte 0), which PostgreSQL cannot store")
    return flags.found()


# ------------------------------------------------------------------------------------------ duplicates
def hash_keys(values: pd.Series) -> np.ndarray:
    """64-bit keys of text values for ``SeenIds`` (pandas' vectorised hash; two different IDs share a key with
    a chance of about n²/2⁶⁵, 3·10⁻⁸ for a million)."""
    return pd.util.hash_array(values.to_numpy(dtype=object)).view(np.int64)


@dataclass
class NativeIds:
    """The city's own feature IDs: their column (``--id-field``) and those met so far in the file."""

    field: str
    seen: SeenIds


def check_duplicates(data: pd.DataFrame, bad: np.ndarray, seen: SeenIds, district_code: str,
                     native: NativeIds | None = None) -> Found:
    """Rows repeating an ObjID (or, with ``native``, a feature ID) met earlier in the file: the first stays.
    Run last: only rows every other check passed are remembered (in ``seen`` and ``native.seen``, across
    batches); their ObjIDs are checked already (16 digits)."""
    flags = _Flags(data, bad)
    lines = data["line"].to_numpy()
    with_id = np.flatnonzero(flags.live & data["ObjID"].notna().to_numpy(dtype=bool))
    first_line = np.zeros(len(data), dtype=np.int64)
    first_line[with_id] = seen.add(serial_keys(data["ObjID"].iloc[with_id], district_code), lines[with_id])
    flags.flag(first_line > 0, "ObjID", lambda i: f"duplicate ObjID (first at line {first_line[i]})")
    if native is not None:  # the feature ID keys the reconciliation: one row per ID
        live = np.flatnonzero(flags.live)
        first_native = np.zeros(len(data), dtype=np.int64)
        first_native[live] = native.seen.add(hash_keys(data["native_id"].iloc[live]), lines[live])
        flags.flag(first_native > 0, native.field,
                   lambda i: f"duplicate feature ID {data.at[i, 'native_id']!r} (first at line {first_native[i]})")
    return flags.found()


# ------------------------------------------------------------------------------------------ the good rows
def place_in_grids(frame: pd.DataFrame, grid_index: GridIndex) -> list[RowProblem]:
    """Give the good rows (``x``, ``y`` in the grids' CRS) ``unit_grid_code`` and ``supervision_code`` from
    the same index the cases use (None outside every grid, or with no grid version); a warning for each row
    whose BGID differs from the grid at its point (the computed grid is stored)."""
    idx = grid_index.assign(frame["x"].to_numpy(), frame["y"].to_numpy())
    has = idx >= 0
    if len(grid_index):
        frame["unit_grid_code"] = np.where(has, grid_index.codes[np.maximum(idx, 0)], None)
        frame["supervision_code"] = np.where(has, grid_index.supervision_codes[np.maximum(idx, 0)], None)
    else:
        frame["unit_grid_code"] = frame["supervision_code"] = None
    mismatch = np.flatnonzero(as_mask(frame["BGID"].notna()) & has
                              & (frame["BGID"].fillna("").to_numpy(dtype=object)
                                 != frame["unit_grid_code"].to_numpy(dtype=object)))
    return [row_problem(frame, i, "BGID", f"BGID {frame.at[i, 'BGID']} differs from the grid at the point "
                                          f"({frame.at[i, 'unit_grid_code']}); the computed grid is stored",
                        severity="warning") for i in mismatch]


def extra_attributes(attrs: pd.DataFrame, good: np.ndarray, extra: list[str]) -> list[str] | str:
    """The file's ``extra`` columns of the ``good`` rows as one JSON object per row (text values, nulls
    kept), or ``"{}"`` for every row when there are none."""
    if not extra or not good.any():
        return "{}"
    others = attrs.loc[good, extra].reset_index(drop=True)
    others = pd.DataFrame({c: pd.Series(arrow_text(pa.array(others[c], from_pandas=True)), dtype=object)
                           .where(others[c].notna().to_numpy(dtype=bool), None) for c in extra})
    return others.to_json(orient="records", lines=True, force_ascii=False).splitlines()


def with_points(problems: list[RowProblem], bad: np.ndarray, lines: np.ndarray, sx: np.ndarray,
                sy: np.ndarray) -> list[RowProblem]:
    """``problems`` with ``geom_wkt``: the point (deployment CRS) of each bad row that could be placed, for
    the bad-rows GeoJSON; None elsewhere."""
    where = {int(lines[i]): f"POINT ({float(sx[i])!r} {float(sy[i])!r})" for i in np.flatnonzero(bad)
             if np.isfinite(sx[i]) and np.isfinite(sy[i])}
    for p in problems:
        p["geom_wkt"] = where.get(p["line"])  # type: ignore[typeddict-unknown-key]
    return problems


def others_as_text(attrs: pd.DataFrame, columns: list[str]) -> list[pd.Series]:
    """The file's ``columns`` as trimmed Arrow-backed text (``mapping.text_column``)."""
    return [text_column(attrs[c], len(attrs)) for c in columns]
