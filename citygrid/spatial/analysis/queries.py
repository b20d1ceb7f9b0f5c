"""Reads of case counts and positions for the analyses: caseload per area and the points a density is
computed from, both asked for with one plain filter object, ``CaseloadFilter``, so the caseload table, its
map and the density overlay count the same cases.

Areas are measured in the deployment CRS; caseload geometry comes back as GeoJSON in EPSG:4326, density
points as x/y in the deployment CRS.

Examples
--------
>>> CaseloadFilter(kind="event", synthetic=False).status is None
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from citygrid.spatial.analysis import store

__all__ = ["LEVELS", "CaseloadFilter", "case_points", "caseload"]

# The areas cases are counted per: unit and supervision grids of a grid version, communities, streets.
LEVELS: tuple[str, ...] = tuple(store.LEVELS)


@dataclass(frozen=True)
class CaseloadFilter:
    """Which cases to count: every field that is not None must hold.

    Attributes
    ----------
    start, end : reported at or after ``start`` and before ``end`` (ISO 8601 instants, end exclusive).
    kind, class_code : ``event``/``component`` and the class code.
    status : one workflow status.
    synthetic : only synthetic (True) or only real (False) cases.
    source : how the case came in (``supervisor``, ``hotline`` …); the caseload only, not the density.
    """

    start: Any = None
    end: Any = None
    kind: str | None = None
    class_code: str | None = None
    status: str | None = None
    synthetic: bool | None = None
    source: str | None = None


def caseload(conn: Connection, district: str, version: int, level: str, f: CaseloadFilter, *,
             with_geometry: bool = False) -> list[dict[str, Any]]:
    """Per area of ``level`` (unit and supervision grids of grid ``version``, communities or streets): code,
    name, cases matching ``f``, area_km2 and cases_per_km2 (deployment CRS), components and
    cases_per_100_components, and with ``with_geometry`` the area as GeoJSON in EPSG:4326."""
    return store.caseload(conn, district=district, version=version, level=level, start=f.start, end=f.end,
                          kind=f.kind, class_code=f.class_code, source=f.source, status=f.status,
                          synthetic=f.synthetic, with_geometry=with_geometry)


def case_points(conn: Connection, district: str, f: CaseloadFilter) -> tuple[Any, Any]:
    """x, y numpy arrays (deployment CRS) of the district's cases matching ``f`` (its ``source`` aside)."""
    return store.case_points(conn, district=district, start=f.start, end=f.end, kind=f.kind,
                             class_code=f.class_code, status=f.status, synthetic=f.synthetic)
