"""The query parameters of ``/ogc`` (OGC API – Features Parts 1–3), each read and checked once: the output format,
CRS URIs and their axis order, ``bbox``, ``datetime``, ``limit``/``offset``, ``version`` and the queryables.

What a client may send to each resource is closed: an unknown parameter is a 400 that lists the allowed ones
(clients learn the queryables from ``/queryables`` and the OpenAPI document). The domain checks a query against
its collection again (``interop.queries``); here the text becomes typed values.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import pyproj
from flask import request

from citygrid.errors import InvalidInput
from citygrid.interop import queries
from citygrid.interop.queries import DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET, MAX_TEXT, MAX_VERSION
from citygrid.periods import DATE_ONLY
from citygrid.spatial.timezones import instant
from citygrid.webmap.context import zone

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/"
JSON = "application/json"
GEOJSON = "application/geo+json"
HTML = "text/html"
FORMATS = {"json": "json", "geojson": "json", "html": "html"}
# The parameters of an items request besides the collection's queryables.
ITEMS_PARAMS = ("f", "limit", "offset", "bbox", "bbox-crs", "crs", "datetime", "version")
ITEM_PARAMS = ("f", "crs", "datetime", "version")
SCHEMA = "application/schema+json"  # the queryables' media type
_WHOLE = re.compile(r"^[0-9]{1,18}$")


@dataclass(frozen=True)
class Crs:
    """A CRS offered by ``/ogc``: its OGC ``uri``, its EPSG ``srid`` and whether its first axis is northing /
    latitude (``latlon``: coordinates are written, and bboxes read, in that order)."""

    uri: str
    srid: int
    latlon: bool


def offered(storage_srid: int) -> list[Crs]:
    """The CRSs features may be asked in and bboxes given in: CRS84 (lon/lat), EPSG:4490 (CGCS2000; lat/lon by
    its definition) and the deployment's storage CRS (in its definition's axis order)."""
    return [Crs(CRS84, 4326, False) if srid == 4326 else Crs(f"{EPSG_URI}{srid}", srid, northing_first(srid))
            for srid in queries.offered_srids(storage_srid)]


@lru_cache(maxsize=16)
def northing_first(srid: int) -> bool:
    """Whether EPSG ``srid`` defines its first axis as north/south (latitude or northing), as EPSG:4490 and the
    Gauss–Krüger CRSs do (UTM zones do not): OGC API – Features Part 2 writes coordinates in that order."""
    return pyproj.CRS.from_epsg(srid).axis_info[0].direction.lower() in ("north", "south")


def crs_arg(name: str, storage_srid: int) -> Crs:
    """The CRS named by the ``name`` parameter (``crs`` or ``bbox-crs``; CRS84 when absent); 400 listing the
    offered URIs for any other."""
    choices = offered(storage_srid)
    raw = request.args.get(name)
    if raw is None or raw == "":
        return choices[0]
    text = raw.strip()
    if text.startswith("[") and text.endswith("]"):  # a safe CURIE, [EPSG:4490]
        text = text[1:-1]
    for crs in choices:
        if text in (crs.uri, f"EPSG:{crs.srid}" if crs.srid != 4326 else "OGC:CRS84"):
            return crs
    raise InvalidInput(f"{name} {raw[:80]!r} is not offered; offered: {', '.join(c.uri for c in choices)}",
                       field=name)


def output_format() -> str:
    """``json`` or ``html``: the ``f`` parameter (json, geojson, html), else what the Accept header prefers
    (JSON unless the client prefers text/html over JSON, as a browser does)."""
    raw = request.args.get("f")
    if raw is not None:
        if raw not in FORMATS:
            raise InvalidInput(f"f must be one of {', '.join(FORMATS)}", field="f")
        return FORMATS[raw]
    best = request.accept_mimetypes.best_match([JSON, GEOJSON, HTML])
    if best == HTML and request.accept_mimetypes[HTML] > request.accept_mimetypes[JSON]:
        return "html"
    return "json"


def only(allowed: Iterable[str]) -> None:
    """400 for a parameter outside ``allowed`` (naming it and listing them) or one given twice."""
    allowed = set(allowed)
    for name in request.args:
        if name not in allowed:
            raise InvalidInput(f"unknown parameter {name[:60]!r}; this resource takes: "
                               f"{', '.join(sorted(allowed)) or 'none'}", field=name[:60])
        if len(request.args.getlist(name)) > 1:
            raise InvalidInput(f"{name} is given more than once", field=name)


def limit_arg() -> int:
    """``limit``: a whole number from 1 (``DEFAULT_LIMIT`` when absent); above ``MAX_LIMIT`` it is taken as
    ``MAX_LIMIT``, as OGC API – Features asks of a server with a declared maximum."""
    raw = request.args.get("limit")
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    if not _WHOLE.match(raw) or int(raw) < 1:
        raise InvalidInput(f"limit must be a whole number from 1 (at most {MAX_LIMIT} are returned)", field="limit")
    return min(int(raw), MAX_LIMIT)


def whole_arg(name: str, default: int | None, high: int) -> int | None:
    """``name`` as a whole number 0…``high`` (``default`` when absent)."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not _WHOLE.match(raw) or int(raw) > high:
        raise InvalidInput(f"{name} must be a whole number 0…{high}", field=name)
    return int(raw)


