"""OGC API – Features at ``/ogc`` (#25): Part 1 Core with GeoJSON, HTML and OpenAPI 3.0, Part 2 CRS by reference
and Part 3 queryables as query parameters, over the interop collections (``citygrid.interop.queries``).

The landing page, ``/conformance`` and ``/api`` are public; everything else needs an account (a bearer token:
GDAL ``--config GDAL_HTTP_HEADERS "Authorization: Bearer …"``, QGIS the connection's HTTP header), reads what its
roles and district allow, and cases in its case scope. Items pages are streamed: the FeatureCollection's head,
then each feature as PostgreSQL serialised it, then ``numberReturned`` and the links (JSON does not order
members), on one connection held until the last byte is written or the client goes away. Every items request is
logged (``ogc items cid=… bbox=… filters=…``) and kept in ``app.extensions["citygrid_ogc_seen"]``: what a client
had the server filter, and what it must have filtered itself.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
from collections import deque
from collections.abc import Iterator
from contextlib import ExitStack, nullcontext
from dataclasses import replace
from typing import IO, Any

from flask import Blueprint, Response, current_app, jsonify, render_template, request, stream_with_context, url_for
from werkzeug.wsgi import wrap_file

from citygrid.accounts.roles import ANY_ROLE
from citygrid.errors import InvalidInput
from citygrid.interop import queries
from citygrid.interop.collections import KINDS, parse_collection_id
from citygrid.spatial import db
from citygrid.webmap import ogc_doc
from citygrid.webmap.auth import allow, public, require_home_district, require_principal
from citygrid.webmap.context import connection, storage_srid
from citygrid.webmap.headers import came_over_https
from citygrid.webmap.ogc_params import (
    EPSG_URI,
    GEOJSON,
    HTML,
    ITEM_PARAMS,
    ITEMS_PARAMS,
    JSON,
    SCHEMA,
    Crs,
    bbox_arg,
    crs_arg,
    filter_args,
    interval_arg,
    limit_arg,
    offered,
    offset_arg,
    only,
    output_format,
    version_arg,
)

log = logging.getLogger(__name__)
bp = Blueprint("ogc", __name__, url_prefix="/ogc", template_folder="templates")
CONFORMANCE = (
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
)
QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
SEEN = "citygrid_ogc_seen"
# Items pages larger than this hold one of the process's heavy-request slots while they stream (webmap.heavy).
HEAVY_PAGE = 2000
# ... and so do pages this deep: an OFFSET walks that many index entries first (offset 9,999,999 over a million
# components cost 0.9 s of database time a request, repeatable by any account). A client paging sequentially (GDAL,
# QGIS) holds one slot at a time; only many deep pages at once meet the 503.
HEAVY_OFFSET = 100_000
SPOOL_IN_MEMORY = 8 * 1024 * 1024  # bytes of a heavy page kept in memory before the rest goes to a temporary file
CHUNK = 64 * 1024  # characters of a streamed page written at once
HTML_PAGE = 500  # features in an HTML table at most (a browser's page; GIS tools read GeoJSON)


@bp.record_once
def _install(state: Any) -> None:
    state.app.extensions[SEEN] = deque(maxlen=1000)  # the last items requests, as the server read them


def _url(endpoint: str, **params: Any) -> str:
    """An absolute URL (clients follow links as given): https when the request came over HTTPS, also through the
    trusted proxy (``headers.came_over_https``), so a client behind TLS is not sent to plain http."""
    return url_for(f"ogc.{endpoint}", _external=True, _scheme="https" if came_over_https() else request.scheme,
                   **params)


def _link(rel: str, mime: str, title: str, href: str) -> dict[str, str]:
    return {"rel": rel, "type": mime, "title": title, "href": href}


def _self_links(endpoint: str, fmt: str, title: str, **params: Any) -> list[dict[str, str]]:
    """``self`` and ``alternate`` links of a resource offered as JSON and HTML."""
    json_link = _link("self" if fmt == "json" else "alternate", JSON, f"{title} as JSON",
                      _url(endpoint, f="json", **params))
    html_link = _link("self" if fmt == "html" else "alternate", HTML, f"{title} as HTML",
                      _url(endpoint, f="html", **params))
    return [json_link, html_link] if fmt == "json" else [html_link, json_link]


def _page(template_title: str, body: dict[str, Any], kind: str) -> Response:
    """An HTML rendering of a JSON document (no script: the default page policy applies)."""
    html = render_template("ogc_page.html", title=template_title, doc=body, kind=kind)
    return Response(html, mimetype=HTML)


def _reader() -> queries.Reader:
    return queries.Reader.of(require_principal())


# ------------------------------------------------------------------------------------------- landing, api, conf
@bp.get("", strict_slashes=False)
@bp.get("/")
@public
def landing():
    """The landing page: links to the API definition, the conformance classes and the collections."""
    only(("f",))
    fmt = output_format()
    with connection() as conn:
        name = str(db.deployment_info(conn)["name"])
    doc = {"title": f"citygrid — {name}",
           "description": "Unit grids, supervision grids, teams, streets, communities, components, cases and "
                          "frontage units per district, as OGC API – Features (Parts 1, 2 and 3). Sign in with "
                          "'Authorization: Bearer <token>' to read the collections.",
           "links": [*_self_links("landing", fmt, "the landing page"),
                     _link("service-desc", ogc_doc.OPENAPI, "the API definition (OpenAPI 3.0)", _url("api")),
                     _link("service-doc", HTML, "the API definition as HTML", _url("api", f="html")),
                     _link("conformance", JSON, "the conformance classes", _url("conformance")),
                     _link("http://www.opengis.net/def/rel/ogc/1.0/conformance", JSON, "the conformance classes",
                           _url("conformance")),
                     _link("data", JSON, "the collections", _url("collections")),
                     _link("http://www.opengis.net/def/rel/ogc/1.0/data", JSON, "the collections",
                           _url("collections"))]}
    return _page(doc["title"], doc, "landing") if fmt == "html" else jsonify(doc)


@bp.get("/conformance")
@public
def conformance():
    """The conformance classes implemented: exactly these (clients send what is declared)."""
    only(("f",))
    doc = {"conformsTo": list(CONFORMANCE)}
    if output_format() == "html":
        return _page("Conformance", {"links": [], "conformsTo": list(CONFORMANCE)}, "conformance")
    return jsonify(doc)


@bp.get("/api")
@public
def api():
    """The OpenAPI 3.0 definition of ``/ogc`` (``limit`` with its default and maximum, the queryables of each
    collection as query parameters of its items path); ``f=html`` shows it as a page."""
    only(("f",))
    fmt = output_format()
    with connection() as conn:
        doc = ogc_doc.document(conn, server=_url("landing").rstrip("/"))
    if fmt == "html":
        return _page("API definition", {"links": [], "api": doc}, "api")
    return Response(json.dumps(doc, ensure_ascii=False), content_type=ogc_doc.OPENAPI)


# ------------------------------------------------------------------------------------------------- collections
def _collection_doc(c: dict[str, Any], fmt: str = "json") -> dict[str, Any]:
    """One collection's description: extent (CRS84), CRSs offered and the storage CRS, links to its items
    (GeoJSON and HTML) and its queryables."""
    cid = c["id"]
    extent: dict[str, Any] = {}
    if c.get("extent"):
        extent["spatial"] = {"bbox": [c["extent"]], "crs": offered(c["storage_srid"])[0].uri}
    if c.get("interval"):
        extent["temporal"] = {"interval": [[_iso(t) for t in c["interval"]]],
                              "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"}
    return {"id": cid, "title": c["title"], "itemType": "feature",
            "description": f"{KINDS[c['kind']].title} of district {c.get('district_name') or c['district']} "
                           f"({c['district']}); geometry type {c.get('geometry_type', KINDS[c['kind']].geometry_type)}",
            "extent": extent, "crs": [crs.uri for crs in offered(c["storage_srid"])],
            "storageCrs": f"{EPSG_URI}{c['storage_srid']}",
            "links": [*_self_links("collection", fmt, cid, cid=cid),
                      _link("items", GEOJSON, f"the features of {cid}", _url("items", cid=cid)),
                      _link("items", HTML, f"the features of {cid} as HTML", _url("items", cid=cid, f="html")),
                      _link(QUERYABLES_REL, SCHEMA, f"the queryables of {cid}", _url("queryables_", cid=cid))]}


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, dt.date | dt.datetime) else value


@bp.get("/collections")
@allow(*ANY_ROLE)
def collections():
    """The collections the account may read: every kind its roles allow in each district it may see."""
    only(("f",))
    fmt = output_format()
    with connection() as conn:
        found = queries.list_collections(conn, _reader())
    doc = {"links": _self_links("collections", fmt, "the collections"),
           "collections": [_collection_doc(c) for c in found]}
    return _page("Collections", doc, "collections") if fmt == "html" else jsonify(doc)


def _readable_collection(conn: Any, cid: str) -> dict[str, Any]:
    """The collection ``cid`` when the account may read it (``NotFound`` / ``Forbidden`` otherwise)."""
    _, district = parse_collection_id(cid)
    require_home_district(district)
    return queries.collection_info(conn, cid, _reader())


@bp.get("/collections/<cid>")
@allow(*ANY_ROLE)
def collection(cid: str):
    only(("f",))
    fmt = output_format()
    with connection() as conn:
        found = _readable_collection(conn, cid)
    doc = _collection_doc(found, fmt)
    return _page(found["title"], doc, "collection") if fmt == "html" else jsonify(doc)


@bp.get("/collections/<cid>/queryables")
@allow(*ANY_ROLE)
def queryables_(cid: str):
    """The collection's queryables as a JSON Schema (Part 3): each may be sent as a query parameter of items."""
    only(("f",))
    if request.args.get("f") not in (None, "json"):
        raise InvalidInput("queryables are a JSON Schema: leave f out or send f=json", field="f")
    with connection() as conn:
        _readable_collection(conn, cid)
    schema = {"$id": _url("queryables_", cid=cid), **queries.queryables(cid)}
    response = Response(json.dumps(schema, ensure_ascii=False), mimetype=SCHEMA)
    return response


