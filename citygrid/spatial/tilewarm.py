"""Warming the grid layers' tiles after a publish, so nobody waits for cold tiles after a change (#23).

A publish changes the key of every grid tile (``tiles.revision``). Right after it commits, the unit-grid and
supervision-grid tiles of the published district at zooms 10–15 are made once, in the background, and kept in
``tile_store`` under the new key, where every server process finds them on a memory miss
(``tiles.cached_tile``). The publish never waits for it: the HTTP route starts a daemon thread after its commit
(``start_in_background``), the CLI warms after its commit (``warm``).

Bounded: only tiles that meet the district's outline are made (a tile of its bounding box outside the outline
holds nothing of it), empty tiles are not stored, and at most ``MAX_TILES`` per layer: the deepest zooms are
left out first when a district is bigger than that (``plan`` counts the tiles per zoom and says which were
left out). Chaoyang (about 470 km²) has 879 such tiles per layer at z10–z15, 623 of them at z15. A warm
stops when the layer's revision moves on under it (another commit): its tiles would be for a key no request
names any more.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from sqlalchemy.engine import Connection, Engine

from citygrid.spatial import crs, tiles
from citygrid.spatial.boundaries import district_boundary
from citygrid.spatial.db import deployment_srid

ZOOMS = tuple(range(10, 16))
MAX_TILES = 4000  # per layer; Chaoyang needs 879
BATCH = 50  # tiles made per transaction of the warm


@dataclass
class WarmPlan:
    """The tiles to warm for one district: per zoom, the (x, y) of the tiles meeting its outline."""

    district: str
    layers: tuple[str, ...]
    tiles: dict[int, list[tuple[int, int]]]
    left_out: dict[int, int] = field(default_factory=dict)  # zoom -> tiles not warmed (over MAX_TILES)

    def count(self) -> int:
        """Tiles to make per layer."""
        return sum(len(v) for v in self.tiles.values())

    def summary(self) -> dict[str, Any]:
        """What the warm will do, for the publish's answer."""
        return {"district": self.district, "layers": list(self.layers), "zooms": sorted(self.tiles),
                "tiles_per_layer": self.count(), "per_zoom": {str(z): len(v) for z, v in sorted(self.tiles.items())},
                "left_out_per_zoom": {str(z): n for z, n in sorted(self.left_out.items())}}


def _tile_range(west: float, south: float, east: float, north: float, z: int) -> tuple[range, range]:
    """Columns and rows of the XYZ tiles of zoom ``z`` meeting a lon/lat box (EPSG:4326 degrees)."""
    n = 1 << z

    def col(lon: float) -> int:
        return min(n - 1, max(0, int((lon + 180.0) / 360.0 * n)))

    def row(lat: float) -> int:
        lat = max(min(lat, 85.0511), -85.0511)
        return min(n - 1, max(0, int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)))

    return range(col(west), col(east) + 1), range(row(north), row(south) + 1)


def tiles_meeting(outline: Any, z: int) -> list[tuple[int, int]]:
    """(x, y) of the zoom-``z`` tiles that meet ``outline`` (a shapely (Multi)Polygon in EPSG:4326)."""
    xs, ys = _tile_range(*outline.bounds, z)
    cells = [(x, y) for x in xs for y in ys]
    boxes = np.array([shapely.box(*tiles.tile_lonlat_bounds(z, x, y)) for x, y in cells], dtype=object)
    shapely.prepare(outline)
    hits = shapely.intersects(outline, boxes) if len(boxes) else np.zeros(0, dtype=bool)
    return [cell for cell, hit in zip(cells, hits, strict=True) if hit]


def plan(conn: Connection, district: str, *, zooms: tuple[int, ...] = ZOOMS, max_tiles: int = MAX_TILES,
         layers: tuple[str, ...] = tiles.STORED_LAYERS) -> WarmPlan:
    """The tiles of ``district`` to warm at ``zooms``: those meeting its outline (read in the storage CRS,
    tested in EPSG:4326), shallow zooms first, at most ``max_tiles`` per layer (deeper zooms left out whole)."""
    outline = crs.to_lonlat(np.array([district_boundary(conn, district)], dtype=object), deployment_srid(conn))[0]
    chosen: dict[int, list[tuple[int, int]]] = {}
    left_out: dict[int, int] = {}
    total = 0
    for z in sorted(zooms):
        cells = tiles_meeting(outline, z)
        if left_out or total + len(cells) > max_tiles:
            left_out[z] = len(cells)
            continue
        chosen[z] = cells
        total += len(cells)
    return WarmPlan(district, layers, chosen, left_out)


