"""Reads of the interop collections (#25) for every front end: the ``/ogc`` API, the exports and the QGIS
project call these, with one plain ``FeatureQuery`` (as pygeoapi's providers take ``query(offset, limit, bbox,
datetime, properties)``) and the ``Reader`` who asks.

Everything a query says is checked here against its collection's ``Kind`` (``interop.collections``): unknown
filter names, values of the wrong type, a version of another district, a bbox or CRS not offered, an interval
without a zone — each an ``InvalidInput`` naming the field, before any statement runs. Features come back
streamed from a server-side cursor, either as dicts (``features``) or already serialised as GeoJSON text by
PostgreSQL (``features_geojson_text``, the fast path the web layer streams straight out).

CRSs offered: EPSG:4326 (CRS84, lon/lat), EPSG:4490 (CGCS2000, lon/lat) and the deployment CRS
(``spatial.db.deployment_srid``). Geometries and bboxes are in x/y order (lon/lat) unless ``latlon`` is set:
OGC's ``http://www.opengis.net/def/crs/EPSG/0/4326`` and ``…/4490`` URIs mean lat/lon axis order, so the web
layer sets ``FeatureQuery.latlon`` for those (and swaps a bbox it was given in them before it builds the query).

Examples
--------
>>> q = FeatureQuery(limit=10, filters={"team_code": "110105T01"})
>>> q.offset, q.out_srid
(0, 4326)
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import pyproj
from sqlalchemy.engine import Connection

from citygrid.cases.scope import CaseScope, read_scope
from citygrid.errors import Forbidden, InvalidInput, NotFound
from citygrid.interop import store
from citygrid.interop.collections import KINDS, Field, Kind, collection_id, parse_collection_id
from citygrid.spatial.db import deployment_srid

if TYPE_CHECKING:
    from citygrid.accounts.service import Principal

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
MAX_OFFSET = 10_000_000
MAX_VERSION = 1_000_000
MAX_TEXT = 200
# Above this many features (the planner's estimate), number_matched gives the estimate instead of counting.
EXACT_COUNT_UP_TO = 20_000
GEOGRAPHIC_SRIDS = (4326, 4490)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_INTEGER = re.compile(r"^[+-]?[0-9]{1,18}$")
_NUMBER = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,3})?$")


@dataclass(frozen=True)
class FeatureQuery:
    """What a client asks of a collection's features.

    ``limit``/``offset``: the page (ordered by feature id); ``bbox``: (x0, y0, x1, y1) in EPSG ``bbox_srid``,
    x/y order (lon/lat for 4326/4490); ``interval``: tz-aware (start, end), either None for open, an instant is
    (t, t); ``filters``: queryable name -> exact value as text; ``version``: a grid version (versioned kinds);
    ``out_srid``: the CRS of the geometries written (4326 = CRS84 lon/lat); ``latlon``: write them lat/lon
    (the axis order of the EPSG:4326 / EPSG:4490 URIs)."""

    limit: int
    offset: int = 0
    bbox: tuple[float, float, float, float] | None = None
    bbox_srid: int = 4326
    interval: tuple[datetime | None, datetime | None] | None = None
    filters: Mapping[str, str] = field(default_factory=dict)
    version: int | None = None
    out_srid: int = 4326
    latlon: bool = False


@dataclass(frozen=True)
class Reader:
    """Who reads: ``role`` None is the operator on the CLI (reads everything); else the account's role (and
    ``roles``, all of them when it has several), ``home`` the district the account works in (None: any), and
    ``cases`` the cases it may read (``cases.scope.read_scope``)."""

    role: str | None
    home: str | None = None
    cases: CaseScope | None = None
    roles: tuple[str, ...] = ()

    @classmethod
    def of(cls, who: Principal) -> Reader:
        """The reader a signed-in account is: its roles, its district (admins: none) and its case scope."""
        home = None if "admin" in who.roles else who.district_code
        return cls(role=who.roles[0] if who.roles else "", home=home, cases=read_scope(who), roles=who.roles)

    @property
    def all_roles(self) -> tuple[str, ...]:
        """Every role of the reader (``roles``, else ``role`` alone; none for the operator)."""
        return self.roles or ((self.role,) if self.role is not None else ())

    def may_read(self, kind: Kind) -> bool:
        """Whether the reader's roles allow ``kind`` (the operator and admins read everything)."""
        return self.role is None or "admin" in self.all_roles or any(r in kind.roles for r in self.all_roles)

    def may_read_district(self, district: str) -> bool:
        """Whether the reader may read ``district``'s collections (a district-bound account: its own only)."""
        return self.home is None or self.home == district

    def may_read_drafts(self, district: str) -> bool:
        """Drafts are the planners' of that district and the admins' (as ``/api/v1/grids``)."""
        roles = self.all_roles
        return self.role is None or "admin" in roles or ("planner" in roles and self.may_read_district(district))


