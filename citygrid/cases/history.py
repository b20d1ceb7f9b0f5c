"""Bulk cases: historic cases from a CSV (a city's own 311-style columns and values, via a mapping), with
their workflow history and a row report.

Every row goes through the same intake validation (``intake.parse_report``) and the same geocoding engine
(``GridIndex``, batch mode) as a single report; valid rows are inserted in one transaction with their workflow
events: the import itself at the report time, then one event per dated step the file gives (accepted,
dispatched, …, closed) at that step's time. The seeded synthetic demo history (``synthetic.py``) uses this
path too.

A file's columns are found by name (``ALIASES``) or named by a mapping file (``load_mapping``), whose values
tables turn a city's own words (``Closed``, ``PHONE``, ``Noise - Residential``) into ours, case-insensitively
unless it says otherwise. A column whose values are not ours is never forced: its values are mapped, the
column is ignored, or each row says what is wrong. Without a key column, each case's key is derived from its
row's content, so importing the same file twice adds nothing.

Coordinates come in as lon/lat (WGS84, GCJ-02 or BD-09 per row); storage is the deployment CRS.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyproj
import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy.engine import Connection

from citygrid.cases import store
from citygrid.cases.intake import INPUT_CRS, SOURCES, Report, parse_report
from citygrid.cases.service import active_scheme
from citygrid.cases.workflow import STATES, TRANSITIONS
from citygrid.errors import InvalidInput, RowProblem, problem
from citygrid.loaders import safeyaml
from citygrid.loaders.plaintext import spreadsheet_safe
from citygrid.loaders.tables import read_csv_table
from citygrid.spatial import crs, db, timezones
from citygrid.spatial import store as spatial_store
from citygrid.spatial.boundaries import district_boundary
from citygrid.spatial.db import deployment_srid
from citygrid.spatial.geocode import GridIndex

FIELDS = ("lon", "lat", "crs", "kind", "class_code", "description", "reported_at", "status", "source", "address",
          "idempotency_key")
# Dated workflow steps a file may give, in workflow order: each becomes an event of the case at that time.
EVENT_FIELDS: dict[str, str] = {
    "verified_at": "verify", "accepted_at": "accept", "rejected_at": "reject", "dispatched_at": "dispatch",
    "fed_back_at": "feed_back", "checked_at": "check_pass", "closed_at": "close", "evaluated_at": "evaluate",
}
ALL_FIELDS = FIELDS + tuple(EVENT_FIELDS)
TIME_FIELDS = ("reported_at", *EVENT_FIELDS)
# Fields whose values are a vocabulary of ours: a mapping file's ``values:`` translates a city's own words.
OUR_VALUES: dict[str, tuple[str, ...]] = {
    "status": STATES, "source": SOURCES, "kind": ("event", "component"), "crs": INPUT_CRS, "class_code": (),
}
MAPPING_KEYS = ("columns", "values", "set", "ignore", "case_sensitive", "time_format")
ALIASES = {
    "lon": ("lon", "lng", "longitude", "x", "经度"), "lat": ("lat", "latitude", "y", "纬度"),
    "crs": ("crs", "坐标系"), "kind": ("kind", "类型"), "class_code": ("class_code", "小类代码", "类别代码"),
    "description": ("description", "问题描述", "描述", "内容"),
    "reported_at": ("reported_at", "上报时间", "时间", "created date", "requested_datetime"),
    "status": ("status", "状态"), "source": ("source", "来源"), "address": ("address", "地址"),
    "idempotency_key": ("idempotency_key", "case_no", "案件编号", "编号", "unique key", "service_request_id"),
    "closed_at": ("closed_at", "结案时间", "closed date"), "dispatched_at": ("dispatched_at", "派遣时间"),
    "accepted_at": ("accepted_at", "立案时间"),
}
MAX_COLUMN_NAME = 200
COMPASS = ("north", "north-east", "east", "south-east", "south", "south-west", "west", "north-west")
REPORT_COLUMNS = ("line", "field", "reason", "district", "outside_m", "nearest_edge", "nearest_lon",
                  "nearest_lat")


@dataclass
class BulkResult:
    """What an import did: ``rows`` read, ``imported`` new cases (with ``events`` workflow events beyond the
    import itself), ``already_stored`` valid rows whose key was stored already (or repeated an earlier row),
    ``key`` how each case's key was found, every problem, and ``state`` (committed | rejected)."""

    rows: int
    imported: int
    problems: list[dict[str, Any]] = field(default_factory=list)
    state: str = "committed"
    events: int = 0
    already_stored: int = 0
    key: str = ""


