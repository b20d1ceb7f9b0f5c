"""Component census (部件普查) import: read, validate row by row, place, reconcile, commit.

Along the data flow, one module per step:

1. **read** (``loaders.tables``): the file streamed in batches (pyogrio + Arrow; a CSV read whole and cut),
   with its encoding decided and file line numbers;
2. **check** (``checks``): each batch's rows through small vectorised checks (encoding, geometry, placement
   in the district, class and ID, dates and text, duplicates), the good rows placed in their grids;
3. **load** (here, ``_load``): the good rows as COPY text (``loaders.copytext``) into a fresh load table; the
   server parses one batch while Python checks the next;
4. **reconcile and swap** (here, ``_import``; SQL in ``store``): missing ObjIDs filled in, the load compared
   with the current census (new / moved / changed / unchanged / retired) and, unless it is a dry run or
   too many rows are bad, the load table made the district's census partition: unchanged rows dropped,
   earlier versions copied in with the superseded ones closed, indexes built once, partition swapped
   (``store.swap_census``). A census that changes little (``store.small_change``) and has its partition
   already is updated in place instead: the superseded versions closed, the new ones inserted
   (``store.apply_in_place``). Nothing in ``components`` changes unless the whole run succeeds.

``import_file`` works inside the caller's transaction. What can be retired is scoped: by default only current
components of the classes the file holds (a file of hydrants is the census of hydrants, not of the
district), with ``scope="all"`` the district's whole census; and a reconciliation that would retire more
than ``max_retire_ratio`` of that scope is refused unless ``allow_mass_retire``. With ``id_field`` rows are
matched on the city's own feature IDs instead of ObjIDs.

Coordinates: the file's CRS (or the declared one, incl. GCJ-02/BD-09) is converted to the deployment CRS;
every stored point is in it.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from pyproj import CRS, Transformer
from sqlalchemy.engine import Connection

from citygrid.components_survey import checks, store
from citygrid.components_survey.ids import SeenIds
from citygrid.components_survey.mapping import (
    CensusMapping,
    parse_mapping,
    resolve_columns,
    standard_attributes,
    text_column,
)
from citygrid.components_survey.taxonomy import DEFAULT_SCHEME
from citygrid.errors import InvalidInput, RowProblem
from citygrid.gcpause import existing_objects_frozen
from citygrid.loaders import tables
from citygrid.loaders.copytext import copy_text
from citygrid.loaders.plaintext import control_character, spreadsheet_safe
from citygrid.spatial import crs
from citygrid.spatial import store as spatial_store
from citygrid.spatial.boundaries import district_boundary
from citygrid.spatial.db import deployment_srid
from citygrid.spatial.geocode import GridIndex
from citygrid.spatial.wkb import point_ewkb_hex

CHUNK = tables.BATCH_SIZE
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
    """What an import did: its ``state``, row and reconciliation ``counts``, one ``errors.RowProblem`` per bad
    row (and per warning: keys line, field, reason, severity, obj_id, geom_wkt), the ``reconciliation``, the
    attribute ``encoding`` read and the source CRS's label."""

    state: str  # preview | committed | rejected
    counts: dict[str, int]
    problems: list[RowProblem]
    reconciliation: dict[str, Any]
    warnings: list[str]
    encoding: str | None
    source_crs: str


# ------------------------------------------------------------------------------------------ checking a batch
@dataclass
class _District:
    """What every batch is checked against: the district (``geom`` in EPSG:``srid``, ``near`` a metre wider
    and prepared), the scheme's classes (code -> name), the grids."""

    code: str
    geom: Any
    near: Any
    srid: int
    class_names: dict[str, str]
    grid_index: GridIndex

    @property
    def classes(self) -> set[str]:
        """The scheme's class codes."""
        return set(self.class_names)


@dataclass
class _Context:
    """One file's checking context: the district, and what the first batch settled (the source CRS and its
    transformer to the deployment's, the column mapping) or the whole file accumulates (IDs seen)."""

    district: _District
    source: crs.InputCrs
    transformer: Transformer
    columns: dict[str, str]
    mapping: CensusMapping
    bad_encoding: set[int]
    seen: SeenIds = field(default_factory=SeenIds)
    native: checks.NativeIds | None = None


@dataclass
class _Checked:
    frame: pd.DataFrame  # good rows: standard columns + x, y (storage CRS), line, grids, attrs (JSON)
    problems: list[RowProblem]


