"""Import a district's streets (街道/乡镇) and communities (社区/村) (``citygrid areas import``).

``import_areas`` reads as its steps: the columns to read (checks), the rows' geometry in the storage CRS, each
row's level, code and street (match), its point or polygon (geometry), then one write with its audit entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry
from shapely.prepared import PreparedGeometry, prep
from sqlalchemy.engine import Connection

from citygrid import codes as code_schemes
from citygrid.codes import CodeScheme
from citygrid.districts.common import MAX_AREA_OUTSIDE_M, column, text, valid_polygonal
from citygrid.errors import InvalidInput, RowProblem, problem
from citygrid.loaders.vector import VectorFile
from citygrid.spatial import crs, store
from citygrid.spatial.boundaries import district_boundary
from citygrid.spatial.db import deployment_srid

LEVEL_WORDS = {
    "street": {"street", "town", "街道", "乡镇", "地区", "4"},
    "community": {"community", "village", "社区", "村", "5"},
}


@dataclass(frozen=True)
class AreaColumns:
    """The file's columns an area row is read from (``None``: the file has no such column)."""

    code: str
    name: str
    parent: str | None
    level: str | None
    ur_code: str | None


@dataclass(frozen=True)
class AreaRules:
    """What every row of one import is checked against.

    ``boundary`` is the district in the storage CRS; ``near`` the same grown by ``MAX_AREA_OUTSIDE_M``, prepared.
    """

    district: str
    level: str
    scheme: CodeScheme
    known_streets: set[str]
    boundary: BaseGeometry
    near: PreparedGeometry


def import_areas(
    conn: Connection, vf: VectorFile, *, district: str, level: str, code_field: str | None = None,
    name_field: str | None = None, parent_field: str | None = None, level_field: str | None = None,
    source: str = "", licence: str = "", actor: str = "system",
) -> dict[str, Any]:
    """Store the streets (街道/乡镇) or communities (社区/村) of ``district`` from ``vf``.

    Rows may carry a point, a polygon or no geometry at all (kept without location, never placed at random).
    When the file has a level column (``level``), only rows of the requested level are taken. Codes follow
    the deployment's code scheme (``citygrid.codes``). A community's street comes from ``parent_field``
    (default ``parent_code``) or, in the cn-admin scheme, from its code (first 9 digits + ``000``), and must
    exist. Geometry is read in ``vf.source_crs`` and stored in the deployment's CRS (``deployment.srid``).

    Returns a summary: level, rows, points, polygons, without_location, skipped_other_levels.
    Raises ``InvalidInput`` with one ``RowProblem`` per bad row (line numbers count the header as line 1; ``key``
    is the row's code).
    """
    if level not in LEVEL_WORDS:
        raise InvalidInput(f"level must be street or community, not {level!r}", field="level")
    boundary = district_boundary(conn, district)
    columns = area_columns(list(vf.frame.columns), code_field, name_field, parent_field, level_field)
    srid = deployment_srid(conn)
    projected = storage_geometries(vf, srid)
    rules = AreaRules(district=district, level=level, scheme=code_schemes.deployment_scheme(conn),
                      known_streets=store.area_codes(conn, district, "street"), boundary=boundary,
                      near=prep(boundary.buffer(MAX_AREA_OUTSIDE_M)))
    rows, problems, skipped = area_rows(vf.frame, projected, columns, rules)
    if problems:
        raise InvalidInput(f"{len(problems)} bad row(s); nothing was imported", details=list(problems), field=None)
    if not rows:
        raise InvalidInput(f"no {level} rows in the file", field="level")
    for row in rows:
        row.update(source=source, licence=licence)
    return write_areas(conn, rows, rules, srid=srid, skipped=skipped, source=source, actor=actor)


# ------------------------------------------------------------------------------------------ checks
def area_columns(columns: list[str], code_field: str | None, name_field: str | None, parent_field: str | None,
                 level_field: str | None) -> AreaColumns:
    """The columns to read: the ones named (which must exist), else the usual names (``code``, ``name``,
    ``parent_code``, ``level``, ``ur_code`` and their Chinese forms). ``InvalidInput`` without code or name."""
    code_col = column(columns, code_field, ("code", "adcode", "dm", "代码", "区划代码"), "code_field")
    name_col = column(columns, name_field, ("name", "mc", "名称"), "name_field")
    if code_col is None or name_col is None:
        raise InvalidInput(f"need code and name columns; found {', '.join(columns)}", field="code_field")
    return AreaColumns(code=code_col, name=name_col,
                       parent=column(columns, parent_field, ("parent_code", "parent"), "parent_field"),
                       level=column(columns, level_field, ("level",), "level_field"),
                       ur_code=column(columns, None, ("ur_code",), "ur_code"))


def storage_geometries(vf: VectorFile, srid: int) -> np.ndarray:
    """Each row's geometry moved from ``vf.source_crs`` to EPSG:``srid``; ``None`` where a row has none."""
    geoms = np.asarray(vf.frame.geometry.values, dtype=object)
    present = np.array([g is not None and not g.is_empty for g in geoms], dtype=bool)
    projected = np.full(len(geoms), None, dtype=object)
    if present.any():
        projected[present] = crs.to_storage(geoms[present], vf.source_crs, srid)
    return projected