# ------------------------------------------------------------------------------------------------------- items
def _query(cid: str, *, page: bool) -> tuple[queries.FeatureQuery, Crs]:
    """The request's FeatureQuery for collection ``cid`` (parameters checked) and the CRS of the answer."""
    kind, _ = parse_collection_id(cid)
    names = [f.name for f in kind.queryables]
    only((*ITEMS_PARAMS, *names) if page else ITEM_PARAMS)
    srid = storage_srid()
    out = crs_arg("crs", srid)
    bbox_crs = crs_arg("bbox-crs", srid)
    query = queries.FeatureQuery(limit=limit_arg() if page else 1, offset=offset_arg() if page else 0,
                                 bbox=bbox_arg(bbox_crs) if page else None, bbox_srid=bbox_crs.srid,
                                 interval=interval_arg(), filters=filter_args(names) if page else {},
                                 version=version_arg(), out_srid=out.srid, latlon=out.latlon)
    return query, out


def _record(cid: str, query: queries.FeatureQuery) -> None:
    """Log the filters the server applies to an items request it answers, and keep them for tests and
    operators."""
    seen = {"cid": cid, "bbox": query.bbox, "bbox_srid": query.bbox_srid, "filters": dict(query.filters),
            "datetime": None if query.interval is None else [_iso(t) for t in query.interval],
            "version": query.version, "limit": query.limit, "offset": query.offset}
    current_app.extensions[SEEN].append(seen)
    log.info("ogc items cid=%s bbox=%s filters=%s datetime=%s limit=%d offset=%d", cid, query.bbox,
             json.dumps(seen["filters"], ensure_ascii=False), seen["datetime"], query.limit, query.offset)