@dataclass(frozen=True)
class CaseMapping:
    """How a file's columns and values become ours (see ``load_mapping`` for the file).

    Attributes
    ----------
    columns : our field -> the file's column.
    values : our field -> (the file's value, folded unless ``case_sensitive``) -> our value.
    constants : our field -> one value for every row (``set:``).
    ignore : our fields whose same-named column is not read (``ignore:``).
    case_sensitive : whether values (and our own words, ``Closed`` for ``closed``) must match exactly.
    time_format : a ``strptime`` format for every time column (None: ISO 8601).
    """

    columns: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    constants: dict[str, str] = field(default_factory=dict)
    ignore: tuple[str, ...] = ()
    case_sensitive: bool = False
    time_format: str | None = None

    def fold(self, text: str) -> str:
        """``text`` as compared: stripped, and case-folded unless ``case_sensitive``."""
        return text.strip() if self.case_sensitive else text.strip().casefold()

    def translate(self, name: str, value: str) -> str:
        """The file's ``value`` of field ``name`` as ours: through the values table, else one of our own words
        matched (case-insensitively unless ``case_sensitive``), else unchanged for the checks to judge."""
        key = self.fold(value)
        table = self.values.get(name, {})
        if key in table:
            return table[key]
        for ours in OUR_VALUES.get(name, ()):
            if self.fold(ours) == key:
                return ours
        return value.strip()


def _text_keyed(data: Any, what: str, known: Iterable[str] | None) -> dict[str, str]:
    """A mapping of text to text; ``InvalidInput`` naming ``what`` for anything else (with the known keys)."""
    if not isinstance(data, dict):
        raise InvalidInput(f"mapping: '{what}' must be a mapping of names to values", field="mapping")
    if known is not None:
        unknown = [str(k) for k in data if k not in known]
        if unknown:
            raise InvalidInput(f"mapping: unknown field(s) {', '.join(map(repr, unknown))} under '{what}'; "
                               f"known fields: {', '.join(known)}", field="mapping")
    odd = [str(k) for k, v in data.items() if not isinstance(v, str) or not isinstance(k, str)]
    if odd:
        raise InvalidInput(f"mapping: under '{what}', {', '.join(odd)} is not text (YAML reads no/yes/on as "
                           "booleans and digits as numbers, 0102 as octal): quote them", field="mapping")
    return dict(data)


def parse_mapping(data: Any) -> CaseMapping:
    """Validate a parsed mapping document (see ``load_mapping``); ``InvalidInput`` naming the bad part."""
    if data is None:
        return CaseMapping()
    _check_keys(data)
    columns, constants = _columns_and_constants(data)
    case_sensitive = data.get("case_sensitive", False)
    if not isinstance(case_sensitive, bool):
        raise InvalidInput("mapping: case_sensitive must be true or false", field="mapping")
    values = _value_tables(data.get("values") or {}, case_sensitive)
    ignore = _ignored(data.get("ignore") or [], set(columns) | set(constants))
    time_format = data.get("time_format")
    if time_format is not None:
        _check_time_format(time_format)
    return CaseMapping(columns=columns, values=values, constants=constants, ignore=ignore,
                       case_sensitive=case_sensitive, time_format=time_format)


def _check_keys(data: Any) -> None:
    """``InvalidInput`` unless ``data`` is a mapping whose keys are all ``MAPPING_KEYS``."""
    if not isinstance(data, dict):
        raise InvalidInput(f"mapping: must be a mapping with keys among {', '.join(MAPPING_KEYS)}", field="mapping")
    unknown = [str(k) for k in data if k not in MAPPING_KEYS]
    if unknown:
        raise InvalidInput(f"mapping: unknown key(s) {', '.join(map(repr, unknown))}; known keys: "
                           f"{', '.join(MAPPING_KEYS)}", field="mapping")


