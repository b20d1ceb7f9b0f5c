"""Bulk cases: historic cases from a CSV (311-style columns via a mapping), with a row report.

Every row goes through the same intake validation (``intake.parse_report``) and the same geocoding engine
(``GridIndex``, batch mode) as a single report; valid rows are inserted in one transaction with their workflow
event. The seeded synthetic demo history (``synthetic.py``) uses this path too.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from citygrid.cases.intake import Report, parse_report
from citygrid.cases.workflow import STATES
from citygrid.errors import InvalidInput
from citygrid.loaders import safeyaml
from citygrid.loaders.vector import CSV_ENCODINGS
from citygrid.spatial import admin, crs
from citygrid.spatial import store as spatial_store
from citygrid.spatial.db import deployment_srid, deployment_zone
from citygrid.spatial.geocode import GridIndex

FIELDS = ("lon", "lat", "crs", "kind", "class_code", "description", "reported_at", "status", "source", "address",
          "idempotency_key")
ALIASES = {
    "lon": ("lon", "lng", "longitude", "x", "经度"), "lat": ("lat", "latitude", "y", "纬度"),
    "crs": ("crs", "坐标系"), "kind": ("kind", "类型"), "class_code": ("class_code", "小类代码", "类别代码"),
    "description": ("description", "问题描述", "描述", "内容"), "reported_at": ("reported_at", "上报时间", "时间"),
    "status": ("status", "状态"), "source": ("source", "来源"), "address": ("address", "地址"),
    "idempotency_key": ("idempotency_key", "case_no", "案件编号", "编号"),
}


@dataclass
class BulkResult:
    rows: int
    imported: int
    problems: list[dict[str, Any]] = field(default_factory=list)
    state: str = "committed"


def load_mapping(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"mapping file: {exc}", field="mapping") from exc
    data = safeyaml.load(text, what=f"mapping file {path.name}")
    columns = (data or {}).get("columns") if isinstance(data, dict) else None
    if not isinstance(columns, dict) or any(k not in FIELDS for k in columns):
        raise InvalidInput(f"mapping needs 'columns:' with keys among {', '.join(FIELDS)}", field="mapping")
    odd = [k for k, v in columns.items() if not isinstance(v, str)]
    if odd:
        raise InvalidInput(f"column names for {', '.join(odd)} are not text (YAML reads no/yes/on as booleans "
                           "and digits as numbers): quote them", field="mapping")
    return {str(k): str(v) for k, v in columns.items()}


def read_table(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise InvalidInput(f"file not found: {path}", field="file")
    for encoding in CSV_ENCODINGS:
        try:
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)
        except UnicodeDecodeError:
            continue
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise InvalidInput(f"{path.name}: not a readable CSV: {exc}", field="file") from exc
    raise InvalidInput(f"{path.name}: text is neither UTF-8 nor GB18030", field="encoding")


def import_cases(conn: Connection, path: Path, *, mapping: dict[str, str] | None = None,
                 max_bad_ratio: float = 0.05, synthetic: bool = False) -> BulkResult:
    """Import historic cases from a CSV inside the caller's transaction; see the module docstring."""
    table = read_table(path)
    columns = list(table.columns)
    mapping = dict(mapping or {})
    missing = [v for v in mapping.values() if v not in columns]
    if missing:
        raise InvalidInput(f"mapped column(s) {', '.join(missing)} not in the file", field="mapping")
    lower = {c.strip().lower(): c for c in columns}
    for name, aliases in ALIASES.items():
        if name not in mapping:
            hit = next((lower[a] for a in aliases if a in lower), None)
            if hit:
                mapping[name] = hit
    records = [{name: (row[col] if row[col] != "" else None) for name, col in mapping.items()}
               for row in table.to_dict("records")]
    return insert_reports(conn, records, max_bad_ratio=max_bad_ratio, synthetic=synthetic)


def insert_reports(conn: Connection, records: Sequence[dict[str, Any]], *, max_bad_ratio: float = 0.05,
                   synthetic: bool = False, first_line: int = 2) -> BulkResult:
    """Validate, place and insert many reports (each a dict of intake fields plus optional ``status``)."""
    problems: list[dict[str, Any]] = []
    reports: list[tuple[int, Report, str]] = []
    zone = deployment_zone(conn)  # a time without an offset is the city's wall-clock time
    for offset, record in enumerate(records):
        line = first_line + offset
        status = record.get("status") or "closed"
        if status not in STATES:
            problems.append({"line": line, "field": "status", "reason": f"unknown status {status!r}"})
            continue
        try:
            report = parse_report({**record, "source": record.get("source") or "import", "synthetic": synthetic},
                                  allow_synthetic=synthetic,
                                  default_source="import", zone=zone)
        except InvalidInput as exc:
            problems.extend({"line": line, **d} for d in exc.details)
            continue
        if report.lon is None:
            problems.append({"line": line, "field": "lon", "reason": "bulk rows need coordinates"})
            continue
        if not report.class_code:  # single reports may be classified on intake; historic rows keep their own
            problems.append({"line": line, "field": "class_code", "reason": "required in a bulk import"})
            continue
        reports.append((line, report, status))
    srid = deployment_srid(conn)
    placed = _place(conn, reports, srid, problems)
    bad_lines = {p["line"] for p in problems}
    total = len(records)
    if total and len(bad_lines) / total > max_bad_ratio:
        return BulkResult(rows=total, imported=0, problems=problems, state="rejected")
    inserted = _insert(conn, placed, srid)
    return BulkResult(rows=total, imported=inserted, problems=problems)