# ------------------------------------------------------------------------------------------ match levels and codes
def level_of(value: str) -> str | None:
    """``street`` or ``community`` for a level cell in any of its spellings (``街道``, ``村``, ``4``…), else None."""
    value = value.strip().lower()
    return next((level for level, words in LEVEL_WORDS.items() if value in words), None)


def code_reason(code: str, rules: AreaRules, seen: set[str]) -> str | None:
    """Why ``code`` cannot be taken (not of the scheme's format for the level, another district's, already in
    the file), or ``None``."""
    reason = rules.scheme.problem(rules.level, code)
    if reason is None and rules.scheme.areas_prefixed and not code.startswith(rules.district):
        reason = f"code does not start with the district code {rules.district}"
    if reason is None and code in seen:
        reason = "duplicate code in the file"
    return reason


def parent_street(record: dict[str, Any], code: str, columns: AreaColumns,
                  rules: AreaRules) -> tuple[str | None, tuple[str, str] | None]:
    """A community's street code (from its parent column, else from its code where the scheme says how) and the
    (field, reason) of its problem when it has none or names a street not loaded; streets have no parent."""
    if rules.level != "community":
        return None, None
    parent = (text(record[columns.parent]) if columns.parent else "") or rules.scheme.street_of(code)
    if not parent:
        return parent, (columns.parent or "parent_code", f"a community needs its street's code (a parent_code "
                        f"column) in the {rules.scheme.name} code scheme")
    if parent not in rules.known_streets:
        return parent, (columns.parent or columns.code, f"street {code_schemes.show(parent)} is not loaded for "
                        f"district {rules.district}")
    return parent, None


# ------------------------------------------------------------------------------------------ geometry
def area_geometry(geom: BaseGeometry | None, rules: AreaRules) -> tuple[bytes | None, bytes | None, str | None]:
    """The WKB of a row's point and polygon (storage CRS; a polygon's point is a point on its surface), and why
    its geometry is refused (a point or polygon outside the district, another type), or ``None``."""
    if geom is None:
        return None, None, None
    if geom.geom_type == "Point":
        reason = None if rules.near.contains(geom) else \
            f"point lies {geom.distance(rules.boundary):.0f} m outside the district boundary"
        return shapely.to_wkb(geom), None, reason
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        geom, _ = valid_polygonal(geom)
        outside = geom.difference(rules.boundary.buffer(MAX_AREA_OUTSIDE_M)).area
        reason = f"{outside:.0f} m² of the polygon lies outside the district" if outside > 0 else None
        return shapely.to_wkb(geom.point_on_surface()), shapely.to_wkb(geom), reason
    return None, None, f"{geom.geom_type} is neither a point nor a polygon"


# ------------------------------------------------------------------------------------------ rows
def area_rows(frame: pd.DataFrame, projected: np.ndarray, columns: AreaColumns,
              rules: AreaRules) -> tuple[list[dict[str, Any]], list[RowProblem], int]:
    """The rows to store, the problems of the rows that cannot be, and how many rows were of another level.

    ``projected`` holds each row's geometry in the storage CRS (``storage_geometries``). A row whose code is
    refused is not looked at further; any other row reports all its problems at once.
    """
    problems: list[RowProblem] = []
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    skipped = 0
    for i, record in enumerate(frame.drop(columns=frame.geometry.name).to_dict("records")):
        line = i + 2
        if columns.level and level_of(text(record[columns.level])) != rules.level:
            skipped += 1
            continue
        code, name = text(record[columns.code]), text(record[columns.name])
        reason = code_reason(code, rules, seen)
        if reason is not None:
            problems.append(problem(columns.code, reason, line=line, key=code[:40]))
            continue
        seen.add(code)
        found = [(columns.name, "empty name")] if not name else []
        parent, parent_problem = parent_street(record, code, columns, rules)
        if parent_problem is not None:
            found.append(parent_problem)
        point_wkb, geom_wkb, geom_reason = area_geometry(projected[i], rules)
        if geom_reason is not None:
            found.append(("geometry", geom_reason))
        problems += [problem(field, reason, line=line, key=code) for field, reason in found]
        rows.append({
            "district": rules.district, "code": code, "level": rules.level, "parent": parent, "name": name,
            "ur_code": text(record[columns.ur_code]) if columns.ur_code else None, "point_wkb": point_wkb,
            "geom_wkb": geom_wkb,
        })
    return rows, problems, skipped


# ------------------------------------------------------------------------------------------ write
def write_areas(conn: Connection, rows: list[dict[str, Any]], rules: AreaRules, *, srid: int, skipped: int,
                source: str, actor: str) -> dict[str, Any]:
    """Store ``rows`` (WKB in EPSG:``srid``) and audit the import; returns its summary."""
    store.upsert_areas(conn, rows, srid)
    summary = {
        "level": rules.level, "rows": len(rows),
        "points": sum(r["point_wkb"] is not None and r["geom_wkb"] is None for r in rows),
        "polygons": sum(r["geom_wkb"] is not None for r in rows),
        "without_location": sum(r["point_wkb"] is None for r in rows),
        "skipped_other_levels": skipped,
    }
    store.audit(conn, actor=actor, action="import", object_kind=f"{rules.level}_areas", object_id=rules.district,
                district=rules.district, after={**summary, "source": source})
    return summary