def _columns_and_constants(data: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """The ``columns:`` (our field -> the file's column, 1–``MAX_COLUMN_NAME`` characters) and ``set:``
    (our field -> one value) sections, which may not name one field twice."""
    columns = _text_keyed(data.get("columns") or {}, "columns", ALL_FIELDS)
    if any(not 0 < len(c) <= MAX_COLUMN_NAME for c in columns.values()):
        raise InvalidInput(f"mapping: column names are 1–{MAX_COLUMN_NAME} characters", field="mapping")
    constants = _text_keyed(data.get("set") or {}, "set", ALL_FIELDS)
    both = sorted(set(columns) & set(constants))
    if both:
        raise InvalidInput(f"mapping: {', '.join(both)} is both read from a column and set", field="mapping")
    return columns, constants


def _value_tables(raw: Any, case_sensitive: bool) -> dict[str, dict[str, str]]:
    """The ``values:`` section: per field of ``OUR_VALUES``, the file's values (folded as ``CaseMapping.fold``
    does) -> ours; a value mapped twice (after folding) to different words is refused."""
    fold = CaseMapping(case_sensitive=case_sensitive).fold
    if not isinstance(raw, dict):
        raise InvalidInput("mapping: 'values' must map a field to a table of the file's values and ours",
                           field="mapping")
    values: dict[str, dict[str, str]] = {}
    for name, table in raw.items():
        if name not in OUR_VALUES:
            raise InvalidInput(f"mapping: values can be mapped for {', '.join(OUR_VALUES)}, not {name!r}",
                               field="mapping")
        folded: dict[str, str] = {}
        for theirs, ours in _text_keyed(table, f"values: {name}", None).items():
            if OUR_VALUES[name] and ours not in OUR_VALUES[name]:
                raise InvalidInput(f"mapping: values: {name}: {theirs!r} maps to {ours!r}, which is not one of "
                                   f"{', '.join(OUR_VALUES[name])}", field="mapping")
            key = fold(theirs)
            if folded.get(key, ours) != ours:
                raise InvalidInput(f"mapping: values: {name}: {theirs!r} is mapped twice (to {folded[key]!r} and "
                                   f"{ours!r}){'' if case_sensitive else ' ignoring case'}", field="mapping")
            folded[key] = ours
        values[name] = folded
    return values


def _ignored(ignore: Any, mapped: set[str]) -> tuple[str, ...]:
    """The ``ignore:`` section: fields of ours whose same-named column is not read, none of them ``mapped``."""
    if not isinstance(ignore, list) or any(not isinstance(i, str) or i not in ALL_FIELDS for i in ignore):
        raise InvalidInput(f"mapping: 'ignore' lists fields whose same-named column is not read, among "
                           f"{', '.join(ALL_FIELDS)}", field="mapping")
    clash = sorted(set(ignore) & mapped)
    if clash:
        raise InvalidInput(f"mapping: {', '.join(clash)} is both ignored and mapped", field="mapping")
    return tuple(ignore)


def _check_time_format(fmt: Any) -> None:
    """``InvalidInput`` unless ``fmt`` is a ``strptime`` format that reads back what it writes (``%z``, an
    offset such as -0500, may be part of it; ``%Z`` may not: strptime knows only the machine's zone names)."""
    if isinstance(fmt, str) and "%Z" in fmt:
        raise InvalidInput("mapping: time_format may not use %Z (strptime reads only UTC, GMT and the machine's "
                           "own zone names): use %z for an offset such as -0500, or leave the zone out (times "
                           "are then the deployment's)", field="mapping")
    sample = dt.datetime(2024, 11, 28, 21, 5, 9, tzinfo=dt.UTC)
    try:
        ok = isinstance(fmt, str) and 0 < len(fmt) <= 100 and "%" in fmt and \
            dt.datetime.strptime(sample.strftime(fmt), fmt).date() == sample.date()
    except ValueError:
        ok = False
    if not ok:
        raise InvalidInput(f"mapping: time_format {str(fmt)[:100]!r} is not a strptime format naming the date "
                           "(e.g. '%m/%d/%Y %I:%M:%S %p')", field="mapping")


def load_mapping(path: Path | None) -> CaseMapping:
    """Read a mapping file (YAML read safely: no aliases or anchors, bounded size and depth).

    Keys (any other is an error that lists these): ``columns`` (our field -> the file's column),
    ``values`` (field -> {the file's value: ours} for status, class_code, source, kind, crs), ``set`` (field ->
    one value for every row), ``ignore`` (fields whose same-named column is not read), ``case_sensitive``
    (default false) and ``time_format`` (a ``strptime`` format for every time column; default ISO 8601).
    """
    if path is None:
        return CaseMapping()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"mapping file: {exc}", field="mapping") from exc
    return parse_mapping(safeyaml.load(text, what=f"mapping file {path.name}"))


