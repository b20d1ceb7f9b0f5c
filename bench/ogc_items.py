"""``ogc_items``: OGC API – Features item pages over a million components, ours vs pygeoapi 0.24 (#25).

What is measured: ``GET /ogc/collections/components-110105/items?bbox=…&limit=1000`` (and its ``offset``
pages) over the bench census — ``CITYGRID_BENCH_OGC_N`` (default 1,000,000) SYNTHETIC components of
``bench/census_data.py`` (seed 2026) imported by the census import into a Chaoyang deployment of the bench's own
(``citygrid_bench_ogc``; ``citygrid_bench_ogc_<N>`` for another N), made once and reused — against pygeoapi 0.24
with its ``PostgreSQL`` provider on the same rows, in the same run:

- ours: ``citygrid serve --prod`` (gunicorn, 2×cores+1 workers × 4 threads), asked with the bench admin's
  bearer token;
- the anchor: pygeoapi's Flask app under gunicorn with the same worker class, workers and threads, from the
  bench environment ``.venv-bench/`` (``scripts/ensure_bench.sh``; Python ≥ 3.12, never the product's venv),
  its configuration and OpenAPI document written at run time into a temporary directory. pygeoapi's provider
  reads one table or view with a single geometry column and its fields as columns, so it reads the view
  ``bench_ogc_components``: the current census of the district with exactly our collection's properties
  (``interop.collections.KINDS["components"]``; class and major class names joined from the taxonomy) and the
  geometry transformed to EPSG:4326 in PostGIS, with an expression GiST index on ``ST_Transform(geom, 4326)``
  so that its bbox filter is indexed. Storage CRS CRS84 for pygeoapi: its bbox is then the same lon/lat
  rectangle as ours (with a projected storage CRS pygeoapi transforms only the bbox's two corners, another
  rectangle) and it transforms no coordinates in Python — both in its favour. pygeoapi keeps its default
  of counting the matches on every page (``numberMatched``), as deployed out of the box.

Requests: ``BBOXES`` seeded random lon/lat boxes of about 1.2 km × 1.2 km inside Chaoyang (≈ 2–3 pages of 1,000
at a million components), each read page by page (``offset`` 0, 1000, …) until a short page, by one client
with a kept-alive connection, both servers alternately over ``ROUNDS`` rounds: the p95 of those page
latencies is ``ours_s`` / ``anchor_s``. Throughput: the same pages by ``CLIENTS`` concurrent kept-alive
clients, closed loop, for ``BENCH_OGC_SECONDS`` each. ``identical`` is true only when, for every page of every
bbox, both answer the same feature ids in the same order with the same properties (dates and times compared
as instants) and the same coordinates within 1e-9 degrees.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import sqlalchemy as sa

from bench.common import bench_token, free_port, prod_server, run_clients, wait_healthy
from bench.results import entry
from citygrid.config import Settings
from citygrid.spatial import db

NAME = "ogc_items"
DISTRICT = "110105"
N = int(os.environ.get("CITYGRID_BENCH_OGC_N", "1000000"))
BBOXES = int(os.environ.get("BENCH_OGC_BBOXES", "24"))
ROUNDS = int(os.environ.get("BENCH_OGC_ROUNDS", "3"))
CLIENTS = int(os.environ.get("BENCH_OGC_CLIENTS", "4"))
SECONDS = float(os.environ.get("BENCH_OGC_SECONDS", "20"))
LIMIT = 1000
BOX_M = 1200.0  # side of a bbox in metres (about 3,000 components at a million in Chaoyang's 470 km²)
SEED = 2026
ROOT = Path(__file__).resolve().parent.parent
WORK = Path(__file__).resolve().parent / "work"
BENCH_VENV = Path(os.environ.get("BENCH_VENV", ROOT / ".venv-bench"))
VIEW = "bench_ogc_components"
COORD_TOLERANCE = 1e-9


# --- the bench database -----------------------------------------------------------------------------------


def database_name(n: int = N) -> str:
    """The bench's own database for ``n`` components (``BENCH_OGC_DATABASE`` names another)."""
    default = "citygrid_bench_ogc" if n == 1_000_000 else f"citygrid_bench_ogc_{n}"
    return os.environ.get("BENCH_OGC_DATABASE", default)


