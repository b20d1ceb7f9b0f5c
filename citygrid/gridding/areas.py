"""Street and community areas for gridding: real polygons where the city has them, derived elsewhere.

Where a district has only points for its streets/communities (Chaoyang, Guancheng: no public polygons exist),
community areas are the Voronoi cells of the community points inside the district, cut off at
``community_radius_m`` from the point (where points are sparse a Voronoi cell would stretch over tens of km²);
what lies beyond stays with the street as street-level area (community ``None``). A street's area is the
union of its communities' cells and that remainder, so communities nest in streets by construction.
A street with no located community but a point of its own is one cell (community ``None``). Streets and
communities with no location, or whose point duplicates another's, are reported and get no area: nothing is
placed at random.

All geometry is in the deployment CRS (metres).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import Point, Polygon
from shapely.geometry.base import BaseGeometry

from citygrid.gridding.shapes import polygon_parts


@dataclass(frozen=True)
class AreaInput:
    """A street or community as stored: ``point`` and ``polygon`` in the deployment CRS, either may be None.

    ``derived`` polygons (from an earlier run) are ignored: only real polygons constrain the grids.
    """

    code: str
    level: str
    name: str
    parent_code: str | None = None
    point: Point | None = None
    polygon: BaseGeometry | None = None
    derived: bool = False


@dataclass
class Cell:
    """A piece of the district attributed to a street and (maybe) a community (neither: a district with no
    street or community data, taken whole).

    ``real`` is True when the piece comes from a real (surveyed/official) polygon, whose boundary no grid may
    cross; ``region`` identifies that polygon (None for derived cells).
    """

    street_code: str | None
    community_code: str | None
    geom: BaseGeometry
    real: bool
    region: str | None = None


@dataclass
class AreaPlan:
    cells: list[Cell]
    derived: bool
    report: dict[str, list] = field(default_factory=dict)

    def real_boundaries(self) -> list[BaseGeometry]:
        """Boundaries of the real polygons (lines that grids must follow)."""
        return [c.geom.boundary for c in self.cells if c.real]


def _voronoi(seeds: list[Point], within: BaseGeometry) -> list[BaseGeometry]:
    """Voronoi cell of each seed (same order), clipped to ``within``."""
    if len(seeds) == 1:
        return [within]
    cells = shapely.voronoi_polygons(
        shapely.multipoints(seeds), extend_to=within.envelope.buffer(1000.0), ordered=True
    )
    return list(shapely.intersection(np.asarray(shapely.get_parts(cells)), within))


DEFAULT_COMMUNITY_RADIUS_M = 2000.0


Seed = tuple[Point, str, str | None]  # a located street or community: point (deployment CRS), street, community


def plan_areas(boundary: BaseGeometry, areas: list[AreaInput],
               community_radius_m: float = DEFAULT_COMMUNITY_RADIUS_M) -> AreaPlan:
    """Attribute every part of ``boundary`` to a street and community (see the module docstring).

    Returns the cells (covering the district), whether any were derived, and a report of what could not be
    placed: ``unplaced_streets``, ``unplaced_communities``, ``duplicate_points``. Geometry in the deployment
    CRS (metres).

    The steps: cells of the real polygons (``_real_cells``), the points of everything else (``_seeds``), one
    seed per point (``_unique_seeds``), then derived cells over what real polygons leave free
    (``_derived_cells``).
    """
    streets = {a.code: a for a in areas if a.level == "street"}
    communities = [a for a in areas if a.level == "community"]
    report: dict[str, list] = {"unplaced_streets": [], "unplaced_communities": [], "duplicate_points": [],
                               "street_level_areas": []}
    cells, taken, real_streets = _real_cells(boundary, streets, communities, report)
    free = boundary.difference(taken) if not taken.is_empty else boundary
    seeds = _unique_seeds(_seeds(streets, communities, real_streets, report), report)
    near_free = free.buffer(1.0)
    seeds = [s for s in seeds if near_free.contains(s[0])]
    if free.area > 1.0 and seeds:
        cells += _derived_cells(free, seeds, community_radius_m, report)
    derived = any(not c.real for c in cells)
    return AreaPlan(cells=cells, derived=derived, report=report)


def _street_of(community: AreaInput) -> str:
    """A community's street: its ``parent_code``, else (cn-admin codes) its first 9 digits + ``000``."""
    return community.parent_code or community.code[:9] + "000"


