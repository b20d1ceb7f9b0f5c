"""Component census (部件普查) import: read, validate row by row, place, reconcile, commit.

``import_file`` works inside the caller's transaction: it streams the file in chunks (pyogrio + Arrow),
validates each chunk with vectorised checks and COPYs the good rows into a fresh load table (the server parses
one chunk while Python checks the next), fills in missing ObjIDs, compares the load with the current census
(new / moved / changed / unchanged / retired) and, unless it is a dry run or too many rows are bad, makes the
load table the district's census partition: unchanged rows dropped, earlier versions copied in with the
superseded ones closed, indexes built once, partition swapped (``store.swap_census``). A census that changes
little (``store.small_change``) and has its partition already is updated in place instead: the superseded
versions closed, the new ones inserted (``store.apply_in_place``). Nothing in ``components`` changes unless
the whole run succeeds.

What can be retired is scoped: by default only current components of the classes the file holds (a file of
hydrants is the census of hydrants, not of the district), with ``scope="all"`` the district's whole census;
and a reconciliation that would retire more than ``max_retire_ratio`` of that scope is refused unless
``allow_mass_retire``. With ``id_field`` rows are matched on the city's own feature IDs instead of ObjIDs.

Coordinates: the file's CRS (or the declared one, incl. GCJ-02/BD-09) is converted to the deployment CRS;
every stored point is in it.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyogrio
import shapely
import sqlalchemy as sa
from pyproj import CRS, Transformer
from sqlalchemy.engine import Connection

from citygrid.components_survey import store
from citygrid.components_survey.ids import SeenIds, as_mask, check_obj_ids, serial_keys
from citygrid.components_survey.mapping import CensusMapping, parse_mapping, resolve_columns
from citygrid.components_survey.taxonomy import DEFAULT_SCHEME
from citygrid.errors import InvalidInput
from citygrid.gcpause import existing_objects_frozen
from citygrid.loaders import gdalsafe, points
from citygrid.loaders.archive import find_dataset, safe_extract
from citygrid.loaders.copytext import copy_text
from citygrid.loaders.encoding import blank_records, shapefile_encoding
from citygrid.loaders.plaintext import control_character, spreadsheet_safe
from citygrid.loaders.vector import read_csv_points, read_csv_table
from citygrid.spatial import crs
from citygrid.spatial import store as spatial_store
from citygrid.spatial.boundaries import district_boundary
from citygrid.spatial.db import deployment_srid
from citygrid.spatial.geocode import GridIndex
from citygrid.spatial.wkb import point_ewkb_hex

CHUNK = 100_000
MAX_FILE_BYTES = 4 * 2**30
TEXT_FIELDS = ("ObjName", "DeptCode1", "DeptName1", "DeptCode2", "DeptName2", "DeptCode3", "DeptName3",
               "BGID", "ObjState", "DataSource", "Note")
MAX_TEXT = 500
SCOPES = ("classes", "all")
Progress = Callable[[float, dict[str, int]], None]


@dataclass(frozen=True)
class CensusOptions:
    """What the user said about the file. ``max_bad_ratio``: above this share of bad rows nothing is imported;
    at or below it the good rows are imported and the bad ones reported. ``partial``: the file updates part of
    the census, so components absent from it are not retired. ``scope``: which current components the file
    is the whole census of, so that those it lacks are retired: ``classes`` (default) those of the classes
    the file holds, ``all`` the district's whole census. ``max_retire_ratio``: a reconciliation that would
    retire more than this share of the current components in scope is refused unless ``allow_mass_retire``.
    ``mapping``: ``mapping.CensusMapping.to_dict()`` (or a flat ``{attribute: column}``). ``id_field``: the
    file's column holding the city's own feature ID, which then keys the reconciliation (else the mapping's
    ``id_field``)."""

    district: str
    crs: str | None = None
    encoding: str | None = None
    layer: str | None = None
    mapping: dict[str, Any] = field(default_factory=dict)
    x_field: str | None = None
    y_field: str | None = None
    dry_run: bool = False
    max_bad_ratio: float = 0.05
    move_tolerance_m: float = 5.0
    partial: bool = False
    scheme: str = DEFAULT_SCHEME
    synthetic: bool = False
    chunk_size: int = CHUNK
    id_field: str | None = None
    scope: str = "classes"
    max_retire_ratio: float = 0.2
    allow_mass_retire: bool = False

    def census_mapping(self) -> CensusMapping:
        """``mapping``, checked (``mapping.parse_mapping``; ``InvalidInput`` when it is not a mapping)."""
        return parse_mapping(self.mapping)

    @property
    def native_field(self) -> str | None:
        """The column holding the city's own feature IDs, if any (``id_field``, else the mapping's)."""
        return self.id_field or self.census_mapping().id_field

    def validate(self) -> CensusOptions:
        if self.scope not in SCOPES:
            raise InvalidInput(f"scope must be one of {', '.join(SCOPES)}, not {str(self.scope)[:40]!r}",
                               field="scope")
        if not 0 <= self.max_retire_ratio <= 1:
            raise InvalidInput("max_retire_ratio must be between 0 and 1", field="max_retire_ratio")
        if self.id_field is not None and (not self.id_field.strip() or len(self.id_field) > 200
                                          or control_character(self.id_field, single_line=True)):
            raise InvalidInput("id_field must name a column: 1-200 characters, no control characters",
                               field="id_field")
        self.census_mapping()
        if not 0 <= self.max_bad_ratio <= 1:
            raise InvalidInput("max_bad_ratio must be between 0 and 1", field="max_bad_ratio")
        if not 0 <= self.move_tolerance_m <= 10_000:
            raise InvalidInput("move_tolerance_m must be between 0 and 10,000 m", field="move_tolerance_m")
        if not 100 <= self.chunk_size <= 1_000_000:
            raise InvalidInput("chunk_size must be between 100 and 1,000,000", field="chunk_size")
        return self


@dataclass
class CensusResult:
    state: str  # preview | committed | rejected
    counts: dict[str, int]
    problems: list[dict[str, Any]]
    reconciliation: dict[str, Any]
    warnings: list[str]
    encoding: str | None
    source_crs: str


# ------------------------------------------------------------------------------------------ reading
@dataclass
class _Source:
    path: Path
    kind: str  # csv | ogr
    encoding: str | None
    encoding_source: str | None
    bad_encoding_lines: set[int]
    total: int


def _open_source(path: Path, options: CensusOptions, workdir: Path) -> _Source:
    if not path.exists():
        raise InvalidInput(f"file not found: {path}", field="file")
    if path.is_file() and path.stat().st_size > MAX_FILE_BYTES:
        raise InvalidInput(f"{path.name} is larger than {MAX_FILE_BYTES // 2**30} GiB", field="file")
    if path.suffix.lower() == ".zip":
        path = find_dataset(safe_extract(path, workdir / "unzipped"))
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt"):
        return _Source(path, "csv", options.encoding, "user" if options.encoding else None, set(), 0)
    encoding, source, bad = options.encoding, "user" if options.encoding else None, set()
    if suffix == ".shp":
        report = shapefile_encoding(path, options.encoding)
        encoding, source, bad = report.encoding, report.source, set(report.bad_lines)
        if bad:
            path = blank_records(path, report.bad_lines, workdir / "blanked")
    try:
        info = gdalsafe.safe_info(path, layer=options.layer, encoding=encoding)
    except UnicodeDecodeError as exc:
        raise _undecodable(path, encoding, exc) from exc
    return _Source(path, "ogr", encoding, source, bad, int(info.get("features") or 0))


def _batches(src: _Source, options: CensusOptions) -> Iterator[tuple[pd.DataFrame, points.Points, CRS | None]]:
    """(attributes as Arrow-backed columns, points in the file's CRS, file CRS) per chunk."""
    geometry = options.census_mapping().geometry
    if geometry is not None and src.kind != "csv":
        raise InvalidInput(f"the mapping's geometry: {{{geometry[0]}: …}} reads a CSV column; {src.path.name} "
                           "has geometry of its own", field="mapping")
    if geometry is not None:
        fmt, column = geometry
        table, src.encoding = read_csv_table(src.path, encoding=options.encoding)
        if column not in table.columns:
            raise InvalidInput(f"geometry column {column!r} not in the file (columns: {', '.join(table.columns)})",
                               field="mapping")
        src.total = len(table)
        values = table[column].to_numpy(dtype=object)
        attrs = table.drop(columns=[column])
        for start in range(0, len(table), options.chunk_size):
            stop = start + options.chunk_size
            yield (attrs.iloc[start:stop].reset_index(drop=True), points.from_text(values[start:stop], fmt), None)
        return
    if src.kind == "csv":
        frame, encoding = read_csv_points(src.path, x_field=options.x_field, y_field=options.y_field,
                                          encoding=options.encoding)
        src.encoding, src.total = encoding, len(frame)
        geoms = np.asarray(frame.geometry.values, dtype=object)
        attrs = pd.DataFrame(frame.drop(columns=frame.geometry.name))
        for start in range(0, len(frame), options.chunk_size):
            stop = start + options.chunk_size
            yield (attrs.iloc[start:stop].reset_index(drop=True), points.from_shapely(geoms[start:stop]), None)
        return
    try:
        with pyogrio.open_arrow(src.path, layer=options.layer, encoding=src.encoding,
                                batch_size=options.chunk_size, use_pyarrow=True) as (meta, reader):
            file_crs = CRS.from_user_input(meta["crs"]) if meta.get("crs") else None
            geom_col = meta.get("geometry_name") or "wkb_geometry"
            for batch in reader:
                names = batch.schema.names
                if geom_col in names:
                    pts = points.from_wkb(batch.column(names.index(geom_col)))
                    batch = batch.drop_columns([geom_col])
                else:
                    pts = points.from_shapely(np.full(batch.num_rows, None, dtype=object))
                yield batch.to_pandas(types_mapper=pd.ArrowDtype), pts, file_crs
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise InvalidInput(f"{src.path.name}: GDAL cannot read it: {exc}", field="file") from exc
    except UnicodeDecodeError as exc:
        raise _undecodable(src.path, src.encoding, exc) from exc


EDGE_PARTS = 4


def _paced(batches: Iterator[tuple[pd.DataFrame, points.Points, CRS | None]], parts: int = EDGE_PARTS
           ) -> Iterator[tuple[pd.DataFrame, points.Points, CRS | None]]:
    """The batches, with the first and the last cut into ``parts`` pieces. The server parses one batch while
    Python checks the next (``store.LoadWriter``), so it waits idle for the whole first batch and works on
    alone through the whole last one; smaller pieces at both ends shorten both waits (0.2-0.3 s per million
    rows), and pieces throughout would cost more in per-batch overhead than they save. Reads one batch ahead
    to know the last, but not before the first is out."""

    def cut(batch: tuple[pd.DataFrame, points.Points, CRS | None]
            ) -> Iterator[tuple[pd.DataFrame, points.Points, CRS | None]]:
        attrs, pts, file_crs = batch
        bounds = np.unique(np.linspace(0, len(attrs), parts + 1).astype(int))
        for start, stop in itertools.pairwise(bounds.tolist()):
            yield attrs.iloc[start:stop].reset_index(drop=True), pts.part(start, stop), file_crs

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


def _undecodable(path: Path, encoding: str | None, exc: UnicodeDecodeError) -> InvalidInput:
    return InvalidInput(
        f"{path.name}: field names or values are not valid {encoding or 'UTF-8'} ({exc.reason} at byte "
        f"{exc.start}); a UTF-8 DBF cuts Chinese field names at 10 bytes — pass --encoding, or use a mapping",
        field="encoding")


# ------------------------------------------------------------------------------------------ validation
_STRING = pd.ArrowDtype(pa.string())


def _arrow_text(values: pa.Array) -> pa.Array:
    """Any Arrow column as text: integral floats without '.0' (numeric IDs read from a DBF), other values as
    Arrow renders them, nulls kept."""
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if pa.types.is_string(values.type):
        return values
    if pa.types.is_large_string(values.type) or pa.types.is_integer(values.type):
        return values.cast(pa.string())
    if pa.types.is_floating(values.type):
        numbers = values.to_numpy(zero_copy_only=False)
        integral = np.isfinite(numbers) & (np.floor(numbers) == numbers) & (np.abs(numbers) < 2**53)
        out = np.full(len(numbers), None, dtype=object)
        out[integral] = pa.array(numbers[integral].astype(np.int64)).cast(pa.string()).to_numpy(zero_copy_only=False)
        other = np.isfinite(numbers) & ~integral
        out[other] = [str(v) for v in numbers[other]]
        return pa.array(out, type=pa.string())
    try:
        return values.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array([None if v is None else str(v) for v in values.to_pylist()], type=pa.string())


def _text(series: pd.Series | None, n: int) -> pd.Series:
    """A column as Arrow-backed text, trimmed, empty values missing (None: a column the file lacks)."""
    if series is None:
        return pd.Series(pa.nulls(n, pa.string()), dtype=_STRING)
    values = _arrow_text(pa.array(series, from_pandas=True))
    trimmed = pc.utf8_trim_whitespace(values)
    return pd.Series(pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed), dtype=_STRING)