def _current_components(settings: Settings) -> int | None:
    """How many current components the district has in an up-to-date bench database; None when the database
    is missing, of another schema, or without a census."""
    from citygrid.errors import SchemaMismatch

    if not db.database_exists(settings):
        return None
    engine = db.make_engine(db.database_url(settings))
    try:
        db.check_schema(engine)
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM components WHERE district_code = :d "
                                        "AND valid_to IS NULL"), {"d": DISTRICT}).scalar_one() or None
    except SchemaMismatch:
        return None
    finally:
        engine.dispose()


def _census_file(engine: sa.Engine, n: int) -> Path:
    """The SYNTHETIC census GeoPackage of ``n`` points (EPSG:4548), made once (the census bench's file for 1 M)."""
    from bench.census_data import make_census
    from citygrid.spatial.boundaries import district_boundary

    path = WORK / f"census_{n}.gpkg"
    if not path.exists():
        with engine.connect() as conn:
            boundary = district_boundary(conn, DISTRICT)
        make_census(path, n, boundary, DISTRICT, 4548)
    return path


def prepare_database(n: int = N) -> str:
    """Make the bench database once: a Chaoyang deployment with its published grids (no demo census, cases
    or roster), the SYNTHETIC census of ``n`` components imported by our census import (validated, grids
    assigned), the anchor's view and its index. Later runs reuse it (minutes the first time)."""
    from citygrid import deploy
    from citygrid.components_survey.census import CensusOptions, import_file

    name = database_name(n)
    if not name.startswith("citygrid_bench"):
        raise SystemExit(f"{NAME}: the bench makes and may drop its database: name it citygrid_bench…, not {name}")
    settings = Settings.from_env(name)
    if _current_components(settings) is None:
        db.drop_database(settings)
        deploy.init_deployment(settings, 4548, "北京市 bench")
        deploy.load_demo(settings, "chaoyang", history=False, census=False, roster=False)
        engine = db.make_engine(db.database_url(settings))
        try:
            path = _census_file(engine, n)
            with engine.connect() as conn:
                tx = conn.begin()
                result = import_file(conn, path, CensusOptions(district=DISTRICT, synthetic=True))
                tx.commit()
            print(f"{NAME}: imported {result.counts} into {name}", file=sys.stderr)
        finally:
            engine.dispose()
    engine = db.make_engine(db.database_url(settings))
    try:
        with engine.begin() as conn:
            make_anchor_view(conn)
    finally:
        engine.dispose()
    return name


# One SQL expression per property of our components collection: the anchor's view has exactly these columns.
_VIEW_COLUMNS = {
    "obj_id": "c.obj_id", "class_code": "c.class_code", "class_name": "t.name", "major_code": "t.major_code",
    "major_name": "t.major_name", "obj_name": "c.obj_name", "dept_code1": "c.dept_code1",
    "dept_name1": "c.dept_name1", "dept_code2": "c.dept_code2", "dept_name2": "c.dept_name2",
    "dept_code3": "c.dept_code3", "dept_name3": "c.dept_name3", "unit_grid_code": "c.unit_grid_code",
    "supervision_code": "c.supervision_code", "obj_state": "c.obj_state", "or_date": "c.or_date",
    "ch_date": "c.ch_date", "data_source": "c.data_source", "valid_from": "c.valid_from",
    "valid_to": "c.valid_to",
}


def _view_sql() -> str:
    """The anchor's view: our components collection's properties (its field list, so a field added there and
    not here stops the bench) and the point in EPSG:4326, over the district's current census."""
    from citygrid.interop.collections import KINDS

    fields = [f.name for f in KINDS["components"].fields]
    missing = [f for f in fields if f not in _VIEW_COLUMNS]
    if missing:
        raise SystemExit(f"{NAME}: the anchor's view does not know the components fields {missing}")
    columns = ",\n       ".join(f"{_VIEW_COLUMNS[f]} AS {f}" for f in fields)
    return (f"CREATE VIEW {VIEW} AS\nSELECT {columns},\n       ST_Transform(c.geom, 4326)::geometry(Point, 4326) "
            "AS geom\n  FROM components c\n  LEFT JOIN taxonomy_classes t ON t.scheme = c.scheme "
            "AND t.kind = c.class_kind AND t.code = c.class_code\n"
            f" WHERE c.district_code = '{DISTRICT}' AND c.valid_to IS NULL")


