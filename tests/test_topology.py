"""Topological edits of unit grids (issue #23, part E2): split, merge, reshape, move a shared vertex and the check
of a coverage after an edit, on small constructed polygons in a metric CRS (no database).

Every ``TopologyError.reason`` has a test that triggers it.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box

from citygrid.gridding import topology as topo
from citygrid.gridding.topology import REASONS, TopologyError

MIN_AREA = 100.0  # m²: the grids below are 20 m × 20 m = 400 m²


def grid3x3() -> dict[str, Polygon]:
    """Nine 20 m squares, codes ``g00`` … ``g22`` (column, row), covering box(0, 0, 60, 60)."""
    return {f"g{i}{j}": box(20 * i, 20 * j, 20 * i + 20, 20 * j + 20) for i in range(3) for j in range(3)}


EDGE = box(0, 0, 60, 60)


def ring_of(grids: dict[str, Polygon], changed: set[str]) -> dict[str, Polygon]:
    return {c: g for c, g in grids.items() if c not in changed}


def assert_valid_coverage(grids: dict[str, Polygon], edge: Polygon = EDGE) -> None:
    geoms = np.asarray(list(grids.values()), dtype=object)
    assert all(g.geom_type == "Polygon" and g.is_valid for g in geoms)
    assert abs(shapely.union_all(geoms).symmetric_difference(edge).area) < 1e-6
    assert abs(sum(g.area for g in geoms) - edge.area) < 1e-6
    assert shapely.coverage_is_valid(topo.noded(geoms))


# --- split ----------------------------------------------------------------------------------------------------

def test_split_by_an_overshooting_line_returns_the_parts_largest_first():
    poly = box(0, 0, 20, 20)
    parts = topo.split(poly, LineString([(-5, 15), (25, 15)]))
    assert [round(p.area) for p in parts] == [300, 100]
    assert parts[0].equals(box(0, 0, 20, 15))  # the largest part: it keeps the grid's code
    assert abs(sum(p.area for p in parts) - poly.area) < 1e-9


def test_split_that_crosses_twice_gives_three_parts():
    parts = topo.split(box(0, 0, 30, 10), LineString([(10, -1), (10, 11), (20, 11), (20, -1)]))
    assert len(parts) == 3 and abs(sum(p.area for p in parts) - 300) < 1e-9


@pytest.mark.parametrize("line", [
    LineString([(5, 5), (25, 5)]),        # ends inside the grid
    LineString([(30, 0), (30, 20)]),      # misses it
    LineString([(0, 0), (20, 0)]),        # runs along its edge
])
def test_split_by_a_line_that_does_not_cross_is_rejected(line):
    with pytest.raises(TopologyError) as err:
        topo.split(box(0, 0, 20, 20), line)
    assert err.value.reason == "not_crossing"
    assert err.value.geometry.equals(line)


def test_split_of_a_multipolygon_or_by_a_non_line_is_rejected():
    two = MultiPolygon([box(0, 0, 1, 1), box(2, 0, 3, 1)])
    with pytest.raises(TopologyError) as err:
        topo.split(two, LineString([(0.5, -1), (0.5, 2)]))
    assert err.value.reason == "multipart"
    with pytest.raises(TopologyError) as err:
        topo.split(box(0, 0, 1, 1), Point(0.5, 0.5))
    assert err.value.reason == "invalid"


def test_split_keeps_the_coverage_valid_with_its_neighbours():
    grids = grid3x3()
    parts = topo.split(grids["g11"], LineString([(30, 10), (30, 50)]))
    after = {"g11": parts[0], "new": parts[1]}
    topo.check({"g11": grids["g11"]}, after, ring=ring_of(grids, {"g11"}), edge=EDGE, min_area_m2=MIN_AREA)
    assert_valid_coverage({**ring_of(grids, {"g11"}), **after})


def test_a_split_part_below_the_minimum_is_too_small():
    grids = grid3x3()
    parts = topo.split(grids["g11"], LineString([(21, 10), (21, 50)]))
    with pytest.raises(TopologyError) as err:
        topo.check({"g11": grids["g11"]}, {"g11": parts[0], "new": parts[1]}, ring=ring_of(grids, {"g11"}),
                   edge=EDGE, min_area_m2=MIN_AREA)
    assert err.value.reason == "too_small"
    assert err.value.geometry.equals(parts[1])


# --- merge ----------------------------------------------------------------------------------------------------

def test_merge_of_adjacent_grids_is_their_union():
    grids = grid3x3()
    merged = topo.merge([grids["g00"], grids["g10"], grids["g11"]])
    assert merged.geom_type == "Polygon" and abs(merged.area - 1200) < 1e-9
    after = {"g00": merged, "g10": None, "g11": None}
    before = {c: grids[c] for c in after}
    topo.check(before, after, ring=ring_of(grids, set(after)), edge=EDGE, min_area_m2=MIN_AREA)


def test_merge_across_a_t_junction_and_floating_noise_is_one_polygon():
    left = box(0, 0, 10, 10)
    # the right side has a vertex at (10, 5) the left lacks, and its edge is off by 1e-9 m
    right = Polygon([(10 + 1e-9, 0), (20, 0), (20, 10), (10 + 1e-9, 10), (10, 5)])
    merged = topo.merge([left, right])
    assert merged.geom_type == "Polygon" and not merged.interiors
    assert abs(merged.area - 200) < 1e-6


@pytest.mark.parametrize("pair", [("g00", "g22"), ("g00", "g11")])  # apart; touching at a corner only
def test_merge_of_grids_that_do_not_share_an_edge_is_rejected(pair):
    grids = grid3x3()
    with pytest.raises(TopologyError) as err:
        topo.merge([grids[pair[0]], grids[pair[1]]])
    assert err.value.reason == "not_adjacent"
    assert err.value.geometry.equals(grids[pair[1]])


def test_merge_of_one_grid_is_rejected():
    with pytest.raises(TopologyError) as err:
        topo.merge([box(0, 0, 1, 1)])
    assert err.value.reason == "not_adjacent"


def test_merge_keeps_a_real_hole():
    grids = grid3x3()
    ring_codes = [c for c in grids if c != "g11"]
    merged = topo.merge([grids[c] for c in ring_codes])
    assert len(merged.interiors) == 1 and abs(merged.area - 3200) < 1e-9


# --- reshape --------------------------------------------------------------------------------------------------

def test_reshape_takes_from_one_neighbour_and_gives_to_another():
    grids = grid3x3()
    # g11 grows 5 m into g21 (east) and gives 5 m back to g01 (west)
    new = box(25, 20, 45, 40)
    result = topo.reshape("g11", new, grids, EDGE)
    assert set(result) == {"g11", "g21", "g01"}
    assert result["g11"].equals(new)
    assert abs(result["g21"].area - 300) < 1e-9 and abs(result["g01"].area - 500) < 1e-9
    before = {c: grids[c] for c in result}
    topo.check(before, result, ring=ring_of(grids, set(result)), edge=EDGE, min_area_m2=MIN_AREA)
    assert_valid_coverage({**grids, **result})


def test_reshape_snaps_a_boundary_drawn_along_an_existing_edge():
    grids = grid3x3()
    # corners drawn a few centimetres off g11's own (as a drag in lon/lat lands), the east side moved 4 m into g21
    new = Polygon([(20.01, 19.99), (44, 20), (44, 40), (39.98, 40.02), (20.02, 39.99)])
    result = topo.reshape("g11", new, grids, EDGE)
    assert set(result) == {"g11", "g21"}  # g12 (north) is untouched: no slivers were cut from it
    topo.check({c: grids[c] for c in result}, result, ring=ring_of(grids, set(result)), edge=EDGE,
               min_area_m2=MIN_AREA)


def test_reshape_released_area_goes_to_the_neighbour_sharing_its_edge():
    grids = grid3x3()
    new = box(20, 20, 40, 35)  # gives a 5 m strip back along its north edge, which it shares with g12
    result = topo.reshape("g11", new, grids, EDGE)
    assert set(result) == {"g11", "g12"}
    assert result["g12"].equals(box(20, 35, 40, 60)) or abs(result["g12"].area - 500) < 1e-9


def test_reshape_with_a_corner_cut_on_a_slanted_shared_edge_leaves_no_sliver():
    # the new corner lies on the slanted edge shared with "left" only up to floating-point error
    grids = {"left": Polygon([(0, 0), (3, 0), (4, 30), (0, 30)]),
             "target": Polygon([(3, 0), (20, 0), (20, 30), (4, 30)]),
             "below": box(0, -10, 20, 0)}
    edge = box(0, -10, 20, 30)
    shape = grids["target"].difference(box(2, -1, 6, 4))
    result = topo.reshape("target", shape, grids, edge)
    assert set(result) == {"target", "left"}  # the corner goes to the neighbour sharing its longest edge
    topo.check({c: grids[c] for c in result}, result, ring={"below": grids["below"]}, edge=edge, min_area_m2=1)
    assert_valid_coverage({**grids, **result}, edge)


def test_reshape_that_swallows_a_neighbour_is_multipart():
    grids = grid3x3()
    with pytest.raises(TopologyError) as err:
        topo.reshape("g11", box(20, 0, 40, 40), grids, EDGE)
    assert err.value.reason == "multipart" and "g10" in str(err.value)


def test_reshape_that_cuts_a_neighbour_in_two_is_multipart():
    grids = grid3x3()
    with pytest.raises(TopologyError) as err:
        topo.reshape("g11", Polygon([(20, 20), (40, 20), (40, 30), (60, 30), (60, 32), (40, 32), (40, 40),
                                     (20, 40)]), grids, EDGE)
    assert err.value.reason == "multipart"


def test_reshape_that_leaves_a_hole_with_no_neighbour_is_a_gap():
    grids = grid3x3()
    shape = Polygon(box(20, 20, 40, 40).exterior, [box(25, 25, 35, 35).exterior.coords])
    with pytest.raises(TopologyError) as err:
        topo.reshape("g11", shape, grids, EDGE)
    assert err.value.reason == "gap"
    assert abs(err.value.geometry.area - 100) < 1e-9


def test_reshape_is_clipped_to_the_district_edge_and_a_shape_outside_it_is_rejected():
    grids = grid3x3()
    result = topo.reshape("g20", box(40, 0, 70, 20), grids, EDGE)
    assert result["g20"].equals(box(40, 0, 60, 20))
    with pytest.raises(TopologyError) as err:
        topo.reshape("g20", box(100, 100, 120, 120), grids, EDGE)
    assert err.value.reason == "outside"


def test_reshape_by_an_invalid_shape_is_invalid():
    bowtie = Polygon([(20, 20), (40, 40), (40, 20), (20, 40)])
    with pytest.raises(TopologyError) as err:
        topo.reshape("g11", bowtie, grid3x3(), EDGE)
    assert err.value.reason == "invalid"


# --- move a shared vertex -------------------------------------------------------------------------------------

def test_move_vertex_moves_it_in_every_grid_that_shares_it():
    grids = grid3x3()
    moved = topo.move_vertex(grids, (20.3, 19.8), (23, 22), snap_m=1)
    assert set(moved) == {"g00", "g10", "g01", "g11"}
    for geom in moved.values():
        assert (23, 22) in list(geom.exterior.coords)
    topo.check({c: grids[c] for c in moved}, moved, ring=ring_of(grids, set(moved)), edge=EDGE,
               min_area_m2=MIN_AREA)


def test_move_vertex_inserts_it_where_a_neighbour_has_only_an_edge():
    left = box(0, 0, 10, 20)
    lower, upper = box(10, 0, 20, 10), box(10, 10, 20, 20)  # (10, 10) is a T-junction on left's edge
    grids = {"left": left, "lower": lower, "upper": upper}
    moved = topo.move_vertex(grids, (10, 10), (12, 10), snap_m=0.5)
    assert set(moved) == {"left", "lower", "upper"}
    topo.check(grids, moved, ring={}, edge=box(0, 0, 20, 20), min_area_m2=1)


def test_move_vertex_far_from_any_vertex_is_rejected():
    with pytest.raises(TopologyError) as err:
        topo.move_vertex(grid3x3(), (10, 10), (11, 11), snap_m=2)
    assert err.value.reason == "no_such_vertex" and err.value.geometry.equals(Point(10, 10))


def test_move_vertex_that_makes_a_grid_cross_itself_is_invalid():
    grids = grid3x3()
    with pytest.raises(TopologyError) as err:
        topo.move_vertex(grids, (20, 20), (50, 30), snap_m=1)
    assert err.value.reason == "invalid" and err.value.geometry is not None


def test_move_vertex_rejects_non_finite_positions():
    with pytest.raises(TopologyError) as err:
        topo.move_vertex(grid3x3(), (20, 20), (float("nan"), 0), snap_m=1)
    assert err.value.reason == "invalid"


# --- check ----------------------------------------------------------------------------------------------------

def test_check_finds_a_gap_with_its_geometry():
    grids = grid3x3()
    with pytest.raises(TopologyError) as err:
        topo.check({"g11": grids["g11"]}, {"g11": box(20, 20, 39, 40)}, ring=ring_of(grids, {"g11"}), edge=EDGE,
                   min_area_m2=MIN_AREA)
    assert err.value.reason == "gap" and abs(err.value.geometry.area - 20) < 1e-9


def test_check_finds_an_overlap_with_an_untouched_neighbour():
    grids = grid3x3()
    with pytest.raises(TopologyError) as err:
        topo.check({"g11": grids["g11"]}, {"g11": box(20, 20, 41, 40)}, ring=ring_of(grids, {"g11"}), edge=EDGE,
                   min_area_m2=MIN_AREA)
    assert err.value.reason == "overlap" and abs(err.value.geometry.area - 20) < 1e-9


def test_check_finds_an_overlap_among_the_results():
    grids = grid3x3()
    before = {"g11": grids["g11"], "g21": grids["g21"]}
    # same total ground, but the two results overlap by 1 m × 20 m and leave no gap
    after = {"g11": box(20, 20, 41, 40), "g21": box(40, 20, 60, 40)}
    with pytest.raises(TopologyError) as err:
        topo.check(before, after, ring=ring_of(grids, set(before)), edge=EDGE, min_area_m2=MIN_AREA)
    assert err.value.reason == "overlap" and abs(err.value.geometry.area - 20) < 1e-9


def test_check_finds_ground_outside_the_district():
    grids = grid3x3()
    with pytest.raises(TopologyError) as err:
        topo.check({"g20": grids["g20"]}, {"g20": box(40, 0, 61, 20)}, ring=ring_of(grids, {"g20"}), edge=EDGE,
                   min_area_m2=MIN_AREA)
    assert err.value.reason == "outside" and abs(err.value.geometry.area - 20) < 1e-9


def test_check_rejects_a_multipart_or_invalid_result():
    grids = grid3x3()
    with pytest.raises(TopologyError) as err:
        topo.check({"g11": grids["g11"]}, {"g11": MultiPolygon([box(20, 20, 30, 40), box(30, 20, 40, 40)])},
                   ring={}, edge=EDGE, min_area_m2=MIN_AREA)
    assert err.value.reason == "multipart"
    with pytest.raises(TopologyError) as err:
        topo.check({"g11": grids["g11"]}, {"g11": Polygon([(20, 20), (40, 40), (40, 20), (20, 40)])}, ring={},
                   edge=EDGE, min_area_m2=MIN_AREA)
    assert err.value.reason == "invalid"


@pytest.mark.parametrize("ring", [
    [(20, 20), (40, 20), (40, 40), (30, 40), (30 + 1e-9, 40), (20, 40)],        # twin vertices
    [(20, 20), (40, 20), (40, 40), (30, 40), (25, 40), (30 + 1e-9, 40), (20, 40)],  # a spike out and back
])
def test_check_rejects_a_boundary_that_repeats_a_vertex_or_folds_back(ring):
    grids = grid3x3()
    with pytest.raises(TopologyError) as err:
        topo.check({"g11": grids["g11"]}, {"g11": Polygon(ring)}, ring=ring_of(grids, {"g11"}), edge=EDGE,
                   min_area_m2=MIN_AREA)
    assert err.value.reason == "invalid"


def test_check_finds_edges_that_do_not_match_below_the_area_tolerance():
    grids = grid3x3()
    # a notch 5 mm deep and 1 m long in g11's east edge: 0.005 m², below the area tolerance, still a gap
    notched = Polygon([(20, 20), (40, 20), (40, 30), (39.995, 30), (39.995, 31), (40, 31), (40, 40), (20, 40)])
    with pytest.raises(TopologyError) as err:
        topo.check({"g11": grids["g11"]}, {"g11": notched}, ring=ring_of(grids, {"g11"}), edge=EDGE,
                   min_area_m2=MIN_AREA)
    assert err.value.reason == "gap"
    assert err.value.geometry.distance(Point(39.995, 30.5)) < 0.01


def test_check_forgives_defects_the_coverage_had_before_the_edit():
    # g11 and g21 already overlap by 0.05 mm along their shared edge (as generated grids may): splitting g01
    # (which does not touch them) or g11 itself along a line away from that edge is accepted.
    grids = grid3x3()
    grids["g11"] = box(20, 20, 40.00005, 40)
    parts = topo.split(grids["g11"], LineString([(30, 10), (30, 50)]))
    topo.check({"g11": grids["g11"]}, {"g11": parts[0], "new": parts[1]}, ring=ring_of(grids, {"g11"}),
               edge=EDGE, min_area_m2=MIN_AREA)


def test_contiguous_needs_shared_edges():
    grids = grid3x3()
    assert topo.contiguous([grids["g00"], grids["g10"], grids["g11"]])
    assert not topo.contiguous([grids["g00"], grids["g11"]])  # corner contact only
    assert not topo.contiguous([grids["g00"], grids["g22"]])
    assert topo.contiguous([]) and topo.contiguous([grids["g00"]])


def test_joined_around_is_a_sound_local_test_of_contiguity():
    """``joined_around`` (the edit engine's local contiguity test) never says a change keeps a group as joined
    when the whole group's pieces differ (the slow exact path, ``contiguous`` over every polygon), on 600 seeded
    random changes of random groups of a 7 x 7 lattice: cells taken out, cells taken in, cells merged; and it
    answers True often enough to be worth having."""
    rng = np.random.default_rng(2026)
    cells = {(i, j): box(i * 100.0, j * 100.0, (i + 1) * 100.0, (j + 1) * 100.0) for i in range(7) for j in range(7)}
    said_true = 0
    for _ in range(600):
        group = {tuple(rng.integers(0, 7, 2))}
        while len(group) < rng.integers(4, 20):  # grow a group, sometimes with a jump (not contiguous)
            i, j = list(group)[rng.integers(len(group))] if rng.random() < 0.9 else tuple(rng.integers(0, 7, 2))
            di, dj = ((1, 0), (-1, 0), (0, 1), (0, -1))[rng.integers(4)]
            if (i + di, j + dj) in cells:
                group.add((i + di, j + dj))
        members = sorted(group)
        out = [members[k] for k in rng.choice(len(members), size=min(len(members) - 1, rng.integers(0, 3)),
                                              replace=False)]
        outside = [c for c in cells if c not in group]
        taken_in = [outside[k] for k in rng.choice(len(outside), size=rng.integers(0, 3), replace=False)]
        before = [cells[c] for c in out]
        kind = rng.integers(3)
        if kind == 0:  # cells out of the group
            after = []
        elif kind == 1:  # cells into the group (the ones out, if any, go elsewhere)
            after = [cells[c] for c in taken_in]
        else:  # the cells out, merged into one polygon where they meet
            after = [shapely.union_all(before)] if before else []
        unchanged = [cells[c] for c in members if c not in out]
        if topo.joined_around(unchanged, before, after):
            said_true += 1
            assert topo.contiguous([*unchanged, *after]) == topo.contiguous([*unchanged, *before]) or (
                not unchanged and topo.contiguous(after)), (members, out, taken_in, kind)
    assert said_true > 150
    grids = grid3x3()
    rest = [g for k, g in grids.items() if k != "g22"]
    assert topo.joined_around(rest, [grids["g22"]], [])  # a corner cell leaves: the rest stays joined
    ring = [g for k, g in grids.items() if k not in ("g11", "g22")]
    assert not topo.joined_around(ring, [grids["g22"]], [])  # joined only far away, round the ring: not judged
    assert not topo.joined_around([grids["g00"], grids["g10"]], [], [grids["g22"]])  # a cell far away joins
    assert not topo.joined_around([grids["g00"], grids["g20"]], [grids["g10"]], [])  # the cell joining two leaves


def _noded_one_by_one(geoms: np.ndarray, tol: float, first: int | None = None) -> np.ndarray:
    """The slow exact path of ``topology.noded`` (its code before it learnt which polygons snapping can change):
    clusters of vertices closer than ``tol`` moved onto the first one met, over every coordinate, then each
    polygon GEOS-snapped to every vertex in its box of the polygons within ``tol`` of it."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    coords = shapely.get_coordinates(geoms)
    pairs = cKDTree(coords).query_pairs(tol, output_type="ndarray")
    out = geoms.copy()
    if len(pairs):
        n = len(coords)
        _, label = connected_components(coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n)),
                                        directed=False)
        lowest = np.empty(label.max() + 1, dtype=int)
        lowest[label[::-1]] = np.arange(n)[::-1]
        moved = shapely.set_coordinates(geoms.copy(), coords[lowest[label]])
        out = np.where((shapely.get_type_id(moved) == 3) & shapely.is_valid(moved), moved, geoms)
    if len(out) < 2:
        return out
    base = out.copy()
    left, right = shapely.STRtree(base).query(base, predicate="dwithin", distance=tol)
    for i in range(len(out) if first is None else min(first, len(out))):
        near = right[(left == i) & (right != i)]
        if len(near) == 0:
            continue
        minx, miny, maxx, maxy = shapely.bounds(base[i])
        points = shapely.get_coordinates(base[near])
        inside = ((points[:, 0] >= minx - tol) & (points[:, 0] <= maxx + tol)
                  & (points[:, 1] >= miny - tol) & (points[:, 1] <= maxy + tol))
        if inside.any():
            snapped = shapely.snap(base[i], shapely.multipoints(points[inside]), tol)
            if snapped.geom_type == "Polygon" and snapped.is_valid:
                out[i] = snapped
    return out