def _page_links(cid: str, fmt: str, query: queries.FeatureQuery, more: bool) -> list[dict[str, str]]:
    """self/alternate, and next (when more features may follow) and prev (past the first page) links, each
    with the request's other parameters."""
    params = {k: v for k, v in request.args.items() if k not in ("f", "offset")}
    links = _self_links("items", "json" if fmt == "json" else "html", f"this page of {cid}", cid=cid,
                        offset=query.offset, **params)
    links[0 if fmt == "json" else 1]["type"] = GEOJSON
    mime = GEOJSON if fmt == "json" else HTML
    if more:
        links.append(_link("next", mime, "the next page", _url("items", cid=cid, f=fmt, **params,
                                                                  offset=query.offset + query.limit)))
    if query.offset > 0:
        links.append(_link("prev", mime, "the previous page", _url("items", cid=cid, f=fmt, **params,
                                                                      offset=max(0, query.offset - query.limit))))
    links.append(_link("collection", JSON, f"the collection {cid}", _url("collection", cid=cid)))
    return links


@bp.get("/collections/<cid>/items")
@allow(*ANY_ROLE)
def items(cid: str):
    """A page of the collection's features (GeoJSON FeatureCollection, streamed; or an HTML table)."""
    fmt = output_format()
    query, out = _query(cid, page=True)
    require_home_district(parse_collection_id(cid)[1])
    heavy = query.limit > HEAVY_PAGE or query.offset > HEAVY_OFFSET
    if fmt == "html":  # at most HTML_PAGE rows, but as deep as asked: a deep one holds a slot too
        with current_app.extensions["citygrid_heavy"].slot() if heavy else nullcontext():
            return _items_page(cid, replace(query, limit=min(query.limit, HTML_PAGE)))
    stack = ExitStack()
    try:
        if heavy:
            stack.enter_context(current_app.extensions["citygrid_heavy"].slot())
        conn = stack.enter_context(connection())
        reader = _reader()  # the queries check the collection, its district and the reader's right to it
        matched, exact, rows = queries.page(conn, cid, query, reader)
    except BaseException:
        stack.close()
        raise
    _record(cid, query)
    body = _feature_collection(cid, query, rows, matched if exact else None)
    if heavy:
        # A heavy page is written whole (memory, then a temporary file) while its slot and connection are held,
        # and sent once both are given back: streamed from the cursor, a client that stopped reading kept a
        # heavy slot (and a snapshot) as long as it liked, and two such clients refused every export (#25 attack).
        with stack:
            spooled, size = _spooled(body)
        response = Response(wrap_file(request.environ, spooled, CHUNK), mimetype=GEOJSON, direct_passthrough=True)
        response.content_length = size
    else:
        response = Response(stream_with_context(body), mimetype=GEOJSON)
        response.call_on_close(stack.close)
    response.headers["Content-Crs"] = f"<{out.uri}>"
    return response


