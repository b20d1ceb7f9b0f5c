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
    # Candidate grids of each UNSURE cell, CSR-style: cells (sorted flat ids), starts, grid indexes.
    cand_cells: np.ndarray | None = None
    cand_starts: np.ndarray | None = None
    cand_grids: np.ndarray | None = None

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
        out = cls(x0=float(x0), y0=float(y0), size=size, table=table)
        out._candidates(polygons)
        return out

    def _candidates(self, polygons: np.ndarray) -> None:
        """For every UNSURE cell, the grids whose boundary passes within one cell of it.

        Boundaries are sampled every half cell, so any cell a boundary touches is next to (3×3) a cell holding
        a sample. A point in an UNSURE cell lies in a grid whose boundary crosses the cell (else the cell
        would be covered by that grid), so these candidates always include the answer.
        """
        rows, cols = self.table.shape
        dense = shapely.segmentize(shapely.boundary(polygons), self.size / 2)
        coords, owner = shapely.get_coordinates(dense, return_index=True)
        col = np.clip(((coords[:, 0] - self.x0) // self.size).astype(np.int64), 0, cols - 1)
        row = np.clip(((coords[:, 1] - self.y0) // self.size).astype(np.int64), 0, rows - 1)
        n = np.int64(len(polygons))
        keys = np.unique((row * cols + col) * n + owner)  # (cell, grid) pairs as one sortable int64
        cell, grid = keys // n, keys % n
        spread = []
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                r, c = cell // cols + dr, cell % cols + dc
                ok = (r >= 0) & (r < rows) & (c >= 0) & (c < cols)
                spread.append((r[ok] * cols + c[ok]) * n + grid[ok])
        keys = np.unique(np.concatenate(spread))
        cell, grid = keys // n, keys % n
        keep = self.table.ravel()[cell] == UNSURE
        cell, grid = cell[keep], grid[keep]
        cells, starts = np.unique(cell, return_index=True)
        self.cand_cells, self.cand_starts, self.cand_grids = cells, np.append(starts, len(cell)), grid

    def resolve(self, x: np.ndarray, y: np.ndarray, polygons: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grid index (smallest among those covering) for points in UNSURE cells, testing only the cell's
        candidates, and a mask of the points this could answer (the others — points on the edge of a
        covered cell — are left to the exact path)."""
        if self.cand_cells is None or len(self.cand_cells) == 0:
            return np.full(len(x), -1, dtype=np.int64), np.zeros(len(x), dtype=bool)
        cols = self.table.shape[1]
        cell = np.floor((y - self.y0) / self.size).astype(np.int64) * cols + \
            np.floor((x - self.x0) / self.size).astype(np.int64)
        slot = np.searchsorted(self.cand_cells, cell)
        slot = np.minimum(slot, len(self.cand_cells) - 1)
        known = self.cand_cells[slot] == cell
        out = np.full(len(x), -1, dtype=np.int64)
        if not known.any():
            return out, known
        pts = np.flatnonzero(known)
        begin, end = self.cand_starts[slot[pts]], self.cand_starts[slot[pts] + 1]
        counts = end - begin
        point_idx = np.repeat(pts, counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        grid_idx = self.cand_grids[np.repeat(begin, counts) + offsets]
        hit = shapely.intersects_xy(polygons[grid_idx], x[point_idx], y[point_idx])
        point_idx, grid_idx = point_idx[hit], grid_idx[hit]
        order = np.lexsort((grid_idx, point_idx))
        point_idx, grid_idx = point_idx[order], grid_idx[order]
        first = np.r_[True, point_idx[1:] != point_idx[:-1]] if len(point_idx) else np.zeros(0, dtype=bool)
        out[point_idx[first]] = grid_idx[first]
        return out, known

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

    def with_table(self, size: float = CELL_SIZE_M) -> GridIndex:
        """Build the cell table (seconds; worth it when many batches will be assigned with this index)."""
        if self.cells is None and len(self) > 0:
            self.cells = CellTable.build(self.tree.geometries, size)
        return self

    def __len__(self) -> int:
        return len(self.codes)

    def assign(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Row index of the unit grid covering each point (x, y in the deployment CRS); -1 outside every grid.

        With a cell table (``with_table``), points in cells that lie wholly inside one grid are answered by a
        lookup and the rest by testing the cell's candidate grids; without one, by ``assign_exact``. The paths
        agree (tested); the table is just faster for repeated large batches.
        """
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        if len(self) == 0 or len(x) == 0:
            return np.full(len(x), -1, dtype=np.int64)
        if self.cells is None:
            return self.assign_exact(x, y)
        out = self.cells.lookup(x, y)
        unsure = out == UNSURE
        if unsure.any():
            geoms = self.tree.geometries
            shapely.prepare(geoms)
            ux, uy = x[unsure], y[unsure]
            resolved, known = self.cells.resolve(ux, uy, geoms)
            if not known.all():
                resolved[~known] = self.assign_exact(ux[~known], uy[~known])
            out[unsure] = resolved
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