OPERATOR = Reader(role=None)


# --------------------------------------------------------------------------------------------------- collections
def list_collections(conn: Connection, reader: Reader) -> list[dict[str, Any]]:
    """Every collection ``reader`` may read: each kind its roles allow, in each district it may see (frontage
    units only where the district has some in force).

    Returns
    -------
    dicts with ``id``, ``kind``, ``district``, ``district_name``, ``title``, ``extent`` (the district
    boundary's bbox in CRS84: [min lon, min lat, max lon, max lat]), ``interval`` ([start, end] datetimes,
    either None for open; None when the kind has no time), ``storage_srid``, ``geometry_type``.
    """
    srid = deployment_srid(conn)
    found = []
    for row in store.districts(conn):
        if reader.may_read_district(row["district_code"]):
            found += [_collection(kind, row, srid, reader) for kind in KINDS.values()
                      if _listed(kind, reader) and (kind.key != "frontage-units" or row["has_frontage"])]
    return found


def _listed(kind: Kind, reader: Reader) -> bool:
    """Whether ``kind`` is listed for ``reader``: its roles allow it, and for cases its scope holds some."""
    scope_holds = kind.key != "cases" or reader.role is None or (reader.cases is not None and reader.cases.readable)
    return reader.may_read(kind) and scope_holds


def collection_info(conn: Connection, cid: str, reader: Reader) -> dict[str, Any]:
    """One collection as ``list_collections`` describes it.

    Raises
    ------
    NotFound : no such kind or district (or no frontage units there).
    Forbidden : the reader's roles or district do not allow it.
    """
    kind, district = _readable(cid, reader)
    rows = store.districts(conn, district)
    if not rows or (kind.key == "frontage-units" and not rows[0]["has_frontage"]):
        raise NotFound(f"no collection {cid}")
    return _collection(kind, rows[0], deployment_srid(conn), reader)


def _readable(cid: str, reader: Reader) -> tuple[Kind, str]:
    kind, district = parse_collection_id(cid)
    if not reader.may_read(kind):
        raise Forbidden(f"{', '.join(reader.all_roles)} may not read {kind.title}: that needs one of "
                        f"{', '.join(kind.roles)}")
    if not reader.may_read_district(district):
        raise Forbidden(f"you work in district {reader.home}, not {district}")
    if kind.key == "cases" and reader.role is not None:
        (reader.cases or CaseScope(readable=False, why_not="no case scope given")).required()
    return kind, district


def _scoped(reader: Reader) -> bool:
    """Whether the reader's cases are narrowed to a team's grids or a party's dispatches."""
    scope = reader.cases
    return reader.role is not None and (scope is None or scope.team is not None or scope.party is not None)


def _collection(kind: Kind, row: dict[str, Any], srid: int, reader: Reader) -> dict[str, Any]:
    interval = {"version": [row["first_version"], None], "census": None,
                "reported": [row["first_case"], row["last_case"]]}.get(kind.temporal or "")
    if kind.temporal == "reported" and _scoped(reader):
        # the district's first and last report times are about cases outside a team's or party's scope
        interval = None
    extent = None if row["x0"] is None else [row["x0"], row["y0"], row["x1"], row["y1"]]
    return {"id": collection_id(kind.key, row["district_code"]), "kind": kind.key,
            "district": row["district_code"], "district_name": row["name"],
            "title": f"{kind.title} of {row['name']} ({row['district_code']})", "extent": extent,
            "interval": interval, "storage_srid": srid, "geometry_type": kind.geometry_type}


def queryables(cid: str) -> dict[str, Any]:
    """The queryables of a collection as a JSON Schema (OGC API – Features Part 3); the web layer adds ``$id``.

    Raises
    ------
    NotFound : not a collection id (the district is not looked up).
    """
    kind, district = parse_collection_id(cid)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
            "title": f"{kind.title} of {district}",
            "properties": {f.name: _schema(f) for f in kind.queryables}, "additionalProperties": False}


def _schema(f: Field) -> dict[str, Any]:
    if f.type in ("date", "date-time"):
        return {"title": f.title, "type": "string", "format": f.type}
    return {"title": f.title, "type": f.type}