def _constant(value: str, n: int) -> pd.Series:
    """One text value for ``n`` rows (a mapping's ``set:``), trimmed as a file's values are."""
    return _text(pd.Series(pa.array(np.full(n, value, dtype=object), type=pa.string()), dtype=_STRING), n)


def _map_values(values: pd.Series, table: dict[str, str], case_sensitive: bool = False) -> pd.Series:
    """Text values (Arrow-backed, trimmed) with those ``table`` lists replaced by ours (a mapping's
    ``values:``), ignoring case unless ``case_sensitive``; the others kept. A look-up in C over the whole
    column."""
    raw = pa.array(values)
    keys = list(table) if case_sensitive else [key.lower() for key in table]
    hit = pc.index_in(raw if case_sensitive else pc.utf8_lower(raw), value_set=pa.array(keys, type=pa.string()))
    mapped = pc.coalesce(pc.take(pa.array(list(table.values()), type=pa.string()), hit), raw)
    return pd.Series(pc.if_else(pc.equal(mapped, ""), pa.scalar(None, pa.string()), mapped), dtype=_STRING)


def _hash_keys(values: pd.Series) -> np.ndarray:
    """64-bit keys of text values for ``SeenIds`` (pandas' vectorised hash; two different IDs share a key with
    a chance of about n²/2⁶⁵, 3·10⁻⁸ for a million)."""
    return pd.util.hash_array(values.to_numpy(dtype=object)).view(np.int64)


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