def _noisy_lattice(rng: np.random.Generator, scale: float) -> np.ndarray:
    """2 x 2 to 4 x 4 cells with their corners moved up to 0.6 ``scale``, up to two vertices inserted near each
    cell's lower edge (T-junctions for the neighbour below, within or beyond the snapping distance) and a few
    holes."""
    n = int(rng.integers(2, 5))
    xs, ys = np.cumsum(rng.uniform(5, 20, n + 1)), np.cumsum(rng.uniform(5, 20, n + 1))
    cells = []
    for i in range(n):
        for j in range(n):
            ring = [(xs[i], ys[j]), (xs[i + 1], ys[j]), (xs[i + 1], ys[j + 1]), (xs[i], ys[j + 1])]
            for _ in range(int(rng.integers(0, 3))):
                t = rng.uniform(0.2, 0.8)
                ring.insert(1, (xs[i] + t * (xs[i + 1] - xs[i]), ys[j] + rng.uniform(-0.9, 0.9) * scale))
            ring = [(x + rng.uniform(-0.6, 0.6) * scale, y + rng.uniform(-0.6, 0.6) * scale) for x, y in ring]
            hole = None
            if rng.random() < 0.15:
                cx, cy = (xs[i] + xs[i + 1]) / 2, (ys[j] + ys[j + 1]) / 2
                hole = [(cx - 1, cy - 1), (cx + 1, cy - 1), (cx + 1, cy + 1), (cx - 1, cy + 1)]
            cell = Polygon(ring, [hole] if hole else None)
            cells.append(cell if cell.is_valid else cell.buffer(0))
    return np.asarray([c for c in cells if c.geom_type == "Polygon"], dtype=object)


