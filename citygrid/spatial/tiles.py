"""Mapbox Vector Tiles of the large layers (unit and supervision grids, components, cases, frontage units), made
by PostGIS (``ST_AsMVT``) and cached under a key that names what the tile was made from.

The key holds the layer, the tile, its filters, the reader's scope and the layer's **revision**: for grids the
current version of every district (id, status, parameters, and the grid count of a draft) and the ownership
counter (unit grids carry their owners per role), for cases and components their counters — ``layer_revisions``
rows that every committed change raises (migration 0004). The revision is read before the tile is made, so a
tile is never older than its key: once an edit commits, every later request builds a new key and no stale tile
can be served. The cache is per process, bounded in bytes, least recently used first. Behind it, the grid layers
(``STORED_LAYERS``) have a store shared by every process, ``tile_store``, keyed the same way and filled after a
publish by ``spatial.tilewarm``: a memory miss reads it before making the tile.

A layer with a ``reader_scope`` (the cases) shows a restricted reader only their rows: the caller passes the
scope's bound values (``citygrid.cases.scope.CaseScope.bound``: a team's supervision grids and/or a party's
dispatched cases), the condition is added to the query and the scope is part of the key (and, for a team,
the grids' revision, since the team's grids are those of the current version).

Tiles are addressed in the web's XYZ scheme (EPSG:3857 tile grid); the query selects rows through the
tile envelope transformed to the deployment CRS (with a margin), so the GiST index on ``geom`` is used.
All SQL of the tile layers is in this module, with bound parameters.
"""

from __future__ import annotations

import functools
import hashlib
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from pyproj import CRS
from sqlalchemy.engine import Connection

from citygrid.errors import InvalidInput, NotFound
from citygrid.spatial.store import VERSION_REVISION_COLUMNS, current_version_sql

EXTENT = 4096
BUFFER = 64
MAX_ZOOM = 22


@dataclass(frozen=True)
class TileLayer:
    """One tile layer: the zoom it starts at, its attribute ``columns``, its rows (``select`` yields the
    columns and ``geom``; ``{filters}`` is replaced by the layer's filter SQL) and the filters it accepts
    (name → SQL condition with a bound parameter of that name; a tuple value is bound as an array).

    The cases layer's ``open`` filter is bound to the closed states (``cases.workflow.CLOSED_STATES``, which
    the web layer passes: this package sits below ``cases``) and keeps the cases in none of them."""

    name: str
    minzoom: int
    columns: tuple[str, ...]
    select: str
    filters: tuple[tuple[str, str], ...] = ()
    revision_of: tuple[str, ...] = ("grids",)  # "grids" (current versions) and/or layer_revisions layers
    # The rows a restricted reader may see (bound :scope_all, :scope_team, :scope_party, :scope_district and
    # :scope_home; see the module docstring); None: the layer is the same for every reader.
    reader_scope: str | None = None
    # The rows depend on the local day too (validity ranges of days): the day is part of the revision, so a tile
    # made yesterday is not served once a unit's range has ended or begun.
    daily: bool = False
    # Below ``detail_zoom`` a tile carries only ``overview_columns``: what a map styles a feature by at that
    # scale. A district-wide view of the unit grids holds every grid at once (8,237 in Chaoyang's nine z11
    # tiles): the names and area codes took 36 % of those tiles' 843 kB, all of it decoded in the browser for
    # grids a few pixels wide. Cards are found by a lookup on the server, never from tile attributes.
    detail_zoom: int = 0
    overview_columns: tuple[str, ...] = ()

    def columns_at(self, z: int) -> tuple[str, ...]:
        """The attribute columns of the layer's zoom-``z`` tiles."""
        return self.overview_columns if z < self.detail_zoom else self.columns


_CURRENT_VERSION = current_version_sql("g.district_code")
_OWNERS = """LEFT JOIN LATERAL (
            SELECT max(p.code) FILTER (WHERE o.role = 'management') AS management,
                   max(p.name) FILTER (WHERE o.role = 'management') AS management_name,
                   max(p.code) FILTER (WHERE o.role = 'responsibility') AS responsibility,
                   max(p.name) FILTER (WHERE o.role = 'responsibility') AS responsibility_name,
                   max(p.code) FILTER (WHERE o.role = 'enforcement') AS enforcement,
                   max(p.name) FILTER (WHERE o.role = 'enforcement') AS enforcement_name,
                   max(p.code) FILTER (WHERE o.role = 'supervision') AS supervision_owner,
                   max(p.name) FILTER (WHERE o.role = 'supervision') AS supervision_owner_name
              FROM grid_ownership o JOIN parties p USING (party_id)
             WHERE o.district_code = g.district_code AND o.grid_kind = 'unit' AND o.grid_code = g.code
               AND o.valid @> now()) owner ON true"""