def derived_key(row: dict[str, Any]) -> str:
    """A case key from a row's whole content (its columns and values): the same row gives the same key."""
    content = json.dumps({str(k): str(v) for k, v in row.items()}, sort_keys=True, ensure_ascii=False)
    return "row:" + hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def import_cases(conn: Connection, path: Path, *, mapping: CaseMapping | dict[str, str] | None = None,
                 key_field: str | None = None, ignore: Sequence[str] = (), max_bad_ratio: float = 0.05,
                 synthetic: bool = False, encoding: str | None = None) -> BulkResult:
    """Import historic cases from a CSV inside the caller's transaction; see the module docstring.

    Parameters
    ----------
    conn : a connection in the caller's transaction.
    path : the CSV (UTF-8 or GB18030) with lon/lat in WGS84 (or the ``crs`` column's GCJ-02/BD-09).
    mapping : a ``CaseMapping`` (``load_mapping``), or a plain {field: column} dict.
    key_field : the column holding each case's own key (overrides the mapping's ``idempotency_key``).
    ignore : fields whose same-named column is not read (added to the mapping's ``ignore``).
    max_bad_ratio : above this share of bad rows nothing is imported (``state`` rejected).
    synthetic : only the seeded demo history.
    encoding : the file's text encoding (None: UTF-8, else GB18030 when plainly Chinese;
        ``loaders.encoding.csv_encoding``).
    """
    table, _ = read_csv_table(path, encoding=encoding)
    if not isinstance(mapping, CaseMapping):
        mapping = parse_mapping({"columns": dict(mapping or {})})
    bad_ignore = [i for i in ignore if i not in ALL_FIELDS]
    if bad_ignore:
        raise InvalidInput(f"--ignore {bad_ignore[0]!r}: give fields among {', '.join(ALL_FIELDS)}", field="ignore")
    file_columns = list(table.columns)
    columns = dict(mapping.columns)
    if key_field:
        columns["idempotency_key"] = key_field
    ignored = set(mapping.ignore) | set(ignore)
    missing = [v for v in columns.values() if v not in file_columns]
    if missing:
        raise InvalidInput(f"mapped column(s) {', '.join(map(repr, missing))} not in the file; its columns are "
                           f"{', '.join(map(repr, file_columns[:50]))}", field="mapping")
    lower = {c.strip().lower(): c for c in file_columns}
    for name, aliases in ALIASES.items():
        if name not in columns and name not in ignored and name not in mapping.constants:
            hit = next((lower[a] for a in aliases if a in lower), None)
            if hit and hit not in columns.values():
                columns[name] = hit
    key_column = columns.get("idempotency_key")
    records, derived = [], 0
    for row in table.to_dict("records"):
        record: dict[str, Any] = {name: (row[col] if row[col].strip() != "" else None) for name, col in columns.items()}
        record.update(mapping.constants)
        for name in OUR_VALUES:
            if isinstance(record.get(name), str):
                record[name] = mapping.translate(name, record[name])
        if not record.get("idempotency_key"):
            record["idempotency_key"] = derived_key(row)
            record["derived_key"] = True  # a repeat of it is a repeated row, not a clash of case numbers
            derived += 1
        records.append(record)
    result = insert_reports(conn, records, max_bad_ratio=max_bad_ratio, synthetic=synthetic,
                            time_format=mapping.time_format,
                            hint={name: "values: " + name for name in OUR_VALUES if name in columns})
    if key_column is None:
        result.key = ("derived from each row's content (no key column: give --key-field or the mapping's "
                      "columns: idempotency_key); importing the same rows again adds nothing")
    else:
        result.key = f"column {key_column!r}" + (f"; derived from the row's content where empty ({derived} rows)"
                                                 if derived else "")
    return result