def make_anchor_view(conn: sa.Connection) -> None:
    """(Re)make the anchor's view and the expression index its bbox filter uses, on the district's partition
    (or the default partition where the census was not imported as a partition of its own), in the caller's
    transaction."""
    partition = conn.execute(sa.text("SELECT coalesce(to_regclass(:p), to_regclass('components_default'))::text"),
                             {"p": f"components_{DISTRICT}"}).scalar_one()
    conn.execute(sa.text(f"DROP VIEW IF EXISTS {VIEW}"))
    conn.execute(sa.text(_view_sql()))
    # the view's very expression (with its type modifier), else the planner cannot use the index
    conn.execute(sa.text(f"CREATE INDEX IF NOT EXISTS {partition}_bench_lonlat_v2 ON {partition} USING gist "
                         "((ST_Transform(geom, 4326)::geometry(Point, 4326))) WHERE valid_to IS NULL"))
    conn.execute(sa.text(f"ANALYZE {partition}"))


# --- the anchor: pygeoapi under gunicorn ------------------------------------------------------------------


def _pg_connection(settings: Settings) -> dict[str, Any]:
    """pygeoapi's ``data`` block for our database: the embedded cluster's socket, or ``DATABASE_URL``'s server."""
    from citygrid.spatial.cluster import EmbeddedCluster

    url = db.database_url(settings)
    if settings.database_url:
        data = {"host": url.host, "port": url.port or 5432, "dbname": url.database, "user": url.username}
        if url.password:
            data["password"] = url.password
        return data
    cluster = EmbeddedCluster(settings)
    return {"host": str(cluster.paths.run_dir), "port": cluster.port, "dbname": url.database,
            "user": url.username, "search_path": ["public"]}


def pygeoapi_config(settings: Settings, port: int, bbox: list[float]) -> dict[str, Any]:
    """pygeoapi's configuration: one collection named as ours, read by its PostgreSQL provider from the view
    (storage CRS CRS84), pages of up to 1,000 features, logging errors only."""
    crs84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
    return {
        "server": {"bind": {"host": "127.0.0.1", "port": port}, "url": f"http://127.0.0.1:{port}",
                   "mimetype": "application/json; charset=UTF-8", "encoding": "utf-8", "languages": ["en-US"],
                   "pretty_print": False, "limits": {"default_items": LIMIT, "max_items": LIMIT},
                   "map": {"url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png", "attribution": "OSM"}},
        "logging": {"level": "ERROR"},
        "metadata": {"identification": {"title": "citygrid bench anchor", "description": "ogc_items anchor",
                                        "keywords": ["bench"], "keywords_type": "theme",
                                        "terms_of_service": "https://creativecommons.org/licenses/by/4.0/",
                                        "url": "http://127.0.0.1/"},
                     "license": {"name": "CC-BY 4.0", "url": "https://creativecommons.org/licenses/by/4.0/"},
                     "provider": {"name": "citygrid bench", "url": "http://127.0.0.1/"},
                     "contact": {"name": "bench", "position": "bench", "address": "-", "city": "-",
                                 "stateorprovince": "-", "postalcode": "-", "country": "-", "phone": "-",
                                 "fax": "-", "email": "bench@example.org", "url": "http://127.0.0.1/",
                                 "hours": "-", "instructions": "-", "role": "pointOfContact"}},
        "resources": {f"components-{DISTRICT}": {
            "type": "collection", "title": "components (census)", "description": "SYNTHETIC bench census",
            "keywords": ["components"],
            "extents": {"spatial": {"bbox": bbox, "crs": crs84}},
            "providers": [{"type": "feature", "name": "PostgreSQL", "data": _pg_connection(settings),
                           "id_field": "obj_id", "table": VIEW, "geom_field": "geom", "storage_crs": crs84}],
        }},
    }


