"""Pure polygon operations for building unit grids. All geometry is in one projected CRS in metres
(the deployment CRS, e.g. EPSG:4548); nothing here knows about the database.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from scipy.spatial import cKDTree
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

# Points per requested part when sampling a polygon for k-means: enough for centroidal cells to even out.
SAMPLES_PER_PART = 60
MIN_SHARED_EDGE_M = 0.05


def polsby_popper(geoms: np.ndarray) -> np.ndarray:
    """Compactness 4πA/P² of each polygon (1 for a circle, → 0 for a strip)."""
    area = shapely.area(geoms)
    perimeter = shapely.length(geoms)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(perimeter > 0, 4 * math.pi * area / perimeter**2, 0.0)


def polygon_parts(geom: BaseGeometry) -> list[Polygon]:
    """The non-empty Polygons of any geometry (collections and multi-parts flattened)."""
    parts: list[Polygon] = []
    for part in shapely.get_parts(geom):
        if part.geom_type == "Polygon" and not part.is_empty:
            parts.append(part)
        elif part.geom_type in ("MultiPolygon", "GeometryCollection"):
            parts.extend(polygon_parts(part))
    return parts


def shared_edge_lengths(target: Polygon, neighbours: np.ndarray) -> np.ndarray:
    """Length of boundary ``target`` shares with each of ``neighbours`` (0 where they only touch at points)."""
    if len(neighbours) == 0:
        return np.zeros(0)
    lengths = shapely.length(shapely.intersection(target.boundary, shapely.boundary(neighbours)))
    if lengths.max() < MIN_SHARED_EDGE_M:
        # Edges that coincide only up to floating-point noise: measure what lies within a few centimetres.
        near_edge = target.boundary.buffer(MIN_SHARED_EDGE_M)
        lengths = shapely.length(shapely.intersection(shapely.boundary(neighbours), near_edge)) / 2
    return lengths


def merge_into_neighbours(
    polys: list[Polygon], labels: list, is_candidate, groups: list | None = None, max_rounds: int = 50
) -> tuple[list[Polygon], list]:
    """Merge every polygon for which ``is_candidate(poly)`` holds into the neighbour sharing its longest edge.

    Parameters
    ----------
    polys : polygons in a metric CRS, forming a partition (no overlaps).
    labels : one label per polygon; a merged polygon keeps the label of the neighbour that absorbs it.
    is_candidate : ``f(Polygon) -> bool``.
    groups : optional group per polygon; merges happen only inside a group (e.g. a real community polygon
        that must never be crossed).

    Smallest candidates go first; a candidate with no edge-sharing neighbour is kept. The result covers the
    same area as the input.
    """
    items = [(p, lab, g) for p, lab, g in zip(polys, labels, groups or [None] * len(polys), strict=True)
             if not p.is_empty]
    for _ in range(max_rounds):
        geoms = [it[0] for it in items]
        areas = np.array([g.area for g in geoms])
        candidates = [int(i) for i in np.argsort(areas, kind="stable") if is_candidate(geoms[i])]
        if not candidates:
            break
        tree = shapely.STRtree(geoms)
        alive = np.ones(len(items), dtype=bool)
        touched = np.zeros(len(items), dtype=bool)
        merged_any = False
        for i in candidates:
            if not alive[i] or touched[i]:
                continue
            near = [int(j) for j in tree.query(geoms[i], predicate="intersects")
                    if j != i and alive[j] and not touched[j] and items[j][2] == items[i][2]]
            if not near:
                continue
            lengths = shared_edge_lengths(geoms[i], np.array([geoms[j] for j in near], dtype=object))
            best = int(np.argmax(lengths))
            if lengths[best] < MIN_SHARED_EDGE_M:
                continue
            j = near[best]
            pieces = polygon_parts(shapely.union(geoms[j], geoms[i]))
            if len(pieces) != 1:
                continue
            geoms[j] = pieces[0]
            items[j] = (pieces[0], items[j][1], items[j][2])
            alive[i] = False
            touched[j] = True
            merged_any = True
        items = [it for it, keep in zip(items, alive, strict=True) if keep]
        if not merged_any:
            break
    return [it[0] for it in items], [it[1] for it in items]


def sample_points(poly: Polygon, n_points: int) -> np.ndarray:
    """About ``n_points`` lattice points inside ``poly`` (an (n, 2) array); at least its representative point."""
    minx, miny, maxx, maxy = poly.bounds
    step = math.sqrt(max(poly.area, 1.0) / max(n_points, 1))
    xs = np.arange(minx + step / 2, maxx, step)
    ys = np.arange(miny + step / 2, maxy, step)
    gx, gy = np.meshgrid(xs, ys)
    gx, gy = gx.ravel(), gy.ravel()
    inside = shapely.contains_xy(poly, gx, gy)
    pts = np.column_stack([gx[inside], gy[inside]])
    if len(pts) == 0:
        rp = poly.representative_point()
        pts = np.array([[rp.x, rp.y]])
    return pts


def lloyd_centres(points: np.ndarray, initial: np.ndarray, iterations: int = 12) -> np.ndarray:
    """k-means (Lloyd) with a KD-tree assignment step: O(n log k) per iteration.

    Written here rather than calling ``scipy.cluster.vq.kmeans2`` because its brute-force assignment and
    k-means++ initialisation are O(n·k) and O(n·k²): splitting one road-less block of a few km² into
    thousands of parts took minutes with it and takes about a second this way. Initial centres come from a
    lattice over the polygon, so the result is deterministic.
    """
    centres = initial.astype(float).copy()
    k = len(centres)
    for _ in range(iterations):
        _, nearest = cKDTree(centres).query(points)
        counts = np.bincount(nearest, minlength=k)
        sums_x = np.bincount(nearest, weights=points[:, 0], minlength=k)
        sums_y = np.bincount(nearest, weights=points[:, 1], minlength=k)
        moved = counts > 0
        new = centres.copy()
        new[moved, 0] = sums_x[moved] / counts[moved]
        new[moved, 1] = sums_y[moved] / counts[moved]
        shift = np.abs(new - centres).max()
        centres = new
        if shift < 0.01:
            break
    return centres


def split_compact(poly: Polygon, parts: int, seed: int) -> list[Polygon]:
    """Split ``poly`` into about ``parts`` compact pieces of similar area.

    Centroidal Voronoi cells: k-means on a lattice of points inside the polygon gives centres whose Voronoi
    cells, clipped to the polygon, have near-equal area and are compact. Deterministic: the initial centres
    are a coarse lattice (jittered by ``seed`` to break symmetric ties). Pieces that come out in several parts
    (concave polygons) are kept as separate polygons; the caller merges the small ones.
    """
    if parts <= 1:
        return [poly]
    pts = sample_points(poly, parts * SAMPLES_PER_PART)
    if len(pts) <= parts:
        return [poly]
    initial = sample_points(poly, parts)
    if len(initial) < 2:
        return [poly]
    rng = np.random.default_rng(seed)
    step = math.sqrt(poly.area / parts)
    initial = initial + rng.uniform(-0.05, 0.05, initial.shape) * step
    centres = np.unique(np.round(lloyd_centres(pts, initial), 3), axis=0)
    if len(centres) <= 1:
        return [poly]
    cells = shapely.voronoi_polygons(shapely.multipoints(centres), extend_to=poly.envelope.buffer(10.0))
    pieces = shapely.intersection(np.asarray(shapely.get_parts(cells)), poly)
    out: list[Polygon] = []
    for piece in pieces:
        out.extend(polygon_parts(piece))
    return out


def reading_order(points_x: np.ndarray, points_y: np.ndarray, band_m: float) -> np.ndarray:
    """Indices sorting points north→south in bands of ``band_m`` metres, west→east inside a band."""
    top = float(np.max(points_y)) if len(points_y) else 0.0
    band = np.floor((top - points_y) / band_m).astype(int)
    return np.lexsort((points_x, band))


# Pieces closer than this (metres) to a grid count as touching it: floating-point gaps and point contacts.
SNAP_M = 0.01


def _joined(big: Polygon, small: Polygon) -> Polygon | None:
    """``big`` and ``small`` as one valid Polygon: their union, or where they only touch at points or lie a
    hair apart, their union with a bridge ``2 × SNAP_M`` wide along the shortest line between them (a few
    square centimetres); None when they do not make one polygon."""
    union = shapely.union(big, small)
    if union.geom_type != "Polygon":
        bridge = shapely.shortest_line(big, small).buffer(SNAP_M, cap_style="square")
        union = shapely.union_all([big, small, bridge])
    if union.geom_type != "Polygon" or not union.is_valid or union.area < big.area + small.area - 1.0:
        return None
    return union


def absorb_small(polys: list[Polygon], labels: list, min_area: float) -> tuple[list[Polygon], list, list[Polygon]]:
    """Leave no polygon below ``min_area`` m² (metric CRS, e.g. the deployment's).

    A small polygon that shares an edge with another joins the one sharing its longest edge (across street,
    community or real-polygon lines if it must: a grid below the minimum is worse than a sliver of one area
    inside the grid of the next); one that only touches another (at a point, or within ``SNAP_M``) joins the
    nearest; one detached from everything (an islet) cannot be part of any one-polygon grid and is returned
    apart, for the caller to report.

    Returns (polygons, their labels, the detached pieces left out). The polygons and the pieces left out
    together cover what the input covered.
    """
    polys, labels = merge_into_neighbours(polys, labels, lambda p: p.area < min_area)
    geoms = list(polys)
    areas = np.array([g.area for g in geoms])
    if not (areas < min_area).any():
        return polys, labels, []
    tree = shapely.STRtree(geoms)
    alive = np.ones(len(geoms), dtype=bool)
    left_out: list[Polygon] = []
    for i in np.argsort(areas, kind="stable").tolist():
        if areas[i] >= min_area or not alive[i]:
            continue
        near = [int(j) for j in tree.query(geoms[i], predicate="dwithin", distance=SNAP_M)
                if j != i and alive[j] and geoms[i].distance(geoms[j]) <= SNAP_M]
        near.sort(key=lambda j: (geoms[i].distance(geoms[j]), -geoms[j].area))
        joined = None
        for j in near:
            joined = _joined(geoms[j], geoms[i])
            if joined is not None:
                geoms[j] = joined
                areas[j] = joined.area
                break
        alive[i] = False
        if joined is None:
            left_out.append(geoms[i])
    kept = np.flatnonzero(alive).tolist()
    return [geoms[i] for i in kept], [labels[i] for i in kept], left_out
