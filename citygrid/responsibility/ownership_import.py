"""A city's own lists of the four subjects (#22): who answers for each unit grid in one role, from a file.

Two kinds of file, one result:

- **a CSV of grid code → party** (``grid_code``, ``kind``, ``code``, ``name``, ``contact``; a mapping renames
  columns, sets constants and translates kind values);
- **a GIS file of responsibility areas** (any vector format ``loaders.vector`` reads; its CRS from the file,
  refused when it has none), each area a party; a party is assigned to the unit grids it covers by the
  **largest share** of each grid's area. A grid where the two largest shares are within ``TIE_SHARE`` of each
  other is a tie (reported, not assigned); an area covering less than ``SLIVER_SHARE`` of a grid is a sliver
  (reported, and never enough to assign the grid); areas of different parties that overlap are reported.

Parties are matched by (kind, code), else created; one (kind, code) named differently in one file is ambiguous,
and a row naming only a code that is not stored is an unknown party. The assignments are **dated**: from the
first instant of ``valid_from`` (a local day of the deployment's zone, default today) the listed party owns the
grid; the previous assignment of that grid and role is closed there, a grid the file does not mention keeps its
owner, and a grid whose owner is already the listed party is left as it is (re-importing a file changes
nothing). Every problem is a ``RowProblem`` (``errors.problem``); a file whose share of bad rows is above
``max_bad_ratio`` is refused whole. One transaction: the caller's.

Geometry: areas are read in the file's CRS and compared with the unit grids in the storage CRS
(``spatial.db.deployment_srid``); shares are ratios of areas there.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely
from sqlalchemy.engine import Connection

from citygrid import codes
from citygrid.errors import InvalidInput, NotFound, RowProblem, problem
from citygrid.gridding import queries as grid_queries
from citygrid.loaders import safeyaml
from citygrid.loaders.plaintext import control_character, spreadsheet_safe
from citygrid.loaders.tables import CSV_SUFFIXES, FIRST_LINE, read_csv_table
from citygrid.loaders.vector import read_vector
from citygrid.responsibility import store
from citygrid.responsibility.ownership import ROLES
from citygrid.spatial import crs
from citygrid.spatial import store as spatial_store
from citygrid.spatial.db import deployment_srid, deployment_zone
from citygrid.spatial.timezones import day_start

FIELDS = ("grid_code", "kind", "code", "name", "contact")
# The party kinds an ownership list may name (the parties table's; frontage units and property companies are
# registered through their own import, ``responsibility.frontage``, and may be named here once registered).
PARTY_KINDS = ("department", "unit", "street_office", "community", "team", "person", "frontage_unit",
               "property_company")
# Kind values a Chinese list writes, read as ours without a mapping.
KIND_WORDS = {"街道办事处": "street_office", "街道": "street_office", "乡镇": "street_office",
              "乡镇人民政府": "street_office", "社区": "community", "居委会": "community", "社区居委会": "community",
              "村委会": "community", "村": "community", "部门": "department", "委办局": "department",
              "单位": "unit", "社会单位": "unit", "队": "team", "执法队": "team", "个人": "person",
              "物业公司": "property_company", "物业": "property_company", "门前三包单位": "frontage_unit"}
# Column names recognised without a mapping (any case), per field.
COLUMN_NAMES = {"grid_code": ("grid_code", "grid", "网格编码", "网格代码", "单元网格编码"),
                "kind": ("kind", "party_kind", "类型", "主体类型"),
                "code": ("code", "party_code", "编码", "主体编码", "统一社会信用代码"),
                "name": ("name", "party", "party_name", "名称", "主体名称", "责任单位"),
                "contact": ("contact", "phone", "联系方式", "联系电话")}
MAX_CHARS = {"grid_code": 40, "kind": 40, "code": 100, "name": 200, "contact": 300}
SLIVER_SHARE = 0.05  # an area covering less of a grid than this is a sliver there
TIE_SHARE = 0.01  # the two largest shares of a grid closer than this are a tie
OVERLAP_M2 = 1.0  # areas of two parties overlapping by less than this are taken as touching


@dataclass(frozen=True)
class PartyMapping:
    """How a file's columns and values become ours.

    Attributes
    ----------
    columns : our field (``FIELDS``) → the file's column.
    constants : our field → one value for every row (``set:`` in the YAML).
    kinds : a kind value of the file → ours (``values: {kind: {...}}``), besides ``KIND_WORDS``.

    Examples
    --------
    >>> parse_mapping({"columns": {"grid_code": "网格"}, "set": {"kind": "unit"}}).constants
    {'kind': 'unit'}
    """

    columns: dict[str, str] = field(default_factory=dict)
    constants: dict[str, str] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)


def parse_mapping(data: Any) -> PartyMapping:
    """A ``PartyMapping`` from parsed YAML (``columns``, ``set``, ``values: {kind: …}``); ``InvalidInput``
    naming the first key or value that is not one."""
    if data is None:
        return PartyMapping()
    if not isinstance(data, dict):
        raise InvalidInput("the mapping must be a YAML mapping with columns, set and values", field="mapping")
    unknown = sorted(str(k) for k in data if k not in ("columns", "set", "values"))
    if unknown:
        raise InvalidInput(f"mapping: unknown key {unknown[0][:40]!r} (keys: columns, set, values)", field="mapping")
    columns = _text_table(data.get("columns"), "columns", FIELDS)
    constants = _text_table(data.get("set"), "set", FIELDS)
    values = data.get("values") or {}
    if not isinstance(values, dict) or set(values) - {"kind"}:
        raise InvalidInput("mapping: values may only translate kind ({kind: {theirs: ours}})", field="mapping")
    kinds = _text_table(values.get("kind"), "values.kind", None)
    bad = next((v for v in kinds.values() if v not in PARTY_KINDS), None)
    if bad is not None:
        raise InvalidInput(f"mapping: values.kind maps to {bad[:40]!r}, not one of {', '.join(PARTY_KINDS)}",
                           field="mapping")
    return PartyMapping(columns=columns, constants=constants, kinds=kinds)


def _text_table(raw: Any, what: str, keys: tuple[str, ...] | None) -> dict[str, str]:
    """``raw`` as a {text: text} table; ``keys`` (when given) are the keys it may have."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, str | int) for v in raw.values()):
        raise InvalidInput(f"mapping: {what} must map names to texts", field="mapping")
    if keys is not None and (extra := sorted(str(k) for k in raw if k not in keys)):
        raise InvalidInput(f"mapping: {what} names {extra[0][:40]!r}, not one of {', '.join(keys)}", field="mapping")
    return {str(k): str(v) for k, v in raw.items()}


