"""Pure gridding geometry (no database): splitting, merging, derived areas, road blocks, codes, partition.
Fast paths are checked against slow exact ones."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from scipy.cluster.vq import kmeans2
from shapely.geometry import LineString, Point, box

from citygrid.errors import Conflict, InvalidInput
from citygrid.gridding import metrics
from citygrid.gridding import partition as part
from citygrid.gridding.areas import AreaInput, plan_areas
from citygrid.gridding.codes import PreviousGrid, assign_codes, code_prefix, parse_code
from citygrid.gridding.generate import GridParams, generate_unit_grids
from citygrid.gridding.shapes import (
    lloyd_centres,
    merge_into_neighbours,
    polsby_popper,
    sample_points,
    split_compact,
)

SQUARE = box(0, 0, 2000, 2000)  # a 4 km² "district" in metres


def assert_partition(polys, boundary, tol=1e-6):
    union = shapely.union_all(polys)
    assert abs(union.area - boundary.area) / boundary.area < tol
    assert sum(p.area for p in polys) - union.area < 1.0
    assert all(p.geom_type == "Polygon" and p.is_valid for p in polys)


# ------------------------------------------------------------------------------------------ parameters
@pytest.mark.parametrize(("kwargs", "field"), [
    ({"min_area_m2": 0}, "min_area_m2"),
    ({"min_area_m2": 90_000, "target_area_m2": 60_000}, "target_area_m2"),
    ({"min_area_m2": 50_000, "max_area_m2": 40_000, "target_area_m2": 50_000}, "max_area_m2"),
    ({"target_area_m2": 60_000, "max_area_m2": 60_000}, "max_area_m2"),
    ({"road_classes": ()}, "road_classes"),
    ({"extend_m": -1}, "extend_m"),
    ({"community_radius_m": -5}, "community_radius_m"),
])
def test_impossible_parameters_name_the_parameter(kwargs, field):
    with pytest.raises(InvalidInput) as err:
        GridParams(**kwargs).validate()
    assert err.value.details[0]["field"] == field


# ------------------------------------------------------------------------------------------ shapes
def test_split_compact_partitions_into_compact_near_equal_parts():
    parts = split_compact(SQUARE, 40, seed=1)
    assert_partition(parts, SQUARE)
    areas = np.array([p.area for p in parts])
    assert 36 <= len(parts) <= 44
    assert areas.max() / areas.mean() < 1.5 and polsby_popper(np.array(parts, dtype=object)).min() > 0.5


def test_split_is_deterministic():
    a = split_compact(SQUARE, 12, seed=3)
    b = split_compact(SQUARE, 12, seed=3)
    assert [p.wkb for p in a] == [p.wkb for p in b]


def test_lloyd_matches_scipy_kmeans_quality():
    """Our KD-tree Lloyd (fast path) against scipy's kmeans2 (reference) on the same points."""
    pts = sample_points(SQUARE, 3000)
    k = 15
    ours = lloyd_centres(pts, sample_points(SQUARE, k), iterations=30)
    ref, _ = kmeans2(pts, k, seed=np.random.default_rng(0), minit="++", iter=30)

    def inertia(c):
        d = ((pts[:, None, :] - c[None, :, :]) ** 2).sum(-1)
        return d.min(1).sum()

    assert inertia(ours) <= inertia(ref) * 1.05


def test_merge_small_into_longest_shared_edge():
    big_left, big_right = box(0, 0, 100, 100), box(108, 0, 300, 100)
    small = box(100, 0, 108, 100)  # 800 m², shares 100 m with each neighbour
    tiny_corner = box(300, 0, 305, 5)  # shares 5 m with the right block
    polys, labels = merge_into_neighbours([big_left, small, big_right, tiny_corner], ["a", "b", "c", "d"],
                                          lambda p: p.area < 1000)
    assert len(polys) == 2 and set(labels) <= {"a", "c"}
    assert_partition(polys, box(0, 0, 305, 100).difference(box(300, 5, 305, 100)))


def test_merge_respects_groups():
    polys, _ = merge_into_neighbours([box(0, 0, 100, 100), box(100, 0, 105, 100)], ["a", "b"],
                                          lambda p: p.area < 1000, groups=["real-1", "real-2"])
    assert len(polys) == 2  # the sliver may not cross into another real polygon


# ------------------------------------------------------------------------------------------ derived areas
def areas_fixture():
    return [
        AreaInput("110105001000", "street", "甲街道", point=None),
        AreaInput("110105002000", "street", "乙街道", point=Point(1800, 1800)),
        AreaInput("110105001001", "community", "一社区", "110105001000", Point(300, 300)),
        AreaInput("110105001002", "community", "二社区", "110105001000", Point(900, 300)),
        AreaInput("110105001003", "community", "三社区", "110105001000", Point(900, 300)),  # duplicate point
        AreaInput("110105001004", "community", "四社区", "110105001000", None),  # no location
        AreaInput("110105003000", "street", "丙街道", point=None),  # nothing located at all
    ]