def offset_arg() -> int:
    return whole_arg("offset", 0, MAX_OFFSET) or 0


def version_arg() -> int | None:
    value = whole_arg("version", None, MAX_VERSION)
    if value == 0:
        raise InvalidInput(f"version must be a whole number 1…{MAX_VERSION}", field="version")
    return value


def bbox_arg(crs: Crs) -> tuple[float, float, float, float] | None:
    """``bbox`` as (min x, min y, max x, max y) in ``crs``, x/y order whatever the CRS's axis order (a bbox in a
    lat/lon CRS is sent lat/lon and swapped here); four finite numbers, min before max."""
    raw = request.args.get("bbox")
    if raw is None or raw == "":
        return None
    parts = raw.split(",")
    if len(parts) == 6:
        raise InvalidInput("bbox with heights (6 numbers) is not supported: send 4 numbers", field="bbox")
    try:
        values = [float(p) for p in parts] if len(raw) <= 200 else []
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise InvalidInput("bbox must be 4 finite numbers: lower left and upper right corner in bbox-crs "
                           "(CRS84: min lon,min lat,max lon,max lat)", field="bbox")
    a0, b0, a1, b1 = values
    return (b0, a0, b1, a1) if crs.latlon else (a0, b0, a1, b1)


def interval_arg() -> tuple[dt.datetime | None, dt.datetime | None] | None:
    """``datetime``: an RFC 3339 instant (t, t), or an interval ``start/end`` with ``..`` (or nothing) for an
    open end. A date alone is its whole local day in the deployment's zone, and a time without an offset is
    read there too. Ends are inclusive."""
    raw = request.args.get("datetime")
    if raw is None or raw == "":
        return None
    if len(raw) > 80 or raw.count("/") > 1:
        raise InvalidInput("datetime must be an instant or an interval start/end ('..' for an open end)",
                           field="datetime")
    if "/" not in raw:
        return _moment(raw, first=True), _moment(raw, first=False)
    start_text, end_text = raw.split("/")
    start = None if start_text in ("", "..") else _moment(start_text, first=True)
    end = None if end_text in ("", "..") else _moment(end_text, first=False)
    if start is None and end is None:
        raise InvalidInput("a datetime interval needs at least one end", field="datetime")
    if start is not None and end is not None and start > end:
        raise InvalidInput("the datetime interval ends before it starts", field="datetime")
    return start, end


def _moment(text: str, *, first: bool) -> dt.datetime:
    """An instant of ``datetime``: a date is its day's first instant (``first``) or its last."""
    try:
        moment = instant(text, zone())
        if not first and DATE_ONLY.match(text):
            moment = instant((dt.date.fromisoformat(text.strip()) + dt.timedelta(days=1)).isoformat(), zone())
            moment -= dt.timedelta(microseconds=1)
    except (ValueError, OverflowError):
        raise InvalidInput(f"datetime {text[:40]!r} is not an RFC 3339 date-time (2026-03-01T08:00:00Z) or date",
                           field="datetime") from None
    return moment


def filter_args(queryable: Iterable[str]) -> dict[str, str]:
    """The queryables given as parameters (name -> text); ``interop.queries`` types them."""
    found = {}
    for name in queryable:
        value = request.args.get(name)
        if value is not None:
            if len(value) > MAX_TEXT:
                raise InvalidInput(f"{name} must be at most {MAX_TEXT} characters", field=name)
            found[name] = value
    return found
