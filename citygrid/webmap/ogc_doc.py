"""The OpenAPI 3.0 definition of ``/ogc`` (``GET /ogc/api``), written from the same constants the parameters are
checked with (``ogc_params``, ``interop.queries``).

Paths are relative to the server URL (``…/ogc``), as OGC API – Features clients read them: the generic
``/collections/{collectionId}/items`` and, for each collection of the deployment, its own items path whose query
parameters include its queryables. GDAL's OAPIF driver finds the attributes it may send as query parameters
there (and ``limit``'s ``default`` and ``maximum``, by which clients size their pages).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from citygrid import __version__
from citygrid.interop import queries
from citygrid.interop.collections import KINDS, Field
from citygrid.spatial.db import deployment_srid
from citygrid.webmap.ogc_params import FORMATS, GEOJSON, HTML, ITEM_PARAMS, ITEMS_PARAMS, JSON, SCHEMA, offered

OPENAPI = "application/vnd.oai.openapi+json;version=3.0"
_ERROR = {"type": "object", "required": ["error", "message"],
          "properties": {"error": {"type": "string"}, "message": {"type": "string"},
                         "details": {"type": "array", "items": {"type": "object"}}}}
_FIELD_SCHEMAS = {"string": {"type": "string", "maxLength": queries.MAX_TEXT}, "integer": {"type": "integer"},
                  "number": {"type": "number"}, "boolean": {"type": "boolean"},
                  "date": {"type": "string", "format": "date"}, "date-time": {"type": "string", "format": "date-time"}}


def _q(name: str, schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description, **extra}


def _parameters(crs_uris: list[str]) -> dict[str, dict[str, Any]]:
    """The shared parameters (``#/components/parameters``)."""
    return {
        "f": _q("f", {"type": "string", "enum": list(FORMATS)}, "the output format (default: JSON, or HTML when "
                                                                "the Accept header prefers it)"),
        "limit": _q("limit", {"type": "integer", "minimum": 1, "maximum": queries.MAX_LIMIT,
                              "default": queries.DEFAULT_LIMIT},
                    f"features per page (a larger value is taken as {queries.MAX_LIMIT})"),
        "offset": _q("offset", {"type": "integer", "minimum": 0, "maximum": queries.MAX_OFFSET, "default": 0},
                     "features skipped (the next link carries it)"),
        "bbox": _q("bbox", {"type": "array", "minItems": 4, "maxItems": 4, "items": {"type": "number"}},
                   "min x, min y, max x, max y in bbox-crs, in its axis order (CRS84: lon/lat; EPSG:4490: "
                   "lat/lon); 6 numbers are refused", style="form", explode=False),
        "bbox-crs": _q("bbox-crs", {"type": "string", "format": "uri", "enum": crs_uris},
                       "the CRS of bbox (default CRS84)"),
        "crs": _q("crs", {"type": "string", "format": "uri", "enum": crs_uris},
                  "the CRS of the geometries written (default CRS84; Content-Crs says which)"),
        "datetime": _q("datetime", {"type": "string"},
                       "an RFC 3339 instant or interval start/end ('..' open); grids: the version in force then; "
                       "components: the census valid then; cases: reported in it"),
        "version": _q("version", {"type": "integer", "minimum": 1, "maximum": queries.MAX_VERSION},
                      "a grid version (grid and team collections)"),
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/parameters/{name}"}


def _responses(mime: str, public: bool = False) -> dict[str, Any]:
    errors = {"400": "invalid input (field and reason in details)", "404": "not found",
              "503": "database unavailable, or too many heavy requests at once (Retry-After)"}
    if not public:
        errors.update({"401": "not signed in (send Authorization: Bearer <token>)",
                       "403": "the account's roles or district do not allow it"})
    answers: dict[str, Any] = {"200": {"description": "success", "content": {mime: {"schema": {"type": "object"}}}}}
    if mime in (JSON, GEOJSON):
        answers["200"]["content"][HTML] = {"schema": {"type": "string"}}
    for code, what in sorted(errors.items()):
        answers[code] = {"description": what, "content": {JSON: {"schema": _ERROR}}}
    return answers


def _get(summary: str, params: list[dict[str, Any]], mime: str = JSON, public: bool = False) -> dict[str, Any]:
    op = {"summary": summary, "parameters": params, "responses": _responses(mime, public)}
    if public:
        op["security"] = []
    return {"get": op}


def _queryable(f: Field) -> dict[str, Any]:
    return _q(f.name, _FIELD_SCHEMAS[f.type], f"{f.title}: features whose {f.name} is this value (queryable)")


_COLLECTION = {"name": "collectionId", "in": "path", "required": True,
               "schema": {"type": "string", "maxLength": 64},
               "description": "<kind>-<district>, e.g. unit-grids-110105"}
_FEATURE = {"name": "featureId", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 200},
            "description": "the feature's id (grid code, ObjID, case number, …)"}


def _paths(collections: list[tuple[str, str]]) -> dict[str, Any]:
    """The generic paths, and each collection's (id, kind key) items path with its queryables."""
    paths = {
        "/": _get("the landing page", [_ref("f")], public=True),
        "/conformance": _get("the conformance classes implemented", [_ref("f")], public=True),
        "/api": _get("this API definition (f=html: as a page)", [_ref("f")], OPENAPI, public=True),
        "/collections": _get("the collections the account may read", [_ref("f")]),
        "/collections/{collectionId}": _get("one collection", [_COLLECTION, _ref("f")]),
        "/collections/{collectionId}/queryables": _get("its queryables (JSON Schema, Part 3)", [_COLLECTION],
                                                        SCHEMA),
        "/collections/{collectionId}/items": _get(
            "a page of its features (GeoJSON, streamed); queryables of the collection filter it",
            [_COLLECTION, *(_ref(n) for n in ITEMS_PARAMS)], GEOJSON),
        "/collections/{collectionId}/items/{featureId}": _get(
            "one feature", [_COLLECTION, _FEATURE, *(_ref(n) for n in ITEM_PARAMS)],
            GEOJSON),
    }
    for cid, key in collections:
        kind = KINDS[key]
        paths[f"/collections/{cid}/items"] = _get(
            f"a page of the features of {cid}; its queryables as parameters",
            [*(_ref(n) for n in ITEMS_PARAMS), *(_queryable(f) for f in kind.queryables)], GEOJSON)
    return paths


def document(conn: Connection, server: str) -> dict[str, Any]:
    """The OpenAPI 3.0 document of ``/ogc`` served at ``server`` (the URL of the landing page)."""
    srid = deployment_srid(conn)
    collections = [(c["id"], c["kind"]) for c in queries.list_collections(conn, queries.OPERATOR)]
    return {
        "openapi": "3.0.3",
        "info": {"title": "citygrid OGC API – Features", "version": __version__,
                 "description": "Parts 1 (core, GeoJSON, HTML, OpenAPI 3.0), 2 (CRS by reference) and 3 "
                                "(queryables as query parameters). Read with 'Authorization: Bearer <token>', "
                                "or Basic with the username and the token as its password."},
        "servers": [{"url": server}],
        "paths": _paths(collections),
        "components": {"parameters": _parameters([c.uri for c in offered(srid)]),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                           "basic": {"type": "http", "scheme": "basic",
                                                     "description": "username and API token as the password"}}},
        "security": [{"bearer": []}, {"basic": []}],
    }