OWNER_COLUMNS = ("management", "management_name", "responsibility", "responsibility_name", "enforcement",
                 "enforcement_name", "supervision_owner", "supervision_owner_name")

# Each select names its table ``g``, yields the layer's columns and ``geom`` (storage CRS), and ends with
# ``{where}``: the envelope test on ``g.geom`` (so the GiST index is used) and the request's filters.
# Polygons are simplified to half a screen pixel (``:tolerance`` metres) before clipping.
LAYERS: dict[str, TileLayer] = {layer.name: layer for layer in (
    TileLayer("unit_grids", 10, ("code", "district", "street", "community", "supervision", "area_m2",
                                 *OWNER_COLUMNS), f"""
        SELECT g.code, g.district_code AS district, g.street_code AS street, g.community_code AS community,
               g.supervision_code AS supervision, round(g.area_m2) AS area_m2, owner.*,
               ST_SimplifyPreserveTopology(g.geom, :tolerance) AS geom
          FROM unit_grids g {_OWNERS}
         WHERE g.version_id = {_CURRENT_VERSION} {{where}}""", revision_of=("grids", "ownership"),
              detail_zoom=13, overview_columns=("code", "supervision", "management", "responsibility", "enforcement",
                                                "supervision_owner")),
    TileLayer("supervision_grids", 8, ("code", "district", "team", "street", "workload"), f"""
        SELECT g.code, g.district_code AS district, g.team_code AS team, g.street_code AS street,
               round(g.workload::numeric, 2)::float8 AS workload,
               ST_SimplifyPreserveTopology(g.geom, :tolerance) AS geom
          FROM supervision_grids g
         WHERE g.version_id = {_CURRENT_VERSION} {{where}}"""),
    TileLayer("components", 15, ("obj_id", "district", "class_code", "major", "class_name", "obj_name",
                                 "obj_state", "unit_grid", "synthetic"), """
        SELECT g.obj_id, g.district_code AS district, g.class_code, left(g.class_code, 2) AS major,
               t.name AS class_name, g.obj_name, g.obj_state, g.unit_grid_code AS unit_grid, g.synthetic, g.geom
          FROM components g
          LEFT JOIN taxonomy_classes t ON t.scheme = g.scheme AND t.kind = 'component' AND t.code = g.class_code
         WHERE g.valid_to IS NULL {where}""",
              filters=(("class_code", "g.class_code = :class_code"),), revision_of=("components",)),
    TileLayer("cases", 13, ("case_id", "district", "kind", "class_code", "class_name", "status", "synthetic",
                            "reported", "unit_grid"), """
        SELECT g.case_id, g.district_code AS district, g.kind, g.class_code, t.name AS class_name, g.status,
               g.synthetic, to_char(g.reported_at AT TIME ZONE (SELECT timezone FROM deployment),
                                'YYYY-MM-DD HH24:MI') AS reported,
               g.unit_grid_code AS unit_grid, g.geom
          FROM cases g
          LEFT JOIN taxonomy_classes t ON t.scheme = g.scheme AND t.kind = g.kind AND t.code = g.class_code
         WHERE g.geom IS NOT NULL {where}""",
              filters=(("status", "g.status = :status"), ("class_code", "g.class_code = :class_code"),
                       ("open", "g.status <> ALL(CAST(:open AS text[]))")),
              revision_of=("cases",), reader_scope=f"""(
                  (CAST(:scope_home AS text) IS NULL OR g.district_code = :scope_home)
              AND (CAST(:scope_all AS boolean)
                  OR (CAST(:scope_team AS text) IS NOT NULL AND g.supervision_code IN (
                       SELECT s.code FROM supervision_grids s WHERE s.district_code = g.district_code
                          AND s.team_code = :scope_team AND s.version_id = {_CURRENT_VERSION}))
                  OR (CAST(:scope_party AS text) IS NOT NULL AND g.district_code = :scope_district
                      AND g.attrs -> 'dispatched_to' ->> 'code' = :scope_party)))"""),
    # Frontage units (门前三包) valid today (the session's local day), from zoom 16: a frontage is a few metres of
    # pavement. ``synthetic`` and ``source`` let the map label seeded units as such.
    TileLayer("frontage_units", 16, ("unit_id", "district", "name", "kind", "party", "synthetic", "source"), """
        SELECT g.unit_id, g.district_code AS district, g.name, g.kind, p.code AS party, g.synthetic, g.source,
               g.geom
          FROM frontage_units g JOIN parties p ON p.district_code = g.district_code AND p.party_id = g.party_id
         WHERE g.valid_from <= CAST(now() AS date) AND (g.valid_to IS NULL OR g.valid_to > CAST(now() AS date))
               {where}""", revision_of=("frontage",), daily=True),
)}