# ------------------------------------------------------------------------------------------------------ features
def features(conn: Connection, cid: str, query: FeatureQuery, reader: Reader, *,
             max_limit: int = MAX_LIMIT) -> Iterator[dict[str, Any]]:
    """The features of collection ``cid`` that ``query`` selects and ``reader`` may read, ordered by id,
    streamed from a server-side cursor (validated, and the statement run, when this is called).
    ``max_limit``: the largest ``query.limit`` taken (an export streams more than a web page: one statement,
    one cursor, no offset paging).

    Returns
    -------
    ``{"id": str | int, "properties": {field: value}, "geometry": GeoJSON text in ``query.out_srid``}`` per
    feature (x/y order; y/x when ``query.latlon``); dates and times as ``date``/``datetime``.

    Raises
    ------
    InvalidInput, NotFound, Forbidden : see ``FeatureQuery`` and ``collection_info``.
    """
    return _features_of(store.feature_rows(conn, _selection(conn, cid, query, reader, max_limit=max_limit)))


def _features_of(rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The store's feature rows as ``features`` gives them."""
    return ({"id": r.pop("__id"), "geometry": r.pop("__geometry"), "properties": r} for r in rows)


def features_geojson_text(conn: Connection, cid: str, query: FeatureQuery, reader: Reader) -> Iterator[str]:
    """``features``, each a GeoJSON Feature already serialised as JSON text by PostgreSQL (``id``,
    ``geometry`` in ``query.out_srid``, ``properties``; times as ISO 8601 in the deployment's zone): the fast
    path for a web response."""
    return store.feature_json(conn, _selection(conn, cid, query, reader))


def feature(conn: Connection, cid: str, fid: str, query: FeatureQuery, reader: Reader) -> dict[str, Any]:
    """One feature by its id (``fid`` as text), as ``features`` gives it; ``query``'s version/datetime/CRS
    apply, its page, bbox and filters do not.

    Raises
    ------
    NotFound : no such feature (or not one the reader may read).
    """
    kind, _ = parse_collection_id(cid)
    value = _id_value(kind, fid)
    one = FeatureQuery(limit=1, interval=query.interval, version=query.version, out_srid=query.out_srid,
                       latlon=query.latlon)
    sel = _selection(conn, cid, one, reader)
    rows = store.feature_rows(conn, _with(sel, fid=value))
    found = next(rows, None)
    for _ in rows:  # drain the cursor
        pass
    if found is None:
        raise NotFound(f"no feature {_shown(fid)} in {cid}")
    return {"id": found.pop("__id"), "geometry": found.pop("__geometry"), "properties": found}


def number_matched(conn: Connection, cid: str, query: FeatureQuery, reader: Reader) -> tuple[int, bool]:
    """How many features ``query`` selects (its page ignored): (count, True) when the planner expects at most
    ``EXACT_COUNT_UP_TO``, else (the planner's estimate, False) — never a full count of a large table per page."""
    return _matched(conn, _selection(conn, cid, query, reader))


def _matched(conn: Connection, sel: store.Selection) -> tuple[int, bool]:
    """``number_matched`` of a resolved selection."""
    estimate = store.estimate_rows(conn, sel)
    if estimate <= EXACT_COUNT_UP_TO:
        return store.count_rows(conn, sel), True
    return estimate, False


def page(conn: Connection, cid: str, query: FeatureQuery, reader: Reader, *, as_text: bool = True
         ) -> tuple[int, bool, Iterator[Any]]:
    """One page of collection ``cid``: ``number_matched`` and the page's features (GeoJSON text as
    ``features_geojson_text``, or dicts as ``features`` with ``as_text`` False), from one resolution of the
    collection, its district and its grid version: resolved once per call (two round trips fewer than asking
    for the count and the features apart), and the count and the features are of the same version, where a
    publish between two resolutions could give the count of one and the features of the next. With an estimated
    count the features run one past the page (below ``MAX_LIMIT``): whether that one comes back says whether a
    next page exists."""
    sel = _selection(conn, cid, query, reader)
    matched, exact = _matched(conn, sel)
    if not exact and query.limit < MAX_LIMIT:
        sel = _with(sel, limit=query.limit + 1)
    rows = store.feature_json(conn, sel) if as_text else _features_of(store.feature_rows(conn, sel))
    return matched, exact, rows


# ---------------------------------------------------------------------------------------------------- validation
def _with(sel: store.Selection, **changes: Any) -> store.Selection:
    return replace(sel, **changes)


def _selection(conn: Connection, cid: str, query: FeatureQuery, reader: Reader, *,
               max_limit: int = MAX_LIMIT) -> store.Selection:
    """``query`` checked against its collection and resolved to what the SQL needs."""
    kind, district = _readable(cid, reader)
    _check_page(query, max_limit)
    context = store.district_context(conn, district)
    if not context["exists"] or (kind.key == "frontage-units" and not context["has_frontage"]):
        raise NotFound(f"no collection {cid}")
    storage = int(context["srid"])
    out_srid = _srid(query.out_srid, storage, "crs")
    bbox_srid = _srid(query.bbox_srid, storage, "bbox-crs")
    bbox = _bbox(query.bbox, bbox_srid)
    domain = bbox_domain(storage) if bbox is not None and bbox_srid != storage else None
    interval = _interval(kind, query.interval)
    filters = {name: _typed(kind, name, value) for name, value in _filters(kind, query.filters)}
    version = _version(conn, kind, district, query.version, interval, reader)
    at = None if interval is None or kind.temporal == "reported" else (interval[1] or interval[0])
    scope = reader.cases if kind.key == "cases" and reader.role is not None else None
    return store.Selection(kind=kind.key, district=district, storage_srid=storage, version=version, at=at,
                           reported=interval if kind.temporal == "reported" else None, bbox=bbox,
                           bbox_srid=bbox_srid, filters=filters, scope=scope, out_srid=out_srid,
                           latlon=bool(query.latlon), digits=9 if out_srid in GEOGRAPHIC_SRIDS else 4,
                           limit=query.limit, offset=query.offset, bbox_domain=domain)


# Degrees a lon/lat bbox may reach past the deployment CRS's area of use before it is cut (``bbox_domain``).
BBOX_DOMAIN_MARGIN = 5.0


@lru_cache(maxsize=16)
def bbox_domain(storage: int) -> tuple[float, float, float, float] | None:
    """Where a lon/lat bbox (EPSG:4326 / 4490, x/y order) is cut before it is transformed to EPSG ``storage``:
    the CRS's area of use widened by ``BBOX_DOMAIN_MARGIN`` degrees (its features lie inside). Far outside it,
    a transverse Mercator has no inverse (PostGIS: "Point outside of projection domain") or folds the box's
    edges (a whole-world box selected nothing). None when the CRS states no area or one across the
    antimeridian: not cut.

    >>> bbox_domain(4548)
    (110.5, 17.6, 123.5, 54.88)
    """
    area = pyproj.CRS.from_epsg(storage).area_of_use
    if area is None or area.west > area.east:
        return None
    m = BBOX_DOMAIN_MARGIN
    return (max(-180.0, area.west - m), max(-90.0, area.south - m), min(180.0, area.east + m),
            min(90.0, area.north + m))


def _check_page(query: FeatureQuery, max_limit: int = MAX_LIMIT) -> None:
    for name, value, low, high in (("limit", query.limit, 1, max_limit), ("offset", query.offset, 0, MAX_OFFSET)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidInput(f"{name} must be an integer {low}…{high}, not {_shown(value)}", field=name)


def offered_srids(storage: int) -> tuple[int, ...]:
    """The CRSs features may be asked in and bboxes given in: CRS84, CGCS2000 and the deployment CRS."""
    return tuple(dict.fromkeys((*GEOGRAPHIC_SRIDS, storage)))


def _srid(value: Any, storage: int, name: str) -> int:
    offered = offered_srids(storage)
    if isinstance(value, bool) or value not in offered:
        raise InvalidInput(f"{name} {_shown(value)} is not offered; offered: "
                           f"{', '.join(f'EPSG:{s}' for s in offered)}", field=name)
    return int(value)


def _bbox(bbox: Any, srid: int) -> tuple[float, float, float, float] | None:
    if bbox is None:
        return None
    try:
        x0, y0, x1, y1 = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise InvalidInput("bbox must be four numbers: min x, min y, max x, max y", field="bbox") from None
    if not all(math.isfinite(v) and abs(v) <= 1e9 for v in (x0, y0, x1, y1)):
        raise InvalidInput("bbox values must be finite numbers", field="bbox")
    if x0 > x1:
        raise InvalidInput("bbox crossing the antimeridian (min x > max x) is not supported: send two requests",
                           field="bbox")
    if y0 > y1:
        raise InvalidInput("bbox min y is above max y", field="bbox")
    if srid in GEOGRAPHIC_SRIDS and not (x0 >= -180 and x1 <= 180 and y0 >= -90 and y1 <= 90):
        raise InvalidInput("bbox longitudes must be within -180…180 and latitudes within -90…90", field="bbox")
    return x0, y0, x1, y1


def _interval(kind: Kind, interval: Any) -> tuple[datetime | None, datetime | None] | None:
    if interval is None:
        return None
    if kind.temporal is None:
        raise InvalidInput(f"{kind.title} have no time dimension: leave datetime out", field="datetime")
    try:
        start, end = interval
    except (TypeError, ValueError):
        raise InvalidInput("datetime must be an instant or an interval start/end", field="datetime") from None
    for t in (start, end):
        if t is not None and (not isinstance(t, datetime) or t.utcoffset() is None):
            raise InvalidInput("datetime must carry its time zone (e.g. 2026-03-01T08:00:00Z or +08:00)",
                               field="datetime")
    if start is not None and end is not None and start > end:
        raise InvalidInput("datetime interval ends before it starts", field="datetime")
    return start, end


def _filters(kind: Kind, filters: Any) -> list[tuple[str, Any]]:
    if not isinstance(filters, Mapping):
        raise InvalidInput("filters must map queryable names to values", field="filters")
    queryable = {f.name for f in kind.queryables}
    for name in filters:
        if name not in queryable:
            raise InvalidInput(f"{_shown(name)} is not a queryable of {kind.title}; queryables: "
                               f"{', '.join(sorted(queryable))}", field=name if isinstance(name, str) else "filters")
    return list(filters.items())


def _typed(kind: Kind, name: str, value: Any) -> Any:
    """A filter's text value as its field's type (``InvalidInput`` naming the field when it is not one)."""
    f = kind.field(name)
    assert f is not None
    if not isinstance(value, str) or len(value) > MAX_TEXT or _CONTROL.search(value):
        raise InvalidInput(f"{name} must be text of at most {MAX_TEXT} characters without control characters",
                           field=name)
    try:
        return _parse(f.type, value)
    except (ValueError, OverflowError):
        raise InvalidInput(f"{name} must be {_TYPE_WORDS[f.type]}, not {_shown(value)}", field=name) from None


_TYPE_WORDS = {"string": "text", "integer": "an integer", "number": "a finite number",
               "boolean": "true or false", "date": "a date YYYY-MM-DD",
               "date-time": "a date and time with its zone (RFC 3339)"}


def _parse(kind: str, value: str) -> Any:
    if kind == "string":
        return value
    if kind == "integer":
        if not _INTEGER.match(value):
            raise ValueError(value)
        return int(value)
    if kind == "number":
        if not _NUMBER.match(value) or not math.isfinite(float(value)):
            raise ValueError(value)
        return float(value)
    if kind == "boolean":
        if value not in ("true", "false"):
            raise ValueError(value)
        return value == "true"
    if kind == "date":
        return date.fromisoformat(value)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.utcoffset() is None:
        raise ValueError(value)
    return parsed


def _version(conn: Connection, kind: Kind, district: str, version: Any, interval: Any,
             reader: Reader) -> int | None:
    """The grid version a versioned kind is read in: ``version`` (checked: it exists in ``district``, and a
    draft only for a reader of drafts), or the one in force during ``interval``, or the current one."""
    if version is None:
        if not kind.versioned:
            return None
        if interval is not None:
            return store.version_in_force(conn, district, interval[0], interval[1])
        return store.current_version(conn, district, drafts=reader.may_read_drafts(district))
    if not kind.versioned:
        raise InvalidInput(f"{kind.title} have no grid version: leave version out", field="version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_VERSION:
        raise InvalidInput(f"version must be an integer 1…{MAX_VERSION}", field="version")
    if interval is not None:
        raise InvalidInput("give version or datetime, not both", field="version")
    status = store.version_status(conn, district, version)
    if status is None:
        raise InvalidInput(f"district {district} has no grid version {version}", field="version")
    if status == "draft" and not reader.may_read_drafts(district):
        raise Forbidden(f"version {version} of {district} is a draft: planners of the district and admins read it")
    return version


def _id_value(kind: Kind, fid: Any) -> Any:
    """A feature id as its field's type; ``NotFound`` when it cannot be one."""
    f = kind.field(kind.id_field)
    assert f is not None
    if not isinstance(fid, str) or len(fid) > MAX_TEXT or _CONTROL.search(fid):
        raise NotFound(f"no feature {_shown(fid)}")
    try:
        value = _parse(f.type, fid)
    except (ValueError, OverflowError):
        raise NotFound(f"no feature {_shown(fid)}") from None
    return value


def _shown(value: Any) -> str:
    """A value as an error message shows it: quoted, escaped, at most 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"
