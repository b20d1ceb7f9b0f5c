"""Quality measures of a grid version. Geometry in the deployment CRS (metres)."""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

ALIGNMENT_TOLERANCE_M = 30.0
ALIGNMENT_STEP_M = 5.0


def coverage(polygons: list[BaseGeometry], boundary: BaseGeometry) -> dict[str, float]:
    """``coverage_gap_ratio`` = |district area − union area| / district area, and ``overlap_area_m2`` =
    Σ grid areas − union area (0 when the grids do not overlap), plus the district area."""
    union = shapely.union_all(polygons)
    total = float(np.sum(shapely.area(np.asarray(polygons, dtype=object))))
    gap = abs(boundary.area - union.area) + union.difference(boundary).area
    return {
        "coverage_gap_ratio": float(gap / boundary.area),
        "overlap_area_m2": float(max(total - union.area, 0.0)),
        "district_area_m2": float(boundary.area),
    }


def road_alignment(roads: np.ndarray, polygons: list[BaseGeometry], boundary: BaseGeometry,
                   tolerance_m: float = ALIGNMENT_TOLERANCE_M, step_m: float = ALIGNMENT_STEP_M) -> float | None:
    """Share of the roads' length inside the district that lies within ``tolerance_m`` of a unit-grid boundary.

    Roads are sampled every ``step_m`` metres; each sample stands for ``step_m`` of road. None when there are
    no roads.
    """
    if roads is None or len(roads) == 0:
        return None
    inside = [g for g in shapely.intersection(np.asarray(roads, dtype=object), boundary) if not g.is_empty]
    samples = []
    for line in inside:
        for part in shapely.get_parts(line):
            if part.geom_type != "LineString" or part.length == 0:
                continue
            distances = np.arange(step_m / 2, part.length, step_m)
            if len(distances) == 0:
                distances = np.array([part.length / 2])
            samples.append(shapely.line_interpolate_point(part, distances))
    if not samples:
        return None
    points = np.concatenate(samples)
    edges = shapely.boundary(np.asarray(polygons, dtype=object))
    hits = shapely.STRtree(edges).query(points, predicate="dwithin", distance=tolerance_m)
    aligned = np.zeros(len(points), dtype=bool)
    aligned[hits[0]] = True
    return float(aligned.mean())
