"""Topological edits of unit grids and their validation (issue #23): split, merge, reshape, move a shared vertex,
and ``check`` that an edit leaves a valid coverage.

Pure shapely: no database, no Flask. All geometry is in the deployment CRS (projected, metres, e.g. EPSG:4548);
callers transform EPSG:4326 input before calling. Every function works on the grids it is given (the edited grids
and their neighbourhood), never the whole district, so its cost follows the size of the edit.

Rules the callers rely on:

- **Code rule of a split**: ``split`` returns the parts largest first; the largest part keeps the grid's code and
  the other parts get new codes. A merge keeps the code of the largest input grid; the others are retired.
- **Shared vertices stay shared**: grids generated from real data meet along edges that are equal only up to
  floating-point noise, and one side often has a vertex the other lacks (a T-junction). Validation therefore
  edge-matches the neighbourhood first (``noded``: vertices closer than ``NODE_M`` become one, a vertex lying on a
  neighbour's edge is inserted into it), and ``move_vertex`` moves a vertex in every grid whose boundary passes
  through it, vertex or not.
- Defects a coverage already had before the edit (sub-millimetre slivers between generated grids) are not the
  edit's fault: ``check`` rejects only problems the edit adds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

import numpy as np
import shapely
import shapely.ops
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from shapely.geometry import Point, Polygon
from shapely.geometry.base import BaseGeometry

from citygrid.gridding import partition as part
from citygrid.gridding.shapes import polygon_parts, shared_edge_lengths

# Vertices closer than this (metres) are one vertex; a vertex this close to an edge lies on it.
NODE_M = 0.001
# Consecutive vertices of one boundary closer than this (metres) are one: overlay arithmetic leaves such twins
# (a few 1e-10 m apart), and snapping a boundary that has them folds it back on itself. Far below NODE_M: dropping
# a vertex turns its edges, and by 1 mm at the end of a long edge that is a tenth of a square metre.
REPEAT_M = 1e-6
# A reshape's new boundary snaps to the neighbourhood's vertices and edges within this distance (metres), so a
# boundary drawn along an existing edge (in lon/lat, transformed back) follows it exactly instead of leaving slivers.
RESHAPE_SNAP_M = 0.05
# Pieces below this area (m²) left over by overlay arithmetic are numerical crumbs, not land to hand out: they
# are dropped (a union with them folds the boundary back on itself where their vertices differ by a hair).
CRUMB_M2 = 1e-4
# Shared boundary (metres) below which two polygons do not count as sharing an edge (a merge's adjacency).
MIN_EDGE_M = 0.05
# Coverage validation also reports gaps between grids up to this wide (metres): a gap below the area tolerance
# (a few millimetres along an edge) is still an edit that left the grids not edge to edge.
GAP_M = 0.05

REASONS = ("not_crossing", "multipart", "too_small", "not_adjacent", "invalid", "gap", "overlap", "outside",
           "no_such_vertex", "not_contiguous")


class TopologyError(Exception):
    """An edit that cannot be made: ``reason`` is one of ``REASONS``; ``geometry`` (deployment CRS, or None) shows
    where (the line that does not cross, the gap, the overlap, the small part, the invalid edges)."""

    def __init__(self, reason: str, message: str, geometry: BaseGeometry | None = None) -> None:
        super().__init__(message)
        if reason not in REASONS:
            raise ValueError(f"unknown topology reason {reason!r}")
        self.reason = reason
        self.message = message
        self.geometry = geometry


# --- shared helpers -------------------------------------------------------------------------------------------

def _require_polygon(geom: BaseGeometry | None, what: str) -> Polygon:
    """``geom`` if it is a valid, non-empty Polygon (deployment CRS); TopologyError otherwise."""
    if geom is None or geom.is_empty:
        raise TopologyError("invalid", f"{what} is empty")
    if geom.geom_type == "MultiPolygon":
        raise TopologyError("multipart", f"{what} has {len(geom.geoms)} separate parts; a grid is one polygon", geom)
    if geom.geom_type != "Polygon":
        raise TopologyError("invalid", f"{what} is a {geom.geom_type}, not a polygon", geom)
    if not geom.is_valid:
        raise TopologyError("invalid", f"{what} is not a valid polygon: {shapely.is_valid_reason(geom)}", geom)
    return geom


def _union(geoms: Iterable[BaseGeometry]) -> BaseGeometry:
    items = [g for g in geoms if g is not None and not g.is_empty]
    return shapely.union_all(np.asarray(items, dtype=object)) if items else Polygon()


def _thinned(coords: np.ndarray, tol: float) -> np.ndarray:
    """``coords`` (n, 2) without the points within ``tol`` of one kept before them: snapping to two points a hair
    apart (the same vertex as two generated grids stored it) would insert both and fold the boundary back on
    itself."""
    if len(coords) < 2:
        return coords
    pairs = cKDTree(coords).query_pairs(tol, output_type="ndarray")
    drop = np.zeros(len(coords), dtype=bool)
    for i, j in pairs[np.argsort(pairs[:, 0], kind="stable")].tolist():
        if not drop[i]:
            drop[j] = True
    return coords[~drop]


_REACH = 1.001  # ``_may_snap``'s reach, in ``tol``


class _Vertices(NamedTuple):
    """The distinct vertices of an array of polygons: ``points`` (k, 2), each coordinate's point (``inverse``),
    the index of the coordinate where each point is first met (``first_at``) and each coordinate's polygon
    (``owner``)."""

    points: np.ndarray
    inverse: np.ndarray
    first_at: np.ndarray
    owner: np.ndarray


def _vertices(geoms: np.ndarray) -> _Vertices:
    """``_Vertices`` of ``geoms``: one complex number per point for ``np.unique`` (over rows it took most of a
    neighbourhood's noding)."""
    coords, owner = shapely.get_coordinates(geoms, return_index=True)
    found, first_at, inverse = np.unique(np.ascontiguousarray(coords, dtype=np.float64).view(np.complex128).ravel(),
                                         return_index=True, return_inverse=True)
    return _Vertices(np.column_stack([found.real, found.imag]), inverse.ravel(), first_at, owner)


def _canonical(geoms: np.ndarray, tol: float, vertices: _Vertices) -> tuple[np.ndarray, bool, bool]:
    """The polygons with every cluster of vertices closer than ``tol`` (chained) moved onto one of them, the same
    one in every polygon (the one met first); a polygon this would make invalid is kept as it was. Clusters are
    found among the distinct points (``vertices`` of ``geoms``): a shared vertex, the same point in every grid
    that has it, is no cluster, so an edge-matched neighbourhood is returned untouched. Also whether any cluster
    was found and whether every move was made (distinct points of different clusters are more than ``tol``
    apart, so then no two points are that close)."""
    points, inverse = vertices.points, vertices.inverse
    pairs = cKDTree(points).query_pairs(tol, output_type="ndarray")
    if len(pairs) == 0:
        return geoms, False, True
    n, coords = len(points), points[inverse]
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    first = np.full(label.max() + 1, len(coords), dtype=np.int64)
    np.minimum.at(first, label, vertices.first_at)  # the lowest index in ``coords`` of each cluster
    moved = shapely.set_coordinates(geoms.copy(), coords[first[label[inverse]]])
    keep = (shapely.get_type_id(moved) == 3) & shapely.is_valid(moved)  # 3: Polygon
    return np.where(keep, moved, geoms), True, bool(keep.all())


def noded(geoms: np.ndarray, tol: float = NODE_M, first: int | None = None) -> np.ndarray:
    """The polygons edge-matched among themselves: vertices closer than ``tol`` metres become one (the same point
    in every polygon, whatever the order), then a neighbour's vertex within ``tol`` of an edge is inserted there
    (GEOS snapping), so shared edges have identical vertices as GEOS coverage validation requires.

    Parameters
    ----------
    geoms : object array of Polygons in the deployment CRS (a neighbourhood; cost grows with its size).
    tol : snapping distance in metres.
    first : snap only the first ``first`` polygons (the caller keeps only those; the others are their
        neighbours, whose vertices are still made one with theirs and inserted into their edges); None: all.

    Returns
    -------
    Object array of the same length; a polygon that this would make invalid is kept as it was.
    """
    geoms = np.array(geoms, dtype=object)
    vertices = _vertices(geoms)
    out, clustered, settled = _canonical(geoms, tol, vertices)
    if len(out) < 2:
        return out
    upto = len(out) if first is None else max(0, min(first, len(out)))
    if not settled:  # points closer than ``tol`` remain: any polygon may change
        may = np.arange(upto)
    else:
        may = np.flatnonzero(_may_snap(out, upto, tol, _vertices(out) if clustered else vertices))
    if not len(may):
        return out
    base = out.copy()
    left, right = shapely.STRtree(base).query(base, predicate="dwithin", distance=tol)
    for i in may:
        out[i] = _snapped_to_neighbours(base, i, right[(left == i) & (right != i)], tol)
    return out


def _may_snap(geoms: np.ndarray, upto: int, tol: float, vertices: _Vertices) -> np.ndarray:
    """Which of the first ``upto`` polygons GEOS snapping to their neighbours' vertices can change (a boolean
    per polygon; the others would come back as they are), no two of their ``vertices`` being closer than
    ``tol``. Snapping moves a vertex or splits an edge only where a snap point lies within ``tol`` of the ring
    and is not already one of its vertices; each split moves the edge, so the next point is judged against the
    new edge. Hence a polygon may change only when some other polygon's point lies within ``tol`` of its
    boundary, or one of its own points does that another polygon shares (a hole's vertex on its outer ring).
    All found in one tree query for the polygons together: an edge-matched neighbourhood has no such point and
    is returned without a snap (0.24 ms a call instead of 0.53 on the grid_edit bench's 739 neighbourhoods, the
    same results: ``tests/test_topology.py``)."""
    may = np.zeros(len(geoms), dtype=bool)
    if upto == 0:
        return may
    n = len(geoms)
    # A point GEOS snapping reaches may measure a few units of rounding beyond ``tol`` to the tree's distance
    # (the two compute it apart): a slightly wider reach only sends a few more polygons to the exact snap.
    point, poly = shapely.STRtree(shapely.boundary(geoms[:upto])).query(shapely.points(vertices.points),
                                                                         predicate="dwithin", distance=tol * _REACH)
    held = np.sort(vertices.inverse.astype(np.int64) * n + vertices.owner)  # (point, polygon) of every vertex
    asked = point.astype(np.int64) * n + poly
    at = np.minimum(np.searchsorted(held, asked), len(held) - 1)
    own = held[at] == asked
    candidates = ~own
    holed = shapely.get_num_interior_rings(geoms[:upto]) > 0
    if holed.any():
        polygons_of = np.bincount(np.unique(held) // n, minlength=len(vertices.points))
        candidates |= own & (polygons_of[point] > 1) & holed[poly]
    may[poly[candidates]] = True
    return may


def _snapped_to_neighbours(geoms: np.ndarray, i: int, near: np.ndarray, tol: float) -> Polygon:
    """Polygon ``i`` GEOS-snapped to the vertices of its neighbours ``near`` (the polygons within ``tol`` of it,
    in the tree's order: snapping depends on the order of the points) that lie in its box, or as it was when
    that leaves no valid Polygon."""
    if not len(near):
        return geoms[i]
    minx, miny, maxx, maxy = shapely.bounds(geoms[i])
    coords = shapely.get_coordinates(geoms[near])
    inside = ((coords[:, 0] >= minx - tol) & (coords[:, 0] <= maxx + tol)
              & (coords[:, 1] >= miny - tol) & (coords[:, 1] <= maxy + tol))
    if not inside.any():
        return geoms[i]
    snapped = shapely.snap(geoms[i], shapely.multipoints(coords[inside]), tol)
    return snapped if snapped.geom_type == "Polygon" and snapped.is_valid else geoms[i]


# --- split ----------------------------------------------------------------------------------------------------

def split(poly: Polygon, line: BaseGeometry) -> list[Polygon]:
    """Cut a unit grid by a line.

    Parameters
    ----------
    poly : the grid, a valid Polygon in the deployment CRS.
    line : LineString (or MultiLineString) in the same CRS; it may overshoot the grid but must cross it
        from edge to edge at least once.

    Returns
    -------
    The parts, largest area first (**the largest keeps the grid's code**, the others get new codes). Parts below
    the minimum grid area are returned too: rejecting them is ``check``'s job (``too_small``).

    Raises
    ------
    TopologyError ``not_crossing`` (with the line) when it leaves fewer than two parts; ``invalid`` for a bad
    polygon or line.
    """
    poly = _require_polygon(poly, "the grid")
    if line is None or line.is_empty or line.geom_type not in ("LineString", "MultiLineString"):
        raise TopologyError("invalid", "a split needs a line (LineString)", line)
    if not shapely.intersects(poly, line):
        raise TopologyError("not_crossing", "the line does not touch the grid", line)
    parts = polygon_parts(shapely.ops.split(poly, line))
    if len(parts) < 2:
        raise TopologyError("not_crossing", "the line does not cross the grid from edge to edge", line)
    return sorted(parts, key=lambda p: p.area, reverse=True)


# --- merge ----------------------------------------------------------------------------------------------------

def _reached(items: list[Polygon]) -> set[int]:
    """Indices of the polygons joined to the first one through shared edges (``partition.adjacency``: the
    adjacency the supervision partition uses; a point contact does not join)."""
    return _reached_within(part.adjacency(items), range(len(items)))


def _reached_within(graph: part.Graph, nodes: Iterable[int]) -> set[int]:
    """The ``nodes`` of ``graph`` joined to the first of them through its edges between ``nodes`` only (none:
    empty)."""
    allowed = list(nodes)
    if not allowed:
        return set()
    inside = set(allowed)
    neighbours: dict[int, set[int]] = {}
    for a, b in zip(graph.left.tolist(), graph.right.tolist(), strict=True):
        if a in inside and b in inside:
            neighbours.setdefault(a, set()).add(b)
            neighbours.setdefault(b, set()).add(a)
    reached, frontier = {allowed[0]}, [allowed[0]]
    while frontier:
        for j in neighbours.get(frontier.pop(), ()):
            if j not in reached:
                reached.add(j)
                frontier.append(j)
    return reached


def _without_crumb_holes(poly: BaseGeometry) -> BaseGeometry:
    """``poly`` without interior rings smaller than ``CRUMB_M2`` (slivers between inputs that met only up to
    floating-point noise); real holes (a grid enclosed by the merged ones) stay."""
    if poly.geom_type != "Polygon" or not poly.interiors:
        return poly
    keep = [ring for ring in poly.interiors if Polygon(ring).area >= CRUMB_M2]
    return Polygon(poly.exterior, keep) if len(keep) != len(poly.interiors) else poly


def merge(polys: Iterable[Polygon]) -> Polygon:
    """Merge adjacent unit grids into one polygon.

    Parameters
    ----------
    polys : two or more valid Polygons in the deployment CRS, each sharing an edge (not only a point) with
        another, all together one connected piece.

    Returns
    -------
    The merged Polygon (same CRS). GEOS coverage union when the (edge-matched) inputs form a valid coverage,
    an overlay union otherwise.

    Raises
    ------
    TopologyError ``not_adjacent`` (with the grids that do not connect) or ``invalid``.
    """
    items = [_require_polygon(p, "a grid to merge") for p in polys]
    if len(items) < 2:
        raise TopologyError("not_adjacent", "a merge needs at least two grids")
    geoms = noded(np.asarray(items, dtype=object))
    reached = _reached(list(geoms))
    if len(reached) < len(geoms):
        apart = [g for i, g in enumerate(geoms) if i not in reached]
        raise TopologyError("not_adjacent", "the grids do not form one piece joined along shared edges "
                            "(touching at a point is not enough)", _union(apart))
    exact = shapely.coverage_is_valid(geoms)
    merged = shapely.coverage_union_all(geoms) if exact else shapely.union_all(geoms)
    merged = _without_crumb_holes(_without_spikes(merged))
    if merged.geom_type == "GeometryCollection":
        merged = _union(polygon_parts(merged))
    if merged.geom_type != "Polygon":
        raise TopologyError("not_adjacent", "the merged grids do not make one polygon", merged)
    return merged


# --- reshape --------------------------------------------------------------------------------------------------

def _snap_to_neighbourhood(shape: Polygon, grids: Mapping[str, Polygon], edge: BaseGeometry | None,
                           snap_m: float) -> Polygon:
    """``shape`` with its vertices moved onto the neighbourhood's vertices within ``snap_m`` (and their vertices
    inserted into its edges), so an edge drawn along an existing one coincides with it."""
    minx, miny, maxx, maxy = shape.bounds
    refs = [shapely.get_coordinates(np.asarray(list(grids.values()), dtype=object))]
    if edge is not None:
        refs.append(shapely.get_coordinates(edge))
    coords = np.concatenate(refs)
    inside = ((coords[:, 0] >= minx - snap_m) & (coords[:, 0] <= maxx + snap_m)
              & (coords[:, 1] >= miny - snap_m) & (coords[:, 1] <= maxy + snap_m))
    if inside.any():
        snapped = shapely.snap(shape, shapely.multipoints(_thinned(coords[inside], snap_m)), snap_m)
        shape = snapped if snapped.geom_type == "Polygon" and snapped.is_valid else shape
    return _onto_edges(shape, grids, snap_m)


def _onto_edges(shape: Polygon, grids: Mapping[str, Polygon], snap_m: float) -> Polygon:
    """``shape`` with each vertex within ``snap_m`` of a grid's edge (and on no vertex) moved onto that edge: a
    corner drawn on a neighbour's edge otherwise leaves a sliver a fraction of a millimetre wide between them."""
    lines = shapely.multilinestrings(shapely.get_parts(shapely.boundary(
        np.asarray(list(grids.values()), dtype=object))))
    coords = shapely.get_coordinates(shape)
    dist = shapely.distance(shapely.points(coords), lines)
    near = np.flatnonzero((dist > 0) & (dist <= snap_m))
    if len(near) == 0:
        return shape
    for i in near.tolist():
        coords[i] = shapely.get_coordinates(shapely.ops.nearest_points(lines, Point(coords[i]))[0])[0]
    moved = shapely.set_coordinates(shape, coords)
    return moved if moved.geom_type == "Polygon" and moved.is_valid else shape


def _folds(ring: np.ndarray, width: float = NODE_M) -> np.ndarray:
    """Indices of the vertices of a closed ring's coordinates (last = first) where the boundary turns back on
    itself narrower than ``width`` metres: a spike out along an edge and back, which overlay arithmetic leaves
    where two vertices differ by a hair."""
    pts = ring[:-1]
    if len(pts) < 3:
        return np.zeros(0, dtype=int)
    ab = pts - np.roll(pts, 1, axis=0)
    bc = np.roll(pts, -1, axis=0) - pts
    cross = np.abs(ab[:, 0] * bc[:, 1] - ab[:, 1] * bc[:, 0])
    longer = np.maximum(np.hypot(ab[:, 0], ab[:, 1]), np.hypot(bc[:, 0], bc[:, 1]))
    back = (ab * bc).sum(axis=1) < 0
    return np.flatnonzero(back & (cross < width * np.maximum(longer, 1e-12)))


def _ring_without_folds(ring: np.ndarray) -> np.ndarray:
    pts = ring[:-1]
    while len(pts) > 3:
        folds = _folds(np.vstack([pts, pts[:1]]))
        if len(folds) == 0:
            break
        pts = np.delete(pts, folds[0], axis=0)
    return np.vstack([pts, pts[:1]])


def _without_spikes(geom: BaseGeometry) -> BaseGeometry:
    """``geom``'s polygons without zero-width spikes (``_folds``) and twin vertices (``REPEAT_M``); what is still
    invalid is repaired by ``make_valid`` (its stray lines are dropped by ``polygon_parts``)."""
    parts = []
    for poly in polygon_parts(geom):
        shell = _ring_without_folds(shapely.get_coordinates(poly.exterior))
        holes = [_ring_without_folds(shapely.get_coordinates(r)) for r in poly.interiors]
        if len(shell) >= 4:
            parts.append(Polygon(shell, [h for h in holes if len(h) >= 4]))
    if not parts:
        return Polygon()
    out = shapely.remove_repeated_points(shapely.multipolygons(parts) if len(parts) > 1 else parts[0], REPEAT_M)
    return out if out.is_valid else shapely.make_valid(out)


def _one_part(code: str, geom: BaseGeometry, what: str) -> Polygon:
    """The single polygon of ``geom`` once crumbs are dropped; TopologyError ``multipart`` otherwise."""
    parts = [p for p in polygon_parts(_without_spikes(geom)) if p.area >= CRUMB_M2]
    if not parts:
        raise TopologyError("multipart", f"grid {code} would be {what} nothing; merge it instead", geom)
    if len(parts) > 1:
        raise TopologyError("multipart", f"grid {code} would be {what} {len(parts)} separate parts", geom)
    return parts[0]


def reshape(code: str, new_shape: Polygon, grids: Mapping[str, Polygon], edge: BaseGeometry | None, *,
            snap_m: float = RESHAPE_SNAP_M) -> dict[str, Polygon]:
    """Give grid ``code`` a new boundary; its neighbours give or take the difference.

    The target becomes ``new_shape ∩ edge``. Each neighbour loses what the new shape takes from it; each piece of
    the area the target gives up goes to the neighbour sharing the longest boundary with that piece (the one
    whose edge it came from).

    Parameters
    ----------
    code : the grid to reshape (a key of ``grids``).
    new_shape : its new boundary, a Polygon in the deployment CRS; vertices within ``snap_m`` metres of a
        neighbourhood vertex snap onto it.
    grids : the target and its neighbourhood (every grid the old or new shape touches), code -> Polygon.
    edge : the district boundary (same CRS), or None.

    Returns
    -------
    code -> new Polygon for the target and every neighbour that gives or takes area.

    Raises
    ------
    TopologyError ``multipart`` (the target or a neighbour would be split or emptied), ``gap`` (a given-up piece
    touches no neighbour), ``outside``, ``invalid``.
    """
    if code not in grids:
        raise TopologyError("invalid", f"grid {code} is not among the grids given")
    old = _require_polygon(grids[code], f"grid {code}")
    drawn = shapely.remove_repeated_points(_require_polygon(new_shape, "the new shape"), REPEAT_M)
    shape = _snap_to_neighbourhood(_require_polygon(drawn, "the new shape"), grids, edge, snap_m)
    if edge is not None:
        if not shapely.intersects(shape, edge):
            raise TopologyError("outside", "the new shape lies outside the district", shape)
        shape = shapely.intersection(shape, edge)
    target = _one_part(code, shape, "cut by the district edge into")
    others = {c: g for c, g in grids.items() if c != code}
    result: dict[str, BaseGeometry] = {code: target}
    for c, g in others.items():
        if shapely.intersection(g, target).area >= CRUMB_M2:
            # the target's vertices on this neighbour's edges (where the new boundary crosses them, computed by
            # the overlay a hair off the edge) become its vertices first, so the difference leaves no spike
            result[c] = shapely.difference(shapely.snap(g, target, NODE_M), target)
    released = polygon_parts(shapely.difference(shapely.snap(old, target, NODE_M), target))
    for piece in (p for p in released if p.area >= CRUMB_M2):
        codes = list(others)
        if not codes:
            raise TopologyError("gap", "the area the grid gives up has no neighbour to take it", piece)
        lengths = shared_edge_lengths(piece, np.asarray([result.get(c, others[c]) for c in codes], dtype=object))
        best = int(np.argmax(lengths))
        if lengths[best] < MIN_EDGE_M:
            raise TopologyError("gap", "a piece the grid gives up shares no edge with a neighbour", piece)
        receiver = codes[best]
        result[receiver] = shapely.union(shapely.snap(result.get(receiver, others[receiver]), piece, NODE_M), piece)
    return {c: _one_part(c, g, "left as" if c != code else "made into") for c, g in result.items()}


# --- move a shared vertex -------------------------------------------------------------------------------------

def _nearest_vertex(grids: Mapping[str, Polygon], xy: tuple[float, float]) -> tuple[np.ndarray, float]:
    coords = shapely.get_coordinates(np.asarray(list(grids.values()), dtype=object))
    if len(coords) == 0:
        return np.array(xy, dtype=float), float("inf")
    dist = np.hypot(coords[:, 0] - xy[0], coords[:, 1] - xy[1])
    best = int(np.argmin(dist))
    return coords[best], float(dist[best])


def move_vertex(grids: Mapping[str, Polygon], old_xy: tuple[float, float], new_xy: tuple[float, float], *,
                snap_m: float) -> dict[str, Polygon]:
    """Move one boundary vertex in every grid that shares it.

    Parameters
    ----------
    grids : the grids around the vertex, code -> Polygon (deployment CRS).
    old_xy : where the vertex is (deployment CRS); the nearest vertex within ``snap_m`` metres is taken.
    new_xy : where it goes (deployment CRS).
    snap_m : how far from ``old_xy`` the vertex may be (metres).

    Returns
    -------
    code -> moved Polygon for every grid whose boundary passes through the vertex (as a vertex, or along an edge,
    where the vertex is first inserted so that the grids stay edge to edge).

    Raises
    ------
    TopologyError ``no_such_vertex`` (with the point) or ``invalid`` (a grid would cross itself; with it).
    """
    if not all(np.isfinite(v) for v in (*old_xy, *new_xy)):
        raise TopologyError("invalid", "vertex positions must be finite numbers")
    vertex, dist = _nearest_vertex(grids, old_xy)
    if dist > snap_m:
        raise TopologyError("no_such_vertex", f"no grid vertex within {snap_m:g} m of the point", Point(old_xy))
    point = Point(vertex)
    moved: dict[str, Polygon] = {}
    for code, geom in grids.items():
        if geom.distance(point) > NODE_M:
            continue
        snapped = shapely.snap(geom, point, NODE_M)
        coords = shapely.get_coordinates(snapped)
        at = np.hypot(coords[:, 0] - vertex[0], coords[:, 1] - vertex[1]) <= NODE_M
        if not at.any():
            continue
        coords[at] = new_xy
        result = shapely.set_coordinates(snapped, coords)
        if not result.is_valid or result.geom_type != "Polygon":
            raise TopologyError("invalid", f"moving the vertex makes grid {code} invalid: "
                                f"{shapely.is_valid_reason(result)}", result)
        moved[code] = result
    return moved


# --- validation -----------------------------------------------------------------------------------------------

def _defect(poly: Polygon) -> BaseGeometry | None:
    """Where ``poly``'s boundary has twin vertices (closer than ``REPEAT_M``) or folds back on itself
    (``_folds``), or None: valid to GEOS, but edge-matching would turn either into an overlap."""
    for ring in shapely.get_rings(poly):
        coords = shapely.get_coordinates(ring)
        twins = np.flatnonzero(np.hypot(*np.diff(coords, axis=0).T) < REPEAT_M)
        if len(twins):
            return shapely.multipoints(coords[twins[0]:twins[0] + 2])
        folds = _folds(coords)
        if len(folds):
            return Point(coords[folds[0]])
    return None


def _check_polygon(code: str, geom: BaseGeometry, min_area_m2: float) -> None:
    _require_polygon(geom, f"grid {code}")
    defect = _defect(geom)
    if defect is not None:
        raise TopologyError("invalid", f"grid {code}'s boundary folds back on itself or repeats a vertex", defect)
    if geom.area < min_area_m2:
        raise TopologyError("too_small", f"grid {code} would be {geom.area:,.1f} m², below the minimum "
                            f"{min_area_m2:,.0f} m²", geom)


def _outside(geoms: Iterable[BaseGeometry], edge: BaseGeometry) -> list[BaseGeometry]:
    """The parts of ``geoms`` outside ``edge`` (a local clip of the edge keeps this proportional to the grids)."""
    items = [g for g in geoms if not g.is_empty]
    if not items:
        return []
    minx, miny, maxx, maxy = shapely.total_bounds(np.asarray(items, dtype=object))
    local = shapely.clip_by_rect(edge, minx - 1, miny - 1, maxx + 1, maxy + 1)
    shapely.prepare(local)
    return [shapely.difference(g, local) for g in items if not shapely.contains(local, g)]


def _check_outside(before: Mapping[str, Polygon], after: Mapping[str, Polygon], edge: BaseGeometry,
                   tolerance_m2: float) -> None:
    out_after = _outside(after.values(), edge)
    grown = sum(g.area for g in out_after) - sum(g.area for g in _outside(before.values(), edge))
    if grown > tolerance_m2:
        raise TopologyError("outside", f"the edit reaches {grown:,.2f} m² outside the district", _union(out_after))


def _overlaps_among(geoms: list[BaseGeometry]) -> BaseGeometry:
    arr = np.asarray(geoms, dtype=object)
    left, right = shapely.STRtree(arr).query(arr, predicate="intersects")
    keep = left < right
    return _union(shapely.intersection(arr[left[keep]], arr[right[keep]]).tolist())


def _check_areas(before: Mapping[str, Polygon], after: Mapping[str, Polygon], tolerance_m2: float) -> None:
    """Same ground before and after (no gap, no overlap with the untouched grids), no overlap among the results."""
    was, now = _union(before.values()), _union(after.values())
    lost = shapely.difference(was, now)
    if lost.area > tolerance_m2:
        raise TopologyError("gap", f"the edit leaves a gap of {lost.area:,.2f} m²", lost)
    gained = shapely.difference(now, was)
    if gained.area > tolerance_m2:
        raise TopologyError("overlap", f"the edit overlaps other grids by {gained.area:,.2f} m²", gained)
    doubled_before = sum(g.area for g in before.values()) - was.area
    doubled_after = sum(g.area for g in after.values()) - now.area
    if doubled_after - doubled_before > tolerance_m2:
        overlap = _overlaps_among(list(after.values()))
        raise TopologyError("overlap", f"the edited grids overlap each other by {overlap.area:,.2f} m²", overlap)


def _invalid_edges(geoms: list[BaseGeometry], first: int) -> BaseGeometry:
    """GEOS coverage validation of the edge-matched ``geoms`` (gaps up to ``GAP_M`` wide count): the invalid edges
    of the first ``first`` of them."""
    cov = noded(np.asarray(geoms, dtype=object))
    edges = shapely.coverage_invalid_edges(cov, gap_width=GAP_M)[:first]
    return _union(e for e in edges if e is not None)


def _check_coverage(before: Mapping[str, Polygon], after: Mapping[str, Polygon],
                    ring: Mapping[str, Polygon]) -> None:
    """GEOS coverage validation of the results with their untouched neighbours; an invalid edge that was already
    invalid before the edit (a defect of the generated coverage) is not the edit's."""
    ring_geoms = list(ring.values())
    bad = _invalid_edges(list(after.values()) + ring_geoms, len(after))
    if bad.is_empty:
        return
    was_bad = _invalid_edges(list(before.values()) + ring_geoms, len(before))
    fresh = bad if was_bad.is_empty else shapely.difference(bad, shapely.buffer(was_bad, 10 * NODE_M))
    if fresh.length < MIN_EDGE_M:
        return
    near = [g for g in after.values() if shapely.dwithin(g, fresh, NODE_M)]
    others = [g for g in [*after.values(), *ring_geoms] if shapely.dwithin(g, fresh, NODE_M)]
    overlap = any(a is not b and shapely.intersection(a, b).area > 1e-9 for a in near for b in others)
    reason = "overlap" if overlap else "gap"
    raise TopologyError(reason, f"the edited grids do not meet their neighbours edge to edge "
                        f"({fresh.length:,.2f} m of unmatched edges)", fresh)


def check(before: Mapping[str, Polygon], after: Mapping[str, Polygon | None], *, ring: Mapping[str, Polygon],
          edge: BaseGeometry | None, min_area_m2: float, tolerance_m2: float = 0.01) -> None:
    """Validate an edit before it is stored; return None or raise TopologyError with the first problem.

    Parameters
    ----------
    before : code -> Polygon of every grid the edit changes or retires, as it was (deployment CRS).
    after : code -> new Polygon, or None for a retired grid (same CRS).
    ring : the untouched grids around them (code -> Polygon), for the coverage validation.
    edge : the district boundary, or None.
    min_area_m2 : the smallest grid allowed.
    tolerance_m2 : gaps, overlaps and area outside the edge up to this are floating-point noise.

    Checks, in order: each result a valid single Polygon (``invalid``, ``multipart``) of at least
    ``min_area_m2`` (``too_small``); nothing new outside the edge (``outside``); the results cover exactly the
    ground the old grids covered (``gap``, ``overlap``); GEOS coverage validation of results + ring after edge
    matching (``overlap``/``gap`` with the unmatched edges). The cost follows the size of ``before`` + ``ring``.
    """
    results = {c: g for c, g in after.items() if g is not None}
    for code, geom in results.items():
        _check_polygon(code, geom, min_area_m2)
    if edge is not None:
        _check_outside(before, results, edge, tolerance_m2)
    _check_areas(before, results, tolerance_m2)
    _check_coverage(before, results, ring)


def require_contiguous(name: str, polys: Iterable[Polygon]) -> None:
    """TopologyError ``not_contiguous`` (with the polygons cut off from the first one's piece) unless ``polys``
    (deployment CRS; e.g. the unit grids of supervision grid ``name`` after an edit) form one piece."""
    items = [p for p in polys if p is not None and not p.is_empty]
    if len(items) <= 1:
        return
    reached = _reached(items)
    if len(reached) == len(items):
        return
    apart = [p for i, p in enumerate(items) if i not in reached]
    raise TopologyError("not_contiguous", f"supervision grid {name} would fall into separate pieces", _union(apart))


def contiguous(polys: Iterable[Polygon]) -> bool:
    """Whether the polygons (deployment CRS) form one piece joined along shared edges, with the adjacency the
    supervision partition uses (``partition.adjacency``: a point contact does not join). Empty input: True."""
    items = [p for p in polys if p is not None and not p.is_empty]
    return len(items) <= 1 or len(_reached(items)) == len(items)


def joined_around(unchanged: list[Polygon], before: list[Polygon], after: list[Polygon]) -> bool:
    """Whether a change that puts ``after`` in the place of ``before`` among the ``unchanged`` polygons of one
    group (a supervision grid's unit grids; deployment CRS) leaves the group exactly as joined as it was,
    judged from the polygons around the change alone (``contiguous``' adjacency).

    True when, with N the unchanged polygons meeting the change, N with ``before`` is one piece and N with
    ``after`` is one piece (and N is not empty when some polygon is unchanged). The group before and after then
    has the same pieces: every path between unchanged polygons that went through ``before`` enters and leaves it
    through N, which ``after`` joins as ``before`` did. So a group that was contiguous stays contiguous. False
    says nothing (a change that joins the group only through polygons further away): check the whole group.
    A few polygons instead of all of them: 0.5 ms against 2-5 ms for a supervision grid of 35 unit grids; the
    adjacency of N, ``before`` and ``after`` is found once for both pieces (each pair's adjacency depends on the
    pair alone), which halves that."""
    was = [g for g in before if g is not None and not g.is_empty]
    now = [g for g in after if g is not None and not g.is_empty]
    if not unchanged:
        return contiguous(now) and contiguous(was)
    if not was and not now:
        return True
    kept = np.asarray(unchanged, dtype=object)
    met = np.unique(shapely.STRtree(kept).query(np.asarray([*was, *now], dtype=object), predicate="intersects")[1])
    if not len(met):
        return False
    around = list(kept[met])
    graph = part.adjacency([*around, *was, *now])  # its pairs between ``was`` and ``now`` are never walked
    one, two = range(len(around) + len(was)), [*range(len(around)), *range(len(around) + len(was), graph.n)]
    return all(len(_reached_within(graph, piece)) == len(piece) for piece in (one, two))


__all__ = ["REASONS", "TopologyError", "check", "contiguous", "joined_around", "merge", "move_vertex", "noded",
           "require_contiguous", "reshape", "split"]
