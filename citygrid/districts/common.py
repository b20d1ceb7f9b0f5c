"""What the district, area and line importers share: finding a column, reading a cell as text, repairing a polygon."""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from citygrid.errors import InvalidInput

MAX_AREA_OUTSIDE_M = 50.0  # a point or polygon may stray this far outside the district boundary


def column(frame_columns: list[str], given: str | None, candidates: tuple[str, ...], what: str) -> str | None:
    """The column to read: ``given`` (which must exist, else ``InvalidInput`` on field ``what``), or the first of
    ``candidates`` the file has, compared without case; ``None`` when none is there."""
    if given:
        if given not in frame_columns:
            raise InvalidInput(f"no column {given!r} (columns: {', '.join(frame_columns)})", field=what)
        return given
    lower = {c.lower(): c for c in frame_columns}
    return next((lower[c] for c in candidates if c in lower), None)


def text(value: Any) -> str:
    """A cell as stripped text: empty for a missing value, ``110105`` (not ``110105.0``) for a whole float."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def valid_polygonal(geom: BaseGeometry) -> tuple[BaseGeometry, bool]:
    """Return a valid (Multi)Polygon for ``geom`` and whether it had to be repaired (any CRS; it is kept)."""
    if geom.is_valid:
        return geom, False
    fixed = shapely.make_valid(geom)
    parts = [g for g in shapely.get_parts(fixed) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts), True
