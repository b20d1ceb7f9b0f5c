"""Run the benchmarks: ``python -m bench.run [--only NAME]``; results merged into ``bench/results.json``."""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from bench.results import RESULTS, merge

# benchmark name -> module whose ``run(wanted: set[str]) -> list[entry]`` runs the wanted ones it owns
BENCHMARKS: dict[str, str] = {
    "gcj02_200k": "bench.bench_crs",
    "grids_generate_guancheng": "bench.bench_grids",
    "grids_generate_chaoyang": "bench.bench_grids",
    "grids_partition_237": "bench.bench_grids",
    "census_import_1m": "bench.bench_census",
    "classify_eval": "bench.bench_classify",
    "geocode_1m": "bench.bench_geocode",
    "geocode_1m_postgis": "bench.bench_geocode",
    "intake_http": "bench.bench_intake",
    "intake_soak": "bench.bench_soak",
    "kde_1m": "bench.bench_kde",
    "mvt_tile": "bench.bench_web",
    "page_overview": "bench.bench_web",
    "slow_clients": "bench.bench_slow_clients",
    "rotation_plan": "bench.bench_rotation",
    "desk_queue": "bench.bench_desk",
    "hotspot_gi": "bench.bench_hotspots",
    "emerging_hotspot": "bench.bench_hotspots",
    "grid_edit": "bench.bench_grid_edit",
    "evaluation_month": "bench.bench_evaluation",
    "ogc_items": "bench.ogc_items",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", help=f"one benchmark: {', '.join(BENCHMARKS)}")
    args = parser.parse_args(argv)
    if args.only and args.only not in BENCHMARKS:
        print(f"unknown benchmark {args.only!r}; choose one of {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    wanted = [args.only] if args.only else list(BENCHMARKS)
    modules = dict.fromkeys(BENCHMARKS[name] for name in wanted)
    entries = []
    for module in modules:
        for item in importlib.import_module(module).run(set(wanted)):
            if item["name"] in wanted:
                print(json.dumps(item, ensure_ascii=False))
                entries.append(item)
    merge(entries)
    print(f"written {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
