"""Reads of cases for every front end: the case API, Open311, search, the pages and the CLI.

A list of cases is asked for with one plain filter object, ``CaseFilter`` (as pygeoapi's providers take
``query(offset, limit, bbox, datetime, properties)``); the caller's ``CaseScope`` (``cases.scope``) travels in
it, so every route that lists or finds cases keeps to the same read rules. Front ends validate their input and
format the answer; what a filter means is decided here and in ``cases.store``.

Points come back as lon/lat in EPSG:4326; a ``bbox`` is (min lon, min lat, max lon, max lat) in EPSG:4326.

Examples
--------
>>> CaseFilter(district="110105", open_only=True, limit=50).limit
50
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import shapely
from sqlalchemy.engine import Connection

from citygrid.cases import store
from citygrid.cases.scope import CaseScope
from citygrid.cases.store import (
    MAX_MONTHS,
    case_months,
    get_case,
    has_synthetic,
    in_scope,
    labelled_texts,
    overdue_ids,
)
from citygrid.errors import Forbidden
from citygrid.spatial import crs
from citygrid.spatial.db import deployment_srid
from citygrid.spatial.store import last_case_id

# What front ends call: the functions defined here, and the store's reads that already have the shape a
# front end needs, under their domain names.
__all__ = [
    "MAX_MONTHS",
    "CaseFilter",
    "case_months",
    "deadline_lists",
    "get_case",
    "has_synthetic",
    "in_scope",
    "labelled_texts",
    "last_case_id",
    "list_cases",
    "nearest_component",
    "overdue_ids",
]


@dataclass(frozen=True)
class CaseFilter:
    """Which cases to list: every field that is not None (or not False) must hold.

    Attributes
    ----------
    district : district code, or None for every district.
    status : one workflow status; ``statuses``: one of these (Open311's open/closed).
    open_only : only cases not rejected, closed or evaluated.
    kind, class_code : ``event``/``component`` and the class code within the case's scheme.
    start, end : reported at or after ``start`` and before ``end`` (ISO 8601 instants, end exclusive).
    bbox : (min lon, min lat, max lon, max lat) in EPSG:4326, tested exactly in EPSG:4326.
    unit_grid, supervision_grid : grid codes the case was placed in.
    team : the supervision grids of that team in the district's current grid version.
    published : (sources, ``kind/class_code`` pairs): only cases from one of the sources or of one of the
        classes (what Open311 publishes).
    scope : the cases the caller may read (``cases.scope.read_scope``); None reads every case (the CLI and
        public, published lists).
    limit, offset : the page, newest first.
    """

    district: str | None = None
    status: str | None = None
    statuses: tuple[str, ...] | None = None
    open_only: bool = False
    kind: str | None = None
    class_code: str | None = None
    start: Any = None
    end: Any = None
    bbox: tuple[float, float, float, float] | None = None
    unit_grid: str | None = None
    supervision_grid: str | None = None
    team: str | None = None
    published: tuple[tuple[str, ...], tuple[str, ...]] | None = None
    scope: CaseScope | None = None
    limit: int = 100
    offset: int = 0


def _readable(f: CaseFilter) -> None:
    """Refuse a filter its scope cannot read: ``Forbidden`` for a caller who may read no case, or who asks
    for another team's grids than the one their scope keeps to."""
    if f.scope is None:
        return
    f.scope.required()
    if f.team is not None and f.scope.team is not None and f.team != f.scope.team:
        raise Forbidden(f"you may list the cases of your own team {f.scope.team} only")


def list_cases(conn: Connection, f: CaseFilter, srid: int | None = None) -> list[dict[str, Any]]:
    """The cases matching ``f`` within its scope, newest first, with lon/lat in EPSG:4326.

    Parameters
    ----------
    conn : a connection to the deployment's database.
    f : the filter; its ``bbox`` is in EPSG:4326.
    srid : the storage CRS (EPSG code) when the caller holds it (the web app reads it once per process); read
        from the deployment otherwise (a round trip of its own: 0.19 ms of a 2.8 ms list request).

    Returns
    -------
    One dict per case (the columns of ``cases.store``'s case rows, plus ``lon``/``lat``).

    Raises
    ------
    Forbidden : the scope reads no case, or ``team`` is not the scope's own team.
    """
    _readable(f)
    return store.list_cases(
        conn, district=f.district, status=f.status, kind=f.kind, class_code=f.class_code, start=f.start,
        end=f.end, bbox=f.bbox, unit_grid=f.unit_grid, supervision_grid=f.supervision_grid,
        srid=deployment_srid(conn) if srid is None else srid, limit=f.limit, offset=f.offset, team=f.team,
        open_only=f.open_only, scope=f.scope, statuses=f.statuses, published=f.published)


def nearest_component(conn: Connection, lon: float, lat: float, within_m: float) -> dict[str, Any] | None:
    """The current component nearest to a point, within ``within_m`` metres, by the rule intake uses to name
    a report's component; None outside every district or with none that close.

    Parameters
    ----------
    lon, lat : the point in EPSG:4326 (WGS84).
    within_m : the search radius in metres (measured in the deployment CRS).

    Returns
    -------
    ``obj_id``, ``class_code`` and ``distance_m`` of the component, or None.
    """
    srid = deployment_srid(conn)
    wkb = shapely.to_wkb(crs.storage_point(lon, lat, crs.parse_crs("EPSG:4326"), srid))
    district, _ = store.district_at(conn, wkb, srid)
    if district is None:
        return None
    return store.component_near(conn, district, wkb, srid, obj_id=None, class_code=None, within_m=within_m)


def deadline_lists(conn: Connection, district: str | None, within_hours: float, limit: int,
                   scope: CaseScope | None = None) -> dict[str, list[dict[str, Any]]]:
    """``overdue``: the dispatched cases within ``scope`` (None: every case) past their deadline; ``due_soon``:
    those due within ``within_hours``, soonest first; at most ``limit`` of each. ``Forbidden`` when the scope
    reads no case."""
    if scope is not None:
        scope.required()
    return store.deadline_lists(conn, district, within_hours, limit, scope=scope)