def load_mapping(text: str | bytes | None, what: str = "mapping") -> PartyMapping:
    """A ``PartyMapping`` from YAML text (``loaders.safeyaml``: no aliases, bounded size and depth)."""
    return parse_mapping(safeyaml.load(text, what=what)) if text else PartyMapping()


@dataclass(frozen=True)
class ImportOptions:
    """What an ownership import does.

    Attributes
    ----------
    district : the district whose unit grids are assigned.
    role : one of ``ownership.ROLES``.
    valid_from : the local day (deployment's zone) the assignments start; None: today there.
    mapping : see ``PartyMapping``.
    source, licence : where the list comes from (``spatial.sources.source_text`` checked by the caller).
    max_bad_ratio : the share of rows with an error above which the whole file is refused.
    encoding : a CSV's text encoding when it is not UTF-8 (or plainly Chinese GB18030).
    """

    district: str
    role: str
    valid_from: dt.date | None = None
    mapping: PartyMapping = field(default_factory=PartyMapping)
    source: str = ""
    licence: str = ""
    max_bad_ratio: float = 0.05
    encoding: str | None = None

    def validate(self) -> ImportOptions:
        """These options, or ``InvalidInput`` naming the first bad one."""
        if self.role not in ROLES:
            raise InvalidInput(f"role must be one of {', '.join(ROLES)}", field="role")
        if not 0.0 <= self.max_bad_ratio <= 1.0:
            raise InvalidInput("max_bad_ratio must be between 0 and 1", field="max_bad_ratio")
        return self


