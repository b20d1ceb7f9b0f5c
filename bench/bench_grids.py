"""Gridding benchmarks on the real demo districts.

- ``grids_generate_guancheng``: full unit-grid generation (load, blocks, merge/split, codes, write) vs the
  bare floor ``shapely.polygonize(shapely.node(roads))`` on the same chosen roads.
- ``grids_generate_chaoyang``: full generation from derived areas vs the bare Voronoi of the community
  points clipped to the district (the least any derived partition must do).
- ``grids_partition_237``: our supervision-grid partition (contiguous METIS, repair, rebalancing, best of
  several seeds) vs one plain contiguous METIS run on the same graph and weights; imbalance of each.
"""

from __future__ import annotations

import numpy as np
import shapely

from bench.common import demo_connection, timed
from bench.results import entry
from citygrid.gridding import partition as part
from citygrid.gridding import service, store
from citygrid.gridding.generate import GridParams
from citygrid.gridding.roads import DEFAULT_ROAD_CLASSES, choose_roads
from citygrid.spatial.boundaries import district_boundary


def bench_guancheng() -> dict:
    with demo_connection("citygrid_zhengzhou") as conn:
        geoms, classes = store.load_roads(conn, "410104")
        roads = choose_roads(geoms, classes, DEFAULT_ROAD_CLASSES)
        anchor_s, faces = timed(lambda: shapely.polygonize(shapely.get_parts(shapely.node(
            shapely.geometrycollections(list(roads))))), repeat=3)
        ours_s, summary = timed(lambda: service.generate(conn, "410104", GridParams(), author="bench"))
    return entry("grids_generate_guancheng", len(roads), ours_s, "shapely.polygonize(shapely.node(roads))",
                 anchor_s, "ours: load + blocks + gap closing + merge/split + codes + write; anchor: bare faces",
                 unit_grids=summary["unit_grids"], coverage_gap_ratio=summary["coverage_gap_ratio"],
                 overlap_area_m2=summary["overlap_area_m2"], road_alignment=summary["road_alignment"],
                 anchor_faces=len(shapely.get_parts(faces)), target_s=60)


def bench_chaoyang() -> dict:
    with demo_connection("citygrid") as conn:
        boundary = district_boundary(conn, "110105")
        points = [a.point for a in store.load_areas(conn, "110105") if a.level == "community" and a.point]

        def voronoi():
            cells = shapely.voronoi_polygons(shapely.multipoints(points), extend_to=boundary.envelope)
            return shapely.intersection(np.asarray(shapely.get_parts(cells)), boundary)

        anchor_s, _ = timed(voronoi, repeat=3)
        ours_s, summary = timed(lambda: service.generate(conn, "110105", GridParams(), author="bench"))
    return entry("grids_generate_chaoyang", len(points), ours_s, "Voronoi of community points clipped to district",
                 anchor_s, "ours: derived areas + compact splitting + merge + codes + write; no roads exist",
                 unit_grids=summary["unit_grids"], coverage_gap_ratio=summary["coverage_gap_ratio"],
                 overlap_area_m2=summary["overlap_area_m2"], seeds_unit_grids=8070, target_s=60)


def bench_partition() -> dict:
    with demo_connection("citygrid") as conn:
        version = store.version_row(conn, "110105", None)["version_id"]
        grids = store.unit_grids(conn, "110105", version)
        terms = store.workload_terms(conn, "110105", version)
    graph = part.adjacency([g["geom"] for g in grids])
    load, _ = part.workload(terms, dict(part.DEFAULT_WEIGHTS))
    anchor_s, plain = timed(lambda: part.partition(graph, load, 237, refine=False))
    ours_s, ours = timed(lambda: part.partition(graph, load, 237))
    return entry("grids_partition_237", graph.n, ours_s, "one plain contiguous pymetis run, same graph", anchor_s,
                 "imbalance = max/mean - 1 of workload; goal <= 0.05 and every group contiguous",
                 imbalance=round(part.imbalance(ours, load), 4),
                 anchor_imbalance=round(part.imbalance(plain, load), 4),
                 contiguous=bool(part.contiguous_groups(graph, ours).all()),
                 anchor_contiguous=bool(part.contiguous_groups(graph, plain).all()), target_s=30)


BENCHES = {"grids_generate_guancheng": bench_guancheng, "grids_generate_chaoyang": bench_chaoyang,
           "grids_partition_237": bench_partition}


def run(wanted: set[str]) -> list[dict]:
    return [bench() for name, bench in BENCHES.items() if name in wanted]
