"""Component census (部件普查) import: read, validate row by row, place, reconcile, commit.

``import_file`` works inside the caller's transaction: it streams the file in chunks (pyogrio + Arrow),
validates each chunk with vectorised checks, COPYs the good rows into a temporary staging table, fills in
missing ObjIDs, compares the staging table with the current census (new / moved / changed / unchanged /
retired) and, unless it is a dry run or too many rows are bad, closes the superseded component versions and
inserts the new ones. Nothing is written to ``components`` unless the whole run succeeds.

Coordinates: the file's CRS (or the declared one, incl. GCJ-02/BD-09) is converted to the deployment CRS;
every stored point is in it.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS, Transformer
from sqlalchemy.engine import Connection

from citygrid.components_survey import store
from citygrid.components_survey.ids import check_obj_ids
from citygrid.components_survey.mapping import resolve_columns
from citygrid.components_survey.taxonomy import DEFAULT_SCHEME
from citygrid.errors import InvalidInput
from citygrid.loaders.archive import find_dataset, safe_extract
from citygrid.loaders.encoding import blank_records, shapefile_encoding
from citygrid.loaders.vector import read_csv_points
from citygrid.spatial import admin, crs
from citygrid.spatial import store as spatial_store
from citygrid.spatial.db import deployment_srid
from citygrid.spatial.geocode import GridIndex

CHUNK = 100_000
MAX_FILE_BYTES = 4 * 2**30
TEXT_FIELDS = ("ObjName", "DeptCode1", "DeptName1", "DeptCode2", "DeptName2", "DeptCode3", "DeptName3",
               "BGID", "ObjState", "DataSource", "Note")
MAX_TEXT = 500
Progress = Callable[[float, dict[str, int]], None]


@dataclass(frozen=True)
class CensusOptions:
    """What the user said about the file. ``max_bad_ratio``: above this share of bad rows nothing is imported;
    at or below it the good rows are imported and the bad ones reported. ``partial``: the file updates part of
    the census, so components absent from it are not retired."""

    district: str
    crs: str | None = None
    encoding: str | None = None
    layer: str | None = None
    mapping: dict[str, str] = field(default_factory=dict)
    x_field: str | None = None
    y_field: str | None = None
    dry_run: bool = False
    max_bad_ratio: float = 0.05
    move_tolerance_m: float = 5.0
    partial: bool = False
    scheme: str = DEFAULT_SCHEME
    synthetic: bool = False
    chunk_size: int = CHUNK

    def validate(self) -> CensusOptions:
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
        info = pyogrio.read_info(path, layer=options.layer, encoding=encoding)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise InvalidInput(f"{path.name}: GDAL cannot read it: {exc}", field="file") from exc
    except UnicodeDecodeError as exc:
        raise _undecodable(path, encoding, exc) from exc
    return _Source(path, "ogr", encoding, source, bad, int(info.get("features") or 0))


def _batches(src: _Source, options: CensusOptions) -> Iterator[tuple[pd.DataFrame, np.ndarray, CRS | None]]:
    """(attributes, geometries, file CRS) per chunk; geometries are shapely objects or None."""
    if src.kind == "csv":
        frame, encoding = read_csv_points(src.path, x_field=options.x_field, y_field=options.y_field,
                                          encoding=options.encoding)
        src.encoding, src.total = encoding, len(frame)
        geoms = np.asarray(frame.geometry.values, dtype=object)
        attrs = pd.DataFrame(frame.drop(columns=frame.geometry.name))
        for start in range(0, len(frame), options.chunk_size):
            stop = start + options.chunk_size
            yield attrs.iloc[start:stop].reset_index(drop=True), geoms[start:stop], None
        return
    try:
        with pyogrio.open_arrow(src.path, layer=options.layer, encoding=src.encoding,
                                batch_size=options.chunk_size, use_pyarrow=True) as (meta, reader):
            file_crs = CRS.from_user_input(meta["crs"]) if meta.get("crs") else None
            geom_col = meta.get("geometry_name") or "wkb_geometry"
            for batch in reader:
                table = batch.to_pandas()
                wkb = table.pop(geom_col).to_numpy() if geom_col in table else np.full(len(table), None)
                geoms = shapely.from_wkb(wkb, on_invalid="ignore")
                yield table, geoms, file_crs
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise InvalidInput(f"{src.path.name}: GDAL cannot read it: {exc}", field="file") from exc
    except UnicodeDecodeError as exc:
        raise _undecodable(src.path, src.encoding, exc) from exc


def _undecodable(path: Path, encoding: str | None, exc: UnicodeDecodeError) -> InvalidInput:
    return InvalidInput(
        f"{path.name}: field names or values are not valid {encoding or 'UTF-8'} ({exc.reason} at byte "
        f"{exc.start}); a UTF-8 DBF cuts Chinese field names at 10 bytes — pass --encoding, or use a mapping",
        field="encoding")


# ------------------------------------------------------------------------------------------ validation
def _text(series: pd.Series | None, n: int) -> pd.Series:
    if series is None:
        return pd.Series([None] * n, dtype=object)
    out = series.astype(object).where(series.notna(), None)
    return out.map(lambda v: None if v is None else (str(int(v)) if isinstance(v, float) and v.is_integer()
                                                     else str(v).strip() or None))


def _dates(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(ISO date strings or None, mask of unparseable or implausible non-empty values) of text values."""
    present = raw.notna()
    parsed = pd.to_datetime(raw.where(present).str.replace("/", "-").str.replace(".", "-"),
                            errors="coerce", format="mixed")
    compact = raw.where(present & parsed.isna() & raw.fillna("").str.fullmatch(r"[0-9]{8}"))
    parsed = parsed.fillna(pd.to_datetime(compact, format="%Y%m%d", errors="coerce"))
    plausible = (parsed.dt.year >= 1900) & (parsed <= pd.Timestamp.now() + pd.Timedelta(days=366))
    bad = present & ~(parsed.notna() & plausible)
    return parsed.dt.strftime("%Y-%m-%d").where(~bad & present, None), bad