@dataclass
class ImportResult:
    """What an import did (``state`` ``imported``) or why it did nothing (``rejected``): counts of rows, grids
    assigned (new owner), unchanged (already that owner), replaced (an assignment that began the same instant),
    parties created, and every problem."""

    state: str
    district: str
    role: str
    valid_from: str
    rows: int = 0
    grids: int = 0
    assigned: int = 0
    unchanged: int = 0
    replaced: int = 0
    parties_created: int = 0
    import_id: int | None = None
    problems: list[RowProblem] = field(default_factory=list)

    def as_dict(self, max_problems: int | None = None) -> dict[str, Any]:
        """The result as JSON-ready data; ``max_problems`` cuts the list (``problem_count`` keeps the total)."""
        data = asdict(self)
        data["problem_count"] = len(self.problems)
        data["problems"] = self.problems[:max_problems] if max_problems is not None else self.problems
        return data


@dataclass
class _Row:
    """One row (CSV line or GIS feature) read into our fields; ``line`` as ``loaders.tables`` numbers them."""

    line: int
    values: dict[str, str]

    @property
    def key(self) -> tuple[str, str]:
        return self.values["kind"], self.values["code"]


REPORT_COLUMNS = ("line", "field", "severity", "reason", "key")


def report_csv(problems: list[RowProblem]) -> str:
    """Every problem as CSV text (``REPORT_COLUMNS``), in the order found; a cell a spreadsheet would run as a
    formula (=, +, @, or - not starting a number) gets a leading apostrophe (``plaintext.spreadsheet_safe``)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=REPORT_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in problems:
        writer.writerow({k: spreadsheet_safe(row.get(k)) for k in REPORT_COLUMNS})
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------ the import
def import_ownership(conn: Connection, path: Path, options: ImportOptions, *,
                     file_name: str | None = None) -> ImportResult:
    """Import the ownership list ``path`` in ``options.role`` for ``options.district``.

    Parameters
    ----------
    conn : a connection in the caller's transaction (nothing is written when the file is refused).
    path : a CSV (``.csv``/``.txt``) or a vector file (any CRS; areas are compared in the storage CRS).
    options : see ``ImportOptions``.
    file_name : the name recorded with the import (default ``path``'s).

    Returns
    -------
    ``ImportResult``; ``state`` ``rejected`` (nothing written) when bad rows exceed ``max_bad_ratio``.

    Raises
    ------
    InvalidInput : an unreadable file (content that lies about its type, wrong encoding, no CRS), no rows.
    NotFound : the district does not exist or has no grid version.
    """
    options.validate()
    version_id = _current_version(conn, options.district)
    zone = deployment_zone(conn)
    day = options.valid_from or dt.datetime.now(zone).date()
    start = day_start(day, zone)
    result = ImportResult(state="imported", district=options.district, role=options.role,
                          valid_from=day.isoformat())
    rows, claims, problems = _read_claims(conn, path, options, version_id)
    result.rows, result.problems = len(rows), problems
    if not rows:
        raise InvalidInput(f"{path.name}: no rows", field="file")
    parties = _resolve_parties(conn, options.district, rows, problems)
    claims = {grid: key for grid, key in claims.items() if key in parties}
    bad = {p["line"] for p in problems if p["severity"] == "error" and p["line"] is not None}
    result.grids = len(claims)
    if len(bad) > options.max_bad_ratio * len(rows):
        result.state = "rejected"
        problems.insert(0, problem(None, f"{len(bad)} of {len(rows)} rows have errors, more than max_bad_ratio "
                                         f"{options.max_bad_ratio:g} allows: nothing was imported"))
        return result
    _write(conn, options, start, file_name or path.name, parties, claims, result)
    return result


def _current_version(conn: Connection, district: str) -> int:
    """The district's current grid version id (``gridding.queries.version``); ``NotFound`` without the district
    or a version."""
    if district not in spatial_store.district_codes(conn):
        raise NotFound(f"no district {district}")
    return int(grid_queries.version(conn, district)["version_id"])


def _read_claims(conn: Connection, path: Path, options: ImportOptions,
                 version_id: int) -> tuple[list[_Row], dict[str, tuple[str, str]], list[RowProblem]]:
    """The file's rows, the (kind, code) party each unit grid is claimed for, and the problems so far."""
    _refuse_binary_text(path)
    if path.suffix.lower() in CSV_SUFFIXES:
        table, _ = read_csv_table(path, encoding=options.encoding)
        rows, problems = _rows(table, options.mapping, with_grid=True)
        claims = _grid_claims(conn, rows, options.district, version_id, problems)
        return rows, claims, problems
    vector = read_vector(path, encoding=options.encoding)
    rows, problems = _rows(pd.DataFrame(vector.frame.drop(columns="geometry")), options.mapping, with_grid=False)
    geoms = crs.to_storage(np.asarray(vector.frame.geometry.values, dtype=object), vector.source_crs,
                           deployment_srid(conn))
    areas = _areas(rows, geoms, problems)
    claims = _area_claims(rows, areas, store.unit_grid_shapes(conn, options.district, version_id), problems)
    return rows, claims, problems


def _refuse_binary_text(path: Path) -> None:
    """``InvalidInput`` for a CSV whose content is binary (a zip, a database …) rather than text."""
    if path.suffix.lower() not in CSV_SUFFIXES or not path.is_file():
        return
    with path.open("rb") as handle:
        head = handle.read(64 * 1024)
    if head[:2] == b"PK" or b"\x00" in head:
        what = "a zip archive" if head[:2] == b"PK" else "binary data"
        raise InvalidInput(f"{path.name}: the name says CSV but the content is {what}; refused", field="file")


# ------------------------------------------------------------------------------------------ rows
def _rows(table: pd.DataFrame, mapping: PartyMapping, *, with_grid: bool) -> tuple[list[_Row], list[RowProblem]]:
    """Every row of ``table`` in our fields, and the problems of their values (``_check_value``)."""
    columns = _columns(list(table.columns), mapping, with_grid)
    rows, problems = [], []
    for i, record in enumerate(table.to_dict("records")):
        line = i + FIRST_LINE
        values = {}
        for name in FIELDS if with_grid else FIELDS[1:]:
            raw = mapping.constants.get(name) if name in mapping.constants else (
                record.get(columns[name]) if columns.get(name) else "")
            values[name], found = _check_value(name, "" if raw is None else str(raw), mapping, line)
            problems += found
        rows.append(_Row(line=line, values=values))
    return rows, problems


def _columns(names: list[str], mapping: PartyMapping, with_grid: bool) -> dict[str, str | None]:
    """Our field → the file's column: the mapping's, else a recognised name (``COLUMN_NAMES``); ``InvalidInput``
    when a mapped column is missing or a required field (grid code, code) has no column and no constant."""
    lower = {str(n).strip().lower(): n for n in names}
    found: dict[str, str | None] = {}
    for name in FIELDS if with_grid else FIELDS[1:]:
        if name in mapping.columns:
            if mapping.columns[name] not in names:
                raise InvalidInput(f"mapping: column {mapping.columns[name][:80]!r} (for {name}) is not in the file "
                                   f"(columns: {', '.join(str(n)[:40] for n in names[:30])})", field="mapping")
            found[name] = mapping.columns[name]
        else:
            found[name] = next((lower[c.lower()] for c in COLUMN_NAMES[name] if c.lower() in lower), None)
    missing = [n for n in ("grid_code", "code") if n in found and found[n] is None and n not in mapping.constants]
    if missing:
        raise InvalidInput(f"no {missing[0]} column (looked for {', '.join(COLUMN_NAMES[missing[0]])}; name it in "
                           f"the mapping's columns)", field="file")
    return found


def _check_value(name: str, raw: str, mapping: PartyMapping, line: int) -> tuple[str, list[RowProblem]]:
    """One cell as our value (stripped; a kind translated), with its problems: a control character, more
    characters than ``MAX_CHARS``, an empty required value, a kind that is not a party kind."""
    value = raw.strip()
    if (what := control_character(value, single_line=True)) is not None:
        return "", [problem(name, f"holds a control character ({what})", line=line)]
    if len(value) > MAX_CHARS[name]:
        return "", [problem(name, f"{len(value):,} characters, more than the {MAX_CHARS[name]} allowed", line=line)]
    if name in ("grid_code", "code", "kind") and not value:
        return "", [problem(name, f"no {name.replace('_', ' ')}", line=line)]
    if name == "kind":
        kind = mapping.kinds.get(value) or KIND_WORDS.get(value) or value.lower()
        if kind not in PARTY_KINDS:
            return "", [problem(name, f"{value[:40]!r} is not a party kind ({', '.join(PARTY_KINDS)}; or map it in "
                                      f"the mapping's values)", line=line)]
        return kind, []
    return value, []


def _row_ok(row: _Row, bad_lines: set[int]) -> bool:
    return row.line not in bad_lines


# ------------------------------------------------------------------------------------------ parties
def _resolve_parties(conn: Connection, district: str, rows: list[_Row],
                     problems: list[RowProblem]) -> dict[tuple[str, str], dict[str, Any]]:
    """The parties the good rows name, by (kind, code): stored ones (``party_id``) and new ones (``name``,
    ``contact``, no id yet). Rows naming one key with different names are ambiguous, rows naming a key that is
    not stored without a name unknown (both errors); a stored party named differently is a warning (the stored
    name is kept)."""
    bad = {p["line"] for p in problems if p["severity"] == "error"}
    by_key: dict[tuple[str, str], list[_Row]] = defaultdict(list)
    for row in rows:
        if _row_ok(row, bad):
            by_key[row.key].append(row)
    stored = store.parties_by_key(conn, district, list(by_key))
    parties: dict[tuple[str, str], dict[str, Any]] = {}
    for key, named in by_key.items():
        names = sorted({r.values["name"] for r in named if r.values["name"]})
        if len(names) > 1:
            problems += [problem("name", f"party {key[0]} {key[1]!r} is named {' and '.join(repr(n) for n in names)} "
                                         "in this file: which is meant is not guessed", line=r.line, key=key[1])
                         for r in named]
        elif key in stored:
            parties[key] = stored[key]
            if names and names[0] != stored[key]["name"]:
                problems.append(problem("name", f"party {key[0]} {key[1]!r} is stored as {stored[key]['name']!r}; "
                                                f"the stored name is kept", line=named[0].line, severity="warning",
                                        key=key[1]))
        elif not names:
            problems += [problem("code", f"unknown party {key[0]} {key[1]!r}: give its name to create it",
                                 line=r.line, key=key[1]) for r in named]
        else:
            contact = next((r.values["contact"] for r in named if r.values["contact"]), "")
            parties[key] = {"party_id": None, "name": names[0], "contact": contact}
    return parties


# ------------------------------------------------------------------------------------------ CSV: grid codes
def _grid_claims(conn: Connection, rows: list[_Row], district: str, version_id: int,
                 problems: list[RowProblem]) -> dict[str, tuple[str, str]]:
    """Unit grid → the (kind, code) its row names, for rows whose grid code is of the scheme, of ``district``,
    in the current version and not already listed (the problems say why of the others)."""
    scheme = codes.deployment_scheme(conn)
    grids = store.unit_grid_codes(conn, district, version_id)
    bad = {p["line"] for p in problems if p["severity"] == "error"}
    first_line: dict[str, int] = {}
    claims: dict[str, tuple[str, str]] = {}
    for row in rows:
        grid = row.values["grid_code"]
        if not _row_ok(row, bad):
            continue
        reason = _grid_problem(scheme, grid, district, grids, first_line)
        if reason is not None:
            problems.append(problem("grid_code", reason, line=row.line, key=grid))
            continue
        first_line[grid] = row.line
        claims[grid] = row.key
    return claims


def _grid_problem(scheme: codes.CodeScheme, grid: str, district: str, grids: set[str],
                  first_line: dict[str, int]) -> str | None:
    """Why a row's grid code cannot be taken, or None."""
    if not scheme.matches("unit_grid", grid):
        return scheme.problem("unit_grid", grid)
    owner = scheme.district_of("unit_grid", grid)
    if owner != district:
        return f"unit grid {grid} is in district {owner}, not {district}"
    if grid not in grids:
        return f"unknown unit grid {grid}: not in the current grid version of {district}"
    if grid in first_line:
        return f"unit grid {grid} is listed already on line {first_line[grid]}"
    return None


# ------------------------------------------------------------------------------------------ GIS: areas
def _areas(rows: list[_Row], geoms: np.ndarray, problems: list[RowProblem]) -> dict[int, Any]:
    """Row index → its polygonal area (storage CRS), repaired where invalid (a warning); rows without a
    polygon, or already bad, have none (an error where the geometry is why)."""
    bad = {p["line"] for p in problems if p["severity"] == "error"}
    areas = {}
    for i, (row, geom) in enumerate(zip(rows, geoms, strict=True)):
        if not _row_ok(row, bad):
            continue
        if geom is None or shapely.is_empty(geom):
            problems.append(problem("geometry", "no geometry", line=row.line))
            continue
        if not shapely.is_valid(geom):
            problems.append(problem("geometry", f"invalid ({shapely.is_valid_reason(geom)[:80]}): repaired",
                                    line=row.line, severity="warning"))
            geom = shapely.make_valid(geom)
        polygons = shapely.get_parts(geom)
        polygons = [p for p in polygons if p.geom_type in ("Polygon", "MultiPolygon")]
        if not polygons or shapely.union_all(polygons).area <= 0:
            problems.append(problem("geometry", f"a {geom.geom_type}, not an area (polygon)", line=row.line))
            continue
        areas[i] = shapely.union_all(polygons)
    _report_overlaps(rows, areas, problems)
    return areas


def _report_overlaps(rows: list[_Row], areas: dict[int, Any], problems: list[RowProblem]) -> None:
    """A warning on the later row of each pair of areas of different parties overlapping by ``OVERLAP_M2`` or
    more (storage CRS, metres)."""
    index = list(areas)
    if len(index) < 2:
        return
    tree = shapely.STRtree([areas[i] for i in index])
    left, right = tree.query([areas[i] for i in index], predicate="intersects")
    for a, b in zip(left, right, strict=True):
        i, j = index[a], index[b]
        if i >= j or rows[i].key == rows[j].key:
            continue
        overlap = shapely.intersection(areas[i], areas[j]).area
        if overlap >= OVERLAP_M2:
            problems.append(problem("geometry", f"overlaps the area of {rows[i].values['name'] or rows[i].key[1]!r} "
                                                f"on line {rows[i].line} by {overlap:,.0f} m²; where they overlap, the "
                                                "larger share of each grid decides", line=rows[j].line,
                                    severity="warning"))


def _area_claims(rows: list[_Row], areas: dict[int, Any], grids: list[tuple[str, bytes]],
                 problems: list[RowProblem]) -> dict[str, tuple[str, str]]:
    """Unit grid → the (kind, code) whose areas cover the largest share of it; ties and slivers reported."""
    if not areas or not grids:
        return {}
    by_party: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i in areas:
        by_party[rows[i].key].append(i)
    codes_, shapes = [c for c, _ in grids], shapely.from_wkb([w for _, w in grids])
    tree = shapely.STRtree(shapes)
    shares: dict[int, dict[tuple[str, str], float]] = defaultdict(dict)
    for key, members in by_party.items():
        union = shapely.union_all([areas[i] for i in members])
        for g in tree.query(union, predicate="intersects"):
            share = shapely.intersection(shapes[g], union).area / shapes[g].area
            if share > 0:
                shares[int(g)][key] = share
    first_line = {key: rows[members[0]].line for key, members in by_party.items()}
    claims = {}
    for g, found in sorted(shares.items()):
        winner = _grid_winner(codes_[g], found, first_line, problems)
        if winner is not None:
            claims[codes_[g]] = winner
    return claims


def _grid_winner(grid: str, shares: dict[tuple[str, str], float], first_line: dict[tuple[str, str], int],
                 problems: list[RowProblem]) -> tuple[str, str] | None:
    """The party with the largest share of ``grid``, or None (a tie, or only slivers); reports both."""
    ranked = sorted(shares.items(), key=lambda kv: (-kv[1], kv[0]))
    for key, share in ranked:
        if share < SLIVER_SHARE:
            problems.append(problem("geometry", f"covers {share:.1%} of unit grid {grid}, a sliver (under "
                                                f"{SLIVER_SHARE:.0%}): not assigned there", line=first_line[key],
                                    severity="warning", key=grid))
    (top, s1), runner = ranked[0], (ranked[1] if len(ranked) > 1 else None)
    if s1 < SLIVER_SHARE:
        return None
    if runner is not None and runner[1] >= SLIVER_SHARE and s1 - runner[1] <= TIE_SHARE:
        problems.append(problem("geometry", f"unit grid {grid} is a tie: {top[1]!r} covers {s1:.1%}, {runner[0][1]!r} "
                                            f"{runner[1]:.1%} (within {TIE_SHARE:.0%}); not assigned: list it in a "
                                            "CSV", line=None, key=grid))
        return None
    return top


# ------------------------------------------------------------------------------------------ writing
def _write(conn: Connection, options: ImportOptions, start: dt.datetime, file_name: str,
           parties: dict[tuple[str, str], dict[str, Any]], claims: dict[str, tuple[str, str]],
           result: ImportResult) -> None:
    """Record the import, create its new parties, and date its assignments (see the module's docstring)."""
    district = options.district
    result.import_id = store.insert_ownership_import(conn, district, role=options.role, valid_from=start,
                                                     file_name=file_name[:300], source=options.source,
                                                     licence=options.licence)
    spatial_store.record_source(conn, district=district, kind="ownership", source=options.source,
                                licence=options.licence)  # the pages' footer names where the list came from
    for key, party in parties.items():
        if party["party_id"] is None:
            party["party_id"] = store.insert_party(conn, district, key[0], key[1], party["name"], party["contact"])
            result.parties_created += 1
    around = store.assignments_around(conn, district, options.role, sorted(claims), start)
    new_rows = []
    for grid, key in sorted(claims.items()):
        now, party_id = around[grid], parties[key]["party_id"]
        if now["ownership_id"] is not None and now["party_id"] == party_id and not now["superseded"]:
            result.unchanged += 1
            continue
        for derived_id in now["superseded"]:  # derived owners that began after start (e.g. earlier today)
            store.delete_assignment(conn, district, derived_id)
            result.replaced += 1
        if now["ownership_id"] is not None and now["lower"] == start:
            store.delete_assignment(conn, district, now["ownership_id"])
            result.replaced += 1
        elif now["ownership_id"] is not None:
            store.end_assignment(conn, district, now["ownership_id"], start)
        new_rows.append((grid, party_id, start, now["next_lower"]))
    store.insert_ownership_rows(conn, district, options.role, result.import_id, new_rows)
    result.assigned = len(new_rows)
    store.set_import_counts(conn, district, result.import_id, {
        "rows": result.rows, "grids": result.grids, "assigned": result.assigned, "unchanged": result.unchanged,
        "replaced": result.replaced, "parties_created": result.parties_created,
        "problems": len(result.problems)})
