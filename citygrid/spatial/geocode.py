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

_CACHE: dict[tuple, GridIndex] = {}
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
        """Row index of the unit grid covering each point (x, y in the deployment CRS); -1 outside every grid."""
        out = np.full(len(x), -1, dtype=np.int64)
        if len(self) == 0 or len(x) == 0:
            return out
        points = shapely.points(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
        point_idx, grid_idx = self.tree.query(points, predicate="intersects")
        if len(point_idx):
            order = np.lexsort((grid_idx, point_idx))  # per point, smallest grid index (= code) first
            point_idx, grid_idx = point_idx[order], grid_idx[order]
            first = np.r_[True, point_idx[1:] != point_idx[:-1]]
            out[point_idx[first]] = grid_idx[first]
        return out
