"""The recurrence answers the web layer and the CLI give: checked parameters in, rows (EPSG:4326) out.

Both analyses count the district's cases reported in [start, end) (``end`` exclusive; without ``start``, the
``DEFAULT_DAYS`` before ``end``, without ``end``, now), except rejected reports and duplicates, optionally of
one ``class_code`` and ``kind``. Every answer carries the parameters it used and ``synthetic`` (whether any
counted case is SYNTHETIC).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import shapely
from sqlalchemy.engine import Connection

from citygrid.errors import InvalidInput
from citygrid.recurrence import store
from citygrid.recurrence.components import chronic, per_component
from citygrid.recurrence.places import PlaceParams, clusters
from citygrid.spatial import crs
from citygrid.spatial.db import deployment_srid

DEFAULT_DAYS = 365
# Bounds of every parameter (HTTP and CLI alike): (low, high).
BOUNDS: dict[str, tuple[float, float]] = {"min_cases": (2, 1000), "eps_m": (5.0, 1000.0),
                                          "window_days": (1.0, 730.0), "limit": (1, 5000)}
MAX_PERIOD_DAYS = 3660
# The columns of the CSV answers, in order.
COMPONENT_FIELDS = ("rank", "obj_id", "class_code", "class_name", "obj_name", "cases", "first_reported",
                    "last_reported", "median_interval_days", "min_interval_days", "dept_code", "dept_name",
                    "dept_name2", "dept_name3", "unit_grid_code", "lon", "lat", "synthetic", "case_ids")
PLACE_FIELDS = ("rank", "cluster_id", "kind", "class_code", "class_name", "cases", "first_reported",
                "last_reported", "span_days", "unit_grids", "lon", "lat", "synthetic", "case_ids")


@dataclass(frozen=True)
class Filters:
    """Which cases count: ``start``/``end`` aware datetimes ([start, end)), ``class_code``, ``kind``."""

    start: dt.datetime
    end: dt.datetime
    class_code: str | None = None
    kind: str | None = None


def filters(start: dt.datetime | None, end: dt.datetime | None, class_code: str | None = None,
            kind: str | None = None) -> Filters:
    """The period [start, end) with its defaults (``end`` now, ``start`` ``DEFAULT_DAYS`` before ``end``).

    Raises ``InvalidInput`` for a kind other than event or component, an empty period or one longer than
    ``MAX_PERIOD_DAYS``."""
    if kind is not None and kind not in ("event", "component"):
        raise InvalidInput("kind must be event or component", field="kind")
    end = end or dt.datetime.now(dt.UTC)
    try:
        start = start or end - dt.timedelta(days=DEFAULT_DAYS)
    except OverflowError:  # an end in the first year of the calendar
        raise InvalidInput("end is too early", field="end") from None
    if start >= end:
        raise InvalidInput("start must be before end", field="start")
    if end - start > dt.timedelta(days=MAX_PERIOD_DAYS):
        raise InvalidInput(f"the period may span at most {MAX_PERIOD_DAYS} days", field="start")
    return Filters(start, end, class_code, kind)


def check_number(name: str, value: float) -> float:
    """``value`` if it is a finite number within ``BOUNDS[name]``; ``InvalidInput`` naming ``name`` otherwise."""
    low, high = BOUNDS[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not low <= value <= high:
        raise InvalidInput(f"{name} must be a number from {low:g} to {high:g}", field=name)
    return value


def _meta(district: str, where: Filters, **extra: Any) -> dict[str, Any]:
    return {"district": district, "start": where.start.isoformat(), "end": where.end.isoformat(),
            "class_code": where.class_code, "kind": where.kind, **extra}


def _where(where: Filters) -> dict[str, Any]:
    return {"start": where.start, "end": where.end, "class_code": where.class_code, "kind": where.kind}


def chronic_components(conn: Connection, district: str, where: Filters, *, min_cases: int = 3,
                       limit: int = 1000) -> dict[str, Any]:
    """The chronic components of ``district``: components with at least ``min_cases`` counted cases in the
    period, ranked (``components.chronic``), at most ``limit``, each with its class, name, owning department
    (DeptCode1/DeptName1; managing and maintaining ones as DeptName2/3), unit grid and point (``lon``/``lat``
    and a GeoJSON ``geometry``, EPSG:4326).

    Returns the parameters used, ``components_with_cases``, ``chronic`` (how many before the limit),
    ``cases_counted``, ``synthetic`` and ``rows``."""
    check_number("min_cases", min_cases)
    check_number("limit", limit)
    cases = store.component_cases(conn, district, **_where(where))
    summaries = per_component(cases)
    ranked = chronic(summaries, int(min_cases))
    shown = ranked[:int(limit)]
    info = store.components(conn, district, [r["obj_id"] for r in shown])
    rows = [_component_row(r, info.get(r["obj_id"], {})) for r in shown]
    return {**_meta(district, where, min_cases=int(min_cases), limit=int(limit)),
            "components_with_cases": len(summaries), "chronic": len(ranked), "cases_counted": len(cases),
            "synthetic": any(c["synthetic"] for c in cases), "rows": rows}


def _component_row(summary: dict[str, Any], component: dict[str, Any]) -> dict[str, Any]:
    lon, lat = component.get("lon"), component.get("lat")
    return {
        "rank": summary["rank"], "obj_id": summary["obj_id"], "class_code": component.get("class_code"),
        "class_name": component.get("class_name"), "obj_name": component.get("obj_name"),
        "cases": summary["cases"], "first_reported": summary["first_reported"].isoformat(),
        "last_reported": summary["last_reported"].isoformat(),
        "median_interval_days": summary["median_interval_days"], "min_interval_days": summary["min_interval_days"],
        "dept_code": component.get("dept_code1"), "dept_name": component.get("dept_name1"),
        "dept_name2": component.get("dept_name2"), "dept_name3": component.get("dept_name3"),
        "unit_grid_code": component.get("unit_grid_code"), "current": component.get("current"),
        "lon": lon, "lat": lat, "synthetic": summary["synthetic"], "case_ids": summary["case_ids"],
        "geometry": None if lon is None else {"type": "Point", "coordinates": [lon, lat]},
    }


def recurring_places(conn: Connection, district: str, where: Filters, params: PlaceParams,
                     *, limit: int = 1000) -> dict[str, Any]:
    """The recurring places of ``district``: space-time clusters (``places.clusters``, ST-DBSCAN with
    ``params``) of the counted cases that name no component, ranked, at most ``limit``; each with its unit
    grids, case numbers, centre (``lon``/``lat``) and the buffered convex hull of its cases as a GeoJSON
    Polygon ``geometry`` (EPSG:4326).

    Returns the parameters used, ``method``, ``clusters`` (how many before the limit), ``cases_counted``,
    ``cases_clustered``, ``synthetic`` and ``rows``."""
    for name in ("eps_m", "window_days", "min_cases"):
        check_number(name, getattr(params, name))
    check_number("limit", limit)
    cases = store.place_cases(conn, district, **_where(where))
    found = clusters(cases, params)
    shown = found[:int(limit)]
    srid = deployment_srid(conn)
    hulls = crs.to_lonlat(np.array([c["hull"] for c in shown], dtype=object), srid) if shown else []
    centres = crs.to_lonlat(np.array([c["centre"] for c in shown], dtype=object), srid) if shown else []
    rows = [_place_row(c, hull, centre) for c, hull, centre in zip(shown, hulls, centres, strict=True)]
    return {**_meta(district, where, **asdict(params), limit=int(limit)),
            "method": "ST-DBSCAN per class: neighbours within eps_m metres and window_days days; a core case has "
                      "min_cases neighbours (itself included); polygon: convex hull buffered by eps_m / 2",
            "clusters": len(found), "cases_counted": len(cases), "cases_clustered": sum(c["cases"] for c in found),
            "synthetic": any(c["synthetic"] for c in cases), "rows": rows}


def _place_row(cluster: dict[str, Any], hull: Any, centre: Any) -> dict[str, Any]:
    return {
        "rank": cluster["rank"], "cluster_id": cluster["cluster_id"], "kind": cluster["kind"],
        "class_code": cluster["class_code"], "class_name": cluster["class_name"], "cases": cluster["cases"],
        "first_reported": cluster["first_reported"].isoformat(), "last_reported": cluster["last_reported"].isoformat(),
        "span_days": cluster["span_days"], "unit_grids": cluster["unit_grids"],
        "lon": round(centre.x, 7), "lat": round(centre.y, 7), "synthetic": cluster["synthetic"],
        "case_ids": cluster["case_ids"], "geometry": shapely.geometry.mapping(shapely.set_precision(hull, 1e-7)),
    }
