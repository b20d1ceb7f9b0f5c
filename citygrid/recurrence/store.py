"""SQL of the recurrence analyses: the counted cases of a district and period (with or without a component),
and the components they name. Case points come out as x, y in the deployment CRS; components as lon/lat
(EPSG:4326)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

# A case counts as an occurrence of a problem unless it was refused (rejected) or is another report of a case
# already counted (duplicate).
_COUNTED = """c.district_code = :d AND c.status NOT IN ('rejected', 'duplicate')
              AND (CAST(:start AS timestamptz) IS NULL OR c.reported_at >= CAST(:start AS timestamptz))
              AND (CAST(:end AS timestamptz) IS NULL OR c.reported_at < CAST(:end AS timestamptz))
              AND (CAST(:class_code AS text) IS NULL OR c.class_code = :class_code)
              AND (CAST(:kind AS text) IS NULL OR c.kind = :kind)"""


def _params(district: str, start: Any, end: Any, class_code: str | None, kind: str | None) -> dict[str, Any]:
    return {"d": district, "start": start, "end": end, "class_code": class_code, "kind": kind}


def component_cases(conn: Connection, district: str, *, start: Any, end: Any, class_code: str | None,
                    kind: str | None) -> list[dict[str, Any]]:
    """The counted cases of ``district`` reported in [start, end) that name a component (``component_obj_id``),
    by component and report time: case_id, obj_id, reported_at, synthetic."""
    rows = conn.execute(sa.text(
        f"""SELECT c.case_id, c.component_obj_id AS obj_id, c.reported_at, c.synthetic FROM cases c
             WHERE {_COUNTED} AND c.component_obj_id IS NOT NULL
             ORDER BY c.component_obj_id, c.reported_at, c.case_id"""),
        _params(district, start, end, class_code, kind)).mappings()
    return [dict(r) for r in rows]


def components(conn: Connection, district: str, obj_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The latest stored version of each component of ``obj_ids`` in ``district`` by ObjID: class, its name,
    the component's name, the owning / managing / maintaining departments (DeptCode1/DeptName1–3), its unit
    grid, whether it is current, and its point as lon/lat (EPSG:4326)."""
    if not obj_ids:
        return {}
    rows = conn.execute(sa.text(
        """SELECT DISTINCT ON (m.obj_id) m.obj_id, m.class_code, t.name AS class_name, m.obj_name,
                  m.dept_code1, m.dept_name1, m.dept_name2, m.dept_name3, m.unit_grid_code,
                  m.valid_to IS NULL AS current,
                  ST_X(ST_Transform(m.geom, 4326)) AS lon, ST_Y(ST_Transform(m.geom, 4326)) AS lat
             FROM components m
             LEFT JOIN taxonomy_classes t ON t.scheme = m.scheme AND t.kind = 'component' AND t.code = m.class_code
            WHERE m.district_code = :d AND m.obj_id = ANY(:ids)
            ORDER BY m.obj_id, m.valid_from DESC"""), {"d": district, "ids": obj_ids}).mappings()
    return {r["obj_id"]: dict(r) for r in rows}


def place_cases(conn: Connection, district: str, *, start: Any, end: Any, class_code: str | None,
                kind: str | None) -> list[dict[str, Any]]:
    """The counted cases of ``district`` reported in [start, end) that name no component: case_id, kind,
    class_code, class_name, x, y (deployment CRS, metres), reported_at, unit_grid_code, synthetic."""
    rows = conn.execute(sa.text(
        f"""SELECT c.case_id, c.kind, c.class_code, t.name AS class_name, ST_X(c.geom) AS x, ST_Y(c.geom) AS y,
                   c.reported_at, c.unit_grid_code, c.synthetic
              FROM cases c
              LEFT JOIN taxonomy_classes t ON t.scheme = c.scheme AND t.kind = c.kind AND t.code = c.class_code
             WHERE {_COUNTED} AND c.component_obj_id IS NULL AND c.class_code IS NOT NULL
             ORDER BY c.kind, c.class_code, c.reported_at, c.case_id"""),
        _params(district, start, end, class_code, kind)).mappings()
    return [dict(r) for r in rows]
