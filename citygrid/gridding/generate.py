"""Unit-grid (万米单元网格) generation: pure function from district, roads and areas to coded polygons.

Two sources:
- **roads** — blocks bounded by the chosen road classes (and real street/community polygons), slivers and
  strips merged into the neighbour sharing the longest edge, large blocks split into compact parts;
- **derived** — where there are no roads: the street/community areas (real or derived, see ``areas``) split
  into compact parts of about the target area; a district with no street or community data at all is split
  the same way as a whole.

No grid is smaller than ``min_area_m2``: small pieces join a neighbour, and islets too small to be a grid and
touching no other grid are left out and reported (``GeneratedGrids.left_out``).

All geometry is in the deployment CRS (metres).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from citygrid.errors import InvalidInput
from citygrid.gridding.areas import (
    DEFAULT_COMMUNITY_RADIUS_M,
    AreaInput,
    AreaPlan,
    Cell,
    cell_polygons,
    plan_areas,
)
from citygrid.gridding.roads import DEFAULT_EXTEND_M, DEFAULT_ROAD_CLASSES, choose_roads, road_faces
from citygrid.gridding.shapes import (
    absorb_small,
    merge_into_neighbours,
    polsby_popper,
    polygon_parts,
    split_compact,
)

# Chaoyang: 464.9 km² (our boundary) / 8,070 unit grids (seed 001) ≈ 57,600 m² — "about 5.8 ha each".
DEFAULT_TARGET_AREA_M2 = 57_600.0
DEFAULT_MIN_AREA_M2 = 10_000.0
MAX_OVER_TARGET = 1.5
# A block smaller than the target whose Polsby–Popper compactness is below this is a strip (between dual
# carriageways, along a ramp) and is merged like a sliver.
STRIP_COMPACTNESS = 0.12
DEFAULT_SEED = 20_261_123


@dataclass(frozen=True)
class GridParams:
    """Generation parameters (areas in m²). ``max_area_m2`` None means 1.5 × target."""

    target_area_m2: float = DEFAULT_TARGET_AREA_M2
    min_area_m2: float = DEFAULT_MIN_AREA_M2
    max_area_m2: float | None = None
    road_classes: tuple[str, ...] = DEFAULT_ROAD_CLASSES
    extend_m: float = DEFAULT_EXTEND_M
    community_radius_m: float = DEFAULT_COMMUNITY_RADIUS_M
    seed: int = DEFAULT_SEED

    @property
    def max_area(self) -> float:
        return self.max_area_m2 if self.max_area_m2 is not None else MAX_OVER_TARGET * self.target_area_m2

    def validate(self) -> GridParams:
        """Raise ``InvalidInput`` naming the parameter that makes the request impossible."""
        checks = [
            (self.min_area_m2 > 0, "min_area_m2", "must be positive"),
            (self.target_area_m2 <= 10_000_000, "target_area_m2", "must be at most 10 km²"),
            (self.target_area_m2 >= self.min_area_m2, "target_area_m2",
             f"({self.target_area_m2:g}) is smaller than the smallest block allowed, "
             f"min_area_m2 ({self.min_area_m2:g})"),
            (self.max_area > self.target_area_m2, "max_area_m2",
             f"({self.max_area:g}) must be larger than target_area_m2 ({self.target_area_m2:g})"),
            (self.max_area > self.min_area_m2, "max_area_m2",
             f"min_area_m2 ({self.min_area_m2:g}) > max_area_m2 ({self.max_area:g})"),
            (0 <= self.extend_m <= 500, "extend_m", "must be between 0 and 500 m"),
            (self.community_radius_m >= 0, "community_radius_m", "must be ≥ 0 (0: no limit)"),
            (len(self.road_classes) > 0, "road_classes", "name at least one road class"),
        ]
        for ok, name, reason in checks:
            if not ok:
                raise InvalidInput(f"{name} {reason}", field=name)
        return self

    def as_record(self) -> dict[str, Any]:
        return {**asdict(self), "max_area_m2": self.max_area, "road_classes": list(self.road_classes)}


@dataclass
class GeneratedGrids:
    """Unit grids before coding. ``polygons`` and ``left_out`` partition the district; labels align with
    ``polygons``. ``left_out``: islets below the minimum area touching no grid (deployment CRS)."""

    polygons: list[Polygon]
    street_codes: list[str]
    community_codes: list[str | None]
    source: str
    plan: AreaPlan
    notes: list[str] = field(default_factory=list)
    chosen_roads: np.ndarray | None = None
    left_out: list[Polygon] = field(default_factory=list)


def _label_faces(faces: list[BaseGeometry], plan: AreaPlan) -> tuple[list, list]:
    """(street, community) label and real-region group for each face, by the cell under its inner point."""
    cells = plan.cells
    if not cells:
        return [(None, None)] * len(faces), [None] * len(faces)
    tree = shapely.STRtree([c.geom for c in cells])
    points = shapely.point_on_surface(np.asarray(faces, dtype=object))
    labels, groups = [], []
    for face, point in zip(faces, points, strict=True):
        hits = tree.query(point, predicate="intersects")
        if len(hits) == 0:  # on a cell edge or outside every cell: take the cell it overlaps most
            hits = tree.query(face, predicate="intersects")
        if len(hits) == 0:
            labels.append((None, None))
            groups.append(None)
            continue
        best: Cell = max((cells[h] for h in hits), key=lambda c: c.geom.intersection(face).area)
        labels.append((best.street_code, best.community_code))
        groups.append(best.region)
    return labels, groups


def _cut_large_by_cells(polys: list[Polygon], labels: list, groups: list, plan: AreaPlan,
                        params: GridParams) -> tuple[list, list, list]:
    """Blocks too large to be one grid (no roads inside them) are first cut along the area lines, so each
    piece belongs to one street/community; blocks of grid size keep their single label."""
    if not plan.cells:
        return polys, labels, groups
    tree = shapely.STRtree([c.geom for c in plan.cells])
    out_p, out_l, out_g = [], [], []
    for poly, label, group in zip(polys, labels, groups, strict=True):
        if poly.area <= params.max_area:
            out_p.append(poly)
            out_l.append(label)
            out_g.append(group)
            continue
        for h in tree.query(poly, predicate="intersects"):
            cell = plan.cells[h]
            for piece in polygon_parts(poly.intersection(cell.geom)):
                if piece.area > 1.0:
                    out_p.append(piece)
                    out_l.append((cell.street_code, cell.community_code))
                    out_g.append(group)
    return out_p, out_l, out_g


def _split_large(polys: list[Polygon], labels: list, groups: list, params: GridParams) -> tuple[list, list, list]:
    out_p, out_l, out_g = [], [], []
    for i, (poly, label, group) in enumerate(zip(polys, labels, groups, strict=True)):
        if poly.area > params.max_area:
            parts = max(2, round(poly.area / params.target_area_m2))
            pieces = split_compact(poly, parts, seed=params.seed + i)
        else:
            pieces = [poly]
        out_p.extend(pieces)
        out_l.extend([label] * len(pieces))
        out_g.extend([group] * len(pieces))
    return out_p, out_l, out_g


def generate_unit_grids(
    boundary: BaseGeometry,
    areas: list[AreaInput],
    params: GridParams,
    road_geoms: np.ndarray | None = None,
    road_classes: np.ndarray | None = None,
) -> GeneratedGrids:
    """Build unit grids covering ``boundary`` exactly.

    Parameters
    ----------
    boundary : district (Multi)Polygon, deployment CRS.
    areas : the district's streets and communities (points/polygons in the deployment CRS).
    params : validated ``GridParams``.
    road_geoms, road_classes : road LineStrings (deployment CRS) and their classes; None or empty means
        "no road data" and selects the derived source.

    Returns
    -------
    GeneratedGrids with one valid Polygon per grid and its street/community codes.
    """
    params.validate()
    plan = plan_areas(boundary, areas, params.community_radius_m)
    notes: list[str] = []
    if not plan.cells and areas:
        raise InvalidInput("no street or community of this district has a location or a polygon; "
                           "import them first (citygrid areas import)", field="areas")
    alone = not plan.cells
    if alone:
        plan = AreaPlan(cells=[Cell(None, None, boundary, False, None)], derived=False, report=plan.report)
        notes.append("the district has no street or community data: unit grids are derived from the district "
                     "alone (grids carry no street or community code)")
    chosen = None
    if road_geoms is not None and len(road_geoms) > 0:
        chosen = choose_roads(road_geoms, road_classes, params.road_classes)
        if len(chosen) == 0:
            notes.append(f"no roads of the classes {', '.join(params.road_classes)}; fell back to derived areas")
    else:
        notes.append("the district has no road data; unit grids are compact parts of "
                     + ("the district" if alone else "derived street/community areas"))

    if chosen is not None and len(chosen) > 0:
        source = "roads"
        faces = road_faces(chosen, boundary, plan.real_boundaries(), params.extend_m)
        polys = [p for f in faces for p in polygon_parts(f)]
        labels, groups = _label_faces(polys, plan)
        target = params.target_area_m2

        def is_sliver(p: Polygon) -> bool:
            if p.area < params.min_area_m2:
                return True
            return p.area < target and polsby_popper(np.array([p]))[0] < STRIP_COMPACTNESS

        polys, carried = merge_into_neighbours(polys, list(zip(labels, groups, strict=True)), is_sliver, groups)
        labels, groups = [c[0] for c in carried], [c[1] for c in carried]
        polys, labels, groups = _cut_large_by_cells(polys, labels, groups, plan, params)
    else:
        source = "derived"
        pairs = cell_polygons(plan)
        polys = [p for p, _ in pairs]
        labels = [(c.street_code, c.community_code) for _, c in pairs]
        groups = [c.region for _, c in pairs]

    for _ in range(2):  # merging small pieces can push a neighbour over the maximum: split and merge again
        polys, labels, groups = _split_large(polys, labels, groups, params)
        polys, carried = merge_into_neighbours(
            polys, list(zip(labels, groups, strict=True)), lambda p: p.area < params.min_area_m2, groups
        )
        labels, groups = [c[0] for c in carried], [c[1] for c in carried]
    valid_polys, valid_labels = [], []
    for p, label in zip(polys, labels, strict=True):
        parts = [p] if p.is_valid else polygon_parts(shapely.make_valid(p))
        valid_polys.extend(parts)
        valid_labels.extend([label] * len(parts))
    polys, labels, left_out = absorb_small(valid_polys, valid_labels, params.min_area_m2)
    if not polys:
        raise InvalidInput(f"the district ({boundary.area:.0f} m²) has no piece of at least min_area_m2 "
                           f"({params.min_area_m2:g} m²)", field="min_area_m2")
    if left_out:
        notes.append(f"{len(left_out)} islet(s) smaller than min_area_m2 and touching no grid are left out "
                     f"({sum(p.area for p in left_out):.0f} m² in all; see left_out)")
    unlabelled = 0 if alone else sum(1 for s, _ in labels if s is None)
    if unlabelled:
        notes.append(f"{unlabelled} grid(s) lie in no street area and carry street code 000")
    return GeneratedGrids(
        polygons=polys,
        street_codes=[s or "" for s, _ in labels],
        community_codes=[c for _, c in labels],
        source=source,
        plan=plan,
        notes=notes,
        chosen_roads=chosen,
        left_out=left_out,
    )