def test_plan_areas_nests_reports_and_covers():
    plan = plan_areas(SQUARE, areas_fixture(), community_radius_m=0)
    assert plan.derived
    assert_partition([g for c in plan.cells for g in shapely.get_parts(c.geom)], SQUARE, tol=1e-9)
    labels = {(c.street_code, c.community_code) for c in plan.cells}
    assert labels == {("110105001000", "110105001001"), ("110105001000", "110105001002"),
                      ("110105002000", None)}
    unplaced = {r["code"] for r in plan.report["unplaced_communities"]}
    assert unplaced == {"110105001003", "110105001004"}
    assert [r["code"] for r in plan.report["unplaced_streets"]] == ["110105003000"]
    assert plan.report["duplicate_points"][0]["same_point_as"] == "110105001002"


def test_community_radius_leaves_the_rest_to_the_street():
    plan = plan_areas(SQUARE, areas_fixture(), community_radius_m=400)
    street_level = [c for c in plan.cells if c.community_code is None and c.street_code == "110105001000"]
    assert len(street_level) == 1
    for cell in plan.cells:
        if cell.community_code == "110105001001":
            assert cell.geom.within(Point(300, 300).buffer(401))


def test_real_polygon_is_never_crossed():
    real = box(0, 0, 700, 700)
    areas = [*areas_fixture(), AreaInput("110105001009", "community", "实社区", "110105001000", None, real)]
    roads = np.array([LineString([(0, y), (2000, y)]) for y in range(240, 2000, 240)]
                     + [LineString([(x, 0), (x, 2000)]) for x in range(240, 2000, 240)], dtype=object)
    classes = np.array(["primary"] * len(roads), dtype=object)
    result = generate_unit_grids(SQUARE, areas, GridParams(), roads, classes)
    assert result.source == "roads"
    assert_partition(result.polygons, SQUARE)
    for poly in result.polygons:
        inside = poly.intersection(real).area
        assert inside < 1.0 or inside > poly.area - 1.0, "a grid crosses the real community boundary"


# ------------------------------------------------------------------------------------------ generation
def lattice_roads(spacing: float) -> tuple[np.ndarray, np.ndarray]:
    lines = [LineString([(0, v), (2000, v)]) for v in np.arange(spacing, 2000, spacing)]
    lines += [LineString([(v, 0), (v, 2000)]) for v in np.arange(spacing, 2000, spacing)]
    lines.append(LineString([(10, 10), (60, 60)]))  # a service way
    roads = np.array(lines, dtype=object)
    classes = np.array(["tertiary"] * (len(lines) - 1) + ["service"], dtype=object)
    return roads, classes


def test_road_blocks_follow_roads():
    roads, classes = lattice_roads(250.0)
    result = generate_unit_grids(SQUARE, areas_fixture(), GridParams(), roads, classes)
    assert result.source == "roads" and len(result.polygons) == 64
    assert_partition(result.polygons, SQUARE)
    alignment = metrics.road_alignment(result.chosen_roads, result.polygons, SQUARE)
    assert alignment == pytest.approx(1.0)
    assert len(result.chosen_roads) == len(roads) - 1  # the service way is not a block boundary


def test_no_roads_falls_back_to_derived_and_says_so():
    result = generate_unit_grids(SQUARE, areas_fixture(), GridParams(), None, None)
    assert result.source == "derived" and "no road data" in result.notes[0]
    assert_partition(result.polygons, SQUARE)
    assert 55 <= len(result.polygons) <= 85  # 4 km² / 5.76 ha ≈ 69


def test_only_excluded_road_classes_fall_back():
    roads, classes = lattice_roads(250.0)
    result = generate_unit_grids(SQUARE, areas_fixture(), GridParams(road_classes=("motorway",)), roads, classes)
    assert result.source == "derived" and "fell back" in result.notes[0]


def test_nothing_located_is_an_error():
    with pytest.raises(InvalidInput, match="no street or community"):
        generate_unit_grids(SQUARE, [AreaInput("110105001000", "street", "甲", point=None)], GridParams())


def test_road_alignment_sampling_matches_exact_buffer_measure():
    """Fast path (5 m samples + STRtree) against the exact length inside the 30 m buffer of grid edges."""
    skew = np.array([LineString([(0, 0), (2000, 1500)]), LineString([(100, 1900), (1900, 1000)])], dtype=object)
    polys = split_compact(SQUARE, 30, seed=2)
    sampled = metrics.road_alignment(skew, polys, SQUARE)
    edges = shapely.union_all(shapely.boundary(np.array(polys, dtype=object))).buffer(30)
    exact = sum(r.intersection(edges).length for r in skew) / sum(r.length for r in skew)
    assert sampled == pytest.approx(exact, abs=0.01)