def test_noded_matches_snapping_each_polygon_to_all_its_neighbours_vertices():
    """``noded`` snaps only the polygons that snapping can change, found for all at once; it gives exactly what
    snapping every polygon to all its neighbours' vertices gives (the slow exact path), with and without
    ``first``: on 600 seeded noisy lattices (vertices a millimetre or a micrometre apart, T-junctions, holes),
    on a neighbour whose edge bulges in by steps (the second point comes within reach only once the first is
    inserted), a hole touching the shell where a neighbour has a vertex, two points competing for one edge, and
    a vertex left near another's corner when moving it would make its polygon invalid, and a vertex at the
    snapping distance up to rounding. An edge-matched lattice comes back as it was."""
    tol = topo.NODE_M
    rng = np.random.default_rng(23)
    cases = [_noisy_lattice(rng, scale) for scale in (tol, tol / 1000) for _ in range(300)]
    square = Polygon([(0, 0), (10, 0), (10, 10), (0, 10)])
    cases += [np.asarray(c, dtype=object) for c in (
        [square, Polygon([(0, 0), (5, 0.0009), (5.5, 0.0016), (10, 0), (10, -10), (0, -10)])],
        [Polygon([(0, 0), (10, 0), (10, 10), (0, 10)], [[(5, 0), (6, 2), (4, 2)]]), Polygon([(5, 0), (6, 2), (4, 2)]),
         Polygon([(0, -5), (10, -5), (10, 0), (5, 0), (0, 0)])],
        [square, Polygon([(0, -10), (10, -10), (10, 0), (5.0008, -0.0006), (5, 0.0006), (0, 0)])],
        [square, Polygon([(10.0003, 12), (10.0003, 9.5), (13, 9.5), (10.0006, 10.0002), (13, 10.5), (13, 12)]),
         Polygon([(0, 10), (10, 10), (10, 20), (0, 20)])],
        # a vertex at 1 mm from an edge by the snap's arithmetic, a hair beyond it by the tree's
        [Polygon([(0, 0.009), (10, 0.009), (10, 10.009), (0, 10.009)]),
         Polygon([(0, -9.991), (10, -9.991), (10, 0.009), (5, 0.008), (0, 0.009)])])]
    changed = 0
    for k, geoms in enumerate(cases):
        first = None if k % 2 else int(rng.integers(0, len(geoms) + 1))
        fast, slow = topo.noded(geoms, tol, first=first), _noded_one_by_one(geoms, tol, first=first)
        assert all(shapely.equals_exact(a, b, 0) for a, b in zip(fast, slow, strict=True)), k
        changed += sum(not shapely.equals_exact(a, b, 0) for a, b in zip(fast, geoms, strict=True))
    assert changed > 600  # the cases did exercise the clustering and the snapping
    for geoms in cases[-5:]:
        assert all(shapely.equals_exact(a, b, 0) for a, b in zip(topo.noded(geoms), _noded_one_by_one(geoms, tol),
                                                                  strict=True))
    lattice = np.asarray(list(grid3x3().values()), dtype=object)
    assert all(a is b for a, b in zip(topo.noded(lattice), lattice, strict=True))
    # ``first`` below 0 or beyond the array is clamped: no polygon, or every one, may snap
    for geoms in cases[-5:]:
        for low, high in ((-1, 0), (len(geoms) + 3, None)):
            assert all(shapely.equals_exact(a, b, 0) for a, b in zip(topo.noded(geoms, tol, first=low),
                                                                      topo.noded(geoms, tol, first=high),
                                                                      strict=True))