def check_tile(z: int, x: int, y: int) -> None:
    """``InvalidInput`` unless z is 0–22 and x, y lie in the zoom's 2^z × 2^z grid."""
    if not 0 <= z <= MAX_ZOOM:
        raise InvalidInput(f"zoom {z} is outside 0–{MAX_ZOOM}", field="z")
    side = 1 << z
    if not (0 <= x < side and 0 <= y < side):
        raise InvalidInput(f"tile {x}/{y} does not exist at zoom {z} (0–{side - 1})", field="x" if x >= side else "y")


def layer(name: str) -> TileLayer:
    if name not in LAYERS:
        raise NotFound(f"no tile layer {name!r}; layers: {', '.join(LAYERS)}")
    return LAYERS[name]


def revision(conn: Connection, tile_layer: TileLayer, also: tuple[str, ...] = ()) -> str:
    """What the layer's tiles are made from now (see the module docstring), with the revisions named in
    ``also`` besides the layer's own; changes with every commit."""
    rows: list[tuple] = []
    if "grids" in tile_layer.revision_of or "grids" in also:
        rows += conn.execute(sa.text(
            f"""SELECT d.district_code, {VERSION_REVISION_COLUMNS}
                 FROM districts d
                 LEFT JOIN LATERAL {current_version_sql("d.district_code", "v.district_code, v.version_id, v.status")}
                           v ON true
                ORDER BY 1""")).all()
    counters = [name for name in (*tile_layer.revision_of, *also) if name != "grids"]
    if counters:
        rows += conn.execute(sa.text(
            "SELECT layer, district_code, revision FROM layer_revisions WHERE layer = ANY(:l) ORDER BY 1, 2"),
            {"l": counters}).all()
    if tile_layer.daily:
        rows.append(("day", conn.execute(sa.text("SELECT CAST(now() AS date)")).scalar_one()))
    rows.append(("layer", _definition(tile_layer)))
    return hashlib.sha1(repr([tuple(r) for r in rows]).encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=32)
def _definition(tile_layer: TileLayer) -> str:
    """A digest of how the layer's tiles are made (its query, columns per zoom, extent and buffer): part of the
    revision, so a tile stored or cached by an earlier release of the code is never served as this one's."""
    return hashlib.sha1(repr((tile_layer, EXTENT, BUFFER)).encode()).hexdigest()[:12]


def tile_lonlat_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """(west, south, east, north) in degrees of XYZ tile z/x/y."""
    n = 1 << z

    def lat(row: int) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / n))))

    return x / n * 360.0 - 180.0, lat(y + 1), (x + 1) / n * 360.0 - 180.0, lat(y)


@functools.lru_cache(maxsize=8)
def _area_of_use(srid: int) -> tuple[float, float, float, float] | None:
    aou = CRS.from_epsg(srid).area_of_use
    return (aou.west, aou.south, aou.east, aou.north) if aou else None


def _in_area_of_use(z: int, x: int, y: int, srid: int) -> bool:
    """Whether the tile meets the storage CRS's area of use: outside it nothing is stored, and projecting the
    tile's envelope into a Gauss–Krüger zone far from its meridian gives infinities."""
    area = _area_of_use(srid)
    if area is None:
        return True
    west, south, east, north = tile_lonlat_bounds(z, x, y)
    return west <= area[2] and east >= area[0] and south <= area[3] and north >= area[1]


def simplify_tolerance(z: int, y: int) -> float:
    """Half a screen pixel (256-pixel tiles) in ground metres at the latitude of tile row ``y`` of zoom ``z``."""
    lat = math.atan(math.sinh(math.pi * (1 - 2 * (y + 0.5) / (1 << z))))
    return 0.5 * 2 * math.pi * 6378137.0 / 256 / (1 << z) * math.cos(lat)