@contextmanager
def pygeoapi_server(settings: Settings, bbox: list[float]):
    """pygeoapi 0.24's Flask app under gunicorn (gthread, our worker and thread counts) from ``.venv-bench``;
    yields its port and stops it afterwards."""
    import yaml

    from citygrid.webmap.prod import worker_settings

    python = BENCH_VENV / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"{NAME}: {python} is missing: run scripts/ensure_bench.sh (make bench does)")
    workers = worker_settings()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-pygeoapi-") as tmp:
        config, openapi = Path(tmp) / "pygeoapi-config.yml", Path(tmp) / "pygeoapi-openapi.yml"
        config.write_text(yaml.safe_dump(pygeoapi_config(settings, port, bbox), allow_unicode=True))
        env = {**os.environ, "PYGEOAPI_CONFIG": str(config), "PYGEOAPI_OPENAPI": str(openapi)}
        made = subprocess.run([str(BENCH_VENV / "bin" / "pygeoapi"), "openapi", "generate", str(config),
                               "--output-file", str(openapi)], capture_output=True, text=True, env=env)
        if made.returncode:
            raise RuntimeError(f"{NAME}: pygeoapi openapi generate failed: {made.stderr[-2000:]}")
        WORK.mkdir(exist_ok=True)
        with (WORK / "pygeoapi_server.log").open("a") as log:
            server = subprocess.Popen(
                [str(python), "-m", "gunicorn", "pygeoapi.flask_app:APP", "--bind", f"127.0.0.1:{port}",
                 "--workers", str(workers["workers"]), "--threads", str(workers["threads"]),
                 "--worker-class", "gthread", "--keep-alive", str(workers["keepalive"]),
                 "--timeout", str(workers["timeout"])],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=tmp)
        try:
            wait_healthy(port, 90.0, f"/collections/components-{DISTRICT}")
            yield port
        finally:
            server.terminate()
            server.wait(timeout=30)


# --- requests ---------------------------------------------------------------------------------------------


def bboxes(database: str, count: int = BBOXES, seed: int = SEED) -> list[tuple[float, float, float, float]]:
    """``count`` seeded lon/lat boxes (EPSG:4326, 6 decimals) of about ``BOX_M`` × ``BOX_M`` metres centred on
    random points at least half a box inside the district."""
    import shapely

    from bench.census_data import random_points_inside
    from citygrid.spatial.boundaries import district_boundary
    from citygrid.spatial.crs import to_lonlat

    engine = db.make_engine(db.database_url(Settings.from_env(database)))
    try:
        with engine.connect() as conn:
            inner = district_boundary(conn, DISTRICT).buffer(-BOX_M / 2)  # EPSG:4548, metres
    finally:
        engine.dispose()
    x, y = random_points_inside(inner, count, np.random.default_rng(seed))
    centres = to_lonlat(shapely.points(x, y), 4548)
    boxes = []
    for lon, lat in zip(shapely.get_x(centres), shapely.get_y(centres), strict=True):
        dlat = BOX_M / 2 / 111_320
        dlon = dlat / math.cos(math.radians(lat))
        boxes.append(tuple(round(float(v), 6) for v in (lon - dlon, lat - dlat, lon + dlon, lat + dlat)))
    return boxes


class Client:
    """One kept-alive HTTP/1.1 connection to a server on loopback; a connection the server closed is opened
    again once, as clients do."""

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.port, self.headers = port, headers
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def get(self, path: str) -> tuple[int, bytes, float]:
        """Status, body and seconds of ``GET path``."""
        for attempt in (1, 2):
            try:
                start = time.perf_counter()
                self.conn.request("GET", path, headers=self.headers)
                response = self.conn.getresponse()
                body = response.read()
                return response.status, body, time.perf_counter() - start
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def items_path(prefix: str, box: tuple[float, ...], offset: int) -> str:
    """The items request of one page of ``box`` (CRS84), the same query for both servers."""
    query = {"bbox": ",".join(f"{v:.6f}" for v in box), "limit": LIMIT, "offset": offset}
    return f"{prefix}/collections/components-{DISTRICT}/items?{urlencode(query)}"


def read_box(client: Client, prefix: str, box: tuple[float, ...]) -> tuple[list[float], list[list[dict]]]:
    """Every page of ``box`` (offset 0, 1000, … until a short page): each page's latency and features."""
    latencies, pages, offset = [], [], 0
    while True:
        status, body, seconds = client.get(items_path(prefix, box, offset))
        if status != 200:
            raise RuntimeError(f"{NAME}: {prefix or 'pygeoapi'} answered {status} to {items_path(prefix, box, offset)}"
                               f": {body[:300]!r}")
        features = json.loads(body)["features"]
        latencies.append(seconds)
        pages.append(features)
        if len(features) < LIMIT:
            return latencies, pages
        offset += LIMIT


def page_paths(prefix: str, boxes, counts: list[int]) -> list[str]:
    """The request of every page of every box, given each box's number of pages."""
    return [items_path(prefix, box, k * LIMIT) for box, pages in zip(boxes, counts, strict=True)
            for k in range(pages)]


