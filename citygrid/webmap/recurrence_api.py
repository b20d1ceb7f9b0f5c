"""``GET /api/v1/recurrence/components`` (the chronic components) and ``GET /api/v1/recurrence/places`` (recurring
places: space-time clusters of one class), as JSON, GeoJSON (EPSG:4326) or CSV, each with the parameters it used
and ``synthetic``.

Readers: analysts, district leads, planners, dispatchers (the list goes to the source agencies they deal with) and
admins; an account that works in one district reads only that district's recurrence. Both are heavy requests.
"""

from __future__ import annotations

import datetime as dt

from flask import Blueprint

from citygrid.recurrence import queries as recurrence
from citygrid.recurrence.places import PlaceParams
from citygrid.webmap.auth import allow, home_district_arg
from citygrid.webmap.context import connection
from citygrid.webmap.formats import FORMATS, table_response
from citygrid.webmap.heavy import heavy
from citygrid.webmap.params import choice_arg, float_arg, int_arg, optional_code_arg, period_args

bp = Blueprint("recurrence_v1", __name__, url_prefix="/api/v1")
READERS = ("analyst", "lead", "planner", "dispatcher")


def _filters() -> recurrence.Filters:
    """``start``/``end`` (inclusive dates or date-times, ``period_args``), ``class_code``, ``kind``."""
    start, end = period_args()
    return recurrence.filters(None if start is None else dt.datetime.fromisoformat(start),
                              None if end is None else dt.datetime.fromisoformat(end),
                              optional_code_arg("class", "class_code"), choice_arg("kind", ("event", "component")))


def _bounded_int(name: str, default: int) -> int:
    low, high = recurrence.BOUNDS[name]
    return int(int_arg(name, default, int(low), int(high)))


def _bounded_float(name: str, default: float) -> float:
    low, high = recurrence.BOUNDS[name]
    return float_arg(name, default, low, high)


@bp.get("/recurrence/components")
@allow(*READERS)
@heavy
def components():
    """Chronic components: ``district`` (required), ``start``/``end`` (default: the last 365 days), ``class_code``,
    ``kind``, ``min_cases`` (2–1000, default 3), ``limit`` (1–5000, default 1000), ``format`` json|geojson|csv."""
    district = home_district_arg()
    where = _filters()
    min_cases, limit = _bounded_int("min_cases", 3), _bounded_int("limit", 1000)
    fmt = choice_arg("format", FORMATS, "json")
    with connection() as conn:
        answer = recurrence.chronic_components(conn, district, where, min_cases=min_cases, limit=limit)
    rows = answer.pop("rows")
    return table_response(rows, fmt=fmt, fields=recurrence.COMPONENT_FIELDS, meta=answer, id_key="obj_id",
                          filename=f"chronic-components-{district}.csv")


@bp.get("/recurrence/places")
@allow(*READERS)
@heavy
def places():
    """Recurring places: ``district`` (required), ``start``/``end`` (default: the last 365 days), ``class_code``,
    ``kind``, ``eps_m`` (5–1000, default 50), ``window_days`` (1–730, default 90), ``min_cases`` (2–1000,
    default 3), ``limit`` (1–5000, default 1000), ``format`` json|geojson|csv."""
    district = home_district_arg()
    where = _filters()
    params = PlaceParams(eps_m=_bounded_float("eps_m", 50.0), window_days=_bounded_float("window_days", 90.0),
                         min_cases=_bounded_int("min_cases", 3))
    limit = _bounded_int("limit", 1000)
    fmt = choice_arg("format", FORMATS, "json")
    with connection() as conn:
        answer = recurrence.recurring_places(conn, district, where, params, limit=limit)
    rows = answer.pop("rows")
    return table_response(rows, fmt=fmt, fields=recurrence.PLACE_FIELDS, meta=answer, id_key="cluster_id",
                          filename=f"recurring-places-{district}.csv")
