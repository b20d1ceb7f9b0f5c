"""SQL of the analysis package: caseload per unit grid, supervision grid, community or street.

Areas are measured in the deployment CRS; geometry for the web is EPSG:4326. Every filter is bound.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

# level -> (case column, area SQL producing code/name/geom/area_m2 for the district's current grid version)
LEVELS: dict[str, tuple[str, str]] = {
    "unit": ("unit_grid_code", """SELECT u.code, u.code AS name, u.geom, ST_Area(u.geom) AS area_m2
                                    FROM unit_grids u WHERE u.district_code = :d AND u.version_id = :v"""),
    "supervision": ("supervision_code", """SELECT s.code, s.code AS name, s.geom, ST_Area(s.geom) AS area_m2
                                             FROM supervision_grids s
                                            WHERE s.district_code = :d AND s.version_id = :v"""),
    "community": ("community_code", """SELECT a.code, a.name, a.geom, ST_Area(a.geom) AS area_m2
                                         FROM admin_areas a WHERE a.district_code = :d AND a.level = 'community'"""),
    "street": ("street_code", """SELECT a.code, a.name, a.geom, ST_Area(a.geom) AS area_m2
                                   FROM admin_areas a WHERE a.district_code = :d AND a.level = 'street'"""),
}
COMPONENT_COLUMN = {"unit": "c.unit_grid_code", "supervision": "c.supervision_code",
                    "community": "u.community_code", "street": "u.street_code"}


def caseload(conn: Connection, *, district: str, version: int, level: str, start: Any, end: Any,
             kind: str | None, class_code: str | None, source: str | None, status: str | None,
             synthetic: bool | None, with_geometry: bool) -> list[dict[str, Any]]:
    """Rows per area: code, name, cases, area_km2, cases_per_km2, components, cases_per_100_components
    (None where the area or the component count is unknown or zero), and GeoJSON geometry if asked."""
    case_column, areas_sql = LEVELS[level]
    rows = conn.execute(sa.text(
        f"""WITH areas AS ({areas_sql}),
                 counted AS (
                    SELECT k.{case_column} AS code, count(*) AS cases FROM cases k
                     WHERE k.district_code = :d
                       AND (CAST(:start AS timestamptz) IS NULL OR k.reported_at >= CAST(:start AS timestamptz))
                       AND (CAST(:end AS timestamptz) IS NULL OR k.reported_at < CAST(:end AS timestamptz))
                       AND (CAST(:kind AS text) IS NULL OR k.kind = :kind)
                       AND (CAST(:cls AS text) IS NULL OR k.class_code = :cls)
                       AND (CAST(:source AS text) IS NULL OR k.source = :source)
                       AND (CAST(:status AS text) IS NULL OR k.status = :status)
                       AND (CAST(:synthetic AS boolean) IS NULL OR k.synthetic = :synthetic)
                     GROUP BY 1),
                 parts AS (
                    SELECT {COMPONENT_COLUMN[level]} AS code, count(*) AS components
                      FROM components c
                      LEFT JOIN unit_grids u ON u.district_code = c.district_code AND u.version_id = :v
                                            AND u.code = c.unit_grid_code
                     WHERE c.district_code = :d AND c.valid_to IS NULL GROUP BY 1)
            SELECT a.code, a.name, coalesce(k.cases, 0) AS cases,
                   round(CAST(a.area_m2 / 1e6 AS numeric), 4)::float AS area_km2,
                   CASE WHEN a.area_m2 > 0
                        THEN round(CAST(coalesce(k.cases, 0) / (a.area_m2 / 1e6) AS numeric), 3)::float
                   END AS cases_per_km2,
                   coalesce(p.components, 0) AS components,
                   CASE WHEN p.components > 0
                        THEN round(CAST(100.0 * coalesce(k.cases, 0) / p.components AS numeric), 3)::float
                   END AS cases_per_100_components,
                   CASE WHEN :geom THEN ST_AsGeoJSON(ST_Transform(ST_SimplifyPreserveTopology(a.geom, 2), 4326), 6)
                   END AS geometry
              FROM areas a
              LEFT JOIN counted k ON k.code = a.code
              LEFT JOIN parts p ON p.code = a.code
             ORDER BY a.code"""
    ), {"d": district, "v": version, "start": start, "end": end, "kind": kind, "cls": class_code,
        "source": source, "status": status, "synthetic": synthetic, "geom": with_geometry}).mappings()
    out = []
    for row in rows:
        item = dict(row)
        geometry = item.pop("geometry")
        if with_geometry:
            item["geometry"] = json.loads(geometry) if geometry else None
        out.append(item)
    return out


def case_points(conn: Connection, *, district: str, start: Any, end: Any, kind: str | None,
                class_code: str | None, status: str | None, synthetic: bool | None) -> tuple[Any, Any]:
    """x, y (deployment CRS) of the cases matching the filters, as numpy arrays."""
    import numpy as np

    rows = conn.execute(sa.text(
        """SELECT ST_X(geom), ST_Y(geom) FROM cases
            WHERE district_code = :d
              AND (CAST(:start AS timestamptz) IS NULL OR reported_at >= CAST(:start AS timestamptz))
              AND (CAST(:end AS timestamptz) IS NULL OR reported_at < CAST(:end AS timestamptz))
              AND (CAST(:kind AS text) IS NULL OR kind = :kind)
              AND (CAST(:cls AS text) IS NULL OR class_code = :cls)
              AND (CAST(:status AS text) IS NULL OR status = :status)
              AND (CAST(:synthetic AS boolean) IS NULL OR synthetic = :synthetic)"""
    ), {"d": district, "start": start, "end": end, "kind": kind, "cls": class_code, "status": status,
        "synthetic": synthetic}).all()
    # Plain tuples: numpy probes each Row for array attributes (a raised KeyError each), 8 times slower.
    coords = np.array([tuple(row) for row in rows], dtype=float).reshape(-1, 2)
    return coords[:, 0], coords[:, 1]
