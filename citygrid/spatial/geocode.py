"""Point -> unit grid (and its supervision grid, street, community): one engine for single points and batches.

Boundary rule: a point on the shared edge of several grids (or on a corner) belongs to the grid with the
smallest code among them, so the answer never depends on the order grids were stored in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from sqlalchemy.engine import Connection

from citygrid.spatial import store

CELL_SIZE_M = 10.0
# Below this many points the exact path is used: building the cell table (seconds) only pays off for batches.
TABLE_MIN_POINTS = 20_000
UNSURE = -2
_CACHE: dict[tuple, GridIndex] = {}


@dataclass
class CellTable:
    """A raster over the grids: each cell holds the index of the one grid that covers it entirely, -1 when it
    touches no grid, or ``UNSURE`` (it straddles a boundary). Deployment CRS, square cells of ``size`` metres.

    Written here rather than using a spatial join because the question "which polygon of a partition holds
    this point" is answered for most points by one array lookup; only points in boundary cells need the
    point-in-polygon test. ``make bench ONLY=geocode_1m`` measures it against geopandas.sjoin.
    """

    x0: float
    y0: float
    size: float
    table: np.ndarray  # int32, shape (rows, cols)

    @classmethod
    def build(cls, polygons: np.ndarray, size: float) -> CellTable:
        x0, y0, x1, y1 = shapely.total_bounds(polygons)
        cols, rows = int(np.ceil((x1 - x0) / size)) + 1, int(np.ceil((y1 - y0) / size)) + 1
        table = np.full((rows, cols), UNSURE, dtype=np.int32)
        # Cells that no grid comes near are outside: their centre is more than a cell diagonal from every grid.
        union = shapely.union_all(polygons).buffer(size * 0.75)
        shapely.prepare(union)
        cx = x0 + (np.arange(cols) + 0.5) * size
        cy = y0 + (np.arange(rows) + 0.5) * size
        gx, gy = np.meshgrid(cx, cy)
        table[~shapely.contains_xy(union, gx, gy)] = -1
        for index, poly in enumerate(polygons):
            bx0, by0, bx1, by1 = poly.bounds
            c0, c1 = int((bx0 - x0) // size), int((bx1 - x0) // size) + 1
            r0, r1 = int((by0 - y0) // size), int((by1 - y0) // size) + 1
            sub_x, sub_y = gx[r0:r1, c0:c1], gy[r0:r1, c0:c1]
            inside = shapely.contains_xy(poly, sub_x, sub_y)
            if not inside.any():
                continue
            rr, cc = np.nonzero(inside)
            half = size / 2
            boxes = shapely.box(sub_x[rr, cc] - half, sub_y[rr, cc] - half, sub_x[rr, cc] + half,
                                sub_y[rr, cc] + half)
            covered = shapely.covers(poly, boxes)
            table[rr[covered] + r0, cc[covered] + c0] = index
        return cls(x0=float(x0), y0=float(y0), size=size, table=table)

    def lookup(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Grid index per point, -1 outside, ``UNSURE`` where the exact test must decide (boundary cells,
        and points lying exactly on a cell edge, where a covered cell may share an edge with a neighbour)."""
        fx, fy = (x - self.x0) / self.size, (y - self.y0) / self.size
        finite = np.isfinite(fx) & np.isfinite(fy) & (np.abs(fx) < 1e9) & (np.abs(fy) < 1e9)
        fx, fy = np.where(finite, fx, -1.0), np.where(finite, fy, -1.0)
        col, row = np.floor(fx).astype(np.int64), np.floor(fy).astype(np.int64)
        rows, cols = self.table.shape
        valid = (col >= 0) & (col < cols) & (row >= 0) & (row < rows) & finite
        out = np.full(len(x), -1, dtype=np.int64)
        out[valid] = self.table[row[valid], col[valid]]
        on_edge = valid & ((fx == col) | (fy == row))
        out[on_edge & (out >= 0)] = UNSURE
        return out
_CACHE_SIZE = 8


@dataclass
class GridIndex:
    """Unit grids of one grid version for point lookups. Geometry in the deployment CRS.

    Rows are sorted by code, so "smallest code" is "smallest row index".
    """

    version: int | None
    codes: np.ndarray
    supervision_codes: np.ndarray
    street_codes: np.ndarray
    community_codes: np.ndarray
    tree: shapely.STRtree
    cells: CellTable | None = None

    @classmethod
    def for_district(cls, conn: Connection, district: str) -> GridIndex:
        """The district's current grid version (newest published, else newest); empty if it has none."""
        version, rows = store.current_unit_grids(conn, district)
        rows = sorted(rows, key=lambda r: r["code"])
        geoms = np.array([shapely.from_wkb(r["wkb"]) for r in rows], dtype=object)
        return cls(
            version=version,
            codes=np.array([r["code"] for r in rows], dtype=object),
            supervision_codes=np.array([r["supervision_code"] for r in rows], dtype=object),
            street_codes=np.array([r["street_code"] for r in rows], dtype=object),
            community_codes=np.array([r["community_code"] for r in rows], dtype=object),
            tree=shapely.STRtree(geoms),
        )

    @classmethod
    def cached(cls, conn: Connection, district: str) -> GridIndex:
        """``for_district``, reused while the district's current grid version is unchanged (per database)."""
        key = (conn.engine.url.render_as_string(hide_password=True), district, store.grid_revision(conn, district))
        index = _CACHE.get(key)
        if index is None:
            index = cls.for_district(conn, district)
            if len(_CACHE) >= _CACHE_SIZE:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = index
        return index

    def __len__(self) -> int:
        return len(self.codes)

    def assign(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Row index of the unit grid covering each point (x, y in the deployment CRS); -1 outside every grid.

        Uses the cell lookup table (``CellTable``) for points in cells that lie wholly inside one grid and the
        exact test (``assign_exact``) for the rest; the two agree (tested), the table is just faster.
        """
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        if len(self) == 0 or len(x) == 0:
            return np.full(len(x), -1, dtype=np.int64)
        if self.cells is None:
            if len(x) < TABLE_MIN_POINTS:
                return self.assign_exact(x, y)
            self.cells = CellTable.build(self.tree.geometries, CELL_SIZE_M)
        out = self.cells.lookup(x, y)
        unsure = out == UNSURE
        if unsure.any():
            out[unsure] = self.assign_exact(x[unsure], y[unsure])
        return out

    def assign_exact(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The exact path: STRtree candidates, point-in-polygon, smallest code on shared boundaries."""
        out = np.full(len(x), -1, dtype=np.int64)
        if len(self) == 0 or len(x) == 0:
            return out
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        # Bounding-box candidates, then point-in-polygon on prepared polygons (faster than a predicate query).
        point_idx, grid_idx = self.tree.query(shapely.points(x, y))
        geoms = self.tree.geometries
        shapely.prepare(geoms)
        inside = shapely.intersects_xy(geoms[grid_idx], x[point_idx], y[point_idx])
        point_idx, grid_idx = point_idx[inside], grid_idx[inside]
        if len(point_idx):
            order = np.lexsort((grid_idx, point_idx))  # per point, smallest grid index (= code) first
            point_idx, grid_idx = point_idx[order], grid_idx[order]
            first = np.r_[True, point_idx[1:] != point_idx[:-1]]
            out[point_idx[first]] = grid_idx[first]
        return out
