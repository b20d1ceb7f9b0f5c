"""SQL of the hot-spot analyses: the areas of a level (geometry in the deployment CRS, and EPSG:4326 GeoJSON
for answers), case counts per area for a period and filters, and per area and local time bin.

The areas are those the caseload counts (``spatial.analysis.store.LEVELS``: unit and supervision grids of a
grid version, communities, streets), so a hot-spot map and the caseload table count the same cases in the same
areas. Every filter is bound.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from citygrid.spatial.analysis.store import LEVELS

_CASE_FILTER = """k.district_code = :d
   AND (CAST(:start AS timestamptz) IS NULL OR k.reported_at >= CAST(:start AS timestamptz))
   AND (CAST(:end AS timestamptz) IS NULL OR k.reported_at < CAST(:end AS timestamptz))
   AND (CAST(:kind AS text) IS NULL OR k.kind = :kind)
   AND (CAST(:cls AS text) IS NULL OR k.class_code = :cls)
   AND (CAST(:status AS text) IS NULL OR k.status = :status)
   AND (CAST(:synthetic AS boolean) IS NULL OR k.synthetic = :synthetic)"""


def _params(district: str, version: int, f: Any) -> dict[str, Any]:
    return {"d": district, "v": version, "start": f.start, "end": f.end, "kind": f.kind, "cls": f.class_code,
            "status": f.status, "synthetic": f.synthetic}


def areas(conn: Connection, *, district: str, version: int, level: str,
          with_geojson: bool = False) -> list[dict[str, Any]]:
    """The areas of ``level`` in code order: code, name, ``wkb`` (deployment CRS) and, if asked, ``geometry``
    (GeoJSON, EPSG:4326, simplified by 2 m as the caseload's)."""
    _, areas_sql = LEVELS[level]
    rows = conn.execute(sa.text(
        f"""SELECT a.code, a.name, ST_AsBinary(a.geom) AS wkb,
                   CASE WHEN :geo THEN ST_AsGeoJSON(ST_Transform(ST_SimplifyPreserveTopology(a.geom, 2), 4326), 6)
                   END AS geometry
              FROM ({areas_sql}) a WHERE a.geom IS NOT NULL ORDER BY a.code"""
    ), {"d": district, "v": version, "geo": with_geojson}).mappings()
    out = []
    for row in rows:
        item = {"code": row["code"], "name": row["name"], "wkb": bytes(row["wkb"])}
        if with_geojson:
            item["geometry"] = json.loads(row["geometry"]) if row["geometry"] else None
        out.append(item)
    return out


def counts(conn: Connection, *, district: str, version: int, level: str, f: Any) -> list[tuple[str, int, int]]:
    """(area code, cases, synthetic cases) of the cases matching ``f`` (a ``CaseloadFilter``), per area code."""
    column, _ = LEVELS[level]
    rows = conn.execute(sa.text(
        f"""SELECT k.{column}, count(*), count(*) FILTER (WHERE k.synthetic) FROM cases k
             WHERE {_CASE_FILTER} AND k.{column} IS NOT NULL GROUP BY 1"""
    ), _params(district, version, f)).all()
    return [(r[0], int(r[1]), int(r[2])) for r in rows]


def binned_counts(conn: Connection, *, district: str, version: int, level: str, f: Any, unit: str,
                  zone: str) -> list[tuple[str, Any, int, int]]:
    """(area code, first local day of the bin, cases, synthetic cases) per area and ``unit`` (month or week,
    weeks starting on Monday) of local time in ``zone``, for the cases matching ``f``."""
    if unit not in ("month", "week"):
        raise ValueError(f"unknown bin {unit!r}")
    column, _ = LEVELS[level]
    rows = conn.execute(sa.text(
        f"""SELECT k.{column}, CAST(date_trunc(:unit, k.reported_at AT TIME ZONE :zone) AS date), count(*),
                   count(*) FILTER (WHERE k.synthetic)
              FROM cases k WHERE {_CASE_FILTER} AND k.{column} IS NOT NULL GROUP BY 1, 2"""
    ), {**_params(district, version, f), "unit": unit, "zone": zone}).all()
    return [(r[0], r[1], int(r[2]), int(r[3])) for r in rows]


def case_span(conn: Connection, *, district: str, f: Any, zone: str) -> tuple[Any, Any]:
    """The local dates of the first and the last case matching ``f`` (None, None without any)."""
    row = conn.execute(sa.text(
        f"""SELECT CAST(min(k.reported_at AT TIME ZONE :zone) AS date),
                   CAST(max(k.reported_at AT TIME ZONE :zone) AS date)
              FROM cases k WHERE {_CASE_FILTER}"""
    ), {**_params(district, 0, f), "zone": zone}).one()
    return row[0], row[1]