def throughput(port: int, headers: dict[str, str], paths: list[str], seconds: float = SECONDS,
               clients: int = CLIENTS) -> dict[str, float]:
    """``clients`` kept-alive clients, closed loop, each cycling through ``paths`` from its own start for
    ``seconds``: pages per second, latency p50/p95 and the number of answers other than 200."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def run_client(k: int) -> None:
        client = Client(port, headers)
        i = k * len(paths) // max(clients, 1)
        mine: list[float] = []
        while time.perf_counter() < stop:
            status, _, elapsed = client.get(paths[i % len(paths)])
            if status == 200:
                mine.append(elapsed)
            else:
                with lock:
                    errors[0] += 1
            i += 1
        client.close()
        with lock:
            latencies.extend(mine)

    elapsed = run_clients(run_client, clients)
    lat = np.array(latencies or [float("nan")])
    return {"pages_per_s": round(len(latencies) / elapsed, 2), "p50_s": round(float(np.percentile(lat, 50)), 4),
            "p95_s": round(float(np.percentile(lat, 95)), 4), "errors": errors[0]}


# --- comparing the answers --------------------------------------------------------------------------------


def _value(v: Any) -> Any:
    """A property value as compared: an ISO date-time string as an aware instant (so ``+08:00`` and ``Z``
    spellings of one instant are equal), a date string as a date, anything else as it is."""
    if isinstance(v, str) and len(v) >= 10 and v[4:5] == "-" and v[7:8] == "-":
        try:
            return datetime.fromisoformat(v) if len(v) > 10 else date.fromisoformat(v)
        except ValueError:
            return v
    return v


def _coordinates(geometry: dict | None) -> np.ndarray:
    if geometry is None:
        return np.array([])
    return np.array(geometry["coordinates"], dtype=float).ravel()


def feature_difference(ours: dict, anchor: dict) -> str | None:
    """Why two features differ (id, a property, the geometry type or a coordinate beyond 1e-9), or None."""
    if str(ours.get("id")) != str(anchor.get("id")):
        return f"id {ours.get('id')!r} vs {anchor.get('id')!r}"
    mine, theirs = ours.get("properties") or {}, anchor.get("properties") or {}
    if set(mine) != set(theirs):
        return f"{ours['id']}: properties {sorted(set(mine) ^ set(theirs))} only on one side"
    for key in mine:
        if _value(mine[key]) != _value(theirs[key]):
            return f"{ours['id']}: {key} {mine[key]!r} vs {theirs[key]!r}"
    a, b = ours.get("geometry") or {}, anchor.get("geometry") or {}
    if a.get("type") != b.get("type"):
        return f"{ours['id']}: geometry {a.get('type')} vs {b.get('type')}"
    ca, cb = _coordinates(a), _coordinates(b)
    if ca.shape != cb.shape or (ca.size and float(np.max(np.abs(ca - cb))) > COORD_TOLERANCE):
        return f"{ours['id']}: coordinates {ca.tolist()} vs {cb.tolist()}"
    return None


def compare(ours: list[list[list[dict]]], anchor: list[list[list[dict]]]) -> tuple[bool, list[str]]:
    """Whether every page of every box holds the same features in the same order; the first differences."""
    problems: list[str] = []
    for b, (mine, theirs) in enumerate(zip(ours, anchor, strict=True)):
        if [len(p) for p in mine] != [len(p) for p in theirs]:
            problems.append(f"box {b}: pages of {[len(p) for p in mine]} vs {[len(p) for p in theirs]} features")
            continue
        for k, (pa, pb) in enumerate(zip(mine, theirs, strict=True)):
            for fa, fb in zip(pa, pb, strict=True):
                why = feature_difference(fa, fb)
                if why:
                    problems.append(f"box {b} page {k}: {why}")
                    break
    return not problems, problems[:10]


# --- the run ----------------------------------------------------------------------------------------------


def _extent(database: str) -> tuple[list[float], int]:
    """The district's lon/lat bounds and its current components."""
    import shapely

    from citygrid.spatial.boundaries import district_boundary
    from citygrid.spatial.crs import to_lonlat

    engine = db.make_engine(db.database_url(Settings.from_env(database)))
    try:
        with engine.connect() as conn:
            bounds = shapely.total_bounds(to_lonlat(np.array([district_boundary(conn, DISTRICT)]), 4548))
            count = conn.execute(sa.text("SELECT count(*) FROM components WHERE district_code = :d "
                                         "AND valid_to IS NULL"), {"d": DISTRICT}).scalar_one()
    finally:
        engine.dispose()
    return [round(float(v), 6) for v in bounds], count