def test_require_contiguous_names_the_pieces_cut_off():
    grids = grid3x3()
    topo.require_contiguous("S1", [grids["g00"], grids["g10"]])
    with pytest.raises(TopologyError) as err:
        topo.require_contiguous("S1", [grids["g00"], grids["g10"], grids["g22"]])
    assert err.value.reason == "not_contiguous" and err.value.geometry.equals(grids["g22"])


def test_every_reason_is_known_and_an_unknown_one_is_a_programming_error():
    assert set(REASONS) == {"not_crossing", "multipart", "too_small", "not_adjacent", "invalid", "gap", "overlap",
                            "outside", "no_such_vertex", "not_contiguous"}
    with pytest.raises(ValueError):
        TopologyError("nonsense", "x")


def test_a_reshape_on_real_grids_whose_corner_lies_on_a_neighbour_edge_is_accepted():
    import json
    from pathlib import Path

    case = json.loads((Path(__file__).parent / "data" / "reshape_real_case.json").read_text())
    hood = {c: shapely.from_wkt(w) for c, w in case["hood"].items()}
    ring = {c: shapely.from_wkt(w) for c, w in case["ring"].items()}
    edge = shapely.from_wkt(case["edge_local"])
    result = topo.reshape(case["code"], shapely.from_wkt(case["shape"]), hood, edge)
    topo.check({c: hood[c] for c in result}, result, ring={c: g for c, g in ring.items() if c not in result},
               edge=edge, min_area_m2=10_000)