def _zone(conn: Connection) -> ZoneInfo:
    """The zone in which a time without an offset is read: the deployment's (``db init --timezone``)."""
    # TZ: the only place this module picks a zone; reading times goes through spatial/timezones.py.
    return db.deployment_zone(conn)


def _time(text: str, time_format: str | None, zone: ZoneInfo) -> dt.datetime:
    """A time from a file as an aware datetime: ``time_format`` (strptime) else ISO 8601; without an offset it
    is wall-clock time in ``zone`` (``timezones``). ``ValueError`` when it is neither."""
    if time_format is None:
        return timezones.parse_datetime(text, zone)
    return timezones.localize(dt.datetime.strptime(text.strip(), time_format), zone)


def _shown(value: Any) -> str:
    """A value as quoted in a message: its repr, cut to 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:79] + "…"


def _at_line(detail: dict[str, Any], line: int) -> RowProblem:
    """A problem ``parse_report`` found in one field of the row at ``line`` (its own context kept)."""
    rest = {k: v for k, v in detail.items() if k not in ("line", "field", "reason")}
    return problem(detail.get("field"), detail["reason"], line=line, **rest)


def _history(line: int, record: dict[str, Any], reported_at: dt.datetime | None, time_format: str | None,
             zone: ZoneInfo, problems: list[dict[str, Any]]) -> list[tuple[str, dt.datetime]] | None:
    """The row's dated steps as (event field, time) in workflow order; None (with problems added) when a time
    is unreadable, in the future, before the report or before an earlier step."""
    steps, ok = [], True
    now = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    for name in EVENT_FIELDS:
        raw = record.get(name)
        if raw is None:
            continue
        try:
            at = raw if isinstance(raw, dt.datetime) else _time(str(raw), time_format, zone)
        except (ValueError, OverflowError):
            ok = False
            expected = f"the time_format {time_format!r}" if time_format else "ISO 8601 (e.g. 2024-03-01T09:00)"
            problems.append(problem(name, f"{_shown(raw)} is not a time in {expected}", line=line))
            continue
        if at > now:
            ok = False
            problems.append(problem(name, f"{at.isoformat()} is in the future", line=line))
        elif reported_at is None:
            ok = False
            problems.append(problem(name, "a dated step needs the report time (reported_at)", line=line))
        # Compared as UTC instants: Python compares two datetimes of one zone by wall-clock time, which puts
        # 01:10 EST before 01:40 EDT in the hour a daylight-saving change repeats.
        elif at.astimezone(dt.UTC) < reported_at.astimezone(dt.UTC):
            ok = False
            problems.append(problem(name, f"{at.isoformat()} is before the report ({reported_at.isoformat()})",
                                    line=line))
        elif steps and at.astimezone(dt.UTC) < steps[-1][1].astimezone(dt.UTC):
            ok = False
            problems.append(problem(name, f"{at.isoformat()} is before {steps[-1][0]} ({steps[-1][1].isoformat()})",
                                    line=line))
        steps.append((name, at))
    return steps if ok else None


def insert_reports(conn: Connection, records: Sequence[dict[str, Any]], *, max_bad_ratio: float = 0.05,
                   synthetic: bool = False, first_line: int = 2, time_format: str | None = None,
                   hint: dict[str, str] | None = None) -> BulkResult:
    """Validate, place and insert many reports.

    Parameters
    ----------
    records : dicts of intake fields (``parse_report``) plus optional ``status`` and dated steps
        (``EVENT_FIELDS``: ``closed_at`` …), times as text (ISO 8601, or ``time_format``) or datetimes.
    first_line : the file line of the first record (for the report).
    hint : field -> where its values are mapped (``values: status``), named in messages about values.

    Without ``status`` a case is in the state its last dated step leads to, else closed.
    """
    problems: list[dict[str, Any]] = []
    reports: list[tuple[int, Report, str, list[tuple[str, dt.datetime]]]] = []
    zone = _zone(conn)
    hint = hint or {}
    first_of_key: dict[str, int] = {}
    for offset, record in enumerate(records):
        line = first_line + offset
        row_problems: list[dict[str, Any]] = []
        for name in ("status", "source"):
            value = record.get(name)
            if value is not None and value not in OUR_VALUES[name]:
                where = f"map it under '{hint[name]}:' in the mapping file" if name in hint else "map it"
                also = f", or ignore the column (ignore: [{name}] / --ignore {name})" if name in hint else ""
                row_problems.append(problem(
                    name, f"{_shown(value)} is not one of ours ({', '.join(OUR_VALUES[name])}): {where}{also}",
                    line=line))
        reported_at = None
        raw_time = record.get("reported_at")
        if raw_time is not None and not isinstance(raw_time, dt.datetime):
            try:
                reported_at = _time(str(raw_time), time_format, zone)
            except (ValueError, OverflowError):
                expected = f"the time_format {time_format!r}" if time_format else "ISO 8601"
                row_problems.append(problem("reported_at", f"{_shown(raw_time)} is not a time in {expected}",
                                            line=line))
        elif isinstance(raw_time, dt.datetime):
            reported_at = timezones.localize(raw_time, zone)
        data = {k: v for k, v in record.items() if k in FIELDS and k not in ("status", "reported_at")}
        data["reported_at"] = reported_at.isoformat() if reported_at else None
        try:
            # Checked as an import: a historic public report (hotline, 311) carries its class, so it need not
            # carry the description live intake asks of the public; its own source (checked above) is kept.
            report = parse_report({**data, "source": "import", "synthetic": synthetic},
                                  allow_synthetic=synthetic, default_source="import")
            report = replace(report, source=data.get("source") or "import")
        except InvalidInput as exc:
            row_problems.extend(_at_line(d, line) for d in exc.details
                                if not any(p["field"] == d.get("field") for p in row_problems))
            report = None
        steps = _history(line, record, reported_at, time_format, zone, row_problems)
        if row_problems or report is None or steps is None:
            problems.extend(row_problems)
            continue
        if report.lon is None:
            problems.append(problem("lon", "bulk rows need coordinates", line=line))
            continue
        if not report.class_code:  # single reports may be classified on intake; historic rows keep their own
            problems.append(problem("class_code", "required in a bulk import", line=line))
            continue
        status = record.get("status") or (TRANSITIONS[EVENT_FIELDS[steps[-1][0]]].target if steps else "closed")
        key = report.idempotency_key
        if key is not None and key in first_of_key and not record.get("derived_key"):
            problems.append(problem("idempotency_key", f"{_shown(key)} is the key of line {first_of_key[key]} too: one "
                                    "case per key, the first is imported", line=line))
            continue
        if key is not None:
            first_of_key.setdefault(key, line)
        reports.append((line, report, status, steps))
    srid = deployment_srid(conn)
    placed = _place(conn, reports, srid, problems, hint)
    bad_lines = {p["line"] for p in problems}
    total = len(records)
    if total and len(bad_lines) / total > max_bad_ratio:
        return BulkResult(rows=total, imported=0, problems=problems, state="rejected")
    inserted, events = _insert(conn, placed, srid)
    return BulkResult(rows=total, imported=inserted, problems=problems, events=events,
                      already_stored=len(placed) - inserted)


def _outside(boundaries: dict[str, BaseGeometry], x: np.ndarray, y: np.ndarray, lon: np.ndarray, lat: np.ndarray,
             srid: int) -> list[dict[str, Any]]:
    """For points outside every district (x, y in EPSG:``srid``; lon, lat the same points in EPSG:4326): the
    nearest district, how far outside (metres, geodesic from the point to the nearest boundary point), which of
    its edges is nearest (compass direction from its centre) and that boundary point in EPSG:4326 lon/lat.
    A point the deployment CRS cannot project (infinite) is only said to be too far."""
    codes = list(boundaries)
    finite = np.isfinite(x) & np.isfinite(y)
    points = shapely.points(np.where(finite, x, 0.0), np.where(finite, y, 0.0))
    distances = np.vstack([shapely.distance(boundaries[c], points) for c in codes])
    nearest = np.argmin(distances, axis=0)
    # The nearest boundary point of each point's nearest district, all at once (x, y in EPSG:srid).
    edges = np.zeros((len(points), 2))
    centres = np.zeros((len(points), 2))
    for k, code in enumerate(codes):
        mine = np.flatnonzero(nearest == k)
        if len(mine):
            lines = shapely.shortest_line(boundaries[code], points[mine])
            edges[mine] = shapely.get_coordinates(shapely.get_point(lines, 0))
            centre = boundaries[code].centroid
            centres[mine] = (centre.x, centre.y)
    on_edge = crs.to_lonlat(shapely.points(edges), srid)
    edge_lon, edge_lat = shapely.get_x(on_edge), shapely.get_y(on_edge)
    metres = pyproj.Geod(ellps="WGS84").inv(lon, lat, edge_lon, edge_lat)[2]
    bearings = np.degrees(np.arctan2(edges[:, 0] - centres[:, 0], edges[:, 1] - centres[:, 1])) % 360
    found: list[dict[str, Any]] = []
    for i in range(len(points)):
        if not finite[i]:
            found.append({"reason": f"the point {lon[i]:g}, {lat[i]:g} is too far from this deployment's area "
                                    f"(EPSG:{srid}) to be placed"})
            continue
        where: dict[str, Any] = {
            "district": codes[int(nearest[i])], "outside_m": round(float(metres[i]), 1),
            "nearest_edge": COMPASS[int((bearings[i] + 22.5) // 45) % 8],
            "nearest_lon": round(float(edge_lon[i]), 6), "nearest_lat": round(float(edge_lat[i]), 6)}
        where["reason"] = (f"the point lies {metres[i]:,.0f} m outside district {where['district']}, beyond its "
                           f"{where['nearest_edge']} edge (nearest boundary point {where['nearest_lon']}, "
                           f"{where['nearest_lat']})")
        found.append(where)
    return found


def _place(conn: Connection, reports: list[tuple[int, Report, str, list[tuple[str, dt.datetime]]]], srid: int,
           problems: list[dict[str, Any]], hint: dict[str, str]) -> list[dict[str, Any]]:
    """Storage points (EPSG:``srid``, from each report's lon/lat in its WGS84/GCJ-02/BD-09), district, grids
    (batch GridIndex) and class check for every valid report; problems for the rest."""
    if not reports:
        return []
    by_crs: dict[str, list[int]] = {}
    for i, (_, report, _, _) in enumerate(reports):
        by_crs.setdefault(report.crs, []).append(i)
    x, y = np.zeros(len(reports)), np.zeros(len(reports))
    wgs_lon, wgs_lat = np.zeros(len(reports)), np.zeros(len(reports))  # EPSG:4326, for distances outside
    for input_crs, idx in by_crs.items():
        lon = np.array([reports[i][1].lon for i in idx])
        lat = np.array([reports[i][1].lat for i in idx])
        source = crs.parse_crs({"wgs84": "EPSG:4326"}.get(input_crs, input_crs))
        pts = crs.to_storage(shapely.points(lon, lat), source, srid)
        x[idx], y[idx] = shapely.get_x(pts), shapely.get_y(pts)
        wgs_lon[idx], wgs_lat[idx] = crs.pseudo_to_wgs84(source.pseudo, lon, lat) if source.pseudo else (lon, lat)
    scheme = active_scheme(conn)  # rows are filed in the deployment's active class scheme, as single reports
    classes = store.class_keys(conn, scheme)
    districts = spatial_store.district_codes(conn)
    district_of = np.full(len(reports), None, dtype=object)
    indexes: dict[str, GridIndex] = {}
    boundaries: dict[str, BaseGeometry] = {}
    for district in districts:
        boundary = boundaries[district] = district_boundary(conn, district)
        shapely.prepare(boundary)
        inside = shapely.contains_xy(boundary, x, y) & (district_of == None)  # noqa: E711 (element-wise)
        district_of[inside] = district
        indexes[district] = GridIndex.cached(conn, district)
    placed = []
    for district in districts:
        rows = np.flatnonzero(district_of == district)
        hits = indexes[district].assign(x[rows], y[rows]) if len(rows) else np.zeros(0, dtype=int)
        for row, hit in zip(rows, hits, strict=True):
            line, report, status, steps = reports[row]
            if (report.kind, report.class_code) not in classes:
                mapped = f" (map the file's classes under '{hint['class_code']}:')" if "class_code" in hint else ""
                problems.append(problem("class_code", f"unknown {report.kind} class {report.class_code}{mapped}",
                                         line=line))
                continue
            index = indexes[district]
            placed.append({
                "line": line, "district": district, "key": report.idempotency_key, "kind": report.kind,
                "scheme": scheme, "class_code": report.class_code, "description": report.description,
                "source": report.source, "reported_at": report.reported_at, "status": status,
                "unit": index.codes[hit] if hit >= 0 else None,
                "supervision": index.supervision_codes[hit] if hit >= 0 else None,
                "community": index.community_codes[hit] if hit >= 0 else None,
                "street": index.street_codes[hit] if hit >= 0 else None, "synthetic": report.synthetic,
                # A dict: the chunk is JSON-encoded once as a whole (encoding it here too stored a JSON string).
                "attrs": {"address": report.address, "input_crs": report.crs, "imported": True},
                "x": float(x[row]), "y": float(y[row]), "steps": steps,
            })
    outside = np.flatnonzero(district_of == None)  # noqa: E711
    if len(outside) and boundaries:
        for row, where in zip(outside, _outside(boundaries, x[outside], y[outside], wgs_lon[outside],
                                                 wgs_lat[outside], srid), strict=True):
            problems.append(problem("lon", where.pop("reason"), line=reports[row][0], **where))
    else:
        problems.extend(problem("lon", "there is no district to place it in", line=reports[row][0])
                        for row in outside)
    return placed


def _insert(conn: Connection, rows: list[dict[str, Any]], srid: int) -> tuple[int, int]:
    """Insert placed rows 2,000 at a time and their events (the import, then each dated step); rows whose
    idempotency key is already stored are skipped. Returns (cases inserted, dated-step events inserted)."""
    if not rows:
        return 0, 0
    now = dt.datetime.now(dt.UTC)
    ids = []
    # A historic caseload is audited once (below), not row by row by the cases trigger.
    store.bulk_audit_off(conn, True)
    steps_of = {(r["district"], r["key"]): r["steps"] for r in rows}
    for chunk_start in range(0, len(rows), 2000):
        chunk = [{k: v for k, v in r.items() if k != "steps"} for r in rows[chunk_start:chunk_start + 2000]]
        ids.extend(store.insert_cases_bulk(conn, chunk, srid, now))
    events: list[dict[str, Any]] = []
    dated = 0
    for case_id, district, status, key in ids:
        steps = steps_of.get((district, key), [])
        first = "reported" if steps else status
        events.append({"district": district, "case_id": case_id, "seq": 1, "action": "import", "from_status": None,
                       "to_status": first, "at": None})
        for seq, (name, at) in enumerate(steps, start=2):
            transition = TRANSITIONS[EVENT_FIELDS[name]]
            events.append({"district": district, "case_id": case_id, "seq": seq, "action": transition.action,
                           "from_status": events[-1]["to_status"], "to_status": transition.target,
                           "at": at.isoformat()})
            dated += 1
    for start in range(0, len(events), 10_000):
        store.insert_events_bulk(conn, events[start:start + 10_000])
    store.bulk_audit_off(conn, False)
    for district in sorted({d for _, d, _, _ in ids}):
        in_district = [c for c, d, _, _ in ids if d == district]
        spatial_store.audit(conn, action="import", object_kind="cases", object_id=district, district=district,
                            after={"cases": len(in_district), "first_case_id": min(in_district),
                                   "last_case_id": max(in_district),
                                   "synthetic": bool(rows[0].get("synthetic"))})
    return len(ids), dated


def report_csv(problems: list[dict[str, Any]]) -> str:
    """Every problem as CSV text (``REPORT_COLUMNS``), by line. A cell that a spreadsheet would run as a
    formula (=, +, @, or - not starting a number) is prefixed with an apostrophe."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=REPORT_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in sorted(problems, key=lambda p: (p.get("line") or 0, str(p.get("field", "")))):
        writer.writerow({k: spreadsheet_safe(row.get(k)) for k in REPORT_COLUMNS})
    return buffer.getvalue()