def _read_all(port: int, headers: dict[str, str], prefix: str, boxes) -> tuple[list[float], list]:
    """One client reading every page of every box: the pages' latencies and the features box by box."""
    client = Client(port, headers)
    try:
        latencies, answers = [], []
        for box in boxes:
            seconds, pages = read_box(client, prefix, box)
            latencies += seconds
            answers.append(pages)
        return latencies, answers
    finally:
        client.close()


def _p95(values: list[float]) -> float:
    return float(np.percentile(np.array(values), 95))


def measure(database: str) -> dict[str, Any]:
    """Both servers up at once on loopback; a warm-up pass of each (whose answers are compared), ``ROUNDS``
    timed passes alternating which goes first, then each server's throughput under ``CLIENTS`` clients."""
    settings = Settings.from_env(database)
    boxes = bboxes(database)
    extent, components = _extent(database)
    ours_headers = {"Authorization": f"Bearer {bench_token(database)}", "Accept": "application/geo+json"}
    anchor_headers = {"Accept": "application/geo+json"}
    with prod_server(database, "ogc_server.log") as our_port, pygeoapi_server(settings, extent) as their_port:
        servers = {"ours": (our_port, ours_headers, "/ogc"), "anchor": (their_port, anchor_headers, "")}
        warm = {who: _read_all(*servers[who], boxes) for who in servers}
        identical, differences = compare(warm["ours"][1], warm["anchor"][1])
        timings: dict[str, list[float]] = {"ours": [], "anchor": []}
        for r in range(ROUNDS):
            for who in (("ours", "anchor") if r % 2 == 0 else ("anchor", "ours")):
                timings[who] += _read_all(*servers[who], boxes)[0]
        counts = [len(pages) for pages in warm["ours"][1]]
        rates = {who: throughput(servers[who][0], servers[who][1], page_paths(servers[who][2], boxes, counts))
                 for who in ("ours", "anchor")}
    features = [sum(len(p) for p in pages) for pages in warm["ours"][1]]
    return {"boxes": boxes, "components": components, "timings": timings, "rates": rates,
            "identical": identical, "differences": differences, "pages": sum(counts),
            "features_per_box": features}


def run(wanted: set[str]) -> list[dict]:
    if NAME not in wanted:
        return []
    database = prepare_database()
    m = measure(database)
    ours, anchor = _p95(m["timings"]["ours"]), _p95(m["timings"]["anchor"])
    mean_page = sum(m["features_per_box"]) / m["pages"]
    return [entry(
        NAME, m["components"], ours,
        "pygeoapi 0.24 (PostgreSQL provider over a view of the same rows, storage CRS CRS84 with an indexed "
        "ST_Transform(geom, 4326); its default count on every page) under gunicorn with our workers × threads",
        anchor,
        f"ours_s / anchor_s: p95 latency of one kept-alive client reading every page (limit {LIMIT}, offset "
        f"paging) of {len(m['boxes'])} seeded {BOX_M:g} m lon/lat bboxes in Chaoyang over "
        f"{m['components']:,} SYNTHETIC current components, {ROUNDS} alternating rounds after a warm-up; "
        f"throughput: {CLIENTS} kept-alive clients closed loop for {SECONDS:g} s each; both servers real HTTP "
        "on loopback (ours: citygrid serve --prod with a bearer token); identical: every page of every bbox "
        "has the same ids in the same order, the same properties (times as instants) and coordinates within "
        "1e-9°; own database (bench/ogc_items.py); target ratio <= 0.5",
        identical=m["identical"], differences=m["differences"], pages=m["pages"], bboxes=len(m["boxes"]),
        features_per_bbox_median=int(np.median(m["features_per_box"])),
        ours_p50_s=round(float(np.median(m["timings"]["ours"])), 4),
        anchor_p50_s=round(float(np.median(m["timings"]["anchor"])), 4),
        ours_throughput_pages_per_s=m["rates"]["ours"]["pages_per_s"],
        anchor_throughput_pages_per_s=m["rates"]["anchor"]["pages_per_s"],
        # features per second under load: pages per second times the mean page (the boxes' pages, cycled)
        ours_throughput_features_per_s=round(m["rates"]["ours"]["pages_per_s"] * mean_page),
        anchor_throughput_features_per_s=round(m["rates"]["anchor"]["pages_per_s"] * mean_page),
        ours_loaded=m["rates"]["ours"], anchor_loaded=m["rates"]["anchor"], target_ratio=0.5)]
