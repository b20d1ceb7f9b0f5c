"""``census_import_1m``: 1,000,000 points in a GeoPackage (SYNTHETIC, bench/census_data.py, seed 2026)
imported with validation, grid assignment and reconciliation, vs ``ogr2ogr -f PostgreSQL`` loading the same
file without either, in the same run, into the same database (``citygrid_bench``, a Chaoyang deployment).

Ours runs in a child process so its peak memory (``ru_maxrss``) is measured alone; its transaction is rolled
back at the end so repeated runs measure the same first import.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from bench.census_data import make_census
from bench.results import entry
from citygrid import deploy
from citygrid.config import Settings
from citygrid.spatial import admin, db
from citygrid.spatial.cluster import EmbeddedCluster

N = 1_000_000
DATABASE = "citygrid_bench"
WORK = Path(__file__).resolve().parent / "work"


def _settings() -> Settings:
    return Settings.from_env(DATABASE)


def _prepare() -> Path:
    settings = _settings()
    deploy.load_demo(settings, "chaoyang")
    path = WORK / f"census_{N}.gpkg"
    if not path.exists():
        engine = db.make_engine(db.database_url(settings))
        with engine.connect() as conn:
            boundary = admin.district_boundary(conn, "110105")
        engine.dispose()
        make_census(path, N, boundary, "110105", 4548)
    return path


def _ogr_connection(settings: Settings) -> str:
    url = db.database_url(settings)
    if settings.database_url:
        return (f"PG:host={url.host} port={url.port or 5432} dbname={url.database} user={url.username} "
                f"password={url.password or ''}")
    cluster = EmbeddedCluster(settings)
    return f"PG:host={cluster.paths.run_dir} port={cluster.port} dbname={url.database} user={url.username}"


def worker(path: str) -> None:
    """Child process: import the file, print seconds, counts and peak memory as JSON."""
    from citygrid.components_survey.census import CensusOptions, import_file

    engine = db.make_engine(db.database_url(_settings()))
    with engine.connect() as conn:
        tx = conn.begin()
        start = time.perf_counter()
        result = import_file(conn, Path(path), CensusOptions(district="110105", synthetic=True))
        seconds = time.perf_counter() - start
        tx.rollback()
    engine.dispose()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "counts": result.counts, "state": result.state, "peak_mb": peak}))


def run(wanted: set[str]) -> list[dict]:
    if "census_import_1m" not in wanted:
        return []
    if shutil.which("ogr2ogr") is None:
        raise SystemExit("ogr2ogr not found: install Debian's gdal-bin (make bench does as root)")
    path = _prepare()
    settings = _settings()
    start = time.perf_counter()
    subprocess.run(["ogr2ogr", "-f", "PostgreSQL", _ogr_connection(settings), str(path), "-nln", "bench_ogr2ogr",
                    "-overwrite", "--config", "PG_USE_COPY", "YES"], check=True, capture_output=True)
    anchor_s = time.perf_counter() - start
    engine = db.make_engine(db.database_url(settings))
    with engine.begin() as conn:
        loaded = conn.execute(sa.text("SELECT count(*) FROM bench_ogr2ogr")).scalar_one()
        conn.execute(sa.text("DROP TABLE bench_ogr2ogr"))
    engine.dispose()
    child = subprocess.run([sys.executable, "-c", f"from bench.bench_census import worker; worker({str(path)!r})"],
                           check=True, capture_output=True, text=True, env=os.environ.copy())
    ours = json.loads(child.stdout.strip().splitlines()[-1])
    return [entry("census_import_1m", N, ours["seconds"], "ogr2ogr -f PostgreSQL (PG_USE_COPY, no validation)",
                  anchor_s, "SYNTHETIC census; ours validates every row, assigns unit and supervision grids, "
                  "reconciles with the current census, builds the primary key and GiST index and swaps the "
                  "table in as the district's partition of the versioned components; ogr2ogr COPYs and builds "
                  "one GiST index; target ratio <= 1.0",
                  peak_memory_mb=round(ours["peak_mb"], 1), rows_imported=ours["counts"]["new"],
                  rows_bad=ours["counts"]["bad"], anchor_rows=loaded, target_ratio=1.0, target_peak_mb=2048)]