def warm(connect: Any, warm_plan: WarmPlan, *, database: str = "") -> dict[str, Any]:
    """Make the planned tiles and keep them in ``tile_store`` (and this process's memory cache).

    Parameters
    ----------
    connect : a callable returning a context manager that yields a connection in a transaction committed on
        exit (``engine.begin``); one transaction per ``BATCH`` tiles, so serving processes see the tiles as
        they are made.
    warm_plan : from ``plan``.
    database : the database's name, as the memory cache keys it (``tiles.cached_tile``).

    Returns
    -------
    Per layer: ``stored`` (tiles holding something), ``empty``, ``bytes``, ``seconds``, and ``stopped`` (None,
    or why it stopped early: the layer changed again under it).
    """
    done: dict[str, Any] = {}
    for name in warm_plan.layers:
        done[name] = _warm_layer(connect, warm_plan, name, database)
    return done


def _warm_layer(connect: Any, warm_plan: WarmPlan, name: str, database: str) -> dict[str, Any]:
    """Warm one layer (see ``warm``)."""
    layer = tiles.layer(name)
    started = time.perf_counter()
    with connect() as conn:
        rev = tiles.revision(conn, layer)
        srid = deployment_srid(conn)
        tiles.drop_stored_tiles(conn, name, rev)
    report = {"stored": 0, "empty": 0, "bytes": 0, "seconds": 0.0, "stopped": None}
    cells = [(z, x, y) for z, xy in sorted(warm_plan.tiles.items()) for x, y in xy]
    for start in range(0, len(cells), BATCH):
        with connect() as conn:
            if tiles.revision(conn, layer) != rev:
                report["stopped"] = "the layer changed again while it was warmed"
                break
            made = [(z, x, y, tiles.make_tile(conn, layer, z, x, y, srid, {}))
                    for z, x, y in cells[start:start + BATCH]]
            kept = [m for m in made if m[3]]
            tiles.store_tiles(conn, name, rev, kept)
        for z, x, y, data in kept:
            tiles.CACHE.put((database, name, z, x, y, rev, (), None), data)
        report["stored"] += len(kept)
        report["empty"] += len(made) - len(kept)
        report["bytes"] += sum(len(m[3]) for m in kept)
    report["seconds"] = round(time.perf_counter() - started, 2)
    return report


# Warms running in this process (by district), so a second publish of a district waits for none and tests can
# wait for the one they started.
_RUNNING: dict[str, threading.Thread] = {}
_LOCK = threading.Lock()
LAST: dict[str, dict[str, Any]] = {}  # district -> the last finished warm's report (or its error)


def start_in_background(engine: Engine, warm_plan: WarmPlan, *, database: str = "") -> threading.Thread:
    """Warm on a daemon thread with its own connections from ``engine`` (call after the publish committed);
    the publish's answer does not wait for it. Its report lands in ``LAST[district]``."""

    def target() -> None:
        try:
            LAST[warm_plan.district] = warm(engine.begin, warm_plan, database=database)
        except Exception as exc:  # a warm is an optimisation: a failure leaves tiles to be made on request
            LAST[warm_plan.district] = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            with _LOCK:
                _RUNNING.pop(warm_plan.district, None)

    thread = threading.Thread(target=target, name=f"tile-warm-{warm_plan.district}", daemon=True)
    with _LOCK:
        _RUNNING[warm_plan.district] = thread
    thread.start()
    return thread


def wait(district: str, timeout: float = 300.0) -> dict[str, Any] | None:
    """Wait for this process's warm of ``district`` (if one runs) and return the last report."""
    with _LOCK:
        thread = _RUNNING.get(district)
    if thread is not None:
        with contextlib.suppress(RuntimeError):
            thread.join(timeout)
    return LAST.get(district)
