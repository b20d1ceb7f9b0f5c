"""Parsing and validating query parameters: every value is checked before it reaches the domain."""

from __future__ import annotations

import math
import re

from flask import request

from citygrid import codes
from citygrid.errors import InvalidInput
from citygrid.periods import period
from citygrid.spatial.timezones import instant
from citygrid.webmap.context import code_scheme, zone

MAX_BBOX_DEGREES = 2.0


def district_code(code: str | None, field: str = "district") -> str:
    """``code`` if it is a district code of the deployment's code scheme (``citygrid.codes``)."""
    return code_arg("district", code, field)


def code_arg(kind: str, code: str | None, field: str) -> str:
    """``code`` if it is a well-formed ``kind`` code (``citygrid.codes``: district, unit_grid, supervision_grid,
    team, obj_id of the deployment's code scheme; class, service_code … of every scheme alike, which need no
    database); ``InvalidInput`` saying what is wrong with it otherwise."""
    scheme = None if kind in codes.COMMON else code_scheme()
    fmt = codes.COMMON[kind] if scheme is None else scheme.formats[kind]
    if not code:
        raise InvalidInput(f"{field} is required (a {fmt.label}: {fmt.text})", field=field)
    return codes.check(kind, code, field) if scheme is None else scheme.check(kind, code, field)


def optional_code_arg(kind: str, name: str) -> str | None:
    """The query argument ``name`` as a ``kind`` code (``code_arg``), or None when it is absent or empty."""
    raw = request.args.get(name) or None
    return None if raw is None else code_arg(kind, raw, name)


def optional_district_arg(name: str = "district") -> str | None:
    """An optional district code query argument (None when absent)."""
    raw = request.args.get(name) or None
    return None if raw is None else district_code(raw, name)


def float_arg(name: str, default: float, low: float, high: float) -> float:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a number, not {raw!r}", field=name) from None
    if not math.isfinite(value) or not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low:g} and {high:g}", field=name)
    return value


def lonlat_args() -> tuple[float, float]:
    """The required ``lon`` and ``lat`` query parameters (WGS84 degrees, in range)."""
    for name in ("lon", "lat"):
        if not request.args.get(name):
            raise InvalidInput("lon and lat (WGS84) are required", field=name)
    return float_arg("lon", 0.0, -180.0, 180.0), float_arg("lat", 0.0, -90.0, 90.0)


def int_arg(name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not re.fullmatch(r"-?[0-9]{1,9}", raw):
        raise InvalidInput(f"{name} must be an integer, not {raw!r}", field=name)
    value = int(raw)
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low} and {high}", field=name)
    return value


def choice_arg(name: str, choices: tuple[str, ...], default: str | None = None) -> str | None:
    raw = request.args.get(name)
    if raw in (None, ""):
        return default
    if raw not in choices:
        raise InvalidInput(f"{name} must be one of {', '.join(choices)}", field=name)
    return raw


def bbox_arg(name: str = "bbox") -> tuple[float, float, float, float] | None:
    """``min_lon,min_lat,max_lon,max_lat`` in EPSG:4326, at most 2° on a side."""
    raw = request.args.get(name)
    if raw in (None, ""):
        return None
    parts = raw.split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise InvalidInput(f"{name} must be four numbers min_lon,min_lat,max_lon,max_lat", field=name) from None
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise InvalidInput(f"{name} must be four numbers min_lon,min_lat,max_lon,max_lat", field=name)
    x0, y0, x1, y1 = values
    if not (-180 <= x0 < x1 <= 180 and -90 <= y0 < y1 <= 90):
        raise InvalidInput(f"{name} must be lon/lat (EPSG:4326) with min < max", field=name)
    if x1 - x0 > MAX_BBOX_DEGREES or y1 - y0 > MAX_BBOX_DEGREES:
        raise InvalidInput(f"{name} may span at most {MAX_BBOX_DEGREES:g}° on a side", field=name)
    return values  # type: ignore[return-value]


def date_arg(name: str) -> str | None:
    """An ISO 8601 date or date-time query argument (normalised), or None; ``InvalidInput`` otherwise."""
    return parse_date(request.args.get(name), name)


def period_args(start: str = "start", end: str = "end") -> tuple[str | None, str | None]:
    """A period from two query arguments, as (start, exclusive end) in ``parse_date``'s form: periods are
    inclusive dates, so a date ``end`` covers that whole day and ``start=end`` is one day (``periods.period``).
    ``InvalidInput`` when either is malformed or the period is empty."""
    return period(request.args.get(start) or None, request.args.get(end) or None, parse_date,
                  start_field=start, end_field=end)


def parse_date(raw: str | None, name: str) -> str | None:
    """An ISO 8601 date or date-time as an instant with its offset (ISO text), or None when empty;
    ``InvalidInput`` naming ``name``. Dates and times without an offset are the deployment's local ones
    (``timezones.instant``): ``2026-03-01`` starts at midnight there, not the server's midnight."""
    if not raw:
        return None
    try:
        return instant(raw, zone()).isoformat()
    except OverflowError:
        raise InvalidInput(f"{name} is out of range", field=name) from None
    except ValueError:
        raise InvalidInput(f"{name} must be an ISO 8601 date or date-time", field=name) from None


def case_map_filter_args() -> dict[str, object]:
    """The case map's filters from the query string, each validated as ``GET /api/v1/cases`` validates it:
    ``district``, ``kind``, ``class_code``, ``start``/``end`` (inclusive dates, ``period_args``), ``bbox``
    (EPSG:4326), ``unit_grid``, ``supervision_grid``, ``team``; as keyword arguments of
    ``cases.queries.CaseFilter`` (None where absent)."""
    found: dict[str, object] = {"district": optional_district_arg(), "kind": choice_arg("kind", ("component", "event")),
                                "class_code": optional_code_arg("class", "class_code")}
    for name in ("unit_grid", "supervision_grid", "team"):
        raw = request.args.get(name) or None
        found[name] = None if raw is None else code_arg(name, raw, name)
    found["start"], found["end"] = period_args()
    found["bbox"] = bbox_arg()
    return found


def lonlat_pair_arg(name: str) -> tuple[float, float] | None:
    """``lon,lat`` in WGS84 (EPSG:4326) degrees, both finite and in range, or None when absent."""
    raw = request.args.get(name)
    if raw in (None, ""):
        return None
    parts = raw.split(",")
    try:
        lon, lat = (float(p) for p in parts) if len(parts) == 2 else (math.nan, math.nan)
    except ValueError:
        lon = lat = math.nan
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise InvalidInput(f"{name} must be lon,lat in WGS84 degrees (-180…180, -90…90)", field=name)
    return lon, lat