def _check_chunk(batch: tables.Batch, ctx: _Context) -> _Checked:
    """Validate one batch (points in the file's CRS): the good rows with x, y in the deployment CRS and their
    grids, and a problem per bad row (the first reason found, in the order of ``checks``). The mapping's
    constants and value maps apply before any check; with ``ctx.native`` every row needs a feature ID of its
    own (kept as ``native_id``)."""
    attrs, n, district = batch.attrs, len(batch), ctx.district
    data = standard_attributes(attrs, ctx.columns, ctx.mapping)
    raw_dates = {name: data[name] for name in checks.DATE_FIELDS}
    bad_dates = {}
    for name in checks.DATE_FIELDS:
        data[name], bad_dates[name] = checks.parse_dates(raw_dates[name])
    data["line"] = batch.lines
    data["ClassCode"] = checks.class_codes(data)
    bad = np.zeros(n, dtype=bool)
    problems: list[RowProblem] = []

    def refuse(found: checks.Found) -> None:
        mask, more = found
        bad[mask] = True
        problems.extend(more)

    refuse(checks.check_encoding(data, bad, ctx.bad_encoding))
    if ctx.native is not None:
        data["native_id"] = text_column(attrs[ctx.native.field], n)
        refuse(checks.check_native_ids(data, bad, ctx.native.field))
    refuse(checks.check_geometry(data, bad, batch.points))
    sx, sy = checks.storage_xy(batch.points, ~bad, ctx.source, ctx.transformer)
    refuse(checks.check_inside(data, bad, sx, sy, district.near, district.geom))
    refuse(checks.check_class_and_id(data, bad, district.classes, district.code))
    unmapped = [c for c in attrs.columns if c not in ctx.columns.values()]
    refuse(checks.check_dates_and_text(data, bad, raw_dates, bad_dates, checks.others_as_text(attrs, unmapped)))
    refuse(checks.check_duplicates(data, bad, ctx.seen, district.code, ctx.native))
    good = ~bad
    frame = data[good].reset_index(drop=True)
    frame["x"], frame["y"] = sx[good], sy[good]
    problems.extend(checks.place_in_grids(frame, district.grid_index))
    extra = [c for c in unmapped if ctx.native is None or c != ctx.native.field]
    frame["attrs"] = checks.extra_attributes(attrs, good, extra)
    return _Checked(frame=frame, problems=checks.with_points(problems, bad, batch.lines, sx, sy))


