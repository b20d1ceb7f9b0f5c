"""Vector tiles: ``GET /tiles/<layer>/<z>/<x>/<y>.mvt`` (Mapbox Vector Tile, XYZ scheme) and a TileJSON per
layer. Tiles are cached server-side under a key that includes the layer's revision (``spatial.tiles``); the
ETag is that key, so browsers revalidate (``no-cache``) and get 304 until an edit changes the layer.

The ``cases`` layer (a layer with a ``reader_scope``) follows the case read rules (``cases.scope``): 403 for a
role that may not read cases, and a supervisor's or a unit's tiles hold only the cases in their scope (the scope
is part of the cache key)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request, url_for

from citygrid.accounts.roles import ANY_ROLE
from citygrid.cases.scope import read_scope
from citygrid.cases.workflow import CLOSED_STATES, STATES
from citygrid.errors import InvalidInput
from citygrid.spatial import tiles
from citygrid.webmap.auth import allow, require_principal
from citygrid.webmap.context import backend, connection, storage_srid
from citygrid.webmap.params import choice_arg, code_arg

bp = Blueprint("tiles", __name__, url_prefix="/tiles")
MVT_TYPE = "application/vnd.mapbox-vector-tile"


def _filters(layer: tiles.TileLayer) -> dict[str, object]:
    accepted = {name for name, _ in layer.filters}
    unknown = sorted(set(request.args) - accepted)
    if unknown:
        raise InvalidInput(f"layer {layer.name} takes no parameter {unknown[0]!r}"
                           + (f"; it takes {', '.join(sorted(accepted))}" if accepted else ""), field=unknown[0])
    filters: dict[str, object] = {}
    if "class_code" in request.args:
        filters["class_code"] = code_arg("class", request.args["class_code"], "class_code")
    if "status" in request.args:
        filters["status"] = choice_arg("status", STATES)
    if "open" in request.args and choice_arg("open", ("true", "false")) == "true":
        filters["open"] = CLOSED_STATES  # the states an open case is in none of
    return filters


def _reader_scope(layer: tiles.TileLayer) -> dict[str, object] | None:
    """The caller's case scope as the layer's bound scope values (None: every row); ``Forbidden`` for a caller
    who may not read the layer's rows at all."""
    if layer.reader_scope is None:
        return None
    scope = read_scope(require_principal()).required()
    return None if scope.unrestricted else scope.bound()


@bp.get("/<name>/<int:z>/<int:x>/<int:y>.mvt")
@allow(*ANY_ROLE)
def tile(name: str, z: int, x: int, y: int):
    layer = tiles.layer(name)
    scope = _reader_scope(layer)
    filters = _filters(layer)
    tiles.check_tile(z, x, y)
    with connection() as conn:
        data, etag, hit = tiles.cached_tile(conn, backend().database, name, z, x, y, storage_srid(), filters,
                                            scope=scope)
    headers = {"ETag": f'"{etag}"', "Cache-Control": "no-cache", "X-Tile-Cache": "hit" if hit else "miss"}
    if request.if_none_match.contains(etag):
        return Response(status=304, headers=headers)
    if not data:
        return Response(status=204, headers=headers)
    return Response(data, mimetype=MVT_TYPE, headers=headers)


@bp.get("/<name>.json")
@allow(*ANY_ROLE)
def tilejson(name: str):
    """TileJSON 3.0 of a layer: its tile URL template, zooms and attribute fields (below the layer's
    ``detail_zoom`` its tiles carry only the fields named ``overview_fields``)."""
    layer = tiles.layer(name)
    _reader_scope(layer)
    template = url_for("tiles.tile", name=name, z=0, x=0, y=0).replace("/0/0/0.mvt", "/{z}/{x}/{y}.mvt")
    return jsonify({"tilejson": "3.0.0", "name": name, "tiles": [template], "minzoom": layer.minzoom,
                    "maxzoom": tiles.MAX_ZOOM, "scheme": "xyz",
                    "vector_layers": [{"id": name, "fields": {c: "" for c in layer.columns},
                                       "minzoom": layer.minzoom, "maxzoom": tiles.MAX_ZOOM}],
                    "filters": [f for f, _ in layer.filters],
                    **({"detail_zoom": layer.detail_zoom, "overview_fields": list(layer.overview_columns)}
                       if layer.detail_zoom else {})})