# ------------------------------------------------------------------------------------------ codes
def test_codes_in_reading_order_and_stable():
    polys = [box(x, y, x + 100, y + 100) for y in (200, 100, 0) for x in (0, 100, 200)]
    streets, communities = ["110105001000"] * 9, ["110105001001"] * 9
    codes = assign_codes("110105", polys, streets, communities, [], {}, band_m=100)
    assert codes[0] == "110105001001001" and codes[2] == "110105001001003" and codes[8] == "110105001001009"
    again = assign_codes("110105", polys, streets, communities,
                         [PreviousGrid(c, p) for c, p in zip(codes, polys, strict=True)], {}, band_m=100)
    assert again == codes


def test_retired_codes_are_never_reused():
    polys = [box(0, 0, 100, 100), box(100, 0, 200, 100)]
    codes = assign_codes("110105", polys, ["110105001000"] * 2, ["110105001001"] * 2, [],
                         {"110105001001": 7}, band_m=100)
    assert codes == ["110105001001008", "110105001001009"]


def test_street_level_grids_use_the_reserved_community_range():
    assert code_prefix("410104", "410104202000", None) == ("410104202", 99_900)
    polys = [box(i * 10, 0, i * 10 + 10, 10) for i in range(3)]
    codes = assign_codes("410104", polys, ["410104202000"] * 3, [None] * 3, [], {"410104202": 998}, band_m=10)
    assert codes == ["410104202900999", "410104202901001", "410104202901002"]
    assert [parse_code(c) for c in codes] == [("410104202", 999), ("410104202", 1000), ("410104202", 1001)]
    assert parse_code("110105001001042") == ("110105001001", 42)


def test_serial_overflow_is_a_conflict():
    with pytest.raises(Conflict, match="more than 999"):
        assign_codes("110105", [box(0, 0, 1, 1)], ["110105001000"], ["110105001001"], [],
                     {"110105001001": 999}, band_m=10)


# ------------------------------------------------------------------------------------------ partition
def lattice_polys(n: int, size: float = 100.0):
    return [box(i * size, j * size, (i + 1) * size, (j + 1) * size) for j in range(n) for i in range(n)]


def test_partition_contiguous_and_balanced():
    polys = lattice_polys(20)
    graph = part.adjacency(polys)
    weights = np.random.default_rng(1).uniform(0.5, 1.5, len(polys))
    labels = part.partition(graph, weights, 12)
    assert len(set(labels)) == 12
    assert part.contiguous_groups(graph, labels).all()
    assert part.imbalance(labels, weights) <= 0.05


def test_point_touching_is_not_adjacency():
    graph = part.adjacency([box(0, 0, 1, 1), box(1, 1, 2, 2), box(1, 0, 2, 1)])
    pairs = set(zip(graph.left.tolist(), graph.right.tolist(), strict=True))
    assert (0, 1) not in pairs and (0, 2) in pairs and (1, 2) in pairs


def test_disconnected_pieces_are_partitioned_separately():
    island = [box(5000 + i * 100, 0, 5100 + i * 100, 100) for i in range(6)]
    polys = lattice_polys(10) + island
    graph = part.adjacency(polys)
    weights = np.ones(len(polys))
    labels = part.partition(graph, weights, 8)
    assert part.contiguous_groups(graph, labels).all()
    island_groups = set(labels[-6:].tolist())
    assert not island_groups & set(labels[:-6].tolist())


def test_allocate_parts_minimises_the_heaviest():
    assert part.allocate_parts(np.array([97.7, 2.3]), 237).tolist() in ([231, 6], [232, 5])
    assert part.allocate_parts(np.array([97.7, 2.3]), 237).max() > 200
    with pytest.raises(InvalidInput):
        part.allocate_parts(np.array([1.0, 1.0, 1.0]), 2)


def test_make_contiguous_repairs_stray_pieces():
    polys = lattice_polys(4)
    graph = part.adjacency(polys)
    labels = np.array([0, 0, 1, 1] * 4)
    labels[0] = 1  # group 1 now has a stray node in the far corner
    fixed = part.make_contiguous(graph, labels, np.ones(16))
    assert part.contiguous_groups(graph, fixed).all()


@pytest.mark.parametrize(("n_parts", "needle"), [(0, "at least 1"), (17, "only 16")])
def test_partition_impossible_counts(n_parts, needle):
    graph = part.adjacency(lattice_polys(4))
    with pytest.raises(InvalidInput, match=needle):
        part.partition(graph, np.ones(16), n_parts)


def test_workload_normalises_and_records_weights():
    terms = {"components": np.array([0, 10, 20]), "cases": np.zeros(3), "roads": np.array([1, 1, 1]),
             "area": np.array([2, 2, 2])}
    load, used = part.workload(terms, {"components": 2.0, "cases": 1.0, "roads": 1.0, "area": 0.0})
    assert used == {"components": 2.0, "roads": 1.0}
    assert load.tolist() == pytest.approx([1.0, 3.0, 5.0])
    with pytest.raises(InvalidInput, match="unknown workload"):
        part.workload(terms, {"people": 1.0})
    with pytest.raises(InvalidInput, match="every weighted"):
        part.workload(terms, {"area": 0.0, "cases": 1.0})