def _first_chunk(batch: tables.Batch, src: tables.Source, options: CensusOptions, district: _District,
                 centre_lon: float, warnings: list[str]) -> tuple[crs.InputCrs, Transformer, dict[str, str]]:
    """The file's CRS (declared or embedded), its transformer to EPSG:``district.srid`` and the column
    mapping, after checking the first points against the district."""
    srid = district.srid
    if options.crs:
        source = crs.parse_crs(options.crs)
    elif batch.crs is not None:
        source = crs.InputCrs(None, batch.crs)
    else:
        raise InvalidInput(f"{src.path.name} does not say its CRS; pass --crs (e.g. EPSG:{srid}, the "
                           "deployment's, or EPSG:4326 for lon/lat; gcj02 or bd09 for Chinese web maps)",
                           field="crs")
    if (warning := crs.datum_warning(source)) is not None:
        warnings.append(warning)
    transformer = crs.transformer(source.crs, CRS.from_epsg(srid))
    pts = batch.points
    usable = np.flatnonzero(pts.usable[:2000])
    if len(usable):
        diagnosis = crs.diagnose_placement(pts.x[usable], pts.y[usable], source, district.geom, srid, centre_lon)
        if diagnosis:
            raise InvalidInput(f"coordinates of {src.path.name} do not fit district "
                               f"{options.district}: {diagnosis}", field="crs")
    native = options.native_field
    if native is not None and native not in batch.attrs.columns:
        raise InvalidInput(f"the feature ID column {native!r} (--id-field) is not in the file (columns: "
                           f"{', '.join(map(str, batch.attrs.columns))})", field="id_field")
    return source, transformer, resolve_columns(list(batch.attrs.columns), options.census_mapping(),
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
    # Full collections otherwise walk every object older than the import, several times per million rows,
    # on the path that feeds the COPY (``gcpause``).
    with existing_objects_frozen():
        return _import(conn, path, options, progress)


@dataclass
class _Staged:
    """A census loaded and reconciled, and what was decided about it."""

    load: str  # the load table
    loaded: _Loaded
    counts: dict[str, int]
    reconciliation: dict[str, Any]
    bad_share: float
    mass_retire: bool  # the retire ratio is over max_retire_ratio
    swap: bool  # to be committed: refused by neither check, not a dry run
    in_place: bool  # committed by updating the partition in place rather than swapping it


def _import(conn: Connection, path: Path, options: CensusOptions, progress: Progress | None) -> CensusResult:
    """The pipeline: prepare, stage (read, check, load, reconcile, decide), then commit or not."""
    options.validate()
    apart = store.can_stage_apart(conn)
    warnings: list[str] = []
    district = _prepare(conn, options, warnings)
    valid_from = store.clock_now(conn)
    staged = _stage(conn, path, options, district, valid_from, apart, warnings, progress)
    state = _state(staged, options, warnings)
    if state == "committed":
        _commit(conn, path, options, staged, valid_from, apart)
    if progress:
        progress(100.0, dict(staged.counts))
    return CensusResult(state=state, counts=staged.counts, problems=staged.loaded.problems,
                        reconciliation=staged.reconciliation, warnings=warnings,
                        encoding=staged.loaded.src.encoding, source_crs=staged.loaded.source.label)


def _prepare(conn: Connection, options: CensusOptions, warnings: list[str]) -> _District:
    """The district, its classes and grids (``InvalidInput`` when the scheme has no component classes), with
    the census locked and the session tuned for the bulk load."""
    geom = district_boundary(conn, options.district)
    srid = deployment_srid(conn)
    class_names = store.component_classes(conn, options.scheme)
    if not class_names:
        raise InvalidInput(f"no component classes loaded for scheme {options.scheme!r}", field="scheme")
    grid_index = GridIndex.for_district(conn, options.district)
    if len(grid_index) == 0:
        warnings.append("the district has no grid version yet: components are stored without a unit grid")
    store.lock_census(conn)
    store.tune_bulk_session(conn)
    grid_index.with_stored_table(conn)
    near = geom.buffer(1.0)
    shapely.prepare(near)
    return _District(options.district, geom, near, srid, class_names, grid_index)


def _stage(conn: Connection, path: Path, options: CensusOptions, district: _District, valid_from: Any,
           apart: bool, warnings: list[str], progress: Progress | None) -> _Staged:
    """Load the file into a load table, fill in ObjIDs, reconcile, decide whether it is committed and prepare
    that; with ``apart`` on a second connection, whose transaction is committed only if it is."""
    native = options.native_field is not None
    with contextlib.ExitStack() as stack:
        stage, staged = conn, None
        if apart:  # the rows go to another connection's transaction, committed only if they are to be swapped in
            stage = stack.enter_context(conn.engine.connect())
            staged = stage.begin()
            store.tune_bulk_session(stage)
        load = store.create_load_table(stage, options.district, options.scheme, options.synthetic, valid_from)
        loaded = _load(stage, load, path, options, district, warnings, progress)
        counts = loaded.counts
        kept = store.reuse_native_ids(stage, load, options.district) if native and loaded.missing_ids else 0
        if native:
            counts["kept_ids"] = kept
        counts["generated_ids"] = (store.fill_missing_ids(stage, load, options.district)
                                   if loaded.missing_ids > kept else 0)
        scope = None if options.scope == "all" else sorted(loaded.classes)
        reconciliation = store.reconcile(stage, load, options.district, counts["good"], options.move_tolerance_m,
                                         options.partial, classes=scope, native=native)
        result = _decide(stage, load, loaded, reconciliation, options)
        if result.in_place:
            store.prepare_in_place(stage, load)
        elif result.swap:
            store.prepare_partition(stage, load, options.district, valid_from)
        if staged is not None:
            (staged.commit if result.swap else staged.rollback)()
        elif not result.swap:
            store.drop_load_table(conn, load)
    counts.update(reconciliation["counts"])
    return result


def _decide(stage: Connection, load: str, loaded: _Loaded, reconciliation: dict[str, Any],
            options: CensusOptions) -> _Staged:
    """Whether the reconciled load is refused (too many bad rows, or too many retired without
    ``allow_mass_retire``), swapped in, or applied in place; recorded in ``reconciliation``."""
    counts = loaded.counts
    bad_share = counts["bad"] / counts["rows"] if counts["rows"] else 0.0
    mass_retire = _retire_check(reconciliation, options)
    refused = ("bad_rows" if bad_share > options.max_bad_ratio
               else "mass_retire" if mass_retire and not options.allow_mass_retire else None)
    reconciliation["refused"] = refused
    swap = refused is None and not options.dry_run
    in_place = (swap and store.small_change(reconciliation["counts"])
                and store.has_own_partition(stage, options.district))
    reconciliation["applied"] = "in place" if in_place else "swapped" if swap else None
    return _Staged(load, loaded, counts, reconciliation, bad_share, mass_retire, swap, in_place)


def _state(staged: _Staged, options: CensusOptions, warnings: list[str]) -> str:
    """``rejected``, ``preview`` or ``committed``, with a warning saying why a census was refused."""
    counts, reconciliation = staged.counts, staged.reconciliation
    bad_rows = staged.bad_share > options.max_bad_ratio
    if staged.mass_retire and not options.allow_mass_retire and not bad_rows:
        warnings.append(f"{reconciliation['summary']}: more than max_retire_ratio "
                        f"{options.max_retire_ratio:.1%}, so "
                        + ("the import would be refused" if options.dry_run else "nothing was imported")
                        + "; if the file is meant to retire that many, pass --allow-mass-retire "
                        "(HTTP: allow_mass_retire=true), else check that it holds the whole census of its scope "
                        "(or use --partial)")
    if bad_rows:
        warnings.append(f"{counts['bad']} of {counts['rows']} rows are bad ({staged.bad_share:.1%}), more than "
                        f"max_bad_ratio {options.max_bad_ratio:.1%}: nothing was imported")
        return "rejected"
    if options.dry_run:
        return "preview"
    return "rejected" if reconciliation["refused"] is not None else "committed"


def _commit(conn: Connection, path: Path, options: CensusOptions, staged: _Staged, valid_from: Any,
            apart: bool) -> None:
    """Make the prepared load the district's census (in place, or by swapping the partition) and audit it."""
    reconciliation = staged.reconciliation
    if staged.in_place:
        store.apply_in_place(conn, staged.load, options.district, valid_from)
    else:
        if apart:
            store.build_load_indexes(conn.engine, staged.load)
        store.swap_census(conn, staged.load, options.district, indexed=apart)
    spatial_store.audit(conn, action="import", object_kind="census", object_id=options.district,
                        district=options.district,
                        after={"file": Path(path).name, "counts": reconciliation["counts"],
                               "rows": staged.counts["rows"], "bad": staged.counts["bad"],
                               "partial": options.partial, "scope": reconciliation["scope"],
                               "retire_ratio": reconciliation["retire_ratio"], "id_field": options.native_field})


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


# ------------------------------------------------------------------------------------------ loading
@dataclass
class _Loaded:
    counts: dict[str, int]
    problems: list[RowProblem]
    src: tables.Source
    source: crs.InputCrs
    missing_ids: int  # good rows without an ObjID
    classes: set[str]  # the classes of the good rows


def _load(conn: Connection, load: str, path: Path, options: CensusOptions, district: _District,
          warnings: list[str], progress: Progress | None) -> _Loaded:
    """Read, check and COPY the file into the load table batch by batch."""
    centre_lon = crs.lonlat_bounds(np.array([district.geom.centroid], dtype=object), crs.parse_crs(district.srid))[0]
    counts = {"rows": 0, "bad": 0, "good": 0, "warnings": 0}
    missing_ids = 0
    problems: list[RowProblem] = []
    native = options.native_field is not None
    classes: set[str] = set()
    writer: store.LoadWriter | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="citygrid-census-") as tmp:
            src = tables.open_source(Path(path), Path(tmp), layer=options.layer, encoding=options.encoding)
            ctx: _Context | None = None
            for batch in tables.paced(tables.read_batches(
                    src, layer=options.layer, x_field=options.x_field, y_field=options.y_field,
                    geometry=options.census_mapping().geometry, batch_size=options.chunk_size)):
                if ctx is None:
                    ctx = _context(batch, src, options, district, centre_lon, warnings)
                checked = _check_chunk(batch, ctx)
                problems.extend(checked.problems)
                counts["rows"] += len(batch)
                counts["good"] += len(checked.frame)
                missing_ids += int(checked.frame["ObjID"].isna().sum())
                if len(checked.frame):
                    classes.update(pc.unique(pa.array(checked.frame["ClassCode"])).to_pylist())
                    if writer is None:
                        writer = store.LoadWriter(conn, load, store.load_columns(native))
                    writer.write(_load_rows(checked.frame, district.srid, district.class_names, native))
                if progress:
                    total = max(src.total, counts["rows"], 1)
                    progress(min(90.0, 90.0 * counts["rows"] / total), dict(counts))
            if ctx is None:
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
    return _Loaded(counts, problems, src, ctx.source, missing_ids, classes)


def _context(batch: tables.Batch, src: tables.Source, options: CensusOptions, district: _District,
             centre_lon: float, warnings: list[str]) -> _Context:
    """The file's checking context, from its first batch (``_first_chunk``)."""
    source, transformer, columns = _first_chunk(batch, src, options, district, centre_lon, warnings)
    native = checks.NativeIds(options.native_field, SeenIds()) if options.native_field else None
    return _Context(district, source, transformer, columns, options.census_mapping(), src.bad_encoding_lines,
                    native=native)


def report_csv(problems: list[dict[str, Any]]) -> str:
    """The row report as CSV text: line, obj_id, field, severity, reason. Text that a spreadsheet would run as
    a formula (an ObjID or field name read from the file: ``=HYPERLINK(…)``) starts with an apostrophe."""
    frame = pd.DataFrame(problems, columns=["line", "obj_id", "field", "severity", "reason"])
    for column in ("obj_id", "field", "reason"):
        frame[column] = frame[column].map(spreadsheet_safe)
    buffer = io.StringIO()
    frame.sort_values(["line", "field"]).to_csv(buffer, index=False)
    return buffer.getvalue()