def test_a_split_that_cuts_a_short_contact_is_not_taken_for_unchanged_contiguity():
    """An edit inside one supervision grid keeps its ground, but not always its contiguity: a split through the
    middle of a 0.8 m contact leaves two contacts each shorter than an adjacency (``partition.MIN_SHARED_EDGE_M``).
    The edit engine's one-group shortcut asks ``joined_around`` among the change's ring, which says no here (the
    engine then checks the whole supervision grid) and yes for a split that keeps the contact whole."""
    from citygrid.gridding import edits
    from citygrid.gridding.partition import MIN_SHARED_EDGE_M

    assert 0.4 < MIN_SHARED_EDGE_M <= 0.8
    b = Polygon([(0, 0), (10, 0), (10, 9.6), (10, 10), (0, 10)])  # a vertex at the contact's middle
    a = box(10, 9.2, 20, 19.2)  # meets b along x = 10, y 9.2-10: 0.8 m
    assert topo.contiguous([a, b])

    def change(parts):
        row = {"geom": a, "supervision_code": "S"}
        return edits.Change(before={"A": row}, after={"A": parts[0], "new:1": parts[1]},
                            rows={"A": row, "new:1": row}, ring={"B": {"geom": b, "supervision_code": "S"}})

    cut = change([box(10, 9.6, 20, 19.2), box(10, 9.2, 20, 9.6)])
    assert not topo.contiguous([b, *cut.after.values()]) and not edits._joined_in_ring("S", cut)
    kept = change([box(10, 9.2, 15, 19.2), box(15, 9.2, 20, 19.2)])
    assert topo.contiguous([b, *kept.after.values()]) and edits._joined_in_ring("S", kept)
    assert not edits._joined_in_ring("S", edits.Change(before=cut.before, after=cut.after, rows=cut.rows))  # no ring