def _dates(raw: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """``_parse_dates`` of Arrow-backed text, parsing each distinct value once (a census repeats a few
    thousand dates over a million rows)."""
    encoded = pc.dictionary_encode(pa.array(raw))
    distinct = pd.Series(encoded.dictionary.to_numpy(zero_copy_only=False), dtype=object)
    iso, bad = _parse_dates(distinct)
    index = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    iso_values = np.append(iso.to_numpy(dtype=object), None)
    bad_values = np.append(bad.to_numpy(dtype=bool), False)
    return (pd.Series(pa.array(iso_values[index], type=pa.string(), from_pandas=True), dtype=_STRING),
            bad_values[index])


@dataclass
class _Checked:
    frame: pd.DataFrame  # good rows: standard columns + x, y (storage CRS), line
    problems: list[dict[str, Any]]


def _problem(line: int, obj_id: Any, field_name: str, reason: str, wkt: str | None = None,
             severity: str = "error") -> dict[str, Any]:
    return {"line": int(line), "obj_id": None if pd.isna(obj_id) or obj_id == "" else obj_id, "field": field_name,
            "reason": reason, "geom_wkt": wkt, "severity": severity}


@dataclass
class _Native:
    """The city's own feature IDs: their column (``--id-field``) and those met so far in the file."""

    field: str
    seen: SeenIds


def _check_chunk(attrs: pd.DataFrame, pts: points.Points, lines: np.ndarray, columns: dict[str, str],
                 source: crs.InputCrs, srid: int, transformer: Transformer, district: Any, near: Any,
                 known_classes: set[str], seen: SeenIds, bad_encoding: set[int],
                 grid_index: GridIndex, district_code: str, mapping: CensusMapping | None = None,
                 native: _Native | None = None) -> _Checked:
    """Validate one chunk (points in the file's CRS; ``district`` and ``near`` in EPSG:``srid``): the good
    rows with x, y in EPSG:``srid`` and their grids, and a problem per bad row (the first reason found).
    ``mapping``'s constants and value maps apply before any check; with ``native`` every row needs a
    feature ID of its own (kept as ``native_id``)."""
    n = len(attrs)
    mapping = mapping or CensusMapping()
    cols = {name: attrs.get(col) for name, col in columns.items()}

    def attribute(name: str) -> pd.Series:
        values = _constant(mapping.constants[name], n) if name in mapping.constants else _text(cols.get(name), n)
        if name not in mapping.values:
            return values
        return _map_values(values, mapping.values[name], mapping.case_sensitive)

    data = pd.DataFrame({name: attribute(name) for name in ("ObjID", "ClassCode", *TEXT_FIELDS)})
    raw_dates = {name: attribute(name) for name in ("ORDate", "CHDate")}
    data["ORDate"], bad_or = _dates(raw_dates["ORDate"])
    data["CHDate"], bad_ch = _dates(raw_dates["CHDate"])
    data["line"] = lines
    problems: list[dict[str, Any]] = []
    bad = np.zeros(n, dtype=bool)

    def flag(mask: np.ndarray, field_name: str, reason: Any) -> None:
        for i in np.flatnonzero(mask & ~bad):
            problems.append(_problem(lines[i], data.at[i, "ObjID"], field_name,
                                     reason(i) if callable(reason) else reason))
        bad[mask] = True

    undecodable = np.isin(lines, list(bad_encoding)) if bad_encoding else np.zeros(n, dtype=bool)
    flag(undecodable, "*", "bad encoding: the record's text does not decode")
    if native is not None:
        data["native_id"] = _text(attrs[native.field], n)
        flag(~as_mask(data["native_id"].notna()), native.field, f"no feature ID in {native.field} (--id-field)")
        flag(as_mask(data["native_id"].str.len() > MAX_TEXT), native.field,
             f"the feature ID is longer than {MAX_TEXT} characters")
    # Geometry
    flag(~pts.usable, "geometry", lambda i: pts.problem[i])
    sx, sy = np.full(n, np.nan), np.full(n, np.nan)
    live = ~bad
    if live.any():
        lx, ly = pts.x[live], pts.y[live]
        if source.pseudo:
            lx, ly = crs.pseudo_to_wgs84(source.pseudo, lx, ly)
        sx[live], sy[live] = transformer.transform(lx, ly)
    outside = ~bad & ~shapely.contains_xy(near, np.nan_to_num(sx), np.nan_to_num(sy))
    flag(outside, "geometry", lambda i: (f"outside the district by "
                                         f"{district.distance(shapely.Point(sx[i], sy[i])):.0f} m"))
    # Class and ID
    cls = data["ClassCode"].where(data["ClassCode"].notna(), data["ObjID"].str.slice(6, 10))
    flag(cls.isna().to_numpy(dtype=bool), "ClassCode", "no class code (and no ObjID to read it from)")
    flag(~as_mask(cls.isin(known_classes)) & cls.notna().to_numpy(dtype=bool), "ClassCode",
         lambda i: f"unknown component class {cls[i]!r}")
    data["ClassCode"] = cls
    id_reasons = check_obj_ids(data["ObjID"], cls, district_code)
    flag(id_reasons != "", "ObjID", lambda i: id_reasons[i])
    flag(bad_or, "ORDate", lambda i: f"bad date {raw_dates['ORDate'][i]!r}")
    flag(bad_ch, "CHDate", lambda i: f"bad date {raw_dates['CHDate'][i]!r}")
    too_long = np.zeros(n, dtype=bool)
    for name in TEXT_FIELDS:
        too_long |= as_mask(data[name].str.len() > MAX_TEXT)
    flag(too_long, "*", f"a text value is longer than {MAX_TEXT} characters")
    # PostgreSQL text cannot hold a NUL character (nor can jsonb, for the extra columns).
    nul = np.zeros(n, dtype=bool)
    for values in [*(data[name] for name in TEXT_FIELDS), *(_text(attrs[c], n) for c in attrs.columns
                                                            if c not in columns.values())]:
        nul |= as_mask(values.str.contains("\x00", regex=False))
    flag(nul, "*", "a text value contains a NUL character (byte 0), which PostgreSQL cannot store")
    # Duplicates within the file (the first occurrence stays); IDs left here are 16 digits.
    with_id = np.flatnonzero(~bad & data["ObjID"].notna().to_numpy(dtype=bool))
    first_line = np.zeros(n, dtype=np.int64)
    first_line[with_id] = seen.add(serial_keys(data["ObjID"].iloc[with_id], district_code), lines[with_id])
    flag(first_line > 0, "ObjID", lambda i: f"duplicate ObjID (first at line {first_line[i]})")
    if native is not None:  # the feature ID keys the reconciliation: one row per ID
        live = np.flatnonzero(~bad)
        first_native = np.zeros(n, dtype=np.int64)
        first_native[live] = native.seen.add(_hash_keys(data["native_id"].iloc[live]), lines[live])
        flag(first_native > 0, native.field,
             lambda i: f"duplicate feature ID {data.at[i, 'native_id']!r} (first at line {first_native[i]})")
    good = ~bad
    frame = data[good].reset_index(drop=True)
    frame["x"], frame["y"] = sx[good], sy[good]
    # Grid assignment with the same index the cases use
    idx = grid_index.assign(frame["x"].to_numpy(), frame["y"].to_numpy())
    has = idx >= 0
    frame["unit_grid_code"] = np.where(has, grid_index.codes[np.maximum(idx, 0)], None) if len(grid_index) else None
    frame["supervision_code"] = (np.where(has, grid_index.supervision_codes[np.maximum(idx, 0)], None)
                                 if len(grid_index) else None)
    mismatch = np.flatnonzero(as_mask(frame["BGID"].notna()) & has
                              & (frame["BGID"].fillna("").to_numpy(dtype=object)
                                 != frame["unit_grid_code"].to_numpy(dtype=object)))
    for i in mismatch:
        row = frame.iloc[i]
        problems.append(_problem(row["line"], row["ObjID"], "BGID",
                                 f"BGID {row['BGID']} differs from the grid at the point ({row['unit_grid_code']}); "
                                 "the computed grid is stored", severity="warning"))
    extra = [c for c in attrs.columns if c not in columns.values() and (native is None or c != native.field)]
    if extra and good.any():
        others = attrs.loc[good, extra].reset_index(drop=True)
        others = pd.DataFrame({c: pd.Series(_arrow_text(pa.array(others[c], from_pandas=True)), dtype=object)
                               .where(others[c].notna().to_numpy(dtype=bool), None) for c in extra})
        frame["attrs"] = others.to_json(orient="records", lines=True, force_ascii=False).splitlines()
    else:
        frame["attrs"] = "{}"
    # Where a bad row could be placed, keep its point (deployment CRS) for the bad-rows GeoJSON.
    where = {int(lines[i]): f"POINT ({float(sx[i])!r} {float(sy[i])!r})" for i in np.flatnonzero(bad)
             if np.isfinite(sx[i]) and np.isfinite(sy[i])}
    for p in problems:
        p["geom_wkt"] = where.get(p["line"])
    return _Checked(frame=frame, problems=problems)


# ------------------------------------------------------------------------------------------ pipeline
def _first_chunk(attrs: pd.DataFrame, pts: points.Points, file_crs: CRS | None, src: _Source,
                 options: CensusOptions, srid: int, district_geom: Any, centre_lon: float, warnings: list[str]
                 ) -> tuple[crs.InputCrs, Transformer, dict[str, str]]:
    """The file's CRS (declared or embedded), its transformer to EPSG:``srid`` and the column mapping, after
    checking the first points against the district (``district_geom`` in EPSG:``srid``)."""
    if options.crs:
        source = crs.parse_crs(options.crs)
    elif file_crs is not None:
        source = crs.InputCrs(None, file_crs)
    else:
        raise InvalidInput(f"{src.path.name} does not say its CRS; pass --crs (e.g. EPSG:{srid}, the "
                           "deployment's, or EPSG:4326 for lon/lat; gcj02 or bd09 for Chinese web maps)",
                           field="crs")
    if (warning := crs.datum_warning(source)) is not None:
        warnings.append(warning)
    transformer = crs.transformer(source.crs, CRS.from_epsg(srid))
    usable = np.flatnonzero(pts.usable[:2000])
    if len(usable):
        diagnosis = crs.diagnose_placement(pts.x[usable], pts.y[usable], source, district_geom, srid, centre_lon)
        if diagnosis:
            raise InvalidInput(f"coordinates of {src.path.name} do not fit district "
                               f"{options.district}: {diagnosis}", field="crs")
    native = options.native_field
    if native is not None and native not in attrs.columns:
        raise InvalidInput(f"the feature ID column {native!r} (--id-field) is not in the file (columns: "
                           f"{', '.join(map(str, attrs.columns))})", field="id_field")
    return source, transformer, resolve_columns(list(attrs.columns), options.census_mapping(),
                                                reserved=(native,) if native else ())


_FRAME_TO_LOAD = {"ObjID": "obj_id", "ClassCode": "class_code", "ObjName": "obj_name",
                  "DeptCode1": "dept_code1", "DeptName1": "dept_name1", "DeptCode2": "dept_code2",
                  "DeptName2": "dept_name2", "DeptCode3": "dept_code3", "DeptName3": "dept_name3",
                  "BGID": "bgid_in_file", "ObjState": "obj_state", "ORDate": "or_date", "CHDate": "ch_date",
                  "DataSource": "data_source", "Note": "note"}


# Load columns that hold only digits, codes, ISO dates or hex (validated or generated here): never escaped.
_SAFE_LOAD_COLUMNS = frozenset(store.LOAD_COLUMNS.index(c) for c in (
    "obj_id", "class_code", "or_date", "ch_date", "unit_grid_code", "supervision_code", "geom"))


def _load_rows(frame: pd.DataFrame, srid: int, class_names: dict[str, str], native: bool = False) -> bytes:
    """Validated rows as COPY text in ``store.load_columns(native)`` order (x, y in EPSG:``srid``); a missing
    ObjID becomes the placeholder ``#<line>`` for ``store.fill_missing_ids``, a missing name the class's
    name."""
    out = frame.rename(columns=_FRAME_TO_LOAD)
    missing = out["obj_id"].isna()
    if missing.any():
        out["obj_id"] = out["obj_id"].where(~missing, "#" + out["line"].astype(str))
    unnamed = out["obj_name"].isna()
    if unnamed.any():
        out["obj_name"] = out["obj_name"].where(~unnamed, out["class_code"].map(class_names).fillna(""))
    arrays = [pa.array(out[c], type=pa.string(), from_pandas=True) for c in store.LOAD_COLUMNS[:-1]]
    arrays.append(pa.array(point_ewkb_hex(out["x"].to_numpy(), out["y"].to_numpy(), srid)).cast(pa.string()))
    if native:
        arrays.append(pa.array(out["native_id"], type=pa.string(), from_pandas=True))
    return copy_text(arrays, safe=_SAFE_LOAD_COLUMNS)


def import_file(conn: Connection, path: Path, options: CensusOptions, progress: Progress | None = None
                ) -> CensusResult:
    """Import a census file into ``options.district`` inside the caller's transaction (see the module doc).

    When the caller's transaction has written nothing yet (a job, the CLI), the new census is loaded and
    reconciled by a second connection and committed to a scratch table, whose indexes two more connections
    then build at once (``store.build_load_indexes``); the census itself changes only in the caller's
    transaction, and a scratch table left by a failure is dropped after it by the job (``jobs.run_job``).
    Otherwise everything happens in the caller's transaction.

    Raises ``InvalidInput`` for problems with the file as a whole (unreadable, no CRS, coordinates that
    land far from the district, unknown mapping columns); row problems are returned in the result.
    """
    # Two or more full collections per million rows otherwise, on the path that feeds the COPY (0.25-0.5 s).
    with existing_objects_frozen():
        return _import(conn, path, options, progress)


def _import(conn: Connection, path: Path, options: CensusOptions, progress: Progress | None) -> CensusResult:
    options.validate()
    native = options.native_field is not None
    apart = store.can_stage_apart(conn)
    district_geom = district_boundary(conn, options.district)
    srid = deployment_srid(conn)
    class_names = store.component_classes(conn, options.scheme)
    if not class_names:
        raise InvalidInput(f"no component classes loaded for scheme {options.scheme!r}", field="scheme")
    grid_index = GridIndex.for_district(conn, options.district)
    warnings: list[str] = []
    if len(grid_index) == 0:
        warnings.append("the district has no grid version yet: components are stored without a unit grid")
    store.lock_census(conn)
    store.tune_bulk_session(conn)
    grid_index.with_stored_table(conn)
    valid_from = conn.execute(sa.text("SELECT clock_timestamp()")).scalar_one()
    with contextlib.ExitStack() as stack:
        stage, staged = conn, None
        if apart:  # the rows go to another connection's transaction, committed only if they are to be swapped in
            stage = stack.enter_context(conn.engine.connect())
            staged = stage.begin()
            store.tune_bulk_session(stage)
        load = store.create_load_table(stage, options.district, options.scheme, options.synthetic, valid_from)
        loaded = _load(stage, load, path, options, _Context(district_geom, srid, class_names, grid_index),
                       warnings, progress)
        counts, problems, src, source = loaded.counts, loaded.problems, loaded.src, loaded.source
        kept = store.reuse_native_ids(stage, load, options.district) if native and loaded.missing_ids else 0
        if native:
            counts["kept_ids"] = kept
        counts["generated_ids"] = (store.fill_missing_ids(stage, load, options.district)
                                   if loaded.missing_ids > kept else 0)
        scope = None if options.scope == "all" else sorted(loaded.classes)
        reconciliation = store.reconcile(stage, load, options.district, counts["good"], options.move_tolerance_m,
                                         options.partial, classes=scope, native=native)
        bad_share = counts["bad"] / counts["rows"] if counts["rows"] else 0.0
        mass_retire = _retire_check(reconciliation, options)
        refused = ("bad_rows" if bad_share > options.max_bad_ratio
                   else "mass_retire" if mass_retire and not options.allow_mass_retire else None)
        reconciliation["refused"] = refused
        swap = refused is None and not options.dry_run
        in_place = (swap and store.small_change(reconciliation["counts"])
                    and store.has_own_partition(stage, options.district))
        reconciliation["applied"] = "in place" if in_place else "swapped" if swap else None
        if in_place:
            store.prepare_in_place(stage, load)
        elif swap:
            store.prepare_partition(stage, load, options.district, valid_from)
        if staged is not None:
            (staged.commit if swap else staged.rollback)()
        elif not swap:
            store.drop_load_table(conn, load)
    counts.update(reconciliation["counts"])
    if mass_retire and not options.allow_mass_retire and refused != "bad_rows":
        warnings.append(f"{reconciliation['summary']}: more than max_retire_ratio "
                        f"{options.max_retire_ratio:.1%}, so "
                        + ("the import would be refused" if options.dry_run else "nothing was imported")
                        + "; if the file is meant to retire that many, pass --allow-mass-retire "
                        "(HTTP: allow_mass_retire=true), else check that it holds the whole census of its scope "
                        "(or use --partial)")
    if bad_share > options.max_bad_ratio:
        state = "rejected"
        warnings.append(f"{counts['bad']} of {counts['rows']} rows are bad ({bad_share:.1%}), more than "
                        f"max_bad_ratio {options.max_bad_ratio:.1%}: nothing was imported")
    elif options.dry_run:
        state = "preview"
    elif refused is not None:
        state = "rejected"
    else:
        if in_place:
            store.apply_in_place(conn, load, options.district, valid_from)
        else:
            if apart:
                store.build_load_indexes(conn.engine, load)
            store.swap_census(conn, load, options.district, indexed=apart)
        spatial_store.audit(conn, action="import", object_kind="census", object_id=options.district,
                            district=options.district,
                            after={"file": Path(path).name, "counts": reconciliation["counts"],
                                   "rows": counts["rows"], "bad": counts["bad"], "partial": options.partial,
                                   "scope": reconciliation["scope"], "retire_ratio": reconciliation["retire_ratio"],
                                   "id_field": options.native_field})
        state = "committed"
    if progress:
        progress(100.0, dict(counts))
    return CensusResult(state=state, counts=counts, problems=problems, reconciliation=reconciliation,
                        warnings=warnings, encoding=src.encoding, source_crs=source.label)


def _retire_check(reconciliation: dict[str, Any], options: CensusOptions) -> bool:
    """Add the scope, the retire ratio and its threshold to ``reconciliation`` (``store.reconcile``'s) with a
    one-line summary; return whether the ratio is over ``options.max_retire_ratio``."""
    retired, current = reconciliation["counts"]["retired"], reconciliation["current_in_scope"]
    ratio = retired / current if current else 0.0
    classes = reconciliation["scope"]["classes"]
    where = ("the whole census" if classes is None
             else f"class{'es' if len(classes) != 1 else ''} {', '.join(classes[:20])}"
                  + (f" and {len(classes) - 20} more" if len(classes) > 20 else ""))
    reconciliation.update(retire_ratio=round(ratio, 6), max_retire_ratio=options.max_retire_ratio,
                          allow_mass_retire=options.allow_mass_retire, id_field=options.native_field)
    reconciliation["summary"] = (
        f"scope {reconciliation['scope']['mode']} ({where}; {current} current components"
        + (", none retired: partial" if options.partial else "")
        + f"): retires {retired} ({ratio:.1%}; max_retire_ratio {options.max_retire_ratio:.1%})")
    return ratio > options.max_retire_ratio


@dataclass
class _Context:
    """What every chunk is checked against: the district (EPSG:``srid``), the scheme's classes, the grids."""

    district_geom: Any
    srid: int
    class_names: dict[str, str]
    grid_index: GridIndex


@dataclass
class _Loaded:
    counts: dict[str, int]
    problems: list[dict[str, Any]]
    src: _Source
    source: crs.InputCrs
    missing_ids: int  # good rows without an ObjID
    classes: set[str]  # the classes of the good rows


def _load(conn: Connection, load: str, path: Path, options: CensusOptions, ctx: _Context, warnings: list[str],
          progress: Progress | None) -> _Loaded:
    """Read, check and COPY the file into the load table chunk by chunk."""
    near = ctx.district_geom.buffer(1.0)
    shapely.prepare(near)
    centre_lon = crs.lonlat_bounds(np.array([ctx.district_geom.centroid], dtype=object),
                                   crs.parse_crs(ctx.srid))[0]
    known_classes = set(ctx.class_names)
    counts = {"rows": 0, "bad": 0, "good": 0, "warnings": 0}
    missing_ids = 0
    problems: list[dict[str, Any]] = []
    seen = SeenIds()
    mapping = options.census_mapping()
    native = _Native(options.native_field, SeenIds()) if options.native_field else None
    classes: set[str] = set()
    writer: store.LoadWriter | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="citygrid-census-") as tmp:
            src = _open_source(Path(path), options, Path(tmp))
            source: crs.InputCrs | None = None
            transformer: Transformer | None = None
            columns: dict[str, str] | None = None
            line = 2
            for attrs, pts, file_crs in _paced(_batches(src, options)):
                if source is None:
                    source, transformer, columns = _first_chunk(attrs, pts, file_crs, src, options, ctx.srid,
                                                                ctx.district_geom, centre_lon, warnings)
                lines = np.arange(line, line + len(attrs))
                line += len(attrs)
                checked = _check_chunk(attrs, pts, lines, columns, source, ctx.srid, transformer,
                                       ctx.district_geom, near, known_classes, seen, src.bad_encoding_lines,
                                       ctx.grid_index, options.district, mapping, native)
                problems.extend(checked.problems)
                counts["rows"] += len(attrs)
                counts["good"] += len(checked.frame)
                missing_ids += int(checked.frame["ObjID"].isna().sum())
                if len(checked.frame):
                    classes.update(pc.unique(pa.array(checked.frame["ClassCode"])).to_pylist())
                    if writer is None:
                        writer = store.LoadWriter(conn, load, store.load_columns(native is not None))
                    writer.write(_load_rows(checked.frame, ctx.srid, ctx.class_names, native is not None))
                if progress:
                    total = max(src.total, counts["rows"], 1)
                    progress(min(90.0, 90.0 * counts["rows"] / total), dict(counts))
            if source is None:
                raise InvalidInput("the file holds no rows", field="file")
        if writer is not None:
            done, writer = writer, None
            done.close()
    except BaseException as exc:
        if writer is not None:
            writer.close(exc)
        raise
    counts["bad"] = counts["rows"] - counts["good"]
    counts["warnings"] = sum(p["severity"] == "warning" for p in problems)
    return _Loaded(counts, problems, src, source, missing_ids, classes)


def report_csv(problems: list[dict[str, Any]]) -> str:
    """The row report as CSV text: line, obj_id, field, severity, reason. Text that a spreadsheet would run as
    a formula (an ObjID or field name read from the file: ``=HYPERLINK(…)``) starts with an apostrophe."""
    frame = pd.DataFrame(problems, columns=["line", "obj_id", "field", "severity", "reason"])
    for column in ("obj_id", "field", "reason"):
        frame[column] = frame[column].map(spreadsheet_safe)
    buffer = io.StringIO()
    frame.sort_values(["line", "field"]).to_csv(buffer, index=False)
    return buffer.getvalue()
