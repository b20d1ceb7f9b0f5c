"""Road-bounded blocks: choose the bounding road classes, close the gaps of a fragmented extract, node,
polygonise and keep the faces inside the district. Geometry in the deployment CRS (metres).
"""

from __future__ import annotations

import warnings

import geopandas as gpd
import momepy
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

# OSM highway values that bound blocks by default. Service ways, construction, raceways, paths and ramps
# (*_link) are left out: they cut blocks into strips that are not management units.
DEFAULT_ROAD_CLASSES = (
    "motorway", "trunk", "primary", "secondary", "tertiary", "unclassified", "residential", "living_street", "road",
)
DEFAULT_EXTEND_M = 200.0


def choose_roads(geoms: np.ndarray, classes: np.ndarray, wanted: tuple[str, ...]) -> np.ndarray:
    """The road geometries whose class is in ``wanted``."""
    keep = np.isin(np.asarray(classes, dtype=object), list(wanted))
    return np.asarray(geoms, dtype=object)[keep]


def close_gaps(roads: np.ndarray, tolerance_m: float) -> np.ndarray:
    """Extend dangling ends to the nearest road within ``tolerance_m`` (momepy.extend_lines)."""
    if len(roads) == 0 or tolerance_m <= 0:
        return roads
    frame = gpd.GeoDataFrame(geometry=list(roads))
    with warnings.catch_warnings():  # momepy 0.11 announces the move to neatnet; the function is the same
        warnings.simplefilter("ignore", FutureWarning)
        extended = momepy.extend_lines(frame, tolerance=tolerance_m)
    return np.asarray(extended.geometry.values, dtype=object)


def road_faces(roads: np.ndarray, boundary: BaseGeometry, extra_lines: list[BaseGeometry] | None = None,
               extend_m: float = DEFAULT_EXTEND_M) -> list[BaseGeometry]:
    """Faces of the planar graph of roads + district boundary (+ real area boundaries) inside the district.

    Parameters
    ----------
    roads : LineStrings (deployment CRS).
    boundary : district (Multi)Polygon (deployment CRS).
    extra_lines : lines the faces must also follow (boundaries of real street/community polygons).
    extend_m : gap-closing tolerance.

    Returns polygons that partition ``boundary`` (up to floating-point noise).
    """
    edge = list(shapely.get_parts(shapely.boundary(boundary)))
    # The district edge is part of the network dangling ends may be extended to.
    lines = list(close_gaps(np.concatenate([np.asarray(roads, dtype=object), np.asarray(edge, dtype=object)]),
                            extend_m))
    for extra in extra_lines or []:
        lines.extend(shapely.get_parts(extra))
    valid = [g for g in lines if g is not None and not g.is_empty]
    try:
        noded = shapely.node(shapely.geometrycollections(valid))
    except shapely.errors.GEOSException:
        # Floating-point noding can fail to converge on near-coincident lines; snap-rounding to a 1 mm grid
        # (OverlayNG with a fixed precision) is robust.
        noded = shapely.union_all(valid, grid_size=0.001)
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    if len(faces) == 0:
        return [boundary]
    inside = shapely.contains(boundary, shapely.point_on_surface(faces))
    return list(faces[inside])