@dataclass
class _Checked:
    frame: pd.DataFrame  # good rows: standard columns + x, y (storage CRS), line
    problems: list[dict[str, Any]]


def _problem(line: int, obj_id: Any, field_name: str, reason: str, wkt: str | None = None,
             severity: str = "error") -> dict[str, Any]:
    return {"line": int(line), "obj_id": obj_id or None, "field": field_name, "reason": reason,
            "geom_wkt": wkt, "severity": severity}


def _check_chunk(attrs: pd.DataFrame, geoms: np.ndarray, lines: np.ndarray, columns: dict[str, str],
                 source: crs.InputCrs, srid: int, transformer: Transformer, district: Any, near: Any,
                 known_classes: set[str], seen: dict[str, int], bad_encoding: set[int],
                 grid_index: GridIndex, district_code: str) -> _Checked:
    n = len(attrs)
    cols = {name: attrs.get(col) for name, col in columns.items()}
    data = pd.DataFrame({name: _text(cols.get(name), n) for name in ("ObjID", "ClassCode", *TEXT_FIELDS)})
    raw_dates = {name: _text(cols.get(name), n) for name in ("ORDate", "CHDate")}
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

    flag(np.isin(lines, list(bad_encoding)), "*", "bad encoding: the record's text does not decode")
    # Geometry
    types = np.array([None if g is None else g.geom_type for g in geoms], dtype=object)
    empty = np.array([g is None or g.is_empty for g in geoms], dtype=bool)
    flag(empty, "geometry", "empty geometry")
    single = np.array([t == "MultiPoint" and not e and len(g.geoms) == 1 for g, t, e in zip(geoms, types, empty,
                                                                                              strict=True)])
    points = np.array([g.geoms[0] if s else g for g, s in zip(geoms, single, strict=True)], dtype=object)
    not_point = ~empty & ~(np.isin(types, ["Point"]) | single)
    flag(not_point, "geometry", lambda i: f"not a point ({types[i]})")
    x = np.full(n, np.nan)
    y = np.full(n, np.nan)
    ok_geom = ~bad
    if ok_geom.any():
        x[ok_geom] = shapely.get_x(points[ok_geom])
        y[ok_geom] = shapely.get_y(points[ok_geom])
    flag(~np.isfinite(x) | ~np.isfinite(y), "geometry", "invalid coordinates (NaN or infinite)")
    sx, sy = np.full(n, np.nan), np.full(n, np.nan)
    live = ~bad & np.isfinite(x) & np.isfinite(y)
    if live.any():
        lx, ly = x[live], y[live]
        if source.pseudo:
            lx, ly = crs.pseudo_to_wgs84(source.pseudo, lx, ly)
        sx[live], sy[live] = transformer.transform(lx, ly)
    outside = ~bad & ~shapely.contains_xy(near, np.nan_to_num(sx), np.nan_to_num(sy))
    flag(outside, "geometry", lambda i: (f"outside the district by "
                                         f"{district.distance(shapely.Point(sx[i], sy[i])):.0f} m"))
    # Class and ID
    cls = data["ClassCode"].where(data["ClassCode"].notna(), data["ObjID"].str[6:10])
    cls = cls.where(cls.fillna("").str.fullmatch(r"[0-9]{4}"), cls)
    flag(cls.isna().to_numpy(), "ClassCode", "no class code (and no ObjID to read it from)")
    flag((~cls.fillna("").isin(known_classes) & cls.notna()).to_numpy(), "ClassCode",
         lambda i: f"unknown component class {cls[i]!r}")
    data["ClassCode"] = cls
    id_reasons = check_obj_ids(data["ObjID"], cls, district_code)
    flag((id_reasons != "").to_numpy(), "ObjID", lambda i: id_reasons[i])
    flag(bad_or.to_numpy(), "ORDate", lambda i: f"bad date {raw_dates['ORDate'][i]!r}")
    flag(bad_ch.to_numpy(), "CHDate", lambda i: f"bad date {raw_dates['CHDate'][i]!r}")
    too_long = np.zeros(n, dtype=bool)
    for name in TEXT_FIELDS:
        too_long |= (data[name].fillna("").str.len() > MAX_TEXT).to_numpy()
    flag(too_long, "*", f"a text value is longer than {MAX_TEXT} characters")
    # Duplicates within the file (the first occurrence stays)
    ids = data["ObjID"].to_numpy()
    dup = np.zeros(n, dtype=bool)
    first_line: dict[int, int] = {}
    for i in np.flatnonzero(~bad & data["ObjID"].notna().to_numpy()):
        key = ids[i]
        if key in seen:
            dup[i] = True
            first_line[i] = seen[key]
        else:
            seen[key] = int(lines[i])
    flag(dup, "ObjID", lambda i: f"duplicate ObjID (first at line {first_line[i]})")
    good = ~bad
    frame = data[good].copy()
    frame["x"], frame["y"] = sx[good], sy[good]
    # Grid assignment with the same index the cases use
    idx = grid_index.assign(frame["x"].to_numpy(), frame["y"].to_numpy())
    has = idx >= 0
    frame["unit_grid_code"] = np.where(has, grid_index.codes[np.maximum(idx, 0)], None) if len(grid_index) else None
    frame["supervision_code"] = (np.where(has, grid_index.supervision_codes[np.maximum(idx, 0)], None)
                                 if len(grid_index) else None)
    mismatch = frame["BGID"].notna() & frame["unit_grid_code"].notna() & (frame["BGID"] != frame["unit_grid_code"])
    for _, row in frame[mismatch].iterrows():
        problems.append(_problem(row["line"], row["ObjID"], "BGID",
                                 f"BGID {row['BGID']} differs from the grid at the point ({row['unit_grid_code']}); "
                                 "the computed grid is stored", severity="warning"))
    extra = [c for c in attrs.columns if c not in columns.values()]
    if extra and good.any():
        others = attrs.loc[good, extra].astype(object)
        others = others.where(others.notna(), None).map(lambda v: None if v is None else str(v))
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
def import_file(conn: Connection, path: Path, options: CensusOptions, progress: Progress | None = None
                ) -> CensusResult:
    """Import a census file into ``options.district`` inside the caller's transaction (see the module doc).

    Raises ``InvalidInput`` for problems with the file as a whole (unreadable, no CRS, coordinates that
    land far from the district, unknown mapping columns); row problems are returned in the result.
    """
    options.validate()
    district_geom = admin.district_boundary(conn, options.district)
    srid = deployment_srid(conn)
    known_classes = store.component_classes(conn, options.scheme)
    if not known_classes:
        raise InvalidInput(f"no component classes loaded for scheme {options.scheme!r}", field="scheme")
    grid_index = GridIndex.for_district(conn, options.district)
    near = district_geom.buffer(1.0)
    shapely.prepare(near)
    centre_lon = crs.lonlat_bounds(np.array([district_geom.centroid], dtype=object),
                                   crs.parse_crs(srid))[0]
    warnings: list[str] = []
    if len(grid_index) == 0:
        warnings.append("the district has no grid version yet: components are stored without a unit grid")
    counts = {"rows": 0, "bad": 0, "good": 0, "warnings": 0}
    problems: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    store.create_staging(conn, srid)
    with tempfile.TemporaryDirectory(prefix="citygrid-census-") as tmp:
        src = _open_source(Path(path), options, Path(tmp))
        source: crs.InputCrs | None = None
        transformer: Transformer | None = None
        columns: dict[str, str] | None = None
        line = 2
        for attrs, geoms, file_crs in _batches(src, options):
            if source is None:
                if options.crs:
                    source = crs.parse_crs(options.crs)
                elif file_crs is not None:
                    source = crs.InputCrs(None, file_crs)
                else:
                    raise InvalidInput(f"{src.path.name} does not say its CRS; pass --crs (e.g. EPSG:4548, "
                                       "EPSG:4490, gcj02)", field="crs")
                if (warning := crs.datum_warning(source)) is not None:
                    warnings.append(warning)
                transformer = crs.transformer(source.crs, CRS.from_epsg(srid))
                pts = [g for g in geoms[:2000] if g is not None and not g.is_empty and g.geom_type == "Point"]
                if pts:
                    diagnosis = crs.diagnose_placement(shapely.get_x(np.array(pts)), shapely.get_y(np.array(pts)),
                                                       source, district_geom, srid, centre_lon)
                    if diagnosis:
                        raise InvalidInput(f"coordinates of {src.path.name} do not fit district "
                                           f"{options.district}: {diagnosis}", field="crs")
                columns = resolve_columns(list(attrs.columns), options.mapping)
            lines = np.arange(line, line + len(attrs))
            line += len(attrs)
            checked = _check_chunk(attrs, geoms, lines, columns, source, srid, transformer, district_geom, near,
                                   known_classes, seen, src.bad_encoding_lines, grid_index, options.district)
            problems.extend(checked.problems)
            counts["rows"] += len(attrs)
            counts["good"] += len(checked.frame)
            store.copy_staging(conn, checked.frame, srid)
            if progress:
                total = max(src.total, counts["rows"], 1)
                progress(min(90.0, 90.0 * counts["rows"] / total), dict(counts))
        if source is None:
            raise InvalidInput("the file holds no rows", field="file")
    counts["bad"] = counts["rows"] - counts["good"]
    counts["warnings"] = sum(p["severity"] == "warning" for p in problems)
    counts["generated_ids"] = store.fill_missing_ids(conn, options.district)
    reconciliation = store.reconcile(conn, options.district, options.move_tolerance_m, options.partial)
    counts.update({k: v for k, v in reconciliation["counts"].items()})
    bad_share = counts["bad"] / counts["rows"] if counts["rows"] else 0.0
    if bad_share > options.max_bad_ratio:
        state = "rejected"
        warnings.append(f"{counts['bad']} of {counts['rows']} rows are bad ({bad_share:.1%}), more than "
                        f"max_bad_ratio {options.max_bad_ratio:.1%}: nothing was imported")
    elif options.dry_run:
        state = "preview"
    else:
        store.commit_staging(conn, options.district, options.scheme, options.partial, options.synthetic)
        spatial_store.audit(conn, action="import", object_kind="census", object_id=options.district,
                            district=options.district,
                            after={"file": Path(path).name, "counts": reconciliation["counts"],
                                   "rows": counts["rows"], "bad": counts["bad"], "partial": options.partial})
        state = "committed"
    if progress:
        progress(100.0, dict(counts))
    return CensusResult(state=state, counts=counts, problems=problems, reconciliation=reconciliation,
                        warnings=warnings, encoding=src.encoding, source_crs=source.label)


def report_csv(problems: list[dict[str, Any]]) -> str:
    """The row report as CSV text: line, obj_id, field, severity, reason."""
    frame = pd.DataFrame(problems, columns=["line", "obj_id", "field", "severity", "reason"])
    buffer = io.StringIO()
    frame.sort_values(["line", "field"]).to_csv(buffer, index=False)
    return buffer.getvalue()