def _place(conn: Connection, reports: list[tuple[int, Report, str]], srid: int,
           problems: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Storage points, district, grids (batch GridIndex) and class check for every valid report."""
    if not reports:
        return []
    by_crs: dict[str, list[int]] = {}
    for i, (_, report, _) in enumerate(reports):
        by_crs.setdefault(report.crs, []).append(i)
    x, y = np.zeros(len(reports)), np.zeros(len(reports))
    for input_crs, idx in by_crs.items():
        lon = np.array([reports[i][1].lon for i in idx])
        lat = np.array([reports[i][1].lat for i in idx])
        source = crs.parse_crs({"wgs84": "EPSG:4326"}.get(input_crs, input_crs))
        pts = crs.to_storage(shapely.points(lon, lat), source, srid)
        x[idx], y[idx] = shapely.get_x(pts), shapely.get_y(pts)
    classes = {(k, c) for k, c in conn.execute(sa.text("SELECT kind, code FROM taxonomy_classes"))}
    districts = list(conn.execute(sa.text("SELECT district_code FROM districts")).scalars())
    district_of = np.full(len(reports), None, dtype=object)
    indexes: dict[str, GridIndex] = {}
    for district in districts:
        boundary = admin.district_boundary(conn, district)
        shapely.prepare(boundary)
        inside = shapely.contains_xy(boundary, x, y) & (district_of == None)  # noqa: E711 (element-wise)
        district_of[inside] = district
        indexes[district] = GridIndex.cached(conn, district)
    placed = []
    for district in districts:
        rows = np.flatnonzero(district_of == district)
        hits = indexes[district].assign(x[rows], y[rows]) if len(rows) else np.zeros(0, dtype=int)
        for row, hit in zip(rows, hits, strict=True):
            line, report, status = reports[row]
            if (report.kind, report.class_code) not in classes:
                problems.append({"line": line, "field": "class_code",
                                 "reason": f"unknown {report.kind} class {report.class_code}"})
                continue
            index = indexes[district]
            placed.append({
                "line": line, "district": district, "key": report.idempotency_key, "kind": report.kind,
                "scheme": report.scheme, "class_code": report.class_code, "description": report.description,
                "source": report.source, "reported_at": report.reported_at, "status": status,
                "unit": index.codes[hit] if hit >= 0 else None,
                "supervision": index.supervision_codes[hit] if hit >= 0 else None,
                "community": index.community_codes[hit] if hit >= 0 else None,
                "street": index.street_codes[hit] if hit >= 0 else None, "synthetic": report.synthetic,
                # A dict: the chunk is JSON-encoded once as a whole (encoding it here too stored a JSON string).
                "attrs": {"address": report.address, "input_crs": report.crs, "imported": True},
                "x": float(x[row]), "y": float(y[row]),
            })
    for row in np.flatnonzero(district_of == None):  # noqa: E711
        problems.append({"line": reports[row][0], "field": "lon", "reason": "the point lies outside every district"})
    return placed


def _insert(conn: Connection, rows: list[dict[str, Any]], srid: int) -> int:
    """Insert placed rows 2,000 at a time (one statement each, rows as a JSON array) and their first event;
    rows whose idempotency key is already stored are skipped. Returns how many were inserted."""
    if not rows:
        return 0
    now = dt.datetime.now(dt.UTC)
    ids = []
    # A historic caseload is audited once (below), not row by row by the cases trigger.
    conn.execute(sa.text("SELECT set_config('citygrid.bulk', 'on', true)"))
    for chunk_start in range(0, len(rows), 2000):
        chunk = rows[chunk_start:chunk_start + 2000]
        result = conn.execute(sa.text(
            """INSERT INTO cases (district_code, idempotency_key, kind, scheme, class_code, description, source,
                                  reported_at, status, unit_grid_code, supervision_code, community_code, street_code,
                                  synthetic, attrs, geom)
               SELECT r.district, r.key, r.kind, r.scheme, r.class_code, r.description, r.source,
                      coalesce(r.reported_at, :now), r.status, r.unit, r.supervision, r.community, r.street,
                      r.synthetic, r.attrs, ST_SetSRID(ST_MakePoint(r.x, r.y), :srid)
                 FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
                      district text, key text, kind text, scheme text, class_code text, description text,
                      source text, reported_at timestamptz, status text, unit text, supervision text,
                      community text, street text, synthetic boolean, attrs jsonb, x float8, y float8)
               ON CONFLICT (district_code, idempotency_key) DO NOTHING
               RETURNING case_id, district_code, status"""
        ), {"rows": json.dumps(chunk, ensure_ascii=False, default=str), "srid": srid, "now": now}).all()
        ids.extend(result)
    if ids:
        conn.execute(sa.text(
            """INSERT INTO case_events (district_code, case_id, seq, action, from_status, to_status, actor, role,
                                        note, at)
               SELECT e.d, e.c, 1, 'import', NULL, e.s, 'import', 'import', 'historic case', c.reported_at
                 FROM jsonb_to_recordset(CAST(:events AS jsonb)) AS e(d text, c bigint, s text)
                 JOIN cases c ON c.district_code = e.d AND c.case_id = e.c"""
        ), {"events": json.dumps([{"d": d, "c": c, "s": s} for c, d, s in ids])})
    conn.execute(sa.text("SELECT set_config('citygrid.bulk', 'off', true)"))
    for district in sorted({d for _, d, _ in ids}):
        in_district = [c for c, d, _ in ids if d == district]
        spatial_store.audit(conn, action="import", object_kind="cases", object_id=district, district=district,
                            after={"cases": len(in_district), "first_case_id": min(in_district),
                                   "last_case_id": max(in_district),
                                   "synthetic": bool(rows[0].get("synthetic"))})
    return len(ids)