def make_tile(conn: Connection, tile_layer: TileLayer, z: int, x: int, y: int, srid: int,
              filters: dict[str, Any], scope: dict[str, Any] | None = None) -> bytes:
    """The MVT bytes of one tile (EPSG:3857 tile grid; rows in EPSG:``srid`` selected through the envelope).
    Empty bytes below the layer's ``minzoom``. ``scope``: the bound values of a restricted reader's scope
    (``scope_all``, ``scope_team``, ``scope_party``, ``scope_district``, ``scope_home``) for a layer with a
    ``reader_scope``; None: every row."""
    if scope is not None and tile_layer.reader_scope is None:
        raise ValueError(f"layer {tile_layer.name} is the same for every reader; it takes no scope")
    if z < tile_layer.minzoom or not _in_area_of_use(z, x, y, srid):
        return b""
    conditions = "".join(f" AND {sql}" for name, sql in tile_layer.filters if filters.get(name) is not None)
    if scope is not None:
        conditions += f" AND {tile_layer.reader_scope}"
    where = "AND g.geom && (SELECT stored FROM bounds)" + conditions
    columns = ", ".join(f"r.{name}" for name in tile_layer.columns_at(z))
    # Rows picked by the envelope in the storage CRS (the GiST index), clipped and encoded in web mercator;
    # only the clipped geometry reaches ST_AsMVT.
    sql = f"""
        WITH bounds AS (SELECT ST_TileEnvelope(:z, :x, :y) AS web,
                               ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => :margin), :srid) AS stored),
             rows AS ({tile_layer.select.format(where=where)})
        SELECT ST_AsMVT(tile, :name, :extent, 'geom') FROM (
            SELECT {columns}, ST_AsMVTGeom(ST_Transform(r.geom, 3857), bounds.web, :extent, :buffer, true) AS geom
              FROM rows r, bounds
        ) tile"""
    params = {"z": z, "x": x, "y": y, "margin": BUFFER / EXTENT, "srid": srid, "name": tile_layer.name,
              "extent": EXTENT, "buffer": BUFFER, "tolerance": simplify_tolerance(z, y),
              **{k: list(v) if isinstance(v, tuple) else v for k, v in filters.items() if v is not None}}
    if scope is not None:
        params.update({k: scope.get(k) for k in ("scope_all", "scope_team", "scope_party", "scope_district",
                                                 "scope_home")})
    return bytes(conn.execute(sa.text(sql), params).scalar_one() or b"")


class TileCache:
    """Least-recently-used bytes of tiles by key, at most ``max_bytes`` in all; thread-safe."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: tuple) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return data

    def put(self, key: tuple, data: bytes) -> None:
        if len(data) > self.max_bytes:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = data
            self._bytes += len(data)
            while self._bytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self._bytes -= len(old)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


CACHE = TileCache()

# The layers a publish warms (``spatial.tilewarm``) and whose tiles every process reads from ``tile_store`` on a
# memory miss: the same for every reader and without filters, so one stored tile serves every request for it.
STORED_LAYERS = ("unit_grids", "supervision_grids")


def stored_tile(conn: Connection, name: str, rev: str, z: int, x: int, y: int) -> bytes | None:
    """The warmed tile of layer ``name`` at revision ``rev`` (``revision``), or None when none was stored."""
    data = conn.execute(sa.text(
        "SELECT data FROM tile_store WHERE layer = :l AND revision = :r AND z = :z AND x = :x AND y = :y"),
        {"l": name, "r": rev, "z": z, "x": x, "y": y}).scalar_one_or_none()
    return None if data is None else bytes(data)


def store_tiles(conn: Connection, name: str, rev: str, made: list[tuple[int, int, int, bytes]]) -> None:
    """Keep tiles (z, x, y, MVT bytes) of layer ``name`` at revision ``rev`` for every process (a tile already
    stored under that key is the same tile: kept as it is)."""
    if made:
        conn.execute(sa.text(
            """INSERT INTO tile_store (layer, revision, z, x, y, data) VALUES (:l, :r, :z, :x, :y, :data)
               ON CONFLICT DO NOTHING"""),
            [{"l": name, "r": rev, "z": z, "x": x, "y": y, "data": data} for z, x, y, data in made])


def drop_stored_tiles(conn: Connection, name: str, keep: str) -> int:
    """Delete the stored tiles of layer ``name`` made at any revision but ``keep``: no key names them any more
    (a revision only moves forward). Returns how many went."""
    return conn.execute(sa.text("DELETE FROM tile_store WHERE layer = :l AND revision <> :r"),
                        {"l": name, "r": keep}).rowcount


def cached_tile(conn: Connection, database: str, name: str, z: int, x: int, y: int, srid: int,
                filters: dict[str, Any], cache: TileCache = CACHE, scope: dict[str, Any] | None = None
                ) -> tuple[bytes, str, bool]:
    """(tile bytes, cache key digest for an ETag, whether it came from the cache); ``scope`` as for
    ``make_tile``, part of the key."""
    check_tile(z, x, y)
    tile_layer = layer(name)
    also = ("grids",) if scope is not None and scope.get("scope_team") is not None else ()
    rev = revision(conn, tile_layer, also)
    key = (database, name, z, x, y, rev, tuple(sorted(filters.items())),
           None if scope is None else tuple(sorted(scope.items())))
    etag = hashlib.sha1(repr(key).encode()).hexdigest()[:20]
    data = cache.get(key)
    if data is not None:
        return data, etag, True
    if name in STORED_LAYERS and not filters and scope is None:
        data = stored_tile(conn, name, rev, z, x, y)  # warmed after a publish, maybe by another process
        if data is not None:
            cache.put(key, data)
            return data, etag, True
    data = make_tile(conn, tile_layer, z, x, y, srid, filters, scope)
    cache.put(key, data)
    return data, etag, False
