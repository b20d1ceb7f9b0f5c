"""Point -> unit grid (and its supervision grid, street, community): one engine for single points and batches.

Boundary rule: a point on the shared edge of several grids (or on a corner) belongs to the grid with the
smallest code among them, so the answer never depends on the order grids were stored in.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass

import numpy as np
import shapely
from rasterio import features
from rasterio.transform import Affine
from sqlalchemy.engine import Connection

from citygrid.gcpause import collection_paused
from citygrid.spatial import store

CELL_SIZE_M = 10.0
MAX_CELLS = 50_000_000  # 200 MB of int32; a larger extent gets coarser cells
AUTO_TABLE_POINTS = 20_000  # batches at least this large build the cell table first (a fraction of a second)
UNSURE = -2
_CACHE: dict[tuple, GridIndex] = {}


@dataclass
class CellTable:
    """A raster over the grids: each cell holds the index of the one grid that covers it entirely, -1 when it
    touches no grid, or ``UNSURE`` when a grid boundary crosses it (the exact test decides there). Deployment
    CRS, square cells of ``size`` metres, row 0 at ``y0`` (rows go north).

    Written here rather than using a spatial join because the question "which polygon of a partition holds
    this point" is answered for most points by one array lookup; only points in boundary cells need the
    point-in-polygon test. ``make bench ONLY=geocode_1m`` measures it against geopandas.sjoin.
    """

    x0: float
    y0: float
    size: float
    table: np.ndarray  # int32, shape (rows, cols)

    @classmethod
    def build(cls, polygons: np.ndarray, size: float = CELL_SIZE_M) -> CellTable:
        """Rasterise ``polygons`` (deployment CRS) by cell centre with GDAL (rasterio), then mark every cell a
        boundary crosses ``UNSURE``.

        The boundary cells are found exactly, without a line-drawing algorithm: boundaries are densified to
        points at most 0.4 cell apart, and a straight piece between two consecutive points lies within their
        bounding box, which spans at most 2 × 2 cells; marking those cells marks every cell the piece touches.
        A cell no boundary crosses lies wholly in the grid holding its centre (or in none), so its rasterised
        value is exact.
        """
        x0, y0, x1, y1 = shapely.total_bounds(polygons)
        while (np.ceil((x1 - x0) / size) + 1) * (np.ceil((y1 - y0) / size) + 1) > MAX_CELLS:
            size *= 2
        cols, rows = int(np.ceil((x1 - x0) / size)) + 1, int(np.ceil((y1 - y0) / size)) + 1
        table = features.rasterize(((poly, index) for index, poly in enumerate(polygons)), out_shape=(rows, cols),
                                   transform=Affine(size, 0, x0, 0, size, y0), fill=-1, dtype="int32",
                                   all_touched=False)
        lines = shapely.get_parts(shapely.get_parts(shapely.boundary(polygons)))
        coords, line = shapely.get_coordinates(shapely.segmentize(lines, size * 0.4), return_index=True)
        same = line[1:] == line[:-1]
        a, b = coords[:-1][same], coords[1:][same]
        slack = 1e-6 * size  # so rounding in the densified points cannot leave out a cell the line touches
        low, high = np.minimum(a, b) - slack, np.maximum(a, b) + slack
        col_lo, col_hi = ((low[:, 0] - x0) // size).astype(np.int64), ((high[:, 0] - x0) // size).astype(np.int64)
        row_lo, row_hi = ((low[:, 1] - y0) // size).astype(np.int64), ((high[:, 1] - y0) // size).astype(np.int64)
        for row in (row_lo, row_hi):
            for col in (col_lo, col_hi):
                inside = (row >= 0) & (row < rows) & (col >= 0) & (col < cols)
                table[row[inside], col[inside]] = UNSURE
        return cls(x0=float(x0), y0=float(y0), size=size, table=table)

    def to_blob(self) -> bytes:
        """The cells as zlib-compressed little-endian int32, row 0 first (runs of one grid compress well:
        about 1 MB for a district of 8,000 grids at 10 m)."""
        return zlib.compress(self.table.astype("<i4", copy=False).tobytes(), 1)

    @classmethod
    def from_blob(cls, x0: float, y0: float, size: float, n_rows: int, n_cols: int, blob: bytes) -> CellTable:
        """Inverse of ``to_blob``; raises ValueError when the blob does not hold ``n_rows`` × ``n_cols`` cells."""
        raw = zlib.decompress(blob)
        if len(raw) != 4 * n_rows * n_cols:
            raise ValueError(f"cell table holds {len(raw) // 4} cells, not {n_rows} × {n_cols}")
        table = np.frombuffer(raw, dtype="<i4").astype(np.int32, copy=False).reshape(n_rows, n_cols)
        return cls(x0=float(x0), y0=float(y0), size=float(size), table=table)

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
    district: str = ""
    digest: str = ""  # of the codes and geometry, in code order: what a stored cell table was built from

    @classmethod
    def for_district(cls, conn: Connection, district: str) -> GridIndex:
        """The district's current grid version (newest published, else newest); empty if it has none."""
        version, rows = store.current_unit_grids(conn, district)
        rows = sorted(rows, key=lambda r: r["code"])
        wkbs = [bytes(r["wkb"]) for r in rows]
        geoms = shapely.from_wkb(np.array(wkbs, dtype=object))
        digest = hashlib.blake2b(digest_size=16)
        for r, wkb in zip(rows, wkbs, strict=True):
            digest.update(r["code"].encode() + b"\0" + wkb)
        return cls(
            district=district,
            digest=digest.hexdigest(),
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
        """Build the cell table (a fraction of a second for a district; kept for later batches)."""
        if self.cells is None and len(self) > 0:
            self.cells = CellTable.build(self.tree.geometries, size)
        return self

    def with_stored_table(self, conn: Connection, size: float = CELL_SIZE_M) -> GridIndex:
        """The cell table stored for exactly these grids (``grid_cell_tables``), else built now and stored in
        the caller's transaction; for an index that will place many points (a census import)."""
        if self.cells is not None or len(self) == 0:
            return self
        row = store.stored_cell_table(conn, self.district, self.digest, size)
        if row is not None:
            try:
                self.cells = CellTable.from_blob(row["x0"], row["y0"], size, row["n_rows"], row["n_cols"],
                                                 row["cells"])
                return self
            except (ValueError, zlib.error):
                pass  # unreadable: built again and replaced below
        self.cells = CellTable.build(self.tree.geometries, size)
        if self.cells.size == size:  # not coarsened for a huge extent (MAX_CELLS): stored under the size asked
            rows, cols = self.cells.table.shape
            store.save_cell_table(conn, self.district, self.digest, size, self.cells.x0, self.cells.y0, rows, cols,
                                  self.cells.to_blob())
        return self

    def __len__(self) -> int:
        return len(self.codes)

    def assign(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Row index of the unit grid covering each point (x, y in the deployment CRS); -1 outside every grid.

        With a cell table (``with_table``; built on the first batch of ``AUTO_TABLE_POINTS`` or more), points
        in cells that lie wholly inside one grid are answered by a lookup and the rest by ``assign_exact``;
        without one, all by ``assign_exact``. The paths agree (tested).
        """
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        if len(self) == 0 or len(x) == 0:
            return np.full(len(x), -1, dtype=np.int64)
        if self.cells is None and len(x) >= AUTO_TABLE_POINTS:
            self.with_table()
        if self.cells is None:
            return self.assign_exact(x, y)
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
        # The point geometries are made and dropped with the collector paused: for 100,000 points it
        # otherwise ran a full collection, 0.1 s of the 0.13 s the tree query takes in all.
        with collection_paused():
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