def _spooled(pieces: Iterator[str]) -> tuple[IO[bytes], int]:
    """``pieces`` written as UTF-8 to a temporary file (in memory up to ``SPOOL_IN_MEMORY`` bytes), rewound,
    and its size."""
    spooled = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 (closed by the response)
    try:
        for piece in pieces:
            spooled.write(piece.encode("utf-8"))
        size = spooled.tell()
        spooled.seek(0)
    except BaseException:
        spooled.close()
        raise
    return spooled, size


def _more(query: queries.FeatureQuery, returned: int, extra: bool, matched: int | None) -> bool:
    """Whether a next page follows a page of ``returned`` features: the probe's extra feature came back
    (``extra``: ``queries.page``), or fewer than the exact count ``matched`` were passed (None: the count is an
    estimate, which says nothing), or a page of ``MAX_LIMIT`` (read without a probe) came back full."""
    return extra or (matched is not None and query.offset + returned < matched) or (
        matched is None and returned == query.limit >= queries.MAX_LIMIT)


def _feature_collection(cid: str, query: queries.FeatureQuery, rows: Iterator[str],
                        matched: int | None) -> Iterator[str]:
    """The FeatureCollection's text in pieces: head, features joined by commas, then the count and links."""
    head = {"type": "FeatureCollection", "timeStamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            .replace("+00:00", "Z")}
    if matched is not None:
        head["numberMatched"] = matched
    buffer, size = [json.dumps(head, ensure_ascii=False)[:-1] + ',"features":['], 0
    returned, extra = 0, False
    for text in rows:  # read to the end of the cursor: at most the probe's one feature past the page
        if returned == query.limit:
            extra = True  # the probe's extra feature (queries.page): there is a next page
            continue
        buffer.append(text if returned == 0 else "," + text)
        size += len(text)
        returned += 1
        if size >= CHUNK:  # one write per CHUNK characters, not one per feature
            yield "".join(buffer)
            buffer, size = [], 0
    links = _page_links(cid, "json", query, _more(query, returned, extra, matched))
    buffer.append('],"numberReturned":' + str(returned) + ',"links":' + json.dumps(links, ensure_ascii=False) + "}")
    yield "".join(buffer)


def _items_page(cid: str, query: queries.FeatureQuery) -> Response:
    """The HTML table of a page of features (properties and id; the geometry is left to GIS tools)."""
    with connection() as conn:
        info = _readable_collection(conn, cid)
        matched, exact, found = queries.page(conn, cid, query, _reader(), as_text=False)
        rows = list(found)
    _record(cid, query)
    kind = KINDS[info["kind"]]
    # With an estimated count the next link is decided by the probe's extra row, as for GeoJSON: the planner's
    # estimate of a box can be a tenth of what is in it, and a next link from it was missing (or led nowhere).
    extra, rows = len(rows) > query.limit, rows[:query.limit]
    doc = {"links": _page_links(cid, "html", query, _more(query, len(rows), extra, matched if exact else None)),
           "numberMatched": matched if exact else None, "numberReturned": len(rows),
           "columns": [f.name for f in kind.fields],
           "features": [{"id": r["id"], "href": _url("item", cid=cid, fid=str(r["id"]), f="html"),
                         "properties": r["properties"]} for r in rows]}
    return _page(f"{info['title']} — features", doc, "items")


@bp.get("/collections/<cid>/items/<fid>")
@allow(*ANY_ROLE)
def item(cid: str, fid: str):
    """One feature by its id (GeoJSON Feature; or an HTML table of its properties)."""
    fmt = output_format()
    query, out = _query(cid, page=False)
    require_home_district(parse_collection_id(cid)[1])
    with connection() as conn:
        found = queries.feature(conn, cid, fid, query, _reader())
    links = [*_self_links("item", fmt, f"feature {found['id']}", cid=cid, fid=fid),
             _link("collection", JSON, f"the collection {cid}", _url("collection", cid=cid))]
    if fmt == "json":
        links[0]["type"] = GEOJSON
    if fmt == "html":
        doc = {"links": links, "id": found["id"], "properties": found["properties"]}
        return _page(f"{cid} — {found['id']}", doc, "item")
    properties = json.dumps(found["properties"], ensure_ascii=False, default=_iso)
    text = (f'{{"type":"Feature","id":{json.dumps(found["id"], ensure_ascii=False)},'
            f'"geometry":{found["geometry"] or "null"},"properties":{properties},'
            f'"links":{json.dumps(links, ensure_ascii=False)}}}')
    response = Response(text, mimetype=GEOJSON)
    response.headers["Content-Crs"] = f"<{out.uri}>"
    return response