def _real_cells(boundary: BaseGeometry, streets: dict[str, AreaInput], communities: list[AreaInput],
                report: dict[str, list]) -> tuple[list[Cell], BaseGeometry, set[str]]:
    """Cells of the real (not derived) community and street polygons, clipped to ``boundary``: a community's
    polygon as it is, a street's remainder split among its located communities without a polygon.

    Returns those cells, the union of the real polygons (what is taken) and the codes of the real streets.
    """
    real_communities = [c for c in communities if c.polygon is not None and not c.derived]
    real_streets = [s for s in streets.values() if s.polygon is not None and not s.derived]
    cells: list[Cell] = []
    taken = shapely.union_all([c.polygon for c in real_communities]) if real_communities else Polygon()
    for c in real_communities:
        cells.append(Cell(_street_of(c), c.code, c.polygon.intersection(boundary), True, c.code))
    for s in real_streets:
        remainder = s.polygon.intersection(boundary).difference(taken)
        if remainder.area > 1.0:
            own = [c for c in communities if c.parent_code == s.code and c.polygon is None and c.point is not None
                   and remainder.contains(c.point)]
            cells.extend(_seeded_cells(remainder, own, s.code, report, real_region=s.code))
        taken = taken.union(s.polygon)
    return cells, taken, {s.code for s in real_streets}


def _seeds(streets: dict[str, AreaInput], communities: list[AreaInput], real_streets: set[str],
           report: dict[str, list]) -> list[Seed]:
    """The points derived cells grow from: every located community outside a real street polygon, and every
    located street with no located community. Those with no location go to the report."""
    seeds: list[Seed] = []
    streets_with_communities: set[str] = set()
    for c in communities:
        if c.polygon is not None and not c.derived:
            continue
        parent = _street_of(c)
        if parent in real_streets:
            continue  # handled inside its real street polygon (_real_cells)
        if c.point is None:
            report["unplaced_communities"].append({"code": c.code, "name": c.name, "reason": "no location"})
            continue
        seeds.append((c.point, parent, c.code))
        streets_with_communities.add(parent)
    for s in streets.values():
        if s.code in real_streets or s.code in streets_with_communities:
            continue
        if s.point is None:
            report["unplaced_streets"].append(
                {"code": s.code, "name": s.name, "reason": "no location and no located community"})
            continue
        seeds.append((s.point, s.code, None))
    return seeds


def _unique_seeds(seeds: list[Seed], report: dict[str, list]) -> list[Seed]:
    """One seed per point (to the centimetre): identical points mean name-based geocoding collapsed two places;
    the first is kept and the others are reported as unplaced."""
    unique: dict[tuple[float, float], Seed] = {}
    for seed in seeds:
        key = (round(seed[0].x, 2), round(seed[0].y, 2))
        if key in unique:
            code, other = seed[2] or seed[1], unique[key][2] or unique[key][1]
            report["duplicate_points"].append({"code": code, "same_point_as": other})
            (report["unplaced_communities"] if seed[2] else report["unplaced_streets"]).append(
                {"code": code, "reason": f"shares its point with {other}"})
            continue
        unique[key] = seed
    return list(unique.values())


def _derived_cells(free: BaseGeometry, seeds: list[Seed], community_radius_m: float,
                   report: dict[str, list]) -> list[Cell]:
    """Voronoi cells of ``seeds`` over ``free``; a community's cell is cut at ``community_radius_m`` from its
    point and what lies beyond goes to its street as one street-level cell per street (named in the report)."""
    cells: list[Cell] = []
    beyond: dict[str, list[BaseGeometry]] = {}
    for (point, street, community), geom in zip(seeds, _voronoi([s[0] for s in seeds], free), strict=True):
        if geom.is_empty:
            continue
        if community is not None and community_radius_m > 0:
            reach = point.buffer(community_radius_m, quad_segs=32)
            outer = geom.difference(reach)
            if outer.area > 1.0:
                beyond.setdefault(street, []).append(outer)
                geom = geom.intersection(reach)
        cells.append(Cell(street, community, geom, False, None))
    for street, pieces in beyond.items():
        cells.append(Cell(street, None, shapely.union_all(pieces), False, None))
    if beyond:
        report["street_level_areas"] = sorted(beyond)
    return cells


def _seeded_cells(region: BaseGeometry, own: list[AreaInput], street: str, report: dict,
                  real_region: str) -> list[Cell]:
    """Cells inside a real street polygon: Voronoi of its located communities, or the whole street."""
    if not own:
        return [Cell(street, None, region, True, real_region)]
    geoms = _voronoi([c.point for c in own], region)
    return [Cell(street, c.code, g, True, real_region) for c, g in zip(own, geoms, strict=True) if not g.is_empty]


def cell_polygons(plan: AreaPlan) -> list[tuple[Polygon, Cell]]:
    """Every Polygon part of every cell, with its cell."""
    return [(part, cell) for cell in plan.cells for part in polygon_parts(cell.geom)]
